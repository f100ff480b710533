//! One call of one component, for policy authors (`codex-jobhost policy test`).

use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use super::builtin::OUTPUT_LIMITS;
use super::guest::LoadedComponent;
use super::{Guest, GuestLimits, JobContext, Limits, Request, World};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TruncationInput {
    text: String,
    #[serde(default)]
    limits: Option<Limits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterInput {
    kind: String,
    payload: Value,
}

/// Runs one call of `component` with `config` (JSON settings) on `input`:
///
/// - approval-policy: a request, e.g. `{"command": {"command": "rm -rf /", "cwd": "/w"}}`
///   → `{"decision": "accept"}` or `{"decision": {"decline": "why"}}`;
/// - output-truncation: `{"text": "...", "limits": {"max_chars": 100, "max_lines": 5}}`
///   (limits default to 8,000 characters / 100 lines) → `{"text": "..."}`;
/// - event-filter: `{"kind": "item.completed", "payload": {...}}` → `{"action": "keep"}`, ….
///
/// Errors: `input` does not fit the component's world, or the guest failed
/// (trap, deadline, memory cap); the message says which.
pub fn call_once(component: Arc<LoadedComponent>, config: &str, job: &JobContext, input: &Value) -> Result<Value> {
    let world = component.world;
    let guest = Guest::new("trial", component, config.to_owned(), GuestLimits::default());
    let fail = |e: String| anyhow::anyhow!("the component failed: {e}");
    Ok(match world {
        World::Approval => {
            let request: Request = serde_json::from_value(input.clone())
                .context("invalid --request for an approval-policy: expected e.g. {\"command\": {\"command\": \"ls\", \"cwd\": \"/w\"}} or {\"launch\": {\"approval_mode\": \"full-auto\"}}")?;
            json!({"decision": guest.decide(job, &request).map_err(fail)?})
        }
        World::Truncation => {
            let input: TruncationInput = serde_json::from_value(input.clone()).context(
                "invalid --request for an output-truncation: expected {\"text\": \"...\", \"limits\": {\"max_chars\": 100, \"max_lines\": 5}}",
            )?;
            json!({"text": guest.truncate(job, &input.text, input.limits.unwrap_or(OUTPUT_LIMITS)).map_err(fail)?})
        }
        World::Filter => {
            let input: FilterInput = serde_json::from_value(input.clone()).context(
                "invalid --request for an event-filter: expected {\"kind\": \"item.completed\", \"payload\": {...}}",
            )?;
            json!({"action": guest.filter(job, &input.kind, &input.payload.to_string()).map_err(fail)?})
        }
    })
}
