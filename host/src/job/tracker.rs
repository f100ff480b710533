//! What one turn's events said, gathered as they arrive: the thread id, the
//! agent's last message, token usage and how the turn ended. Fed the events
//! as `codex exec --json` prints them (every driver projects onto those).

use serde_json::Value;

use super::JobStatus;

/// What one turn's events said, accumulated as they arrive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TurnTracker {
    /// From `thread.started`.
    pub thread_id: Option<String>,
    /// Text of the last `agent_message` item.
    pub last_message: Option<String>,
    /// `usage` of `turn.completed`.
    pub usage: Option<Value>,
    /// Whether `turn.completed` was seen.
    pub completed: bool,
    /// `turn.failed`'s message.
    pub failure: Option<String>,
    /// The last `error` event's message since the last `turn.completed`
    /// (Codex also prints `error` for retries it recovers from).
    pub last_error: Option<String>,
    /// The last line Codex wrote to stderr.
    pub last_stderr: Option<String>,
}

/// What changed in the tracker that `meta.json` should show at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noted {
    /// Nothing worth a `meta.json` write.
    Nothing,
    /// The thread id or last message changed.
    MetaChanged,
}

impl TurnTracker {
    /// Takes in one Codex event: its `type` and the object itself.
    pub fn observe(&mut self, kind: &str, event: &Value) -> Noted {
        let text = |p: &str| event.pointer(p).and_then(Value::as_str).map(str::to_owned);
        match kind {
            "thread.started" => {
                self.thread_id = text("/thread_id");
                return Noted::MetaChanged;
            }
            "item.completed" if event.pointer("/item/type").and_then(Value::as_str) == Some("agent_message") => {
                self.last_message = text("/item/text");
                return Noted::MetaChanged;
            }
            "turn.completed" => {
                self.completed = true;
                self.last_error = None;
                self.usage = event.get("usage").cloned();
            }
            "turn.failed" => self.failure = text("/error/message").or_else(|| Some(event.to_string())),
            "error" => self.last_error = text("/message").or_else(|| Some(event.to_string())),
            _ => {}
        }
        Noted::Nothing
    }

    /// The turn's final status and error, given how the agent exited
    /// (`exit_code`: its status, or 128 + signal) and whether it was cancelled.
    /// Never reports a failure as a success.
    pub fn outcome(&self, exit_code: i32, cancelled: bool) -> (JobStatus, Option<String>) {
        if cancelled {
            let end = super::End::cancelled_by_job_cancel();
            return (end.status, end.error);
        }
        let reason = self.failure.clone().or_else(|| self.last_error.clone());
        if exit_code == 0 {
            return match reason {
                None => (JobStatus::Completed, None),
                Some(reason) => (JobStatus::Failed, Some(reason)),
            };
        }
        let reason = reason
            .or_else(|| self.last_stderr.as_ref().map(|l| format!("codex exited with status {exit_code}: {l}")))
            .unwrap_or_else(|| format!("codex exited with status {exit_code}"));
        (JobStatus::Failed, Some(reason))
    }
}
