//! Start-up on a log that a crash left damaged: the all-in-one must recover, bind and serve, and
//! every record fsynced before the damage must be applied exactly once.
//!
//! Each test writes likes into `<data_dir>/log` the way ingest does (each append returns once it
//! is fsynced), lets go of the log, damages it as a crash or a disk can, then starts the
//! all-in-one on that directory under a deadline: a start-up that waits for records it can never
//! apply fails the test instead of hanging it.

mod support;

use likes::Embedded;
use likes_shared::log::{self, LogConfig};
use likes_shared::store::LikeStore;
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CONTENT: u64 = 7;
const WRITTEN: u64 = 10;

fn like(user: u64) -> LikeEvent {
    LikeEvent {
        event_id: u128::from(user),
        user_id: UserId::new(user).expect("non-zero"),
        content_id: ContentId::new(CONTENT).expect("non-zero"),
        action: Action::Like,
        version: user,
        ts_ms: user,
        source: "damaged-log-test".into(),
        fill_epoch: 0,
    }
}

/// Appends likes of users `1..=WRITTEN`, each durable before the next, then the `extra` raw
/// records; returns once the log is closed again.
async fn write_log(data_dir: &Path, segment_bytes: u64, extra: &[Vec<u8>]) {
    let (publisher, _source) = log::open(&LogConfig {
        dir: data_dir.join("log"),
        segment_bytes,
        ..LogConfig::default()
    })
    .expect("open the log");
    for user in 1..=WRITTEN {
        publisher
            .append(like(user).encode())
            .await
            .expect("durable append");
    }
    for raw in extra {
        publisher.append(raw.clone()).await.expect("durable append");
    }
    drop((publisher, _source));
    // The writer thread may still be rotating after its last answer; opening again waits for
    // its lock, so the files are final when this returns.
    log::open(&LogConfig {
        dir: data_dir.join("log"),
        ..LogConfig::default()
    })
    .expect("reopen the log once its writer let go");
}

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data_dir.join("log"))
        .expect("log dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    paths.sort();
    paths
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open segment");
    file.write_all(bytes).expect("damage the segment");
}

/// Starts the all-in-one; start-up must complete (the log replayed, the port bound).
async fn start(data_dir: &Path) -> Embedded {
    tokio::time::timeout(
        Duration::from_secs(20),
        Embedded::start(support::config(data_dir)),
    )
    .await
    .expect("start-up completes on a damaged log instead of waiting forever")
    .expect("likes starts")
}

/// The served count of CONTENT, one new like that must also be served, and I1 in the store.
async fn assert_serves_every_written_like(app: &Embedded) {
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/contents/{CONTENT}", app.addr);
    let body: serde_json::Value = client
        .get(&url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(
        body["count"], WRITTEN,
        "every like fsynced before the damage is applied once"
    );
    let liked = client
        .put(format!("{url}/like"))
        .bearer_auth(support::token(WRITTEN + 1))
        .send()
        .await
        .expect("PUT");
    assert_eq!(
        liked.status(),
        200,
        "the log takes new events after recovery"
    );
    let counts = app
        .store
        .counts(&[ContentId::new(CONTENT).expect("non-zero")])
        .await
        .expect("counts");
    assert!(counts[0] >= WRITTEN as i64, "stored {counts:?}");
    assert_eq!(app.store.count_mismatches().await.expect("I1"), vec![]);
}

#[tokio::test]
async fn a_zero_filled_tail_is_cut_and_start_up_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), LogConfig::default().segment_bytes, &[]).await;
    // A crash after the file grew but before its data reached the disk leaves zeros (ext4's
    // delayed allocation, a preallocated tail): they must not read as empty records.
    let last = segments(dir.path()).pop().expect("a segment");
    append_bytes(&last, &[0; 4096]);
    let app = start(dir.path()).await;
    assert_serves_every_written_like(&app).await;
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_frame_failing_its_crc_is_cut_and_start_up_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), LogConfig::default().segment_bytes, &[]).await;
    let payload = like(WRITTEN + 1).encode();
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&(crc32_of_nothing_like(&payload)).to_le_bytes());
    frame.extend_from_slice(&payload);
    let last = segments(dir.path()).pop().expect("a segment");
    append_bytes(&last, &frame);
    let app = start(dir.path()).await;
    assert_serves_every_written_like(&app).await;
    app.stop().await.expect("stop");
}

/// A checksum that is certainly not the payload's CRC-32 (a torn or bit-flipped frame).
fn crc32_of_nothing_like(payload: &[u8]) -> u32 {
    payload
        .iter()
        .fold(0x5eed_u32, |acc, b| acc.rotate_left(5) ^ u32::from(*b))
}

#[tokio::test]
async fn a_crash_right_after_creating_a_new_segment_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), LogConfig::default().segment_bytes, &[]).await;
    // Rotation creates the next segment, named after the next offset, before anything is
    // written to it; a crash then leaves it empty.
    std::fs::File::create(dir.path().join(format!("log/{WRITTEN:020}.seg")))
        .expect("an empty new segment");
    let app = start(dir.path()).await;
    assert_serves_every_written_like(&app).await;
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_new_segment_whose_directory_entry_was_lost_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One-byte segments: every group commit rotates, so the log ends with a fresh empty segment.
    write_log(dir.path(), 1, &[]).await;
    let mut all = segments(dir.path());
    let newest = all.pop().expect("the fresh segment");
    assert_eq!(std::fs::metadata(&newest).expect("meta").len(), 0);
    // A crash before the directory was synced: the new file's name never reached the disk.
    std::fs::remove_file(&newest).expect("lose the new segment's entry");
    let app = start(dir.path()).await;
    assert_serves_every_written_like(&app).await;
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn an_undecodable_last_record_is_dead_lettered_and_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Intact on disk (its CRC matches) but schema version 9, which this build cannot read.
    let unreadable = vec![9u8; 60];
    write_log(
        dir.path(),
        LogConfig::default().segment_bytes,
        &[unreadable],
    )
    .await;
    let app = start(dir.path()).await;
    assert_serves_every_written_like(&app).await;
    app.stop().await.expect("stop");
    let letters = std::fs::read_to_string(dir.path().join("dead-letters.jsonl"))
        .expect("the record went to the dead letters");
    assert_eq!(letters.lines().count(), 1, "{letters}");
    assert!(
        letters.contains(&"CQkJ".repeat(20)),
        "the raw bytes are kept (base64 of sixty 0x09): {letters}"
    );
    assert!(letters.contains("schema version 9"), "{letters}");
    let acked = std::fs::read_to_string(dir.path().join("log/consumer.offset")).expect("offset");
    let acked: u64 = acked.trim().parse().expect("an offset");
    // The new like may still be on its way to the worker when it stops; the rest is acked.
    assert!(
        acked > WRITTEN,
        "the likes and the dead-lettered record after them are acked: {acked}"
    );
}
