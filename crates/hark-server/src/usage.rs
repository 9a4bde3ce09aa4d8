//! Writing what tokens did and telling owners about the surprising part: a token used
//! from an address it was never used from gets a `token.new_ip` audit event and webhook.

use hark_store::audit::Actor;
use hark_store::usage::AddressUse;
use serde_json::json;
use time::OffsetDateTime;

use crate::state::AppState;
use crate::webhooks::{self, TOKEN_EXPIRING, TOKEN_NEW_IP};

/// Flushes buffered use and announces new addresses; how many uses were written.
pub async fn flush(state: &AppState) -> Result<usize, hark_store::StoreError> {
    // Budgets apart: a charge that cannot be written now is kept for the next flush and
    // must not hold back last uses and counts.
    if let Err(e) = crate::budgets::charge(state, state.usage.take_spent()).await {
        tracing::warn!(error = %e, "audio budget charges not written; will retry");
    }
    let flushed = state.usage.flush(&state.store).await?;
    for seen in &flushed.new_addresses {
        announce_new_address(state, seen).await;
    }
    Ok(flushed.uses)
}

async fn announce_new_address(state: &AppState, seen: &AddressUse) {
    let token = match state.store.tokens().get(seen.token_id).await {
        Ok(token) => token,
        Err(e) => {
            tracing::warn!(token_id = seen.token_id, error = %e, "could not read a token to announce its new address");
            return;
        }
    };
    let actor = Actor {
        workspace_id: token.workspace_id,
        user_id: Some(token.user_id),
        token_id: Some(token.id),
        ip: Some(seen.ip.clone()),
        user_agent: seen.user_agent.clone(),
        token_hash: None,
    };
    let target = format!("token:{}", token.id);
    if let Err(e) = state
        .store
        .audit()
        .record(&actor, TOKEN_NEW_IP, &target, Some(&seen.ip))
        .await
    {
        tracing::warn!(token_id = token.id, error = %e, "could not audit a token's new address");
    }
    let first_seen = seen
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    webhooks::token_event(
        state,
        &token,
        TOKEN_NEW_IP,
        json!({"ip": seen.ip, "user_agent": seen.user_agent, "first_seen": first_seen}),
    )
    .await;
}

/// How far ahead owners are told that a token expires (the listing's `expires_soon`).
const EXPIRY_NOTICE: time::Duration = time::Duration::days(7);

/// Tells the owners of tokens expiring within 7 days, once per token: a `token.expiring`
/// audit event (the UI's banner comes from the listing) and webhook.
pub async fn announce_expiring(state: &AppState) -> Result<(), hark_store::StoreError> {
    let before = OffsetDateTime::now_utc() + EXPIRY_NOTICE;
    for token in state.store.tokens().claim_expiry_notices(before).await? {
        let expires = token
            .expires_at
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let actor = Actor {
            workspace_id: token.workspace_id,
            user_id: Some(token.user_id),
            token_id: Some(token.id),
            ..Actor::default()
        };
        let target = format!("token:{}", token.id);
        let details = format!("expires {expires}");
        if let Err(e) = state
            .store
            .audit()
            .record(&actor, TOKEN_EXPIRING, &target, Some(&details))
            .await
        {
            tracing::warn!(token_id = token.id, error = %e, "could not audit a token's coming expiry");
        }
        webhooks::token_event(
            state,
            &token,
            TOKEN_EXPIRING,
            json!({"expires_at": expires}),
        )
        .await;
    }
    Ok(())
}

/// Drops rollups past their keeping time.
pub async fn prune(state: &AppState) -> Result<u64, hark_store::StoreError> {
    let now = OffsetDateTime::now_utc();
    state
        .store
        .usage()
        .prune(
            now - state.config.usage_minutes_kept,
            now - state.config.usage_days_kept,
        )
        .await
}
