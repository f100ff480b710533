//! The notification feed, `<home>/notifications.jsonl`: one JSON object a
//! line, a [`Notification`] for every turn that ended or began to wait for an
//! answer. Appended under an exclusive `flock` and fsynced; read by byte
//! cursor (`job_notifications`).

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use cap_std::fs::{Dir, File, OpenOptions};
use serde::{Deserialize, Serialize};

use super::JobStatus;
use crate::error::invalid;
use crate::home::FEED;

/// One line of the notification feed: a turn of a job reached a terminal
/// status, or began to wait for an answer to an approval request (`input_required`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Notification {
    /// The job.
    pub job_id: String,
    /// `completed`, `failed`, `cancelled` or `input_required`.
    pub status: JobStatus,
    /// The turn, from 0.
    pub turn: u32,
    /// The agent's exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it ended (for `input_required`: began to wait), RFC 3339 UTC.
    pub finished_at: String,
}

/// The home's notification feed.
#[derive(Debug)]
pub struct Feed {
    home: Dir,
    path: PathBuf,
}

/// The feed opened for appending, under its lock (see [`Feed::with_lock`]).
pub struct LockedFeed<'a>(&'a File);

impl Feed {
    /// The feed of the home open as `home` (at `root`, for messages).
    pub(super) fn new(home: Dir, root: &std::path::Path) -> Self {
        Feed { home, path: root.join(FEED) }
    }

    /// Appends one line under an exclusive `flock` on the feed, fsynced. A
    /// torn last line (a writer killed mid-write) is ended first, so it costs
    /// only itself: readers skip it, and the new line stays whole.
    pub fn append(&self, note: &Notification) -> Result<()> {
        self.with_lock(|feed| feed.append(note).map(drop))
    }

    /// Runs `f` on the feed, opened for appending, under an exclusive `flock` on it.
    pub fn with_lock<T>(&self, f: impl FnOnce(&LockedFeed) -> Result<T>) -> Result<T> {
        let path = || self.path.display().to_string();
        let feed = self
            .home
            .open_with(FEED, OpenOptions::new().read(true).append(true).create(true))
            .with_context(|| format!("cannot open {}", path()))?;
        rustix::fs::flock(&feed, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("cannot lock {}", path()))?;
        let result = f(&LockedFeed(&feed)).with_context(|| format!("cannot append to {}", path()));
        let _ = rustix::fs::flock(&feed, rustix::fs::FlockOperation::Unlock);
        result
    }

    /// Reads up to `limit` notifications after the byte offset `cursor`
    /// (0 = from the start) and returns them with the cursor to pass next.
    ///
    /// Errors: [`crate::InvalidInput`] when the cursor is past the end of the feed
    /// or not at the start of a line (i.e. not a cursor this feed returned).
    pub fn read(&self, cursor: u64, limit: usize) -> Result<(Vec<Notification>, u64)> {
        let mut file = match self.home.open(FEED) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if cursor != 0 {
                    return Err(invalid(format!(
                        "invalid cursor {cursor}: the notification feed is empty; expected 0"
                    )));
                }
                return Ok((Vec::new(), 0));
            }
            Err(e) => return Err(e).context("cannot open the notification feed"),
        };
        let len = file.metadata()?.len();
        let bad_cursor = || {
            invalid(format!(
                "invalid cursor {cursor}: expected 0 or a cursor returned by job_notifications (the feed holds {len} bytes)"
            ))
        };
        if cursor > len {
            return Err(bad_cursor());
        }
        if cursor > 0 {
            let mut before = [0u8; 1];
            file.seek(SeekFrom::Start(cursor - 1))?;
            file.read_exact(&mut before)?;
            if before[0] != b'\n' {
                return Err(bad_cursor());
            }
        }
        file.seek(SeekFrom::Start(cursor))?;
        let mut reader = BufReader::new(file);
        let (mut notes, mut next) = (Vec::new(), cursor);
        let mut line = Vec::new();
        while notes.len() < limit {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break; // end, or a line still being written
            }
            next += n as u64;
            if let Ok(note) = serde_json::from_slice(&line) {
                notes.push(note);
            }
        }
        Ok((notes, next))
    }
}

impl LockedFeed<'_> {
    /// Ends a torn last line (a writer killed mid-write) with a newline, so
    /// it costs only itself; returns where the next line starts.
    pub fn end_torn_line(&self) -> Result<u64> {
        let mut feed = self.0;
        let len = feed.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            feed.seek(SeekFrom::Start(len - 1))?;
            feed.read_exact(&mut last)?;
            if last[0] != b'\n' {
                feed.write_all(b"\n")?;
                return Ok(len + 1);
            }
        }
        Ok(len)
    }

    /// Appends `note` after ending a torn last line, fsynced; returns the
    /// offset the line starts at.
    pub fn append(&self, note: &Notification) -> Result<u64> {
        let start = self.end_torn_line()?;
        let mut line = serde_json::to_vec(note)?;
        line.push(b'\n');
        let mut feed = self.0;
        feed.write_all(&line)?;
        feed.sync_data()?;
        Ok(start)
    }

    /// Whether the line at `offset` is the terminal notification of `job_id`'s `turn`.
    pub fn has(&self, offset: u64, job_id: &str, turn: u32) -> Result<bool> {
        let mut feed = self.0;
        if offset >= feed.metadata()?.len() {
            return Ok(false);
        }
        feed.seek(SeekFrom::Start(offset))?;
        let mut line = Vec::new();
        BufReader::new(feed).read_until(b'\n', &mut line)?;
        let ends = |n: &Notification| n.job_id == job_id && n.turn == turn && n.status.is_terminal();
        Ok(serde_json::from_slice::<Notification>(&line).is_ok_and(|n| ends(&n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, JobStore};
    use jiff::Timestamp;

    /// A completed turn's notification for a new job.
    fn note(turn: u32) -> Notification {
        Notification {
            job_id: JobId::new().to_string(),
            status: JobStatus::Completed,
            turn,
            exit_code: Some(0),
            error: None,
            finished_at: Timestamp::now().to_string(),
        }
    }

    #[test]
    fn a_torn_last_notification_costs_only_itself() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        store.feed().append(&note(0)).unwrap();
        let feed = home.path().join("notifications.jsonl");
        std::fs::OpenOptions::new().append(true).open(&feed).unwrap().write_all(b"{\"job_id\":\"to").unwrap();
        store.feed().append(&note(1)).unwrap();
        let (notes, _) = store.feed().read(0, 10).unwrap();
        assert_eq!(notes.iter().map(|n| n.turn).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn notifications_are_read_by_byte_cursor() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let feed = store.feed();
        assert_eq!(feed.read(0, 10).unwrap(), (vec![], 0));
        feed.append(&note(0)).unwrap();
        feed.append(&note(1)).unwrap();
        let (first, c1) = feed.read(0, 1).unwrap();
        assert_eq!(first[0].turn, 0);
        let (rest, c2) = feed.read(c1, 10).unwrap();
        assert_eq!(rest.iter().map(|n| n.turn).collect::<Vec<_>>(), vec![1]);
        assert_eq!(feed.read(c2, 10).unwrap(), (vec![], c2));
        assert!(feed.read(c1 + 1, 10).unwrap_err().to_string().contains("invalid cursor"));
        assert!(feed.read(c2 + 100, 10).is_err());
    }
}
