//! A roll source that is not the store keeping the cold watermark (the shape
//! of the ScyllaDB tier: data in the cluster, watermark in the node's empty
//! embedded store): buckets roll once, the watermark moves in the embedded
//! store only, and the federated read over the source and cold equals the
//! model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_compactor::{Compactor, CompactorConfig, FederatedReadStore, RollSource};
use strata_hot_store::HotStore;
use strata_schemas::{Labels, ReadStore, TenantId, TimeRange};

use crate::util::{BASE, BUCKET_MS, Env, hot_config, tenant};

#[test]
fn buckets_of_another_source_roll_once_with_the_watermark_in_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open(dir.path());
    for b in 0..3 {
        env.write("acme", "t", "d1", &[(BASE + b * BUCKET_MS + 5, b as f64), (BASE + b * BUCKET_MS + 7, 1.5)]);
    }
    env.write("acme", "t", "d2", &[(BASE + 10, 2.0)]);
    env.hot.flush().unwrap();
    let marks = Arc::new(HotStore::open(&dir.path().join("marks"), hot_config()).unwrap());
    let compactor = Compactor::with_source(
        Arc::clone(&marks),
        Arc::clone(&env.hot) as Arc<dyn RollSource>,
        Arc::clone(&env.cold),
        CompactorConfig { grace: Some(Duration::ZERO), ..CompactorConfig::default() },
    );
    let now = BASE + 10 * BUCKET_MS;
    let out = env.rt.block_on(compactor.roll_once(now)).unwrap();
    assert_eq!((out.buckets, out.samples), (3, 7), "{out:?}");
    let acme = tenant("acme");
    assert_eq!(marks.cold_watermark(&acme), Some(BASE + 3 * BUCKET_MS));
    assert_eq!(env.hot.cold_watermark(&acme), None, "the source's manifest is not where the watermark lives");
    // The source still lists the buckets (it cannot know the watermark): not rolled again.
    let again = env.rt.block_on(compactor.roll_once(now)).unwrap();
    assert_eq!((again.buckets, again.samples), (0, 0), "{again:?}");
    assert_eq!(env.cold_rows("acme"), (7, true));

    let m = Arc::clone(&marks);
    let fed = FederatedReadStore::new(
        Arc::clone(&env.hot) as Arc<dyn ReadStore>,
        Arc::new(env.cold_reader()),
        Arc::new(move |t: &TenantId| m.cold_watermark(t)),
    );
    let got: BTreeMap<Labels, BTreeMap<i64, u64>> = fed
        .select(&acme, &[], TimeRange::ALL)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect();
    let want: BTreeMap<Labels, BTreeMap<i64, u64>> =
        env.model.iter().map(|((_, l), v)| (l.clone(), v.clone())).collect();
    assert_eq!(got, want);
    // Below the watermark the answer is the cold tier's alone.
    let cold = env.cold_reader().select(&acme, &[], TimeRange::new(i64::MIN, BASE + 3 * BUCKET_MS - 1)).unwrap();
    assert_eq!(cold.iter().map(|s| s.samples.len()).sum::<usize>(), 7);
}
