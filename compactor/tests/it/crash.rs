//! Crash at every compactor step, then restart: every sample exactly once
//! across hot and cold, before and after the retry; plus a property test.

use proptest::prelude::*;
use strata_compactor::{Error, FAILPOINTS};
use strata_schemas::{ReadStore, TimeRange};

use crate::util::{BASE, BUCKET_MS, Env, tenant};

fn fill(env: &mut Env) {
    for b in 0..3 {
        let t0 = BASE + b * BUCKET_MS;
        env.write("acme", "temp", "d1", &[(t0 + 1, 20.5), (t0 + 1000, 21.0), (t0 + BUCKET_MS - 1, 21.5)]);
        env.write("acme", "hum", "d2", &[(t0 + 7, 40.0 + b as f64)]);
        env.write("beta.io", "temp", "x", &[(t0 + 5, -1.0)]);
    }
    env.hot.flush().unwrap();
}

/// `now` at which the first two buckets are sealed (the third is not).
const NOW: i64 = BASE + 2 * BUCKET_MS + 10;

#[test]
fn rolls_sealed_buckets_and_serves_them_from_cold_after_hot_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open(dir.path());
    fill(&mut env);
    let out = env.rt.block_on(env.compactor.roll_once(NOW)).unwrap();
    assert_eq!(out.buckets, 4, "2 buckets × 2 tenants");
    assert_eq!(out.samples, 2 * 4 + 2);
    assert_eq!(env.hot.cold_watermark(&tenant("acme")), Some(BASE + 2 * BUCKET_MS));
    assert_eq!(env.cold_rows("acme"), (8, true));
    env.assert_exactly_once("after roll");
    // Hot drops the rolled buckets (TTL 1 ms): cold now serves them alone.
    let expired = env.hot.expire(NOW).unwrap();
    assert!(expired.segments > 0, "{expired:?}");
    env.assert_exactly_once("after hot expiry");
    // A second pass finds nothing new.
    let again = env.rt.block_on(env.compactor.roll_once(NOW)).unwrap();
    assert_eq!(again.buckets, 0);
    // Cold read with a pinned device and metric prunes but stays exact.
    let m = [strata_schemas::Matcher::equal("__name__", "temp"), strata_schemas::Matcher::equal("device", "d1")];
    let got = env.cold_reader().select(&tenant("acme"), &m, TimeRange::new(BASE, BASE + BUCKET_MS - 1)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.len(), 3);
    let series = env.cold_reader().series(&tenant("acme"), &[], TimeRange::ALL).unwrap();
    assert_eq!(series.len(), 2);
}

#[test]
fn crash_at_every_step_keeps_each_sample_exactly_once() {
    for point in FAILPOINTS {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Env::open(dir.path());
        fill(&mut env);
        env.compactor.arm_failpoint(point);
        let err = env.rt.block_on(env.compactor.roll_once(NOW)).unwrap_err();
        assert!(matches!(err, Error::Injected { point: p } if p == point), "{point}: {err}");
        env.assert_exactly_once(&format!("{point}: right after the crash"));
        let env2 = env.reopen(dir.path());
        env2.assert_exactly_once(&format!("{point}: after restart"));
        let out = env2.rt.block_on(env2.compactor.roll_once(NOW)).unwrap();
        // Samples committed before the crash (they commit last, after the
        // series and rollups): the retry finds them and only moves the watermark.
        let expected_dupes = usize::from(point == "after_commit");
        assert_eq!(out.already_committed, expected_dupes, "{point}: {out:?}");
        env2.assert_exactly_once(&format!("{point}: after the retry"));
        assert_eq!(env2.cold_rows("acme"), (8, true), "{point}");
        assert_eq!(env2.cold_rows("beta.io"), (2, true), "{point}");
        env2.hot.expire(NOW).unwrap();
        env2.assert_exactly_once(&format!("{point}: after hot expiry"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Random writes over six buckets, flushes, compactor passes at advancing
    /// times, a crash at a random step of a random pass, restarts and hot
    /// expiry: exactly once throughout. Writes never target a bucket that is
    /// already sealed (later than the grace: see the crate README on late data).
    #[test]
    fn exactly_once_across_hot_and_cold(
        writes in prop::collection::vec((0usize..2, 0usize..3, 0i64..6 * BUCKET_MS, -100.0f64..100.0), 1..60),
        crash_at in prop::option::of((0usize..6, 0usize..FAILPOINTS.len())),
        steps in prop::collection::vec(0i64..2 * BUCKET_MS, 6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Env::open(dir.path());
        let mut now = BASE;
        for (i, chunk) in writes.chunks(10).enumerate() {
            let open_from = BASE + (now - BASE).div_euclid(BUCKET_MS) * BUCKET_MS;
            for &(t, d, ts, v) in chunk {
                let t = ["acme", "beta"][t];
                let dev = ["d0", "d1", "d2"][d];
                env.write(t, "temp", dev, &[((BASE + ts).max(open_from), v)]);
            }
            env.hot.flush().unwrap();
            now += steps[i % steps.len()];
            if let Some((pass, point)) = crash_at && pass == i {
                env.compactor.arm_failpoint(FAILPOINTS[point]);
            }
            let r = env.rt.block_on(env.compactor.roll_once(now));
            // A failpoint the pass never reached (nothing sealed yet) must not fire later.
            env.compactor.disarm_failpoints();
            env.assert_exactly_once("after a pass");
            if r.is_err() {
                env = env.reopen(dir.path());
                env.assert_exactly_once("after restart");
            }
            env.hot.expire(now).unwrap();
            env.assert_exactly_once("after expiry");
        }
        env.rt.block_on(env.compactor.roll_once(BASE + 20 * BUCKET_MS)).unwrap();
        env.assert_exactly_once("final");
        for t in ["acme", "beta"] {
            prop_assert!(env.cold_rows(t).1, "a source committed twice for {}", t);
        }
    }
}
