//! `meta.json`: what a job is and where it stands.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{End, JobId, JobStatus, Move};
use crate::error::InvalidInput;

/// How the caller asked Codex to run, as validated at `job_start` and kept for
/// every later turn. Field meanings follow `codex exec`'s flags; the
/// app-server backend passes the same settings as its `thread/start` parameters and `-c` entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobOptions {
    /// `--model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `--profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `--sandbox`: `read-only`, `workspace-write` or `danger-full-access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Codex's approval mode, as the caller named it (`job_start`'s
    /// `approval_policy`; not the approval policies, which are components):
    /// `suggest`, `auto-edit` or `full-auto`.
    #[serde(rename = "approval_policy")]
    pub approval_mode: String,
    /// `-c key=value` overrides, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
    /// Arguments appended to `codex exec` as given (exec only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// `--skip-git-repo-check`.
    #[serde(default)]
    pub skip_git_repo_check: bool,
    /// Kill a turn whose agent printed nothing for this many seconds; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<u64>,
    /// How long an approval request the policies hand to the caller waits
    /// for `job_approve` before it is declined; `None`: the user's
    /// `[jobs] approval_timeout_s`, else 15 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_s: Option<u64>,
}

/// How a job's turns drive Codex; on the wire and in `meta.json` `exec` or
/// `app-server`. `job/` only carries it: the code of each is in `backend/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BackendKind {
    /// `codex exec --json`, one process a turn; events on its stdout.
    #[serde(rename = "exec")]
    Exec,
    /// `codex app-server`, JSON-RPC over its stdio; approvals asked of the supervisor.
    #[serde(rename = "app-server")]
    AppServer,
}

impl BackendKind {
    /// Every kind, in the order `backend: "auto"` prefers them last to first.
    pub const ALL: [BackendKind; 2] = [BackendKind::Exec, BackendKind::AppServer];

    /// The name on the wire: `exec` or `app-server`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Exec => "exec",
            BackendKind::AppServer => "app-server",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contents of `jobs/<id>/meta.json`. Replaced whole and atomically on
/// every change; timestamps are RFC 3339 UTC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobMeta {
    /// The job's id (also its directory name).
    pub id: JobId,
    /// Where the current turn stands.
    pub status: JobStatus,
    /// The prompt of the first turn.
    pub prompt: String,
    /// Absolute working directory of the agent.
    pub cwd: PathBuf,
    /// How Codex is driven.
    pub backend: BackendKind,
    /// The options given at `job_start`.
    pub options: JobOptions,
    /// The Codex binary the job runs.
    pub codex_bin: PathBuf,
    /// Codex's thread id, from its `thread.started` event; needed to reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Number of the current turn, from 0; `job_reply` adds one.
    pub turn: u32,
    /// The supervisor's pid, which is also its process group and session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// When `job_start` created the job.
    pub created_at: Timestamp,
    /// When the current turn was queued (its place in the queue, oldest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<Timestamp>,
    /// When the current turn's agent process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When the current turn reached a terminal status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The agent's exit status for the current turn (128 + N when killed by signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the current turn failed, in Codex's own words where it gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The text of the agent's last `agent_message` item, across turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// Token usage of the last completed turn, as Codex reported it in `turn.completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    /// The policy set pinned at `job_start` (`policy::PinnedSet` as JSON),
    /// under which every turn runs; `None` for a job started without one
    /// (jobs of earlier versions keep it in `policies.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Value>,
    /// Byte offset in `notifications.jsonl` of the current turn's notification,
    /// chosen (under the feed's lock) just before it is appended; see `end::record_end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_offset: Option<u64>,
    /// The name of the HTTP token whose request started the job (`serve --http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

impl JobMeta {
    /// A new job's metadata: `queued`, turn 0, created now, nothing run yet.
    pub fn queued(
        id: JobId,
        prompt: &str,
        cwd: PathBuf,
        backend: BackendKind,
        options: JobOptions,
        codex_bin: PathBuf,
    ) -> Self {
        let now = Timestamp::now();
        JobMeta {
            id,
            status: JobStatus::Queued,
            prompt: prompt.to_owned(),
            cwd,
            backend,
            options,
            codex_bin,
            thread_id: None,
            turn: 0,
            pid: None,
            created_at: now,
            queued_at: Some(now),
            started_at: None,
            finished_at: None,
            exit_code: None,
            error: None,
            last_message: None,
            usage: None,
            policies: None,
            notification_offset: None,
            started_by: None,
        }
    }

    /// Moves the current turn to `next`, within the turn (see
    /// [`JobStatus::can_move_to`]): the one check every status change a
    /// supervisor makes passes.
    ///
    /// Errors: a move the state machine does not allow, naming both statuses.
    pub fn move_to(&mut self, next: JobStatus) -> anyhow::Result<()> {
        if !self.status.can_move_to(next, Move::WithinTurn) {
            anyhow::bail!("job {}: cannot move from {} to {next}", self.id, self.status);
        }
        self.status = next;
        Ok(())
    }

    /// Settles the current turn at `end`, recorded at `at` in the event log
    /// (which is the truth: its end wins over what `meta.json` said).
    ///
    /// Errors: `end` is not terminal.
    pub fn settle(&mut self, end: End, at: Timestamp) -> anyhow::Result<()> {
        if !end.status.is_terminal() {
            anyhow::bail!("job {}: a turn cannot end {}", self.id, end.status);
        }
        self.status = end.status;
        self.exit_code = end.exit_code;
        self.error = end.error;
        self.finished_at = Some(at);
        Ok(())
    }

    /// Begins the next turn (`job_reply`): `queued`, its turn number one up,
    /// queued now, and nothing of the last turn's run kept but what the job
    /// carries across turns (thread id, last message, usage).
    ///
    /// Errors: [`InvalidInput`] while the current turn has not ended.
    pub fn next_turn(&mut self) -> Result<(), InvalidInput> {
        if !self.status.can_move_to(JobStatus::Queued, Move::NextTurn) {
            return Err(InvalidInput::new(format!(
                "job {} is {}: reply once its turn has ended (job_wait), or cancel it first",
                self.id, self.status
            )));
        }
        self.turn += 1;
        self.status = JobStatus::Queued;
        self.queued_at = Some(Timestamp::now());
        self.pid = None;
        self.started_at = None;
        self.finished_at = None;
        self.exit_code = None;
        self.error = None;
        self.notification_offset = None;
        Ok(())
    }
}
