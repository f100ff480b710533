//! Host bindings of the WIT package `codex-jobhost:policy`, one module per
//! world, for the one supported version line (0.1.x). A new incompatible WIT
//! version gets its own modules beside these; see [`SUPPORTED`].

use wasmtime::component::HasSelf;

use super::guest::State;
use super::guest_log::Source;
use super::{ChangeKind, Decision, JobContext, Request};

/// The WIT package the host implements, and the versions it accepts: every
/// `0.1.x` (for 0.y versions, semver's compatible line is `0.y`).
pub const PACKAGE: &str = "codex-jobhost:policy";
/// The supported version line, as `major.minor` for 0.y versions.
pub const SUPPORTED: &str = "0.1";

/// The `approval-policy` world.
pub mod approval {
    wasmtime::component::bindgen!({ path: "../wit", world: "approval-policy" });
}

/// The `output-truncation` world.
pub mod truncation {
    wasmtime::component::bindgen!({ path: "../wit", world: "output-truncation" });
}

/// The `event-filter` world.
pub mod filter {
    wasmtime::component::bindgen!({ path: "../wit", world: "event-filter" });
}

/// The `host` interface, the same for every world: `config()` and `log()`.
macro_rules! impl_host {
    ($world:ident) => {
        impl $world::codex_jobhost::policy::host::Host for State {
            fn config(&mut self) -> String {
                self.config.to_string()
            }

            fn log(&mut self, level: $world::codex_jobhost::policy::host::Level, message: String) {
                use $world::codex_jobhost::policy::host::Level;
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
        impl $world::codex_jobhost::policy::types::Host for State {}
    };
}
impl_host!(approval);
impl_host!(truncation);
impl_host!(filter);

/// Adds a world's host imports to a linker.
pub fn add_approval(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    approval::ApprovalPolicy::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Adds a world's host imports to a linker.
pub fn add_truncation(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    truncation::OutputTruncation::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Adds a world's host imports to a linker.
pub fn add_filter(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
    filter::EventFilter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

macro_rules! job_info {
    ($fn:ident, $world:ident) => {
        /// The job as this world's generated WIT type.
        pub(crate) fn $fn(job: &JobContext) -> $world::codex_jobhost::policy::types::JobInfo {
            $world::codex_jobhost::policy::types::JobInfo {
                job_id: job.job_id.clone(),
                backend: job.backend.clone(),
                cwd: job.cwd.clone(),
                project_root: job.project_root.clone(),
                prompt: job.prompt.clone(),
            }
        }
    };
}
job_info!(approval_job, approval);
job_info!(truncation_job, truncation);
job_info!(filter_job, filter);

/// A request as the generated WIT type.
pub(crate) fn wit_request(request: &Request) -> approval::exports::codex_jobhost::policy::approval::Request {
    use approval::exports::codex_jobhost::policy::approval as wit;
    match request.clone() {
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

/// A decision from the generated WIT type.
pub(crate) fn decision(d: approval::exports::codex_jobhost::policy::approval::Decision) -> Decision {
    use approval::exports::codex_jobhost::policy::approval::Decision as W;
    match d {
        W::Accept => Decision::Accept,
        W::AcceptForSession => Decision::AcceptForSession,
        W::Decline(r) => Decision::Decline(r),
        W::Cancel(r) => Decision::Cancel(r),
        W::Ask => Decision::Ask,
    }
}
