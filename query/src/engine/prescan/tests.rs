use super::*;
use crate::QueryConfig;
use crate::engine::Engine;
use crate::http::ast;
use crate::test_util::MemStore;
use promql_parser::parser::{Expr, Prettier};
use proptest::prelude::*;
use std::sync::Arc;
use strata_schemas::TenantId;

/// The real depth of a parsed tree, the quantity the estimate bounds.
fn tree_depth(e: &Expr) -> usize {
    1 + match e {
        Expr::Aggregate(a) => tree_depth(&a.expr).max(a.param.as_deref().map_or(0, tree_depth)),
        Expr::Unary(u) => tree_depth(&u.expr),
        Expr::Binary(b) => tree_depth(&b.lhs).max(tree_depth(&b.rhs)),
        Expr::Paren(p) => tree_depth(&p.expr),
        Expr::Subquery(s) => tree_depth(&s.expr),
        Expr::Call(c) => c.args.args.iter().map(|a| tree_depth(a)).max().unwrap_or(0),
        Expr::MatrixSelector(_) => 1,
        _ => 0,
    }
}

#[test]
fn estimates_simple_shapes() {
    assert_eq!(depth_estimate("up"), 1);
    assert_eq!(depth_estimate("abs(up)"), 2);
    assert_eq!(depth_estimate("1 + 1 + 1"), 3);
    assert_eq!(depth_estimate("-1"), 2);
    assert_eq!(depth_estimate("up{a=\"(((\", b!~\"x+y\"}"), 2, "matchers are one leaf");
    assert_eq!(depth_estimate("up # ((((((\n"), 1, "comments do not count");
    assert_eq!(depth_estimate("label_join(up, \"d\", \"+\", \"a\", \"b\")"), 2, "strings and commas do not count");
    assert_eq!(depth_estimate("up and up or up unless up"), 4);
    assert_eq!(depth_estimate("up >= bool 1"), 2, "one comparison operator");
    assert_eq!(depth_estimate("rate(x[5m])"), 4, "a range adds a level (and its brackets one more)");
    assert_eq!(depth_estimate(")))up((("), 4, "unbalanced text is bounded, the parser rejects it");
}

#[test]
fn refuses_the_hostile_queries_of_issue_13_and_keeps_ordinary_ones() {
    let chain = vec!["1"; 3000].join("+");
    let abs = format!("{}up{}", "abs(".repeat(3000), ")".repeat(3000));
    let sum = format!("{}up{}", "sum(".repeat(3000), ")".repeat(3000));
    let parens = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    for q in [&chain, &abs, &sum, &parens] {
        let e = check(q, DEFAULT_MAX_QUERY_LENGTH).expect_err("too deep");
        assert!(e.contains("nested too deeply") && e.contains(&format!("limit {MAX_EXPR_DEPTH}")), "{e}");
    }
    let long = format!("up{{a=\"{}\"}}", "x".repeat(DEFAULT_MAX_QUERY_LENGTH));
    assert!(check(&long, DEFAULT_MAX_QUERY_LENGTH).expect_err("too long").contains("query.max_query_length"));
    assert!(check(&long, 0).is_ok(), "0: no length limit");
    let dashboard = "sum by (site) (rate(http_requests_total{job=~\"api|web\", code!~\"5..\"}[5m])) \
                     / on (site) group_left sum by (site) (rate(http_requests_total[5m])) > bool 0.5";
    assert!(check(dashboard, DEFAULT_MAX_QUERY_LENGTH).is_ok());
    assert!(check(&vec!["x"; MAX_EXPR_DEPTH].join(" + "), 0).is_ok(), "a chain of MAX_EXPR_DEPTH terms");
}

/// The deepest accepted query of each shape; its estimate is exactly [`MAX_EXPR_DEPTH`].
fn deepest(shape: &str) -> String {
    let k = MAX_EXPR_DEPTH - 1;
    let nest = |open: &str, leaf: &str, close: &str| format!("{}{leaf}{}", open.repeat(k), close.repeat(k));
    let q = match shape {
        "parens" => nest("(", "x", ")"),
        "abs" => nest("abs(", "x", ")"),
        "sum" => nest("sum by (a) (", "x", ")"),
        "label_replace" => {
            let mut q = "x".to_owned();
            for _ in 0..k {
                q = format!("label_replace({q}, \"b\", \"$1\", \"a\", \"(.*)\")");
            }
            q
        }
        "scalar_chain" => vec!["1"; k + 1].join(" + "),
        "vector_chain" => vec!["x"; k].join(" * on (a) "),
        "unary" => format!("{}x", "-".repeat(k)),
        "subquery" => {
            // Each level is a call and a subquery: two levels.
            let mut q = "x".to_owned();
            for _ in 0..(MAX_EXPR_DEPTH - 2) / 2 {
                q = format!("max_over_time({q}[3m:1m])");
            }
            q
        }
        other => panic!("{other}"),
    };
    assert!(depth_estimate(&q) <= MAX_EXPR_DEPTH && depth_estimate(&q) >= MAX_EXPR_DEPTH - 1, "{shape}");
    q
}

const SHAPES: [&str; 8] =
    ["parens", "abs", "sum", "label_replace", "scalar_chain", "vector_chain", "unary", "subquery"];

/// Every recursive walk of the deepest accepted query of each shape fits in
/// half of the stack a query runs on (the server's workers and blocking
/// threads, QUERY_THREAD_STACK_BYTES), in a debug build: parse, `Display`, pretty-printing,
/// the `parse_query` tree, instant and range evaluation, and `Drop`.
#[test]
fn deepest_accepted_queries_run_on_half_a_query_stack() {
    let store = MemStore::new();
    let t = TenantId::default_tenant();
    store.load(&t, 60_000, "x{a=\"1\"} 1 2 3 4 5 6 7 8 9 10").unwrap();
    let engine = Arc::new(Engine::new(Arc::new(store), QueryConfig::default()));
    for shape in SHAPES {
        let q = deepest(shape);
        let engine = Arc::clone(&engine);
        let t = t.clone();
        let run = std::thread::Builder::new()
            .stack_size(QUERY_THREAD_STACK_BYTES / 2)
            .spawn(move || {
                let expr = engine.parse(&q).expect("accepted");
                assert!(tree_depth(&expr) <= MAX_EXPR_DEPTH, "the estimate bounds the tree");
                let _ = expr.to_string();
                let _ = expr.pretty(0, 100);
                let _ = ast::translate(&expr).to_string();
                drop(expr);
                engine.query_instant(&t, &q, 9 * 60_000).expect("instant");
                engine.query_range(&t, &q, 0, 9 * 60_000, 60_000).expect("range");
            })
            .unwrap();
        assert!(run.join().is_ok(), "{shape}");
    }
}

/// Random expressions from a small grammar (leaves, calls, aggregations,
/// operators, parentheses, subqueries).
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_owned()),
        Just("1".to_owned()),
        Just("x{a=\"(\"}".to_owned()),
        Just("vector(1)".to_owned()),
    ];
    leaf.prop_recursive(8, 64, 3, |inner| {
        let op = prop_oneof![Just("+"), Just("-"), Just("*"), Just(" and "), Just(" > bool "), Just(" or "), Just("^")];
        prop_oneof![
            inner.clone().prop_map(|e| format!("({e})")),
            inner.clone().prop_map(|e| format!("-{e}")),
            inner.clone().prop_map(|e| format!("abs({e})")),
            inner.clone().prop_map(|e| format!("sum by (a) ({e})")),
            inner.clone().prop_map(|e| format!("max_over_time(({e})[5m:1m])")),
            (inner.clone(), op, inner).prop_map(|(l, o, r)| format!("{l}{o}{r}")),
        ]
    })
}

proptest! {
    #[test]
    fn the_estimate_bounds_the_tree_depth(q in expr()) {
        if let Ok(e) = promql_parser::parser::parse(&q) {
            prop_assert!(depth_estimate(&q) >= tree_depth(&e), "{} {} < {}", q, depth_estimate(&q), tree_depth(&e));
        }
    }
}
