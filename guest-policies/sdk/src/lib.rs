//! Write codex-jobhost policies in Rust: one trait impl and one export macro.
//!
//! A policy is a WebAssembly component implementing one WIT world of the
//! package `codex-jobhost:policy@0.3.0` (`wit/policy.wit` in the codex-jobhost
//! repository, the authoritative manual). This crate wraps the generated
//! bindings, the way `zed_extension_api` serves Zed extensions:
//!
//! ```text
//! use codex_jobhost_policy::{ApprovalPolicy, Decision, Job, Request, export_approval_policy};
//!
//! #[derive(serde::Deserialize, Default)]
//! struct Settings { forbid: Vec<String> }
//!
//! struct NoForcePush;
//! impl ApprovalPolicy for NoForcePush {
//!     type Settings = Settings;
//!     fn decide(settings: &Settings, _job: &Job, request: &Request) -> Decision {
//!         match request {
//!             Request::Command { command, .. } if settings.forbid.iter().any(|f| command.contains(f.as_str())) => {
//!                 Decision::Decline(format!("{command} is forbidden here"))
//!             }
//!             _ => Decision::Ask,
//!         }
//!     }
//! }
//! export_approval_policy!(NoForcePush);
//! ```
//!
//! Enable the crate feature of the world you implement (`approval`,
//! `truncation` or `filter`), build with `cargo build --release --target
//! wasm32-wasip2`, and test the logic natively with plain `cargo test`: the
//! types here are ordinary Rust types, and settings are parsed with serde from
//! the `config` table of the component's entry in `jobhost.toml`.

// Lets the generated code name this crate by its path from inside it too.
extern crate self as codex_jobhost_policy;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[cfg(any(feature = "approval", feature = "truncation", feature = "filter"))]
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Generated bindings, one module per world (enabled by the crate features).
pub mod bindings {
    /// The `approval-policy` world.
    #[cfg(feature = "approval")]
    pub mod approval {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "approval-policy",
            pub_export_macro: true,
            export_macro_name: "export_approval_world",
            default_bindings_module: "codex_jobhost_policy::bindings::approval",
            runtime_path: "codex_jobhost_policy::__wit_bindgen::rt",
        });
    }
    /// The `output-truncation` world.
    #[cfg(feature = "truncation")]
    pub mod truncation {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "output-truncation",
            pub_export_macro: true,
            export_macro_name: "export_truncation_world",
            default_bindings_module: "codex_jobhost_policy::bindings::truncation",
            runtime_path: "codex_jobhost_policy::__wit_bindgen::rt",
        });
    }
    /// The `event-filter` world.
    #[cfg(feature = "filter")]
    pub mod filter {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "event-filter",
            pub_export_macro: true,
            export_macro_name: "export_filter_world",
            default_bindings_module: "codex_jobhost_policy::bindings::filter",
            runtime_path: "codex_jobhost_policy::__wit_bindgen::rt",
        });
    }
}

/// The job a call is about (WIT `job-info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job id (a UUID v7).
    pub job_id: String,
    /// How Codex is driven: `app-server` or `exec`.
    pub backend: String,
    /// The agent's working directory, absolute.
    pub cwd: String,
    /// The project root, if there is one.
    pub project_root: Option<String>,
    /// The first turn's prompt.
    pub prompt: String,
}

/// What a file change does (WIT `change-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// New files.
    Add,
    /// Removed files.
    Delete,
    /// Edited files.
    Update,
}

/// A launch's settings as they take effect (WIT `launch-request`): what the
/// agent may do follows from them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    /// `suggest`, `auto-edit` or `full-auto`.
    pub approval_mode: String,
    /// `read-only`, `workspace-write`, `danger-full-access`, or none (implied by the mode).
    #[serde(default)]
    pub sandbox: Option<String>,
    /// The model, if one was named.
    #[serde(default)]
    pub model: Option<String>,
    /// `app-server` or `exec`.
    #[serde(default)]
    pub backend: String,
    /// Whether commands may reach the network (only without a sandbox).
    #[serde(default)]
    pub network_access: bool,
    /// The job's `config` entries (`key=value`), as given.
    #[serde(default)]
    pub config: Vec<String>,
    /// The job's `extra_args`, as given.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// The options whose effect the host cannot work out, each as given
    /// (`profile "fast"`, `config "model_provider=oss"`): only a component
    /// whose entry says `judges_options = true` is asked about a launch with any.
    #[serde(default)]
    pub unjudged: Vec<String>,
}

/// Where in Codex's conversation an agent's request comes from (WIT `origin`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The Codex thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The item that asks.
    pub item_id: String,
}

/// What needs deciding (WIT `request`). The JSON form, used by
/// `codex-jobhost policy test --request`, is `{"launch": {"approval_mode": "suggest"}}`,
/// `{"command": {"command": "...", "cwd": "..."}}`, and so on; fields that
/// may be left out are those with defaults below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// A job is about to start.
    Launch(Launch),
    /// A job is about to start another turn (`job_reply`).
    Reply {
        /// The new turn's prompt.
        prompt: String,
        /// The new turn's number, from 1.
        turn: u32,
        /// The job's settings.
        settings: Launch,
    },
    /// A command is about to run.
    Command {
        /// What the agent meant to run (Codex's `/bin/bash -lc '…'` unwrapped).
        command: String,
        /// `command` split into words, when it is a plain command; else empty.
        #[serde(default)]
        argv: Vec<String>,
        /// The command exactly as Codex sent it.
        #[serde(default)]
        raw: String,
        /// Where.
        cwd: String,
        /// Why, if said.
        #[serde(default)]
        reason: Option<String>,
        /// The network host Codex asks to let it reach, if any.
        #[serde(default)]
        network_host: Option<String>,
        /// Where it comes from.
        #[serde(default)]
        origin: Option<Origin>,
    },
    /// Files are about to change.
    FileChange {
        /// Absolute paths.
        paths: Vec<String>,
        /// What the change does.
        kind: ChangeKind,
        /// Why, if said.
        #[serde(default)]
        reason: Option<String>,
        /// Where it comes from.
        #[serde(default)]
        origin: Option<Origin>,
    },
    /// More permissions are asked for.
    Permissions {
        /// What is asked for.
        permissions: Vec<String>,
        /// Whether network access is asked for.
        #[serde(default)]
        network: bool,
        /// Why, if said.
        #[serde(default)]
        reason: Option<String>,
        /// Where it comes from.
        #[serde(default)]
        origin: Option<Origin>,
    },
    /// An MCP tool is about to be called.
    ToolCall {
        /// The MCP server, as Codex's config names it.
        server: String,
        /// The tool's name on that server.
        tool: String,
        /// The call's arguments, JSON text (`{}` when there are none).
        #[serde(default = "no_arguments")]
        arguments: String,
        /// Where it comes from.
        #[serde(default)]
        origin: Option<Origin>,
    },
}

fn no_arguments() -> String {
    "{}".to_owned()
}

impl Request {
    /// A command request as a test needs one: `command` run in `cwd`, as the
    /// agent gave it (`raw` is the command itself), with nothing else said.
    pub fn command(command: &str, cwd: &str) -> Self {
        Request::Command {
            command: command.to_owned(),
            argv: Vec::new(),
            raw: command.to_owned(),
            cwd: cwd.to_owned(),
            reason: None,
            network_host: None,
            origin: None,
        }
    }
}

/// The answer to a [`Request`] (WIT `decision`). Strictest wins when several
/// policies answer: cancel > decline > ask > accept-for-session > accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Allow once.
    Accept,
    /// Allow for the rest of the session.
    AcceptForSession,
    /// Refuse, with a reason.
    Decline(String),
    /// Refuse and stop the turn, with a reason.
    Cancel(String),
    /// Let the caller decide.
    Ask,
}

impl Decision {
    /// Higher is stricter: cancel > decline > ask > accept-for-session > accept.
    /// The host keeps the strictest of all policies' decisions.
    pub fn strictness(&self) -> u8 {
        match self {
            Decision::Accept => 0,
            Decision::AcceptForSession => 1,
            Decision::Ask => 2,
            Decision::Decline(_) => 3,
            Decision::Cancel(_) => 4,
        }
    }
}

/// Which end of a text a cut keeps (WIT `keep`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The start: an event's string, a field of a result.
    Head,
    /// The end: the output tail of `job_status` (the default in a case file).
    #[default]
    Tail,
}

/// Truncation limits (WIT `limits`). Both at `u32::MAX`: no length limit, redaction only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Characters at most.
    pub max_chars: u32,
    /// Lines at most.
    pub max_lines: u32,
    /// The end to keep.
    #[serde(default)]
    pub keep: Keep,
}

/// One event (WIT `event`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The event type, e.g. `item.completed`.
    pub kind: String,
    /// The payload, JSON text as the host sent it. Read it with
    /// [`Event::payload_as`] into a struct with just the fields you need
    /// (much cheaper than a whole `serde_json::Value`), or [`Event::payload_value`].
    pub payload: String,
}

impl Event {
    /// An event from a type and a JSON value.
    pub fn new(kind: &str, payload: &serde_json::Value) -> Self {
        Event { kind: kind.to_owned(), payload: payload.to_string() }
    }

    /// The payload deserialized into `T`; `None` when it does not fit.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(&self.payload).ok()
    }

    /// The whole payload as a JSON value (`Null` when it is not JSON).
    pub fn payload_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or_default()
    }
}

/// What to do with an event (WIT `action`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Show it.
    Keep,
    /// Leave it out.
    Drop,
    /// Show this instead.
    Replace(Event),
}

/// An `approval-policy` component. Export it with [`export_approval_policy!`].
pub trait ApprovalPolicy {
    /// Its settings, parsed from the `config` table in `jobhost.toml`
    /// (`Default` when there is none).
    type Settings: DeserializeOwned + Default + Send + Sync + 'static;
    /// Decides one request.
    fn decide(settings: &Self::Settings, job: &Job, request: &Request) -> Decision;
}

/// An `output-truncation` component. Export it with [`export_output_truncation!`].
pub trait OutputTruncation {
    /// Its settings, as for [`ApprovalPolicy::Settings`].
    type Settings: DeserializeOwned + Default + Send + Sync + 'static;
    /// Returns `text` fitted to `limits`.
    fn truncate(settings: &Self::Settings, job: &Job, text: &str, limits: Limits) -> String;
}

/// An `event-filter` component. Export it with [`export_event_filter!`].
pub trait EventFilter {
    /// Its settings, as for [`ApprovalPolicy::Settings`].
    type Settings: DeserializeOwned + Default + Send + Sync + 'static;
    /// Decides one event.
    fn filter(settings: &Self::Settings, job: &Job, event: &Event) -> Action;
}

/// Log severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// Writes to the host's log (in a component) or to stderr (in native tests).
pub fn log(level: Level, message: &str) {
    #[cfg(all(target_arch = "wasm32", feature = "approval"))]
    {
        use bindings::approval::codex_jobhost::policy::host as h;
        return h::log(host_level!(h, level), message);
    }
    #[cfg(all(target_arch = "wasm32", feature = "truncation", not(feature = "approval")))]
    {
        use bindings::truncation::codex_jobhost::policy::host as h;
        return h::log(host_level!(h, level), message);
    }
    #[cfg(all(target_arch = "wasm32", feature = "filter", not(any(feature = "approval", feature = "truncation"))))]
    {
        use bindings::filter::codex_jobhost::policy::host as h;
        return h::log(host_level!(h, level), message);
    }
    #[allow(unreachable_code)]
    {
        eprintln!("[{level:?}] {message}");
    }
}

#[allow(unused_macros)]
macro_rules! host_level {
    ($h:ident, $level:expr) => {
        match $level {
            Level::Trace => $h::Level::Trace,
            Level::Debug => $h::Level::Debug,
            Level::Info => $h::Level::Info,
            Level::Warn => $h::Level::Warn,
            Level::Error => $h::Level::Error,
        }
    };
}
#[allow(unused_imports)]
use host_level;

/// Parses settings from the host's `config()` JSON. Invalid settings are a
/// bug in the project file: this panics (the call traps), with a message
/// naming the problem, and the host applies its failure rule.
#[doc(hidden)]
pub fn __parse_settings<T: DeserializeOwned + Default>(json: &str) -> T {
    match json.trim() {
        "" | "{}" => T::default(),
        json => serde_json::from_str(json).unwrap_or_else(|e| panic!("invalid policy settings {json}: {e}")),
    }
}

/// `impl From<JobInfo> for Job` for one world's generated `JobInfo`
/// (each world's bindings have their own copy of the WIT type).
#[allow(unused_macros)]
macro_rules! job_from_wit {
    ($info:ty) => {
        impl From<$info> for Job {
            fn from(j: $info) -> Self {
                Job { job_id: j.job_id, backend: j.backend, cwd: j.cwd, project_root: j.project_root, prompt: j.prompt }
            }
        }
    };
}

/// Glue between the generated `approval-policy` bindings and [`ApprovalPolicy`].
#[cfg(feature = "approval")]
#[doc(hidden)]
pub mod __approval {
    use super::bindings::approval::codex_jobhost::policy::types::JobInfo;
    use super::bindings::approval::exports::codex_jobhost::policy::approval as wit;
    use super::*;

    pub fn config() -> String {
        super::bindings::approval::codex_jobhost::policy::host::config()
    }

    pub fn decide<P: ApprovalPolicy>(settings: &P::Settings, job: JobInfo, request: wit::Request) -> wit::Decision {
        let launch = |l: wit::LaunchRequest| Launch {
            approval_mode: l.approval_mode,
            sandbox: l.sandbox,
            model: l.model,
            backend: l.backend,
            network_access: l.network_access,
            config: l.config,
            extra_args: l.extra_args,
            unjudged: l.unjudged,
        };
        let origin = |o: wit::Origin| Origin { thread_id: o.thread_id, turn_id: o.turn_id, item_id: o.item_id };
        let request = match request {
            wit::Request::Launch(l) => Request::Launch(launch(l)),
            wit::Request::Reply(r) => Request::Reply { prompt: r.prompt, turn: r.turn, settings: launch(r.settings) },
            wit::Request::Command(c) => Request::Command {
                command: c.command,
                argv: c.argv,
                raw: c.raw,
                cwd: c.cwd,
                reason: c.reason,
                network_host: c.network_host,
                origin: c.origin.map(origin),
            },
            wit::Request::FileChange(f) => Request::FileChange {
                paths: f.paths,
                kind: match f.kind {
                    wit::ChangeKind::Add => ChangeKind::Add,
                    wit::ChangeKind::Delete => ChangeKind::Delete,
                    wit::ChangeKind::Update => ChangeKind::Update,
                },
                reason: f.reason,
                origin: f.origin.map(origin),
            },
            wit::Request::Permissions(p) => Request::Permissions {
                permissions: p.permissions,
                network: p.network,
                reason: p.reason,
                origin: p.origin.map(origin),
            },
            wit::Request::ToolCall(t) => Request::ToolCall {
                server: t.server,
                tool: t.tool,
                arguments: t.arguments,
                origin: t.origin.map(origin),
            },
        };
        match P::decide(settings, &job.into(), &request) {
            Decision::Accept => wit::Decision::Accept,
            Decision::AcceptForSession => wit::Decision::AcceptForSession,
            Decision::Decline(r) => wit::Decision::Decline(r),
            Decision::Cancel(r) => wit::Decision::Cancel(r),
            Decision::Ask => wit::Decision::Ask,
        }
    }

    job_from_wit!(JobInfo);
}

/// Glue between the generated `output-truncation` bindings and [`OutputTruncation`].
#[cfg(feature = "truncation")]
#[doc(hidden)]
pub mod __truncation {
    use super::bindings::truncation::codex_jobhost::policy::types::JobInfo;
    use super::bindings::truncation::exports::codex_jobhost::policy::truncation as wit;
    use super::*;

    pub fn config() -> String {
        super::bindings::truncation::codex_jobhost::policy::host::config()
    }

    job_from_wit!(JobInfo);

    pub fn truncate<P: OutputTruncation>(
        settings: &P::Settings,
        job: JobInfo,
        text: String,
        limits: wit::Limits,
    ) -> String {
        let job: Job = job.into();
        let keep = match limits.keep {
            wit::Keep::Head => Keep::Head,
            wit::Keep::Tail => Keep::Tail,
        };
        P::truncate(settings, &job, &text, Limits { max_chars: limits.max_chars, max_lines: limits.max_lines, keep })
    }
}

/// Glue between the generated `event-filter` bindings and [`EventFilter`].
#[cfg(feature = "filter")]
#[doc(hidden)]
pub mod __filter {
    use super::bindings::filter::codex_jobhost::policy::types::JobInfo;
    use super::bindings::filter::exports::codex_jobhost::policy::filter as wit;
    use super::*;

    pub fn config() -> String {
        super::bindings::filter::codex_jobhost::policy::host::config()
    }

    job_from_wit!(JobInfo);

    pub fn filter<P: EventFilter>(settings: &P::Settings, job: JobInfo, event: wit::Event) -> wit::Action {
        let job: Job = job.into();
        match P::filter(settings, &job, &Event { kind: event.kind, payload: event.payload }) {
            Action::Keep => wit::Action::Keep,
            Action::Drop => wit::Action::Drop,
            Action::Replace(e) => wit::Action::Replace(wit::Event { kind: e.kind, payload: e.payload }),
        }
    }
}

/// Exports a type implementing [`ApprovalPolicy`] as the component's `approval` interface.
#[macro_export]
macro_rules! export_approval_policy {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __CodexJobhostApproval;
        impl $crate::bindings::approval::exports::codex_jobhost::policy::approval::Guest for __CodexJobhostApproval {
            fn decide(
                job: $crate::bindings::approval::codex_jobhost::policy::types::JobInfo,
                request: $crate::bindings::approval::exports::codex_jobhost::policy::approval::Request,
            ) -> $crate::bindings::approval::exports::codex_jobhost::policy::approval::Decision {
                static SETTINGS: ::std::sync::OnceLock<<$policy as $crate::ApprovalPolicy>::Settings> =
                    ::std::sync::OnceLock::new();
                let settings = SETTINGS.get_or_init(|| $crate::__parse_settings(&$crate::__approval::config()));
                $crate::__approval::decide::<$policy>(settings, job, request)
            }
        }
        // Native builds (tests) export nothing: only a component has these names.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::approval::export_approval_world!(__CodexJobhostApproval);
    };
}

/// Exports a type implementing [`OutputTruncation`] as the component's `truncation` interface.
#[macro_export]
macro_rules! export_output_truncation {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __CodexJobhostTruncation;
        impl $crate::bindings::truncation::exports::codex_jobhost::policy::truncation::Guest
            for __CodexJobhostTruncation
        {
            fn truncate(
                job: $crate::bindings::truncation::codex_jobhost::policy::types::JobInfo,
                text: String,
                limits: $crate::bindings::truncation::exports::codex_jobhost::policy::truncation::Limits,
            ) -> String {
                static SETTINGS: ::std::sync::OnceLock<<$policy as $crate::OutputTruncation>::Settings> =
                    ::std::sync::OnceLock::new();
                let settings = SETTINGS.get_or_init(|| $crate::__parse_settings(&$crate::__truncation::config()));
                $crate::__truncation::truncate::<$policy>(settings, job, text, limits)
            }
        }
        // Native builds (tests) export nothing: only a component has these names.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::truncation::export_truncation_world!(__CodexJobhostTruncation);
    };
}

/// Exports a type implementing [`EventFilter`] as the component's `filter` interface.
#[macro_export]
macro_rules! export_event_filter {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __CodexJobhostFilter;
        impl $crate::bindings::filter::exports::codex_jobhost::policy::filter::Guest for __CodexJobhostFilter {
            fn filter(
                job: $crate::bindings::filter::codex_jobhost::policy::types::JobInfo,
                event: $crate::bindings::filter::exports::codex_jobhost::policy::filter::Event,
            ) -> $crate::bindings::filter::exports::codex_jobhost::policy::filter::Action {
                static SETTINGS: ::std::sync::OnceLock<<$policy as $crate::EventFilter>::Settings> =
                    ::std::sync::OnceLock::new();
                let settings = SETTINGS.get_or_init(|| $crate::__parse_settings(&$crate::__filter::config()));
                $crate::__filter::filter::<$policy>(settings, job, event)
            }
        }
        // Native builds (tests) export nothing: only a component has these names.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::filter::export_filter_world!(__CodexJobhostFilter);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct S {
        #[serde(default)]
        allow: Vec<String>,
    }

    #[test]
    fn settings_parse_or_default() {
        assert_eq!(__parse_settings::<S>("{}"), S::default());
        assert_eq!(__parse_settings::<S>(""), S::default());
        assert_eq!(__parse_settings::<S>(r#"{"allow":["ls"]}"#).allow, vec!["ls"]);
    }

    #[test]
    #[should_panic(expected = "invalid policy settings")]
    fn bad_settings_are_loud() {
        let _: S = __parse_settings(r#"{"allow": 5}"#);
    }

    #[test]
    fn requests_have_a_json_form() {
        let r: Request =
            serde_json::from_str(r#"{"command": {"command": "ls", "cwd": "/w", "reason": null}}"#).unwrap();
        let mut ls = Request::command("ls", "/w");
        if let Request::Command { raw, .. } = &mut ls {
            raw.clear(); // left out of the JSON: the default
        }
        assert_eq!(r, ls);
        let r: Request = serde_json::from_str(r#"{"launch": {"approval_mode": "suggest"}}"#).unwrap();
        assert_eq!(r, Request::Launch(Launch { approval_mode: "suggest".into(), ..Launch::default() }));
        assert_eq!(serde_json::to_value(Decision::Decline("no".into())).unwrap(), serde_json::json!({"decline": "no"}));
    }
}
