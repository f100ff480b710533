//! The supervisor: `codex-jobhost supervise`, one detached process per turn.
//!
//! The host starts it, and it moves itself into a new session (so it is its
//! own process group and outlives the host, SIGKILL included). It starts Codex, writes Codex's raw
//! output to `output.log` and its events to `events.jsonl`, keeps `meta.json`
//! current, and records the exit status when Codex exits. A SIGTERM to the
//! group (`job_cancel`) reaches Codex and the supervisor alike; the supervisor
//! then records `cancelled`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::signal::unix::{SignalKind, signal};

use super::event::OUTPUT_EVENT;
use super::store::{EventWriter, JobDir, JobStore, Notification};
use super::{JobId, JobMeta, JobStatus};
use crate::backend::exec::{self, Noted, TurnTracker};

/// What `codex-jobhost supervise` is told to run.
#[derive(Clone, Debug)]
pub struct TurnCommand {
    /// The job home (`$CODEX_JOBHOST_HOME`).
    pub home: PathBuf,
    /// The job.
    pub job: JobId,
    /// The agent program and its arguments.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<OsString>,
}

impl TurnCommand {
    /// The supervisor's own arguments (after the host binary):
    /// `--home H supervise --job ID -- PROGRAM ARGS…`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--home".into(), self.home.clone().into(), "supervise".into()];
        args.extend(["--job".into(), self.job.to_string().into(), "--".into(), self.program.clone().into()]);
        args.extend(self.args.iter().cloned());
        args
    }
}

/// Starts a supervisor for the job's current turn (it moves itself into a new session),
/// its stderr (the supervisor's own log) in `supervisor.log`. Returns its pid,
/// which is also its process group id.
pub fn spawn(host_exe: &Path, job: &JobDir, turn: &TurnCommand, env: &[(String, String)]) -> Result<u32> {
    let log = job.supervisor_log()?;
    let mut cmd = tokio::process::Command::new(host_exe);
    cmd.args(turn.to_args())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // No pre_exec hook, so the standard library can use posix_spawn (about
    // half the cost of fork and exec); the supervisor calls setsid itself.
    let child = cmd.spawn().with_context(|| format!("cannot start the supervisor {}", host_exe.display()))?;
    // Dropping the handle leaves the process running; tokio reaps it when it exits.
    child.id().context("the supervisor exited at once")
}

/// Runs one turn to its end: the body of `codex-jobhost supervise`.
pub async fn run(turn: TurnCommand) -> Result<()> {
    // A new session and process group: the host's signals and terminal no
    // longer reach this turn, and job_cancel signals the group as a whole.
    rustix::process::setsid().context("setsid")?;
    let store = JobStore::open(&turn.home)?;
    let job = store.job(turn.job)?;
    let mut meta = job.read_meta()?;
    let mut events = job.event_writer()?;
    let mut output = tokio::fs::File::from_std(job.output_log()?.into_std());

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let mut cmd = tokio::process::Command::new(&turn.program);
    cmd.args(&turn.args).current_dir(&meta.cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe. Codex dies with its supervisor
    // rather than running on unrecorded.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).map_err(Into::into)
        });
    }
    meta.pid = Some(std::process::id());
    meta.started_at = Some(Timestamp::now());
    meta.finished_at = None;
    meta.exit_code = None;
    meta.error = None;
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let error = format!("cannot start {}: {e}", turn.program.display());
            return finish(&store, &job, &mut meta, &mut events, JobStatus::Failed, None, Some(error));
        }
    };
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
    let idle = meta.options.idle_timeout_s.map(Duration::from_secs);

    while out_open || err_open {
        let idle_armed = idle.filter(|_| idle_error.is_none());
        let idle_timer = async move {
            match idle_armed {
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
            _ = term.recv() => { cancelled = true; forward_term(&child); }
            _ = int.recv() => { cancelled = true; forward_term(&child); }
            _ = hup.recv() => { cancelled = true; forward_term(&child); }
            _ = idle_timer => {
                let secs = idle.unwrap_or_default().as_secs();
                idle_error = Some(format!("no output from codex for {secs} s (idle_timeout_s); stopped it"));
                forward_term(&child);
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
    meta.thread_id = tracker.thread_id.or(meta.thread_id.take());
    meta.last_message = tracker.last_message.or(meta.last_message.take());
    meta.usage = tracker.usage.or(meta.usage.take());
    finish(&store, &job, &mut meta, &mut events, status, Some(exit_code), error)
}

/// Records a terminal status: the status event (fsynced), `meta.json`, then
/// the notification feed. Used by the supervisor, and by the host for a
/// supervisor that died without doing it.
pub fn finish(
    store: &JobStore,
    job: &JobDir,
    meta: &mut JobMeta,
    events: &mut EventWriter,
    status: JobStatus,
    exit_code: Option<i32>,
    error: Option<String>,
) -> Result<()> {
    let now = Timestamp::now();
    meta.status = status;
    meta.exit_code = exit_code;
    meta.error = error;
    meta.finished_at = Some(now);
    let mut extra = json!({"exit_code": exit_code});
    if let Some(error) = &meta.error {
        extra["error"] = Value::from(error.as_str());
    }
    events.status(meta, extra)?;
    events.sync()?;
    job.write_meta(meta)?;
    store.append_notification(&Notification {
        job_id: meta.id.to_string(),
        status,
        turn: meta.turn,
        exit_code,
        error: meta.error.clone(),
        finished_at: now.to_string(),
    })
}

fn forward_term(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
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
    use tokio::io::AsyncWriteExt;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    output.write_all(&buf).await?;
    Ok(())
}
