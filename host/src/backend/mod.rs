//! Ways of driving Codex. One so far: `exec` (`codex exec --json`, one process a turn).

pub mod codex_cli;
pub mod exec;

pub use codex_cli::{Capabilities, CodexCli};
