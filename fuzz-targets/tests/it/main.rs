//! The fuzz targets on the stable toolchain, in `cargo test` (so in CI):
//! every committed seed (`corpus/<target>/`) and regression input
//! (`regressions/<target>/`) is replayed, then a seeded mutation campaign
//! runs for `STRATA_FUZZ_SECONDS` (default 3) per target and prints its
//! executions. Coverage-guided fuzzing is `scripts/fuzz.sh` (nightly, libFuzzer).
#![allow(clippy::disallowed_methods)] // test code owns its runtimes and threads (clippy.toml)

mod campaign;
mod seeds;

use std::path::PathBuf;

/// The committed inputs of `target` under `dir` (`corpus` or `regressions`), sorted by name.
fn inputs(dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
    let Ok(entries) = std::fs::read_dir(&path) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| {
            let e = e.expect("listing committed fuzz inputs");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("reading a committed fuzz input"))
        })
        .filter(|(name, _)| !name.starts_with('.') && name != "README.md")
        .collect();
    out.sort();
    out
}

/// Replays the corpus and the regressions of `name`, then runs its campaign.
fn fuzz(name: &str) {
    let (_, target) = *strata_fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let corpus = inputs("corpus", name);
    assert!(!corpus.is_empty(), "fuzz-targets/corpus/{name}/ holds no seed input");
    let regressions = inputs("regressions", name);
    for (file, data) in corpus.iter().chain(&regressions) {
        campaign::run_one(name, target, data).unwrap_or_else(|msg| panic!("{name}: input {file}: {msg}"));
    }
    let seeds: Vec<Vec<u8>> = corpus.into_iter().chain(regressions.iter().cloned()).map(|(_, d)| d).collect();
    let report = campaign::campaign(name, target, &seeds, campaign::budget());
    println!(
        "fuzz {name}: {} inputs replayed ({} regressions), {} mutated executions in {:.1} s",
        seeds.len(),
        regressions.len(),
        report.executions,
        report.elapsed.as_secs_f64()
    );
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fuzz(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in strata_fuzz_targets::TARGETS {
                assert!(tested.contains(name), "fuzz target {name} has no test in tests/it/main.rs");
            }
        }
    };
}

fuzz_tests!(
    line_protocol,
    remote_write,
    otlp_protobuf,
    otlp_json,
    body_decoding,
    write_batch,
    hot_segment,
    hot_manifest,
    ingest_log,
    edge_queue,
    promql,
);
