//! The standard process metrics (`process_*`, the names every Prometheus client library
//! exports), read from `/proc/self` with the `procfs` crate at each scrape. Linux only:
//! elsewhere there are none.

use super::Collected;

/// The process metrics now; a metric whose source cannot be read is left out.
#[cfg(target_os = "linux")]
pub(crate) fn collect() -> Vec<Collected> {
    use crate::catalog;
    use procfs::process::{LimitValue, Process};

    let one = |info, v: f64| Collected {
        info,
        samples: vec![(None, v)],
    };
    let mut out = Vec::with_capacity(7);
    let Ok(me) = Process::myself() else {
        return out;
    };
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        if ticks > 0.0 {
            // Seconds with the tick's precision (the prometheus crate truncates to whole ones,
            // which makes rate() step).
            out.push(one(
                &catalog::PROCESS_CPU_SECONDS,
                (stat.utime + stat.stime) as f64 / ticks,
            ));
            if let Ok(boot) = procfs::boot_time_secs() {
                out.push(one(
                    &catalog::PROCESS_START_TIME,
                    boot as f64 + stat.starttime as f64 / ticks,
                ));
            }
        }
        out.push(one(
            &catalog::PROCESS_RESIDENT_MEMORY,
            (stat.rss * procfs::page_size()) as f64,
        ));
        out.push(one(&catalog::PROCESS_VIRTUAL_MEMORY, stat.vsize as f64));
        out.push(one(&catalog::PROCESS_THREADS, stat.num_threads as f64));
    }
    if let Ok(n) = me.fd_count() {
        out.push(one(&catalog::PROCESS_OPEN_FDS, n as f64));
    }
    if let Ok(limits) = me.limits() {
        if let LimitValue::Value(max) = limits.max_open_files.soft_limit {
            out.push(one(&catalog::PROCESS_MAX_FDS, max as f64));
        }
    }
    out
}

/// The process metrics (none off Linux).
#[cfg(not(target_os = "linux"))]
pub(crate) fn collect() -> Vec<Collected> {
    Vec::new()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn every_process_metric_is_read_and_plausible() {
        let got = collect();
        let v = |name: &str| {
            got.iter()
                .find(|c| c.info.name == name)
                .map(|c| c.samples[0].1)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert!(v("process_resident_memory_bytes") > 1e5);
        assert!(v("process_virtual_memory_bytes") >= v("process_resident_memory_bytes"));
        assert!(v("process_open_fds") >= 3.0);
        assert!(v("process_max_fds") >= v("process_open_fds"));
        assert!(v("process_threads") >= 1.0);
        assert!(v("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = v("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
        assert_eq!(got.len(), 7);
    }
}
