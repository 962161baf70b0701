//! [`BuildInfo`]: what build of the application runs, as `dchat_build_info{version,revision}`
//! and the `service.version` resource attribute.
//!
//! Only the application knows its own version: `env!("CARGO_PKG_VERSION")` read inside this
//! crate would be this crate's. So the application passes it, with [`build_info!`] (which reads
//! its `Cargo.toml` version and a revision set at its compile time) or [`BuildInfo::new`];
//! without either, both labels say `unknown` rather than anything that could be mistaken for a
//! real version.
//!
//! [`build_info!`]: crate::build_info!

use crate::labels::{is_valid_label_name, label_value};
use crate::limits::MAX_LABELS;

/// The value of `version` and `revision` when the application gives none.
pub(crate) const UNKNOWN: &str = "unknown";

/// The application's version and source revision (and optionally a few more labels), for
/// `dchat_build_info` and the `service.version` resource attribute. Give it to
/// [`TelemetryBuilder::with_build_info`](crate::TelemetryBuilder::with_build_info); the
/// [`build_info!`](crate::build_info!) macro makes one from the calling crate's version.
///
/// ```
/// let build = dchat_telemetry::BuildInfo::new("0.4.2", "e0838961").with_label("profile", "release");
/// let telemetry = dchat_telemetry::Telemetry::builder()
///     .with_build_info(build)
///     .without_env()
///     .build()?;
/// let text = telemetry.render()?;
/// assert!(text.contains(r#"dchat_build_info{profile="release",revision="e0838961",service="dchat",version="0.4.2"} 1"#));
/// # Ok::<(), dchat_telemetry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct BuildInfo {
    pub(crate) version: String,
    pub(crate) revision: String,
    pub(crate) labels: Vec<(String, String)>,
}

impl Default for BuildInfo {
    /// `version="unknown"`, `revision="unknown"`.
    fn default() -> Self {
        BuildInfo::new(UNKNOWN, UNKNOWN)
    }
}

impl BuildInfo {
    /// A version (such as the application's `CARGO_PKG_VERSION`) and a source revision (a
    /// commit id, or `unknown`). Both are label values: checked at
    /// [`build`](crate::TelemetryBuilder::build).
    pub fn new(version: impl Into<String>, revision: impl Into<String>) -> Self {
        BuildInfo {
            version: version.into(),
            revision: revision.into(),
            labels: Vec::new(),
        }
    }

    /// One more label of `dchat_build_info` (a build profile, a branch): at most
    /// `limits::MAX_LABELS - 2` of them, names valid, not `version` or `revision` and not a
    /// constant label's; checked at [`build`](crate::TelemetryBuilder::build).
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.labels.retain(|(n, _)| *n != name);
        self.labels.push((name, value.into()));
        self
    }

    /// The version, unless it is unknown (then `service.version` is left out).
    pub(crate) fn known_version(&self) -> Option<&str> {
        let v = self.version.trim();
        (v != UNKNOWN).then_some(v)
    }

    /// The label names, in the order of [`BuildInfo::values`].
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names = vec!["version".to_owned(), "revision".to_owned()];
        names.extend(self.labels.iter().map(|(n, _)| n.clone()));
        names
    }

    /// The label values as exported (trimmed, control characters replaced, capped).
    pub(crate) fn values(&self) -> Vec<String> {
        let clean = |v: &str| label_value(v).unwrap_or_else(|| UNKNOWN.to_owned());
        let mut values = vec![clean(&self.version), clean(&self.revision)];
        values.extend(self.labels.iter().map(|(_, v)| clean(v)));
        values
    }

    /// What is wrong with it, if anything, given the constant labels' names.
    pub(crate) fn problem(&self, const_labels: &[(String, String)]) -> Option<String> {
        if label_value(&self.version).is_none() {
            return Some(format!(
                "the version {:?} is not a label value",
                self.version
            ));
        }
        if label_value(&self.revision).is_none() {
            return Some(format!(
                "the revision {:?} is not a label value",
                self.revision
            ));
        }
        if self.labels.len() > MAX_LABELS - 2 {
            return Some(format!(
                "{} labels besides version and revision (at most {})",
                self.labels.len(),
                MAX_LABELS - 2
            ));
        }
        for (name, value) in &self.labels {
            if !is_valid_label_name(name)
                || name == "version"
                || name == "revision"
                || const_labels.iter().any(|(c, _)| c == name)
            {
                return Some(format!(
                    "{name:?} is not a valid label name, or is version, revision or a constant label"
                ));
            }
            if label_value(value).is_none() {
                return Some(format!("the value of {name:?} is not a label value"));
            }
        }
        None
    }
}

/// A [`BuildInfo`] of the crate this macro is called in: its `Cargo.toml` version
/// (`CARGO_PKG_VERSION`) and the revision in the `DCHAT_BUILD_REVISION` or `VERGEN_GIT_SHA`
/// environment variable at its compile time (set by the build, e.g.
/// `DCHAT_BUILD_REVISION=$(git rev-parse --short HEAD) cargo build`, or by `vergen`), else
/// `unknown`.
///
/// ```
/// let telemetry = dchat_telemetry::Telemetry::builder()
///     .with_build_info(dchat_telemetry::build_info!())
///     .without_env()
///     .build()?;
/// let text = telemetry.render()?;
/// let version = env!("CARGO_PKG_VERSION");
/// assert!(text.contains(&format!(r#"version="{version}""#)));
/// # Ok::<(), dchat_telemetry::Error>(())
/// ```
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::BuildInfo::new(
            ::core::env!("CARGO_PKG_VERSION"),
            match ::core::option_env!("DCHAT_BUILD_REVISION") {
                ::core::option::Option::Some(r) => r,
                ::core::option::Option::None => match ::core::option_env!("VERGEN_GIT_SHA") {
                    ::core::option::Option::Some(r) => r,
                    ::core::option::Option::None => "unknown",
                },
            },
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_by_default_and_checked() {
        let b = BuildInfo::default();
        assert_eq!(b.values(), ["unknown", "unknown"]);
        assert_eq!(b.known_version(), None);
        assert_eq!(b.problem(&[]), None);
        let b = BuildInfo::new("1.2.3", "abc").with_label("profile", "release");
        assert_eq!(b.known_version(), Some("1.2.3"));
        assert_eq!(b.names(), ["version", "revision", "profile"]);
        assert_eq!(b.problem(&[]), None);
        let consts = [("node_id".to_owned(), "n".to_owned())];
        assert!(b
            .clone()
            .with_label("node_id", "x")
            .problem(&consts)
            .is_some());
        assert!(b.clone().with_label("le", "x").problem(&[]).is_some());
        assert!(b.clone().with_label("revision", "x").problem(&[]).is_some());
        assert!(BuildInfo::new(" ", "x").problem(&[]).is_some());
        let many = (0..MAX_LABELS).fold(BuildInfo::default(), |b, i| {
            b.with_label(format!("l{i}"), "v")
        });
        assert!(many.problem(&[]).is_some());
    }

    #[test]
    fn the_macro_reads_the_callers_version() {
        let b = crate::build_info!();
        assert_eq!(b.version, env!("CARGO_PKG_VERSION"));
    }
}
