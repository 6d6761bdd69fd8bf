//! The log's single writer thread and its group commit.
//!
//! Every append waits for an fsync, and an fsync costs a few milliseconds whatever it covers, so
//! the writer takes everything that queued up while the previous fsync ran, writes it in one
//! `write`, syncs once, and answers all of them: throughput grows with load while each caller
//! still gets its answer only after its bytes are on disk (I3). It is a plain thread, not a tokio
//! task, because it spends its life in blocking `write` and `fsync` calls.

use super::segment::{encode_frame, segment_path};
use super::LogShared;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub(crate) struct Append {
    pub payload: Vec<u8>,
    pub done: oneshot::Sender<io::Result<u64>>,
}

pub(crate) struct Writer {
    pub dir: PathBuf,
    pub file: File,
    pub segment_len: u64,
    pub next: u64,
    pub segment_bytes: u64,
    pub max_batch: usize,
    pub shared: Arc<LogShared>,
}

impl Writer {
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Append>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            buf.clear();
            for append in &batch {
                encode_frame(&append.payload, &mut buf);
            }
            match self.commit(&buf) {
                Ok(()) => {
                    let first_offset = self.next;
                    self.next += batch.len() as u64;
                    self.shared.durable.send_replace(self.next);
                    for (i, append) in batch.drain(..).enumerate() {
                        let _ = append.done.send(Ok(first_offset + i as u64));
                    }
                    if let Err(error) = self.rotate_if_full() {
                        tracing::error!(%error, "cannot start a new log segment; the log stops taking events");
                        self.shared.failed.store(true, Ordering::Release);
                        return;
                    }
                }
                Err(error) => {
                    // The file may now hold a partial frame; recovery cuts it at the next start.
                    // Refuse everything from here on rather than append after garbage.
                    tracing::error!(%error, "log write failed; the log stops taking events");
                    self.shared.failed.store(true, Ordering::Release);
                    for append in batch.drain(..) {
                        let _ = append
                            .done
                            .send(Err(io::Error::new(error.kind(), error.to_string())));
                    }
                    return;
                }
            }
        }
    }

    fn commit(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.file.sync_data()?;
        self.segment_len += buf.len() as u64;
        self.shared
            .bytes
            .fetch_add(buf.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    fn rotate_if_full(&mut self) -> io::Result<()> {
        if self.segment_len < self.segment_bytes {
            return Ok(());
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, self.next))?;
        // The new file's name must survive a crash too, or recovery would miss its records.
        File::open(&self.dir)?.sync_all()?;
        self.segment_len = 0;
        Ok(())
    }
}
