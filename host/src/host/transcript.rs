//! `jobs logs`: a job's events as a person reads them: the agent's messages,
//! each command with its exit code and output, file changes, MCP tool calls,
//! approval decisions, each turn's prompt and end. Events come through
//! `job_events` (the job's filters and redactions apply); `--raw` prints
//! `output.log` instead.

use anyhow::Result;
use serde_json::Value;

use super::JobHost;
use super::tools::{EventView, EventsRequest};
use crate::job::event::{APPROVAL_DECIDED_EVENT, APPROVAL_REQUESTED_EVENT, STATUS_EVENT};

impl JobHost {
    /// The transcript of the job's events from `cursor` on, as lines of
    /// text, and the cursor to pass next (see [`transcript_lines`]).
    ///
    /// Errors: as `job_events` (an unknown id, a file that cannot be read).
    pub fn transcript(&self, job_id: &str, cursor: u64) -> Result<(Vec<String>, u64)> {
        let req = EventsRequest {
            job_id: job_id.to_owned(),
            cursor: Some(cursor),
            limit: Some(1000),
            event_types: None,
            truncate: Some(0),
            max_chars: Some(super::tools::RESULT_MAX_CHARS_LIMIT),
        };
        let page = self.events(&req)?;
        Ok((page.events.iter().flat_map(transcript_lines).collect(), page.next_cursor))
    }
}

/// One event as transcript lines; none for what a person need not read
/// (reasoning, deltas, a turn's start, output that is not an event).
pub fn transcript_lines(event: &EventView) -> Vec<String> {
    let d = &event.data;
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    match event.kind.as_str() {
        "item.completed" => {
            let item = &d["item"];
            match item["type"].as_str().unwrap_or("") {
                "agent_message" => vec![format!("agent: {}", text(&item["text"]))],
                "command_execution" => {
                    let exit = item["exit_code"].as_i64().map_or(text(&item["status"]), |c| format!("exit {c}"));
                    let mut lines = vec![format!("$ {}  ({exit})", text(&item["command"]))];
                    lines.extend(text(&item["aggregated_output"]).lines().map(|l| format!("  | {l}")));
                    lines
                }
                "file_change" => {
                    let changes = item["changes"].as_array().into_iter().flatten();
                    let files: Vec<String> =
                        changes.map(|c| format!("{} {}", text(&c["kind"]), text(&c["path"]))).collect();
                    vec![format!("changed: {} ({})", files.join(", "), text(&item["status"]))]
                }
                "mcp_tool_call" => {
                    vec![format!("tool: {}/{} ({})", text(&item["server"]), text(&item["tool"]), text(&item["status"]))]
                }
                "error" => vec![format!("error: {}", text(&item["message"]))],
                _ => Vec::new(),
            }
        }
        APPROVAL_REQUESTED_EVENT => {
            vec![format!(
                "? {} {} asked by {}: {}",
                text(&d["request_id"]),
                text(&d["kind"]),
                text(&d["asked_by"]),
                request_summary(&d["request"])
            )]
        }
        APPROVAL_DECIDED_EVENT => {
            let shadow = if d["shadow"] == true { " (in shadow, not applied)" } else { "" };
            let reason = d["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
            vec![format!(
                "{} {} by {}{shadow}: {}{reason}",
                text(&d["decision"]),
                text(&d["kind"]),
                text(&d["decided_by"]),
                request_summary(&d["request"])
            )]
        }
        STATUS_EVENT => match d["status"].as_str().unwrap_or("") {
            "queued" => match d["prompt"].as_str() {
                Some(prompt) => vec![format!("== turn {}: {prompt}", d["turn"])],
                None => Vec::new(),
            },
            "input_required" => vec!["== waiting for an answer (job_approve)".into()],
            status @ ("completed" | "failed" | "cancelled") => {
                let exit = d["exit_code"].as_i64().map(|c| format!(", exit {c}")).unwrap_or_default();
                let error = d["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
                vec![format!("== {status}{exit}{error}")]
            }
            _ => Vec::new(),
        },
        "turn.failed" => vec![format!("error: {}", text(&d["error"]["message"]))],
        "error" => vec![format!("error: {}", text(&d["message"]))],
        _ => Vec::new(),
    }
}

/// What an approval request asks, in a few words (the WIT request in JSON):
/// the command, the files, the MCP tool, else the request as JSON.
pub fn request_summary(request: &Value) -> String {
    if let Some(command) = request.pointer("/command/command").and_then(Value::as_str) {
        return command.replace('\n', " ");
    }
    if let Some(paths) = request.pointer("/file-change/paths").and_then(Value::as_array) {
        return paths.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ");
    }
    if let Some(call) = request.get("tool-call") {
        return format!("{}/{}", call["server"].as_str().unwrap_or(""), call["tool"].as_str().unwrap_or(""));
    }
    request.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, data: Value) -> EventView {
        EventView { seq: 0, ts: "2026-12-01T00:00:00Z".into(), kind: kind.into(), data }
    }

    #[test]
    fn a_turn_reads_as_a_person_would_tell_it() {
        let command = json!({"item": {"type": "command_execution", "command": "ls", "aggregated_output": "a\nb\n", "exit_code": 0}});
        assert_eq!(transcript_lines(&ev("item.completed", command)), ["$ ls  (exit 0)", "  | a", "  | b"]);
        let message = json!({"item": {"type": "agent_message", "text": "done"}});
        assert_eq!(transcript_lines(&ev("item.completed", message)), ["agent: done"]);
        let decided = json!({"request_id": "0-1", "kind": "command", "request": {"command": {"command": "cat .env"}},
            "decision": "decline", "reason": "no secrets", "decided_by": "strict", "shadow": true});
        assert_eq!(
            transcript_lines(&ev("approval.decided", decided)),
            ["decline command by strict (in shadow, not applied): cat .env: no secrets"]
        );
        let end = json!({"status": "failed", "turn": 0, "exit_code": 1, "error": "boom"});
        assert_eq!(transcript_lines(&ev("job.status", end)), ["== failed, exit 1: boom"]);
        assert!(transcript_lines(&ev("item.completed", json!({"item": {"type": "reasoning"}}))).is_empty());
    }
}
