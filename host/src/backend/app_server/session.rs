//! The client side of one turn's conversation with `codex app-server`: the
//! handshake (`initialize`, `thread/start` or `thread/resume`, `turn/start`),
//! the notifications (through [`Projection`] into the job's events), the
//! agent's requests (approvals decided by the job's pinned policies, or
//! handed to the caller), and how the turn ended.

use std::collections::HashMap;

use anyhow::Result;
use serde_json::{Value, json};

use super::projection::{self, Projection};
use super::requests::{AgentRequest, Approval};
use super::rpc::{Rpc, method};
use crate::backend::gate::{Gate, Judged, Ruling};
use crate::backend::hooks::HookReply;
use crate::job::approval::ApprovalDecision;
use crate::job::runtime::Turn;
use crate::job::tracker::TurnTracker;
use crate::job::{End, JobStatus};

/// How this driver's requests reach the gate, as `approval.decided` says.
const VIA: &str = "approval-request";

/// Where the handshake stands: which response is awaited next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Initialize,
    Thread,
    TurnStart,
    Interrupt,
}

/// Where a decision goes once it is made.
pub enum Answer {
    /// An approval request.
    Rpc {
        /// Its JSON-RPC id.
        id: Value,
        /// The request, for its answer's shape.
        approval: Box<Approval>,
    },
    /// A call of the policy hook.
    Hook(HookReply),
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
}

impl Session {
    /// The session of `turn`.
    pub fn new(turn: &Turn<'_>) -> Self {
        Session {
            awaiting: HashMap::new(),
            thread_id: turn.meta.thread_id.clone(),
            turn_id: None,
            turn_ended: None,
            refused: None,
            cancelled_by: None,
            projection: Projection::default(),
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

    /// Takes one message from the app-server; its approval requests go through `gate`.
    pub async fn handle(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        gate: &mut Gate<Answer>,
        message: Value,
    ) -> Result<()> {
        let name = message.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = message.get("id").cloned().filter(|id| !id.is_null());
        match (name, id) {
            (Some(name), Some(id)) => self.server_request(turn, rpc, gate, &name, id, &message["params"]).await,
            (Some(name), None) => {
                let projected = self.projection.notification(&name, &message["params"]);
                for (kind, event) in projected.events {
                    turn.emit(&kind, event)?;
                }
                self.turn_id = projected.turn_id.or(self.turn_id.take());
                self.turn_ended = projected.turn_ended.or(self.turn_ended.take());
                Ok(())
            }
            (None, Some(id)) => self.response(turn, rpc, id, &message).await,
            (None, None) => Ok(()),
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

    /// A request from the app-server: an approval is judged by `gate` (an
    /// action a hook already asked about gets that decision again, and no
    /// second one); anything this client cannot answer gets a JSON-RPC error.
    async fn server_request(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        gate: &mut Gate<Answer>,
        name: &str,
        id: Value,
        params: &Value,
    ) -> Result<()> {
        let parsed = AgentRequest::parse(name, params, &turn.meta.cwd.display().to_string(), |item| {
            self.projection.file_changes(item)
        });
        let approval = match parsed {
            AgentRequest::Approval(approval) => approval,
            AgentRequest::Question(none) => {
                // Questions for a person: nobody can be reached through this
                // turn's JSON-RPC; say no in the request's own shape, and record it.
                rpc.respond(id, none).await?;
                let reason = "codex-jobhost does not relay questions to the caller; answered with none";
                let request = json!({"method": name, "params": params});
                let ruling = gate.built_in(turn, "question", VIA, request, ApprovalDecision::Decline, reason.into());
                return gate.record(turn, &ruling);
            }
            AgentRequest::Unknown => {
                return rpc.respond_error(id, -32601, &format!("codex-jobhost does not handle {name}")).await;
            }
        };
        if let Some(decision) = approval.call_id.as_deref().and_then(|call| gate.decided_call(call)) {
            return rpc.respond(id, approval.answer(decision)).await;
        }
        let raw = json!({"method": name, "params": params});
        let (kind, request, call_id) = (approval.kind, approval.request.clone(), approval.call_id.clone());
        let answer = Answer::Rpc { id, approval };
        match gate.judge(turn, kind, VIA, request, raw, call_id.as_deref(), answer).await? {
            Judged::Decided(ruling, answer) => self.give(turn, rpc, gate, &ruling, answer).await,
            Judged::Asked => Ok(()),
        }
    }

    /// Answers a request with `ruling`, in the shape it takes, and records it;
    /// a `cancel` also ends the turn.
    pub async fn give(
        &mut self,
        turn: &mut Turn<'_>,
        rpc: &mut Rpc,
        gate: &Gate<Answer>,
        ruling: &Ruling,
        answer: Answer,
    ) -> Result<()> {
        match answer {
            Answer::Rpc { id, approval } => rpc.respond(id, approval.answer(ruling.decision)).await?,
            Answer::Hook(reply) => _ = reply.give(ruling),
        }
        gate.record(turn, ruling)?;
        if ruling.decision == ApprovalDecision::Cancel {
            let reason = ruling.reason.as_deref().unwrap_or("no reason given");
            self.cancelled_by = Some(format!("cancelled by {}: {reason}", ruling.by));
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
