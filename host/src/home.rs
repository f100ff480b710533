//! The job home's layout: the name of every file and folder under
//! `$CODEX_JOBHOST_HOME` (default `~/.codex-jobhost`), in one place. What each
//! holds is documented where it is read and written; README.md ("Where jobs
//! live") shows the whole tree.

/// The user's settings: `[jobs]`, `[limits]` and the user's policies.
pub const USER_FILE: &str = "config.toml";
/// The HTTP tokens `serve --http` accepts (names, access, SHA-256 of each),
/// written by `codex-jobhost http token`; mode 0600.
pub const HTTP_TOKENS: &str = "http-tokens.toml";
/// The lock `http token add` and `revoke` take while they rewrite [`HTTP_TOKENS`].
pub const HTTP_TOKENS_LOCK: &str = "http-tokens.lock";
/// Compiled policy components, keyed by content.
pub const CACHE_DIR: &str = "cache";
/// A copy of every policy component a job was started under: `<sha256>.wasm`.
pub const PINNED_DIR: &str = "pinned";
/// The feed of finished turns, one JSON object a line.
pub const FEED: &str = "notifications.jsonl";
/// Turns waiting to start, one file each.
pub const QUEUE_DIR: &str = "queue";
/// Turns whose supervisor was started, until their end is recorded.
pub const ADMITTED_DIR: &str = "admitted";
/// Held (flock) while a server admits queued turns.
pub const QUEUE_LOCK: &str = "queue.lock";
/// One folder per job, named by its id.
pub const JOBS_DIR: &str = "jobs";

/// Names inside a job's folder (`jobs/<job_id>/`).
pub mod job {
    /// `JobMeta`, replaced atomically.
    pub const META: &str = "meta.json";
    /// One event a line, appended; never filtered.
    pub const EVENTS: &str = "events.jsonl";
    /// End offset of each event line, u64 little-endian (derived).
    pub const EVENTS_INDEX: &str = "events.idx";
    /// A torn last event line, kept aside.
    pub const EVENTS_TORN: &str = "events.torn";
    /// The agent's raw stdout and stderr lines.
    pub const OUTPUT: &str = "output.log";
    /// The supervisor's own log.
    pub const SUPERVISOR_LOG: &str = "supervisor.log";
    /// Held (flock) by the turn's supervisor for its whole life.
    pub const SUPERVISOR_LOCK: &str = "supervisor.lock";
    /// Held (flock) while a turn begins or its end is recorded.
    pub const JOB_LOCK: &str = "job.lock";
    /// Disk space a running supervisor holds to record its end on a full disk.
    pub const RESERVE: &str = "space.reserve";
    /// Approval requests handed to the caller, and their answers.
    pub const APPROVALS_DIR: &str = "approvals";
    /// (Earlier versions) what a queued turn runs: now in its queue entry.
    pub const TURN: &str = "turn.json";
    /// (Earlier versions) the pinned policy set: now in `meta.json`.
    pub const POLICIES: &str = "policies.json";
}
