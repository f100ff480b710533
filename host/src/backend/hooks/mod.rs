//! Codex's `PreToolUse` hook, pointed at the job's approval policies: with
//! it, every shell command, `apply_patch` and MCP tool call of a governed
//! job is put to the policies before it runs, on both backends and in every
//! approval mode (`codex exec` never asks its client; app-server asks only
//! what its approval policy says).
//!
//! - The supervisor adds the hook to Codex's command line as session
//!   config ([`codex_config`]): one handler, matcher `*`, running
//!   `codex-jobhost-hook`, trusted by its hash alone (what Codex itself
//!   computed for that handler, [`trust`]), so no other untrusted hook runs
//!   because of it.
//! - Codex runs `codex-jobhost-hook` (the `codex_jobhost_hook` crate) before each tool call with
//!   the call on stdin; it asks the supervisor over the job's socket
//!   ([`server`]) and blocks the call unless the answer is allow.
//! - The supervisor judges the call with the turn's [`super::gate::Gate`]
//!   (an `ask` waits for `job_approve`), so app-server's own approval
//!   request for the same call gets the same answer, decided once.
//!
//! Codex fails open on a hook that exits other than 0 or 2, or prints JSON it
//! cannot parse, or times out; the client therefore answers every failure
//! with exit 2 and a reason, and the hook's timeout is far beyond any
//! approval deadline. Shapes as in Codex 0.169.0 (`codex-rs/hooks`).

pub mod server;
pub mod trust;

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::app_server::requests::plain_argv;
use super::gate::{Gate, Judged, Ruling};
use crate::job::End;
use crate::job::approval::ApprovalDecision;
use crate::job::runtime::Turn;
use crate::policy::{ChangeKind, Origin, Request};
pub use codex_jobhost_hook::SOCKET_ENV;
pub use server::{HookCall, HookReply, HookServer};

/// How hook calls reach the gate, as `approval.decided` says.
pub const VIA: &str = "hook";

/// Sets up the policy hook for `turn` when its `gate` governs: the socket
/// listening, Codex's trust in the handler learned, the `-c` entries and the
/// socket's variable added to the agent's command. `Ok(None)`: the job has
/// no approval policies, and Codex runs as the caller's mode says.
/// `Err(end)`: the hook cannot be set up, and the turn must not run (fail closed).
pub async fn govern<W>(turn: &mut Turn<'_>, gate: &Gate<W>) -> Result<std::result::Result<Option<HookServer>, End>> {
    if !gate.governs() {
        return Ok(Ok(None));
    }
    let cannot = |e: anyhow::Error| {
        End::failed(format!("cannot put the agent's tool calls to the job's approval policies: {e:#}"))
    };
    let server = match HookServer::bind(turn.job.path()) {
        Ok(server) => server,
        Err(e) => return Ok(Err(cannot(e))),
    };
    let spec = &turn.spec;
    let (command, hash) = match trusted_command(&spec.program, &spec.env, &turn.meta.cwd, turn.store.root()).await {
        Ok(trusted) => trusted,
        Err(e) => return Ok(Err(cannot(e))),
    };
    insert_config(&mut turn.spec.args, &codex_config(&command, Some(&hash)));
    turn.spec.env.push((SOCKET_ENV.to_owned(), server.path().display().to_string()));
    Ok(Ok(Some(server)))
}

/// The hook handler's command (`codex-jobhost-hook` beside this program) and
/// the hash Codex `codex` (run with `env` in `cwd`) trusts it by, cached
/// under `home`'s `cache/codex/`.
///
/// Errors: the hook program is missing; Codex cannot say the hash (see [`trust::trusted_hash`]).
pub async fn trusted_command(
    codex: &Path,
    env: &[(String, String)],
    cwd: &Path,
    home: &Path,
) -> Result<(String, String)> {
    let program = hook_program(&std::env::current_exe()?);
    if !program.is_file() {
        anyhow::bail!("{} is missing (it is installed with codex-jobhost)", program.display());
    }
    let command = hook_command(&program);
    let cache = home.join(crate::home::CACHE_DIR);
    let hash = trust::trusted_hash(codex, env, cwd, &command, &cache).await?;
    Ok((command, hash))
}

/// The next call of `hooks`; never, for a turn without the hook.
pub async fn next_call(hooks: &mut Option<HookServer>) -> HookCall {
    match hooks {
        Some(server) => server.next().await,
        None => std::future::pending().await,
    }
}

/// Judges one hook call with `gate`: `Some((ruling, waiter))` when decided
/// at once (the driver gives the ruling, then records it), `None` when handed
/// to the caller. A call no policy can judge is declined.
pub async fn judge_call<W>(
    turn: &mut Turn<'_>,
    gate: &mut Gate<W>,
    call: HookCall,
    waiter: impl FnOnce(HookReply) -> W,
) -> Result<Option<(Ruling, W)>> {
    let call_id = call.input["tool_use_id"].as_str().map(str::to_owned);
    match call_of(&call.input) {
        Call::Judged(kind, request) if !gate.enforces() => {
            // Only policies in shadow: they are asked and recorded; the call runs as the mode says.
            gate.shadow(turn, kind, VIA, request, call_id.as_deref()).await?;
            call.reply.allow();
            Ok(None)
        }
        Call::Judged(kind, request) => {
            match gate.judge(turn, kind, VIA, request, call.input, call_id.as_deref(), waiter(call.reply)).await? {
                Judged::Decided(ruling, waiter) => Ok(Some((ruling, waiter))),
                Judged::Asked => Ok(None),
            }
        }
        Call::Unjudgeable(_) if !gate.enforces() => {
            call.reply.allow();
            Ok(None)
        }
        Call::Unjudgeable(reason) => {
            let ruling = gate.built_in(turn, "tool_call", VIA, call.input, ApprovalDecision::Decline, reason);
            Ok(Some((ruling, waiter(call.reply))))
        }
    }
}

/// How long Codex lets one hook call run, in seconds (30 days): a hook that
/// Codex times out lets the call run, so this is a day beyond the longest
/// approval wait, which the supervisor enforces itself (it answers decline then).
pub const HOOK_TIMEOUT_S: u64 = super::gate::LONGEST_WAIT.as_secs() + 24 * 3600;

/// The key Codex gives the hook in its session-flags layer (`-c`): the
/// source, the event, the matcher group's index and the handler's.
pub const HOOK_KEY: &str = "/<session-flags>/config.toml:pre_tool_use:0:0";

/// The hook client's program, `codex-jobhost-hook`, beside `server` (this
/// program, `codex-jobhost`): installed with it.
pub fn hook_program(server: &Path) -> std::path::PathBuf {
    server.with_file_name("codex-jobhost-hook")
}

/// The hook handler's command: `program`, quoted for a shell.
pub fn hook_command(program: &Path) -> String {
    let program = program.display().to_string();
    shlex::try_quote(&program).map(|q| q.into_owned()).unwrap_or(program)
}

/// The `-c key=value` entries that install the hook (`hooks.PreToolUse`),
/// keep the hooks feature on whatever the user's config says, and trust this
/// handler alone by its hash (`hooks.state`), enabled.
pub fn codex_config(command: &str, trusted_hash: Option<&str>) -> Vec<String> {
    let handler = toml::Value::try_from(serde_json::json!([{
        "matcher": "*",
        "hooks": [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}],
    }]))
    .expect("a hook handler is TOML");
    let mut entries = vec!["features.hooks=true".to_owned(), format!("hooks.PreToolUse={handler}")];
    if let Some(hash) = trusted_hash {
        let state = toml::Value::try_from(serde_json::json!({HOOK_KEY: {"trusted_hash": hash, "enabled": true}}))
            .expect("a hook state is TOML");
        entries.push(format!("hooks.state={state}"));
    }
    entries
}

/// Puts `-c` entries into an agent's arguments: before a `--` (after which
/// `codex exec` takes its prompt), else at the end.
pub fn insert_config(args: &mut Vec<String>, entries: &[String]) {
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let flags = entries.iter().flat_map(|e| ["-c".to_owned(), e.clone()]);
    args.splice(at..at, flags);
}

/// What one hook call asks, for the approval policies.
#[derive(Debug)]
pub enum Call {
    /// A call the policies can judge: its kind (`command`, `file_change`) and request.
    Judged(&'static str, Request),
    /// A call no policy can judge yet, declined (fail closed) for this reason.
    Unjudgeable(String),
}

/// Reads a `PreToolUse` call (`{session_id, turn_id, cwd, tool_name,
/// tool_input, tool_use_id, …}`, Codex 0.169.0): `Bash` (`tool_input.command`,
/// the script) is a command; `apply_patch` (`tool_input.command`, the patch
/// envelope) a file change of the files it names, as absolute paths; an MCP
/// tool (`mcp__<server>__<tool>`, its arguments in `tool_input`) a tool call;
/// anything else cannot be judged.
pub fn call_of(input: &Value) -> Call {
    let text = |p: &str| input.pointer(p).and_then(Value::as_str);
    let tool = text("/tool_name").unwrap_or("");
    let cwd = text("/cwd").unwrap_or("");
    let origin = match (text("/session_id"), text("/turn_id"), text("/tool_use_id")) {
        (Some(thread), Some(turn), Some(item)) => {
            Some(Origin { thread_id: thread.into(), turn_id: turn.into(), item_id: item.into() })
        }
        _ => None,
    };
    match (tool, text("/tool_input/command")) {
        // Codex runs a patch given to the shell (`apply_patch <<'EOF' …`) as a file change.
        ("Bash", Some(command)) if shell_patch(command).is_some() => {
            let (paths, kind) = patch_files(shell_patch(command).unwrap_or_default(), Path::new(cwd));
            Call::Judged("file_change", Request::FileChange { paths, kind, reason: None, origin })
        }
        ("Bash", Some(command)) => Call::Judged(
            "command",
            Request::Command {
                argv: plain_argv(command),
                command: command.to_owned(),
                raw: command.to_owned(),
                cwd: cwd.to_owned(),
                reason: None,
                network_host: None,
                origin,
            },
        ),
        ("apply_patch", Some(patch)) => {
            let (paths, kind) = patch_files(patch, Path::new(cwd));
            Call::Judged("file_change", Request::FileChange { paths, kind, reason: None, origin })
        }
        (t, _) if t.starts_with("mcp__") => match t["mcp__".len()..].split_once("__") {
            Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
                let arguments = input.get("tool_input").filter(|v| !v.is_null()).map_or("{}".into(), Value::to_string);
                let (server, tool) = (server.to_owned(), tool.to_owned());
                Call::Judged("tool_call", Request::ToolCall { server, tool, arguments, origin })
            }
            _ => Call::Unjudgeable(format!("MCP tool call {t}: expected mcp__<server>__<tool>")),
        },
        ("", _) => Call::Unjudgeable("a hook call that names no tool".into()),
        (t, _) => Call::Unjudgeable(format!("tool {t}: not a kind of request the approval policies know")),
    }
}

/// The patch of a shell command that runs `apply_patch` on one (`apply_patch
/// <<'EOF'` and the envelope), which Codex applies as a file change.
fn shell_patch(command: &str) -> Option<&str> {
    let rest = command.trim_start().strip_prefix("apply_patch")?;
    let start = rest.find("*** Begin Patch")?;
    Some(&rest[start..])
}

/// The files an `apply_patch` envelope touches (`*** Add File: p`, `***
/// Update File: p`, `*** Delete File: p`, `*** Move to: p`), absolute under
/// `cwd`, and one kind for the whole change: the one that can lose the most.
fn patch_files(patch: &str, cwd: &Path) -> (Vec<String>, ChangeKind) {
    let mut paths = Vec::new();
    let mut kind = ChangeKind::Add;
    for line in patch.lines() {
        let Some(rest) = line.strip_prefix("*** ") else { continue };
        let (found, path) = match rest.split_once(": ") {
            Some(("Add File", p)) => (ChangeKind::Add, p),
            Some(("Update File" | "Move to", p)) => (ChangeKind::Update, p),
            Some(("Delete File", p)) => (ChangeKind::Delete, p),
            _ => continue,
        };
        kind = match (kind, found) {
            (ChangeKind::Delete, _) | (_, ChangeKind::Delete) => ChangeKind::Delete,
            (ChangeKind::Update, _) | (_, ChangeKind::Update) => ChangeKind::Update,
            _ => ChangeKind::Add,
        };
        paths.push(cwd.join(path.trim()).display().to_string());
    }
    (paths, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hook_config_is_toml_codex_reads() {
        let entries = codex_config("'/opt/my jobhost/codex-jobhost-hook'", Some("sha256:ab"));
        assert_eq!(entries[0], "features.hooks=true");
        let (key, value) = entries[1].split_once('=').unwrap();
        assert_eq!(key, "hooks.PreToolUse");
        let parsed: toml::Value = toml::from_str(&format!("v = {value}")).unwrap();
        assert_eq!(parsed["v"][0]["hooks"][0]["command"].as_str(), Some("'/opt/my jobhost/codex-jobhost-hook'"));
        assert_eq!(parsed["v"][0]["matcher"].as_str(), Some("*"));
        let (_, state) = entries[2].split_once('=').unwrap();
        let parsed: toml::Value = toml::from_str(&format!("v = {state}")).unwrap();
        assert_eq!(parsed["v"][HOOK_KEY]["trusted_hash"].as_str(), Some("sha256:ab"));
        assert_eq!(parsed["v"][HOOK_KEY]["enabled"].as_bool(), Some(true));
    }

    #[test]
    fn config_goes_before_the_prompt_separator() {
        let mut args: Vec<String> = ["exec", "--json", "--", "-"].map(String::from).into();
        insert_config(&mut args, &["a=1".into()]);
        assert_eq!(args, ["exec", "--json", "-c", "a=1", "--", "-"]);
        let mut args: Vec<String> = vec!["app-server".into()];
        insert_config(&mut args, &["a=1".into()]);
        assert_eq!(args, ["app-server", "-c", "a=1"]);
    }

    #[test]
    fn a_call_becomes_the_request_the_policies_know() {
        let base = json!({"session_id": "t", "turn_id": "u", "tool_use_id": "call_1", "cwd": "/w"});
        let with = |tool: &str, input: Value| {
            let mut v = base.clone();
            v["tool_name"] = json!(tool);
            v["tool_input"] = input;
            call_of(&v)
        };
        match with("Bash", json!({"command": "git push --force"})) {
            Call::Judged("command", Request::Command { argv, cwd, origin, .. }) => {
                assert_eq!(argv, ["git", "push", "--force"]);
                assert_eq!(cwd, "/w");
                assert_eq!(origin.unwrap().item_id, "call_1");
            }
            other => panic!("{other:?}"),
        }
        let patch = "*** Begin Patch\n*** Add File: a.txt\n+x\n*** Delete File: sub/b.txt\n*** End Patch\n";
        match with("apply_patch", json!({"command": patch})) {
            Call::Judged("file_change", Request::FileChange { paths, kind, .. }) => {
                assert_eq!(paths, ["/w/a.txt", "/w/sub/b.txt"]);
                assert_eq!(kind, ChangeKind::Delete);
            }
            other => panic!("{other:?}"),
        }
        let heredoc = format!("apply_patch <<'EOF'\n{patch}EOF\n");
        match with("Bash", json!({"command": heredoc})) {
            Call::Judged("file_change", Request::FileChange { paths, .. }) => assert_eq!(paths.len(), 2),
            other => panic!("{other:?}"),
        }
        match with("mcp__docs__search_all", json!({"q": 1})) {
            Call::Judged("tool_call", Request::ToolCall { server, tool, arguments, .. }) => {
                assert_eq!((server.as_str(), tool.as_str(), arguments.as_str()), ("docs", "search_all", r#"{"q":1}"#));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(with("mcp__docs", json!({})), Call::Unjudgeable(r) if r.contains("mcp__docs")));
        assert!(matches!(with("WebSearch", json!({"command": "x"})), Call::Unjudgeable(r) if r.contains("WebSearch")));
    }
}
