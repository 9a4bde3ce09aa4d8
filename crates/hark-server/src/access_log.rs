//! One log line per request: method, path (tokens redacted), status, latency, token id.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::AccessLogSlot;

pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = redact(request.uri().path(), request.uri().query());
    let slot = AccessLogSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let latency_us = started.elapsed().as_micros() as u64;
    let status = response.status().as_u16();
    match slot.0.get() {
        Some(token_id) => {
            tracing::info!(target: "hark::access", %method, path, status, latency_us, token_id, "request")
        }
        None => {
            tracing::info!(target: "hark::access", %method, path, status, latency_us, "request")
        }
    }
    response
}

/// The path and query as logged: the `token` parameter's value, and anything that looks
/// like a hark token anywhere, become `REDACTED`.
pub fn redact(path: &str, query: Option<&str>) -> String {
    let mut out = redact_token_shapes(path);
    if let Some(query) = query {
        out.push('?');
        let parts: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("token") => format!("{key}=REDACTED"),
                _ => redact_token_shapes(pair),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

fn redact_token_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("hark_") {
        out.push_str(&rest[..pos]);
        let candidate = &rest[pos..];
        let end = candidate
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(candidate.len());
        out.push_str("REDACTED");
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_reach_the_log_line() {
        assert_eq!(
            redact("/api/recordings", Some("page=2&token=abc")),
            "/api/recordings?page=2&token=REDACTED"
        );
        assert_eq!(redact("/x", Some("TOKEN=abc")), "/x?TOKEN=REDACTED");
        assert_eq!(redact("/x/hark_pat_abc123", None), "/x/REDACTED");
        assert_eq!(
            redact("/x", Some("q=hark_key_zz9&b=1")),
            "/x?q=REDACTED&b=1"
        );
        assert_eq!(redact("/healthz", None), "/healthz");
    }
}
