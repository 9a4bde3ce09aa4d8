//! Every route, registered once so the router and the OpenAPI document cannot disagree.

mod audio;
mod audit;
mod batch;
pub(crate) mod fireflies;
mod health;
mod leaks;
mod manage;
mod openai;
mod recordings;
mod session;
pub(crate) mod speechmatics;
mod tags;
mod token_usage;
mod tokens;
mod uploads;
mod webhooks;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "hark", description = "Self-hosted speech-to-text behind first-class API tokens."),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("x_api_token" = []), ("api_token" = []), ("query_token" = []), ("session" = [])),
    tags(
        (name = "tokens", description = "Personal access tokens: created once, stored as a hash, revoked instantly"),
        (name = "recordings", description = "Upload audio and read transcripts and summaries"),
        (name = "tags", description = "Per-user labels on recordings"),
        (name = "batch", description = "Scriptix-style batch sessions (tokens with the batch scope)"),
        (name = "speechmatics", description = "Speechmatics' batch API at /v2/jobs (batch keys or tokens with the batch scope)"),
        (name = "openai", description = "OpenAI-compatible transcription"),
        (name = "realtime", description = "Live transcription over WebSockets (Speechmatics' and OpenAI's protocols) and temporary keys"),
        (name = "webhooks", description = "Signed notifications when transcriptions end, and the record of their deliveries"),
        (name = "graphql", description = "Fireflies-compatible GraphQL (personal tokens and web sessions)"),
        (name = "auth", description = "Web sign-in"),
        (name = "operations", description = "Probes and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "x_api_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Token"))),
        );
        components.add_security_scheme(
            "api_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("API-Token"))),
        );
        components.add_security_scheme(
            "query_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("hark_session"))),
        );
    }
}

/// A query string's pairs, decoded; one that does not decode is a 400.
fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| ApiError::bad_request("the query string is not valid"))
}

/// A query parameter's value; an empty value counts as absent.
fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A 201 with `body` and a `Location` header pointing at where the new thing can be read.
fn created(location: &str, body: impl Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub use leaks::github_keys;

/// The API routes and the OpenAPI document describing exactly them.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (schemas, paths, upload) =
        routes!(recordings::upload_recording, recordings::list_recordings);
    // Uploads are streamed to disk and size-checked as they arrive, so the global body
    // limit (meant for JSON) does not apply to them.
    let upload = upload.layer(DefaultBodyLimit::disable());
    let (batch_schemas, batch_paths, batch_upload) = routes!(batch::submit);
    let (openai_schemas, openai_paths, openai_upload) = routes!(openai::transcriptions);
    // `/v2/jobs…` are static paths, so they win over the real-time `/v2/{language}`.
    let (sm_schemas, sm_paths, sm_jobs) = routes!(
        speechmatics::batch::create_job,
        speechmatics::batch::list_jobs
    );
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi_json))
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::current))
        .routes(routes!(session::setup_state, session::setup))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::token_self))
        .routes(routes!(tokens::revoke_token, token_usage::change_token))
        .routes(routes!(tokens::rotate_token))
        .routes(routes!(token_usage::token_usage))
        .routes(routes!(token_usage::key_usage))
        .routes(routes!(leaks::revoke_by_value))
        .routes(routes!(leaks::revocable_token_types))
        .routes(routes!(leaks::revoke_tokens))
        .routes(routes!(leaks::github_alert))
        .routes((schemas, paths, upload))
        .routes((
            batch_schemas,
            batch_paths,
            batch_upload.layer(DefaultBodyLimit::disable()),
        ))
        .routes(routes!(batch::session))
        .routes(routes!(batch::document))
        .routes((
            openai_schemas,
            openai_paths,
            openai_upload.layer(DefaultBodyLimit::disable()),
        ))
        .routes(routes!(openai::models))
        .routes(routes!(
            recordings::get_recording,
            recordings::delete_recording
        ))
        .routes(routes!(recordings::get_transcript))
        .routes(routes!(recordings::get_audio))
        .routes(routes!(recordings::download_transcript))
        .routes(routes!(recordings::get_summary))
        .routes(routes!(tags::list_tags, tags::create_tag))
        .routes(routes!(tags::delete_tag))
        .routes(routes!(tags::attach_tag))
        .routes(routes!(tags::detach_tag))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::delete_webhook))
        .routes(routes!(webhooks::rotate_callback_secret))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(audit::list_events))
        .routes(routes!(manage::list_members))
        .routes(routes!(manage::change_role, manage::remove_member))
        .routes(routes!(manage::list_projects, manage::create_project))
        .routes(routes!(manage::projects_for_members))
        .routes(routes!(manage::list_keys, manage::create_key))
        .routes(routes!(manage::revoke_key))
        .routes(routes!(manage::delete_project))
        .routes((
            sm_schemas,
            sm_paths,
            sm_jobs.layer(DefaultBodyLimit::disable()),
        ))
        .routes(routes!(
            speechmatics::batch::get_job,
            speechmatics::batch::delete_job
        ))
        .routes(routes!(speechmatics::batch::get_transcript))
        .routes(routes!(fireflies::graphql))
        .routes(routes!(speechmatics::api_keys::create_temporary_key))
        .routes(routes!(speechmatics::realtime::realtime))
        .routes(routes!(openai::realtime::realtime))
        .split_for_parts();
    document_rejections(&mut doc);
    (router, doc)
}

/// Adds the answers every operation can give before its handler runs, which its own
/// annotations leave out: 400 for a path parameter that does not parse, and 400 and 415
/// for a JSON body that does not parse or is not JSON.
fn document_rejections(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{Operation, ParameterIn};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let add = |op: &mut Operation| {
        let in_path = op
            .parameters
            .iter()
            .flatten()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
        let json_body = op.request_body.as_ref().is_some_and(
            |body| matches!(body, RefOr::T(b) if b.content.contains_key("application/json")),
        );
        let responses = &mut op.responses.responses;
        if in_path || json_body {
            responses
                .entry("400".into())
                .or_insert_with(|| error("A path parameter or the body does not parse"));
        }
        if json_body {
            responses.entry("415".into()).or_insert_with(|| {
                error("The body is not JSON (send Content-Type: application/json)")
            });
        }
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add(op);
        }
    }
}

/// The operations endpoints alone, for a worker node.
pub fn operations() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
}

/// The WebSocket routes beyond the one each handler's OpenAPI entry names.
pub fn realtime_aliases() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/v2/", get(speechmatics::realtime::realtime))
        .route("/v2/{language}", get(speechmatics::realtime::realtime))
        .route("/api/v3/realtime", get(speechmatics::realtime::realtime))
}
