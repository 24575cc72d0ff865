//! The agent's clocks: a hybrid logical clock that never goes backwards
//! (persisted across restarts), the skew of the gateway's wall clock against
//! the server's, and the time given to samples that come without one.
//!
//! **HLC.** Every send ticks the clock and carries the result as
//! `X-Strata-Agent-Hlc`; every answer's `X-Strata-Hlc` (the server's clock)
//! is folded in (`strata_schemas::hlc`). So the agent's batches are ordered
//! after everything the server had seen when it answered the previous one,
//! whatever the gateway's wall clock does. To never go backwards across a
//! restart (or a wall clock stepped back while the agent was down) without an
//! fsync per tick, the clock file holds a *ceiling*: every timestamp handed
//! out has a physical part below it; when a tick reaches it, the ceiling is
//! moved [`CEILING_STEP_MS`] ahead (tmp + fsync + rename + fsync dir) before
//! the timestamp is used; a restarted agent starts at the ceiling.
//!
//! **Skew.** Each answer gives a measurement: the server's wall clock
//! (`X-Strata-Time`; an older server: its HLC's physical part) minus the
//! midpoint of the request on the gateway's wall clock (answers slower than
//! a second are not used). A skew beyond `clock.max_skew` (default 10 s)
//! is logged (when it starts, every 10 minutes while it lasts, when it ends)
//! and shown in `/metrics` (`strata_edge_clock_skew_seconds`) and `/status`.
//! At start the forwarder sends an empty write to measure it at once.
//!
//! **Samples without a timestamp** get the gateway's wall clock, corrected
//! by the measured skew when it is beyond `clock.max_skew` and
//! `clock.correct_timestamps` is on (the default): a gateway ten minutes
//! fast still stores its readings at the right time. The last measured skew
//! is persisted, so this holds after a restart during an outage. Samples
//! that carry their own timestamp are never changed.
//!
//! **Steps.** A wall clock reading more than a second below the previous
//! one is a step back: logged, counted (`strata_edge_clock_steps_back_total`);
//! the HLC does not follow it.
//!
//! ```text
//! clock file (<data_dir>/clock), little-endian, 36 bytes:
//!   "STEDGCLK" version:u16(1) flags:u16(bit 0: skew measured) ceiling_ms:i64 skew_ms:i64
//!   reserved:u32(0) crc32(previous 32 bytes):u32
//! ```
//!
//! For tests and drills, `STRATA_EDGE_TEST_CLOCK_OFFSET_FILE` names a file
//! holding a number of milliseconds added to the wall clock (re-read every
//! 100 ms), so a test can run the agent ten minutes fast or step its clock
//! back without touching the host's clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_schemas::{Fold, Hlc, HlcTimestamp};

use crate::error::{Error, Result};

/// How far the persisted ceiling is moved ahead of the clock at a time.
pub const CEILING_STEP_MS: i64 = 2_000;
/// How far ahead of the gateway's wall clock a server clock may be and still
/// be folded in (a server a day ahead is a broken server, not a slow gateway).
const MAX_SERVER_AHEAD_MS: i64 = 24 * 3600 * 1000;
/// The environment variable naming a clock offset file (tests, drills).
pub const TEST_OFFSET_ENV: &str = "STRATA_EDGE_TEST_CLOCK_OFFSET_FILE";
const MAGIC: &[u8; 8] = b"STEDGCLK";
const VERSION: u16 = 1;
const FILE_LEN: usize = 36;

/// Clock settings (`[clock]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// A skew of the gateway's clock against the server's beyond this is
    /// reported (log line, metric) and corrected for samples without a timestamp.
    #[serde(with = "humantime_serde")]
    pub max_skew: Duration,
    /// Give samples without a timestamp the server-aligned time when the
    /// skew is beyond `max_skew` (off: the gateway's own clock, as it is).
    pub correct_timestamps: bool,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self { max_skew: Duration::from_secs(10), correct_timestamps: true }
    }
}

#[derive(Debug)]
struct State {
    hlc: Hlc,
    /// Every timestamp handed out is below this (persisted).
    ceiling_ms: i64,
    /// Last measured skew (server − gateway, ms), and the value persisted.
    skew_ms: Option<i64>,
    persisted_skew_ms: Option<i64>,
    /// Whether the skew is beyond `max_skew`, and when that was last logged.
    skewed_since_log: Option<std::time::Instant>,
    /// The highest wall clock reading so far (step detection).
    last_wall_ms: i64,
}

/// The agent's clock (see the module doc).
#[derive(Debug)]
pub struct Clock {
    path: PathBuf,
    config: ClockConfig,
    state: Mutex<State>,
    offset_ms: Arc<AtomicI64>,
    /// Wall clock steps back seen.
    pub steps_back: AtomicU64,
    /// Skew measurements taken.
    pub measurements: AtomicU64,
}

/// What `/status` shows of the clock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClockStatus {
    /// The HLC's last value (`<physical ms>.<logical>`).
    pub hlc: String,
    /// The gateway's wall clock now (ms since the epoch).
    pub wall_ms: i64,
    /// Server minus gateway clock (ms), once measured.
    pub skew_ms: Option<i64>,
    /// Whether the skew is beyond `clock.max_skew`.
    pub skewed: bool,
    /// Wall clock steps back seen since start.
    pub steps_back: u64,
}

impl Clock {
    /// Opens (or creates) `<data_dir>/clock`: the HLC starts at the persisted ceiling.
    pub fn open(data_dir: &Path, config: ClockConfig) -> Result<Clock> {
        let path = data_dir.join("clock");
        let offset_ms = Arc::new(AtomicI64::new(0));
        if let Some(file) = std::env::var_os(TEST_OFFSET_ENV) {
            watch_offset(PathBuf::from(file), Arc::clone(&offset_ms));
        }
        let (ceiling_ms, skew_ms) = match std::fs::read(&path) {
            Ok(bytes) => decode(&bytes).map_err(|why| Error::Config(format!("{}: {why}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, None),
            Err(e) => return Err(Error::Read { path, source: e }),
        };
        let clock = Clock {
            path,
            config,
            state: Mutex::new(State {
                hlc: Hlc::starting_at(HlcTimestamp::new(ceiling_ms, 0)),
                ceiling_ms,
                skew_ms,
                persisted_skew_ms: skew_ms,
                skewed_since_log: None,
                last_wall_ms: i64::MIN,
            }),
            offset_ms,
            steps_back: AtomicU64::new(0),
            measurements: AtomicU64::new(0),
        };
        {
            let mut s = clock.lock();
            let first = clock.wall_ms_locked(&mut s);
            let t = s.hlc.tick(first);
            clock.ensure_ceiling(&mut s, t)?;
        }
        Ok(clock)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The gateway's wall clock (ms since the epoch).
    pub fn wall_ms(&self) -> i64 {
        let mut s = self.lock();
        self.wall_ms_locked(&mut s)
    }

    fn wall_ms_locked(&self, s: &mut State) -> i64 {
        let now = strata_schemas::time::now_millis().saturating_add(self.offset_ms.load(Ordering::Relaxed));
        if s.last_wall_ms != i64::MIN && now < s.last_wall_ms - 1_000 {
            self.steps_back.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stepped_back_s = (s.last_wall_ms - now) as f64 / 1000.0,
                "the gateway's wall clock stepped back; the agent's logical clock does not follow it"
            );
        }
        if s.last_wall_ms == i64::MIN || now < s.last_wall_ms - 1_000 || now > s.last_wall_ms {
            s.last_wall_ms = now;
        }
        now
    }

    /// A send event: the timestamp a batch carries.
    pub fn tick(&self) -> Result<HlcTimestamp> {
        let mut s = self.lock();
        let now = self.wall_ms_locked(&mut s);
        let t = s.hlc.tick(now);
        self.ensure_ceiling(&mut s, t)?;
        Ok(t)
    }

    /// The HLC's last value.
    pub fn last(&self) -> HlcTimestamp {
        self.lock().hlc.last()
    }

    /// Folds a server's answer in: its clock `server` and wall clock
    /// `server_ms` (none: the clock's physical part), the request sent at
    /// `sent_ms` and answered at `received_ms` (gateway wall clock).
    pub fn observe_server(
        &self,
        server: HlcTimestamp,
        server_ms: Option<i64>,
        sent_ms: i64,
        received_ms: i64,
    ) -> Result<()> {
        let mut s = self.lock();
        let now = self.wall_ms_locked(&mut s);
        if let Fold::Folded(t) = s.hlc.fold(server, now, MAX_SERVER_AHEAD_MS) {
            self.ensure_ceiling(&mut s, t)?;
        }
        if received_ms.saturating_sub(sent_ms) > 1_000 || received_ms < sent_ms {
            return Ok(()); // too slow (or a step in between) to measure by
        }
        let skew = server_ms.unwrap_or(server.physical_ms) - (sent_ms + (received_ms - sent_ms) / 2);
        self.measurements.fetch_add(1, Ordering::Relaxed);
        s.skew_ms = Some(skew);
        let max = i64::try_from(self.config.max_skew.as_millis()).unwrap_or(i64::MAX);
        if skew.abs() > max {
            let due = s.skewed_since_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(600));
            if due {
                tracing::warn!(
                    skew_s = skew as f64 / 1000.0,
                    max_skew_s = max as f64 / 1000.0,
                    correcting = self.config.correct_timestamps,
                    "the gateway's clock is off from the server's (skew = server - gateway); samples without a \
                     timestamp get the server-aligned time when correcting"
                );
                s.skewed_since_log = Some(std::time::Instant::now());
            }
        } else if s.skewed_since_log.take().is_some() {
            tracing::info!(skew_s = skew as f64 / 1000.0, "the gateway's clock agrees with the server's again");
        }
        if s.persisted_skew_ms.is_none_or(|p| (p - skew).abs() > 1_000) {
            s.persisted_skew_ms = Some(skew);
            let ceiling = s.ceiling_ms;
            self.persist(ceiling, Some(skew))?;
        }
        Ok(())
    }

    /// The time (ns since the epoch) given to a sample without a timestamp.
    pub fn sample_time_ns(&self) -> i64 {
        let s_wall = {
            let mut s = self.lock();
            let _ = self.wall_ms_locked(&mut s);
            self.correction_ms(&s)
        };
        strata_schemas::time::now_nanos()
            .saturating_add(self.offset_ms.load(Ordering::Relaxed).saturating_mul(1_000_000))
            .saturating_add(s_wall.saturating_mul(1_000_000))
    }

    fn correction_ms(&self, s: &State) -> i64 {
        let max = i64::try_from(self.config.max_skew.as_millis()).unwrap_or(i64::MAX);
        match s.skew_ms {
            Some(skew) if self.config.correct_timestamps && skew.abs() > max => skew,
            _ => 0,
        }
    }

    /// What `/status` and `/metrics` show.
    pub fn status(&self) -> ClockStatus {
        let mut s = self.lock();
        let wall_ms = self.wall_ms_locked(&mut s);
        let max = i64::try_from(self.config.max_skew.as_millis()).unwrap_or(i64::MAX);
        ClockStatus {
            hlc: s.hlc.last().to_string(),
            wall_ms,
            skew_ms: s.skew_ms,
            skewed: s.skew_ms.is_some_and(|k| k.abs() > max),
            steps_back: self.steps_back.load(Ordering::Relaxed),
        }
    }

    fn ensure_ceiling(&self, s: &mut State, t: HlcTimestamp) -> Result<()> {
        if t.physical_ms < s.ceiling_ms {
            return Ok(());
        }
        let ceiling = t.physical_ms.saturating_add(CEILING_STEP_MS);
        self.persist(ceiling, s.persisted_skew_ms)?;
        s.ceiling_ms = ceiling;
        Ok(())
    }

    fn persist(&self, ceiling_ms: i64, skew_ms: Option<i64>) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        let werr = |source| Error::Write { path: self.path.clone(), source };
        let bytes = encode(ceiling_ms, skew_ms);
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(werr)
    }
}

/// The clock file's bytes.
fn encode(ceiling_ms: i64, skew_ms: Option<i64>) -> [u8; FILE_LEN] {
    let mut out = [0u8; FILE_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..10].copy_from_slice(&VERSION.to_le_bytes());
    out[10..12].copy_from_slice(&u16::from(skew_ms.is_some()).to_le_bytes());
    out[12..20].copy_from_slice(&ceiling_ms.to_le_bytes());
    out[20..28].copy_from_slice(&skew_ms.unwrap_or(0).to_le_bytes());
    let crc = crc32fast::hash(&out[..32]);
    out[32..36].copy_from_slice(&crc.to_le_bytes());
    out
}

/// `(ceiling_ms, skew_ms)` from the clock file's bytes.
fn decode(b: &[u8]) -> std::result::Result<(i64, Option<i64>), String> {
    let b: &[u8; FILE_LEN] =
        b.try_into().map_err(|_| format!("clock file has {} bytes, {FILE_LEN} expected", b.len()))?;
    if &b[..8] != MAGIC {
        return Err("not a strata-edge clock file (wrong magic)".to_owned());
    }
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (stored, actual) = (word(32), crc32fast::hash(&b[..32]));
    if stored != actual {
        return Err(format!(
            "clock file checksum {stored:#010x} != {actual:#010x}: the file is damaged; the agent cannot know how far \
             its clock went (remove the file only if the gateway's clock is known to be right)"
        ));
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != VERSION {
        return Err(format!("clock file version {version}; this build reads version {VERSION}"));
    }
    let long = |at: usize| i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let skew = (u16::from_le_bytes([b[10], b[11]]) & 1 == 1).then(|| long(20));
    Ok((long(12), skew))
}

/// Re-reads the offset file every 100 ms (tests and drills).
fn watch_offset(file: PathBuf, offset: Arc<AtomicI64>) {
    let read = move || {
        if let Some(v) = std::fs::read_to_string(&file).ok().and_then(|t| t.trim().parse::<i64>().ok()) {
            offset.store(v, Ordering::Relaxed);
        }
    };
    read();
    let _ = std::thread::Builder::new().name("test-clock".to_owned()).spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            read();
        }
    });
    tracing::warn!("{TEST_OFFSET_ENV} is set: the wall clock is offset by the file's value (tests and drills only)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_file_round_trips_and_refuses_damage() {
        assert_eq!(decode(&encode(1_764_700_000_000, Some(-600_000))).unwrap(), (1_764_700_000_000, Some(-600_000)));
        assert_eq!(decode(&encode(5, None)).unwrap(), (5, None));
        let mut b = encode(5, None);
        b[13] ^= 1;
        assert!(decode(&b).unwrap_err().contains("checksum"));
        assert!(decode(&b[..20]).unwrap_err().contains("36 expected"));
    }

    /// Frozen layout: a change to the clock file must bump its version.
    #[test]
    fn clock_file_fixture() {
        let b = encode(0x0102_0304_0506_0708, Some(-2));
        assert_eq!(&b[..12], b"STEDGCLK\x01\x00\x01\x00");
        assert_eq!(&b[12..20], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[20..28], &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), crc32fast::hash(&b[..32]));
    }

    #[test]
    fn never_goes_backwards_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let c = Clock::open(dir.path(), ClockConfig::default()).unwrap();
            // The server is a minute ahead: folded in.
            let now = c.wall_ms();
            c.observe_server(HlcTimestamp::new(now + 60_000, 5), None, now, now).unwrap();
            c.tick().unwrap()
        };
        assert!(first > HlcTimestamp::new(strata_schemas::time::now_millis() + 59_000, 5));
        let c = Clock::open(dir.path(), ClockConfig::default()).unwrap();
        let again = c.tick().unwrap();
        assert!(again > first, "{again} after a restart, {first} before");
        assert_eq!(c.status().skew_ms.map(|s| (s - 60_000).abs() < 100), Some(true), "the skew is kept");
    }

    #[test]
    fn corrects_samples_without_a_timestamp_only_beyond_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let c = Clock::open(dir.path(), ClockConfig::default()).unwrap();
        let now = c.wall_ms();
        c.observe_server(HlcTimestamp::new(now + 3_000, 0), None, now, now).unwrap();
        let t = c.sample_time_ns() / 1_000_000;
        assert!((t - strata_schemas::time::now_millis()).abs() < 1_000, "3 s is within max_skew: not corrected");
        let now = c.wall_ms();
        c.observe_server(HlcTimestamp::new(now - 600_000, 0), None, now, now).unwrap();
        assert!(c.status().skewed);
        let t = c.sample_time_ns() / 1_000_000;
        assert!((t - (strata_schemas::time::now_millis() - 600_000)).abs() < 1_000, "10 min fast: corrected");
        let other = tempfile::tempdir().unwrap();
        let slow =
            Clock::open(other.path(), ClockConfig { correct_timestamps: false, ..ClockConfig::default() }).unwrap();
        let now = slow.wall_ms();
        slow.observe_server(HlcTimestamp::new(now - 600_000, 0), None, now, now).unwrap();
        assert!((slow.sample_time_ns() / 1_000_000 - strata_schemas::time::now_millis()).abs() < 1_000);
    }
}
