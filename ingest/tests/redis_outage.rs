//! DESIGN section 8, "Redis down", end to end: the whole `Application` over HTTP on a private
//! `redis-server` (this test kills and freezes it; the shared one is never touched), the real
//! TiDB (a fresh database) and a publisher that records what it was given.
//!
//! While Redis is killed or frozen, likes answer 200 marked `"stale": true` and their events
//! are published; reads answer from TiDB, stale. Once Redis is back the answers stop being
//! stale within the breaker's probe interval.

use likes_ingest::cache_breaker::{BreakerCache, BreakerConfig};
use likes_ingest::hot_counts::{HotCounts, HotCountsConfig};
use likes_ingest::redis_cache::{RedisCacheConfig, RedisStateCache};
use likes_ingest::{Application, Backends, IngestConfig};
use likes_shared::bus::{BusError, DurableMark, EventPublisher};
use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::trending::MemoryTrendingBoard;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::MySqlConfig;
use likes_smoke::PrivateRedis;
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records every event as durable.
#[derive(Default)]
struct RecordingPublisher {
    events: Mutex<Vec<LikeEvent>>,
}

#[async_trait::async_trait]
impl EventPublisher for RecordingPublisher {
    async fn publish(&self, event: &LikeEvent) -> Result<DurableMark, BusError> {
        let mut events = self.events.lock();
        events.push(event.clone());
        Ok(events.len() as u64)
    }

    fn is_ready(&self) -> bool {
        true
    }
}

const SECRET: &str = "redis-outage-test-secret-32-bytes!!";
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(300);
const COOLDOWN: Duration = Duration::from_millis(400);

struct Running {
    base: String,
    http: reqwest::Client,
    publisher: Arc<RecordingPublisher>,
    store: Arc<dyn LikeStore>,
    _trigger: likes_shared::shutdown::ShutdownTrigger,
}

impl Running {
    async fn start(redis: &PrivateRedis) -> Running {
        let tidb = likes_smoke::ServicesEnv::load().get("LIKES_TIDB_URL");
        let url = likes_smoke::fresh_database(&tidb).await;
        let store = MySqlConfig {
            url,
            ..MySqlConfig::default()
        }
        .build()
        .await
        .expect("schema on a fresh TiDB database");
        let store: Arc<dyn LikeStore> = Arc::new(store);
        let redis_config = RedisCacheConfig {
            response_timeout_ms: RESPONSE_TIMEOUT.as_millis() as u64,
            connect_timeout_ms: RESPONSE_TIMEOUT.as_millis() as u64,
            ..RedisCacheConfig::default()
        };
        let cache = RedisStateCache::new(&redis.url(), redis_config, Arc::new(AtomicU64::new(0)))
            .expect("cache");
        let breaker = BreakerConfig {
            failures_to_open: 2,
            cooldown_ms: COOLDOWN.as_millis() as u64,
            probe_timeout_ms: RESPONSE_TIMEOUT.as_millis() as u64,
        };
        let metrics = Arc::new(likes_ingest::metrics::Metrics::new().expect("metrics"));
        let cache = BreakerCache::new(Arc::new(cache), breaker, metrics.breaker.clone());
        let hot = HotCounts::new(HotCountsConfig::default(), metrics.hot_counts.clone());
        let publisher = Arc::new(RecordingPublisher::default());
        let backends = Backends {
            cache: Arc::new(cache),
            store: store.clone(),
            publisher: publisher.clone(),
            trending: Arc::new(MemoryTrendingBoard::default()),
            hot_counts: Some(Arc::new(hot)),
        };
        let mut config = IngestConfig {
            http_addr: "127.0.0.1:0".into(),
            ..IngestConfig::default()
        };
        config.auth.jwt_secret = SECRET.into();
        config.auth.trusted_user_header = Some("x-user-id".into());
        let (trigger, shutdown) = likes_shared::shutdown::channel();
        let app = Application::build_with_metrics(&config, backends, shutdown, metrics)
            .await
            .expect("app");
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until_stopped());
        Running {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            publisher,
            store,
            _trigger: trigger,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, user: u64) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-user-id", user.to_string())
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    async fn like(&self, user: u64, content: ContentId) -> Value {
        let path = format!("/v1/contents/{content}/like");
        let (status, body) = self.call(reqwest::Method::PUT, &path, user).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn unlike(&self, user: u64, content: ContentId) -> Value {
        let path = format!("/v1/contents/{content}/like");
        let (status, body) = self.call(reqwest::Method::DELETE, &path, user).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn get(&self, user: u64, content: ContentId) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/contents/{content}"),
                user,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn batch_get(&self, user: u64, contents: &[ContentId]) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/contents:batchGet", self.base))
            .header("x-user-id", user.to_string())
            .json(&serde_json::json!({ "content_ids": contents }))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.expect("json")
    }

    async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics");
        response.text().await.expect("text")
    }

    fn events(&self) -> Vec<LikeEvent> {
        self.publisher.events.lock().clone()
    }

    /// Polls until a GET is no longer stale; how long that took.
    async fn until_fresh(&self, user: u64, content: ContentId, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let body = self.get(user, content).await;
            if body.get("stale").is_none() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "still stale after {:?}: {body}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn content() -> ContentId {
    ContentId::new(rand::random::<u64>() >> 8 | 1).expect("non-zero")
}

fn stale(body: &Value) -> bool {
    body.get("stale") == Some(&Value::Bool(true))
}

/// User 2 already likes `content` in TiDB.
async fn seed(running: &Running, content: ContentId) {
    let change = LikeChange {
        user_id: UserId::new(2).expect("non-zero"),
        content_id: content,
        liked: true,
        version: 1,
        ts_ms: 1,
        fill_epoch: 0,
    };
    running
        .store
        .apply_window(&[change])
        .await
        .expect("seed TiDB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_actions_publish_and_answer_stale_reads_come_from_tidb_then_recover() {
    let mut redis = PrivateRedis::start();
    let running = Running::start(&redis).await;
    let c = content();
    seed(&running, c).await;

    let fresh = running.like(1, c).await;
    assert!(!stale(&fresh), "{fresh}");
    assert_eq!(
        (fresh["count"].as_i64(), &fresh["changed"]),
        (Some(2), &Value::Bool(true))
    );
    assert_eq!(running.events().len(), 1);

    redis.kill();
    let liked = running.like(3, c).await;
    assert!(stale(&liked), "{liked}");
    // State from the request; count from TiDB (user 2's like) moved by this one.
    assert_eq!(liked["liked"], true);
    assert_eq!(liked["count"], 2, "{liked}");
    assert_eq!(liked["changed"], true, "TiDB has no row for user 3");
    let again = running.like(3, c).await;
    assert!(stale(&again), "{again}");
    let unliked = running.unlike(2, c).await;
    assert!(stale(&unliked), "{unliked}");
    assert_eq!(
        (unliked["liked"].as_bool(), unliked["count"].as_i64()),
        (Some(false), Some(0))
    );
    // No dedup: every 2xx action's event was published, the repeat included.
    let events = running.events();
    assert_eq!(events.len(), 4, "{events:?}");
    let tail: Vec<(u64, Action)> = events[1..]
        .iter()
        .map(|e| (e.user_id.get(), e.action))
        .collect();
    assert_eq!(
        tail,
        vec![(3, Action::Like), (3, Action::Like), (2, Action::Unlike)]
    );
    assert!(
        events[2].version > events[1].version && events[3].version > 1,
        "versions must increase: {events:?}"
    );

    // Reads from TiDB (the pipeline is not running here: it still says user 2 likes it).
    let read = running.get(2, c).await;
    assert!(stale(&read), "{read}");
    assert_eq!(
        (read["count"].as_i64(), read["liked"].as_bool()),
        (Some(1), Some(true))
    );
    let batch = running.batch_get(3, &[c]).await;
    assert!(stale(&batch), "{batch}");
    assert_eq!(batch["items"][0]["count"], 1, "{batch}");
    assert_eq!(batch["items"][0]["liked"], false, "{batch}");
    let metrics = running.metrics().await;
    assert!(
        metrics.contains("likes_ingest_cache_breaker_open 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("likes_ingest_hot_counts_lookups_total"),
        "{metrics}"
    );

    redis.spawn();
    // The breaker probes once its cooldown is over; a few round trips on top. User 2 stays
    // stale: its unlike is not in TiDB (no pipeline here), and the cache, which learned it
    // was missed, refuses to fill user 2 from a store that lacks it.
    let took = running.until_fresh(9, c, COOLDOWN * 10).await;
    println!("fresh again {took:?} after Redis came back (cooldown {COOLDOWN:?})");
    let user_2 = running.get(2, c).await;
    assert!(stale(&user_2), "{user_2}");
    let after = running.like(4, c).await;
    assert!(!stale(&after), "{after}");
    assert_eq!(running.events().len(), 5);
    assert!(running
        .metrics()
        .await
        .contains("likes_ingest_cache_breaker_open 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_a_request_at_most_its_timeout_then_the_breaker_answers() {
    let redis = PrivateRedis::start();
    let running = Running::start(&redis).await;
    let c = content();
    seed(&running, c).await;
    assert!(!stale(&running.like(1, c).await));

    redis.signal("-STOP");
    // The requests that find Redis frozen wait for its response timeout (one command each: the
    // first one fails and the request degrades), then the breaker answers at once. The bound
    // is generous: this checks "does not hang", not speed.
    let bound = RESPONSE_TIMEOUT * 4 + COOLDOWN;
    for user in 10..16 {
        let started = Instant::now();
        let body = running.like(user, c).await;
        let took = started.elapsed();
        assert!(stale(&body), "{body}");
        assert!(took < bound, "a like took {took:?} with Redis frozen");
        let started = Instant::now();
        let read = running.get(user, c).await;
        assert!(stale(&read), "{read}");
        assert!(
            started.elapsed() < bound,
            "a read took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(running.events().len(), 7);
    assert!(running
        .metrics()
        .await
        .contains("likes_ingest_cache_breaker_open 1"));

    redis.signal("-CONT");
    let took = running.until_fresh(1, c, COOLDOWN * 10).await;
    println!("fresh again {took:?} after Redis thawed (cooldown {COOLDOWN:?})");
    assert!(!stale(&running.like(20, c).await));
}

/// A Redis frozen and thawed comes back with its old data: it must learn the unlike taken
/// without it before it answers, or the like after would read "already liked", publish nothing,
/// and leave the unlike the newest event while its 2xx says "liked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_back_with_its_old_data_learns_the_actions_taken_without_it() {
    let redis = PrivateRedis::start();
    let running = Running::start(&redis).await;
    let c = content();
    let first = running.like(1, c).await;
    assert!(!stale(&first), "{first}");
    assert_eq!(first["count"], 1);

    redis.signal("-STOP");
    let unliked = running.unlike(1, c).await;
    assert!(stale(&unliked), "{unliked}");
    redis.signal("-CONT");
    running.until_fresh(5, c, COOLDOWN * 10).await;

    let read = running.get(1, c).await;
    assert_eq!(read["liked"], false, "the cache learned the unlike: {read}");
    let again = running.like(1, c).await;
    assert!(!stale(&again), "{again}");
    assert_eq!(
        (&again["changed"], again["count"].as_i64()),
        (&Value::Bool(true), Some(1)),
        "{again}"
    );
    let events = running.events();
    let last = events.last().expect("events");
    assert_eq!(
        (events.len(), last.action),
        (3, Action::Like),
        "the like after the outage is published: {events:?}"
    );
    assert!(last.version > events[1].version, "{events:?}");
    assert!(running
        .metrics()
        .await
        .contains("likes_ingest_cache_missed_events 0"));
}

/// A Redis restarted from a snapshot older than its last answers: the unlike answered after the
/// snapshot is gone from it, and it says "liked" again. A like after that must not read "already
/// liked" and publish nothing (the unlike would stay the newest event while the 2xx says
/// "liked"): every state written before the instance's last answer is fenced, so the like goes
/// out again with a version above the lost unlike's. Counts this instance moved before the outage
/// may have lost moves too: they are not served from the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_from_an_older_snapshot_republishes_what_it_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("utf-8 path").to_owned();
    let mut redis = PrivateRedis::start_with(&["--dir", &dir_arg]);
    let running = Running::start(&redis).await;
    let c = content();
    assert!(!stale(&running.like(1, c).await));
    redis.save();
    let lost = running.unlike(1, c).await;
    assert!(
        !stale(&lost),
        "answered by Redis, after the snapshot: {lost}"
    );
    redis.kill();
    // One action while it is away (on another content): the breaker records it, so this
    // instance knows the cache it finds again may be behind.
    let elsewhere = content();
    assert!(stale(&running.like(7, elsewhere).await));
    redis.spawn();
    running.until_fresh(5, elsewhere, COOLDOWN * 10).await;

    // The snapshot's count of `c` still holds user 1's like; the unlike it lost took it away.
    let read = running.get(5, c).await;
    assert_eq!(
        read["count"], 0,
        "a count the snapshot may have lost is not served: {read}"
    );
    let again = running.like(1, c).await;
    assert_eq!(again["liked"], true, "{again}");
    let events: Vec<LikeEvent> = running
        .events()
        .into_iter()
        .filter(|e| e.user_id.get() == 1)
        .collect();
    let newest = events.iter().max_by_key(|e| e.version).expect("events");
    assert_eq!(
        newest.action,
        Action::Like,
        "the newest event of user 1 must be the like its last 2xx reported: {events:?}"
    );
}
