//! Lock poisoning: recovered, never propagated, and counted.
//!
//! A lock is poisoned when a thread panics while holding it. Everything this crate guards with a
//! lock stays usable after such a panic (series tables, span states, plans, health checks), so
//! the guard is taken anyway — a panic inside dchat-telemetry must never become a panic in
//! every dchat thread that logs afterwards. Each recovery is counted; `/health` reports the count
//! as a warning and `dchat_telemetry_health_check_failures_total{check="telemetry-locks"}` rises.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::PoisonError;

static RECOVERED: AtomicU64 = AtomicU64::new(0);

/// Takes the guard of a lock result whether or not the lock is poisoned.
pub(crate) trait Recover<G> {
    /// The guard; a poisoned lock is counted and used as is.
    fn recover(self) -> G;
}

impl<G> Recover<G> for Result<G, PoisonError<G>> {
    #[inline]
    fn recover(self) -> G {
        self.unwrap_or_else(|poisoned| {
            RECOVERED.fetch_add(1, Ordering::Relaxed);
            poisoned.into_inner()
        })
    }
}

/// How many times a poisoned lock was recovered in this process.
pub(crate) fn recovered() -> u64 {
    RECOVERED.load(Ordering::Relaxed)
}
