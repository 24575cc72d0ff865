use super::*;

#[test]
fn audit_records_become_a_table() {
    let v = json!([{"time_ms": 1, "side": "received", "tenant": "agro", "asking_region": "us-east",
        "data_region": "eu-central", "crossed": "aggregate_series", "series": 3, "bytes": 812,
        "decision": "allowed", "rule": "eu: aggregates", "query": "sha256:00 sum(x)"}]);
    let cmd = AdminCommand::Audit { tenant: None, region: None, decision: None, side: None, limit: 10 };
    let out = render(&cmd, &v);
    assert!(out.starts_with("TIME MS  SIDE"), "{out}");
    assert!(out.contains("us-east") && out.contains("eu: aggregates") && out.contains("812"), "{out}");
}

#[test]
fn delete_status_is_accepted_in_both_spellings() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AdminCommand,
    }
    let a = Cli::try_parse_from(["x", "delete", "status", "del_ab12"]).unwrap();
    assert!(matches!(a.cmd, AdminCommand::Delete { sub: Some(DeleteSub::Status { ref id }), .. } if id == "del_ab12"));
    let b = Cli::try_parse_from(["x", "delete-status", "del_ab12"]).unwrap();
    assert!(matches!(b.cmd, AdminCommand::DeleteStatus { ref id } if id == "del_ab12"));
    let c = Cli::try_parse_from(["x", "delete", "farm", "--match", "{device=\"d-17\"}", "--start", "5"]).unwrap();
    assert!(
        matches!(c.cmd, AdminCommand::Delete { sub: None, tenant: Some(ref t), start: Some(5), .. } if t == "farm")
    );
    assert!(Cli::try_parse_from(["x", "delete", "farm"]).is_err(), "--match is required");
}

#[test]
fn a_completed_delete_shows_tiers_and_the_verification() {
    let v = json!({"id": "del_1", "tenant": "farm", "requested_at": 0, "completed_at": 1000,
        "request": {"selectors": ["{device=\"d-17\"}"], "start": i64::MIN, "end": 500, "requested_by": "admin"},
        "status": {"state": "completed", "deadline": 3_600_000, "bound_met": true,
            "tiers": {"hot": {"state": "done", "files_rewritten": 2, "files_deleted": 1, "rows_removed": 40,
                "bytes_rewritten": 9000, "finished_at": 900}},
            "verification": {"at": 1000, "hot_samples": 0, "cold_rows": 0, "log_samples": 0, "not_scanned": []},
            "log_policy": "embedded log"}});
    let out = delete_status(&v);
    assert!(out.starts_with("request del_1  tenant farm  state completed\n"), "{out}");
    assert!(out.contains("from - to 1970-01-01T00:00:00.500Z"), "{out}");
    assert!(out.contains("bound met"), "{out}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["hot", "done", "2", "1", "40", "9000", "1970-01-01T00:00:00.900Z"]),
        "{out}"
    );
    assert!(out.contains("verification at 1970-01-01T00:00:01.000Z: hot samples 0"), "{out}");
}

#[test]
fn limits_pairs_become_typed_json() {
    let v = limits_body(&["ingestion_rate=5000".into(), "hot_ttl=7d".into(), "x=1.5".into()]).unwrap();
    assert_eq!(v, json!({"ingestion_rate": 5000, "hot_ttl": "7d", "x": 1.5}));
    assert!(limits_body(&["nope".into()]).is_err());
}

#[test]
fn policy_flags_become_the_api_fields() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        fields: TenantFieldArgs,
    }
    let cli = Cli::try_parse_from([
        "x",
        "--data-regions",
        "us-east,eu-central",
        "--export",
        "eu=aggregates",
        "--export",
        "br=none,us=raw",
        "--residency-label",
        "country",
        "--residency",
        "de=eu,us=us",
    ])
    .unwrap();
    assert_eq!(
        tenant_body(Some("acme"), &cli.fields).unwrap(),
        json!({
            "id": "acme",
            "data_regions": ["us-east", "eu-central"],
            "exports": {"eu": "aggregates", "br": "none", "us": "raw"},
            "residency": {"label": "country", "jurisdictions": {"de": "eu", "us": "us"}},
        })
    );
    let cli = Cli::try_parse_from(["x", "--clear-residency", "--clear-exports"]).unwrap();
    assert_eq!(tenant_body(None, &cli.fields).unwrap(), json!({"exports": {}, "residency": null}));
    assert!(Cli::try_parse_from(["x", "--residency-label", "country"]).is_err(), "a label needs its map");
    assert!(Cli::try_parse_from(["x", "--residency", "de=eu"]).is_err(), "a map needs its label");
    let cli = Cli::try_parse_from(["x", "--export", "eu"]).unwrap();
    assert!(tenant_body(None, &cli.fields).unwrap_err().to_string().contains("--export \"eu\" is not key=value"));
}

#[test]
fn the_tenant_table_shows_the_residency_fields() {
    let t = json!({
        "id": "acme", "display_name": "Acme", "home_region": "us-east",
        "data_regions": ["us-east", "eu-central"], "allowed_query_regions": ["us-east"],
        "export_policy": "none", "exports": {"eu": "aggregates"},
        "residency": {"label": "country", "jurisdictions": {"de": "eu", "us": "us"}},
    });
    assert_eq!(
        tenant_rows(&t),
        [["acme", "Acme", "us-east", "us-east,eu-central", "us-east", "none eu=aggregates", "country:de=eu,us=us"]]
    );
}

#[test]
fn tables_align() {
    let t = table(&["A", "B"], vec![vec!["x".into(), "yy".into()], vec!["long".into(), "z".into()]]);
    assert_eq!(t, "A     B\nx     yy\nlong  z\n");
}
