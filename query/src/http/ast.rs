//! The JSON syntax tree of `/api/v1/parse_query`, shaped like Prometheus's
//! `web/api/v1/translate_ast.go` (what the Prometheus UI's tree view reads).

use crate::engine::eval_support::{duration_ms, offset_ms};
use promql_parser::label::MatchOp;
use promql_parser::parser::{AtModifier, Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use serde_json::{Value, json};

fn at_fields(at: &Option<AtModifier>) -> (Value, Value) {
    match at {
        None => (Value::Null, Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
        Some(AtModifier::At(t)) => (json!(crate::engine::eval_support::system_time_ms(*t)), Value::Null),
    }
}

fn matchers(vs: &VectorSelector) -> Value {
    let mut out: Vec<Value> = Vec::new();
    if let Some(n) = &vs.name {
        out.push(json!({"type": "=", "name": "__name__", "value": n}));
    }
    for m in &vs.matchers.matchers {
        let t = match m.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        out.push(json!({"type": t, "name": m.name, "value": m.value}));
    }
    Value::Array(out)
}

fn vector_selector(vs: &VectorSelector) -> Value {
    let (ts, soe) = at_fields(&vs.at);
    json!({
        "type": "vectorSelector",
        "name": vs.name.clone().unwrap_or_default(),
        "matchers": matchers(vs),
        "offset": offset_ms(&vs.offset),
        "timestamp": ts,
        "startOrEnd": soe,
    })
}

fn grouping(m: &Option<LabelModifier>) -> (Vec<String>, bool) {
    match m {
        None => (Vec::new(), false),
        Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
        Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
    }
}

/// Translates a parsed expression into Prometheus's JSON AST.
pub(crate) fn translate(e: &Expr) -> Value {
    match e {
        Expr::Aggregate(a) => {
            let (grouping, without) = grouping(&a.modifier);
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": translate(&a.expr),
                "param": a.param.as_deref().map_or(Value::Null, translate),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let m = b.modifier.clone().unwrap_or_default();
            let card = match &m.card {
                VectorMatchCardinality::OneToOne => "one-to-one",
                VectorMatchCardinality::ManyToOne(_) => "many-to-one",
                VectorMatchCardinality::OneToMany(_) => "one-to-many",
                VectorMatchCardinality::ManyToMany => "many-to-many",
            };
            let (labels, on) = match &m.matching {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
                None => (Vec::new(), false),
            };
            let include = m.card.labels().map(|l| l.labels.clone()).unwrap_or_default();
            let both_vectors = matches!(
                (b.lhs.value_type(), b.rhs.value_type()),
                (promql_parser::parser::value::ValueType::Vector, promql_parser::parser::value::ValueType::Vector)
            );
            let matching = if both_vectors {
                json!({"card": card, "labels": labels, "on": on, "include": include})
            } else {
                Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": translate(&b.lhs),
                "rhs": translate(&b.rhs),
                "matching": matching,
                "bool": m.return_bool,
            })
        }
        Expr::Call(c) => json!({
            "type": "call",
            "func": {"name": c.func.name, "argTypes": c.func.arg_types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                     "variadic": c.func.variadic, "returnType": c.func.return_type.to_string()},
            "args": c.args.args.iter().map(|a| translate(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(ms) => json!({
            "type": "matrixSelector",
            "range": duration_ms(&ms.range),
            "vectorSelector": vector_selector(&ms.vs),
        }),
        Expr::Subquery(sq) => {
            let (ts, soe) = at_fields(&sq.at);
            json!({
                "type": "subquery",
                "expr": translate(&sq.expr),
                "range": duration_ms(&sq.range),
                "offset": offset_ms(&sq.offset),
                "step": sq.step.as_ref().map_or(0, duration_ms),
                "timestamp": ts,
                "startOrEnd": soe,
            })
        }
        Expr::NumberLiteral(n) => json!({"type": "numberLiteral", "val": crate::http::json::format_float(n.val)}),
        Expr::StringLiteral(s) => json!({"type": "stringLiteral", "val": s.val}),
        Expr::Paren(p) => json!({"type": "parenExpr", "expr": translate(&p.expr)}),
        Expr::Unary(u) => json!({"type": "unaryExpr", "op": "-", "expr": translate(&u.expr)}),
        Expr::VectorSelector(vs) => vector_selector(vs),
        Expr::Extension(_) => json!({"type": "extension"}),
    }
}
