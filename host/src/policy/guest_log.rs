//! A guest's stdout or stderr: every line it prints goes to the host's tracing
//! log, at `info`, with the component's name and the stream. Only an unfinished
//! line is held, so a guest that prints on every call never fills a buffer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest line held back waiting for its newline, in bytes; a longer one is
/// logged in pieces of this size.
const LINE_MAX: usize = 4096;

/// One output stream of one guest instance; clones share the unfinished line.
#[derive(Clone)]
pub(crate) struct GuestLog {
    line: Arc<Mutex<Line>>,
}

struct Line {
    component: Arc<str>,
    stream: &'static str,
    held: Vec<u8>,
}

impl GuestLog {
    /// The `stream` (`stdout` or `stderr`) of the component named `component`.
    pub(crate) fn new(component: Arc<str>, stream: &'static str) -> Self {
        GuestLog { line: Arc::new(Mutex::new(Line { component, stream, held: Vec::new() })) }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut line = self.line.lock().unwrap();
        line.held.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = line.held[start..].iter().position(|b| *b == b'\n').map(|i| start + i) {
            line.log(start, end);
            start = end + 1;
        }
        while line.held.len() - start >= LINE_MAX {
            line.log(start, start + LINE_MAX);
            start += LINE_MAX;
        }
        line.held.drain(..start);
    }
}

impl Line {
    fn log(&self, start: usize, end: usize) {
        let text = String::from_utf8_lossy(&self.held[start..end]);
        tracing::info!(component = &*self.component, stream = self.stream, "{}", text.trim_end_matches('\r'));
    }
}

impl Drop for Line {
    /// The last line, if the guest ended without a newline.
    fn drop(&mut self) {
        if !self.held.is_empty() {
            self.log(0, self.held.len());
        }
    }
}

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestLog {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
