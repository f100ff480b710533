//! The turn runtime: what every driver shares while it runs one turn of a
//! job inside its supervisor. A driver (one per way of talking to Codex, in
//! `backend/`) implements [`Driver`]; the runtime gives it a [`Turn`]: the
//! job's `meta.json`, its event log, `output.log` within its cap, the stop
//! signals (`job_cancel`), the idle timer, the [`TurnTracker`], and the
//! agent process itself ([`Agent`]) with its output read line by line.

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use rustix::process::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::signal::unix::{SignalKind, signal};

use super::event::OUTPUT_EVENT;
use super::output::{OutputCap, Write};
use super::tracker::{Noted, TurnTracker};
use super::{End, EventWriter, JobDir, JobMeta, JobStatus, JobStore, Notification, TurnSpec};

/// How long a turn stopped by `idle_timeout_s` gets after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// One way of running a turn's agent: the part of a supervisor that knows
/// the agent's protocol. `job/` defines it, `backend/` implements it, and the
/// `supervise` command hands the runtime the driver for the job's backend.
pub trait Driver {
    /// Runs the turn: starts the agent with [`Turn::start_agent`], talks to
    /// it until it exits, and says how the turn ended.
    ///
    /// Errors: a file of the job that cannot be written; the supervisor then
    /// records the turn `failed` with the error.
    fn drive(&self, turn: &mut Turn<'_>) -> impl Future<Output = Result<Driven>>;
}

/// How a driver left its turn.
pub enum Driven {
    /// The agent could not be started: nothing ran.
    NotStarted(End),
    /// The agent ran and the turn ended so; [`Turn::tracker`] holds what its events said.
    Ended(End),
}

/// One turn of a job as its supervisor runs it.
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
    pub events: EventWriter,
    /// What the turn's events said so far.
    pub tracker: TurnTracker,
    /// The turn's idle timeout (`idle_timeout_s`).
    pub idle: IdleTimer,
    /// `output.log`, written with plain `write` calls: a line is in the
    /// file before the event made from it is appended.
    output: std::fs::File,
    output_cap: OutputCap,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl<'a> Turn<'a> {
    /// The turn of `meta` in `job` that runs `spec`, with `spec`'s settings.
    /// Listens for the stop signals from here on.
    pub fn new(store: &'a JobStore, job: &'a JobDir, meta: JobMeta, spec: TurnSpec) -> Result<Self> {
        let idle = IdleTimer::new(meta.options.idle_timeout_s.map(Duration::from_secs));
        let output = job.output_log()?.into_std();
        let output_cap = OutputCap::new(&output, spec.settings.output_max_bytes)
            .with_context(|| format!("cannot read {}/output.log", job.path().display()))?;
        Ok(Turn {
            events: job.event_writer()?,
            tracker: TurnTracker::default(),
            output,
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
    fn agent_command(&self) -> tokio::process::Command {
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
    pub fn start_agent(&mut self) -> Result<std::result::Result<Agent, End>> {
        // Named before Codex starts: a supervisor that dies from here on is seen
        // as started (its turn is settled, not run twice).
        self.meta.pid = Some(std::process::id());
        self.meta.started_at = Some(Timestamp::now());
        self.job.write_meta(&self.meta)?;
        crate::failpoint!("supervisor-started");
        let mut child = match self.agent_command().spawn() {
            Ok(child) => child,
            Err(e) => return Ok(Err(End::failed(format!("cannot start {}: {e}", self.spec.program.display())))),
        };
        let pid = child.id();
        self.set_status(JobStatus::Running, json!({"pid": pid}))?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let stderr = BufReader::new(child.stderr.take().context("no stderr")?);
        Ok(Ok(Agent {
            child,
            stdout,
            stderr,
            out_line: Vec::new(),
            err_line: Vec::new(),
            out_open: true,
            err_open: true,
        }))
    }

    /// Moves the turn to `status` (see [`JobMeta::move_to`]): `meta.json`,
    /// then a `job.status` event with `extra` fields. A move the state machine
    /// does not allow is an error.
    pub fn set_status(&mut self, status: JobStatus, extra: Value) -> Result<()> {
        let mut moved = self.meta.clone();
        moved.move_to(status)?;
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
        self.meta = moved;
        self.job.write_meta(&self.meta)?;
        self.events.status(&self.meta, extra)?;
        Ok(())
    }

    /// Appends one event of the agent's, as `codex exec --json` names it
    /// (`kind`, the object itself), after the tracker has seen it; keeps
    /// `meta.json`'s thread id and last message current.
    pub fn emit(&mut self, kind: &str, event: Value) -> Result<()> {
        if self.tracker.observe(kind, &event) == Noted::MetaChanged {
            self.meta.thread_id = self.tracker.thread_id.clone().or(self.meta.thread_id.take());
            self.meta.last_message = self.tracker.last_message.clone().or(self.meta.last_message.take());
            self.job.write_meta(&self.meta)?;
        }
        self.events.append(kind, event)?;
        crate::failpoint!("after-agent-event");
        Ok(())
    }

    /// Appends one line of the agent's raw output to `output.log`, within
    /// its cap (`[jobs] output_max_mib`; see [`super::output`]). Written
    /// when this returns (not queued to a thread, as tokio's files would):
    /// whatever is killed after, the raw log is never behind the events.
    fn record_output(&mut self, line: &[u8]) -> Result<()> {
        use std::io::Write as _;
        let mut buf = match self.output_cap.before(line.len() as u64 + 1) {
            Write::Line => Vec::with_capacity(line.len() + 1),
            Write::Drop => return Ok(()),
        };
        buf.extend_from_slice(line);
        buf.push(b'\n');
        let path = || format!("cannot write {}/output.log", self.job.path().display());
        self.output.write_all(&buf).with_context(path)?;
        let Some(range) = self.output_cap.cut_due() else { return Ok(()) };
        self.output_cap
            .cut(&self.output, range)
            .with_context(|| format!("cannot cut the middle of {}/output.log", self.job.path().display()))
    }

    /// Records one line the agent wrote to stderr: in `output.log`, as an
    /// `output` event, and as the tracker's last stderr line (for errors).
    fn record_stderr(&mut self, line: &[u8]) -> Result<()> {
        let text = text(line);
        self.record_output(line)?;
        self.events.append(OUTPUT_EVENT, json!({"stream": "stderr", "line": text}))?;
        self.tracker.last_stderr = Some(text);
        Ok(())
    }

    /// Resolves when the supervisor is told to stop (SIGTERM, SIGINT or SIGHUP: `job_cancel`).
    async fn stop_requested(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// The agent process of a turn, its stdout and stderr read a line at a time.
pub struct Agent {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: BufReader<ChildStderr>,
    out_line: Vec<u8>,
    err_line: Vec<u8>,
    out_open: bool,
    err_open: bool,
}

/// What happened while a driver waited on its agent ([`Agent::next`]).
pub enum Happened<T> {
    /// The agent printed this line on stdout (already in `output.log`),
    /// as text: invalid UTF-8 replaced, without its line end.
    Stdout(String),
    /// The supervisor was told to stop (`job_cancel`): the driver stops the agent its own way.
    StopRequested,
    /// The idle timer fired: what to do now.
    Idle(IdleAction),
    /// The driver's own event came.
    Other(T),
}

impl Agent {
    /// The agent's stdin, once: the prompt or the protocol goes there.
    pub fn take_stdin(&mut self) -> Result<ChildStdin> {
        self.child.stdin.take().context("no stdin")
    }

    /// Waits for the next thing a driver must act on: a line on stdout, a
    /// stop request, the idle timer, or `other` (the driver's own events).
    /// Lines on stderr are recorded here (`output.log`, an `output` event,
    /// the tracker). `None` once the agent has closed stdout and stderr.
    pub async fn next<T>(
        &mut self,
        turn: &mut Turn<'_>,
        other: impl Future<Output = T>,
    ) -> Result<Option<Happened<T>>> {
        let mut other = std::pin::pin!(other);
        while self.out_open || self.err_open {
            // Made anew each time round: every line restarts the timer.
            let idle = turn.idle.sleep();
            tokio::select! {
                n = read_line(&mut self.stdout, &mut self.out_line), if self.out_open => {
                    if n? == 0 { self.out_open = false; continue; }
                    turn.record_output(&self.out_line)?;
                    return Ok(Some(Happened::Stdout(text(&self.out_line))));
                }
                n = read_line(&mut self.stderr, &mut self.err_line), if self.err_open => {
                    if n? == 0 { self.err_open = false; continue; }
                    turn.record_stderr(&self.err_line)?;
                }
                _ = turn.stop_requested() => return Ok(Some(Happened::StopRequested)),
                _ = idle => return Ok(Some(Happened::Idle(turn.idle.fired()))),
                value = &mut other => return Ok(Some(Happened::Other(value))),
            }
        }
        Ok(None)
    }

    /// Sends `signal` to the agent (not its children), if it still runs.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Sends `signal` to the turn's whole process group (the supervisor's
    /// session: the agent, what it started that stayed in the group, and the
    /// supervisor itself, which sees it as one more stop request).
    pub fn signal_group(&self, signal: Signal) {
        let _ = rustix::process::kill_current_process_group(signal);
    }

    /// Waits for the agent to exit: its exit status as a number, its code
    /// or 128 + the signal that killed it.
    pub async fn wait(mut self) -> Result<i32> {
        let status = self.child.wait().await?;
        Ok(status
            .code()
            .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s))
            .unwrap_or(-1))
    }
}

/// `idle_timeout_s`: SIGTERM after that long without output, SIGKILL
/// [`KILL_GRACE`] later. Restarted by every line the agent prints; paused
/// while the agent waits for an approval.
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
    fn sleep(&self) -> impl Future<Output = ()> + use<> {
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
    fn fired(&mut self) -> IdleAction {
        if self.error.is_some() {
            self.idle = None;
            return IdleAction::Kill;
        }
        let secs = self.idle.unwrap_or_default().as_secs();
        self.error = Some(format!("no output from codex for {secs} s (idle_timeout_s); stopped it"));
        IdleAction::Terminate
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

/// A line of output as text, invalid UTF-8 replaced, without a trailing `\r`.
fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).trim_end_matches('\r').to_owned()
}
