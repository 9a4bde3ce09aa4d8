//! Last-used tracking off the request path: verification notes the use in memory, and a
//! background task writes the latest use of each token in one transaction.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hark_store::Store;
use hark_store::tokens::TokenUse;
use time::OffsetDateTime;

#[derive(Default)]
pub struct LastUsedRecorder {
    pending: Mutex<HashMap<i64, (OffsetDateTime, Option<IpAddr>)>>,
}

impl LastUsedRecorder {
    pub fn touch(&self, token_id: i64, at: OffsetDateTime, ip: Option<IpAddr>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert(token_id, (at, ip));
    }

    /// Writes everything noted so far. On failure the uses are kept for the next try.
    pub async fn flush(&self, store: &Store) -> Result<usize, hark_store::StoreError> {
        let drained: Vec<(i64, (OffsetDateTime, Option<IpAddr>))> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if drained.is_empty() {
            return Ok(0);
        }
        let uses: Vec<TokenUse> = drained
            .iter()
            .map(|(id, (at, ip))| TokenUse {
                token_id: *id,
                at: *at,
                ip: ip.map(|ip| ip.to_string()),
            })
            .collect();
        match store.tokens().record_uses(&uses).await {
            Ok(()) => Ok(uses.len()),
            Err(err) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (id, (at, ip)) in drained {
                    pending.entry(id).or_insert((at, ip));
                }
                Err(err)
            }
        }
    }
}
