//! `/api/webhooks`: the endpoints told when a user's transcriptions end, the secret that
//! signs per-job callbacks, and the record of every delivery.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use hark_core::scopes::Scope;
use hark_store::StoreError;
use hark_store::webhooks::{Delivery, NewWebhook, Webhook};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::tokens::actor;
use super::uploads::checked_url;
use super::{query_pairs, query_value};
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::state::AppState;
use crate::webhooks::{COMPLETED, EVENTS, FAILED};

const DEFAULT_EVENTS: [&str; 2] = [COMPLETED, FAILED];

/// Most webhooks one user may register.
const MAX_WEBHOOKS_PER_USER: usize = 10;
/// Most deliveries one listing returns.
const MAX_LISTED_DELIVERIES: i64 = 100;

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// `transcription.completed`, `transcription.failed`, `token.new_ip`,
    /// `token.revoked_by_value`, `token.expiring`.
    pub events: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        WebhookView {
            id: w.id,
            url: w.url.clone(),
            description: w.description.clone(),
            events: w.events.clone(),
            created_at: w.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
    /// When the callback signing secret was made; `null` while there is none (per-job
    /// callbacks then go unsigned).
    #[serde(with = "time::serde::rfc3339::option")]
    pub callback_secret_created_at: Option<OffsetDateTime>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An http(s) URL; internal addresses are refused unless the server allows them.
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Default: `transcription.completed` and `transcription.failed` (token events are
    /// asked for by name).
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret: shown only here. Deliveries carry
    /// `X-Hark-Signature: sha256=<hex HMAC-SHA256 of the body under this secret>`.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecretCreated {
    /// Signs every per-job callback from now on (the previous secret stops at once); shown
    /// only here.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    /// `null` for a per-job callback.
    pub webhook_id: Option<i64>,
    pub recording_id: Option<i64>,
    pub event: String,
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    pub attempts: i64,
    /// The receiver's last HTTP status.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it goes out next, while `pending`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        use hark_store::webhooks::DeliveryStatus;
        DeliveryView {
            id: d.id,
            webhook_id: d.webhook_id,
            recording_id: d.recording_id,
            event: d.event.clone(),
            url: d.url.clone(),
            status: d.status.as_str(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            next_attempt_at: (d.status == DeliveryStatus::Pending).then_some(d.next_attempt_at),
            delivered_at: d.delivered_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

/// A new signing secret: 40 base62 characters (about 238 bits).
fn new_secret() -> String {
    format!("whsec_{}", hark_core::tokens::random_base62(40))
}

#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<WebhookList>, ApiError> {
    principal.require(Scope::Read)?;
    let hooks = state.store.webhooks();
    Ok(Json(WebhookList {
        webhooks: hooks
            .list(principal.user_id)
            .await?
            .iter()
            .map(WebhookView::from)
            .collect(),
        callback_secret_created_at: hooks.callback_secret_created(principal.user_id).await?,
    }))
}

#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, description = "Created; `secret` is shown only here", body = WebhookCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Too many webhooks", body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    principal.require(Scope::Write)?;
    let url = checked_url(&state, "url", &body.url)?;
    let description = body.description.unwrap_or_default().trim().to_owned();
    if description.chars().count() > 200 || description.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "description: at most 200 characters on one line",
        ));
    }
    let events = match body.events {
        // Token events are asked for by name: receivers made for transcriptions keep
        // getting only those.
        None => DEFAULT_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        Some(events) if events.is_empty() => {
            return Err(ApiError::bad_request("events: name at least one event"));
        }
        Some(mut events) => {
            if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err(ApiError::bad_request(format!(
                    "events: {unknown:?} is not one of {}",
                    EVENTS.join(", ")
                )));
            }
            events.sort();
            events.dedup();
            events
        }
    };
    let hooks = state.store.webhooks();
    if hooks.list(principal.user_id).await?.len() >= MAX_WEBHOOKS_PER_USER {
        return Err(ApiError::Conflict(format!(
            "at most {MAX_WEBHOOKS_PER_USER} webhooks per user; delete one first"
        )));
    }
    let secret = new_secret();
    let webhook = hooks
        .create(&NewWebhook {
            user_id: principal.user_id,
            url: url.to_string(),
            description,
            events,
            secret: secret.clone(),
        })
        .await?;
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, client_ip),
            "webhook.created",
            &format!("webhook:{}", webhook.id),
            None,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook: WebhookView::from(&webhook),
            secret,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted; deliveries still owed to it are given up"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Write)?;
    state
        .store
        .webhooks()
        .delete(principal.user_id, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("webhook"),
            other => other.into(),
        })?;
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, client_ip),
            "webhook.deleted",
            &format!("webhook:{id}"),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/webhooks/callback-secret", tag = "webhooks",
    responses((status = 201, description = "A new secret for per-job callbacks; shown only here", body = SecretCreated),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn rotate_callback_secret(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<SecretCreated>), ApiError> {
    principal.require(Scope::Write)?;
    let secret = new_secret();
    state
        .store
        .webhooks()
        .set_callback_secret(principal.user_id, &secret)
        .await?;
    state
        .store
        .audit()
        .record(
            &actor(&principal, &headers, client_ip),
            "webhook.callback_secret_rotated",
            &format!("user:{}", principal.user_id),
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(SecretCreated { secret })))
}

#[utoipa::path(get, path = "/api/webhooks/deliveries", tag = "webhooks",
    params(("webhook_id" = Option<i64>, Query, description = "Only this webhook's"),
        ("limit" = Option<i64>, Query, description = "1 to 100 (default 50)")),
    responses((status = 200, description = "Newest first", body = DeliveryList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    principal.require(Scope::Read)?;
    let pairs = query_pairs(query.as_deref())?;
    let number = |key: &str| -> Result<Option<i64>, ApiError> {
        query_value(&pairs, key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{key}: a whole number")))
            })
            .transpose()
    };
    let webhook_id = number("webhook_id")?;
    let limit = number("limit")?.unwrap_or(50);
    if !(1..=MAX_LISTED_DELIVERIES).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: 1 to {MAX_LISTED_DELIVERIES}"
        )));
    }
    let deliveries = state
        .store
        .webhooks()
        .deliveries(principal.user_id, webhook_id, limit)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: deliveries.iter().map(DeliveryView::from).collect(),
    }))
}
