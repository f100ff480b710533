//! Recording the end of a turn, exactly once whoever gets there first: the
//! turn's own supervisor, a host settling a supervisor that died, `job_cancel`
//! on a queued turn, or `job_reply` finishing an end a crash left half-written.

use anyhow::Result;
use serde_json::{Value, json};

use super::event::{Event, STATUS_EVENT};
use super::{EventWriter, JobDir, JobMeta, JobStatus, JobStore, Notification, Queue};

/// Most events that may follow a turn's terminal `job.status` event (host
/// notes such as `policy_error`) for [`record_end`] still to find it.
const END_LOOK_BACK: u64 = 10_000;

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

impl End {
    /// The end of a turn stopped by `job_cancel` (or `jobs cancel`).
    pub fn cancelled_by_job_cancel() -> Self {
        End { status: JobStatus::Cancelled, exit_code: None, error: Some("cancelled by job_cancel".to_owned()) }
    }

    /// A turn that failed for `error` without an exit status of the agent's.
    pub fn failed(error: String) -> Self {
        End { status: JobStatus::Failed, exit_code: None, error: Some(error) }
    }

    /// The end `meta` already records (to finish recording it after a crash).
    pub fn recorded_in(meta: &JobMeta) -> Self {
        End { status: meta.status, exit_code: meta.exit_code, error: meta.error.clone() }
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
    let status = serde_json::from_value(ended.data["status"].clone())?;
    let exit_code = ended.data["exit_code"].as_i64().and_then(|c| i32::try_from(c).ok());
    let error = ended.data["error"].as_str().map(str::to_owned);
    meta.settle(End { status, exit_code, error }, ended.ts)?;
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

fn append_end(events: &mut EventWriter, meta: &JobMeta, end: &End) -> Result<Event> {
    let mut data = json!({"status": end.status, "turn": meta.turn, "exit_code": end.exit_code});
    if let Some(error) = &end.error {
        data["error"] = Value::from(error.as_str());
    }
    let event = events.append(STATUS_EVENT, data)?;
    events.sync()?;
    Ok(event)
}
