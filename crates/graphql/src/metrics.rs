//! Counts and times operations by name. The name is resolved from the document (not only the
//! request's `operationName`), and since clients choose names, their number is capped.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::Response;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
}

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationMetrics {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let label = self.label(operation_name);
        let start = Instant::now();
        let response = next.run(ctx, operation_name).await;
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics::counter!("musubi_graphql_operations_total", "operation" => label.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("musubi_graphql_operation_duration_seconds", "operation" => label)
            .record(start.elapsed().as_secs_f64());
        response
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
}
