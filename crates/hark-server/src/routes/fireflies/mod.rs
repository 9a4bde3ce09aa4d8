//! The Fireflies dialect: its GraphQL API at `/graphql` and its upload webhook, translated
//! to hark's users, recordings and jobs.
//!
//! The HTTP side is hark's own: the same credential reading (personal tokens and web
//! sessions; project keys and management tokens are refused), the same per-token rate
//! limit and body limit. Refusals before execution (401, 403, 413, 429, a batch) are
//! answered in GraphQL's shape with Fireflies' codes; everything else is one GraphQL
//! execution answered with 200 (400 when the request did not validate).

mod errors;
mod mutations;
mod query;
mod schema;

use std::sync::OnceLock;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{EmptySubscription, Schema};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hark_core::tokens::TokenKind;
use hark_store::recordings::Recording;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use self::errors::{Code, FfError, fireflies_shape};
use self::mutations::Mutation;
use self::query::Query;
use self::schema::Caller;
use super::tokens::actor;
use crate::auth::limits::AllowanceSlot;
use crate::auth::{ClientIp, Credential, Principal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::webhooks::{self, Rendered};

/// Deepest selection accepted. hark's types nest at most three levels; the room above
/// that is for introspection: the standard query (graphql-js, gql) nests 13 deep.
const MAX_DEPTH: usize = 16;
/// Most complex query accepted: a field costs 1, a `transcripts` list its `limit` times
/// its selection, so 50 fully selected transcripts (about 2,500) pass and aliased
/// copies of them do not.
const MAX_COMPLEXITY: usize = 5_000;

type FirefliesSchema = Schema<Query, Mutation, EmptySubscription>;

/// Built once per process: the types never change, and introspection is switched off
/// per request by the server's flag.
fn schema() -> &'static FirefliesSchema {
    static SCHEMA: OnceLock<FirefliesSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(Query, Mutation, EmptySubscription)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish()
    })
}

/// The schema in GraphQL's schema definition language (`hark graphql-schema`).
pub fn sdl() -> String {
    schema().sdl()
}

/// A GraphQL request, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GraphqlRequest {
    /// One operation, e.g. `{ user { name integrations } }`. Batches (a JSON array) are refused.
    query: String,
    #[schema(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<serde_json::Map<String, Value>>,
}

/// A GraphQL answer: `data`, and `errors` each with Fireflies' `code` and `friendly`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GraphqlAnswer {
    data: Option<serde_json::Map<String, Value>>,
    errors: Option<Vec<GraphqlError>>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GraphqlError {
    message: String,
    /// `auth_failed`, `forbidden`, `object_not_found`, `invalid_arguments`, `args_required`,
    /// `require_elevated_privilege`, `admin_must_exist`, `too_many_requests`, ….
    code: String,
    friendly: bool,
    /// `{code, status, metadata?}`: `metadata.fields`, `metadata.objectType` or
    /// `metadata.retryAfter` (epoch ms), as the code calls for.
    extensions: serde_json::Map<String, Value>,
}

#[utoipa::path(post, path = "/graphql", tag = "graphql",
    request_body(content = GraphqlRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Executed; resolver errors are in `errors` with Fireflies' codes", body = GraphqlAnswer),
        (status = 400, description = "Not a GraphQL request, a batch, or a query that does not validate (too deep, too complex, unknown fields)", body = GraphqlAnswer),
        (status = 401, description = "`auth_failed`", body = GraphqlAnswer),
        (status = 403, description = "`forbidden`: project keys and management tokens", body = GraphqlAnswer),
        (status = 413, description = "Larger than the JSON body limit", body = GraphqlAnswer),
        (status = 429, description = "`too_many_requests`, with `Retry-After` and `X-RateLimit-*`", body = GraphqlAnswer)))]
pub async fn graphql(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    allowance: Option<Extension<AllowanceSlot>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut response = match principal.and_then(admitted) {
        Ok(principal) => {
            let actor = actor(&principal, &headers, client_ip);
            let caller = Caller {
                state: state.clone(),
                principal,
                actor,
            };
            execute(&state, caller, body).await
        }
        Err(err) => refusal(err),
    };
    if let Some(Extension(slot)) = allowance
        && let Some(a) = slot.0.get()
    {
        set_x_rate_limit(
            response.headers_mut(),
            Some(a.limit),
            a.remaining,
            a.reset_secs,
        );
    }
    response
}

/// Personal tokens and web sessions; other kinds of token have no business here.
fn admitted(principal: Principal) -> Result<Principal, ApiError> {
    match &principal.credential {
        Credential::Session => Ok(principal),
        Credential::Token { record, .. } if record.kind == TokenKind::Personal => Ok(principal),
        Credential::Token { record, .. } => Err(ApiError::forbidden(format!(
            "{} tokens cannot use the GraphQL API: use a personal access token",
            record.kind.as_str()
        ))),
    }
}

async fn execute(
    state: &AppState,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Code::PayloadTooLarge
            } else {
                Code::InvalidArguments
            };
            return errors_only(FfError::new(code, rejection.body_text()));
        }
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return errors_only(FfError::new(
            Code::InvalidArguments,
            "batched requests are not supported: send one operation per request",
        ));
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return errors_only(FfError::new(
                Code::InvalidArguments,
                format!("the body is not a GraphQL request ({{\"query\": …}}): {e}"),
            ));
        }
    };
    let mut request = request.data(caller);
    if !state.config.graphql_introspection {
        // async-graphql answers a disabled `__schema` with a silent null; say why instead.
        if request.parsed_query().is_ok_and(asks_for_introspection) {
            return errors_only(FfError::new(
                Code::InvalidArguments,
                "GraphQL introspection is turned off on this server",
            ));
        }
        request = request.disable_introspection();
    }
    let response = schema().execute(request).await;
    // Errors without a path come from parsing and validation: nothing was executed.
    let failed = !response.errors.is_empty() && response.errors.iter().all(|e| e.path.is_empty());
    let mut body = serde_json::to_value(&response).unwrap_or_else(|_| json!({}));
    if let Some(object) = body.as_object_mut() {
        object.entry("data").or_insert(Value::Null);
    }
    fireflies_shape(&mut body);
    let status = if failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, axum::Json(body)).into_response()
}

/// Does any selection of the document name `__schema` or `__type`?
fn asks_for_introspection(document: &ExecutableDocument) -> bool {
    fn selects(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                matches!(field.node.name.node.as_str(), "__schema" | "__type")
                    || selects(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => selects(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| selects(&op.node.selection_set.node))
        || document
            .fragments
            .values()
            .any(|f| selects(&f.node.selection_set.node))
}

/// `{"data": null, "errors": [error]}` with the error's status.
fn errors_only(error: FfError) -> Response {
    let body = json!({ "data": null, "errors": [error.to_json()] });
    (error.code.status(), axum::Json(body)).into_response()
}

/// A refusal before execution, with the headers hark's own answer would carry
/// (`WWW-Authenticate`, `Retry-After`, `RateLimit-*`) and Fireflies' `X-RateLimit-*`.
fn refusal(err: ApiError) -> Response {
    let limited = match &err {
        ApiError::TooManyRequests {
            retry_after_secs,
            limit,
        } => Some((*limit, *retry_after_secs)),
        _ => None,
    };
    let error = FfError::from(&err);
    let hark = err.into_response();
    let mut response = errors_only(error);
    *response.status_mut() = hark.status();
    for name in [
        header::WWW_AUTHENTICATE,
        header::RETRY_AFTER,
        HeaderName::from_static("ratelimit-limit"),
        HeaderName::from_static("ratelimit-remaining"),
        HeaderName::from_static("ratelimit-reset"),
    ] {
        if let Some(value) = hark.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    if let Some((limit, retry_after)) = limited {
        set_x_rate_limit(response.headers_mut(), limit, 0, retry_after);
    }
    response
}

/// The `X-RateLimit-*` headers Fireflies' SDK reads; the reset is an epoch second.
fn set_x_rate_limit(headers: &mut HeaderMap, limit: Option<u32>, remaining: u32, reset_secs: u64) {
    if let Some(limit) = limit {
        headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    }
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    let reset = time::OffsetDateTime::now_utc().unix_timestamp() + reset_secs as i64;
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

/// Fireflies' upload webhook body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadEvent<'a> {
    meeting_id: String,
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_reference_id: Option<&'a str>,
}

/// What an `uploadAudio` webhook receives when its job ends.
pub fn webhook(
    url: &str,
    event: &str,
    recording: &Recording,
    client_reference_id: Option<&str>,
) -> Rendered {
    let event_type = if event == webhooks::COMPLETED {
        "Transcription completed"
    } else {
        "Transcription failed"
    };
    Rendered::json(
        url,
        &UploadEvent {
            meeting_id: recording.id.to_string(),
            event_type,
            client_reference_id,
        },
    )
}
