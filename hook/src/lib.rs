//! The policy hook's client, `codex-jobhost-hook`: the process Codex runs
//! before each tool call of a job with an approval policy. It hands the call
//! (its stdin, one JSON object) to the job's supervisor over the socket
//! [`SOCKET_ENV`] names, reads one [`HookVerdict`] line back, and answers
//! Codex as its `PreToolUse` contract reads (Codex 0.169.0): exit 0 with
//! nothing on stdout lets the call run; exit 2 with the reason on stderr
//! blocks it.
//!
//! Every failure blocks: no socket, no answer, an answer that does not parse,
//! a panic. Codex would read any other exit, or exit 2 with an empty
//! stderr, as "let it run".
//!
//! The wire format lives here too, for the supervisor's end
//! (`codex_jobhost::backend::hooks::server`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

/// The environment variable that tells the hook its supervisor's socket:
/// `<job dir>/hook.sock`.
pub const SOCKET_ENV: &str = "CODEX_JOBHOST_HOOK_SOCKET";

/// Most bytes one call may have (a large patch is the largest): 64 MiB.
pub const MAX_CALL_BYTES: u64 = 64 << 20;

/// The answer to one hook call, one JSON line on the socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookVerdict {
    /// Whether the call may run.
    pub allow: bool,
    /// Why not, shown to the agent; none when allowed.
    pub reason: Option<String>,
}

/// A path that reaches `path` within the 108 bytes a socket address holds:
/// `path` itself when short enough, else `/proc/self/fd/<n>/<name>` through
/// its directory, opened (keep the returned file while the path is used).
///
/// Errors: the directory cannot be opened.
pub fn reachable(path: &Path) -> std::io::Result<(Option<std::fs::File>, PathBuf)> {
    if path.as_os_str().len() < 100 {
        return Ok((None, path.to_owned()));
    }
    let (dir, name) = (path.parent().unwrap_or(Path::new("/")), path.file_name().unwrap_or_default());
    let file = std::fs::File::open(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {}: {e}", dir.display())))?;
    let short = Path::new("/proc/self/fd").join(file.as_raw_fd().to_string()).join(name);
    Ok((Some(file), short))
}

/// Runs one hook call: the exit code Codex reads (0 allow, 2 block).
pub fn run() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("codex-jobhost-hook failed ({info}), so the call is blocked");
        std::process::exit(2);
    }));
    match ask() {
        Ok(HookVerdict { allow: true, .. }) => ExitCode::SUCCESS,
        Ok(HookVerdict { reason, .. }) => block(reason.as_deref().unwrap_or("declined by the job's approval policies")),
        Err(e) => block(&format!(
            "codex-jobhost hook cannot reach the job's approval policies ({e:#}), so the call is blocked"
        )),
    }
}

fn block(reason: &str) -> ExitCode {
    let reason = if reason.trim().is_empty() { "blocked by the job's approval policies" } else { reason };
    eprintln!("{reason}");
    ExitCode::from(2)
}

fn ask() -> Result<HookVerdict, String> {
    let mut input = Vec::new();
    let read = std::io::stdin().take(MAX_CALL_BYTES + 1).read_to_end(&mut input);
    read.map_err(|e| format!("cannot read the call: {e}"))?;
    if input.len() as u64 > MAX_CALL_BYTES {
        return Err(format!("the call is larger than {MAX_CALL_BYTES} bytes"));
    }
    let input: serde_json::Value = serde_json::from_slice(&input).map_err(|e| format!("the call is not JSON: {e}"))?;
    let socket = std::env::var_os(SOCKET_ENV)
        .ok_or_else(|| format!("{SOCKET_ENV} is not set: not run by a codex-jobhost supervisor"))?;
    let (_dir, path) = reachable(socket.as_ref()).map_err(|e| e.to_string())?;
    let mut stream = UnixStream::connect(&path).map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    let mut line = serde_json::to_string(&input).map_err(|e| e.to_string())?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(|e| format!("cannot send the call: {e}"))?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(|e| format!("no answer from the supervisor: {e}"))?;
    serde_json::from_str(&answer).map_err(|e| format!("an answer that does not parse ({e}): {:?}", answer.trim()))
}
