//! hark's HTTP server: authentication, the REST API and its OpenAPI document.
//! Handlers are thin: they check the caller's rights, call `hark-core` rules and
//! `hark-store` repositories, and shape JSON.

mod access_log;
pub mod auth;
mod budgets;
pub mod config;
pub mod error;
mod leaks;
mod outbound;
mod routes;
mod security_headers;
pub mod state;
pub mod streams;
pub mod tokens;
pub mod transcription;
mod usage;
mod web;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use config::ServerConfig;
pub use routes::github_keys;
pub use state::AppState;

use crate::error::error_response;

/// The complete application: API routes, OpenAPI document, web UI, JSON fallbacks, limits,
/// logs.
pub fn app(state: AppState) -> Router {
    let (api, mut openapi) = routes::api();
    // The real-time handshake is one handler under several paths; the document says so.
    if let Some(item) = openapi.paths.paths.get("/v2").cloned() {
        openapi
            .paths
            .paths
            .insert("/api/v3/realtime".to_owned(), item.clone());
        let mut with_language = item;
        let language = utoipa::openapi::path::ParameterBuilder::new()
            .name("language")
            .parameter_in(utoipa::openapi::path::ParameterIn::Path)
            .required(utoipa::openapi::Required::True)
            .description(Some(
                "The language code, Speechmatics' form of the URL (e.g. `en`)",
            ))
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            ))
            .build();
        if let Some(op) = with_language.get.as_mut() {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(utoipa::openapi::RefOr::T(language));
        }
        openapi
            .paths
            .paths
            .insert("/v2/{language}".to_owned(), with_language);
    }
    let json_limit = state.config.max_json_bytes;
    api.merge(routes::realtime_aliases())
        .layer(Extension(Arc::new(openapi)))
        .merge(web::router())
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| -> Response {
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
                .into_response()
            },
        ))
        .layer(axum::middleware::from_fn(auth::limits::headers))
        .layer(axum::middleware::from_fn(security_headers::add))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access_log::log_request,
        ))
        .with_state(state)
}

/// The Fireflies-compatible GraphQL schema at `/graphql`, in schema definition language.
pub fn graphql_sdl() -> String {
    routes::fireflies::sdl()
}

/// Replaces the default panic report, which prints the panic's message — and a message
/// can quote request data such as a presented token — with one naming only where it
/// happened. The request itself still gets a plain 500 (see [`app`]).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "internal error (a panic; its message is not logged, as it may hold request data)");
    }));
}

/// Binds, starts the background tasks (last-used flushing, revocation polling, webhook
/// delivery) and the transcription workers, serves the whole API until `shutdown`
/// resolves, then drains requests and flushes what is buffered.
pub async fn serve(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state.clone());
    run_node(state, router, shutdown).await
}

/// A worker node (`hark worker`): the transcription workers and the webhook sender of a
/// deployment whose API runs elsewhere (`hark serve --workers 0`), sharing its database
/// and audio. Its port answers only `/healthz`, `/readyz` and `/metrics`.
pub async fn work(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = routes::operations()
        .fallback(|| async {
            error_response(StatusCode::NOT_FOUND, "not_found", "a worker serves no API")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access_log::log_request,
        ))
        .with_state(state.clone());
    run_node(state, router, shutdown).await
}

async fn run_node(
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(state.config.listen).await?;
    let addr = listener.local_addr()?;
    let background = spawn_background(state.clone());
    let feed = spawn_change_feed(state.clone());
    let workers = transcription::spawn_workers(&state);
    let sender = webhooks::delivery::spawn(state.clone());
    if !workers.is_empty()
        && let transcription::Backend::Embedded { model_dir } = &state.pipeline.config.backend
        && !model_dir.join("model.bin").is_file()
    {
        tracing::error!(
            model_dir = %model_dir.display(),
            "no Whisper model found: uploads will wait in the queue until one is installed \
             (scripts/fetch-model.sh DIR, then restart with --model-dir DIR)"
        );
    }
    if state.config.fetch_allow_private {
        tracing::warn!(
            "--fetch-allow-private: audio URLs and webhooks may reach loopback, private and \
             link-local addresses; anyone who can submit a URL can probe this network"
        );
    }
    tracing::info!(%addr, workers = workers.len(), "listening on http://{addr}");
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    background.abort();
    feed.abort();
    sender.abort();
    for worker in workers {
        worker.abort();
    }
    match usage::flush(&state).await {
        Ok(n) => tracing::info!(flushed = n, "shut down"),
        Err(e) => tracing::error!(error = %e, "could not write token use at shutdown"),
    }
    state.store.close().await;
    served
}

/// Listens to the other nodes' changes (PostgreSQL only): a token change is applied at
/// once rather than at the next poll, and a queued job wakes the idle workers. After a lost
/// connection the change log is read again, as notifications sent meanwhile are gone (the
/// regular poll catches up with anything missed until the feed is back).
fn spawn_change_feed(state: AppState) -> tokio::task::JoinHandle<()> {
    use hark_store::changes::Change;
    tokio::spawn(async move {
        if !state.config.listen_for_changes {
            return;
        }
        let mut feed = loop {
            match state.store.change_feed().await {
                Ok(Some(feed)) => break feed,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for changes yet; will retry");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        };
        loop {
            match feed.next().await {
                Ok(Change::Jobs) => state.pipeline.wake(),
                Ok(change @ (Change::Tokens | Change::Lost)) => {
                    if change == Change::Lost {
                        // Whatever was sent meanwhile is gone: read the log, look for work.
                        tracing::warn!("change feed lost its connection; reconnecting");
                        state.pipeline.wake();
                    }
                    if let Err(e) = state.auth.poll_changes().await {
                        tracing::warn!(error = %e, "token change read failed; the poll retries");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change feed cannot reconnect yet; will retry");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    })
}

fn spawn_background(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut flush = tokio::time::interval(state.config.last_used_flush_interval);
        let mut poll = tokio::time::interval(state.config.token_change_poll_interval);
        let mut sweep = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    if let Err(e) = usage::flush(&state).await {
                        tracing::warn!(error = %e, "token use flush failed; will retry");
                    }
                    if let Err(e) = usage::announce_expiring(&state).await {
                        tracing::warn!(error = %e, "expiry notices failed; will retry");
                    }
                }
                _ = poll.tick() => {
                    if let Err(e) = state.auth.poll_changes().await {
                        tracing::warn!(error = %e, "token change poll failed; will retry");
                    }
                }
                _ = sweep.tick() => {
                    if let Err(e) = state.store.sessions().delete_expired().await {
                        tracing::warn!(error = %e, "expired session sweep failed");
                    }
                    if let Err(e) = state.store.webhooks().prune_finished(webhooks::KEEP_DELIVERIES).await {
                        tracing::warn!(error = %e, "webhook delivery sweep failed");
                    }
                    if let Err(e) = usage::prune(&state).await {
                        tracing::warn!(error = %e, "token usage sweep failed");
                    }
                }
            }
        }
    })
}
