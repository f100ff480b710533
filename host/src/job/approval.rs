//! Approval requests that the policies handed to the caller (`ask`), kept as
//! files in the job's `approvals/` directory so that any host process, or
//! none, can show and answer them while the supervisor waits:
//!
//! - `approvals/<request_id>.json`: the [`PendingApproval`], written atomically
//!   by the supervisor before the job turns `input_required`;
//! - `approvals/<request_id>.answer.json`: its [`ApprovalAnswer`], made by a
//!   hard link from a finished temporary file, which fails when the name
//!   exists: the first answer wins, whole, and a second sees the first.
//!
//! The supervisor wakes on the answer by inotify ([`super::dirwatch::DirWatch`]).

use std::io::{self, Write};

use anyhow::{Context, Result};
use cap_std::fs::{Dir, OpenOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::JobDir;
use crate::error::{InvalidInput, invalid};

use crate::home::job::APPROVALS_DIR;

/// An approval request waiting for the caller: as `job_status` lists it in
/// `pending_approvals` and `job_events` shows it in `approval.requested`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PendingApproval {
    /// The request's id within the job, `<turn>-<n>` (e.g. `0-1`): pass it to `job_approve`.
    pub request_id: String,
    /// The turn that asked, from 0.
    pub turn: u32,
    /// `command`, `file_change` or `permissions`.
    pub kind: String,
    /// What the agent asks, as the approval policies saw it (the WIT
    /// `request` in JSON, e.g. `{"command": {"command": "git push", "cwd": "/w", "reason": null}}`).
    pub request: Value,
    /// The raw request Codex sent (its JSON-RPC method and params).
    pub raw: Value,
    /// The policy that handed it on (`built-in` when none is configured).
    pub asked_by: String,
    /// When it was asked, RFC 3339 UTC.
    pub requested_at: String,
    /// When it is declined unanswered (`approval_timeout_s`), RFC 3339 UTC.
    pub deadline: String,
}

/// An answer to an approval request (`job_approve`'s `decision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Allow it once.
    Accept,
    /// Allow it and the same request for the rest of the session.
    AcceptForSession,
    /// Refuse it; the agent goes on.
    Decline,
    /// Refuse it and stop the turn.
    Cancel,
}

impl ApprovalDecision {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::Accept => "accept",
            ApprovalDecision::AcceptForSession => "accept_for_session",
            ApprovalDecision::Decline => "decline",
            ApprovalDecision::Cancel => "cancel",
        }
    }
}

/// The answer to one request, in `approvals/<request_id>.answer.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalAnswer {
    /// The decision.
    pub decision: ApprovalDecision,
    /// Why, if the one who answered said.
    pub reason: Option<String>,
    /// Who answered: `job_approve`, `jobs approve`, `elicitation` or `timeout`.
    pub by: String,
    /// When, RFC 3339 UTC.
    pub answered_at: String,
}

/// Checks a caller's request id: `<turn>-<n>`, digits only (it names a file).
pub fn check_request_id(request_id: &str) -> Result<(), InvalidInput> {
    let ok = request_id.split_once('-').is_some_and(|(t, n)| {
        [t, n].iter().all(|p| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "invalid request_id {}: expected <turn>-<n> as job_status lists it in pending_approvals, e.g. \"0-1\"",
            crate::job::id::quote_short(request_id)
        )))
    }
}

fn approvals(job: &JobDir) -> Result<Dir> {
    match job.dir().create_dir(APPROVALS_DIR) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}/{APPROVALS_DIR}", job.path().display())),
    }
    job.dir().open_dir(APPROVALS_DIR).with_context(|| format!("cannot open {}/{APPROVALS_DIR}", job.path().display()))
}

/// Writes a pending request atomically (temporary file, fsync, rename).
pub fn write_pending(job: &JobDir, pending: &PendingApproval) -> Result<()> {
    let dir = approvals(job)?;
    let name = format!("{}.json", pending.request_id);
    let write = || -> io::Result<()> {
        let mut tmp = cap_tempfile::TempFile::new(&dir)?;
        tmp.as_file_mut().write_all(&serde_json::to_vec(pending)?)?;
        tmp.as_file().sync_all()?;
        tmp.replace(&name)
    };
    write().with_context(|| format!("cannot write {}/{APPROVALS_DIR}/{name}", job.path().display()))
}

/// The request `request_id`, if it was ever asked.
pub fn read_request(job: &JobDir, request_id: &str) -> Result<Option<PendingApproval>> {
    read_json(job, &format!("{request_id}.json"))
}

/// The answer to `request_id`, if there is one.
pub fn read_answer(job: &JobDir, request_id: &str) -> Result<Option<ApprovalAnswer>> {
    read_json(job, &format!("{request_id}.answer.json"))
}

fn read_json<T: serde::de::DeserializeOwned>(job: &JobDir, name: &str) -> Result<Option<T>> {
    let path = || format!("{}/{APPROVALS_DIR}/{name}", job.path().display());
    let bytes = match job.dir().read(format!("{APPROVALS_DIR}/{name}")) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path())),
    };
    serde_json::from_slice(&bytes).map(Some).with_context(|| format!("{} is not valid JSON of its kind", path()))
}

/// The requests of `turn` that have no answer yet, oldest first.
pub fn pending(job: &JobDir, turn: u32) -> Result<Vec<PendingApproval>> {
    let dir = match job.dir().open_dir(APPROVALS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}/{APPROVALS_DIR}", job.path().display())),
    };
    let prefix = format!("{turn}-");
    let mut found = Vec::new();
    for entry in dir.entries()? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json").filter(|id| id.starts_with(&prefix) && !id.ends_with(".answer"))
        else {
            continue;
        };
        if read_answer(job, id)?.is_none()
            && let Some(request) = read_request(job, id)?
        {
            found.push(request);
        }
    }
    found.sort_by_key(|r| r.request_id.split_once('-').and_then(|(_, n)| n.parse::<u64>().ok()));
    Ok(found)
}

/// Records `answer` for `request_id` unless one exists: `Ok(Ok(()))` when
/// this one counts, `Ok(Err(first))` when another was there first.
pub fn answer(job: &JobDir, request_id: &str, answer: &ApprovalAnswer) -> Result<Result<(), ApprovalAnswer>> {
    let dir = approvals(job)?;
    let name = format!("{request_id}.answer.json");
    let tmp = format!(".{request_id}.answer.{}.tmp", uuid::Uuid::new_v4().simple());
    let shown = |n: &str| format!("{}/{APPROVALS_DIR}/{n}", job.path().display());
    let mut file = dir
        .open_with(&tmp, OpenOptions::new().write(true).create_new(true))
        .with_context(|| format!("cannot create {}", shown(&tmp)))?;
    let written = file.write_all(&serde_json::to_vec(answer)?).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| dir.hard_link(&tmp, &dir, &name));
    let _ = dir.remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_answer(job, request_id)? {
            Some(first) => Ok(Err(first)),
            None => Err(invalid(format!("{} exists but cannot be read", shown(&name))).into()),
        },
        Err(e) => Err(e).with_context(|| format!("cannot write {}", shown(&name))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, JobStore};

    fn pending_request(id: &str) -> PendingApproval {
        PendingApproval {
            request_id: id.into(),
            turn: 0,
            kind: "command".into(),
            request: serde_json::json!({"command": {"command": "ls", "cwd": "/w"}}),
            raw: Value::Null,
            asked_by: "built-in".into(),
            requested_at: "2026-11-22T00:00:00Z".into(),
            deadline: "2026-11-22T00:15:00Z".into(),
        }
    }

    #[test]
    fn the_first_answer_wins_and_a_second_sees_it() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let meta = crate::job::JobMeta::queued(
            JobId::new(),
            "p",
            "/tmp".into(),
            crate::job::BackendKind::Exec,
            Default::default(),
            "/bin/codex".into(),
        );
        let job = store.create_bare(&meta);
        write_pending(&job, &pending_request("0-1")).unwrap();
        write_pending(&job, &pending_request("0-2")).unwrap();
        assert_eq!(pending(&job, 0).unwrap().len(), 2);
        assert!(pending(&job, 1).unwrap().is_empty());
        let yes = ApprovalAnswer {
            decision: ApprovalDecision::Accept,
            reason: None,
            by: "job_approve".into(),
            answered_at: "t".into(),
        };
        let no = ApprovalAnswer { decision: ApprovalDecision::Decline, ..yes.clone() };
        assert_eq!(answer(&job, "0-1", &yes).unwrap(), Ok(()));
        assert_eq!(answer(&job, "0-1", &no).unwrap(), Err(yes.clone()));
        assert_eq!(read_answer(&job, "0-1").unwrap(), Some(yes));
        let left: Vec<_> = pending(&job, 0).unwrap().into_iter().map(|p| p.request_id).collect();
        assert_eq!(left, ["0-2"]);
    }

    #[test]
    fn request_ids_are_checked_before_they_name_a_file() {
        assert!(check_request_id("0-1").is_ok());
        for bad in ["", "0", "-1", "0-", "../0-1", "0-1/x", "a-b", "0-1.answer"] {
            let err = check_request_id(bad).unwrap_err().to_string();
            assert!(err.contains("<turn>-<n>"), "{bad}: {err}");
        }
    }
}
