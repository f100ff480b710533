//! The job status state machine.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;

/// Where a job is, as stored in `meta.json` and shown to callers
/// (`"queued"`, `"running"`, …).
///
/// Within a turn a job only moves forward:
/// `queued → running ⇄ input_required → completed | failed | cancelled`,
/// and `queued` may end at once in `failed` or `cancelled`. A terminal job goes
/// back to `queued` only when `job_reply` starts a new turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created; its supervisor has not started Codex yet.
    Queued,
    /// Codex is running a turn.
    Running,
    /// Codex waits for an answer to an approval request.
    InputRequired,
    /// The turn ended and Codex exited with status 0.
    Completed,
    /// Codex failed, exited non-zero, or its supervisor died.
    Failed,
    /// Stopped by `job_cancel`.
    Cancelled,
}

/// Whether a transition starts a new turn (`job_reply`) or stays within one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// A move within the current turn.
    WithinTurn,
    /// The move that begins the next turn.
    NextTurn,
}

impl JobStatus {
    /// All statuses, in the order a turn passes through them.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::InputRequired,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// `completed`, `failed` and `cancelled`: nothing runs and nothing changes
    /// until a reply starts a new turn.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::InputRequired => "input_required",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a caller's status filter. Errors name the value and list the valid names.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            let names: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            InvalidInput::new(format!(
                "invalid status {}: expected one of {}",
                crate::job::id::quote_short(text),
                names.join(", ")
            ))
        })
    }

    /// Whether `self → next` is allowed. Staying put is not a transition.
    pub fn can_move_to(self, next: JobStatus, turn: Move) -> bool {
        use JobStatus::*;
        match turn {
            Move::NextTurn => self.is_terminal() && next == Queued,
            Move::WithinTurn => match (self, next) {
                (Queued, Running | Failed | Cancelled) => true,
                (Running, InputRequired) | (InputRequired, Running) => true,
                (Running | InputRequired, Completed | Failed | Cancelled) => true,
                _ => false,
            },
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    #[test]
    fn a_turn_only_moves_forward() {
        assert!(Queued.can_move_to(Running, Move::WithinTurn));
        assert!(Running.can_move_to(InputRequired, Move::WithinTurn));
        assert!(InputRequired.can_move_to(Running, Move::WithinTurn));
        assert!(Running.can_move_to(Completed, Move::WithinTurn));
        assert!(Queued.can_move_to(Cancelled, Move::WithinTurn));
        for terminal in [Completed, Failed, Cancelled] {
            for next in JobStatus::ALL {
                assert!(!terminal.can_move_to(next, Move::WithinTurn), "{terminal} -> {next}");
            }
        }
        assert!(!Running.can_move_to(Queued, Move::WithinTurn));
        assert!(!Queued.can_move_to(Completed, Move::WithinTurn));
        assert!(!Running.can_move_to(Running, Move::WithinTurn));
    }

    #[test]
    fn only_a_finished_job_starts_a_new_turn() {
        for s in JobStatus::ALL {
            assert_eq!(s.can_move_to(Queued, Move::NextTurn), s.is_terminal(), "{s}");
            assert!(!s.can_move_to(Running, Move::NextTurn));
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_are_named() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let err = JobStatus::parse("done").unwrap_err().to_string();
        assert!(err.contains("\"done\"") && err.contains("input_required"), "{err}");
    }
}
