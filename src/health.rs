//! Liveness and readiness, reported in the shape of the IETF health-check draft
//! (`application/health+json`).

use crate::sync::Recover;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::series::Metric;
use crate::value::Num;

/// The `Content-Type` of health reports.
pub const HEALTH_CONTENT_TYPE: &str = "application/health+json";

type CheckFn = dyn Fn() -> Result<(), String> + Send + Sync;

/// What a run of a check came to.
type Outcome = Result<(), String>;

/// One run of a check, shared by every request that arrives while it runs.
struct Run {
    started: tokio::time::Instant,
    /// `None` until the run finishes; then its outcome.
    done: tokio::sync::watch::Receiver<Option<Outcome>>,
    /// Set once this run's failure (error, panic or timeout) has been counted.
    counted: AtomicBool,
}

/// A check's latest run.
type LastRun = Arc<Mutex<Option<Arc<Run>>>>;

struct Check {
    name: String,
    run: Arc<CheckFn>,
    /// The latest run: joined while it runs, or while its result is fresh; a hung run is not
    /// started again.
    last: LastRun,
    /// A warning only: an `Err` makes the report `warn`, not `fail` (and is not counted as a
    /// failure).
    warn_only: bool,
}

struct Inner {
    gates: Mutex<Vec<ReadinessGate>>,
    checks: Mutex<Vec<Check>>,
    shutting_down: AtomicBool,
    timeout: Duration,
    failures: Mutex<Option<Arc<Metric>>>,
    /// Lock recoveries already counted in the failure metric.
    poison_counted: std::sync::atomic::AtomicU64,
}

/// Liveness checks and readiness gates. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// A named condition `/ready` waits for, e.g. `database`. Starts not ready.
#[derive(Debug, Clone)]
pub struct ReadinessGate {
    name: Arc<str>,
    ready: Arc<AtomicBool>,
}

impl ReadinessGate {
    /// Marks the gate ready or not ready.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the gate is ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The gate's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `pass`, `warn` or `fail`, as in the health-check draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy.
    Pass,
    /// Healthy, with a concern.
    Warn,
    /// Unhealthy.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Status of this check.
    pub status: Status,
    /// `component` for gates, `system` for liveness checks.
    pub component_type: &'static str,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A health report: overall status plus one entry per check, keyed `name:measurement`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Overall status: `fail` when any check fails.
    pub status: Status,
    /// Human-readable summary.
    pub description: String,
    /// Per-check details.
    pub checks: BTreeMap<String, Vec<CheckResult>>,
}

impl Report {
    fn new(kind: &str, checks: BTreeMap<String, Vec<CheckResult>>) -> Self {
        let failing: Vec<&str> = checks
            .iter()
            .filter(|(_, r)| r.iter().any(|c| c.status == Status::Fail))
            .map(|(k, _)| k.as_str())
            .collect();
        let warning: Vec<&str> = checks
            .iter()
            .filter(|(_, r)| r.iter().any(|c| c.status == Status::Warn))
            .map(|(k, _)| k.as_str())
            .collect();
        let (status, description) = match (failing.is_empty(), warning.is_empty()) {
            (false, _) => (
                Status::Fail,
                format!("{kind}: failing: {}", failing.join(", ")),
            ),
            (true, false) => (
                Status::Warn,
                format!("{kind}: warning: {}", warning.join(", ")),
            ),
            (true, true) => (Status::Pass, format!("{kind}: all checks pass")),
        };
        Report {
            status,
            description,
            checks,
        }
    }

    /// Whether the overall status is `pass` (or `warn`).
    #[must_use]
    pub fn is_pass(&self) -> bool {
        self.status != Status::Fail
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new(Duration::from_millis(800))
    }
}

impl Health {
    /// An empty set of checks; liveness checks time out after `timeout`.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Health {
            inner: Arc::new(Inner {
                gates: Mutex::new(Vec::new()),
                checks: Mutex::new(Vec::new()),
                shutting_down: AtomicBool::new(false),
                timeout,
                failures: Mutex::new(None),
                poison_counted: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn set_failure_metric(&self, metric: Arc<Metric>) {
        *self.inner.failures.lock().recover() = Some(metric);
    }

    #[cfg(test)]
    pub(crate) fn inner_gates_for_test(&self) -> &Mutex<Vec<ReadinessGate>> {
        &self.inner.gates
    }

    /// Adds `n` to `dchat_telemetry_health_check_failures_total{check}`.
    fn count_failures(&self, check: &str, n: u64) {
        let metric = self.inner.failures.lock().recover().clone();
        if let Some(m) = metric {
            m.record(&[check], Num::U64(n));
        }
    }

    /// The readiness gate `name`, created not ready on first use; the same name gives the same
    /// gate.
    pub fn readiness_gate(&self, name: &str) -> ReadinessGate {
        let mut gates = self.inner.gates.lock().recover();
        if let Some(g) = gates.iter().find(|g| &*g.name == name) {
            return g.clone();
        }
        let gate = ReadinessGate {
            name: name.into(),
            ready: Arc::new(AtomicBool::new(false)),
        };
        gates.push(gate.clone());
        gate
    }

    /// Registers a liveness check. It runs on a blocking thread for `/health` requests; a
    /// check that returns `Err`, panics or takes longer than the timeout fails (and while a hung
    /// run is still going, the check is not started again and keeps failing). Requests that
    /// arrive while a run is under way share its result, so concurrent probes never fail each other: a run counts as hung only once
    /// it has lasted longer than the timeout.
    pub fn add_liveness_check<F>(&self, name: &str, check: F)
    where
        F: Fn() -> Result<(), String> + Send + Sync + 'static,
    {
        self.count_failures(name, 0); // the series exists from the start
        self.push_check(name, Arc::new(check), false);
    }

    /// Registers a condition that makes `/health` answer `warn` (still 200) with its text while
    /// `check` returns one; run like a liveness check.
    pub(crate) fn add_warning<F>(&self, name: &str, check: F)
    where
        F: Fn() -> Option<String> + Send + Sync + 'static,
    {
        self.push_check(name, Arc::new(move || check().map_or(Ok(()), Err)), true);
    }

    fn push_check(&self, name: &str, run: Arc<CheckFn>, warn_only: bool) {
        let mut checks = self.inner.checks.lock().recover();
        checks.retain(|c| c.name != name);
        checks.push(Check {
            name: name.to_owned(),
            run,
            last: Arc::new(Mutex::new(None)),
            warn_only,
        });
    }

    /// Makes `/ready` fail from now on (shutdown has begun).
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Whether `/ready` answers 200: every gate ready and no shutdown begun.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        !self.is_shutting_down()
            && self
                .inner
                .gates
                .lock()
                .recover()
                .iter()
                .all(ReadinessGate::is_ready)
    }

    /// The readiness report.
    #[must_use]
    pub fn readiness(&self) -> Report {
        let mut checks = BTreeMap::new();
        for g in self.inner.gates.lock().recover().iter() {
            let ready = g.is_ready();
            checks.insert(
                format!("{}:ready", g.name),
                vec![CheckResult {
                    status: if ready { Status::Pass } else { Status::Fail },
                    component_type: "component",
                    output: (!ready).then(|| format!("{} is not ready", g.name)),
                }],
            );
        }
        let shutting = self.is_shutting_down();
        checks.insert(
            "shutdown:in-progress".into(),
            vec![CheckResult {
                status: if shutting { Status::Fail } else { Status::Pass },
                component_type: "system",
                output: shutting.then(|| "shutdown has begun".to_owned()),
            }],
        );
        Report::new("readiness", checks)
    }

    /// The run of `check` to report: the one under way (however long it has run: a hung check
    /// is not started again), else a new one on a blocking thread. A finished run's result is
    /// never reused: each request after it sees the state of now.
    fn run_or_join(check: Arc<CheckFn>, last: &Mutex<Option<Arc<Run>>>) -> Arc<Run> {
        let mut last = last.lock().recover();
        if let Some(run) = last.as_ref() {
            if run.done.borrow().is_none() {
                return Arc::clone(run);
            }
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        let run = Arc::new(Run {
            started: tokio::time::Instant::now(),
            done: rx,
            counted: AtomicBool::new(false),
        });
        // If the blocking pool cannot take it (the runtime is shutting down), the sender is
        // dropped and waiters see "check task failed".
        drop(tokio::task::spawn_blocking(move || {
            let outcome = match catch_unwind(AssertUnwindSafe(|| check())) {
                Ok(r) => r,
                Err(_) => Err("check panicked".to_owned()),
            };
            let _ = tx.send(Some(outcome));
        }));
        *last = Some(Arc::clone(&run));
        run
    }

    /// The liveness report: runs every check (each bounded by the timeout), or joins the run
    /// under way.
    pub async fn liveness(&self) -> Report {
        let to_run: Vec<(String, Arc<CheckFn>, LastRun, bool)> = self
            .inner
            .checks
            .lock()
            .recover()
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    Arc::clone(&c.run),
                    Arc::clone(&c.last),
                    c.warn_only,
                )
            })
            .collect();
        let timeout = self.inner.timeout;
        let asked = tokio::time::Instant::now();
        let runs: Vec<(String, Arc<Run>, bool)> = to_run
            .into_iter()
            .map(|(name, check, last, warn_only)| {
                (name, Self::run_or_join(check, &last), warn_only)
            })
            .collect();
        let mut checks = BTreeMap::new();
        for (name, run, warn_only) in runs {
            // Bounded by the run's own start: a request joining late waits less, and one
            // joining after the timeout sees the run as hung at once.
            let deadline = run.started + timeout;
            let mut done = run.done.clone();
            // Hung: the run had already outlived its timeout when this request came.
            let late = asked >= deadline;
            let outcome =
                match tokio::time::timeout_at(deadline, done.wait_for(Option::is_some)).await {
                    Ok(Ok(v)) => match v.as_ref() {
                        Some(outcome) => outcome.clone(),
                        None => Err("check result missing".to_owned()),
                    },
                    Ok(Err(_)) => Err("check task failed".to_owned()),
                    Err(_) if late => Err("previous run has not finished (hung)".to_owned()),
                    Err(_) => Err(format!("timed out after {timeout:?}")),
                };
            if outcome.is_err() && !warn_only && !run.counted.swap(true, Ordering::SeqCst) {
                self.count_failures(&name, 1);
            }
            checks.insert(
                format!("{name}:liveness"),
                vec![CheckResult {
                    status: match (outcome.is_ok(), warn_only) {
                        (true, _) => Status::Pass,
                        (false, true) => Status::Warn,
                        (false, false) => Status::Fail,
                    },
                    component_type: "system",
                    output: outcome.err(),
                }],
            );
        }
        // A lock recovered after a panic inside this crate: a warning (dchat keeps serving and
        // must not be restarted for it), counted once per recovery.
        let recovered = crate::sync::recovered();
        if recovered > 0 {
            let counted = self.inner.poison_counted.swap(recovered, Ordering::SeqCst);
            self.count_failures("telemetry-locks", recovered.saturating_sub(counted));
            checks.insert(
                "telemetry-locks:liveness".into(),
                vec![CheckResult {
                    status: Status::Warn,
                    component_type: "system",
                    output: Some(format!(
                        "{recovered} poisoned lock(s) recovered after a panic inside dchat-telemetry; metrics keep flowing"
                    )),
                }],
            );
        }
        Report::new("liveness", checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_and_shutdown_drive_readiness() {
        let h = Health::default();
        assert!(h.is_ready(), "no gates: ready");
        let db = h.readiness_gate("database");
        assert!(!h.is_ready());
        let r = h.readiness();
        assert!(!r.is_pass());
        assert!(
            r.description.contains("database:ready"),
            "{}",
            r.description
        );
        h.readiness_gate("database").set_ready(true);
        assert!(db.is_ready() && h.is_ready());
        h.begin_shutdown();
        assert!(!h.is_ready());
        assert!(!h.readiness().is_pass());
    }

    #[tokio::test]
    async fn failing_panicking_and_hung_checks_fail_alone() {
        let h = Health::new(Duration::from_millis(200));
        h.add_liveness_check("ok", || Ok(()));
        h.add_liveness_check("err", || Err("disk full".into()));
        h.add_liveness_check("panics", || panic!("boom"));
        h.add_liveness_check("hangs", || {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        });
        let r = h.liveness().await;
        assert!(!r.is_pass());
        let status = |k: &str| r.checks[k][0].status;
        assert_eq!(status("ok:liveness"), Status::Pass);
        assert_eq!(status("err:liveness"), Status::Fail);
        assert_eq!(status("panics:liveness"), Status::Fail);
        assert_eq!(status("hangs:liveness"), Status::Fail);
        assert!(r.checks["hangs:liveness"][0]
            .output
            .as_deref()
            .unwrap_or("")
            .contains("timed out"));
        // Still hung: not started again.
        let r = h.liveness().await;
        assert!(r.checks["hangs:liveness"][0]
            .output
            .as_deref()
            .unwrap_or("")
            .contains("hung"));
    }
}
