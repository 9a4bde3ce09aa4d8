//! Audio budgets: a token with one may transcribe (batch, synchronous or live) until its
//! seconds for the period are spent; past that, transcriptions are refused with
//! `quota_exceeded` until the refill. What was spent is read fresh from the store (any
//! node may have spent it) and charged in the usage flush, so a request that starts with
//! budget left runs to its end and the next one is refused.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hark_store::tokens::AudioUse;
use time::OffsetDateTime;

use crate::auth::{BudgetHolder, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// What is left of a budget, as answered in the `Audio-Quota-*` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub remaining_seconds: f64,
    pub resets_at: OffsetDateTime,
}

/// Filled for a budgeted token so every answer can say what is left.
#[derive(Clone, Default)]
pub struct BudgetSlot(pub Arc<OnceLock<Budget>>);

/// The budget `principal` spends from, as it stands; `None` when it has none.
pub async fn current(state: &AppState, principal: &Principal) -> Result<Option<Budget>, ApiError> {
    let Some(holder) = principal.budget() else {
        return Ok(None);
    };
    Ok(Some(of(state, holder).await?))
}

/// How long a read of what a budget spent is trusted. Spending reaches the store with the
/// usage flush anyway, so this adds at most a second to how far behind a refusal can be,
/// and spares a budgeted token's every answer a store round trip for its headers.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Most budgets remembered; past it the memory is cleared and refilled as asked.
const MAX_REMEMBERED: usize = 100_000;

/// Recent reads of what budgets spent, by holder.
#[derive(Default)]
pub struct SpentReads {
    reads: DashMap<i64, (Instant, AudioUse)>,
}

impl SpentReads {
    async fn get(&self, state: &AppState, holder: i64) -> Result<AudioUse, ApiError> {
        if let Some(entry) = self.reads.get(&holder)
            && entry.0.elapsed() < FRESH_FOR
        {
            return Ok(entry.1);
        }
        let spent = state.store.tokens().audio_use(holder).await?;
        if self.reads.len() >= MAX_REMEMBERED {
            self.reads.clear();
        }
        self.reads.insert(holder, (Instant::now(), spent));
        Ok(spent)
    }

    /// Forgets a holder whose spending just changed.
    fn forget(&self, holder: i64) {
        self.reads.remove(&holder);
    }
}

pub async fn of(state: &AppState, holder: BudgetHolder) -> Result<Budget, ApiError> {
    let spent = state.spent_reads.get(state, holder.token_id).await?;
    let now = OffsetDateTime::now_utc();
    Ok(Budget {
        remaining_seconds: holder
            .quota
            .remaining(spent.used_seconds, spent.period_start, now),
        resets_at: holder.quota.refill.next_reset(now),
    })
}

/// Refuses a transcription when the budget is spent.
pub async fn require_audio(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    match current(state, principal).await? {
        Some(budget) if budget.remaining_seconds <= 0.0 => Err(ApiError::QuotaExceeded {
            resets_at: budget.resets_at,
        }),
        _ => Ok(()),
    }
}

/// Writes what budgets were spent since the last flush. Each holder's period is the one
/// its budget is in now; a holder whose budget was lifted is not charged.
pub async fn charge(
    state: &AppState,
    spent: Vec<(i64, f64)>,
) -> Result<(), hark_store::StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut left = spent.into_iter();
    while let Some((token_id, seconds)) = left.next() {
        let result = async {
            let token = match state.store.tokens().get(token_id).await {
                Ok(token) => token,
                // Gone (a data dir moved): nothing left to charge.
                Err(hark_store::StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(e),
            };
            if let Some(quota) = token.audio_quota {
                let start = quota.refill.period_start(now);
                state
                    .store
                    .tokens()
                    .charge_audio(token_id, seconds, start)
                    .await?;
                state.spent_reads.forget(token_id);
            }
            Ok::<(), hark_store::StoreError>(())
        }
        .await;
        if let Err(err) = result {
            // Not charged yet: kept for the next flush, with everything after it.
            state.usage.spend(token_id, seconds);
            for (id, s) in left {
                state.usage.spend(id, s);
            }
            return Err(err);
        }
    }
    Ok(())
}
