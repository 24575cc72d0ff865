//! Runs Prometheus's promqltest scripts (`../shared/promql-testdata`, or
//! `$STRATA_PROMQL_TESTDATA`) against the engine over an in-memory store and
//! prints `N passed, N failed, N skipped` per file.
//!
//! Individual failures are reported, not asserted, while the engine grows;
//! the test fails when a file passes fewer cases than its floor in
//! `promql_conformance.baseline` (a regression) or the directory is missing. `STRATA_PROMQL_VERBOSE=1` prints every failure.

use regex::Regex;
use std::path::PathBuf;
use std::sync::Arc;
use strata_query::test_util::{MemStore, expand_values, parse_number, parse_series_desc, parse_test_time};
use strata_query::{Engine, QueryConfig, Value};
use strata_schemas::{Labels, TenantId};

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    passed: usize,
    failed: usize,
    skipped: usize,
}

enum Outcome {
    Pass,
    Fail(String),
    Skip,
}

struct Case<'a> {
    header: &'a str,
    body: Vec<&'a str>,
}

fn testdata_dir() -> PathBuf {
    std::env::var_os("STRATA_PROMQL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/promql-testdata"))
}

#[test]
fn promql_conformance() {
    let dir = testdata_dir();
    assert!(dir.is_dir(), "PromQL test data directory {} is missing", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read test data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let verbose = std::env::var_os("STRATA_PROMQL_VERBOSE").is_some();
    let mut total = Counts::default();
    let baseline = load_baseline();
    let mut regressions = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read test file");
        let (c, failures) = run_file(&text);
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        eprintln!("{name}: {} passed, {} failed, {} skipped", c.passed, c.failed, c.skipped);
        for msg in failures.iter().take(if verbose { usize::MAX } else { 3 }) {
            eprintln!("    FAIL {msg}");
        }
        if let Some(&floor) = baseline.get(name.as_str())
            && c.passed < floor
        {
            regressions.push(format!("{name}: {} passed, baseline {floor}", c.passed));
        }
        total.passed += c.passed;
        total.failed += c.failed;
        total.skipped += c.skipped;
    }
    eprintln!("TOTAL: {} passed, {} failed, {} skipped", total.passed, total.failed, total.skipped);
    assert!(regressions.is_empty(), "PromQL conformance regressed:\n{}", regressions.join("\n"));
}

/// Per-file pass counts that must not drop (`promql_conformance.baseline`,
/// lines `<file> <passed>`). Raise them when the engine passes more.
fn load_baseline() -> std::collections::HashMap<String, usize> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/promql_conformance.baseline");
    let text = std::fs::read_to_string(&path).expect("read conformance baseline");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, n) = l.split_once(' ').expect("baseline line: <file> <passed>");
            (name.to_owned(), n.trim().parse().expect("baseline count"))
        })
        .collect()
}

/// True when `query` contains `name` as a whole identifier, or a regex selector that could match it.
fn mentions(query: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let whole = query.match_indices(name).any(|(i, _)| {
        let before = query[..i].chars().next_back().is_none_or(|c| !ident(c));
        let after = query[i + name.len()..].chars().next().is_none_or(|c| !ident(c));
        before && after
    });
    whole || query.contains("__name__=~") || query.contains("{__name__!")
}

fn split_cases(text: &str) -> Vec<Case<'_>> {
    let mut cases: Vec<Case<'_>> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let is_command =
            !line.starts_with(char::is_whitespace) && ["load", "clear", "eval"].iter().any(|c| trimmed.starts_with(c));
        if is_command {
            cases.push(Case { header: trimmed, body: Vec::new() });
        } else if let Some(c) = cases.last_mut() {
            c.body.push(trimmed);
        }
    }
    cases
}

fn run_file(text: &str) -> (Counts, Vec<String>) {
    let store = Arc::new(MemStore::new());
    let tenant = TenantId::default_tenant();
    let engine = Engine::new(Arc::clone(&store) as _, QueryConfig::default());
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut load_ok = true;
    let mut unsupported_metrics: Vec<String> = Vec::new();
    for case in split_cases(text) {
        let h = case.header;
        if h == "clear" {
            store.clear();
            load_ok = true;
            unsupported_metrics.clear();
        } else if let Some(rest) = h.strip_prefix("load") {
            load_ok &= load(&store, &tenant, rest, &case.body, &mut unsupported_metrics).is_ok();
        } else {
            let uses_unsupported = unsupported_metrics.iter().any(|m| mentions(h, m));
            let outcome = if load_ok && !uses_unsupported { run_eval(&engine, &tenant, &case) } else { Outcome::Skip };
            match outcome {
                Outcome::Pass => counts.passed += 1,
                Outcome::Skip => counts.skipped += 1,
                Outcome::Fail(msg) => {
                    counts.failed += 1;
                    failures.push(format!("{h}: {msg}"));
                }
            }
        }
    }
    (counts, failures)
}

/// Loads the float series; series with native histograms are left out and
/// their metric names recorded so the cases that query them are skipped.
fn load(
    store: &MemStore,
    tenant: &TenantId,
    rest: &str,
    body: &[&str],
    unsupported: &mut Vec<String>,
) -> Result<(), String> {
    let rest = rest.trim();
    let interval = rest.split_whitespace().last().ok_or("load without interval")?;
    if rest.contains("nhcb") {
        return Err("nhcb loads are not supported".into());
    }
    let interval = parse_test_time(interval)?;
    for line in body {
        if line.contains("{{") {
            let name = line.split(|c: char| c == '{' || c.is_whitespace()).next().unwrap_or("");
            if name.is_empty() {
                return Err("unnamed histogram series".into());
            }
            unsupported.push(name.to_owned());
            continue;
        }
        store.load(tenant, interval, line)?;
    }
    Ok(())
}

struct Expect {
    fail: Option<(bool, String)>,
    fail_any: bool,
    ordered: bool,
    string: Option<String>,
    series: Vec<(Option<Labels>, Vec<Option<f64>>)>,
}

fn parse_expect(header_fail: bool, ordered: bool, body: &[&str]) -> Result<Expect, String> {
    let mut e = Expect { fail: None, fail_any: header_fail, ordered, string: None, series: Vec::new() };
    for line in body {
        if let Some(rest) = line.strip_prefix("expect ") {
            let rest = rest.trim();
            if let Some(f) = rest.strip_prefix("fail") {
                e.fail_any = true;
                let f = f.trim();
                if let Some(m) = f.strip_prefix("msg:") {
                    e.fail = Some((false, m.trim().to_owned()));
                } else if let Some(r) = f.strip_prefix("regex:") {
                    e.fail = Some((true, r.trim().to_owned()));
                }
            } else if rest == "ordered" {
                e.ordered = true;
            } else if let Some(s) = rest.strip_prefix("string") {
                e.string = Some(s.trim().trim_matches(|c| c == '"' || c == '`').to_owned());
            } else if rest.starts_with("range vector") {
                return Err("expect range vector".into());
            }
            continue;
        }
        if let Some(m) = line.strip_prefix("expected_fail_message") {
            e.fail = Some((false, m.trim().to_owned()));
            continue;
        }
        if let Some(r) = line.strip_prefix("expected_fail_regexp") {
            e.fail = Some((true, r.trim().to_owned()));
            continue;
        }
        if line.contains("{{") {
            return Err("native histogram".into());
        }
        if line.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
            || line.starts_with("NaN")
            || line.starts_with("Inf")
        {
            e.series.push((None, vec![Some(parse_number(line.split_whitespace().next().unwrap_or(""))?)]));
            continue;
        }
        let split = desc_end(line);
        let labels = parse_series_desc(line[..split].trim())?;
        e.series.push((Some(labels), expand_values(&line[split..])?));
    }
    Ok(e)
}

fn desc_end(line: &str) -> usize {
    match line.find('}') {
        Some(i) if line[..i].contains('{') => i + 1,
        _ => line.find(char::is_whitespace).unwrap_or(line.len()),
    }
}

fn run_eval(engine: &Engine, tenant: &TenantId, case: &Case<'_>) -> Outcome {
    let h = case.header;
    let (cmd, rest) = h.split_once(' ').unwrap_or((h, ""));
    let (header_fail, ordered) = match cmd {
        "eval" => (false, false),
        "eval_fail" => (true, false),
        "eval_ordered" => (false, true),
        "eval_warn" | "eval_info" => (false, false),
        _ => return Outcome::Skip,
    };
    let expect = match parse_expect(header_fail, ordered, &case.body) {
        Ok(e) => e,
        Err(why) => {
            if std::env::var_os("STRATA_PROMQL_VERBOSE").is_some() {
                eprintln!("    SKIP {h}: {why}");
            }
            return Outcome::Skip;
        }
    };
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (at, query) = r.split_once(' ').unwrap_or((r, ""));
        let Ok(t) = parse_test_time(at) else { return Outcome::Skip };
        check(engine.query_instant(tenant, query, t).map(|r| r.value), &expect, None)
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.splitn(6, ' ').collect();
        if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
            return Outcome::Skip;
        }
        let (Ok(s), Ok(e), Ok(st)) = (parse_test_time(parts[0]), parse_test_time(parts[2]), parse_test_time(parts[4]))
        else {
            return Outcome::Skip;
        };
        check(engine.query_range(tenant, parts[5], s, e, st).map(|r| r.value), &expect, Some((s, st)))
    } else {
        Outcome::Skip
    }
}

fn check(res: Result<Value, strata_query::QueryError>, e: &Expect, range: Option<(i64, i64)>) -> Outcome {
    let v = match (res, e.fail_any) {
        (Err(err), true) => return check_fail_msg(&err.to_string(), e),
        (Err(err), false) => return Outcome::Fail(format!("unexpected error: {err}")),
        (Ok(_), true) => return Outcome::Fail("expected failure, got success".into()),
        (Ok(v), false) => v,
    };
    let got: Vec<(Option<Labels>, Vec<Option<f64>>)> = match v {
        Value::String { v, .. } => {
            return if e.string.as_deref() == Some(v.as_str()) {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("string {v:?}"))
            };
        }
        Value::Scalar { v, .. } => vec![(None, vec![Some(v)])],
        Value::Vector(v) => v.into_iter().map(|s| (Some(s.labels), vec![Some(s.v)])).collect(),
        Value::Matrix(m) => match range {
            Some((start, step)) => m
                .into_iter()
                .map(|s| {
                    let n = s.samples.last().map_or(0, |p| ((p.ts - start) / step + 1) as usize);
                    let mut vals = vec![None; n];
                    for p in s.samples {
                        vals[((p.ts - start) / step) as usize] = Some(p.value);
                    }
                    (Some(s.labels), vals)
                })
                .collect(),
            None => return Outcome::Skip,
        },
    };
    compare(got, e)
}

fn check_fail_msg(msg: &str, e: &Expect) -> Outcome {
    match &e.fail {
        None => Outcome::Pass,
        Some((false, want)) if msg == want.trim_matches('"') => Outcome::Pass,
        Some((true, re)) if Regex::new(re.trim_matches('"')).is_ok_and(|r| r.is_match(msg)) => Outcome::Pass,
        Some((_, want)) => Outcome::Fail(format!("error {msg:?}, want {want:?}")),
    }
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < 1e-6
}

fn same_points(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    let n = a.len().max(b.len());
    (0..n).all(|i| match (a.get(i).copied().flatten(), b.get(i).copied().flatten()) {
        (None, None) => true,
        (Some(x), Some(y)) => almost_equal(x, y),
        _ => false,
    })
}

fn compare(got: Vec<(Option<Labels>, Vec<Option<f64>>)>, e: &Expect) -> Outcome {
    if got.len() != e.series.len() {
        return Outcome::Fail(format!("got {} series, want {}: {:?}", got.len(), e.series.len(), brief(&got)));
    }
    for (idx, (labels, want)) in e.series.iter().enumerate() {
        let found =
            if e.ordered { got.get(idx).filter(|g| &g.0 == labels) } else { got.iter().find(|g| &g.0 == labels) };
        match found {
            None => return Outcome::Fail(format!("missing series {labels:?}; got {:?}", brief(&got))),
            Some(g) if !same_points(&g.1, want) => {
                return Outcome::Fail(format!("{labels:?}: got {:?}, want {want:?}", g.1));
            }
            _ => {}
        }
    }
    Outcome::Pass
}

fn brief(got: &[(Option<Labels>, Vec<Option<f64>>)]) -> String {
    let s: Vec<String> = got
        .iter()
        .take(4)
        .map(|(l, v)| format!("{} {:?}", l.as_ref().map(|l| l.to_string()).unwrap_or_default(), v))
        .collect();
    s.join("; ")
}
