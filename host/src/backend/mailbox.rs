//! Waiting for the answer to a request handed to the caller: the answer is
//! a file in the job's `approvals/` that any server or the CLI writes once
//! (see [`crate::job::approval`]); the supervisor wakes on it by inotify.

use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::job::JobDir;
use crate::job::approval::{self, ApprovalAnswer, ApprovalDecision, PendingApproval};
use crate::job::dirwatch::DirWatch;

/// Waits, in a task of its own, for the answer to `pending`: woken by inotify
/// on the job's `approvals/`, never by polling. At the deadline it records a
/// decline itself (unless an answer came first, which then counts). The
/// answer goes to `answers` with the request's id.
pub fn wait_for_answer(
    job: JobDir,
    pending: PendingApproval,
    answers: mpsc::UnboundedSender<(String, ApprovalAnswer)>,
) -> Result<tokio::task::JoinHandle<()>> {
    let dir = job.path().join(crate::home::job::APPROVALS_DIR);
    let changes = DirWatch::open(&dir)?;
    let deadline: Timestamp = pending.deadline.parse()?;
    Ok(tokio::spawn(async move {
        let got = async {
            loop {
                if let Some(answer) = approval::read_answer(&job, &pending.request_id)? {
                    return Ok::<_, anyhow::Error>(answer);
                }
                let left = deadline.duration_since(Timestamp::now());
                let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    let timeout = ApprovalAnswer {
                        decision: ApprovalDecision::Decline,
                        reason: Some(format!("no answer by {} (approval_timeout_s)", pending.deadline)),
                        by: "timeout".into(),
                        answered_at: Timestamp::now().to_string(),
                    };
                    return Ok(match approval::answer(&job, &pending.request_id, &timeout)? {
                        Ok(()) => timeout,
                        Err(first) => first,
                    });
                }
                let _ = tokio::time::timeout(left, changes.changed()).await;
            }
        };
        let answer = match got.await {
            Ok(answer) => answer,
            Err(e) => ApprovalAnswer {
                decision: ApprovalDecision::Decline,
                reason: Some(format!("cannot read the answer: {e:#}")),
                by: "built-in".into(),
                answered_at: Timestamp::now().to_string(),
            },
        };
        let _ = answers.send((pending.request_id, answer));
    }))
}
