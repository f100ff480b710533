//! The one error type that callers can act on: their input was wrong.

use std::fmt;

/// A request was refused because of a value the caller gave. The message names
/// the value and what was expected; the MCP layer returns it as a tool result
/// with `isError: true`, the CLI prints it and exits with status 2.
///
/// Every other failure is an `anyhow::Error` from the host's own I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput(String);

impl InvalidInput {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        InvalidInput(message.into())
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// Shorthand: `Err(invalid(format!(...)))?` inside functions returning `anyhow::Result`.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    InvalidInput::new(message).into()
}
