//! How a host follows turns: queueing them, admitting them under the limit,
//! watching their supervisors, settling those that died, cancelling.
//!
//! Whether a supervisor is alive is known from its supervisor lock, never
//! from timing; an end is recorded by [`record_end`], exactly
//! once whoever gets there first.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::sync::watch;

use super::{CancelOutcome, JobHost};
use crate::error::invalid;
use crate::home::{ADMITTED_DIR, JOBS_DIR, QUEUE_DIR};
use crate::job::End;
use crate::job::dirwatch::{Arrivals, DirWatch, DirWatches};
use crate::job::end::record_end;
use crate::job::process::{ProcessWatch, signal_group, signal_process};
use crate::job::queue::{self, Queue};
use crate::job::supervisor;
use crate::job::{JobId, JobMeta, JobStatus};
use crate::{config, policy};

/// The folders of the home whose arrivals [`JobHost::index_jobs`] follows.
const FOLLOWED: [&str; 3] = [QUEUE_DIR, ADMITTED_DIR, JOBS_DIR];

impl JobHost {
    /// Reads every job on disk into the index, follows the turns that
    /// supervisors (of this or an earlier host) are running, then admits
    /// queued turns and settles the ones whose supervisor died unrecorded.
    /// From then on it follows the home's queue: turns other servers queue
    /// (new jobs, replies) reach the index as they are queued.
    pub async fn index_jobs(self: &Arc<Self>) -> Result<()> {
        // Watched before the jobs are read, so no turn queued in between is
        // missed; jobs/ too, as a new job's entry comes before its directory.
        let root = self.store.root();
        let folders = FOLLOWED.map(|f| root.join(f));
        let queue = DirWatch::entries(&folders.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
        let host = Arc::clone(self);
        // Off the async workers: a home of 10,000 jobs takes a while to read.
        tokio::task::spawn_blocking(move || -> Result<()> {
            Queue::of(&host.store).restore_queued()?;
            let mut unreadable = std::collections::HashMap::new();
            for id in host.store.job_ids()? {
                if let Err(e) = host.index_job(id) {
                    tracing::warn!(job = %id, "skipping job: {e:#}");
                    unreadable.insert(id, format!("{e:#}"));
                }
            }
            *host.turns.unreadable.lock().unwrap() = unreadable;
            Ok(())
        })
        .await??;
        self.turns.indexed.send_replace(true);
        self.follow_queue(queue);
        self.admit().await
    }

    /// Notices every turn that enters the queue (waiting or admitted),
    /// whoever queued it, by the entry's name: one event costs the same with
    /// 2 or 2,000 turns queued. A new job's entry comes before its
    /// directory; such an entry is noticed again when the directory comes.
    /// When the kernel dropped events, the whole queue is looked at.
    fn follow_queue(self: &Arc<Self>, queue: DirWatch) {
        let host = Arc::clone(self);
        tokio::spawn(async move {
            let mut early = HashMap::new(); // entries whose job's directory has not come yet
            let notice = |entry: queue::Entry, early: &mut HashMap<JobId, queue::Entry>| {
                if !host.notice(entry) {
                    early.insert(entry.job, entry);
                }
            };
            let followed: Result<()> = async {
                loop {
                    match queue.arrivals().await? {
                        Arrivals::Named(names) => {
                            for (folder, name) in names {
                                if FOLLOWED[folder] == JOBS_DIR {
                                    let id = JobId::parse(&name).ok();
                                    if let Some(entry) = id.and_then(|id| early.remove(&id)) {
                                        notice(entry, &mut early);
                                    }
                                } else if let Some(entry) = queue::Entry::parse(&name) {
                                    notice(entry, &mut early);
                                }
                            }
                        }
                        Arrivals::Lost => {
                            for entry in Queue::of(&host.store).queued()? {
                                notice(entry, &mut early);
                            }
                        }
                    }
                }
            }
            .await;
            if let Err(e) = followed {
                tracing::warn!("cannot follow the queue; jobs other servers start show once named: {e:#}");
            }
        });
    }

    /// Brings a queued turn's job into the index and follows it, unless this
    /// host already does. Takes no lock: another server may be admitting it.
    /// False when the job's directory cannot be read (yet).
    fn notice(self: &Arc<Self>, entry: queue::Entry) -> bool {
        let id = entry.job;
        if self.turns.watches_supervisor(id) || self.turns.following.lock().unwrap().contains(&id) {
            return true;
        }
        match self.store.job(id).and_then(|job| job.read_meta()) {
            Ok(meta) => {
                self.registry.update(&meta);
                // A reply's entry comes before its meta.json: follow the turn to come.
                if !meta.status.is_terminal() || meta.turn < entry.turn {
                    self.follow_from(id, entry.turn);
                }
                true
            }
            // Still being written, or already collected.
            Err(e) => {
                tracing::debug!(job = %id, "queued job not readable yet: {e:#}");
                false
            }
        }
    }

    /// Reads one job into the index; follows its turn if it has not ended
    /// (and puts the turn back in the queue when no supervisor runs it).
    /// Blocking file I/O; must run inside the tokio runtime (it spawns).
    pub(super) fn index_job(self: &Arc<Self>, id: JobId) -> Result<()> {
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        self.registry.update(&meta);
        if meta.status.is_terminal() {
            // An end recorded only in part keeps its queue entry: admission completes it.
            return Ok(());
        }
        if job.try_supervisor_lock()?.is_some() {
            // No supervisor: make sure the turn is in the queue (a job of an
            // earlier version may have none), whose admission starts it or
            // records how it ended.
            Queue::of(&self.store).ensure_queued(&meta)?;
        }
        self.follow(id);
        Ok(())
    }

    /// Follows a turn another process admitted: waits (inotify on its
    /// directory) until `meta.json` names its supervisor, then watches it.
    /// Ends when the turn ends or this host watches it.
    pub(super) fn follow(self: &Arc<Self>, id: JobId) {
        self.follow_from(id, 0);
    }

    /// [`Self::follow`], waiting first, when `meta.json` is still at an
    /// earlier turn, until it reaches `turn`.
    fn follow_from(self: &Arc<Self>, id: JobId, turn: u32) {
        if self.turns.live.lock().unwrap().contains_key(&id) || !self.turns.following.lock().unwrap().insert(id) {
            return;
        }
        let host = Arc::clone(self);
        tokio::spawn(async move {
            let followed = async {
                let job = host.store.job(id)?;
                let changes = host.turns.watches.open(job.path())?;
                loop {
                    let meta = job.read_meta()?;
                    host.registry.update(&meta);
                    let ended = meta.status.is_terminal() && meta.turn >= turn;
                    if ended || host.turns.watches_supervisor(id) {
                        return Ok(());
                    }
                    if let Some(pid) = meta.pid.filter(|_| meta.turn >= turn) {
                        let watch = ProcessWatch::open(pid)?
                            .filter(|w| w.command_line_contains(&["supervise", &id.to_string()]));
                        match watch {
                            Some(watch) => host.watch(id, meta.turn, watch),
                            None => host.settle(id, meta.turn).await?,
                        }
                        return Ok(());
                    }
                    changes.changed().await?;
                }
            };
            let result: Result<()> = followed.await;
            host.turns.following.lock().unwrap().remove(&id);
            if let Err(e) = result {
                tracing::warn!(job = %id, "cannot follow the job: {e:#}");
            }
        });
    }

    pub(super) async fn wait_indexed(&self) {
        let mut rx = self.turns.indexed.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Indexes a turn just queued and admits what fits, in the background:
    /// the caller's answer does not wait for a process.
    pub(super) fn admit_soon(self: &Arc<Self>, meta: &JobMeta) {
        self.registry.update(meta);
        let host = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = host.admit().await {
                tracing::error!("cannot admit queued jobs: {e:#}");
            }
        });
    }

    /// One admission pass (see [`queue::admit`]): starts queued turns while
    /// fewer than `max_running` run, settles turns whose supervisor died, and
    /// watches the supervisors it started. Passes run one at a time, and a
    /// request made while one waits to start is served by it (it reads the
    /// queue after the request's change): a burst of starts costs a few
    /// passes over the queue, not one each.
    pub async fn admit(self: &Arc<Self>) -> Result<()> {
        if self.turns.admission.requested.swap(true, Ordering::SeqCst) {
            return Ok(()); // a pass that has not read the queue yet is waiting
        }
        let _one_at_a_time = self.turns.admission.running.lock().await;
        self.turns.admission.requested.store(false, Ordering::SeqCst);
        let host = Arc::clone(self);
        let admitted = tokio::task::spawn_blocking(move || {
            let (exe, home) = (&host.config.host_exe, host.store.root());
            // Each project's limit, read once a pass.
            let mut limits = HashMap::new();
            let project_limit = |cwd: &Path| {
                let root = policy::config::project_root(cwd)?;
                let limit = *limits.entry(root.clone()).or_insert_with(|| {
                    config::project_max_running(&root).unwrap_or_else(|e| {
                        tracing::warn!("{e:#}; the project's turns run under the home's limit only");
                        None
                    })
                });
                limit.map(|l| (root, l))
            };
            queue::admit(
                Queue::of(&host.store),
                host.config.max_running,
                project_limit,
                |job, lock| supervisor::spawn(exe, home, job, lock),
                |job, _lock, error| {
                    let end = match error {
                        Some(error) => End::failed(error),
                        None => host.lost_end(job.id()),
                    };
                    record_end(&host.store, job, |_| {}, end)
                },
            )
        })
        .await??;
        for id in &admitted.settled {
            if let Ok(meta) = self.store.job(*id).and_then(|j| j.read_meta()) {
                self.registry.update(&meta);
            }
        }
        for (id, pid) in admitted.started {
            let meta = self.store.job(id)?.read_meta()?;
            self.registry.update(&meta);
            match ProcessWatch::open(pid)? {
                Some(watch) => self.watch(id, meta.turn, watch),
                None => self.settle(id, meta.turn).await?,
            }
        }
        Ok(())
    }

    /// The end to record for a turn whose supervisor is gone without recording one.
    fn lost_end(&self, id: JobId) -> End {
        if self.turns.live.lock().unwrap().get(&id).is_some_and(|l| l.cancel_requested) {
            return End::cancelled_by_job_cancel();
        }
        let path = self.store.root().join("jobs").join(id.to_string());
        let error = format!(
            "the job's supervisor exited without recording how Codex ended; it was killed or crashed (see {}/supervisor.log)",
            path.display()
        );
        End::failed(error)
    }

    /// Follows a supervisor until it exits, then settles the job and admits the next turns.
    pub(super) fn watch(self: &Arc<Self>, id: JobId, turn: u32, watch: ProcessWatch) {
        self.turns.live.lock().unwrap().insert(id, Live { turn, cancel_requested: false });
        let host = Arc::clone(self);
        tokio::spawn(async move {
            // Every status the supervisor writes within the turn (`running`,
            // `input_required`) reaches the index at once. The end is left to
            // `settle` below, after the supervisor exits: by then its
            // notification is written too, so a caller woken by the end finds it.
            let changes = host.store.job(id).and_then(|job| Ok((host.turns.watches.open(job.path())?, job)));
            match changes {
                Ok((changes, job)) => loop {
                    tokio::select! {
                        _ = watch.exited() => break,
                        changed = changes.changed() => {
                            if changed.is_err() { watch.exited().await; break; }
                            match job.read_meta() {
                                // It holds no place while it waits: start what waits behind it.
                                Ok(meta) if meta.status == JobStatus::InputRequired => host.admit_soon(&meta),
                                Ok(meta) if !meta.status.is_terminal() => host.registry.update(&meta),
                                _ => {}
                            }
                        }
                    }
                },
                Err(_) => watch.exited().await,
            }
            if let Err(e) = host.settle(id, turn).await {
                tracing::error!(job = %id, "cannot record the end of turn {turn}: {e:#}");
            }
            if let Err(e) = host.admit().await {
                tracing::error!("cannot admit queued jobs: {e:#}");
            }
        });
    }

    /// After a turn's supervisor exited: index what it recorded, or record
    /// the end it did not. While someone else holds the supervisor lock (a
    /// settler in another process, or an admission pass doing the same), wait
    /// for `meta.json` to change and look again.
    pub(super) async fn settle(self: &Arc<Self>, id: JobId, turn: u32) -> Result<()> {
        let job = self.store.job(id)?;
        let meta = loop {
            let host = Arc::clone(self);
            let (meta, busy) = tokio::task::spawn_blocking(move || -> Result<(JobMeta, bool)> {
                let job = host.store.job(id)?;
                let meta = job.read_meta()?;
                if meta.turn != turn || meta.status.is_terminal() {
                    return Ok((meta, false));
                }
                match job.try_supervisor_lock()? {
                    Some(_lock) => record_end(&host.store, &job, |_| {}, host.lost_end(id))?,
                    None => return Ok((meta, true)),
                }
                Ok((job.read_meta()?, false))
            })
            .await??;
            if !busy {
                break meta;
            }
            // A settler that died holding the lock changes nothing: look again now
            // and then (a change between the look and the watch is caught so too).
            match self.turns.watches.open(job.path()) {
                Ok(changes) => _ = tokio::time::timeout(std::time::Duration::from_secs(1), changes.changed()).await,
                Err(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            }
        };
        {
            let mut live = self.turns.live.lock().unwrap();
            if live.get(&id).is_some_and(|l| l.turn == turn) {
                live.remove(&id);
            }
        }
        self.registry.update(&meta);
        Ok(())
    }

    /// Cancels a job's current turn. A queued turn ends at once; a running one's
    /// supervisor gets SIGTERM (its driver stops Codex its own way: a signal on
    /// exec, `turn/interrupt` on app-server), its process group SIGKILL after
    /// the grace period, and the call returns once it has ended.
    ///
    /// Errors: [`crate::InvalidInput`] when the job has already ended.
    pub async fn cancel(self: &Arc<Self>, job_id: &str) -> Result<CancelOutcome> {
        let id = JobId::parse(job_id)?;
        let job = self.store.job(id)?;
        loop {
            // Watching before reading: a change in between still wakes the wait below.
            let changes = self.turns.watches.open(job.path())?;
            let meta = job.read_meta()?;
            if meta.status.is_terminal() {
                return Err(invalid(format!("job {id} is already {}; nothing to cancel", meta.status)));
            }
            if let Some(lock) = job.try_supervisor_lock()? {
                if meta.status == JobStatus::Queued && meta.pid.is_none() {
                    // Still in the queue: no process to stop.
                    record_end(&self.store, &job, |_| {}, End::cancelled_by_job_cancel())?;
                    drop(lock);
                    let meta = job.read_meta()?;
                    self.registry.update(&meta);
                    return Ok(CancelOutcome { job_id: id.to_string(), status: meta.status, killed: false });
                }
                drop(lock);
                self.settle(id, meta.turn).await?;
                continue;
            }
            let Some(pid) = meta.pid else {
                // Admitted this instant; its supervisor names itself before it starts Codex.
                changes.changed().await?;
                continue;
            };
            {
                let mut live = self.turns.live.lock().unwrap();
                live.entry(id).or_insert(Live { turn: meta.turn, cancel_requested: false }).cancel_requested = true;
            }
            let watch = ProcessWatch::open(pid)?;
            // The supervisor's driver stops Codex; the group's SIGKILL below is the backstop.
            signal_process(pid, rustix::process::Signal::TERM)?;
            let mut killed = false;
            if let Some(watch) = &watch {
                if tokio::time::timeout(self.config.cancel_grace, watch.exited()).await.is_err() {
                    signal_group(pid, rustix::process::Signal::KILL)?;
                    killed = true;
                    watch.exited().await;
                }
            }
            // Whoever settles first (this call or the supervisor's watcher) records the end.
            self.settle(id, meta.turn).await?;
            let meta = job.read_meta()?;
            return Ok(CancelOutcome { job_id: id.to_string(), status: meta.status, killed });
        }
    }
}

/// The turns a host follows: the supervisors it watches, the jobs it
/// follows on disk, its admission passes, and what its index found.
pub(super) struct Turns {
    /// Supervisors this host watches, by job.
    live: Mutex<HashMap<JobId, Live>>,
    /// Jobs this host follows without having started them.
    following: Mutex<HashSet<JobId>>,
    /// The job directories this host waits on, through one inotify instance.
    pub(super) watches: DirWatches,
    admission: Admission,
    /// Whether the home's jobs have been read into the index.
    indexed: watch::Sender<bool>,
    /// Jobs the last index could not read, with the error.
    pub(super) unreadable: Mutex<HashMap<JobId, String>>,
}

impl Default for Turns {
    fn default() -> Self {
        Turns {
            live: Mutex::default(),
            following: Mutex::default(),
            watches: DirWatches::default(),
            admission: Admission::default(),
            indexed: watch::Sender::new(false),
            unreadable: Mutex::default(),
        }
    }
}

impl Turns {
    /// Whether this host watches the supervisor of `id`.
    pub(super) fn watches_supervisor(&self, id: JobId) -> bool {
        self.live.lock().unwrap().contains_key(&id)
    }
}

/// A supervisor this host watches.
#[derive(Clone, Copy, Debug)]
struct Live {
    turn: u32,
    cancel_requested: bool,
}

/// Admission passes: whether one is asked for and not started, and the lock
/// that keeps them one at a time.
#[derive(Default)]
struct Admission {
    requested: AtomicBool,
    running: tokio::sync::Mutex<()>,
}
