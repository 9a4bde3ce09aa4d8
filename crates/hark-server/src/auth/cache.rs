//! Token verification, the hot path of every API request.
//!
//! A presented token is parsed (shape and checksum, no storage touched), hashed, and looked
//! up first in memory, then in the store. Cached entries are evicted when the store's
//! change log says a token was revoked or rotated — by this process or any other sharing
//! the database — so a revocation takes effect at once in the process that made it, at
//! once on PostgreSQL nodes woken by the change feed, and within one poll interval
//! everywhere else. The cache fails closed: while the change log cannot be read (the
//! database is unreachable, so revocations may be going unseen), it is not trusted and
//! every request verifies against the store.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hark_core::roles::Role;
use hark_core::tokens::{self, TokenHash};
use hark_core::usage::Outcome;
use hark_store::Store;
use hark_store::audit::Actor;
use hark_store::tokens::{ParentState, SecretMatch, TokenRecord};
use time::OffsetDateTime;

use super::principal::{BudgetHolder, Credential, Principal};
use super::usage::{UsageRecorder, Use};
use crate::error::ApiError;

/// Entries beyond this are verified against the store every time instead of cached, so
/// memory stays bounded however many tokens exist.
const MAX_CACHED: usize = 100_000;

#[derive(Debug, Clone)]
struct CachedSecret {
    record: Arc<TokenRecord>,
    role: Role,
    retires_at: Option<OffsetDateTime>,
    parent: Option<ParentState>,
}

impl From<SecretMatch> for CachedSecret {
    fn from(m: SecretMatch) -> Self {
        CachedSecret {
            record: Arc::new(m.record),
            role: m.role,
            retires_at: m.secret_retires_at,
            parent: m.parent,
        }
    }
}

pub struct TokenAuthenticator {
    store: Store,
    cache: DashMap<TokenHash, CachedSecret>,
    /// Bumped on every eviction; a lookup that raced with one does not fill the cache.
    generation: AtomicU64,
    last_change_seen: AtomicI64,
    recorder: Arc<UsageRecorder>,
    /// Token lookups that went to the store (cache misses), for `/metrics`.
    store_lookups: AtomicU64,
    changed: tokio::sync::broadcast::Sender<i64>,
    /// When the change log was last read in full, as milliseconds since `started`.
    synced_at_ms: AtomicU64,
    started: Instant,
    /// How long the cache is trusted after the change log was last read.
    max_silence: Duration,
}

impl TokenAuthenticator {
    /// Starts watching the change log from its current end. The cache is trusted for
    /// `max_silence` after each successful read of the log.
    pub async fn new(
        store: Store,
        recorder: Arc<UsageRecorder>,
        max_silence: Duration,
    ) -> Result<Self, hark_store::StoreError> {
        let last = store.tokens().latest_change().await?;
        Ok(TokenAuthenticator {
            store,
            cache: DashMap::new(),
            generation: AtomicU64::new(0),
            last_change_seen: AtomicI64::new(last),
            recorder,
            store_lookups: AtomicU64::new(0),
            changed: tokio::sync::broadcast::channel(256).0,
            synced_at_ms: AtomicU64::new(0),
            started: Instant::now(),
            max_silence,
        })
    }

    /// 401 for anything that is not a live token; 403 for a live token whose owner may not
    /// use tokens, or used from an address its rules refuse. Notes the use (last use,
    /// address, a failure's outcome) without waiting on storage.
    pub async fn verify(&self, text: &str, seen: Use<'_>) -> Result<Principal, ApiError> {
        let parsed = tokens::parse(text).map_err(|_| ApiError::AuthFailed)?;
        self.verify_hash(parsed.hash, seen).await
    }

    /// [`verify`](Self::verify) for a token already parsed.
    pub async fn verify_hash(&self, hash: TokenHash, seen: Use<'_>) -> Result<Principal, ApiError> {
        self.decide(hash, seen, true).await
    }

    /// Whether a token still works from `ip`, without counting a use: streams keep only the
    /// hash and re-check it whenever a token changes, so the plaintext is not held for
    /// their life.
    pub async fn still_valid(&self, hash: TokenHash, ip: Option<IpAddr>) -> bool {
        let seen = Use {
            ip,
            user_agent: None,
        };
        self.decide(hash, seen, false).await.is_ok()
    }

    async fn decide(
        &self,
        hash: TokenHash,
        seen: Use<'_>,
        counted: bool,
    ) -> Result<Principal, ApiError> {
        let ip = seen.ip;
        let cached = if self.in_sync() {
            self.cache.get(&hash).map(|entry| entry.clone())
        } else {
            None
        };
        let secret = match cached {
            Some(secret) => secret,
            None => self.load(hash).await?,
        };
        let now = OffsetDateTime::now_utc();
        let record = &secret.record;
        // A temporary key's use is its parent's: it is not listed, and one is minted per
        // stream, so each would otherwise look like a new token from a new address.
        let usage_id = record.parent_id.unwrap_or(record.id);
        let refuse = |outcome: Outcome, err: ApiError| {
            if counted {
                self.recorder.count(usage_id, outcome);
            }
            Err(err)
        };
        // A temporary key dies with its parent: revoked or expired, it takes its children.
        if let Some(parent) = &secret.parent {
            if parent.revoked_at.is_some() {
                return refuse(Outcome::Revoked, ApiError::AuthFailed);
            }
            if parent.expires_at.is_some_and(|t| t <= now) {
                return refuse(Outcome::Expired, ApiError::AuthFailed);
            }
        }
        if record.revoked_at.is_some() {
            return refuse(Outcome::Revoked, ApiError::AuthFailed);
        }
        let expired = record.expires_at.is_some_and(|t| t <= now)
            || secret.retires_at.is_some_and(|t| t <= now);
        if expired {
            if counted {
                self.audit_expired_use(record, &hash, ip).await;
            }
            return refuse(Outcome::Expired, ApiError::AuthFailed);
        }
        if !secret.role.may_use_tokens() {
            return Err(ApiError::forbidden("viewers cannot use API tokens"));
        }
        // Checked after liveness, so a dead token's answer says nothing of its rules.
        let parent_rules = secret.parent.as_ref().map(|p| &p.ip_rules);
        if !record.ip_rules.permits(ip) || parent_rules.is_some_and(|r| !r.permits(ip)) {
            return refuse(Outcome::IpDenied, ApiError::IpNotAllowed);
        }
        if counted {
            self.recorder.touch(usage_id, now, seen);
        }
        let parent_quota = secret.parent.as_ref().and_then(|p| p.audio_quota);
        let budget = match (record.audio_quota, record.parent_id, parent_quota) {
            (Some(quota), _, _) => Some(BudgetHolder {
                token_id: record.id,
                quota,
            }),
            (None, Some(parent), Some(quota)) => Some(BudgetHolder {
                token_id: parent,
                quota,
            }),
            _ => None,
        };
        Ok(Principal {
            user_id: record.user_id,
            workspace_id: record.workspace_id,
            role: secret.role,
            credential: Credential::Token {
                retiring: secret.retires_at.is_some(),
                hash,
                budget,
                record: secret.record,
            },
        })
    }

    /// An expired token (or a rotated-away secret past its grace) was presented: worth
    /// telling admins, since something still uses it. Failures per address are rate
    /// limited, so this cannot be used to flood the log.
    async fn audit_expired_use(&self, record: &TokenRecord, hash: &TokenHash, ip: Option<IpAddr>) {
        let actor = Actor {
            workspace_id: record.workspace_id,
            user_id: Some(record.user_id),
            token_id: Some(record.id),
            ip: ip.map(|ip| ip.to_string()),
            user_agent: None,
            token_hash: Some(hash.to_hex()),
        };
        let target = format!("token:{}", record.id);
        if let Err(e) = self
            .store
            .audit()
            .record(&actor, "token.expired_use", &target, None)
            .await
        {
            tracing::warn!(error = %e, token_id = record.id, "could not audit an expired token's use");
        }
    }

    async fn load(&self, hash: TokenHash) -> Result<CachedSecret, ApiError> {
        let generation = self.generation.load(Ordering::Acquire);
        self.store_lookups.fetch_add(1, Ordering::Relaxed);
        let found = self.store.tokens().find_secret(&hash).await?;
        let secret = CachedSecret::from(found.ok_or(ApiError::AuthFailed)?);
        if self.cache.len() < MAX_CACHED
            && self.generation.load(Ordering::Acquire) == generation
            && self.in_sync()
        {
            self.cache.insert(hash, secret.clone());
        }
        Ok(secret)
    }

    /// Forgets every cached secret of a token and of the temporary keys it minted, so
    /// the next request re-reads the store.
    pub fn evict(&self, token_id: i64) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache
            .retain(|_, v| v.record.id != token_id && v.record.parent_id != Some(token_id));
        let _ = self.changed.send(token_id);
    }

    /// Token ids as they are evicted, for long-lived connections (streams) that must stop
    /// within moments of a revocation rather than at their next request.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<i64> {
        self.changed.subscribe()
    }

    /// Applies the change log written since the last poll, by any process.
    pub async fn poll_changes(&self) -> Result<usize, hark_store::StoreError> {
        let since = self.last_change_seen.load(Ordering::Acquire);
        let changes = self.store.tokens().changes_since(since).await?;
        for (_, token_id) in &changes {
            self.evict(*token_id);
        }
        if let Some((seq, _)) = changes.last() {
            self.last_change_seen.store(*seq, Ordering::Release);
        }
        // A full read may have left more behind: in sync only once the log is read to its end.
        if changes.len() < hark_store::tokens::CHANGES_PER_READ {
            let now = self.started.elapsed().as_millis() as u64;
            self.synced_at_ms.fetch_max(now, Ordering::AcqRel);
        }
        Ok(changes.len())
    }

    /// Whether the change log was read recently enough for the cache to be trusted.
    fn in_sync(&self) -> bool {
        let synced = Duration::from_millis(self.synced_at_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(synced) <= self.max_silence
    }

    pub fn store_lookups(&self) -> u64 {
        self.store_lookups.load(Ordering::Relaxed)
    }

    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }
}
