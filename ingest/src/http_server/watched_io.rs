//! The client socket as hyper sees it. Reads tell the [`ConnectionClock`] when a head's bytes
//! arrive; writes pass through, except a refusal hyper writes itself (see [`super::refusals`]),
//! whose JSON replacement is written in its place.

use super::connection::ConnectionClock;
use super::refusals;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct WatchedIo {
    stream: TcpStream,
    clock: Arc<ConnectionClock>,
    max_header_bytes: usize,
    /// A replacement being written, and how many of hyper's bytes it stands for.
    replacing: Option<Replacement>,
}

struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    stands_for: usize,
}

impl WatchedIo {
    pub fn new(stream: TcpStream, clock: Arc<ConnectionClock>, max_header_bytes: usize) -> Self {
        WatchedIo {
            stream,
            clock,
            max_header_bytes,
            replacing: None,
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            this.replacing =
                refusals::replacement(buf, this.max_header_bytes).map(|(bytes, stands_for)| {
                    Replacement {
                        bytes,
                        written: 0,
                        stands_for,
                    }
                });
        }
        let Some(replacement) = &mut this.replacing else {
            return Pin::new(&mut this.stream).poll_write(cx, buf);
        };
        // hyper calls again with the same bytes after a Pending, so the replacement resumes.
        while replacement.written < replacement.bytes.len() {
            let rest = &replacement.bytes[replacement.written..];
            match Pin::new(&mut this.stream).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => replacement.written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let stands_for = replacement.stands_for;
        this.replacing = None;
        Poll::Ready(Ok(stands_for))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    // Not vectored: every write goes through `poll_write` (hyper is told `writev(false)` too).
    fn is_write_vectored(&self) -> bool {
        false
    }
}
