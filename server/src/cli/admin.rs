//! `strata admin …`: the admin API from the command line.
//!
//! Prints tables for people and, with `--json`, the API's JSON for scripts.
//! The admin token comes from `--admin-token`, `STRATA_ADMIN_TOKEN`, or the
//! `admin.token` file a node writes into its data dir (`--data-dir`).
#![expect(
    clippy::disallowed_methods,
    reason = "`strata admin` is a short-lived client process: it builds its own runtime and blocks on one request"
)]

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Options shared by every admin command.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of a Strata node.
    #[arg(long, default_value = "http://127.0.0.1:9470", env = "STRATA_URL")]
    pub url: String,
    /// Admin token (default: `STRATA_ADMIN_TOKEN`, else `<data-dir>/admin.token`).
    #[arg(long, env = "STRATA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Data dir of a local node, to read its generated admin token.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
    /// PEM file of the CA (or self-signed certificate) to trust for an
    /// `https://` URL, besides the system's roots.
    #[arg(long, env = "STRATA_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants.
    #[command(subcommand)]
    Tenants(TenantCommand),
    /// Set limits: `strata admin limits set acme ingestion_rate=5000 hot_ttl=7d`.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// API tokens.
    #[command(subcommand)]
    Tokens(TokenCommand),
    /// A tenant's usage.
    Usage {
        /// Tenant id.
        tenant: String,
    },
    /// Delete a tenant's samples matching selectors over a time range (hidden
    /// from every read at once, purged from every tier within `[erasure]
    /// purge_within`; `strata admin delete status <id>` shows progress).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Delete {
        /// `status <id>`: a request's progress (same as `delete-status <id>`).
        #[command(subcommand)]
        sub: Option<DeleteSub>,
        /// Tenant id.
        #[arg(required = true)]
        tenant: Option<String>,
        /// Series selector, e.g. '{device="d-17"}' (repeat for several).
        #[arg(long = "match", required = true)]
        selectors: Vec<String>,
        /// First millisecond (default: the beginning).
        #[arg(long)]
        start: Option<i64>,
        /// Last millisecond (default: now).
        #[arg(long)]
        end: Option<i64>,
    },
    /// A delete request's status.
    DeleteStatus {
        /// Request id (`del_…`).
        id: String,
    },
    /// The admin audit log: who did what through the admin API, oldest first (the newest `--limit`).
    Actions {
        /// Only actions on this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The audit log of cross-region requests, oldest first (the newest `--limit`).
    Audit {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only requests this region asked or answered.
        #[arg(long)]
        region: Option<String>,
        /// `allowed`, `refused` or `unanswered`.
        #[arg(long)]
        decision: Option<String>,
        /// `sent` (this node asked) or `received` (this node answered).
        #[arg(long)]
        side: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// `strata admin delete …`
#[derive(Debug, Subcommand)]
pub enum DeleteSub {
    /// A delete request's status: per tier, what was rewritten and removed; the verification.
    Status {
        /// Request id (`del_…`).
        id: String,
    },
}

/// `strata admin tenants …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List tenants.
    List,
    /// Show one tenant.
    Get {
        /// Tenant id.
        id: String,
    },
    /// Create a tenant.
    Create {
        /// Tenant id (`[A-Za-z0-9_.-]`, at most 64).
        id: String,
        /// Fields to set (boxed: they are most of the command's size).
        #[command(flatten)]
        fields: Box<TenantFieldArgs>,
    },
    /// Change a tenant.
    Update {
        /// Tenant id.
        id: String,
        /// Fields to set (boxed: they are most of the command's size).
        #[command(flatten)]
        fields: Box<TenantFieldArgs>,
    },
    /// Delete a tenant and revoke its tokens.
    Delete {
        /// Tenant id.
        id: String,
        /// What happens to its samples: `keep` (they stay until hot_ttl expires them).
        #[arg(long)]
        data: String,
    },
}

/// Tenant fields settable from the command line.
#[derive(Debug, Args)]
pub struct TenantFieldArgs {
    /// Name shown to people.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Home region (default: the first of `--data-regions`, else the node's region).
    #[arg(long)]
    pub home_region: Option<String>,
    /// Regions that may store the tenant's raw data, comma-separated (replaces the list).
    #[arg(long, value_delimiter = ',')]
    pub data_regions: Option<Vec<String>>,
    /// Regions allowed to query, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub query_regions: Option<Vec<String>>,
    /// What may leave a jurisdiction `--export` does not name: `none`, `aggregates` or `raw`.
    #[arg(long)]
    pub export_policy: Option<String>,
    /// What may leave one jurisdiction: `eu=aggregates` (`none`, `aggregates`
    /// or `raw`); repeat or comma-separate for several. Replaces the tenant's
    /// per-jurisdiction exports.
    #[arg(
        long = "export",
        value_name = "JURISDICTION=POLICY",
        value_delimiter = ',',
        conflicts_with = "clear_exports"
    )]
    pub exports: Vec<String>,
    /// Remove every per-jurisdiction export (`export_policy` then applies everywhere).
    #[arg(long)]
    pub clear_exports: bool,
    /// The label whose value pins a series to a jurisdiction (with `--residency`).
    #[arg(long, requires = "residency", conflicts_with = "clear_residency")]
    pub residency_label: Option<String>,
    /// Label value → jurisdiction: `de=eu,br=br` (repeatable; with `--residency-label`).
    /// Replaces the tenant's residency map.
    #[arg(long, value_name = "VALUE=JURISDICTION", value_delimiter = ',', requires = "residency_label")]
    pub residency: Vec<String>,
    /// Remove the residency label.
    #[arg(long)]
    pub clear_residency: bool,
}

/// `strata admin limits …`
#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Merge `name=value` limits into the tenant's limits.
    Set {
        /// Tenant id.
        tenant: String,
        /// `name=value` pairs (numbers, or durations like `7d`).
        #[arg(required = true)]
        limits: Vec<String>,
    },
}

/// `strata admin tokens …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token (printed once).
    Issue {
        /// Tenant id.
        tenant: String,
        /// `read`, `write`, `read_write` or `admin` (also deletes through the Prometheus API).
        #[arg(long, default_value = "read_write")]
        access: String,
        /// Free text (what uses the token).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List a tenant's tokens (never their secrets).
    List {
        /// Tenant id.
        tenant: String,
    },
    /// Revoke a token.
    Revoke {
        /// Tenant id.
        tenant: String,
        /// Token id (the part after `st_`).
        token_id: String,
    },
}

/// Runs an admin command; returns the text to print.
pub fn run(args: AdminArgs) -> anyhow::Result<String> {
    let token = match &args.admin_token {
        Some(t) => t.clone(),
        None => {
            let path = args.data_dir.join(crate::node::ADMIN_TOKEN_FILE);
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!("no admin token: pass --admin-token, set STRATA_ADMIN_TOKEN, or point --data-dir at the node's data dir ({} not readable)", path.display())
                })?
                .trim()
                .to_owned()
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client =
        Client { http: http_client(args.ca_cert.as_deref())?, base: args.url.trim_end_matches('/').to_owned(), token };
    let value = rt.block_on(execute(&client, &args.command))?;
    Ok(if args.json { serde_json::to_string_pretty(&value)? } else { render(&args.command, &value) })
}

/// The HTTP(S) client (reqwest 0.13 with rustls: the one object_store builds),
/// trusting `ca_cert` besides the system's roots.
fn http_client(ca_cert: Option<&std::path::Path>) -> anyhow::Result<reqwest_tls::Client> {
    let mut headers = reqwest_tls::header::HeaderMap::new();
    if let Ok(actor) = reqwest_tls::header::HeaderValue::from_str(&actor()) {
        headers.insert(crate::admin_audit::ACTOR_HEADER, actor);
    }
    let mut builder = reqwest_tls::Client::builder()
        .user_agent(concat!("strata-admin/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(300));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading --ca-cert {}", path.display()))?;
        let certs = reqwest_tls::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("--ca-cert {}: not a PEM certificate", path.display()))?;
        if certs.is_empty() {
            bail!("--ca-cert {}: no PEM CERTIFICATE block in the file", path.display());
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().context("building the HTTP client")
}

/// Who runs the command, for the node's admin audit log: `$USER@host`.
fn actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

struct Client {
    http: reqwest_tls::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(&self, method: reqwest_tls::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(serde_json::to_vec(&b)?);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if !status.is_success() {
            let msg = value.get("error").and_then(Value::as_str).map_or_else(|| value.to_string(), str::to_owned);
            bail!("{status}: {msg}");
        }
        Ok(value)
    }
}

fn tenant_body(id: Option<&str>, f: &TenantFieldArgs) -> anyhow::Result<Value> {
    let mut v = json!({});
    if let Some(id) = id {
        v["id"] = id.into();
    }
    if let Some(x) = &f.display_name {
        v["display_name"] = x.as_str().into();
    }
    if let Some(x) = &f.home_region {
        v["home_region"] = x.as_str().into();
    }
    if let Some(x) = &f.query_regions {
        v["allowed_query_regions"] = x.clone().into();
    }
    if let Some(x) = &f.data_regions {
        v["data_regions"] = x.clone().into();
    }
    if let Some(x) = &f.export_policy {
        v["export_policy"] = x.as_str().into();
    }
    if f.clear_exports {
        v["exports"] = json!({});
    } else if !f.exports.is_empty() {
        v["exports"] = pairs("--export", &f.exports)?;
    }
    if f.clear_residency {
        v["residency"] = Value::Null;
    } else if let Some(label) = &f.residency_label {
        v["residency"] = json!({ "label": label, "jurisdictions": pairs("--residency", &f.residency)? });
    }
    Ok(v)
}

/// `key=value` pairs to a JSON object of strings.
fn pairs(flag: &str, items: &[String]) -> anyhow::Result<Value> {
    let mut v = serde_json::Map::new();
    for p in items {
        let (k, val) = p.split_once('=').with_context(|| format!("{flag} {p:?} is not key=value"))?;
        v.insert(k.trim().to_owned(), Value::String(val.trim().to_owned()));
    }
    Ok(Value::Object(v))
}

/// `name=value` pairs to a JSON object (numbers stay numbers).
fn limits_body(pairs: &[String]) -> anyhow::Result<Value> {
    let mut v = serde_json::Map::new();
    for p in pairs {
        let (k, val) = p.split_once('=').with_context(|| format!("{p:?} is not name=value"))?;
        let parsed = val.parse::<f64>().ok().and_then(|n| {
            if n.fract() == 0.0 && n.abs() < 9e15 {
                Some(Value::from(n as i64))
            } else {
                serde_json::Number::from_f64(n).map(Value::Number)
            }
        });
        v.insert(k.to_owned(), parsed.unwrap_or_else(|| Value::String(val.to_owned())));
    }
    Ok(Value::Object(v))
}

async fn execute(c: &Client, cmd: &AdminCommand) -> anyhow::Result<Value> {
    use reqwest_tls::Method;
    match cmd {
        AdminCommand::Tenants(TenantCommand::List) => c.call(Method::GET, "/tenants", None).await,
        AdminCommand::Tenants(TenantCommand::Get { id }) => c.call(Method::GET, &format!("/tenants/{id}"), None).await,
        AdminCommand::Tenants(TenantCommand::Create { id, fields }) => {
            c.call(Method::POST, "/tenants", Some(tenant_body(Some(id), fields)?)).await
        }
        AdminCommand::Tenants(TenantCommand::Update { id, fields }) => {
            c.call(Method::PATCH, &format!("/tenants/{id}"), Some(tenant_body(None, fields)?)).await
        }
        AdminCommand::Tenants(TenantCommand::Delete { id, data }) => {
            c.call(Method::DELETE, &format!("/tenants/{id}?data={data}"), None).await
        }
        AdminCommand::Limits(LimitsCommand::Set { tenant, limits }) => {
            c.call(Method::PUT, &format!("/tenants/{tenant}/limits"), Some(limits_body(limits)?)).await
        }
        AdminCommand::Tokens(TokenCommand::Issue { tenant, access, description }) => {
            let body = json!({ "access": access, "description": description });
            c.call(Method::POST, &format!("/tenants/{tenant}/tokens"), Some(body)).await
        }
        AdminCommand::Tokens(TokenCommand::List { tenant }) => {
            c.call(Method::GET, &format!("/tenants/{tenant}/tokens"), None).await
        }
        AdminCommand::Tokens(TokenCommand::Revoke { tenant, token_id }) => {
            c.call(Method::DELETE, &format!("/tenants/{tenant}/tokens/{token_id}"), None).await?;
            Ok(json!({ "revoked": token_id }))
        }
        AdminCommand::Usage { tenant } => c.call(Method::GET, &format!("/tenants/{tenant}/usage"), None).await,
        AdminCommand::Delete { sub: Some(DeleteSub::Status { id }), .. } | AdminCommand::DeleteStatus { id } => {
            anyhow::ensure!(
                id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "request id {id:?} is not del_…"
            );
            c.call(Method::GET, &format!("/deletes/{id}"), None).await
        }
        AdminCommand::Delete { sub: None, tenant, selectors, start, end } => {
            let tenant = tenant.as_deref().context("a tenant id is needed")?;
            let body = json!({ "match": selectors, "start": start, "end": end });
            c.call(Method::POST, &format!("/tenants/{tenant}/delete"), Some(body)).await
        }
        AdminCommand::Actions { tenant, limit } => {
            let mut query = format!("/actions?limit={limit}");
            if let Some(t) = tenant {
                query.push_str(&format!("&tenant={}", tenant_id_arg(t)?));
            }
            Ok(c.call(Method::GET, &query, None).await?["data"].take())
        }
        AdminCommand::Audit { tenant, region, decision, side, limit } => {
            let mut query = format!("/audit?limit={limit}");
            for (k, v) in [("tenant", tenant), ("region", region), ("decision", decision), ("side", side)] {
                if let Some(v) = v {
                    anyhow::ensure!(
                        v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                        "--{k} {v:?}: only letters, digits, '-', '_' and '.'"
                    );
                    query.push_str(&format!("&{k}={v}"));
                }
            }
            Ok(c.call(Method::GET, &query, None).await?["data"].take())
        }
    }
}

/// Formats rows as an aligned text table.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn tenant_rows(v: &Value) -> Vec<Vec<String>> {
    let list = match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let joined = |x: &Value| x.as_array().map(|a| a.iter().map(s).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let entries =
        |x: &Value| x.as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(","));
    list.iter()
        .map(|t| {
            // The default export policy, then the per-jurisdiction ones: `none eu=aggregates`.
            let mut export = s(&t["export_policy"]);
            if let Some(e) = entries(&t["exports"]).filter(|e| !e.is_empty()) {
                export = format!("{export} {e}");
            }
            let residency = match &t["residency"] {
                r @ Value::Object(_) => {
                    format!("{}:{}", s(&r["label"]), entries(&r["jurisdictions"]).unwrap_or_default())
                }
                _ => "-".to_owned(),
            };
            vec![
                s(&t["id"]),
                s(&t["display_name"]),
                s(&t["home_region"]),
                joined(&t["data_regions"]),
                joined(&t["allowed_query_regions"]),
                export,
                residency,
            ]
        })
        .collect()
}

fn render(cmd: &AdminCommand, v: &Value) -> String {
    match cmd {
        AdminCommand::Tenants(TenantCommand::Delete { .. }) => {
            format!("deleted tenant {}: tokens {}; data {}\n", s(&v["deleted"]), s(&v["tokens"]), s(&v["data"]))
        }
        AdminCommand::Tenants(_) => table(
            &["ID", "NAME", "HOME REGION", "DATA REGIONS", "QUERY REGIONS", "EXPORT", "RESIDENCY"],
            tenant_rows(v),
        ),
        AdminCommand::Limits(_) => {
            let rows = v["limits"]
                .as_object()
                .map(|m| m.iter().map(|(k, x)| vec![k.clone(), s(x)]).collect())
                .unwrap_or_default();
            table(&["LIMIT", "VALUE"], rows)
        }
        AdminCommand::Tokens(TokenCommand::Issue { .. }) => format!(
            "token {} for tenant {} ({} access):\n\n  {}\n\nStore it now: it is not shown again.\n",
            s(&v["id"]),
            s(&v["tenant_id"]),
            s(&v["access"]),
            s(&v["token"])
        ),
        AdminCommand::Tokens(TokenCommand::List { .. }) => {
            let rows = v.as_array().map(|a| {
                a.iter()
                    .map(|t| {
                        vec![
                            s(&t["id"]),
                            s(&t["access"]),
                            s(&t["description"]),
                            if t["revoked_at"].is_null() { "live".into() } else { "revoked".into() },
                        ]
                    })
                    .collect()
            });
            table(&["TOKEN ID", "ACCESS", "DESCRIPTION", "STATE"], rows.unwrap_or_default())
        }
        AdminCommand::Tokens(TokenCommand::Revoke { token_id, .. }) => format!("revoked token {token_id}\n"),
        AdminCommand::Usage { .. } => {
            let rows =
                v.as_object().map(|m| m.iter().map(|(k, x)| vec![k.clone(), s(x)]).collect()).unwrap_or_default();
            table(&["USAGE", "VALUE"], rows)
        }
        AdminCommand::Delete { .. } | AdminCommand::DeleteStatus { .. } => delete_status(v),
        AdminCommand::Actions { .. } => {
            table(&["TIME", "WHO", "CLIENT", "ACTION", "TENANT", "STATUS", "ERROR"], action_rows(v))
        }
        AdminCommand::Audit { .. } => table(
            &["TIME MS", "SIDE", "TENANT", "ASKING", "DATA", "CROSSED", "SERIES", "BYTES", "DECISION", "RULE", "QUERY"],
            audit_rows(v),
        ),
    }
}

/// A tenant id given on the command line, checked before it goes into a URL.
fn tenant_id_arg(t: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "--tenant {t:?}: only letters, digits, '-', '_' and '.'"
    );
    Ok(t)
}

/// Rows of the admin audit log.
fn action_rows(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let query = r["query"].as_str().map(|q| format!("?{q}")).unwrap_or_default();
                    vec![
                        time(&r["time_ms"]),
                        s(&r["who"]),
                        s(&r["client"]),
                        format!("{} {}{query}", s(&r["method"]), s(&r["path"])),
                        s(&r["tenant"]),
                        s(&r["status"]),
                        s(&r["error"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Unix ms as RFC 3339 (UTC, ms), `-` when absent.
fn time(v: &Value) -> String {
    match v.as_i64().and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => humantime_serde::re::humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
        None => "-".to_owned(),
    }
}

/// A delete request and its progress, for people.
fn delete_status(v: &Value) -> String {
    let st = &v["status"];
    let req = &v["request"];
    let bound = match st["bound_met"].as_bool() {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    };
    let range = |x: &Value| match x.as_i64() {
        Some(i64::MIN) | Some(i64::MAX) | None => "-".to_owned(),
        Some(_) => time(x),
    };
    let mut out = format!(
        "request {}  tenant {}  state {}\n\
         asked by {}: {} from {} to {}\n\
         requested {}  deadline {}  completed {}  bound {}\n\n",
        s(&v["id"]),
        s(&v["tenant"]),
        s(&st["state"]),
        s(&req["requested_by"]),
        req["selectors"].as_array().map(|a| a.iter().map(s).collect::<Vec<_>>().join(" or ")).unwrap_or_default(),
        range(&req["start"]),
        range(&req["end"]),
        time(&v["requested_at"]),
        time(&st["deadline"]),
        time(&v["completed_at"]),
        bound,
    );
    let rows = ["log", "hot", "cold", "verify"]
        .iter()
        .map(|k| {
            let t = &st["tiers"][k];
            vec![
                (*k).to_owned(),
                t["state"].as_str().unwrap_or("pending").to_owned(),
                s(&t["files_rewritten"]),
                s(&t["files_deleted"]),
                s(&t["rows_removed"]),
                s(&t["bytes_rewritten"]),
                time(&t["finished_at"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &["TIER", "STATE", "FILES REWRITTEN", "FILES DELETED", "ROWS REMOVED", "BYTES REWRITTEN", "FINISHED"],
        rows,
    ));
    let ver = &st["verification"];
    if ver.is_object() {
        out.push_str(&format!(
            "\nverification at {}: hot samples {}, hot series {}, cold rows {}, unreferenced cold objects {}, \
             log samples {} ({} log segments, {} records scanned), quarantined hot segments {}\n",
            time(&ver["at"]),
            s(&ver["hot_samples"]),
            s(&ver["hot_series"]),
            s(&ver["cold_rows"]),
            s(&ver["cold_unreferenced_objects"]),
            s(&ver["log_samples"]),
            s(&ver["log_segments_scanned"]),
            s(&ver["log_records_scanned"]),
            s(&ver["hot_quarantined_segments"]),
        ));
        for n in ver["not_scanned"].as_array().into_iter().flatten() {
            out.push_str(&format!("not scanned: {}\n", s(n)));
        }
    } else {
        out.push_str("\nverification: not yet\n");
    }
    if let Some(nodes) = st["nodes"].as_object() {
        for (node, p) in nodes {
            if let Some(e) = p["last_error"].as_str() {
                out.push_str(&format!("node {node}: last error: {e}\n"));
            }
        }
    }
    if let Some(policy) = st["log_policy"].as_str().filter(|p| !p.is_empty()) {
        out.push_str(&format!("log: {policy}\n"));
    }
    out
}

fn audit_rows(v: &Value) -> Vec<Vec<String>> {
    let cut =
        |x: String, n: usize| if x.chars().count() > n { x.chars().take(n).collect::<String>() + "…" } else { x };
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        s(&r["time_ms"]),
                        s(&r["side"]),
                        s(&r["tenant"]),
                        s(&r["asking_region"]),
                        s(&r["data_region"]),
                        s(&r["crossed"]),
                        s(&r["series"]),
                        s(&r["bytes"]),
                        s(&r["decision"]),
                        cut(s(&r["rule"]), 60),
                        cut(s(&r["query"]), 60),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
