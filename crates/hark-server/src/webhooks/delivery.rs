//! Sends the stored deliveries: signed, with a timeout, retried with backoff for a bounded
//! time, each attempt's outcome recorded where the owner can see it.

use std::time::Duration as StdDuration;

use hark_store::webhooks::DueDelivery;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

use crate::outbound::OutboundError;
use crate::state::AppState;

/// Waits after each failed attempt; when they run out the delivery has failed for good
/// (nine attempts over about eight and a half hours).
const RETRY_DELAYS: [StdDuration; 8] = [
    StdDuration::from_secs(2),
    StdDuration::from_secs(10),
    StdDuration::from_secs(60),
    StdDuration::from_secs(5 * 60),
    StdDuration::from_secs(15 * 60),
    StdDuration::from_secs(30 * 60),
    StdDuration::from_secs(2 * 3600),
    StdDuration::from_secs(6 * 3600),
];
/// How long a receiver has to answer.
const TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// How long a claimed delivery is reserved for its sender.
const LEASE: Duration = Duration::minutes(2);
/// Most deliveries sent at once.
const BATCH: i64 = 16;
/// How often due retries are looked for when nothing wakes the sender.
const POLL: StdDuration = StdDuration::from_secs(1);

/// Wakes the sender when something was queued.
#[derive(Default)]
pub struct Sender {
    wake: Notify,
}

impl Sender {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The sender loop; runs until the process ends.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let claimed = match state.store.webhooks().claim_due(LEASE, BATCH).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read due webhook deliveries");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                announce_missed(&state).await;
                tokio::select! {
                    () = state.webhooks.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            futures_util::future::join_all(claimed.into_iter().map(|due| send(&state, due))).await;
        }
    })
}

/// Announces finished jobs whose deliveries were never queued (the server stopped between
/// closing the job and queueing them).
async fn announce_missed(state: &AppState) {
    match state.store.jobs().unannounced(BATCH).await {
        Ok(jobs) => {
            for job in jobs {
                super::job_ended(state, job).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for unannounced jobs"),
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`, as the signature headers carry it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn send(state: &AppState, due: DueDelivery) {
    let DueDelivery { delivery, secret } = due;
    let mut headers = vec![
        ("Content-Type".to_owned(), delivery.content_type.clone()),
        ("X-Hark-Event".to_owned(), delivery.event.clone()),
        ("X-Hark-Delivery".to_owned(), delivery.id.to_string()),
    ];
    if let Some(secret) = &secret {
        let signed = signature(secret, &delivery.body);
        headers.push(("X-Hark-Signature".to_owned(), format!("sha256={signed}")));
        // Fireflies' header: the bare hex digest.
        headers.push(("X-Hub-Signature".to_owned(), signed));
    }
    headers.extend(delivery.headers.iter().cloned());
    let answer = state
        .outbound
        .deliver(
            &delivery.url,
            &delivery.method,
            &headers,
            delivery.body.clone(),
            TIMEOUT,
        )
        .await;
    let webhooks = state.store.webhooks();
    let attempt = delivery.attempts as usize;
    let retry_at = RETRY_DELAYS.get(attempt).map(|wait| {
        OffsetDateTime::now_utc() + Duration::try_from(*wait).unwrap_or(Duration::HOUR)
    });
    let recorded = match answer {
        Ok(answer) if (200..300).contains(&answer.status) => {
            tracing::info!(
                delivery = delivery.id,
                status = answer.status,
                "webhook delivered"
            );
            webhooks.delivered(delivery.id, answer.status).await
        }
        Ok(answer) => {
            tracing::info!(
                delivery = delivery.id,
                status = answer.status,
                "webhook refused by its receiver"
            );
            let reason = format!("the receiver answered HTTP {}", answer.status);
            webhooks
                .attempt_failed(delivery.id, Some(answer.status), &reason, retry_at)
                .await
        }
        Err(OutboundError::Refused(reason)) => {
            // The guard will refuse it every time: no point retrying.
            tracing::info!(delivery = delivery.id, %reason, "webhook refused by the outbound guard");
            webhooks
                .attempt_failed(delivery.id, None, &reason, None)
                .await
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::info!(delivery = delivery.id, %reason, "webhook delivery failed");
            webhooks
                .attempt_failed(delivery.id, None, &reason, retry_at)
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(delivery = delivery.id, error = %e, "could not record a webhook attempt");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
