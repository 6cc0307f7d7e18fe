//! The visit counter in Redis: one atomic Lua script keyed by request id, so a
//! retried request counts once; a lazily created, self-reconnecting connection;
//! every call bounded by a deadline.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// The counter itself.
pub const VISITS_KEY: &str = "selfheal:visits";
/// Prefix of the per-request keys remembering the count a request id got.
pub const RID_PREFIX: &str = "selfheal:rid:";
/// How long a request id is remembered: longer than any retry window.
pub const RID_TTL_SECS: u64 = 60;

/// Returns `{count, fresh}`: the count stored for this request id if it was seen
/// (fresh = 0), else a new increment remembered under the id (fresh = 1). Redis runs
/// a script atomically, so two concurrent retries of one id cannot both increment.
const VISIT_SCRIPT: &str = r#"
local seen = redis.call('GET', KEYS[2])
if seen then
  return {tonumber(seen), 0}
end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'EX', ARGV[1])
return {n, 1}
"#;

/// Pause between two attempts while Redis is away (grows to [`MAX_PAUSE`]).
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A counted visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    pub count: i64,
    /// True when this request id had already been counted (a retry).
    pub replayed: bool,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer within the deadline (down, restarting, loading).
    #[error("redis unavailable after {waited_ms} ms and {attempts} attempt(s): {cause}")]
    Unavailable {
        waited_ms: u128,
        attempts: u32,
        cause: String,
    },
    /// Redis answered with an error that retrying will not fix.
    #[error("redis error: {0}")]
    Redis(#[source] RedisError),
}

/// The Redis side of the app.
pub struct Counter {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Created on first use: creation fails while Redis is down, and the app must
    /// start (and answer /livez) regardless. Once created it reconnects by itself.
    conn: OnceCell<ConnectionManager>,
    script: redis::Script,
    timeout: Duration,
}

impl Counter {
    /// A counter for `url`; no connection is made yet. `timeout` bounds every visit.
    pub fn new(url: &str, timeout: Duration) -> Result<Counter, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            // One connection attempt per call: the retry loop (and its deadline) is ours.
            .set_number_of_retries(0)
            .set_connection_timeout(timeout.min(Duration::from_millis(500)))
            .set_response_timeout(timeout);
        Ok(Counter {
            client,
            config,
            conn: OnceCell::new(),
            script: redis::Script::new(VISIT_SCRIPT),
            timeout,
        })
    }

    /// The shared connection, creating it if needed (one attempt).
    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        self.conn
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
            })
            .await
            .cloned()
    }

    /// Tries once to connect, so the first request does not pay for it.
    pub async fn warm_up(&self) -> Result<(), RedisError> {
        self.connection().await.map(|_| ())
    }

    /// Counts the visit of `request_id` exactly once, retrying (and reconnecting)
    /// while Redis is away, until the deadline.
    pub async fn visit(&self, request_id: &str) -> Result<Visit, StoreError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let rid_key = format!("{RID_PREFIX}{request_id}");
        let mut attempts = 0u32;
        let mut pause = FIRST_PAUSE;
        let mut cause = String::from("deadline reached before Redis answered");
        loop {
            attempts += 1;
            let attempt = async {
                let mut conn = self.connection().await?;
                self.script
                    .key(VISITS_KEY)
                    .key(&rid_key)
                    .arg(RID_TTL_SECS)
                    .invoke_async::<(i64, i64)>(&mut conn)
                    .await
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok((count, fresh))) => {
                    return Ok(Visit {
                        count,
                        replayed: fresh == 0,
                    })
                }
                Ok(Err(err)) if is_transient(&err) => {
                    tracing::debug!(attempt = attempts, cause = %err, "redis attempt failed");
                    cause = err.to_string();
                }
                Ok(Err(err)) => return Err(StoreError::Redis(err)),
                Err(_elapsed) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable {
                    waited_ms: now.duration_since(started).as_millis(),
                    attempts,
                    cause,
                });
            }
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// One PING, bounded by `timeout` (readiness).
    pub async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        let started = Instant::now();
        let attempt = async {
            let mut conn = self.connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        let unavailable = |cause: String| StoreError::Unavailable {
            waited_ms: started.elapsed().as_millis(),
            attempts: 1,
            cause,
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(_pong)) => Ok(()),
            Ok(Err(err)) => Err(unavailable(err.to_string())),
            Err(_elapsed) => Err(unavailable("no answer to PING in time".into())),
        }
    }
}

/// Errors worth retrying: the connection, not the command, failed (or Redis is
/// still loading its AOF after a restart). Retrying is safe because the script is
/// idempotent per request id.
fn is_transient(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || matches!(
            err.kind(),
            ErrorKind::BusyLoadingError | ErrorKind::TryAgain
        )
}
