//! A guest's log: what it writes with the host's `log()` and what it prints
//! to stdout or stderr goes to the host's tracing log, tagged with the
//! component's name, within limits, so a guest can neither flood the host's
//! log nor forge its lines:
//!
//! - control characters (newlines, escapes) are shown escaped (`\n`, `\u{1b}`);
//! - a line is cut at [`LINE_MAX`] bytes;
//! - one call may log [`LINES_PER_CALL`] lines;
//! - one component may log [`BURST_LINES`] lines at once and [`LINES_PER_SECOND`]
//!   after that (a token bucket shared by its instances);
//! - what is held back is counted and reported in one line at the end of the call.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest line logged, in bytes; the rest is cut (an unfinished printed line
/// is logged in pieces of this size).
pub const LINE_MAX: usize = 2048;
/// Lines one call may log.
pub const LINES_PER_CALL: u32 = 20;
/// Lines a component may log at once, before the rate applies.
pub const BURST_LINES: f64 = 100.0;
/// Lines a component may log per second after its burst.
pub const LINES_PER_SECOND: f64 = 10.0;

/// Where a logged line came from.
#[derive(Clone, Copy)]
pub(crate) enum Source {
    /// The host's `log()` at this level.
    Log(tracing::Level),
    /// What the guest printed to this stream (`stdout`, `stderr`), at `info`.
    Stream(&'static str),
}

/// The log limits of one component (one entry of a policy file), shared by
/// its instances and their streams.
pub(crate) struct LogBudget {
    component: Arc<str>,
    state: Mutex<BudgetState>,
}

struct BudgetState {
    this_call: u32,
    held_back: u64,
    tokens: f64,
    refilled: Instant,
    /// The last lines the guest printed to stderr in this call (a panic
    /// message), whatever the limits, for a failure's error.
    stderr_tail: std::collections::VecDeque<String>,
}

/// Lines of stderr kept for a failure's error, each cut to [`STDERR_LINE_MAX`] bytes.
const STDERR_TAIL_LINES: usize = 4;
const STDERR_LINE_MAX: usize = 300;

impl LogBudget {
    pub(crate) fn new(component: Arc<str>) -> Arc<Self> {
        let state = BudgetState {
            this_call: 0,
            held_back: 0,
            tokens: BURST_LINES,
            refilled: Instant::now(),
            stderr_tail: Default::default(),
        };
        Arc::new(LogBudget { component, state: Mutex::new(state) })
    }

    /// Logs one line if the limits allow it, escaped and cut; counts it otherwise.
    pub(crate) fn line(&self, source: Source, text: &str) {
        {
            let mut state = self.state.lock().unwrap();
            if matches!(source, Source::Stream("stderr")) && !text.trim().is_empty() {
                if state.stderr_tail.len() == STDERR_TAIL_LINES {
                    state.stderr_tail.pop_front();
                }
                state.stderr_tail.push_back(escape(text, STDERR_LINE_MAX));
            }
            let now = Instant::now();
            let refill = now.duration_since(state.refilled).as_secs_f64() * LINES_PER_SECOND;
            state.tokens = (state.tokens + refill).min(BURST_LINES);
            state.refilled = now;
            if state.this_call >= LINES_PER_CALL || state.tokens < 1.0 {
                state.held_back += 1;
                return;
            }
            state.this_call += 1;
            state.tokens -= 1.0;
        }
        let text = escape(text, LINE_MAX);
        let component = &*self.component;
        match source {
            Source::Stream(stream) => tracing::info!(component, stream, "{text}"),
            Source::Log(tracing::Level::ERROR) => tracing::error!(component, "{text}"),
            Source::Log(tracing::Level::WARN) => tracing::warn!(component, "{text}"),
            Source::Log(tracing::Level::INFO) => tracing::info!(component, "{text}"),
            Source::Log(tracing::Level::DEBUG) => tracing::debug!(component, "{text}"),
            Source::Log(_) => tracing::trace!(component, "{text}"),
        }
    }

    /// What the guest printed last to stderr in this call, one line joined by ` | `, if anything.
    pub(crate) fn stderr_tail(&self) -> Option<String> {
        let state = self.state.lock().unwrap();
        (!state.stderr_tail.is_empty()).then(|| state.stderr_tail.iter().cloned().collect::<Vec<_>>().join(" | "))
    }

    /// Ends a call: reports how many lines were held back, and starts the
    /// next call's count.
    pub(crate) fn end_call(&self) {
        let held_back = {
            let mut state = self.state.lock().unwrap();
            state.this_call = 0;
            state.stderr_tail.clear();
            std::mem::take(&mut state.held_back)
        };
        if held_back > 0 {
            tracing::warn!(
                component = &*self.component,
                "{held_back} log lines held back (limits: {LINES_PER_CALL} lines a call, {BURST_LINES} at once, {LINES_PER_SECOND} a second)"
            );
        }
    }
}

/// `text` cut to `max` bytes, with control characters escaped so a line
/// cannot start another or colour the terminal.
fn escape(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 8);
    for c in text[..end].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if end < text.len() {
        out.push_str(&format!("… ({} bytes cut)", text.len() - end));
    }
    out
}

/// One output stream of one guest instance; clones share the unfinished line.
#[derive(Clone)]
pub(crate) struct GuestLog {
    line: Arc<Mutex<Line>>,
}

struct Line {
    budget: Arc<LogBudget>,
    stream: &'static str,
    held: Vec<u8>,
}

impl GuestLog {
    /// The `stream` (`stdout` or `stderr`) of a component, logged within its `budget`.
    pub(crate) fn new(budget: Arc<LogBudget>, stream: &'static str) -> Self {
        GuestLog { line: Arc::new(Mutex::new(Line { budget, stream, held: Vec::new() })) }
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
        self.budget.line(Source::Stream(self.stream), text.trim_end_matches('\r'));
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
