use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use hark_server::streams::StreamLimits;
use hark_server::tokens::TokenLimits;
use hark_server::transcription::{Backend, PipelineConfig, Summaries};
use hark_server::{AppState, ServerConfig};
use hark_speech::remote::RemoteEngine;
use hark_speech::summary::ChatSummarizer;

use crate::cli::{ForwardedHeaderArg, ServeArgs, StorageArgs, StreamArgs};
use crate::logging;

/// What a process runs.
pub enum Node {
    /// `hark serve`: the API, plus `--workers` transcription workers.
    Api,
    /// `hark worker`: transcription workers and webhook delivery, no API.
    Worker,
}

pub async fn run(
    data_dir: PathBuf,
    storage: &StorageArgs,
    args: ServeArgs,
    node: Node,
) -> anyhow::Result<()> {
    logging::init(args.log_format, "info");
    hark_server::install_panic_hook();
    let store = crate::storage::open_store(&data_dir, storage).await?;
    let blobs = crate::storage::open_blobs(&data_dir, storage)?;
    tracing::info!(database = store.engine(), audio = %blobs.describe(), "storage opened");
    if !(0.05..=3600.0).contains(&args.last_used_flush_secs) {
        anyhow::bail!("--last-used-flush-secs must be between 0.05 and 3600");
    }
    let config = ServerConfig {
        listen: args.listen,
        allow_query_token: !args.no_query_token,
        last_used_flush_interval: Duration::from_secs_f64(args.last_used_flush_secs),
        max_upload_bytes: args.max_upload_mb.saturating_mul(1024 * 1024),
        secure_cookies: args.secure_cookies,
        fetch_allow_private: args.fetch_allow_private,
        listen_for_changes: !args.no_listen,
        redis_url: args.redis_url.clone().filter(|u| !u.trim().is_empty()),
        redis_prefix: args.redis_prefix.clone(),
        graphql_introspection: args.graphql_introspection && !args.no_graphql_introspection,
        token_requests_per_minute: args.token_rate_per_minute,
        failed_auths_per_minute: args.failed_auth_per_minute,
        token_limits: TokenLimits {
            per_user: args.max_tokens_per_user,
            per_workspace: args.max_tokens_per_workspace,
        },
        streams: stream_limits(&args.streams, &args.engine.model_dir(&data_dir))?,
        trusted_proxies: trusted_proxies(&args.trusted_proxies)?,
        forwarded_header: match args.forwarded_header {
            ForwardedHeaderArg::XForwardedFor => hark_server::auth::ForwardedHeader::XForwardedFor,
            ForwardedHeaderArg::Forwarded => hark_server::auth::ForwardedHeader::Forwarded,
        },
        usage_minutes_kept: time::Duration::days(i64::from(args.usage_minutes_days.clamp(1, 90))),
        usage_days_kept: time::Duration::days(i64::from(args.usage_days_kept.clamp(1, 3660))),
        gitlab_revocation_secret: match args.gitlab_revocation_secret.as_deref().map(str::trim) {
            Some(secret) if secret.len() < 16 => {
                anyhow::bail!("--gitlab-revocation-secret must be at least 16 characters")
            }
            secret => secret.map(str::to_owned),
        },
        github_alert_keys: match &args.github_alert_keys {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--github-alert-keys {}", path.display()))?;
                hark_server::github_keys(&text)
                    .map_err(|e| anyhow::anyhow!("--github-alert-keys {}: {e}", path.display()))?
            }
            None => Vec::new(),
        },
        ..ServerConfig::default()
    };
    if store.users().count().await? == 0 {
        tracing::warn!(
            "no users yet: create one with `hark admin create-user --username NAME --role admin`"
        );
    }
    match node {
        Node::Api if args.workers > 64 => anyhow::bail!("--workers must be between 0 and 64"),
        Node::Worker if args.workers == 0 || args.workers > 64 => {
            anyhow::bail!("--workers must be between 1 and 64 for a worker")
        }
        _ => {}
    }
    if !(1.0..=3600.0).contains(&args.job_lease_secs) {
        anyhow::bail!("--job-lease-secs must be between 1 and 3600");
    }
    let backend = match &args.remote_engine_url {
        Some(url) => Backend::Remote(
            RemoteEngine::new(url, &args.remote_engine_key, &args.remote_engine_model)
                .context("--remote-engine-url")?,
        ),
        None => Backend::Embedded {
            model_dir: args.engine.model_dir(&data_dir),
        },
    };
    let summaries = match &args.summary_url {
        Some(url) => Summaries::Chat(
            ChatSummarizer::new(url, &args.summary_key, &args.summary_model)
                .context("--summary-url")?,
        ),
        None => Summaries::Extractive,
    };
    let pipeline = PipelineConfig {
        workers: args.workers,
        backend,
        summaries,
        lease: time::Duration::seconds_f64(args.job_lease_secs),
        poll_interval: Duration::from_millis(500),
        max_attempts: args.job_attempts.clamp(1, 100),
        beam_size: args.engine.beam_size.clamp(1, 16),
        decode_limits: args.engine.decode_limits()?,
        model_retry: Duration::from_secs_f64(args.model_retry_secs.clamp(0.1, 3600.0)),
    };
    let state = AppState::new(store, blobs, config, pipeline).await?;
    match node {
        Node::Api => hark_server::serve(state, shutdown_signal()).await?,
        Node::Worker => hark_server::work(state, shutdown_signal()).await?,
    }
    Ok(())
}

fn trusted_proxies(list: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!("--trusted-proxies: {s:?} is not an address or CIDR network")
                })
        })
        .collect()
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn stream_limits(args: &StreamArgs, model_dir: &std::path::Path) -> anyhow::Result<StreamLimits> {
    if args.stream_idle_secs == 0 || args.stream_max_minutes == 0 {
        anyhow::bail!("--stream-idle-secs and --stream-max-minutes must be at least 1");
    }
    let vad_model = args.vad_model.clone().unwrap_or_else(|| {
        model_dir
            .parent()
            .unwrap_or(model_dir)
            .join("silero-vad")
            .join("silero_vad_16k.safetensors")
    });
    Ok(StreamLimits {
        per_key: args.max_streams_per_key,
        per_workspace: args.max_streams_per_workspace,
        per_server: args.max_streams.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        }),
        idle_timeout: Duration::from_secs(args.stream_idle_secs),
        max_session: Duration::from_secs(args.stream_max_minutes.saturating_mul(60)),
        vad_model: Some(vad_model),
    })
}
