//! Noticing a setup that keeps events from the layer: a filter outside it (dchat's own
//! start-up filters the whole registry with an `EnvFilter`), or a layer that was never added to
//! a dispatcher. Such a setup must never stop the metrics silently: `/health` warns with the
//! fix, a WARN line says so once, and `dchat_telemetry_filter_blocked{reason}` shows it.
//!
//! What can be seen:
//! - the process-wide maximum level (`LevelFilter::current()`): a filter on the whole registry
//!   (`RUST_LOG=warn`) lowers it, and tracing then drops every INFO event before any layer is
//!   asked;
//! - callsites the rules match that a filter outside the layer disables: each live dispatcher
//!   holding the layer is asked, on a thread of its own (so no thread's per-layer-filter state is
//!   touched), whether it would dispatch the callsite at all;
//! - whether the layer is part of any live dispatcher: the dispatchers it was registered with
//!   (`on_register_dispatch`), and the global default if it holds this layer (found by
//!   downcasting: tracing-subscriber's `impl Layer for Option<L>` does not pass
//!   `on_register_dispatch` on, so `.with(Some(telemetry.layer()))` is only seen that way).
//!
//! What cannot: callsites below the maximum level never register, so they are covered by the
//! level check only; filters that decide per event or by the current span (`filter_fn` on
//! values, `EnvFilter` span directives) may be reported as blocking when they pass some events;
//! a filter wrapped around this layer itself (`telemetry.layer().with_filter(..)`) is the
//! caller's choice and is not second-guessed.

use crate::sync::Recover;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_core::dispatcher::{Dispatch, WeakDispatch};
use tracing_core::{LevelFilter, Metadata};

use super::filter::CallsiteFilter;

/// How long one diagnosis is reused (a probe starts a thread).
const REUSE_FOR: Duration = Duration::from_secs(5);

/// What keeps events from the layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Blocked {
    /// The layer is in no live dispatcher.
    pub(crate) not_installed: bool,
    /// The process-wide maximum level, when it is below the level the conventions use.
    pub(crate) max_level: Option<LevelFilter>,
    /// Callsites the rules match that no dispatcher holding the layer would dispatch, as
    /// `name (target)`.
    pub(crate) callsites: Vec<String>,
}

impl Blocked {
    /// Whether nothing blocks the metrics.
    pub(crate) fn is_clear(&self) -> bool {
        !self.not_installed && self.max_level.is_none() && self.callsites.is_empty()
    }

    /// The health-check output: what is wrong and how to fix it.
    pub(crate) fn message(&self, expected: LevelFilter) -> Option<String> {
        if self.is_clear() {
            return None;
        }
        let mut parts = Vec::new();
        if self.not_installed {
            parts.push(
                "the metrics layer is not part of any tracing dispatcher: add \
                 `.with(telemetry.layer())` to `tracing_subscriber::registry()`"
                    .to_owned(),
            );
        }
        if let Some(level) = self.max_level {
            parts.push(format!(
                "the process-wide maximum level is {}, so events below it (the conventions \
                 use {}) never reach the metrics layer",
                level.to_string().to_uppercase(),
                expected.to_string().to_uppercase()
            ));
        }
        if !self.callsites.is_empty() {
            let shown: Vec<&str> = self.callsites.iter().take(5).map(String::as_str).collect();
            parts.push(format!(
                "{} callsite(s) the metric rules match are disabled by a filter outside the \
                 metrics layer ({}{})",
                self.callsites.len(),
                shown.join(", "),
                if self.callsites.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        Some(format!(
            "metrics are being lost: {}. A filter applied to the whole registry (such as \
             `registry().with(EnvFilter::from_default_env())`, i.e. RUST_LOG) filters the \
             metrics too; put it on the fmt layer instead: \
             `.with(fmt::layer().with_filter(EnvFilter::from_default_env()))`",
            parts.join("; ")
        ))
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The layer's view of where it is installed, and the last diagnosis.
#[derive(Debug)]
pub(crate) struct Diagnose {
    /// Tells this telemetry's layers from other ones in a dispatcher.
    id: u64,
    expected: LevelFilter,
    /// Callsites with an active plan (each once).
    callsites: Mutex<Vec<&'static Metadata<'static>>>,
    dispatches: Mutex<Vec<WeakDispatch>>,
    last: Mutex<Option<(Instant, Blocked)>>,
    warned: AtomicBool,
}

impl Diagnose {
    pub(crate) fn new(expected: LevelFilter) -> Self {
        Diagnose {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            expected,
            callsites: Mutex::new(Vec::new()),
            dispatches: Mutex::new(Vec::new()),
            last: Mutex::new(None),
            warned: AtomicBool::new(false),
        }
    }

    /// The level the conventions are emitted at (INFO by default).
    pub(crate) fn expected(&self) -> LevelFilter {
        self.expected
    }

    /// A callsite got an active plan.
    pub(crate) fn callsite(&self, meta: &'static Metadata<'static>) {
        self.callsites.lock().recover().push(meta);
    }

    /// The layer became part of `dispatch`.
    pub(crate) fn dispatch(&self, dispatch: &Dispatch) {
        let mut d = self.dispatches.lock().recover();
        d.retain(|w| w.upgrade().is_some());
        d.push(dispatch.downgrade());
        *self.last.lock().recover() = None;
    }

    /// What blocks the metrics now (reused for a few seconds); logs one WARN line the first time
    /// something does.
    pub(crate) fn blocked(&self) -> Blocked {
        {
            let last = self.last.lock().recover();
            if let Some((at, b)) = &*last {
                if at.elapsed() < REUSE_FOR {
                    return b.clone();
                }
            }
        }
        let b = self.diagnose();
        if !b.is_clear() && !self.warned.swap(true, Ordering::AcqRel) {
            if let Some(m) = b.message(self.expected) {
                tracing::warn!(target: "dchat_telemetry", "{m}");
            }
        }
        *self.last.lock().recover() = Some((Instant::now(), b.clone()));
        b
    }

    fn diagnose(&self) -> Blocked {
        let registered: Vec<Dispatch> = self
            .dispatches
            .lock()
            .recover()
            .iter()
            .filter_map(WeakDispatch::upgrade)
            .collect();
        let current = LevelFilter::current();
        let max_level = (current < self.expected).then_some(current);
        // Callsites above the maximum level are covered by the level check.
        let candidates: Vec<&'static Metadata<'static>> = self
            .callsites
            .lock()
            .recover()
            .iter()
            .copied()
            .filter(|m| *m.level() <= current)
            .collect();
        let id = self.id;
        // A fresh thread: asking a dispatcher outside a real dispatch leaves per-layer-filter
        // state in the asking thread's locals; and its default dispatcher is the global one.
        let probe = std::thread::Builder::new()
            .name("dchat-telemetry-filter-probe".into())
            .spawn(move || {
                let mut dispatches = registered;
                let global = tracing_core::dispatcher::get_default(Dispatch::clone);
                let holds_us = global
                    .downcast_ref::<CallsiteFilter>()
                    .is_some_and(|f| f.shared.diagnose.id == id);
                if holds_us {
                    dispatches.push(global);
                }
                let blocked: Vec<String> = if dispatches.is_empty() {
                    Vec::new()
                } else {
                    candidates
                        .into_iter()
                        .filter(|m| !dispatches.iter().any(|d| d.enabled(m)))
                        .map(|m| format!("{} ({})", m.name(), m.target()))
                        .collect()
                };
                (dispatches.is_empty(), blocked)
            });
        let (not_installed, callsites) = probe
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or((false, Vec::new()));
        Blocked {
            not_installed,
            max_level,
            callsites,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_problem_and_the_fix() {
        let b = Blocked {
            not_installed: false,
            max_level: Some(LevelFilter::WARN),
            callsites: (0..7).map(|i| format!("message.sent (m{i})")).collect(),
        };
        let m = b.message(LevelFilter::INFO).unwrap();
        assert!(m.contains("maximum level is WARN"), "{m}");
        assert!(m.contains("7 callsite(s)") && m.contains(", ..."), "{m}");
        assert!(
            m.contains("fmt::layer().with_filter(EnvFilter::from_default_env())"),
            "{m}"
        );
        assert_eq!(Blocked::default().message(LevelFilter::INFO), None);
    }
}
