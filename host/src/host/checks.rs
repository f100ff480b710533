//! Checks of a caller's input that several tools share; each error names
//! the bad value and what was expected.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::tools::{PROMPT_MAX_BYTES, RESULT_MAX_CHARS_LIMIT};
use crate::error::{InvalidInput, invalid};
use crate::job::id::quote_short;

/// A caller's `limit` (how many items a page holds): `default` when absent.
///
/// Errors: [`InvalidInput`] for a limit outside 1 to 1000.
pub(super) fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, InvalidInput> {
    match limit.unwrap_or(default) {
        n @ 1..=1000 => Ok(n),
        n => Err(InvalidInput::new(format!("invalid limit {n}: expected 1 to 1000"))),
    }
}

/// Checks a caller's `max_chars`.
pub(super) fn check_max_chars(max_chars: Option<usize>) -> Result<()> {
    match max_chars {
        Some(n) if !(2_000..=RESULT_MAX_CHARS_LIMIT).contains(&n) => {
            Err(invalid(format!("invalid max_chars {n}: expected 2000 to {RESULT_MAX_CHARS_LIMIT}")))
        }
        _ => Ok(()),
    }
}

/// Checks the size of a prompt (`job_start`, `job_reply`).
pub(super) fn check_prompt_size(prompt: &str) -> Result<(), InvalidInput> {
    if prompt.len() > PROMPT_MAX_BYTES {
        return Err(InvalidInput::new(format!(
            "invalid prompt: {} bytes; expected at most {PROMPT_MAX_BYTES} bytes (1 MiB)",
            prompt.len()
        )));
    }
    Ok(())
}

/// `cwd` as given, once it is known to be an absolute path to a directory.
pub(super) fn checked_cwd(cwd: &str) -> Result<PathBuf, InvalidInput> {
    let path = Path::new(cwd);
    let shown = quote_short(cwd);
    if cwd.is_empty() || !path.is_absolute() {
        return Err(InvalidInput::new(format!("invalid cwd {shown}: expected an absolute path")));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(path.to_path_buf()),
        Ok(_) => Err(InvalidInput::new(format!("invalid cwd {shown}: not a directory"))),
        Err(e) => Err(InvalidInput::new(format!("invalid cwd {shown}: {e}"))),
    }
}
