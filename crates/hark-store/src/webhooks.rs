//! Webhooks: the endpoints users registered, the secret that signs their per-job
//! callbacks, and the queue of deliveries owed to receivers.
//!
//! A delivery is rendered once (URL, method, headers, body) and stored, in the transaction
//! that marks its job announced, before anything is sent: a crash loses nothing, no job is
//! announced twice, and every retry sends the same bytes. Claiming pushes the
//! next attempt past a lease, so several servers can share the queue without sending a
//! delivery twice at once.

use time::{Duration, OffsetDateTime};

use crate::{Db, Result, StoreError, from_millis, now_millis, to_millis};

/// A registered endpoint. Its secret is never read back through this type.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: i64,
    pub user_id: i64,
    pub url: String,
    pub description: String,
    /// The events it is sent, e.g. `transcription.completed`.
    pub events: Vec<String>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub user_id: i64,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet accepted by the receiver; attempts remain.
    Pending,
    Delivered,
    /// Given up on: attempts or time ran out, or the receiver can never be reached.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            other => return Err(StoreError::corrupt(format!("delivery status {other:?}"))),
        })
    }
}

/// One request owed to a receiver, as rendered when its event happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub user_id: i64,
    /// `None` for a per-job callback.
    pub webhook_id: Option<i64>,
    pub recording_id: Option<i64>,
    pub event: String,
    pub url: String,
    pub method: String,
    /// Extra request headers the submitter asked for (Speechmatics' `auth_headers`).
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: OffsetDateTime,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub user_id: i64,
    pub webhook_id: Option<i64>,
    pub recording_id: Option<i64>,
    pub event: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A claimed delivery with the secret that signs it (none: the user has no callback
/// secret, so a per-job callback goes unsigned).
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub secret: Option<String>,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    user_id: i64,
    url: String,
    description: String,
    events: String,
    created_at: i64,
}

impl WebhookRow {
    fn into_webhook(self) -> Webhook {
        Webhook {
            id: self.id,
            user_id: self.user_id,
            url: self.url,
            description: self.description,
            events: self.events.split(',').map(str::to_owned).collect(),
            created_at: from_millis(self.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    user_id: i64,
    webhook_id: Option<i64>,
    recording_id: Option<i64>,
    event: String,
    url: String,
    method: String,
    headers: String,
    content_type: String,
    body: Vec<u8>,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery> {
        Ok(Delivery {
            id: self.id,
            user_id: self.user_id,
            webhook_id: self.webhook_id,
            recording_id: self.recording_id,
            event: self.event,
            url: self.url,
            method: self.method,
            headers: serde_json::from_str(&self.headers).map_err(StoreError::corrupt)?,
            content_type: self.content_type,
            body: self.body,
            status: DeliveryStatus::parse(&self.status)?,
            attempts: self.attempts,
            next_attempt_at: from_millis(self.next_attempt_at),
            last_status: self.last_status,
            last_error: self.last_error,
            created_at: from_millis(self.created_at),
            delivered_at: self.delivered_at.map(from_millis),
        })
    }
}

const WEBHOOK_COLUMNS: &str = "id, user_id, url, description, events, created_at";
const DELIVERY_COLUMNS: &str = "id, user_id, webhook_id, recording_id, event, url, method, headers,
    content_type, body, status, attempts, next_attempt_at, last_status, last_error, created_at,
    delivered_at";

pub struct Webhooks<'a> {
    pub(crate) db: &'a Db,
}

impl Webhooks<'_> {
    pub async fn create(&self, new: &NewWebhook) -> Result<Webhook> {
        let row: WebhookRow = on!(self.db, c => sqlx::query_as(sql!(
            "INSERT INTO webhooks (user_id, url, description, events, secret, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(new.user_id)
        .bind(&new.url)
        .bind(&new.description)
        .bind(new.events.join(","))
        .bind(&new.secret)
        .bind(now_millis())
        .fetch_one(c)
        .await)?;
        Ok(row.into_webhook())
    }

    /// A user's webhooks (deleted ones are gone), oldest first.
    pub async fn list(&self, user_id: i64) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks
             WHERE user_id = $1 AND deleted_at IS NULL ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(WebhookRow::into_webhook).collect())
    }

    pub async fn get(&self, user_id: i64, id: i64) -> Result<Webhook> {
        let row: Option<WebhookRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks
             WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(c)
        .await)?;
        row.map(WebhookRow::into_webhook)
            .ok_or(StoreError::NotFound)
    }

    /// Deletes a webhook; deliveries still owed to it are given up.
    pub async fn delete(&self, user_id: i64, id: i64) -> Result<()> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let deleted = on!(tx, c => sqlx::query(
            "UPDATE webhooks SET deleted_at = $1
             WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        on!(tx, c => sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the webhook was deleted'
             WHERE webhook_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the secret that signs a user's per-job callbacks.
    pub async fn set_callback_secret(&self, user_id: i64, secret: &str) -> Result<()> {
        on!(self.db, c => sqlx::query(
            "INSERT INTO callback_secrets (user_id, secret, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret,
                 created_at = excluded.created_at",
        )
        .bind(user_id)
        .bind(secret)
        .bind(now_millis())
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// When the user's callback secret was made, if they have one.
    pub async fn callback_secret_created(&self, user_id: i64) -> Result<Option<OffsetDateTime>> {
        let at: Option<i64> = on!(self.db, c => sqlx::query_scalar("SELECT created_at FROM callback_secrets WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(c)
                .await)?;
        Ok(at.map(from_millis))
    }

    /// Marks job `job_id` announced and queues what it owes, due at once, in one
    /// transaction: false (and nothing queued) when it was announced already.
    pub async fn announce_job(&self, job_id: i64, deliveries: &[NewDelivery]) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let first = on!(tx, c => sqlx::query("UPDATE jobs SET notified = TRUE WHERE id = $1 AND notified = FALSE")
                .bind(job_id)
                .execute(c)
                .await
                .map(|done| done.rows_affected()))?;
        if first == 0 {
            return Ok(false);
        }
        for d in deliveries {
            insert_delivery(&mut tx, d, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Queues deliveries that belong to no job (token events), due at once.
    pub async fn queue(&self, deliveries: &[NewDelivery]) -> Result<()> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        for d in deliveries {
            insert_delivery(&mut tx, d, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets finished deliveries (their bodies hold transcripts) older than `age`.
    pub async fn prune_finished(&self, age: Duration) -> Result<u64> {
        let before = now_millis() - age.whole_milliseconds() as i64;
        let pruned = on!(self.db, c => sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1",
        )
        .bind(before)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(pruned)
    }

    /// Takes up to `limit` due deliveries, each for `lease` (a sender that dies leaves it
    /// due again afterwards), with the secrets that sign them.
    pub async fn claim_due(&self, lease: Duration, limit: i64) -> Result<Vec<DueDelivery>> {
        let now = now_millis();
        let due: Vec<(i64, i64)> = on!(self.db, c => sqlx::query_as(
            "SELECT id, next_attempt_at FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await)?;
        let mut claimed = Vec::with_capacity(due.len());
        for (id, was_due) in due {
            let taken = on!(self.db, c => sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $1
                 WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
            )
            .bind(now + lease.whole_milliseconds() as i64)
            .bind(id)
            .bind(was_due)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
            if taken == 0 {
                continue;
            }
            let (row, secret) = self.with_secret(id).await?;
            claimed.push(DueDelivery {
                delivery: row.into_delivery()?,
                secret,
            });
        }
        Ok(claimed)
    }

    async fn with_secret(&self, id: i64) -> Result<(DeliveryRow, Option<String>)> {
        let row: DeliveryRow = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(c)
        .await)?;
        let secret: Option<String> = match row.webhook_id {
            Some(webhook) => {
                on!(self.db, c => sqlx::query_scalar("SELECT secret FROM webhooks WHERE id = $1")
                    .bind(webhook)
                    .fetch_optional(c)
                    .await)?
            }
            None => {
                on!(self.db, c => sqlx::query_scalar("SELECT secret FROM callback_secrets WHERE user_id = $1")
                    .bind(row.user_id)
                    .fetch_optional(c)
                    .await)?
            }
        };
        Ok((row, secret))
    }

    /// The receiver took it (a 2xx).
    pub async fn delivered(&self, id: i64, status: u16) -> Result<()> {
        let now = now_millis();
        on!(self.db, c => sqlx::query(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                 last_status = $1, last_error = NULL, delivered_at = $2
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(i64::from(status))
        .bind(now)
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// An attempt failed: try again at `retry_at`, or give up when it is `None`.
    pub async fn attempt_failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<()> {
        let next = retry_at.map(to_millis).unwrap_or_else(now_millis);
        on!(self.db, c => sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1,
                 last_error = $2, next_attempt_at = $3, status = $4
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status.map(i64::from))
        .bind(error)
        .bind(next)
        .bind(if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        })
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// A user's most recent deliveries, newest first; only one webhook's when given.
    pub async fn deliveries(
        &self,
        user_id: i64,
        webhook_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE user_id = $1 AND ($2 IS NULL OR webhook_id = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(user_id)
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(DeliveryRow::into_delivery).collect()
    }
}

async fn insert_delivery(tx: &mut crate::Tx, d: &NewDelivery, now: i64) -> Result<()> {
    let headers = serde_json::to_string(&d.headers).map_err(StoreError::corrupt)?;
    on!(tx, c => sqlx::query(
        "INSERT INTO webhook_deliveries (user_id, webhook_id, recording_id, event, url,
             method, headers, content_type, body, status, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10)",
    )
    .bind(d.user_id)
    .bind(d.webhook_id)
    .bind(d.recording_id)
    .bind(&d.event)
    .bind(&d.url)
    .bind(&d.method)
    .bind(headers)
    .bind(&d.content_type)
    .bind(&d.body)
    .bind(now)
    .execute(c)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_each_backend;
    use hark_core::roles::Role;

    use crate::recordings::NewRecording;

    fn delivery(user_id: i64, webhook_id: Option<i64>) -> NewDelivery {
        NewDelivery {
            user_id,
            webhook_id,
            recording_id: Some(1),
            event: "transcription.completed".into(),
            url: "https://example.com/hook".into(),
            method: "POST".into(),
            headers: vec![("X-Extra".into(), "1".into())],
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn deliveries_are_claimed_once_retried_and_signed_with_their_secret() {
        on_each_backend(async |store| {
            let user = store
                .users()
                .create("ada", "hash", Role::Member)
                .await
                .unwrap();
            let hooks = store.webhooks();
            let hook = hooks
                .create(&NewWebhook {
                    user_id: user.id,
                    url: "https://example.com/hook".into(),
                    description: String::new(),
                    events: vec!["transcription.completed".into()],
                    secret: "hook-secret".into(),
                })
                .await
                .unwrap();
            let (_, job) = store
                .jobs()
                .submit(
                    &NewRecording {
                        user_id: user.id,
                        project_id: crate::DEFAULT_PROJECT_ID,
                        title: "t".into(),
                        original_filename: "t.wav".into(),
                        mime_type: "audio/wav".into(),
                        size_bytes: 1,
                        blob_key: "recordings/t".into(),
                        language: None,
                        submitted_by_key: None,
                        source_url: None,
                    },
                    "{}",
                    3,
                )
                .await
                .unwrap();
            let owed = [delivery(user.id, Some(hook.id)), delivery(user.id, None)];
            assert!(hooks.announce_job(job.id, &owed).await.unwrap());
            assert!(
                !hooks.announce_job(job.id, &owed).await.unwrap(),
                "a job is announced once"
            );
            let claimed = hooks.claim_due(Duration::minutes(1), 10).await.unwrap();
            assert_eq!(claimed.len(), 2);
            assert_eq!(claimed[0].secret.as_deref(), Some("hook-secret"));
            assert_eq!(claimed[1].secret, None, "no callback secret yet: unsigned");
            assert_eq!(
                claimed[0].delivery.headers,
                vec![("X-Extra".into(), "1".into())]
            );
            assert!(
                hooks
                    .claim_due(Duration::minutes(1), 10)
                    .await
                    .unwrap()
                    .is_empty(),
                "a claimed delivery is leased"
            );

            let first = claimed[0].delivery.id;
            hooks
                .attempt_failed(
                    first,
                    Some(500),
                    "HTTP 500",
                    Some(OffsetDateTime::now_utc()),
                )
                .await
                .unwrap();
            let again = hooks.claim_due(Duration::minutes(1), 10).await.unwrap();
            assert_eq!(again.len(), 1);
            hooks.delivered(first, 204).await.unwrap();
            let listed = hooks.deliveries(user.id, Some(hook.id), 10).await.unwrap();
            assert_eq!(listed[0].status, DeliveryStatus::Delivered);
            assert_eq!((listed[0].attempts, listed[0].last_status), (2, Some(204)));

            hooks.set_callback_secret(user.id, "account").await.unwrap();
            let second = claimed[1].delivery.id;
            hooks
                .attempt_failed(second, None, "refused", Some(OffsetDateTime::now_utc()))
                .await
                .unwrap();
            let signed = hooks.claim_due(Duration::minutes(1), 10).await.unwrap();
            assert_eq!(signed[0].secret.as_deref(), Some("account"));

            hooks.delete(user.id, hook.id).await.unwrap();
            assert!(hooks.list(user.id).await.unwrap().is_empty());
            assert_eq!(hooks.prune_finished(Duration::ZERO).await.unwrap(), 1);
            assert!(matches!(
                hooks.delete(user.id, hook.id).await,
                Err(StoreError::NotFound)
            ));
        })
        .await;
    }
}
