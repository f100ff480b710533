//! Asking the connected MCP client about approval requests directly: when
//! the client declared the `elicitation` capability, each pending approval
//! request of a job it started (or replied to) through this connection is put
//! to it as an `elicitation/create` (accept / decline). Its answer is recorded
//! as `job_approve`'s would be, by `elicitation`; whichever answer comes first
//! (this, `job_approve`, the CLI, the deadline) is the one Codex gets. A
//! client that cancels or dismisses the form leaves the request pending.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
use rmcp::{Peer, RoleServer};

use crate::JobHost;
use crate::host::ApproveRequest;
use crate::job::JobStatus;
use crate::job::approval::{ApprovalDecision, PendingApproval};

/// The jobs of one connection and the requests already put to its client.
#[derive(Default)]
pub struct Elicitor {
    jobs: Mutex<HashSet<String>>,
    asked: Mutex<HashSet<(String, String)>>,
    following: AtomicBool,
}

impl Elicitor {
    /// Puts `job_id`'s approval requests to the client from now on, if the
    /// client can be asked (it declared `elicitation`).
    pub fn follow(self: &Arc<Self>, host: &Arc<JobHost>, peer: &Peer<RoleServer>, job_id: &str) {
        let can_ask = peer.peer_info().is_some_and(|info| info.capabilities.elicitation.is_some());
        if !can_ask {
            return;
        }
        self.jobs.lock().unwrap().insert(job_id.to_owned());
        if self.following.swap(true, Ordering::SeqCst) {
            return;
        }
        let (me, host, peer) = (Arc::clone(self), Arc::clone(host), peer.clone());
        tokio::spawn(async move {
            let mut changes = host.changes();
            loop {
                changes.borrow_and_update();
                // Only a job that waits for an answer is read (through job_status);
                // an ended one is dropped until a reply follows it again.
                let jobs: Vec<String> = {
                    let mut jobs = me.jobs.lock().unwrap();
                    jobs.retain(|j| host.indexed_status(j).is_none_or(|s| !s.is_terminal()));
                    jobs.iter().filter(|j| host.indexed_status(j) == Some(JobStatus::InputRequired)).cloned().collect()
                };
                for job in jobs {
                    let id = job.clone();
                    // Through job_status: what the client sees is redacted as every result is.
                    let pending = host.off_runtime(move |h| Ok(h.status(&id, Some(0), None)?.pending_approvals)).await;
                    for request in pending.unwrap_or_default() {
                        if me.asked.lock().unwrap().insert((job.clone(), request.request_id.clone())) {
                            tokio::spawn(ask(Arc::clone(&host), peer.clone(), job.clone(), request));
                        }
                    }
                }
                if changes.changed().await.is_err() || peer.is_transport_closed() {
                    return;
                }
            }
        });
    }
}

/// Asks the client about one request and records its answer.
async fn ask(host: Arc<JobHost>, peer: Peer<RoleServer>, job_id: String, request: PendingApproval) {
    let message = format!(
        "Codex job {job_id} asks for approval ({}, request {}, declined unanswered at {}):\n{}\nAccept or decline?",
        request.kind,
        request.request_id,
        request.deadline,
        serde_json::to_string_pretty(&request.request).unwrap_or_default()
    );
    let Ok(schema) = ElicitationSchema::builder().build() else { return };
    let params = ElicitRequestParams::FormElicitationParams { meta: None, message, requested_schema: schema };
    let decision = match peer.create_elicitation(params).await {
        Ok(result) => match result.action {
            ElicitationAction::Accept => ApprovalDecision::Accept,
            ElicitationAction::Decline => ApprovalDecision::Decline,
            _ => return, // cancelled or dismissed: the request stays pending
        },
        Err(e) => {
            tracing::debug!(job = %job_id, "the client did not answer the elicitation: {e}");
            return;
        }
    };
    let answer = ApproveRequest {
        job_id: job_id.clone(),
        request_id: request.request_id.clone(),
        decision,
        reason: Some("answered in the MCP client".into()),
    };
    if let Err(e) = host.off_runtime(move |h| h.approve(&answer, "elicitation")).await {
        // Another answer came first; it is the one that counts.
        tracing::debug!(job = %job_id, "elicitation answer not recorded: {e:#}");
    }
}
