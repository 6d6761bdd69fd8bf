//! `likes-dlq` on the embedded dead letters, run as a binary on a temp data dir: it lists and
//! shows the letters, replays the replayable ones into the embedded log (removing them from the
//! file only then), refuses while the log is owned by someone else, and purges by age. The
//! dead-letter topic has its own tests in `dlq_topic.rs`.

use likes_shared::bus::{EventSource, Received};
use likes_shared::log::{self, LogConfig};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::dead_letter::{DeadLetter, DeadLetterKind, DeadLetterPublisher, FileDeadLetters};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn event(user: u64) -> LikeEvent {
    LikeEvent {
        event_id: u128::from(user),
        user_id: UserId::new(user).expect("non-zero"),
        content_id: ContentId::new(3).expect("non-zero"),
        action: Action::Like,
        version: user,
        ts_ms: user,
        source: "dlq-test".into(),
        fill_epoch: 0,
    }
}

fn letters(data_dir: &Path) -> FileDeadLetters {
    FileDeadLetters::new(data_dir.join("dead-letters.jsonl"))
}

/// Two refused windows (users 1-2, then 3) and one undecodable record, oldest first.
async fn write_letters(data_dir: &Path) {
    let file = letters(data_dir);
    let now = likes_shared::hlc::now_ms();
    let written = [
        DeadLetter::store_refused(
            vec![event(1), event(2)],
            "permanent store error: (code: 19) constraint".into(),
            1,
            1_700_000_000_000, // 2023-11-14T22:13:20Z
        ),
        DeadLetter::store_refused(
            vec![event(3)],
            "permanent store error: too big".into(),
            2,
            now,
        ),
        DeadLetter::undecodable(
            vec![9; 6],
            "undecodable event: unknown schema version 9".into(),
            now,
        ),
    ];
    for letter in &written {
        file.publish(letter).await.expect("write letter");
    }
}

fn dlq(data_dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_likes-dlq"))
        .args(args)
        .env("LIKES_DATA_DIR", data_dir)
        // The services env file (exported by `infra/test`) sets it, and it would select the
        // dead-letter topic; these tests are about the file.
        .env_remove("LIKES_PULSAR_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run likes-dlq");
    eprintln!(
        "likes-dlq {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_of(data_dir: &Path, args: &[&str]) -> String {
    let output = dlq(data_dir, args);
    assert!(output.status.success(), "likes-dlq {args:?} failed");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test]
async fn list_and_show_describe_the_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_letters(dir.path()).await;
    let list = stdout_of(dir.path(), &["list"]);
    assert!(list.contains("3 dead letters"), "{list}");
    assert!(list.contains("3 events"), "{list}");
    assert!(
        list.contains("2023-11-14T22:13:20"),
        "oldest first failure: {list}"
    );
    assert!(list.contains("store_refused: 2"), "{list}");
    assert!(list.contains("undecodable: 1"), "{list}");
    let shown = stdout_of(dir.path(), &["show", "3"]);
    assert!(
        shown.contains("\"payload_base64\": \"CQkJCQkJ\""),
        "{shown}"
    );
    let missing = dlq(dir.path(), &["show", "4"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "the documented code for a bad argument"
    );
}

#[tokio::test]
async fn replay_appends_the_events_to_the_log_then_removes_their_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_letters(dir.path()).await;
    let before = std::fs::read(dir.path().join("dead-letters.jsonl")).expect("letters");

    let dry = stdout_of(dir.path(), &["replay", "--dry-run"]);
    assert!(dry.contains("3 events"), "{dry}");
    assert_eq!(
        std::fs::read(dir.path().join("dead-letters.jsonl")).expect("letters"),
        before,
        "a dry run changes nothing"
    );

    stdout_of(dir.path(), &["replay"]);
    let left = letters(dir.path()).read_all().expect("letters");
    assert_eq!(left.len(), 1, "only the undecodable letter stays: {left:?}");
    assert_eq!(left[0].kind, DeadLetterKind::Undecodable);

    let (_publisher, mut source) = log::open(&LogConfig {
        dir: dir.path().join("log"),
        ..LogConfig::default()
    })
    .expect("open the log");
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(5), source.recv())
            .await
            .expect("in time")
            .expect("recv")
            .expect("open");
        match next {
            Received::Event(delivery) => replayed.push(delivery.event),
            Received::Undecodable(record) => panic!("replayed an undecodable record {record:?}"),
        }
    }
    assert_eq!(replayed, vec![event(1), event(2), event(3)]);
}

#[tokio::test]
async fn replay_refuses_while_the_log_is_owned_and_keeps_the_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_letters(dir.path()).await;
    let (_publisher, _source) = log::open(&LogConfig {
        dir: dir.path().join("log"),
        ..LogConfig::default()
    })
    .expect("hold the log like a running likes");
    let refused = dlq(dir.path(), &["replay"]);
    assert_eq!(
        refused.status.code(),
        Some(5),
        "the documented code for busy"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("stop"),
        "says to stop likes first: {stderr}"
    );
    assert_eq!(letters(dir.path()).read_all().expect("letters").len(), 3);
}

#[tokio::test]
async fn purge_removes_letters_older_than_the_given_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_letters(dir.path()).await;
    stdout_of(dir.path(), &["purge", "--older-than", "30d"]);
    let left = letters(dir.path()).read_all().expect("letters");
    assert_eq!(left.len(), 2, "the 2023 letter is gone: {left:?}");
    assert!(left
        .iter()
        .all(|l| l.first_failed_at_ms > 1_700_000_000_000));
}

/// Built without the `pulsar` feature, the binary still works on the file, and says how to get
/// the topic mode instead of guessing when LIKES_PULSAR_URL asks for it.
#[cfg(not(feature = "pulsar"))]
#[tokio::test]
async fn without_pulsar_support_a_pulsar_url_is_a_clear_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_letters(dir.path()).await;
    let output = Command::new(env!("CARGO_BIN_EXE_likes-dlq"))
        .args(["list"])
        .env("LIKES_DATA_DIR", dir.path())
        .env("LIKES_PULSAR_URL", "pulsar://127.0.0.1:6650")
        .output()
        .expect("run likes-dlq");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--features pulsar") && stderr.contains("--file"),
        "{stderr}"
    );
    let list = stdout_of(dir.path(), &["--file", "list"]);
    assert!(list.contains("3 dead letters"), "{list}");
}
