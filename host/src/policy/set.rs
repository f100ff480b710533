//! A layered policy set: the user's components first, then the project's, and
//! the rules that combine their answers.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::builtin;
use super::{Decision, FailureMode, FilterAction, Guest, GuestLimits, JobContext, Limits, PolicyEvent, Request, World};
use crate::job::HOST_EVENT_TYPES;

/// A component that failed during a call, and what was done instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyFailure {
    /// The entry's name.
    pub component: String,
    /// Its file.
    pub path: PathBuf,
    /// Its world.
    pub world: World,
    /// What went wrong (trap, deadline, memory cap, bad output).
    pub error: String,
    /// What the host did instead.
    pub fallback: String,
}

/// An approval outcome: the strictest decision and who made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The decision that holds.
    pub decision: Decision,
    /// The component that gave it; `None` for the built-in default.
    pub decided_by: Option<String>,
    /// Components that failed (each counted as a decline).
    pub failures: Vec<PolicyFailure>,
    /// What the components in shadow (`enforce = false`) would have
    /// decided, by name; none of it applies.
    pub shadow: Vec<(String, Decision)>,
}

/// A filter outcome for one event.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterOutcome {
    /// Show the event as it is.
    Keep,
    /// Show this in its place: a type and a payload.
    Replace(String, Value),
    /// Leave it out.
    Drop,
}

/// The policies in force for one project, in order: the user's, then the project's.
pub struct PolicySet {
    /// The project root the set was resolved for.
    pub project_root: Option<PathBuf>,
    /// The policy files read, user's first.
    pub sources: Vec<PathBuf>,
    pub(crate) approval: Vec<Guest>,
    pub(crate) truncation: Vec<Guest>,
    pub(crate) filter: Vec<Guest>,
    /// The time one request's guest calls may take together (see [`PolicySet::within`]).
    pub request_budget: Duration,
    /// The per-call limits of its guests (the user file's `[limits]`).
    pub limits: GuestLimits,
}

/// Default of [`PolicySet::request_budget`]: 2 s, set by `[limits] request_budget_ms`.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(2);

/// One request's use of a [`PolicySet`]: its truncation and filter calls
/// share a time budget. Once it has run out, the rest of the request gets the
/// built-in behaviour (the built-in cut, every event kept), and
/// [`Budgeted::exhausted`] says so, for the result to say so too.
pub struct Budgeted<'a> {
    set: &'a PolicySet,
    deadline: Instant,
    exhausted: Cell<bool>,
}

impl Budgeted<'_> {
    /// Whether the budget ran out, so part of the request got the built-in behaviour.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    fn out(&self) -> bool {
        if !self.exhausted.get() && Instant::now() >= self.deadline {
            self.exhausted.set(true);
        }
        self.exhausted.get()
    }

    /// [`PolicySet::truncate`] while the budget lasts; after, the built-in
    /// cut, or the text withheld when a truncation in the chain fails closed
    /// (a redaction's secrets never show because time ran out).
    pub fn truncate(&self, job: &JobContext, text: &str, limits: Limits) -> (String, Vec<PolicyFailure>) {
        if self.out() {
            if let Some(closed) = self.set.truncation.iter().find(|g| g.failure_mode == FailureMode::Closed) {
                return (withheld(closed, "ran out of time for this request"), Vec::new());
            }
            return (builtin::truncate(text, limits), Vec::new());
        }
        self.set.truncate(job, text, limits)
    }

    /// [`PolicySet::filter`] while the budget lasts; every event kept after.
    pub fn filter(&self, job: &JobContext, kind: &str, payload: &str) -> (FilterOutcome, Vec<PolicyFailure>) {
        if self.out() {
            return (FilterOutcome::Keep, Vec::new());
        }
        self.set.filter(job, kind, payload)
    }
}

impl Default for PolicySet {
    fn default() -> Self {
        PolicySet {
            project_root: None,
            sources: Vec::new(),
            approval: Vec::new(),
            truncation: Vec::new(),
            filter: Vec::new(),
            request_budget: REQUEST_BUDGET,
            limits: GuestLimits::default(),
        }
    }
}

impl PolicySet {
    /// Whether nothing is configured (the built-in defaults hold).
    pub fn is_empty(&self) -> bool {
        self.approval.is_empty() && self.truncation.is_empty() && self.filter.is_empty()
    }

    /// This set for one request that began at `begun`, with [`PolicySet::request_budget`] from then.
    pub fn within(&self, begun: Instant) -> Budgeted<'_> {
        Budgeted { set: self, deadline: begun + self.request_budget, exhausted: Cell::new(false) }
    }

    /// Every entry with its world, in the order they run: approvals,
    /// truncations, filters.
    pub fn entries(&self) -> impl Iterator<Item = (World, &Guest)> {
        [(World::Approval, &self.approval), (World::Truncation, &self.truncation), (World::Filter, &self.filter)]
            .into_iter()
            .flat_map(|(world, guests)| guests.iter().map(move |g| (world, g)))
    }

    /// Whether any approval component is configured, enforced or in shadow.
    pub fn has_approvals(&self) -> bool {
        !self.approval.is_empty()
    }

    /// Whether any approval component's decisions hold (not all in shadow).
    pub fn enforces_approvals(&self) -> bool {
        self.approval.iter().any(|g| g.enforce)
    }

    /// Whether an enforced approval component decides on options the host cannot judge.
    pub fn judges_options(&self) -> bool {
        self.approval.iter().any(|g| g.judges_options && g.enforce)
    }

    /// Whether any truncation component is configured.
    pub fn has_truncations(&self) -> bool {
        !self.truncation.is_empty()
    }

    /// Whether any event filter is configured.
    pub fn has_filters(&self) -> bool {
        !self.filter.is_empty()
    }

    /// Asks every approval component; the strictest answer of those enforced
    /// wins, so a project can narrow what its user allows but never widen it.
    /// A component that fails declines (fail closed). Those in shadow are
    /// asked too, their answers in [`Verdict::shadow`]. With none enforced:
    /// launches and replies are accepted as asked, everything else is `ask`.
    pub fn decide(&self, job: &JobContext, request: &Request) -> Verdict {
        let mut verdict =
            Verdict { decision: Decision::Accept, decided_by: None, failures: Vec::new(), shadow: Vec::new() };
        if !self.enforces_approvals() {
            verdict.decision = match request {
                Request::Launch(_) | Request::Reply { .. } => Decision::Accept,
                _ => Decision::Ask,
            };
        }
        for guest in &self.approval {
            let decision = match guest.decide(job, request) {
                Ok(d) => d,
                Err(error) => {
                    let reason = format!("policy {} failed: {error}", guest.name);
                    let fallback = if guest.enforce { "declined (fail closed)" } else { "declined, in shadow" };
                    verdict.failures.push(failure(guest, error, fallback));
                    Decision::Decline(reason)
                }
            };
            if !guest.enforce {
                verdict.shadow.push((guest.name.to_string(), decision));
                continue;
            }
            if verdict.decided_by.is_none() || decision.strictness() > verdict.decision.strictness() {
                verdict.decision = decision;
                verdict.decided_by = Some(guest.name.to_string());
            }
        }
        verdict
    }

    /// Runs the truncation chain over `text`; each component gets the previous
    /// one's result. With none configured, or in place of one that fails, the
    /// built-in truncation keeping the `limits.keep` end.
    ///
    /// The host holds guests to the limits: a result that is longer than
    /// both the limits (plus room for a cut marker, see [`fits`]) and the text
    /// the guest was given is its failure, replaced by the built-in cut; and
    /// whatever the chain returns is cut to the limits again, so a
    /// component that only redacts never switches the limits off.
    pub fn truncate(&self, job: &JobContext, text: &str, limits: Limits) -> (String, Vec<PolicyFailure>) {
        if self.truncation.is_empty() {
            return (builtin::truncate(text, limits), Vec::new());
        }
        let mut failures = Vec::new();
        let mut text = text.to_owned();
        let mut fitting = false;
        for guest in &self.truncation {
            text = match guest.truncate(job, &text, limits) {
                Ok(t) if fits(&t, limits) => {
                    fitting = true;
                    t
                }
                Ok(t) if size(&t) <= size(&text) => {
                    fitting = false;
                    t
                }
                Ok(t) => {
                    let (chars, lines) = size(&t);
                    let error = format!(
                        "returned {chars} characters in {lines} lines, more than its limits ({} characters, {} lines) and more than it was given",
                        limits.max_chars, limits.max_lines
                    );
                    fitting = true;
                    failed(guest, error, &text, limits, &mut failures)
                }
                Err(error) => {
                    fitting = true;
                    failed(guest, error, &text, limits, &mut failures)
                }
            };
        }
        if !fitting {
            text = builtin::truncate(&text, limits);
        }
        (text, failures)
    }

    /// Runs every filter over one event, given its type and its payload as
    /// JSON text: any drop wins; a replacement is what the next filter sees; a
    /// filter that fails (or replaces with a payload that is not JSON) keeps
    /// the event as it was.
    pub fn filter(&self, job: &JobContext, kind: &str, payload: &str) -> (FilterOutcome, Vec<PolicyFailure>) {
        let mut failures = Vec::new();
        let mut replaced: Option<(PolicyEvent, Value)> = None;
        for guest in &self.filter {
            let (kind, payload) = replaced.as_ref().map_or((kind, payload), |(e, _)| (&e.kind, &e.payload));
            match guest.filter(job, kind, payload) {
                Ok(FilterAction::Keep) => {}
                Ok(FilterAction::Drop) => return (FilterOutcome::Drop, failures),
                Ok(FilterAction::Replace(event)) => match check_replacement(kind, payload, &event) {
                    Ok(value) => replaced = Some((event, value)),
                    Err(error) => failures.push(failure(guest, error, "kept the event")),
                },
                Err(error) => failures.push(failure(guest, error, "kept the event")),
            }
        }
        let outcome = replaced.map_or(FilterOutcome::Keep, |(e, value)| FilterOutcome::Replace(e.kind, value));
        (outcome, failures)
    }

    /// A failure of the last filter in the chain (for an outcome the host
    /// cannot use), or `None` when there are no filters.
    pub fn last_filter_failure(&self, error: String) -> Option<PolicyFailure> {
        self.filter.last().map(|g| failure(g, error, "kept the original"))
    }

    /// The set as JSON, for `codex-jobhost policy show`.
    pub fn describe(&self) -> Value {
        let list = |guests: &[Guest]| -> Vec<Value> {
            guests
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "name": &*g.name,
                        "path": g.component.path,
                        "world": g.component.world.world_name(),
                        "wit_version": g.component.version,
                        "sha256": g.component.sha256,
                        "config": serde_json::from_str::<Value>(g.config()).unwrap_or(Value::Null),
                        "on_failure": (g.component.world == World::Truncation).then_some(g.failure_mode),
                        "judges_options": (g.component.world == World::Approval).then_some(g.judges_options),
                    })
                })
                .collect()
        };
        serde_json::json!({
            "project_root": self.project_root,
            "sources": self.sources,
            "approval": if self.approval.is_empty() { serde_json::json!("built-in: launches accepted as asked, agent requests ask the caller") } else { list(&self.approval).into() },
            "truncation": if self.truncation.is_empty() { serde_json::json!("built-in: the last 100 lines / 8,000 characters of output") } else { list(&self.truncation).into() },
            "filter": if self.filter.is_empty() { serde_json::json!("built-in: every event kept") } else { list(&self.filter).into() },
        })
    }
}

/// The text that stands for what a failed truncation `guest` returned: the
/// built-in cut of its input, or, when it fails closed, a marker.
fn failed(guest: &Guest, error: String, text: &str, limits: Limits, failures: &mut Vec<PolicyFailure>) -> String {
    match guest.failure_mode {
        FailureMode::Open => {
            failures.push(failure(guest, error, "used the built-in truncation"));
            builtin::truncate(text, limits)
        }
        FailureMode::Closed => {
            failures.push(failure(guest, error, "withheld the text (fails closed)"));
            withheld(guest, "failed")
        }
    }
}

/// The marker shown in place of a text a fail-closed truncation could not shape.
fn withheld(guest: &Guest, why: &str) -> String {
    format!("[withheld: truncation policy {} {why}]", guest.name)
}

/// Room a truncation may take beyond its limits for a cut marker such as
/// `[… 120 lines cut …]`: this many characters and 2 lines.
pub const MARKER_ROOM: u32 = 100;

/// Whether `text` keeps to `limits`, with [`MARKER_ROOM`] for cut markers.
/// Counts only what its byte length does not settle.
pub fn fits(text: &str, limits: Limits) -> bool {
    let max_chars = limits.max_chars.saturating_add(MARKER_ROOM) as usize;
    let max_lines = limits.max_lines.saturating_add(2) as usize;
    (text.len() <= max_chars || text.chars().count() <= max_chars)
        && (text.len() < max_lines || text.split_inclusive('\n').count() <= max_lines)
}

/// Characters and lines of `text`.
fn size(text: &str) -> (usize, usize) {
    (text.chars().count(), text.split_inclusive('\n').count())
}

/// Longest event type a replacement may have, in bytes.
pub const REPLACEMENT_TYPE_MAX: usize = 64;
/// Largest replacement payload, in bytes: the larger of this and twice the original's.
pub const REPLACEMENT_PAYLOAD_MIN_CAP: usize = 64 << 10;
/// Deepest nesting of arrays and objects in a replacement payload.
pub const REPLACEMENT_DEPTH_MAX: usize = 32;

/// A filter's replacement for the event `kind` / `payload`, parsed, or why
/// the host refuses it: a host-owned type ([`HOST_EVENT_TYPES`]) taken by
/// another event, a type that is long or has control characters, a payload
/// that is not JSON, too large or too deep.
fn check_replacement(kind: &str, payload: &str, event: &PolicyEvent) -> Result<Value, String> {
    if event.kind != kind && HOST_EVENT_TYPES.contains(&event.kind.as_str()) {
        return Err(format!("replaced a {kind:?} event with the host's own type {:?}", event.kind));
    }
    if event.kind.len() > REPLACEMENT_TYPE_MAX || event.kind.chars().any(char::is_control) {
        return Err(format!(
            "replaced the event type with {}: expected at most {REPLACEMENT_TYPE_MAX} bytes without control characters",
            crate::job::id::quote_short(&event.kind)
        ));
    }
    let cap = REPLACEMENT_PAYLOAD_MIN_CAP.max(payload.len().saturating_mul(2));
    if event.payload.len() > cap {
        return Err(format!(
            "replaced the event with a payload of {} bytes; the limit is {cap} bytes",
            event.payload.len()
        ));
    }
    let value: Value = serde_json::from_str(&event.payload)
        .map_err(|e| format!("replaced the event with a payload that is not JSON: {e}"))?;
    let depth = depth(&value);
    if depth > REPLACEMENT_DEPTH_MAX {
        return Err(format!(
            "replaced the event with a payload nested {depth} deep; the limit is {REPLACEMENT_DEPTH_MAX}"
        ));
    }
    Ok(value)
}

/// How deep arrays and objects nest in `value`: `[]` is 1, `[[1]]` 2, a scalar 0.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => continue,
        }
        deepest = deepest.max(d);
    }
    deepest
}

/// A failure, logged the first time this component fails with this error
/// (the log would otherwise get a line per event of every read).
fn failure(guest: &Guest, error: String, fallback: &'static str) -> PolicyFailure {
    static LOGGED: std::sync::Mutex<Option<std::collections::HashSet<(PathBuf, String)>>> = std::sync::Mutex::new(None);
    let first = {
        let mut logged = LOGGED.lock().unwrap();
        let logged = logged.get_or_insert_default();
        if logged.len() >= 4096 {
            logged.clear(); // bounded: a long-lived server logs a recurring failure again, rarely
        }
        logged.insert((guest.component.path.clone(), error.clone()))
    };
    if first {
        tracing::warn!(component = &*guest.name, path = %guest.component.path.display(), "policy failed, {fallback}: {error}");
    }
    PolicyFailure {
        component: guest.name.to_string(),
        path: guest.component.path.clone(),
        world: guest.component.world,
        error,
        fallback: fallback.to_owned(),
    }
}
