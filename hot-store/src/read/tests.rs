use super::*;
use crate::config::HotStoreConfig;
use strata_schemas::{BatchSeries, WriteBatch};

fn meta(ordinal: u32) -> BlockMeta {
    BlockMeta { ordinal, count: 1, min_ts: 0, max_ts: 0, offset: u64::from(ordinal) * 10, len: 10 }
}

#[test]
fn block_cursor_finds_exactly_the_present_refs_in_ascending_order() {
    let blocks: Vec<(SeriesRef, BlockMeta)> = (0..200u32).map(|i| (i * 3, meta(i))).collect();
    let mut cur = BlockCursor { blocks: &blocks, pos: 0 };
    for r in 0..700u32 {
        let want = (r % 3 == 0 && r < 600).then_some(r / 3);
        assert_eq!(cur.seek(r).map(|b| b.ordinal), want, "ref {r}");
    }
    let mut sparse = BlockCursor { blocks: &blocks, pos: 0 };
    assert_eq!(sparse.seek(3).map(|b| b.ordinal), Some(1));
    assert_eq!(sparse.seek(450).map(|b| b.ordinal), Some(150));
    assert_eq!(sparse.seek(451).map(|b| b.ordinal), None);
    assert_eq!(sparse.seek(597).map(|b| b.ordinal), Some(199));
    assert!(sparse.seek(1000).is_none());
}

fn write(store: &HotStore, tenant: &TenantId, offset: u64, devices: usize, ts: &[i64], scale: f64) {
    let series = (0..devices)
        .flat_map(|d| {
            ["a", "b", "c"].into_iter().map(move |m| {
                let labels = Labels::from_pairs([("__name__", m.to_owned()), ("device", format!("d{d:05}"))]);
                (labels, d)
            })
        })
        .map(|(labels, d)| BatchSeries {
            id: strata_schemas::series_id(tenant, &labels),
            device_hash: d as u64,
            labels,
            samples: ts.iter().map(|&t| Sample::new(t, t as f64 * scale + d as f64)).collect(),
        })
        .collect();
    store.apply(0, offset, &WriteBatch { tenant: tenant.clone(), series, origin: None }).unwrap();
}

/// Thousands of series over two segments and the memtable: the batched,
/// coalesced and parallel read gives what one series at a time does.
#[test]
fn batched_select_equals_series_by_series_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap();
    let tenant = TenantId::new("t").unwrap();
    let devices = 3000;
    write(&store, &tenant, 0, devices, &[1_000, 2_000, 3_000, 4_000], 1.0);
    store.flush().unwrap();
    write(&store, &tenant, 1, devices, &[3_000, 5_000], 2.0);
    store.flush().unwrap();
    write(&store, &tenant, 2, devices / 2, &[4_000, 6_000], 3.0);
    let range = TimeRange::new(2_000, 5_500);
    let matchers = [Matcher::equal("__name__", "b")];
    let all = store.select(&tenant, &matchers, range).unwrap();
    assert_eq!(all.len(), devices);
    assert!(all.windows(2).all(|w| w[0].labels < w[1].labels));
    for s in all.iter().step_by(97) {
        let device = s.labels.get("device").unwrap();
        let one = store.select(&tenant, &[Matcher::equal("__name__", "b"), Matcher::equal("device", device)], range);
        assert_eq!(one.unwrap(), vec![s.clone()]);
    }
    let d7 = all.iter().find(|s| s.labels.get("device") == Some("d00007")).unwrap();
    let got: Vec<(i64, f64)> = d7.samples.iter().map(|s| (s.ts, s.value)).collect();
    assert_eq!(got, vec![(2_000, 2_007.0), (3_000, 6_007.0), (4_000, 12_007.0), (5_000, 10_007.0)]);
}
