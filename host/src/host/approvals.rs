//! Answering the approval requests that a job's policies handed to the
//! caller (`job_approve`, `codex-jobhost jobs approve`). The answer is a file
//! in the job's `approvals/` (see [`crate::job::approval`]); the job's
//! supervisor wakes on it and gives it to Codex, so no server has to be the
//! one that started the job, or be running at all while the job waits.

use anyhow::Result;
use jiff::Timestamp;

use super::JobHost;
use super::tools::{ApproveOutcome, ApproveRequest};
use crate::error::invalid;
use crate::job::JobId;
use crate::job::approval::{self, ApprovalAnswer};

impl JobHost {
    /// Answers a pending approval request of a job's current turn; `by` names
    /// who answered (`job_approve`, `jobs approve`). Exactly one answer counts.
    ///
    /// Errors: [`crate::InvalidInput`] for a bad or unknown job id, a
    /// malformed request id, a request the job never made (naming those that
    /// are pending), one of an earlier turn, or one already answered (naming
    /// that answer, who gave it and when).
    pub fn approve(&self, req: &ApproveRequest, by: &str) -> Result<ApproveOutcome> {
        let id = JobId::parse(&req.job_id)?;
        approval::check_request_id(&req.request_id)?;
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        let Some(request) = approval::read_request(&job, &req.request_id)? else {
            let pending: Vec<String> = approval::pending(&job, meta.turn)?.into_iter().map(|p| p.request_id).collect();
            let pending = if pending.is_empty() { "none".to_owned() } else { pending.join(", ") };
            return Err(invalid(format!("job {id} has no approval request {}; pending: {pending}", req.request_id)));
        };
        if let Some(first) = approval::read_answer(&job, &req.request_id)? {
            return Err(already(id, &req.request_id, &first));
        }
        if request.turn != meta.turn || meta.status.is_terminal() {
            return Err(invalid(format!(
                "approval request {} of job {id} belongs to turn {}, which has ended",
                req.request_id, request.turn
            )));
        }
        let answer = ApprovalAnswer {
            decision: req.decision,
            reason: req.reason.clone(),
            by: by.to_owned(),
            answered_at: Timestamp::now().to_string(),
        };
        if let Err(first) = approval::answer(&job, &req.request_id, &answer)? {
            return Err(already(id, &req.request_id, &first));
        }
        Ok(ApproveOutcome {
            job_id: id.to_string(),
            request_id: req.request_id.clone(),
            decision: req.decision,
            status: meta.status,
        })
    }
}

fn already(id: JobId, request_id: &str, first: &ApprovalAnswer) -> anyhow::Error {
    invalid(format!(
        "approval request {request_id} of job {id} was already answered: {} by {} at {}",
        first.decision.as_str(),
        first.by,
        first.answered_at
    ))
    .into()
}
