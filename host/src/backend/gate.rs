//! The approval gate of one turn: every action of the agent's that the job's
//! approval policies decide, whichever way Codex puts it to the supervisor
//! (an app-server approval request, a `PreToolUse` hook call): judged by the
//! job's pinned policies ([`PolicySet::decide`]), handed to the caller when
//! they say `ask` (the request written to the job's `approvals/`, the job
//! `input_required`, the answer awaited through [`mailbox`]), and recorded
//! as one `approval.decided` event per action.
//!
//! A driver owns a [`Gate`] and its [`Answers`]; `W` is what the driver needs
//! to give an asked request its answer once it comes (a JSON-RPC id, a hook
//! connection).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::mailbox;
use crate::job::JobStatus;
use crate::job::approval::{self, ApprovalAnswer, ApprovalDecision, PendingApproval};
use crate::job::event::{APPROVAL_DECIDED_EVENT, APPROVAL_REQUESTED_EVENT};
use crate::job::runtime::Turn;
use crate::policy::{self, Decision, JobContext, PinnedSet, Policies, PolicySet, Request};

/// How long an approval request waits for an answer when neither the job
/// nor the user's config says: 15 minutes.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The longest an asked request waits, whatever `approval_timeout_s` says:
/// 29 days (the policy hook's own timeout is a day longer).
pub const LONGEST_WAIT: Duration = Duration::from_secs(29 * 24 * 3600);

/// One decision on one action, as `approval.decided` records it.
#[derive(Clone, Debug)]
pub struct Ruling {
    /// The request's id within the job, `<turn>-<n>`.
    pub request_id: String,
    /// `command`, `file_change`, `permissions`, `tool_call`.
    pub kind: &'static str,
    /// What the policies saw (the WIT `request` in JSON), or Codex's own
    /// input where no policy could be asked.
    pub request: Value,
    /// The answer.
    pub decision: ApprovalDecision,
    /// Why, when the decider said.
    pub reason: Option<String>,
    /// Who decided: a policy, `built-in`, `job_approve`, `timeout`, ….
    pub by: String,
    /// When the request was read, for a decision made without waiting for the caller.
    pub begun: Option<Instant>,
    /// How Codex asked: `approval-request` or `hook`.
    pub via: &'static str,
}

/// A request handed to the caller: as written to `approvals/`, and how to answer it.
pub struct Asked<W> {
    /// The request as written to the job's `approvals/`.
    pub pending: PendingApproval,
    /// What the driver answers it through.
    pub waiter: W,
    kind: &'static str,
    via: &'static str,
    call_id: Option<String>,
}

/// What [`Gate::judge`] made of a request.
pub enum Judged<W> {
    /// Decided at once: answer it through `W`, then [`Gate::record`] the ruling.
    Decided(Ruling, W),
    /// Handed to the caller: its answer comes through [`Answers`].
    Asked,
}

/// Answers to asked requests, by request id, as they come: the driver awaits
/// [`Answers::next`] beside the agent's output and hands each to [`Gate::answered`].
pub struct Answers(mpsc::UnboundedReceiver<(String, ApprovalAnswer)>);

impl Answers {
    /// The next answer; pending for ever when none can come.
    pub async fn next(&mut self) -> (String, ApprovalAnswer) {
        match self.0.recv().await {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

/// One turn's approval gate (see the module docs).
pub struct Gate<W> {
    /// The job's pinned policies, or why they cannot be loaded.
    policies: Result<Arc<PolicySet>, String>,
    ctx: JobContext,
    timeout: Duration,
    requests: u64,
    waiting: HashMap<String, (tokio::task::JoinHandle<()>, Asked<W>)>,
    answers: mpsc::UnboundedSender<(String, ApprovalAnswer)>,
    /// Decisions by Codex's call id (a hook's `tool_use_id`, an approval
    /// request's `itemId`): the second way Codex asks about one action gets
    /// the first one's answer, and no second decision.
    by_call: HashMap<String, ApprovalDecision>,
    /// The call ids the policies in shadow were asked about, so that they
    /// are recorded once per action too.
    shadowed: std::collections::HashSet<String>,
}

impl<W> Gate<W> {
    /// The gate of `turn`, its policies loaded (or why they cannot be).
    pub fn new(turn: &Turn<'_>) -> (Self, Answers) {
        let policies = load_policies(turn).map_err(|e| format!("{e:#}"));
        let root = policies.as_ref().ok().and_then(|p| p.project_root.as_deref());
        let ctx = policy::job_context(turn.meta.id, turn.meta.backend, &turn.meta.cwd, root, &turn.meta.prompt);
        // Never past the hook's own timeout, after which Codex would let the call run.
        let timeout = (turn.meta.options.approval_timeout_s)
            .or(turn.spec.settings.approval_timeout_s)
            .map_or(APPROVAL_TIMEOUT, Duration::from_secs)
            .min(LONGEST_WAIT);
        let (answers, received) = mpsc::unbounded_channel();
        let gate = Gate {
            policies,
            ctx,
            timeout,
            requests: 0,
            waiting: HashMap::new(),
            answers,
            by_call: HashMap::new(),
            shadowed: Default::default(),
        };
        (gate, Answers(received))
    }

    /// Whether the job has approval policies to ask (or policies that
    /// cannot be loaded, which decline everything): then every action Codex
    /// lets a hook intercept is put to them.
    pub fn governs(&self) -> bool {
        self.policies.as_ref().map_or(true, |set| set.has_approvals())
    }

    /// Whether any request waits for the caller.
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The next request id of `turn`: `<turn>-<n>`, from 1.
    fn next_request_id(&mut self, turn: &Turn<'_>) -> String {
        self.requests += 1;
        format!("{}-{}", turn.meta.turn, self.requests)
    }

    /// What was decided on the action with Codex's call id `call_id`, if it was.
    pub fn decided_call(&self, call_id: &str) -> Option<ApprovalDecision> {
        self.by_call.get(call_id).copied()
    }

    /// Judges `request` (of `kind`, sent as `raw`, about the action with
    /// Codex's call id `call_id`): decided by the policies, or handed to the
    /// caller on `ask` (written to `approvals/`, an `approval.requested`
    /// event, the job `input_required`, its answer awaited).
    #[allow(clippy::too_many_arguments)]
    pub async fn judge(
        &mut self,
        turn: &mut Turn<'_>,
        kind: &'static str,
        via: &'static str,
        request: Request,
        raw: Value,
        call_id: Option<&str>,
        waiter: W,
    ) -> Result<Judged<W>> {
        let begun = Instant::now();
        let request_id = self.next_request_id(turn);
        let request_json = serde_json::to_value(&request)?;
        let (decision, by, shadow) = self.decide(request).await;
        self.record_shadow(turn, &request_id, kind, via, &request_json, call_id, shadow)?;
        let (decision, reason) = match decision {
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
                let job = turn.store.job(turn.meta.id)?;
                let handle = mailbox::wait_for_answer(job, pending.clone(), self.answers.clone())?;
                let id = pending.request_id.clone();
                let call_id = call_id.map(str::to_owned);
                self.waiting.insert(id, (handle, Asked { pending, waiter, kind, via, call_id }));
                return Ok(Judged::Asked);
            }
        };
        if let Some(call) = call_id {
            self.by_call.insert(call.to_owned(), decision);
        }
        let ruling = Ruling { request_id, kind, request: request_json, decision, reason, by, begun: Some(begun), via };
        Ok(Judged::Decided(ruling, waiter))
    }

    /// Whether an enforced approval policy judges this turn's actions (or
    /// the policies cannot be loaded, which declines them); false when every
    /// approval policy is in shadow.
    pub fn enforces(&self) -> bool {
        self.policies.as_ref().map_or(true, |set| set.enforces_approvals())
    }

    /// Puts `request` to the policies in shadow alone, when none is enforced:
    /// their decisions are recorded, and the action runs as the caller's
    /// approval mode says.
    pub async fn shadow(
        &mut self,
        turn: &mut Turn<'_>,
        kind: &'static str,
        via: &'static str,
        request: Request,
        call_id: Option<&str>,
    ) -> Result<()> {
        let request_id = self.next_request_id(turn);
        let request_json = serde_json::to_value(&request)?;
        let (_, _, shadow) = self.decide(request).await;
        self.record_shadow(turn, &request_id, kind, via, &request_json, call_id, shadow)
    }

    /// Records what the policies in shadow would have decided on one request
    /// (`approval.decided` with `shadow: true`), once per action.
    #[allow(clippy::too_many_arguments)]
    fn record_shadow(
        &mut self,
        turn: &mut Turn<'_>,
        request_id: &str,
        kind: &str,
        via: &str,
        request: &Value,
        call_id: Option<&str>,
        shadow: Vec<(String, Decision)>,
    ) -> Result<()> {
        if shadow.is_empty() || call_id.is_some_and(|call| !self.shadowed.insert(call.to_owned())) {
            return Ok(());
        }
        for (name, decision) in shadow {
            // What it would have done, never applied: `ask` included, which no answer is.
            let (decision, reason) = match decision {
                Decision::Accept => ("accept", None),
                Decision::AcceptForSession => ("accept_for_session", None),
                Decision::Ask => ("ask", None),
                Decision::Decline(r) => ("decline", Some(r)),
                Decision::Cancel(r) => ("cancel", Some(r)),
            };
            let event = json!({
                "request_id": request_id, "kind": kind, "request": request, "decision": decision,
                "reason": reason, "decided_by": name, "via": via, "shadow": true,
            });
            turn.events.append(APPROVAL_DECIDED_EVENT, event)?;
        }
        Ok(())
    }

    /// A decision made without asking anyone (a request no policy can judge):
    /// the ruling to answer with and record.
    pub fn built_in(
        &mut self,
        turn: &Turn<'_>,
        kind: &'static str,
        via: &'static str,
        request: Value,
        decision: ApprovalDecision,
        reason: String,
    ) -> Ruling {
        let request_id = self.next_request_id(turn);
        let by = "built-in".into();
        Ruling { request_id, kind, request, decision, reason: Some(reason), by, begun: None, via }
    }

    /// The caller's answer to the asked request `request_id`: the ruling to
    /// answer it with (then [`Gate::record`] it) and its waiter; `None` for a
    /// request not waiting here. With none left waiting, an `input_required`
    /// turn is `running` again.
    pub fn answered(
        &mut self,
        turn: &mut Turn<'_>,
        request_id: &str,
        answer: ApprovalAnswer,
    ) -> Result<Option<(Ruling, W)>> {
        let Some((_, asked)) = self.waiting.remove(request_id) else { return Ok(None) };
        let Asked { pending, waiter, kind, via, call_id } = asked;
        if let Some(call) = call_id {
            self.by_call.insert(call, answer.decision);
        }
        if self.waiting.is_empty() && turn.meta.status == JobStatus::InputRequired {
            turn.set_status(JobStatus::Running, json!({"answered": request_id}))?;
        }
        let ruling = Ruling {
            request_id: pending.request_id,
            kind,
            request: pending.request,
            decision: answer.decision,
            reason: answer.reason,
            by: answer.by,
            begun: None,
            via,
        };
        Ok(Some((ruling, waiter)))
    }

    /// Records `ruling` as an `approval.decided` event.
    pub fn record(&self, turn: &mut Turn<'_>, ruling: &Ruling) -> Result<()> {
        let mut event = json!({
            "request_id": ruling.request_id,
            "kind": ruling.kind,
            "request": ruling.request,
            "decision": ruling.decision,
            "reason": ruling.reason,
            "decided_by": ruling.by,
            "via": ruling.via,
        });
        if let Some(begun) = ruling.begun {
            // The approval's round trip: request read → answer given, policies included.
            event["elapsed_us"] = json!(begun.elapsed().as_micros() as u64);
        }
        turn.events.append(APPROVAL_DECIDED_EVENT, event)?;
        Ok(())
    }

    /// Asks the job's approval policies (off the runtime: guests block):
    /// the decision, who made it, and what those in shadow would have
    /// decided. Policies that cannot be loaded decline (fail closed).
    async fn decide(&self, request: Request) -> (Decision, String, Vec<(String, Decision)>) {
        let set = match &self.policies {
            Ok(set) => Arc::clone(set),
            Err(error) => {
                let reason = format!("the job's policies cannot be loaded: {error}");
                return (Decision::Decline(reason), "built-in".into(), Vec::new());
            }
        };
        let ctx = self.ctx.clone();
        match tokio::task::spawn_blocking(move || set.decide(&ctx, &request)).await {
            Ok(v) => (v.decision, v.decided_by.unwrap_or_else(|| "built-in".into()), v.shadow),
            Err(e) => (Decision::Decline(format!("the approval policies failed: {e}")), "built-in".into(), Vec::new()),
        }
    }
}

impl<W> Drop for Gate<W> {
    fn drop(&mut self) {
        for (handle, _) in self.waiting.values() {
            handle.abort();
        }
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
