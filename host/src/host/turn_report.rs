//! One turn of a job as a caller that follows that turn alone sees it: what
//! an MCP task (one per `job_start` or `job_reply`) reports. Read from the
//! job's files on every call, so any server answers the same, after a
//! restart too.

use anyhow::Result;
use jiff::Timestamp;
use serde::Serialize;

use super::JobHost;
use super::tools::{EventsRequest, StatusReport};
use crate::error::invalid;
use crate::job::JobId;
use crate::job::approval::PendingApproval;
use crate::job::event::STATUS_EVENT;
use crate::job::{JobStatus, JobStatus::*};

/// Where one turn of a job stands (see [`JobHost::turn_report`]).
#[derive(Clone, Debug)]
pub struct TurnReport {
    /// That turn's status (not the job's, once a later turn began).
    pub status: JobStatus,
    /// When the turn was queued (turn 0: when the job was created).
    pub created_at: Timestamp,
    /// The last change the job's files show for the turn: queued, started or ended.
    pub updated_at: Timestamp,
    /// Approval requests of the turn waiting for an answer.
    pub pending_approvals: Vec<PendingApproval>,
    /// What the turn came to, once it ended.
    pub result: Option<TurnResult>,
}

/// What an ended turn came to.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum TurnResult {
    /// The job's current turn: `job_status`'s report, without the output
    /// tail (the agent's raw output is noise in a model's context; `job_status` has it).
    Current(Box<StatusReport>),
    /// A turn a later `job_reply` followed, read back from the event log.
    Earlier(EarlierTurn),
}

/// An ended turn that is no longer the job's current one.
#[derive(Clone, Debug, Serialize)]
pub struct EarlierTurn {
    /// The job id.
    pub job_id: String,
    /// How the turn ended: `completed`, `failed` or `cancelled`.
    pub status: JobStatus,
    /// The turn, from 0.
    pub turn: u32,
    /// The agent's exit status, when it exited.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// The job's turn now.
    pub current_turn: u32,
    /// The agent's last message in that turn (as `job_events` shows it).
    pub last_message: Option<String>,
}

/// Most events read back to find an earlier turn's end and last message.
const EARLIER_TURN_EVENTS_MAX: usize = 100_000;

impl JobHost {
    /// Turn `turn` of job `job_id`: its status, approval requests and, once
    /// it ended, its result: for the current turn `job_status`'s report
    /// without output tail, cut to `max_chars`, for an earlier one its end and last message from the
    /// event log. Everything passes the job's policies as the read tools' results do.
    ///
    /// Errors: [`crate::InvalidInput`] for a malformed or unknown job id, or a
    /// turn the job has not reached.
    pub fn turn_report(&self, job_id: &str, turn: u32, max_chars: usize) -> Result<TurnReport> {
        let id = JobId::parse(job_id)?;
        let meta = self.store.job(id)?.read_meta()?;
        if turn > meta.turn {
            return Err(invalid(format!("job {id} has no turn {turn}: its turn is {}", meta.turn)));
        }
        if turn < meta.turn {
            return self.earlier_turn(id, turn, meta.turn);
        }
        let report = self.status(job_id, Some(0), Some(max_chars))?;
        let created_at = meta.queued_at.unwrap_or(meta.created_at);
        let updated_at = [Some(created_at), meta.started_at, meta.finished_at].into_iter().flatten().max();
        let status = report.status;
        Ok(TurnReport {
            status,
            created_at,
            updated_at: updated_at.unwrap_or(created_at),
            pending_approvals: if status == InputRequired { report.pending_approvals.clone() } else { Vec::new() },
            result: status.is_terminal().then(|| TurnResult::Current(Box::new(report))),
        })
    }

    /// An ended turn followed by later ones: its `job.status` events and
    /// `agent_message` items, read through `job_events` (and so its policies).
    fn earlier_turn(&self, id: JobId, turn: u32, current_turn: u32) -> Result<TurnReport> {
        let mut request = EventsRequest {
            job_id: id.to_string(),
            cursor: None,
            limit: Some(1000),
            event_types: Some(vec![STATUS_EVENT.to_owned(), "agent_message".to_owned()]),
            truncate: Some(0),
            max_chars: None,
        };
        let (mut created_at, mut ended) = (None, None);
        let mut last_message = None;
        let mut read = 0;
        'pages: loop {
            let page = self.events(&request)?;
            for event in &page.events {
                let event_turn = event.data["turn"].as_u64();
                if event.kind == STATUS_EVENT && event_turn == Some(u64::from(turn)) {
                    let ts = event.ts.parse::<Timestamp>()?;
                    created_at.get_or_insert(ts);
                    let status = event.data["status"].as_str().map(JobStatus::parse).transpose()?;
                    if status.is_some_and(JobStatus::is_terminal) {
                        ended = Some((status.unwrap_or(Failed), ts, event.data.clone()));
                        break 'pages;
                    }
                } else if created_at.is_some() && event.kind == "item.completed" {
                    last_message = event.data.pointer("/item/text").and_then(|t| t.as_str()).map(str::to_owned);
                }
            }
            read += page.events.len();
            if !page.has_more || read >= EARLIER_TURN_EVENTS_MAX {
                break;
            }
            request.cursor = Some(page.next_cursor);
        }
        let Some((status, ended_at, data)) = ended else {
            return Err(anyhow::anyhow!(
                "job {id}: the event log has no end of turn {turn}, which a later turn followed"
            ));
        };
        let created_at = created_at.unwrap_or(ended_at);
        Ok(TurnReport {
            status,
            created_at,
            updated_at: ended_at,
            pending_approvals: Vec::new(),
            result: Some(TurnResult::Earlier(EarlierTurn {
                job_id: id.to_string(),
                status,
                turn,
                exit_code: data["exit_code"].as_i64().and_then(|c| i32::try_from(c).ok()),
                error: data["error"].as_str().map(str::to_owned),
                current_turn,
                last_message,
            })),
        })
    }
}
