//! The named bearer tokens `serve --http` accepts, in
//! `$CODEX_JOBHOST_HOME/http-tokens.toml` (mode 0600):
//!
//! ```toml
//! [[token]]
//! name = "ci"
//! access = "read"              # or "full"
//! sha256 = "9f86d08…"          # of the token; the token itself is shown once, by `http token add`
//! created_at = "2026-12-02T02:50:00Z"
//! ```
//!
//! A token is `cjh_` and 64 hex digits (32 bytes from the kernel's random
//! source). A request's token is hashed and compared with every entry's hash
//! in constant time. The file is read on every request, so a token revoked
//! is refused from the next request on, by every running server.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::invalid;
use crate::home::{HTTP_TOKENS, HTTP_TOKENS_LOCK};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// The read tools only: `job_status`, `job_events`, `job_list`, `job_wait`,
    /// `job_notifications`, and `tasks/get`.
    Read,
    /// Every tool.
    Full,
}

/// One token as the file keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Its name, shown as `started_by` on the jobs it starts.
    pub name: String,
    /// What it may do.
    pub access: Access,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// When it was added, RFC 3339 UTC.
    pub created_at: String,
}

#[derive(Default, Serialize, Deserialize)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

/// The caller a request's token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; `None` under `--no-auth`.
    pub name: Option<String>,
    /// What it may do.
    pub access: Access,
}

impl Caller {
    /// Who answered an approval request through `via` (a tool, the page), for
    /// the answer's `by` and the decision's `decided_by`: `via`, and the
    /// token's name when there is one, e.g. `job_approve (token alice)`.
    pub fn answering(caller: Option<&Caller>, via: &str) -> String {
        match caller.and_then(|c| c.name.as_deref()) {
            Some(name) => format!("{via} (token {name})"),
            None => via.to_owned(),
        }
    }
}

/// The home's token file.
#[derive(Clone, Debug)]
pub struct Tokens {
    path: PathBuf,
    lock: PathBuf,
}

impl Tokens {
    /// The tokens of the home at `home`.
    pub fn of(home: &Path) -> Self {
        Tokens { path: home.join(HTTP_TOKENS), lock: home.join(HTTP_TOKENS_LOCK) }
    }

    /// Every token, in the order they were added.
    ///
    /// Errors: the file cannot be read or is not a token file.
    pub fn list(&self) -> Result<Vec<TokenEntry>> {
        Ok(self.read()?.token)
    }

    /// Adds a token named `name` and returns it: the only time it is shown.
    ///
    /// Errors: [`crate::InvalidInput`] for a name that is not 1 to 64 of
    /// `A-Z a-z 0-9 . _ -`, or one already taken; I/O errors.
    pub fn add(&self, name: &str, access: Access) -> Result<String> {
        check_name(name)?;
        let mut random = [0u8; 32];
        fill_random(&mut random)?;
        let token = format!("cjh_{}", hex(&random));
        self.change(|file| {
            if file.token.iter().any(|t| t.name == name) {
                return Err(invalid(format!("a token named {name:?} exists already: revoke it first")));
            }
            file.token.push(TokenEntry {
                name: name.to_owned(),
                access,
                sha256: hex(&Sha256::digest(token.as_bytes())),
                created_at: jiff::Timestamp::now().to_string(),
            });
            Ok(())
        })?;
        Ok(token)
    }

    /// Removes the token named `name`.
    ///
    /// Errors: [`crate::InvalidInput`] when there is none by that name (naming those there are).
    pub fn revoke(&self, name: &str) -> Result<()> {
        self.change(|file| {
            let before = file.token.len();
            file.token.retain(|t| t.name != name);
            if file.token.len() == before {
                let names: Vec<&str> = file.token.iter().map(|t| t.name.as_str()).collect();
                return Err(invalid(format!("no token named {name:?}; there are: {}", names.join(", "))));
            }
            Ok(())
        })
    }

    /// The caller `token` names, if any entry's hash is its hash.
    ///
    /// Errors: the file cannot be read (a request is then refused: fail closed).
    pub fn verify(&self, token: &str) -> Result<Option<Caller>> {
        let hash = hex(&Sha256::digest(token.as_bytes()));
        let file = self.read()?;
        let mut found = None;
        // Every entry is compared, whichever matches.
        for entry in file.token {
            if bool::from(entry.sha256.as_bytes().ct_eq(hash.as_bytes())) {
                found = Some(Caller { name: Some(entry.name), access: entry.access });
            }
        }
        Ok(found)
    }

    fn read(&self) -> Result<TokenFile> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not a token file", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Rewrites the file with `change` made, under its lock, atomically (a
    /// temporary file of mode 0600 renamed over it).
    fn change(&self, change: impl FnOnce(&mut TokenFile) -> Result<()>) -> Result<()> {
        use std::io::Write;
        let dir = self.path.parent().context("the token file has no folder")?;
        std::fs::create_dir_all(dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .with_context(|| format!("cannot open {}", self.lock.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let mut file = self.read()?;
        change(&mut file)?;
        // tempfile makes the file with mode 0600.
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        temp.write_all(toml::to_string(&file)?.as_bytes())?;
        temp.as_file().sync_all()?;
        temp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(invalid(format!("invalid token name {name:?}: expected 1 to 64 of A-Z a-z 0-9 . _ -")));
    }
    Ok(())
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        filled += rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_added_verifies_until_revoked_and_only_its_hash_is_kept() -> Result<()> {
        let home = tempfile::tempdir()?;
        let tokens = Tokens::of(home.path());
        let read = tokens.add("ci", Access::Read)?;
        let full = tokens.add("alice", Access::Full)?;
        assert!(read.starts_with("cjh_") && read.len() == 68, "{read}");
        assert_eq!(tokens.verify(&read)?, Some(Caller { name: Some("ci".into()), access: Access::Read }));
        assert_eq!(tokens.verify(&full)?.map(|c| c.access), Some(Access::Full));
        assert_eq!(tokens.verify("cjh_wrong")?, None);
        let text = std::fs::read_to_string(home.path().join(HTTP_TOKENS))?;
        assert!(!text.contains(&read[4..]) && !text.contains(&full[4..]), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join(HTTP_TOKENS))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let again = tokens.add("ci", Access::Full).unwrap_err().to_string();
        assert!(again.contains("exists already"), "{again}");
        let bad = tokens.add("a b", Access::Full).unwrap_err().to_string();
        assert!(bad.contains("invalid token name \"a b\""), "{bad}");
        tokens.revoke("ci")?;
        assert_eq!(tokens.verify(&read)?, None);
        let gone = tokens.revoke("ci").unwrap_err().to_string();
        assert!(gone.contains("no token named \"ci\"; there are: alice"), "{gone}");
        Ok(())
    }
}
