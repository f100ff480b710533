//! `JobHost`: the one façade that the MCP tools and the CLI both call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};

use crate::backend::{CodexCli, exec};
use crate::config::HostConfig;
use crate::error::{InvalidInput, invalid};
use crate::job::dirwatch::DirWatch;
use crate::job::event::{POLICY_ERROR_EVENT, STATUS_EVENT, for_each_text};
use crate::job::id::quote_short;
use crate::job::process::{ProcessWatch, signal_group};
use crate::job::supervisor::{self, TurnCommand};
use crate::job::{
    Event, JobDir, JobId, JobMeta, JobOptions, JobStatus, JobStore, JobSummary, Notification, Registry, Turn,
};
use crate::policy::builtin::{self, Keep};
use crate::policy::{Decision, FilterOutcome, JobContext, Limits, Policies, PolicyFailure, PolicySet, Request};

/// Most output `job_status` returns, from the end of `output.log`.
const STATUS_TAIL_BYTES: u64 = 64 * 1024;
/// Most events `job_events` looks at in one call, so a narrow `event_types`
/// filter on a huge log still answers quickly (the cursor says where it stopped).
const EVENTS_SCAN_MAX: u64 = 10_000;
/// Longest string (bytes) `job_events` remembers the truncation of within one call.
const RECURRING_STRING_MAX: usize = 256;
/// Longest `job_wait`.
pub const WAIT_MAX_S: u64 = 300;
/// A `queued` job with no supervisor pid younger than this may be starting
/// in another host process; older ones are failed at start-up.
const QUEUED_GRACE: Duration = Duration::from_secs(30);

/// `job_start` arguments.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// What Codex should do.
    pub prompt: String,
    /// Absolute path of an existing directory the agent works in.
    pub cwd: String,
    /// Model name (`codex exec --model`).
    pub model: Option<String>,
    /// Codex configuration profile (`--profile`).
    pub profile: Option<String>,
    /// `read-only`, `workspace-write` or `danger-full-access`; overrides the
    /// sandbox implied by `approval_policy`.
    pub sandbox: Option<String>,
    /// `suggest` (read-only sandbox; the default), `auto-edit` (workspace-write
    /// sandbox) or `full-auto` (no sandbox, no approvals).
    pub approval_policy: Option<String>,
    /// Codex configuration overrides, each `key=value` as for `codex -c`
    /// (the value is TOML, e.g. `model_reasoning_effort="high"`).
    #[serde(default)]
    pub config: Vec<String>,
    /// Further arguments for `codex exec`, passed as given.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Let Codex run outside a Git repository.
    #[serde(default)]
    pub skip_git_repo_check: bool,
    /// Stop a turn after this many seconds without output; absent: never.
    pub idle_timeout_s: Option<u64>,
}

/// What `job_start` and `job_reply` return at once.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Started {
    /// The job id, for every other tool.
    pub job_id: String,
    /// `queued`: the supervisor is starting Codex.
    pub status: JobStatus,
    /// The turn just started, from 0.
    pub turn: u32,
    /// Pass to `job_events` to read this turn's events from its first one.
    pub cursor: u64,
}

/// `job_status` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatusReport {
    /// The job id.
    pub job_id: String,
    /// Its status.
    pub status: JobStatus,
    /// The current turn, from 0.
    pub turn: u32,
    /// The agent's exit status for the current turn, once it exited.
    pub exit_code: Option<i32>,
    /// Why the turn failed.
    pub error: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When the current turn started, RFC 3339 UTC.
    pub started_at: Option<String>,
    /// When the current turn ended, RFC 3339 UTC.
    pub finished_at: Option<String>,
    /// The first turn's prompt.
    pub prompt: String,
    /// The agent's working directory.
    pub cwd: PathBuf,
    /// Codex's thread id.
    pub thread_id: Option<String>,
    /// The agent's last message: the result, once the turn completed.
    pub last_message: Option<String>,
    /// Token usage of the last completed turn, as Codex reported it.
    pub usage: Option<Value>,
    /// Number of events so far: the cursor after the last one.
    pub event_count: u64,
    /// The end of the agent's raw output: the last `tail_lines` lines, at most
    /// 8,000 characters, shortened by the project's truncation policies.
    pub output_tail: String,
    /// Whether older output was left out of `output_tail`.
    pub output_truncated: bool,
}

/// `job_events` arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsRequest {
    /// The job id.
    pub job_id: String,
    /// Read events with `seq >= cursor` (default 0); pass back `next_cursor`.
    pub cursor: Option<u64>,
    /// Most events to return, 1 to 1000 (default 20).
    pub limit: Option<usize>,
    /// Only these types: an event `type` (`item.completed`, `job.status`, …)
    /// or an item type (`agent_message`, `command_execution`, …).
    pub event_types: Option<Vec<String>>,
    /// Cut each string of text in an event (not `type`, `id`, `*_id`) to this many characters (default 1024; 0: no cut).
    pub truncate: Option<usize>,
}

/// `job_events` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventsPage {
    /// The job id.
    pub job_id: String,
    /// The job's status now.
    pub status: JobStatus,
    /// Events in `seq` order, as stored in `events.jsonl`.
    pub events: Vec<EventView>,
    /// The cursor for the next call.
    pub next_cursor: u64,
    /// Whether events after `next_cursor` already exist.
    pub has_more: bool,
}

/// An [`Event`] as returned to callers.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventView {
    /// Position in the job's log, from 0.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub ts: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload (for Codex events, the object `codex exec --json` printed).
    pub data: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView { seq: e.seq, ts: e.ts.to_string(), kind: e.kind, data: e.data }
    }
}

/// `job_list` arguments.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Only jobs with this status.
    pub status: Option<String>,
    /// Only jobs whose working directory is this absolute path or inside it.
    pub cwd: Option<String>,
    /// Most jobs to return, 1 to 1000 (default 50).
    pub limit: Option<usize>,
}

/// `job_list` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobSummary>,
}

/// `job_wait` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct WaitOutcome {
    /// The waited-for jobs that are in a terminal status.
    pub finished: Vec<JobSummary>,
    /// Those still going.
    pub pending: Vec<JobSummary>,
    /// Whether the time ran out before any finished.
    pub timed_out: bool,
}

/// `job_notifications` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NotificationPage {
    /// Turns that ended, oldest first.
    pub notifications: Vec<Notification>,
    /// Pass to the next `job_notifications` call.
    pub next_cursor: u64,
}

/// `job_cancel` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CancelOutcome {
    /// The job id.
    pub job_id: String,
    /// Its status after the cancel (normally `cancelled`).
    pub status: JobStatus,
    /// Whether SIGKILL was needed after the grace period.
    pub killed: bool,
}

/// A supervisor this host watches.
#[derive(Clone, Copy, Debug)]
struct Live {
    pid: u32,
    turn: u32,
    cancel_requested: bool,
}

/// The job host: starts, reads, waits for, replies to and cancels jobs.
/// Cheap to share (`Arc<JobHost>`); all methods take `&self`.
pub struct JobHost {
    config: HostConfig,
    store: JobStore,
    registry: Registry,
    codex: OnceCell<CodexCli>,
    policies: Policies,
    live: Mutex<HashMap<JobId, Live>>,
    /// Serializes the moves that begin or end a turn, so two replies or a
    /// reply and a cancel cannot both act on one job.
    turn_lock: tokio::sync::Mutex<()>,
    indexed: watch::Sender<bool>,
}

impl JobHost {
    /// Opens the job home. Does not scan jobs or look for Codex yet, so a
    /// server answers `initialize` at once; call [`JobHost::index_jobs`] and
    /// [`JobHost::codex`] in the background.
    pub fn open(config: HostConfig) -> Result<Arc<Self>> {
        let store = JobStore::open(&config.home)?;
        let policies = Policies::new(&config.home);
        Ok(Arc::new(JobHost {
            config,
            store,
            registry: Registry::default(),
            codex: OnceCell::new(),
            policies,
            live: Mutex::default(),
            turn_lock: tokio::sync::Mutex::new(()),
            indexed: watch::Sender::new(false),
        }))
    }

    /// The configuration in force.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The policies: per-project sets and loaded components.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The Codex CLI, located and probed on first use.
    pub async fn codex(&self) -> Result<&CodexCli> {
        self.codex.get_or_try_init(|| CodexCli::locate(self.config.codex_bin.as_deref())).await
    }

    /// Reads every job on disk into the index and re-attaches to those still
    /// running: their supervisors outlived an earlier host. A job whose
    /// supervisor is gone without having recorded an exit becomes `failed`.
    pub async fn index_jobs(self: &Arc<Self>) -> Result<()> {
        for id in self.store.job_ids()? {
            if let Err(e) = self.index_job(id).await {
                tracing::warn!(job = %id, "skipping job: {e:#}");
            }
        }
        self.indexed.send_replace(true);
        Ok(())
    }

    async fn index_job(self: &Arc<Self>, id: JobId) -> Result<()> {
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        self.registry.update(&meta);
        if meta.status.is_terminal() {
            return Ok(());
        }
        let watch = match meta.pid {
            Some(pid) => ProcessWatch::open(pid)?.filter(|w| w.command_line_contains(&["supervise", &id.to_string()])),
            None if Timestamp::now().duration_since(meta.created_at).unsigned_abs() < QUEUED_GRACE => {
                self.follow_starting(&job, meta);
                return Ok(());
            }
            None => None,
        };
        match watch {
            Some(watch) => {
                tracing::info!(job = %id, pid = watch.pid(), "re-attached to a running job");
                self.watch(id, meta.turn, watch);
            }
            None => self.settle(id, meta.turn).await?,
        }
        Ok(())
    }

    /// A `queued` job with no supervisor pid yet, probably being started by
    /// another host process: wait for `meta.json` to name its supervisor (or
    /// an end), then watch it; after the grace period, settle it as failed.
    fn follow_starting(self: &Arc<Self>, job: &JobDir, queued: JobMeta) {
        let host = Arc::clone(self);
        let dir = job.path().to_path_buf();
        let (id, turn) = (queued.id, queued.turn);
        let deadline = tokio::time::Instant::now()
            + QUEUED_GRACE.saturating_sub(Timestamp::now().duration_since(queued.created_at).unsigned_abs());
        tokio::spawn(async move {
            let followed = async {
                let changes = DirWatch::open(&dir)?;
                loop {
                    let meta = host.store.job(id)?.read_meta()?;
                    if meta.turn != turn || meta.status.is_terminal() {
                        host.registry.update(&meta);
                        return Ok(());
                    }
                    if let Some(pid) = meta.pid {
                        match ProcessWatch::open(pid)? {
                            Some(watch) => host.watch(id, turn, watch),
                            None => host.settle(id, turn).await?,
                        }
                        return Ok(());
                    }
                    if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                        return host.settle(id, turn).await;
                    }
                }
            };
            let result: Result<()> = followed.await;
            if let Err(e) = result {
                tracing::warn!(job = %id, "cannot follow a starting job: {e:#}");
            }
        });
    }

    async fn wait_indexed(&self) {
        let mut rx = self.indexed.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Starts a job: validates everything, creates its directory, starts its
    /// supervisor, and returns without waiting for Codex.
    ///
    /// Errors: [`InvalidInput`] for an empty prompt, a `cwd` that is not an
    /// absolute path to an existing directory, an option the installed Codex
    /// does not support, or a launch the project's approval policies refuse
    /// (or cannot be loaded to judge); nothing is started then.
    pub async fn start(self: &Arc<Self>, req: StartRequest) -> Result<Started> {
        if req.prompt.trim().is_empty() {
            return Err(invalid("invalid prompt: expected a non-empty instruction for Codex"));
        }
        let cwd = checked_cwd(&req.cwd)?;
        let options = JobOptions {
            model: req.model,
            profile: req.profile,
            sandbox: req.sandbox,
            approval_policy: req.approval_policy.unwrap_or_else(|| "suggest".to_owned()),
            config: req.config,
            extra_args: req.extra_args,
            skip_git_repo_check: req.skip_git_repo_check,
            idle_timeout_s: req.idle_timeout_s,
        };
        let cli = self.codex().await?;
        exec::validate(&options, cli)?;
        let id = JobId::new();
        // Off the async workers: a first load compiles the components (~0.2 s).
        let (host, judged) = (Arc::clone(self), (cwd.clone(), req.prompt.clone(), options.clone()));
        tokio::task::spawn_blocking(move || host.judge_launch(id, &judged.0, &judged.1, &judged.2)).await??;
        let meta = JobMeta::queued(id, &req.prompt, cwd, exec::BACKEND, options, cli.located.clone());
        let args = exec::command_args(&meta, &req.prompt, cli)?;
        let job = self.store.create(&meta)?;
        self.launch_turn(job, meta, &req.prompt, args, cli)
    }

    /// Asks the project's approval policies whether this launch may go ahead.
    ///
    /// Errors: [`InvalidInput`] with the policy's reason when it declines,
    /// cancels or asks (a launch has nobody to ask yet), or when a policy
    /// cannot be loaded.
    fn judge_launch(&self, id: JobId, cwd: &Path, prompt: &str, options: &JobOptions) -> Result<()> {
        let set = self.policies.for_cwd(cwd).map_err(|e| invalid(format!("job_start refused: {e:#}")))?;
        let ctx = JobContext {
            job_id: id.to_string(),
            backend: exec::BACKEND.to_owned(),
            cwd: cwd.display().to_string(),
            project_root: set.project_root.as_ref().map(|p| p.display().to_string()),
            prompt: prompt.to_owned(),
        };
        let request = Request::Launch {
            approval_mode: options.approval_policy.clone(),
            sandbox: options.sandbox.clone(),
            model: options.model.clone(),
        };
        let verdict = set.decide(&ctx, &request);
        let by = verdict.decided_by.as_deref().unwrap_or("built-in");
        match verdict.decision {
            Decision::Accept | Decision::AcceptForSession => Ok(()),
            Decision::Decline(reason) | Decision::Cancel(reason) => {
                Err(invalid(format!("job_start refused by policy {by}: {reason}")))
            }
            Decision::Ask => Err(invalid(format!(
                "job_start refused: policy {by} asks for approval of this launch, and a launch cannot wait for one"
            ))),
        }
    }

    /// Continues a finished job's Codex conversation with a new turn
    /// (`codex exec resume <thread_id>`): same id, same event log.
    ///
    /// Errors: [`InvalidInput`] when the job is still going, has no thread id,
    /// or the prompt is empty.
    pub async fn reply(self: &Arc<Self>, job_id: &str, prompt: &str) -> Result<Started> {
        let id = JobId::parse(job_id)?;
        if prompt.trim().is_empty() {
            return Err(invalid("invalid prompt: expected a non-empty message for Codex"));
        }
        let job = self.store.job(id)?;
        let cli = self.codex().await?;
        let _guard = self.turn_lock.lock().await;
        let mut meta = job.read_meta()?;
        if !meta.status.can_move_to(JobStatus::Queued, Turn::Next) {
            return Err(invalid(format!(
                "job {id} is {}: reply once its turn has ended (job_wait), or cancel it first",
                meta.status
            )));
        }
        meta.turn += 1;
        meta.status = JobStatus::Queued;
        meta.pid = None;
        meta.started_at = None;
        meta.finished_at = None;
        meta.exit_code = None;
        meta.error = None;
        let args = exec::command_args(&meta, prompt, cli)?;
        job.write_meta(&meta)?;
        self.launch_turn(job, meta, prompt, args, cli)
    }

    /// Records the new turn as `queued` and starts its supervisor in the
    /// background: the caller gets the job id without waiting for a process
    /// to start. A supervisor that cannot start makes the turn `failed`.
    fn launch_turn(
        self: &Arc<Self>,
        job: JobDir,
        meta: JobMeta,
        prompt: &str,
        args: Vec<std::ffi::OsString>,
        cli: &CodexCli,
    ) -> Result<Started> {
        let cursor = job.event_count()?;
        job.event_writer()?.status(&meta, json!({"prompt": prompt}))?;
        self.registry.update(&meta);
        let started = Started { job_id: meta.id.to_string(), status: meta.status, turn: meta.turn, cursor };
        let turn =
            TurnCommand { home: self.store.root().to_path_buf(), job: meta.id, program: cli.program.clone(), args };
        let env = cli.env.clone();
        let host = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = host.turn_lock.lock().await;
            let pid = supervisor::spawn(&host.config.host_exe, &job, &turn, &env);
            let watch = pid.as_ref().ok().and_then(|pid| ProcessWatch::open(*pid).ok().flatten());
            match (pid, watch) {
                (_, Some(watch)) => host.watch(meta.id, meta.turn, watch),
                (Err(e), None) => {
                    let mut meta = meta;
                    let failed = job.event_writer().and_then(|mut events| {
                        supervisor::finish(
                            &host.store,
                            &job,
                            &mut meta,
                            &mut events,
                            JobStatus::Failed,
                            None,
                            Some(format!("{e:#}")),
                        )
                    });
                    if let Err(e) = failed {
                        tracing::error!(job = %meta.id, "cannot record a failed start: {e:#}");
                    }
                    host.registry.update(&meta);
                }
                // Started and already gone: settle with what it recorded.
                (Ok(_), None) => {
                    drop(_guard);
                    if let Err(e) = host.settle(meta.id, meta.turn).await {
                        tracing::error!(job = %meta.id, "{e:#}");
                    }
                }
            }
        });
        Ok(started)
    }

    /// Follows a supervisor until it exits, then settles the job.
    fn watch(self: &Arc<Self>, id: JobId, turn: u32, watch: ProcessWatch) {
        self.live.lock().unwrap().insert(id, Live { pid: watch.pid(), turn, cancel_requested: false });
        let host = Arc::clone(self);
        tokio::spawn(async move {
            watch.exited().await;
            if let Err(e) = host.settle(id, turn).await {
                tracing::error!(job = %id, "cannot record the end of turn {turn}: {e:#}");
            }
        });
    }

    /// After a turn's supervisor exited: index what it recorded, or record the
    /// end it did not (`cancelled` if a cancel was asked for, else `failed`).
    async fn settle(&self, id: JobId, turn: u32) -> Result<()> {
        let _guard = self.turn_lock.lock().await;
        let live = {
            let mut live = self.live.lock().unwrap();
            match live.get(&id) {
                Some(l) if l.turn == turn => live.remove(&id),
                _ => None,
            }
        };
        let job = self.store.job(id)?;
        let mut meta = job.read_meta()?;
        if meta.turn == turn && !meta.status.is_terminal() {
            let cancelled = live.is_some_and(|l| l.cancel_requested);
            let (status, error) = if cancelled {
                (JobStatus::Cancelled, "cancelled by job_cancel".to_owned())
            } else {
                let pid = meta.pid.map_or_else(|| "never started".to_owned(), |p| format!("pid {p}"));
                (
                    JobStatus::Failed,
                    format!(
                        "the job's supervisor ({pid}) exited without recording how Codex ended; it was killed or crashed (see {}/supervisor.log)",
                        job.path().display()
                    ),
                )
            };
            let mut events = job.event_writer()?;
            supervisor::finish(&self.store, &job, &mut meta, &mut events, status, None, Some(error))?;
        }
        self.registry.update(&meta);
        Ok(())
    }

    /// Cancels a job's running turn: SIGTERM to its process group, SIGKILL
    /// after the grace period, and waits until it has ended.
    ///
    /// Errors: [`InvalidInput`] when the job has already ended.
    pub async fn cancel(self: &Arc<Self>, job_id: &str) -> Result<CancelOutcome> {
        let id = JobId::parse(job_id)?;
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        if meta.status.is_terminal() {
            return Err(invalid(format!("job {id} is already {}; nothing to cancel", meta.status)));
        }
        let pid = {
            let mut live = self.live.lock().unwrap();
            let entry =
                live.entry(id).or_insert(Live { pid: meta.pid.unwrap_or(0), turn: meta.turn, cancel_requested: false });
            entry.cancel_requested = true;
            entry.pid
        };
        if pid == 0 {
            self.live.lock().unwrap().remove(&id);
            return Err(invalid(format!(
                "job {id} is queued and its supervisor has not started yet; try again in a moment"
            )));
        }
        let watch = ProcessWatch::open(pid)?;
        signal_group(pid, rustix::process::Signal::TERM)?;
        let mut killed = false;
        if let Some(watch) = &watch {
            if tokio::time::timeout(self.config.cancel_grace, watch.exited()).await.is_err() {
                signal_group(pid, rustix::process::Signal::KILL)?;
                killed = true;
                watch.exited().await;
            }
        }
        // Whoever settles first (this call or the supervisor's watcher) records the end.
        self.settle(id, meta.turn).await?;
        let meta = job.read_meta()?;
        Ok(CancelOutcome { job_id: id.to_string(), status: meta.status, killed })
    }

    /// The job's state, its last message and the tail of its output.
    ///
    /// Errors: [`InvalidInput`] for a malformed or unknown id.
    pub fn status(&self, job_id: &str, tail_lines: Option<usize>) -> Result<StatusReport> {
        let id = JobId::parse(job_id)?;
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        let tail_lines = tail_lines.unwrap_or(100);
        let (raw_tail, omitted) = job.tail_output(tail_lines, STATUS_TAIL_BYTES)?;
        let (set, ctx) = self.policy_for(&meta)?;
        let limits = Limits { max_lines: u32::try_from(tail_lines).unwrap_or(u32::MAX), ..builtin::OUTPUT_LIMITS };
        let (output_tail, failures) = set.truncate(&ctx, &raw_tail, limits, Keep::Tail);
        self.record_policy_failures(&job, failures);
        let output_truncated = omitted || output_tail != raw_tail;
        Ok(StatusReport {
            job_id: id.to_string(),
            status: meta.status,
            turn: meta.turn,
            exit_code: meta.exit_code,
            error: meta.error,
            created_at: meta.created_at.to_string(),
            started_at: meta.started_at.map(|t| t.to_string()),
            finished_at: meta.finished_at.map(|t| t.to_string()),
            prompt: meta.prompt,
            cwd: meta.cwd,
            thread_id: meta.thread_id,
            last_message: meta.last_message,
            usage: meta.usage,
            event_count: job.event_count()?,
            output_tail,
            output_truncated,
        })
    }

    /// Events after a cursor: filtered by type, then by the project's event
    /// filters, with every string of text (see [`for_each_text`]) shortened by its truncation policies (limit:
    /// `truncate` characters, default 1024; 0 = no length limit, the policies still run).
    ///
    /// Errors: [`InvalidInput`] for a bad id, a cursor past the end, or a limit outside 1..=1000;
    /// a policy file or component that cannot be loaded.
    pub fn events(&self, req: &EventsRequest) -> Result<EventsPage> {
        let id = JobId::parse(&req.job_id)?;
        let limit = req.limit.unwrap_or(20);
        if !(1..=1000).contains(&limit) {
            return Err(invalid(format!("invalid limit {limit}: expected 1 to 1000")));
        }
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        let (set, ctx) = self.policy_for(&meta)?;
        let types = req.event_types.as_deref().unwrap_or_default();
        let limits = Limits {
            max_chars: match req.truncate.unwrap_or(1024) {
                0 => u32::MAX,
                n => u32::try_from(n).unwrap_or(u32::MAX),
            },
            max_lines: u32::MAX,
        };
        let mut failures = Vec::new();
        // Truncation is a function of the text and the limits. Short strings
        // (commands, statuses) recur in almost every event, so each is cut once a
        // call; long ones (output, messages) rarely recur and are not worth hashing.
        let mut cut_once: HashMap<String, String> = HashMap::new();
        let (events, next_cursor) =
            job.read_events(req.cursor.unwrap_or(0), limit, EVENTS_SCAN_MAX, set.has_filters(), |mut e, data| {
                if !types.is_empty() && !types.iter().any(|t| e.matches_type(t)) {
                    return None;
                }
                if let Some(data) = data {
                    let (outcome, failed) = set.filter(&ctx, &e.kind, data);
                    failures.extend(failed);
                    match outcome {
                        FilterOutcome::Keep => {}
                        FilterOutcome::Replace(kind, data) => (e.kind, e.data) = (kind, data),
                        FilterOutcome::Drop => return None,
                    }
                }
                for_each_text(&mut e.data, &mut |text| {
                    if !set.has_truncations() {
                        *text = builtin::truncate(text, limits, Keep::Head);
                        return;
                    }
                    let recurs = text.len() <= RECURRING_STRING_MAX;
                    if recurs && let Some(cut) = cut_once.get(text.as_str()) {
                        text.clone_from(cut);
                        return;
                    }
                    let (cut, failed) = set.truncate(&ctx, text, limits, Keep::Head);
                    failures.extend(failed);
                    if recurs {
                        cut_once.insert(std::mem::replace(text, cut.clone()), cut);
                    } else {
                        *text = cut;
                    }
                });
                Some(e)
            })?;
        self.record_policy_failures(&job, failures);
        let has_more = next_cursor < job.event_count()?;
        Ok(EventsPage {
            job_id: id.to_string(),
            status: meta.status,
            events: events.into_iter().map(EventView::from).collect(),
            next_cursor,
            has_more,
        })
    }

    /// The policy set in force for a job, and the job as policies see it.
    fn policy_for(&self, meta: &JobMeta) -> Result<(Arc<PolicySet>, JobContext)> {
        let set = self.policies.for_cwd(&meta.cwd)?;
        let ctx = JobContext {
            job_id: meta.id.to_string(),
            backend: meta.backend.clone(),
            cwd: meta.cwd.display().to_string(),
            project_root: set.project_root.as_ref().map(|p| p.display().to_string()),
            prompt: meta.prompt.clone(),
        };
        Ok((set, ctx))
    }

    /// Records each failed component once as a `policy_error` event on the job.
    fn record_policy_failures(&self, job: &JobDir, mut failures: Vec<PolicyFailure>) {
        // Once per component and error, however many events a failing component saw.
        let mut seen = std::collections::HashSet::new();
        failures.retain(|f| seen.insert((f.component.clone(), f.error.clone())));
        if failures.is_empty() {
            return;
        }
        let recorded = job.event_writer().and_then(|mut events| {
            failures.iter().try_for_each(|f| events.append(POLICY_ERROR_EVENT, serde_json::to_value(f)?).map(drop))
        });
        if let Err(e) = recorded {
            tracing::error!(job = %job.id(), "cannot record a policy failure: {e:#}");
        }
    }

    /// Jobs newest first, optionally by status and working directory.
    ///
    /// Errors: [`InvalidInput`] for an unknown status, a relative cwd or a limit outside 1..=1000.
    pub async fn list(&self, req: &ListRequest) -> Result<JobList> {
        let status = req.status.as_deref().map(JobStatus::parse).transpose()?;
        let cwd = match &req.cwd {
            Some(c) if !Path::new(c).is_absolute() => {
                return Err(invalid(format!("invalid cwd {}: expected an absolute path", quote_short(c))));
            }
            Some(c) => Some(PathBuf::from(c)),
            None => None,
        };
        let limit = req.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(invalid(format!("invalid limit {limit}: expected 1 to 1000")));
        }
        self.wait_indexed().await;
        let jobs = self
            .registry
            .list(limit, |j| status.is_none_or(|s| j.status == s) && cwd.as_ref().is_none_or(|c| j.cwd.starts_with(c)));
        Ok(JobList { jobs })
    }

    /// Waits until one of `job_ids` (none: any job running when called) is in a
    /// terminal status, or `timeout_s` (default 30, at most 300) passes.
    /// Wakes on the supervisor's exit, never by polling.
    ///
    /// Errors: [`InvalidInput`] for a bad or unknown id, or a timeout over 300 s.
    pub async fn wait(self: &Arc<Self>, job_ids: &[String], timeout_s: Option<u64>) -> Result<WaitOutcome> {
        let timeout_s = timeout_s.unwrap_or(30);
        if timeout_s > WAIT_MAX_S {
            return Err(invalid(format!("invalid timeout_s {timeout_s}: expected 0 to {WAIT_MAX_S} seconds")));
        }
        let ids = job_ids.iter().map(|s| JobId::parse(s)).collect::<Result<Vec<_>, InvalidInput>>()?;
        for id in &ids {
            self.store.job(*id)?;
        }
        let mut changes = self.registry.subscribe();
        self.wait_indexed().await;
        // A job another host process started since this one indexed: follow it too.
        for id in &ids {
            if self.registry.get(*id).is_none() {
                self.index_job(*id).await?;
            }
        }
        let ids = if ids.is_empty() {
            self.registry
                .list(usize::MAX, |j| !j.status.is_terminal())
                .iter()
                .filter_map(|j| JobId::parse(&j.job_id).ok())
                .collect()
        } else {
            ids
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
        loop {
            changes.borrow_and_update();
            let summaries: Vec<JobSummary> = ids.iter().filter_map(|id| self.registry.get(*id)).collect();
            let (finished, pending): (Vec<_>, Vec<_>) = summaries.into_iter().partition(|j| j.status.is_terminal());
            if !finished.is_empty() || pending.is_empty() {
                return Ok(WaitOutcome { finished, pending, timed_out: false });
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                return Ok(WaitOutcome { finished, pending, timed_out: true });
            }
        }
    }

    /// Turns that ended after `cursor` (a byte offset into the feed; 0 = from the start).
    pub fn notifications(&self, cursor: Option<u64>, limit: Option<usize>) -> Result<NotificationPage> {
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(invalid(format!("invalid limit {limit}: expected 1 to 1000")));
        }
        let (notes, next_cursor) = self.store.read_notifications(cursor.unwrap_or(0), limit)?;
        let mut notifications = Vec::with_capacity(notes.len());
        for note in notes {
            if let Some(note) = self.filter_notification(note)? {
                notifications.push(note);
            }
        }
        Ok(NotificationPage { notifications, next_cursor })
    }

    /// Passes a notification through its job's event filters as a `job.status`
    /// event. A replacement that is not a notification keeps the original.
    fn filter_notification(&self, note: Notification) -> Result<Option<Notification>> {
        let Ok(job) = JobId::parse(&note.job_id).map_err(anyhow::Error::from).and_then(|id| self.store.job(id)) else {
            return Ok(Some(note)); // its job was deleted; nothing to filter by
        };
        let (set, ctx) = self.policy_for(&job.read_meta()?)?;
        if !set.has_filters() {
            return Ok(Some(note));
        }
        let (outcome, mut failures) = set.filter(&ctx, STATUS_EVENT, &serde_json::to_string(&note)?);
        let shown = match outcome {
            FilterOutcome::Keep => Some(note),
            FilterOutcome::Drop => None,
            FilterOutcome::Replace(_, payload) => match serde_json::from_value::<Notification>(payload) {
                Ok(replaced) => Some(replaced),
                Err(e) => {
                    if let Some(last) =
                        set.last_filter_failure(format!("replaced a notification with something that is not one: {e}"))
                    {
                        failures.push(last);
                    }
                    Some(note)
                }
            },
        };
        self.record_policy_failures(&job, failures);
        Ok(shown)
    }

    /// Reads `output.log` from byte `offset`: at most `max` bytes and the offset after them
    /// (for `jobs logs --follow`).
    pub fn output_since(&self, job_id: &str, offset: u64, max: usize) -> Result<(Vec<u8>, u64)> {
        let job = self.store.job(JobId::parse(job_id)?)?;
        job.read_output(offset, max)
    }
}

/// `cwd` as given, once it is known to be an absolute path to a directory.
fn checked_cwd(cwd: &str) -> Result<PathBuf, InvalidInput> {
    let path = Path::new(cwd);
    let shown = quote_short(cwd);
    if cwd.is_empty() || !path.is_absolute() {
        return Err(InvalidInput::new(format!("invalid cwd {shown}: expected an absolute path")));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(path.to_path_buf()),
        Ok(_) => Err(InvalidInput::new(format!("invalid cwd {shown}: not a directory"))),
        Err(e) => Err(InvalidInput::new(format!("invalid cwd {shown}: {e}"))),
    }
}
