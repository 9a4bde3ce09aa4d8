//! The one place where failures become HTTP responses.

use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hark_core::DomainError;
use hark_store::StoreError;
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

/// The message every authentication failure shares, whatever the cause: telling a caller
/// *why* its token failed would help someone guessing tokens.
pub const AUTH_FAILED_MESSAGE: &str =
    "Authentication failed: send a valid, active API token or sign in.";

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{AUTH_FAILED_MESSAGE}")]
    AuthFailed,
    #[error("{0}")]
    Forbidden(String),
    /// A live token presented from an address its IP rules refuse.
    #[error("this token cannot be used from this address")]
    IpNotAllowed,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// `limit`: the caller's per-minute quota, when the limit is a token's (adds the
    /// `RateLimit-*` headers).
    #[error("too many requests; try again in {retry_after_secs} s")]
    TooManyRequests {
        retry_after_secs: u64,
        limit: Option<u32>,
    },
    /// The token's audio budget is spent until `resets_at`.
    #[error("this token's audio budget is spent; it refills at {}", rfc3339(*resets_at))]
    QuotaExceeded { resets_at: time::OffsetDateTime },
    /// Storage (the database or the bucket) cannot be reached: worth retrying. Details go
    /// to the log.
    #[error("storage is unavailable right now; try again shortly")]
    Unavailable(String),
    /// Details go to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "invalid_request",
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::AuthFailed => (StatusCode::UNAUTHORIZED, "auth_failed"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::IpNotAllowed => (StatusCode::FORBIDDEN, "ip_not_allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Rejected { status, .. } => (*status, rejection_code(*status)),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::QuotaExceeded { .. } => (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn rejection_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "invalid_request",
    }
}

/// The error code an answer carries, kept on the response for the usage count.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `auth_failed`, `forbidden`, `not_found`, `invalid_request`, …
    pub code: String,
    pub message: String,
}

pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "request failed: storage unavailable");
            }
            _ => {}
        }
        let mut response = error_response(status, code, &self.to_string());
        response.extensions_mut().insert(ErrorCode(code));
        if let ApiError::TooManyRequests {
            retry_after_secs,
            limit,
        } = self
        {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            if let Some(limit) = limit {
                crate::auth::limits::set_headers(headers, limit, 0, retry_after_secs);
            }
        }
        if let ApiError::QuotaExceeded { resets_at } = self {
            let wait = (resets_at - time::OffsetDateTime::now_utc())
                .whole_seconds()
                .max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait as u64));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hark\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        ApiError::bad_request(err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    /// A body of the wrong shape is a bad request like any other (axum says 422).
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ApiError::Rejected {
            status,
            message: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: rejection.body_text(),
        }
    }
}

impl From<MultipartError> for ApiError {
    fn from(err: MultipartError) -> Self {
        ApiError::Rejected {
            status: err.status(),
            message: err.body_text(),
        }
    }
}

/// JSON body extractor whose failures use hark's error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path extractor whose failures use hark's error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
