//! The in-memory index of jobs: what `job_list` and `job_wait` read, and the
//! wake-up that `job_wait` sleeps on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{JobId, JobMeta, JobStatus};

/// Characters of the prompt kept in the index.
const PROMPT_PREVIEW: usize = 120;

/// One job as `job_list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobSummary {
    /// The job id.
    pub job_id: String,
    /// Its status.
    pub status: JobStatus,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The first turn's prompt, cut to 120 characters.
    pub prompt: String,
    /// The current turn, from 0.
    pub turn: u32,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When the current turn ended, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The agent's exit status for the current turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// For a queued turn, its place in the home's queue: 1 starts next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// The name of the HTTP token that started the job (`serve --http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

impl JobSummary {
    /// The summary of a job's metadata.
    pub fn of(meta: &JobMeta) -> Self {
        let mut prompt: String = meta.prompt.chars().take(PROMPT_PREVIEW).collect();
        if prompt.len() < meta.prompt.len() {
            prompt.push('…');
        }
        JobSummary {
            job_id: meta.id.to_string(),
            status: meta.status,
            cwd: meta.cwd.clone(),
            prompt,
            turn: meta.turn,
            created_at: meta.created_at.to_string(),
            finished_at: meta.finished_at.map(|t| t.to_string()),
            exit_code: meta.exit_code,
            queue_position: None,
            started_by: meta.started_by.clone(),
        }
    }
}

/// Jobs by id, plus a counter that moves on every change.
#[derive(Debug)]
pub struct Registry {
    jobs: Mutex<HashMap<JobId, JobSummary>>,
    changes: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { jobs: Mutex::default(), changes: watch::Sender::new(0) }
    }
}

impl Registry {
    /// Records a job's current state and wakes every waiter. Several tasks
    /// read `meta.json` and report it here; one that read it before another's
    /// newer write is ignored: an earlier turn, or a turn's end going back to
    /// a status before it.
    pub fn update(&self, meta: &JobMeta) {
        {
            let mut jobs = self.jobs.lock().unwrap();
            let stale = jobs.get(&meta.id).is_some_and(|known| {
                meta.turn < known.turn
                    || (meta.turn == known.turn && known.status.is_terminal() && !meta.status.is_terminal())
            });
            if stale {
                return;
            }
            jobs.insert(meta.id, JobSummary::of(meta));
        }
        self.changes.send_modify(|v| *v += 1);
    }

    /// Forgets a job (collected by `jobs gc`).
    pub fn remove(&self, id: JobId) {
        if self.jobs.lock().unwrap().remove(&id).is_some() {
            self.changes.send_modify(|v| *v += 1);
        }
    }

    /// The current summary of one job.
    pub fn get(&self, id: JobId) -> Option<JobSummary> {
        self.jobs.lock().unwrap().get(&id).cloned()
    }

    /// Jobs that pass `keep`, newest first, at most `limit`.
    pub fn list(&self, limit: usize, keep: impl Fn(&JobSummary) -> bool) -> Vec<JobSummary> {
        let jobs = self.jobs.lock().unwrap();
        let mut ids: Vec<&JobId> = jobs.keys().collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.into_iter().map(|id| &jobs[id]).filter(|j| keep(j)).take(limit).cloned().collect()
    }

    /// A receiver that sees every later change: `changed().await` wakes on the next update.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, JobOptions, JobStatus};

    #[test]
    fn a_late_report_of_an_older_state_is_ignored() {
        let registry = Registry::default();
        let mut meta = JobMeta::queued(
            JobId::new(),
            "p",
            "/w".into(),
            crate::job::BackendKind::Exec,
            JobOptions::default(),
            "/c".into(),
        );
        meta.status = JobStatus::Completed;
        let done = meta.clone();
        registry.update(&meta);
        meta.turn = 1;
        meta.status = JobStatus::Queued;
        registry.update(&meta);
        registry.update(&done); // read before the reply, reported after it
        assert_eq!(
            (registry.get(meta.id).unwrap().turn, registry.get(meta.id).unwrap().status),
            (1, JobStatus::Queued)
        );
        meta.status = JobStatus::Completed;
        registry.update(&meta);
        meta.status = JobStatus::Running;
        registry.update(&meta); // the turn's end stays
        assert_eq!(registry.get(meta.id).unwrap().status, JobStatus::Completed);
    }
}
