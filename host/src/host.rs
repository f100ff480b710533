//! `JobHost`: the one façade that the MCP tools and the CLI both call. Its
//! methods live by concern: [`tools`] (every tool's arguments and results),
//! `launch` (job_start, job_reply), `read` (the read tools), `approvals`
//! (job_approve), `turn_report` (one turn, as an MCP task reports it),
//! `lifecycle` (queueing, admitting, watching, settling and cancelling
//! turns), `gc`, `shape` (redaction of results), `checks`.

mod approvals;
mod checks;
mod gc;
mod launch;
mod lifecycle;
mod read;
mod shape;
pub mod tools;
pub mod transcript;
mod turn_report;

pub use gc::GcReport;
pub use tools::*;
pub use turn_report::{EarlierTurn, TurnReport, TurnResult};

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::OnceCell;

use crate::backend::CodexCli;
use crate::config::HostConfig;
use crate::job::{BackendKind, JobStore, Registry};
use crate::policy::Policies;

/// The job host: starts, reads, waits for, replies to and cancels jobs.
/// Cheap to share (`Arc<JobHost>`); all methods take `&self`.
pub struct JobHost {
    config: HostConfig,
    store: JobStore,
    registry: Registry,
    codex: OnceCell<CodexCli>,
    policies: Policies,
    /// The turns this host follows, watches and admits.
    turns: lifecycle::Turns,
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
            turns: lifecycle::Turns::default(),
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

    /// The backend `job_start` gives a job that names none: `app-server`
    /// where the installed Codex has it, else `exec` (also when no Codex is
    /// found, where no job would start at all).
    pub async fn default_backend(&self) -> BackendKind {
        match self.codex().await {
            Ok(cli) => crate::backend::choose(None, cli).unwrap_or(BackendKind::Exec),
            Err(_) => BackendKind::Exec,
        }
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
}
