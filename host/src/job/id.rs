//! Job ids: UUID v7, so that ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::InvalidInput;

/// A job's id: a UUID v7 in its hyphenated lower-case form
/// (`0192f5d2-6a1b-7c3d-8e4f-0123456789ab`), which is also the name of the
/// job's directory under `jobs/`.
///
/// Only [`JobId::new`] and [`JobId::parse`] make one, so a `JobId` is always a
/// single safe path component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        JobId(Uuid::now_v7())
    }

    /// Validates an id that came from a caller.
    ///
    /// Errors: [`InvalidInput`] naming the value (shortened when long) unless it
    /// is exactly a hyphenated UUID v7 (36 characters).
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let refuse = || {
            InvalidInput::new(format!(
                "invalid job_id {}: expected a job id as returned by job_start, a UUID v7 such as 0192f5d2-6a1b-7c3d-8e4f-0123456789ab",
                quote_short(text)
            ))
        };
        // Only the canonical hyphenated form: no braces, URNs or upper case,
        // so that one job has exactly one spelling and one directory.
        if text.len() != 36 || text.bytes().any(|b| !(b.is_ascii_hexdigit() || b == b'-') || b.is_ascii_uppercase()) {
            return Err(refuse());
        }
        let uuid = Uuid::try_parse(text).map_err(|_| refuse())?;
        if uuid.get_version_num() != 7 {
            return Err(refuse());
        }
        Ok(JobId(uuid))
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn created_unix_ms(&self) -> u64 {
        let (secs, nanos) = self.0.get_timestamp().map(|t| t.to_unix()).unwrap_or((0, 0));
        secs * 1000 + u64::from(nanos) / 1_000_000
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobId::parse(s)
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        JobId::parse(&value)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.to_string()
    }
}

/// `"value"` as JSON would quote it, cut to 64 characters so a 10 kB input
/// does not become a 10 kB error message.
pub(crate) fn quote_short(text: &str) -> String {
    const MAX: usize = 64;
    let count = text.chars().count();
    if count <= MAX {
        serde_json::to_string(text).unwrap_or_default()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{}… ({count} characters)", serde_json::to_string(&head).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_parse_back_and_sort_by_time() {
        let a = JobId::new();
        let b = JobId::new();
        assert_eq!(JobId::parse(&a.to_string()).unwrap(), a);
        assert!(a < b);
        assert!(a.created_unix_ms() > 1_700_000_000_000);
    }

    #[test]
    fn refuses_everything_that_is_not_a_v7_id() {
        let long = "a".repeat(10_000);
        for bad in [
            "",
            "../x",
            "/etc",
            "/etc/passwd",
            ".",
            "..",
            "abc\0def",
            long.as_str(),
            "0192F5D2-6A1B-7C3D-8E4F-0123456789AB",   // upper case
            "{0192f5d2-6a1b-7c3d-8e4f-0123456789ab}", // braces
            "0192f5d26a1b7c3d8e4f0123456789ab",       // simple form
            "0192f5d2-6a1b-4c3d-8e4f-0123456789ab",   // v4
            "0192f5d2-6a1b-7c3d-8e4f-0123456789a/",
        ] {
            let err = JobId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid job_id"), "{bad:?}: {err}");
            assert!(err.len() < 300, "error for a long id stays short: {}", err.len());
        }
        assert!(JobId::parse("0192f5d2-6a1b-7c3d-8e4f-0123456789ab").is_ok());
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let q = quote_short(&"x".repeat(1000));
        assert!(q.ends_with("(1000 characters)"), "{q}");
        assert_eq!(quote_short("a\0b"), "\"a\\u0000b\"");
    }
}
