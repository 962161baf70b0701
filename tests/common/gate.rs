//! A clock the test controls, to hold a render where the test wants it: `/metrics` reads the
//! clock when it renders (to expire idle series), so a closed gate keeps a render waiting on a
//! blocking thread, and a panicking clock makes the render panic.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Open,
    Closed,
    Panic,
}

#[derive(Debug)]
struct Inner {
    mode: Mutex<(Mode, usize)>,
    changed: Condvar,
}

/// A [`dchat_telemetry::Clock`] with a gate. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct GateClock {
    inner: Arc<Inner>,
    origin: Instant,
}

impl GateClock {
    pub(crate) fn new() -> Self {
        GateClock {
            inner: Arc::new(Inner {
                mode: Mutex::new((Mode::Open, 0)),
                changed: Condvar::new(),
            }),
            origin: Instant::now(),
        }
    }

    fn set(&self, mode: Mode) {
        self.inner.mode.lock().unwrap().0 = mode;
        self.inner.changed.notify_all();
    }

    /// Readers of the clock wait from now on (each at most 30 s).
    pub(crate) fn close(&self) {
        self.set(Mode::Closed);
    }

    /// Lets every waiting reader go.
    pub(crate) fn open(&self) {
        self.set(Mode::Open);
    }

    /// Readers panic from now on.
    pub(crate) fn panic(&self) {
        self.set(Mode::Panic);
    }

    /// How many readers are waiting at the gate.
    pub(crate) fn waiting(&self) -> usize {
        self.inner.mode.lock().unwrap().1
    }

    /// Waits (bounded: 10 s) until `n` readers wait at the gate.
    pub(crate) fn wait_for_waiting(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.waiting() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl dchat_telemetry::Clock for GateClock {
    fn now(&self) -> Duration {
        let mut guard = self.inner.mode.lock().unwrap();
        if guard.0 == Mode::Panic {
            drop(guard);
            panic!("clock exploded: secret-internal-detail");
        }
        if guard.0 == Mode::Closed {
            guard.1 += 1;
            let (mut g, _) = self
                .inner
                .changed
                .wait_timeout_while(guard, Duration::from_secs(30), |m| m.0 == Mode::Closed)
                .unwrap();
            g.1 -= 1;
        }
        self.origin.elapsed()
    }
}
