//! The `db.query` span's peer and floors, shared by the benches and `examples/hot_path_profile`
//! (so the criterion medians and the instruction counts are of the same code): a hand-written
//! span timer feeding a prometheus `HistogramVec`, and a layer that does nothing.

use std::time::Instant;

/// A layer that does nothing but keep every callsite enabled (standing in for a `fmt` layer
/// without its formatting cost).
pub(crate) struct NoopLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {}

/// Times `db.query` spans into a prometheus `HistogramVec` keyed by `db.operation`.
pub(crate) struct SpanTimer {
    pub hist: prometheus::HistogramVec,
}

struct Timing {
    start: Instant,
    op: String,
}

struct OpVisitor(String);
impl tracing::field::Visit for OpVisitor {
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        if f.name() == "db.operation" {
            self.0 = v.to_owned();
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S> tracing_subscriber::Layer<S> for SpanTimer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "db.query" {
            return;
        }
        let mut v = OpVisitor(String::new());
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Timing {
                start: Instant::now(),
                op: v.0,
            });
        }
    }
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            if let Some(t) = span.extensions().get::<Timing>() {
                self.hist
                    .with_label_values(&[t.op.as_str()])
                    .observe(t.start.elapsed().as_secs_f64());
            }
        }
    }
}
