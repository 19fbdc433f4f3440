//! Turning errors into what clients see: a stable `code` extension, never internal text.

use crate::RequestContext;
use async_graphql::{ErrorExtensions, ServerError};
use musubi_domain::{AppError, ErrorCode};
use musubi_telemetry::RequestId;

/// Converts a service error for a resolver. Internal errors are logged with the trace id and
/// reach the client only as `INTERNAL` plus that id.
pub fn to_gql_error(ctx: &async_graphql::Context<'_>, e: AppError) -> async_graphql::Error {
    let rid = ctx.data_opt::<RequestContext>().map(|r| &r.request_id);
    error_for(rid, e)
}

/// [`to_gql_error`] outside a resolver (the file routes answer in the same shape).
pub(crate) fn error_for(rid: Option<&RequestId>, e: AppError) -> async_graphql::Error {
    let code = e.code.as_str();
    if e.code == ErrorCode::Internal || e.source.is_some() {
        let trace_id = musubi_telemetry::current_trace_id(rid);
        let cause = e.source.as_ref().map(|s| s.to_string()).unwrap_or_default();
        if e.code == ErrorCode::Internal {
            tracing::error!(code, trace_id = %trace_id, error = %cause, "internal error");
        } else {
            tracing::warn!(code, trace_id = %trace_id, error = %cause, "request refused");
        }
        let field = e.field;
        return async_graphql::Error::new(e.message).extend_with(|_, ext| {
            ext.set("code", code);
            ext.set("traceId", trace_id.clone());
            if let Some(f) = field {
                ext.set("field", f);
            }
        });
    }
    let field = e.field;
    let retry_after = e.retry_after;
    let reasons = e.reasons.clone();
    let fields: Vec<async_graphql::Value> = e
        .fields
        .iter()
        .map(|i| {
            let mut m = async_graphql::indexmap::IndexMap::new();
            m.insert(async_graphql::Name::new("field"), i.field.into());
            m.insert(async_graphql::Name::new("reason"), i.reason.into());
            async_graphql::Value::Object(m)
        })
        .collect();
    async_graphql::Error::new(e.message).extend_with(|_, ext| {
        if !fields.is_empty() {
            ext.set("fields", fields.clone());
        }
        ext.set("code", code);
        if let Some(f) = field {
            ext.set("field", f);
        }
        if let Some(s) = retry_after {
            ext.set("retryAfter", s);
        }
        if !reasons.is_empty() {
            ext.set("reasons", reasons.clone());
        }
    })
}

/// Gives every error a code: async-graphql's own parse, validation and limit errors have none.
pub(crate) fn ensure_code(err: &mut ServerError) {
    let has_code = err
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    let mut ext = err.extensions.take().unwrap_or_default();
    match invalid_argument(&err.message) {
        // A value the schema refuses (an unknown enum value, a string for a list…) is bad
        // input like any other: same code, and the argument as the field.
        Some(field) => {
            ext.set("code", "INVALID_INPUT");
            ext.set("field", field);
        }
        None => ext.set("code", classify(&err.message)),
    }
    err.extensions = Some(ext);
}

/// The argument named by async-graphql's `Invalid value for argument "scope.0", …`.
fn invalid_argument(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    let (path, _) = rest.split_once('"')?;
    path.split('.').next().filter(|f| !f.is_empty())
}

fn classify(message: &str) -> &'static str {
    if message.contains("nested too deep") {
        "QUERY_TOO_DEEP"
    } else if message.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else if message.contains("Unknown field")
        || message.contains("Unknown type")
        || message.contains("Unknown argument")
        || message.contains("is required but not provided")
    {
        "GRAPHQL_VALIDATION_FAILED"
    } else if message.contains("expected") || message.contains("Parse") || message.contains("parse")
    {
        "GRAPHQL_PARSE_FAILED"
    } else {
        "BAD_REQUEST"
    }
}

/// A request-level failure rendered as a GraphQL response, for errors found before execution.
pub(crate) fn request_error(code: &str, message: &str) -> async_graphql::Response {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    err.extensions = Some(ext);
    async_graphql::Response::from_errors(vec![err])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_argument_values_are_invalid_input_with_the_argument_as_field() {
        let msg = "Invalid value for argument \"scope.0\", enumeration type \"ProfessionClass\" \
                   does not contain the value \"NURSE\"";
        assert_eq!(invalid_argument(msg), Some("scope"));
        assert_eq!(
            invalid_argument("Invalid value for argument \"markRead\", expected type \"Boolean\""),
            Some("markRead")
        );
        assert_eq!(invalid_argument("Unknown field \"x\""), None);
        let mut err = ServerError::new(msg, None);
        ensure_code(&mut err);
        let ext = err.extensions.expect("extensions");
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("INVALID_INPUT"))
        );
        assert_eq!(ext.get("field"), Some(&async_graphql::Value::from("scope")));
    }
}
