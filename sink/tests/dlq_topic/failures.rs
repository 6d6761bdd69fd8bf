//! Setting the topics up, and every way a command can fail: a topic missing, the subscription
//! held, bad arguments and URLs, each with its documented exit code.

use crate::support::{letters, listed, Topics};
use likes_sink::dlq::topic::{TopicDlq, TopicDlqError};
use likes_sink::dlq::Failure;
use likes_sink::pulsar_admin::{ensure_topics, AdminError, TopicKind};
use pulsar::{Consumer, SubType, TokioExecutor};
use std::process::Command;

#[tokio::test]
async fn ensure_topics_is_idempotent_and_refuses_another_partition_count() {
    let topics = Topics::named();
    let first = ensure_topics(&topics.admin_url, &topics.topics)
        .await
        .expect("first");
    assert!(first.topic_created && first.dlq_topic_created && first.dlq_subscription_created);
    let again = ensure_topics(&topics.admin_url, &topics.topics)
        .await
        .expect("again");
    assert!(!again.topic_created && !again.dlq_topic_created && !again.dlq_subscription_created);
    let events = Topics::name(&topics.topics.topic);
    let dlq = Topics::name(&topics.topics.dlq_topic);
    assert_eq!(
        topics.admin.topic_kind(&events).await.ok(),
        Some(TopicKind::Partitioned(4))
    );
    assert_eq!(
        topics.admin.topic_kind(&dlq).await.ok(),
        Some(TopicKind::NonPartitioned)
    );
    assert_eq!(
        topics
            .admin
            .subscription_backlog(&dlq, "likes-dlq")
            .await
            .ok(),
        Some(Some(0)),
        "the subscription exists before any reader"
    );

    let mut more = topics.topics.clone();
    more.partitions = 6;
    let refused = ensure_topics(&topics.admin_url, &more).await;
    assert!(
        matches!(
            refused,
            Err(AdminError::PartitionsDiffer {
                existing: 4,
                wanted: 6,
                ..
            })
        ),
        "{refused:?}"
    );
    topics.delete().await;
}

#[tokio::test]
async fn missing_topics_are_reported_and_not_created() {
    let topics = Topics::named();
    let error = TopicDlq::connect(&topics.config()).await.err();
    assert_eq!(error.map(|e| e.failure()), Some(Failure::MissingTopic));
    let dlq_name = Topics::name(&topics.topics.dlq_topic);
    assert_eq!(
        topics.admin.topic_kind(&dlq_name).await.ok(),
        Some(TopicKind::Missing)
    );

    // The dead-letter topic alone: replay refuses the missing events topic.
    topics
        .admin
        .create_non_partitioned(&dlq_name)
        .await
        .expect("create the dlq topic");
    topics.publish(&letters()).await;
    let dlq = topics.dlq().await;
    let error = dlq.replay(None, false).await.err();
    assert_eq!(error.map(|e| e.failure()), Some(Failure::MissingTopic));
    assert_eq!(listed(&dlq).await.len(), 3, "nothing was acknowledged");
    topics.delete().await;
}

#[tokio::test]
async fn a_second_reader_is_refused_as_busy() {
    let topics = Topics::create().await;
    let client = topics.client().await;
    let holder: Consumer<Vec<u8>, TokioExecutor> = client
        .consumer()
        .with_topic(Topics::name(&topics.topics.dlq_topic).to_string())
        .with_subscription("likes-dlq")
        .with_subscription_type(SubType::Exclusive)
        .build()
        .await
        .expect("hold the subscription");
    let error = topics.dlq().await.letters().await.err();
    assert!(
        matches!(error, Some(TopicDlqError::Busy { .. })),
        "{error:?}"
    );
    drop(holder);
    topics.delete().await;
}

/// Runs `likes-dlq` on `topics`, with the rest of the environment as the caller's.
fn likes_dlq(topics: &Topics, pulsar_url: &str, admin_url: &str, args: &[&str]) -> (i32, String) {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_likes-dlq"))
        .args(args)
        .env("LIKES_PULSAR_URL", pulsar_url)
        .env("LIKES_PULSAR_ADMIN_URL", admin_url)
        .env("LIKES_PULSAR__TOPIC", &topics.topics.topic)
        .env("LIKES_PULSAR__DLQ_TOPIC", &topics.topics.dlq_topic)
        .env("LIKES_PULSAR_WAIT_SECS", "5")
        .env("LIKES_DATA_DIR", data_dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("run likes-dlq");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("likes-dlq {args:?}: {}\n{stdout}{stderr}", output.status);
    (output.status.code().unwrap_or(-1), stdout + &stderr)
}

#[tokio::test]
async fn the_binary_works_on_the_topic_and_exits_with_the_documented_codes() {
    let topics = Topics::create().await;
    topics.publish(&letters()).await;
    let (pulsar, admin) = (topics.pulsar_url.clone(), topics.admin_url.clone());

    let (code, out) = likes_dlq(&topics, &pulsar, &admin, &["list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("3 dead letters in persistent://public/default/dlqtest-dlq"),
        "{out}"
    );
    assert!(
        out.contains("oldest first failure: 2023-11-14T22:13:20"),
        "{out}"
    );
    assert!(
        out.contains("store_refused: 2") && out.contains("undecodable: 1"),
        "{out}"
    );
    let (code, out) = likes_dlq(&topics, &pulsar, &admin, &["replay", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("would replay 2 letters, 4 events"), "{out}");
    let (code, out) = likes_dlq(&topics, &pulsar, &admin, &["--file", "list"]);
    assert_eq!(code, 0, "--file reads the (empty) embedded file: {out}");
    assert!(out.contains("0 dead letters in"), "{out}");

    assert_eq!(likes_dlq(&topics, &pulsar, &admin, &["show", "9"]).0, 2);
    assert_eq!(
        likes_dlq(&topics, &pulsar, &admin, &["replay", "--error", "x"]).0,
        2
    );
    assert_eq!(
        likes_dlq(&topics, &pulsar, &admin, &["purge", "--older-than", "3w"]).0,
        2
    );
    assert_eq!(
        likes_dlq(&topics, &pulsar, "", &["list"]).0,
        2,
        "no admin URL"
    );
    assert_eq!(
        likes_dlq(&topics, "http://x:1", &admin, &["list"]).0,
        3,
        "bad URL"
    );
    assert_eq!(
        likes_dlq(&topics, &pulsar, "http://127.0.0.1:1", &["list"]).0,
        3
    );
    assert_eq!(
        likes_dlq(&topics, "pulsar://127.0.0.1:1", &admin, &["list"]).0,
        3
    );
    let missing = Topics::named();
    let (code, out) = likes_dlq(&missing, &pulsar, &admin, &["list"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("does not exist"), "{out}");
    topics.delete().await;
}
