//! Headers every response carries. API answers and user content (audio, transcripts) get
//! a policy that lets nothing run, so a response opened as a page is inert; the web UI's
//! own pages set their stricter-than-default policy themselves and keep it.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// No script, no styles, no frames, no plugins — and `sandbox`, so even HTML that got in
/// would run in an opaque origin without hark's cookies.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

pub async fn add(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(API_POLICY));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    response
}
