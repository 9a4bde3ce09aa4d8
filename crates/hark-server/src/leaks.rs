//! Tokens reported found in public: revoked on sight, whoever reports them.
//!
//! Revoking by value needs no other credential — whoever holds a token can already use it
//! fully, and revoking grants strictly less. Each reported text is checked for shape and
//! checksum before any lookup (a typo or a random string costs no database read), then
//! looked up by hash; a live match is revoked, audited as `token.revoked_by_value` with the
//! reporter's address and source, and its owner is told (the token listing and banner in
//! the UI, and a `token.revoked_by_value` webhook). Callers answer the reporter the same
//! whether or not anything matched.

use std::net::IpAddr;

use hark_core::tokens::{self, TokenHash};
use hark_store::audit::Actor;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::webhooks::{self, TOKEN_REVOKED_BY_VALUE};

/// Most tokens one report may carry.
pub const MAX_PER_REPORT: usize = 100;

/// Where a report came from, as the audit event records it.
#[derive(Debug, Clone)]
pub struct Report {
    /// Who reported: `api`, `gitlab`, `github`, or what the reporter said.
    pub source: String,
    /// Where the token was found, if the reporter said.
    pub url: Option<String>,
    pub reporter_ip: Option<IpAddr>,
}

/// What became of one reported text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Not a hark token, or no token has that secret.
    Unknown,
    /// A hark token's secret; `revoked`: this report revoked it (false: it was already).
    Known { hash: TokenHash, revoked: bool },
}

/// Handles one report; the findings are in the order of `texts`. Each text is handled on
/// its own: one that cannot be handled now (storage unavailable) is logged and does not
/// stop the rest, and the first error is returned once all were tried.
pub async fn revoke_reported(
    state: &AppState,
    texts: &[String],
    report: &Report,
) -> Result<Vec<Finding>, ApiError> {
    let mut findings = Vec::with_capacity(texts.len());
    let mut first_error = None;
    for text in texts {
        match revoke_one(state, text.trim(), report).await {
            Ok(finding) => findings.push(finding),
            Err(e) => {
                tracing::error!(error = %e, source = %report.source, "a reported token could not be handled");
                findings.push(Finding::Unknown);
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(findings),
    }
}

async fn revoke_one(state: &AppState, text: &str, report: &Report) -> Result<Finding, ApiError> {
    let Ok(parsed) = tokens::parse(text) else {
        return Ok(Finding::Unknown);
    };
    let Some(found) = state.store.tokens().find_secret(&parsed.hash).await? else {
        return Ok(Finding::Unknown);
    };
    // A secret rotated away (its grace over) no longer speaks for the token: old secrets
    // live on in git history, and reporting one must not kill its successor.
    let now = time::OffsetDateTime::now_utc();
    if found.secret_retires_at.is_some_and(|t| t <= now) {
        return Ok(Finding::Unknown);
    }
    let token = found.record;
    let revoked = state.store.tokens().revoke_as_leaked(token.id).await?;
    state.auth.evict(token.id);
    if revoked {
        let actor = Actor {
            workspace_id: token.workspace_id,
            user_id: None,
            token_id: None,
            ip: report.reporter_ip.map(|ip| ip.to_string()),
            user_agent: None,
            token_hash: None,
        };
        let details = match &report.url {
            Some(url) => format!("source {}, found at {url}", report.source),
            None => format!("source {}", report.source),
        };
        let hash = parsed.hash.to_hex();
        state
            .store
            .audit()
            .record_about(
                &actor,
                TOKEN_REVOKED_BY_VALUE,
                &format!("token:{}", token.id),
                Some(&details),
                Some(&hash),
            )
            .await?;
        webhooks::token_event(
            state,
            &token,
            TOKEN_REVOKED_BY_VALUE,
            json!({"source": report.source, "url": report.url}),
        )
        .await;
    }
    Ok(Finding::Known {
        hash: parsed.hash,
        revoked,
    })
}
