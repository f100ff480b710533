//! The MCP server: one rmcp tool per [`JobHost`] method, over stdio
//! ([`serve_stdio`]) or streamable HTTP ([`http::serve_http`]).
//!
//! Results are structured JSON (`structuredContent`, with an `outputSchema`
//! on every tool), and every tool has annotations (read-only, destructive,
//! idempotent, open-world hints).
//! A request the host refuses (bad id, bad cursor, unsupported option, …) and
//! arguments that do not deserialize (wrong JSON type, unknown field) are tool
//! results with `isError: true` whose text names the bad value; an unknown tool
//! is a JSON-RPC error.

mod elicit;
pub mod http;
mod stdio;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CompleteRequestMethod, CompleteRequestParams,
    CompleteResult, GetTaskParams, GetTaskResult, Implementation, ListPromptsRequestMethod, ListPromptsResult,
    ListResourceTemplatesRequestMethod, ListResourceTemplatesResult, ListResourcesRequestMethod, ListResourcesResult,
    PaginatedRequestParams, ProgressNotificationParam, RequestMetaObject, ServerCapabilities, ServerConfig,
    UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Json, Peer, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};

use crate::JobHost;
use crate::host::{
    ApproveOutcome, ApproveRequest, CancelArgs, CancelOutcome, EventsPage, EventsRequest, JobList, ListRequest,
    NotificationPage, NotificationsArgs, ReplyArgs, StartRequest, Started, StatusArgs, StatusReport, WaitArgs,
    WaitOutcome,
};
use http::tokens::Caller;

/// How often `job_wait` reports progress to a caller that gave a progress token.
const WAIT_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A tool's result is `Result<Json<T>, String>`: structured JSON, or an error
/// message for `isError: true`. (Spelled out in each tool: rmcp's `#[tool]`
/// derives a tool's `outputSchema` from that form only.)
fn done<T>(result: anyhow::Result<T>) -> Result<Json<T>, String> {
    result.map(Json).map_err(|e| format!("{e:#}"))
}

/// The rmcp server handler.
#[derive(Clone)]
pub struct JobServer {
    host: Arc<JobHost>,
    elicitor: Arc<elicit::Elicitor>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl JobServer {
    /// A server over `host`.
    pub fn new(host: Arc<JobHost>) -> Self {
        JobServer { host, elicitor: Arc::default(), tool_router: Self::tool_router() }
    }

    /// Start a Codex job in the background.
    #[tool(
        description = "Start a Codex job in the background and return its job_id at once. \
        approval_policy: suggest (default, read-only sandbox), auto-edit (workspace-write), full-auto (no sandbox). \
        On backend app-server (the default where Codex has it) every command, file change and permission request of the agent \
        goes through the project's approval policy; what the policy hands on makes the job input_required. \
        Next: job_wait with the job_id (call it again while it returns timed_out: true; on input_required, job_status shows \
        pending_approvals and job_approve answers them), then job_status for the result.",
        annotations(
            title = "Start a Codex job",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn job_start(
        &self,
        Parameters(mut req): Parameters<StartRequest>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<Started>, String> {
        req.started_by = http::caller_of(&context.extensions).and_then(|c| c.name);
        let started = self.host.start(req).await;
        if let Ok(s) = &started {
            self.follow(&context, &s.job_id);
        }
        done(started)
    }

    /// A job's status, result and output tail.
    #[tool(
        description = "Status of a job: status, exit code, timestamps, prompt, cwd, Codex thread id, \
        the agent's last message (the result once completed) and the last lines of its output; the result fits max_chars (20,000). \
        Next: while status is queued or running, job_wait; when last_message_truncated is true, job_events with \
        event_types [\"agent_message\"] has the whole message; job_reply continues the conversation.",
        annotations(title = "Job status and result", read_only_hint = true, open_world_hint = false)
    )]
    async fn job_status(&self, Parameters(args): Parameters<StatusArgs>) -> Result<Json<StatusReport>, String> {
        let max_chars = Some(args.max_chars.unwrap_or(crate::host::RESULT_MAX_CHARS));
        done(self.host.off_runtime(move |host| host.status(&args.job_id, args.tail_lines, max_chars)).await)
    }

    /// Events after a cursor.
    #[tool(
        description = "A job's events after a cursor (default 0), oldest first, with the next cursor. \
        event_types filters by event type (item.completed, job.status, …) or item type (agent_message, command_execution, …); \
        truncate cuts long strings, but not type, id or *_id values (default 1024 chars, 0 = off). The project's policy components may filter \
        events and shorten or redact strings; the log on disk stays whole. A page fits max_chars (20,000). \
        Next: while has_more is true, call again with cursor = next_cursor.",
        annotations(title = "Job events", read_only_hint = true, open_world_hint = false)
    )]
    async fn job_events(&self, Parameters(mut req): Parameters<EventsRequest>) -> Result<Json<EventsPage>, String> {
        req.max_chars.get_or_insert(crate::host::RESULT_MAX_CHARS);
        done(self.host.off_runtime(move |host| host.events(&req)).await)
    }

    /// Continue the conversation.
    #[tool(
        description = "Continue a finished job's Codex conversation with a new prompt (a new turn of the same job, \
        the same Codex thread). The job must not be running. Next: job_wait with the same job_id.",
        annotations(
            title = "Reply to a job",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn job_reply(
        &self,
        Parameters(args): Parameters<ReplyArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<Started>, String> {
        let started = self.host.reply(&args.job_id, &args.prompt).await;
        if started.is_ok() {
            self.follow(&context, &args.job_id);
        }
        done(started)
    }

    /// Cancel a running job.
    #[tool(
        description = "Cancel a running job: SIGTERM to its processes, SIGKILL after 5 s. Returns once it has ended.",
        annotations(
            title = "Cancel a job",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn job_cancel(&self, Parameters(args): Parameters<CancelArgs>) -> Result<Json<CancelOutcome>, String> {
        done(self.host.cancel(&args.job_id).await)
    }

    /// Answer an approval request.
    #[tool(
        description = "Answer an approval request a job waits on (status input_required; job_status lists them in \
        pending_approvals, with the command, files or permissions asked for and the deadline). decision: accept (this once), \
        accept_for_session, decline (the agent goes on without it) or cancel (decline and end the turn). \
        Exactly one answer counts; a second is an error naming the first. Next: job_wait with the job_id.",
        annotations(
            title = "Answer an approval request",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn job_approve(
        &self,
        Parameters(req): Parameters<ApproveRequest>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<ApproveOutcome>, String> {
        let by = Caller::answering(http::caller_of(&context.extensions).as_ref(), "job_approve");
        done(self.host.off_runtime(move |host| host.approve(&req, &by)).await)
    }

    /// List jobs.
    #[tool(
        description = "List jobs, newest first; filter by status and by cwd (that directory or below). \
        Next: job_status with a job_id for its result.",
        annotations(title = "List jobs", read_only_hint = true, open_world_hint = false)
    )]
    async fn job_list(&self, Parameters(mut req): Parameters<ListRequest>) -> Result<Json<JobList>, String> {
        req.max_chars.get_or_insert(crate::host::RESULT_MAX_CHARS);
        done(self.host.list(&req).await)
    }

    /// Block until a job finishes.
    #[tool(
        description = "Wait until one of job_ids (none: any running job) has finished or waits for an approval \
        (listed in input_required: answer with job_approve), or timeout_s passes \
        (default 30, max 240, below MCP clients' own tool timeouts). When it returns timed_out: true, call job_wait again. \
        Sends progress notifications every second when the request has a progress token.",
        annotations(title = "Wait for jobs", read_only_hint = true, open_world_hint = false)
    )]
    async fn job_wait(
        &self,
        Parameters(args): Parameters<WaitArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<WaitOutcome>, String> {
        let max_chars = args.max_chars.unwrap_or(crate::host::RESULT_MAX_CHARS);
        let wait = self.host.wait(&args.job_ids, args.timeout_s, Some(max_chars));
        let Some(token) = meta.get_progress_token() else {
            return done(wait.await);
        };
        tokio::pin!(wait);
        let total = args.timeout_s.unwrap_or(30) as f64;
        let mut ticks = tokio::time::interval(WAIT_PROGRESS_EVERY);
        ticks.tick().await; // the first tick is immediate
        let mut elapsed = 0.0;
        loop {
            tokio::select! {
                result = &mut wait => return done(result),
                _ = ticks.tick() => {
                    elapsed += WAIT_PROGRESS_EVERY.as_secs_f64();
                    let note = ProgressNotificationParam::new(token.clone(), elapsed)
                        .with_total(total)
                        .with_message(format!("waited {elapsed:.0} s"));
                    let _ = peer.notify_progress(note).await;
                }
            }
        }
    }

    /// Read the global feed of finished turns.
    #[tool(
        description = "Non-blocking read of the feed of finished job turns (completed, failed, cancelled) \
        and of jobs that began to wait for an approval (input_required: answer with job_approve) \
        after a cursor (default 0); returns them and next_cursor. Next: keep next_cursor and pass it back to read only newer ones; \
        job_status with a job_id for its result.",
        annotations(title = "Finished turns", read_only_hint = true, open_world_hint = false)
    )]
    async fn job_notifications(
        &self,
        Parameters(args): Parameters<NotificationsArgs>,
    ) -> Result<Json<NotificationPage>, String> {
        done(self.host.off_runtime(move |host| host.notifications(args.cursor, args.limit)).await)
    }
}

impl JobServer {
    /// Puts the job's approval requests to the client as `elicitation/create`
    /// requests, unless the call becomes a task (whose `tasks/get` carries them).
    fn follow(&self, context: &RequestContext<RoleServer>, job_id: &str) {
        if !tasks::declared(context.client_capabilities().as_ref()) {
            self.elicitor.follow(&self.host, &context.peer, job_id);
        }
    }
}

/// The tools whose call becomes a task for a client that declares the tasks extension.
const TASK_TOOLS: [&str; 2] = ["job_start", "job_reply"];

#[tool_handler(router = self.tool_router)]
impl ServerHandler for JobServer {
    /// Every tool through its router; `job_start` and `job_reply` answer a
    /// request that declares the tasks extension with the turn's task.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let as_task =
            TASK_TOOLS.contains(&request.name.as_ref()) && tasks::declared(context.client_capabilities().as_ref());
        let response = self.tool_router.call(ToolCallContext::new(self, request, context)).await?;
        let CallToolResponse::Complete(result) = &response else { return Ok(response) };
        if !as_task || result.is_error == Some(true) {
            return Ok(response);
        }
        let Some(started) = result.structured_content.clone().and_then(|s| serde_json::from_value::<Started>(s).ok())
        else {
            return Ok(response);
        };
        // The turn runs whatever happens here: a task that cannot be read back still leaves the caller its job id.
        match tasks::created(&self.host, &started).await {
            Ok(task) => Ok(CallToolResponse::Task(task)),
            Err(e) => {
                tracing::warn!(job = %started.job_id, "answering with the job id, not a task: {}", e.message);
                Ok(response)
            }
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let can_elicit = context.client_capabilities().is_some_and(|c| c.elicitation.is_some());
        tasks::get(&self.host, request, can_elicit).await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let by = Caller::answering(http::caller_of(&context.extensions).as_ref(), tasks::ANSWERED_BY);
        tasks::update(&self.host, request, by).await
    }

    async fn cancel_task(&self, request: CancelTaskParams, _: RequestContext<RoleServer>) -> Result<(), McpError> {
        tasks::cancel(&self.host, request).await
    }

    // What the server does not declare it does not answer (rmcp 3.9 would
    // answer these with empty lists; the conformance suite counts that as
    // handling a capability left undeclared).
    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Err(McpError::method_not_found::<ListPromptsRequestMethod>())
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Err(McpError::method_not_found::<ListResourcesRequestMethod>())
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Err(McpError::method_not_found::<ListResourceTemplatesRequestMethod>())
    }

    async fn complete(
        &self,
        _: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Err(McpError::method_not_found::<CompleteRequestMethod>())
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tasks().build())
            .with_server_info(Implementation::new("codex-jobhost", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Runs OpenAI Codex CLI jobs in the background. job_start returns a job_id at once; \
                 then job_wait (blocks until done), job_status (result and output tail), job_events (paged with a cursor), \
                 job_reply (next turn), job_cancel, job_list, job_notifications. \
                 A request that declares the MCP tasks extension (io.modelcontextprotocol/tasks) gets job_start and \
                 job_reply as a task: the turn, with its result inlined in tasks/get once it ends.",
            )
    }
}

/// Serves MCP on stdin/stdout until the client disconnects. Indexing jobs and
/// locating Codex ([`JobHost::warm_up`]) run in the background so
/// `initialize` is answered at once.
/// When stdin closes, the server returns within [`EXIT_GRACE`], whatever is
/// in flight (a `job_wait` has nobody left to answer; all state is on disk).
pub async fn serve_stdio(host: Arc<JobHost>) -> anyhow::Result<()> {
    start_background_work(&host);
    let closed = Arc::new(tokio::sync::Notify::new());
    let service = JobServer::new(host).serve(stdio::open(Arc::clone(&closed))?).await?;
    tokio::select! {
        finished = service.waiting() => {
            finished?;
        }
        () = async {
            closed.notified().await;
            tokio::time::sleep(EXIT_GRACE).await;
        } => tracing::info!("stdin closed: exiting without waiting for calls in flight"),
    }
    Ok(())
}

/// What every server does beside answering: locates Codex, indexes the
/// home's jobs, and with `[jobs] retention_days` removes old ended jobs daily.
pub(crate) fn start_background_work(host: &Arc<JobHost>) {
    host.warm_up();
    let background = Arc::clone(host);
    tokio::spawn(async move {
        if let Err(e) = background.index_jobs().await {
            tracing::error!("cannot index jobs: {e:#}");
        }
        if background.config().retention.is_some() {
            let mut daily = tokio::time::interval(RETENTION_EVERY);
            loop {
                daily.tick().await; // the first tick is at once
                match background.off_runtime(|host| host.apply_retention()).await {
                    Ok(Some(report)) if !report.removed.is_empty() => {
                        tracing::info!(removed = report.removed.len(), freed_bytes = report.freed_bytes, "retention")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("retention: {e:#}"),
                }
            }
        }
    });
}

/// How often a server with `[jobs] retention_days` removes old ended jobs.
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How long responses already on their way may take once stdin has closed
/// (rmcp itself would wait up to 5 s for calls in flight).
pub const EXIT_GRACE: Duration = Duration::from_millis(200);
