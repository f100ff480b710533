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

use super::event::{Event, OUTPUT_EVENT};
use super::store::{FileLock, JobDir, JobStore, Notification, TurnSpec};
use super::{JobId, JobMeta, JobStatus};
use crate::backend::exec::{self, Noted, TurnTracker};

/// How long a turn stopped by `idle_timeout_s` gets after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Most events that may follow a turn's terminal `job.status` event (host
/// notes such as `policy_error`) for [`record_end`] still to find it.
const END_LOOK_BACK: u64 = 10_000;

/// Starts a supervisor for the job's current turn (it moves itself into a new
/// session): `HOST_EXE --home HOME supervise --job ID`, its stdin the job's
/// supervisor lock (which it keeps, and so holds, for its whole life), its
/// stderr (the supervisor's own log) in `supervisor.log`. What it runs is in
/// the job's `turn.json`. Returns its pid, which is also its process group id.
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
    let spec = job.read_turn()?;
    if meta.status != JobStatus::Queued || spec.turn != meta.turn {
        anyhow::bail!("job {id} is {} in turn {}; nothing to run for turn {}", meta.status, meta.turn, spec.turn);
    }
    let result = drive(&store, &job, meta, spec).await;
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

/// Starts Codex for the turn and follows it to its end (see [`run`]).
async fn drive(store: &JobStore, job: &JobDir, mut meta: JobMeta, spec: TurnSpec) -> Result<()> {
    let mut events = job.event_writer()?;
    let mut output = tokio::fs::File::from_std(job.output_log()?.into_std());

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&meta.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe. Codex dies with its supervisor
    // rather than running on unrecorded.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).map_err(Into::into)
        });
    }
    // Named before Codex starts: a supervisor that dies from here on is seen
    // as started (its turn is settled, not run twice).
    meta.pid = Some(std::process::id());
    meta.started_at = Some(Timestamp::now());
    job.write_meta(&meta)?;
    crate::failpoint!("supervisor-started");
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let error = format!("cannot start {}: {e}", spec.program.display());
            let end = End { status: JobStatus::Failed, exit_code: None, error: Some(error) };
            return record_end(store, job, |_| {}, end);
        }
    };
    // The prompt goes to Codex's stdin (`-`), never on a command line.
    let mut stdin = child.stdin.take().context("no stdin")?;
    let prompt = spec.prompt;
    tokio::spawn(async move {
        let _ = stdin.write_all(prompt.as_bytes()).await;
    });
    meta.status = JobStatus::Running;
    job.write_meta(&meta)?;
    events.status(&meta, json!({"pid": child.id()}))?;

    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?);
    let (mut out_line, mut err_line) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut tracker = TurnTracker::default();
    let mut cancelled = false;
    let mut idle_error = None;
    let mut idle = meta.options.idle_timeout_s.map(Duration::from_secs);

    while out_open || err_open {
        // Idle: SIGTERM after `idle`, then SIGKILL after KILL_GRACE more.
        let timer = match (idle, &idle_error) {
            (Some(d), None) => Some(d),
            (Some(_), Some(_)) => Some(KILL_GRACE),
            (None, _) => None,
        };
        let idle_timer = async move {
            match timer {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = read_line(&mut stdout, &mut out_line), if out_open => {
                if n? == 0 { out_open = false; continue; }
                let line = text(&out_line);
                append_output(&mut output, &out_line).await?;
                let (kind, value) = exec::parse_stdout_line(&line);
                if tracker.observe(&kind, &value) == Noted::MetaChanged {
                    meta.thread_id = tracker.thread_id.clone().or(meta.thread_id.take());
                    meta.last_message = tracker.last_message.clone().or(meta.last_message.take());
                    job.write_meta(&meta)?;
                }
                events.append(&kind, value)?;
            }
            n = read_line(&mut stderr, &mut err_line), if err_open => {
                if n? == 0 { err_open = false; continue; }
                let line = text(&err_line);
                append_output(&mut output, &err_line).await?;
                events.append(OUTPUT_EVENT, json!({"stream": "stderr", "line": line}))?;
                tracker.last_stderr = Some(line);
            }
            _ = term.recv() => { cancelled = true; signal_child(&child, rustix::process::Signal::TERM); }
            _ = int.recv() => { cancelled = true; signal_child(&child, rustix::process::Signal::TERM); }
            _ = hup.recv() => { cancelled = true; signal_child(&child, rustix::process::Signal::TERM); }
            _ = idle_timer => {
                if idle_error.is_some() {
                    // Still there KILL_GRACE after SIGTERM: it ignored it.
                    signal_child(&child, rustix::process::Signal::KILL);
                    idle = None;
                    continue;
                }
                let secs = idle.unwrap_or_default().as_secs();
                idle_error = Some(format!("no output from codex for {secs} s (idle_timeout_s); stopped it"));
                signal_child(&child, rustix::process::Signal::TERM);
            }
        }
    }
    let status = child.wait().await?;
    let exit_code =
        status.code().or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s)).unwrap_or(-1);
    let (status, error) = tracker.outcome(exit_code, cancelled);
    let (status, error) = match idle_error {
        Some(e) if !cancelled => (JobStatus::Failed, Some(e)),
        _ => (status, error),
    };
    crate::failpoint!("supervisor-before-end");
    let end = End { status, exit_code: Some(exit_code), error };
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
        return store.dequeue(meta);
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
    store.with_feed(|feed| {
        if let Some(offset) = meta.notification_offset {
            if JobStore::feed_has(feed, offset, &note.job_id, note.turn)? {
                return Ok(());
            }
        }
        meta.notification_offset = Some(JobStore::end_torn_line(feed)?);
        job.write_meta(meta)?;
        crate::failpoint!("end-after-meta");
        JobStore::append_to_feed(feed, &note).map(drop)
    })?;
    crate::failpoint!("end-after-notification");
    store.dequeue(meta)
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

fn signal_child(child: &tokio::process::Child, signal: rustix::process::Signal) {
    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Reads one line, without its line end, into `buf`; returns the bytes read (0 at the end).
async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    let n = reader.read_until(b'\n', buf).await?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    Ok(n)
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).trim_end_matches('\r').to_owned()
}

async fn append_output(output: &mut tokio::fs::File, line: &[u8]) -> Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    output.write_all(&buf).await?;
    Ok(())
}
