//! Every tool's arguments and results, as the MCP tools and the CLI take
//! and give them (JSON, with schemas for MCP's `inputSchema` and
//! `outputSchema`), and how a result is fitted to a caller's `max_chars`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::approval::{ApprovalDecision, PendingApproval};
use crate::job::{Event, JobStatus, JobSummary, Notification};
use crate::policy::builtin::{self, Keep};
use crate::policy::{Limits, PolicyFailure};

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
    /// Codex's approval mode (named so for the tools this one replaces; the
    /// approval policies are the project's components, see `[[approval]]`):
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
    /// Who started the job: the name of the HTTP token of the request
    /// (`serve --http`); set by the transport, never by the caller (an
    /// argument of this name is refused as unknown).
    #[serde(skip)]
    #[schemars(skip)]
    pub started_by: Option<String>,
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
    /// The name of the HTTP token that started the job (`serve --http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
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
    pub(super) fn fit(&mut self, max_chars: usize) {
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
    pub(super) fn new(exhausted: bool, mut failures: Vec<PolicyFailure>) -> Self {
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
    pub(super) fn fit(&mut self, max_chars: usize) {
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

/// How many of `items`, from the first, fit in `max` characters of JSON
/// when `used` are taken already (a comma each included); adds theirs to `used`.
pub(super) fn fitting<T: Serialize>(items: &[T], used: &mut usize, max: usize) -> usize {
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

/// `job_approve` arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::args::optional_without_null)]
pub struct ApproveRequest {
    /// The job id.
    pub job_id: String,
    /// The request's id, as `job_status` lists it in `pending_approvals` (e.g. `0-1`).
    pub request_id: String,
    /// `accept` (this once), `accept_for_session` (this and the same request
    /// for the rest of the session), `decline` (the agent goes on without it)
    /// or `cancel` (decline and end the turn).
    #[schemars(with = "String", extend("enum" = ["accept", "accept_for_session", "decline", "cancel"]))]
    pub decision: ApprovalDecision,
    /// Why, for the job's log.
    pub reason: Option<String>,
}

/// What `job_approve` returns.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ApproveOutcome {
    /// The job id.
    pub job_id: String,
    /// The request answered.
    pub request_id: String,
    /// The answer recorded.
    #[schemars(with = "String", extend("enum" = ["accept", "accept_for_session", "decline", "cancel"]))]
    pub decision: ApprovalDecision,
    /// The job's status when the answer was written (it turns `running`
    /// again once the supervisor has passed the answer on).
    pub status: JobStatus,
}

/// `job_status` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::args::optional_without_null)]
pub struct StatusArgs {
    /// The job id from job_start.
    pub job_id: String,
    /// Lines of output to include from the end (default 100, at most 64 KiB).
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub tail_lines: Option<usize>,
    /// Most characters the result's JSON may take (default 20,000, at most
    /// 1,000,000): longer texts are cut, the last message first after the
    /// prompt, with `…_truncated` flags.
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub max_chars: Option<usize>,
}

/// `job_reply` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyArgs {
    /// The job id.
    pub job_id: String,
    /// The next message to Codex in the same conversation.
    pub prompt: String,
}

/// `job_cancel` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelArgs {
    /// The job id.
    pub job_id: String,
}

/// `job_wait` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::args::optional_without_null)]
pub struct WaitArgs {
    /// Jobs to wait for; absent or empty: every job running now.
    #[serde(default)]
    pub job_ids: Vec<String>,
    /// Seconds to wait at most (default 30, at most 240: below the clients' own
    /// tool timeouts, e.g. Codex's 300 s). Call again when `timed_out`.
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub timeout_s: Option<u64>,
    /// Most characters of the result's JSON (default 20,000; 2,000 to
    /// 1,000,000); summaries that do not fit are left out, with `truncated`.
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub max_chars: Option<usize>,
}

/// `job_notifications` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::args::optional_without_null)]
pub struct NotificationsArgs {
    /// From where to read: 0 (default) or the `next_cursor` of the last call.
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub cursor: Option<u64>,
    /// Most notifications to return, 1 to 1000 (default 100).
    #[serde(default, deserialize_with = "crate::args::number_or_digits")]
    pub limit: Option<usize>,
}

/// One approval decision of a job, for `policy log`: the `approval.decided`
/// event as `job_events` shows it (through the job's policies), with its job.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct LoggedDecision {
    /// The job it was made in.
    pub job_id: String,
    /// The job's working directory.
    pub cwd: PathBuf,
    /// The event: `data` holds `request_id`, `kind`, `request`, `decision`,
    /// `reason`, `decided_by`, `via` and, for a policy in shadow, `shadow: true`.
    pub event: EventView,
}
