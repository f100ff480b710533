//! The `app-server` backend: one `codex app-server` process per turn, driven
//! over its stdio with JSON-RPC 2.0, one object a line (the protocol that
//! `codex app-server generate-json-schema` prints; checked against 0.169.0).
//!
//! The supervisor is the client ([`session`]): `initialize` / `initialized`,
//! then `thread/start` (turn 0) or `thread/resume` (later turns, by thread
//! id), then `turn/start` with the prompt. Codex's notifications are
//! projected onto the events `codex exec --json` prints ([`projection`]), so
//! callers and event filters see one vocabulary whichever backend ran the
//! job; the raw messages stay in `output.log`.
//!
//! Every approval Codex asks for (a command, a file change, more
//! permissions) is a JSON-RPC request to the supervisor ([`requests`]), which
//! puts it through the turn's [`Gate`] (the job's pinned approval policies;
//! `ask`, and the built-in default when no approval policy is configured,
//! hand it to the caller) and answers in the shape that request takes.

pub mod projection;
pub mod requests;
pub mod rpc;
pub mod session;

use std::time::Duration;

use anyhow::Result;
use rustix::process::Signal;
use serde_json::{Value, json};

use super::gate::Gate;
use super::hooks::{self, HookCall};
use crate::error::InvalidInput;
use crate::job::approval::ApprovalAnswer;
use crate::job::event::OUTPUT_EVENT;
use crate::job::runtime::{Driven, Happened, IdleAction, Turn};
use crate::job::{JobMeta, JobOptions};
use rpc::Rpc;
use session::{Answer, Session};

/// How long a cancelled turn has to end after `turn/interrupt` before the
/// supervisor stops the app-server (below `job_cancel`'s 5 s before SIGKILL).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// Checks options this backend cannot honour.
///
/// Errors: [`InvalidInput`] naming the option: `profile` and `extra_args`
/// are `codex exec` flags with no app-server equivalent.
pub fn validate(options: &JobOptions) -> Result<(), InvalidInput> {
    if options.profile.is_some() {
        return Err(InvalidInput::new(
            "profile is not supported by backend \"app-server\": pass its settings as config entries, or use backend \"exec\"",
        ));
    }
    if !options.extra_args.is_empty() {
        return Err(InvalidInput::new(
            "extra_args are `codex exec` flags and are not supported by backend \"app-server\": use config entries, or backend \"exec\"",
        ));
    }
    Ok(())
}

/// The arguments after the program: `app-server` and one `-c key=value` per `config` entry.
pub fn command_args(meta: &JobMeta) -> Vec<String> {
    let mut args = vec!["app-server".to_owned()];
    for entry in &meta.options.config {
        args.extend(["-c".to_owned(), entry.clone()]);
    }
    args
}

/// Codex's approval policy and sandbox for the job's approval mode and
/// `sandbox`: `suggest` asks before anything that leaves the read-only
/// sandbox (`untrusted`), `auto-edit` writes the workspace and asks for the
/// rest (`on-request`), `full-auto` asks nothing and has no sandbox (`never`).
pub fn codex_settings(options: &JobOptions) -> (&'static str, String) {
    let effective = super::exec::effective(options);
    let approval = match effective.approval_mode.as_str() {
        "full-auto" => "never",
        "auto-edit" => "on-request",
        _ => "untrusted",
    };
    (approval, effective.sandbox)
}

/// Runs one turn over JSON-RPC (see the module docs).
pub async fn drive(turn: &mut Turn<'_>) -> Result<Driven> {
    let (mut gate, mut answers) = Gate::<Answer>::new(turn);
    let mut hooks = match hooks::govern(turn, &gate).await? {
        Ok(hooks) => hooks,
        Err(end) => return Ok(Driven::NotStarted(end)),
    };
    let mut agent = match turn.start_agent()? {
        Ok(agent) => agent,
        Err(end) => return Ok(Driven::NotStarted(end)),
    };
    let mut rpc = Rpc::new(agent.take_stdin()?);
    let mut session = Session::new(turn);
    let mut cancelled = false;
    session.start(&mut rpc).await?;

    let mut stop_deadline: Option<tokio::time::Instant> = None;
    loop {
        turn.idle.paused = gate.is_waiting();
        let (calls, answers, deadline) = (&mut hooks, &mut answers, stop_deadline);
        let ours = async move {
            tokio::select! {
                call = hooks::next_call(calls) => Ours::Hook(call),
                answer = answers.next() => Ours::Answered(answer),
                _ = until(deadline) => Ours::StopDeadline,
            }
        };
        let Some(happened) = agent.next(turn, ours).await? else { break };
        match happened {
            Happened::Stdout(line) => match serde_json::from_str::<Value>(&line) {
                Ok(message) => session.handle(turn, &mut rpc, &mut gate, message).await?,
                Err(_) => {
                    turn.events.append(OUTPUT_EVENT, json!({"stream": "stdout", "line": line}))?;
                }
            },
            Happened::Other(Ours::Hook(call)) => {
                if let Some((ruling, answer)) = hooks::judge_call(turn, &mut gate, call, Answer::Hook).await? {
                    session.give(turn, &mut rpc, &gate, &ruling, answer).await?;
                }
            }
            Happened::Other(Ours::Answered((request_id, answer))) => {
                if let Some((ruling, answer)) = gate.answered(turn, &request_id, answer)? {
                    session.give(turn, &mut rpc, &gate, &ruling, answer).await?;
                }
            }
            Happened::StopRequested if !cancelled => {
                cancelled = true;
                // Ask Codex to end the turn; it is stopped if it has not within INTERRUPT_GRACE.
                session.interrupt(&mut rpc).await;
                stop_deadline = Some(tokio::time::Instant::now() + INTERRUPT_GRACE);
            }
            Happened::StopRequested => {}
            Happened::Other(Ours::StopDeadline) => {
                stop_deadline = None;
                rpc.close();
                agent.signal(Signal::TERM);
            }
            Happened::Idle(IdleAction::Terminate) => {
                rpc.close();
                agent.signal(Signal::TERM)
            }
            Happened::Idle(IdleAction::Kill) => agent.signal(Signal::KILL),
        }
        if session.turn_ended.is_some() {
            // The turn is over: closing stdin ends the app-server.
            rpc.close();
        }
    }
    drop(gate); // stops waiting for answers that can no longer be given
    let code = agent.wait().await?;
    Ok(Driven::Ended(session.end(&turn.tracker, code, cancelled, turn.idle.error.clone())))
}

/// This driver's own events, besides the agent's output.
enum Ours {
    /// A call of the policy hook.
    Hook(HookCall),
    /// The answer to a request handed to the caller: its request id and the answer.
    Answered((String, ApprovalAnswer)),
    /// The grace after `turn/interrupt` is over.
    StopDeadline,
}

/// Sleeps until `deadline`; never, without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
