//! Unit tests of the configuration layers and checks (`super`).

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_are_loopback_and_local_dir() {
    let c = ServerConfig::load(None, [], &CliOverrides::default()).unwrap();
    assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
    assert_eq!(c.data_dir, PathBuf::from("strata-data"));
}

#[test]
fn layers_apply_in_order_file_env_cli() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strata.toml");
    std::fs::write(&file, "http_addr = \"127.0.0.1:1111\"\nregion = \"eu\"\n[log]\npartitions = 4\n").unwrap();
    let c = ServerConfig::load(
        Some(&file),
        env(&[("STRATA_REGION", "br"), ("STRATA_LOG__PARTITIONS", "16"), ("STRATA_PROMQL_TESTDATA", "/x")]),
        &CliOverrides { http_addr: Some("127.0.0.1:2222".parse().unwrap()), data_dir: None },
    )
    .unwrap();
    assert_eq!(c.http_addr.port(), 2222);
    assert_eq!(c.region, "br");
    assert_eq!(c.log.partitions, 16);
}

#[test]
fn kafka_log_and_peers_come_from_the_environment() {
    let c = ServerConfig::load(
        None,
        env(&[
            ("STRATA_LOG__KIND", "kafka"),
            ("STRATA_LOG__KAFKA__BROKERS", "127.0.0.1:9092"),
            ("STRATA_LOG__KAFKA__TOPIC_PREFIX", "acme"),
            ("STRATA_CLUSTER__PEERS", "[\"http://127.0.0.1:9471/\"]"),
            ("STRATA_CLUSTER__TOKEN", "cluster-secret-123456"),
        ]),
        &CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(c.log.kind, strata_ingest::LogKind::Kafka);
    assert_eq!(c.log.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(c.log.kafka.topic(&c.region), "acme.local.ingest");
    assert_eq!(c.cluster.peers, ["http://127.0.0.1:9471"]);
    let err = ServerConfig::load(
        None,
        env(&[("STRATA_CLUSTER__PEERS", "[\"http://127.0.0.1:9471\"]")]),
        &CliOverrides::default(),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("[cluster] token: must be set when cluster.peers is: peers authenticate"),
        "{err:#}"
    );
}

#[test]
fn env_values_parse_as_toml_or_strings() {
    let c = ServerConfig::load(
        None,
        env(&[
            ("STRATA_HOT_STORE__FLUSH_INTERVAL", "30s"),
            ("STRATA_AUTH__TOKENS", "{ \"secret-token-1\" = \"acme\" }"),
        ]),
        &CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(c.hot_store.flush_interval, Duration::from_secs(30));
    assert_eq!(c.auth.tokens.get("secret-token-1").map(String::as_str), Some("acme"));
}

#[test]
fn http_limits_have_defaults_and_come_from_the_environment() {
    let c = ServerConfig::load(None, [], &CliOverrides::default()).unwrap();
    assert_eq!(c.http, HttpConfig::default());
    assert!(!c.metrics.per_tenant);
    let c = ServerConfig::load(
        None,
        env(&[
            ("STRATA_HTTP__MAX_CONNECTIONS", "8"),
            ("STRATA_HTTP__HEADER_READ_TIMEOUT", "1s"),
            ("STRATA_HTTP__BODY_READ_TIMEOUT", "2s"),
            ("STRATA_METRICS__PER_TENANT", "true"),
        ]),
        &CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(c.http.max_connections, 8);
    assert_eq!(c.http.header_read_timeout, Duration::from_secs(1));
    assert_eq!(c.http.body_read_timeout, Duration::from_secs(2));
    assert!(c.metrics.per_tenant);
    for bad in [("STRATA_HTTP__MAX_CONNECTIONS", "0"), ("STRATA_HTTP__IDLE_TIMEOUT", "0s")] {
        let err = ServerConfig::load(None, env(&[bad]), &CliOverrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("[http] "), "{err:#}");
    }
}

#[test]
fn tls_needs_both_files_and_the_admin_listener_its_own_address() {
    let c = ServerConfig::load(
        None,
        env(&[
            ("STRATA_HTTP__TLS_CERT", "/etc/strata/cert.pem"),
            ("STRATA_HTTP__TLS_KEY", "/etc/strata/key.pem"),
            ("STRATA_HTTP__ADMIN_ADDR", "127.0.0.1:9471"),
        ]),
        &CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(c.scheme(), "https");
    assert_eq!(c.http.admin_addr, Some("127.0.0.1:9471".parse().unwrap()));
    assert_eq!(c.region_directory().unwrap().entries()[0].endpoint, "https://127.0.0.1:9471");
    let mut plain_admin = c.clone();
    plain_admin.http.admin_tls = false;
    assert_eq!((plain_admin.scheme(), plain_admin.admin_scheme()), ("https", "http"));
    for (bad, named) in [
        (&[("STRATA_HTTP__TLS_CERT", "/c.pem")][..], "[http] tls_key: must be set when http.tls_cert is"),
        (&[("STRATA_HTTP__TLS_KEY", "/k.pem")][..], "[http] tls_cert: must be set when http.tls_key is"),
        (&[("STRATA_HTTP__ADMIN_ADDR", DEFAULT_HTTP_ADDR)][..], "[http] admin_addr = 127.0.0.1:9470: is the same"),
        (&[("STRATA_HTTP__MAX_HEADER_BYTES", "100")][..], "[http] max_header_bytes = 100: must be at least 1024"),
    ] {
        let err = ServerConfig::load(None, env(bad), &CliOverrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains(named), "{err:#}");
    }
}

#[test]
fn a_bad_section_value_names_its_section_and_key() {
    for (var, value, named) in [
        ("STRATA_LOG__PARTITIONS", "5000", "[log] partitions = 5000: must be in 0..=4096 (0: automatic)"),
        ("STRATA_INGEST__MAX_BODY_BYTES", "10", "[ingest] max_body_bytes = 10"),
        ("STRATA_QUERY__TIMEOUT", "\"0s\"", "[query] timeout = 0ns"),
        ("STRATA_COLD__DEVICE_BUCKETS", "0", "[cold] device_buckets = 0"),
        ("STRATA_ERASURE__CHECK_INTERVAL", "\"0s\"", "[erasure] check_interval"),
        ("STRATA_LIMITS__MAX_QUERY_SERIES", "0", "[limits] max_query_series = 0: must be positive"),
    ] {
        let err = ServerConfig::load(None, env(&[(var, value)]), &CliOverrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains(named), "{var}: {err:#}");
    }
    let c = ServerConfig::load(None, env(&[("STRATA_HOT_STORE__FLUSH_INTERVAL", "\"0s\"")]), &CliOverrides::default())
        .unwrap();
    assert_eq!(c.hot_store.flush_interval, Duration::from_secs(300), "a harmless zero takes the default");
}

#[test]
fn unknown_settings_are_rejected_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strata.toml");
    std::fs::write(&file, "[log]\npartitons = 4\n").unwrap();
    let err = ServerConfig::load(Some(&file), [], &CliOverrides::default()).unwrap_err();
    assert!(format!("{err:#}").contains("partitons"), "{err:#}");
}

#[test]
fn default_toml_round_trips() {
    let c: ServerConfig = toml::from_str(&default_toml()).unwrap();
    assert_eq!(c, ServerConfig::default());
}

#[test]
fn default_tenant_limits_come_from_the_limits_section() {
    let c = ServerConfig::load(
        None,
        env(&[("STRATA_LIMITS__INGESTION_RATE", "5000000"), ("STRATA_LIMITS__MAX_QUERY_RANGE", "31d")]),
        &CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(c.limits.ingestion_rate, 5_000_000.0);
    assert_eq!(c.limits.max_query_range, Duration::from_secs(31 * 86_400));
    assert_eq!(c.limits.max_active_series, strata_schemas::TenantLimits::default().max_active_series);
}
