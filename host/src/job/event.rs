//! The normalized event: one line of `events.jsonl`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Event type of a status transition written by the host:
/// `data` is `{"status", "turn", "exit_code"?, "error"?, "prompt"?}`.
pub const STATUS_EVENT: &str = "job.status";

/// Event type of a line the agent printed that is not a JSON event:
/// `data` is `{"stream": "stdout" | "stderr", "line": "..."}`.
pub const OUTPUT_EVENT: &str = "output";

/// One event of a job, as stored in `events.jsonl` (one JSON object a line) and
/// returned by `job_events`:
/// `{"seq": 3, "ts": "2026-11-21T20:02:18.481Z", "type": "item.completed", "data": {...}}`.
///
/// `seq` counts from 0 within a job and never repeats, across turns too.
/// `type` is either the host's own ([`STATUS_EVENT`], [`OUTPUT_EVENT`]) or the
/// `type` of the Codex event it wraps (`thread.started`, `turn.started`,
/// `item.started`, `item.updated`, `item.completed`, `turn.completed`,
/// `turn.failed`, `error`), whose whole object, as `codex exec --json` prints
/// it, is `data`: on `exec` the line Codex printed, on `app-server` its
/// notification projected onto the same shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the job's log, from 0.
    pub seq: u64,
    /// When the host recorded it, RFC 3339 UTC.
    pub ts: Timestamp,
    /// What happened; see the type-level docs.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload.
    pub data: Value,
}

impl Event {
    /// Whether a caller's `event_types` filter selects this event: the filter
    /// names either the event's `type` or, for `item.*` events, the item's
    /// type (`agent_message`, `command_execution`, `reasoning`, …).
    pub fn matches_type(&self, wanted: &str) -> bool {
        self.kind == wanted || self.data.pointer("/item/type").and_then(Value::as_str) == Some(wanted)
    }
}

/// Event type of a policy component's failure: `data` is `{"component",
/// "path", "world", "error", "fallback"}`. Older versions wrote one on reads;
/// reads now report failures in their result (`policy_errors`) and write
/// nothing, but the type stays the host's own.
pub const POLICY_ERROR_EVENT: &str = "policy_error";

/// Event type of a decision on an agent's request (app-server backend):
/// `data` is `{"request_id", "kind", "request", "decision", "reason",
/// "decided_by", "elapsed_us"?}`, where `decided_by` is a policy component's
/// name, `built-in`, `job_approve`, `jobs approve`, `elicitation` or `timeout`,
/// and `elapsed_us` (for a decision the policies made) the microseconds from
/// reading the request to writing the answer.
pub const APPROVAL_DECIDED_EVENT: &str = "approval.decided";

/// Event type of a request handed to the caller: `data` is the
/// [`super::approval::PendingApproval`].
pub const APPROVAL_REQUESTED_EVENT: &str = "approval.requested";

/// The event types only the host writes: a filter may not turn another event
/// into one (an approval's audit trail included).
pub const HOST_EVENT_TYPES: [&str; 5] =
    [STATUS_EVENT, OUTPUT_EVENT, POLICY_ERROR_EVENT, APPROVAL_REQUESTED_EVENT, APPROVAL_DECIDED_EVENT];

/// Calls `f` on every string of text in `value`, in place: what truncation
/// policies shorten. Object keys, and the values of `type`, `id` and `*_id`
/// keys, are left alone: they are tags and references, not output, and a cut
/// one would no longer name its item or thread.
pub fn for_each_text(value: &mut Value, f: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| for_each_text(v, f)),
        Value::Object(map) => map.iter_mut().filter(|(key, _)| !is_tag(key)).for_each(|(_, v)| for_each_text(v, f)),
        _ => {}
    }
}

/// Whether an object key holds a type tag or an identifier.
pub(crate) fn is_tag(key: &str) -> bool {
    key == "type" || key == "id" || key.ends_with("_id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_text_string_is_visited_and_tags_are_not() {
        let mut v = json!({"a": "x", "b": ["y", 5], "c": {"d": "z", "id": "i", "type": "t"}, "thread_id": "th"});
        for_each_text(&mut v, &mut |s| s.push('!'));
        assert_eq!(v, json!({"a": "x!", "b": ["y!", 5], "c": {"d": "z!", "id": "i", "type": "t"}, "thread_id": "th"}));
    }

    #[test]
    fn type_filter_matches_event_or_item_type() {
        let e = Event {
            seq: 0,
            ts: Timestamp::UNIX_EPOCH,
            kind: "item.completed".into(),
            data: json!({"type": "item.completed", "item": {"type": "agent_message"}}),
        };
        assert!(e.matches_type("item.completed"));
        assert!(e.matches_type("agent_message"));
        assert!(!e.matches_type("reasoning"));
    }
}
