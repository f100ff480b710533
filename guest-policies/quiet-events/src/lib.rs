//! Event filter that drops the noisy events: streaming deltas (`item.updated`,
//! any `*delta*` type) and reasoning items.

use codex_jobhost_policy::{Action, Event, EventFilter, Job, export_event_filter};
use serde::Deserialize;

/// Settings (`config` in `jobhost.toml`).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Drop reasoning items.
    pub drop_reasoning: bool,
    /// Drop `item.updated` and `*delta*` events.
    pub drop_deltas: bool,
    /// Further event types to drop.
    pub drop_types: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { drop_reasoning: true, drop_deltas: true, drop_types: Vec::new() }
    }
}

/// The part of a payload this filter reads: `item.type`.
#[derive(Deserialize)]
struct Probe {
    item: Option<ProbeItem>,
}

#[derive(Deserialize)]
struct ProbeItem {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The policy.
pub struct QuietEvents;

impl EventFilter for QuietEvents {
    type Settings = Settings;

    fn filter(settings: &Settings, _job: &Job, event: &Event) -> Action {
        let delta = event.kind == "item.updated" || event.kind.contains("delta");
        let reasoning = || {
            event.kind.starts_with("item.")
                && memchr::memmem::find(event.payload.as_bytes(), b"reasoning").is_some()
                && event.payload_as::<Probe>().and_then(|p| p.item).and_then(|i| i.kind).as_deref() == Some("reasoning")
        };
        if (settings.drop_deltas && delta)
            || settings.drop_types.iter().any(|t| *t == event.kind)
            || (settings.drop_reasoning && reasoning())
        {
            Action::Drop
        } else {
            Action::Keep
        }
    }
}

export_event_filter!(QuietEvents);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, payload: serde_json::Value) -> Event {
        Event::new(kind, &payload)
    }

    #[test]
    fn drops_deltas_and_reasoning() {
        let s = Settings::default();
        let job = Job::default();
        assert_eq!(QuietEvents::filter(&s, &job, &event("item.updated", json!({}))), Action::Drop);
        assert_eq!(
            QuietEvents::filter(&s, &job, &event("item.completed", json!({"item": {"type": "reasoning"}}))),
            Action::Drop
        );
        assert_eq!(
            QuietEvents::filter(&s, &job, &event("item.completed", json!({"item": {"type": "agent_message"}}))),
            Action::Keep
        );
        let custom = Settings { drop_types: vec!["turn.started".into()], ..Settings::default() };
        assert_eq!(QuietEvents::filter(&custom, &job, &event("turn.started", json!({}))), Action::Drop);
    }
}
