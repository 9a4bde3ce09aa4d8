//! The web UI: one page and its script and stylesheet, compiled into the binary so hark
//! serves them offline with no CDN. A strict Content-Security-Policy allows only this
//! origin's own files (no inline script or style), so injected markup cannot run. The live
//! page's WebSocket to `/v2` is same-origin, which `connect-src 'self'` covers (CSP 3 lets
//! `'self'` match `ws:`/`wss:` on this host and port), and its AudioWorklet is a file here too.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const LIVE: &str = include_str!("assets/live.js");
const LIVE_WORKLET: &str = include_str!("assets/live-worklet.js");
const WEBHOOKS: &str = include_str!("assets/webhooks.js");
const TOKEN_USAGE: &str = include_str!("assets/token-usage.js");
const STYLE: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/live.js",
            get(|| async { asset(LIVE, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/webhooks.js",
            get(|| async { asset(WEBHOOKS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/token-usage.js",
            get(|| async { asset(TOKEN_USAGE, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/live-worklet.js",
            get(|| async { asset(LIVE_WORKLET, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
