//! Crash-point injection for tests, compiled in only with the `failpoints`
//! cargo feature.
//!
//! Flush, compaction, erasure and manifest replacement call `hit` at the points a
//! crash is interesting. With the feature, a test arms one point with `arm`;
//! when the armed point is reached on the same thread, the operation fails
//! there with an I/O error, exactly as if the process had died at that
//! instant (nothing after the point runs). The test then drops the store and
//! reopens it. Not armed, a point costs one thread-local read.
//!
//! Without the feature (every build that does not compile this crate's or the
//! server's tests, e.g. `cargo build --release -p strata`) `hit` is an
//! always-inlined `Ok(())` and the arming API (`arm`, `arm_nth`, `armed`,
//! `disarm`) does not exist: the call sites stay as they are and cost nothing.
//! The crate's tests get the feature through its dev-dependency on itself
//! (`Cargo.toml`).
//!
//! Points: `segment.before_fsync`, `segment.before_rename`,
//! `manifest.before_fsync`, `manifest.before_rename`, `manifest.after_rename`,
//! `flush.after_segments`, `compact.after_write`, `compact.before_delete_inputs`,
//! `expire.before_delete`, `erase.after_memtable`, `erase.after_write`,
//! `erase.before_delete_input`.
//!
//! `arm_nth` fires at a later pass through a point (an erase passes
//! `segment.before_fsync` once for its flush and once per rewritten segment).

#[cfg(feature = "failpoints")]
pub(crate) use armed::hit;
#[cfg(feature = "failpoints")]
pub use armed::{arm, arm_nth, armed, disarm};

/// Without the `failpoints` feature: no point is ever armed.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &'static str) -> std::io::Result<()> {
    Ok(())
}

/// The arming API and the real `hit` (feature `failpoints`).
#[cfg(feature = "failpoints")]
mod armed {
    use std::cell::Cell;

    thread_local! {
        /// The armed point and how many passes through it to let go first.
        static ARMED: Cell<Option<(&'static str, u32)>> = const { Cell::new(None) };
    }

    /// Arms crash point `name` on the current thread (one shot).
    pub fn arm(name: &'static str) {
        arm_nth(name, 0);
    }

    /// Arms crash point `name` on the current thread to fire on its pass
    /// number `skip` (0-based; one shot).
    pub fn arm_nth(name: &'static str, skip: u32) {
        ARMED.with(|a| a.set(Some((name, skip))));
    }

    /// True while a point is armed and has not fired.
    pub fn armed() -> bool {
        ARMED.with(|a| a.get().is_some())
    }

    /// Disarms any armed point on the current thread.
    pub fn disarm() {
        ARMED.with(|a| a.set(None));
    }

    /// Fails with an I/O error if `name` is armed on this thread (and disarms it).
    pub(crate) fn hit(name: &'static str) -> std::io::Result<()> {
        ARMED.with(|a| match a.get() {
            Some((armed, 0)) if armed == name => {
                a.set(None);
                Err(std::io::Error::other(format!("failpoint {name}")))
            }
            Some((armed, skip)) if armed == name => {
                a.set(Some((armed, skip - 1)));
                Ok(())
            }
            _ => Ok(()),
        })
    }
}
