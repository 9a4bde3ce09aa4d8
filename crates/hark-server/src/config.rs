use std::net::SocketAddr;

use time::Duration;

use crate::streams::StreamLimits;
use crate::tokens::TokenLimits;

/// Server settings; the binary fills them from flags and the environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Accept `?token=` (query strings end up in proxies' logs; some clients need it).
    pub allow_query_token: bool,
    /// How often buffered last-used times are written.
    pub last_used_flush_interval: std::time::Duration,
    /// How often the token change log is polled for revocations made elsewhere.
    pub token_change_poll_interval: std::time::Duration,
    /// How long cached verifications are trusted after the change log was last read; past
    /// it (the database unreachable) every request verifies against the store.
    pub token_cache_max_silence: std::time::Duration,
    /// Largest accepted audio upload.
    pub max_upload_bytes: usize,
    /// Largest accepted JSON body.
    pub max_json_bytes: usize,
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Requests a minute per token (0: no limit).
    pub token_requests_per_minute: u32,
    /// Failed token authentications a minute per client IP before it is locked out (0: no limit).
    pub failed_auths_per_minute: u32,
    /// Most active tokens per user and per workspace.
    pub token_limits: TokenLimits,
    /// Caps and timeouts of live streams.
    pub streams: StreamLimits,
    /// Let audio fetches and webhooks reach loopback, private and link-local addresses
    /// (unsafe on a server others can reach: it opens the internal network to them).
    pub fetch_allow_private: bool,
    /// On PostgreSQL, LISTEN for other nodes' token changes and queued jobs (else: poll).
    pub listen_for_changes: bool,
    /// Redis holding the per-token budgets every node shares (none: each node its own).
    pub redis_url: Option<String>,
    /// What hark's Redis keys start with (several deployments can share one Redis).
    pub redis_prefix: String,
    /// Answer GraphQL introspection (`__schema`, `__type`) at `/graphql`.
    pub graphql_introspection: bool,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` name the real client (none: the peer
    /// is the client, whatever headers say).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header those proxies write the client into (the other is never read).
    pub forwarded_header: crate::auth::ForwardedHeader,
    /// How long per-minute usage rows are kept (hourly views are built from them).
    pub usage_minutes_kept: time::Duration,
    /// How long per-day usage rows are kept.
    pub usage_days_kept: time::Duration,
    /// The pre-shared secret GitLab's token revocation calls send (none: the endpoint is off).
    pub gitlab_revocation_secret: Option<String>,
    /// Public keys GitHub signs secret-scanning alerts with, by key identifier (none: the
    /// endpoint is off).
    pub github_alert_keys: Vec<(String, p256::ecdsa::VerifyingKey)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_query_token: true,
            last_used_flush_interval: std::time::Duration::from_secs(5),
            token_change_poll_interval: std::time::Duration::from_millis(500),
            token_cache_max_silence: std::time::Duration::from_secs(3),
            max_upload_bytes: 512 * 1024 * 1024,
            max_json_bytes: 64 * 1024,
            session_ttl: Duration::hours(12),
            secure_cookies: false,
            token_requests_per_minute: 600,
            failed_auths_per_minute: 30,
            token_limits: TokenLimits::default(),
            streams: StreamLimits::default(),
            fetch_allow_private: false,
            listen_for_changes: true,
            graphql_introspection: true,
            redis_url: None,
            redis_prefix: "hark:".into(),
            trusted_proxies: Vec::new(),
            forwarded_header: Default::default(),
            usage_minutes_kept: time::Duration::days(7),
            usage_days_kept: time::Duration::days(400),
            gitlab_revocation_secret: None,
            github_alert_keys: Vec::new(),
        }
    }
}
