//! The layer's per-layer filter: a callsite no rule matches gets `Interest::never` for this
//! layer only, so it costs this layer nothing and other layers (a `fmt` layer, say) still see it.

use tracing_core::subscriber::Interest;
use tracing_core::Metadata;
use tracing_subscriber::layer::{Context, Filter};

use std::sync::Arc;

use super::Shared;

/// The per-layer filter of [`MetricsLayer`](super::MetricsLayer): works out each callsite's
/// plan once, in `callsite_enabled`, and enables only the callsites that have one.
#[derive(Debug, Clone)]
pub struct CallsiteFilter {
    pub(super) shared: Arc<Shared>,
}

impl<S> Filter<S> for CallsiteFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        // A callsite not registered yet (a registration racing on another thread) is let
        // through; the layer works out its plan on first use.
        self.shared
            .plans
            .get(meta)
            .is_none_or(|plan| plan.is_active())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.shared.register(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}
