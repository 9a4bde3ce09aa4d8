//! Serving stored audio from a bucket, with HTTP ranges (players seek with them). Local
//! files go through `ServeFile`, which does the same for a file.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::TryStreamExt;

use crate::error::ApiError;
use crate::state::AppState;

/// The blob under `key` as the response to a request with `headers`: 200 with all of it,
/// 206 with one asked-for range, 416 for a range past its end. Several ranges in one
/// request get the whole blob (a server may always answer a range request that way).
pub async fn serve_blob(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
    content_type: &str,
) -> Result<Response, ApiError> {
    let size = state.blobs.size(key).await?;
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size));
    let range = match asked {
        Some(Asked::Unsatisfiable) => {
            return Ok(Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .unwrap_or_default());
        }
        Some(Asked::Range(range)) => Some(range),
        Some(Asked::Whole) | None => None,
    };
    let read = state.blobs.read(key, range.clone()).await?;
    let length = read.range.end - read.range.start;
    let mut response = Response::new(Body::from_stream(read.body.map_err(std::io::Error::other)));
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!(
            "bytes {}-{}/{}",
            read.range.start,
            read.range.end.saturating_sub(1),
            read.size
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

#[derive(Debug, PartialEq)]
enum Asked {
    Whole,
    Range(std::ops::Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range of RFC 9110 (`a-b`, `a-`, `-n`) against a blob of `size` bytes.
fn parse_range(value: &str, size: u64) -> Asked {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Asked::Whole;
    };
    if spec.contains(',') {
        return Asked::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Asked::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => a..b.saturating_add(1).min(size),
        (Ok(a), Err(_)) if last.is_empty() => a..size,
        (Err(_), Ok(n)) if first.is_empty() && n > 0 => size.saturating_sub(n)..size,
        _ => return Asked::Whole,
    };
    if range.start >= size {
        Asked::Unsatisfiable
    } else {
        Asked::Range(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100), Asked::Range(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Asked::Range(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Asked::Range(90..100));
        assert_eq!(parse_range("bytes=-500", 100), Asked::Range(0..100));
        assert_eq!(parse_range("bytes=50-500", 100), Asked::Range(50..100));
        assert_eq!(parse_range("bytes=100-", 100), Asked::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Asked::Whole);
        assert_eq!(parse_range("bytes=9-2", 100), Asked::Whole);
        assert_eq!(parse_range("items=0-1", 100), Asked::Whole);
        assert_eq!(parse_range("bytes=-0", 100), Asked::Whole);
    }
}
