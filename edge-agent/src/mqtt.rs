//! MQTT intake: the agent subscribes to a broker and queues what it receives.
//!
//! ```text
//! broker ──PUBLISH (QoS 1)──► event loop task ──► processor task
//!                                                   │ match the topic to a subscription,
//!                                                   │ convert (JSON or line protocol → canonical lines)
//!                                                   │ Agent::append (the HTTP intake's path: group
//!                                                   ▼ commit, fsync policy, queue bound)
//!                                                 PUBACK, in arrival order, only after the append
//! ```
//!
//! * **Session.** Clean session off and a stable client id: the broker
//!   keeps the subscriptions and every QoS 1 message not yet acknowledged
//!   while the agent is away (down, restarting, `kill -9`) and delivers them
//!   again when it reconnects. Subscriptions are made at QoS 1.
//! * **Acknowledgement.** Manual: a PUBLISH is acknowledged only once the
//!   batch holding it is in the queue (durable under `fsync =
//!   "every_batch"`). A message the agent could not queue is never
//!   acknowledged, so nothing acknowledged is lost; a message queued whose
//!   PUBACK did not reach the broker (connection lost, `kill -9` right
//!   after the append) is delivered again and queued twice (at-least-once:
//!   with a timestamp in the message the copy overwrites itself in the
//!   server; without one it gets a second agent time and is a second sample).
//! * **Full queue.** The batch is held unacknowledged and the append retried
//!   every `reconnect_delay` (counted in
//!   `strata_edge_mqtt_queue_full_total`). The broker sends nothing more
//!   once its in-flight window (Mosquitto: `max_inflight_messages`, 20) is
//!   unacknowledged, and keeps the rest in the session; after a reconnect or
//!   a restart it delivers the unacknowledged ones again. Messages held from
//!   a connection that is gone are dropped when the new connection resumed
//!   the session (the broker delivers them again) and kept otherwise.
//! * **Bad messages** (not JSON, no numeric field, no valid line, a topic
//!   level a template needs is missing, larger than `max_message_bytes`):
//!   counted by reason, logged at most every 10 s with the topic, and
//!   acknowledged, since delivering them again cannot help. Valid lines of a
//!   line-protocol message with bad ones are queued; the bad lines are
//!   counted in `strata_edge_mqtt_rejected_lines_total`.
//!
//! JSON mapping: the payload is an object (or an array of objects, one line
//! each). Numbers become float fields, booleans boolean fields, nested
//! objects are flattened with `_` (`{"soil": {"t": 1}}` → `soil_t`);
//! strings, nulls and arrays are ignored; the timestamp member is not a
//! field. The measurement and tags come from the subscription's templates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode};
use serde::Serialize;
use strata_schemas::line_protocol::{FieldValue, ParsedLine, parse_lines, write_line};
use strata_schemas::time::Precision;

use crate::agent::Agent;
use crate::config::{PayloadFormat, Subscription};
use crate::error::Error;
use crate::intake::canonicalise;
use crate::metrics::Metrics;

/// Most messages queued as one batch.
const MAX_BATCH_MESSAGES: usize = 256;

/// Most payload bytes (converted) queued as one batch, before the queue
/// bound's quarter applies.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Bad messages are logged at most this often (the rest are counted).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The shape of a topic filter: its number of levels and whether it ends
/// with `#` (then topics may have more levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterShape {
    /// Levels of the filter, `#` included.
    pub levels: usize,
    /// Ends with `#`.
    pub open: bool,
}

/// Checks a topic filter: `+` and `#` fill a whole level, `#` only last.
pub fn filter_levels(filter: &str) -> Result<FilterShape, String> {
    if filter.is_empty() {
        return Err("empty topic filter".to_owned());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("`#` must be a whole level and the last one".to_owned());
        }
        if level.contains('+') && *level != "+" {
            return Err("`+` must be a whole level".to_owned());
        }
    }
    Ok(FilterShape { levels: levels.len(), open: levels.last() == Some(&"#") })
}

/// Whether `topic` matches the filter (MQTT 3.1.1 rules: `a/#` matches `a`,
/// wildcards at the first level do not match `$` topics).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A measurement or tag value with `{N}` placeholders for topic levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Level(usize),
}

impl Template {
    /// Parses `text`; a level the filter can never have is an error.
    pub fn parse(text: &str, shape: FilterShape) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(Part::Text(rest.to_owned()));
                    break;
                }
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(format!("unmatched `}}` in {text:?}")),
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Text(rest[..i].to_owned()));
                    }
                    let close = rest[i..].find('}').ok_or_else(|| format!("unclosed `{{` in {text:?}"))? + i;
                    let n: usize = rest[i + 1..close]
                        .parse()
                        .map_err(|_| format!("{text:?}: `{{...}}` must hold a topic level number, e.g. {{1}}"))?;
                    if !shape.open && n >= shape.levels {
                        return Err(format!(
                            "{text:?} names topic level {n}; the filter has {} (from 0)",
                            shape.levels
                        ));
                    }
                    parts.push(Part::Level(n));
                    rest = &rest[close + 1..];
                }
            }
        }
        if parts.is_empty() {
            return Err("empty template".to_owned());
        }
        Ok(Template { parts })
    }

    /// The text for a topic split into levels.
    pub fn render(&self, levels: &[&str]) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Level(n) => match levels.get(*n) {
                    Some(l) if !l.is_empty() => out.push_str(l),
                    _ => return Err(format!("topic level {n} is missing or empty")),
                },
            }
        }
        Ok(out)
    }
}

/// A subscription ready to convert messages.
#[derive(Debug, Clone)]
pub struct Route {
    /// The configured subscription.
    pub sub: Subscription,
    measurement: Option<Template>,
    tags: Vec<(String, Template)>,
}

impl Route {
    /// Compiles a (validated) subscription.
    pub fn new(sub: &Subscription) -> Result<Route, String> {
        let shape = filter_levels(&sub.topic)?;
        let measurement = sub.measurement.as_deref().map(|m| Template::parse(m, shape)).transpose()?;
        let tags =
            sub.tags.iter().map(|(k, v)| Ok((k.clone(), Template::parse(v, shape)?))).collect::<Result<_, String>>()?;
        Ok(Route { sub: sub.clone(), measurement, tags })
    }
}

/// Why a message was rejected (the metric's `reason` label) and the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `invalid_json`, `no_fields`, `invalid_timestamp`, `invalid_line`,
    /// `empty`, `topic`, `too_large`, `no_subscription`.
    pub reason: &'static str,
    /// What is wrong.
    pub detail: String,
}

fn reject(reason: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: detail.into() }
}

/// A message turned into canonical line protocol.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Converted {
    /// Lines with nanosecond timestamps, each ending in `\n`.
    pub payload: String,
    /// Lines in `payload`.
    pub lines: usize,
    /// Lines of the message that were rejected (line protocol only), with
    /// the first error.
    pub rejected_lines: usize,
    /// The first rejected line's error.
    pub first_error: Option<String>,
}

/// Converts one message of `route` on `topic`; `now_ns` is the time given to
/// samples without one.
pub fn convert(route: &Route, topic: &str, payload: &[u8], now_ns: i64) -> Result<Converted, Rejection> {
    let levels: Vec<&str> = topic.split('/').collect();
    let tags: Vec<(String, String)> = route
        .tags
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.render(&levels).map_err(|e| reject("topic", e))?)))
        .collect::<Result<_, Rejection>>()?;
    let lines = match route.sub.format {
        PayloadFormat::Json => {
            let measurement = match &route.measurement {
                Some(t) => t.render(&levels).map_err(|e| reject("topic", e))?,
                None => return Err(reject("topic", "no measurement configured")),
            };
            json_lines(route, &measurement, &tags, payload, now_ns)?
        }
        PayloadFormat::LineProtocol => {
            let c = canonicalise(payload, route.sub.precision.precision(), now_ns);
            if c.accepted_lines == 0 {
                return Err(match c.rejected.first() {
                    None => reject("empty", "no line in the message"),
                    Some(e) => reject("invalid_line", format!("line {}: {}", e.line, e.reason)),
                });
            }
            let first_error = c.rejected.first().map(|e| format!("line {}: {}", e.line, e.reason));
            let rejected_lines = c.rejected.len();
            if tags.is_empty() {
                return Ok(Converted { payload: c.payload, lines: c.accepted_lines, rejected_lines, first_error });
            }
            let mut out = String::with_capacity(c.payload.len() + 64);
            for line in parse_lines(c.payload.as_bytes()).filter_map(Result::ok) {
                let mut line = line;
                for (k, v) in &tags {
                    match line.tags.iter_mut().find(|(key, _)| key == k) {
                        Some(slot) => slot.1 = v.as_str().into(),
                        None => line.tags.push((k.as_str().into(), v.as_str().into())),
                    }
                }
                write_line(&mut out, &line);
            }
            let mut converted = validate(&out, now_ns)?;
            converted.rejected_lines = rejected_lines;
            converted.first_error = first_error;
            return Ok(converted);
        }
    };
    validate(&lines, now_ns)
}

/// Re-parses generated lines with the server's parser, so a tag value from
/// the topic or a JSON key the server would refuse is caught here.
fn validate(lines: &str, now_ns: i64) -> Result<Converted, Rejection> {
    let c = canonicalise(lines.as_bytes(), Precision::Nanoseconds, now_ns);
    if let Some(e) = c.rejected.first() {
        return Err(reject("invalid_line", format!("the mapped line is invalid: {}", e.reason)));
    }
    Ok(Converted { payload: c.payload, lines: c.accepted_lines, rejected_lines: 0, first_error: None })
}

fn json_lines(
    route: &Route,
    measurement: &str,
    tags: &[(String, String)],
    payload: &[u8],
    now_ns: i64,
) -> Result<String, Rejection> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| reject("invalid_json", e.to_string()))?;
    let objects: Vec<&serde_json::Map<String, serde_json::Value>> = match &value {
        serde_json::Value::Object(o) => vec![o],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|v| v.as_object().ok_or_else(|| reject("invalid_json", "an array member is not an object")))
            .collect::<Result<_, _>>()?,
        _ => return Err(reject("invalid_json", "the payload is not a JSON object")),
    };
    if objects.is_empty() {
        return Err(reject("empty", "an empty JSON array"));
    }
    let mut out = String::new();
    for object in objects {
        let ts = match route.sub.timestamp.as_deref().and_then(|k| object.get(k)) {
            None => now_ns,
            Some(v) => json_timestamp(v, route.sub.precision.nanos()).ok_or_else(|| {
                reject("invalid_timestamp", format!("timestamp {v} is not a number or RFC 3339 time"))
            })?,
        };
        let mut fields: Vec<(String, FieldValue<'static>)> = Vec::new();
        flatten(object, "", route.sub.timestamp.as_deref(), &mut fields);
        if fields.is_empty() {
            return Err(reject("no_fields", "no numeric or boolean member"));
        }
        let line = ParsedLine {
            line_no: 1,
            measurement: measurement.into(),
            tags: tags.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect(),
            fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            timestamp: Some(ts),
        };
        write_line(&mut out, &line);
    }
    Ok(out)
}

fn json_timestamp(v: &serde_json::Value, factor: i64) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => i.checked_mul(factor),
            None => {
                let ns = n.as_f64()? * factor as f64;
                (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns.round() as i64)
            }
        },
        serde_json::Value::String(s) => {
            let t = humantime_serde::re::humantime::parse_rfc3339_weak(s).ok()?;
            let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
            i64::try_from(d.as_nanos()).ok()
        }
        _ => None,
    }
}

fn flatten(
    object: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    skip: Option<&str>,
    out: &mut Vec<(String, FieldValue<'static>)>,
) {
    for (k, v) in object {
        if prefix.is_empty() && Some(k.as_str()) == skip {
            continue;
        }
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}_{k}") };
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                    out.push((key, FieldValue::Float(f)));
                }
            }
            serde_json::Value::Bool(b) => out.push((key, FieldValue::Boolean(*b))),
            serde_json::Value::Object(o) => flatten(o, &key, None, out),
            _ => {}
        }
    }
}

/// Counters and state of the MQTT intake.
#[derive(Debug, Default)]
pub struct MqttMetrics {
    /// Connected to the broker now.
    pub connected: AtomicBool,
    /// Connections made (CONNACK received).
    pub connections: AtomicU64,
    /// Connection attempts that failed and connections lost.
    pub connection_errors: AtomicU64,
    /// Number of the current connection (1 for the first).
    pub connection: AtomicU64,
    /// Whether the current connection resumed a session the broker kept.
    pub session_present: AtomicBool,
    /// PUBLISH packets received.
    pub received: AtomicU64,
    /// Messages queued (then acknowledged).
    pub queued: AtomicU64,
    /// Lines queued from MQTT messages.
    pub lines_queued: AtomicU64,
    /// Messages rejected, by reason (acknowledged).
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Bad lines in otherwise valid line-protocol messages.
    pub rejected_lines: AtomicU64,
    /// Appends refused because the queue was full (the messages are held
    /// unacknowledged and retried).
    pub queue_full: AtomicU64,
    /// The last connection error, if any.
    pub last_error: Mutex<Option<String>>,
}

/// The `mqtt` member of `/status`.
#[derive(Debug, Serialize)]
pub struct MqttStatus {
    /// `host:port`.
    pub broker: String,
    /// The client id (the broker's session key).
    pub client_id: String,
    /// See [`MqttMetrics::connected`].
    pub connected: bool,
    /// Reconnections: connections made after the first one.
    pub reconnects: u64,
    /// See [`MqttMetrics::connection_errors`].
    pub connection_errors: u64,
    /// See [`MqttMetrics::received`].
    pub messages_received: u64,
    /// See [`MqttMetrics::queued`].
    pub messages_queued: u64,
    /// See [`MqttMetrics::lines_queued`].
    pub lines_queued: u64,
    /// See [`MqttMetrics::rejected`].
    pub messages_rejected: BTreeMap<&'static str, u64>,
    /// See [`MqttMetrics::rejected_lines`].
    pub rejected_lines: u64,
    /// See [`MqttMetrics::queue_full`].
    pub queue_full: u64,
    /// See [`MqttMetrics::last_error`].
    pub last_error: Option<String>,
}

impl MqttMetrics {
    /// A snapshot for `/status`.
    pub fn status(&self, broker: String, client_id: String) -> MqttStatus {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MqttStatus {
            broker,
            client_id,
            connected: self.connected.load(Ordering::Relaxed),
            reconnects: get(&self.connections).saturating_sub(1),
            connection_errors: get(&self.connection_errors),
            messages_received: get(&self.received),
            messages_queued: get(&self.queued),
            lines_queued: get(&self.lines_queued),
            messages_rejected: self.rejected.lock().expect("metrics lock is never poisoned").clone(),
            rejected_lines: get(&self.rejected_lines),
            queue_full: get(&self.queue_full),
            last_error: self.last_error.lock().expect("metrics lock is never poisoned").clone(),
        }
    }
}

/// Logs at most once per [`LOG_EVERY`], saying how many were not logged.
#[derive(Debug, Default)]
struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(how many were not logged since the last time)` when one may be logged now.
    fn allow(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A received message and the connection it came on.
#[derive(Debug)]
struct Received {
    publish: Publish,
    connection: u64,
}

/// The state of one message of a batch being processed.
#[derive(Debug)]
struct Item {
    received: Received,
    outcome: Result<Converted, Rejection>,
    /// Appended to the queue (not to be appended again).
    queued: bool,
}

/// Runs the MQTT intake until the task is aborted (does nothing when
/// `mqtt.host` is not set).
#[expect(
    clippy::disallowed_methods,
    reason = "the processor task ends with run(): aborted when its loop ends, and its channel closes (so it returns) when run's future is dropped"
)]
pub async fn run(agent: Arc<Agent>) {
    let cfg = agent.config.mqtt.clone();
    let Some(host) = cfg.host.clone() else { return };
    let client_id = cfg.client_id_or(&agent.config.agent_id).to_owned();
    let routes: Vec<Route> = cfg.subscriptions.iter().filter_map(|s| Route::new(s).ok()).collect();
    let mut options = MqttOptions::new(client_id.clone(), host.clone(), cfg.port);
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_keep_alive(cfg.keep_alive);
    // Larger packets than this break the connection (and would be delivered
    // again for ever), so the limit is MQTT's own; `max_message_bytes` is
    // checked per message instead (rejected, acknowledged).
    options.set_max_packet_size(268_435_455, 1 << 20);
    if let Some(user) = &cfg.username {
        options.set_credentials(user.clone(), cfg.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let processor = tokio::spawn(process(Arc::clone(&agent), client.clone(), rx, routes));
    let m = &agent.metrics.mqtt;
    let filters: Vec<SubscribeFilter> =
        cfg.subscriptions.iter().map(|s| SubscribeFilter::new(s.topic.clone(), QoS::AtLeastOnce)).collect();
    let mut connection = 0u64;
    let mut errors = LogLimiter::default();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connection += 1;
                m.session_present.store(ack.session_present, Ordering::SeqCst);
                m.connected.store(true, Ordering::SeqCst);
                Metrics::add(&m.connections, 1);
                m.connection.store(connection, Ordering::SeqCst);
                tracing::info!(broker = %format!("{host}:{}", cfg.port), client_id, session_present = ack.session_present, "mqtt connected");
                // The first connection of this process subscribes (the
                // configuration may have changed); later ones only when the
                // broker lost the session (re-subscribing would resend retained messages).
                if (connection == 1 || !ack.session_present)
                    && let Err(e) = client.try_subscribe_many(filters.clone())
                {
                    tracing::error!("mqtt subscribe: {e}");
                    *m.last_error.lock().expect("metrics lock is never poisoned") = Some(format!("subscribe: {e}"));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    let msg = format!("the broker refused a subscription: {:?}", ack.return_codes);
                    tracing::error!("mqtt: {msg}");
                    *m.last_error.lock().expect("metrics lock is never poisoned") = Some(msg);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                Metrics::add(&m.received, 1);
                if tx.send(Received { publish, connection }).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                m.connected.store(false, Ordering::SeqCst);
                Metrics::add(&m.connection_errors, 1);
                let msg = format!("{host}:{}: {e}", cfg.port);
                if let Some(suppressed) = errors.allow() {
                    tracing::warn!(suppressed, "mqtt: broker connection failed: {msg}");
                }
                *m.last_error.lock().expect("metrics lock is never poisoned") = Some(msg);
                tokio::time::sleep(cfg.reconnect_delay).await;
            }
        }
    }
    processor.abort();
}

/// Takes the messages waiting, converts them, queues them as one batch and
/// acknowledges them in arrival order.
async fn process(
    agent: Arc<Agent>,
    client: AsyncClient,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Received>,
    routes: Vec<Route>,
) {
    let max_message = agent.config.mqtt.max_message_bytes;
    let cap = MAX_BATCH_BYTES.min(usize::try_from(agent.config.queue.max_bytes / 4).unwrap_or(usize::MAX)).max(1);
    let routes = Arc::new(routes);
    let mut bad = LogLimiter::default();
    let mut refused = LogLimiter::default();
    while let Some(first) = rx.recv().await {
        let mut bytes = first.publish.payload.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_MESSAGES && bytes < cap {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.publish.payload.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        // Parsing and rewriting on a blocking thread, like the HTTP intake.
        let routes = Arc::clone(&routes);
        let now_ns = agent.clock.sample_time_ns();
        let converted = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .map(|received| {
                    let outcome = convert_one(&routes, &received.publish, max_message, now_ns);
                    Item { received, outcome, queued: false }
                })
                .collect::<Vec<_>>()
        })
        .await;
        let items = match converted {
            Ok(items) => items,
            Err(e) => {
                // Not acknowledged: the broker delivers them again after a reconnect.
                tracing::error!("mqtt: converting messages failed: {e}");
                continue;
            }
        };
        for item in &items {
            let topic = &item.received.publish.topic;
            let problem = match &item.outcome {
                Ok(Converted { first_error: Some(e), .. }) => Some(("has invalid lines".to_owned(), e)),
                Ok(_) => None,
                Err(r) => Some((format!("rejected ({})", r.reason), &r.detail)),
            };
            if let Some((what, detail)) = problem
                && let Some(suppressed) = bad.allow()
            {
                tracing::warn!(topic, suppressed, "mqtt message {what}: {detail}");
            }
        }
        queue_and_ack(&agent, &client, items, &mut refused).await;
    }
}

fn convert_one(routes: &[Route], publish: &Publish, max_message: usize, now_ns: i64) -> Result<Converted, Rejection> {
    if publish.payload.len() > max_message {
        return Err(reject("too_large", format!("{} bytes > mqtt.max_message_bytes", publish.payload.len())));
    }
    let route = routes
        .iter()
        .find(|r| topic_matches(&r.sub.topic, &publish.topic))
        .ok_or_else(|| reject("no_subscription", "the topic matches no configured subscription"))?;
    convert(route, &publish.topic, &publish.payload, now_ns)
}

/// Queues the converted messages of `items` (retrying while the queue is
/// full), then acknowledges every message still held, in order.
async fn queue_and_ack(agent: &Agent, client: &AsyncClient, mut items: Vec<Item>, refused: &mut LogLimiter) {
    let m = &agent.metrics.mqtt;
    let retry = agent.config.mqtt.reconnect_delay.max(Duration::from_millis(100));
    loop {
        // Messages of a connection that is gone: the broker delivers them
        // again when the new connection resumed the session.
        let current = m.connection.load(Ordering::SeqCst);
        if m.session_present.load(Ordering::SeqCst) {
            items.retain(|i| i.queued || i.received.connection == current);
        }
        match append_items(agent, &mut items).await {
            Ok(()) => break,
            Err(Error::Full { .. }) => {
                Metrics::add(&m.queue_full, 1);
                if let Some(suppressed) = refused.allow() {
                    tracing::warn!(suppressed, "mqtt: the queue is full; messages held unacknowledged, retrying");
                }
            }
            Err(e) => {
                if let Some(suppressed) = refused.allow() {
                    tracing::error!(error = %e, suppressed, "mqtt: queue append failed; messages held unacknowledged, retrying");
                }
                agent.metrics.set_error(format!("queue: {e}"));
            }
        }
        tokio::time::sleep(retry).await;
    }
    let current = m.connection.load(Ordering::SeqCst);
    for item in items {
        match &item.outcome {
            Ok(c) => {
                Metrics::add(&m.queued, 1);
                Metrics::add(&m.lines_queued, c.lines as u64);
                Metrics::add(&m.rejected_lines, c.rejected_lines as u64);
            }
            Err(r) => {
                *m.rejected.lock().expect("metrics lock is never poisoned").entry(r.reason).or_default() += 1;
            }
        }
        // A PUBACK belongs to the connection the PUBLISH came on; an older
        // one's message is delivered again (and queued twice).
        if item.received.connection == current && m.connected.load(Ordering::SeqCst) {
            let _ = client.try_ack(&item.received.publish);
        }
    }
}

/// Appends the converted payloads of the items not yet queued as one batch
/// and marks them queued; a batch larger than the queue bound is split, and
/// a single message larger than it is rejected (`too_large`). On an error,
/// the items queued so far stay marked.
async fn append_items(agent: &Agent, items: &mut [Item]) -> crate::Result<()> {
    let mut payload = Vec::new();
    let mut pending = 0;
    for item in items.iter() {
        if let (Ok(c), false) = (&item.outcome, item.queued) {
            payload.extend_from_slice(c.payload.as_bytes());
            pending += 1;
        }
    }
    if pending == 0 {
        return Ok(());
    }
    match agent.append(payload).await {
        Ok(_) => {
            agent.wake.notify_one();
            for item in items.iter_mut() {
                item.queued = item.outcome.is_ok();
            }
            Ok(())
        }
        Err(Error::TooLarge { size, max }) if pending == 1 => {
            for item in items.iter_mut().filter(|i| i.outcome.is_ok() && !i.queued) {
                item.outcome =
                    Err(reject("too_large", format!("{size} bytes queued would exceed the queue bound {max}")));
            }
            Ok(())
        }
        Err(Error::TooLarge { .. }) => {
            let (a, b) = items.split_at_mut(items.len() / 2);
            Box::pin(append_items(agent, a)).await?;
            Box::pin(append_items(agent, b)).await
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
