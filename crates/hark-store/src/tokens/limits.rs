//! What a token may spend and where from: IP rules and audio budgets. Changing either is
//! a change cached verifications must see, so it goes through the change log.

use hark_core::networks::IpRules;
use hark_core::quotas::AudioQuota;
use time::OffsetDateTime;

use super::{TokenRecord, Tokens, record_change};
use crate::{Result, StoreError, from_millis, now_millis, to_millis};

/// A budgeted token's spending in its current period, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioUse {
    pub used_seconds: f64,
    pub period_start: Option<OffsetDateTime>,
}

impl Tokens<'_> {
    /// Active, listed tokens expiring before `before` whose owners were not yet told, each
    /// marked told in the same step: of nodes sweeping at once, one gets each token.
    pub async fn claim_expiry_notices(&self, before: OffsetDateTime) -> Result<Vec<TokenRecord>> {
        let now = now_millis();
        let due: Vec<i64> = on!(self.db, c => sqlx::query_scalar(
            "SELECT id FROM tokens
             WHERE expiry_noticed_at IS NULL AND revoked_at IS NULL AND NOT temporary
               AND expires_at > $1 AND expires_at <= $2
             ORDER BY id LIMIT 500",
        )
        .bind(now)
        .bind(to_millis(before))
        .fetch_all(c)
        .await)?;
        let mut claimed = Vec::new();
        for id in due {
            let won = on!(self.db, c => sqlx::query(
                "UPDATE tokens SET expiry_noticed_at = $1 WHERE id = $2 AND expiry_noticed_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
            if won == 1 {
                claimed.push(self.get(id).await?);
            }
        }
        Ok(claimed)
    }

    pub async fn set_ip_rules(&self, id: i64, rules: &IpRules) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let updated = on!(tx, c => sqlx::query(
            "UPDATE tokens SET allowed_cidrs = $1, denied_cidrs = $2 WHERE id = $3",
        )
        .bind(rules.allowed().join(","))
        .bind(rules.denied().join(","))
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        record_change(&mut tx, id, now_millis()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets (or with `None` lifts) a token's budget. What was used this period still counts.
    pub async fn set_audio_quota(&self, id: i64, quota: Option<AudioQuota>) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let updated = on!(tx, c => sqlx::query(
            "UPDATE tokens SET audio_quota_seconds = $1, audio_quota_refill = $2 WHERE id = $3",
        )
        .bind(quota.map(|q| q.seconds as i64))
        .bind(quota.map(|q| q.refill.as_str()))
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        record_change(&mut tx, id, now_millis()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Read fresh on every budgeted request: spending happens on whichever node ran the
    /// job, so no node's memory knows it.
    pub async fn audio_use(&self, id: i64) -> Result<AudioUse> {
        let row: Option<(f64, Option<i64>)> = on!(self.db, c => sqlx::query_as(
            "SELECT audio_used_seconds, audio_period_start FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let (used_seconds, start) = row.ok_or(StoreError::NotFound)?;
        Ok(AudioUse {
            used_seconds,
            period_start: start.map(from_millis),
        })
    }

    /// Adds audio spent in the period starting `period_start`; a charge in a later period
    /// starts that period's count afresh, and one dated before the stored period (a node
    /// whose clock is behind, or a budget changed from daily to monthly) is added to the
    /// current count rather than lost. One statement, so concurrent charges add up.
    pub async fn charge_audio(
        &self,
        id: i64,
        seconds: f64,
        period_start: OffsetDateTime,
    ) -> Result<()> {
        let start = to_millis(period_start);
        on!(self.db, c => sqlx::query(
            "UPDATE tokens SET
                 audio_used_seconds = CASE WHEN audio_period_start >= $1
                                           THEN audio_used_seconds + $2 ELSE $2 END,
                 audio_period_start = CASE WHEN audio_period_start >= $1
                                           THEN audio_period_start ELSE $1 END
             WHERE id = $3",
        )
        .bind(start)
        .bind(seconds)
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }
}
