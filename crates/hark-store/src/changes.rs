//! Change notifications between nodes sharing a database.
//!
//! On PostgreSQL, triggers `NOTIFY` when a token changes (`hark_token_changes`) or a job is
//! queued (`hark_jobs`); the notification leaves when the changing transaction commits.
//! A node keeps one [`ChangeFeed`] connection listening. Notifications sent while that
//! connection is down are lost, so the feed reports every lost connection and its reader
//! catches up from the change log. SQLite has no feed: its nodes share one machine and poll.

use sqlx::postgres::PgListener;

use crate::{Db, Result, Store};

/// What a feed can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Some token was revoked, rotated or had its owner's role change: read the change log.
    Tokens,
    /// A job was queued: idle workers may claim it.
    Jobs,
    /// The connection was lost (the next call reconnects): changes may have been missed,
    /// so read the change log.
    Lost,
}

const TOKEN_CHANNEL: &str = "hark_token_changes";
const JOB_CHANNEL: &str = "hark_jobs";

pub struct ChangeFeed {
    listener: PgListener,
}

impl Store {
    /// A feed of other nodes' changes; `None` on SQLite.
    pub async fn change_feed(&self) -> Result<Option<ChangeFeed>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all([TOKEN_CHANNEL, JOB_CHANNEL]).await?;
        Ok(Some(ChangeFeed { listener }))
    }
}

impl ChangeFeed {
    /// Waits for the next change. An error means the database cannot be reached right now;
    /// each call tries to reconnect (and listens again) until it can.
    pub async fn next(&mut self) -> Result<Change> {
        Ok(match self.listener.try_recv().await? {
            Some(notification) if notification.channel() == JOB_CHANNEL => Change::Jobs,
            Some(_) => Change::Tokens,
            None => Change::Lost,
        })
    }
}
