//! `likes-pipeline` as operators run it, on the real TiDB and Pulsar: `init` creates the schema,
//! the topics and both subscriptions and is idempotent; `reconcile` reports drift (a dry run
//! exits 3 and repairs nothing) and repairs it; bad invocations exit 2 naming the problem.

use likes_shared::store::{LikeChange, LikeStore};
use likes_shared::{ContentId, UserId};
use likes_sink::MySqlConfig;
use likes_smoke::{fresh_database, unique_name, ServicesEnv};
use std::process::{Command, Output};

fn pipeline(env: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_likes-pipeline"));
    command.args(args).env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run likes-pipeline");
    eprintln!(
        "likes-pipeline {args:?}: {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn init_creates_everything_once_and_reconcile_reports_then_repairs_drift() {
    let services = ServicesEnv::load();
    let admin = services.get("LIKES_PULSAR_ADMIN_URL");
    let topic = unique_name("cli-events");
    let env = vec![
        (
            "LIKES_DATABASE_URL",
            fresh_database(&services.get("LIKES_DATABASE_URL")).await,
        ),
        ("LIKES_PULSAR_ADMIN_URL", admin.clone()),
        ("LIKES_PULSAR__TOPIC", topic.clone()),
        ("LIKES_PULSAR__PARTITIONS", "2".into()),
        ("LIKES_PULSAR__DLQ_TOPIC", unique_name("cli-dlq")),
    ];
    let first = pipeline(&env, &["init"]);
    assert_eq!(first.status.code(), Some(0));
    assert!(text(&first).contains("(2 partitions) created; subscription likes-pipeline created"));
    let again = pipeline(&env, &["init"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again).contains("(2 partitions) exists; subscription likes-pipeline exists"));
    let subscriptions: Vec<String> = reqwest::get(format!(
        "{admin}/admin/v2/persistent/public/default/{topic}/subscriptions"
    ))
    .await
    .expect("admin")
    .json()
    .await
    .expect("subscriptions");
    assert_eq!(subscriptions, vec!["likes-pipeline".to_string()]);

    // Likes through the store, then drift by hand: +5 on content 1, content 2's row deleted.
    let url = env[0].1.clone();
    let store = MySqlConfig {
        url,
        ..MySqlConfig::default()
    }
    .build()
    .await
    .expect("store");
    let changes: Vec<LikeChange> = (1..=30u64)
        .map(|i| LikeChange {
            content_id: ContentId::new(1 + i % 3).expect("non-zero"),
            user_id: UserId::new(i).expect("non-zero"),
            liked: true,
            version: i,
            ts_ms: 1_795_581_680_000,
            fill_epoch: 0,
        })
        .collect();
    store.apply_window(&changes).await.expect("apply");
    for sql in [
        "UPDATE like_counts SET count = count + 5 WHERE content_id = 1",
        "DELETE FROM like_counts WHERE content_id = 2",
    ] {
        sqlx::query(sql).execute(store.pool()).await.expect(sql);
    }
    let dry = pipeline(&env, &["reconcile", "--dry-run", "--batch", "2"]);
    assert_eq!(
        dry.status.code(),
        Some(3),
        "a dry run that finds drift exits 3"
    );
    assert!(text(&dry).contains("drift content 1: stored 15, liked rows 10"));
    assert!(text(&dry).contains("drift content 2: stored no count row, liked rows 10"));
    assert_eq!(
        store.count_mismatches().await.expect("I1").len(),
        2,
        "dry: nothing repaired"
    );

    let outside = pipeline(&env, &["reconcile", "--range", "3..9"]);
    assert_eq!(outside.status.code(), Some(0));
    assert!(text(&outside).contains("0 drifted, 0 repaired"));
    // The state cache drifted too: content 1's cached count is off; content 3's is off as well
    // but moved a moment ago (it may hold a change the store lacks), so it is left alone.
    let namespace = unique_name("cli-cache");
    let redis_url = services.get("LIKES_REDIS_URL");
    let mut redis = redis::Client::open(redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let now = likes_shared::hlc::now_ms().to_string();
    for (key, value) in [
        (format!("{namespace}:{{c:1}}:n"), "99".to_string()),
        (format!("{namespace}:{{c:3}}:n"), "4".to_string()),
        (format!("{namespace}:{{c:3}}:t"), now),
    ] {
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .query_async(&mut redis)
            .await
            .expect("set");
    }
    let mut env = env.clone();
    env.push(("LIKES_REDIS_URL", redis_url));
    env.push(("LIKES_REDIS__NAMESPACE", namespace.clone()));
    let repair = pipeline(&env, &["reconcile"]);
    assert_eq!(repair.status.code(), Some(0));
    assert!(
        text(&repair).contains("3 contents checked"),
        "{}",
        text(&repair)
    );
    assert!(text(&repair).contains("2 drifted, 2 repaired"));
    assert_eq!(store.count_mismatches().await.expect("I1"), vec![]);
    assert!(
        text(&repair).contains("redis: 1 cached counts repaired, 1 skipped"),
        "{}",
        text(&repair)
    );
    let cached: Vec<Option<i64>> = redis::cmd("MGET")
        .arg(format!("{namespace}:{{c:1}}:n"))
        .arg(format!("{namespace}:{{c:2}}:n"))
        .arg(format!("{namespace}:{{c:3}}:n"))
        .query_async(&mut redis)
        .await
        .expect("mget");
    assert_eq!(
        cached,
        vec![Some(10), None, Some(4)],
        "repaired to the store's; not cached stays so; moved lately is left"
    );
    let clean = pipeline(&env, &["reconcile", "--dry-run", "--sample", "10"]);
    assert_eq!(clean.status.code(), Some(0));

    // An operator tool does no DDL: on a database without the schema, reconcile fails and
    // leaves it empty (only init creates tables).
    let empty = fresh_database(&services.get("LIKES_DATABASE_URL")).await;
    let failed = pipeline(&[("LIKES_DATABASE_URL", empty.clone())], &["reconcile"]);
    assert_eq!(failed.status.code(), Some(1));
    let tables: Vec<String> = sqlx::query_scalar("SHOW TABLES")
        .fetch_all(&sqlx::MySqlPool::connect(&empty).await.expect("connect"))
        .await
        .expect("tables");
    assert_eq!(tables, Vec::<String>::new(), "reconcile created tables");
}

#[test]
fn bad_invocations_exit_2_naming_the_problem() {
    let no_database = pipeline(&[("LIKES_DATABASE_URL", String::new())], &["reconcile"]);
    assert_eq!(no_database.status.code(), Some(2));
    assert!(text(&no_database).contains("LIKES_DATABASE_URL is not set"));
    let no_admin = pipeline(
        &[
            ("LIKES_DATABASE_URL", "mysql://root@127.0.0.1:1/x".into()),
            ("LIKES_PULSAR_ADMIN_URL", String::new()),
        ],
        &["init"],
    );
    assert_eq!(no_admin.status.code(), Some(2));
    assert!(text(&no_admin).contains("LIKES_PULSAR_ADMIN_URL is not set"));
    let bad_url = pipeline(
        &[("LIKES_DATABASE_URL", "postgres://nowhere".into())],
        &["reconcile"],
    );
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(text(&bad_url).contains("LIKES_DATABASE_URL is malformed"));
    for args in [
        &["reconcile", "--range", "9..1"][..],
        &["reconcile", "--sample"],
        &["frobnicate"],
    ] {
        assert_eq!(pipeline(&[], args).status.code(), Some(2), "{args:?}");
    }
}
