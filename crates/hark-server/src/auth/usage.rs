//! Token use off the request path: verification notes each use in memory — its outcome,
//! where from, the speech it paid for — and a background task writes it all in batches
//! (last use, per-minute and per-day rollups, client addresses).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hark_core::usage::{Outcome, UsageCounts};
use hark_store::Store;
use hark_store::tokens::TokenUse;
use hark_store::usage::{AddressUse, UsageDelta};
use time::OffsetDateTime;

/// Most distinct (token, address) pairs held between flushes: beyond it a new pair waits
/// for the next use after a flush, so a flood of addresses cannot grow memory.
const MAX_PENDING_ADDRESSES: usize = 50_000;
/// Most (token, minute) rollups held between flushes.
const MAX_PENDING_ROLLUPS: usize = 200_000;

/// One request's use of a token, as verification saw it.
#[derive(Debug, Clone, Copy)]
pub struct Use<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

#[derive(Default)]
struct Pending {
    last_used: HashMap<i64, (OffsetDateTime, Option<IpAddr>)>,
    addresses: HashMap<(i64, IpAddr), (OffsetDateTime, Option<String>)>,
    rollups: HashMap<(i64, i64), UsageCounts>,
}

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<Pending>,
    /// Audio seconds spent from budgets, by the token holding the budget (written by
    /// `crate::budgets::charge`, which knows each budget's period).
    spent: Mutex<HashMap<i64, f64>>,
}

/// What a flush wrote.
#[derive(Debug, Default)]
pub struct Flushed {
    pub uses: usize,
    /// Uses from an address new to their token (for `token.new_ip`).
    pub new_addresses: Vec<AddressUse>,
}

fn minute_of(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp()).div_euclid(60)
}

impl UsageRecorder {
    fn with<R>(&self, f: impl FnOnce(&mut Pending) -> R) -> R {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut pending)
    }

    /// A successful verification: last use and address (the outcome is counted when the
    /// request's answer is known, by [`count`](Self::count)).
    pub fn touch(&self, token_id: i64, at: OffsetDateTime, seen: Use<'_>) {
        self.with(|p| {
            p.last_used.insert(token_id, (at, seen.ip));
            if let Some(ip) = seen.ip {
                let full = p.addresses.len() >= MAX_PENDING_ADDRESSES;
                match p.addresses.get_mut(&(token_id, ip)) {
                    Some(entry) => entry.0 = at,
                    None if !full => {
                        let agent = seen.user_agent.map(|a| a.chars().take(200).collect());
                        p.addresses.insert((token_id, ip), (at, agent));
                    }
                    None => {}
                }
            }
        });
    }

    pub fn count(&self, token_id: i64, outcome: Outcome) {
        self.rollup(token_id, |c| c.count(outcome));
    }

    /// Seconds of audio a token's batch job transcribed.
    pub fn add_audio(&self, token_id: i64, seconds: f64) {
        self.rollup(token_id, |c| c.audio_seconds += seconds);
    }

    /// Seconds of audio a token's live stream carried.
    pub fn add_stream(&self, token_id: i64, seconds: f64) {
        self.rollup(token_id, |c| c.stream_seconds += seconds);
    }

    /// Seconds to charge to the budget `holder` keeps.
    pub fn spend(&self, holder: i64, seconds: f64) {
        if seconds > 0.0 {
            let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
            *spent.entry(holder).or_default() += seconds;
        }
    }

    /// Takes the budget charges noted so far (the caller writes them).
    pub fn take_spent(&self) -> Vec<(i64, f64)> {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.drain().collect()
    }

    fn rollup(&self, token_id: i64, change: impl FnOnce(&mut UsageCounts)) {
        let minute = minute_of(OffsetDateTime::now_utc());
        self.with(|p| {
            let full = p.rollups.len() >= MAX_PENDING_ROLLUPS;
            let key = (token_id, minute);
            if full && !p.rollups.contains_key(&key) {
                return;
            }
            change(p.rollups.entry(key).or_default());
        });
    }

    /// Writes everything noted so far. What could not be written is kept for the next try
    /// (rollups only when nothing of them was written: adding them twice would double-count).
    pub async fn flush(&self, store: &Store) -> Result<Flushed, hark_store::StoreError> {
        let taken = self.with(std::mem::take);
        if taken.last_used.is_empty() && taken.addresses.is_empty() && taken.rollups.is_empty() {
            return Ok(Flushed::default());
        }
        if let Err(err) = store.usage().add(&deltas(&taken.rollups)).await {
            self.restore(taken, true);
            return Err(err);
        }
        match write_uses(store, &taken).await {
            Ok(flushed) => Ok(flushed),
            Err(err) => {
                self.restore(taken, false);
                Err(err)
            }
        }
    }

    /// Puts back what a failed flush took, within the same caps as new entries (a long
    /// outage drops the newest rollups and addresses rather than growing without bound).
    fn restore(&self, taken: Pending, with_rollups: bool) {
        self.with(|p| {
            for (id, used) in taken.last_used {
                p.last_used.entry(id).or_insert(used);
            }
            for (key, seen) in taken.addresses {
                if p.addresses.len() < MAX_PENDING_ADDRESSES || p.addresses.contains_key(&key) {
                    p.addresses.entry(key).or_insert(seen);
                }
            }
            if with_rollups {
                for (key, counts) in taken.rollups {
                    if p.rollups.len() < MAX_PENDING_ROLLUPS || p.rollups.contains_key(&key) {
                        p.rollups.entry(key).or_default().add(&counts);
                    }
                }
            }
        });
    }
}

fn deltas(rollups: &HashMap<(i64, i64), UsageCounts>) -> Vec<UsageDelta> {
    rollups
        .iter()
        .map(|((token_id, minute), counts)| UsageDelta {
            token_id: *token_id,
            at: OffsetDateTime::from_unix_timestamp(minute * 60)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            counts: *counts,
        })
        .collect()
}

/// Last uses and addresses: writing either twice does no harm.
async fn write_uses(store: &Store, taken: &Pending) -> Result<Flushed, hark_store::StoreError> {
    let uses: Vec<TokenUse> = taken
        .last_used
        .iter()
        .map(|(id, (at, ip))| TokenUse {
            token_id: *id,
            at: *at,
            ip: ip.map(|ip| ip.to_string()),
        })
        .collect();
    store.tokens().record_uses(&uses).await?;
    let addresses: Vec<AddressUse> = taken
        .addresses
        .iter()
        .map(|((token_id, ip), (at, agent))| AddressUse {
            token_id: *token_id,
            ip: ip.to_string(),
            at: *at,
            user_agent: agent.clone(),
        })
        .collect();
    let new_addresses = store.usage().note_addresses(&addresses).await?;
    Ok(Flushed {
        uses: uses.len(),
        new_addresses,
    })
}
