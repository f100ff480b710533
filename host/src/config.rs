//! Where the host keeps its state and which Codex it runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

/// Everything a [`crate::JobHost`] needs to know from its environment.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The job home: `jobs/`, `notifications.jsonl`.
    pub home: PathBuf,
    /// Codex CLI to run (`--codex-bin` / `CODEX_BIN`); `None`: `codex` on `PATH`.
    pub codex_bin: Option<PathBuf>,
    /// This program, re-executed as `supervise` for every turn.
    pub host_exe: PathBuf,
    /// How long `job_cancel` waits after SIGTERM before SIGKILL.
    pub cancel_grace: Duration,
}

impl HostConfig {
    /// A configuration for `home` (or [`default_home`]) running this executable as the supervisor.
    pub fn new(home: Option<PathBuf>, codex_bin: Option<PathBuf>) -> Result<Self> {
        let home = match home {
            Some(h) => std::path::absolute(h)?,
            None => default_home()?,
        };
        let host_exe = std::env::current_exe().context("cannot find this program's own path")?;
        Ok(HostConfig { home, codex_bin, host_exe, cancel_grace: Duration::from_secs(5) })
    }
}

/// `~/.codex-jobhost`, used when `CODEX_JOBHOST_HOME` is not set.
pub fn default_home() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("cannot find the job home: neither CODEX_JOBHOST_HOME nor HOME is set (pass --home)")?;
    Ok(PathBuf::from(home).join(".codex-jobhost"))
}
