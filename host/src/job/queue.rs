//! The durable queue of turns: one file per turn that has not ended, named
//! `<queued_at in ns, 20 digits>-<job id>-<turn>` so that the names sort in
//! FIFO order. A turn's entry waits in `<home>/queue/`; admission moves it
//! to `<home>/admitted/` when it starts the turn's supervisor, and it goes
//! when the turn's end is recorded.
//!
//! An entry holds a [`QueuedTurn`]: what the turn runs and, for a job's first
//! turn, the job's first records. `job_start` and `job_reply` write it before
//! anything else of the turn and answer only once it is fsynced, with its
//! folder, so an acknowledged turn is on disk even if the machine goes down
//! the next instant. The job's directory of a new job is made from the same
//! records without fsync ([`JobStore::materialize`]), while the entry's
//! fsync runs; whoever finds it missing (another server racing the start, a
//! crash) makes it again from the entry.
//!
//! Admission ([`admit`]) runs under an exclusive `flock` on
//! `<home>/queue.lock`, so any number of servers on one home admit safely: it
//! counts the admitted turns whose supervisor is alive (its supervisor lock
//! is held) and hands those whose supervisor died without recording an end to
//! the caller to settle, then starts waiting turns oldest first while fewer
//! than the limit run. Admitted turns are few (about the limit), and waiting
//! ones are read only while places are free, so a pass costs about the same
//! with 2 or 2,000 turns waiting. The move to `admitted/` is not fsynced: a
//! crash may put the entry back in `queue/`, where admission finds its state
//! the same way.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cap_std::fs::OpenOptions;
use serde::{Deserialize, Serialize};

use super::store::FileLock;
use super::{JobDir, JobId, JobMeta, JobStatus, JobStore};
use crate::home::{ADMITTED_DIR, QUEUE_DIR, QUEUE_LOCK};

/// Where an entry may be, in the order it is looked for.
const FOLDERS: [&str; 2] = [ADMITTED_DIR, QUEUE_DIR];

/// What the supervisor of a job's current turn runs, handed over in the
/// turn's queue entry rather than on its command line (no size limit of the
/// kernel's, and `ps` shows no prompt).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnSpec {
    /// The turn this is for, from 0.
    pub turn: u32,
    /// The agent program (the native Codex binary).
    pub program: PathBuf,
    /// Arguments after the program; the prompt is not among them (it is `-`: stdin).
    pub args: Vec<String>,
    /// Environment added for the agent (e.g. what Codex's npm launcher would set).
    pub env: Vec<(String, String)>,
    /// The turn's prompt, written to the agent's stdin.
    pub prompt: String,
    /// The user's settings the supervisor runs the turn with, as the host
    /// read them when it queued the turn (a supervisor reads no config file).
    #[serde(default)]
    pub settings: TurnSettings,
}

/// The user's `[jobs]` settings a turn's supervisor needs; an entry of an
/// earlier version, which has none, gets the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnSettings {
    /// Most bytes `output.log` keeps (`[jobs] output_max_mib`; see [`super::output`]).
    pub output_max_bytes: u64,
    /// How long an approval request waits for an answer when the job does
    /// not say (`[jobs] approval_timeout_s`), in seconds; `None`: 15 minutes.
    pub approval_timeout_s: Option<u64>,
}

impl Default for TurnSettings {
    fn default() -> Self {
        TurnSettings { output_max_bytes: super::output::DEFAULT_MAX_BYTES, approval_timeout_s: None }
    }
}

/// The home's durable queue of turns (see the module docs), over its job store.
#[derive(Clone, Copy)]
pub struct Queue<'a> {
    store: &'a JobStore,
}

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

    /// The entry a file in the queue's folders is named for; `None` for
    /// other files (temporary ones).
    pub fn parse(name: &str) -> Option<Self> {
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

/// A queue entry in place but not yet durable: [`Written::sync`] makes it
/// so, or removes it.
#[must_use = "an entry is acknowledged only once synced"]
pub struct Written {
    file: cap_std::fs::File,
    queue: cap_std::fs::Dir,
    entry: Entry,
    path: PathBuf,
}

impl Written {
    /// fsyncs the entry, then `queue/` (in that order one commit of the file
    /// system's journal carries both on ext4, and the folder's fsync finds
    /// nothing left to do). On an error the entry is removed (it was never
    /// acknowledged) and the message names it.
    pub fn sync(self) -> Result<()> {
        let synced = crate::failpoint_io!("enqueue-sync")
            .and_then(|()| self.file.sync_all())
            .with_context(|| format!("cannot write {}", self.path.join(self.entry.name()).display()))
            .and_then(|()| super::store::sync_dir(&self.path));
        if synced.is_err() {
            let _ = self.queue.remove_file(self.entry.name());
        }
        synced
    }
}

impl<'a> Queue<'a> {
    /// The queue of the home `store` lives in.
    pub fn of(store: &'a JobStore) -> Self {
        Queue { store }
    }

    /// Adds the job's current turn (`meta`, as it will be once queued) to the
    /// queue, durably: [`Queue::write_entry`], then [`Written::sync`].
    pub fn enqueue(&self, meta: &JobMeta, spec: &TurnSpec) -> Result<()> {
        self.write_entry(meta, spec)?.sync()
    }

    /// Writes the entry of the job's current turn (`meta`, as it will be
    /// once queued), holding `spec` (and for turn 0 `meta`, the job's first
    /// records), to a temporary file renamed into place; not fsynced yet (see
    /// [`Written::sync`]). Errors name the entry; nothing is left behind then.
    pub fn write_entry(&self, meta: &JobMeta, spec: &TurnSpec) -> Result<Written> {
        let entry = Entry::of(meta);
        let queue = self.queue_dir(QUEUE_DIR)?;
        let turn = QueuedTurn { spec: spec.clone(), first: (meta.turn == 0).then(|| meta.clone()) };
        let bytes = serde_json::to_vec(&turn)?;
        let write = || -> io::Result<cap_std::fs::File> {
            crate::failpoint_io!("enqueue")?;
            let mut tmp = cap_tempfile::TempFile::new(&queue)?;
            io::Write::write_all(tmp.as_file_mut(), &bytes)?;
            let file = tmp.as_file().try_clone()?;
            tmp.replace(entry.name())?;
            Ok(file)
        };
        let path = self.store.root().join(QUEUE_DIR);
        let file = write().with_context(|| format!("cannot write {}/{}", path.display(), entry.name()))?;
        Ok(Written { file, queue, entry, path })
    }

    /// Puts back the entry of a job's queued turn that has none (a job of an
    /// earlier version, whose turn is in its `turn.json`): empty, it sends
    /// the supervisor to `turn.json`. Nothing when the entry is there,
    /// waiting or admitted.
    pub fn ensure_queued(&self, meta: &JobMeta) -> Result<()> {
        let entry = Entry::of(meta);
        for folder in FOLDERS {
            if self.queue_dir(folder)?.exists(entry.name()) {
                return Ok(());
            }
        }
        self.queue_dir(QUEUE_DIR)?
            .open_with(entry.name(), OpenOptions::new().write(true).create(true))
            .with_context(|| format!("cannot create {}/{QUEUE_DIR}/{}", self.store.root().display(), entry.name()))?;
        super::store::sync_dir(&self.store.root().join(QUEUE_DIR))
    }

    /// What the job's current turn (`meta`, just read) runs: from its queue
    /// entry, or from `turn.json` when the entry is empty (queued by an earlier version).
    ///
    /// Errors: the entry is gone (the turn ended or was never queued) or
    /// cannot be read; the message names it.
    pub fn turn_to_run(&self, job: &JobDir, meta: &JobMeta) -> Result<TurnSpec> {
        match self.queued_turn(&Entry::of(meta))? {
            Some(turn) => Ok(turn.spec),
            None => read_turn_json(job),
        }
    }

    /// The contents of `entry`, admitted or waiting: `None` when it is empty
    /// (written by an earlier version).
    fn queued_turn(&self, entry: &Entry) -> Result<Option<QueuedTurn>> {
        let mut folder = ADMITTED_DIR;
        let mut read = self.queue_dir(folder)?.read(entry.name());
        if read.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
            folder = QUEUE_DIR;
            read = self.queue_dir(folder)?.read(entry.name());
        }
        let path = || format!("{}/{folder}/{}", self.store.root().display(), entry.name());
        let bytes = read.with_context(|| format!("cannot read {}", path()))?;
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
        match self.store.job(entry.job) {
            Ok(job) => Ok(Some(job)),
            Err(e) if e.downcast_ref::<crate::InvalidInput>().is_some() => {
                match self.queued_turn(entry).ok().flatten().and_then(|t| t.first) {
                    Some(first) => self.store.materialize(&first).map(Some),
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

    /// Removes the job's current turn from the queue, waiting or admitted
    /// (nothing when it is not there).
    pub fn dequeue(&self, meta: &JobMeta) -> Result<()> {
        self.remove_entry(&Entry::of(meta))
    }

    /// Every turn in the queue, admitted and waiting, oldest first.
    pub fn queued(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for folder in FOLDERS {
            entries.extend(self.entries_in(folder)?);
        }
        entries.sort_unstable();
        Ok(entries)
    }

    /// The entries in `folder` (`queue` or `admitted`), oldest first.
    fn entries_in(&self, folder: &str) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let list = || format!("cannot list {}/{folder}", self.store.root().display());
        for item in self.queue_dir(folder)?.entries().with_context(list)? {
            if let Some(entry) = item.with_context(list)?.file_name().to_str().and_then(Entry::parse) {
                entries.push(entry);
            }
        }
        entries.sort_unstable();
        Ok(entries)
    }

    fn queue_dir(&self, folder: &str) -> Result<cap_std::fs::Dir> {
        self.store
            .home_dir()
            .open_dir(folder)
            .with_context(|| format!("cannot open {}/{folder}", self.store.root().display()))
    }

    /// Moves `entry` between `queue/` and `admitted/` (not fsynced: see the
    /// module's doc); nothing when it is gone (its turn's end was just recorded).
    fn move_entry(&self, entry: &Entry, from: &str, to: &str) -> Result<()> {
        let (from_dir, to_dir) = (self.queue_dir(from)?, self.queue_dir(to)?);
        match from_dir.rename(entry.name(), &to_dir, entry.name()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).with_context(|| {
                format!("cannot move {} from {from}/ to {to}/ in {}", entry.name(), self.store.root().display())
            }),
            _ => Ok(()),
        }
    }
}

/// One admission pass over the queue, under the home's queue lock: at most
/// `max_running` turns run once it is done (those already running count,
/// but not those whose agent waits for an answer, `input_required`: a turn
/// that is answered goes on even where that passes the limit, and the next
/// waits until places free), and at most its own limit in each project.
///
/// - `project_limit(cwd)` names the project of a job working in `cwd` and
///   the most turns that may run in it at once, if it has a limit; a turn
///   whose project is full waits without holding up other projects' turns.
/// - `spawn(job, lock)` starts a queued turn's supervisor, handing it the
///   job's supervisor lock, and returns its pid.
/// - `settle(job, lock, error)` records the end of a turn whose supervisor is
///   gone and removes its entry (`end::record_end` does both). It gets
///   the supervisor lock, so no one else settles at once; `error` is set for
///   a turn whose supervisor could not be started.
pub fn admit(
    queue: Queue<'_>,
    max_running: usize,
    project_limit: impl FnMut(&Path) -> Option<(PathBuf, usize)>,
    spawn: impl FnMut(&JobDir, FileLock) -> Result<u32>,
    settle: impl FnMut(&JobDir, FileLock, Option<String>) -> Result<()>,
) -> Result<Admitted> {
    let store = queue.store;
    let lock_file = store
        .home_dir()
        .open_with(QUEUE_LOCK, OpenOptions::new().read(true).write(true).create(true))
        .with_context(|| format!("cannot open {}/{QUEUE_LOCK}", store.root().display()))?;
    rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("cannot lock {}/{QUEUE_LOCK}", store.root().display()))?;
    let mut pass =
        Pass { queue, project_limit, settle, running: 0, running_in: HashMap::new(), done: Admitted::default() };
    // Admitted turns first: running ones tell how many places are free.
    for entry in queue.entries_in(ADMITTED_DIR)? {
        if let Found::Waiting(..) = pass.look(&entry)? {
            // Admitted, but its supervisor never started (a crash in between): back in line.
            queue.move_entry(&entry, ADMITTED_DIR, QUEUE_DIR)?;
        }
    }
    pass.start_waiting(max_running, spawn)?;
    drop(lock_file);
    Ok(pass.done)
}

/// What admission found of one entry's turn.
enum Found {
    /// Its supervisor is alive (counted).
    Running,
    /// Queued, not started: its job, its supervisor lock (taken) and cwd.
    Waiting(JobDir, FileLock, PathBuf),
    /// Nothing to start: settled, stale (removed), a reply under way, or unreadable.
    Other,
}

/// The state of one admission pass.
struct Pass<'a, L, S> {
    queue: Queue<'a>,
    project_limit: L,
    settle: S,
    /// Turns whose supervisor is alive, in all and per project.
    running: usize,
    running_in: HashMap<PathBuf, usize>,
    done: Admitted,
}

impl<L, S> Pass<'_, L, S>
where
    L: FnMut(&Path) -> Option<(PathBuf, usize)>,
    S: FnMut(&JobDir, FileLock, Option<String>) -> Result<()>,
{
    /// Looks at one entry: counts a turn whose supervisor is alive, settles
    /// one whose supervisor died, drops a stale entry.
    fn look(&mut self, entry: &Entry) -> Result<Found> {
        let Some(job) = self.queue.job_of(entry)? else {
            // Its job directory was removed (by hand): the entry is stale.
            self.queue.remove_entry(entry)?;
            return Ok(Found::Other);
        };
        let Some(lock) = job.try_supervisor_lock()? else {
            let meta = job.read_meta().ok();
            if meta.as_ref().is_some_and(|m| m.status == JobStatus::InputRequired && m.turn == entry.turn) {
                // Its agent waits for a person: it holds no place meanwhile.
                return Ok(Found::Running);
            }
            self.running += 1;
            let project = meta.and_then(|m| (self.project_limit)(&m.cwd));
            if let Some((root, _)) = project {
                *self.running_in.entry(root).or_default() += 1;
            }
            return Ok(Found::Running);
        };
        let meta = match job.read_meta() {
            Ok(meta) => meta,
            Err(e) => {
                // One damaged job does not hold up the queue.
                tracing::warn!(job = %entry.job, "not admitted: {e:#}");
                return Ok(Found::Other);
            }
        };
        if entry.turn > meta.turn {
            // A reply writes its entry before meta.json, under the job's lock:
            // held, the reply is under way; free, it died before answering.
            if let Some(_reply_is_over) = job.try_lock()?
                && job.read_meta()?.turn < entry.turn
            {
                self.queue.remove_entry(entry)?;
            }
            Ok(Found::Other)
        } else if meta.turn == entry.turn && meta.status == JobStatus::Queued && meta.pid.is_none() {
            Ok(Found::Waiting(job, lock, meta.cwd))
        } else if meta.turn == entry.turn {
            // Its supervisor died (before or after starting Codex) without
            // recording the end, or recorded it without finishing (the
            // notification or this entry): complete it (which removes the entry).
            (self.settle)(&job, lock, None)?;
            self.done.settled.push(entry.job);
            Ok(Found::Other)
        } else {
            self.queue.remove_entry(entry)?; // an older turn, long over
            Ok(Found::Other)
        }
    }

    /// Starts waiting turns, oldest first, while fewer than `max_running`
    /// run; reads the waiting entries only as far as that.
    fn start_waiting(
        &mut self,
        max_running: usize,
        mut spawn: impl FnMut(&JobDir, FileLock) -> Result<u32>,
    ) -> Result<()> {
        for entry in self.queue.entries_in(QUEUE_DIR)? {
            if self.running >= max_running {
                break;
            }
            let (job, lock, cwd) = match self.look(&entry)? {
                Found::Waiting(job, lock, cwd) => (job, lock, cwd),
                Found::Running => {
                    // Its entry still waits (queued by an earlier version, or a crash undid the move).
                    self.queue.move_entry(&entry, QUEUE_DIR, ADMITTED_DIR)?;
                    continue;
                }
                Found::Other => continue,
            };
            let project = (self.project_limit)(&cwd);
            if let Some((root, limit)) = &project
                && self.running_in.get(root).copied().unwrap_or(0) >= *limit
            {
                continue;
            }
            self.queue.move_entry(&entry, QUEUE_DIR, ADMITTED_DIR)?;
            crate::failpoint!("admit-before-spawn");
            match spawn(&job, lock) {
                Ok(pid) => {
                    self.running += 1;
                    if let Some((root, _)) = project {
                        *self.running_in.entry(root).or_default() += 1;
                    }
                    self.done.started.push((job.id(), pid));
                }
                Err(e) => {
                    // The lock went with the failed spawn's file; take it again to settle.
                    if let Some(lock) = job.try_supervisor_lock()? {
                        (self.settle)(&job, lock, Some(format!("cannot start the job's supervisor: {e:#}")))?;
                        self.done.settled.push(job.id());
                    }
                }
            }
        }
        Ok(())
    }
}

impl Queue<'_> {
    /// Removes `entry`, admitted or waiting (nothing when it is in neither).
    fn remove_entry(&self, entry: &Entry) -> Result<()> {
        for folder in FOLDERS {
            match self.queue_dir(folder)?.remove_file(entry.name()) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let root = self.store.root().display();
                    return Err(e).with_context(|| format!("cannot remove {root}/{folder}/{}", entry.name()));
                }
            }
        }
        Ok(())
    }
}

/// Reads `turn.json`, where earlier versions put a queued turn (now in its queue entry).
fn read_turn_json(job: &JobDir) -> Result<TurnSpec> {
    use crate::home::job::TURN;
    let path = job.path().display();
    let bytes = job.dir().read(TURN).with_context(|| format!("cannot read {path}/{TURN}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{path}/{TURN} is not a valid turn"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobOptions;

    /// A new job's first turn, queued as `job_start` queues it.
    fn queue_job(store: &JobStore) -> Entry {
        let options = JobOptions { approval_mode: "suggest".into(), ..Default::default() };
        let meta = JobMeta::queued(
            JobId::new(),
            "p",
            "/tmp".into(),
            crate::job::BackendKind::Exec,
            options,
            "/bin/codex".into(),
        );
        let spec = TurnSpec {
            turn: 0,
            program: "/bin/codex".into(),
            args: vec![],
            env: vec![],
            prompt: "p".into(),
            settings: Default::default(),
        };
        Queue::of(store).enqueue(&meta, &spec).unwrap();
        store.materialize(&meta).unwrap();
        Entry::of(&meta)
    }

    #[test]
    fn admission_reads_waiting_turns_only_while_places_are_free() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let queue = Queue::of(&store);
        let entries: Vec<Entry> = (0..3).map(|_| queue_job(&store)).collect();
        // Live supervisors hold their locks: the test keeps the ones it is handed.
        let mut held = Vec::new();
        let pass = |held: &mut Vec<FileLock>| {
            let spawn = |_: &JobDir, lock: FileLock| {
                held.push(lock);
                Ok(7)
            };
            let settle = |job: &JobDir, _: FileLock, _: Option<String>| -> Result<()> {
                panic!("nothing to settle, yet {} was", job.id())
            };
            admit(Queue::of(&store), 1, |_: &Path| None, spawn, settle).unwrap()
        };

        assert_eq!(pass(&mut held).started, [(entries[0].job, 7)]);
        assert_eq!(queue.entries_in(ADMITTED_DIR).unwrap(), [entries[0]]);
        assert_eq!(queue.entries_in(QUEUE_DIR).unwrap(), entries[1..]);

        // Full: no waiting turn is looked at (looking takes its supervisor lock, making the file).
        assert!(pass(&mut held).started.is_empty());
        for entry in &entries[1..] {
            let lock = store.job(entry.job).unwrap().path().join("supervisor.lock");
            assert!(!lock.exists(), "{} was looked at", entry.job);
        }

        // A running turn whose entry still waits (a crash undid the move) counts, and is moved.
        queue.move_entry(&entries[0], ADMITTED_DIR, QUEUE_DIR).unwrap();
        assert!(pass(&mut held).started.is_empty());
        assert_eq!(queue.entries_in(ADMITTED_DIR).unwrap(), [entries[0]]);

        // Its supervisor gone before it wrote anything (a crash right after admission):
        // the turn goes back in line, first, and starts again.
        held.clear();
        assert_eq!(pass(&mut held).started, [(entries[0].job, 7)]);
        assert_eq!(queue.entries_in(QUEUE_DIR).unwrap(), entries[1..]);

        // An entry that goes while admission moves it (its turn's end recorded meanwhile) is no error.
        queue.dequeue(&store.job(entries[0].job).unwrap().read_meta().unwrap()).unwrap();
        queue.move_entry(&entries[0], QUEUE_DIR, ADMITTED_DIR).unwrap();
        assert_eq!(queue.queued().unwrap(), entries[1..]);
    }

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
