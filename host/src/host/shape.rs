//! What leaves the host: every caller-visible string of a result passes the
//! job's truncation policies with no length limit, so what a redaction hides
//! stays hidden in every field (prompts, errors, last messages, summaries,
//! notifications), not only in events and output. Results are shaped here, in
//! one place, field by field through their JSON form, so a new field cannot
//! skip it.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{JobHost, PolicyReport};
use crate::job::event::{for_each_text, is_tag};
use crate::job::{JobId, JobSummary};
use crate::policy::builtin::NO_LIMIT;
use crate::policy::{Budgeted, JobContext, PolicyFailure, PolicySet};

/// Whether a top-level field of a result is the host's own, never shaped:
/// tags and ids, the status, timestamps, the policies in force, and fields
/// already shaped with their own limits (`output_tail`, `events`).
fn is_hosts(key: &str) -> bool {
    is_tag(key) || key.ends_with("_at") || ["status", "output_tail", "events", "policies"].contains(&key)
}

/// `value` with each of its caller-visible strings passed through the
/// truncation chain of `set` (within `policies`' time budget).
///
/// Errors: a shaped result that no longer has its type (a policy changed a
/// field into something else), so nothing unshaped is ever returned.
pub(super) fn redact<T: Serialize + DeserializeOwned>(
    set: &PolicySet,
    policies: &Budgeted,
    ctx: &JobContext,
    value: T,
    failures: &mut Vec<PolicyFailure>,
) -> Result<T> {
    if !set.has_truncations() {
        return Ok(value);
    }
    let mut json = serde_json::to_value(value)?;
    if let Value::Object(fields) = &mut json {
        for (_, field) in fields.iter_mut().filter(|(key, _)| !is_hosts(key)) {
            for_each_text(field, &mut |text| {
                let (shaped, failed) = policies.truncate(ctx, text, NO_LIMIT);
                failures.extend(failed);
                *text = shaped;
            });
        }
    }
    serde_json::from_value(json).context("a truncation policy changed a result so it no longer parses")
}

impl JobHost {
    /// Job summaries (`job_list`, `job_wait`), each through its own job's
    /// policies, all within one request's budget from `begun`.
    pub(super) fn redact_summaries(
        &self,
        jobs: Vec<JobSummary>,
        begun: Instant,
    ) -> Result<(Vec<JobSummary>, PolicyReport)> {
        let mut failures = Vec::new();
        let mut exhausted = false;
        let mut shaped = Vec::with_capacity(jobs.len());
        for job in jobs {
            let dir = self.store.job(JobId::parse(&job.job_id)?)?;
            let meta = dir.read_meta()?;
            let set = self.policy_set(&dir, &meta)?;
            if !set.has_truncations() {
                shaped.push(job);
                continue;
            }
            let ctx = self.job_context(&set, &meta);
            let policies = set.within(begun);
            shaped.push(redact(&set, &policies, &ctx, job, &mut failures)?);
            exhausted |= policies.exhausted();
        }
        Ok((shaped, PolicyReport::new(exhausted, failures)))
    }
}
