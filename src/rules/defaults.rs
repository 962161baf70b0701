//! dchat's conventions as rules (the table in the crate docs), built from the catalogue.

use tracing_core::Level;

use super::{LabelSource, Measure, Rule, Rules};
use crate::catalog;
use crate::limits::MAX_LATENCY_SECONDS;

impl Default for Rules {
    fn default() -> Self {
        Rules::dchat_defaults()
    }
}

impl Rules {
    /// dchat's conventions (the table in the crate docs), built from the catalogue; field-prefix
    /// metrics on, with `channel`, `relay`, `operation` and `type` allowed as their labels.
    #[must_use]
    pub fn dchat_defaults() -> Self {
        let err_type = || {
            [
                LabelSource::field("error.type"),
                LabelSource::field("error_kind"),
                LabelSource::Target,
            ]
        };
        // `db.operation.name` is the current OpenTelemetry semantic convention, `db.operation`
        // the one before it.
        let operation = || {
            [
                LabelSource::field("db.operation.name"),
                LabelSource::field("db.operation"),
                LabelSource::field("operation"),
            ]
        };
        let rules = [
            Rule::for_metric(&catalog::MESSAGES_SENT)
                .with_event_name("message.sent")
                .with_value_field("count")
                .with_value_default(1.0)
                .with_label("channel"),
            Rule::for_metric(&catalog::MESSAGES_RECEIVED)
                .with_event_name("message.received")
                .with_value_field("count")
                .with_value_default(1.0)
                .with_label("channel"),
            Rule::for_metric(&catalog::MESSAGES_SEND_FAILED)
                .with_event_name("message.send_failed")
                .with_value_field("count")
                .with_value_default(1.0)
                .with_label("channel"),
            Rule::for_metric(&catalog::MESSAGES_DROPPED)
                .with_event_name("message.dropped")
                .with_value_field("count")
                .with_value_default(1.0)
                .with_label("reason"),
            Rule::for_metric(&catalog::DIAL_FAILURES)
                .with_event_name("peer.dial_failed")
                .with_value_field("count")
                .with_value_default(1.0),
            Rule::for_metric(&catalog::MESSAGE_LATENCY)
                .with_event_name("message.received")
                .with_value_field("latency_seconds")
                .with_scaled_value_field("latency_ms", 0.001)
                .with_value_range(0.0..=MAX_LATENCY_SECONDS)
                .with_label("channel"),
            Rule::for_metric(&catalog::RELAY_CONNECTIONS)
                .with_span_name("relay.connection")
                .with_measure(Measure::SpanActive)
                .with_label("relay"),
            Rule::for_metric(&catalog::DB_QUERY_DURATION)
                .with_span_name("db.query")
                .with_measure(Measure::SpanDuration)
                .with_label_from("operation", operation()),
            Rule::for_metric(&catalog::ERRORS)
                .with_level(Level::ERROR)
                .with_label_from("type", err_type()),
            Rule::for_metric(&catalog::ERROR_RATE)
                .with_level(Level::ERROR)
                .with_label_from("type", err_type()),
        ];
        let rules = rules
            .into_iter()
            .map(|b| b.build())
            .collect::<Result<Vec<_>, _>>()
            // The default rules are constants of this crate; `dchat_defaults_are_valid` below
            // builds them in a test, so this cannot fail at run time.
            .expect("dchat default rules are valid");
        Rules {
            rules,
            prefix_fields: true,
            prefix_labels: ["channel", "relay", "operation", "type"]
                .map(String::from)
                .to_vec(),
            known: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dchat_defaults_are_valid() {
        let rules = Rules::dchat_defaults();
        rules.validate().unwrap();
        assert_eq!(rules.rules().len(), 10);
        let fields = rules.label_fields();
        for f in [
            "channel",
            "relay",
            "db.operation",
            "operation",
            "error.type",
            "error_kind",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f}");
        }
    }
}
