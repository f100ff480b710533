//! What the read tools show: `job_status`, `job_events`, `job_list`,
//! `job_wait`, `job_notifications` and `jobs logs`, each through the job's
//! pinned policies (event filters, truncations, redaction) and fitted to the
//! caller's `max_chars`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::JobHost;
use super::checks::{check_max_chars, page_limit};
use super::shape;
use super::tools::*;
use crate::error::{InvalidInput, invalid};
use crate::job::approval;
use crate::job::event::{STATUS_EVENT, for_each_text};
use crate::job::id::quote_short;
use crate::job::{JobDir, JobId, JobMeta, JobStatus, JobSummary, Notification, Queue};
use crate::policy::{self, builtin};
use crate::policy::{FilterOutcome, JobContext, Limits, PinnedSet, PolicyFailure, PolicySet};

/// Most output `job_status` returns, from the end of `output.log`.
const STATUS_TAIL_BYTES: u64 = 64 * 1024;
/// Most events `job_events` looks at in one call, so a narrow `event_types`
/// filter on a huge log still answers quickly (the cursor says where it stopped).
const EVENTS_SCAN_MAX: u64 = 10_000;
/// Longest string (bytes) `job_events` remembers the truncation of within one call.
const RECURRING_STRING_MAX: usize = 256;
impl JobHost {
    /// The job's state, its last message and the tail of its output, its
    /// JSON cut to `max_chars` characters (none: no cap; the MCP tool's
    /// default is [`RESULT_MAX_CHARS`]) as [`StatusReport`] says.
    ///
    /// Errors: [`InvalidInput`] for a malformed or unknown id, or a
    /// `max_chars` outside 2,000 to [`RESULT_MAX_CHARS_LIMIT`].
    pub fn status(&self, job_id: &str, tail_lines: Option<usize>, max_chars: Option<usize>) -> Result<StatusReport> {
        let begun = Instant::now();
        check_max_chars(max_chars)?;
        let id = JobId::parse(job_id)?;
        let job = self.store.job(id)?;
        let mut meta = job.read_meta()?;
        let mut queue_position = None;
        if meta.status == JobStatus::Queued {
            queue_position = self.queue_positions()?.get(&id).copied();
            if queue_position.is_none() {
                // Admitted between the two reads: report the newer state, not `queued` with no place.
                meta = job.read_meta()?;
            }
        }
        let tail_lines = tail_lines.unwrap_or(100);
        let (raw_tail, omitted) = job.tail_output(tail_lines, STATUS_TAIL_BYTES)?;
        let (set, ctx) = self.policy_for(&job, &meta)?;
        let policies = set.within(begun);
        let limits = Limits { max_lines: u32::try_from(tail_lines).unwrap_or(u32::MAX), ..builtin::OUTPUT_LIMITS };
        let (output_tail, mut failures) = policies.truncate(&ctx, &raw_tail, limits);
        let output_truncated = omitted || output_tail != raw_tail;
        let report = StatusReport {
            job_id: id.to_string(),
            status: meta.status,
            turn: meta.turn,
            exit_code: meta.exit_code,
            error: meta.error,
            queue_position,
            pending_approvals: match meta.status.is_terminal() {
                true => Vec::new(),
                false => approval::pending(&job, meta.turn)?,
            },
            backend: meta.backend.to_string(),
            started_by: meta.started_by.clone(),
            created_at: meta.created_at.to_string(),
            started_at: meta.started_at.map(|t| t.to_string()),
            finished_at: meta.finished_at.map(|t| t.to_string()),
            prompt: meta.prompt,
            cwd: meta.cwd,
            thread_id: meta.thread_id,
            last_message: meta.last_message,
            last_message_truncated: false,
            prompt_truncated: false,
            usage: meta.usage,
            event_count: job.event_count()?,
            output_tail,
            output_truncated,
            policies: set
                .entries()
                .map(|(world, g)| PolicyInForce { world, name: g.name.to_string(), sha256: g.component.sha256.clone() })
                .collect(),
            policy: PolicyReport::default(),
        };
        let mut report = shape::redact(&set, &policies, &ctx, report, &mut failures)?;
        report.policy = PolicyReport::new(policies.exhausted(), failures);
        if let Some(max) = max_chars {
            report.fit(max);
        }
        Ok(report)
    }

    /// Events after a cursor: filtered by type, then by the project's event
    /// filters, with every string of text (see [`for_each_text`]) shortened by its truncation policies (limit:
    /// `truncate` characters, default 1024; 0 = no length limit, the policies still run).
    ///
    /// Errors: [`InvalidInput`] for a bad id, a cursor past the end, or a limit outside 1..=1000;
    /// a policy file or component that cannot be loaded.
    pub fn events(&self, req: &EventsRequest) -> Result<EventsPage> {
        let begun = Instant::now();
        check_max_chars(req.max_chars)?;
        let id = JobId::parse(&req.job_id)?;
        let limit = page_limit(req.limit, 20)?;
        let job = self.store.job(id)?;
        let meta = job.read_meta()?;
        let (set, ctx) = self.policy_for(&job, &meta)?;
        let policies = set.within(begun);
        let types = req.event_types.as_deref().unwrap_or_default();
        let limits = Limits {
            max_chars: match req.truncate.unwrap_or(1024) {
                0 => u32::MAX,
                n => u32::try_from(n).unwrap_or(u32::MAX),
            },
            ..builtin::NO_LIMIT
        };
        let mut failures = Vec::new();
        // Truncation is a function of the text and the limits. Short strings
        // (commands, statuses) recur in almost every event, so each is cut once a
        // call; long ones (output, messages) rarely recur and are not worth hashing.
        let mut cut_once: HashMap<String, String> = HashMap::new();
        let (events, next_cursor) =
            job.read_events(req.cursor.unwrap_or(0), limit, EVENTS_SCAN_MAX, set.has_filters(), |mut e, data| {
                if !types.is_empty() && !types.iter().any(|t| e.matches_type(t)) {
                    return None;
                }
                if let Some(data) = data {
                    let (outcome, failed) = policies.filter(&ctx, &e.kind, data);
                    failures.extend(failed);
                    match outcome {
                        FilterOutcome::Keep => {}
                        FilterOutcome::Replace(kind, data) => (e.kind, e.data) = (kind, data),
                        FilterOutcome::Drop => return None,
                    }
                }
                for_each_text(&mut e.data, &mut |text| {
                    if !set.has_truncations() {
                        *text = builtin::truncate(text, limits);
                        return;
                    }
                    let recurs = text.len() <= RECURRING_STRING_MAX;
                    if recurs && let Some(cut) = cut_once.get(text.as_str()) {
                        text.clone_from(cut);
                        return;
                    }
                    let (cut, failed) = policies.truncate(&ctx, text, limits);
                    failures.extend(failed);
                    if recurs {
                        cut_once.insert(std::mem::replace(text, cut.clone()), cut);
                    } else {
                        *text = cut;
                    }
                });
                Some(e)
            })?;
        let mut events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
        let mut next_cursor = next_cursor;
        if let Some(max) = req.max_chars {
            // Room for the page's own fields, then whole events while they fit.
            let fitting = fitting(&events, &mut 200, max).max(1);
            if fitting < events.len() {
                events.truncate(fitting);
                next_cursor = events.last().map_or(next_cursor, |e| e.seq + 1);
            }
        }
        let has_more = next_cursor < job.event_count()?;
        Ok(EventsPage {
            job_id: id.to_string(),
            status: meta.status,
            events,
            next_cursor,
            has_more,
            policy: PolicyReport::new(policies.exhausted(), failures),
        })
    }

    /// The policy set a job runs under, and the job as policies see it: the
    /// set pinned at its start, or, for a job started before sets were
    /// pinned, its project's set now.
    pub(super) fn policy_for(&self, job: &JobDir, meta: &JobMeta) -> Result<(Arc<PolicySet>, JobContext)> {
        let set = self.policy_set(job, meta)?;
        let ctx = self.job_context(&set, meta);
        Ok((set, ctx))
    }

    /// The policy set of the job in `job` (`meta`, just read): pinned, or (a
    /// job from before sets were pinned) its project's now.
    pub(super) fn policy_set(&self, job: &JobDir, meta: &JobMeta) -> Result<Arc<PolicySet>> {
        match job.read_policies::<PinnedSet>(meta)? {
            Some(pinned) => self.policies.for_pinned(&pinned).with_context(|| format!("job {}", job.id())),
            None => self.policies.for_cwd(&meta.cwd),
        }
    }

    /// The job as the policies of `set` see it.
    pub(super) fn job_context(&self, set: &PolicySet, meta: &JobMeta) -> JobContext {
        policy::job_context(meta.id, meta.backend, &meta.cwd, set.project_root.as_deref(), &meta.prompt)
    }

    /// Jobs newest first, optionally by status and working directory.
    ///
    /// Errors: [`InvalidInput`] for an unknown status, a relative cwd or a limit outside 1..=1000.
    pub async fn list(self: &Arc<Self>, req: &ListRequest) -> Result<JobList> {
        let begun = Instant::now();
        check_max_chars(req.max_chars)?;
        let status = req.status.as_deref().map(JobStatus::parse).transpose()?;
        let cwd = match &req.cwd {
            Some(c) if !Path::new(c).is_absolute() => {
                return Err(invalid(format!("invalid cwd {}: expected an absolute path", quote_short(c))));
            }
            Some(c) => Some(PathBuf::from(c)),
            None => None,
        };
        let limit = page_limit(req.limit, 50)?;
        self.wait_indexed().await;
        // Before the snapshot: a turn admitted in between is listed as running, never as queued without a place.
        let positions = self.queue_positions()?;
        let mut jobs = self
            .registry
            .list(limit, |j| status.is_none_or(|s| j.status == s) && cwd.as_ref().is_none_or(|c| j.cwd.starts_with(c)));
        for j in jobs.iter_mut().filter(|j| j.status == JobStatus::Queued) {
            j.queue_position = JobId::parse(&j.job_id).ok().and_then(|id| positions.get(&id).copied());
        }
        let (mut jobs, policy) = self.off_runtime(move |host| host.redact_summaries(jobs, begun)).await?;
        let mut truncated = false;
        if let Some(max) = req.max_chars {
            let fitting = fitting(&jobs, &mut 100, max); // 100: the list's own fields
            truncated = fitting < jobs.len();
            jobs.truncate(fitting);
        }
        let unreadable = (self.turns.unreadable)
            .lock()
            .unwrap()
            .iter()
            .map(|(id, error)| UnreadableJob { job_id: id.to_string(), error: error.clone() })
            .collect();
        Ok(JobList { jobs, truncated, unreadable, policy })
    }

    /// Waits until one of `job_ids` (none: any job running when called) is in a
    /// terminal status or `input_required` (the caller must answer), or `timeout_s` (default 30, at most [`WAIT_MAX_S`]) passes.
    /// Wakes on the supervisor's exit, never by polling.
    ///
    /// Errors: [`InvalidInput`] for a bad or unknown id, or a timeout over [`WAIT_MAX_S`].
    pub async fn wait(
        self: &Arc<Self>,
        job_ids: &[String],
        timeout_s: Option<u64>,
        max_chars: Option<usize>,
    ) -> Result<WaitOutcome> {
        let begun = Instant::now();
        check_max_chars(max_chars)?;
        let timeout_s = timeout_s.unwrap_or(30);
        if timeout_s > WAIT_MAX_S {
            return Err(invalid(format!("invalid timeout_s {timeout_s}: expected 0 to {WAIT_MAX_S} seconds")));
        }
        let ids = job_ids.iter().map(|s| JobId::parse(s)).collect::<Result<Vec<_>, InvalidInput>>()?;
        let mut changes = self.registry.subscribe();
        // After the index: it first restores the directories of queued jobs a crash lost.
        self.wait_indexed().await;
        for id in &ids {
            self.store.job(*id)?;
        }
        // A job this host has not indexed yet: index it; one it did not start: follow its status changes on disk.
        for id in &ids {
            match self.registry.get(*id) {
                None => self.index_job(*id)?,
                Some(j) if !j.status.is_terminal() && !self.turns.watches_supervisor(*id) => self.follow(*id),
                Some(_) => {}
            }
        }
        let ids = if ids.is_empty() {
            self.registry
                .list(usize::MAX, |j| !j.status.is_terminal())
                .iter()
                .filter_map(|j| JobId::parse(&j.job_id).ok())
                .collect()
        } else {
            ids
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
        loop {
            changes.borrow_and_update();
            let summaries: Vec<JobSummary> = ids.iter().filter_map(|id| self.registry.get(*id)).collect();
            // An answered request leaves the job `input_required` until its
            // supervisor has passed the answer on: only an unanswered one needs the caller.
            // Read once, so the wake-up and the result agree.
            let awaiting: HashSet<String> =
                summaries.iter().filter(|j| self.awaits_answer(j)).map(|j| j.job_id.clone()).collect();
            let timed_out =
                if summaries.is_empty() || !awaiting.is_empty() || summaries.iter().any(|j| j.status.is_terminal()) {
                    false
                } else if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                    true
                } else {
                    continue;
                };
            let (summaries, policy) = self.off_runtime(move |host| host.redact_summaries(summaries, begun)).await?;
            let (finished, rest): (Vec<_>, Vec<_>) = summaries.into_iter().partition(|j| j.status.is_terminal());
            let (input_required, pending) = rest.into_iter().partition(|j| awaiting.contains(&j.job_id));
            let mut outcome = WaitOutcome { finished, input_required, pending, timed_out, truncated: false, policy };
            if let Some(max) = max_chars {
                outcome.fit(max);
            }
            return Ok(outcome);
        }
    }

    /// The place of every queued turn in the home's queue, from 1, oldest
    /// first; turns already running are not counted (one admitted a moment
    /// ago, still `queued` until its supervisor says otherwise, is).
    fn queue_positions(&self) -> Result<HashMap<JobId, usize>> {
        let mut positions = HashMap::new();
        for entry in Queue::of(&self.store).queued()? {
            let status = match self.registry.get(entry.job) {
                Some(j) if j.turn == entry.turn => Some(j.status),
                _ => self.store.job(entry.job).and_then(|j| j.read_meta()).ok().map(|m| m.status),
            };
            if status == Some(JobStatus::Queued) {
                let next = positions.len() + 1;
                positions.insert(entry.job, next);
            }
        }
        Ok(positions)
    }

    /// A job's status as this host's index has it (no file is read); `None`
    /// for an unknown id.
    pub fn indexed_status(&self, job_id: &str) -> Option<JobStatus> {
        self.registry.get(JobId::parse(job_id).ok()?).map(|j| j.status)
    }

    /// A receiver that wakes on every change of any job's status this host sees.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.registry.subscribe()
    }

    /// Whether a job is `input_required` with a request no one has answered yet.
    fn awaits_answer(&self, job: &JobSummary) -> bool {
        job.status == JobStatus::InputRequired
            && JobId::parse(&job.job_id)
                .map_err(anyhow::Error::from)
                .and_then(|id| self.store.job(id))
                .and_then(|dir| approval::pending(&dir, job.turn))
                .is_ok_and(|p| !p.is_empty())
    }

    /// Turns that ended after `cursor` (a byte offset into the feed; 0 = from the start).
    pub fn notifications(&self, cursor: Option<u64>, limit: Option<usize>) -> Result<NotificationPage> {
        let limit = page_limit(limit, 100)?;
        let begun = Instant::now();
        let (notes, next_cursor) = self.store.feed().read(cursor.unwrap_or(0), limit)?;
        let mut notifications = Vec::with_capacity(notes.len());
        let mut policy_budget_exhausted = false;
        let mut failures = Vec::new();
        for note in notes {
            if let Some(note) = self.filter_notification(note, begun, &mut policy_budget_exhausted, &mut failures)? {
                notifications.push(note);
            }
        }
        Ok(NotificationPage {
            notifications,
            next_cursor,
            policy: PolicyReport::new(policy_budget_exhausted, failures),
        })
    }

    /// Passes a notification through its job's event filters as a `job.status`
    /// event, and its strings through the job's truncations (redaction),
    /// within the budget of the request that began at `begun` (sets
    /// `exhausted` when it ran out; adds failed components to `failures`). A
    /// replacement that is not a notification keeps the original.
    fn filter_notification(
        &self,
        note: Notification,
        begun: Instant,
        exhausted: &mut bool,
        failures: &mut Vec<PolicyFailure>,
    ) -> Result<Option<Notification>> {
        let Ok(job) = JobId::parse(&note.job_id).map_err(anyhow::Error::from).and_then(|id| self.store.job(id)) else {
            return Ok(Some(note)); // its job was deleted; nothing to filter by
        };
        let (set, ctx) = self.policy_for(&job, &job.read_meta()?)?;
        let policies = set.within(begun);
        let shown = if set.has_filters() {
            let (outcome, failed) = policies.filter(&ctx, STATUS_EVENT, &serde_json::to_string(&note)?);
            failures.extend(failed);
            match outcome {
                FilterOutcome::Keep => Some(note),
                FilterOutcome::Drop => None,
                FilterOutcome::Replace(_, payload) => match serde_json::from_value::<Notification>(payload) {
                    Ok(replaced) => Some(replaced),
                    Err(e) => {
                        let error = format!("replaced a notification with something that is not one: {e}");
                        failures.extend(set.last_filter_failure(error));
                        Some(note)
                    }
                },
            }
        } else {
            Some(note)
        };
        let shown = shown.map(|note| shape::redact(&set, &policies, &ctx, note, failures)).transpose()?;
        *exhausted |= policies.exhausted();
        Ok(shown)
    }

    /// Reads `output.log` from byte `offset`: at most `max` bytes and the
    /// offset after them (for `jobs logs --follow`). With truncation policies
    /// configured, only whole lines are returned, each passed through them with
    /// no length limit (redaction); an unfinished last line waits for its
    /// newline unless it fills `max` alone or the job has ended.
    pub fn output_since(&self, job_id: &str, offset: u64, max: usize) -> Result<(Vec<u8>, u64)> {
        let job = self.store.job(JobId::parse(job_id)?)?;
        let (bytes, next) = job.read_output(offset, max)?;
        let meta = job.read_meta()?;
        let (set, ctx) = self.policy_for(&job, &meta)?;
        if !set.has_truncations() || bytes.is_empty() {
            return Ok((bytes, next));
        }
        let whole = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if bytes.len() >= max || meta.status.is_terminal() => bytes.len(),
            None => return Ok((Vec::new(), offset)),
        };
        let text = String::from_utf8_lossy(&bytes[..whole]);
        let policies = set.within(Instant::now());
        let (shaped, _) = policies.truncate(&ctx, &text, builtin::NO_LIMIT);
        Ok((shaped.into_bytes(), offset + whole as u64))
    }
}

impl JobHost {
    /// The approval decisions made since `since` in the jobs whose cwd is in
    /// `project`'s project root (every job, without one), oldest first within
    /// each job, jobs in id (start) order: decisions in shadow among them, so
    /// a team reads what a new policy would have declined before enforcing it.
    ///
    /// Errors: a job's files that cannot be read, named in the message.
    pub fn decisions(&self, project: Option<&Path>, since: jiff::Timestamp) -> Result<Vec<LoggedDecision>> {
        let root = project.map(|p| policy::project_root(p).unwrap_or_else(|| p.to_owned()));
        let mut ids = self.store.job_ids()?;
        ids.sort();
        let mut logged = Vec::new();
        for id in ids {
            let Ok(meta) = self.store.job(id).and_then(|job| job.read_meta()) else { continue };
            if root.as_deref().is_some_and(|root| !meta.cwd.starts_with(root)) {
                continue;
            }
            let mut cursor = 0;
            loop {
                let req = EventsRequest {
                    job_id: id.to_string(),
                    cursor: Some(cursor),
                    limit: Some(1000),
                    event_types: Some(vec![crate::job::event::APPROVAL_DECIDED_EVENT.to_owned()]),
                    truncate: None,
                    max_chars: Some(RESULT_MAX_CHARS_LIMIT),
                };
                let page = self.events(&req)?;
                for event in page.events {
                    if event.ts.parse::<jiff::Timestamp>().is_ok_and(|ts| ts >= since) {
                        logged.push(LoggedDecision { job_id: id.to_string(), cwd: meta.cwd.clone(), event });
                    }
                }
                if !page.has_more || page.next_cursor == cursor {
                    break;
                }
                cursor = page.next_cursor;
            }
        }
        Ok(logged)
    }
}
