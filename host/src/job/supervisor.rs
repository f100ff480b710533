//! The supervisor: `codex-jobhost supervise`, one detached process per turn.
//!
//! The host starts it ([`spawn`]), and it moves itself into a new session (so
//! it is its own process group and outlives the host, SIGKILL included). It
//! reads the turn from its queue entry, hands it to the driver of the job's
//! backend (see [`super::runtime`]), which starts Codex and turns its output
//! into events, and records how the turn ended ([`super::end::record_end`]).
//! A SIGTERM (`job_cancel`) reaches the supervisor, whose driver stops Codex
//! its own way; the supervisor then records `cancelled`.

use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};

use super::end::record_end;
use super::runtime::{Driven, Driver, Turn};
use super::store::{FileLock, Reserve};
use super::{BackendKind, End, JobDir, JobId, JobMeta, JobStatus, JobStore, Queue, TurnSpec};

/// Starts a supervisor for the job's current turn (it moves itself into a new
/// session): `HOST_EXE --home HOME supervise --job ID`, its stdin the job's
/// supervisor lock (which it keeps, and so holds, for its whole life), its
/// stderr (the supervisor's own log) in `supervisor.log`. What it runs is in
/// the turn's queue entry. Returns its pid, which is also its process group id.
pub fn spawn(host_exe: &Path, home: &Path, job: &JobDir, lock: FileLock) -> Result<u32> {
    let log = job.supervisor_log()?;
    let mut cmd = tokio::process::Command::new(host_exe);
    cmd.arg("--home")
        .arg(home)
        .args(["supervise", "--job", &job.id().to_string()])
        .stdin(Stdio::from(std::fs::File::from(lock.into_file().into_std())))
        .stdout(Stdio::null())
        .stderr(log);
    // No pre_exec hook, so the standard library can use posix_spawn (about
    // half the cost of fork and exec); the supervisor calls setsid itself.
    let child = cmd.spawn().with_context(|| format!("cannot start the supervisor {}", host_exe.display()))?;
    // Dropping the handle leaves the process running; tokio reaps it when it exits.
    child.id().context("the supervisor exited at once")
}

/// Runs the job's current turn to its end: the body of `codex-jobhost supervise`,
/// with `driver_for` the driver of each backend.
/// Expects the job's supervisor lock as stdin (see [`spawn`]); run by hand, it
/// takes the lock itself or refuses when a supervisor already runs the turn.
pub async fn run<D: Driver>(home: PathBuf, id: JobId, driver_for: impl FnOnce(BackendKind) -> D) -> Result<()> {
    // A new session and process group: the host's signals and terminal no
    // longer reach this turn, and job_cancel signals the group as a whole.
    rustix::process::setsid().context("setsid")?;
    let store = JobStore::open(&home)?;
    let job = store.job(id)?;
    let _lock = hold_supervisor_lock(&job)?;
    let meta = job.read_meta()?;
    let spec = Queue::of(&store).turn_to_run(&job, &meta)?;
    if meta.status != JobStatus::Queued || spec.turn != meta.turn {
        anyhow::bail!("job {id} is {} in turn {}; nothing to run for turn {}", meta.status, meta.turn, spec.turn);
    }
    // Held while the turn runs; `drive` gives it back before any end is recorded.
    let reserve = job
        .reserve_space()
        .inspect_err(|e| tracing::warn!(job = %id, "{e:#}; on a full disk this turn's end may go unrecorded"))
        .ok();
    let driver = driver_for(meta.backend);
    let result = drive(&store, &job, meta, spec, reserve, &driver).await;
    if let Err(e) = &result {
        // Say why (a full disk, a file that cannot be written), rather than
        // leave the turn to be settled as "killed or crashed".
        let end = End::failed(format!("the job's supervisor failed: {e:#}"));
        if let Err(also) = record_end(&store, &job, |_| {}, end) {
            tracing::error!(job = %id, "cannot record the supervisor's failure: {also:#}");
        }
    }
    result
}

/// Runs the turn through `driver` and records how it ended (see [`run`]).
async fn drive(
    store: &JobStore,
    job: &JobDir,
    meta: JobMeta,
    spec: TurnSpec,
    reserve: Option<Reserve>,
    driver: &impl Driver,
) -> Result<()> {
    let mut turn = Turn::new(store, job, meta, spec)?;
    let ended = driver.drive(&mut turn).await?;
    drop(reserve); // the end is recorded next, on a full disk too (an error returned above drops it as well)
    let end = match ended {
        Driven::Ended(end) => end,
        Driven::NotStarted(end) => return record_end(store, job, |_| {}, end),
    };
    crate::failpoint!("supervisor-before-end");
    let tracker = turn.tracker;
    record_end(
        store,
        job,
        |m| {
            m.thread_id = tracker.thread_id.or(m.thread_id.take());
            m.last_message = tracker.last_message.or(m.last_message.take());
            m.usage = tracker.usage.or(m.usage.take());
        },
        end,
    )
}

/// Keeps the supervisor lock for this process's life: the one handed over as
/// stdin by [`spawn`], or, run by hand, one taken now.
fn hold_supervisor_lock(job: &JobDir) -> Result<std::fs::File> {
    // SAFETY: fd 0 is this process's stdin, open for its whole life; the File takes it over.
    let stdin = unsafe { std::fs::File::from_raw_fd(0) };
    let lock_path = job.path().join("supervisor.lock");
    let same_file = |a: &std::fs::Metadata, b: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    };
    if let (Ok(ours), Ok(lock)) = (stdin.metadata(), std::fs::metadata(&lock_path)) {
        if same_file(&ours, &lock) {
            // Not passed on to Codex: its stdin is a pipe, and no other descriptor is inherited.
            return Ok(stdin);
        }
    }
    std::mem::forget(stdin); // leave fd 0 alone
    match job.try_supervisor_lock()? {
        Some(lock) => Ok(std::fs::File::from(lock.into_file().into_std())),
        None => {
            anyhow::bail!("job {}: another supervisor runs this turn ({} is locked)", job.id(), lock_path.display())
        }
    }
}
