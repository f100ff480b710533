//! Retention: `codex-jobhost jobs gc` removes ended jobs older than a cutoff.
//! A queued or running job (status not terminal, or its supervisor's lock
//! held) is never collected; the notification feed is not rewritten, so its
//! cursors stay valid (a notification of a collected job is still returned).

use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;
use serde::Serialize;

use super::JobHost;
use crate::job::JobStatus;

/// What `jobs gc` did (or, with `dry_run`, would do).
#[derive(Debug, Serialize)]
pub struct GcReport {
    /// The ids of the jobs removed (or to remove).
    pub removed: Vec<String>,
    /// Bytes their directories held.
    pub freed_bytes: u64,
    /// Jobs left because they are queued or running.
    pub live: usize,
    /// Leftovers of crashed creations or collections deleted (`jobs/.new-*`, `jobs/.gc-*`).
    pub leftovers: usize,
    /// Bytes of pinned policy copies (`pinned/`) removed: those no job left
    /// uses and nobody pinned within the last hour.
    pub pinned_freed_bytes: u64,
    /// Whether nothing was removed (a preview).
    pub dry_run: bool,
}

/// How old a leftover `.new-*` or `.gc-*` directory must be to be deleted:
/// a creation in progress takes milliseconds.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

impl JobHost {
    /// Removes ended jobs whose last turn ended (or, never started, that were
    /// created) more than `older_than` ago, with one of `statuses` (empty:
    /// any terminal status). Each job is checked under its lock: a job that is
    /// not terminal or whose supervisor lock is held is kept.
    ///
    /// Errors: the jobs directory cannot be listed, or a job cannot be removed
    /// (the message names it); jobs removed before the error stay removed.
    pub fn gc(&self, older_than: Duration, statuses: &[JobStatus], dry_run: bool) -> Result<GcReport> {
        let cutoff = Timestamp::now() - jiff::SignedDuration::try_from(older_than)?;
        let mut report =
            GcReport { removed: Vec::new(), freed_bytes: 0, live: 0, leftovers: 0, pinned_freed_bytes: 0, dry_run };
        for id in self.store.job_ids()? {
            let Ok(job) = self.store.job(id) else { continue };
            let _lock = job.lock()?;
            let Ok(meta) = job.read_meta() else { continue }; // unreadable: left for a person to look at
            if !meta.status.is_terminal() || job.try_supervisor_lock()?.is_none() {
                report.live += 1;
                continue;
            }
            let ended = meta.finished_at.unwrap_or(meta.created_at);
            if ended > cutoff || (!statuses.is_empty() && !statuses.contains(&meta.status)) {
                continue;
            }
            report.freed_bytes += dir_size(job.path());
            if !dry_run {
                self.store.remove(id)?;
                self.registry.remove(id);
            }
            report.removed.push(id.to_string());
        }
        if !dry_run {
            report.leftovers = self.store.remove_leftovers(LEFTOVER_AGE)?;
            report.pinned_freed_bytes = self.collect_pinned()?;
        }
        Ok(report)
    }
}

impl JobHost {
    /// Removes the pinned policy copies no remaining job uses (see
    /// [`crate::policy::Policies::collect_pinned`]); nothing when a job's
    /// `policies.json` cannot be read, since it may use any of them.
    fn collect_pinned(&self) -> Result<u64> {
        let mut referenced = std::collections::HashSet::new();
        for id in self.store.job_ids()? {
            let Ok(job) = self.store.job(id) else { continue };
            match job.read_meta().and_then(|meta| job.read_policies::<crate::policy::PinnedSet>(&meta)) {
                Ok(Some(pinned)) => referenced.extend(pinned.entries.into_iter().map(|e| e.sha256)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job = %id, "pinned policy copies kept: {e:#}");
                    return Ok(0);
                }
            }
        }
        crate::policy::Policies::collect_pinned(self.store.root(), &referenced)
    }

    /// Automatic retention: with `[jobs] retention_days` set, removes the ended
    /// jobs older than that ([`JobHost::gc`]); `None` when it is not set.
    ///
    /// Errors: as [`JobHost::gc`].
    pub fn apply_retention(&self) -> Result<Option<GcReport>> {
        match self.config.retention {
            Some(age) => self.gc(age, &[], false).map(Some),
            None => Ok(None),
        }
    }
}

/// Bytes of the files directly in `dir` (job directories are flat).
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}
