//! Testing a project's policies the way their authors mean them to work:
//! `codex-jobhost policy test --cases cases.toml` runs a table of requests,
//! texts and events through a project's layered set and compares what comes
//! out with what each case expects; `policy eval` decides one request.
//!
//! ```toml
//! [[case]]                                   # an approval
//! name = "no force push"
//! request = { command = { command = "git push --force origin main", cwd = "/w" } }
//! expect = "decline"                         # accept, accept-for-session, ask, decline, cancel
//! reason_contains = "force"                  # optional, for decline and cancel
//!
//! [[case]]                                   # a truncation chain
//! name = "keys are hidden"
//! text = "key sk-abcdefghijklmnopqrstuvwxyz"
//! limits = { max_chars = 8000, max_lines = 100, keep = "tail" }   # optional; the default (keep: "head" for an event's string)
//! expect_text = "key [REDACTED]"
//!
//! [[case]]                                   # the event filters
//! name = "reasoning is dropped"
//! event = { kind = "item.completed", payload = { item = { type = "reasoning" } } }
//! expect_action = "drop"                     # keep, drop, replace
//! ```

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::builtin::OUTPUT_LIMITS;
use super::{Decision, FilterOutcome, JobContext, Limits, PolicySet, Request};

/// A cases file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    /// The cases, run in order.
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// One case: exactly one of `request`, `text` or `event`, with its expectation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown in the report.
    pub name: String,
    request: Option<Request>,
    expect: Option<String>,
    reason_contains: Option<String>,
    text: Option<String>,
    limits: Option<Limits>,
    expect_text: Option<String>,
    event: Option<EventInput>,
    expect_action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventInput {
    kind: String,
    payload: Value,
}

/// What `decide` gave, as JSON: `{"decision", "decided_by", "failures"}`.
pub fn eval(set: &PolicySet, job: &JobContext, request: &Request) -> Value {
    let verdict = set.decide(job, request);
    json!({
        "decision": verdict.decision,
        "decided_by": verdict.decided_by.unwrap_or_else(|| "built-in".into()),
        "failures": verdict.failures,
    })
}

/// Parses a cases file.
///
/// Errors: not TOML, an unknown key, or a case without exactly one of
/// `request`, `text`, `event` and its expectation; the message names the case.
pub fn parse(text: &str) -> Result<Cases> {
    let cases: Cases = toml::from_str(text).context("the cases file is not valid")?;
    for case in &cases.cases {
        let shape = (case.request.is_some(), case.text.is_some(), case.event.is_some());
        let expected = match shape {
            (true, false, false) => case.expect.is_some(),
            (false, true, false) => case.expect_text.is_some(),
            (false, false, true) => case.expect_action.is_some(),
            _ => bail!("case {:?}: give exactly one of request, text, event", case.name),
        };
        if !expected {
            bail!("case {:?}: no expectation (expect, expect_text or expect_action)", case.name);
        }
    }
    Ok(cases)
}

/// Runs every case against `set`; returns the report (a line a case, a diff
/// under each mismatch) and how many failed.
pub fn run(set: &PolicySet, job: &JobContext, cases: &Cases) -> (String, usize) {
    let mut report = String::new();
    let mut failed = 0;
    for case in &cases.cases {
        match check(set, job, case) {
            None => {
                let _ = writeln!(report, "ok    {}", case.name);
            }
            Some((expected, got)) => {
                failed += 1;
                let _ = writeln!(report, "FAIL  {}\n      - expected: {expected}\n      + got:      {got}", case.name);
            }
        }
    }
    let _ = writeln!(report, "{} cases, {} passed, {failed} failed", cases.cases.len(), cases.cases.len() - failed);
    (report, failed)
}

/// `None` when the case holds, else what was expected and what came out.
fn check(set: &PolicySet, job: &JobContext, case: &Case) -> Option<(String, String)> {
    if let (Some(request), Some(expect)) = (&case.request, &case.expect) {
        let verdict = set.decide(job, request);
        let (kind, reason) = match &verdict.decision {
            Decision::Accept => ("accept", None),
            Decision::AcceptForSession => ("accept-for-session", None),
            Decision::Ask => ("ask", None),
            Decision::Decline(r) => ("decline", Some(r.as_str())),
            Decision::Cancel(r) => ("cancel", Some(r.as_str())),
        };
        let by = verdict.decided_by.as_deref().unwrap_or("built-in");
        let got = format!("{kind}{} (by {by})", reason.map(|r| format!(": {r}")).unwrap_or_default());
        let reason_ok = case.reason_contains.as_deref().is_none_or(|want| reason.is_some_and(|r| r.contains(want)));
        let wanted = format!(
            "{expect}{}",
            case.reason_contains.as_deref().map(|r| format!(" (reason containing {r:?})")).unwrap_or_default()
        );
        return (kind != expect || !reason_ok).then_some((wanted, got));
    }
    if let (Some(text), Some(expect)) = (&case.text, &case.expect_text) {
        let (out, failures) = set.truncate(job, text, case.limits.unwrap_or(OUTPUT_LIMITS));
        let got = if failures.is_empty() {
            format!("{out:?}")
        } else {
            format!("{out:?} (failed: {})", failures.iter().map(|f| f.error.as_str()).collect::<Vec<_>>().join("; "))
        };
        return (out != *expect || !failures.is_empty()).then(|| (format!("{expect:?}"), got));
    }
    if let (Some(event), Some(expect)) = (&case.event, &case.expect_action) {
        let (outcome, failures) = set.filter(job, &event.kind, &event.payload.to_string());
        let kind = match &outcome {
            FilterOutcome::Keep => "keep".to_owned(),
            FilterOutcome::Drop => "drop".to_owned(),
            FilterOutcome::Replace(k, v) => format!("replace with {k} {v}"),
        };
        let matches = kind.split(' ').next() == Some(expect.as_str()) && failures.is_empty();
        return (!matches).then(|| (expect.clone(), kind));
    }
    None
}
