use super::*;
use crate::bus::{Delivery, EventPublisher, EventSource};
use crate::event::WireError;
use crate::event::{Action, LikeEvent};
use crate::ids::{ContentId, UserId};
use std::time::Duration;

fn event(n: u64) -> LikeEvent {
    LikeEvent {
        event_id: n as u128,
        user_id: UserId::new(n).expect("non-zero"),
        content_id: ContentId::new(1 + n % 3).expect("non-zero"),
        action: Action::Like,
        version: n,
        ts_ms: n,
        source: "test".into(),
        fill_epoch: 0,
    }
}

fn config(dir: &Path) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 300,
        ..LogConfig::default()
    }
}

async fn recv_any(source: &mut LogSource) -> Received<u64> {
    tokio::time::timeout(Duration::from_secs(5), source.recv())
        .await
        .expect("delivery in time")
        .expect("recv")
        .expect("open")
}

/// The log in `dir` with the default settings.
fn open_default(dir: &Path) -> (LogPublisher, LogSource) {
    open(&LogConfig {
        dir: dir.into(),
        ..LogConfig::default()
    })
    .expect("open")
}

/// The users of the next `n` events, in delivery order (the test events' ids).
async fn recv_users(source: &mut LogSource, n: usize) -> Vec<u64> {
    recv_n(source, n)
        .await
        .iter()
        .map(|d| d.event.user_id.get())
        .collect()
}

async fn recv_n(source: &mut LogSource, n: usize) -> Vec<Delivery<u64>> {
    let mut out = Vec::new();
    while out.len() < n {
        match recv_any(source).await {
            Received::Event(delivery) => out.push(delivery),
            Received::Undecodable(record) => panic!("undecodable {record:?}"),
        }
    }
    out
}

#[tokio::test]
async fn delivers_in_order_and_resumes_after_the_acked_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (publisher, mut source) = open(&config(dir.path())).expect("open");
        for n in 1..=10 {
            publisher.publish(&event(n)).await.expect("publish");
        }
        let got = recv_n(&mut source, 10).await;
        let users: Vec<u64> = got.iter().map(|d| d.event.user_id.get()).collect();
        assert_eq!(users, (1..=10).collect::<Vec<_>>());
        source
            .ack(got[..4].iter().map(|d| d.ack).collect())
            .await
            .expect("ack");
        assert_eq!(source.acked_offset(), 4);
    }
    let (publisher, mut source) = open(&config(dir.path())).expect("reopen");
    publisher.publish(&event(11)).await.expect("publish");
    let again: Vec<u64> = recv_users(&mut source, 7).await;
    assert_eq!(
        again,
        (5..=11).collect::<Vec<_>>(),
        "unacked events come back, acked ones do not"
    );
}

#[tokio::test]
async fn rotates_segments_and_deletes_the_acked_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (publisher, mut source) = open(&config(dir.path())).expect("open");
    for n in 1..=40 {
        publisher.publish(&event(n)).await.expect("publish");
    }
    let before = list_segments(dir.path()).expect("list").len();
    assert!(before > 3, "300-byte segments rotate: {before}");
    let got = recv_n(&mut source, 40).await;
    source
        .ack(got.iter().map(|d| d.ack).collect())
        .await
        .expect("ack");
    let after = list_segments(dir.path()).expect("list").len();
    assert_eq!(after, 1, "only the open segment stays");
    assert!(publisher.is_ready());
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_earlier_records_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (publisher, _source) = open_default(dir.path());
        for n in 1..=3 {
            publisher.publish(&event(n)).await.expect("publish");
        }
    }
    let path = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&path).expect("read");
    let whole = bytes.len();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]); // a frame header and part of a payload
    fs::write(&path, &bytes).expect("write");
    let (publisher, mut source) = open_default(dir.path());
    assert_eq!(fs::metadata(&path).expect("meta").len() as usize, whole);
    publisher
        .publish(&event(4))
        .await
        .expect("publish after recovery");
    let users: Vec<u64> = recv_users(&mut source, 4).await;
    assert_eq!(users, vec![1, 2, 3, 4]);
}

/// Three durable records, the log closed again; returns the segment and its length.
async fn three_records(dir: &Path) -> (PathBuf, u64) {
    let (publisher, _source) = open_default(dir);
    for n in 1..=3 {
        publisher.publish(&event(n)).await.expect("publish");
    }
    let path = segment_path(dir, 0);
    let len = fs::metadata(&path).expect("meta").len();
    (path, len)
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = OpenOptions::new().append(true).open(path).expect("open");
    file.write_all(bytes).expect("append");
}

#[tokio::test]
async fn a_zero_filled_tail_is_cut_not_read_as_empty_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, whole) = three_records(dir.path()).await;
    // What a crash can leave after the file's size reached the disk but its data did not.
    append_bytes(&path, &[0; 4096]);
    let (publisher, mut source) = open_default(dir.path());
    assert_eq!(
        publisher.durable_offset(),
        3,
        "8 zero bytes pass the CRC check as an empty record"
    );
    assert_eq!(fs::metadata(&path).expect("meta").len(), whole);
    publisher.publish(&event(4)).await.expect("publish");
    let users: Vec<u64> = recv_users(&mut source, 4).await;
    assert_eq!(users, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_whole_frame_failing_its_crc_is_cut_with_everything_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, whole) = three_records(dir.path()).await;
    let mut bad = Vec::new();
    segment::encode_frame(&event(4).encode(), &mut bad);
    bad[4] ^= 0xff; // the CRC no longer matches the payload
    segment::encode_frame(&event(5).encode(), &mut bad);
    append_bytes(&path, &bad);
    let (publisher, mut source) = open_default(dir.path());
    assert_eq!(publisher.durable_offset(), 3);
    assert_eq!(fs::metadata(&path).expect("meta").len(), whole);
    publisher.publish(&event(6)).await.expect("publish");
    let users: Vec<u64> = recv_users(&mut source, 4).await;
    assert_eq!(users, vec![1, 2, 3, 6]);
}

#[tokio::test]
async fn an_empty_segment_left_by_a_crash_during_rotation_is_used_as_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, whole) = three_records(dir.path()).await;
    fs::File::create(segment_path(dir.path(), 3)).expect("the new, empty segment");
    let (publisher, mut source) = open_default(dir.path());
    assert_eq!(publisher.durable_offset(), 3);
    publisher.publish(&event(4)).await.expect("publish");
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 0))
            .expect("meta")
            .len(),
        whole,
        "the full segment is left alone"
    );
    let users: Vec<u64> = recv_users(&mut source, 4).await;
    assert_eq!(users, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn refuses_appends_past_its_byte_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        dir: dir.path().into(),
        max_bytes: 200,
        ..LogConfig::default()
    };
    let (publisher, _source) = open(&cfg).expect("open");
    let mut refused = 0;
    for n in 1..=10 {
        match publisher.publish(&event(n)).await {
            Ok(_) => {}
            Err(BusError::Full) => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0 && refused < 10, "refused {refused}");
    assert!(!publisher.is_ready());
}

#[tokio::test]
async fn a_missing_segment_is_an_error_not_a_silent_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (publisher, _source) = open(&config(dir.path())).expect("open");
        for n in 1..=40 {
            publisher.publish(&event(n)).await.expect("publish");
        }
    }
    let bases = list_segments(dir.path()).expect("list");
    assert!(bases.len() >= 3, "{bases:?}");
    fs::remove_file(segment_path(dir.path(), bases[1])).expect("remove a middle segment");
    let (_publisher, mut source) = open(&config(dir.path())).expect("reopen");
    let mut delivered = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), source.recv())
            .await
            .expect("in time");
        match next {
            Ok(Some(_)) => delivered += 1,
            Ok(None) => panic!("the source ended silently after {delivered} deliveries"),
            Err(error) => {
                assert!(error.to_string().contains("missing"), "{error}");
                break;
            }
        }
    }
    assert_eq!(
        delivered as u64, bases[1],
        "everything before the gap was delivered"
    );
}

#[tokio::test]
async fn one_log_directory_has_one_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_publisher, _source) = open(&config(dir.path())).expect("open");
    let second = open(&config(dir.path()));
    let error = second.err().expect("a second owner is refused");
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error}");
}

#[tokio::test]
async fn an_empty_record_is_refused_since_it_would_read_as_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (publisher, _source) = open(&config(dir.path())).expect("open");
    let refused = publisher.append(Vec::new()).await;
    assert!(matches!(refused, Err(BusError::Io(_))), "{refused:?}");
    assert_eq!(publisher.durable_offset(), 0);
}

#[tokio::test]
async fn an_undecodable_record_is_handed_over_with_its_bytes_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (publisher, mut source) = open(&config(dir.path())).expect("open");
    publisher.publish(&event(1)).await.expect("publish");
    let unreadable = vec![9u8; 60];
    publisher.append(unreadable.clone()).await.expect("append");
    publisher.publish(&event(2)).await.expect("publish");
    let first = recv_n(&mut source, 1).await;
    assert_eq!(first[0].ack, 0);
    match recv_any(&mut source).await {
        Received::Undecodable(record) => {
            assert_eq!(record.payload, unreadable);
            assert_eq!(record.error, WireError::UnknownVersion(9));
            assert_eq!(record.ack, 1, "acked like any record, in its place");
        }
        Received::Event(delivery) => panic!("decoded {delivery:?}"),
    }
    let last = recv_n(&mut source, 1).await;
    assert_eq!((last[0].ack, last[0].event.user_id.get()), (2, 2));
}
