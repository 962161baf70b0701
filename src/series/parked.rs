//! Open spans' gauges that landed in the overflow series, and their move to their own series.
//!
//! A span that opens while its gauge metric is full (a burst of peers) adds its +1 to the
//! overflow series. A relay connection can stay open for days, long after the burst's series
//! have expired: left there, the live relay would stay hidden in the overflow series for as
//! long. So such a gauge is *parked*: the metric keeps its label values under the span's key,
//! and once there is room (at a render, after the sweep) it moves to its own series, +1 there
//! and -1 on the overflow series, while the render's lock of the metric is held, so that no
//! exposition shows the count twice or not at all. The span itself keeps only the overflow
//! series it opened in; when it closes in the overflow series, the metric's parked table says
//! where its +1 is now.

use super::label_set::LabelSetId;
use std::sync::{Arc, Mutex};

use hashbrown::HashMap;

use super::cell::Missed;
use super::key::LabelKey;
use super::Series;
use crate::sync::Recover;
use crate::value::Num;

/// Which open span's which gauge: the span is known by its id within the layer that saw it
/// open (several dispatchers may share the metrics, and each numbers its spans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GaugeKey {
    pub(crate) layer: u64,
    pub(crate) span: u64,
    /// The gauge's place among the span's `SpanActive` actions.
    pub(crate) gauge: u8,
}

/// One open span's gauge in the overflow series (or moved out of it).
#[derive(Debug)]
struct Parked {
    hash: u64,
    set: LabelSetId,
    key: LabelKey,
    /// The series holding its +1 (and pinned by it): the overflow series until it moves.
    series: Arc<Series>,
    moved: bool,
}

/// The parked gauges of one metric: kept until their span closes (a moved one too, so that
/// the span's -1 goes where its +1 is).
#[derive(Debug, Default)]
pub(crate) struct ParkedGauges {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    map: HashMap<GaugeKey, Parked>,
    /// Entries not moved yet.
    waiting: usize,
}

impl ParkedGauges {
    /// Parks the gauge `at` whose +1 (and pin) is in `overflow`, for label values `key`.
    pub(crate) fn park(
        &self,
        at: GaugeKey,
        hash: u64,
        set: LabelSetId,
        key: LabelKey,
        overflow: Arc<Series>,
    ) {
        let parked = Parked {
            hash,
            set,
            key,
            series: overflow,
            moved: false,
        };
        let mut t = self.table.lock().recover();
        t.waiting += 1;
        if let Some(stale) = t.map.insert(at, parked) {
            // A span's id is not reused while it is open, and it leaves the table when it
            // closes; were an entry left over, its +1 goes now rather than never.
            debug_assert!(false, "a parked gauge's key in use: {at:?}");
            t.waiting -= usize::from(!stale.moved);
            let _ = stale.series.close_gauge();
        }
    }

    /// Takes parked gauge `at` back down (-1) wherever it is now and forgets it; `None` when
    /// it is not parked here (it opened in its own series).
    pub(crate) fn close(&self, at: GaugeKey) -> Option<Result<(), Missed>> {
        let mut t = self.table.lock().recover();
        let parked = t.map.remove(&at)?;
        t.waiting -= usize::from(!parked.moved);
        drop(t);
        Some(parked.series.close_gauge())
    }

    /// Whether no gauge waits in the overflow series.
    pub(crate) fn none_waiting(&self) -> bool {
        self.table.lock().recover().waiting == 0
    }

    /// Moves waiting gauges to the series `own` finds for their label values (`None`: no room,
    /// stop), +1 there, then -1 on the overflow series. Returns how many moved.
    pub(crate) fn move_out(
        &self,
        mut own: impl FnMut(u64, LabelSetId, &LabelKey) -> Option<Arc<Series>>,
    ) -> usize {
        let mut t = self.table.lock().recover();
        let mut moved = 0;
        for p in t.map.values_mut().filter(|p| !p.moved) {
            let Some(series) = own(p.hash, p.set, &p.key) else {
                break;
            };
            series.pin();
            if series.record(Num::I64(1)).is_err() {
                // Killed by expiry between the lookup and the pin (an idle series of the same
                // labels): the table has a new one by the next render.
                series.unpin();
                continue;
            }
            let overflow = std::mem::replace(&mut p.series, series);
            // Pinned by this gauge, so not expired; an up-down counter that took +1 takes -1.
            let r = overflow.close_gauge();
            debug_assert!(r.is_ok(), "the overflow series took the -1: {r:?}");
            p.moved = true;
            moved += 1;
        }
        t.waiting -= moved;
        moved
    }
}
