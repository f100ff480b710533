//! Every tool call the agent makes passes the project's approval policy, on
//! every backend and in every approval mode: `exec` + `auto-edit` (Codex never
//! asks its client), `app-server` + `full-auto` (Codex asks nothing), and
//! `app-server` + `suggest` (Codex asks too: one decision per action). The
//! real Codex CLI runs the policy hook; the mock model asks for the commands.

use anyhow::{Context, Result};
use codex_jobhost_e2e::{Reply, World, decided};
use serde_json::{Value, json};

/// A backend and an approval mode to run a job with.
#[derive(Clone, Copy, Debug)]
struct Mode {
    backend: &'static str,
    approval: &'static str,
}

const EXEC_AUTO_EDIT: Mode = Mode { backend: "exec", approval: "auto-edit" };
const APP_SERVER_FULL_AUTO: Mode = Mode { backend: "app-server", approval: "full-auto" };
const APP_SERVER_SUGGEST: Mode = Mode { backend: "app-server", approval: "suggest" };

impl Mode {
    /// The model asking to run `command`: under `suggest` (a read-only
    /// sandbox) outside the sandbox, which Codex asks its client about.
    fn command(self, command: &str) -> Reply {
        match self.approval {
            "suggest" => Reply::Escalated(command.into()),
            _ => Reply::Command(command.into()),
        }
    }

    fn start_args(self, world: &World, prompt: &str) -> Value {
        let mut args = world.start_args(prompt);
        args["backend"] = json!(self.backend);
        args["approval_policy"] = json!(self.approval);
        args
    }
}

/// The command allowlist as the project's policy, full-auto launches allowed.
fn allowlist(world: &World, allow: &[&str], deny: &[&str]) -> Result<()> {
    let guest = world.project_guest("command_allowlist")?;
    let config = format!("{{ allow = {allow:?}, deny = {deny:?}, allow_full_auto = true }}");
    world.project_policy(&format!("[[approval]]\npath = {guest:?}\nconfig = {config}\n"))
}

async fn decline_one_accept_the_other(mode: Mode) -> Result<()> {
    let world = World::new([
        mode.command("touch denied.txt"),
        mode.command("touch allowed.txt"),
        Reply::Message("done".into()),
    ])?;
    allowlist(&world, &["touch allowed.txt"], &["touch denied.txt"])?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "make two files")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{mode:?}: {status}");
    assert!(!world.work_dir().join("denied.txt").exists(), "{mode:?}: the declined command ran");
    assert!(world.work_dir().join("allowed.txt").is_file(), "{mode:?}: the accepted command did not run");
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    let seen: Vec<_> = d.iter().map(|d| (d["request"]["command"]["command"].clone(), d["decision"].clone())).collect();
    // One decision per action, though under `suggest` Codex asks about each one as well.
    assert_eq!(seen, [(json!("touch denied.txt"), json!("decline")), (json!("touch allowed.txt"), json!("accept"))]);
    for d in d {
        assert_eq!((d["decided_by"].as_str(), d["via"].as_str()), (Some("command_allowlist"), Some("hook")), "{d}");
    }
    // `jobs logs` tells it as a person would read it.
    let out = std::process::Command::new(codex_jobhost_e2e::host_bin())
        .args(["jobs", "logs", &job])
        .env("CODEX_JOBHOST_HOME", world.jobhost_home())
        .output()?;
    let transcript = String::from_utf8(out.stdout)?;
    let has = |part: &str| transcript.lines().any(|l| l.contains(part));
    assert!(has("== turn 0: make two files"), "{mode:?}: {transcript}");
    assert!(has("decline command by command_allowlist: touch denied.txt"), "{mode:?}: {transcript}");
    assert!(has("touch allowed.txt'  (exit 0)") || has("touch allowed.txt  (exit 0)"), "{mode:?}: {transcript}");
    assert!(has("agent: done") && has("== completed, exit 0"), "{mode:?}: {transcript}");
    Ok(())
}

#[tokio::test]
async fn exec_auto_edit_commands_are_decided_by_the_policy() -> Result<()> {
    decline_one_accept_the_other(EXEC_AUTO_EDIT).await
}

#[tokio::test]
async fn app_server_full_auto_commands_are_decided_by_the_policy() -> Result<()> {
    decline_one_accept_the_other(APP_SERVER_FULL_AUTO).await
}

#[tokio::test]
async fn app_server_suggest_commands_are_decided_once_by_the_policy() -> Result<()> {
    decline_one_accept_the_other(APP_SERVER_SUGGEST).await
}

async fn ask_the_caller(mode: Mode) -> Result<()> {
    let world = World::new([mode.command("touch asked.txt"), Reply::Message("done".into())])?;
    allowlist(&world, &[], &[])?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "make a file")).await?;
    let status = server.wait_input_required(&job).await?;
    let pending = &status["pending_approvals"][0];
    assert_eq!(pending["request"]["command"]["command"], "touch asked.txt", "{mode:?}: {status}");
    assert_eq!(pending["asked_by"], "command_allowlist");
    assert!(!world.work_dir().join("asked.txt").exists(), "{mode:?}: it ran before it was answered");
    let request_id = pending["request_id"].as_str().context("request_id")?;
    server.ok("job_approve", json!({"job_id": job, "request_id": request_id, "decision": "accept"})).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{mode:?}: {status}");
    assert!(world.work_dir().join("asked.txt").is_file(), "{mode:?}: the answered command did not run");
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    assert_eq!(d.len(), 1, "{mode:?}: {d:?}");
    assert_eq!((d[0]["decision"].as_str(), d[0]["decided_by"].as_str()), (Some("accept"), Some("job_approve")));
    Ok(())
}

#[tokio::test]
async fn exec_auto_edit_ask_waits_for_job_approve() -> Result<()> {
    ask_the_caller(EXEC_AUTO_EDIT).await
}

#[tokio::test]
async fn app_server_full_auto_ask_waits_for_job_approve() -> Result<()> {
    ask_the_caller(APP_SERVER_FULL_AUTO).await
}

#[tokio::test]
async fn app_server_suggest_ask_waits_for_job_approve() -> Result<()> {
    ask_the_caller(APP_SERVER_SUGGEST).await
}

/// A tool call waiting for the caller outlives the server: a new server
/// shows it and answers it, and the call runs (on exec, where only the hook
/// can ask).
#[tokio::test]
async fn a_hook_call_waiting_for_an_answer_survives_a_server_crash() -> Result<()> {
    let mode = EXEC_AUTO_EDIT;
    let world = World::new([mode.command("touch after-crash.txt"), Reply::Message("done".into())])?;
    allowlist(&world, &[], &[])?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "make a file")).await?;
    let status = server.wait_input_required(&job).await?;
    let request = status["pending_approvals"][0]["request_id"].as_str().context("request_id")?.to_owned();
    server.kill()?;

    let server = world.serve().await?;
    let status = server.ok("job_status", json!({"job_id": job})).await?;
    assert_eq!(status["status"], "input_required", "{status}");
    server.ok("job_approve", json!({"job_id": job, "request_id": request, "decision": "accept"})).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(world.work_dir().join("after-crash.txt").is_file());
    Ok(())
}

/// A tool call nobody answers is declined at the job's approval deadline,
/// by the supervisor (the hook's own timeout, after which Codex would let
/// the call run, is far beyond it).
#[tokio::test]
async fn an_unanswered_hook_call_is_declined_at_its_deadline() -> Result<()> {
    let mode = EXEC_AUTO_EDIT;
    let world = World::new([mode.command("touch never.txt"), Reply::Message("done".into())])?;
    allowlist(&world, &[], &[])?;
    let server = world.serve().await?;
    let mut args = mode.start_args(&world, "make a file");
    args["approval_timeout_s"] = json!(1);
    let job = server.start_job(args).await?;
    let status = server.wait_finished(&job).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(!world.work_dir().join("never.txt").exists(), "the unanswered call ran");
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    assert_eq!((d[0]["decision"].as_str(), d[0]["decided_by"].as_str()), (Some("decline"), Some("timeout")), "{d:?}");
    Ok(())
}

async fn a_trapping_policy_blocks(mode: Mode) -> Result<()> {
    let world = World::new([mode.command("touch trapped.txt"), Reply::Message("went on".into())])?;
    let guest = world.project_guest("fixture_trap")?;
    world.project_policy(&format!("[[approval]]\npath = {guest:?}\nconfig = {{ spare_launches = true }}\n"))?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "make a file")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{mode:?}: {status}");
    assert!(!world.work_dir().join("trapped.txt").exists(), "{mode:?}: the command ran");
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    assert_eq!(d[0]["decision"], "decline", "{mode:?}: {d:?}");
    assert!(d[0]["reason"].as_str().unwrap_or("").contains("fixture_trap failed"), "{mode:?}: {d:?}");
    Ok(())
}

#[tokio::test]
async fn exec_auto_edit_a_trapping_policy_blocks_the_command() -> Result<()> {
    a_trapping_policy_blocks(EXEC_AUTO_EDIT).await
}

#[tokio::test]
async fn app_server_full_auto_a_trapping_policy_blocks_the_command() -> Result<()> {
    a_trapping_policy_blocks(APP_SERVER_FULL_AUTO).await
}

#[tokio::test]
async fn app_server_suggest_a_trapping_policy_blocks_the_command() -> Result<()> {
    a_trapping_policy_blocks(APP_SERVER_SUGGEST).await
}

/// Trusting the policy hook makes no other hook run: a repository's own
/// `.codex/hooks.json` (in a project Codex trusts) and the user's unreviewed
/// `hooks.json`, each writing a marker, stay silent, while the policy hook
/// decides. (With `--dangerously-bypass-hook-trust` both would run.)
async fn no_other_hook_runs(mode: Mode) -> Result<()> {
    let world = World::new([mode.command("touch allowed.txt"), Reply::Message("done".into())])?;
    allowlist(&world, &["touch allowed.txt"], &[])?;
    let markers = world.root().join("markers");
    std::fs::create_dir_all(&markers)?;
    let hooks = |marker: &str| {
        let command = format!("touch {}", markers.join(marker).display());
        json!({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": command}]}]}})
    };
    std::fs::write(world.work_dir().join(".codex/hooks.json"), hooks("project").to_string())?;
    std::fs::write(world.codex_home().join("hooks.json"), hooks("user").to_string())?;
    world.add_codex_config(&format!(
        "[projects.{:?}]\ntrust_level = \"trusted\"",
        world.work_dir().display().to_string()
    ))?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "make a file")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{mode:?}: {status}");
    assert!(world.work_dir().join("allowed.txt").is_file());
    let events = server.all_events(&job).await?;
    assert_eq!(decided(&events).len(), 1, "{mode:?}: the policy hook decided");
    let ran: Vec<_> = std::fs::read_dir(&markers)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    assert!(ran.is_empty(), "{mode:?}: hooks that are not the policy's ran: {ran:?}");
    Ok(())
}

#[tokio::test]
async fn exec_auto_edit_no_other_hook_runs() -> Result<()> {
    no_other_hook_runs(EXEC_AUTO_EDIT).await
}

#[tokio::test]
async fn app_server_full_auto_no_other_hook_runs() -> Result<()> {
    no_other_hook_runs(APP_SERVER_FULL_AUTO).await
}

#[tokio::test]
async fn app_server_suggest_no_other_hook_runs() -> Result<()> {
    no_other_hook_runs(APP_SERVER_SUGGEST).await
}

/// A `cat .env` that the policy forbids never runs, and the secret is in no
/// result the caller can read.
async fn a_forbidden_read_shows_no_secret(mode: Mode) -> Result<()> {
    let world = World::new([mode.command("cat .env"), Reply::Message("done".into())])?;
    allowlist(&world, &[], &["cat .env"])?;
    std::fs::write(world.work_dir().join(".env"), "API_TOKEN=sk-live-0123456789\n")?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "show the env")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{mode:?}: {status}");
    let events = server.all_events(&job).await?;
    assert_eq!(decided(&events)[0]["decision"], "decline", "{mode:?}");
    // job_status carries the end of output.log (`output_tail`).
    for text in [serde_json::to_string(&events)?, status.to_string()] {
        assert!(!text.contains("sk-live-0123456789"), "{mode:?}: the secret shows: {text}");
    }
    let log = std::fs::read_to_string(world.jobhost_home().join("jobs").join(&job).join("output.log"))?;
    assert!(!log.contains("sk-live-0123456789"), "{mode:?}: the command ran");
    Ok(())
}

#[tokio::test]
async fn exec_auto_edit_a_forbidden_read_shows_no_secret() -> Result<()> {
    a_forbidden_read_shows_no_secret(EXEC_AUTO_EDIT).await
}

#[tokio::test]
async fn app_server_full_auto_a_forbidden_read_shows_no_secret() -> Result<()> {
    a_forbidden_read_shows_no_secret(APP_SERVER_FULL_AUTO).await
}

/// A policy in shadow (`enforce = false`) is asked about every call the
/// enforced one is, and its decision is recorded with `shadow: true`, never
/// applied; `policy log` lists it with its job.
#[tokio::test]
async fn a_policy_in_shadow_is_recorded_and_never_applied() -> Result<()> {
    let mode = EXEC_AUTO_EDIT;
    let world = World::new([mode.command("touch shadowed.txt"), Reply::Message("done".into())])?;
    let guest = world.project_guest("command_allowlist")?;
    world.project_policy(&format!(
        "[[approval]]\npath = {guest:?}\nconfig = {{ allow = [\"touch\"] }}\n\n\
         [[approval]]\nname = \"strict\"\npath = {guest:?}\nenforce = false\nconfig = {{ deny = [\"touch shadowed.txt\"] }}\n"
    ))?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "make a file")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(world.work_dir().join("shadowed.txt").is_file(), "the decline in shadow was applied");
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    let seen: Vec<_> =
        d.iter().map(|d| (d["decided_by"].clone(), d["decision"].clone(), d["shadow"].clone())).collect();
    assert_eq!(
        seen,
        [(json!("strict"), json!("decline"), json!(true)), (json!("command_allowlist"), json!("accept"), Value::Null)],
        "{d:?}"
    );
    assert_eq!(d[0]["request_id"], d[1]["request_id"], "one action, one request id");

    let log = std::process::Command::new(codex_jobhost_e2e::host_bin())
        .args(["policy", "log", "--since", "1h", "--cwd"])
        .arg(world.work_dir())
        .env("CODEX_JOBHOST_HOME", world.jobhost_home())
        .output()?;
    let text = String::from_utf8(log.stdout)?;
    assert!(log.status.success(), "{text} {}", String::from_utf8_lossy(&log.stderr));
    let shadow_line = text.lines().find(|l| l.contains("shadow strict")).with_context(|| text.clone())?;
    assert!(
        shadow_line.contains(&job) && shadow_line.contains("decline") && shadow_line.contains("touch shadowed.txt")
    );
    let log = |args: &[&str], cwd: &std::path::Path| -> Result<String> {
        let out = std::process::Command::new(codex_jobhost_e2e::host_bin())
            .args(["policy", "log"])
            .args(args)
            .arg("--cwd")
            .arg(cwd)
            .env("CODEX_JOBHOST_HOME", world.jobhost_home())
            .output()?;
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    let lines: Vec<Value> =
        log(&["--json"], &world.work_dir())?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l["job_id"] == job.as_str()), "{lines:?}");
    // Another project: a folder with its own root marker (the world's temporary
    // folder may itself be inside a repository, which would be the project of both).
    let elsewhere = world.root().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join(".git"))?;
    assert_eq!(log(&[], &elsewhere)?, "", "a job of another project is listed");
    Ok(())
}

/// An MCP tool call is a `tool-call` request: the policy sees the server, the
/// tool and the arguments, and what it declines never reaches the server.
/// The MCP server is a second codex-jobhost, with a home of its own.
async fn mcp_tool_calls_are_judged(mode: Mode) -> Result<()> {
    let tool = |name: &str, args: Value| Reply::Tool { namespace: "mcp__tools".into(), name: name.into(), args };
    let world = World::new([
        tool("job_list", json!({"limit": 5})),
        tool("job_start", json!({"prompt": "never", "cwd": "/"})),
        Reply::Message("done".into()),
    ])?;
    let guest = world.project_guest("command_allowlist")?;
    let config = r#"{ allow_full_auto = true, allow_tools = ["tools/job_list"], deny_tools = ["tools/job_start"] }"#;
    world.project_policy(&format!("[[approval]]\npath = {guest:?}\nconfig = {config}\n"))?;
    let inner_home = world.root().join("inner-home");
    world.add_codex_config(&format!(
        "[mcp_servers.tools]\ncommand = {:?}\nargs = [\"serve\"]\ndefault_tools_approval_mode = \"approve\"\nenv = {{ CODEX_JOBHOST_HOME = {:?} }}",
        codex_jobhost_e2e::host_bin().display().to_string(),
        inner_home.display().to_string()
    ))?;
    let server = world.serve().await?;
    let job = server.start_job(mode.start_args(&world, "use the tools")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{mode:?}: {status}");
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    let seen: Vec<_> = d
        .iter()
        .map(|d| (d["kind"].clone(), d["request"]["tool-call"]["tool"].clone(), d["decision"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (json!("tool_call"), json!("job_list"), json!("accept")),
            (json!("tool_call"), json!("job_start"), json!("decline"))
        ],
        "{mode:?}: {d:?}"
    );
    assert_eq!(d[0]["request"]["tool-call"]["server"], "tools");
    let arguments: Value = serde_json::from_str(d[0]["request"]["tool-call"]["arguments"].as_str().unwrap_or(""))?;
    assert_eq!(arguments, json!({"limit": 5}));
    let listed = events.iter().any(|e| {
        let item = &e["data"]["item"];
        e["type"] == "item.completed"
            && item["type"] == "mcp_tool_call"
            && item["tool"] == "job_list"
            && item["status"] == "completed"
    });
    assert!(listed, "{mode:?}: the accepted job_list did not run: {events:?}");
    let jobs = inner_home.join("jobs");
    let started = if jobs.is_dir() { std::fs::read_dir(&jobs)?.count() } else { 0 };
    assert_eq!(started, 0, "{mode:?}: the declined job_start reached the MCP server");
    Ok(())
}

#[tokio::test]
async fn exec_auto_edit_mcp_tool_calls_are_judged() -> Result<()> {
    mcp_tool_calls_are_judged(EXEC_AUTO_EDIT).await
}

#[tokio::test]
async fn app_server_full_auto_mcp_tool_calls_are_judged() -> Result<()> {
    mcp_tool_calls_are_judged(APP_SERVER_FULL_AUTO).await
}
