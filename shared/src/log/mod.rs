//! The embedded event bus: a durable, bounded, append-only local log.
//!
//! Ingest's [`LogPublisher`] appends an event and gets its answer after the group-commit fsync
//! (see [`writer`]), so a 2xx always stands for an event on disk (I3). The pipeline's
//! [`LogSource`] reads committed records in order and acks cumulatively: the consumer offset is
//! persisted (write, fsync, rename) and segments wholly below it are deleted. After a crash the
//! source resumes from the persisted offset, so unacked events are delivered again, which the
//! sink makes harmless (I2).
//!
//! Bounds (I7): the append queue has a fixed capacity and the log a byte budget of unacked
//! segments; past either, [`BusError::Full`] (ingest answers 503) instead of growing.

mod segment;
mod writer;

use crate::bus::{BusError, CommitProgress, DurableMark, EventPublisher, EventSource, Received};
use crate::event::LikeEvent;
use async_trait::async_trait;
use parking_lot::Mutex;
use segment::{list_segments, recover, segment_path, SegmentReader};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use writer::{Append, Writer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Directory of segments and the consumer offset.
    pub dir: PathBuf,
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    /// Appends are refused while the log holds more than this many bytes.
    pub max_bytes: u64,
    /// Appends waiting for the writer; past it, appends are refused.
    pub queue_capacity: usize,
    /// Most appends covered by one fsync.
    pub max_batch: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: PathBuf::from("data/log"),
            segment_bytes: 64 << 20,
            max_bytes: 1 << 30,
            queue_capacity: 16_384,
            max_batch: 4_096,
        }
    }
}

/// State shared by the writer thread, publishers and the source.
pub(crate) struct LogShared {
    /// One past the last durable offset.
    pub durable: watch::Sender<u64>,
    /// Bytes in live segments.
    pub bytes: AtomicU64,
    pub failed: AtomicBool,
    /// One past the last offset the consumer acked.
    pub acked: AtomicU64,
    /// The directory's exclusive lock, released when the last holder (writer thread,
    /// publishers, source) is gone: two processes appending to one log would corrupt it.
    _lock: fs::File,
}

/// Opens (or creates) the log in `config.dir`, recovering from a crash.
pub fn open(config: &LogConfig) -> io::Result<(LogPublisher, LogSource)> {
    fs::create_dir_all(&config.dir)?;
    let lock = lock_dir(&config.dir)?;
    let mut bases = list_segments(&config.dir)?;
    if bases.is_empty() {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&config.dir, 0))?;
        bases.push(0);
    }
    let mut bytes = 0;
    let mut next = 0;
    let mut last_len = 0;
    for base in &bases {
        let (records, len) = recover(&segment_path(&config.dir, *base), *base)?;
        bytes += len;
        next = base + records;
        last_len = len;
    }
    let last_base = bases.last().copied().unwrap_or(0);
    let consumer = read_offset(&config.dir)?.unwrap_or(bases[0]).min(next);
    let (durable, _) = watch::channel(next);
    let shared = Arc::new(LogShared {
        durable,
        bytes: AtomicU64::new(bytes),
        failed: AtomicBool::new(false),
        acked: AtomicU64::new(consumer),
        _lock: lock,
    });
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let writer = Writer {
        dir: config.dir.clone(),
        file: OpenOptions::new()
            .append(true)
            .open(segment_path(&config.dir, last_base))?,
        segment_len: last_len,
        next,
        segment_bytes: config.segment_bytes.max(1),
        max_batch: config.max_batch.max(1),
        shared: shared.clone(),
    };
    std::thread::Builder::new()
        .name("likes-log-writer".into())
        .spawn(move || writer.run(rx))?;
    tracing::info!(dir = %config.dir.display(), next, consumer, "embedded log open");
    let publisher = LogPublisher {
        tx,
        shared: shared.clone(),
        max_bytes: config.max_bytes,
    };
    let source = LogSource::start(config.dir.clone(), consumer, shared);
    Ok((publisher, source))
}

/// Appends events; cheap to clone.
#[derive(Clone)]
pub struct LogPublisher {
    tx: mpsc::Sender<Append>,
    shared: Arc<LogShared>,
    max_bytes: u64,
}

impl LogPublisher {
    /// Bytes the log's live segments hold, and the most it takes before refusing appends.
    pub fn bytes(&self) -> (u64, u64) {
        (self.shared.bytes.load(Ordering::Acquire), self.max_bytes)
    }

    /// One past the last durable offset.
    pub fn durable_offset(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    /// One past the last offset the consumer acked; equal to [`Self::durable_offset`] once
    /// everything written has been applied.
    pub fn acked_offset(&self) -> u64 {
        self.shared.acked.load(Ordering::Acquire)
    }

    /// Appends raw bytes and returns their offset once durable. `payload` must not be empty: an
    /// empty frame is what a zero-filled tail looks like, so recovery would cut it off.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, BusError> {
        if payload.is_empty() {
            return Err(BusError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty record cannot be logged",
            )));
        }
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(BusError::Unavailable("log writer failed".into()));
        }
        if self.shared.bytes.load(Ordering::Acquire) > self.max_bytes {
            return Err(BusError::Full);
        }
        let (done, answer) = oneshot::channel();
        self.tx
            .try_send(Append { payload, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => BusError::Full,
                mpsc::error::TrySendError::Closed(_) => {
                    BusError::Unavailable("log writer stopped".into())
                }
            })?;
        match answer.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(BusError::Unavailable("log writer stopped".into())),
        }
    }
}

#[async_trait]
impl EventPublisher for LogPublisher {
    /// The mark is one past the offset, so it compares directly with the acked offset.
    async fn publish(&self, event: &LikeEvent) -> Result<DurableMark, BusError> {
        self.append(event.encode()).await.map(|offset| offset + 1)
    }

    fn is_ready(&self) -> bool {
        !self.shared.failed.load(Ordering::Acquire)
            && self.shared.bytes.load(Ordering::Acquire) <= self.max_bytes
    }
}

/// The consumer acks a window only after the sink committed it, so the acked offset is how far
/// the store holds the log.
impl CommitProgress for LogPublisher {
    fn committed(&self) -> DurableMark {
        self.acked_offset()
    }
}

/// Delivers committed events in order; the only consumer of its log.
pub struct LogSource {
    /// Deliveries, or the read error that ended them (the worker then stops loudly).
    rx: mpsc::Receiver<Result<Received<u64>, BusError>>,
    dir: PathBuf,
    shared: Arc<LogShared>,
    /// Held so the reader task stops when the source is dropped.
    reader_task: tokio::task::JoinHandle<()>,
    deleting: Arc<Mutex<()>>,
}

const READ_BATCH: usize = 1_024;
const DELIVERY_QUEUE: usize = 8_192;

impl LogSource {
    fn start(dir: PathBuf, from: u64, shared: Arc<LogShared>) -> Self {
        let (tx, rx) = mpsc::channel(DELIVERY_QUEUE);
        let reader = tokio::spawn(read_loop(
            SegmentReader::new(dir.clone(), from),
            shared.durable.subscribe(),
            tx,
        ));
        LogSource {
            rx,
            dir,
            shared,
            reader_task: reader,
            deleting: Arc::default(),
        }
    }

    /// One past the last offset whose effects were acked.
    pub fn acked_offset(&self) -> u64 {
        self.shared.acked.load(Ordering::Acquire)
    }
}

impl Drop for LogSource {
    fn drop(&mut self) {
        self.reader_task.abort();
    }
}

async fn read_loop(
    mut reader: SegmentReader,
    mut durable: watch::Receiver<u64>,
    tx: mpsc::Sender<Result<Received<u64>, BusError>>,
) {
    loop {
        let end = *durable.borrow_and_update();
        if reader.next_offset() >= end {
            if durable.changed().await.is_err() {
                return;
            }
            continue;
        }
        let read = tokio::task::spawn_blocking(move || {
            let records = reader.read_until(end, READ_BATCH);
            (reader, records)
        })
        .await;
        let records = match read {
            Ok((back, Ok(records))) => {
                reader = back;
                records
            }
            Ok((_, Err(error))) => {
                tracing::error!(%error, "embedded log read failed; consumption stops");
                let _ = tx.send(Err(BusError::Io(error))).await;
                return;
            }
            Err(error) => {
                let _ = tx
                    .send(Err(BusError::Unavailable(format!("log reader: {error}"))))
                    .await;
                return;
            }
        };
        for (offset, payload) in records {
            let received = Received::decode(payload, offset, 0);
            if let Received::Undecodable(record) = &received {
                // Passed its CRC yet does not decode: written by a newer schema or damaged
                // before framing. The worker dead-letters it and acks it; skipping it unacked
                // would stall every later ack's effect on start-up's catch-up.
                tracing::error!(error = %record.error, offset, "undecodable log record");
            }
            if tx.send(Ok(received)).await.is_err() {
                return;
            }
        }
    }
}

#[async_trait]
impl EventSource for LogSource {
    type Ack = u64;

    async fn recv(&mut self) -> Result<Option<Received<u64>>, BusError> {
        self.rx.recv().await.transpose()
    }

    async fn ack(&mut self, acks: Vec<u64>) -> Result<(), BusError> {
        let Some(max) = acks.into_iter().max() else {
            return Ok(());
        };
        let next = max + 1;
        if next <= self.acked_offset() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let shared = self.shared.clone();
        let deleting = self.deleting.clone();
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = deleting.lock();
            write_offset(&dir, next)?;
            delete_acked_segments(&dir, next, &shared)
        })
        .await
        .map_err(|e| BusError::Unavailable(e.to_string()))??;
        self.shared.acked.store(next, Ordering::Release);
        Ok(())
    }
}

/// Takes the directory's lock, waiting briefly for a previous owner in this process (its
/// writer thread finishing its last batch) to let go.
fn lock_dir(dir: &Path) -> io::Result<fs::File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is in use by another process", dir.display()),
                ))
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn read_offset(dir: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(dir.join("consumer.offset")) {
        Ok(text) => text.trim().parse().map(Some).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("consumer.offset: {e}"))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_offset(dir: &Path, next: u64) -> io::Result<()> {
    let tmp = dir.join("consumer.offset.tmp");
    fs::write(&tmp, next.to_string())?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join("consumer.offset"))?;
    fs::File::open(dir)?.sync_all()
}

/// Deletes every segment whose records are all below `acked`; the newest segment always stays.
fn delete_acked_segments(dir: &Path, acked: u64, shared: &LogShared) -> io::Result<()> {
    let bases = list_segments(dir)?;
    for pair in bases.windows(2) {
        let (base, next_base) = (pair[0], pair[1]);
        if next_base > acked {
            break;
        }
        let path = segment_path(dir, base);
        let len = fs::metadata(&path)?.len();
        fs::remove_file(&path)?;
        shared.bytes.fetch_sub(len, Ordering::AcqRel);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
