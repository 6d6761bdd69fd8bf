//! [`RedisStateCache`]: the distributed deployment's [`StateCache`] on Redis (DESIGN section 7).
//!
//! Redis is a cache here, never the truth (I6): it makes "did I like it", counts and
//! idempotence fast across ingest instances, and everything it holds can be rebuilt from TiDB.
//! The rules of [`likes_shared::cache`] are kept by Lua scripts (see `scripts.rs`), one per
//! action. Keys carry hash tags (`{u:<id>}`, `{c:<id>}`), the layout a Redis Cluster needs; on
//! one Redis an action's script moves the content's count too, on a Cluster it cannot (below).
//!
//! # What "committed" means here
//! The embedded cache knows exactly what the sink committed. Across processes it knows an age
//! instead: [`AgeBound`] says every change older than the pipeline's enforced maximum lag is in
//! the store (DESIGN section 7 allows that bound), unless some instance's spool holds events
//! ([`SpoolHold`]); the bound must cover the clock skew between ingest hosts too, since each
//! stamps changes with its own clock. Three decisions rest on it:
//! - a count is filled from the store (SET NX) only if it has not moved since the fill's ticket
//!   (`likes:{c:<id>}:t` holds when it last moved), or the read may lack a change; a content
//!   that keeps changing is filled through a fill epoch instead, once the ticket is past the
//!   epoch's start (`count_scripts.rs`);
//! - a user over `max_states_per_user` forgets only settled states older than the bound, and
//!   remembers the newest one it forgot (`_m`) so a fill read before that is refused;
//! - expiry is hours after last use, far past the bound.
//!
//! Redis itself must not evict (`maxmemory-policy noeviction`): an evicted pending state would
//! lose the rule above. When it is full it refuses the scripts that take something new with OOM
//! (whole, before they write), answered 503 (I7) like a user whose states all wait for the
//! store; the scripts that settle what was taken still run.
//!
//! # What it cannot know
//! A reply lost after the apply script ran, or an ingest killed between the apply and its confirm,
//! leaves a pending entry (a repeat of the action publishes it again, harmlessly) and maybe an
//! unmoved count. A restart or failover of Redis loses its records of recent changes. The counts
//! that drift this way are repaired by `likes-pipeline reconcile` (I6).
//!
//! # Round trips
//! A like is: the count (one `MGET`, skipped when this process moved that count moments ago, see
//! `known_counts.rs`), the apply script that moves the count too, and after the publish the
//! confirm script: two round trips on a hot content, as a bare "script + `INCRBY`" client pays.
//! On a Cluster (`cluster`) the count moves in a script of its own: three. `states` is one
//! `HMGET` (plus the TTL refresh in the same pipeline) and `counts` one `MGET`, so a page of 100
//! ids costs two round trips. In a Redis Cluster the `MGET` of counts spans slots and would have
//! to be split per slot; the connection here is to one Redis (or a proxy that splits it).

mod age_bound;
mod config;
mod connection;
mod count_moves;
mod count_scripts;
mod known_counts;
mod layout;
mod scripts;

pub use age_bound::{AgeBound, SpoolHold};
pub use config::RedisCacheConfig;
use connection::{cache_error, error_type, unavailable};
pub use connection::{connection, RedisCacheError};
use known_counts::KnownCounts;

use async_trait::async_trait;
use layout::{durable, parse_version, settled, FILLED_FIELD};
use likes_shared::bus::{CommitProgress, DurableMark};
use likes_shared::cache::like_delta;
use likes_shared::cache::{CacheError, CachedApply, FillTicket, StateCache};
use likes_shared::hlc::now_ms;
use likes_shared::metrics::ClientMetrics;
use likes_shared::store::{RowState, StoredCount};
use likes_shared::{Action, ContentId, UserId};
use likes_sink::redis_counts::Keys;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};
use scripts::{
    APPLY_COUNTED_SCRIPT, APPLY_SCRIPT, CONFIRM_COUNTED_SCRIPT, CONFIRM_SCRIPT, FENCE_SCRIPT,
    FILL_COUNT_SCRIPT, LEARN_COUNTED_SCRIPT, LEARN_SCRIPT, REVERT_COUNTED_SCRIPT, REVERT_SCRIPT,
    SEED_SCRIPT,
};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct RedisStateCache {
    conn: ConnectionManager,
    keys: Keys,
    config: RedisCacheConfig,
    progress: Arc<dyn CommitProgress>,
    known_counts: KnownCounts,
    /// The fence as this instance last saw it, and when it last read it (wall ms): the Cluster
    /// scripts take it as an argument (one Redis reads the key in the script itself).
    fence: AtomicU64,
    fence_read_ms: AtomicU64,
    /// Where each call's duration goes, by operation (`db_client_operation_duration_seconds`).
    calls: Option<ClientMetrics>,
}

impl RedisStateCache {
    /// Does not connect: the first command does, and reconnects follow failures, so ingest can
    /// start (and degrade) while Redis is down. `progress` is in wall-clock milliseconds
    /// (normally an [`AgeBound`]).
    pub fn new(
        url: &str,
        config: RedisCacheConfig,
        progress: Arc<dyn CommitProgress>,
    ) -> Result<Self, RedisCacheError> {
        Ok(Self::with_connection(
            connection(url, &config)?,
            config,
            progress,
        ))
    }

    /// On a connection from [`connection`], shared with other users of the same Redis.
    pub fn with_connection(
        conn: ConnectionManager,
        config: RedisCacheConfig,
        progress: Arc<dyn CommitProgress>,
    ) -> Self {
        RedisStateCache {
            conn,
            keys: Keys::new(&config.namespace),
            known_counts: KnownCounts::new(Duration::from_secs(config.count_ttl_secs)),
            fence: AtomicU64::new(0),
            fence_read_ms: AtomicU64::new(0),
            config,
            progress,
            calls: None,
        }
    }

    /// Times every Redis call into `calls`, labelled by operation.
    pub fn with_call_metrics(mut self, calls: ClientMetrics) -> Self {
        self.calls = Some(calls);
        self
    }

    /// Awaits one Redis call, timed.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let started = Instant::now();
        let result = call.await;
        if let Some(calls) = &self.calls {
            let error = result.as_ref().err().map(error_type);
            calls.db_call("redis", operation, started.elapsed(), error);
        }
        result
    }

    /// Warns loudly unless Redis runs with `maxmemory-policy noeviction` (see the module docs).
    pub async fn check_eviction_policy(&self) -> Result<(), CacheError> {
        connection::check_eviction_policy(&mut self.conn()).await
    }

    /// The shared connection, for other users of the same Redis (the trending board).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs a confirm, revert or learn script (`split` on a Cluster, else `counted`) for the state
    /// `liked` at `version` (`extra` arguments after it); when it reports that the current state's
    /// `liked` moved, the count follows by `delta`; when it reports that the state it replaced is
    /// unknown (a learn only), the count is forgotten.
    async fn settle(
        &self,
        operation: &'static str,
        (split, counted): (&Script, &Script),
        (user, content): (UserId, ContentId),
        (liked, version): (bool, u64),
        extra: &[u64],
        delta: i64,
    ) -> Result<(), CacheError> {
        let script = if self.config.cluster { split } else { counted };
        let mut invocation = script.key(self.keys.user(user));
        invocation
            .arg(content.get())
            .arg(u8::from(liked))
            .arg(version)
            .arg(extra);
        if !self.config.cluster {
            self.count_keys(&mut invocation, content);
            invocation
                .arg(delta)
                .arg(now_ms())
                .arg(self.config.count_ttl_secs);
        }
        let moved: i64 = self
            .timed(operation, invocation.invoke_async(&mut self.conn()))
            .await
            .map_err(cache_error)?;
        match moved {
            1 if self.config.cluster => {
                self.settle_count(content, delta).await?;
            }
            -1 => {
                if self.config.cluster {
                    self.forget_count(content).await?;
                }
                self.known_counts.record(content, false);
            }
            _ => {}
        }
        Ok(())
    }

    /// The fence for the Cluster scripts, read again at most once a second.
    async fn cluster_fence(&self) -> u64 {
        let now = now_ms();
        if now.saturating_sub(self.fence_read_ms.load(Ordering::Relaxed)) >= 1_000 {
            self.fence_read_ms.store(now, Ordering::Relaxed);
            let mut conn = self.conn();
            let read: RedisResult<Option<u64>> =
                self.timed("read_fence", conn.get(self.keys.fence())).await;
            if let Ok(Some(fence)) = read {
                self.fence.fetch_max(fence, Ordering::Relaxed);
            }
        }
        self.fence.load(Ordering::Relaxed)
    }

    async fn seed(
        &self,
        user: UserId,
        complete: &str,
        states: impl Iterator<Item = (ContentId, Option<RowState>)>,
        ticket: FillTicket,
    ) -> Result<i64, CacheError> {
        let mut invocation = SEED_SCRIPT.key(self.keys.user(user));
        invocation
            .arg(ticket.0)
            .arg(complete)
            .arg(self.config.state_ttl_secs)
            .arg(self.config.max_states_per_user)
            .arg(self.progress.committed());
        for (content, state) in states {
            invocation.arg(content.get()).arg(settled(state));
        }
        self.timed("seed", invocation.invoke_async(&mut self.conn()))
            .await
            .map_err(cache_error)
    }
}

#[async_trait]
impl StateCache for RedisStateCache {
    fn fill_ticket(&self) -> FillTicket {
        FillTicket(self.progress.committed())
    }

    async fn apply(
        &self,
        user: UserId,
        content: ContentId,
        action: Action,
        version: u64,
    ) -> Result<Option<CachedApply>, CacheError> {
        let liked = action.liked();
        let mut invocation = if self.config.cluster {
            APPLY_SCRIPT.key(self.keys.user(user))
        } else {
            APPLY_COUNTED_SCRIPT.key(self.keys.user(user))
        };
        invocation
            .arg(content.get())
            .arg(u8::from(liked))
            .arg(version)
            .arg(self.config.state_ttl_secs)
            .arg(self.config.max_states_per_user)
            .arg(self.progress.committed());
        if self.config.cluster {
            invocation.arg(self.cluster_fence().await);
        } else {
            invocation
                .key(self.keys.count(content))
                .key(self.keys.changed(content))
                .key(self.keys.fence())
                .key(self.keys.epoch(content))
                .key(self.keys.epoch_sum(content))
                .arg(now_ms())
                .arg(self.config.count_ttl_secs)
                .arg(self.config.fence_margin_ms);
        }
        let mut conn = self.conn();
        type Counted = (i64, String, i64, Option<i64>, String);
        let reply: Option<Counted> = if self.config.cluster {
            let reply: Option<(i64, String, i64, String)> = self
                .timed("apply", invocation.invoke_async(&mut conn))
                .await
                .map_err(cache_error)?;
            match reply {
                Some((changed, version, pending, after)) => {
                    let delta = if changed == 1 { like_delta(liked) } else { 0 };
                    let (count, epoch) = self.apply_count(content, delta, &after).await?;
                    Some((changed, version, pending, count, epoch))
                }
                None => None,
            }
        } else {
            let reply: Option<Counted> = self
                .timed("apply", invocation.invoke_async(&mut conn))
                .await
                .map_err(cache_error)?;
            if let Some((_, _, _, count, _)) = &reply {
                self.known_counts.record(content, count.is_some());
            }
            reply
        };
        let Some((changed, version, pending, count, epoch)) = reply else {
            return Ok(None);
        };
        Ok(Some(CachedApply {
            liked,
            changed: changed == 1,
            version: parse_version(&version)?,
            pending: pending == 1,
            count,
            fill_epoch: parse_version(&epoch)?,
        }))
    }

    async fn confirm(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
        _mark: DurableMark,
    ) -> Result<(), CacheError> {
        self.settle(
            "confirm",
            (&CONFIRM_SCRIPT, &CONFIRM_COUNTED_SCRIPT),
            (user, content),
            (applied.liked, applied.version),
            &[],
            like_delta(applied.liked),
        )
        .await
    }

    async fn revert(
        &self,
        user: UserId,
        content: ContentId,
        applied: &CachedApply,
    ) -> Result<(), CacheError> {
        if !applied.changed {
            return Ok(());
        }
        self.settle(
            "revert",
            (&REVERT_SCRIPT, &REVERT_COUNTED_SCRIPT),
            (user, content),
            (applied.liked, applied.version),
            &[],
            -like_delta(applied.liked),
        )
        .await
    }

    async fn fence(&self, before_ms: u64) -> Result<(), CacheError> {
        let mut invocation = FENCE_SCRIPT.key(self.keys.fence());
        invocation.arg(before_ms.saturating_add(self.config.fence_margin_ms));
        let fence: u64 = self
            .timed("fence", invocation.invoke_async(&mut self.conn()))
            .await
            .map_err(cache_error)?;
        self.fence.fetch_max(fence, Ordering::Relaxed);
        Ok(())
    }

    async fn learn(
        &self,
        user: UserId,
        content: ContentId,
        liked: bool,
        version: u64,
    ) -> Result<(), CacheError> {
        self.settle(
            "learn",
            (&LEARN_SCRIPT, &LEARN_COUNTED_SCRIPT),
            (user, content),
            (liked, version),
            &[self.config.state_ttl_secs],
            like_delta(liked),
        )
        .await
    }

    async fn states(
        &self,
        user: UserId,
        contents: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, CacheError> {
        if contents.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.keys.user(user);
        let mut fields: Vec<String> = contents.iter().map(|c| c.get().to_string()).collect();
        fields.push(FILLED_FIELD.to_owned());
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&key)
            .arg(fields)
            .expire(&key, self.config.state_ttl_secs as i64)
            .ignore();
        let (mut values,): (Vec<Option<String>>,) = self
            .timed("states", pipe.query_async(&mut self.conn()))
            .await
            .map_err(cache_error)?;
        let complete = values.pop().flatten().as_deref() == Some("1");
        values
            .into_iter()
            .map(|value| match value {
                Some(v) => durable(&v).map(Some).ok_or_else(|| {
                    CacheError::Unavailable(format!("Redis holds a malformed state {v:?}"))
                }),
                None if complete => Ok(Some(RowState {
                    liked: false,
                    version: 0,
                })),
                None => Ok(None),
            })
            .collect()
    }

    async fn is_filled(&self, user: UserId) -> Result<bool, CacheError> {
        let mut conn = self.conn();
        self.timed(
            "is_filled",
            conn.hexists(self.keys.user(user), FILLED_FIELD),
        )
        .await
        .map_err(cache_error)
    }

    async fn seed_user(
        &self,
        user: UserId,
        rows: &[(ContentId, RowState)],
        complete: bool,
        ticket: FillTicket,
    ) -> Result<bool, CacheError> {
        let complete = if complete { "1" } else { "0" };
        let rows = rows.iter().map(|(c, s)| (*c, Some(*s)));
        Ok(self.seed(user, complete, rows, ticket).await? >= 0)
    }

    async fn seed_states(
        &self,
        user: UserId,
        states: &[(ContentId, Option<RowState>)],
        ticket: FillTicket,
    ) -> Result<bool, CacheError> {
        Ok(self.seed(user, "-", states.iter().copied(), ticket).await? >= 0)
    }

    fn holds_count(&self, content: ContentId) -> bool {
        self.known_counts.contains(content)
    }

    async fn counts(&self, contents: &[ContentId]) -> Result<Vec<Option<i64>>, CacheError> {
        if contents.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = contents.iter().map(|c| self.keys.count(*c)).collect();
        let mut mget = redis::cmd("MGET");
        mget.arg(keys);
        self.timed("counts", mget.query_async(&mut self.conn()))
            .await
            .map_err(cache_error)
    }

    async fn fill_count(
        &self,
        content: ContentId,
        stored: StoredCount,
        ticket: FillTicket,
    ) -> Result<Option<i64>, CacheError> {
        let mut invocation = FILL_COUNT_SCRIPT.prepare_invoke();
        self.count_keys(&mut invocation, content);
        invocation.key(self.keys.epoch_high(content));
        // On one Redis the script reads the spool's last time itself; a Cluster keeps that key
        // on another slot, so it is read here, just before.
        let spooled: u64 = if self.config.cluster {
            let get = redis::cmd("GET").arg(self.keys.spool_last()).clone();
            let last: Option<u64> = self
                .timed("fill_count", get.query_async(&mut self.conn()))
                .await
                .map_err(cache_error)?;
            last.unwrap_or(0)
        } else {
            invocation.key(self.keys.spool_last());
            0
        };
        invocation
            .arg(stored.count)
            .arg(ticket.0)
            .arg(self.config.count_ttl_secs)
            .arg(stored.fill_epoch)
            .arg(stored.epoch_delta)
            .arg(self.config.fence_margin_ms)
            .arg(spooled)
            // 0: start no epoch.
            .arg(if self.config.fill_epochs {
                self.config.fill_epoch_ttl_secs.max(1)
            } else {
                0
            });
        self.timed("fill_count", invocation.invoke_async(&mut self.conn()))
            .await
            .map_err(cache_error)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let ping = redis::cmd("PING");
        self.timed("ping", ping.query_async::<String>(&mut self.conn()))
            .await
            .map(drop)
            .map_err(unavailable)
    }
}
