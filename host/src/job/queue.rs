//! The durable queue of turns: `<home>/queue/`, one file per turn that has
//! not ended, named `<queued_at in ns, 20 digits>-<job id>-<turn>` so that
//! the names sort in FIFO order.
//!
//! An entry holds a [`QueuedTurn`]: what the turn runs and, for a job's first
//! turn, the job's first records. `job_start` and `job_reply` write it
//! (fsynced, with its folder) before anything else of the turn, and answer
//! only after, so an acknowledged turn is on disk even if the machine goes
//! down the next instant. The job's directory of a new job is made from the
//! entry without fsync ([`JobStore::materialize`]); whoever finds it missing
//! (another server racing the start, a crash) makes it again from the entry.
//!
//! Admission ([`admit`]) runs under an exclusive `flock` on
//! `<home>/queue.lock`, so any number of servers on one home admit safely: it
//! walks the entries oldest first, counts the turns whose supervisor is alive
//! (its supervisor lock is held), starts queued turns while fewer than the
//! limit run, and hands the turns whose supervisor died without recording an
//! end to the caller to settle. The entry goes when the turn's end is recorded.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cap_std::fs::OpenOptions;
use serde::{Deserialize, Serialize};

use super::store::{FileLock, TurnSpec};
use super::{JobDir, JobId, JobMeta, JobStatus, JobStore};

/// The folder of entries, in the home.
pub const QUEUE_DIR: &str = "queue";
const QUEUE_LOCK: &str = "queue.lock";

/// One turn in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// When the turn was queued, in ns since the Unix epoch.
    pub queued_at_ns: i128,
    /// The job.
    pub job: JobId,
    /// The turn, from 0.
    pub turn: u32,
}

impl Entry {
    /// The entry of a job's current turn.
    pub fn of(meta: &JobMeta) -> Self {
        let at = meta.queued_at.unwrap_or(meta.created_at);
        Entry { queued_at_ns: at.as_nanosecond(), job: meta.id, turn: meta.turn }
    }

    fn name(&self) -> String {
        format!("{:020}-{}-{}", self.queued_at_ns, self.job, self.turn)
    }

    fn parse(name: &str) -> Option<Self> {
        let (at, rest) = name.split_once('-')?;
        let (job, turn) = rest.rsplit_once('-')?;
        Some(Entry { queued_at_ns: at.parse().ok()?, job: JobId::parse(job).ok()?, turn: turn.parse().ok()? })
    }
}

/// What one admission pass did.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Turns started now: the job and its supervisor's pid.
    pub started: Vec<(JobId, u32)>,
    /// Jobs whose turn was settled.
    pub settled: Vec<JobId>,
}

/// What a queue entry holds, as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueuedTurn {
    /// What the turn's supervisor runs.
    pub spec: TurnSpec,
    /// For a job's first turn: its `meta.json` as `job_start` wrote it, from
    /// which its directory is made (again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<JobMeta>,
}

impl JobStore {
    /// Adds the job's current turn (`meta`, as it will be once queued) to the
    /// queue, durably: the entry holding `spec` (and for turn 0 `meta`, the
    /// job's first records) is written to a temporary file, fsynced, renamed
    /// into place, and the folder fsynced. Errors name the entry; nothing is
    /// left behind then.
    pub fn enqueue(&self, meta: &JobMeta, spec: &TurnSpec) -> Result<()> {
        let entry = Entry::of(meta);
        let queue = self.queue_dir()?;
        let turn = QueuedTurn { spec: spec.clone(), first: (meta.turn == 0).then(|| meta.clone()) };
        let bytes = serde_json::to_vec(&turn)?;
        let write = || -> io::Result<()> {
            crate::failpoint_io!("enqueue")?;
            let mut tmp = cap_tempfile::TempFile::new(&queue)?;
            io::Write::write_all(tmp.as_file_mut(), &bytes)?;
            tmp.as_file().sync_all()?;
            tmp.replace(entry.name())
        };
        write().with_context(|| format!("cannot write {}/{QUEUE_DIR}/{}", self.root().display(), entry.name()))?;
        super::store::sync_dir(&self.root().join(QUEUE_DIR))
    }

    /// Puts back the entry of a job's queued turn that has none (a job of an
    /// earlier version, whose turn is in its `turn.json`): empty, it sends
    /// the supervisor to `turn.json`. Nothing when the entry is there.
    pub fn ensure_queued(&self, meta: &JobMeta) -> Result<()> {
        let entry = Entry::of(meta);
        let queue = self.queue_dir()?;
        if queue.exists(entry.name()) {
            return Ok(());
        }
        queue
            .open_with(entry.name(), OpenOptions::new().write(true).create(true))
            .with_context(|| format!("cannot create {}/{QUEUE_DIR}/{}", self.root().display(), entry.name()))?;
        super::store::sync_dir(&self.root().join(QUEUE_DIR))
    }

    /// What the job's current turn (`meta`, just read) runs: from its queue
    /// entry, or from `turn.json` when the entry is empty (queued by an earlier version).
    ///
    /// Errors: the entry is gone (the turn ended or was never queued) or
    /// cannot be read; the message names it.
    pub fn turn_to_run(&self, job: &JobDir, meta: &JobMeta) -> Result<TurnSpec> {
        match self.queued_turn(&Entry::of(meta))? {
            Some(turn) => Ok(turn.spec),
            None => job.read_turn(),
        }
    }

    /// The contents of `entry`: `None` when it is empty (written by an earlier version).
    fn queued_turn(&self, entry: &Entry) -> Result<Option<QueuedTurn>> {
        let path = || format!("{}/{QUEUE_DIR}/{}", self.root().display(), entry.name());
        let bytes = self.queue_dir()?.read(entry.name()).with_context(|| format!("cannot read {}", path()))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let turn = serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid queue entry", path()))?;
        Ok(Some(turn))
    }

    /// The directory of `entry`'s job, made from the entry's first records
    /// when the entry is a job's first turn and the directory is missing (a
    /// start still under way in another server, or a crash of the machine).
    /// `None` when there is neither: the job was removed, the entry is stale.
    pub fn job_of(&self, entry: &Entry) -> Result<Option<JobDir>> {
        match self.job(entry.job) {
            Ok(job) => Ok(Some(job)),
            Err(e) if e.downcast_ref::<crate::InvalidInput>().is_some() => {
                match self.queued_turn(entry).ok().flatten().and_then(|t| t.first) {
                    Some(first) => self.materialize(&first).map(Some),
                    None => Ok(None),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// After a crash of the machine: makes whole the first records of every
    /// queued job's first turn that the crash cost (see
    /// [`JobDir::restore_first`]), so that each is listed and admitted as it
    /// was acknowledged. Each job is looked at under its supervisor lock;
    /// errors are logged per job.
    pub fn restore_queued(&self) -> Result<()> {
        for entry in self.queued()?.into_iter().filter(|e| e.turn == 0) {
            let restored = (|| -> Result<()> {
                let Some(job) = self.job_of(&entry)? else { return Ok(()) };
                if job.read_meta().is_ok() {
                    return Ok(());
                }
                let Some(_lock) = job.try_supervisor_lock()? else { return Ok(()) };
                if let Some(first) = self.queued_turn(&entry)?.and_then(|t| t.first) {
                    job.restore_first(&first)?;
                }
                Ok(())
            })();
            if let Err(e) = restored {
                tracing::warn!(job = %entry.job, "cannot restore the queued job: {e:#}");
            }
        }
        Ok(())
    }

    /// Removes the job's current turn from the queue (nothing when it is not there).
    pub fn dequeue(&self, meta: &JobMeta) -> Result<()> {
        remove_entry(self, &Entry::of(meta))
    }

    /// The queue, oldest first.
    pub fn queued(&self) -> Result<Vec<Entry>> {
        let queue = self.queue_dir()?;
        let mut entries = Vec::new();
        for item in queue.entries().with_context(|| format!("cannot list {}/{QUEUE_DIR}", self.root().display()))? {
            if let Some(entry) = item?.file_name().to_str().and_then(Entry::parse) {
                entries.push(entry);
            }
        }
        entries.sort_unstable();
        Ok(entries)
    }

    fn queue_dir(&self) -> Result<cap_std::fs::Dir> {
        self.home_dir()
            .open_dir(QUEUE_DIR)
            .with_context(|| format!("cannot open {}/{QUEUE_DIR}", self.root().display()))
    }
}

/// One admission pass over the queue, under the home's queue lock: at most
/// `max_running` turns run once it is done (those already running count),
/// and at most its own limit in each project.
///
/// - `project_limit(cwd)` names the project of a job working in `cwd` and
///   the most turns that may run in it at once, if it has a limit; a turn
///   whose project is full waits without holding up other projects' turns.
/// - `spawn(job, lock)` starts a queued turn's supervisor, handing it the
///   job's supervisor lock, and returns its pid.
/// - `settle(job, lock, error)` records the end of a turn whose supervisor is
///   gone and removes its entry (`supervisor::record_end` does both). It gets
///   the supervisor lock, so no one else settles at once; `error` is set for
///   a turn whose supervisor could not be started.
pub fn admit(
    store: &JobStore,
    max_running: usize,
    mut project_limit: impl FnMut(&Path) -> Option<(PathBuf, usize)>,
    mut spawn: impl FnMut(&JobDir, FileLock) -> Result<u32>,
    mut settle: impl FnMut(&JobDir, FileLock, Option<String>) -> Result<()>,
) -> Result<Admitted> {
    let lock_file = store
        .home_dir()
        .open_with(QUEUE_LOCK, OpenOptions::new().read(true).write(true).create(true))
        .with_context(|| format!("cannot open {}/{QUEUE_LOCK}", store.root().display()))?;
    rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("cannot lock {}/{QUEUE_LOCK}", store.root().display()))?;
    let mut done = Admitted::default();
    let mut running = 0;
    let mut running_in: HashMap<PathBuf, usize> = HashMap::new();
    let mut ready = Vec::new();
    for entry in store.queued()? {
        let Some(job) = store.job_of(&entry)? else {
            // Its job directory was removed (by hand): the entry is stale.
            remove_entry(store, &entry)?;
            continue;
        };
        let Some(lock) = job.try_supervisor_lock()? else {
            running += 1;
            if let Some((project, _)) = job.read_meta().ok().and_then(|m| project_limit(&m.cwd)) {
                *running_in.entry(project).or_default() += 1;
            }
            continue;
        };
        let meta = match job.read_meta() {
            Ok(meta) => meta,
            Err(e) => {
                // One damaged job does not hold up the queue.
                tracing::warn!(job = %entry.job, "not admitted: {e:#}");
                continue;
            }
        };
        if entry.turn > meta.turn {
            // A reply writes its entry before meta.json, under the job's lock:
            // held, the reply is under way; free, it died before answering.
            if let Some(_reply_is_over) = job.try_lock()?
                && job.read_meta()?.turn < entry.turn
            {
                remove_entry(store, &entry)?;
            }
            continue;
        }
        if meta.turn == entry.turn && meta.status == JobStatus::Queued && meta.pid.is_none() {
            ready.push((job, lock, meta.cwd));
        } else if meta.turn == entry.turn {
            // Its supervisor died (before or after starting Codex) without
            // recording the end, or recorded it without finishing (the
            // notification or this entry): complete it (which removes the entry).
            settle(&job, lock, None)?;
            done.settled.push(entry.job);
        } else {
            remove_entry(store, &entry)?; // an older turn, long over
        }
    }
    for (job, lock, cwd) in ready {
        if running >= max_running {
            break;
        }
        let project = project_limit(&cwd);
        if let Some((root, limit)) = &project
            && running_in.get(root).copied().unwrap_or(0) >= *limit
        {
            continue;
        }
        crate::failpoint!("admit-before-spawn");
        match spawn(&job, lock) {
            Ok(pid) => {
                running += 1;
                if let Some((root, _)) = project {
                    *running_in.entry(root).or_default() += 1;
                }
                done.started.push((job.id(), pid));
            }
            Err(e) => {
                // The lock went with the failed spawn's file; take it again to settle.
                if let Some(lock) = job.try_supervisor_lock()? {
                    settle(&job, lock, Some(format!("cannot start the job's supervisor: {e:#}")))?;
                    done.settled.push(job.id());
                }
            }
        }
    }
    drop(lock_file);
    Ok(done)
}

fn remove_entry(store: &JobStore, entry: &Entry) -> Result<()> {
    match store.queue_dir()?.remove_file(entry.name()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            Err(e).with_context(|| format!("cannot remove {}/{QUEUE_DIR}/{}", store.root().display(), entry.name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_round_trip_and_sort_oldest_first() {
        let (a, b) = (JobId::new(), JobId::new());
        let first = Entry { queued_at_ns: 5, job: b, turn: 3 };
        let second = Entry { queued_at_ns: 1_700_000_000_000_000_000, job: a, turn: 0 };
        assert_eq!(Entry::parse(&first.name()), Some(first));
        assert!(first.name() < second.name());
        assert_eq!(Entry::parse("junk"), None);
    }
}
