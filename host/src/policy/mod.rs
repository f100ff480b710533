//! Policies: WebAssembly components, defined by the WIT package in `wit/`,
//! that decide approvals, shorten output and filter events, loaded per project.
//!
//! - [`engine`]: the wasmtime engine, the compiled-component cache, loading and checking.
//! - [`bindings`]: `bindgen!` per world.
//! - [`guest`]: one configured component: its limits, warm and fresh instances;
//!   [`state`]: the store data of one instance.
//! - [`config`]: the policy files, project-root discovery and the cached [`PolicySet`]s.
//! - [`set`]: a layered set and the rules that combine its answers.
//! - [`builtin`]: what holds when nothing is configured or a component fails.

pub mod bindings;
pub mod builtin;
pub mod cases;
pub mod config;
pub mod engine;
pub mod guest;
mod guest_log;
pub mod pinned;
pub mod set;
pub mod source;
pub mod state;
pub mod trial;

use serde::{Deserialize, Serialize};

pub use config::{Policies, project_root};
pub use engine::{LoadSource, PolicyEngine};
pub use guest::{FailureMode, Guest, GuestLimits};
pub use pinned::{PinnedEntry, PinnedSet};
pub use set::{Budgeted, FilterOutcome, PolicyFailure, PolicySet, Verdict};

/// The job a policy call is about (WIT `job-info`): the one place one is made.
/// `project_root` is the root the job's policy set was resolved for.
pub fn job_context(
    job_id: crate::job::JobId,
    backend: crate::job::BackendKind,
    cwd: &std::path::Path,
    project_root: Option<&std::path::Path>,
    prompt: &str,
) -> JobContext {
    JobContext {
        job_id: job_id.to_string(),
        backend: backend.to_string(),
        cwd: cwd.display().to_string(),
        project_root: project_root.map(|p| p.display().to_string()),
        prompt: prompt.to_owned(),
    }
}

/// The three kinds of policy component, by the WIT world they implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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

/// The types policies exchange with the host, shared with guests through
/// the SDK crate (`guest-policies/sdk`), so both sides read the same JSON:
/// the job a call is about (WIT `job-info`), an approval request and its
/// decision, truncation limits, and an event filter's action.
pub use codex_jobhost_policy::{
    Action as FilterAction, ChangeKind, Decision, Event as PolicyEvent, Job as JobContext, Keep, Launch, Limits,
    Origin, Request,
};
