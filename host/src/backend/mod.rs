//! Ways of driving Codex, each with a host side (validate a start, build the
//! turn) and a supervisor-side driver (talk to the running agent):
//! `exec` (`codex exec --json`, one process a turn) and `app_server`
//! (`codex app-server`, JSON-RPC over stdio, approvals decided by policy).

pub mod app_server;
pub mod codex_cli;
pub mod exec;

pub use codex_cli::{Capabilities, CodexCli};
