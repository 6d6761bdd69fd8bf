//! Smoke tests against the real services started by `infra/dev/services up`
//! (or by `infra/test`, which runs the whole workspace suite against them).
//!
//! Each test reads the env file written by `up` and fails, saying how to start
//! the services, when it is absent. Names (keys, tables, topics) are random per
//! test so runs never see each other's data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::TryStreamExt;
use likes_smoke::{unique_name, ServicesEnv};
use pulsar::consumer::InitialPosition;
use pulsar::routing_policy::RoutingPolicy;
use pulsar::{ConsumerOptions, ProducerOptions, Pulsar, SubType, TokioExecutor};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::Row;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Redis: SCRIPT LOAD a Lua script, run it with EVALSHA, and again through
/// redis-rs' `Script` (EVALSHA with a NOSCRIPT fallback).
#[tokio::test]
async fn redis_lua_evalsha_round_trip() {
    let env = ServicesEnv::load();
    let client = redis::Client::open(env.get("LIKES_REDIS_URL")).expect("redis url");
    let mut con = tokio::time::timeout(TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .expect("redis connect timed out")
        .expect("redis connect");

    let src = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[2])";
    let script = redis::Script::new(src);
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(src)
        .query_async(&mut con)
        .await
        .expect("SCRIPT LOAD");
    assert_eq!(
        sha,
        script.get_hash(),
        "server and client agree on the script's SHA1"
    );

    let (k_last, k_count) = (unique_name("smoke:last"), unique_name("smoke:count"));
    let n: i64 = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(2)
        .arg(&k_last)
        .arg(&k_count)
        .arg("post-1")
        .arg(5)
        .query_async(&mut con)
        .await
        .expect("EVALSHA");
    assert_eq!(n, 5);

    let n: i64 = script
        .key(&k_last)
        .key(&k_count)
        .arg("post-2")
        .arg(2)
        .invoke_async(&mut con)
        .await
        .expect("Script::invoke_async");
    assert_eq!(n, 7);

    let last: String = redis::cmd("GET")
        .arg(&k_last)
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(last, "post-2");
    let _: i64 = redis::cmd("DEL")
        .arg(&k_last)
        .arg(&k_count)
        .query_async(&mut con)
        .await
        .expect("DEL");
}

/// TiDB: connect with sqlx, create a table, upsert with
/// `INSERT ... ON DUPLICATE KEY UPDATE` and read the row back.
#[tokio::test]
async fn tidb_sqlx_insert_on_duplicate_key_update() {
    let env = ServicesEnv::load();
    let pool = tokio::time::timeout(
        TIMEOUT,
        MySqlPoolOptions::new()
            .max_connections(2)
            .connect(&env.get("LIKES_DATABASE_URL")),
    )
    .await
    .expect("tidb connect timed out")
    .expect("tidb connect");

    let version: String = sqlx::query_scalar("SELECT tidb_version()")
        .fetch_one(&pool)
        .await
        .expect("SELECT tidb_version()");
    assert!(
        version.contains("Release Version: v8.5"),
        "not TiDB v8.5.x: {version}"
    );

    let table = unique_name("smoke_counts");
    sqlx::query(&format!(
        "CREATE TABLE `{table}` (post_id BIGINT PRIMARY KEY, likes BIGINT NOT NULL, last_user VARCHAR(64) NOT NULL)"
    ))
    .execute(&pool)
    .await
    .expect("CREATE TABLE");

    let upsert = format!(
        "INSERT INTO `{table}` (post_id, likes, last_user) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE likes = likes + VALUES(likes), last_user = VALUES(last_user)"
    );
    let first = sqlx::query(&upsert)
        .bind(42_i64)
        .bind(1_i64)
        .bind("alice")
        .execute(&pool)
        .await
        .expect("insert");
    assert_eq!(
        first.rows_affected(),
        1,
        "a new row counts as 1 affected row"
    );
    let second = sqlx::query(&upsert)
        .bind(42_i64)
        .bind(2_i64)
        .bind("bob")
        .execute(&pool)
        .await
        .expect("upsert");
    assert_eq!(
        second.rows_affected(),
        2,
        "an updated row counts as 2 affected rows (MySQL protocol)"
    );

    let row = sqlx::query(&format!(
        "SELECT likes, last_user FROM `{table}` WHERE post_id = ?"
    ))
    .bind(42_i64)
    .fetch_one(&pool)
    .await
    .expect("SELECT");
    assert_eq!(row.get::<i64, _>("likes"), 3);
    assert_eq!(row.get::<String, _>("last_user"), "bob");

    sqlx::query(&format!("DROP TABLE `{table}`"))
        .execute(&pool)
        .await
        .expect("DROP TABLE");
    pool.close().await;
}

/// MariaDB (the second MySQL-protocol server, started by `infra/test`): same upsert.
#[tokio::test]
async fn mariadb_sqlx_insert_on_duplicate_key_update() {
    let env = ServicesEnv::load();
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&env.get("LIKES_MARIADB_URL"))
        .await
        .expect("mariadb connect");
    let table = unique_name("smoke_counts");
    sqlx::query(&format!(
        "CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)"
    ))
    .execute(&pool)
    .await
    .expect("CREATE TABLE");
    let upsert =
        format!("INSERT INTO `{table}` (id, n) VALUES (1, 1) ON DUPLICATE KEY UPDATE n = n + 1");
    for _ in 0..3 {
        sqlx::query(&upsert).execute(&pool).await.expect("upsert");
    }
    let n: i64 = sqlx::query_scalar(&format!("SELECT n FROM `{table}` WHERE id = 1"))
        .fetch_one(&pool)
        .await
        .expect("SELECT");
    assert_eq!(n, 3);
    sqlx::query(&format!("DROP TABLE `{table}`"))
        .execute(&pool)
        .await
        .expect("DROP TABLE");
}

/// Pulsar: create a 4-partition topic through the admin REST API, produce keyed
/// messages with pulsar-rs and consume them all back. Messages of one key must
/// land on one partition (key-hash routing) and keep their order.
#[tokio::test]
async fn pulsar_keyed_round_trip_on_partitioned_topic() {
    let env = ServicesEnv::load();
    let admin = env.get("LIKES_PULSAR_ADMIN_URL");
    let name = unique_name("smoke-likes");
    let topic = format!("persistent://public/default/{name}");

    let http = reqwest::Client::new();
    let partitions_url = format!("{admin}/admin/v2/persistent/public/default/{name}/partitions");
    let resp = http
        .put(&partitions_url)
        .header("Content-Type", "application/json")
        .body("4")
        .send()
        .await
        .expect("create partitioned topic");
    assert!(
        resp.status().is_success(),
        "create partitioned topic: {}",
        resp.status()
    );
    let meta: serde_json::Value = http
        .get(&partitions_url)
        .send()
        .await
        .expect("get partitions")
        .json()
        .await
        .expect("partitions json");
    assert_eq!(meta["partitions"], 4, "partition metadata: {meta}");

    let pulsar: Pulsar<_> = tokio::time::timeout(
        TIMEOUT,
        Pulsar::builder(env.get("LIKES_PULSAR_URL"), TokioExecutor).build(),
    )
    .await
    .expect("pulsar connect timed out")
    .expect("pulsar connect");

    // Subscribe first (from the earliest position) so nothing can be missed.
    let mut consumer: pulsar::Consumer<Vec<u8>, _> = pulsar
        .consumer()
        .with_topic(&topic)
        .with_subscription(unique_name("smoke-sub"))
        .with_subscription_type(SubType::Shared)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("consumer");

    // pulsar-rs 6.x: with the default `routing_policy: None` a partitioned
    // producer ignores message keys (plain round robin); `RoundRobin` is the
    // policy that hashes the key (murmur3) and falls back to round robin
    // for keyless messages.
    let mut producer = pulsar
        .producer()
        .with_topic(&topic)
        .with_options(ProducerOptions {
            routing_policy: Some(RoutingPolicy::RoundRobin),
            ..Default::default()
        })
        .build()
        .await
        .expect("producer");
    let keys = ["post-1", "post-2", "post-3", "post-4", "post-5"];
    let per_key = 4;
    let mut sent = 0;
    for i in 0..per_key {
        for key in keys {
            producer
                .create_message()
                .with_key(key)
                .with_content(format!("{key}#{i}").into_bytes())
                .send_non_blocking()
                .await
                .expect("send")
                .await
                .expect("send receipt");
            sent += 1;
        }
    }

    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut partitions_of_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut received = 0;
    while received < sent {
        let msg = tokio::time::timeout(TIMEOUT, consumer.try_next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {received} of {sent} messages"))
            .expect("consume")
            .expect("consumer stream ended");
        let key = msg.key().expect("message key");
        let body = String::from_utf8(msg.deserialize()).expect("utf-8 payload");
        assert!(
            body.starts_with(&format!("{key}#")),
            "payload {body} under key {key}"
        );
        assert!(
            msg.topic.starts_with(&format!("{topic}-partition-")),
            "from {}",
            msg.topic
        );
        partitions_of_key
            .entry(key.clone())
            .or_default()
            .insert(msg.topic.clone());
        by_key.entry(key).or_default().push(body);
        consumer.ack(&msg).await.expect("ack");
        received += 1;
    }

    for key in keys {
        let expected: Vec<String> = (0..per_key).map(|i| format!("{key}#{i}")).collect();
        assert_eq!(
            by_key.get(key),
            Some(&expected),
            "all messages of {key}, in order"
        );
        assert_eq!(
            partitions_of_key[key].len(),
            1,
            "{key} stayed on one partition: {:?}",
            partitions_of_key[key]
        );
    }

    drop(producer);
    drop(consumer);
    let _ = http
        .delete(format!("{partitions_url}?force=true"))
        .send()
        .await;
}
