//! Policies: WebAssembly components, defined by the WIT package in `wit/`,
//! that decide approvals, shorten output and filter events, loaded per project.
//!
//! - [`engine`]: the wasmtime engine, the compiled-component cache, loading and checking.
//! - [`bindings`]: `bindgen!` per world.
//! - [`guest`]: one configured component: its limits, warm and fresh instances.
//! - [`config`]: the policy files, project-root discovery and the cached [`PolicySet`]s.
//! - [`set`]: a layered set and the rules that combine its answers.
//! - [`builtin`]: what holds when nothing is configured or a component fails.

pub mod bindings;
pub mod builtin;
pub mod config;
pub mod engine;
pub mod guest;
pub mod set;
pub mod trial;

use serde::{Deserialize, Serialize};

pub use config::{Policies, project_root};
pub use engine::{LoadSource, PolicyEngine};
pub use guest::{Guest, GuestLimits};
pub use set::{FilterOutcome, PolicyFailure, PolicySet, Verdict};

/// The three kinds of policy component, by the WIT world they implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `approval-policy`: `decide(job, request) -> decision`.
    Approval = 0,
    /// `output-truncation`: `truncate(job, text, limits) -> string`.
    Truncation = 1,
    /// `event-filter`: `filter(job, event) -> action`.
    Filter = 2,
}

impl World {
    /// The WIT world's name.
    pub fn world_name(self) -> &'static str {
        match self {
            World::Approval => "approval-policy",
            World::Truncation => "output-truncation",
            World::Filter => "event-filter",
        }
    }

    /// The table name in policy files: `[[approval]]`, `[[truncation]]`, `[[filter]]`.
    pub fn table(self) -> &'static str {
        match self {
            World::Approval => "approval",
            World::Truncation => "truncation",
            World::Filter => "filter",
        }
    }
}

/// The job a policy call is about (WIT `job-info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobContext {
    /// The job id.
    pub job_id: String,
    /// `exec`.
    pub backend: String,
    /// The agent's working directory.
    pub cwd: String,
    /// The project root, if any.
    pub project_root: Option<String>,
    /// The first turn's prompt.
    pub prompt: String,
}

macro_rules! job_info {
    ($fn:ident, $world:ident) => {
        /// As the generated WIT type of this world.
        pub(crate) fn $fn(&self) -> bindings::$world::codex_jobhost::policy::types::JobInfo {
            bindings::$world::codex_jobhost::policy::types::JobInfo {
                job_id: self.job_id.clone(),
                backend: self.backend.clone(),
                cwd: self.cwd.clone(),
                project_root: self.project_root.clone(),
                prompt: self.prompt.clone(),
            }
        }
    };
}

impl JobContext {
    job_info!(to_wit_approval, approval);
    job_info!(to_wit_truncation, truncation);
    job_info!(to_wit_filter, filter);
}

/// What a file change does (WIT `change-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// New files.
    Add,
    /// Removed files.
    Delete,
    /// Edited files.
    Update,
}

/// An approval request (WIT `request`). JSON: `{"launch": {"approval_mode": "full-auto"}}`,
/// `{"command": {"command": "rm -rf /", "cwd": "/w"}}`, `{"file-change": {...}}`, `{"permissions": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// A job is about to start.
    Launch {
        /// `suggest`, `auto-edit` or `full-auto`.
        approval_mode: String,
        /// The sandbox asked for, if any.
        #[serde(default)]
        sandbox: Option<String>,
        /// The model asked for, if any.
        #[serde(default)]
        model: Option<String>,
    },
    /// A command is about to run.
    Command {
        /// The command line.
        command: String,
        /// Where.
        cwd: String,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Files are about to change.
    FileChange {
        /// Absolute paths.
        paths: Vec<String>,
        /// What the change does.
        kind: ChangeKind,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
    /// More permissions are asked for.
    Permissions {
        /// What.
        permissions: Vec<String>,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
}

impl Request {
    pub(crate) fn to_wit(&self) -> bindings::approval::exports::codex_jobhost::policy::approval::Request {
        use bindings::approval::exports::codex_jobhost::policy::approval as wit;
        match self.clone() {
            Request::Launch { approval_mode, sandbox, model } => {
                wit::Request::Launch(wit::LaunchRequest { approval_mode, sandbox, model })
            }
            Request::Command { command, cwd, reason } => {
                wit::Request::Command(wit::CommandRequest { command, cwd, reason })
            }
            Request::FileChange { paths, kind, reason } => wit::Request::FileChange(wit::FileChangeRequest {
                paths,
                kind: match kind {
                    ChangeKind::Add => wit::ChangeKind::Add,
                    ChangeKind::Delete => wit::ChangeKind::Delete,
                    ChangeKind::Update => wit::ChangeKind::Update,
                },
                reason,
            }),
            Request::Permissions { permissions, reason } => {
                wit::Request::Permissions(wit::PermissionsRequest { permissions, reason })
            }
        }
    }
}

/// An approval decision (WIT `decision`); JSON `"accept"`, `{"decline": "why"}`, ….
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Allow once.
    Accept,
    /// Allow for the session.
    AcceptForSession,
    /// Refuse, with a reason.
    Decline(String),
    /// Refuse and stop the turn, with a reason.
    Cancel(String),
    /// Hand it to the caller.
    Ask,
}

impl Decision {
    /// Higher is stricter: cancel > decline > ask > accept-for-session > accept.
    pub fn strictness(&self) -> u8 {
        match self {
            Decision::Accept => 0,
            Decision::AcceptForSession => 1,
            Decision::Ask => 2,
            Decision::Decline(_) => 3,
            Decision::Cancel(_) => 4,
        }
    }

    pub(crate) fn from_wit(d: bindings::approval::exports::codex_jobhost::policy::approval::Decision) -> Self {
        use bindings::approval::exports::codex_jobhost::policy::approval::Decision as W;
        match d {
            W::Accept => Decision::Accept,
            W::AcceptForSession => Decision::AcceptForSession,
            W::Decline(r) => Decision::Decline(r),
            W::Cancel(r) => Decision::Cancel(r),
            W::Ask => Decision::Ask,
        }
    }
}

/// Truncation limits (WIT `limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Characters at most.
    pub max_chars: u32,
    /// Lines at most.
    pub max_lines: u32,
}

/// A filter's answer for one event (WIT `action`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterAction {
    /// Show it.
    Keep,
    /// Leave it out.
    Drop,
    /// Show this instead; `payload` is JSON text.
    Replace {
        /// The new type.
        kind: String,
        /// The new payload.
        payload: String,
    },
}
