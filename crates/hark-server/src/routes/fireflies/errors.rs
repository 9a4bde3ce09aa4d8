//! Fireflies' error shape: every error carries `code` and `friendly: true` at its top level
//! and `{code, status, metadata?}` under `extensions`, so clients written against Fireflies
//! can branch on the code. async-graphql only fills `extensions`; [`fireflies_shape`]
//! copies the code up, in one place, for every error a response holds.

use async_graphql::{ErrorExtensions, Value as GqlValue};
use axum::http::StatusCode;
use hark_store::StoreError;
use serde_json::{Value, json};

use crate::error::ApiError;

/// The codes hark answers with (a subset of Fireflies' documented ones, plus `auth_failed`
/// from its FAQ and `payload_too_large`, which Fireflies does not document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AuthFailed,
    Forbidden,
    ObjectNotFound,
    InvalidArguments,
    ArgsRequired,
    RequireElevatedPrivilege,
    AdminMustExist,
    TooManyRequests,
    PayloadTooLarge,
    /// Storage did not answer; worth retrying (hark's own: Fireflies documents none).
    ServiceUnavailable,
    InvariantViolation,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::AuthFailed => "auth_failed",
            Code::Forbidden => "forbidden",
            Code::ObjectNotFound => "object_not_found",
            Code::InvalidArguments => "invalid_arguments",
            Code::ArgsRequired => "args_required",
            Code::RequireElevatedPrivilege => "require_elevated_privilege",
            Code::AdminMustExist => "admin_must_exist",
            Code::TooManyRequests => "too_many_requests",
            Code::PayloadTooLarge => "payload_too_large",
            Code::ServiceUnavailable => "service_unavailable",
            Code::InvariantViolation => "invariant_violation",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::AuthFailed => StatusCode::UNAUTHORIZED,
            Code::Forbidden | Code::RequireElevatedPrivilege => StatusCode::FORBIDDEN,
            Code::ObjectNotFound => StatusCode::NOT_FOUND,
            Code::InvalidArguments | Code::ArgsRequired | Code::AdminMustExist => {
                StatusCode::BAD_REQUEST
            }
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::InvariantViolation => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One Fireflies error. It is deliberately not `Display`, so the only way into an
/// `async_graphql::Error` is the conversion below, which keeps the code.
#[derive(Debug, Clone)]
pub struct FfError {
    pub code: Code,
    pub message: String,
    pub metadata: Option<Value>,
}

impl FfError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        FfError {
            code,
            message: message.into(),
            metadata: None,
        }
    }

    /// `invalid_arguments` naming the fields at fault.
    pub fn invalid(fields: &[&str], message: impl Into<String>) -> Self {
        FfError {
            metadata: Some(json!({ "fields": fields })),
            ..FfError::new(Code::InvalidArguments, message)
        }
    }

    /// `object_not_found` for a `Transcript`, `User`, ….
    pub fn not_found(object_type: &str) -> Self {
        FfError {
            metadata: Some(json!({ "objectType": object_type })),
            ..FfError::new(Code::ObjectNotFound, format!("{object_type} not found"))
        }
    }

    pub fn elevated(message: impl Into<String>) -> Self {
        FfError::new(Code::RequireElevatedPrivilege, message)
    }

    /// The error as a response's `errors` entry, already in Fireflies' shape.
    pub fn to_json(&self) -> Value {
        let mut extensions =
            json!({ "code": self.code.as_str(), "status": self.code.status().as_u16() });
        if let Some(metadata) = &self.metadata {
            extensions["metadata"] = metadata.clone();
        }
        json!({
            "message": self.message,
            "code": self.code.as_str(),
            "friendly": true,
            "extensions": extensions,
        })
    }
}

impl From<FfError> for async_graphql::Error {
    fn from(e: FfError) -> Self {
        async_graphql::Error::new(e.message.clone()).extend_with(|_, ext| {
            ext.set("code", e.code.as_str());
            ext.set("status", e.code.status().as_u16());
            if let Some(metadata) = &e.metadata
                && let Ok(value) = GqlValue::from_json(metadata.clone())
            {
                ext.set("metadata", value);
            }
        })
    }
}

impl From<ApiError> for FfError {
    fn from(err: ApiError) -> Self {
        FfError::from(&err)
    }
}

impl From<&ApiError> for FfError {
    fn from(err: &ApiError) -> Self {
        let message = err.to_string();
        match err {
            ApiError::AuthFailed => FfError::new(Code::AuthFailed, message),
            ApiError::Forbidden(_) | ApiError::IpNotAllowed => {
                FfError::new(Code::Forbidden, message)
            }
            ApiError::NotFound(what) => FfError::not_found(object_type(what)),
            // hark's messages start with the field at fault (`url: …`).
            ApiError::BadRequest { .. } => match message.split_once(": ") {
                Some((field, _)) if !field.contains(' ') => {
                    let field = field.to_owned();
                    FfError::invalid(&[&field], message)
                }
                _ => FfError::new(Code::InvalidArguments, message),
            },
            // The one conflict these operations meet: the last admin stepping down.
            ApiError::Conflict(_) => FfError::new(Code::AdminMustExist, message),
            ApiError::Rejected { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => {
                FfError::new(Code::PayloadTooLarge, message)
            }
            ApiError::Rejected { .. } => FfError::new(Code::InvalidArguments, message),
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                let retry_at = time::OffsetDateTime::now_utc()
                    + time::Duration::seconds(*retry_after_secs as i64);
                FfError {
                    metadata: Some(json!({
                        "retryAfter": (retry_at.unix_timestamp_nanos() / 1_000_000) as i64
                    })),
                    ..FfError::new(Code::TooManyRequests, message)
                }
            }
            ApiError::QuotaExceeded { resets_at } => FfError {
                metadata: Some(json!({
                    "retryAfter": (resets_at.unix_timestamp_nanos() / 1_000_000) as i64
                })),
                ..FfError::new(Code::TooManyRequests, message)
            },
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "GraphQL request failed: storage unavailable");
                FfError::new(Code::ServiceUnavailable, message)
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "GraphQL request failed");
                FfError::new(Code::InvariantViolation, "internal error")
            }
        }
    }
}

impl From<StoreError> for FfError {
    fn from(err: StoreError) -> Self {
        ApiError::from(err).into()
    }
}

/// Fireflies' object type names for hark's "not found" subjects.
fn object_type(what: &str) -> &'static str {
    match what {
        "recording" => "Transcript",
        "member" | "user" => "User",
        "project" => "Project",
        _ => "Object",
    }
}

/// Gives every error of a serialized response Fireflies' top-level `code` and `friendly`.
/// Errors async-graphql raised itself (parsing, validation, depth and complexity limits,
/// unknown fields) carry no code: they are the request's fault, `invalid_arguments`.
/// A field that failed is put back as `null` (async-graphql leaves it out; the GraphQL
/// spec, and clients that read `data.transcript`, want it there).
pub fn fireflies_shape(body: &mut Value) {
    let paths: Vec<Vec<Value>> = body
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("path")?.as_array().cloned())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(data) = body.get_mut("data") {
        for path in &paths {
            put_null(data, path);
        }
    }
    let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) else {
        return;
    };
    for error in errors {
        let Some(error) = error.as_object_mut() else {
            continue;
        };
        let extensions = error
            .entry("extensions")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        let Some(extensions) = extensions else {
            continue;
        };
        let code = extensions
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let fallback = Code::InvalidArguments;
                extensions.insert("code".into(), fallback.as_str().into());
                extensions.insert("status".into(), fallback.status().as_u16().into());
                fallback.as_str().to_owned()
            });
        error.insert("code".into(), code.into());
        error.insert("friendly".into(), true.into());
    }
}

/// Sets the field at `path` (names and list indexes) to `null` unless it has a value.
fn put_null(data: &mut Value, path: &[Value]) {
    let mut node = data;
    for (i, segment) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        if node.is_null() {
            *node = json!({});
        }
        node = match (segment, node) {
            (Value::String(key), Value::Object(object)) => {
                let child = object.entry(key.clone()).or_insert(Value::Null);
                if last {
                    return;
                }
                child
            }
            (Value::Number(index), Value::Array(items)) => {
                match index.as_u64().and_then(|i| items.get_mut(i as usize)) {
                    Some(item) if !last => item,
                    _ => return,
                }
            }
            _ => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_gets_a_top_level_code() {
        let mut body = json!({"data": null, "errors": [
            {"message": "Unknown field", "locations": []},
            {"message": "x", "extensions": {"code": "forbidden", "status": 403}},
        ]});
        fireflies_shape(&mut body);
        assert_eq!(body["errors"][0]["code"], "invalid_arguments");
        assert_eq!(body["errors"][0]["extensions"]["status"], 400);
        assert_eq!(body["errors"][0]["friendly"], true);
        assert_eq!(body["errors"][1]["code"], "forbidden");
        let mut body = json!({"data": null, "errors": [{"message": "x", "path": ["transcript"]}]});
        fireflies_shape(&mut body);
        assert_eq!(body["data"], json!({"transcript": null}));
        let mut body = json!({
            "data": {"transcripts": [{"id": "1", "user": {"name": "a"}}]},
            "errors": [{"message": "x", "path": ["transcripts", 0, "user", "num_transcripts"]}]
        });
        fireflies_shape(&mut body);
        assert_eq!(
            body["data"]["transcripts"][0]["user"],
            json!({"name": "a", "num_transcripts": null})
        );
    }

    #[test]
    fn hark_errors_map_to_fireflies_codes() {
        let e = FfError::from(ApiError::bad_request("url: refused"));
        assert_eq!(e.code, Code::InvalidArguments);
        assert_eq!(e.metadata, Some(json!({"fields": ["url"]})));
        let e = FfError::from(ApiError::NotFound("recording"));
        assert_eq!(
            e.to_json()["extensions"]["metadata"]["objectType"],
            "Transcript"
        );
        let e = FfError::from(ApiError::TooManyRequests {
            retry_after_secs: 5,
            limit: Some(1),
        });
        let at = e.to_json()["extensions"]["metadata"]["retryAfter"]
            .as_i64()
            .unwrap();
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        assert!((now + 4_000..=now + 6_000).contains(&at));
    }
}
