//! Host bindings of the WIT package `codex-jobhost:policy`, one module per
//! world and per supported version line, as Zed's extension host keeps them:
//! the latest line (0.3, `wit/policy.wit`) at the top, and [`v0_2`] and
//! [`v0_1`] (the frozen `wit/since_v0.2.0/`, `wit/since_v0.1.0/`) beside it,
//! whose calls are adapted from the latest types here ([`v0_2_request`],
//! [`v0_1_request`]). Which line a component gets is chosen in
//! one place, [`super::guest::WorldPre::new`], from the version it was built against.

use wasmtime::component::HasSelf;

use super::guest_log::Source;
use super::state::State;
use super::{ChangeKind, Decision, JobContext, Request};

/// The WIT package the host implements.
pub const PACKAGE: &str = "codex-jobhost:policy";
/// The version lines the host accepts, newest first, as `major.minor` (for
/// 0.y versions, semver's compatible line is `0.y`): every `0.3.x`, `0.2.x` and `0.1.x`.
pub const SUPPORTED: [&str; 3] = ["0.3", "0.2", "0.1"];

/// The `approval-policy` world.
pub mod approval {
    #![allow(missing_docs)] // bindgen's output: the WIT documents it
    wasmtime::component::bindgen!({ path: "../wit", world: "approval-policy" });
}

/// The `output-truncation` world.
pub mod truncation {
    #![allow(missing_docs)] // bindgen's output: the WIT documents it
    wasmtime::component::bindgen!({ path: "../wit", world: "output-truncation" });
}

/// The `event-filter` world.
pub mod filter {
    #![allow(missing_docs)] // bindgen's output: the WIT documents it
    wasmtime::component::bindgen!({ path: "../wit", world: "event-filter" });
}

/// The 0.2 line (`wit/since_v0.2.0/`), for components built before 0.3.
pub mod v0_2 {
    /// The `approval-policy` world of 0.2.
    pub mod approval {
        #![allow(missing_docs)] // bindgen's output: the WIT documents it
        wasmtime::component::bindgen!({ path: "../wit/since_v0.2.0", world: "approval-policy" });
    }

    /// The `output-truncation` world of 0.2.
    pub mod truncation {
        #![allow(missing_docs)] // bindgen's output: the WIT documents it
        wasmtime::component::bindgen!({ path: "../wit/since_v0.2.0", world: "output-truncation" });
    }

    /// The `event-filter` world of 0.2.
    pub mod filter {
        #![allow(missing_docs)] // bindgen's output: the WIT documents it
        wasmtime::component::bindgen!({ path: "../wit/since_v0.2.0", world: "event-filter" });
    }
}

/// The 0.1 line (`wit/since_v0.1.0/`), for components built before 0.2.
pub mod v0_1 {
    /// The `approval-policy` world of 0.1.
    pub mod approval {
        #![allow(missing_docs)] // bindgen's output: the WIT documents it
        wasmtime::component::bindgen!({ path: "../wit/since_v0.1.0", world: "approval-policy" });
    }

    /// The `output-truncation` world of 0.1.
    pub mod truncation {
        #![allow(missing_docs)] // bindgen's output: the WIT documents it
        wasmtime::component::bindgen!({ path: "../wit/since_v0.1.0", world: "output-truncation" });
    }

    /// The `event-filter` world of 0.1.
    pub mod filter {
        #![allow(missing_docs)] // bindgen's output: the WIT documents it
        wasmtime::component::bindgen!({ path: "../wit/since_v0.1.0", world: "event-filter" });
    }
}

/// The `host` interface, the same for every world and line: `config()` and `log()`.
macro_rules! impl_host {
    ($($world:ident)::+) => {
        impl $($world)::+::codex_jobhost::policy::host::Host for State {
            fn config(&mut self) -> String {
                self.config.to_string()
            }

            fn log(&mut self, level: $($world)::+::codex_jobhost::policy::host::Level, message: String) {
                use $($world)::+::codex_jobhost::policy::host::Level;
                let level = match level {
                    Level::Trace => tracing::Level::TRACE,
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                self.log.line(Source::Log(level), &message);
            }
        }
        impl $($world)::+::codex_jobhost::policy::types::Host for State {}
    };
}
impl_host!(approval);
impl_host!(truncation);
impl_host!(filter);
impl_host!(v0_2::approval);
impl_host!(v0_2::truncation);
impl_host!(v0_2::filter);
impl_host!(v0_1::approval);
impl_host!(v0_1::truncation);
impl_host!(v0_1::filter);

/// Adds the `approval-policy` world's host imports, of every line, to a linker.
pub fn add_approval(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    approval::ApprovalPolicy::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::approval::ApprovalPolicy::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_1::approval::ApprovalPolicy::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Adds the `output-truncation` world's host imports, of every line, to a linker.
pub fn add_truncation(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    truncation::OutputTruncation::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::truncation::OutputTruncation::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_1::truncation::OutputTruncation::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Adds the `event-filter` world's host imports, of every line, to a linker.
pub fn add_filter(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    filter::EventFilter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::filter::EventFilter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_1::filter::EventFilter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// The job as a world's generated WIT type (`job-info` is the same in every line).
macro_rules! job_info {
    ($($world:ident)::+) => {
        impl From<&JobContext> for $($world)::+::codex_jobhost::policy::types::JobInfo {
            fn from(job: &JobContext) -> Self {
                Self {
                    job_id: job.job_id.clone(),
                    backend: job.backend.clone(),
                    cwd: job.cwd.clone(),
                    project_root: job.project_root.clone(),
                    prompt: job.prompt.clone(),
                }
            }
        }
    };
}
job_info!(approval);
job_info!(truncation);
job_info!(filter);
job_info!(v0_2::approval);
job_info!(v0_2::truncation);
job_info!(v0_2::filter);
job_info!(v0_1::approval);
job_info!(v0_1::truncation);
job_info!(v0_1::filter);

/// The end a cut keeps, as a line's generated WIT type (0.2 and later).
macro_rules! wit_keep {
    ($keep:expr, $($line:ident)::+) => {{
        use $($line)::+::truncation::exports::codex_jobhost::policy::truncation::Keep as Wit;
        match $keep {
            codex_jobhost_policy::Keep::Head => Wit::Head,
            codex_jobhost_policy::Keep::Tail => Wit::Tail,
        }
    }};
}
pub(crate) use wit_keep;

/// A request as the generated WIT type of a line of 0.2 or later (`wit`, in
/// scope where it is used); `tool_call` makes a tool call's, which 0.2 lacks.
macro_rules! wit_request_of {
    ($request:expr, $tool_call:expr) => {{
        let launch = |l: codex_jobhost_policy::Launch| wit::LaunchRequest {
            approval_mode: l.approval_mode,
            sandbox: l.sandbox,
            model: l.model,
            backend: l.backend,
            network_access: l.network_access,
            config: l.config,
            extra_args: l.extra_args,
            unjudged: l.unjudged,
        };
        let origin = |o: Option<codex_jobhost_policy::Origin>| {
            o.map(|o| wit::Origin { thread_id: o.thread_id, turn_id: o.turn_id, item_id: o.item_id })
        };
        match $request.clone() {
            Request::Launch(l) => Some(wit::Request::Launch(launch(l))),
            Request::Reply { prompt, turn, settings } => {
                Some(wit::Request::Reply(wit::ReplyRequest { prompt, turn, settings: launch(settings) }))
            }
            Request::Command { command, argv, raw, cwd, reason, network_host, origin: o } => {
                Some(wit::Request::Command(wit::CommandRequest {
                    command,
                    argv,
                    raw,
                    cwd,
                    reason,
                    network_host,
                    origin: origin(o),
                }))
            }
            Request::FileChange { paths, kind, reason, origin: o } => {
                Some(wit::Request::FileChange(wit::FileChangeRequest {
                    paths,
                    kind: match kind {
                        ChangeKind::Add => wit::ChangeKind::Add,
                        ChangeKind::Delete => wit::ChangeKind::Delete,
                        ChangeKind::Update => wit::ChangeKind::Update,
                    },
                    reason,
                    origin: origin(o),
                }))
            }
            Request::Permissions { permissions, network, reason, origin: o } => {
                Some(wit::Request::Permissions(wit::PermissionsRequest {
                    permissions,
                    network,
                    reason,
                    origin: origin(o),
                }))
            }
            Request::ToolCall { server, tool, arguments, origin: o } => $tool_call(server, tool, arguments, origin(o)),
        }
    }};
}

/// A request as the latest line's generated WIT type.
pub(crate) fn wit_request(request: &Request) -> approval::exports::codex_jobhost::policy::approval::Request {
    use approval::exports::codex_jobhost::policy::approval as wit;
    let tool_call = |server, tool, arguments, origin| {
        Some(wit::Request::ToolCall(wit::ToolCallRequest { server, tool, arguments, origin }))
    };
    match wit_request_of!(request, tool_call) {
        Some(request) => request,
        None => unreachable!("every request has a form in the latest line"),
    }
}

/// A request as 0.2's generated WIT type; `None` for a tool call, which 0.2
/// cannot express (its guest's answer counts as `ask`).
pub(crate) fn v0_2_request(
    request: &Request,
) -> Option<v0_2::approval::exports::codex_jobhost::policy::approval::Request> {
    use v0_2::approval::exports::codex_jobhost::policy::approval as wit;
    wit_request_of!(request, |_, _, _, _: Option<wit::Origin>| None)
}

/// A request as 0.1's generated WIT type. What 0.1 cannot express is adapted:
/// a reply is asked as a launch with the job's settings; a command gets its
/// unwrapped `command` only; a launch's settings only mode, sandbox and model;
/// origins, network hosts and flags are left out; a tool call is not asked
/// (`None`: its guest's answer counts as `ask`).
pub(crate) fn v0_1_request(
    request: &Request,
) -> Option<v0_1::approval::exports::codex_jobhost::policy::approval::Request> {
    use v0_1::approval::exports::codex_jobhost::policy::approval as wit;
    let launch = |l: codex_jobhost_policy::Launch| {
        wit::Request::Launch(wit::LaunchRequest { approval_mode: l.approval_mode, sandbox: l.sandbox, model: l.model })
    };
    Some(match request.clone() {
        Request::Launch(l) | Request::Reply { settings: l, .. } => launch(l),
        Request::Command { command, cwd, reason, .. } => {
            wit::Request::Command(wit::CommandRequest { command, cwd, reason })
        }
        Request::FileChange { paths, kind, reason, .. } => wit::Request::FileChange(wit::FileChangeRequest {
            paths,
            kind: match kind {
                ChangeKind::Add => wit::ChangeKind::Add,
                ChangeKind::Delete => wit::ChangeKind::Delete,
                ChangeKind::Update => wit::ChangeKind::Update,
            },
            reason,
        }),
        Request::Permissions { permissions, reason, .. } => {
            wit::Request::Permissions(wit::PermissionsRequest { permissions, reason })
        }
        Request::ToolCall { .. } => return None,
    })
}

/// A decision from a line's generated WIT type (the same in every line).
macro_rules! decision_from {
    ($($world:ident)::+) => {
        impl From<$($world)::+::exports::codex_jobhost::policy::approval::Decision> for Decision {
            fn from(d: $($world)::+::exports::codex_jobhost::policy::approval::Decision) -> Self {
                use $($world)::+::exports::codex_jobhost::policy::approval::Decision as W;
                match d {
                    W::Accept => Decision::Accept,
                    W::AcceptForSession => Decision::AcceptForSession,
                    W::Decline(r) => Decision::Decline(r),
                    W::Cancel(r) => Decision::Cancel(r),
                    W::Ask => Decision::Ask,
                }
            }
        }
    };
}
decision_from!(approval);
decision_from!(v0_2::approval);
decision_from!(v0_1::approval);
