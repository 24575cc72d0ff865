//! Unit tests of the agent configuration and its checks (`super`).

use super::*;
use crate::queue::{FsyncPolicy, OverflowPolicy};

#[test]
fn parses_a_full_file_and_rejects_unknown_keys() {
    let c: AgentConfig = toml::from_str(
        r#"
        agent_id = "gw-1"
        listen = "0.0.0.0:1"
        data_dir = "/tmp/x"
        [queue]
        max_bytes = 100000000
        fsync = "never"
        overflow = "drop_oldest"
        [forward]
        endpoints = ["http://a:1", "http://b:2"]
        token = "t"
        backoff_max = "2s"
        "#,
    )
    .unwrap();
    let mut c = c;
    assert_eq!(c.agent_id, "gw-1");
    assert_eq!(c.queue.fsync, FsyncPolicy::Never);
    assert_eq!(c.queue.overflow, OverflowPolicy::DropOldest);
    assert_eq!(c.forward.backoff_max, Duration::from_secs(2));
    assert_eq!(c.forward.backoff_initial, Duration::from_millis(100));
    c.validate().unwrap();
    assert!(toml::from_str::<AgentConfig>("[queue]\nmax_byte = 1").is_err());
}

#[test]
fn the_example_file_parses_and_shows_the_defaults() {
    let mut c: AgentConfig = toml::from_str(include_str!("../../strata-edge.example.toml")).unwrap();
    c.validate().unwrap();
    let d = AgentConfig::default();
    assert_eq!((c.intake, c.queue), (d.intake, d.queue));
    assert_eq!(
        c.forward,
        ForwardConfig {
            endpoints: c.forward.endpoints.clone(),
            jurisdiction: c.forward.jurisdiction.clone(),
            ..d.forward
        }
    );
    assert_eq!(c.clock, d.clock);
    assert_eq!(c.listen, d.listen);
    let subscriptions = c.mqtt.subscriptions.clone();
    assert_eq!(subscriptions.len(), 2);
    assert_eq!(c.mqtt, MqttConfig { host: c.mqtt.host.clone(), subscriptions, ..d.mqtt });
}

#[test]
fn mqtt_subscriptions_are_checked() {
    let parse = |extra: &str| {
        let text = format!(
            "[forward]\nendpoints = [\"http://a:1\"]\n[mqtt]\nhost = \"127.0.0.1\"\n[[mqtt.subscriptions]]\n{extra}"
        );
        toml::from_str::<AgentConfig>(&text).map_err(|e| e.to_string()).and_then(|mut c| {
            c.validate().map_err(|e| e.to_string())?;
            Ok(c)
        })
    };
    let ok = parse(
        "topic = \"farms/+/+/soil\"\nformat = \"json\"\nmeasurement = \"soil_{3}\"\ntags = { farm = \"{1}\" }\ntimestamp = \"ts\"\nprecision = \"ms\"",
    )
    .unwrap();
    assert_eq!(ok.mqtt.subscriptions[0].precision, TimeUnit::Milliseconds);
    assert_eq!(ok.mqtt.client_id_or(&ok.agent_id), ok.agent_id);
    for (extra, wanted) in [
        ("topic = \"a/+\"\nformat = \"json\"", "needs a measurement"),
        ("topic = \"a/+\"\nformat = \"json\"\nmeasurement = \"{2}\"", "level 2"),
        ("topic = \"a/#/b\"\nformat = \"line_protocol\"", "#"),
        ("topic = \"a/b+\"\nformat = \"line_protocol\"", "+"),
        ("topic = \"a\"\nformat = \"line_protocol\"\nmeasurement = \"m\"", "for format"),
        ("topic = \"a/+\"\nformat = \"line_protocol\"\ntags = { t = \"{1\" }", "{"),
        ("topic = \"a\"\nformat = \"xml\"", "unknown variant"),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.contains(wanted), "{extra}: {e}");
    }
    // `#` leaves deeper levels possible: checked per message instead.
    parse("topic = \"a/#\"\nformat = \"line_protocol\"\ntags = { t = \"{5}\" }").unwrap();
    let no_subs = "[forward]\nendpoints = [\"http://a:1\"]\n[mqtt]\nhost = \"h\"";
    assert!(toml::from_str::<AgentConfig>(no_subs).unwrap().validate().is_err());
}

#[test]
fn defaults_are_safe() {
    let mut c = AgentConfig::default();
    assert_eq!(c.queue.fsync, FsyncPolicy::EveryBatch);
    assert_eq!(c.queue.overflow, OverflowPolicy::Refuse);
    assert!(c.forward.backoff_max <= Duration::from_secs(5));
    assert!(c.validate().is_err(), "no endpoint");
    let mut https = AgentConfig {
        forward: ForwardConfig { endpoints: vec!["https://a:1".into()], ..ForwardConfig::default() },
        ..AgentConfig::default()
    };
    let e = https.validate().unwrap_err();
    assert_eq!(e.to_string(), "[forward] endpoints = \"https://a:1\": must start with http:// (no TLS in this build)");
}

#[test]
fn a_bad_value_names_its_key() {
    let bad = |f: fn(&mut AgentConfig)| {
        let mut c = AgentConfig {
            forward: ForwardConfig { endpoints: vec!["http://a:1".into()], ..ForwardConfig::default() },
            ..AgentConfig::default()
        };
        c.validate().unwrap();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert_eq!(bad(|c| c.agent_id = "a b".into()).path(), "agent_id");
    assert_eq!(bad(|c| c.agent_id = "a".repeat(112)).path(), "agent_id");
    assert_eq!(bad(|c| c.forward.jurisdiction = Some(String::new())).path(), "forward.jurisdiction");
    assert_eq!(bad(|c| c.forward.backoff_initial = Duration::ZERO).path(), "forward.backoff_initial");
    assert_eq!(bad(|c| c.queue.segment_bytes = 100).path(), "queue.segment_bytes");
    assert_eq!(bad(|c| c.queue.max_bytes = 4096).path(), "queue.max_bytes");
    let mqtt = |c: &mut AgentConfig| {
        c.mqtt.host = Some("broker".into());
        c.mqtt.port = 0;
    };
    assert_eq!(bad(mqtt).to_string(), "[mqtt] port = 0: must be non-zero");
    let agent_error = crate::Error::from(bad(|c| c.forward.endpoints.clear()));
    assert_eq!(agent_error.kind(), strata_schemas::ErrorKind::InvalidInput);
    assert!(agent_error.to_string().contains("[forward] endpoints: is empty"), "{agent_error}");
}
