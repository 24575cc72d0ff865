//! Sovereign regions: the inter-region endpoints, their credentials, and the
//! query side of federation ([`strata_query::federation`]).
//!
//! ```text
//!  query at us-east ──► Engine (planner in strata_query::federation)
//!     │ raw-reachable (own jurisdiction, `raw` jurisdictions):  RawStore = local store
//!     │      + POST <region>/internal/v1/region/select     (raw series; data side checks policy = raw)
//!     │ `aggregates` jurisdictions:
//!     │      POST <region>/internal/v1/region/partials      (partial aggregations; data side re-checks
//!     │                                                       the expressions and the policy, evaluates
//!     │                                                       over its whole jurisdiction)
//!     │      POST <region>/internal/v1/region/count         (matching-series count, for the geo-fence)
//!     └ `none` jurisdictions: not asked; the answer says so in `infos`
//! ```
//!
//! **Raw reads.** A raw read is sent to every raw-readable region at once,
//! and their answers (binary, [`wire`]: label strings once per answer,
//! delta timestamps, f64 bits; JSON only for clients that do not ask for
//! it) are decoded on the runtime while the asking thread reads its own
//! store; then one sort-merge keeps one sample per (series, timestamp),
//! the local store's first. A data region's own read warnings (a cluster
//! peer of it that did not answer) travel back with its answer, for raw
//! reads, partials and counts alike.
//!
//! **Authentication.** A region presents its service credential
//! (`[federation] credential`) as `Authorization: Bearer <credential>` and
//! its name as `X-Strata-Region`. The receiver looks the name up in its own
//! region directory and compares SHA-256 of the credential with the
//! directory's `credential_sha256` in constant time: a region that is not
//! in the directory, or a wrong credential, is refused (401). Tenant tokens
//! are never accepted here. The asking region's jurisdiction is the one the
//! *receiver's* directory gives it, never a claim of the request.
//!
//! **The data region decides.** Every request names a tenant; the receiver
//! reads the tenant's policy from its own registry and allows a raw read
//! only when the tenant's export policy for the receiver's jurisdiction is
//! `raw` towards the asker's jurisdiction (within one jurisdiction: always),
//! partials and counts only when it is `raw` or `aggregates` and every
//! expression passes [`strata_query::federation::check_pushable`]. Refusals
//! are `403` with `errorType: "geo_fence"` and a message naming the rule.
//! Every error of these endpoints is a [`crate::error::Error`]
//! (`RegionUnauthenticated` 401, `GeoFence` 403, `AuditRecord` 503, a read
//! by its kind, a partial's query error by the query API's status): the
//! statuses are chosen in `server/src/error.rs`, not here.
//!
//! **Audit.** Both sides record every request in the node's audit log
//! ([`crate::audit`]); the data side fsyncs its record before the answer
//! leaves, and refuses the request if it cannot.
//!
//! **What a request carries out of its jurisdiction.** The query's text
//! stays where it was typed: requests to another jurisdiction carry
//! `sha256:<16 hex>` of it (the asker's audit record has text and hash, the
//! data side's the hash and, for partials, the expressions it evaluated).
//! A raw read from a region of another jurisdiction sends only the
//! metric-name matchers and filters the answer locally, so label values
//! typed here (a device id) do not leave; partial aggregations necessarily
//! carry their selectors to the data region.
//!
//! **Outages.** A jurisdiction's partials are asked of the tenant's data
//! regions there in policy order, the first that answers wins (it reads its
//! sibling regions raw, within the jurisdiction). Regions that do not answer
//! within `[federation] timeout` (and the query's deadline) become
//! Prometheus warnings, or errors with `partial_response=false`. The same
//! series stored in two regions (written to a sibling during an outage) is
//! merged per (series, timestamp), like the cluster merge.

use crate::audit::{AuditLog, Record};
use crate::cluster::WireMatcher;
use crate::error::Error;
use crate::registry::{constant_time_eq, unhex32};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_query::federation::{FederatedQuery, Federation, Grid, PartialSeries, RemoteError};
use strata_query::{Engine, QueryConfig, QueryOptions};
use strata_schemas::{
    ExportPolicy, Labels, Matcher, ReadError, ReadStore, RegionDirectory, SeriesData, TenantId, TenantPolicy,
    TenantResolver, TimeRange,
};

pub mod wire;

/// Most refusals of unauthenticated requests recorded in the audit log per
/// second; the others are counted in the next record.
pub const UNAUTHENTICATED_RECORDS_PER_SECOND: u32 = 20;

/// The header carrying the asking region's name.
pub const REGION_HEADER: &str = "x-strata-region";

/// Request body of `/internal/v1/region/select`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionSelect {
    /// Tenant id.
    pub tenant: String,
    /// The query this read is for (audit only).
    #[serde(default)]
    pub query: String,
    /// Label matchers.
    pub matchers: Vec<WireMatcher>,
    /// First ms.
    pub start: i64,
    /// Last ms.
    pub end: i64,
    /// Label sets only (metadata APIs).
    #[serde(default)]
    pub series_only: bool,
    /// The asking query's `partial_response`: when false, a cluster peer of
    /// the data region that does not answer fails the read (503) instead
    /// of being a warning.
    #[serde(default = "yes")]
    pub partial_response: bool,
}

fn yes() -> bool {
    true
}

/// Request body of `/internal/v1/region/partials`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionPartials {
    /// Tenant id.
    pub tenant: String,
    /// The query the partials are part of (audit only).
    #[serde(default)]
    pub query: String,
    /// Partial aggregations, PromQL text.
    pub exprs: Vec<String>,
    /// Steps to evaluate them at.
    pub grid: Grid,
    /// As [`RegionSelect::partial_response`].
    #[serde(default = "yes")]
    pub partial_response: bool,
}

/// One partial series on the wire: labels and per-step f64 bits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WirePartial {
    /// `[name, value]` pairs.
    pub labels: Vec<(String, String)>,
    /// f64 bits per step (`null`: no value).
    pub points: Vec<Option<u64>>,
}

/// Response body of `/internal/v1/region/partials`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartialsAnswer {
    /// One list per expression.
    pub results: Vec<Vec<WirePartial>>,
    /// Regions of the data jurisdiction that did not answer the data region.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Request body of `/internal/v1/region/count`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionCount {
    /// Tenant id.
    pub tenant: String,
    /// The query (audit only).
    #[serde(default)]
    pub query: String,
    /// Label matchers.
    pub matchers: Vec<WireMatcher>,
    /// First ms.
    pub start: i64,
    /// Last ms.
    pub end: i64,
    /// As [`RegionSelect::partial_response`].
    #[serde(default = "yes")]
    pub partial_response: bool,
}

/// Response body of `/internal/v1/region/count`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CountAnswer {
    /// Matching series in the data region's jurisdiction.
    pub count: u64,
    /// Regions of the data jurisdiction that did not answer.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Everything a node needs to talk to other regions.
pub struct Regions {
    directory: Arc<RegionDirectory>,
    /// SHA-256 of each other region's credential.
    credentials: BTreeMap<String, [u8; 32]>,
    credential: String,
    timeout: Duration,
    client: crate::outbound::Client,
    handle: tokio::runtime::Handle,
    resolver: Arc<dyn TenantResolver>,
    /// This region's own data (hot, cold, Kafka peers), without other regions.
    region_store: Arc<dyn ReadStore>,
    query_config: QueryConfig,
    audit: Arc<AuditLog>,
    /// Unauthenticated refusals recorded in the current second, and those
    /// not recorded since the last record (anyone who reaches the port can
    /// send them: recording each would let them fill the disk).
    unauthenticated: parking_lot::Mutex<(Instant, u32, u64)>,
}

impl std::fmt::Debug for Regions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regions").field("local", &self.directory.local()).finish_non_exhaustive()
    }
}

impl Regions {
    /// Builds the inter-region side of a node.
    pub fn new(
        config: &crate::config::ServerConfig,
        directory: Arc<RegionDirectory>,
        resolver: Arc<dyn TenantResolver>,
        region_store: Arc<dyn ReadStore>,
        audit: Arc<AuditLog>,
        handle: tokio::runtime::Handle,
    ) -> Self {
        let credentials = config
            .federation
            .regions
            .iter()
            .filter(|r| r.name != config.region)
            .filter_map(|r| Some((r.name.clone(), unhex32(&r.credential_sha256)?)))
            .collect();
        let timeout = config.federation.timeout;
        // HTTP or HTTPS endpoints, trusting `[http] client_ca_cert` (see `outbound`).
        let client = crate::outbound::client_or_log(&config.http, timeout, Duration::from_secs(1).min(timeout));
        Self {
            directory,
            credentials,
            credential: config.federation.credential.clone(),
            timeout,
            client,
            handle,
            resolver,
            region_store,
            query_config: config.query.clone(),
            audit,
            unauthenticated: parking_lot::Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Whether any other region is configured.
    pub fn federated(&self) -> bool {
        !self.credentials.is_empty()
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    fn local(&self) -> &str {
        self.directory.local()
    }

    fn jurisdiction(&self) -> &str {
        self.directory.local_jurisdiction()
    }

    /// Whether an unauthenticated refusal may be recorded now: `Some(n)` with
    /// the refusals left unrecorded since the last record, `None` past
    /// [`UNAUTHENTICATED_RECORDS_PER_SECOND`] in this second.
    fn admit_unauthenticated_record(&self) -> Option<u64> {
        let mut g = self.unauthenticated.lock();
        if g.0.elapsed() >= Duration::from_secs(1) {
            g.0 = Instant::now();
            g.1 = 0;
        }
        if g.1 >= UNAUTHENTICATED_RECORDS_PER_SECOND {
            g.2 += 1;
            return None;
        }
        g.1 += 1;
        Some(std::mem::take(&mut g.2))
    }

    /// The asking region of an inter-region request: `(name, jurisdiction)`.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(String, String), String> {
        let name = headers.get(REGION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| strata_schemas::tenant::parse_authorization(h).ok());
        let Some(expected) = self.credentials.get(name) else {
            return Err(format!(
                "region {name:?} is not in region {}'s directory: inter-region requests need a known region's \
                 credential (tenant tokens are not accepted here)",
                self.local()
            ));
        };
        let ok = presented.is_some_and(|p| constant_time_eq(&Sha256::digest(p.as_bytes()), expected));
        if !ok {
            return Err(format!(
                "the credential presented for region {name:?} is not the one region {} knows",
                self.local()
            ));
        }
        let jurisdiction = self.directory.jurisdiction_of(name).unwrap_or(name).to_owned();
        Ok((name.to_owned(), jurisdiction))
    }

    /// Posts `body` to `region`'s `path`; the answer and its size in bytes.
    fn post<B: Serialize, T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        region: &str,
        path: &str,
        body: &B,
        deadline: Instant,
    ) -> Result<(T, u64), RemoteError> {
        let task = self.send(region, path, body, deadline, None, |b: &[u8]| {
            serde_json::from_slice::<T>(b).map_err(|e| e.to_string())
        })?;
        self.wait(task)
    }

    /// Starts posting `body` to `region`'s `path` (asking for `accept`
    /// when given); the answer is decoded by `decode` on the runtime, so
    /// requests to several regions and their decoding run concurrently
    /// with the caller. [`Regions::wait`] for it.
    fn send<B: Serialize, T: Send + 'static>(
        &self,
        region: &str,
        path: &str,
        body: &B,
        deadline: Instant,
        accept: Option<&'static str>,
        decode: impl FnOnce(&[u8]) -> Result<T, String> + Send + 'static,
    ) -> Result<Pending<T>, RemoteError> {
        let Some(entry) = self.directory.get(region) else {
            return Err(RemoteError::Unreachable(format!("region {region} is not in the region directory")));
        };
        let url = format!("{}{path}", entry.endpoint);
        let left = deadline.saturating_duration_since(Instant::now()).min(self.timeout);
        if left.is_zero() {
            return Err(RemoteError::Unreachable(format!("region {region}: no time left in the query")));
        }
        let mut builder =
            self.client.post(&url).timeout(left).bearer_auth(&self.credential).header(REGION_HEADER, self.local());
        if let Some(accept) = accept {
            builder = builder.header(reqwest_tls::header::ACCEPT, accept);
        }
        let request = crate::outbound::json_body(builder, body);
        let region = region.to_owned();
        Ok(self.handle.spawn(async move {
            let resp = request
                .send()
                .await
                .map_err(|e| RemoteError::Unreachable(format!("region {region}: {}", chain(&e))))?;
            let status = resp.status();
            let bytes =
                resp.bytes().await.map_err(|e| RemoteError::Unreachable(format!("region {region}: {}", chain(&e))))?;
            if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
                let msg = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
                return Err(RemoteError::Refused(format!("region {region} refused: {msg}")));
            }
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                return Err(RemoteError::Unreachable(format!("region {region} answered {status}: {text}")));
            }
            let n = bytes.len() as u64;
            decode(&bytes)
                .map(|v| (v, n))
                .map_err(|e| RemoteError::Unreachable(format!("region {region}: invalid answer: {e}")))
        }))
    }

    /// The answer of a request [`Regions::send`] started.
    #[expect(
        clippy::disallowed_methods,
        reason = "the federated ReadStore is synchronous (the engine runs on blocking threads): region answers are awaited on the server's runtime handle, never from a runtime worker"
    )]
    fn wait<T>(&self, task: Pending<T>) -> Result<(T, u64), RemoteError> {
        self.handle
            .block_on(task)
            .unwrap_or_else(|e| Err(RemoteError::Unreachable(format!("request task failed: {e}"))))
    }

    /// Records a request this node sent.
    #[allow(clippy::too_many_arguments)]
    fn record_sent(
        &self,
        tenant: &TenantId,
        data_region: &str,
        query: &str,
        crossed: &str,
        result: &Result<(u64, u64), RemoteError>,
        rule: &str,
    ) {
        let (decision, rule) = match result {
            Ok(_) => ("allowed", rule.to_owned()),
            Err(RemoteError::Refused(m)) => ("refused", m.clone()),
            Err(RemoteError::Unreachable(m)) => ("unanswered", m.clone()),
        };
        let mut r = Record::new("sent", tenant.as_str(), self.local(), data_region, query, crossed, decision, rule);
        if let Ok((series, bytes)) = result {
            (r.series, r.bytes) = (*series, *bytes);
        }
        let _ = self.audit.must_append(&r);
    }

    /// The tenant's data regions grouped by jurisdiction, in policy order:
    /// `(jurisdiction, regions)`; regions missing from the directory are returned apart.
    fn jurisdictions_of(&self, policy: &TenantPolicy) -> (Vec<(String, Vec<String>)>, Vec<String>) {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut unknown = Vec::new();
        for region in policy.data_regions() {
            let Some(j) = self.directory.jurisdiction_of(region) else {
                unknown.push(region.to_owned());
                continue;
            };
            match out.iter_mut().find(|(x, _)| x == j) {
                Some((_, rs)) => rs.push(region.to_owned()),
                None => out.push((j.to_owned(), vec![region.to_owned()])),
            }
        }
        (out, unknown)
    }

    /// A store over this region and the other regions in `raw_regions`.
    fn raw_store(
        self: &Arc<Self>,
        tenant: &TenantId,
        query: &str,
        raw_regions: Vec<String>,
        partial_response: bool,
    ) -> Arc<RawStore> {
        Arc::new(RawStore {
            regions: Arc::clone(self),
            tenant: tenant.clone(),
            query: query.to_owned(),
            remote: raw_regions,
            partial_response,
            warnings: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// The tenant's other data regions in this node's jurisdiction.
    fn siblings(&self, policy: &TenantPolicy) -> Vec<String> {
        policy
            .data_regions()
            .into_iter()
            .filter(|r| *r != self.local() && self.directory.jurisdiction_of(r) == Some(self.jurisdiction()))
            .map(str::to_owned)
            .collect()
    }
}

/// A request to another region under way: its decoded answer and size in bytes.
type Pending<T> = tokio::task::JoinHandle<Result<(T, u64), RemoteError>>;

/// The federation a node's engine uses.
#[derive(Debug)]
pub struct RegionFederation(pub Arc<Regions>);

impl Federation for RegionFederation {
    fn begin(
        &self,
        tenant: &TenantId,
        query: &str,
        partial_response: bool,
    ) -> Result<Option<Box<dyn FederatedQuery>>, String> {
        let regions = &self.0;
        let Some(policy) = regions.resolver.policy(tenant) else { return Ok(None) };
        if !policy.queryable_from(regions.local()) {
            return Err(format!(
                "geo-fence: tenant {:?} may not be queried from region {} (its query regions: {})",
                tenant.as_str(),
                regions.local(),
                policy.allowed_query_regions.join(", ")
            ));
        }
        let (by_jurisdiction, unknown) = regions.jurisdictions_of(&policy);
        let mut raw = Vec::new();
        let mut aggregates = Vec::new();
        let mut excluded = Vec::new();
        let mut targets = BTreeMap::new();
        for (j, rs) in by_jurisdiction {
            match policy.readable(&j, regions.jurisdiction()) {
                ExportPolicy::Raw => raw.extend(rs.into_iter().filter(|r| r != regions.local())),
                ExportPolicy::Aggregates => {
                    aggregates.push(j.clone());
                    targets.insert(j, rs);
                }
                ExportPolicy::None => excluded.push(j),
            }
        }
        let warnings: Vec<String> = unknown
            .iter()
            .map(|r| format!("region {r} holds data of tenant {:?} but is not in this node's region directory; its data is missing from this result", tenant.as_str()))
            .collect();
        if raw.is_empty() && aggregates.is_empty() && excluded.is_empty() && warnings.is_empty() {
            return Ok(None);
        }
        let store = regions.raw_store(tenant, query, raw, partial_response);
        store.warnings.lock().extend(warnings);
        Ok(Some(Box::new(RegionQuery {
            regions: Arc::clone(regions),
            tenant: tenant.clone(),
            query: query.to_owned(),
            store,
            aggregates,
            excluded,
            targets,
            policy,
        })))
    }
}

/// One federated query at the asking node.
struct RegionQuery {
    regions: Arc<Regions>,
    tenant: TenantId,
    query: String,
    store: Arc<RawStore>,
    aggregates: Vec<String>,
    excluded: Vec<String>,
    /// Per aggregates jurisdiction: the tenant's data regions there, in order.
    targets: BTreeMap<String, Vec<String>>,
    policy: Arc<TenantPolicy>,
}

impl RegionQuery {
    /// Asks the regions of `jurisdiction` in order until one answers.
    fn ask<B: Serialize, T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        jurisdiction: &str,
        path: &str,
        body: &B,
        crossed: &str,
        deadline: Instant,
        size: impl Fn(&T) -> u64,
    ) -> Result<T, RemoteError> {
        let rule = format!("{jurisdiction}: {}", policy_name(self.policy.export_of(jurisdiction)));
        let mut failures = Vec::new();
        for region in self.targets.get(jurisdiction).into_iter().flatten() {
            let out = self.regions.post::<B, T>(region, path, body, deadline);
            let counted = out.as_ref().map(|(v, n)| (size(v), *n)).map_err(Clone::clone);
            self.regions.record_sent(&self.tenant, region, &self.query, crossed, &counted, &rule);
            match out {
                Ok((v, _)) => return Ok(v),
                Err(RemoteError::Refused(m)) => return Err(RemoteError::Refused(m)),
                Err(RemoteError::Unreachable(m)) => failures.push(m),
            }
        }
        Err(RemoteError::Unreachable(format!(
            "no region of jurisdiction {jurisdiction} answered ({})",
            if failures.is_empty() { "none configured".to_owned() } else { failures.join("; ") }
        )))
    }
}

impl FederatedQuery for RegionQuery {
    fn store(&self) -> &dyn ReadStore {
        self.store.as_ref()
    }

    fn aggregate_jurisdictions(&self) -> &[String] {
        &self.aggregates
    }

    fn excluded_jurisdictions(&self) -> &[String] {
        &self.excluded
    }

    fn partials(
        &self,
        jurisdiction: &str,
        exprs: &[String],
        grid: Grid,
        deadline: Instant,
    ) -> Result<Vec<Vec<PartialSeries>>, RemoteError> {
        let body = RegionPartials {
            tenant: self.tenant.to_string(),
            query: query_hash(&self.query),
            exprs: exprs.to_vec(),
            grid,
            partial_response: self.store.partial_response,
        };
        let answer: PartialsAnswer = self.ask(
            jurisdiction,
            "/internal/v1/region/partials",
            &body,
            "aggregate_series",
            deadline,
            |a: &PartialsAnswer| a.results.iter().map(|r| r.len() as u64).sum(),
        )?;
        if answer.results.len() != exprs.len() {
            return Err(RemoteError::Unreachable(format!(
                "jurisdiction {jurisdiction} answered {} partials for {} expressions",
                answer.results.len(),
                exprs.len()
            )));
        }
        self.store.warnings.lock().extend(answer.warnings);
        Ok(answer
            .results
            .into_iter()
            .map(|series| {
                series
                    .into_iter()
                    .map(|w| PartialSeries {
                        labels: Labels::from_pairs(w.labels),
                        points: w.points.into_iter().map(|p| p.map(f64::from_bits)).collect(),
                    })
                    .collect()
            })
            .collect())
    }

    fn count_series(
        &self,
        jurisdiction: &str,
        matchers: &[Matcher],
        range: TimeRange,
        deadline: Instant,
    ) -> Result<u64, RemoteError> {
        let body = RegionCount {
            tenant: self.tenant.to_string(),
            query: query_hash(&self.query),
            matchers: matchers.iter().map(WireMatcher::from_matcher).collect(),
            start: range.start,
            end: range.end,
            partial_response: self.store.partial_response,
        };
        let answer: CountAnswer =
            self.ask(jurisdiction, "/internal/v1/region/count", &body, "series_count", deadline, |_| 0)?;
        self.store.warnings.lock().extend(answer.warnings);
        Ok(answer.count)
    }

    fn warnings(&self) -> Vec<String> {
        self.store.warnings.lock().clone()
    }
}

/// This region's store merged with other regions' raw series (one sample
/// per (series, timestamp), this region's first).
#[derive(Debug)]
struct RawStore {
    regions: Arc<Regions>,
    tenant: TenantId,
    query: String,
    remote: Vec<String>,
    partial_response: bool,
    warnings: parking_lot::Mutex<Vec<String>>,
}

impl RawStore {
    fn check_tenant(&self, tenant: &TenantId) -> Result<(), ReadError> {
        if *tenant != self.tenant {
            return Err(ReadError::GeoFence(format!(
                "a federated read of tenant {} asked for tenant {tenant}",
                self.tenant
            )));
        }
        Ok(())
    }

    /// Sends the read to every remote region at once (they answer, and
    /// their answers are decoded, while this node reads its own store);
    /// [`RawStore::gather`] collects them.
    ///
    /// What leaves this node's jurisdiction is kept to what the read needs:
    /// a region of another jurisdiction gets only the metric-name matchers
    /// (label values typed in a query here, such as a device id, stay here;
    /// the answer is filtered locally by the full matchers) and the query's
    /// hash instead of its text. Answers come in the binary encoding of
    /// [`wire`].
    fn scatter(&self, matchers: &[Matcher], range: TimeRange, series_only: bool) -> Vec<RemoteRead> {
        let deadline = Instant::now() + self.regions.timeout;
        let mut out = Vec::new();
        for region in &self.remote {
            let jurisdiction = self.regions.directory.jurisdiction_of(region).unwrap_or(region).to_owned();
            let same = jurisdiction == self.regions.jurisdiction();
            let sent: Vec<Matcher> = if same {
                matchers.to_vec()
            } else {
                matchers.iter().filter(|m| m.name == strata_schemas::METRIC_NAME).cloned().collect()
            };
            let req = RegionSelect {
                tenant: self.tenant.to_string(),
                query: if same { self.query.clone() } else { query_hash(&self.query) },
                matchers: sent.iter().map(WireMatcher::from_matcher).collect(),
                start: range.start,
                end: range.end,
                series_only,
                partial_response: self.partial_response,
            };
            let filter = (sent.len() < matchers.len()).then(|| matchers.to_vec());
            let task = self.regions.send(
                region,
                "/internal/v1/region/select",
                &req,
                deadline,
                Some(wire::CONTENT_TYPE),
                move |bytes: &[u8]| {
                    let (mut series, warnings) = wire::decode(bytes)?;
                    if let Some(matchers) = filter {
                        series.retain(|s| matches_all(&matchers, &s.labels));
                    }
                    Ok((series, warnings))
                },
            );
            out.push(RemoteRead { region: region.clone(), jurisdiction, same, task });
        }
        out
    }

    /// The answers of [`RawStore::scatter`], in region order; unreachable
    /// regions become warnings (or an error).
    fn gather(&self, reads: Vec<RemoteRead>, series_only: bool) -> Result<Vec<Vec<SeriesData>>, ReadError> {
        let crossed = if series_only { "metadata" } else { "raw_series" };
        let mut out = Vec::new();
        let mut failed = None;
        for read in reads {
            let RemoteRead { region, jurisdiction, same, task } = read;
            let rule =
                if same { format!("same jurisdiction ({jurisdiction})") } else { format!("{jurisdiction}: raw") };
            let answer = task.and_then(|t| self.regions.wait(t));
            let counted = answer.as_ref().map(|((a, _), n)| (a.len() as u64, *n)).map_err(Clone::clone);
            self.regions.record_sent(&self.tenant, &region, &self.query, crossed, &counted, &rule);
            if failed.is_some() {
                continue;
            }
            match answer {
                Ok(((a, warnings), _)) => {
                    // What the data region's own read missed (a peer of its cluster).
                    let mut ws = self.warnings.lock();
                    for w in warnings {
                        let w = format!("region {region}: {w}");
                        if !ws.contains(&w) {
                            ws.push(w);
                        }
                    }
                    out.push(a)
                }
                Err(RemoteError::Refused(m)) => failed = Some(ReadError::GeoFence(m)),
                Err(RemoteError::Unreachable(m)) => {
                    if !self.partial_response {
                        failed = Some(ReadError::Unavailable(format!(
                            "region {region} ({jurisdiction}) did not answer and partial_response=false: {m}"
                        )));
                        continue;
                    }
                    tracing::warn!(region = %region, error = %m, "region did not answer; its data is missing from this result");
                    let w = format!(
                        "region {region} ({jurisdiction}) did not answer; its data is missing from this result: {m}"
                    );
                    let mut ws = self.warnings.lock();
                    if !ws.contains(&w) {
                        ws.push(w);
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// A raw read sent to one region.
struct RemoteRead {
    region: String,
    jurisdiction: String,
    same: bool,
    /// The series and the data region's warnings.
    task: Result<Pending<RawAnswer>, RemoteError>,
}

/// A decoded raw answer: the series and the data region's read warnings.
type RawAnswer = (Vec<SeriesData>, Vec<String>);

/// Whether a label set matches every matcher (a missing label is the empty value).
fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

/// What stands for a query's text in a request that leaves the jurisdiction.
fn query_hash(query: &str) -> String {
    let h = Sha256::digest(query.as_bytes());
    format!("sha256:{}", h.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
}

impl ReadStore for RawStore {
    fn select_each(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        if self.remote.is_empty() {
            self.check_tenant(tenant)?;
            return self.regions.region_store.select_each(tenant, matchers, range, each);
        }
        for s in self.select(tenant, matchers, range)? {
            each(s)?;
        }
        Ok(())
    }

    fn select_newest(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        if self.remote.is_empty() {
            self.check_tenant(tenant)?;
            return self.regions.region_store.select_newest(tenant, matchers, range, each);
        }
        self.select_each(tenant, matchers, range, &mut |s| each(strata_schemas::read::keep_newest(s)))
    }

    fn select_rollup(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
    ) -> Result<Option<strata_schemas::RollupData>, ReadError> {
        // Rollups cover this region's data only: with other raw regions the engine reads raw samples.
        if !self.remote.is_empty() {
            return Ok(None);
        }
        self.check_tenant(tenant)?;
        self.regions.region_store.select_rollup(tenant, matchers, width_ms, ends)
    }

    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        self.check_tenant(tenant)?;
        if self.remote.is_empty() {
            return self.regions.region_store.select(tenant, matchers, range);
        }
        let reads = self.scatter(matchers, range, false);
        let local = self.regions.region_store.select(tenant, matchers, range);
        // Every answer is awaited and audited, even when the local read failed.
        let remote = self.gather(reads, false);
        let mut sources = vec![local?];
        sources.extend(remote?);
        Ok(wire::merge(sources))
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.check_tenant(tenant)?;
        if self.remote.is_empty() {
            return self.regions.region_store.series(tenant, matchers, range);
        }
        let reads = self.scatter(matchers, range, true);
        let local = self.regions.region_store.series(tenant, matchers, range);
        let remote = self.gather(reads, true);
        let mut all = local?;
        for answer in remote? {
            all.extend(answer.into_iter().map(|s| s.labels));
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }
}

// ---------------------------------------------------------------- data side

/// State of the inter-region routes.
#[derive(Clone, Debug)]
pub struct RegionState {
    /// The node's regions.
    pub regions: Arc<Regions>,
    /// Guards `GET /admin/v1/audit`.
    pub admin_token: Arc<str>,
}

/// The inter-region endpoints and `GET /admin/v1/audit`.
pub fn router(state: RegionState) -> Router {
    Router::new()
        .route("/internal/v1/region/select", post(select))
        .route("/internal/v1/region/partials", post(partials))
        .route("/internal/v1/region/count", post(count))
        .route("/admin/v1/audit", get(audit))
        .with_state(state)
}

/// The refusal `msg` recorded in the audit log first: [`Error::GeoFence`],
/// or [`Error::AuditRecord`] when the record could not be made durable.
fn refused_audited(r: &Regions, rec: Record, msg: String) -> Error {
    if let Err(e) = r.audit.must_append(&rec) {
        return Error::AuditRecord(e);
    }
    Error::GeoFence(msg)
}

/// An admitted inter-region request: `(request, asking region, tenant, rule)`.
type Admitted<T> = (T, String, TenantId, String);

/// Authenticates the asker, parses the body, and checks the tenant's policy
/// for this region's data: `Ok((asker, policy, rule))` or the refusal (audited).
fn admit<T: serde::de::DeserializeOwned>(
    s: &RegionState,
    headers: &HeaderMap,
    body: &[u8],
    tenant_of: impl Fn(&T) -> (&str, &str),
    crossed: &str,
    needs: ExportPolicy,
) -> Result<Admitted<T>, Error> {
    let r = &s.regions;
    let (asker, asker_j) = match r.authenticate(headers) {
        Ok(a) => a,
        Err(msg) => {
            if let Some(suppressed) = r.admit_unauthenticated_record() {
                let claimed: String =
                    headers.get(REGION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(64).collect();
                let rule = if suppressed > 0 {
                    format!(
                        "{msg} ({suppressed} earlier unauthenticated requests not recorded: over {UNAUTHENTICATED_RECORDS_PER_SECOND}/s)"
                    )
                } else {
                    msg.clone()
                };
                let rec = Record::new("received", "", &claimed, r.local(), "", crossed, "refused", rule);
                let _ = r.audit.must_append(&rec);
                tracing::warn!(claimed_region = %claimed, suppressed, "inter-region request refused: {msg}");
            }
            return Err(Error::RegionUnauthenticated(msg));
        }
    };
    let req: T = serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid request: {e}")))?;
    let (tenant_text, query) = tenant_of(&req);
    let refuse = |msg: String| {
        tracing::warn!(tenant = tenant_text, asking_region = %asker, "inter-region request refused: {msg}");
        let rec = Record::new("received", tenant_text, &asker, r.local(), query, crossed, "refused", msg.clone());
        refused_audited(r, rec, msg)
    };
    let tenant = TenantId::new(tenant_text).map_err(|e| refuse(format!("invalid tenant id: {e}")))?;
    let Some(policy) = r.resolver.policy(&tenant) else {
        return Err(refuse(format!("tenant {tenant_text:?} is not known in region {}", r.local())));
    };
    let allowed = policy.readable(r.jurisdiction(), &asker_j);
    let rule = if asker_j == r.jurisdiction() {
        format!("same jurisdiction ({asker_j})")
    } else {
        format!("{}: {}", r.jurisdiction(), policy_name(allowed))
    };
    let ok = match needs {
        ExportPolicy::Raw => allowed == ExportPolicy::Raw,
        ExportPolicy::Aggregates => allowed != ExportPolicy::None,
        ExportPolicy::None => true,
    };
    if !ok {
        let what = if needs == ExportPolicy::Raw { "raw series" } else { "aggregates" };
        return Err(refuse(format!(
            "geo-fence: tenant {tenant_text:?} lets {} leave jurisdiction {} for jurisdiction {asker_j} (rule {rule}); \
             region {asker} asked for {what}",
            match allowed {
                ExportPolicy::Raw => "raw data",
                ExportPolicy::Aggregates => "only aggregates",
                ExportPolicy::None => "nothing",
            },
            r.jurisdiction()
        )));
    }
    Ok((req, asker, tenant, rule))
}

fn policy_name(p: ExportPolicy) -> &'static str {
    match p {
        ExportPolicy::Raw => "raw",
        ExportPolicy::Aggregates => "aggregates",
        ExportPolicy::None => "none",
    }
}

/// Records an allowed answer before it leaves; a failed record refuses it
/// ([`Error::AuditRecord`]).
#[allow(clippy::too_many_arguments)]
fn answer_audited(
    s: &RegionState,
    tenant: &TenantId,
    asker: &str,
    query: &str,
    crossed: &str,
    rule: String,
    series: u64,
    body: Vec<u8>,
    content_type: &'static str,
) -> Result<Response, Error> {
    let r = &s.regions;
    let mut rec = Record::new("received", tenant.as_str(), asker, r.local(), query, crossed, "allowed", rule);
    (rec.series, rec.bytes) = (series, body.len() as u64);
    r.audit.must_append(&rec).map_err(Error::AuditRecord)?;
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `POST /internal/v1/region/select`: this region's raw series (raw policy only).
async fn select(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let crossed = if serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v["series_only"] == true) {
        "metadata"
    } else {
        "raw_series"
    };
    let (req, asker, tenant, rule) = admit::<RegionSelect>(
        &s,
        &headers,
        &body,
        |r| (r.tenant.as_str(), r.query.as_str()),
        crossed,
        ExportPolicy::Raw,
    )?;
    let store = Arc::clone(&s.regions.region_store);
    let binary = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == wire::CONTENT_TYPE));
    let out = tokio::task::spawn_blocking(move || {
        if binary {
            return answer_binary(store.as_ref(), &req).map(|(n, b)| (n, b, wire::CONTENT_TYPE, req));
        }
        let all = Arc::new(|_: &TenantId, _: &Labels| true) as crate::cluster::Ownership;
        let peer = crate::cluster::PeerSelect {
            tenant: req.tenant.clone(),
            matchers: req.matchers.clone(),
            start: req.start,
            end: req.end,
            series_only: req.series_only,
        };
        crate::cluster::answer(store.as_ref(), &all, &peer)
            .and_then(|a| {
                let n = a.series.len() as u64;
                serde_json::to_vec(&a).map(|b| (n, b, "application/json", req)).map_err(|e| e.to_string())
            })
            .map_err(Error::BadRequest)
    })
    .await
    .map_err(Error::task("inter-region select"))?;
    let (n, bytes, content_type, req) = out?;
    answer_audited(&s, &tenant, &asker, &req.query, crossed, rule, n, bytes, content_type)
}

/// A raw select answered in the binary encoding ([`wire`]): `(series, bytes)`.
/// A read this region cannot complete answers by the read error's kind (a
/// cluster peer of it that does not answer, when the asker's
/// `partial_response` is false: 503).
fn answer_binary(store: &dyn ReadStore, req: &RegionSelect) -> Result<(u64, Vec<u8>), Error> {
    let tenant = TenantId::new(req.tenant.as_str()).map_err(|e| Error::BadRequest(e.to_string()))?;
    let matchers =
        req.matchers.iter().map(WireMatcher::to_matcher).collect::<Result<Vec<_>, _>>().map_err(Error::BadRequest)?;
    let range = TimeRange::new(req.start, req.end);
    // A cluster peer of this region that did not answer is a warning for the asker.
    let (series, warnings) = strata_schemas::read_warnings::collect_with(req.partial_response, || {
        if req.series_only {
            let labels = store.series(&tenant, &matchers, range)?;
            Ok(labels.into_iter().map(|labels| SeriesData { labels, samples: Vec::new() }).collect())
        } else {
            store.select(&tenant, &matchers, range)
        }
    });
    let series: Vec<SeriesData> =
        series.map_err(|source: ReadError| Error::ReadSeries { context: "reading this region's series", source })?;
    Ok((series.len() as u64, wire::encode(&series, &warnings)))
}

/// An engine over this region's jurisdiction (this region plus the tenant's
/// sibling data regions, raw), for the data side of partials and counts.
fn jurisdiction_store(s: &RegionState, tenant: &TenantId, query: &str, partial_response: bool) -> Arc<RawStore> {
    let r = &s.regions;
    let siblings = r.resolver.policy(tenant).map(|p| r.siblings(&p)).unwrap_or_default();
    r.raw_store(tenant, query, siblings, partial_response)
}

/// `POST /internal/v1/region/partials`: partial aggregations over this jurisdiction.
async fn partials(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let (req, asker, tenant, rule) = admit::<RegionPartials>(
        &s,
        &headers,
        &body,
        |r| (r.tenant.as_str(), r.query.as_str()),
        "aggregate_series",
        ExportPolicy::Aggregates,
    )?;
    // The data region decides what leaves: every expression must be a pushable aggregation.
    for e in &req.exprs {
        if let Err(why) = strata_query::federation::check_pushable(e) {
            let msg = format!("geo-fence: {e:?} is not an aggregation region {} may answer: {why}", s.regions.local());
            let rec = Record::new(
                "received",
                tenant.as_str(),
                &asker,
                s.regions.local(),
                &req.query,
                "aggregate_series",
                "refused",
                msg.clone(),
            );
            return Err(refused_audited(&s.regions, rec, msg));
        }
    }
    let store = jurisdiction_store(&s, &tenant, &req.query, req.partial_response);
    let engine = Engine::new(Arc::clone(&store) as Arc<dyn ReadStore>, s.regions.query_config.clone())
        .with_policies(Arc::clone(&s.regions.resolver));
    let (t, exprs, grid, partial_response) = (tenant.clone(), req.exprs.clone(), req.grid, req.partial_response);
    let local = s.regions.local().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        // Warnings of this region's own reads (a cluster peer that did not answer) go back too.
        let opts = QueryOptions { partial_response, ..QueryOptions::default() };
        let (results, raised) = strata_schemas::read_warnings::collect_with(partial_response, || {
            engine.evaluate_partials(&t, &exprs, grid, &opts)
        });
        let results = results?;
        let wire: Vec<Vec<WirePartial>> = results
            .into_iter()
            .map(|series| {
                series
                    .into_iter()
                    .map(|p| WirePartial {
                        labels: p.labels.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect(),
                        points: p.points.iter().map(|x| x.map(f64::to_bits)).collect(),
                    })
                    .collect()
            })
            .collect();
        let n = wire.iter().map(|r| r.len() as u64).sum::<u64>();
        let mut warnings = store.warnings.lock().clone();
        warnings.extend(raised.into_iter().map(|w| format!("region {}: {w}", local)));
        let answer = PartialsAnswer { results: wire, warnings };
        Ok::<_, strata_query::QueryError>((n, serde_json::to_vec(&answer).unwrap_or_default()))
    })
    .await
    .map_err(Error::task("inter-region partials"))?;
    let (n, bytes) = out?;
    // The asker's query arrives as its hash; the record also shows what was evaluated here.
    let what = format!("{} {}", req.query, req.exprs.join(" ; "));
    answer_audited(&s, &tenant, &asker, &what, "aggregate_series", rule, n, bytes, "application/json")
}

/// `POST /internal/v1/region/count`: how many series match (a count may cross under `aggregates`).
async fn count(State(s): State<RegionState>, headers: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let (req, asker, tenant, rule) = admit::<RegionCount>(
        &s,
        &headers,
        &body,
        |r| (r.tenant.as_str(), r.query.as_str()),
        "series_count",
        ExportPolicy::Aggregates,
    )?;
    let matchers =
        req.matchers.iter().map(WireMatcher::to_matcher).collect::<Result<Vec<_>, _>>().map_err(Error::BadRequest)?;
    let store = jurisdiction_store(&s, &tenant, &req.query, req.partial_response);
    let (t, range, partial_response) = (tenant.clone(), TimeRange::new(req.start, req.end), req.partial_response);
    let local = s.regions.local().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let (n, raised) =
            strata_schemas::read_warnings::collect_with(partial_response, || store.series(&t, &matchers, range));
        let mut warnings = store.warnings.lock().clone();
        warnings.extend(raised.into_iter().map(|w| format!("region {local}: {w}")));
        let n = n.map_err(|source| Error::ReadSeries { context: "counting this jurisdiction's series", source })?;
        let answer = CountAnswer { count: n.len() as u64, warnings };
        Ok::<_, Error>(serde_json::to_vec(&answer).unwrap_or_default())
    })
    .await
    .map_err(Error::task("inter-region count"))?;
    answer_audited(&s, &tenant, &asker, &req.query, "series_count", rule, 0, out?, "application/json")
}

/// `GET /admin/v1/audit?tenant=&region=&decision=&side=&since_ms=&limit=` (admin token).
async fn audit(
    State(s): State<RegionState>,
    headers: HeaderMap,
    axum::extract::Query(filter): axum::extract::Query<crate::audit::Filter>,
) -> Result<Response, Error> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| strata_schemas::tenant::parse_authorization(h).ok());
    if presented.is_none_or(|p| !crate::auth::token_eq(p.as_bytes(), s.admin_token.as_bytes())) {
        return Err(Error::Unauthenticated(
            "the audit log needs the admin token (Authorization: Bearer <admin token>)".to_owned(),
        ));
    }
    let audit = Arc::clone(&s.regions.audit);
    let records = tokio::task::spawn_blocking(move || audit.list(&filter))
        .await
        .map_err(Error::task("audit log read"))?
        .map_err(|source| Error::ReadAudit { log: "inter-region", source })?;
    Ok(axum::Json(serde_json::json!({"status": "success", "data": records})).into_response())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Hex SHA-256 of a credential, what `credential_sha256` holds.
pub fn credential_sha256(credential: &str) -> String {
    Sha256::digest(credential.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_hashes_round_trip_through_hex() {
        let h = credential_sha256("a-region-credential-1234");
        assert_eq!(h.len(), 64);
        assert_eq!(unhex32(&h).unwrap().to_vec(), Sha256::digest(b"a-region-credential-1234").to_vec());
        assert!(unhex32("zz").is_none());
    }
}
