//! Ways of driving Codex, each with a host side (validate a start, build the
//! turn) and a supervisor-side driver (talk to the running agent, through
//! the turn runtime's [`Driver`] interface): `exec` (`codex exec --json`, one
//! process a turn) and `app_server` (`codex app-server`, JSON-RPC over stdio,
//! approvals decided by policy). This file is the one place a
//! [`BackendKind`] maps to its code.

pub mod app_server;
pub mod codex_cli;
pub mod exec;
pub mod gate;
pub mod hooks;
pub mod mailbox;

pub use codex_cli::{Capabilities, CodexCli};

use anyhow::Result;

use crate::error::InvalidInput;
use crate::job::runtime::{Driven, Driver, Turn};
use crate::job::{BackendKind, JobMeta, JobOptions};

/// The backend a job runs on: `requested` (`auto`, `exec`, `app-server`;
/// none is `auto`), where `auto` is `app-server` when the installed Codex has it.
///
/// Errors: [`InvalidInput`] for another name, or `app-server` with a Codex
/// that lacks it (naming its version).
pub fn choose(requested: Option<&str>, cli: &CodexCli) -> Result<BackendKind, InvalidInput> {
    match requested.unwrap_or("auto") {
        "auto" if cli.capabilities.app_server => Ok(BackendKind::AppServer),
        "auto" | "exec" => Ok(BackendKind::Exec),
        "app-server" if cli.capabilities.app_server => Ok(BackendKind::AppServer),
        "app-server" => Err(InvalidInput::new(format!(
            "backend \"app-server\" is not supported by the installed Codex CLI {} ({}): it has no `codex app-server`; use backend \"exec\"",
            cli.version,
            cli.program.display()
        ))),
        other => Err(InvalidInput::new(format!(
            "invalid backend {}: expected auto, exec or app-server",
            crate::job::id::quote_short(other)
        ))),
    }
}

/// Checks a job's options for `backend` against the installed Codex, before anything runs.
///
/// Errors: [`InvalidInput`] naming the option and the value (see [`exec::validate`], [`app_server::validate`]).
pub fn validate(backend: BackendKind, options: &JobOptions, cli: &CodexCli) -> Result<(), InvalidInput> {
    exec::validate(options, cli)?;
    if backend == BackendKind::AppServer {
        app_server::validate(options)?;
    }
    if options.approval_timeout_s == Some(0) {
        return Err(InvalidInput::new("invalid approval_timeout_s 0: expected a number of seconds above 0, or none"));
    }
    Ok(())
}

/// The agent's arguments (after the program) for the job's current turn on its backend.
///
/// Errors: as [`exec::command_args`].
pub fn command_args(meta: &JobMeta, cli: &CodexCli) -> Result<Vec<String>, InvalidInput> {
    Ok(match meta.backend {
        BackendKind::AppServer => app_server::command_args(meta),
        BackendKind::Exec => {
            exec::command_args(meta, cli)?.into_iter().map(|a| a.to_string_lossy().into_owned()).collect()
        }
    })
}

/// The supervisor-side driver of a backend: what `codex-jobhost supervise`
/// hands the turn runtime ([`crate::job::supervisor::run`]).
pub struct BackendDriver(pub BackendKind);

impl Driver for BackendDriver {
    async fn drive(&self, turn: &mut Turn<'_>) -> Result<Driven> {
        match self.0 {
            BackendKind::Exec => exec::drive(turn).await,
            BackendKind::AppServer => app_server::drive(turn).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(app_server: bool) -> CodexCli {
        CodexCli {
            located: "/c".into(),
            program: "/c".into(),
            env: vec![],
            version: "0.125.0".into(),
            capabilities: Capabilities { app_server, ..Capabilities::default() },
        }
    }

    #[test]
    fn auto_is_app_server_where_codex_has_it() {
        assert_eq!(choose(None, &cli(true)).unwrap(), BackendKind::AppServer);
        assert_eq!(choose(Some("auto"), &cli(false)).unwrap(), BackendKind::Exec);
        assert_eq!(choose(Some("exec"), &cli(true)).unwrap(), BackendKind::Exec);
        let err = choose(Some("app-server"), &cli(false)).unwrap_err().to_string();
        assert!(err.contains("0.125.0") && err.contains("no `codex app-server`"), "{err}");
        let err = choose(Some("mcp"), &cli(true)).unwrap_err().to_string();
        assert!(err.contains("\"mcp\"") && err.contains("auto, exec or app-server"), "{err}");
    }

    #[test]
    fn exec_flags_are_refused_on_app_server() {
        let o = |f: fn(&mut JobOptions)| {
            let mut o = JobOptions { approval_mode: "suggest".into(), ..JobOptions::default() };
            f(&mut o);
            o
        };
        let c = cli(true);
        assert!(validate(BackendKind::AppServer, &o(|_| {}), &c).is_ok());
        let err = validate(BackendKind::AppServer, &o(|o| o.extra_args = vec!["--yolo".into()]), &c).unwrap_err();
        assert!(err.to_string().contains("extra_args"), "{err}");
        let err = validate(BackendKind::AppServer, &o(|o| o.approval_timeout_s = Some(0)), &c).unwrap_err();
        assert!(err.to_string().contains("approval_timeout_s 0"), "{err}");
    }
}
