//! The PromQL conformance suite: Prometheus's promqltest scripts
//! (`../shared/promql-testdata`, or `$STRATA_PROMQL_TESTDATA`) run against
//! the engine over a [`SuiteStore`], printing `N passed, N failed, N skipped`
//! per file.
//!
//! Individual failures are reported, not asserted, while the engine grows;
//! [`run_suite`] fails when a file passes fewer cases than its floor in
//! `promql_conformance.baseline` (a regression) or the directory is missing.
//! `STRATA_PROMQL_VERBOSE=1` prints every failure. The store is pluggable so
//! that other stores run the same suite unchanged: `../promql_conformance.rs`
//! (in this crate's `tests/it`) runs it over the in-memory [`MemStore`], the ScyllaDB hot tier's
//! `hot-scylla/tests/it/conformance.rs` (which includes this file) over a CQL server.

use promql_parser::parser::{AtModifier, Expr, VectorSelector};
use regex::Regex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use strata_query::test_util::{
    MemStore, expand_values, parse_number, parse_series_desc, parse_test_time, series_desc_end,
};
use strata_query::{Engine, QueryConfig, QueryResult, Value};
use strata_schemas::{Labels, METRIC_NAME, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange};

#[derive(Debug, Default, Clone)]
struct Counts {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// Skips per reason.
    skip_reasons: BTreeMap<String, usize>,
}

enum Outcome {
    Pass,
    Fail(String),
    /// Skipped, with the reason (counted and printed per reason).
    Skip(String),
}

/// Skip reasons the issue allows: native-histogram samples, and features
/// Prometheus itself flags experimental. Any other skip reason fails the test.
const ALLOWED_SKIPS: &[&str] = &[SKIP_NH_DATA, SKIP_NH_EXPECTED];
const SKIP_NH_DATA: &str = "selects native-histogram samples";
const SKIP_NH_EXPECTED: &str = "expects native-histogram samples";

struct Case<'a> {
    header: &'a str,
    body: Vec<&'a str>,
}

fn testdata_dir() -> PathBuf {
    std::env::var_os("STRATA_PROMQL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/promql-testdata"))
}

/// Files of the issue that must pass completely (every case passes or is an allowed skip).
const REQUIRED: &[&str] = &[
    "aggregators.test",
    "functions.test",
    "histograms.test",
    "literals.test",
    "operators.test",
    "range_queries.test",
    "selectors.test",
    "staleness.test",
    "trig_functions.test",
    "limit.test",
    "name_label_dropping.test",
];

/// A store the suite loads (`load`, `clear`) and queries.
pub(crate) trait SuiteStore: ReadStore {
    /// Adds float samples to a series of `tenant`.
    fn add(&self, tenant: &TenantId, labels: Labels, samples: &[Sample]);
    /// Removes every series (the `clear` command).
    fn clear(&self);
}

impl SuiteStore for MemStore {
    fn add(&self, tenant: &TenantId, labels: Labels, samples: &[Sample]) {
        MemStore::add(self, tenant, labels, samples);
    }

    fn clear(&self) {
        MemStore::clear(self);
    }
}

/// Runs every test file against a fresh store from `make` per file.
pub(crate) fn run_suite(make: &dyn Fn() -> Box<dyn SuiteStore>) {
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
        let (c, failures) = run_file(&text, verbose, make());
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        eprintln!("{name}: {} passed, {} failed, {} skipped", c.passed, c.failed, c.skipped);
        for (reason, n) in &c.skip_reasons {
            let allowed = if ALLOWED_SKIPS.contains(&reason.as_str()) { "" } else { " [NOT an allowed skip]" };
            eprintln!("    skipped {n}: {reason}{allowed}");
        }
        for msg in failures.iter().take(if verbose { usize::MAX } else { 3 }) {
            eprintln!("    FAIL {msg}");
        }
        if let Some(&floor) = baseline.get(name.as_str())
            && c.passed < floor
        {
            regressions.push(format!("{name}: {} passed, baseline {floor}", c.passed));
        }
        if REQUIRED.contains(&name.as_str()) {
            let bad_skips: usize =
                c.skip_reasons.iter().filter(|(r, _)| !ALLOWED_SKIPS.contains(&r.as_str())).map(|(_, n)| n).sum();
            if c.failed > 0 || bad_skips > 0 {
                regressions.push(format!("{name}: {} failed, {bad_skips} skipped for reasons not allowed", c.failed));
            }
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
    // Relative to the including crate: query itself or a sibling crate.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../query/tests/promql_conformance.baseline");
    let text = std::fs::read_to_string(&path).expect("read conformance baseline");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, n) = l.split_once(' ').expect("baseline line: <file> <passed>");
            (name.to_owned(), n.trim().parse().expect("baseline count"))
        })
        .collect()
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

/// The test store: float samples in a [`SuiteStore`], plus the label sets and
/// timestamps of native-histogram samples (which Strata's data model does not
/// hold). A select that would return one of those marks the running case as
/// touching native histograms, so it is skipped instead of compared.
struct TestStore {
    mem: Box<dyn SuiteStore>,
    histograms: Mutex<Vec<(Labels, Vec<i64>)>>,
    touched: AtomicBool,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore").finish_non_exhaustive()
    }
}

impl TestStore {
    fn new(mem: Box<dyn SuiteStore>) -> Self {
        Self { mem, histograms: Mutex::default(), touched: AtomicBool::new(false) }
    }

    fn clear(&self) {
        self.mem.clear();
        self.histograms.lock().expect("lock").clear();
    }

    fn add_histogram(&self, labels: Labels, ts: Vec<i64>) {
        if !ts.is_empty() {
            self.histograms.lock().expect("lock").push((labels, ts));
        }
    }

    /// Whether any selector of the case's query matches a native-histogram series.
    fn selects_histograms(&self, header: &str) -> bool {
        let query = header.split_once(" at ").or_else(|| header.split_once(" step ")).map_or("", |(_, r)| r);
        let query = query.split_once(' ').map_or("", |(_, q)| q);
        let Ok(expr) = promql_parser::parser::parse(query) else { return false };
        let mut selectors = Vec::new();
        collect_selectors(&expr, &mut selectors);
        let h = self.histograms.lock().expect("lock");
        selectors.iter().any(|vs| {
            strata_query::engine::selector_matchers(vs)
                .is_ok_and(|m| h.iter().any(|(l, _)| Matcher::matches_all(&m, l)))
        })
    }

    fn note(&self, matchers: &[Matcher], range: TimeRange) {
        let h = self.histograms.lock().expect("lock");
        if h.iter().any(|(l, ts)| Matcher::matches_all(matchers, l) && ts.iter().any(|t| range.contains(*t))) {
            self.touched.store(true, Ordering::Relaxed);
        }
    }
}

impl ReadStore for TestStore {
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        self.note(matchers, range);
        self.mem.select(tenant, matchers, range)
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.note(matchers, range);
        self.mem.series(tenant, matchers, range)
    }
}

fn collect_selectors<'a>(e: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        _ => {}
    }
}

fn run_file(text: &str, verbose: bool, mem: Box<dyn SuiteStore>) -> (Counts, Vec<String>) {
    let store = Arc::new(TestStore::new(mem));
    let tenant = TenantId::default_tenant();
    // promqltest's engine runs with delayed `__name__` removal (NewTestEngine).
    let config = QueryConfig { delayed_name_removal: true, ..QueryConfig::default() };
    let engine = Engine::new(Arc::clone(&store) as _, config);
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut load_err: Option<String> = None;
    for case in split_cases(text) {
        let h = case.header;
        if h == "clear" {
            store.clear();
            load_err = None;
        } else if let Some(rest) = h.strip_prefix("load") {
            if let Err(e) = load(&store, &tenant, rest, &case.body) {
                load_err = Some(e);
            }
        } else {
            let outcome = match &load_err {
                Some(e) => Outcome::Skip(e.clone()),
                None => {
                    store.touched.store(false, Ordering::Relaxed);
                    let o = run_eval(&engine, &store, &tenant, &case);
                    // A failing case whose selectors match native-histogram series may have
                    // failed before reading them (e.g. a histogram function).
                    let failed_on_histograms = matches!(o, Outcome::Fail(_)) && store.selects_histograms(h);
                    if (store.touched.load(Ordering::Relaxed) || failed_on_histograms) && !matches!(o, Outcome::Skip(_))
                    {
                        Outcome::Skip(SKIP_NH_DATA.into())
                    } else {
                        o
                    }
                }
            };
            match outcome {
                Outcome::Pass => counts.passed += 1,
                Outcome::Skip(why) => {
                    if verbose {
                        eprintln!("    SKIP {h}: {why}");
                    }
                    counts.skipped += 1;
                    *counts.skip_reasons.entry(why).or_default() += 1;
                }
                Outcome::Fail(msg) => {
                    counts.failed += 1;
                    failures.push(format!("{h}: {msg}"));
                }
            }
        }
    }
    (counts, failures)
}

/// Loads the float samples; native-histogram samples (and, for
/// `load_with_nhcb`, the native histograms with custom buckets Prometheus
/// derives from classic `_bucket` series) are recorded as histogram series.
fn load(store: &TestStore, tenant: &TenantId, rest: &str, body: &[&str]) -> Result<(), String> {
    let rest = rest.trim();
    let nhcb = rest.starts_with("_with_nhcb");
    let interval = rest.split_whitespace().last().ok_or("load without interval")?;
    let interval = parse_test_time(interval)?;
    let mut nhcb_series: BTreeMap<Labels, Vec<i64>> = BTreeMap::new();
    for line in body {
        let split = series_desc_end(line);
        let labels = parse_series_desc(line[..split].trim())?;
        let mut floats = Vec::new();
        let mut hist_ts = Vec::new();
        let mut t = 0i64;
        for tok in tokens(&line[split..]) {
            if tok.starts_with("{{") {
                // `{{...}}` or `{{...}}xN` (N+1 samples) or `{{...}}+{{...}}xN`.
                let n = tok.rsplit_once("}}x").and_then(|(_, n)| n.parse::<i64>().ok()).map_or(1, |n| n + 1);
                for _ in 0..n {
                    hist_ts.push(t);
                    t += interval;
                }
                continue;
            }
            for v in expand_values(&tok)? {
                if let Some(v) = v {
                    floats.push(Sample::new(t, v));
                }
                t += interval;
            }
        }
        if nhcb && let Some(base) = labels.get(METRIC_NAME).and_then(|n| n.strip_suffix("_bucket")) {
            let mut l = labels.clone();
            l.remove("le");
            l.set(METRIC_NAME, base);
            nhcb_series.entry(l).or_default().extend(floats.iter().map(|s| s.ts));
        }
        store.add_histogram(labels.clone(), hist_ts);
        if !floats.is_empty() {
            store.mem.add(tenant, labels, &floats);
        }
    }
    for (l, mut ts) in nhcb_series {
        ts.sort_unstable();
        ts.dedup();
        store.add_histogram(l, ts);
    }
    Ok(())
}

/// Splits a value list into tokens, keeping `{{ ... }}` (with spaces inside) as one token.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One `expect warn|info [msg|regex]: ...` line (`None` pattern: any annotation).
struct AnnoExpect {
    info: bool,
    pattern: Option<(bool, String)>,
}

struct Expect {
    fail: Option<(bool, String)>,
    fail_any: bool,
    ordered: bool,
    string: Option<String>,
    /// `expect range vector from A to B step S` of an instant query.
    range_vector: Option<(i64, i64)>,
    annotations: Vec<AnnoExpect>,
    no_warn: bool,
    no_info: bool,
    series: Vec<(Option<Labels>, Vec<Option<f64>>)>,
}

fn parse_pattern(rest: &str) -> Option<(bool, String)> {
    let rest = rest.trim();
    if let Some(m) = rest.strip_prefix("msg:") {
        Some((false, m.trim().to_owned()))
    } else {
        rest.strip_prefix("regex:").map(|r| (true, r.trim().to_owned()))
    }
}

fn parse_expect(cmd: &str, body: &[&str]) -> Result<Expect, String> {
    let mut e = Expect {
        fail: None,
        fail_any: cmd == "eval_fail",
        ordered: cmd == "eval_ordered",
        string: None,
        range_vector: None,
        annotations: Vec::new(),
        no_warn: false,
        no_info: false,
        series: Vec::new(),
    };
    match cmd {
        "eval_warn" => e.annotations.push(AnnoExpect { info: false, pattern: None }),
        "eval_info" => e.annotations.push(AnnoExpect { info: true, pattern: None }),
        _ => {}
    }
    for line in body {
        if let Some(rest) = line.strip_prefix("expect ") {
            let rest = rest.trim();
            if let Some(f) = rest.strip_prefix("fail") {
                e.fail_any = true;
                e.fail = parse_pattern(f);
            } else if rest == "no_warn" {
                e.no_warn = true;
            } else if rest == "no_info" {
                e.no_info = true;
            } else if let Some(w) = rest.strip_prefix("warn") {
                e.annotations.push(AnnoExpect { info: false, pattern: parse_pattern(w) });
            } else if let Some(i) = rest.strip_prefix("info") {
                e.annotations.push(AnnoExpect { info: true, pattern: parse_pattern(i) });
            } else if rest == "ordered" {
                e.ordered = true;
            } else if let Some(s) = rest.strip_prefix("string") {
                e.string = Some(s.trim().trim_matches(|c| c == '"' || c == '`').to_owned());
            } else if let Some(r) = rest.strip_prefix("range vector") {
                let parts: Vec<&str> = r.split_whitespace().collect();
                match parts.as_slice() {
                    ["from", from, "to", _, "step", step] => {
                        e.range_vector = Some((parse_test_time(from)?, parse_test_time(step)?));
                    }
                    _ => return Err(format!("bad expect range vector line: {line}")),
                }
            } else {
                return Err(format!("unknown expect line: {line}"));
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
            return Err(SKIP_NH_EXPECTED.into());
        }
        if line.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
            || line.starts_with("NaN")
            || line.starts_with("Inf")
        {
            e.series.push((None, vec![Some(parse_number(line.split_whitespace().next().unwrap_or(""))?)]));
            continue;
        }
        let split = series_desc_end(line);
        let labels = parse_series_desc(line[..split].trim())?;
        e.series.push((Some(labels), expand_values(&line[split..])?));
    }
    Ok(e)
}

fn run_eval(engine: &Engine, store: &TestStore, tenant: &TenantId, case: &Case<'_>) -> Outcome {
    let h = case.header;
    let (cmd, rest) = h.split_once(' ').unwrap_or((h, ""));
    if !matches!(cmd, "eval" | "eval_fail" | "eval_ordered" | "eval_warn" | "eval_info") {
        return Outcome::Fail(format!("unknown command {cmd}"));
    }
    let expect = match parse_expect(cmd, &case.body) {
        Ok(e) => e,
        Err(why) if why == SKIP_NH_EXPECTED => return Outcome::Skip(why),
        Err(why) => return Outcome::Fail(format!("cannot parse the case: {why}")),
    };
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (at, query) = r.split_once(' ').unwrap_or((r, ""));
        let t = match parse_test_time(at) {
            Ok(t) => t,
            Err(e) => return Outcome::Fail(format!("bad time {at}: {e}")),
        };
        let range = expect.range_vector;
        // Like promqltest: the query as written, then (when it is step invariant) with `@ t`
        // on every selector at other evaluation times, each also checked in range mode.
        let mut runs = vec![(query.to_owned(), t)];
        if let Some((pinned, times)) = at_variants(query, t) {
            runs.extend(times.into_iter().map(|t2| (pinned.clone(), t2)));
        }
        for (i, (q, t)) in runs.iter().enumerate() {
            let variant = if i == 0 { String::new() } else { format!(" (as `{q}` at {t}ms)") };
            let res = engine.query_instant(tenant, q, *t);
            if i > 0 && store.touched.swap(false, Ordering::Relaxed) {
                // This evaluation time reaches native-histogram samples: not comparable.
                continue;
            }
            match check(res, &expect, range) {
                Outcome::Pass => {}
                Outcome::Fail(msg) => return Outcome::Fail(format!("{msg}{variant}")),
                skip => return skip,
            }
            if i == 0 && store.touched.load(Ordering::Relaxed) {
                return Outcome::Skip(SKIP_NH_DATA.into());
            }
            let describes_query =
                ["step()", "range()", "start()", "end()"].iter().any(|f| q.to_lowercase().contains(f));
            if expect.fail_any
                || expect.ordered
                || expect.string.is_some()
                || expect.range_vector.is_some()
                || describes_query
            {
                continue;
            }
            let r = check_range_mode(engine, tenant, q, *t, &expect);
            if store.touched.swap(false, Ordering::Relaxed) {
                continue;
            }
            if let Err(msg) = r {
                return Outcome::Fail(format!("range mode: {msg}{variant}"));
            }
        }
        Outcome::Pass
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.splitn(6, ' ').collect();
        if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
            return Outcome::Fail("bad range header".into());
        }
        let (Ok(s), Ok(e), Ok(st)) = (parse_test_time(parts[0]), parse_test_time(parts[2]), parse_test_time(parts[4]))
        else {
            return Outcome::Fail("bad range times".into());
        };
        check(engine.query_range(tenant, parts[5], s, e, st), &expect, Some((s, st)))
    } else {
        Outcome::Fail(format!("unknown eval form: {h}"))
    }
}

/// Prometheus's `AtModifierUnsafeFunctions`: results depend on the evaluation time itself.
const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
    // The duration-expression helpers that return the query's own start and end.
    "start",
    "end",
];

/// promqltest's `atModifierTestCases`: the expression with `@ t` on every
/// selector and subquery that has no timestamp yet (not inside a pinned
/// subquery), and the evaluation times to run it at. None when the query uses
/// a function that is not step invariant.
fn at_variants(query: &str, t: i64) -> Option<(String, Vec<i64>)> {
    let mut expr = promql_parser::parser::parse(query).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(t).ok()?);
    let mut ok = true;
    pin(&mut expr, at, &mut ok);
    if !ok {
        return None;
    }
    let times = if t == 0 { vec![-1000, 0, 1000] } else { vec![-10 * t, 0, t / 5, t, 10 * t] };
    Some((expr.to_string(), times))
}

fn pin_at(at: &mut Option<AtModifier>, t: SystemTime, ok: &mut bool) {
    match at {
        Some(AtModifier::At(x)) => *ok &= *x >= SystemTime::UNIX_EPOCH,
        _ => *at = Some(AtModifier::At(t)),
    }
}

fn pin(e: &mut Expr, t: SystemTime, ok: &mut bool) {
    match e {
        Expr::VectorSelector(vs) => pin_at(&mut vs.at, t, ok),
        Expr::MatrixSelector(ms) => pin_at(&mut ms.vs.at, t, ok),
        Expr::Subquery(sq) => pin_at(&mut sq.at, t, ok),
        Expr::Paren(p) => pin(&mut p.expr, t, ok),
        Expr::Unary(u) => pin(&mut u.expr, t, ok),
        Expr::Aggregate(a) => {
            pin(&mut a.expr, t, ok);
            if let Some(p) = &mut a.param {
                pin(p, t, ok);
            }
        }
        Expr::Binary(b) => {
            pin(&mut b.lhs, t, ok);
            pin(&mut b.rhs, t, ok);
        }
        Expr::Call(c) => {
            *ok &= !AT_UNSAFE.contains(&c.func.name);
            c.args.args.iter_mut().for_each(|a| pin(a, t, ok));
        }
        _ => {}
    }
}

/// promqltest's range-mode check of an instant query: a range query over
/// `[t-1m, t+1m]` step 1m must give the same result at step `t`.
fn check_range_mode(engine: &Engine, tenant: &TenantId, q: &str, t: i64, e: &Expect) -> Result<(), String> {
    let r = engine.query_range(tenant, q, t - 60_000, t + 60_000, 60_000).map_err(|err| err.to_string())?;
    let Value::Matrix(m) = r.value else { return Err("range query did not return a matrix".into()) };
    let mut got: Vec<(Option<Labels>, Vec<Option<f64>>)> = Vec::new();
    for s in m {
        if let Some(p) = s.samples.iter().find(|p| p.ts == t) {
            got.push((Some(s.labels), vec![Some(p.value)]));
        }
    }
    if e.series.first().is_some_and(|(l, _)| l.is_none()) {
        got = got.into_iter().take(1).map(|(_, v)| (None, v)).collect();
    }
    match compare(got, e) {
        Outcome::Fail(msg) => Err(msg),
        _ => Ok(()),
    }
}

fn pattern_matches(p: &(bool, String), text: &str) -> bool {
    match p {
        (false, want) => text == want.trim_matches('"'),
        (true, re) => Regex::new(re.trim_matches('"')).is_ok_and(|r| r.is_match(text)),
    }
}

/// Prometheus's annotation checks: every `expect warn|info` matches at least
/// one annotation of its kind; when a kind has expectations, every annotation
/// of that kind is matched by one; `no_warn` / `no_info` forbid the kind.
fn check_annotations(r: &QueryResult, e: &Expect) -> Result<(), String> {
    for (info, list, forbidden) in [(false, &r.warnings, e.no_warn), (true, &r.infos, e.no_info)] {
        let kind = if info { "info" } else { "warn" };
        if forbidden && !list.is_empty() {
            return Err(format!("unexpected {kind} annotations: {list:?}"));
        }
        let exps: Vec<&AnnoExpect> = e.annotations.iter().filter(|a| a.info == info).collect();
        for a in &exps {
            let ok = match &a.pattern {
                None => !list.is_empty(),
                Some(p) => list.iter().any(|m| pattern_matches(p, m)),
            };
            if !ok {
                return Err(format!("expected {kind} annotation {:?}, got {list:?}", a.pattern));
            }
        }
        if !exps.is_empty()
            && let Some(m) =
                list.iter().find(|m| !exps.iter().any(|a| a.pattern.as_ref().is_none_or(|p| pattern_matches(p, m))))
        {
            return Err(format!("unexpected {kind} annotation {m:?}"));
        }
    }
    Ok(())
}

fn check(res: Result<QueryResult, strata_query::QueryError>, e: &Expect, range: Option<(i64, i64)>) -> Outcome {
    let r = match (res, e.fail_any) {
        (Err(err), true) => return check_fail_msg(&err.to_string(), e),
        (Err(err), false) => return Outcome::Fail(format!("unexpected error: {err}")),
        (Ok(_), true) => return Outcome::Fail("expected failure, got success".into()),
        (Ok(r), false) => r,
    };
    if let Err(msg) = check_annotations(&r, e) {
        return Outcome::Fail(msg);
    }
    let got: Vec<(Option<Labels>, Vec<Option<f64>>)> = match r.value {
        Value::String { v, .. } => {
            return if e.string.as_deref() == Some(v.as_str()) {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("string {v:?}"))
            };
        }
        Value::Scalar { v, .. } => vec![(None, vec![Some(v)])],
        Value::Vector(v) => {
            if e.range_vector.is_some() {
                return Outcome::Fail("expected a range vector, got an instant vector".into());
            }
            v.into_iter().map(|s| (Some(s.labels), vec![Some(s.v)])).collect()
        }
        Value::Matrix(m) => match range {
            Some((start, step)) => {
                let mut out = Vec::with_capacity(m.len());
                for s in m {
                    let mut vals: Vec<Option<f64>> = Vec::new();
                    for p in s.samples {
                        let off = p.ts - start;
                        if off < 0 || off % step != 0 {
                            return Outcome::Fail(format!("{}: sample at {} is off the expected grid", s.labels, p.ts));
                        }
                        let i = (off / step) as usize;
                        if vals.len() <= i {
                            vals.resize(i + 1, None);
                        }
                        vals[i] = Some(p.value);
                    }
                    out.push((Some(s.labels), vals));
                }
                out
            }
            None => return Outcome::Fail("got a range vector; the case has no `expect range vector`".into()),
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
