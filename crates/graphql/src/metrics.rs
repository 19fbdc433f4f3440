//! Counts and times operations by name. The name is resolved from the document (not only the
//! request's `operationName`), and since clients choose names, their number is capped.
//!
//! Recorded by the gateway around execution rather than by a schema extension: any extension
//! sends every field of every answer through async-graphql's slower per-field path.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MAX_OPERATION_LABELS: usize = 200;

#[derive(Default, Clone)]
pub(crate) struct OperationMetrics {
    seen: Arc<Mutex<HashSet<String>>>,
}

impl OperationMetrics {
    fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".to_owned();
        };
        let well_formed = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let Ok(mut seen) = self.seen.lock() else {
            return "other".to_owned();
        };
        if well_formed && (seen.contains(name) || seen.len() < MAX_OPERATION_LABELS) {
            seen.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// The label of a request: its `operationName`, else the name of the document's only
    /// operation, else "anonymous".
    pub(crate) fn label_of(&self, request: &async_graphql::Request) -> String {
        if let Some(name) = request.operation_name.as_deref() {
            return self.label(Some(name));
        }
        // From a flat scan: the gateway may not parse a document before its limits are checked.
        let name = crate::guard::scan(&request.query)
            .ok()
            .and_then(|s| s.single_operation_name());
        self.label(name)
    }

    pub(crate) fn record(&self, label: String, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        metrics::counter!("musubi_graphql_operations_total", "operation" => label.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("musubi_graphql_operation_duration_seconds", "operation" => label)
            .record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_capped_and_sanitised() {
        let m = OperationMetrics::default();
        assert_eq!(m.label(None), "anonymous");
        assert_eq!(m.label(Some("Home")), "Home");
        assert_eq!(m.label(Some("bad name\"}")), "other");
        for i in 0..MAX_OPERATION_LABELS {
            m.label(Some(&format!("Op{i}")));
        }
        assert_eq!(m.label(Some("OneTooMany")), "other");
        assert_eq!(m.label(Some("Home")), "Home");
    }

    #[test]
    fn the_label_comes_from_the_request_or_its_only_named_operation() {
        let m = OperationMetrics::default();
        let named = async_graphql::Request::new("query Probe { server { version } }");
        assert_eq!(m.label_of(&named), "Probe");
        let chosen = async_graphql::Request::new("query A { a } query B { b }").operation_name("B");
        assert_eq!(m.label_of(&chosen), "B");
        let two = async_graphql::Request::new("query A { a } query B { b }");
        assert_eq!(m.label_of(&two), "anonymous");
        assert_eq!(
            m.label_of(&async_graphql::Request::new("{ a }")),
            "anonymous"
        );
        assert_eq!(
            m.label_of(&async_graphql::Request::new("{ broken")),
            "anonymous"
        );
    }
}
