//! The web console at `/` in a real headless browser: the real binary, two
//! tenants with data, and `server/tests/browser/console.mjs` (playwright-core
//! driving Debian's chromium) typing a query, checking the table and the graph,
//! the cardinality, storage (its work-in-progress panel with the finished
//! roll, and the cold tier's tables), ingest and tenants pages, and that
//! another token sees none of it. Screenshots are saved as artifacts
//! (`$STRATA_CONSOLE_ARTIFACTS`, else `$CARGO_TARGET_DIR/console-artifacts`,
//! else a temporary directory; the path is printed).
//!
//! Needs `node`, `/usr/bin/chromium` and playwright-core
//! (`scripts/install-test-deps.sh` installs them); fails saying so when one is missing.

use crate::harness::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const ADMIN: &str = "console-test-admin-token-0123456789";

fn artifacts_dir() -> PathBuf {
    if let Ok(d) = std::env::var("STRATA_CONSOLE_ARTIFACTS") {
        return PathBuf::from(d);
    }
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(d).join("console-artifacts");
    }
    std::env::temp_dir().join(format!("strata-console-artifacts-{}", std::process::id()))
}

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("`node` is not on PATH".into());
    }
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        return Some(format!("no chromium at {chromium}"));
    }
    let tools = std::env::var("STRATA_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/strata-tools"));
    let pw = std::env::var("PLAYWRIGHT_CORE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tools.join("node/node_modules/playwright-core"));
    if !pw.join("package.json").exists() {
        return Some(format!("no playwright-core at {}", pw.display()));
    }
    None
}

async fn admin_post(c: &reqwest::Client, s: &Server, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = c.post(s.url(path)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    if let Some(why) = missing_prerequisite() {
        panic!(
            "the console's browser test cannot run: {why}; run scripts/install-test-deps.sh \
             (Debian's chromium, node, playwright-core under ~/.cache/strata-tools/node)"
        );
    }
    let dir = data_dir();
    // The cold tier is on so the storage page has a table, a watermark and a finished roll to show.
    let env = [
        ("STRATA_ADMIN__TOKEN", ADMIN),
        ("STRATA_COLD__ENABLED", "true"),
        ("STRATA_COMPACTOR__GRACE", "1m"),
        ("STRATA_COMPACTOR__INTERVAL", "1h"),
    ];
    let s = Server::start(dir.path(), &env);
    let c = client();

    // The console itself: served with its content types and a strict policy.
    let r = c.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    for (path, ty) in [("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")] {
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(ty), "{path}");
        assert!(r.headers().contains_key("content-security-policy"), "{path}");
    }
    assert_eq!(c.get(s.url("/console/nope.js")).send().await.unwrap().status(), 404);

    // Two tenants, each with a token; acme's data is what the browser must see.
    let mut tokens = Vec::new();
    for id in ["acme", "other"] {
        admin_post(&c, &s, "/admin/v1/tenants", serde_json::json!({"id": id, "display_name": format!("{id} farms")}))
            .await;
        let t =
            admin_post(&c, &s, &format!("/admin/v1/tenants/{id}/tokens"), serde_json::json!({"access": "read_write"}))
                .await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
    }
    let now = now_ms();
    let mut lines = String::new();
    for i in 0..20i64 {
        let t = now - (19 - i) * 10_000;
        lines.push_str(&format!("console_temp,room=kitchen value={} {t}\n", 20.0 + i as f64 * 0.25));
        lines.push_str(&format!("console_temp,room=cellar value={} {t}\n", 11.0 + (i % 5) as f64 * 0.5));
    }
    let r = c.post(s.url("/api/v2/write?precision=ms")).bearer_auth(&tokens[0]).body(lines).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = c
        .post(s.url("/api/v2/write?precision=ms"))
        .bearer_auth(&tokens[1])
        .body(format!("other_secret,site=x value=1 {now}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Ten hours old samples of another metric, rolled into acme's cold table (the storage page's cold panel).
    let old = (now - 10 * 3_600_000) / 1000 * 1000;
    let archive: String =
        (0..6).map(|i| format!("console_archive,room=attic value={i} {}\n", old + i * 60_000)).collect();
    let r = c.post(s.url("/api/v2/write?precision=ms")).bearer_auth(&tokens[0]).body(archive).send().await.unwrap();
    assert_eq!(r.status(), 204);
    for path in ["/internal/flush", "/internal/roll"] {
        let r = c.post(s.url(path)).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
    }
    // The last samples: kitchen 20 + 19 * 0.25, cellar 11 + 4 * 0.5.
    let expect = "24.75,13";

    let artifacts = artifacts_dir();
    let _ = std::fs::remove_dir_all(&artifacts);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.mjs");
    let started = Instant::now();
    let base = s.base.clone();
    let (acme, other) = (tokens[0].clone(), tokens[1].clone());
    let artifacts_arg = artifacts.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .arg(&base)
            .arg(&artifacts_arg)
            .env("CONSOLE_METRIC", "console_temp")
            .env("CONSOLE_EXPECT", expect)
            .env("CONSOLE_SERIES", "2")
            .env("CONSOLE_ROLLED", "acme")
            .env("STRATA_TOKEN", &acme)
            .env("STRATA_OTHER_TOKEN", &other)
            .env("STRATA_ADMIN_TOKEN", ADMIN)
            .output()
    })
    .await
    .unwrap()
    .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    println!("console artifacts (screenshots): {} ({:.1?} in the browser)", artifacts.display(), started.elapsed());
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}\nartifacts: {}",
        out.status,
        artifacts.display()
    );
    for png in ["explorer.png", "cardinality.png", "storage.png", "ingest.png", "tenants.png"] {
        let bytes = std::fs::read(artifacts.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG"), "{png} is not a PNG");
    }
}
