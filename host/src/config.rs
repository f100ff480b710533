//! Where the host keeps its state and which Codex it runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

/// A project's settings file, relative to its root: its policies and `[jobs] max_running`.
pub const PROJECT_FILE: &str = ".codex/jobhost.toml";

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
    /// Most turns that run at once in this home; more wait in the queue.
    /// `[jobs] max_running` in `<home>/config.toml`; default [`default_max_running`].
    pub max_running: usize,
    /// Ended jobs older than this are removed by a running server (at its
    /// start, then daily), as `jobs gc --older-than` would:
    /// `[jobs] retention_days`; none (the default): jobs are kept until `jobs gc`.
    pub retention: Option<Duration>,
    /// What each turn's supervisor is told of the user's settings:
    /// `[jobs] output_max_mib` and `approval_timeout_s`.
    pub turn_settings: crate::job::TurnSettings,
}

impl HostConfig {
    /// A configuration for `home` (or [`default_home`]) running this executable as the supervisor.
    pub fn new(home: Option<PathBuf>, codex_bin: Option<PathBuf>) -> Result<Self> {
        let home = match home {
            Some(h) => std::path::absolute(h)?,
            None => default_home()?,
        };
        let host_exe = std::env::current_exe().context("cannot find this program's own path")?;
        let user_file = home.join(crate::home::USER_FILE);
        let jobs = read_jobs(&user_file)?;
        let max_running = jobs_setting(&user_file, &jobs, "max_running")?.unwrap_or_else(default_max_running);
        let retention =
            jobs_setting(&user_file, &jobs, "retention_days")?.map(|d| Duration::from_secs(d as u64 * 24 * 3600));
        let turn_settings = crate::job::TurnSettings {
            output_max_bytes: jobs_setting(&user_file, &jobs, "output_max_mib")?
                .map_or(crate::job::output::DEFAULT_MAX_BYTES, |m| (m as u64) << 20),
            approval_timeout_s: jobs_setting(&user_file, &jobs, "approval_timeout_s")?.map(|s| s as u64),
        };
        Ok(HostConfig {
            home,
            codex_bin,
            host_exe,
            cancel_grace: Duration::from_secs(5),
            max_running,
            retention,
            turn_settings,
        })
    }
}

/// The default limit on running turns: the number of CPUs, at least 2. A
/// Codex turn spends most of its time waiting for the model, but its start
/// and the commands it runs (builds, tests) take a core each.
pub fn default_max_running() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

/// `[jobs] max_running` in a project's `.codex/jobhost.toml`, if set: most
/// turns of that project (jobs whose `cwd` is at or under `project_root`)
/// that run at once. It can only lower the home's limit, which applies too.
///
/// Errors: as for [`project_jobs`].
pub fn project_max_running(project_root: &std::path::Path) -> Result<Option<usize>> {
    let path = project_root.join(PROJECT_FILE);
    project_jobs(&path, &read_jobs(&path)?)
}

/// Checks the `[jobs]` table of a project's file `path` and returns its
/// `max_running`, if set (the policy loader checks it so, once per change).
///
/// Errors: any other key (the other settings are the user's), or a value
/// that is not a whole number from 1 up; the message names the file.
pub fn project_jobs(path: &std::path::Path, jobs: &toml::Table) -> Result<Option<usize>> {
    if let Some(key) = jobs.keys().find(|k| *k != "max_running") {
        anyhow::bail!("{}: [jobs] {key} cannot be set by a project: only max_running can", path.display());
    }
    jobs_setting(path, jobs, "max_running")
}

/// The `[jobs]` table of the TOML file `path`; empty when the file or the
/// table is missing. Errors: the file cannot be read or is not TOML.
fn read_jobs(path: &std::path::Path) -> Result<toml::Table> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(toml::Table::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    Ok(match table.remove("jobs") {
        Some(toml::Value::Table(jobs)) => jobs,
        _ => toml::Table::new(),
    })
}

/// A whole number from 1 up under `key` in the `[jobs]` table `jobs` of the
/// file `path` (the user's `config.toml`: `max_running`,
/// `approval_timeout_s`, `retention_days`, `output_max_mib`; a project's
/// `jobhost.toml`: `max_running`), if set.
///
/// Errors: the value is not a whole number from 1 up; the message names the
/// file, the key and the value.
fn jobs_setting(path: &std::path::Path, jobs: &toml::Table, key: &str) -> Result<Option<usize>> {
    let Some(value) = jobs.get(key) else {
        return Ok(None);
    };
    match value.as_integer().and_then(|n| usize::try_from(n).ok()).filter(|n| *n >= 1) {
        Some(n) => Ok(Some(n)),
        None => {
            anyhow::bail!("{}: invalid [jobs] {key} {value}: expected a whole number from 1 up", path.display())
        }
    }
}

/// `~/.codex-jobhost`, used when `CODEX_JOBHOST_HOME` is not set.
pub fn default_home() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("cannot find the job home: neither CODEX_JOBHOST_HOME nor HOME is set (pass --home)")?;
    Ok(PathBuf::from(home).join(".codex-jobhost"))
}
