//! The supervisor: `codex-jobhost supervise`, one detached process per turn.
//!
//! The host starts it, and it moves itself into a new session (so it is its
//! own process group and outlives the host, SIGKILL included). It starts Codex, writes Codex's raw
//! output to `output.log` and its events to `events.jsonl`, keeps `meta.json`
//! current, and records the exit status when Codex exits. A SIGTERM to the
//! group (`job_cancel`) reaches Codex and the supervisor alike; the supervisor
//! then records `cancelled`.

use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::signal::unix::{SignalKind, signal};

use super::event::Event;
use super::store::{FileLock, JobDir, JobStore, Reserve};
use super::{JobId, JobMeta, JobStatus};
use super::{Notification, Queue, TurnSpec};
use crate::backend::app_server;
use crate::backend::exec::{self, TurnTracker};

/// How long a turn stopped by `idle_timeout_s` gets after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Most events that may follow a turn's terminal `job.status` event (host
/// notes such as `policy_error`) for [`record_end`] still to find it.
const END_LOOK_BACK: u64 = 10_000;

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

/// How a turn ended, before it is recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct End {
    /// `completed`, `failed` or `cancelled`.
    pub status: JobStatus,
    /// The agent's exit status, when it exited.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Runs the job's current turn to its end: the body of `codex-jobhost supervise`.
/// Expects the job's supervisor lock as stdin (see [`spawn`]); run by hand, it
/// takes the lock itself or refuses when a supervisor already runs the turn.
pub async fn run(home: PathBuf, id: JobId) -> Result<()> {
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
    let result = drive(&store, &job, meta, spec, reserve).await;
    if let Err(e) = &result {
        // Say why (a full disk, a file that cannot be written), rather than
        // leave the turn to be settled as "killed or crashed".
        let error = format!("the job's supervisor failed: {e:#}");
        let end = End { status: JobStatus::Failed, exit_code: None, error: Some(error) };
        if let Err(also) = record_end(&store, &job, |_| {}, end) {
            tracing::error!(job = %id, "cannot record the supervisor's failure: {also:#}");
        }
    }
    result
}

/// Runs the turn through its backend's driver and records how it ended (see [`run`]).
async fn drive(store: &JobStore, job: &JobDir, meta: JobMeta, spec: TurnSpec, reserve: Option<Reserve>) -> Result<()> {
    let mut turn = Turn::new(store, job, meta, spec)?;
    let ended = match turn.meta.backend.as_str() {
        app_server::BACKEND => app_server::drive(&mut turn).await?,
        _ => exec::drive(&mut turn).await?,
    };
    drop(reserve); // the end is recorded next, on a full disk too (an error returned above drops it as well)
    let (end, tracker) = match ended {
        Driven::Ended(end, tracker) => (end, tracker),
        Driven::NotStarted(end) => return record_end(store, job, |_| {}, end),
    };
    crate::failpoint!("supervisor-before-end");
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

/// How a driver left its turn.
pub enum Driven {
    /// The agent could not be started: nothing ran.
    NotStarted(End),
    /// The agent ran and the turn ended so; the tracker holds what its events said.
    Ended(End, TurnTracker),
}

/// What every backend's driver shares while it runs one turn: the job, its
/// `meta.json`, the event log, `output.log`, the stop signals and the idle timer.
pub struct Turn<'a> {
    /// The job home's store.
    pub store: &'a JobStore,
    /// The job's directory.
    pub job: &'a JobDir,
    /// The job's metadata as this supervisor last wrote it.
    pub meta: JobMeta,
    /// What to run.
    pub spec: TurnSpec,
    /// The job's event log.
    pub events: super::EventWriter,
    output: tokio::fs::File,
    output_cap: super::output::OutputCap,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    /// The turn's idle timeout (`idle_timeout_s`).
    pub idle: IdleTimer,
}

impl<'a> Turn<'a> {
    fn new(store: &'a JobStore, job: &'a JobDir, meta: JobMeta, spec: TurnSpec) -> Result<Self> {
        let idle = IdleTimer::new(meta.options.idle_timeout_s.map(Duration::from_secs));
        let output = job.output_log()?.into_std();
        let output_cap = super::output::OutputCap::new(&output, crate::config::output_max_bytes(store.root())?)
            .with_context(|| format!("cannot read {}/output.log", job.path().display()))?;
        Ok(Turn {
            events: job.event_writer()?,
            output: tokio::fs::File::from_std(output),
            output_cap,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            idle,
            store,
            job,
            meta,
            spec,
        })
    }

    /// The agent's command: `spec`'s program, arguments and environment, in
    /// the job's cwd, stdin, stdout and stderr piped, killed if the supervisor dies.
    pub fn agent_command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.meta.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe. Codex dies with its supervisor
        // rather than running on unrecorded.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                    .map_err(Into::into)
            });
        }
        cmd
    }

    /// Starts the agent and marks the turn `running`. `Err(end)` when it
    /// cannot start: the end to record.
    pub fn start_agent(
        &mut self,
        mut cmd: tokio::process::Command,
    ) -> Result<std::result::Result<tokio::process::Child, End>> {
        // Named before Codex starts: a supervisor that dies from here on is seen
        // as started (its turn is settled, not run twice).
        self.meta.pid = Some(std::process::id());
        self.meta.started_at = Some(Timestamp::now());
        self.job.write_meta(&self.meta)?;
        crate::failpoint!("supervisor-started");
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let error = format!("cannot start {}: {e}", self.spec.program.display());
                return Ok(Err(End { status: JobStatus::Failed, exit_code: None, error: Some(error) }));
            }
        };
        let pid = child.id();
        self.set_status(JobStatus::Running, json!({"pid": pid}))?;
        Ok(Ok(child))
    }

    /// Moves the turn to `status` (through [`JobStatus::can_move_to`]): `meta.json`,
    /// then a `job.status` event with `extra` fields. A move the state machine
    /// does not allow is an error.
    pub fn set_status(&mut self, status: JobStatus, extra: Value) -> Result<()> {
        if !self.meta.status.can_move_to(status, super::Turn::Same) {
            anyhow::bail!("job {}: cannot move from {} to {status}", self.meta.id, self.meta.status);
        }
        if status == JobStatus::InputRequired {
            // The feed's readers learn that the job needs them, not only that
            // it ended; written first, so whoever sees the status finds the note.
            self.store.feed().append(&Notification {
                job_id: self.meta.id.to_string(),
                status,
                turn: self.meta.turn,
                exit_code: None,
                error: None,
                finished_at: Timestamp::now().to_string(),
            })?;
        }
        self.meta.status = status;
        self.job.write_meta(&self.meta)?;
        self.events.status(&self.meta, extra)?;
        Ok(())
    }

    /// Keeps the thread id and last message the tracker learned in `meta.json`.
    pub fn note(&mut self, tracker: &TurnTracker) -> Result<()> {
        self.meta.thread_id = tracker.thread_id.clone().or(self.meta.thread_id.take());
        self.meta.last_message = tracker.last_message.clone().or(self.meta.last_message.take());
        self.job.write_meta(&self.meta)
    }

    /// Appends one line of the agent's raw output to `output.log`, within
    /// its cap (`[jobs] output_max_mib`; see [`super::output`]).
    pub async fn record_output(&mut self, line: &[u8]) -> Result<()> {
        use super::output::Write;
        let mut buf = match self.output_cap.before(line.len() as u64 + 1) {
            Write::Line => Vec::with_capacity(line.len() + 1),
            Write::Drop => return Ok(()),
        };
        buf.extend_from_slice(line);
        buf.push(b'\n');
        let path = || format!("cannot write {}/output.log", self.job.path().display());
        self.output.write_all(&buf).await.with_context(path)?;
        let Some(range) = self.output_cap.cut_due() else { return Ok(()) };
        self.output.flush().await?;
        self.output_cap
            .cut(&self.output, range)
            .with_context(|| format!("cannot cut the middle of {}/output.log", self.job.path().display()))
    }

    /// Records one line the agent wrote to stderr: in `output.log`, and as an
    /// `output` event. Returns it as text (the driver keeps the last for errors).
    pub async fn record_stderr(&mut self, line: &[u8]) -> Result<String> {
        let text = text(line);
        self.record_output(line).await?;
        self.events.append(super::event::OUTPUT_EVENT, json!({"stream": "stderr", "line": text}))?;
        Ok(text)
    }

    /// Resolves when the supervisor is told to stop (SIGTERM, SIGINT or SIGHUP: `job_cancel`).
    pub async fn stop_requested(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// `idle_timeout_s`: SIGTERM after that long without output, SIGKILL
/// [`KILL_GRACE`] later. Restarted by every line the agent prints (a driver
/// makes a new [`IdleTimer::sleep`] each time round its loop); paused while
/// the agent waits for an approval.
#[derive(Debug)]
pub struct IdleTimer {
    idle: Option<Duration>,
    /// Set once it fired: the turn's error.
    pub error: Option<String>,
    /// While set, the timer does not run.
    pub paused: bool,
}

/// What to do when the idle timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleAction {
    /// Ask the agent to stop (SIGTERM).
    Terminate,
    /// It ignored that: SIGKILL.
    Kill,
}

impl IdleTimer {
    fn new(idle: Option<Duration>) -> Self {
        IdleTimer { idle, error: None, paused: false }
    }

    /// Sleeps until the timer fires (never, when there is none or it is paused).
    pub fn sleep(&self) -> impl std::future::Future<Output = ()> + use<> {
        let timer = match (self.idle, &self.error) {
            _ if self.paused => None,
            (Some(d), None) => Some(d),
            (Some(_), Some(_)) => Some(KILL_GRACE),
            (None, _) => None,
        };
        async move {
            match timer {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        }
    }

    /// The timer fired: what to do now.
    pub fn fired(&mut self) -> IdleAction {
        if self.error.is_some() {
            self.idle = None;
            return IdleAction::Kill;
        }
        let secs = self.idle.unwrap_or_default().as_secs();
        self.error = Some(format!("no output from codex for {secs} s (idle_timeout_s); stopped it"));
        IdleAction::Terminate
    }
}

/// The agent's exit status as a number: its code, or 128 + the signal that killed it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s)).unwrap_or(-1)
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

/// Records the end of the job's current turn, exactly once whoever calls it
/// and wherever an earlier call stopped; under the job's lock.
///
/// 1. The terminal `job.status` event is the commit point: if the turn already
///    has one, its status, exit code and error win over `end` (a supervisor
///    that recorded its end before it died keeps the true exit code).
///    Otherwise `end` is appended and fsynced.
/// 2. Under the notification feed's lock: `meta.json` gets the end, `update`
///    (the supervisor's last thread id, message and usage) and the feed offset
///    the notification will take; then the notification is appended there. A
///    later call finds it at that offset and appends nothing.
/// 3. The turn leaves the queue.
///
/// Used by the supervisor at a turn's end, and by hosts settling a turn whose
/// supervisor died (they hold its supervisor lock, so it cannot be running).
pub fn record_end(store: &JobStore, job: &JobDir, update: impl FnOnce(&mut JobMeta), end: End) -> Result<()> {
    let _lock = job.lock()?;
    let mut meta = job.read_meta()?;
    record_end_locked(store, job, &mut meta, update, end)
}

/// [`record_end`] for a caller that holds the job's lock and has read `meta` under it.
pub fn record_end_locked(
    store: &JobStore,
    job: &JobDir,
    meta: &mut JobMeta,
    update: impl FnOnce(&mut JobMeta),
    end: End,
) -> Result<()> {
    if meta.status.is_terminal() && meta.notification_offset.is_none() {
        // Ended under an older version, which wrote meta.json last and kept no offset: complete already.
        return Queue::of(store).dequeue(meta);
    }
    let mut events = job.event_writer()?;
    let ended = match events.last_status(END_LOOK_BACK)? {
        Some(e) if ends_turn(&e, meta.turn) => e,
        _ => append_end(&mut events, meta, &end)?,
    };
    crate::failpoint!("end-after-event");
    update(meta);
    meta.status = serde_json::from_value(ended.data["status"].clone())?;
    meta.exit_code = ended.data["exit_code"].as_i64().and_then(|c| i32::try_from(c).ok());
    meta.error = ended.data["error"].as_str().map(str::to_owned);
    meta.finished_at = Some(ended.ts);
    let note = Notification {
        job_id: meta.id.to_string(),
        status: meta.status,
        turn: meta.turn,
        exit_code: meta.exit_code,
        error: meta.error.clone(),
        finished_at: ended.ts.to_string(),
    };
    store.feed().with_lock(|feed| {
        if let Some(offset) = meta.notification_offset {
            if feed.has(offset, &note.job_id, note.turn)? {
                return Ok(());
            }
        }
        meta.notification_offset = Some(feed.end_torn_line()?);
        job.write_meta(meta)?;
        job.sync()?; // before the entry goes, which would otherwise hide an end a crash undid
        crate::failpoint!("end-after-meta");
        feed.append(&note).map(drop)
    })?;
    crate::failpoint!("end-after-notification");
    Queue::of(store).dequeue(meta)
}

fn ends_turn(event: &Event, turn: u32) -> bool {
    let status: Option<JobStatus> = serde_json::from_value(event.data["status"].clone()).ok();
    status.is_some_and(JobStatus::is_terminal) && event.data["turn"].as_u64() == Some(u64::from(turn))
}

fn append_end(events: &mut super::EventWriter, meta: &JobMeta, end: &End) -> Result<Event> {
    let mut data = json!({"status": end.status, "turn": meta.turn, "exit_code": end.exit_code});
    if let Some(error) = &end.error {
        data["error"] = Value::from(error.as_str());
    }
    let event = events.append(super::event::STATUS_EVENT, data)?;
    events.sync()?;
    Ok(event)
}

pub fn signal_child(child: &tokio::process::Child, signal: rustix::process::Signal) {
    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Reads one line, without its line end, into `buf`; returns the bytes read (0 at the end).
pub async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    let n = reader.read_until(b'\n', buf).await?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    Ok(n)
}

/// A line of output as text, invalid UTF-8 replaced, without a trailing `\r`.
pub fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).trim_end_matches('\r').to_owned()
}
