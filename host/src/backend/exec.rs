//! The `exec` backend: one `codex exec --json` process per turn, and
//! `codex exec resume <thread_id>` for the turns after the first.
//!
//! Codex prints its events on stdout, one JSON object a line:
//! `thread.started` (with `thread_id`), `turn.started`, `item.started`,
//! `item.updated`, `item.completed`, `turn.completed` (with `usage`),
//! `turn.failed` (with `error.message`) and `error` (with `message`).

use std::ffi::OsString;

use serde_json::Value;

use super::codex_cli::{CodexCli, os_args};
use super::gate::Gate;
use super::hooks::{self, HookCall, HookReply};
use crate::error::InvalidInput;
use crate::job::approval::{ApprovalAnswer, ApprovalDecision};
use crate::job::event::OUTPUT_EVENT;
use crate::job::runtime::{Driven, Happened, IdleAction, Turn};
use crate::job::{End, JobMeta, JobOptions, JobStatus};
use rustix::process::Signal;

/// The approval modes a caller may ask for (`approval_policy`).
pub const APPROVAL_MODES: [&str; 3] = ["suggest", "auto-edit", "full-auto"];
/// Codex's sandbox modes.
pub const SANDBOXES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// Checks options against what the installed Codex supports, before any
/// process starts.
///
/// Errors: [`InvalidInput`] naming the option, the bad value and what was
/// expected, or the Codex version that lacks the flag.
pub fn validate(options: &JobOptions, cli: &CodexCli) -> Result<(), InvalidInput> {
    let caps = &cli.capabilities;
    if !APPROVAL_MODES.contains(&options.approval_mode.as_str()) {
        return Err(InvalidInput::new(format!(
            "invalid approval_policy {:?}: expected one of {}",
            options.approval_mode,
            APPROVAL_MODES.join(", ")
        )));
    }
    if let Some(sandbox) = &options.sandbox {
        if !SANDBOXES.contains(&sandbox.as_str()) {
            return Err(InvalidInput::new(format!(
                "invalid sandbox {sandbox:?}: expected one of {}",
                SANDBOXES.join(", ")
            )));
        }
        if options.approval_mode == "full-auto" {
            return Err(InvalidInput::new(format!(
                "sandbox {sandbox:?} cannot be combined with approval_policy \"full-auto\", which runs without a sandbox"
            )));
        }
    }
    let unsupported = |what: &str| {
        Err(InvalidInput::new(format!(
            "{what} is not supported by the installed Codex CLI {} ({})",
            cli.version,
            cli.program.display()
        )))
    };
    if options.approval_mode == "full-auto" && !caps.bypass_sandbox {
        return unsupported("approval_policy \"full-auto\" (--dangerously-bypass-approvals-and-sandbox)");
    }
    if options.profile.is_some() && !caps.profile {
        return unsupported("profile (--profile)");
    }
    if options.skip_git_repo_check && !caps.skip_git_repo_check {
        return unsupported("skip_git_repo_check (--skip-git-repo-check)");
    }
    for entry in &options.config {
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() && !key.contains(char::is_whitespace) => {}
            _ => {
                return Err(InvalidInput::new(format!(
                    "invalid config entry {}: expected key=value, e.g. model_reasoning_effort=\"high\"",
                    crate::job::id::quote_short(entry)
                )));
            }
        }
    }
    for (name, value) in [("model", &options.model), ("profile", &options.profile)] {
        if value.as_deref().is_some_and(|v| v.is_empty() || v.starts_with('-')) {
            return Err(InvalidInput::new(format!(
                "invalid {name} {:?}: expected a name",
                value.as_deref().unwrap_or("")
            )));
        }
    }
    if options.idle_timeout_s == Some(0) {
        return Err(InvalidInput::new("invalid idle_timeout_s 0: expected a number of seconds above 0, or none"));
    }
    Ok(())
}

/// What decides what an agent may do, after every option of a job is
/// applied as Codex reads them: `approval_policy` and `sandbox`, then
/// `model`, `config` (`-c key=value`) and `extra_args`, later ones winning.
/// This is what a launch request shows an approval policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    /// `suggest`, `auto-edit` or `full-auto`.
    pub approval_mode: String,
    /// `read-only`, `workspace-write` or `danger-full-access` (no sandbox).
    pub sandbox: String,
    /// The model, if one was named.
    pub model: Option<String>,
    /// What the host cannot reason about and so cannot show a policy: unknown
    /// `extra_args`, `config` keys that may change permissions, network access,
    /// a `profile` (whose settings live in Codex's own config), each as given.
    pub unjudgeable: Vec<String>,
}

/// `config` keys that change nothing an agent may do.
const HARMLESS_CONFIG: [&str; 6] = [
    "model_reasoning_effort",
    "model_reasoning_summary",
    "model_verbosity",
    "hide_agent_reasoning",
    "show_raw_agent_reasoning",
    "project_doc_max_bytes",
];

/// The settings of `o` as Codex will apply them; see [`Effective`].
pub fn effective(o: &JobOptions) -> Effective {
    let mut e = Effective {
        approval_mode: o.approval_mode.clone(),
        sandbox: o.sandbox.clone().unwrap_or_else(|| {
            match o.approval_mode.as_str() {
                "suggest" => "read-only",
                "auto-edit" => "workspace-write",
                _ => "danger-full-access",
            }
            .to_owned()
        }),
        model: o.model.clone(),
        unjudgeable: Vec::new(),
    };
    if o.approval_mode == "full-auto" {
        e.sandbox = "danger-full-access".into();
    }
    if let Some(profile) = &o.profile {
        e.unjudgeable.push(format!("profile {profile:?}"));
    }
    let mut config: Vec<&str> = o.config.iter().map(String::as_str).collect();
    let mut args = o.extra_args.iter().map(String::as_str);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg, None),
        };
        let mut value = || inline.or_else(|| args.next());
        match flag {
            "--dangerously-bypass-approvals-and-sandbox" | "--yolo" => {
                e.approval_mode = "full-auto".into();
                e.sandbox = "danger-full-access".into();
            }
            "--full-auto" => {
                e.approval_mode = "auto-edit".into();
                e.sandbox = "workspace-write".into();
            }
            "--sandbox" | "-s" => match value() {
                Some(v) => e.sandbox = v.to_owned(),
                None => e.unjudgeable.push(arg.to_owned()),
            },
            "--model" | "-m" => e.model = value().map(str::to_owned),
            "--config" | "-c" => match value() {
                Some(v) => config.push(v),
                None => e.unjudgeable.push(arg.to_owned()),
            },
            "--skip-git-repo-check" | "--json" => {}
            _ => e.unjudgeable.push(format!("extra_args {arg:?}")),
        }
    }
    for entry in config {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        let value = value.trim().trim_matches('"');
        match key.trim() {
            "sandbox_mode" => e.sandbox = value.to_owned(),
            "model" => e.model = Some(value.to_owned()),
            key if HARMLESS_CONFIG.contains(&key) => {}
            _ => e.unjudgeable.push(format!("config {entry:?}")),
        }
    }
    e
}

/// The arguments after the program for the job's current turn: `exec --json …`
/// for turn 0, `exec resume --json … <thread_id>` after it. The prompt is `-`,
/// last, after `--`: Codex reads it from stdin, so its size meets no
/// command-line limit and `ps` does not show it.
///
/// Errors: a later turn without a thread id, or an option the installed
/// `exec resume` lacks.
pub fn command_args(meta: &JobMeta, cli: &CodexCli) -> Result<Vec<OsString>, InvalidInput> {
    let caps = &cli.capabilities;
    let o = &meta.options;
    let mut args = os_args(["exec"]);
    let resume = meta.turn > 0;
    if resume {
        if !caps.resume {
            return Err(InvalidInput::new(format!(
                "the installed Codex CLI {} has no `exec resume`; cannot reply",
                cli.version
            )));
        }
        if meta.thread_id.is_none() {
            return Err(InvalidInput::new(format!(
                "job {} has no Codex thread id (Codex never printed thread.started), so there is no conversation to continue",
                meta.id
            )));
        }
        args.push("resume".into());
    }
    args.push("--json".into());
    // `exec resume` takes fewer flags: the sandbox goes in as config there.
    let sandbox = o.sandbox.as_deref().or(match o.approval_mode.as_str() {
        "suggest" => Some("read-only"),
        "auto-edit" => Some("workspace-write"),
        _ => None,
    });
    if o.approval_mode == "full-auto" {
        args.push("--dangerously-bypass-approvals-and-sandbox".into());
    } else if let Some(sandbox) = sandbox {
        if resume {
            args.extend(os_args(["-c".to_string(), format!("sandbox_mode=\"{sandbox}\"")]));
        } else {
            args.extend(os_args(["--sandbox", sandbox]));
        }
        let full_auto = if resume { caps.resume_full_auto } else { caps.full_auto };
        if o.approval_mode == "auto-edit" && full_auto {
            args.push("--full-auto".into());
        }
    }
    if let Some(model) = &o.model {
        if resume && !caps.resume_model {
            args.extend(os_args(["-c".to_string(), format!("model=\"{model}\"")]));
        } else {
            args.extend(os_args(["--model", model]));
        }
    }
    if let Some(profile) = &o.profile {
        if resume {
            args.extend(os_args(["-c".to_string(), format!("profile=\"{profile}\"")]));
        } else {
            args.extend(os_args(["--profile", profile]));
        }
    }
    for entry in &o.config {
        args.extend(os_args(["-c", entry]));
    }
    let skip_check = if resume { caps.resume_skip_git_repo_check } else { caps.skip_git_repo_check };
    if o.skip_git_repo_check && skip_check {
        args.push("--skip-git-repo-check".into());
    }
    if !resume {
        args.extend(os_args(["--cd".as_ref(), meta.cwd.as_os_str()]));
    }
    args.extend(o.extra_args.iter().map(OsString::from));
    args.push("--".into());
    if let Some(thread) = meta.thread_id.as_ref().filter(|_| resume) {
        args.push(thread.into());
    }
    args.push("-".into());
    Ok(args)
}

/// Runs one turn: starts `codex exec` (with the policy hook when the job
/// has approval policies: [`hooks::govern`]), writes the prompt to its stdin,
/// and turns each stdout line into an event (stderr lines into
/// [`OUTPUT_EVENT`]s) until Codex exits, judging each hook call by the
/// turn's [`Gate`] meanwhile. A stop request sends SIGTERM to the turn's process
/// group, the commands Codex runs included (the turn ends `cancelled`); the
/// idle timer sends Codex SIGTERM, then SIGKILL.
pub async fn drive(turn: &mut Turn<'_>) -> anyhow::Result<Driven> {
    use tokio::io::AsyncWriteExt;
    let (mut gate, mut answers) = Gate::<HookReply>::new(turn);
    let mut hooks = match hooks::govern(turn, &gate).await? {
        Ok(hooks) => hooks,
        Err(end) => return Ok(Driven::NotStarted(end)),
    };
    let mut agent = match turn.start_agent()? {
        Ok(agent) => agent,
        Err(end) => return Ok(Driven::NotStarted(end)),
    };
    // The prompt goes to Codex's stdin (`-`), never on a command line.
    let mut stdin = agent.take_stdin()?;
    let prompt = turn.spec.prompt.clone();
    tokio::spawn(async move {
        let _ = stdin.write_all(prompt.as_bytes()).await;
    });
    let mut cancelled = false;
    // Why a policy's `cancel` stopped the turn, if one did.
    let mut cancelled_by: Option<String> = None;
    loop {
        turn.idle.paused = gate.is_waiting();
        let (calls, answers) = (&mut hooks, &mut answers);
        let ours = async move {
            tokio::select! {
                call = hooks::next_call(calls) => Ours::Hook(call),
                answer = answers.next() => Ours::Answered(answer),
            }
        };
        let Some(happened) = agent.next(turn, ours).await? else { break };
        let decided = match happened {
            Happened::Stdout(line) => {
                let (kind, value) = parse_stdout_line(&line);
                turn.emit(&kind, value)?;
                None
            }
            Happened::Other(Ours::Hook(call)) => hooks::judge_call(turn, &mut gate, call, |reply| reply).await?,
            Happened::Other(Ours::Answered((request_id, answer))) => gate.answered(turn, &request_id, answer)?,
            Happened::StopRequested if !cancelled => {
                cancelled = true;
                agent.signal_group(Signal::TERM);
                None
            }
            Happened::StopRequested => None, // our own group signal, or a second job_cancel
            Happened::Idle(IdleAction::Terminate) => {
                agent.signal(Signal::TERM);
                None
            }
            Happened::Idle(IdleAction::Kill) => {
                agent.signal(Signal::KILL);
                None
            }
        };
        if let Some((ruling, reply)) = decided {
            reply.give(&ruling);
            gate.record(turn, &ruling)?;
            if ruling.decision == ApprovalDecision::Cancel && cancelled_by.is_none() {
                let reason = ruling.reason.as_deref().unwrap_or("no reason given");
                cancelled_by = Some(format!("cancelled by {}: {reason}", ruling.by));
                agent.signal_group(Signal::TERM);
            }
        }
    }
    drop(gate); // stops waiting for answers that can no longer be given
    let exit_code = agent.wait().await?;
    let (status, error) = turn.tracker.outcome(exit_code, cancelled);
    let (status, error) = match (turn.idle.error.clone(), cancelled_by) {
        (_, Some(by)) if !cancelled => (JobStatus::Cancelled, Some(by)),
        (Some(e), _) if !cancelled => (JobStatus::Failed, Some(e)),
        _ => (status, error),
    };
    Ok(Driven::Ended(End { status, exit_code: Some(exit_code), error }))
}

/// This driver's own events, besides the agent's output.
enum Ours {
    /// A call of the policy hook.
    Hook(HookCall),
    /// The caller's answer to a call handed to it: its request id and the answer.
    Answered((String, ApprovalAnswer)),
}

/// One line of Codex's stdout as an event: its `type` and the object itself,
/// or an [`OUTPUT_EVENT`] when the line is not a JSON object with a `type`.
pub fn parse_stdout_line(line: &str) -> (String, Value) {
    match serde_json::from_str::<Value>(line) {
        Ok(value) => match value.get("type").and_then(Value::as_str) {
            Some(kind) => (kind.to_owned(), value),
            None => (OUTPUT_EVENT.to_owned(), serde_json::json!({"stream": "stdout", "line": line})),
        },
        Err(_) => (OUTPUT_EVENT.to_owned(), serde_json::json!({"stream": "stdout", "line": line})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_settings_apply_every_option() {
        let o = |approval: &str, extra: &[&str], config: &[&str]| JobOptions {
            approval_mode: approval.into(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            config: config.iter().map(|s| s.to_string()).collect(),
            ..JobOptions::default()
        };
        let e = effective(&o("suggest", &["--dangerously-bypass-approvals-and-sandbox"], &[]));
        assert_eq!((e.approval_mode.as_str(), e.sandbox.as_str()), ("full-auto", "danger-full-access"));
        let e = effective(&o("suggest", &["--sandbox=workspace-write", "-m", "o4"], &["model_reasoning_effort=high"]));
        assert_eq!((e.sandbox.as_str(), e.model.as_deref()), ("workspace-write", Some("o4")));
        assert!(e.unjudgeable.is_empty());
        let e = effective(&o("auto-edit", &["-c", "sandbox_mode=\"danger-full-access\"", "--add-dir", "/"], &[]));
        assert_eq!(e.sandbox, "danger-full-access");
        assert_eq!(e.unjudgeable, ["extra_args \"--add-dir\"", "extra_args \"/\""]);
        let e = effective(&o("suggest", &[], &["sandbox_workspace_write.network_access=true"]));
        assert_eq!(e.unjudgeable, ["config \"sandbox_workspace_write.network_access=true\""]);
    }
    use crate::backend::codex_cli::Capabilities;
    use crate::job::tracker::TurnTracker;
    use crate::job::{BackendKind, JobId};

    fn run(fixture: &str) -> (TurnTracker, Vec<String>) {
        let mut t = TurnTracker::default();
        let mut kinds = Vec::new();
        for line in fixture.lines() {
            let (kind, value) = parse_stdout_line(line);
            t.observe(&kind, &value);
            kinds.push(kind);
        }
        (t, kinds)
    }

    #[test]
    fn a_turn_that_ran_a_command_completes_with_the_agent_message() {
        let (t, kinds) = run(include_str!("fixtures/exec_command.jsonl"));
        assert_eq!(t.thread_id.as_deref(), Some("01a1ffb3-d6d1-71e0-84fc-45a5854b6323"));
        assert_eq!(t.last_message.as_deref(), Some("All done."));
        assert!(t.completed);
        assert_eq!(t.usage.as_ref().unwrap()["output_tokens"], 10);
        assert_eq!(kinds.first().unwrap(), "thread.started");
        assert!(kinds.contains(&"item.started".to_owned()));
        assert_eq!(t.outcome(0, false), (JobStatus::Completed, None));
        // The model-metadata warning item is not a failure.
        assert!(t.failure.is_none() && t.last_error.is_none());
    }

    #[test]
    fn a_model_error_fails_the_turn_with_codexs_message() {
        let (t, _) = run(include_str!("fixtures/http_500.jsonl"));
        let (status, error) = t.outcome(1, false);
        assert_eq!(status, JobStatus::Failed);
        assert!(error.unwrap().contains("high demand"));
        // Even an exit status 0 after turn.failed is a failure.
        assert_eq!(t.outcome(0, false).0, JobStatus::Failed);
    }

    #[test]
    fn recovered_errors_do_not_fail_and_silent_crashes_do() {
        let mut t = TurnTracker::default();
        t.observe("error", &serde_json::json!({"type": "error", "message": "Reconnecting... 1/5"}));
        t.observe("turn.completed", &serde_json::json!({"type": "turn.completed", "usage": {}}));
        assert_eq!(t.outcome(0, false).0, JobStatus::Completed);
        let mut crash = TurnTracker { last_stderr: Some("panic: boom".into()), ..Default::default() };
        assert_eq!(
            crash.outcome(101, false),
            (JobStatus::Failed, Some("codex exited with status 101: panic: boom".into()))
        );
        crash.last_stderr = None;
        assert_eq!(crash.outcome(137, false).1.unwrap(), "codex exited with status 137");
        assert_eq!(crash.outcome(143, true).0, JobStatus::Cancelled);
    }

    #[test]
    fn non_json_lines_are_raw_output() {
        assert_eq!(parse_stdout_line("hello").0, OUTPUT_EVENT);
        assert_eq!(parse_stdout_line("[1,2]").1["line"], "[1,2]");
        assert_eq!(parse_stdout_line(r#"{"type":"turn.started"}"#).0, "turn.started");
    }

    fn cli(caps: Capabilities) -> CodexCli {
        CodexCli {
            located: "/c".into(),
            program: "/c".into(),
            env: vec![],
            version: "0.169.0".into(),
            capabilities: caps,
        }
    }

    fn meta(options: JobOptions) -> JobMeta {
        JobMeta::queued(JobId::new(), "p", "/w".into(), BackendKind::Exec, options, "/c".into())
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn approval_modes_map_to_flags() {
        let caps_0169 = Capabilities::from_help(
            "--sandbox --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check --profile resume",
            Some("--model --skip-git-repo-check"),
        );
        let c = cli(caps_0169.clone());
        let opts = |p: &str| JobOptions { approval_mode: p.into(), ..Default::default() };
        assert_eq!(
            strings(command_args(&meta(opts("suggest")), &c).unwrap()),
            ["exec", "--json", "--sandbox", "read-only", "--cd", "/w", "--", "-"]
        );
        assert!(strings(command_args(&meta(opts("auto-edit")), &c).unwrap()).contains(&"workspace-write".into()));
        assert!(!strings(command_args(&meta(opts("auto-edit")), &c).unwrap()).contains(&"--full-auto".into()));
        let old = cli(Capabilities { full_auto: true, ..caps_0169 });
        assert!(strings(command_args(&meta(opts("auto-edit")), &old).unwrap()).contains(&"--full-auto".into()));
        assert!(
            strings(command_args(&meta(opts("full-auto")), &c).unwrap())
                .contains(&"--dangerously-bypass-approvals-and-sandbox".into())
        );

        let mut m = meta(JobOptions { model: Some("m1".into()), skip_git_repo_check: true, ..opts("suggest") });
        m.turn = 1;
        assert!(command_args(&m, &c).unwrap_err().to_string().contains("no Codex thread id"));
        m.thread_id = Some("t-1".into());
        assert_eq!(
            strings(command_args(&m, &c).unwrap()),
            [
                "exec",
                "resume",
                "--json",
                "-c",
                "sandbox_mode=\"read-only\"",
                "--model",
                "m1",
                "--skip-git-repo-check",
                "--",
                "t-1",
                "-"
            ]
        );
    }

    #[test]
    fn options_are_checked_before_anything_runs() {
        let c = cli(Capabilities::from_help("--sandbox --skip-git-repo-check", None));
        let opts = |p: &str| JobOptions { approval_mode: p.into(), ..Default::default() };
        assert!(validate(&opts("suggest"), &c).is_ok());
        let err = validate(&opts("yolo"), &c).unwrap_err().to_string();
        assert!(err.contains("\"yolo\"") && err.contains("auto-edit"), "{err}");
        let err = validate(&opts("full-auto"), &c).unwrap_err().to_string();
        assert!(err.contains("not supported") && err.contains("0.169.0"), "{err}");
        let err =
            validate(&JobOptions { sandbox: Some("none".into()), ..opts("suggest") }, &c).unwrap_err().to_string();
        assert!(err.contains("invalid sandbox \"none\""), "{err}");
        let err = validate(&JobOptions { profile: Some("p".into()), ..opts("suggest") }, &c).unwrap_err().to_string();
        assert!(err.contains("profile"), "{err}");
        let err =
            validate(&JobOptions { config: vec!["novalue".into()], ..opts("suggest") }, &c).unwrap_err().to_string();
        assert!(err.contains("\"novalue\"") && err.contains("key=value"), "{err}");
        assert!(validate(&JobOptions { idle_timeout_s: Some(0), ..opts("suggest") }, &c).is_err());
    }
}
