//! Per-token usage rollups and the addresses tokens were used from. Written in batches
//! by the server's flush, never on a request's path.

use std::collections::BTreeMap;

use hark_core::usage::{Granularity, UsageCounts};
use time::OffsetDateTime;

use crate::{Db, Result, from_millis, to_millis};

/// Distinct addresses kept per token (GitLab keeps five; hark ten).
pub const ADDRESSES_KEPT: i64 = 10;

/// Counts gathered in one minute for one token.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDelta {
    pub token_id: i64,
    /// Any instant in the minute; stored at the minute's (and the day's) start.
    pub at: OffsetDateTime,
    pub counts: UsageCounts,
}

/// A use of a token from an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressUse {
    pub token_id: i64,
    pub ip: String,
    pub at: OffsetDateTime,
    pub user_agent: Option<String>,
}

/// An address as listed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenAddress {
    pub ip: String,
    #[sqlx(try_from = "i64")]
    pub first_seen: crate::audit::Millis,
    #[sqlx(try_from = "i64")]
    pub last_seen: crate::audit::Millis,
    pub user_agent: Option<String>,
}

const COUNT_COLUMNS: &str = "ok, expired, revoked, scope_denied, ip_denied, rate_limited, \
                             quota_exceeded, audio_seconds, stream_seconds";

#[derive(sqlx::FromRow)]
struct CountsRow {
    bucket: i64,
    ok: i64,
    expired: i64,
    revoked: i64,
    scope_denied: i64,
    ip_denied: i64,
    rate_limited: i64,
    quota_exceeded: i64,
    audio_seconds: f64,
    stream_seconds: f64,
}

impl CountsRow {
    fn counts(&self) -> UsageCounts {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        UsageCounts {
            ok: n(self.ok),
            expired: n(self.expired),
            revoked: n(self.revoked),
            scope_denied: n(self.scope_denied),
            ip_denied: n(self.ip_denied),
            rate_limited: n(self.rate_limited),
            quota_exceeded: n(self.quota_exceeded),
            audio_seconds: self.audio_seconds,
            stream_seconds: self.stream_seconds,
        }
    }
}

pub struct Usage<'a> {
    pub(crate) db: &'a Db,
}

impl Usage<'_> {
    /// Adds each delta to its token's minute row and day row, in one transaction.
    pub async fn add(&self, deltas: &[UsageDelta]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut ordered: Vec<&UsageDelta> = deltas.iter().collect();
        ordered.sort_by_key(|d| (d.token_id, d.at));
        let mut tx = self.db.begin().await?;
        for delta in ordered {
            let at = to_millis(delta.at);
            for granularity in [Granularity::Minute, Granularity::Day] {
                let bucket = at - at.rem_euclid(granularity.millis());
                let name = if granularity == Granularity::Minute {
                    "minute"
                } else {
                    "day"
                };
                let c = &delta.counts;
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                on!(tx, conn => sqlx::query(sql!(
                    "INSERT INTO token_usage (token_id, granularity, bucket, {COUNT_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (token_id, granularity, bucket) DO UPDATE SET
                         ok = token_usage.ok + excluded.ok,
                         expired = token_usage.expired + excluded.expired,
                         revoked = token_usage.revoked + excluded.revoked,
                         scope_denied = token_usage.scope_denied + excluded.scope_denied,
                         ip_denied = token_usage.ip_denied + excluded.ip_denied,
                         rate_limited = token_usage.rate_limited + excluded.rate_limited,
                         quota_exceeded = token_usage.quota_exceeded + excluded.quota_exceeded,
                         audio_seconds = token_usage.audio_seconds + excluded.audio_seconds,
                         stream_seconds = token_usage.stream_seconds + excluded.stream_seconds"
                ))
                .bind(delta.token_id)
                .bind(name)
                .bind(bucket)
                .bind(n(c.ok))
                .bind(n(c.expired))
                .bind(n(c.revoked))
                .bind(n(c.scope_denied))
                .bind(n(c.ip_denied))
                .bind(n(c.rate_limited))
                .bind(n(c.quota_exceeded))
                .bind(c.audio_seconds)
                .bind(c.stream_seconds)
                .execute(conn)
                .await
                .map(|done| done.rows_affected()))?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A token's counts from `from` (inclusive) to `to` (exclusive), one entry per period
    /// that saw use, oldest first. Minutes and hours come from the minute rows, days from
    /// the day rows.
    pub async fn series(
        &self,
        token_id: i64,
        granularity: Granularity,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<(OffsetDateTime, UsageCounts)>> {
        let source = if granularity == Granularity::Day {
            "day"
        } else {
            "minute"
        };
        let rows: Vec<CountsRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT bucket, {COUNT_COLUMNS} FROM token_usage
             WHERE token_id = $1 AND granularity = $2 AND bucket >= $3 AND bucket < $4
             ORDER BY bucket"
        ))
        .bind(token_id)
        .bind(source)
        .bind(to_millis(from) - to_millis(from).rem_euclid(granularity.millis()))
        .bind(to_millis(to))
        .fetch_all(c)
        .await)?;
        let mut periods: BTreeMap<i64, UsageCounts> = BTreeMap::new();
        for row in rows {
            let period = row.bucket - row.bucket.rem_euclid(granularity.millis());
            periods.entry(period).or_default().add(&row.counts());
        }
        Ok(periods
            .into_iter()
            .map(|(at, counts)| (from_millis(at), counts))
            .collect())
    }

    /// Drops minute rows older than `minutes_before` and day rows older than `days_before`.
    pub async fn prune(
        &self,
        minutes_before: OffsetDateTime,
        days_before: OffsetDateTime,
    ) -> Result<u64> {
        let mut dropped = 0;
        for (granularity, before) in [("minute", minutes_before), ("day", days_before)] {
            dropped += on!(self.db, c => sqlx::query(
                "DELETE FROM token_usage WHERE granularity = $1 AND bucket < $2",
            )
            .bind(granularity)
            .bind(to_millis(before))
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        }
        Ok(dropped)
    }

    /// Notes where tokens were used; returns the uses from an address new to their token.
    /// Only the newest [`ADDRESSES_KEPT`] addresses of a token are kept, so one that fell
    /// out of the set counts as new when it comes back.
    pub async fn note_addresses(&self, uses: &[AddressUse]) -> Result<Vec<AddressUse>> {
        let mut ordered: Vec<&AddressUse> = uses.iter().collect();
        ordered.sort_by(|a, b| (a.token_id, &a.ip).cmp(&(b.token_id, &b.ip)));
        let mut fresh = Vec::new();
        let mut tx = self.db.begin().await?;
        for u in &ordered {
            let at = to_millis(u.at);
            let updated = on!(tx, c => sqlx::query(
                "UPDATE token_addresses SET last_seen = $1, user_agent = COALESCE($2, user_agent)
                 WHERE token_id = $3 AND ip = $4 AND last_seen <= $1",
            )
            .bind(at)
            .bind(u.user_agent.as_deref())
            .bind(u.token_id)
            .bind(&u.ip)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
            if updated == 1 {
                continue;
            }
            let inserted = on!(tx, c => sqlx::query(
                "INSERT INTO token_addresses (token_id, ip, first_seen, last_seen, user_agent)
                 VALUES ($1, $2, $3, $3, $4) ON CONFLICT (token_id, ip) DO NOTHING",
            )
            .bind(u.token_id)
            .bind(&u.ip)
            .bind(at)
            .bind(u.user_agent.as_deref())
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
            if inserted == 1 {
                fresh.push((*u).clone());
            }
        }
        let mut tokens: Vec<i64> = ordered.iter().map(|u| u.token_id).collect();
        tokens.dedup();
        for token_id in tokens {
            on!(tx, c => sqlx::query(
                "DELETE FROM token_addresses WHERE token_id = $1 AND ip NOT IN (
                     SELECT ip FROM token_addresses WHERE token_id = $1
                     ORDER BY last_seen DESC, ip LIMIT $2)",
            )
            .bind(token_id)
            .bind(ADDRESSES_KEPT)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(fresh)
    }

    /// A token's addresses, most recently seen first.
    pub async fn addresses(&self, token_id: i64) -> Result<Vec<TokenAddress>> {
        Ok(on!(self.db, c => sqlx::query_as(
            "SELECT ip, first_seen, last_seen, user_agent FROM token_addresses
             WHERE token_id = $1 ORDER BY last_seen DESC, ip",
        )
        .bind(token_id)
        .fetch_all(c)
        .await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_each_backend;
    use hark_core::usage::Outcome;
    use time::macros::datetime;

    fn delta(token_id: i64, at: OffsetDateTime, outcome: Outcome, audio: f64) -> UsageDelta {
        let mut counts = UsageCounts::default();
        counts.count(outcome);
        counts.audio_seconds = audio;
        UsageDelta {
            token_id,
            at,
            counts,
        }
    }

    #[tokio::test]
    async fn deltas_roll_up_by_minute_hour_and_day() {
        on_each_backend(async |store| {
            let usage = store.usage();
            usage
                .add(&[
                    delta(7, datetime!(2026-12-01 10:00:05 UTC), Outcome::Ok, 2.0),
                    delta(7, datetime!(2026-12-01 10:00:50 UTC), Outcome::Ok, 1.0),
                    delta(
                        7,
                        datetime!(2026-12-01 10:31:00 UTC),
                        Outcome::IpDenied,
                        0.0,
                    ),
                    delta(7, datetime!(2026-12-02 09:00:00 UTC), Outcome::Revoked, 0.0),
                    delta(8, datetime!(2026-12-01 10:00:00 UTC), Outcome::Ok, 9.0),
                ])
                .await
                .unwrap();
            usage
                .add(&[delta(
                    7,
                    datetime!(2026-12-01 10:00:59 UTC),
                    Outcome::RateLimited,
                    0.0,
                )])
                .await
                .unwrap();
            let from = datetime!(2026-12-01 0:00 UTC);
            let to = datetime!(2026-12-03 0:00 UTC);
            let minutes = usage
                .series(7, Granularity::Minute, from, to)
                .await
                .unwrap();
            assert_eq!(minutes.len(), 3);
            assert_eq!(minutes[0].0, datetime!(2026-12-01 10:00 UTC));
            assert_eq!((minutes[0].1.ok, minutes[0].1.rate_limited), (2, 1));
            assert_eq!(minutes[0].1.audio_seconds, 3.0);
            let hours = usage.series(7, Granularity::Hour, from, to).await.unwrap();
            assert_eq!(hours.len(), 2);
            assert_eq!((hours[0].1.ok, hours[0].1.ip_denied), (2, 1));
            let days = usage.series(7, Granularity::Day, from, to).await.unwrap();
            assert_eq!(days.len(), 2);
            assert_eq!(days[0].1.requests(), 4);
            assert_eq!(days[1].1.revoked, 1);
            usage
                .prune(
                    datetime!(2026-12-02 0:00 UTC),
                    datetime!(2026-12-02 0:00 UTC),
                )
                .await
                .unwrap();
            let days = usage.series(7, Granularity::Day, from, to).await.unwrap();
            assert_eq!(days.len(), 1, "the first day's row was pruned");
        })
        .await;
    }

    #[tokio::test]
    async fn new_addresses_are_reported_once_and_ten_are_kept() {
        on_each_backend(async |store| {
            let usage = store.usage();
            let at = datetime!(2026-12-01 10:00 UTC);
            let seen = |ip: &str, minutes: i64| AddressUse {
                token_id: 3,
                ip: ip.into(),
                at: at + time::Duration::minutes(minutes),
                user_agent: Some("curl/8".into()),
            };
            let fresh = usage.note_addresses(&[seen("127.0.0.1", 0)]).await.unwrap();
            assert_eq!(fresh.len(), 1);
            let again = usage.note_addresses(&[seen("127.0.0.1", 1)]).await.unwrap();
            assert!(again.is_empty());
            for i in 0..11 {
                let fresh = usage
                    .note_addresses(&[seen(&format!("10.0.0.{i}"), 2 + i)])
                    .await
                    .unwrap();
                assert_eq!(fresh.len(), 1);
            }
            let kept = usage.addresses(3).await.unwrap();
            assert_eq!(kept.len(), 10);
            assert_eq!(kept[0].ip, "10.0.0.10");
            assert!(
                kept.iter().all(|a| a.ip != "127.0.0.1"),
                "the oldest fell out"
            );
        })
        .await;
    }
}
