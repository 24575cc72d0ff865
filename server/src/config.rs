//! The server configuration: defaults, then `--config strata.toml`, then
//! `STRATA_*` environment variables, then command-line flags.
//!
//! Environment variables map onto the TOML structure: strip `STRATA_`,
//! lower-case, and `__` separates nesting levels, so `STRATA_HTTP_ADDR`
//! sets `http_addr` and `STRATA_LOG__PARTITIONS=16` sets `[log] partitions`.
//! Values are read as TOML values when they parse as one (`16`, `true`,
//! `{ "tok" = "acme" }`) and as strings otherwise (`127.0.0.1:9470`, `5m`).
//! Variables whose first segment is not a top-level setting are ignored, so
//! unrelated `STRATA_*` variables (test fixtures, scripts) do no harm.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_hot_store::HotStoreConfig;
use strata_ingest::{IngestConfig, LogConfig};
use strata_query::QueryConfig;
use strata_schemas::ConfigError;

/// The default HTTP address: loopback only, port 9470.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9470";

/// Everything `strata serve` can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    pub http_addr: SocketAddr,
    /// Directory holding the ingest log and the hot store (created if missing).
    pub data_dir: PathBuf,
    /// The region this node serves: writes of tenants that do not store data
    /// here are refused (see `[federation]` for the other regions).
    pub region: String,
    /// Log output: `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// Log filter in `tracing` `EnvFilter` syntax (`RUST_LOG` overrides it).
    pub log_level: String,
    /// How long shutdown waits for in-flight requests before closing.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How often long-running work (log replay, Kafka rebuild, rolls,
    /// merges) logs a `task progress` line while it runs.
    #[serde(with = "humantime_serde")]
    pub progress_log_interval: Duration,
    /// Static API tokens (the tenant registry issues managed ones).
    pub auth: AuthConfig,
    /// Where the tenant registry lives.
    pub registry: RegistryConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// Per-tenant limits of tenants the registry holds no policy for (open
    /// mode's `default`, `[auth] tokens` tenants), and the limits a tenant
    /// created through the admin API starts with (the README's limits
    /// table lists the defaults). For a tenant without a policy, `hot_ttl`
    /// bounds only the oldest sample a write may carry: its samples are kept
    /// `[hot_store] default_hot_ttl`.
    pub limits: strata_schemas::TenantLimits,
    /// The write path.
    pub ingest: IngestConfig,
    /// The ingest log: embedded segment files (default) or Kafka.
    pub log: LogConfig,
    /// The hot store.
    pub hot_store: HotStoreConfig,
    /// Where hot data lives: the embedded hot store (default) or a ScyllaDB
    /// cluster (`[hot] kind = "scylla"`, `[hot.scylla]`).
    pub hot: crate::hot_tier::HotConfig,
    /// The PromQL engine.
    pub query: QueryConfig,
    /// The Iceberg cold tier (off by default).
    pub cold: strata_cold_tier::ColdTierConfig,
    /// The hot → cold roll-up (runs when the cold tier is on).
    pub compactor: strata_compactor::CompactorConfig,
    /// The other hot-store nodes of the region that queries fan out to.
    pub cluster: ClusterConfig,
    /// Connection limits and timeouts of the HTTP listener.
    pub http: HttpConfig,
    /// What `GET /metrics` shows.
    pub metrics: MetricsConfig,
    /// This region's jurisdiction, the other regions, and how regions
    /// authenticate to each other.
    pub federation: FederationConfig,
    /// The purge of delete requests: its bound and how often it runs.
    pub erasure: crate::erasure::ErasureConfig,
}

/// Regions and jurisdictions (`[federation]`): the region directory and the
/// inter-region credentials. A node with no other region configured serves
/// its own region only (no inter-region endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// The jurisdiction (legal border) this node's region lies in, e.g. `eu`.
    /// Empty: the region's name.
    pub jurisdiction: String,
    /// The service credential this region presents to the others (at least
    /// 16 characters; required when `regions` names another region). Set it
    /// with `STRATA_FEDERATION__CREDENTIAL` rather than in a file.
    pub credential: String,
    /// Time another region has to answer one request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The region directory: every region this one may talk to (its own may be
    /// listed too, to give its endpoint).
    pub regions: Vec<RegionConfig>,
    /// The append-only audit log of cross-region requests (default
    /// `<data_dir>/audit`).
    pub audit_dir: Option<PathBuf>,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            jurisdiction: String::new(),
            credential: String::new(),
            timeout: Duration::from_secs(10),
            regions: Vec::new(),
            audit_dir: None,
        }
    }
}

/// One region of the directory (`[[federation.regions]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Region name, e.g. `eu-central`.
    pub name: String,
    /// Its jurisdiction, e.g. `eu`.
    pub jurisdiction: String,
    /// Base URL of its API, e.g. `https://eu-central.strata.example:9470`.
    pub endpoint: String,
    /// SHA-256 (hex) of the credential that region presents; a request from
    /// it with any other credential is refused (`printf %s "$CREDENTIAL" |
    /// sha256sum` prints it). Not needed for this node's own entry.
    #[serde(default)]
    pub credential_sha256: String,
}

impl ServerConfig {
    /// This node's jurisdiction.
    pub fn jurisdiction(&self) -> &str {
        if self.federation.jurisdiction.is_empty() { &self.region } else { &self.federation.jurisdiction }
    }

    /// The region directory: `[federation] regions`, with this node's own
    /// region added (endpoint: its HTTP address) when not listed.
    pub fn region_directory(&self) -> anyhow::Result<strata_schemas::RegionDirectory> {
        let mut entries: Vec<strata_schemas::RegionEntry> = self
            .federation
            .regions
            .iter()
            .map(|r| strata_schemas::RegionEntry {
                name: r.name.clone(),
                jurisdiction: r.jurisdiction.clone(),
                endpoint: r.endpoint.clone(),
            })
            .collect();
        if !entries.iter().any(|e| e.name == self.region) {
            entries.insert(
                0,
                strata_schemas::RegionEntry {
                    name: self.region.clone(),
                    jurisdiction: self.jurisdiction().to_owned(),
                    // The inter-region routes live on the admin listener when there is one.
                    endpoint: format!("{}://{}", self.admin_scheme(), self.http.admin_addr.unwrap_or(self.http_addr)),
                },
            );
        }
        strata_schemas::RegionDirectory::new(&self.region, entries).map_err(anyhow::Error::msg)
    }
}

/// Connection limits and timeouts of the HTTP listener (`[http]`): what a
/// client that opens connections and sends nothing, or sends very slowly,
/// can hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Most client connections open at once. At the cap, the connection that
    /// has been idle longest (no request in progress) is closed to make room;
    /// when none is idle, new connections wait in the listen backlog until one
    /// ends. Each connection is an open file: keep this well below the
    /// process's open-file limit (`ulimit -n`, often 1024), which the data
    /// files need too. Hitting the cap is logged (a warning, at most every 10 s).
    pub max_connections: usize,
    /// Time a client has to send a request's headers once its first byte
    /// arrived (slowloris); the connection is closed after it.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in progress that moves no byte for this
    /// long is closed: before its first request, between keep-alive
    /// requests, or while its client does not read a response.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Time a request's whole body may take to arrive, counted from the end of
    /// its headers; a slower body is refused (`408`) and the connection closed.
    /// 64 MiB (the default `ingest.max_body_bytes`) in 60 s needs ~9 Mbit/s.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Largest request head (request line and header fields, in bytes); a
    /// larger one is answered `431` naming this setting and the connection
    /// closed.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more are answered `431` naming
    /// this setting and the connection closed.
    pub max_headers: usize,
    /// PEM certificate chain (server certificate first): with `tls_key`, every
    /// listener serves HTTPS only. Unset: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// A second listener for `/admin/*` and `/internal/*` (e.g. on a private
    /// interface). When set, those routes are served there only and the main
    /// listener answers `404` for them; peers and other regions must then be
    /// given this address. Unset: one listener serves everything.
    pub admin_addr: Option<SocketAddr>,
    /// Whether the admin listener serves HTTPS too when `tls_cert` is set.
    /// `false`: plain HTTP there (e.g. a private interface); peers and other
    /// regions then reach it with `http://`.
    pub admin_tls: bool,
    /// PEM bundle of CA certificates this node trusts, besides the platform's
    /// roots, when it calls `https://` peers (`[cluster] peers`) and other
    /// regions (`[[federation.regions]] endpoint`): e.g. the private CA that
    /// signed every node's `tls_cert`. Unset: the platform's roots only. A
    /// file that cannot be read or holds no certificate stops startup.
    pub client_ca_cert: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            max_header_bytes: 64 << 10,
            max_headers: 100,
            tls_cert: None,
            tls_key: None,
            admin_addr: None,
            admin_tls: true,
            client_ca_cert: None,
        }
    }
}

/// `GET /metrics` (`[metrics]`): node-level series are always shown (no
/// token, for Prometheus scrapes); per-tenant series name every tenant id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Also show the per-tenant series (`strata_tenant_*`, labelled with
    /// the tenant id) to every caller. Off: only a request carrying `token`
    /// or the admin token (`Authorization: Bearer <token>`) sees them.
    pub per_tenant: bool,
    /// A token that shows the per-tenant series and grants nothing else, for
    /// the Prometheus that scrapes the node (at least 16 characters; empty: none).
    pub token: String,
}

/// Query fan-out across the nodes that split a region's Kafka partitions
/// (`[cluster]`). Each node answers `/internal/v1/select` from its own hot
/// store; a query merges the local answer with every peer's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Base URLs of the other nodes, e.g. `["http://10.0.0.2:9470"]`. Empty: no fan-out.
    pub peers: Vec<String>,
    /// Shared secret the nodes present to each other's `/internal/v1/select`
    /// (at least 16 characters; required when `peers` is set, and the
    /// endpoint is off without it).
    pub token: String,
    /// Time a peer has to answer one request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a query presenting a write token (`X-Strata-Read-After`)
    /// waits for the write to be applied before failing with 503.
    #[serde(with = "humantime_serde")]
    pub read_after_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            token: String::new(),
            timeout: Duration::from_secs(10),
            read_after_timeout: Duration::from_secs(10),
        }
    }
}

/// Token → tenant mapping. With no tokens, every request is the `default` tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `token = "tenant id"` pairs.
    pub tokens: BTreeMap<String, String>,
}

/// Tenant registry storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Database URL: empty for the SQLite file `<data_dir>/registry.db`, or
    /// `postgres://user:password@host/db` for a registry shared by a cluster.
    pub url: String,
}

/// The admin API (`/admin/v1`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The admin token. Empty: one is generated on first start and kept in
    /// `<data_dir>/admin.token` (mode 0600), which `strata admin` reads.
    pub token: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_addr: DEFAULT_HTTP_ADDR.parse().expect("valid default address"),
            data_dir: PathBuf::from("strata-data"),
            region: "local".to_owned(),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            shutdown_timeout: Duration::from_secs(30),
            progress_log_interval: crate::progress::REPORT_EVERY,
            auth: AuthConfig::default(),
            registry: RegistryConfig::default(),
            admin: AdminConfig::default(),
            limits: strata_schemas::TenantLimits::default(),
            ingest: IngestConfig::default(),
            log: LogConfig::default(),
            hot_store: HotStoreConfig::default(),
            hot: crate::hot_tier::HotConfig::default(),
            query: QueryConfig::default(),
            cold: strata_cold_tier::ColdTierConfig::default(),
            compactor: strata_compactor::CompactorConfig::default(),
            cluster: ClusterConfig::default(),
            federation: FederationConfig::default(),
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            erasure: crate::erasure::ErasureConfig::default(),
        }
    }
}

/// Command-line overrides (the highest layer).
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    /// `--http-addr`
    pub http_addr: Option<SocketAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
}

impl ServerConfig {
    /// Builds the configuration from all layers.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        cli: &CliOverrides,
    ) -> anyhow::Result<Self> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
            table = toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        }
        apply_env(&mut table, env)?;
        let mut config: ServerConfig =
            toml::Value::Table(table).try_into().context("invalid configuration (file or STRATA_* variables)")?;
        if let Some(addr) = cli.http_addr {
            config.http_addr = addr;
        }
        if let Some(dir) = &cli.data_dir {
            config.data_dir = dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// Fixes harmless values and rejects settings the server cannot run with,
    /// naming the key (`[cluster] token: must be at least 16 characters`),
    /// as every section's own `validate` does.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        // Each section's own rules.
        self.log.validate()?;
        self.ingest.validate()?;
        self.hot_store.validate()?;
        self.hot.validate()?;
        self.query.validate()?;
        self.cold.validate()?;
        self.compactor.validate()?;
        self.erasure.validate()?;
        self.limits.validate()?;
        for (token, tenant) in &self.auth.tokens {
            if token.len() < 8 {
                return Err(ConfigError::new(
                    "auth",
                    "tokens",
                    format!("the token of tenant {tenant:?} is shorter than 8 characters"),
                ));
            }
            strata_schemas::TenantId::new(tenant.as_str())
                .map_err(|e| ConfigError::invalid("auth", "tokens", tenant, e.to_string()))?;
        }
        if self.region.is_empty() {
            return Err(ConfigError::new("", "region", "must not be empty"));
        }
        if self.progress_log_interval < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "",
                "progress_log_interval",
                self.progress_log_interval,
                "must be at least 100ms",
            ));
        }
        if !self.cluster.token.is_empty() && self.cluster.token.len() < 16 {
            return Err(ConfigError::new("cluster", "token", "must be at least 16 characters"));
        }
        if !self.cluster.peers.is_empty() && self.cluster.token.is_empty() {
            return Err(ConfigError::new(
                "cluster",
                "token",
                "must be set when cluster.peers is: peers authenticate with the shared token",
            ));
        }
        for peer in &mut self.cluster.peers {
            if !peer.starts_with("http://") && !peer.starts_with("https://") {
                return Err(ConfigError::invalid("cluster", "peers", &*peer, "is not an http:// or https:// URL"));
            }
            while peer.ends_with('/') {
                peer.pop();
            }
        }
        if !self.metrics.token.is_empty() && self.metrics.token.len() < 16 {
            return Err(ConfigError::new("metrics", "token", "must be at least 16 characters"));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::invalid("http", "max_connections", 0, "must be at least 1"));
        }
        for (name, d) in [
            ("header_read_timeout", self.http.header_read_timeout),
            ("idle_timeout", self.http.idle_timeout),
            ("body_read_timeout", self.http.body_read_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid("http", name, d, "must be more than 0"));
            }
        }
        self.validate_http()?;
        if !self.admin.token.is_empty() && self.admin.token.len() < 16 {
            return Err(ConfigError::new("admin", "token", "must be at least 16 characters"));
        }
        self.validate_federation()
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        if h.max_header_bytes < 1024 {
            return Err(ConfigError::invalid("http", "max_header_bytes", h.max_header_bytes, "must be at least 1024"));
        }
        if h.max_headers == 0 {
            return Err(ConfigError::invalid("http", "max_headers", 0, "must be at least 1"));
        }
        match (&h.tls_cert, &h.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::new("http", "tls_key", "must be set when http.tls_cert is: HTTPS needs both"));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("http", "tls_cert", "must be set when http.tls_key is: HTTPS needs both"));
            }
            _ => {}
        }
        if let Some(ca) = &h.client_ca_cert {
            crate::outbound::load_ca("http.client_ca_cert", ca)
                .map_err(|e| ConfigError::new("http", "client_ca_cert", format!("{e:#}")))?;
        }
        if h.admin_addr == Some(self.http_addr) && self.http_addr.port() != 0 {
            return Err(ConfigError::invalid(
                "http",
                "admin_addr",
                self.http_addr,
                "is the same address as http_addr: the admin listener needs its own",
            ));
        }
        Ok(())
    }

    /// `https` when the main listener serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.http.tls_cert.is_some() { "https" } else { "http" }
    }

    /// `https` when the admin listener (or, without one, the main listener) serves TLS.
    pub fn admin_scheme(&self) -> &'static str {
        if self.http.admin_addr.is_some() && !self.http.admin_tls { "http" } else { self.scheme() }
    }

    fn validate_federation(&mut self) -> Result<(), ConfigError> {
        let jurisdiction = self.jurisdiction().to_owned();
        for r in &mut self.federation.regions {
            if !r.endpoint.starts_with("http://") && !r.endpoint.starts_with("https://") {
                return Err(ConfigError::new(
                    "federation",
                    "regions",
                    format!("endpoint {:?} of region {:?} is not an http:// or https:// URL", r.endpoint, r.name),
                ));
            }
            while r.endpoint.ends_with('/') {
                r.endpoint.pop();
            }
            if r.name == self.region {
                if r.jurisdiction != jurisdiction {
                    return Err(ConfigError::new(
                        "federation",
                        "regions",
                        format!(
                            "this node's region {:?} is listed in jurisdiction {:?}, but federation.jurisdiction is {:?}",
                            r.name, r.jurisdiction, jurisdiction
                        ),
                    ));
                }
            } else if r.credential_sha256.len() != 64 || !r.credential_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    "federation",
                    "regions",
                    format!(
                        "region {:?} needs credential_sha256, the SHA-256 (64 hex digits) of the credential it presents",
                        r.name
                    ),
                ));
            }
        }
        let others = self.federation.regions.iter().any(|r| r.name != self.region);
        if others && self.federation.credential.len() < 16 {
            return Err(ConfigError::new(
                "federation",
                "credential",
                "must be at least 16 characters when federation.regions names other regions",
            ));
        }
        self.region_directory().map_err(|e| ConfigError::new("federation", "regions", format!("{e:#}")))?;
        Ok(())
    }
}

/// Merges `STRATA_*` variables into the TOML table.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<()> {
    let known = match toml::Value::try_from(ServerConfig::default()) {
        Ok(toml::Value::Table(t)) => t.keys().cloned().collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("STRATA_")).collect();
    vars.sort();
    for (key, raw) in vars {
        let path: Vec<String> = key["STRATA_".len()..].split("__").map(str::to_ascii_lowercase).collect();
        if !path.first().is_some_and(|first| known.contains(first)) {
            continue;
        }
        let value = parse_env_value(&raw);
        set_path(table, &path, value).with_context(|| format!("environment variable {key}"))?;
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let Some((last, parents)) = path.split_last() else { return Ok(()) };
    let mut cur = table;
    for p in parents {
        let entry = cur.entry(p.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("{p} is not a section"),
        };
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// The default configuration as a commented TOML document (`strata config`).
pub fn default_toml() -> String {
    toml::to_string_pretty(&ServerConfig::default()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
