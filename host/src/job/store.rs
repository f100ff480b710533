//! The on-disk job store under the home directory: `jobs/<job_id>/` (its
//! `meta.json`, locks, logs; names in [`crate::home::job`]), with the queue
//! ([`super::queue`]) and the notification feed ([`super::feed`]) beside it.
//!
//! Every access goes through `cap_std::fs::Dir` handles opened on `jobs/` and
//! on one job's directory, and job directories are named only by a validated
//! [`JobId`], so nothing a caller sends can reach outside.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};

use super::event::Event;
use super::event_log::{self, EventWriter};
use super::feed::Feed;
use super::{JobId, JobMeta};
use crate::error::invalid;
use crate::home::job::{JOB_LOCK, META, OUTPUT, POLICIES, RESERVE, SUPERVISOR_LOCK, SUPERVISOR_LOG};
use crate::home::{ADMITTED_DIR, JOBS_DIR, QUEUE_DIR};

/// Disk space a supervisor holds while its turn runs, given back to record
/// the turn's end when the disk is full: 4 MiB, room for `meta.json` with a
/// long last message, the terminal event and the notification.
pub const RESERVE_BYTES: u64 = 4 << 20;

/// An exclusive `flock` held until dropped (closing the file releases it too).
#[derive(Debug)]
pub struct FileLock(File);

impl FileLock {
    /// The locked file, e.g. to hand to a child process that keeps the lock.
    pub fn into_file(self) -> File {
        self.0
    }
}

/// The home directory's job store: `jobs/` and the notification feed.
#[derive(Debug)]
pub struct JobStore {
    root: PathBuf,
    home: Dir,
    jobs: Dir,
    feed: Feed,
}

impl JobStore {
    /// Opens (creating if needed) `<home>` and its `jobs`, `queue` and `admitted` folders.
    ///
    /// Errors: the home cannot be created or opened; the message names the path.
    pub fn open(home: &Path) -> Result<Self> {
        for dir in [JOBS_DIR, QUEUE_DIR, ADMITTED_DIR] {
            std::fs::create_dir_all(home.join(dir))
                .with_context(|| format!("cannot create {}", home.join(dir).display()))?;
        }
        let home_dir = Dir::open_ambient_dir(home, ambient_authority())
            .with_context(|| format!("cannot open the job home {}", home.display()))?;
        let jobs = home_dir.open_dir(JOBS_DIR).with_context(|| format!("cannot open {}/{JOBS_DIR}", home.display()))?;
        let feed = Feed::new(home_dir.try_clone()?, home);
        Ok(JobStore { root: home.to_path_buf(), home: home_dir, jobs, feed })
    }

    /// The home directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn home_dir(&self) -> &Dir {
        &self.home
    }

    /// The home's notification feed.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Makes the directory of a job in its first turn from its first
    /// records: `meta.json` and the first event of `events.jsonl`, written
    /// into a hidden directory that is renamed into place once whole.
    ///
    /// Nothing here is fsynced: the job's queue entry, written first (and
    /// fsynced before `job_start` answers), holds the same records, and
    /// whoever finds the directory missing makes it again from there (see
    /// `queue`). A directory that is there already (another server made it
    /// from the entry) is kept. On an error (a full disk included) nothing is
    /// left behind and the message names the path.
    pub fn materialize(&self, meta: &JobMeta) -> Result<JobDir> {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = meta.id.to_string();
        // Unique to this process and call: two servers may make the same job at once.
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hidden = format!(".new-{name}-{}-{n}", std::process::id());
        let path = self.root.join(JOBS_DIR).join(&name);
        let made = (|| {
            crate::failpoint_io!("materialize")
                .and_then(|()| self.jobs.create_dir(&hidden))
                .with_context(|| format!("cannot create {}", path.display()))?;
            let dir = self.jobs.open_dir(&hidden)?;
            let mut bytes = serde_json::to_vec_pretty(meta)?;
            bytes.push(b'\n');
            dir.write(META, bytes).with_context(|| format!("cannot write {}/{META}", path.display()))?;
            event_log::write_first(&dir, &path, meta)?;
            self.jobs.rename(&hidden, &self.jobs, &name).with_context(|| format!("cannot create {}", path.display()))
        })();
        if let Err(e) = made {
            let _ = self.jobs.remove_dir_all(&hidden);
            if !self.jobs.is_dir(&name) {
                return Err(e);
            } // else another made it from the entry meanwhile
        }
        self.open_existing(meta.id)
    }

    /// A job directory holding only `meta.json`, for unit tests.
    #[cfg(test)]
    pub(crate) fn create_bare(&self, meta: &JobMeta) -> JobDir {
        self.jobs.create_dir(meta.id.to_string()).unwrap();
        let job = self.open_existing(meta.id).unwrap();
        job.write_meta(meta).unwrap();
        job
    }

    /// Opens an existing job's directory.
    ///
    /// Errors: [`crate::InvalidInput`] "no job with id …" when there is none.
    pub fn job(&self, id: JobId) -> Result<JobDir> {
        match self.jobs.open_dir(id.to_string()) {
            Ok(dir) => Ok(self.job_dir(id, dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(invalid(format!("no job with id {id} in {}", self.root.join(JOBS_DIR).display())))
            }
            Err(e) => Err(e).with_context(|| format!("cannot open job {id}")),
        }
    }

    fn open_existing(&self, id: JobId) -> Result<JobDir> {
        let dir = self.jobs.open_dir(id.to_string()).with_context(|| format!("cannot open job {id}"))?;
        Ok(self.job_dir(id, dir))
    }

    fn job_dir(&self, id: JobId, dir: Dir) -> JobDir {
        JobDir { id, dir, path: self.root.join(JOBS_DIR).join(id.to_string()) }
    }

    /// Removes a job's directory: renamed aside first (`.gc-<id>`), so the job
    /// disappears at once and whole, then deleted. The caller holds the job's
    /// lock and has checked that no supervisor runs.
    pub fn remove(&self, id: JobId) -> Result<()> {
        let aside = format!(".gc-{id}");
        self.jobs
            .rename(id.to_string(), &self.jobs, &aside)
            .with_context(|| format!("cannot remove job {id} ({}/jobs/{id})", self.root.display()))?;
        self.jobs.remove_dir_all(&aside).with_context(|| format!("cannot delete {}/jobs/{aside}", self.root.display()))
    }

    /// Removes what crashed creations and collections left in `jobs/`
    /// (`.new-*`, `.gc-*`) more than `age` ago; returns how many.
    pub fn remove_leftovers(&self, age: std::time::Duration) -> Result<usize> {
        let mut removed = 0;
        for entry in self.jobs.entries().context("cannot list the jobs directory")? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.into_std().elapsed().is_ok_and(|e| e > age))
                .unwrap_or(false);
            if (name.starts_with(".new-") || name.starts_with(".gc-")) && old {
                self.jobs
                    .remove_dir_all(&name)
                    .with_context(|| format!("cannot delete {}/jobs/{name}", self.root.display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The ids of all jobs on disk, newest first. Entries that are not job
    /// directories are ignored.
    pub fn job_ids(&self) -> Result<Vec<JobId>> {
        let mut ids = Vec::new();
        for entry in self.jobs.entries().context("cannot list the jobs directory")? {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| JobId::parse(n).ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }
}

/// Makes a directory's entries durable (a rename or a new file in it). The
/// directory is opened by path: cap-std's handles are `O_PATH`, which cannot be fsynced.
pub(super) fn sync_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", path.display()))
}

/// One job's directory.
#[derive(Debug)]
pub struct JobDir {
    id: JobId,
    dir: Dir,
    path: PathBuf,
}

impl JobDir {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Absolute path of the directory (for the supervisor's command line and messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory handle (for the job's own modules, e.g. approvals).
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Reads `meta.json`.
    pub fn read_meta(&self) -> Result<JobMeta> {
        let bytes = self.dir.read(META).with_context(|| format!("cannot read {}/{META}", self.path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}/{META} is not valid job metadata", self.path.display()))
    }

    /// Replaces `meta.json` atomically: a temporary file in the same directory,
    /// written, fsynced, then renamed over the old one. Readers see the old or
    /// the new file, never a mix. The rename is durable only once the
    /// directory is fsynced ([`JobDir::sync`]).
    pub fn write_meta(&self, meta: &JobMeta) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(meta)?;
        bytes.push(b'\n');
        self.replace_file(META, &bytes)
    }

    /// Replaces `name` atomically with `bytes` (temporary file, fsync, rename).
    /// Errors name the file; a failed write (a full disk) leaves the old file and no temporary one.
    fn replace_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let write = || -> io::Result<()> {
            let mut tmp = cap_tempfile::TempFile::new(&self.dir)?;
            tmp.as_file_mut().write_all(bytes)?;
            tmp.as_file().sync_all()?;
            tmp.replace(name)
        };
        crate::failpoint_io!("replace-file")
            .and_then(|()| write())
            .with_context(|| format!("cannot write {}/{name}", self.path.display()))
    }

    /// Makes the directory's renames durable (fsync of the directory), so a
    /// crash of the machine cannot bring back an older `meta.json`: before a
    /// reply is acknowledged and before a recorded end's queue entry goes.
    pub fn sync(&self) -> Result<()> {
        sync_dir(&self.path)
    }

    /// Makes a job's first records whole again from its queue entry's copy
    /// (`first`, as `job_start` wrote them) after a crash of the machine cost
    /// the unsynced originals: `meta.json`, and the first event when
    /// `events.jsonl` is empty or missing (its index is then made anew).
    pub fn restore_first(&self, first: &JobMeta) -> Result<()> {
        self.write_meta(first)?;
        if self.dir.metadata(crate::home::job::EVENTS).map_or(true, |m| m.len() == 0) {
            let _ = self.dir.remove_file(crate::home::job::EVENTS_INDEX);
            event_log::write_first(&self.dir, &self.path, first)?;
        }
        tracing::warn!(job = %self.id, "{}: restored meta.json and the first event from the job's queue entry", self.path.display());
        Ok(())
    }

    /// The policy set the job runs under, pinned at its start: from
    /// `meta.json` (`meta`, just read), or from `policies.json` for a job of
    /// an earlier version; `None` for a job started before policies were
    /// pinned (its policies are looked up by its cwd).
    pub fn read_policies<T: serde::de::DeserializeOwned>(&self, meta: &JobMeta) -> Result<Option<T>> {
        if let Some(pinned) = &meta.policies {
            let pinned = T::deserialize(pinned).with_context(|| {
                format!("{}/{META}: policies is not a valid pinned policy set", self.path.display())
            })?;
            return Ok(Some(pinned));
        }
        let bytes = match self.dir.read(POLICIES) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}/{POLICIES}", self.path.display())),
        };
        let pinned = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}/{POLICIES} is not a valid pinned policy set", self.path.display()))?;
        Ok(Some(pinned))
    }

    /// Takes the job's lock (blocking): held while a turn begins or its end is
    /// recorded, so two processes never do either at once.
    pub fn lock(&self) -> Result<FileLock> {
        self.flock(JOB_LOCK, rustix::fs::FlockOperation::LockExclusive)?
            .with_context(|| format!("cannot lock {}/{JOB_LOCK}", self.path.display()))
    }

    /// Takes the job's lock if no one holds it: `None` while someone does.
    pub fn try_lock(&self) -> Result<Option<FileLock>> {
        self.flock(JOB_LOCK, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    }

    /// Takes the supervisor lock if no live supervisor holds it: `None` while
    /// one does. A supervisor holds it from before it starts (the admitting
    /// process takes it and hands it over as the supervisor's stdin) until it
    /// exits, so a free lock means no supervisor runs, whatever `meta.json` says.
    pub fn try_supervisor_lock(&self) -> Result<Option<FileLock>> {
        self.flock(SUPERVISOR_LOCK, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    }

    fn flock(&self, name: &str, op: rustix::fs::FlockOperation) -> Result<Option<FileLock>> {
        let file = self
            .dir
            .open_with(name, OpenOptions::new().read(true).write(true).create(true))
            .with_context(|| format!("cannot open {}/{name}", self.path.display()))?;
        match rustix::fs::flock(&file, op) {
            Ok(()) => Ok(Some(FileLock(file))),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot lock {}/{name}", self.path.display())),
        }
    }

    /// Opens `output.log` for appending the agent's raw output.
    pub fn output_log(&self) -> Result<File> {
        Ok(self.dir.open_with(OUTPUT, OpenOptions::new().append(true).create(true))?)
    }

    /// Up to `max` bytes of `output.log` from byte `offset`, and the offset
    /// after them. Where the log's middle was cut (see [`super::output`]),
    /// the cut bytes come back as one marker line.
    pub fn read_output(&self, offset: u64, max: usize) -> Result<(Vec<u8>, u64)> {
        match self.dir.open(OUTPUT) {
            Ok(file) => Ok(super::output::read(&mut file.into_std(), offset, max)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((Vec::new(), offset)),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets [`RESERVE_BYTES`] of disk space aside in `space.reserve`
    /// (allocated, not sparse), given back when the [`Reserve`] is dropped.
    /// Errors: no space even for that (the disk is full already).
    pub fn reserve_space(&self) -> Result<Reserve> {
        let path = || format!("{}/{RESERVE}", self.path.display());
        let file = self
            .dir
            .open_with(RESERVE, OpenOptions::new().write(true).create(true))
            .with_context(|| format!("cannot create {}", path()))?;
        let reserve = Reserve { dir: self.dir.try_clone()? }; // removes the file on an error too
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, RESERVE_BYTES)
            .with_context(|| format!("cannot set {RESERVE_BYTES} bytes aside in {}", path()))?;
        Ok(reserve)
    }

    /// Opens `supervisor.log` for appending: the supervisor's own stderr.
    pub fn supervisor_log(&self) -> Result<std::fs::File> {
        Ok(self.dir.open_with(SUPERVISOR_LOG, OpenOptions::new().append(true).create(true))?.into_std())
    }

    /// Opens the event log for appending; see [`super::event_log`]. A
    /// missing, short or long `events.idx` is rebuilt from `events.jsonl` first.
    pub fn event_writer(&self) -> Result<EventWriter> {
        event_log::writer(&self.dir, &self.path)
    }

    /// How many events the job has: the next event's `seq`. Counts the log's
    /// whole lines (through `events.idx`, repaired first if it does not match).
    pub fn event_count(&self) -> Result<u64> {
        event_log::count(&self.dir, &self.path)
    }

    /// Events from `cursor` (a `seq`) on: at most `limit` for which `pick`
    /// returns one (the event itself or a replacement), looking at no more than
    /// `scan_max` events. With `data_text`, `pick` also gets each event's `data`
    /// as the JSON text stored (for event filters, which take JSON text; reading
    /// it costs a second pass over the line). Returns the events and the cursor
    /// to pass next. Seeks through `events.idx`; cost does not grow with the log.
    ///
    /// Errors: [`crate::InvalidInput`] when `cursor` is past the job's last
    /// event; a file that cannot be read, named in the message.
    pub fn read_events(
        &self,
        cursor: u64,
        limit: usize,
        scan_max: u64,
        data_text: bool,
        pick: impl FnMut(Event, Option<&str>) -> Option<Event>,
    ) -> Result<(Vec<Event>, u64)> {
        event_log::read(&self.dir, &self.path, self.id, cursor, limit, scan_max, data_text, pick)
    }

    /// The last `max_lines` lines of `output.log`, reading at most `max_bytes`
    /// from its end: it seeks, so a 1 GiB log costs what a 1 kB one does.
    /// Returns the text and whether older output was left out.
    pub fn tail_output(&self, max_lines: usize, max_bytes: u64) -> Result<(String, bool)> {
        match self.dir.open(OUTPUT) {
            Ok(file) => Ok(super::output::tail(&mut file.into_std(), max_lines, max_bytes)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((String::new(), false)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Disk space set aside by [`JobDir::reserve_space`]; dropping it gives the
/// space back (removes the file), so what follows can be written on a full disk.
pub struct Reserve {
    dir: Dir,
}

impl Drop for Reserve {
    fn drop(&mut self) {
        let _ = self.dir.remove_file(RESERVE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobOptions, JobStatus};
    use serde_json::json;

    fn meta(id: JobId) -> JobMeta {
        JobMeta::queued(
            id,
            "p",
            "/tmp".into(),
            crate::job::BackendKind::Exec,
            JobOptions { approval_mode: "suggest".into(), ..Default::default() },
            "/bin/codex".into(),
        )
    }

    fn new_job(store: &JobStore) -> JobDir {
        let id = JobId::new();
        store.create_bare(&meta(id))
    }

    #[test]
    fn meta_is_replaced_whole_and_leaves_no_temp_files() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let id = JobId::new();
        let job = store.create_bare(&meta(id));
        let mut m = job.read_meta().unwrap();
        m.status = JobStatus::Running;
        m.prompt = "x".repeat(100_000);
        job.write_meta(&m).unwrap();
        m.prompt = "short".into();
        job.write_meta(&m).unwrap();
        assert_eq!(job.read_meta().unwrap(), m);
        let names: Vec<_> = std::fs::read_dir(job.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("meta.json")]);
        assert_eq!(store.job_ids().unwrap(), vec![id]);
    }

    #[test]
    fn unknown_jobs_are_a_clear_error() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let err = store.job(JobId::new()).unwrap_err();
        assert!(err.downcast_ref::<crate::InvalidInput>().is_some());
        assert!(err.to_string().starts_with("no job with id"), "{err}");
    }

    #[test]
    fn events_read_after_a_cursor_and_survive_a_torn_index() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let job = new_job(&store);
        let mut w = job.event_writer().unwrap();
        for i in 0..10 {
            w.append(if i % 2 == 0 { "even" } else { "odd" }, json!({"i": i})).unwrap();
        }
        drop(w);
        let mut texts = Vec::new();
        let (page, next) = job
            .read_events(3, 4, u64::MAX, true, |e, data| {
                texts.push(data.unwrap().to_owned());
                Some(e)
            })
            .unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
        assert_eq!(texts, [r#"{"i":3}"#, r#"{"i":4}"#, r#"{"i":5}"#, r#"{"i":6}"#]);
        assert_eq!(next, 7);
        let (odd, next) = job.read_events(0, 100, u64::MAX, false, |e, _| Some(e).filter(|e| e.kind == "odd")).unwrap();
        assert_eq!(odd.len(), 5);
        assert_eq!(next, 10);
        let (none, next) = job.read_events(10, 5, u64::MAX, false, |e, _| Some(e)).unwrap();
        assert!(none.is_empty() && next == 10);
        let err = job.read_events(11, 5, u64::MAX, false, |e, _| Some(e)).unwrap_err().to_string();
        assert!(err.contains("invalid cursor 11") && err.contains("10 events"), "{err}");
        // Scanning stops at scan_max even when nothing matched.
        let (none, next) = job.read_events(0, 5, 3, false, |_, _| None).unwrap();
        assert!(none.is_empty() && next == 3);

        // A writer that died mid-way: half an index entry and half a line.
        let dir = job.path();
        std::fs::OpenOptions::new().append(true).open(dir.join("events.idx")).unwrap().write_all(&[1, 2, 3]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("events.jsonl"))
            .unwrap()
            .write_all(b"{\"seq\":10,")
            .unwrap();
        assert_eq!(job.event_count().unwrap(), 10);
        let mut w = job.event_writer().unwrap();
        assert_eq!(w.append("after", json!({})).unwrap().seq, 10);
        let (page, _) = job.read_events(9, 5, u64::MAX, false, |e, _| Some(e)).unwrap();
        assert_eq!(page.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), vec!["odd", "after"]);
        // The torn line was kept aside, not lost.
        assert_eq!(std::fs::read_to_string(dir.join("events.torn")).unwrap(), "{\"seq\":10,\n");
    }

    /// `events.idx` deleted, two entries short, two entries long, or garbage:
    /// every event is still served, and the next append follows the last one.
    #[test]
    fn the_event_log_is_the_truth_and_the_index_is_rebuilt_from_it() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let job = new_job(&store);
        let mut w = job.event_writer().unwrap();
        for i in 0..10 {
            w.append("e", json!({"i": i})).unwrap();
        }
        drop(w);
        let idx = job.path().join("events.idx");
        let whole = std::fs::read(&idx).unwrap();
        let damages: [(&str, Box<dyn Fn()>); 4] = [
            ("deleted", Box::new(|| std::fs::remove_file(&idx).unwrap())),
            ("short", Box::new(|| std::fs::write(&idx, &whole[..whole.len() - 16]).unwrap())),
            ("long", Box::new(|| std::fs::write(&idx, [&whole[..], &whole[whole.len() - 16..]].concat()).unwrap())),
            ("garbage", Box::new(|| std::fs::write(&idx, [7u8; 80]).unwrap())),
        ];
        let mut expected = 10;
        for (what, damage) in damages {
            damage();
            assert_eq!(job.event_count().unwrap(), expected, "{what}");
            let (all, next) = job.read_events(0, 1000, u64::MAX, false, |e, _| Some(e)).unwrap();
            assert_eq!(next, expected, "{what}");
            assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..expected).collect::<Vec<_>>(), "{what}");
            let log_len = std::fs::metadata(job.path().join("events.jsonl")).unwrap().len();
            job.event_writer().unwrap().append("after", json!({"what": what})).unwrap();
            expected += 1;
            assert!(
                std::fs::metadata(job.path().join("events.jsonl")).unwrap().len() > log_len,
                "{what}: log never cut"
            );
            assert_eq!(std::fs::read(&idx).unwrap().len() as u64, expected * 8, "{what}");
        }
    }

    #[test]
    fn tail_reads_only_the_end() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let job = new_job(&store);
        assert_eq!(job.tail_output(5, 1024).unwrap(), (String::new(), false));
        let mut log = job.output_log().unwrap();
        for i in 0..1000 {
            writeln!(log, "line {i}").unwrap();
        }
        assert_eq!(job.tail_output(2, 1 << 20).unwrap(), ("line 998\nline 999\n".to_string(), true));
        assert_eq!(job.tail_output(5000, 1 << 20).unwrap().0.lines().count(), 1000);
        assert!(!job.tail_output(5000, 1 << 20).unwrap().1);
        // The byte window wins over the line count, and drops the partial line.
        let (text, omitted) = job.tail_output(1000, 20).unwrap();
        assert_eq!(text, "line 998\nline 999\n");
        assert!(omitted);
    }
}
