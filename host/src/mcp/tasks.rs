//! MCP tasks: the `io.modelcontextprotocol/tasks` extension of MCP
//! 2026-07-28 (ext-tasks `specification/2026-07-28/tasks.md`; wire types
//! from rmcp 3.9.0's `model::task`).
//!
//! A `job_start` or `job_reply` whose request declares the extension in its
//! client capabilities is answered with a task instead of a job id: the task
//! is that turn of the job, its id `<job id>.<turn>`. `tasks/get`,
//! `tasks/update` and `tasks/cancel` read and change the job's files through
//! [`JobHost`], never anything kept in memory, so any server answers them,
//! after a restart too. The turn's status maps onto the task's:
//!
//! | turn                                    | task                                        |
//! |-----------------------------------------|---------------------------------------------|
//! | `queued`, `running`                     | `working`                                   |
//! | `input_required`, client can elicit     | `input_required`, one form a pending request |
//! | `input_required`, client cannot elicit  | `working`, the message names `job_approve`  |
//! | `completed`                             | `completed`, `job_status`'s report inlined  |
//! | `failed`                                | `completed` with `isError: true` (the spec keeps `failed` for JSON-RPC errors) |
//! | `cancelled`                             | `cancelled`, the reason in `statusMessage`  |

use std::sync::Arc;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolResult, CancelTaskParams, ClientCapabilities, ContentBlock, CreateTaskResult, DetailedTask, ElicitResult,
    ElicitationAction, GetTaskParams, GetTaskResult, InputRequest, InputRequests, JsonObject, MetaObject, Task,
    TaskPayload, TaskStatus, UpdateTaskParams,
};
use serde_json::{Value, json};

use crate::host::transcript::request_summary;
use crate::host::{ApproveRequest, Started, TurnReport, TurnResult};
use crate::job::JobStatus;
use crate::job::approval::{ApprovalDecision, PendingApproval};
use crate::{InvalidInput, JobHost};

/// How often a client should poll `tasks/get`, in milliseconds (Claude Code
/// 2.1.330 clamps it to 250 ms – 30 s; a turn takes seconds to hours).
pub const POLL_INTERVAL_MS: u64 = 2_000;

/// Who answered an approval request through `tasks/update`, in its `decided_by`
/// (with the token's name over HTTP).
pub const ANSWERED_BY: &str = "tasks/update";

/// `_meta` key Claude Code reads a task's placeholder text from (Claude Code 2.1.330).
const AGENT_TASK_META: &str = "com.anthropic/agent-task";

/// The task of turn `turn` of job `job_id`.
pub fn task_id(job_id: &str, turn: u32) -> String {
    format!("{job_id}.{turn}")
}

/// The job id and turn in a task id, or `-32602` naming it.
fn parse_task_id(task_id: &str) -> Result<(&str, u32), McpError> {
    task_id
        .rsplit_once('.')
        .and_then(|(job, turn)| Some((job, turn.parse().ok()?)))
        .ok_or_else(|| McpError::invalid_params(format!("no task {task_id:?}: a task id is <job id>.<turn>"), None))
}

/// Whether a request's client capabilities declare the tasks extension.
pub fn declared(capabilities: Option<&ClientCapabilities>) -> bool {
    capabilities.is_some_and(ClientCapabilities::supports_tasks)
}

/// The task a `job_start` or `job_reply` that `started` a turn answers with:
/// its state read back from the job, so it resolves in `tasks/get` already.
pub async fn created(host: &Arc<JobHost>, started: &Started) -> Result<CreateTaskResult, McpError> {
    let id = task_id(&started.job_id, started.turn);
    let report = turn_of(host, &id).await?;
    let placeholder = format!(
        "Codex job {job} (turn {turn}) runs in the background as MCP task {id}; its result comes back by itself \
         when the turn ends. For details meanwhile: job_status or job_events with job_id {job}.",
        job = started.job_id,
        turn = started.turn,
    );
    let mut meta = MetaObject::new();
    meta.insert(AGENT_TASK_META.into(), json!({ "modelImmediateResponse": placeholder }));
    let mut task = base(&id, &report);
    task.status = TaskStatus::Working;
    Ok(CreateTaskResult::new(task).with_meta(meta))
}

/// `tasks/get`: the turn as it stands. Its approval requests become
/// elicitation forms only for a request whose capabilities declare `elicitation`.
pub async fn get(host: &Arc<JobHost>, params: GetTaskParams, can_elicit: bool) -> Result<GetTaskResult, McpError> {
    let task_id = params.task_id;
    let report = turn_of(host, &task_id).await?;
    let task = base(&task_id, &report);
    let payload = match (&report.result, report.status) {
        (Some(result), JobStatus::Cancelled) => {
            let why = match result {
                TurnResult::Current(r) => r.error.clone(),
                TurnResult::Earlier(r) => r.error.clone(),
            };
            let task = task.with_status_message(why.unwrap_or_else(|| "cancelled".into()));
            return Ok(GetTaskResult::new(DetailedTask::new(task, TaskPayload::Cancelled)));
        }
        (Some(result), status) => TaskPayload::Completed { result: tool_result(result, status)? },
        (None, JobStatus::InputRequired) if can_elicit && !report.pending_approvals.is_empty() => {
            TaskPayload::InputRequired { input_requests: forms(&report.pending_approvals)? }
        }
        (None, _) => TaskPayload::Working,
    };
    let message = status_message(&report, can_elicit);
    Ok(GetTaskResult::new(DetailedTask::new(task.with_status_message(message), payload)))
}

/// `tasks/update`: each answer to a pending approval request of the turn is
/// recorded as `job_approve`'s would be (first answer wins), by `tasks/update`.
/// A form declined is `decline`; one cancelled (dismissed) leaves the request
/// pending. Keys that name no pending request are ignored, as the spec asks.
///
/// Errors: `-32602` for an unknown task, or an accepted form whose `decision`
/// is not one of `accept`, `accept_for_session`, `decline`, `cancel`.
/// `by` names who answered (see [`super::http::tokens::Caller::answering`]).
pub async fn update(host: &Arc<JobHost>, params: UpdateTaskParams, by: String) -> Result<(), McpError> {
    let (job_id, turn) = parse_task_id(&params.task_id)?;
    let report = turn_of(host, &params.task_id).await?;
    for (key, response) in params.input_responses {
        if !report.pending_approvals.iter().any(|p| p.request_id == key) {
            tracing::debug!(task = %params.task_id, key, "an answer to no pending request: ignored");
            continue;
        }
        let Some(decision) = decision_of(&key, response)? else { continue };
        let answer = ApproveRequest {
            job_id: job_id.to_owned(),
            request_id: key,
            decision,
            reason: Some(format!("answered in the MCP client (task {}, turn {turn})", params.task_id)),
        };
        let by = by.clone();
        if let Err(e) = host.off_runtime(move |h| h.approve(&answer, &by)).await {
            // Another answer came first (job_approve, the CLI, the deadline): it is the one that counts.
            tracing::debug!(task = %params.task_id, "answer not recorded: {e:#}");
        }
    }
    Ok(())
}

/// `tasks/cancel`: `job_cancel` on the turn, when it is the job's current turn
/// and has not ended; otherwise nothing (it may come twice).
///
/// Errors: `-32602` for an unknown task.
pub async fn cancel(host: &Arc<JobHost>, params: CancelTaskParams) -> Result<(), McpError> {
    let (job_id, _) = parse_task_id(&params.task_id)?;
    let report = turn_of(host, &params.task_id).await?;
    if report.status.is_terminal() {
        return Ok(());
    }
    if let Err(e) = host.cancel(job_id).await {
        if e.downcast_ref::<InvalidInput>().is_none() {
            return Err(mcp_error(e));
        }
        // It ended meanwhile.
    }
    Ok(())
}

async fn turn_of(host: &Arc<JobHost>, task_id: &str) -> Result<TurnReport, McpError> {
    let (job_id, turn) = parse_task_id(task_id)?;
    let job_id = job_id.to_owned();
    host.off_runtime(move |h| h.turn_report(&job_id, turn, crate::host::RESULT_MAX_CHARS)).await.map_err(|e| {
        match e.downcast_ref::<InvalidInput>() {
            Some(bad) => McpError::invalid_params(format!("no task {task_id:?}: {bad}"), None),
            None => mcp_error(e),
        }
    })
}

fn base(task_id: &str, report: &TurnReport) -> Task {
    let status = match report.status {
        JobStatus::Cancelled => TaskStatus::Cancelled,
        s if s.is_terminal() => TaskStatus::Completed,
        JobStatus::InputRequired => TaskStatus::InputRequired,
        _ => TaskStatus::Working,
    };
    let mut task = Task::new(task_id, status, report.created_at.to_string(), report.updated_at.to_string());
    // Unlimited: a job lives until `jobs gc` or `[jobs] retention_days` removes it.
    task.ttl_ms = None;
    task.with_poll_interval_ms(POLL_INTERVAL_MS)
}

fn status_message(report: &TurnReport, can_elicit: bool) -> String {
    match (report.status, &report.result) {
        (JobStatus::Queued, _) => "queued: waiting for a running place".into(),
        (JobStatus::Running, _) => "running".into(),
        (JobStatus::InputRequired, _) => {
            let ids: Vec<&str> = report.pending_approvals.iter().map(|p| p.request_id.as_str()).collect();
            if can_elicit {
                format!("waiting for an answer to approval request {}", ids.join(", "))
            } else {
                format!("waiting for an answer to approval request {}: job_approve answers it", ids.join(", "))
            }
        }
        (status, Some(TurnResult::Earlier(r))) => {
            format!("turn {} {status}; the job has since gone on to turn {}", r.turn, r.current_turn)
        }
        (status, _) => status.to_string(),
    }
}

/// An ended turn as the `CallToolResult` the task's `tools/call` would have
/// returned: the report as structured content and as text, then how to get more.
fn tool_result(result: &TurnResult, status: JobStatus) -> Result<JsonObject, McpError> {
    let structured = serde_json::to_value(result).map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let job_id = structured["job_id"].as_str().unwrap_or_default().to_owned();
    let more = format!(
        "More: job_status with job_id {job_id} has the tail of the agent's output, job_events every event \
         (event_types [\"agent_message\"]: the agent's messages); job_reply continues the conversation."
    );
    let mut call = CallToolResult::success(vec![ContentBlock::text(structured.to_string()), ContentBlock::text(more)]);
    call.structured_content = Some(structured);
    call.is_error = Some(status == JobStatus::Failed);
    match serde_json::to_value(call) {
        Ok(Value::Object(object)) => Ok(object),
        other => Err(McpError::internal_error(format!("a tool result that is not an object: {other:?}"), None)),
    }
}

/// Each pending approval request as an elicitation form (MCP 2026-07-28
/// `elicitation/create`, form mode), keyed by its request id.
fn forms(pending: &[PendingApproval]) -> Result<InputRequests, McpError> {
    pending
        .iter()
        .map(|p| {
            // What it asks first: a client may show only the message's first lines.
            let message = format!(
                "Codex asks for approval ({}): {}\n(request {}, declined unanswered at {})\n{}",
                p.kind,
                request_summary(&p.request),
                p.request_id,
                p.deadline,
                serde_json::to_string_pretty(&p.request).unwrap_or_default()
            );
            let form = json!({
                "method": "elicitation/create",
                "params": {
                    "mode": "form",
                    "message": message,
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "decision": {
                                "type": "string",
                                "title": "Decision",
                                "description": "accept: this once; accept_for_session: this and the same again this session; \
                                    decline: the agent goes on without it; cancel: decline and end the turn",
                                "enum": ["accept", "accept_for_session", "decline", "cancel"],
                            }
                        },
                        "required": ["decision"],
                    },
                },
            });
            let request: InputRequest = serde_json::from_value(form)
                .map_err(|e| McpError::internal_error(format!("an elicitation form rmcp cannot carry: {e}"), None))?;
            Ok((p.request_id.clone(), request))
        })
        .collect()
}

/// The decision in an answered form; `None` for a form the user dismissed.
fn decision_of(key: &str, response: Value) -> Result<Option<ApprovalDecision>, McpError> {
    let bad = |why: String| McpError::invalid_params(format!("inputResponses[{key:?}]: {why}"), None);
    let answer: ElicitResult =
        serde_json::from_value(response).map_err(|e| bad(format!("not an elicitation result: {e}")))?;
    match answer.action {
        ElicitationAction::Accept => {
            let decision = answer.content.as_ref().and_then(|c| c.get("decision")).cloned();
            let Some(decision) = decision else {
                return Err(bad("an accepted form needs content.decision".into()));
            };
            serde_json::from_value(decision.clone()).map(Some).map_err(|_| {
                bad(format!("decision {decision} is not one of accept, accept_for_session, decline, cancel"))
            })
        }
        ElicitationAction::Decline => Ok(Some(ApprovalDecision::Decline)),
        _ => Ok(None),
    }
}

fn mcp_error(e: anyhow::Error) -> McpError {
    match e.downcast_ref::<InvalidInput>() {
        Some(bad) => McpError::invalid_params(bad.to_string(), None),
        None => McpError::internal_error(format!("{e:#}"), None),
    }
}
