//! Segment files: the on-disk form of the embedded log.
//!
//! A segment is named after the offset of its first record (`00000000000000000042.seg`) and holds
//! frames `[len: u32 LE][crc32 of payload: u32 LE][payload]`. Offsets are implicit (the n-th
//! frame of segment `b` has offset `b + n`), which keeps frames small and makes recovery a scan:
//! a torn write at the tail fails its length or CRC check and is cut off. A frame's length is
//! never 0, so a zero-filled tail is torn too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub(crate) const FRAME_HEADER: usize = 8;
/// No event is anywhere near this; a larger length can only be a torn or corrupt frame.
pub(crate) const MAX_RECORD: usize = 1 << 20;

pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

/// Frames `payload`, which must not be empty (an empty frame reads as a torn one).
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(!payload.is_empty(), "an empty record cannot be framed");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Bases of the segments in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(base) = name
            .strip_suffix(".seg")
            .and_then(|b| b.parse::<u64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Reads the next frame; `Ok(None)` at a clean end, a short read, or a frame that fails its checks.
pub(crate) fn read_frame(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; FRAME_HEADER];
    if !read_full(reader, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    // No event encodes to zero bytes, and eight zero bytes would otherwise pass the CRC check
    // (the CRC-32 of nothing is 0): a zero-filled tail, which a crash leaves when a file's new
    // size reached the disk before its data, must end the log like any torn frame.
    if len == 0 || len > MAX_RECORD {
        return Ok(None);
    }
    let mut payload = vec![0u8; len];
    if !read_full(reader, &mut payload)? || crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Scans the segment starting at offset `base`, cuts off a torn tail at the first frame that
/// fails its checks (short, empty, oversized, CRC mismatch: a crash mid-write looks like any of
/// them), and returns (records, valid bytes). Everything before that frame was fsynced whole and
/// stays.
pub(crate) fn recover(path: &Path, base: u64) -> io::Result<(u64, u64)> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(&file);
    let (mut records, mut valid) = (0u64, 0u64);
    while let Some(payload) = read_frame(&mut reader)? {
        records += 1;
        valid += (FRAME_HEADER + payload.len()) as u64;
    }
    if valid < len {
        let zero_filled = is_zero_from(&file, valid)?;
        tracing::warn!(
            path = %path.display(),
            kept_records = records,
            cut_at_offset = base + records,
            cut_bytes = len - valid,
            zero_filled,
            "cutting a torn tail off the log: the bytes after the last whole record fail the frame checks"
        );
        file.set_len(valid)?;
        file.sync_all()?;
    }
    Ok((records, valid))
}

/// Whether every byte of `file` from `start` on is zero (for the log line: a zero-filled tail is
/// a crash artefact; anything else may be worth a look at the disk).
fn is_zero_from(mut file: &File, start: u64) -> io::Result<bool> {
    file.seek(SeekFrom::Start(start))?;
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) if buf[..n].iter().any(|b| *b != 0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads records in order across segments, starting at any offset.
pub(crate) struct SegmentReader {
    dir: PathBuf,
    next: u64,
    file: Option<BufReader<File>>,
}

impl SegmentReader {
    pub(crate) fn new(dir: PathBuf, next: u64) -> Self {
        SegmentReader {
            dir,
            next,
            file: None,
        }
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next
    }

    /// Reads up to `max` records with offsets below `end` (all of which are durable). An error
    /// after some records were read returns those first; the next call meets the error again.
    pub(crate) fn read_until(&mut self, end: u64, max: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        while self.next < end && out.len() < max {
            match self.read_one() {
                Ok(Some(payload)) => {
                    out.push((self.next, payload));
                    self.next += 1;
                }
                Ok(None) => {}
                Err(error) if out.is_empty() => return Err(error),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// The record at `self.next`, or `None` after moving on to the next segment.
    fn read_one(&mut self) -> io::Result<Option<Vec<u8>>> {
        let file = match self.file.as_mut() {
            Some(file) => file,
            None => self.file.insert(self.open_at(self.next)?),
        };
        if let Some(payload) = read_frame(file)? {
            return Ok(Some(payload));
        }
        // End of this segment: the next record starts the segment named after it.
        let path = segment_path(&self.dir, self.next);
        if !path.exists() {
            self.file = None;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "log offset {} is durable but its segment is missing",
                    self.next
                ),
            ));
        }
        self.file = Some(BufReader::new(File::open(path)?));
        Ok(None)
    }

    fn open_at(&self, offset: u64) -> io::Result<BufReader<File>> {
        let bases = list_segments(&self.dir)?;
        let base = bases
            .iter()
            .rev()
            .find(|b| **b <= offset)
            .copied()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no segment holds offset {offset}"),
                )
            })?;
        let mut reader = BufReader::new(File::open(segment_path(&self.dir, base))?);
        reader.seek(SeekFrom::Start(0))?;
        for _ in base..offset {
            if read_frame(&mut reader)?.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("offset {offset} is past its segment"),
                ));
            }
        }
        Ok(reader)
    }
}
