//! Test hook: abort the process at one named point of the purge, as a
//! `kill -9` there would. The crash tests of `server/tests/it/erasure_purge.rs`
//! and `server/tests/it/erasure_crash.rs` start a node with one of
//!
//! ```text
//! STRATA_ERASURE_CRASH_AFTER=<step>        (log | hot | cold | verify): = <step>.done
//! STRATA_ERASURE_CRASH_AT=<point>
//!   <step>.started     the status says `running`, the step has not begun
//!   <step>.done        the step did its work, its status does not say so yet
//!   <step>.recorded    the status says `done`, the next step has not begun
//!   log.sealed         embedded log: active segments sealed, hot store not flushed yet
//!   hot:<point>[#<n>]  inside HotStore::erase, at a hot-store failpoint (strata_hot_store::failpoint,
//!                      e.g. erase.after_write, erase.before_delete_input, segment.before_fsync,
//!                      manifest.before_rename), on its pass number n (0-based, default 0)
//!   cold:<point>       inside ColdTier::erase, at a cold-tier failpoint (cold-tier/src/erase.rs, e.g.
//!                      erase_samples_before_commit, erase_after_rollup1h, erase_after_rollup1d, erase_before_expiry)
//! ```
//!
//! A tier failpoint makes the erase fail at that instant (nothing after the
//! point runs); the node then aborts, so what is on disk and in the object
//! store is exactly what a crash there leaves. A point the purge does not
//! pass (e.g. no segment to rewrite) does nothing. Without these variables
//! every function here is one cached lookup.
//!
//! Only with the cargo feature `failpoints` (which turns on the storage
//! crates' failpoints too). Without it every function here is an inlined
//! no-op and the variables are never read: `cargo build --release -p strata`
//! has no crash hooks. The server's tests get the feature through the
//! crate's dev-dependency on itself, so the binary they start
//! (`CARGO_BIN_EXE_strata`) has them.

#[cfg(feature = "failpoints")]
pub(crate) use armed::{after_cold_erase, after_hot_erase, arm_cold, arm_hot, point, step_point};
#[cfg(not(feature = "failpoints"))]
pub(crate) use off::{after_cold_erase, after_hot_erase, arm_cold, arm_hot, point, step_point};

/// The hooks (feature `failpoints`): the environment read once, the
/// storage crates' failpoints armed from it.
#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::erasure::status::Step;

    /// Where the process is to crash (parsed once from the environment).
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum CrashAt {
        /// A worker or log-step point (`<step>.started`, `log.sealed`, ...).
        Point(String),
        /// A hot-store failpoint and the pass it fires on.
        Hot(&'static str, u32),
        /// A cold-tier failpoint.
        Cold(String),
    }

    fn parse(after: Option<&str>, at: Option<&str>) -> Option<CrashAt> {
        if let Some(at) = at.filter(|v| !v.is_empty()) {
            if let Some(p) = at.strip_prefix("hot:") {
                let (name, nth) = match p.split_once('#') {
                    Some((name, n)) => (name, n.parse().unwrap_or(0)),
                    None => (p, 0),
                };
                // Leaked once per process: the hot store's failpoints take a `&'static str`.
                return Some(CrashAt::Hot(Box::leak(name.to_owned().into_boxed_str()), nth));
            }
            if let Some(p) = at.strip_prefix("cold:") {
                return Some(CrashAt::Cold(p.to_owned()));
            }
            return Some(CrashAt::Point(at.to_owned()));
        }
        after.filter(|v| !v.is_empty()).map(|step| CrashAt::Point(format!("{step}.done")))
    }

    fn crash_at() -> Option<&'static CrashAt> {
        static AT: OnceLock<Option<CrashAt>> = OnceLock::new();
        AT.get_or_init(|| {
            let after = std::env::var("STRATA_ERASURE_CRASH_AFTER").ok();
            let at = std::env::var("STRATA_ERASURE_CRASH_AT").ok();
            let parsed = parse(after.as_deref(), at.as_deref());
            if let Some(p) = &parsed {
                tracing::warn!(point = ?p, "erasure crash hook armed (test hook): this node aborts when the purge reaches it");
            }
            parsed
        })
        .as_ref()
    }

    #[expect(
        clippy::print_stderr,
        reason = "the test hook's last words reach the test's stderr reader even if logging is off"
    )]
    fn abort(point: &str) -> ! {
        tracing::error!(point, "STRATA_ERASURE_CRASH_AT: aborting (test hook)");
        eprintln!("STRATA_ERASURE_CRASH_AT {point}: aborting (test hook)");
        std::process::abort();
    }

    /// Aborts when the armed point is `<step>.<what>`.
    pub(crate) fn step_point(step: Step, what: &str) {
        if let Some(CrashAt::Point(p)) = crash_at()
            && p.split_once('.').is_some_and(|(s, w)| s == step.key() && w == what)
        {
            abort(p);
        }
    }

    /// Aborts when the armed point is `name` (e.g. `log.sealed`).
    pub(crate) fn point(name: &str) {
        if let Some(CrashAt::Point(p)) = crash_at()
            && p == name
        {
            abort(p);
        }
    }

    /// The hot-store failpoint to arm on the thread that runs the erase.
    fn hot_failpoint() -> Option<(&'static str, u32)> {
        match crash_at() {
            Some(CrashAt::Hot(name, nth)) => Some((name, *nth)),
            _ => None,
        }
    }

    /// Arms the hot-store failpoint, if any, on the calling thread (the one
    /// about to run the erase; the hot store's points are per thread).
    pub(crate) fn arm_hot() {
        if let Some((point, nth)) = hot_failpoint() {
            strata_hot_store::failpoint::arm_nth(point, nth);
        }
    }

    /// Called on the erase's thread after it returned: aborts if the armed
    /// hot-store failpoint fired; disarms it otherwise.
    pub(crate) fn after_hot_erase() {
        if let Some((name, nth)) = hot_failpoint() {
            if strata_hot_store::failpoint::armed() {
                strata_hot_store::failpoint::disarm();
            } else if nth == 0 {
                abort(&format!("hot:{name}"));
            } else {
                abort(&format!("hot:{name}#{nth}"));
            }
        }
    }

    /// The cold-tier failpoint to arm before the erase (once per process: an
    /// armed point that the erase did not pass stays armed for the next one).
    fn cold_failpoint() -> Option<&'static str> {
        static ARMED: AtomicBool = AtomicBool::new(false);
        match crash_at() {
            Some(CrashAt::Cold(p)) if !ARMED.swap(true, Ordering::AcqRel) => Some(p.as_str()),
            _ => None,
        }
    }

    /// Arms the cold-tier failpoint, if any, on `cold` before the erase.
    pub(crate) fn arm_cold(cold: &strata_cold_tier::ColdTier) {
        if let Some(point) = cold_failpoint() {
            cold.arm_failpoint(point);
        }
    }

    /// Called when the cold erase failed: aborts if the armed cold-tier
    /// failpoint is what failed it.
    pub(crate) fn after_cold_erase(error: &strata_cold_tier::Error) {
        if let Some(CrashAt::Cold(p)) = crash_at()
            && matches!(error, strata_cold_tier::Error::Injected { point } if point == p)
        {
            abort(&format!("cold:{p}"));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn points_parse() {
            assert_eq!(parse(Some("hot"), None), Some(CrashAt::Point("hot.done".into())));
            assert_eq!(parse(None, Some("log.sealed")), Some(CrashAt::Point("log.sealed".into())));
            assert_eq!(parse(None, Some("hot:erase.after_write")), Some(CrashAt::Hot("erase.after_write", 0)));
            assert_eq!(parse(None, Some("hot:segment.before_fsync#2")), Some(CrashAt::Hot("segment.before_fsync", 2)));
            assert_eq!(parse(None, Some("cold:erase_after_series")), Some(CrashAt::Cold("erase_after_series".into())));
            assert_eq!(parse(Some("cold"), Some("verify.started")), Some(CrashAt::Point("verify.started".into())));
            assert_eq!(parse(None, None), None);
            assert_eq!(parse(Some(""), Some("")), None);
        }
    }
}

/// Without the `failpoints` feature: the same functions, doing nothing.
#[cfg(not(feature = "failpoints"))]
mod off {
    use crate::erasure::status::Step;

    /// No crash point without the feature.
    #[inline(always)]
    pub(crate) fn step_point(_step: Step, _what: &str) {}

    /// No crash point without the feature.
    #[inline(always)]
    pub(crate) fn point(_name: &str) {}

    /// No hot-store failpoint without the feature.
    #[inline(always)]
    pub(crate) fn arm_hot() {}

    /// No hot-store failpoint without the feature.
    #[inline(always)]
    pub(crate) fn after_hot_erase() {}

    /// No cold-tier failpoint without the feature.
    #[inline(always)]
    pub(crate) fn arm_cold(_cold: &strata_cold_tier::ColdTier) {}

    /// No cold-tier failpoint without the feature.
    #[inline(always)]
    pub(crate) fn after_cold_erase(_error: &strata_cold_tier::Error) {}
}
