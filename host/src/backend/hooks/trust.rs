//! Making Codex trust the policy hook, and nothing else: Codex runs a
//! configured hook only when `hooks.state."<key>".trusted_hash` equals the
//! hash it computes of that handler (or with `--dangerously-bypass-hook-trust`,
//! which would also run every other untrusted hook, a repository's
//! `.codex/hooks.json` included). The hash is Codex's own: the supervisor
//! asks `codex app-server` for it (`hooks/list`, which reports each hook's
//! `key`, `enabled` and `currentHash`; Codex 0.169.0) and keeps it per Codex
//! binary and handler in `<home>/cache/codex/`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{HOOK_KEY, codex_config};
use crate::backend::codex_cli::ProbeCache;

/// How long the probe waits for `codex app-server` to list its hooks: a
/// backstop for a Codex that hangs, not a deadline a slow machine meets.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// The hash Codex gives the hook handler that runs `command`, from the
/// cache in `cache_dir` or from `program app-server` (with the agent's `env`,
/// in `cwd`).
///
/// Errors: Codex cannot be run, has no `hooks/list`, or does not list the
/// handler enabled (e.g. its requirements allow managed hooks only): then
/// the job cannot be governed, and its turn must not run.
pub async fn trusted_hash(
    program: &Path,
    env: &[(String, String)],
    cwd: &Path,
    command: &str,
    cache_dir: &Path,
) -> Result<String> {
    let key = format!("{}\n{command}\n{}", program.display(), super::HOOK_TIMEOUT_S);
    let cache = ProbeCache::new(cache_dir, "hook-trust-", key.as_bytes(), program);
    if let Some(hash) = cache.read::<String>() {
        return Ok(hash);
    }
    let hash = tokio::time::timeout(PROBE_TIMEOUT, ask_codex(program, env, cwd, command))
        .await
        .map_err(|_| anyhow!("`{} app-server` did not list its hooks in {PROBE_TIMEOUT:?}", program.display()))??;
    if let Err(e) = cache.write(&hash) {
        tracing::warn!("cannot keep the policy hook's hash: {e:#}");
    }
    Ok(hash)
}

async fn ask_codex(program: &Path, env: &[(String, String)], cwd: &Path, command: &str) -> Result<String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("app-server");
    for entry in codex_config(command, None) {
        cmd.args(["-c", &entry]);
    }
    let mut child = cmd
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {} app-server", program.display()))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"clientInfo": {"name": "codex-jobhost", "version": env!("CARGO_PKG_VERSION")}}}),
        json!({"jsonrpc": "2.0", "method": "initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "hooks/list", "params": {"cwds": [cwd]}}),
    ];
    for message in messages {
        stdin.write_all(format!("{message}\n").as_bytes()).await?;
    }
    while let Some(line) = lines.next_line().await? {
        let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
        if message["id"] != json!(2) {
            continue;
        }
        if let Some(error) = message.get("error") {
            bail!("Codex cannot list its hooks (`hooks/list`: {error}); a Codex that has it is needed to govern a job");
        }
        return hash_in(&message["result"]);
    }
    bail!("`{} app-server` ended before it listed its hooks", program.display())
}

/// The policy hook's `currentHash` in a `hooks/list` result
/// (`{data: [{hooks: [{key, enabled, currentHash, …}]}]}`), when Codex lists it enabled.
fn hash_in(result: &Value) -> Result<String> {
    let hooks = result["data"].as_array().into_iter().flatten().flat_map(|d| d["hooks"].as_array()).flatten();
    let ours = hooks.into_iter().find(|h| h["key"] == HOOK_KEY).ok_or_else(|| {
        anyhow!("Codex does not load the policy hook given on its command line (are only managed hooks allowed here?)")
    })?;
    if ours["enabled"] != json!(true) {
        bail!("Codex lists the policy hook as disabled");
    }
    ours["currentHash"].as_str().map(str::to_owned).context("Codex lists the policy hook without a hash")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_read_only_off_our_enabled_hook() {
        let listed = |key: &str, enabled: bool| {
            json!({"data": [{"cwd": "/w", "hooks": [
                {"key": "/u/.codex/hooks.json:pre_tool_use:0:0", "enabled": true, "currentHash": "sha256:other"},
                {"key": key, "enabled": enabled, "currentHash": "sha256:ours"},
            ]}]})
        };
        assert_eq!(hash_in(&listed(HOOK_KEY, true)).unwrap(), "sha256:ours");
        assert!(hash_in(&listed(HOOK_KEY, false)).unwrap_err().to_string().contains("disabled"));
        assert!(hash_in(&listed("elsewhere", true)).unwrap_err().to_string().contains("does not load"));
    }
}
