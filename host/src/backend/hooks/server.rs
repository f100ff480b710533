//! The supervisor's end of the policy hook: a Unix socket in the job's
//! directory (`hook.sock`) that takes one call per connection: the hook's
//! stdin as Codex gave it, one JSON line; and answers one [`HookVerdict`]
//! line once the turn's gate has decided (which may wait for `job_approve`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
pub use codex_jobhost_hook::{HookVerdict, MAX_CALL_BYTES, reachable};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::backend::gate::Ruling;
use crate::job::approval::ApprovalDecision;

/// The socket's name in the job's directory.
pub const SOCKET_NAME: &str = "hook.sock";

/// One hook call: what Codex gave the hook, and where its verdict goes.
pub struct HookCall {
    /// The `PreToolUse` input (see [`super::call_of`]).
    pub input: Value,
    /// Gives the verdict.
    pub reply: HookReply,
}

/// Where one hook call's verdict goes.
pub struct HookReply(oneshot::Sender<HookVerdict>);

impl HookReply {
    /// Answers the call with `ruling`: allowed on accept, blocked with the
    /// ruling's reason (and who decided) otherwise.
    pub fn give(self, ruling: &Ruling) -> bool {
        let allow = matches!(ruling.decision, ApprovalDecision::Accept | ApprovalDecision::AcceptForSession);
        let reason = (!allow).then(|| {
            let why = ruling.reason.as_deref().unwrap_or("no reason given");
            format!("{} by {}: {why}", ruling.decision.as_str(), ruling.by)
        });
        self.0.send(HookVerdict { allow, reason }).is_ok()
    }

    /// Lets the call run, with nothing decided (no enforced policy judges it).
    pub fn allow(self) {
        let _ = self.0.send(HookVerdict { allow: true, reason: None });
    }
}

/// The listening socket and the calls it has read.
pub struct HookServer {
    path: PathBuf,
    calls: mpsc::Receiver<HookCall>,
    task: tokio::task::JoinHandle<()>,
}

impl HookServer {
    /// Listens on `<dir>/hook.sock` (a stale one is replaced).
    ///
    /// Errors: the socket cannot be made.
    pub fn bind(dir: &Path) -> Result<Self> {
        let path = dir.join(SOCKET_NAME);
        let _ = std::fs::remove_file(&path);
        let listener = {
            let (_dir, reachable) = reachable(&path)?;
            UnixListener::bind(&reachable).with_context(|| format!("cannot listen on {}", path.display()))?
        };
        let (sender, calls) = mpsc::channel(16);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, sender.clone()));
            }
        });
        Ok(HookServer { path, calls, task })
    }

    /// The socket's path, for the hook client ([`super::SOCKET_ENV`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next call; pending for ever after the last.
    pub async fn next(&mut self) -> HookCall {
        match self.calls.recv().await {
            Some(call) => call,
            None => std::future::pending().await,
        }
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One connection: read the call, hand it on, write the verdict. A call that
/// cannot be read, or that the turn ends before deciding, is blocked.
async fn serve(stream: UnixStream, calls: mpsc::Sender<HookCall>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = BufReader::new(read.take(MAX_CALL_BYTES)).read_line(&mut line).await;
    let verdict = match read.map(|_| serde_json::from_str::<Value>(&line)) {
        Ok(Ok(input)) => {
            let (reply, verdict) = oneshot::channel();
            match calls.send(HookCall { input, reply: HookReply(reply) }).await {
                Ok(()) => verdict.await.ok(),
                Err(_) => None,
            }
        }
        _ => Some(HookVerdict {
            allow: false,
            reason: Some(format!("the hook call is not one JSON object of at most {MAX_CALL_BYTES} bytes")),
        }),
    };
    let verdict = verdict
        .unwrap_or(HookVerdict { allow: false, reason: Some("the turn ended before the call was decided".into()) });
    let mut text = serde_json::to_string(&verdict).unwrap_or_default();
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}
