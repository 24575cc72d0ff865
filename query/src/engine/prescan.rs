//! A linear pre-scan of the query text that bounds its length and its
//! syntax-tree depth *before* promql-parser sees it.
//!
//! Why before: the parser, the evaluator, the pretty-printer, the
//! `parse_query` translation, `Display` and even `Drop` of the syntax tree
//! all recurse once per tree level. A 6 KB query of 3,000 nested `abs(` (or
//! the flat chain `1+1+…+1`, a left-nested tree 3,000 levels deep) overflowed
//! a 2 MiB thread stack and aborted the process. Bounding the depth here
//! bounds every later walk.
//!
//! ```text
//!  query text ──► length ≤ query.max_query_length ──► depth estimate ≤ MAX_EXPR_DEPTH ──► parser
//! ```
//!
//! The estimate is an upper bound of the tree depth. Each bracket group is a
//! frame; a frame's depth is `1 + operators in it + deepest child frame`,
//! because any root-to-leaf path of the tree goes through at most one node
//! per binary or unary operator of each group it crosses, plus the group
//! (parenthesis, call, aggregation) itself. Operators are `+ - * / % ^`, a
//! run of comparison characters (`== != < > <= >=`), the keywords `and`,
//! `or`, `unless` and `atan2`, and a `[` (a range or subquery node). The
//! contents of `{…}` (label matchers) and `[…]` (durations) hold no
//! sub-expressions and are not counted; string literals and comments are
//! skipped. Stray or unbalanced brackets are left to the parser to reject.

/// Deepest syntax tree a query may have (see the module doc for how depth is
/// estimated). Chosen so that every recursive walk stays within half of
/// [`QUERY_THREAD_STACK_BYTES`] in a debug build, where one level of
/// evaluation takes up to ~15 KB of stack (a `label_replace` call: `eval`,
/// `eval_node`, `eval_call`, the function; 5 KB for a parenthesis, 8 KB for a
/// binary operator), so 256 levels need under 4 MiB. Release builds use a
/// fraction of that. The `deepest_accepted_queries_run_on_half_a_query_stack`
/// test runs the deepest accepted query of each shape through parse, instant
/// and range evaluation, pretty-printing, `parse_query` translation, `Display`
/// and `Drop` on a 4 MiB stack. Prometheus has no such bound (Go stacks grow);
/// real dashboards stay far below it, and a sum of a couple of hundred named
/// series (`a + b + …`) still fits.
pub const MAX_EXPR_DEPTH: usize = 256;

/// Stack size of every thread a query runs on: the server's runtime builds
/// its async workers and blocking threads with it (tokio's default is 2 MiB).
/// [`MAX_EXPR_DEPTH`] is sized against half of it.
pub const QUERY_THREAD_STACK_BYTES: usize = 8 << 20;

/// Default of `query.max_query_length`: 64 KiB of query text.
pub const DEFAULT_MAX_QUERY_LENGTH: usize = 64 * 1024;

/// Refuses a query longer than `max_len` bytes (0: no length limit) or
/// deeper than [`MAX_EXPR_DEPTH`]; the reason names the limit (the caller
/// makes it a `bad_data` error about its parameter).
pub fn check(query: &str, max_len: usize) -> Result<(), String> {
    if max_len > 0 && query.len() > max_len {
        return Err(format!(
            "the query is {} bytes long, more than the limit of {max_len} bytes (query.max_query_length)",
            query.len()
        ));
    }
    let depth = depth_estimate(query);
    if depth > MAX_EXPR_DEPTH {
        return Err(format!(
            "the expression is nested too deeply (about {depth} levels, limit {MAX_EXPR_DEPTH}: max expression \
             depth); nested parentheses, function calls, aggregations, subqueries and chained operators each \
             add a level"
        ));
    }
    Ok(())
}

/// One bracket group being scanned.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The opening bracket (`b'('`, `b'['`, `b'{'`; `0` for the whole query).
    open: u8,
    /// Operators seen directly in this group.
    ops: usize,
    /// Depth of the deepest group closed inside this one.
    child: usize,
}

impl Frame {
    fn new(open: u8) -> Self {
        Self { open, ops: 0, child: 0 }
    }

    /// Whether operators in this group build tree levels (not inside `{…}` or `[…]`).
    fn counts(&self) -> bool {
        matches!(self.open, 0 | b'(')
    }

    fn depth(&self) -> usize {
        1usize.saturating_add(self.ops).saturating_add(self.child)
    }
}

/// An upper bound of the syntax-tree depth of `query`, in one pass.
pub(crate) fn depth_estimate(query: &str) -> usize {
    let b = query.as_bytes();
    let mut stack = vec![Frame::new(0)];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let top = stack.len() - 1;
        match c {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'{' | b'[' => {
                if c == b'[' && stack[top].counts() {
                    stack[top].ops += 1;
                }
                stack.push(Frame::new(c));
            }
            b')' | b'}' | b']' => close(&mut stack),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' if stack[top].counts() => stack[top].ops += 1,
            b'=' | b'!' | b'<' | b'>' | b'~' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'=' | b'!' | b'<' | b'>' | b'~') {
                    i += 1;
                }
                if stack[top].counts() && i > start {
                    stack[top].ops += 1;
                }
                continue;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b':' | b'.')) {
                    i += 1;
                }
                let word = &query[start..i];
                if stack[top].counts() && is_operator_keyword(word) {
                    stack[top].ops += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    stack[0].depth()
}

/// Ends the innermost group (a stray closing bracket at the top level is ignored).
fn close(stack: &mut Vec<Frame>) {
    if stack.len() > 1
        && let Some(f) = stack.pop()
        && let Some(parent) = stack.last_mut()
    {
        parent.child = parent.child.max(f.depth());
    }
}

fn is_operator_keyword(word: &str) -> bool {
    ["and", "or", "unless", "atan2"].iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// Index just past the string literal starting at `start` (or the end of the text).
fn skip_string(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests;
