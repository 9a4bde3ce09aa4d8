//! A token's per-minute budget shared by every node: one atomic GCRA step per request in
//! Redis, as a Lua script run on Redis' own clock (so the nodes' clocks need not agree).
//! Without `--redis-url` each node keeps its own budget (see [`super::limits`]).

use redis::aio::ConnectionManager;
use redis::{Client, Script};

/// One GCRA step for `KEYS[1]` with `ARGV[1]` requests a minute, as
/// `{allowed, remaining, milliseconds}`: until the budget is whole again when allowed,
/// until the next request may pass when not. The key holds the theoretical arrival time
/// and expires when the budget is whole, so idle tokens leave nothing behind.
const GCRA: &str = r"
local limit = tonumber(ARGV[1])
local period = 60000
local interval = period / limit
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - period
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now))
return {1, math.floor((now - allow_at) / interval), math.ceil(next_tat - now)}
";

/// What one step said.
pub struct Step {
    pub allowed: bool,
    pub remaining: u32,
    /// Until the budget is whole (allowed) or the next request may pass (refused).
    pub wait_ms: u64,
}

pub struct SharedBudget {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

impl SharedBudget {
    /// Connects (and keeps reconnecting) to Redis at `url`; keys start with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = Client::open(url)?;
        let connection = ConnectionManager::new(client).await?;
        Ok(SharedBudget {
            connection,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
        })
    }

    /// Counts one request of `token_id` against `limit` a minute, cluster-wide.
    pub async fn step(&self, token_id: i64, limit: u32) -> Result<Step, redis::RedisError> {
        let mut connection = self.connection.clone();
        let (allowed, remaining, wait_ms): (i64, i64, i64) = self
            .script
            .key(format!("{}ratelimit:token:{token_id}", self.prefix))
            .arg(limit)
            .invoke_async(&mut connection)
            .await?;
        Ok(Step {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            wait_ms: u64::try_from(wait_ms.max(0)).unwrap_or(0),
        })
    }
}
