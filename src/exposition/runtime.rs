//! tokio runtime metrics (`tokio_runtime_*`) for a runtime the application hands over, from
//! tokio's stable `RuntimeMetrics` API, read at each scrape.

use tokio::runtime::Handle;

use super::Collected;
use crate::catalog;

/// The runtime's metrics now.
pub(crate) fn collect(handle: &Handle) -> Vec<Collected> {
    let m = handle.metrics();
    let workers = m.num_workers();
    let busy = (0..workers)
        .map(|w| {
            // `w` < `num_workers()`, the one case the call panics for.
            let secs = m.worker_total_busy_duration(w).as_secs_f64();
            (Some(("worker", w.to_string())), secs)
        })
        .collect();
    vec![
        Collected {
            info: &catalog::TOKIO_WORKERS,
            samples: vec![(None, workers as f64)],
        },
        Collected {
            info: &catalog::TOKIO_ALIVE_TASKS,
            samples: vec![(None, m.num_alive_tasks() as f64)],
        },
        Collected {
            info: &catalog::TOKIO_GLOBAL_QUEUE_DEPTH,
            samples: vec![(None, m.global_queue_depth() as f64)],
        },
        Collected {
            info: &catalog::TOKIO_BUSY_SECONDS,
            samples: busy,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_multi_thread_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = rt.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || rx.recv()).await;
        });
        let got = collect(rt.handle());
        let value = |name: &str| got.iter().find(|c| c.info.name == name).unwrap();
        assert_eq!(value("tokio_runtime_workers").samples, [(None, 2.0)]);
        assert!(value("tokio_runtime_alive_tasks").samples[0].1 >= 1.0);
        assert_eq!(value("tokio_runtime_busy_seconds_total").samples.len(), 2);
        tx.send(()).unwrap();
        rt.block_on(parked).unwrap();
    }
}
