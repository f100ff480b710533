//! The client side of one turn's conversation with `codex app-server`: the
//! handshake (`initialize`, `thread/start` or `thread/resume`, `turn/start`),
//! the notifications (through [`Projection`] into the job's events), the
//! agent's requests (approvals decided by the job's pinned policies, or
//! handed to the caller), and how the turn ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::projection::{self, Projection};
use super::requests::{AgentRequest, Approval};
use super::rpc::{Rpc, method};
use crate::job::approval::{self, ApprovalDecision, PendingApproval};
use crate::job::event::{APPROVAL_DECIDED_EVENT, APPROVAL_REQUESTED_EVENT};
use crate::job::runtime::Turn;
use crate::job::tracker::TurnTracker;
use crate::job::{BackendKind, End, JobStatus};
use crate::policy::{self, Decision, JobContext, PinnedSet, Policies, PolicySet, Request};

/// How long an approval request waits for an answer when neither the job
/// nor the user's config says: 15 minutes.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Where the handshake stands: which response is awaited next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Initialize,
    Thread,
    TurnStart,
    Interrupt,
}

/// A decision on one request and who made it.
pub struct Decided<'a> {
    /// The answer.
    pub decision: ApprovalDecision,
    /// Why, when the decider said.
    pub reason: Option<&'a str>,
    /// Who decided: a policy, `built-in`, `job_approve`, `timeout`, ….
    pub by: &'a str,
    /// When the request was read, for a decision made without waiting for the caller.
    pub begun: Option<std::time::Instant>,
}

/// An approval request handed to the caller: what its answer needs.
pub struct Asked {
    /// The JSON-RPC id to answer.
    pub rpc_id: Value,
    /// The request as written to the job's `approvals/`.
    pub pending: PendingApproval,
    /// How to answer it.
    pub approval: Approval,
}

/// The client side of one turn's conversation.
pub struct Session {
    awaiting: HashMap<u64, Step>,
    thread_id: Option<String>,
    turn_id: Option<String>,
    /// `turn/completed`'s status, once it came.
    pub turn_ended: Option<String>,
    /// Why the app-server refused the handshake, if it did.
    refused: Option<String>,
    /// Why a decision cancelled the turn (`cancel`), if one did.
    cancelled_by: Option<String>,
    projection: Projection,
    requests: u64,
    /// The job's pinned policies, or why they cannot be loaded.
    policies: Result<Arc<PolicySet>, String>,
    ctx: JobContext,
    timeout: Duration,
}

impl Session {
    /// The session of `turn`, its policies loaded (or why they cannot be).
    pub fn new(turn: &Turn<'_>) -> Self {
        let policies = load_policies(turn).map_err(|e| format!("{e:#}"));
        let root = policies.as_ref().ok().and_then(|p| p.project_root.as_deref());
        let ctx = policy::job_context(turn.meta.id, BackendKind::AppServer, &turn.meta.cwd, root, &turn.meta.prompt);
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
            projection: Projection::default(),
            requests: 0,
            policies,
            ctx,
            timeout,
        }
    }

    /// Begins the handshake: `initialize`.
    pub async fn start(&mut self, rpc: &mut Rpc) -> Result<()> {
        let version = env!("CARGO_PKG_VERSION");
        let id = rpc
            .request(method::INITIALIZE, json!({"clientInfo": {"name": "codex-jobhost", "version": version}}))
            .await?;
        self.awaiting.insert(id, Step::Initialize);
        Ok(())
    }

    /// Takes one message from the app-server. Returns a request handed to the
    /// caller, for the driver to wait on its answer.
    pub async fn handle(&mut self, turn: &mut Turn<'_>, rpc: &mut Rpc, message: Value) -> Result<Option<Asked>> {
        let name = message.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = message.get("id").cloned().filter(|id| !id.is_null());
        match (name, id) {
            (Some(name), Some(id)) => self.server_request(turn, rpc, &name, id, &message["params"]).await,
            (Some(name), None) => {
                let projected = self.projection.notification(&name, &message["params"]);
                for (kind, event) in projected.events {
                    turn.emit(&kind, event)?;
                }
                self.turn_id = projected.turn_id.or(self.turn_id.take());
                self.turn_ended = projected.turn_ended.or(self.turn_ended.take());
                Ok(None)
            }
            (None, Some(id)) => {
                self.response(turn, rpc, id, &message).await?;
                Ok(None)
            }
            (None, None) => Ok(None),
        }
    }

    /// A response to one of our requests: the handshake's next step.
    async fn response(&mut self, turn: &mut Turn<'_>, rpc: &mut Rpc, id: Value, message: &Value) -> Result<()> {
        let Some(step) = id.as_u64().and_then(|id| self.awaiting.remove(&id)) else { return Ok(()) };
        if let Some(error) = message.get("error") {
            if step != Step::Interrupt {
                let what = error.get("message").and_then(Value::as_str).unwrap_or("no message");
                let refused = match step {
                    Step::Initialize => method::INITIALIZE,
                    Step::Thread if turn.meta.turn > 0 => method::THREAD_RESUME,
                    Step::Thread => method::THREAD_START,
                    _ => method::TURN_START,
                };
                self.refused = Some(format!("codex app-server refused {refused}: {what}"));
                self.turn_ended = Some("failed".into());
            }
            return Ok(());
        }
        let result = &message["result"];
        match step {
            Step::Initialize => {
                rpc.notify(method::INITIALIZED).await?;
                let o = &turn.meta.options;
                let (approval, sandbox) = super::codex_settings(o);
                let mut params = json!({
                    "cwd": turn.meta.cwd,
                    "approvalPolicy": approval,
                    "sandbox": sandbox,
                });
                if let Some(model) = &o.model {
                    params["model"] = json!(model);
                }
                let name = match &self.thread_id {
                    Some(thread) if turn.meta.turn > 0 => {
                        params["threadId"] = json!(thread);
                        method::THREAD_RESUME
                    }
                    _ => method::THREAD_START,
                };
                let id = rpc.request(name, params).await?;
                self.awaiting.insert(id, Step::Thread);
            }
            Step::Thread => {
                let thread = result.pointer("/thread/id").and_then(Value::as_str).map(str::to_owned);
                self.thread_id = thread.clone().or(self.thread_id.take());
                if let Some(thread) = thread {
                    let (kind, event) = projection::thread_started(&thread);
                    turn.emit(&kind, event)?;
                }
                let params = json!({
                    "threadId": self.thread_id,
                    "input": [{"type": "text", "text": turn.spec.prompt}],
                });
                let id = rpc.request(method::TURN_START, params).await?;
                self.awaiting.insert(id, Step::TurnStart);
            }
            Step::TurnStart => {
                self.turn_id = result.pointer("/turn/id").and_then(Value::as_str).map(str::to_owned);
            }
            Step::Interrupt => {}
        }
        Ok(())
    }

    /// A request from the app-server: an approval is decided by the policies
    /// (or handed on); anything this client cannot answer gets a JSON-RPC error.
    async fn server_request(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        name: &str,
        id: Value,
        params: &Value,
    ) -> Result<Option<Asked>> {
        let parsed = AgentRequest::parse(name, params, &self.ctx.cwd, |item| self.projection.file_changes(item));
        let approval = match parsed {
            AgentRequest::Approval(approval) => approval,
            AgentRequest::Question(none) => {
                // Questions for a person: nobody can be reached through this
                // turn's JSON-RPC; say no in the request's own shape, and record it.
                rpc.respond(id, none).await?;
                self.requests += 1;
                let reason = "codex-jobhost does not relay questions to the caller; answered with none";
                let event = json!({
                    "request_id": format!("{}-{}", turn.meta.turn, self.requests),
                    "kind": "question",
                    "request": {"method": name, "params": params},
                    "decision": ApprovalDecision::Decline,
                    "reason": reason,
                    "decided_by": "built-in",
                });
                turn.events.append(APPROVAL_DECIDED_EVENT, event)?;
                return Ok(None);
            }
            AgentRequest::Unknown => {
                rpc.respond_error(id, -32601, &format!("codex-jobhost does not handle {name}")).await?;
                return Ok(None);
            }
        };
        let begun = std::time::Instant::now();
        self.requests += 1;
        let request_id = format!("{}-{}", turn.meta.turn, self.requests);
        let request_json = serde_json::to_value(&approval.request)?;
        let (decision, by) = self.decide(approval.request.clone()).await;
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
                    kind: approval.kind.to_owned(),
                    request: request_json,
                    raw: json!({"method": name, "params": params}),
                    asked_by: by,
                    requested_at: now.to_string(),
                    deadline: deadline.to_string(),
                };
                approval::write_pending(turn.job, &pending)?;
                turn.events.append(APPROVAL_REQUESTED_EVENT, serde_json::to_value(&pending)?)?;
                if turn.meta.status == JobStatus::Running {
                    turn.set_status(JobStatus::InputRequired, json!({"request_id": pending.request_id}))?;
                }
                return Ok(Some(Asked { rpc_id: id, pending, approval }));
            }
        };
        let decided = Decided { decision: answer, reason: reason.as_deref(), by: &by, begun: Some(begun) };
        self.answer(turn, rpc, id, &approval, &request_id, &request_json, decided).await?;
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

    /// Answers the caller's decision on a request handed to it.
    pub async fn answer_asked(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        asked: Asked,
        decided: Decided<'_>,
    ) -> Result<()> {
        let Asked { rpc_id, pending, approval } = asked;
        self.answer(turn, rpc, rpc_id, &approval, &pending.request_id, &pending.request, decided).await
    }

    /// Answers request `id` in the shape it takes, and records the decision.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        id: Value,
        approval: &Approval,
        request_id: &str,
        request: &Value,
        decided: Decided<'_>,
    ) -> Result<()> {
        rpc.respond(id, approval.answer(decided.decision)).await?;
        let mut event = json!({
            "request_id": request_id,
            "kind": approval.kind,
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

    /// Asks Codex to end the running turn (`turn/interrupt`), once it has one.
    pub async fn interrupt(&mut self, rpc: &mut Rpc) {
        if let (Some(thread), Some(turn)) = (&self.thread_id, &self.turn_id) {
            let params = json!({"threadId": thread, "turnId": turn});
            if let Ok(id) = rpc.request(method::TURN_INTERRUPT, params).await {
                self.awaiting.insert(id, Step::Interrupt);
            }
        }
    }

    /// The turn's end, from how it ended, what its events said (`tracker`)
    /// and how the app-server exited (`code`). Its exit code is the one
    /// `codex exec` would have given the turn: 0 completed, 1 failed, the
    /// app-server's own when it died, none when cancelled.
    pub fn end(&self, tracker: &TurnTracker, code: i32, cancelled: bool, idle_error: Option<String>) -> End {
        let (status, error) = match (self.turn_ended.as_deref(), &self.refused) {
            (_, Some(refused)) => (JobStatus::Failed, Some(refused.clone())),
            _ if cancelled => tracker.outcome(code, true),
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
