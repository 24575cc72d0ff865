//! Per-tenant ingestion rate limiting: a token bucket of samples per tenant.
//!
//! `ingestion_rate` refills the bucket (samples per second) up to
//! `ingestion_burst`. A write takes as many tokens as it carries samples, all
//! or nothing: a request the bucket cannot cover is refused with 429 and a
//! `Retry-After` saying when it could be, and nothing of it is stored. Each
//! tenant has its own bucket, so one tenant's flood never spends another's.
//!
//! A flooding client should not cost the node the work of reading and
//! parsing requests that will be refused anyway: after a refusal, the
//! tenant's next requests are refused *before their body is read* until the
//! bucket again holds as many tokens as the refused request needed
//! ([`RateLimiter::precheck`]).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;
use strata_schemas::{TenantId, TenantLimits};

/// Why a write was refused by the rate limiter.
#[derive(Debug, Clone, PartialEq)]
pub enum RateRefusal {
    /// The request is larger than the bucket can ever hold.
    LargerThanBurst {
        /// Samples in the request.
        samples: u64,
        /// `ingestion_burst`.
        burst: u64,
    },
    /// Refused before the body was read: the bucket does not yet hold what
    /// the tenant's last refused request needed.
    Exhausted {
        /// Tokens in the bucket now.
        tokens: u64,
        /// Samples of the last refused request.
        last_refused: u64,
        /// `ingestion_rate`.
        rate: f64,
        /// `ingestion_burst`.
        burst: u64,
        /// Seconds until the bucket holds `last_refused`.
        retry_after_secs: u64,
    },
    /// Not enough tokens now.
    Exceeded {
        /// Samples in the request.
        samples: u64,
        /// `ingestion_rate`.
        rate: f64,
        /// `ingestion_burst`.
        burst: u64,
        /// Seconds until the bucket holds enough.
        retry_after_secs: u64,
    },
}

impl std::fmt::Display for RateRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateRefusal::LargerThanBurst { samples, burst } => write!(
                f,
                "limit ingestion_burst exceeded: the request carries {samples} samples, the burst is {burst}; \
                 split it into smaller requests"
            ),
            RateRefusal::Exhausted { tokens, last_refused, rate, burst, retry_after_secs } => write!(
                f,
                "limit ingestion_rate exceeded: {rate} samples/s (burst {burst}); the tenant's bucket holds {tokens} \
                 samples, fewer than its last refused request of {last_refused}, so this request was refused \
                 unread; retry in {retry_after_secs} s"
            ),
            RateRefusal::Exceeded { samples, rate, burst, retry_after_secs } => write!(
                f,
                "limit ingestion_rate exceeded: {rate} samples/s (burst {burst}); this request of {samples} \
                 samples fits again in {retry_after_secs} s"
            ),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Samples of the last refused request; 0 after an admitted one.
    last_refused: u64,
}

impl Bucket {
    fn refill(&mut self, rate: f64, burst: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst as f64);
        self.at = now;
    }
}

/// Token buckets of all tenants.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    /// Before reading a request: refuses it when the tenant's last request
    /// was refused and the bucket has not refilled enough for one like it.
    pub fn precheck(&self, tenant: &TenantId, limits: &TenantLimits) -> Result<(), RateRefusal> {
        self.precheck_at(tenant, limits, Instant::now())
    }

    fn precheck_at(&self, tenant: &TenantId, limits: &TenantLimits, now: Instant) -> Result<(), RateRefusal> {
        let (rate, burst) = (limits.ingestion_rate, limits.ingestion_burst);
        let mut buckets = self.buckets.lock();
        let Some(b) = buckets.get_mut(tenant) else { return Ok(()) };
        if b.last_refused == 0 {
            return Ok(());
        }
        b.refill(rate, burst, now);
        let need = b.last_refused.min(burst) as f64;
        if b.tokens >= need {
            return Ok(());
        }
        Err(RateRefusal::Exhausted {
            tokens: b.tokens as u64,
            last_refused: b.last_refused,
            rate,
            burst,
            retry_after_secs: ((need - b.tokens) / rate).ceil().max(1.0) as u64,
        })
    }

    /// Takes `samples` tokens from `tenant`'s bucket or explains why not.
    pub fn admit(&self, tenant: &TenantId, limits: &TenantLimits, samples: u64) -> Result<(), RateRefusal> {
        self.admit_at(tenant, limits, samples, Instant::now())
    }

    fn admit_at(
        &self,
        tenant: &TenantId,
        limits: &TenantLimits,
        samples: u64,
        now: Instant,
    ) -> Result<(), RateRefusal> {
        let (rate, burst) = (limits.ingestion_rate, limits.ingestion_burst);
        if samples > burst {
            return Err(RateRefusal::LargerThanBurst { samples, burst });
        }
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.clone()).or_insert(Bucket { tokens: burst as f64, at: now, last_refused: 0 });
        b.refill(rate, burst, now);
        let need = samples as f64;
        if b.tokens >= need {
            b.tokens -= need;
            b.last_refused = 0;
            return Ok(());
        }
        b.last_refused = samples;
        let retry_after_secs = ((need - b.tokens) / rate).ceil().max(1.0) as u64;
        Err(RateRefusal::Exceeded { samples, rate, burst, retry_after_secs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(rate: f64, burst: u64) -> TenantLimits {
        TenantLimits { ingestion_rate: rate, ingestion_burst: burst, ..TenantLimits::default() }
    }

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let r = RateLimiter::default();
        let t = TenantId::new("a").unwrap();
        let l = limits(100.0, 1000);
        let t0 = Instant::now();
        assert!(r.admit_at(&t, &l, 1000, t0).is_ok());
        match r.admit_at(&t, &l, 300, t0) {
            Err(RateRefusal::Exceeded { retry_after_secs, .. }) => assert_eq!(retry_after_secs, 3),
            other => panic!("{other:?}"),
        }
        assert!(r.admit_at(&t, &l, 300, t0 + Duration::from_secs(3)).is_ok());
        let refusal = r.admit_at(&t, &l, 5000, t0).unwrap_err();
        assert!(refusal.to_string().starts_with("limit ingestion_burst exceeded"), "{refusal}");
    }

    #[test]
    fn tenants_have_separate_buckets() {
        let r = RateLimiter::default();
        let l = limits(1.0, 10);
        assert!(r.admit(&TenantId::new("a").unwrap(), &l, 10).is_ok());
        assert!(r.admit(&TenantId::new("a").unwrap(), &l, 10).is_err());
        assert!(r.admit(&TenantId::new("b").unwrap(), &l, 10).is_ok());
    }

    #[test]
    fn after_a_refusal_requests_are_refused_unread_until_the_bucket_refills() {
        let r = RateLimiter::default();
        let (t, other) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let l = limits(100.0, 1000);
        let t0 = Instant::now();
        assert!(r.precheck_at(&t, &l, t0).is_ok(), "no bucket yet");
        assert!(r.admit_at(&t, &l, 900, t0).is_ok());
        assert!(r.precheck_at(&t, &l, t0).is_ok(), "nothing refused yet");
        assert!(r.admit_at(&t, &l, 500, t0).is_err());
        match r.precheck_at(&t, &l, t0 + Duration::from_secs(1)) {
            Err(e @ RateRefusal::Exhausted { tokens: 200, last_refused: 500, retry_after_secs: 3, .. }) => {
                assert!(e.to_string().starts_with("limit ingestion_rate exceeded: 100 samples/s"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(r.precheck_at(&other, &l, t0).is_ok(), "another tenant is not affected");
        assert!(r.precheck_at(&t, &l, t0 + Duration::from_secs(4)).is_ok(), "refilled to 500");
        assert!(r.admit_at(&t, &l, 400, t0 + Duration::from_secs(4)).is_ok());
        assert!(r.admit_at(&t, &l, 50, t0 + Duration::from_secs(4)).is_ok());
        assert!(r.precheck_at(&t, &l, t0 + Duration::from_secs(4)).is_ok(), "an admitted request clears the mark");
    }
}
