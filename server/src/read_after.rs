//! Read-your-writes: a query that presents a write's token waits until the
//! write is applied wherever its partitions are held.
//!
//! A write answers with `X-Strata-Write-Token` (`strata_ingest::write_token`:
//! per log partition, the offset of the write's last record). A request to
//! any `/api/v1/*` query route that carries it (`X-Strata-Read-After`
//! header, or the `read_after` URL parameter) is held until, for every
//! partition named, the node that applies the partition has applied that
//! offset: this node for the partitions it consumes, a peer (`[cluster]
//! peers`, `GET /internal/v1/applied`) for the others. Then it is evaluated
//! as usual (the fan-out reads the peers' stores, which hold the write by
//! then). When that does not happen within `[cluster] read_after_timeout`
//! (default 10 s) the query fails with 503, naming the partitions still
//! behind, instead of answering without the write.
//!
//! ```text
//! query + token ──► for each (partition, offset):
//!                     this node applies it and next > offset      ─► done
//!                     a peer applies it and its next > offset     ─► done   (GET <peer>/internal/v1/applied)
//!                   every 20 ms until all done, or 503 at the timeout
//! ```
//!
//! On the embedded log a write is applied before it is acknowledged, so a
//! token of this node is always satisfied at once. Without a token a query
//! on a Kafka cluster may miss a write acknowledged a moment ago by another
//! node (the consumer applies it shortly after): that is what the token is for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use strata_ingest::IngestLog;
use strata_ingest::write_token::{READ_AFTER_HEADER, WriteToken};

/// The answer of `GET /internal/v1/applied`: per partition, the next offset
/// this node applies, for the partitions it holds (`None`: not held here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    /// Index = partition.
    pub next: Vec<Option<u64>>,
}

/// This node's [`Applied`].
pub fn applied(log: &dyn IngestLog) -> Applied {
    Applied { next: (0..log.partitions()).map(|p| log.applied(p)).collect() }
}

/// Waits for tokens (see the module doc).
#[derive(Debug, Clone)]
pub struct ReadAfter {
    log: Arc<dyn IngestLog>,
    peers: Vec<String>,
    cluster_token: String,
    client: crate::outbound::Client,
    timeout: Duration,
}

impl ReadAfter {
    /// Waits on `log` and `[cluster] peers` (HTTP or HTTPS, trusting
    /// `http`'s `client_ca_cert`, see `outbound`).
    pub fn new(
        log: Arc<dyn IngestLog>,
        config: &crate::config::ClusterConfig,
        http: &crate::config::HttpConfig,
    ) -> Self {
        let client =
            crate::outbound::client_or_log(http, config.timeout.min(Duration::from_secs(2)), Duration::from_secs(1));
        Self {
            log,
            peers: config.peers.clone(),
            cluster_token: config.token.clone(),
            client,
            timeout: config.read_after_timeout,
        }
    }

    /// Resolves once every position of `token` is applied where it is held;
    /// the error names what is still missing at the timeout.
    pub async fn wait(&self, token: &WriteToken) -> Result<(), Error> {
        let partitions = self.log.partitions();
        if let Some((&p, _)) = token.positions().iter().find(|(p, _)| **p >= partitions) {
            let msg = format!("read_after names partition {p}, but this region's log has {partitions} partitions");
            return Err(Error::BadRequest(msg));
        }
        let deadline = Instant::now() + self.timeout;
        let mut pending: BTreeMap<u32, u64> = token.positions().clone();
        let mut held_by_peer: BTreeMap<u32, Option<u64>> = BTreeMap::new();
        loop {
            pending.retain(|&p, &mut o| self.log.applied(p).is_none_or(|next| next <= o));
            if !pending.is_empty() && !self.peers.is_empty() {
                held_by_peer.clear();
                for answer in self.ask_peers().await {
                    for &p in pending.keys() {
                        if let Some(&Some(next)) = answer.next.get(p as usize) {
                            let best = held_by_peer.entry(p).or_insert(None);
                            *best = Some(best.map_or(next, |b| b.max(next)));
                        }
                    }
                }
                pending.retain(|p, o| held_by_peer.get(p).copied().flatten().is_none_or(|next| next <= *o));
            }
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::ReadAfterTimeout(self.describe(&pending, &held_by_peer)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn describe(&self, pending: &BTreeMap<u32, u64>, held_by_peer: &BTreeMap<u32, Option<u64>>) -> String {
        let parts: Vec<String> = pending
            .iter()
            .take(8)
            .map(|(&p, &o)| match (self.log.applied(p), held_by_peer.get(&p).copied().flatten()) {
                (Some(next), _) => format!("partition {p}: offset {o} not applied here yet (next {next})"),
                (None, Some(next)) => format!("partition {p}: offset {o} not applied by its node yet (next {next})"),
                (None, None) => format!("partition {p}: no reachable node applies it now"),
            })
            .collect();
        format!(
            "read_after: the write is not visible within {:?} ({}{}); retry, or query without read_after for \
             possibly stale data",
            self.timeout,
            parts.join("; "),
            if pending.len() > 8 { "; …" } else { "" }
        )
    }

    async fn ask_peers(&self) -> Vec<Applied> {
        let asks = self.peers.iter().map(|peer| {
            let req = self.client.get(format!("{peer}/internal/v1/applied")).bearer_auth(&self.cluster_token);
            async move { crate::outbound::answer::<Applied>(req).await.ok() }
        });
        futures_join_all(asks).await.into_iter().flatten().collect()
    }
}

/// Runs the futures concurrently (a small `join_all`, without another dependency).
#[expect(
    clippy::disallowed_methods,
    reason = "every task is awaited here (join_all); they exist only to run the nodes' waits in parallel"
)]
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// The middleware in front of the query routes.
pub async fn layer(State(ra): State<Arc<ReadAfter>>, request: Request, next: Next) -> Response {
    let from_header = request.headers().get(READ_AFTER_HEADER).map(|v| v.to_str().map(str::to_owned));
    let from_param = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "read_after")
            .map(|(_, v)| percent_decode(v))
    });
    let text = match (from_header, from_param) {
        (Some(Ok(t)), _) => Some(t),
        (Some(Err(_)), _) => return Error::BadRequest("X-Strata-Read-After is not ASCII".into()).into_response(),
        (None, p) => p,
    };
    let Some(text) = text.filter(|t| !t.is_empty()) else { return next.run(request).await };
    let token = match WriteToken::parse(&text) {
        Ok(t) => t,
        Err(e) => return Error::BadRequest(format!("invalid read_after: {e}")).into_response(),
    };
    match ra.wait(&token).await {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// `%XX` and `+` decoding of a URL parameter value (tokens are ASCII; `:` and `,` may come encoded).
fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_url_parameters() {
        assert_eq!(percent_decode("v1%3A0%3A12%2C3%3A4"), "v1:0:12,3:4");
        assert_eq!(percent_decode("v1:0:12"), "v1:0:12");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
