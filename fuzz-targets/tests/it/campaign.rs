//! A seeded random-mutation campaign: no coverage feedback (that is
//! libFuzzer's job, nightly), but the same mutations a fuzzer starts with —
//! bit and byte flips, interesting values, truncation, insertion, deletion,
//! duplication and splicing of seed inputs — on every target, every CI run.
//!
//! Deterministic for a seed (`STRATA_FUZZ_SEED`, default a hash of the
//! target's name): the inputs tried are the same on every machine; only how
//! many of them fit in the time budget differs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use strata_fuzz_targets::Target;

/// Seconds per target: `STRATA_FUZZ_SECONDS`, default 3 (11 targets on CI's
/// two test threads: about 20 s).
pub(crate) fn budget() -> Duration {
    let secs = std::env::var("STRATA_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.0))
}

/// The longest input tried.
const MAX_LEN: usize = 64 << 10;

/// What a campaign did.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) executions: u64,
    pub(crate) elapsed: Duration,
}

/// Runs `target` on `data`; a panic becomes `Err` with its message.
pub(crate) fn run_one(name: &str, target: Target, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| target(data))).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic with a non-string payload".to_owned());
        format!("{name} panicked: {msg}")
    })
}

/// Mutates seeds of `seeds` and runs `target` on each result until `budget` is spent.
///
/// Panics on the first crash, naming the file the input was saved to.
pub(crate) fn campaign(name: &str, target: Target, seeds: &[Vec<u8>], budget: Duration) -> Report {
    let seed = std::env::var("STRATA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fnv(name));
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut executions = 0u64;
    let mut input = Vec::new();
    while start.elapsed() < budget {
        let base = &seeds[rng.below(seeds.len())];
        input.clear();
        input.extend_from_slice(base);
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut input, seeds);
        }
        if let Err(msg) = run_one(name, target, &input) {
            let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("crash-{name}-{:016x}", fnv_bytes(&input)));
            std::fs::write(&path, &input).expect("saving the crashing input");
            panic!(
                "{msg}\non a mutated input (seed {seed}, execution {executions}) saved to {}: \
                 fix the decoder, then commit the file as fuzz-targets/regressions/{name}/<what it found>",
                path.display()
            );
        }
        executions += 1;
    }
    Report { executions, elapsed: start.elapsed() }
}

/// Values that sit on decoders' boundaries.
const INTERESTING: [u64; 12] =
    [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fff_ffff, 0xffff_ffff, i64::MAX as u64, u64::MAX];

/// Applies one random mutation to `input`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = input.len();
    match rng.below(11) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        2 if len > 0 => {
            let i = rng.below(len);
            input[i] = INTERESTING[rng.below(5)] as u8;
        }
        3 if len > 0 => {
            let i = rng.below(len);
            input[i] = input[i].wrapping_add(if rng.below(2) == 0 { 1 } else { 255 });
        }
        4 => input.truncate(rng.below(len + 1)),
        5 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        6 if len > 0 => {
            let from = rng.below(len);
            let to = from + 1 + rng.below((len - from).min(64));
            input.drain(from..to);
        }
        7 if len > 0 => {
            // Copy a chunk of the input somewhere else in it.
            let from = rng.below(len);
            let to = from + 1 + rng.below((len - from).min(64));
            let chunk = input[from..to].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, chunk);
        }
        8 => {
            // Splice: this input's head, another seed's tail.
            let other = &seeds[rng.below(seeds.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        9 if len > 0 => {
            // An interesting little-endian integer over 1, 2, 4 or 8 bytes.
            let width = [1, 2, 4, 8][rng.below(4)];
            let value = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
            let at = rng.below(len);
            let n = width.min(len - at);
            input[at..at + n].copy_from_slice(&value[..n]);
        }
        10 if len > 0 => {
            // Text inputs: a byte from the input's own alphabet somewhere else.
            let (a, b) = (rng.below(len), rng.below(len));
            input[a] = input[b];
        }
        _ => input.push(rng.next() as u8),
    }
    input.truncate(MAX_LEN);
}

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn fnv(s: &str) -> u64 {
    fnv_bytes(s.as_bytes())
}

fn fnv_bytes(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3))
}
