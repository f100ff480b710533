//! codex-jobhost: run the OpenAI Codex CLI as durable background jobs, over MCP.
//!
//! [`JobHost`] is the façade: the MCP server ([`mcp`]) and the CLI (`main.rs`)
//! are thin layers over it. Jobs live on disk under the job home
//! (`$CODEX_JOBHOST_HOME`, default `~/.codex-jobhost`), each turn run by a
//! detached supervisor process ([`job::supervisor`]), so jobs outlive the host.

#![warn(missing_docs)]

pub mod args;
pub mod backend;
pub mod config;
pub mod error;
pub mod home;
pub mod host;
pub mod job;
pub mod mcp;
pub mod policy;

pub use config::HostConfig;
pub use error::InvalidInput;
pub use host::JobHost;

/// A fail point for the crash tests: with the `failpoints` feature and
/// `FAILPOINTS=<name>=return`, the process aborts here, as a crash would.
/// Without the feature it is nothing.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        {
            let _: Option<()> = fail::eval($name, |_| -> () { std::process::abort() });
        }
    };
}

/// A fail point that fails a write: with the `failpoints` feature and
/// `FAILPOINTS=<name>=return`, evaluates to `Err(ENOSPC)` (a full disk), or
/// to `Err` of the given `rustix::io::Errno`, else to `Ok(())`. Without the
/// feature it is always `Ok(())`.
#[macro_export]
macro_rules! failpoint_io {
    ($name:literal) => {
        $crate::failpoint_io!($name, rustix::io::Errno::NOSPC)
    };
    ($name:literal, $errno:expr) => {{
        #[cfg(feature = "failpoints")]
        let result = match fail::eval($name, |_| ()) {
            Some(()) => Err(std::io::Error::from($errno)),
            None => Ok(()),
        };
        #[cfg(not(feature = "failpoints"))]
        let result: std::io::Result<()> = Ok(());
        result
    }};
}
