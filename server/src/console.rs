//! The web console at `/`: a small single-page app (hand-written HTML, CSS and
//! JavaScript, no build step) embedded in the binary with `include_str!`.
//!
//! | path | what |
//! |---|---|
//! | `GET /` | the console's page (`console/index.html`) |
//! | `GET /console/app.js`, `GET /console/app.css` | its script and style sheet |
//!
//! Pages (hash routing): `#/explorer` (PromQL, instant table and range graph),
//! `#/cardinality` (`/api/v1/status/tsdb`), `#/ingest` (`/api/v1/status/ingest`,
//! admin token), `#/storage` (work in progress from `/api/v1/status/tasks`
//! every 2 s, the cold tier from `/api/v1/status/cold`, and the
//! `strata_hot_*`, `strata_compactor_*`, `strata_cold_*` and
//! `strata_progress_*` families of `/metrics`), `#/tenants` (the admin API). The
//! console holds no data of its own: every request carries the token typed in
//! its token field (`Authorization: Bearer`), the server decides what that
//! token may see, and the console drops what it shows when the token changes.
//! While the node starts (log replay: [`crate::startup`]) these routes are
//! served already; a banner shows `/-/ready`'s 503 text until the node is
//! ready, then the page reloads its data.
//!
//! Every answer carries a strict `Content-Security-Policy` (scripts, styles
//! and requests from this origin only, no inline script, no framing).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// The policy every console answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The console's routes (`/` and `/console/*`); they need no token.
pub fn router() -> Router {
    Router::new().route("/", get(index)).route("/console/{file}", get(asset))
}

async fn index() -> Response {
    respond(INDEX_HTML, "text/html; charset=utf-8")
}

async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => respond(APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => respond(APP_CSS, "text/css; charset=utf-8"),
        "index.html" => respond(INDEX_HTML, "text/html; charset=utf-8"),
        _ => {
            let mut resp = (StatusCode::NOT_FOUND, "no such console file\n").into_response();
            secure(&mut resp);
            resp
        }
    }
}

fn respond(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    secure(&mut resp);
    resp
}

/// The security headers of every console answer.
fn secure(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Assets change with the binary; a stale cached script must not outlive an upgrade.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}
