//! Liveness and readiness probes; no authentication.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready`, `degraded` (serving, but transcriptions wait: see `reason`) or
    /// `unavailable`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        reason: None,
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.store.ping().await {
        // Still ready: the API serves and uploads queue safely; the reason says what waits.
        Ok(()) => match state.pipeline.engine_problem() {
            Some(problem) => (
                StatusCode::OK,
                Json(Health {
                    status: "degraded",
                    reason: Some(format!("transcriptions wait: {problem}")),
                }),
            ),
            None => (
                StatusCode::OK,
                Json(Health {
                    status: "ready",
                    reason: None,
                }),
            ),
        },
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    reason: None,
                }),
            )
        }
    }
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    Json(doc.as_ref()).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition: counters and gauges, never a secret", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = format!(
        "# HELP hark_token_store_lookups_total Token verifications that had to read the store (cache misses).\n\
         # TYPE hark_token_store_lookups_total counter\n\
         hark_token_store_lookups_total {}\n\
         # HELP hark_token_cache_entries Verified token secrets held in memory.\n\
         # TYPE hark_token_cache_entries gauge\n\
         hark_token_cache_entries {}\n\
         # HELP hark_auth_locked_out_addresses Client addresses locked out for failing authentication.\n\
         # TYPE hark_auth_locked_out_addresses gauge\n\
         hark_auth_locked_out_addresses {}\n{}",
        state.auth.store_lookups(),
        state.auth.cached_len(),
        state.limits.locked_out_addresses(),
        state.streams.metrics.render(),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
