//! The `app-server` backend: one `codex app-server` process per turn, driven
//! over its stdio with JSON-RPC 2.0, one object a line (the protocol that
//! `codex app-server generate-json-schema` prints; checked against 0.169.0).
//!
//! The supervisor is the client: `initialize` / `initialized`, then
//! `thread/start` (turn 0) or `thread/resume` (later turns, by thread id),
//! then `turn/start` with the prompt. Codex's notifications are projected
//! onto the events `codex exec --json` prints (see [`project`]), so callers
//! and event filters see one vocabulary whichever backend ran the job; the
//! raw messages stay in `output.log`.
//!
//! Every approval Codex asks for (a command, a file change, more
//! permissions) is a JSON-RPC request to the supervisor, which puts it to the
//! job's pinned approval policies ([`crate::policy::PolicySet::decide`]) and
//! answers in the shape that request takes. `ask` (and the built-in default
//! when no approval policy is configured) hands it to the caller: the request
//! is written to the job's `approvals/`, the job turns `input_required`, and
//! the supervisor waits for `job_approve`'s answer (or declines at the
//! deadline). Every decision is an `approval.decided` event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;
use rustix::process::Signal;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use crate::error::InvalidInput;
use crate::job::approval::{self, ApprovalAnswer, ApprovalDecision, PendingApproval};
use crate::job::dirwatch::DirWatch;
use crate::job::event::{APPROVAL_DECIDED_EVENT, APPROVAL_REQUESTED_EVENT, OUTPUT_EVENT};
use crate::job::runtime::{Driven, Happened, IdleAction, Turn};
use crate::job::tracker::TurnTracker;
use crate::job::{BackendKind, End, JobDir, JobMeta, JobOptions, JobStatus};
use crate::policy::{ChangeKind, Decision, JobContext, Origin, PinnedSet, Policies, PolicySet, Request};

/// How long a cancelled turn has to end after `turn/interrupt` before the
/// supervisor stops the app-server (below `job_cancel`'s 5 s before SIGKILL).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// How long an approval request waits for an answer when neither the job
/// nor the user's config says: 15 minutes.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

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

/// Codex's approval policy and sandbox for the job's `approval_policy` and
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
    let mut agent = match turn.start_agent()? {
        Ok(agent) => agent,
        Err(end) => return Ok(Driven::NotStarted(end)),
    };
    let mut rpc = Rpc { stdin: Some(agent.take_stdin()?), next_id: 0 };
    let mut session = Session::new(turn);
    let (answers, mut answered) = mpsc::unbounded_channel::<(Value, PendingApproval, ApprovalAnswer)>();
    let mut waiting: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut cancelled = false;

    let init = rpc
        .request("initialize", json!({"clientInfo": {"name": "codex-jobhost", "version": env!("CARGO_PKG_VERSION")}}))
        .await?;
    session.expect(init, Step::Initialize);

    let mut stop_deadline: Option<tokio::time::Instant> = None;
    loop {
        turn.idle.paused = !waiting.is_empty();
        let (answered, deadline) = (&mut answered, stop_deadline);
        let ours = async move {
            tokio::select! {
                Some(answer) = answered.recv() => Ours::Answered(answer),
                _ = until(deadline) => Ours::StopDeadline,
            }
        };
        let Some(happened) = agent.next(turn, ours).await? else { break };
        match happened {
            Happened::Stdout(line) => match serde_json::from_str::<Value>(&line) {
                Ok(message) => {
                    let asked = session.handle(turn, &mut rpc, message).await?;
                    if let Some((rpc_id, pending)) = asked {
                        let job = turn.store.job(turn.meta.id)?;
                        let handle = wait_for_answer(job, rpc_id, pending.clone(), answers.clone())?;
                        waiting.insert(pending.request_id.clone(), handle);
                    }
                }
                Err(_) => {
                    turn.events.append(OUTPUT_EVENT, json!({"stream": "stdout", "line": line}))?;
                }
            },
            Happened::Other(Ours::Answered((rpc_id, pending, answer))) => {
                waiting.remove(&pending.request_id);
                let decided = Decided {
                    decision: answer.decision,
                    reason: answer.reason.as_deref(),
                    by: &answer.by,
                    begun: None,
                };
                session
                    .answer(
                        turn,
                        &mut rpc,
                        rpc_id,
                        &pending.raw,
                        &pending.kind,
                        &pending.request_id,
                        &pending.request,
                        decided,
                    )
                    .await?;
                if waiting.is_empty() && turn.meta.status == JobStatus::InputRequired {
                    turn.set_status(JobStatus::Running, json!({"answered": pending.request_id}))?;
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
    for (_, handle) in waiting {
        handle.abort();
    }
    let code = agent.wait().await?;
    Ok(Driven::Ended(session.end(&turn.tracker, code, cancelled, turn.idle.error.clone())))
}

/// This driver's own events, besides the agent's output.
enum Ours {
    /// The answer to a request handed to the caller.
    Answered((Value, PendingApproval, ApprovalAnswer)),
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

/// A decision on one request and who made it.
struct Decided<'a> {
    decision: ApprovalDecision,
    reason: Option<&'a str>,
    by: &'a str,
    /// When the request was read, for a decision made without waiting for the caller.
    begun: Option<std::time::Instant>,
}

/// Writes JSON-RPC messages to the app-server's stdin.
struct Rpc {
    stdin: Option<ChildStdin>,
    next_id: u64,
}

impl Rpc {
    async fn send(&mut self, message: Value) -> Result<()> {
        let Some(stdin) = self.stdin.as_mut() else { return Ok(()) };
        let mut line = serde_json::to_vec(&message)?;
        line.push(b'\n');
        // A closed pipe means the app-server is gone; its exit ends the turn.
        if stdin.write_all(&line).await.is_err() {
            self.stdin = None;
        }
        Ok(())
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await?;
        Ok(id)
    }

    async fn respond(&mut self, id: Value, result: Value) -> Result<()> {
        self.send(json!({"jsonrpc": "2.0", "id": id, "result": result})).await
    }

    fn close(&mut self) {
        self.stdin = None;
    }
}

/// Where the handshake stands: which response is awaited next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Initialize,
    Thread,
    TurnStart,
    Interrupt,
}

/// The client side of one turn's conversation.
struct Session {
    awaiting: HashMap<u64, Step>,
    thread_id: Option<String>,
    turn_id: Option<String>,
    /// `turn/completed`'s status, once it came.
    turn_ended: Option<String>,
    /// Why the app-server refused the handshake, if it did.
    refused: Option<String>,
    /// Why a decision cancelled the turn (`cancel`), if one did.
    cancelled_by: Option<String>,
    usage: Usage,
    /// The changes of each file-change item seen, by item id (a file-change
    /// request names only the item; its paths come from there).
    file_changes: HashMap<String, Value>,
    requests: u64,
    /// The job's pinned policies, or why they cannot be loaded.
    policies: Result<Arc<PolicySet>, String>,
    ctx: JobContext,
    timeout: Duration,
}

/// Token usage summed over one turn's `thread/tokenUsage/updated` (`last` of each).
#[derive(Default)]
struct Usage {
    input: i64,
    cached: i64,
    output: i64,
    seen: bool,
}

impl Session {
    fn new(turn: &Turn<'_>) -> Self {
        let policies = load_policies(turn).map_err(|e| format!("{e:#}"));
        let ctx = JobContext {
            job_id: turn.meta.id.to_string(),
            backend: BackendKind::AppServer.to_string(),
            cwd: turn.meta.cwd.display().to_string(),
            project_root: policies.as_ref().ok().and_then(|p| p.project_root.as_ref()).map(|p| p.display().to_string()),
            prompt: turn.meta.prompt.clone(),
        };
        let timeout = (turn.meta.options.approval_timeout_s)
            .or(turn.spec.settings.approval_timeout_s)
            .map_or(APPROVAL_TIMEOUT, Duration::from_secs);
        Session {
            awaiting: HashMap::new(),
            thread_id: turn.meta.thread_id.clone(),
            turn_id: None,
            turn_ended: None,
            refused: None,
            cancelled_by: None,
            usage: Usage::default(),
            file_changes: HashMap::new(),
            requests: 0,
            policies,
            ctx,
            timeout,
        }
    }

    fn expect(&mut self, id: u64, step: Step) {
        self.awaiting.insert(id, step);
    }

    /// Takes one message from the app-server. Returns a request handed to the
    /// caller (its JSON-RPC id and the pending record) for the driver to wait on.
    async fn handle(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        message: Value,
    ) -> Result<Option<(Value, PendingApproval)>> {
        let method = message.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = message.get("id").cloned().filter(|id| !id.is_null());
        match (method, id) {
            (Some(method), Some(id)) => self.server_request(turn, rpc, &method, id, &message["params"]).await,
            (Some(method), None) => {
                self.notification(turn, &method, &message["params"])?;
                Ok(None)
            }
            (None, Some(id)) => {
                self.response(turn, rpc, id, &message).await?;
                Ok(None)
            }
            (None, None) => Ok(None),
        }
    }

    async fn response(&mut self, turn: &mut Turn<'_>, rpc: &mut Rpc, id: Value, message: &Value) -> Result<()> {
        let Some(step) = id.as_u64().and_then(|id| self.awaiting.remove(&id)) else { return Ok(()) };
        if let Some(error) = message.get("error") {
            if step != Step::Interrupt {
                let what = error.get("message").and_then(Value::as_str).unwrap_or("no message");
                let method = match step {
                    Step::Initialize => "initialize",
                    Step::Thread if turn.meta.turn > 0 => "thread/resume",
                    Step::Thread => "thread/start",
                    _ => "turn/start",
                };
                self.refused = Some(format!("codex app-server refused {method}: {what}"));
                self.turn_ended = Some("failed".into());
            }
            return Ok(());
        }
        let result = &message["result"];
        match step {
            Step::Initialize => {
                rpc.send(json!({"jsonrpc": "2.0", "method": "initialized"})).await?;
                let o = &turn.meta.options;
                let (approval, sandbox) = codex_settings(o);
                let mut params = json!({
                    "cwd": turn.meta.cwd,
                    "approvalPolicy": approval,
                    "sandbox": sandbox,
                });
                if let Some(model) = &o.model {
                    params["model"] = json!(model);
                }
                let method = match &self.thread_id {
                    Some(thread) if turn.meta.turn > 0 => {
                        params["threadId"] = json!(thread);
                        "thread/resume"
                    }
                    _ => "thread/start",
                };
                let id = rpc.request(method, params).await?;
                self.expect(id, Step::Thread);
            }
            Step::Thread => {
                let thread = result.pointer("/thread/id").and_then(Value::as_str).map(str::to_owned);
                self.thread_id = thread.clone().or(self.thread_id.take());
                if let Some(thread) = thread {
                    turn.emit("thread.started", json!({"type": "thread.started", "thread_id": thread}))?;
                }
                let params = json!({
                    "threadId": self.thread_id,
                    "input": [{"type": "text", "text": turn.spec.prompt}],
                });
                let id = rpc.request("turn/start", params).await?;
                self.expect(id, Step::TurnStart);
            }
            Step::TurnStart => {
                self.turn_id = result.pointer("/turn/id").and_then(Value::as_str).map(str::to_owned);
            }
            Step::Interrupt => {}
        }
        Ok(())
    }

    fn notification(&mut self, turn: &mut Turn<'_>, method: &str, params: &Value) -> Result<()> {
        match method {
            "turn/started" => {
                self.turn_id = params.pointer("/turn/id").and_then(Value::as_str).map(str::to_owned);
                turn.emit("turn.started", json!({"type": "turn.started"}))?;
            }
            "item/started" | "item/completed" => {
                let item = &params["item"];
                if let (Some("fileChange"), Some(id)) = (item["type"].as_str(), item["id"].as_str()) {
                    self.file_changes.insert(id.to_owned(), item["changes"].clone());
                }
                // As exec: a message or reasoning is an event once it is complete.
                let whole_only = matches!(item["type"].as_str(), Some("agentMessage" | "reasoning"));
                if let Some(projected) = project_item(item).filter(|_| method == "item/completed" || !whole_only) {
                    let kind = if method == "item/started" { "item.started" } else { "item.completed" };
                    turn.emit(kind, json!({"type": kind, "item": projected}))?;
                }
            }
            "thread/tokenUsage/updated" => {
                let last = &params["tokenUsage"]["last"];
                let n = |k: &str| last.get(k).and_then(Value::as_i64).unwrap_or(0);
                self.usage.input += n("inputTokens");
                self.usage.cached += n("cachedInputTokens");
                self.usage.output += n("outputTokens");
                self.usage.seen = true;
            }
            "error" => {
                let message = params.pointer("/error/message").and_then(Value::as_str).unwrap_or("error");
                turn.emit("error", json!({"type": "error", "message": message}))?;
            }
            "turn/completed" => {
                let status = params.pointer("/turn/status").and_then(Value::as_str).unwrap_or("completed").to_owned();
                if status == "failed" || status == "interrupted" {
                    let message = params.pointer("/turn/error/message").and_then(Value::as_str);
                    let message =
                        message.unwrap_or(if status == "failed" { "the turn failed" } else { "turn interrupted" });
                    turn.emit("turn.failed", json!({"type": "turn.failed", "error": {"message": message}}))?;
                } else {
                    let mut event = json!({"type": "turn.completed"});
                    if self.usage.seen {
                        event["usage"] = json!({
                            "input_tokens": self.usage.input,
                            "cached_input_tokens": self.usage.cached,
                            "output_tokens": self.usage.output,
                        });
                    }
                    turn.emit("turn.completed", event)?;
                }
                self.turn_ended = Some(status);
            }
            _ => {} // deltas and the rest: in output.log, not events
        }
        Ok(())
    }

    /// A request from the app-server: an approval is decided by the policies
    /// (or handed on); anything this client cannot answer gets a JSON-RPC error.
    async fn server_request(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        method: &str,
        id: Value,
        params: &Value,
    ) -> Result<Option<(Value, PendingApproval)>> {
        if let Some(result) = unanswerable(method) {
            // Questions for a person: nobody can be reached through this
            // turn's JSON-RPC; say no in the request's own shape, and record it.
            rpc.respond(id, result).await?;
            self.requests += 1;
            let reason = "codex-jobhost does not relay questions to the caller; answered with none";
            let event = json!({
                "request_id": format!("{}-{}", turn.meta.turn, self.requests),
                "kind": "question",
                "request": {"method": method, "params": params},
                "decision": ApprovalDecision::Decline,
                "reason": reason,
                "decided_by": "built-in",
            });
            turn.events.append(APPROVAL_DECIDED_EVENT, event)?;
            return Ok(None);
        }
        let Some((kind, request)) = self.approval_request(method, params) else {
            let message = format!("codex-jobhost does not handle {method}");
            rpc.send(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": message}})).await?;
            return Ok(None);
        };
        let begun = std::time::Instant::now();
        self.requests += 1;
        let request_id = format!("{}-{}", turn.meta.turn, self.requests);
        let raw = json!({"method": method, "params": params});
        let request_json = serde_json::to_value(&request)?;
        let (decision, by) = self.decide(request.clone()).await;
        let (answer, reason) = match decision {
            Decision::Accept => (ApprovalDecision::Accept, None),
            Decision::AcceptForSession => (ApprovalDecision::AcceptForSession, None),
            Decision::Decline(r) => (ApprovalDecision::Decline, Some(r)),
            Decision::Cancel(r) => (ApprovalDecision::Cancel, Some(r)),
            Decision::Ask => {
                let now = Timestamp::now();
                let deadline = now + jiff::SignedDuration::try_from(self.timeout).unwrap_or(jiff::SignedDuration::MAX);
                let pending = PendingApproval {
                    request_id,
                    turn: turn.meta.turn,
                    kind: kind.to_owned(),
                    request: request_json,
                    raw,
                    asked_by: by,
                    requested_at: now.to_string(),
                    deadline: deadline.to_string(),
                };
                approval::write_pending(turn.job, &pending)?;
                turn.events.append(APPROVAL_REQUESTED_EVENT, serde_json::to_value(&pending)?)?;
                if turn.meta.status == JobStatus::Running {
                    turn.set_status(JobStatus::InputRequired, json!({"request_id": pending.request_id}))?;
                }
                return Ok(Some((id, pending)));
            }
        };
        let decided = Decided { decision: answer, reason: reason.as_deref(), by: &by, begun: Some(begun) };
        self.answer(turn, rpc, id, &raw, kind, &request_id, &request_json, decided).await?;
        Ok(None)
    }

    /// Asks the job's approval policies (off the runtime: guests block).
    /// Policies that cannot be loaded decline (fail closed).
    async fn decide(&self, request: Request) -> (Decision, String) {
        let set = match &self.policies {
            Ok(set) => Arc::clone(set),
            Err(error) => {
                return (Decision::Decline(format!("the job's policies cannot be loaded: {error}")), "built-in".into());
            }
        };
        let ctx = self.ctx.clone();
        match tokio::task::spawn_blocking(move || set.decide(&ctx, &request)).await {
            Ok(verdict) => (verdict.decision, verdict.decided_by.unwrap_or_else(|| "built-in".into())),
            Err(e) => (Decision::Decline(format!("the approval policies failed: {e}")), "built-in".into()),
        }
    }

    /// Answers request `id` in the shape its method takes, and records it.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        id: Value,
        raw: &Value,
        kind: &str,
        request_id: &str,
        request: &Value,
        decided: Decided<'_>,
    ) -> Result<()> {
        let method = raw["method"].as_str().unwrap_or_default();
        rpc.respond(id, response(method, &raw["params"], decided.decision)).await?;
        let mut event = json!({
            "request_id": request_id,
            "kind": kind,
            "request": request,
            "decision": decided.decision,
            "reason": decided.reason,
            "decided_by": decided.by,
        });
        if let Some(begun) = decided.begun {
            // The approval's round trip: request read → answer written, policies included.
            event["elapsed_us"] = json!(begun.elapsed().as_micros() as u64);
        }
        turn.events.append(APPROVAL_DECIDED_EVENT, event)?;
        if decided.decision == ApprovalDecision::Cancel {
            let reason = decided.reason.unwrap_or("no reason given");
            self.cancelled_by = Some(format!("cancelled by {}: {reason}", decided.by));
            self.interrupt(rpc).await;
        }
        Ok(())
    }

    async fn interrupt(&mut self, rpc: &mut Rpc) {
        if let (Some(thread), Some(turn)) = (&self.thread_id, &self.turn_id) {
            let params = json!({"threadId": thread, "turnId": turn});
            if let Ok(id) = rpc.request("turn/interrupt", params).await {
                self.expect(id, Step::Interrupt);
            }
        }
    }

    /// The WIT request for an app-server approval request, with its kind.
    fn approval_request(&self, method: &str, params: &Value) -> Option<(&'static str, Request)> {
        let text = |p: &str| params.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let origin = match (text("/threadId"), text("/turnId"), text("/itemId")) {
            (Some(thread_id), Some(turn_id), Some(item_id)) => Some(Origin { thread_id, turn_id, item_id }),
            _ => None,
        };
        match method {
            "item/commandExecution/requestApproval" => {
                let raw = text("/command").unwrap_or_default();
                let command = unwrap_shell(&raw);
                Some((
                    "command",
                    Request::Command {
                        argv: plain_argv(&command),
                        command,
                        raw,
                        cwd: text("/cwd").unwrap_or_else(|| self.ctx.cwd.clone()),
                        reason: text("/reason"),
                        network_host: text("/networkApprovalContext/host"),
                        origin,
                    },
                ))
            }
            "execCommandApproval" => {
                let words: Vec<String> = params["command"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let command = unwrap_argv(&words);
                Some((
                    "command",
                    Request::Command {
                        argv: plain_argv(&command),
                        raw: shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" ")),
                        command,
                        cwd: text("/cwd").unwrap_or_else(|| self.ctx.cwd.clone()),
                        reason: text("/reason"),
                        network_host: None,
                        origin: None,
                    },
                ))
            }
            "item/fileChange/requestApproval" => {
                let changes = params["itemId"]
                    .as_str()
                    .and_then(|item| self.file_changes.get(item))
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            .map(|c| {
                                let path = c["path"].as_str().unwrap_or_default().to_owned();
                                (path, c.pointer("/kind/type").and_then(Value::as_str).unwrap_or("update").to_owned())
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                Some(("file_change", file_change(changes, text("/reason"), origin)))
            }
            "applyPatchApproval" => {
                let changes = params["fileChanges"]
                    .as_object()
                    .map(|files| {
                        files
                            .iter()
                            .map(|(path, c)| (path.clone(), c["type"].as_str().unwrap_or("update").to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(("file_change", file_change(changes, text("/reason"), None)))
            }
            "item/permissions/requestApproval" => {
                let permissions = params["permissions"]
                    .as_object()
                    .map(|p| p.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| format!("{k}: {v}")).collect())
                    .unwrap_or_default();
                let network = params.pointer("/permissions/network/enabled").and_then(Value::as_bool) == Some(true);
                Some(("permissions", Request::Permissions { permissions, network, reason: text("/reason"), origin }))
            }
            _ => None,
        }
    }

    /// The turn's end, from how it ended and how the app-server exited
    /// (`code`). Its exit code is the one `codex exec` would have given the
    /// turn: 0 completed, 1 failed, the app-server's own when it died, none when cancelled.
    fn end(&self, tracker: &TurnTracker, code: i32, cancelled: bool, idle_error: Option<String>) -> End {
        let (status, error) = match (self.turn_ended.as_deref(), &self.refused) {
            (_, Some(refused)) => (JobStatus::Failed, Some(refused.clone())),
            _ if cancelled => {
                let end = End::cancelled_by_job_cancel();
                (end.status, end.error)
            }
            (_, None) if self.cancelled_by.is_some() => (JobStatus::Cancelled, self.cancelled_by.clone()),
            (Some("interrupted"), _) => (JobStatus::Failed, Some("Codex interrupted the turn".to_owned())),
            (Some(_), _) => tracker.outcome(0, false),
            (None, _) => match idle_error {
                Some(e) => (JobStatus::Failed, Some(e)),
                None => {
                    let (_, reason) = tracker.outcome(code.max(1), false);
                    let reason = reason.unwrap_or_default();
                    (JobStatus::Failed, Some(format!("codex app-server ended before the turn did: {reason}")))
                }
            },
        };
        let exit_code = match status {
            _ if code != 0 => Some(code),
            JobStatus::Completed => Some(0),
            JobStatus::Cancelled => None,
            _ => Some(1),
        };
        End { status, exit_code, error }
    }
}

/// The job's pinned policy set (or, for a job started before policies were
/// pinned, the set for its cwd).
fn load_policies(turn: &Turn<'_>) -> Result<Arc<PolicySet>> {
    let policies = Policies::new(turn.store.root());
    match turn.job.read_policies::<PinnedSet>(&turn.meta)? {
        Some(pinned) => policies.for_pinned(&pinned),
        None => policies.for_cwd(&turn.meta.cwd),
    }
}

fn file_change(changes: Vec<(String, String)>, reason: Option<String>, origin: Option<Origin>) -> Request {
    // One kind for the whole change: the one that can lose the most.
    let kind = if changes.iter().any(|(_, k)| k == "delete") {
        ChangeKind::Delete
    } else if changes.iter().any(|(_, k)| k == "update") {
        ChangeKind::Update
    } else {
        ChangeKind::Add
    };
    Request::FileChange { paths: changes.into_iter().map(|(p, _)| p).collect(), kind, reason, origin }
}

/// The script a command runs: Codex wraps what the agent meant as
/// `/bin/bash -lc '<script>'`; a policy should see `<script>`. Anything
/// else is returned as it is.
pub fn unwrap_shell(command: &str) -> String {
    match shlex::split(command) {
        Some(argv) => unwrap_argv(&argv),
        None => command.to_owned(),
    }
}

/// `command` split into words, when it is a plain command: no pipes,
/// sequences, redirections, substitutions or groups anywhere in it (quoted
/// or not, to be safe); else empty, and a policy reads the script itself.
pub fn plain_argv(command: &str) -> Vec<String> {
    if command.contains(['|', '&', ';', '<', '>', '$', '`', '\n', '(', ')', '{', '}']) {
        return Vec::new();
    }
    shlex::split(command).unwrap_or_default()
}

fn unwrap_argv(argv: &[String]) -> String {
    if let [shell, flag, script] = argv {
        let name = shell.rsplit('/').next().unwrap_or(shell);
        if matches!(name, "bash" | "sh" | "zsh" | "dash") && matches!(flag.as_str(), "-c" | "-lc" | "-ic") {
            return script.clone();
        }
    }
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

/// The "no answer" result of a request that asks a person a question (the
/// agent's `request_user_input` tool, an MCP server's elicitation); `None` for other methods.
fn unanswerable(method: &str) -> Option<Value> {
    match method {
        "item/tool/requestUserInput" => Some(json!({"answers": {}})),
        "mcpServer/elicitation/request" => Some(json!({"action": "decline"})),
        _ => None,
    }
}

/// The JSON-RPC result that gives `decision` to a request of `method`, in a
/// form it honours and never looser: a permissions request is granted what
/// it asked (for the turn, or the session) or nothing; a request that does not
/// offer `acceptForSession` gets `accept`.
pub fn response(method: &str, params: &Value, decision: ApprovalDecision) -> Value {
    use ApprovalDecision::*;
    match method {
        "item/permissions/requestApproval" => match decision {
            Accept => json!({"permissions": params["permissions"], "scope": "turn"}),
            AcceptForSession => json!({"permissions": params["permissions"], "scope": "session"}),
            Decline | Cancel => json!({"permissions": {}}),
        },
        "execCommandApproval" | "applyPatchApproval" => {
            let d = match decision {
                Accept => "approved",
                AcceptForSession => "approved_for_session",
                Decline => "denied",
                Cancel => "abort",
            };
            json!({"decision": d})
        }
        _ => {
            let offered = |name: &str| {
                params["availableDecisions"].as_array().is_none_or(|a| a.iter().any(|d| d.as_str() == Some(name)))
            };
            let d = match decision {
                Accept => "accept",
                AcceptForSession if offered("acceptForSession") => "acceptForSession",
                AcceptForSession => "accept",
                Decline => "decline",
                Cancel => "cancel",
            };
            json!({"decision": d})
        }
    }
}

/// An app-server item as `codex exec --json` shows it: `agent_message`
/// (`text`), `reasoning` (`text`), `command_execution` (`command`,
/// `aggregated_output`, `exit_code`, `status`), `file_change` (`changes`:
/// `path`, `kind`; `status`), `mcp_tool_call`, `web_search`; other types keep
/// their fields under their snake_case name. The user's own message is not an event.
pub fn project_item(item: &Value) -> Option<Value> {
    let kind = item.get("type").and_then(Value::as_str)?;
    let id = item.get("id").cloned().unwrap_or(Value::Null);
    let status = item.get("status").and_then(Value::as_str).map(snake_case);
    let projected = match kind {
        "userMessage" | "hookPrompt" => return None,
        "agentMessage" => json!({"id": id, "type": "agent_message", "text": item["text"]}),
        "reasoning" => {
            let parts = item["summary"].as_array().filter(|s| !s.is_empty()).or(item["content"].as_array());
            let text: Vec<&str> = parts.map(|p| p.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            json!({"id": id, "type": "reasoning", "text": text.join("\n")})
        }
        "commandExecution" => json!({
            "id": id,
            "type": "command_execution",
            "command": item["command"],
            "aggregated_output": item["aggregatedOutput"].as_str().unwrap_or(""),
            "exit_code": item["exitCode"],
            "status": status,
        }),
        "fileChange" => {
            let changes: Vec<Value> = item["changes"]
                .as_array()
                .map(|c| c.iter().map(|c| json!({"path": c["path"], "kind": c["kind"]["type"]})).collect())
                .unwrap_or_default();
            json!({"id": id, "type": "file_change", "changes": changes, "status": status})
        }
        "mcpToolCall" => json!({
            "id": id,
            "type": "mcp_tool_call",
            "server": item["server"],
            "tool": item["tool"],
            "arguments": item["arguments"],
            "result": item["result"],
            "error": item["error"],
            "status": status,
        }),
        "webSearch" => json!({"id": id, "type": "web_search", "query": item["query"]}),
        other => {
            let mut v = item.clone();
            v["type"] = json!(snake_case(other));
            v
        }
    };
    Some(projected)
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits, in a task of its own, for the answer to `pending`: woken by inotify
/// on the job's `approvals/`, never by polling. At the deadline it records a
/// decline itself (unless an answer came first, which then counts).
fn wait_for_answer(
    job: JobDir,
    rpc_id: Value,
    pending: PendingApproval,
    answers: mpsc::UnboundedSender<(Value, PendingApproval, ApprovalAnswer)>,
) -> Result<tokio::task::JoinHandle<()>> {
    let dir = job.path().join(crate::home::job::APPROVALS_DIR);
    let changes = DirWatch::open(&dir)?;
    let deadline: Timestamp = pending.deadline.parse()?;
    Ok(tokio::spawn(async move {
        let got = async {
            loop {
                if let Some(answer) = approval::read_answer(&job, &pending.request_id)? {
                    return Ok::<_, anyhow::Error>(answer);
                }
                let left = deadline.duration_since(Timestamp::now());
                let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    let timeout = ApprovalAnswer {
                        decision: ApprovalDecision::Decline,
                        reason: Some(format!("no answer by {} (approval_timeout_s)", pending.deadline)),
                        by: "timeout".into(),
                        answered_at: Timestamp::now().to_string(),
                    };
                    return Ok(match approval::answer(&job, &pending.request_id, &timeout)? {
                        Ok(()) => timeout,
                        Err(first) => first,
                    });
                }
                let _ = tokio::time::timeout(left, changes.changed()).await;
            }
        };
        let answer = match got.await {
            Ok(answer) => answer,
            Err(e) => ApprovalAnswer {
                decision: ApprovalDecision::Decline,
                reason: Some(format!("cannot read the answer: {e:#}")),
                by: "built-in".into(),
                answered_at: Timestamp::now().to_string(),
            },
        };
        let _ = answers.send((rpc_id, pending, answer));
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_sees_the_script_codex_wraps_in_a_shell() {
        assert_eq!(unwrap_shell("/bin/bash -lc 'touch made.txt'"), "touch made.txt");
        assert_eq!(
            unwrap_shell("bash -lc 'git push origin main && echo \"ok\"'"),
            "git push origin main && echo \"ok\""
        );
        assert_eq!(unwrap_shell("ls -la"), "ls -la");
        assert_eq!(unwrap_shell("python3 -c 'print(1)'"), "python3 -c 'print(1)'");
    }

    #[test]
    fn a_plain_command_has_its_words_and_a_script_has_none() {
        assert_eq!(plain_argv("git push --force 'origin' main"), ["git", "push", "--force", "origin", "main"]);
        assert!(plain_argv("ls | sh").is_empty());
        assert!(plain_argv("echo $(cat .env)").is_empty());
        assert!(plain_argv("touch a && git push").is_empty());
    }

    #[test]
    fn every_decision_maps_to_an_answer_the_request_honours() {
        let escalation = json!({"availableDecisions": ["accept", {"acceptWithExecpolicyAmendment": {}}, "cancel"]});
        let m = "item/commandExecution/requestApproval";
        assert_eq!(response(m, &escalation, ApprovalDecision::AcceptForSession), json!({"decision": "accept"}));
        assert_eq!(
            response(m, &json!({}), ApprovalDecision::AcceptForSession),
            json!({"decision": "acceptForSession"})
        );
        assert_eq!(response(m, &escalation, ApprovalDecision::Decline), json!({"decision": "decline"}));
        let p = json!({"permissions": {"network": {"enabled": true}}});
        let perm = "item/permissions/requestApproval";
        assert_eq!(response(perm, &p, ApprovalDecision::Accept)["permissions"], p["permissions"]);
        assert_eq!(response(perm, &p, ApprovalDecision::Cancel), json!({"permissions": {}}));
        assert_eq!(response("execCommandApproval", &json!({}), ApprovalDecision::Cancel), json!({"decision": "abort"}));
    }

    #[test]
    fn items_are_projected_onto_execs_vocabulary() {
        let item = json!({"type": "commandExecution", "id": "c1", "command": "ls", "aggregatedOutput": null, "exitCode": 0, "status": "inProgress"});
        let p = project_item(&item).unwrap();
        assert_eq!(
            (p["type"].as_str(), p["status"].as_str(), p["aggregated_output"].as_str()),
            (Some("command_execution"), Some("in_progress"), Some(""))
        );
        let msg = project_item(&json!({"type": "agentMessage", "id": "m", "text": "hi"})).unwrap();
        assert_eq!(msg, json!({"id": "m", "type": "agent_message", "text": "hi"}));
        assert!(project_item(&json!({"type": "userMessage", "id": "u"})).is_none());
        let fc = project_item(&json!({"type": "fileChange", "id": "f", "status": "completed", "changes": [{"path": "/w/a", "kind": {"type": "add"}, "diff": "x"}]})).unwrap();
        assert_eq!(fc["changes"], json!([{"path": "/w/a", "kind": "add"}]));
        assert_eq!(
            project_item(&json!({"type": "contextCompaction", "id": "x"})).unwrap()["type"],
            "context_compaction"
        );
    }
}
