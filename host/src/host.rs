//! `JobHost`: the one façade that the MCP tools and the CLI both call.

mod approvals;
mod gc;
mod lifecycle;
mod shape;

pub use approvals::{ApproveOutcome, ApproveRequest};
pub use gc::GcReport;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};

use crate::backend::{self, CodexCli, exec};
use crate::config::HostConfig;
use crate::error::{InvalidInput, invalid};
use crate::job::approval::{self, PendingApproval};
use crate::job::dirwatch::DirWatches;
use crate::job::end::record_end_locked;
use crate::job::event::{STATUS_EVENT, for_each_text};
use crate::job::id::quote_short;
use crate::job::{
    BackendKind, End, Event, JobDir, JobId, JobMeta, JobOptions, JobStatus, JobStore, JobSummary, Notification, Queue,
    Registry, TurnSettings, TurnSpec,
};
use crate::policy::builtin::{self, Keep};
use crate::policy::{
    Decision, FilterOutcome, JobContext, Launch, Limits, PinnedSet, Policies, PolicyFailure, PolicySet, Request,
};

/// Most output `job_status` returns, from the end of `output.log`.
const STATUS_TAIL_BYTES: u64 = 64 * 1024;
/// Most events `job_events` looks at in one call, so a narrow `event_types`
/// filter on a huge log still answers quickly (the cursor says where it stopped).
const EVENTS_SCAN_MAX: u64 = 10_000;
/// Longest string (bytes) `job_events` remembers the truncation of within one call.
const RECURRING_STRING_MAX: usize = 256;
/// Longest `job_wait`, in seconds: below MCP clients' own tool timeouts
/// (Codex: 300 s by default, and progress notifications do not extend it).
pub const WAIT_MAX_S: u64 = 240;
/// Largest prompt `job_start` and `job_reply` accept, in bytes. It reaches
/// Codex on its stdin (never a command line), so only this limit applies.
pub const PROMPT_MAX_BYTES: usize = 1 << 20;

/// `job_start` arguments.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::args::optional_without_null)]
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
    #[schemars(extend("enum" = ["read-only", "workspace-write", "danger-full-access"]))]
    pub sandbox: Option<String>,
    /// `suggest` (read-only sandbox; the default), `auto-edit` (workspace-write
    /// sandbox) or `full-auto` (no sandbox, no approvals).
    #[schemars(extend("enum" = ["suggest", "auto-edit", "full-auto"]))]
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
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub idle_timeout_s: Option<u64>,
    /// How Codex is driven: `app-server` (every command, file change and
    /// permission request of the agent goes through the project's approval
    /// policies), `exec` (`codex exec --json`: the policies judge only the
    /// launch), or `auto` (the default: `app-server` where the installed
    /// Codex has it).
    #[schemars(extend("enum" = ["auto", "exec", "app-server"]))]
    pub backend: Option<String>,
    /// Seconds an approval request handed to the caller waits for
    /// `job_approve` before it is declined; absent: the user's
    /// `[jobs] approval_timeout_s`, else 900.
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub approval_timeout_s: Option<u64>,
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

/// `job_status` result. Fields come in this order, the short ones that say
/// where the job stands first and the long texts last, so a client that shows
/// its model only the start of a result still shows the status.
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
    /// For a queued turn, its place in the home's queue: 1 starts next (when
    /// fewer than `max_running` turns run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// Approval requests of the current turn waiting for `job_approve`
    /// (the job is `input_required` while there are any).
    pub pending_approvals: Vec<PendingApproval>,
    /// The backend that runs the job: `app-server` or `exec`.
    pub backend: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When the current turn started, RFC 3339 UTC.
    pub started_at: Option<String>,
    /// When the current turn ended, RFC 3339 UTC.
    pub finished_at: Option<String>,
    /// The agent's working directory.
    pub cwd: PathBuf,
    /// Codex's thread id.
    pub thread_id: Option<String>,
    /// Token usage of the last completed turn, as Codex reported it.
    pub usage: Option<Value>,
    /// Number of events so far: the cursor after the last one.
    pub event_count: u64,
    /// The policy components the job runs under, pinned at its start, in the
    /// order they run (empty: the built-in defaults).
    pub policies: Vec<PolicyInForce>,
    /// The agent's last message: the result, once the turn completed. Cut to
    /// fit the result's `max_chars` (see `last_message_truncated`).
    pub last_message: Option<String>,
    /// Whether `last_message` was cut; the whole message is the last
    /// `agent_message` item in `job_events`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last_message_truncated: bool,
    /// The first turn's prompt (cut to 1,000 characters when the result
    /// would not fit otherwise; see `prompt_truncated`).
    pub prompt: String,
    /// Whether `prompt` was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_truncated: bool,
    /// The end of the agent's raw output: the last `tail_lines` lines, at most
    /// 8,000 characters, shortened by the project's truncation policies.
    pub output_tail: String,
    /// Whether older output was left out of `output_tail`.
    pub output_truncated: bool,
    /// How the policies went while this result was made.
    #[serde(flatten)]
    pub policy: PolicyReport,
}

/// Default `max_chars` of a `job_status` or `job_events` result: what its
/// JSON may take, in characters, so it fits MCP clients' budgets (Claude Code
/// caps a result at about 25,000 tokens; Codex showed its model 12,020 characters).
pub const RESULT_MAX_CHARS: usize = 20_000;
/// Largest `max_chars` a caller may ask for.
pub const RESULT_MAX_CHARS_LIMIT: usize = 1_000_000;

impl StatusReport {
    /// Cuts the long texts so the report's JSON takes at most `max_chars`
    /// characters: first the prompt (to 1,000), then the last message, then
    /// the output tail, each keeping its start (the tail: its end).
    fn fit(&mut self, max_chars: usize) {
        let size = |r: &StatusReport| serde_json::to_string(r).map(|s| s.chars().count()).unwrap_or(usize::MAX);
        if size(self) <= max_chars {
            return;
        }
        if self.prompt.chars().count() > 1_000 {
            self.prompt = builtin::truncate(&self.prompt, Limits { max_chars: 1_000, ..builtin::NO_LIMIT });
            self.prompt_truncated = true;
        }
        // The flags, markers and escapes a cut adds are only known once it is
        // made: cut again until it fits, the last message before the output tail.
        loop {
            let over = size(self).saturating_sub(max_chars);
            if over == 0 {
                return;
            }
            let cut = |text: &str, keep: Keep| {
                let chars = text.chars().count();
                builtin::truncate(
                    text,
                    Limits { max_chars: chars.saturating_sub(over + 40) as u32, max_lines: u32::MAX, keep },
                )
            };
            match &self.last_message {
                Some(message) if message.chars().count() > MARKER_CHARS => {
                    self.last_message = Some(cut(message, Keep::Head));
                    self.last_message_truncated = true;
                }
                _ if self.output_tail.chars().count() > MARKER_CHARS => {
                    self.output_tail = cut(&self.output_tail, Keep::Tail);
                    self.output_truncated = true;
                }
                _ => return, // nothing left to cut
            }
        }
    }
}

/// Characters a text cut to nothing still takes (its marker, `…[N more chars]`).
const MARKER_CHARS: usize = 24;

/// `job_events` arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::args::optional_without_null)]
pub struct EventsRequest {
    /// The job id.
    pub job_id: String,
    /// Read events with `seq >= cursor` (default 0); pass back `next_cursor`.
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub cursor: Option<u64>,
    /// Most events to return, 1 to 1000 (default 20).
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub limit: Option<usize>,
    /// Only these types: an event `type` (`item.completed`, `job.status`, …)
    /// or an item type (`agent_message`, `command_execution`, …).
    pub event_types: Option<Vec<String>>,
    /// Cut each string of text in an event (not `type`, `id`, `*_id`) to this many characters (default 1024; 0: no cut).
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub truncate: Option<usize>,
    /// Most characters the page's JSON may take (the tool's default 20,000,
    /// at most 1,000,000): the page ends early, with `has_more`, rather than
    /// go past it (it always holds at least one event).
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub max_chars: Option<usize>,
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
    /// How the policies went while this result was made.
    #[serde(flatten)]
    pub policy: PolicyReport,
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
#[schemars(transform = crate::args::optional_without_null)]
pub struct ListRequest {
    /// Only jobs with this status.
    #[schemars(extend("enum" = ["queued", "running", "input_required", "completed", "failed", "cancelled"]))]
    pub status: Option<String>,
    /// Only jobs whose working directory is this absolute path or inside it.
    pub cwd: Option<String>,
    /// Most jobs to return, 1 to 1000 (default 50).
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub limit: Option<usize>,
    /// Most characters the result's JSON may take (the tool's default 20,000,
    /// at most 1,000,000): the newest jobs that fit, and `truncated`.
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub max_chars: Option<usize>,
}

/// A policy component a job runs under.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PolicyInForce {
    /// Its world: `approval-policy`, `output-truncation` or `event-filter`.
    pub world: crate::policy::World,
    /// Its entry's name.
    pub name: String,
    /// The sha256 of its content, lowercase hex.
    pub sha256: String,
}

/// How the policies went while a result was made; flattened into the results
/// that pass through them (both fields absent when all went well).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct PolicyReport {
    /// Whether the policies' time budget for this request (`[limits]
    /// request_budget_ms`, default 2 s) ran out: from there on the result got
    /// the built-in truncation (or, for a redaction, the text withheld) and no
    /// event filters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub policy_budget_exhausted: bool,
    /// Policy components that failed while this result was made, once per
    /// component and error, and what the host did instead. (Reads write
    /// nothing: failures are reported here and logged once.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_errors: Vec<PolicyFailure>,
}

impl PolicyReport {
    fn new(exhausted: bool, mut failures: Vec<PolicyFailure>) -> Self {
        let mut seen = std::collections::HashSet::new();
        failures.retain(|f| seen.insert((f.component.clone(), f.error.clone())));
        PolicyReport { policy_budget_exhausted: exhausted, policy_errors: failures }
    }
}

/// `job_list` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobSummary>,
    /// Whether more jobs matched than fit in `max_chars`: narrow the list
    /// with `status` or `cwd`, or ask for more characters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Job directories that could not be read (a damaged or missing
    /// `meta.json`), with the error; they are left on disk for a person to look at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<UnreadableJob>,
    /// How the policies went (their redactions apply to every summary).
    #[serde(flatten)]
    pub policy: PolicyReport,
}

/// A job directory that could not be read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UnreadableJob {
    /// The directory's name: the job id.
    pub job_id: String,
    /// Why it cannot be read, naming the file.
    pub error: String,
}

/// `job_wait` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct WaitOutcome {
    /// The waited-for jobs that are in a terminal status.
    pub finished: Vec<JobSummary>,
    /// Those waiting for an answer to an approval request: see their
    /// `pending_approvals` in `job_status`, answer with `job_approve`.
    pub input_required: Vec<JobSummary>,
    /// Those still going.
    pub pending: Vec<JobSummary>,
    /// Whether the time ran out before any finished.
    pub timed_out: bool,
    /// Whether summaries were left out to fit `max_chars` (pending ones first,
    /// then those needing an answer, then finished ones): wait for fewer jobs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// How the policies went (their redactions apply to every summary).
    #[serde(flatten)]
    pub policy: PolicyReport,
}

impl WaitOutcome {
    /// Leaves out summaries until the JSON takes at most `max_chars`
    /// characters: the finished ones are kept longest, then those needing an answer.
    fn fit(&mut self, max_chars: usize) {
        let mut used = 200; // the outcome's own fields
        for list in [&mut self.finished, &mut self.input_required, &mut self.pending] {
            let n = fitting(list, &mut used, max_chars);
            self.truncated |= n < list.len();
            list.truncate(n);
        }
    }
}

/// `job_notifications` result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NotificationPage {
    /// Turns that ended, oldest first.
    pub notifications: Vec<Notification>,
    /// Pass to the next `job_notifications` call.
    pub next_cursor: u64,
    /// How the policies went while this result was made.
    #[serde(flatten)]
    pub policy: PolicyReport,
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
    following: lifecycle::Following,
    /// The job directories this host waits on, through one inotify instance.
    watches: DirWatches,
    admission: lifecycle::Admission,
    indexed: watch::Sender<bool>,
    /// Jobs the last index could not read, with the error.
    unreadable: Mutex<HashMap<JobId, String>>,
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
            following: Mutex::default(),
            watches: DirWatches::default(),
            admission: lifecycle::Admission::default(),
            indexed: watch::Sender::new(false),
            unreadable: Mutex::default(),
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
        let cache = self.config.home.join(crate::home::CACHE_DIR);
        self.codex.get_or_try_init(|| CodexCli::locate(self.config.codex_bin.as_deref(), Some(&cache))).await
    }

    /// Does in the background what the first `job_start` would otherwise
    /// wait for: locating Codex (its probe result is cached per binary),
    /// starting a thread of tokio's blocking pool, and finding `/proc/self/fd`
    /// (through which queue entries are linked into place). Errors are
    /// logged; the first call that needs the step tries again.
    pub fn warm_up(self: &Arc<Self>) {
        let host = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = host.codex().await {
                tracing::warn!("{e:#}");
            }
        });
        tokio::task::spawn_blocking(|| {
            if let Err(e) = rustix_linux_procfs::proc_self_fd() {
                tracing::debug!("cannot open /proc/self/fd: {e}");
            }
        });
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
        check_prompt_size(&req.prompt)?;
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
            approval_timeout_s: req.approval_timeout_s,
        };
        let cli = self.codex().await?;
        let backend = backend::choose(req.backend.as_deref(), cli)?;
        backend::validate(backend, &options, cli)?;
        let id = JobId::new();
        // Off the async workers: a first load compiles the components (~0.2 s).
        let (host, judged) = (Arc::clone(self), (cwd.clone(), req.prompt.clone(), options.clone()));
        // The job runs under the set pinned here for good, whatever later edits to the project's policies.
        let pinned =
            tokio::task::spawn_blocking(move || host.judge_launch(id, backend, &judged.0, &judged.1, &judged.2))
                .await??;
        let mut meta = JobMeta::queued(id, &req.prompt, cwd, backend, options, cli.located.clone());
        meta.policies = Some(serde_json::to_value(&pinned)?);
        let spec = turn_spec(&meta, &req.prompt, cli, self.config.turn_settings)?;
        // The queue entry, fsynced, is the job's durable record; its directory is made from the same
        // records while the entry's fsync (about 0.5 ms on ext4) runs on another thread.
        let written = Queue::of(&self.store).write_entry(&meta, &spec)?;
        let syncing = tokio::task::spawn_blocking(move || written.sync());
        crate::failpoint!("start-after-enqueue");
        let made = self.store.materialize(&meta);
        if let Err(e) = syncing.await? {
            if let Ok(job) = &made {
                self.discard_unacknowledged(job);
            }
            return Err(e);
        }
        if let Err(e) = made {
            let _ = Queue::of(&self.store).dequeue(&meta);
            return Err(e);
        }
        self.admit_soon(&meta);
        Ok(Started { job_id: id.to_string(), status: meta.status, turn: meta.turn, cursor: 0 })
    }

    /// Removes the directory of a job whose start was never acknowledged (its
    /// queue entry's fsync failed), unless a supervisor runs it (another
    /// server admitted the entry meanwhile). Errors are logged: the start's
    /// own error is the one its caller sees.
    fn discard_unacknowledged(&self, job: &JobDir) {
        let discarded = (|| -> Result<()> {
            let _lock = job.lock()?;
            if let Some(_no_supervisor) = job.try_supervisor_lock()? {
                self.store.remove(job.id())?;
            }
            Ok(())
        })();
        if let Err(e) = discarded {
            tracing::warn!(job = %job.id(), "cannot remove the job a failed start left: {e:#}");
        }
    }

    /// Asks the project's approval policies whether this launch may go ahead.
    ///
    /// Returns the set that judged it, pinned for the job. Errors: see [`JobHost::judge`].
    fn judge_launch(
        &self,
        id: JobId,
        backend: BackendKind,
        cwd: &Path,
        prompt: &str,
        options: &JobOptions,
    ) -> Result<PinnedSet> {
        let refused = |e: anyhow::Error| invalid(format!("job_start refused: {e:#}"));
        let set = self.policies.for_cwd(cwd).map_err(refused)?;
        // Pinned (its copies touched, so `jobs gc` keeps them) before it judges: the set judged is the set kept.
        let (set, pinned) = self.policies.pin(&set, cwd).map_err(refused)?;
        let ctx = JobContext {
            job_id: id.to_string(),
            backend: backend.to_string(),
            cwd: cwd.display().to_string(),
            project_root: set.project_root.as_ref().map(|p| p.display().to_string()),
            prompt: prompt.to_owned(),
        };
        self.judge(&set, &ctx, options, None)?;
        Ok(pinned)
    }

    /// Asks `set`'s approval policies whether a turn with `options` may run:
    /// a launch (`job_start`), or with `reply` (its prompt and turn) a
    /// `job_reply`, judged by the job's pinned set.
    /// The launch request carries the settings in effect after every option
    /// is applied ([`exec::effective`]), not the ones asked for by name.
    ///
    /// Errors: [`InvalidInput`] with the policy's reason when it declines,
    /// cancels or asks (a launch has nobody to ask yet); naming the options
    /// the host cannot judge (unknown `extra_args`, `config` keys that may
    /// change permissions, a `profile`) while an approval policy is
    /// configured and none says `judges_options` (one that does sees them in
    /// the request's `unjudged`); or when a policy cannot be loaded.
    fn judge(&self, set: &PolicySet, ctx: &JobContext, options: &JobOptions, reply: Option<(&str, u32)>) -> Result<()> {
        let what = if reply.is_some() { "job_reply" } else { "job_start" };
        let effective = exec::effective(options);
        if set.has_approvals() && !effective.unjudgeable.is_empty() && !set.judges_options() {
            return Err(invalid(format!(
                "{what} refused: the project's approval policies cannot judge {}; while an approval policy is configured, use approval_policy, sandbox and model instead, or name a policy that judges them (judges_options = true in its [[approval]] entry)",
                effective.unjudgeable.join(", ")
            )));
        }
        let settings = Launch {
            approval_mode: effective.approval_mode,
            network_access: effective.sandbox == "danger-full-access",
            sandbox: Some(effective.sandbox),
            model: effective.model,
            backend: ctx.backend.clone(),
            config: options.config.clone(),
            extra_args: options.extra_args.clone(),
            unjudged: effective.unjudgeable,
        };
        let request = match reply {
            Some((prompt, turn)) => Request::Reply { prompt: prompt.to_owned(), turn, settings },
            None => Request::Launch(settings),
        };
        let verdict = set.decide(ctx, &request);
        let by = verdict.decided_by.as_deref().unwrap_or("built-in");
        match verdict.decision {
            Decision::Accept | Decision::AcceptForSession => Ok(()),
            Decision::Decline(reason) | Decision::Cancel(reason) => {
                Err(invalid(format!("{what} refused by policy {by}: {reason}")))
            }
            Decision::Ask => Err(invalid(format!(
                "{what} refused: policy {by} asks for approval of this launch, and a launch cannot wait for one"
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
        check_prompt_size(prompt)?;
        let job = self.store.job(id)?;
        let cli = self.codex().await?;
        // A reply starts a turn: the job's pinned policies judge it as they judged its launch.
        let (host, asked) = (Arc::clone(self), prompt.to_owned());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let job = host.store.job(id)?;
            let meta = job.read_meta()?;
            let (set, ctx) = host.policy_for(&job, &meta)?;
            host.judge(&set, &ctx, &meta.options, Some((&asked, meta.turn + 1)))
        })
        .await??;
        let _lock = job.lock()?;
        self.store.job(id)?; // still there: `jobs gc` removes a job under this lock
        let mut meta = job.read_meta()?;
        meta.clone().next_turn()?; // refused unless the last turn has ended
        // The last end may have been recorded only in part (a crash): finish it first.
        let recorded = End::recorded_in(&meta);
        record_end_locked(&self.store, &job, &mut meta, |_| {}, recorded)?;
        meta.next_turn()?;
        let spec = turn_spec(&meta, prompt, cli, self.config.turn_settings)?;
        let cursor = job.event_count()?;
        // The entry first, under the job's lock: admission leaves an entry
        // ahead of meta.json alone while the lock is held (see `queue::admit`).
        Queue::of(&self.store).enqueue(&meta, &spec)?;
        job.write_meta(&meta)?;
        job.sync()?; // acknowledged: a crash must not bring back the ended turn's meta.json
        job.event_writer()?.status(&meta, json!({"prompt": prompt}))?;
        self.admit_soon(&meta);
        Ok(Started { job_id: id.to_string(), status: meta.status, turn: meta.turn, cursor })
    }

    /// The job's state, its last message and the tail of its output, its
    /// JSON cut to `max_chars` characters (none: no cap; the MCP tool's
    /// default is [`RESULT_MAX_CHARS`]) as [`StatusReport`] says.
    ///
    /// Errors: [`InvalidInput`] for a malformed or unknown id, or a
    /// `max_chars` outside 2,000 to [`RESULT_MAX_CHARS_LIMIT`].
    pub fn status(&self, job_id: &str, tail_lines: Option<usize>, max_chars: Option<usize>) -> Result<StatusReport> {
        let begun = Instant::now();
        check_max_chars(max_chars)?;
        let id = JobId::parse(job_id)?;
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        let tail_lines = tail_lines.unwrap_or(100);
        let (raw_tail, omitted) = job.tail_output(tail_lines, STATUS_TAIL_BYTES)?;
        let (set, ctx) = self.policy_for(&job, &meta)?;
        let policies = set.within(begun);
        let limits = Limits { max_lines: u32::try_from(tail_lines).unwrap_or(u32::MAX), ..builtin::OUTPUT_LIMITS };
        let (output_tail, mut failures) = policies.truncate(&ctx, &raw_tail, limits);
        let output_truncated = omitted || output_tail != raw_tail;
        let report = StatusReport {
            job_id: id.to_string(),
            status: meta.status,
            turn: meta.turn,
            exit_code: meta.exit_code,
            error: meta.error,
            queue_position: match meta.status {
                JobStatus::Queued => self.queue_positions()?.get(&id).copied(),
                _ => None,
            },
            pending_approvals: match meta.status.is_terminal() {
                true => Vec::new(),
                false => approval::pending(&job, meta.turn)?,
            },
            backend: meta.backend.to_string(),
            created_at: meta.created_at.to_string(),
            started_at: meta.started_at.map(|t| t.to_string()),
            finished_at: meta.finished_at.map(|t| t.to_string()),
            prompt: meta.prompt,
            cwd: meta.cwd,
            thread_id: meta.thread_id,
            last_message: meta.last_message,
            last_message_truncated: false,
            prompt_truncated: false,
            usage: meta.usage,
            event_count: job.event_count()?,
            output_tail,
            output_truncated,
            policies: set
                .entries()
                .map(|(world, g)| PolicyInForce { world, name: g.name.to_string(), sha256: g.component.sha256.clone() })
                .collect(),
            policy: PolicyReport::default(),
        };
        let mut report = shape::redact(&set, &policies, &ctx, report, &mut failures)?;
        report.policy = PolicyReport::new(policies.exhausted(), failures);
        if let Some(max) = max_chars {
            report.fit(max);
        }
        Ok(report)
    }

    /// Events after a cursor: filtered by type, then by the project's event
    /// filters, with every string of text (see [`for_each_text`]) shortened by its truncation policies (limit:
    /// `truncate` characters, default 1024; 0 = no length limit, the policies still run).
    ///
    /// Errors: [`InvalidInput`] for a bad id, a cursor past the end, or a limit outside 1..=1000;
    /// a policy file or component that cannot be loaded.
    pub fn events(&self, req: &EventsRequest) -> Result<EventsPage> {
        let begun = Instant::now();
        check_max_chars(req.max_chars)?;
        let id = JobId::parse(&req.job_id)?;
        let limit = req.limit.unwrap_or(20);
        if !(1..=1000).contains(&limit) {
            return Err(invalid(format!("invalid limit {limit}: expected 1 to 1000")));
        }
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        let (set, ctx) = self.policy_for(&job, &meta)?;
        let policies = set.within(begun);
        let types = req.event_types.as_deref().unwrap_or_default();
        let limits = Limits {
            max_chars: match req.truncate.unwrap_or(1024) {
                0 => u32::MAX,
                n => u32::try_from(n).unwrap_or(u32::MAX),
            },
            ..builtin::NO_LIMIT
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
                    let (outcome, failed) = policies.filter(&ctx, &e.kind, data);
                    failures.extend(failed);
                    match outcome {
                        FilterOutcome::Keep => {}
                        FilterOutcome::Replace(kind, data) => (e.kind, e.data) = (kind, data),
                        FilterOutcome::Drop => return None,
                    }
                }
                for_each_text(&mut e.data, &mut |text| {
                    if !set.has_truncations() {
                        *text = builtin::truncate(text, limits);
                        return;
                    }
                    let recurs = text.len() <= RECURRING_STRING_MAX;
                    if recurs && let Some(cut) = cut_once.get(text.as_str()) {
                        text.clone_from(cut);
                        return;
                    }
                    let (cut, failed) = policies.truncate(&ctx, text, limits);
                    failures.extend(failed);
                    if recurs {
                        cut_once.insert(std::mem::replace(text, cut.clone()), cut);
                    } else {
                        *text = cut;
                    }
                });
                Some(e)
            })?;
        let mut events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
        let mut next_cursor = next_cursor;
        if let Some(max) = req.max_chars {
            // Room for the page's own fields, then whole events while they fit.
            let fitting = fitting(&events, &mut 200, max).max(1);
            if fitting < events.len() {
                events.truncate(fitting);
                next_cursor = events.last().map_or(next_cursor, |e| e.seq + 1);
            }
        }
        let has_more = next_cursor < job.event_count()?;
        Ok(EventsPage {
            job_id: id.to_string(),
            status: meta.status,
            events,
            next_cursor,
            has_more,
            policy: PolicyReport::new(policies.exhausted(), failures),
        })
    }

    /// The policy set a job runs under, and the job as policies see it: the
    /// set pinned at its start, or, for a job started before sets were
    /// pinned, its project's set now.
    fn policy_for(&self, job: &JobDir, meta: &JobMeta) -> Result<(Arc<PolicySet>, JobContext)> {
        let set = self.policy_set(job, meta)?;
        let ctx = self.job_context(&set, meta);
        Ok((set, ctx))
    }

    /// The policy set of the job in `job` (`meta`, just read): pinned, or (a
    /// job from before sets were pinned) its project's now.
    fn policy_set(&self, job: &JobDir, meta: &JobMeta) -> Result<Arc<PolicySet>> {
        match job.read_policies::<PinnedSet>(meta)? {
            Some(pinned) => self.policies.for_pinned(&pinned).with_context(|| format!("job {}", job.id())),
            None => self.policies.for_cwd(&meta.cwd),
        }
    }

    /// The job as the policies of `set` see it.
    fn job_context(&self, set: &PolicySet, meta: &JobMeta) -> JobContext {
        JobContext {
            job_id: meta.id.to_string(),
            backend: meta.backend.to_string(),
            cwd: meta.cwd.display().to_string(),
            project_root: set.project_root.as_ref().map(|p| p.display().to_string()),
            prompt: meta.prompt.clone(),
        }
    }

    /// Jobs newest first, optionally by status and working directory.
    ///
    /// Errors: [`InvalidInput`] for an unknown status, a relative cwd or a limit outside 1..=1000.
    pub async fn list(self: &Arc<Self>, req: &ListRequest) -> Result<JobList> {
        let begun = Instant::now();
        check_max_chars(req.max_chars)?;
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
        // Before the snapshot: a turn admitted in between is listed as running, never as queued without a place.
        let positions = self.queue_positions()?;
        let mut jobs = self
            .registry
            .list(limit, |j| status.is_none_or(|s| j.status == s) && cwd.as_ref().is_none_or(|c| j.cwd.starts_with(c)));
        for j in jobs.iter_mut().filter(|j| j.status == JobStatus::Queued) {
            j.queue_position = JobId::parse(&j.job_id).ok().and_then(|id| positions.get(&id).copied());
        }
        let (mut jobs, policy) = self.off_runtime(move |host| host.redact_summaries(jobs, begun)).await?;
        let mut truncated = false;
        if let Some(max) = req.max_chars {
            let fitting = fitting(&jobs, &mut 100, max); // 100: the list's own fields
            truncated = fitting < jobs.len();
            jobs.truncate(fitting);
        }
        let unreadable = self
            .unreadable
            .lock()
            .unwrap()
            .iter()
            .map(|(id, error)| UnreadableJob { job_id: id.to_string(), error: error.clone() })
            .collect();
        Ok(JobList { jobs, truncated, unreadable, policy })
    }

    /// Waits until one of `job_ids` (none: any job running when called) is in a
    /// terminal status or `input_required` (the caller must answer), or `timeout_s` (default 30, at most [`WAIT_MAX_S`]) passes.
    /// Wakes on the supervisor's exit, never by polling.
    ///
    /// Errors: [`InvalidInput`] for a bad or unknown id, or a timeout over [`WAIT_MAX_S`].
    pub async fn wait(
        self: &Arc<Self>,
        job_ids: &[String],
        timeout_s: Option<u64>,
        max_chars: Option<usize>,
    ) -> Result<WaitOutcome> {
        let begun = Instant::now();
        check_max_chars(max_chars)?;
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
        // A job this host has not indexed yet: index it; one it did not start: follow its status changes on disk.
        for id in &ids {
            match self.registry.get(*id) {
                None => self.index_job(*id)?,
                Some(j) if !j.status.is_terminal() && !self.live.lock().unwrap().contains_key(id) => self.follow(*id),
                Some(_) => {}
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
            // An answered request leaves the job `input_required` until its
            // supervisor has passed the answer on: only an unanswered one needs the caller.
            // Read once, so the wake-up and the result agree.
            let awaiting: HashSet<String> =
                summaries.iter().filter(|j| self.awaits_answer(j)).map(|j| j.job_id.clone()).collect();
            let timed_out =
                if summaries.is_empty() || !awaiting.is_empty() || summaries.iter().any(|j| j.status.is_terminal()) {
                    false
                } else if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                    true
                } else {
                    continue;
                };
            let (summaries, policy) = self.off_runtime(move |host| host.redact_summaries(summaries, begun)).await?;
            let (finished, rest): (Vec<_>, Vec<_>) = summaries.into_iter().partition(|j| j.status.is_terminal());
            let (input_required, pending) = rest.into_iter().partition(|j| awaiting.contains(&j.job_id));
            let mut outcome = WaitOutcome { finished, input_required, pending, timed_out, truncated: false, policy };
            if let Some(max) = max_chars {
                outcome.fit(max);
            }
            return Ok(outcome);
        }
    }

    /// The place of every queued turn in the home's queue, from 1, oldest
    /// first; turns already running are not counted (one admitted a moment
    /// ago, still `queued` until its supervisor says otherwise, is).
    fn queue_positions(&self) -> Result<HashMap<JobId, usize>> {
        let mut positions = HashMap::new();
        for entry in Queue::of(&self.store).queued()? {
            let status = match self.registry.get(entry.job) {
                Some(j) if j.turn == entry.turn => Some(j.status),
                _ => self.store.job(entry.job).and_then(|j| j.read_meta()).ok().map(|m| m.status),
            };
            if status == Some(JobStatus::Queued) {
                let next = positions.len() + 1;
                positions.insert(entry.job, next);
            }
        }
        Ok(positions)
    }

    /// A job's status as this host's index has it (no file is read); `None`
    /// for an unknown id.
    pub fn indexed_status(&self, job_id: &str) -> Option<JobStatus> {
        self.registry.get(JobId::parse(job_id).ok()?).map(|j| j.status)
    }

    /// A receiver that wakes on every change of any job's status this host sees.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.registry.subscribe()
    }

    /// Whether a job is `input_required` with a request no one has answered yet.
    fn awaits_answer(&self, job: &JobSummary) -> bool {
        job.status == JobStatus::InputRequired
            && JobId::parse(&job.job_id)
                .map_err(anyhow::Error::from)
                .and_then(|id| self.store.job(id))
                .and_then(|dir| approval::pending(&dir, job.turn))
                .is_ok_and(|p| !p.is_empty())
    }

    /// Turns that ended after `cursor` (a byte offset into the feed; 0 = from the start).
    pub fn notifications(&self, cursor: Option<u64>, limit: Option<usize>) -> Result<NotificationPage> {
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(invalid(format!("invalid limit {limit}: expected 1 to 1000")));
        }
        let begun = Instant::now();
        let (notes, next_cursor) = self.store.feed().read(cursor.unwrap_or(0), limit)?;
        let mut notifications = Vec::with_capacity(notes.len());
        let mut policy_budget_exhausted = false;
        let mut failures = Vec::new();
        for note in notes {
            if let Some(note) = self.filter_notification(note, begun, &mut policy_budget_exhausted, &mut failures)? {
                notifications.push(note);
            }
        }
        Ok(NotificationPage {
            notifications,
            next_cursor,
            policy: PolicyReport::new(policy_budget_exhausted, failures),
        })
    }

    /// Passes a notification through its job's event filters as a `job.status`
    /// event, and its strings through the job's truncations (redaction),
    /// within the budget of the request that began at `begun` (sets
    /// `exhausted` when it ran out; adds failed components to `failures`). A
    /// replacement that is not a notification keeps the original.
    fn filter_notification(
        &self,
        note: Notification,
        begun: Instant,
        exhausted: &mut bool,
        failures: &mut Vec<PolicyFailure>,
    ) -> Result<Option<Notification>> {
        let Ok(job) = JobId::parse(&note.job_id).map_err(anyhow::Error::from).and_then(|id| self.store.job(id)) else {
            return Ok(Some(note)); // its job was deleted; nothing to filter by
        };
        let (set, ctx) = self.policy_for(&job, &job.read_meta()?)?;
        let policies = set.within(begun);
        let shown = if set.has_filters() {
            let (outcome, failed) = policies.filter(&ctx, STATUS_EVENT, &serde_json::to_string(&note)?);
            failures.extend(failed);
            match outcome {
                FilterOutcome::Keep => Some(note),
                FilterOutcome::Drop => None,
                FilterOutcome::Replace(_, payload) => match serde_json::from_value::<Notification>(payload) {
                    Ok(replaced) => Some(replaced),
                    Err(e) => {
                        let error = format!("replaced a notification with something that is not one: {e}");
                        failures.extend(set.last_filter_failure(error));
                        Some(note)
                    }
                },
            }
        } else {
            Some(note)
        };
        let shown = shown.map(|note| shape::redact(&set, &policies, &ctx, note, failures)).transpose()?;
        *exhausted |= policies.exhausted();
        Ok(shown)
    }

    /// Runs `f` on a blocking thread: policy guests run there, where WASI's
    /// synchronous streams may block on the runtime (on a runtime thread, a
    /// guest that prints would panic with "Cannot start a runtime from within a runtime").
    pub async fn off_runtime<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&JobHost) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let host = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&host)).await?
    }

    /// Reads `output.log` from byte `offset`: at most `max` bytes and the
    /// offset after them (for `jobs logs --follow`). With truncation policies
    /// configured, only whole lines are returned, each passed through them with
    /// no length limit (redaction); an unfinished last line waits for its
    /// newline unless it fills `max` alone or the job has ended.
    pub fn output_since(&self, job_id: &str, offset: u64, max: usize) -> Result<(Vec<u8>, u64)> {
        let job = self.store.job(JobId::parse(job_id)?)?;
        let (bytes, next) = job.read_output(offset, max)?;
        let meta = job.read_meta()?;
        let (set, ctx) = self.policy_for(&job, &meta)?;
        if !set.has_truncations() || bytes.is_empty() {
            return Ok((bytes, next));
        }
        let whole = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if bytes.len() >= max || meta.status.is_terminal() => bytes.len(),
            None => return Ok((Vec::new(), offset)),
        };
        let text = String::from_utf8_lossy(&bytes[..whole]);
        let policies = set.within(Instant::now());
        let (shaped, _) = policies.truncate(&ctx, &text, builtin::NO_LIMIT);
        Ok((shaped.into_bytes(), offset + whole as u64))
    }
}

/// How many of `items`, from the first, fit in `max` characters of JSON
/// when `used` are taken already (a comma each included); adds theirs to `used`.
fn fitting<T: Serialize>(items: &[T], used: &mut usize, max: usize) -> usize {
    let mut n = 0;
    for item in items {
        let size = serde_json::to_string(item).map_or(usize::MAX, |s| s.chars().count() + 1);
        if used.saturating_add(size) > max {
            break;
        }
        *used += size;
        n += 1;
    }
    n
}

/// Checks a caller's `max_chars`.
fn check_max_chars(max_chars: Option<usize>) -> Result<()> {
    match max_chars {
        Some(n) if !(2_000..=RESULT_MAX_CHARS_LIMIT).contains(&n) => {
            Err(invalid(format!("invalid max_chars {n}: expected 2000 to {RESULT_MAX_CHARS_LIMIT}")))
        }
        _ => Ok(()),
    }
}

/// What the supervisor runs for the job's current turn.
fn turn_spec(meta: &JobMeta, prompt: &str, cli: &CodexCli, settings: TurnSettings) -> Result<TurnSpec> {
    Ok(TurnSpec {
        turn: meta.turn,
        program: cli.program.clone(),
        args: backend::command_args(meta, cli)?,
        env: cli.env.clone(),
        prompt: prompt.to_owned(),
        settings,
    })
}

fn check_prompt_size(prompt: &str) -> Result<(), InvalidInput> {
    if prompt.len() > PROMPT_MAX_BYTES {
        return Err(InvalidInput::new(format!(
            "invalid prompt: {} bytes; expected at most {PROMPT_MAX_BYTES} bytes (1 MiB)",
            prompt.len()
        )));
    }
    Ok(())
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
