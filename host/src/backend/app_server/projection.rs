//! The app-server's notifications projected onto the events `codex exec
//! --json` prints, so callers and event filters see one vocabulary whichever
//! backend ran a job. No I/O: a notification in, events and the turn's status
//! out (the shape of codex's own `exec` event processor). Shapes as Codex
//! 0.169.0's `codex app-server generate-json-schema` gives them.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::rpc::method;

/// What one notification comes to.
#[derive(Debug, Default, PartialEq)]
pub struct Projected {
    /// Events to append, in order: each one's `type` and the object itself,
    /// as `codex exec --json` prints it.
    pub events: Vec<(String, Value)>,
    /// The turn's id, when the notification names it (`turn/started`).
    pub turn_id: Option<String>,
    /// `turn/completed`'s status (`completed`, `failed`, `interrupted`) once the turn ended.
    pub turn_ended: Option<String>,
}

/// What a projection remembers across one turn's notifications.
#[derive(Debug, Default)]
pub struct Projection {
    usage: Usage,
    /// The changes of each file-change item seen, by item id (a file-change
    /// request names only the item; its paths come from here).
    file_changes: HashMap<String, Value>,
}

/// Token usage summed over one turn's `thread/tokenUsage/updated` (`last` of each).
#[derive(Debug, Default)]
struct Usage {
    input: i64,
    cached: i64,
    output: i64,
    seen: bool,
}

/// The `thread.started` event exec prints for `thread_id`.
pub fn thread_started(thread_id: &str) -> (String, Value) {
    ("thread.started".into(), json!({"type": "thread.started", "thread_id": thread_id}))
}

impl Projection {
    /// Projects one notification (`method`, `params`); deltas and the rest
    /// project to nothing (they stay in `output.log`).
    pub fn notification(&mut self, name: &str, params: &Value) -> Projected {
        let mut out = Projected::default();
        let mut emit = |kind: &str, event: Value| out.events.push((kind.to_owned(), event));
        match name {
            method::TURN_STARTED => {
                out.turn_id = params.pointer("/turn/id").and_then(Value::as_str).map(str::to_owned);
                emit("turn.started", json!({"type": "turn.started"}));
            }
            method::ITEM_STARTED | method::ITEM_COMPLETED => {
                let item = &params["item"];
                if let (Some("fileChange"), Some(id)) = (item["type"].as_str(), item["id"].as_str()) {
                    self.file_changes.insert(id.to_owned(), item["changes"].clone());
                }
                // As exec: a message or reasoning is an event once it is complete.
                let whole_only = matches!(item["type"].as_str(), Some("agentMessage" | "reasoning"));
                if let Some(projected) = project_item(item).filter(|_| name == method::ITEM_COMPLETED || !whole_only) {
                    let kind = if name == method::ITEM_STARTED { "item.started" } else { "item.completed" };
                    emit(kind, json!({"type": kind, "item": projected}));
                }
            }
            method::TOKEN_USAGE_UPDATED => {
                let last = &params["tokenUsage"]["last"];
                let n = |k: &str| last.get(k).and_then(Value::as_i64).unwrap_or(0);
                self.usage.input += n("inputTokens");
                self.usage.cached += n("cachedInputTokens");
                self.usage.output += n("outputTokens");
                self.usage.seen = true;
            }
            method::ERROR => {
                let message = params.pointer("/error/message").and_then(Value::as_str).unwrap_or("error");
                emit("error", json!({"type": "error", "message": message}));
            }
            method::TURN_COMPLETED => {
                let status = params.pointer("/turn/status").and_then(Value::as_str).unwrap_or("completed").to_owned();
                if status == "failed" || status == "interrupted" {
                    let message = params.pointer("/turn/error/message").and_then(Value::as_str);
                    let message =
                        message.unwrap_or(if status == "failed" { "the turn failed" } else { "turn interrupted" });
                    emit("turn.failed", json!({"type": "turn.failed", "error": {"message": message}}));
                } else {
                    let mut event = json!({"type": "turn.completed"});
                    if self.usage.seen {
                        event["usage"] = json!({
                            "input_tokens": self.usage.input,
                            "cached_input_tokens": self.usage.cached,
                            "output_tokens": self.usage.output,
                        });
                    }
                    emit("turn.completed", event);
                }
                out.turn_ended = Some(status);
            }
            _ => {}
        }
        out
    }

    /// The changes of the file-change item `item_id`, as its last
    /// `item/started` or `item/completed` gave them.
    pub fn file_changes(&self, item_id: &str) -> Option<&Value> {
        self.file_changes.get(item_id)
    }
}

/// An app-server item as `codex exec --json` shows it: `agent_message`
/// (`text`), `reasoning` (`text`), `command_execution` (`command`,
/// `aggregated_output`, `exit_code`, `status`), `file_change` (`changes`:
/// `path`, `kind`; `status`), `mcp_tool_call`, `web_search`; other types keep
/// their fields under their snake_case name. The user's own message is not an event.
pub fn project_item(item: &Value) -> Option<Value> {
    let kind = item.get("type").and_then(Value::as_str)?;
    let id = item.get("id").cloned().unwrap_or(Value::Null);
    let status = item.get("status").and_then(Value::as_str).map(snake_case);
    let projected = match kind {
        "userMessage" | "hookPrompt" => return None,
        "agentMessage" => json!({"id": id, "type": "agent_message", "text": item["text"]}),
        "reasoning" => {
            let parts = item["summary"].as_array().filter(|s| !s.is_empty()).or(item["content"].as_array());
            let text: Vec<&str> = parts.map(|p| p.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            json!({"id": id, "type": "reasoning", "text": text.join("\n")})
        }
        "commandExecution" => json!({
            "id": id,
            "type": "command_execution",
            "command": item["command"],
            "aggregated_output": item["aggregatedOutput"].as_str().unwrap_or(""),
            "exit_code": item["exitCode"],
            "status": status,
        }),
        "fileChange" => {
            let changes: Vec<Value> = item["changes"]
                .as_array()
                .map(|c| c.iter().map(|c| json!({"path": c["path"], "kind": c["kind"]["type"]})).collect())
                .unwrap_or_default();
            json!({"id": id, "type": "file_change", "changes": changes, "status": status})
        }
        "mcpToolCall" => json!({
            "id": id,
            "type": "mcp_tool_call",
            "server": item["server"],
            "tool": item["tool"],
            "arguments": item["arguments"],
            "result": item["result"],
            "error": item["error"],
            "status": status,
        }),
        "webSearch" => json!({"id": id, "type": "web_search", "query": item["query"]}),
        other => {
            let mut v = item.clone();
            v["type"] = json!(snake_case(other));
            v
        }
    };
    Some(projected)
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_projected_onto_execs_vocabulary() {
        let item = json!({"type": "commandExecution", "id": "c1", "command": "ls", "aggregatedOutput": null, "exitCode": 0, "status": "inProgress"});
        let p = project_item(&item).unwrap();
        assert_eq!(
            (p["type"].as_str(), p["status"].as_str(), p["aggregated_output"].as_str()),
            (Some("command_execution"), Some("in_progress"), Some(""))
        );
        let msg = project_item(&json!({"type": "agentMessage", "id": "m", "text": "hi"})).unwrap();
        assert_eq!(msg, json!({"id": "m", "type": "agent_message", "text": "hi"}));
        assert!(project_item(&json!({"type": "userMessage", "id": "u"})).is_none());
        let fc = project_item(&json!({"type": "fileChange", "id": "f", "status": "completed", "changes": [{"path": "/w/a", "kind": {"type": "add"}, "diff": "x"}]})).unwrap();
        assert_eq!(fc["changes"], json!([{"path": "/w/a", "kind": "add"}]));
        assert_eq!(
            project_item(&json!({"type": "contextCompaction", "id": "x"})).unwrap()["type"],
            "context_compaction"
        );
    }

    /// The notifications of one turn, in order: what each comes to.
    fn project(turn: &[(&str, Value)]) -> (Projection, Vec<Projected>) {
        let mut p = Projection::default();
        let out = turn.iter().map(|(m, params)| p.notification(m, params)).collect();
        (p, out)
    }

    #[test]
    fn a_turn_projects_to_execs_events_with_its_usage_summed() {
        let usage =
            |i: i64| json!({"tokenUsage": {"last": {"inputTokens": i, "cachedInputTokens": 1, "outputTokens": 2}}});
        let (p, out) = project(&[
            (method::TURN_STARTED, json!({"turn": {"id": "t1"}})),
            (method::ITEM_STARTED, json!({"item": {"type": "agentMessage", "id": "m", "text": ""}})),
            (method::ITEM_STARTED, json!({"item": {"type": "fileChange", "id": "f", "changes": [{"path": "/w/a"}]}})),
            ("item/agentMessage/delta", json!({"delta": "hel"})),
            (method::TOKEN_USAGE_UPDATED, usage(10)),
            (method::ITEM_COMPLETED, json!({"item": {"type": "agentMessage", "id": "m", "text": "hello"}})),
            (method::TOKEN_USAGE_UPDATED, usage(5)),
            (method::TURN_COMPLETED, json!({"turn": {"id": "t1", "status": "completed"}})),
        ]);
        assert_eq!(out[0].turn_id.as_deref(), Some("t1"));
        let kinds: Vec<Vec<&str>> = out.iter().map(|o| o.events.iter().map(|(k, _)| k.as_str()).collect()).collect();
        // A message is an event only once complete; deltas and usage are none.
        assert_eq!(
            kinds,
            [
                vec!["turn.started"],
                vec![],
                vec!["item.started"],
                vec![],
                vec![],
                vec!["item.completed"],
                vec![],
                vec!["turn.completed"]
            ]
        );
        assert_eq!(out[5].events[0].1["item"], json!({"id": "m", "type": "agent_message", "text": "hello"}));
        assert_eq!(
            out[7].events[0].1["usage"],
            json!({"input_tokens": 15, "cached_input_tokens": 2, "output_tokens": 4})
        );
        assert_eq!(out[7].turn_ended.as_deref(), Some("completed"));
        assert_eq!(p.file_changes("f"), Some(&json!([{"path": "/w/a"}])));
        assert!(out[..7].iter().all(|o| o.turn_ended.is_none()));
    }

    #[test]
    fn a_failed_or_interrupted_turn_is_turn_failed_with_its_message() {
        let (_, out) = project(&[
            (method::ERROR, json!({"error": {"message": "model busy"}})),
            (method::TURN_COMPLETED, json!({"turn": {"status": "failed", "error": {"message": "quota"}}})),
        ]);
        assert_eq!(out[0].events, [("error".to_owned(), json!({"type": "error", "message": "model busy"}))]);
        assert_eq!(out[1].events[0].1, json!({"type": "turn.failed", "error": {"message": "quota"}}));
        assert_eq!(out[1].turn_ended.as_deref(), Some("failed"));
        let (_, out) = project(&[(method::TURN_COMPLETED, json!({"turn": {"status": "interrupted"}}))]);
        assert_eq!(out[0].events[0].1["error"]["message"], "turn interrupted");
        assert_eq!(out[0].turn_ended.as_deref(), Some("interrupted"));
    }
}
