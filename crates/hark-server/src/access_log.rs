//! One log line per request: method, path (tokens redacted), status, latency, token id —
//! and the request's outcome counted in its token's usage.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use hark_core::usage::Outcome;

use crate::auth::AccessLogSlot;
use crate::error::ErrorCode;
use crate::state::AppState;

pub async fn log_request(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
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
            state.usage.count(*token_id, outcome_of(&response));
            tracing::info!(target: "hark::access", %method, path, status, latency_us, token_id, "request")
        }
        None => {
            tracing::info!(target: "hark::access", %method, path, status, latency_us, "request")
        }
    }
    response
}

/// What became of a request whose token verified: refusals after verification are the
/// token's budget or its rights; everything else counts as a use.
fn outcome_of(response: &Response) -> Outcome {
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    match (response.status(), code) {
        (_, Some("quota_exceeded")) => Outcome::QuotaExceeded,
        (StatusCode::TOO_MANY_REQUESTS, _) => Outcome::RateLimited,
        (StatusCode::FORBIDDEN, _) => Outcome::ScopeDenied,
        _ => Outcome::Ok,
    }
}

/// The path and query as logged, with secrets replaced by `REDACTED`: the value of a
/// `token` parameter and anything shaped like a hark token. Both are judged on the
/// *decoded* text (as the server reads it, up to a few layers of percent-encoding), since
/// `?%74oken=…` authenticates just like `?token=…`.
pub fn redact(path: &str, query: Option<&str>) -> String {
    let mut out = redact_token_shapes(&fully_decoded(path, false));
    if let Some(query) = query {
        out.push('?');
        for (n, pair) in query.split('&').enumerate() {
            if n > 0 {
                out.push('&');
            }
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = fully_decoded(raw_key, true);
            let value = fully_decoded(raw_value, true);
            if key.eq_ignore_ascii_case("token") || has_token_shape(&key) || has_token_shape(&value)
            {
                out.push_str(&redact_token_shapes(&key));
                out.push_str("=REDACTED");
            } else {
                out.push_str(pair);
            }
        }
    }
    out
}

/// Percent-decodes (and for query parts turns `+` into a space) until nothing changes,
/// at most four times, so nested encodings cannot smuggle a token past the check.
fn fully_decoded(text: &str, query_part: bool) -> String {
    let mut current = text.to_owned();
    for _ in 0..4 {
        let spaced = if query_part {
            current.replace('+', " ")
        } else {
            current.clone()
        };
        let next = percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn has_token_shape(text: &str) -> bool {
    text.contains("hark_")
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
    use proptest::prelude::*;

    /// Percent-encodes the bytes `encode` picks, once or twice.
    fn encoded(text: &str, encode: &[bool], twice: bool) -> String {
        let once: String = text
            .bytes()
            .zip(encode.iter().cycle())
            .map(|(b, &e)| {
                if e {
                    format!("%{b:02X}")
                } else {
                    char::from(b).to_string()
                }
            })
            .collect();
        if twice {
            once.replace('%', "%25")
        } else {
            once
        }
    }

    proptest! {
        /// However a token (or the `token` key) is encoded, the logged line holds no part of
        /// its secret body.
        #[test]
        fn no_encoding_smuggles_a_token_into_the_line(
            body in "[0-9A-Za-z]{38}",
            encode in proptest::collection::vec(any::<bool>(), 1..8),
            twice in any::<bool>(),
            as_key in any::<bool>(),
        ) {
            let token = format!("hark_pat_{body}");
            let query = if as_key {
                format!("{}={body}", encoded("token", &encode, twice))
            } else {
                format!("q={}", encoded(&token, &encode, twice))
            };
            let line = redact("/api/recordings", Some(&query));
            prop_assert!(!line.contains(&body[..12]), "{}", line);
            let path_line = redact(&format!("/x/{}", encoded(&token, &encode, twice)), None);
            prop_assert!(!path_line.contains(&body[..12]), "{}", path_line);
        }
    }

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

    #[test]
    fn encoded_forms_are_redacted_too() {
        // Built here rather than written out, so no token-shaped literal is committed.
        let token = format!("hark_pat_{}", "0123456789abcdefghijABCDEFGHIJ012345678");
        let encoded_key = format!("page=1&%74oken={token}");
        assert_eq!(
            redact("/api/recordings", Some(&encoded_key)),
            "/api/recordings?page=1&token=REDACTED"
        );
        let encoded_value = "q=hark%5Fpat%5F0123456789abcdefghij&b=2";
        assert_eq!(redact("/x", Some(encoded_value)), "/x?q=REDACTED&b=2");
        let twice = "q=hark%255Fpat%255Fabc";
        assert_eq!(redact("/x", Some(twice)), "/x?q=REDACTED");
        assert_eq!(redact("/x/%68ark_pat_abc", None), "/x/REDACTED");
        assert_eq!(redact("/x", Some("T%4FKEN=abc")), "/x?TOKEN=REDACTED");
        for logged in [
            redact("/x", Some(&encoded_key)),
            redact("/x", Some(encoded_value)),
            redact("/x", Some(twice)),
        ] {
            assert!(!logged.contains("0123456789"), "{logged}");
        }
        assert_eq!(
            redact("/x", Some("a=1&b=%20x")),
            "/x?a=1&b=%20x",
            "others kept as sent"
        );
    }
}
