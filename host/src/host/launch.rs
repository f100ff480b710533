//! Starting turns: `job_start` (a new job) and `job_reply` (the next turn of
//! one), each judged by the approval policies before anything is queued.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use super::JobHost;
use super::checks::{check_prompt_size, checked_cwd};
use super::tools::{StartRequest, Started};
use crate::backend::{self, CodexCli, exec};
use crate::error::invalid;
use crate::job::end::record_end_locked;
use crate::job::{BackendKind, End, JobDir, JobId, JobMeta, JobOptions, Queue, TurnSettings, TurnSpec};
use crate::policy::{self, Decision, JobContext, Launch, PinnedSet, PolicySet, Request};

impl JobHost {
    /// Starts a job: validates everything, creates its directory, starts its
    /// supervisor, and returns without waiting for Codex.
    ///
    /// Errors: [`InvalidInput`] for an empty prompt, a `cwd` that is not an
    /// absolute path to an existing directory, an option the installed Codex
    /// does not support, or a launch the project's approval policies refuse
    /// (or cannot be loaded to judge); nothing is started then.
    pub async fn start(self: &Arc<Self>, req: StartRequest) -> Result<Started> {
        if req.prompt.trim().is_empty() {
            return Err(invalid("invalid prompt: expected a non-empty instruction for Codex"));
        }
        check_prompt_size(&req.prompt)?;
        let cwd = checked_cwd(&req.cwd)?;
        let options = JobOptions {
            model: req.model,
            profile: req.profile,
            sandbox: req.sandbox,
            approval_mode: req.approval_policy.unwrap_or_else(|| "suggest".to_owned()),
            config: req.config,
            extra_args: req.extra_args,
            skip_git_repo_check: req.skip_git_repo_check,
            idle_timeout_s: req.idle_timeout_s,
            approval_timeout_s: req.approval_timeout_s,
        };
        let cli = self.codex().await?;
        let backend = backend::choose(req.backend.as_deref(), cli)?;
        backend::validate(backend, &options, cli)?;
        let id = JobId::new();
        // Off the async workers: a first load compiles the components (~0.2 s).
        let (host, judged) = (Arc::clone(self), (cwd.clone(), req.prompt.clone(), options.clone()));
        // The job runs under the set pinned here for good, whatever later edits to the project's policies.
        let pinned =
            tokio::task::spawn_blocking(move || host.judge_launch(id, backend, &judged.0, &judged.1, &judged.2))
                .await??;
        let mut meta = JobMeta::queued(id, &req.prompt, cwd, backend, options, cli.located.clone());
        meta.policies = Some(serde_json::to_value(&pinned)?);
        meta.started_by = req.started_by.clone();
        let spec = turn_spec(&meta, &req.prompt, cli, self.config.turn_settings)?;
        // The queue entry, fsynced, is the job's durable record; its directory is made from the same
        // records while the entry's fsync (about 0.5 ms on ext4) runs on another thread.
        let written = Queue::of(&self.store).write_entry(&meta, &spec)?;
        let syncing = tokio::task::spawn_blocking(move || written.sync());
        crate::failpoint!("start-after-enqueue");
        let made = self.store.materialize(&meta);
        if let Err(e) = syncing.await? {
            if let Ok(job) = &made {
                self.discard_unacknowledged(job);
            }
            return Err(e);
        }
        if let Err(e) = made {
            let _ = Queue::of(&self.store).dequeue(&meta);
            return Err(e);
        }
        self.admit_soon(&meta);
        Ok(Started { job_id: id.to_string(), status: meta.status, turn: meta.turn, cursor: 0 })
    }

    /// Removes the directory of a job whose start was never acknowledged (its
    /// queue entry's fsync failed), unless a supervisor runs it (another
    /// server admitted the entry meanwhile). Errors are logged: the start's
    /// own error is the one its caller sees.
    fn discard_unacknowledged(&self, job: &JobDir) {
        let discarded = (|| -> Result<()> {
            let _lock = job.lock()?;
            if let Some(_no_supervisor) = job.try_supervisor_lock()? {
                self.store.remove(job.id())?;
            }
            Ok(())
        })();
        if let Err(e) = discarded {
            tracing::warn!(job = %job.id(), "cannot remove the job a failed start left: {e:#}");
        }
    }

    /// Asks the project's approval policies whether this launch may go ahead.
    ///
    /// Returns the set that judged it, pinned for the job. Errors: see [`JobHost::judge`].
    fn judge_launch(
        &self,
        id: JobId,
        backend: BackendKind,
        cwd: &Path,
        prompt: &str,
        options: &JobOptions,
    ) -> Result<PinnedSet> {
        let refused = |e: anyhow::Error| invalid(format!("job_start refused: {e:#}"));
        let set = self.policies.for_cwd(cwd).map_err(refused)?;
        // Pinned (its copies touched, so `jobs gc` keeps them) before it judges: the set judged is the set kept.
        let (set, pinned) = self.policies.pin(&set, cwd).map_err(refused)?;
        let ctx = policy::job_context(id, backend, cwd, set.project_root.as_deref(), prompt);
        self.judge(&set, &ctx, options, None)?;
        Ok(pinned)
    }

    /// Asks `set`'s approval policies whether a turn with `options` may run:
    /// a launch (`job_start`), or with `reply` (its prompt and turn) a
    /// `job_reply`, judged by the job's pinned set.
    /// The launch request carries the settings in effect after every option
    /// is applied ([`exec::effective`]), not the ones asked for by name.
    ///
    /// Errors: [`InvalidInput`] with the policy's reason when it declines,
    /// cancels or asks (a launch has nobody to ask yet); naming the options
    /// the host cannot judge (unknown `extra_args`, `config` keys that may
    /// change permissions, a `profile`) while an approval policy is
    /// configured and none says `judges_options` (one that does sees them in
    /// the request's `unjudged`); or when a policy cannot be loaded.
    fn judge(&self, set: &PolicySet, ctx: &JobContext, options: &JobOptions, reply: Option<(&str, u32)>) -> Result<()> {
        let what = if reply.is_some() { "job_reply" } else { "job_start" };
        let effective = exec::effective(options);
        if set.enforces_approvals() && !effective.unjudgeable.is_empty() && !set.judges_options() {
            return Err(invalid(format!(
                "{what} refused: the project's approval policies cannot judge {}; while an approval policy is configured, use approval_policy, sandbox and model instead, or name a policy that judges them (judges_options = true in its [[approval]] entry)",
                effective.unjudgeable.join(", ")
            )));
        }
        let settings = Launch {
            approval_mode: effective.approval_mode,
            network_access: effective.sandbox == "danger-full-access",
            sandbox: Some(effective.sandbox),
            model: effective.model,
            backend: ctx.backend.clone(),
            config: options.config.clone(),
            extra_args: options.extra_args.clone(),
            unjudged: effective.unjudgeable,
        };
        let request = match reply {
            Some((prompt, turn)) => Request::Reply { prompt: prompt.to_owned(), turn, settings },
            None => Request::Launch(settings),
        };
        let verdict = set.decide(ctx, &request);
        for (name, decision) in &verdict.shadow {
            tracing::info!(policy = %name, ?decision, job = %ctx.job_id, "{what}: the decision of a policy in shadow (not applied)");
        }
        let by = verdict.decided_by.as_deref().unwrap_or("built-in");
        match verdict.decision {
            Decision::Accept | Decision::AcceptForSession => Ok(()),
            Decision::Decline(reason) | Decision::Cancel(reason) => {
                Err(invalid(format!("{what} refused by policy {by}: {reason}")))
            }
            Decision::Ask => Err(invalid(format!(
                "{what} refused: policy {by} asks for approval of this launch, and a launch cannot wait for one"
            ))),
        }
    }

    /// Continues a finished job's Codex conversation with a new turn
    /// (`codex exec resume <thread_id>`, app-server `thread/resume`): same id,
    /// same event log. The turn is judged by the job's pinned policies and by
    /// its project's policies now, the strictest winning.
    ///
    /// Errors: [`InvalidInput`] when the job is still going, has no thread id,
    /// or the prompt is empty.
    pub async fn reply(self: &Arc<Self>, job_id: &str, prompt: &str) -> Result<Started> {
        let id = JobId::parse(job_id)?;
        if prompt.trim().is_empty() {
            return Err(invalid("invalid prompt: expected a non-empty message for Codex"));
        }
        check_prompt_size(prompt)?;
        let job = self.store.job(id)?;
        let cli = self.codex().await?;
        // A reply starts a turn: the job's pinned policies judge it as they judged its launch, and so
        // does its project's set now: a policy added since tightens at once, one removed never loosens it.
        let (host, asked) = (Arc::clone(self), prompt.to_owned());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let job = host.store.job(id)?;
            let meta = job.read_meta()?;
            let reply = Some((asked.as_str(), meta.turn + 1));
            let (pinned, ctx) = host.policy_for(&job, &meta)?;
            host.judge(&pinned, &ctx, &meta.options, reply)?;
            let now = (host.policies.for_cwd(&meta.cwd))
                .map_err(|e| invalid(format!("job_reply refused: the project's policies now: {e:#}")))?;
            if !Arc::ptr_eq(&now, &pinned) {
                host.judge(&now, &host.job_context(&now, &meta), &meta.options, reply)?;
            }
            Ok(())
        })
        .await??;
        let _lock = job.lock()?;
        self.store.job(id)?; // still there: `jobs gc` removes a job under this lock
        let mut meta = job.read_meta()?;
        if meta.status.is_terminal() {
            // The last end may have been recorded only in part (a crash): finish it first.
            let recorded = End::recorded_in(&meta);
            record_end_locked(&self.store, &job, &mut meta, |_| {}, recorded)?;
        }
        meta.next_turn()?; // refused unless the last turn has ended
        let spec = turn_spec(&meta, prompt, cli, self.config.turn_settings)?;
        let cursor = job.event_count()?;
        // The entry first, under the job's lock: admission leaves an entry
        // ahead of meta.json alone while the lock is held (see `queue::admit`).
        Queue::of(&self.store).enqueue(&meta, &spec)?;
        job.write_meta(&meta)?;
        job.sync()?; // acknowledged: a crash must not bring back the ended turn's meta.json
        job.event_writer()?.status(&meta, json!({"prompt": prompt}))?;
        self.admit_soon(&meta);
        Ok(Started { job_id: id.to_string(), status: meta.status, turn: meta.turn, cursor })
    }
}

/// What the supervisor runs for the job's current turn.
fn turn_spec(meta: &JobMeta, prompt: &str, cli: &CodexCli, settings: TurnSettings) -> Result<TurnSpec> {
    Ok(TurnSpec {
        turn: meta.turn,
        program: cli.program.clone(),
        args: backend::command_args(meta, cli)?,
        env: cli.env.clone(),
        prompt: prompt.to_owned(),
        settings,
    })
}
