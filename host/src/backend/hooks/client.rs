//! `codex-jobhost hook`: the process Codex runs before each tool call of a
//! governed job. It hands the call (its stdin) to the job's supervisor over
//! [`super::SOCKET_ENV`]'s socket and answers Codex as its `PreToolUse`
//! contract reads (Codex 0.169.0): exit 0 with nothing on stdout lets the
//! call run; exit 2 with the reason on stderr blocks it.
//!
//! Every failure blocks: no socket, no answer, an answer that does not parse,
//! a panic. Codex would read any other exit, or exit 2 with an empty
//! stderr, as "let it run".

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::server::{HookVerdict, MAX_CALL_BYTES, reachable};

/// Runs one hook call: the exit code Codex reads (0 allow, 2 block).
pub fn run() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("codex-jobhost hook failed ({info}), so the call is blocked");
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

fn ask() -> Result<HookVerdict> {
    let mut input = Vec::new();
    std::io::stdin().take(MAX_CALL_BYTES + 1).read_to_end(&mut input).context("cannot read the call")?;
    if input.len() as u64 > MAX_CALL_BYTES {
        bail!("the call is larger than {MAX_CALL_BYTES} bytes");
    }
    let input: serde_json::Value = serde_json::from_slice(&input).context("the call is not JSON")?;
    let socket = std::env::var_os(super::SOCKET_ENV)
        .with_context(|| format!("{} is not set: not run by a codex-jobhost supervisor", super::SOCKET_ENV))?;
    let (_dir, path) = reachable(socket.as_ref())?;
    let mut stream = UnixStream::connect(&path).with_context(|| format!("cannot connect to {}", path.display()))?;
    let mut line = serde_json::to_string(&input)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).context("no answer from the supervisor")?;
    serde_json::from_str(&answer).with_context(|| format!("an answer that does not parse: {:?}", answer.trim()))
}
