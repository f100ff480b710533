//! The on-disk job store under the home directory.
//!
//! ```text
//! <home>/notifications.jsonl        the feed of finished turns, one JSON object a line
//! <home>/jobs/<job_id>/meta.json    JobMeta, replaced atomically
//! <home>/jobs/<job_id>/events.jsonl Event, one JSON object a line, appended
//! <home>/jobs/<job_id>/events.idx   byte offset of each event line, u64 little-endian
//! <home>/jobs/<job_id>/output.log   the agent's raw stdout and stderr lines
//! <home>/jobs/<job_id>/supervisor.log the supervisor's own log
//! ```
//!
//! Every access goes through `cap_std::fs::Dir` handles opened on `jobs/` and
//! on one job's directory, and job directories are named only by a validated
//! [`JobId`], so nothing a caller sends can reach outside.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{Event, STATUS_EVENT};
use super::{JobId, JobMeta, JobStatus};
use crate::error::invalid;

const META: &str = "meta.json";
const EVENTS: &str = "events.jsonl";
const EVENTS_INDEX: &str = "events.idx";
const OUTPUT: &str = "output.log";
const FEED: &str = "notifications.jsonl";
const SUPERVISOR_LOG: &str = "supervisor.log";

/// Bytes of an entry in `events.idx`.
const INDEX_ENTRY: u64 = 8;

/// The home directory's job store: `jobs/` and the notification feed.
#[derive(Debug)]
pub struct JobStore {
    root: PathBuf,
    home: Dir,
    jobs: Dir,
}

impl JobStore {
    /// Opens (creating if needed) `<home>` and `<home>/jobs`.
    ///
    /// Errors: the home cannot be created or opened; the message names the path.
    pub fn open(home: &Path) -> Result<Self> {
        std::fs::create_dir_all(home.join("jobs"))
            .with_context(|| format!("cannot create the job home {}", home.display()))?;
        let home_dir = Dir::open_ambient_dir(home, ambient_authority())
            .with_context(|| format!("cannot open the job home {}", home.display()))?;
        let jobs = home_dir.open_dir("jobs").with_context(|| format!("cannot open {}/jobs", home.display()))?;
        Ok(JobStore { root: home.to_path_buf(), home: home_dir, jobs })
    }

    /// The home directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory of a new job and writes its first `meta.json`.
    pub fn create(&self, meta: &JobMeta) -> Result<JobDir> {
        let name = meta.id.to_string();
        self.jobs.create_dir(&name).with_context(|| format!("cannot create job directory {name}"))?;
        let job = self.open_existing(meta.id)?;
        job.write_meta(meta)?;
        Ok(job)
    }

    /// Opens an existing job's directory.
    ///
    /// Errors: [`crate::InvalidInput`] "no job with id …" when there is none.
    pub fn job(&self, id: JobId) -> Result<JobDir> {
        match self.jobs.open_dir(id.to_string()) {
            Ok(_) => self.open_existing(id),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(invalid(format!("no job with id {id} in {}", self.root.join("jobs").display())))
            }
            Err(e) => Err(e).with_context(|| format!("cannot open job {id}")),
        }
    }

    fn open_existing(&self, id: JobId) -> Result<JobDir> {
        let dir = self.jobs.open_dir(id.to_string()).with_context(|| format!("cannot open job {id}"))?;
        Ok(JobDir { id, dir, path: self.root.join("jobs").join(id.to_string()) })
    }

    /// The ids of all jobs on disk, newest first. Entries that are not job
    /// directories are ignored.
    pub fn job_ids(&self) -> Result<Vec<JobId>> {
        let mut ids = Vec::new();
        for entry in self.jobs.entries().context("cannot list the jobs directory")? {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| JobId::parse(n).ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Appends one line to the notification feed, in a single `write` on a file
    /// opened for appending, so concurrent supervisors never interleave lines.
    pub fn append_notification(&self, note: &Notification) -> Result<()> {
        let mut line = serde_json::to_vec(note)?;
        line.push(b'\n');
        let mut feed = self.home.open_with(FEED, OpenOptions::new().append(true).create(true))?;
        feed.write_all(&line)?;
        feed.sync_data()?;
        Ok(())
    }

    /// Reads up to `limit` notifications after the byte offset `cursor`
    /// (0 = from the start) and returns them with the cursor to pass next.
    ///
    /// Errors: [`crate::InvalidInput`] when the cursor is past the end of the feed
    /// or not at the start of a line (i.e. not a cursor this feed returned).
    pub fn read_notifications(&self, cursor: u64, limit: usize) -> Result<(Vec<Notification>, u64)> {
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

/// One line of the notification feed: a turn of a job reached a terminal status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Notification {
    /// The job.
    pub job_id: String,
    /// `completed`, `failed` or `cancelled`.
    pub status: JobStatus,
    /// The turn that ended, from 0.
    pub turn: u32,
    /// The agent's exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When, RFC 3339 UTC.
    pub finished_at: String,
}

/// One job's directory.
#[derive(Debug)]
pub struct JobDir {
    id: JobId,
    dir: Dir,
    path: PathBuf,
}

impl JobDir {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Absolute path of the directory (for the supervisor's command line and messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `meta.json`.
    pub fn read_meta(&self) -> Result<JobMeta> {
        let bytes = self.dir.read(META).with_context(|| format!("cannot read {}/{META}", self.path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}/{META} is not valid job metadata", self.path.display()))
    }

    /// Replaces `meta.json` atomically: a temporary file in the same directory,
    /// written, fsynced, then renamed over the old one. Readers see the old or
    /// the new file, never a mix.
    pub fn write_meta(&self, meta: &JobMeta) -> Result<()> {
        let mut tmp = cap_tempfile::TempFile::new(&self.dir)?;
        serde_json::to_writer_pretty(tmp.as_file_mut(), meta)?;
        tmp.as_file_mut().write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        tmp.replace(META).with_context(|| format!("cannot replace {}/{META}", self.path.display()))?;
        Ok(())
    }

    /// Opens `output.log` for appending the agent's raw output.
    pub fn output_log(&self) -> Result<File> {
        Ok(self.dir.open_with(OUTPUT, OpenOptions::new().append(true).create(true))?)
    }

    /// Up to `max` bytes of `output.log` from byte `offset`, and the offset after them.
    pub fn read_output(&self, offset: u64, max: usize) -> Result<(Vec<u8>, u64)> {
        let mut file = match self.dir.open(OUTPUT) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
            Err(e) => return Err(e.into()),
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        file.take(max as u64).read_to_end(&mut buf)?;
        let next = offset + buf.len() as u64;
        Ok((buf, next))
    }

    /// Opens `supervisor.log` for appending: the supervisor's own stderr.
    pub fn supervisor_log(&self) -> Result<std::fs::File> {
        Ok(self.dir.open_with(SUPERVISOR_LOG, OpenOptions::new().append(true).create(true))?.into_std())
    }

    /// Opens the event log for appending. Writers (the job's supervisor, and
    /// the host recording a policy failure or a lost supervisor) take turns
    /// through an exclusive `flock` on `events.idx`.
    pub fn event_writer(&self) -> Result<EventWriter> {
        let events = self.dir.open_with(EVENTS, OpenOptions::new().read(true).append(true).create(true))?;
        let index = self.dir.open_with(EVENTS_INDEX, OpenOptions::new().read(true).write(true).create(true))?;
        let lock = IndexLock::take(&index)?;
        // A writer that died mid-way leaves a partial index entry or a line
        // with no index entry; cut both so the next event follows the last whole one.
        let entries = index.metadata()?.len() / INDEX_ENTRY;
        index.set_len(entries * INDEX_ENTRY)?;
        let end = match entries {
            0 => 0,
            n => {
                (&index).seek(SeekFrom::Start((n - 1) * INDEX_ENTRY))?;
                let mut offset = [0u8; 8];
                (&index).read_exact(&mut offset)?;
                let last = u64::from_le_bytes(offset);
                let mut reader = BufReader::new(&events);
                reader.seek(SeekFrom::Start(last))?;
                let mut line = Vec::new();
                last + reader.read_until(b'\n', &mut line)? as u64
            }
        };
        if events.metadata()?.len() != end {
            events.set_len(end)?;
        }
        drop(lock);
        Ok(EventWriter { events, index })
    }

    /// How many events the job has: the next event's `seq`.
    pub fn event_count(&self) -> Result<u64> {
        match self.dir.metadata(EVENTS_INDEX) {
            Ok(m) => Ok(m.len() / INDEX_ENTRY),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Events from `cursor` (a `seq`) on: at most `limit` for which `pick`
    /// returns one (the event itself or a replacement), looking at no more than
    /// `scan_max` events. With `data_text`, `pick` also gets each event's `data`
    /// as the JSON text stored (for event filters, which take JSON text; reading
    /// it costs a second pass over the line). Returns the events and the cursor
    /// to pass next. Seeks through `events.idx`; cost does not grow with the log.
    ///
    /// Errors: [`crate::InvalidInput`] when `cursor` is past the job's last event.
    pub fn read_events(
        &self,
        cursor: u64,
        limit: usize,
        scan_max: u64,
        data_text: bool,
        mut pick: impl FnMut(Event, Option<&str>) -> Option<Event>,
    ) -> Result<(Vec<Event>, u64)> {
        let count = self.event_count()?;
        if cursor > count {
            return Err(invalid(format!(
                "invalid cursor {cursor}: job {} has {count} events; expected a cursor from 0 to {count}",
                self.id
            )));
        }
        if cursor == count || limit == 0 {
            return Ok((Vec::new(), cursor));
        }
        let mut index = self.dir.open(EVENTS_INDEX)?;
        index.seek(SeekFrom::Start(cursor * INDEX_ENTRY))?;
        let mut offset = [0u8; 8];
        index.read_exact(&mut offset)?;
        let mut events = self.dir.open(EVENTS)?;
        events.seek(SeekFrom::Start(u64::from_le_bytes(offset)))?;
        let mut reader = BufReader::new(events);
        let (mut out, mut next) = (Vec::new(), cursor);
        let end = count.min(cursor.saturating_add(scan_max));
        let mut line = String::new();
        while next < end && out.len() < limit {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let not_json = || format!("{}/{EVENTS}: event {next} is not valid JSON", self.path.display());
            let picked = if data_text {
                let stored: StoredEvent = serde_json::from_str(&line).with_context(not_json)?;
                let data = stored.data.get();
                let parsed = serde_json::from_str(data).with_context(not_json)?;
                pick(Event { seq: stored.seq, ts: stored.ts, kind: stored.kind, data: parsed }, Some(data))
            } else {
                pick(serde_json::from_str(&line).with_context(not_json)?, None)
            };
            next += 1;
            out.extend(picked);
        }
        Ok((out, next))
    }

    /// The last `max_lines` lines of `output.log`, reading at most `max_bytes`
    /// from its end: it seeks, so a 1 GiB log costs what a 1 kB one does.
    /// Returns the text and whether older output was left out.
    pub fn tail_output(&self, max_lines: usize, max_bytes: u64) -> Result<(String, bool)> {
        let mut file = match self.dir.open(OUTPUT) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((String::new(), false)),
            Err(e) => return Err(e.into()),
        };
        if max_lines == 0 {
            return Ok((String::new(), file.metadata()?.len() > 0));
        }
        let len = file.metadata()?.len();
        let start = len.saturating_sub(max_bytes);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        file.take(len - start).read_to_end(&mut buf)?;
        // Walk back over `max_lines` line ends, ignoring the final newline.
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let mut cut = 0;
        let mut seen = 0;
        for (i, b) in body.iter().enumerate().rev() {
            if *b == b'\n' {
                seen += 1;
                if seen == max_lines {
                    cut = i + 1;
                    break;
                }
            }
        }
        // A window that starts mid-line drops the partial first line.
        if cut == 0 && start > 0 {
            cut = body.iter().position(|b| *b == b'\n').map_or(body.len(), |i| i + 1);
        }
        let omitted = start > 0 || cut > 0;
        Ok((String::from_utf8_lossy(&buf[cut..]).into_owned(), omitted))
    }
}

/// A line of `events.jsonl` with its `data` left as JSON text.
#[derive(Deserialize)]
struct StoredEvent<'a> {
    seq: u64,
    ts: Timestamp,
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
}

/// Appends events to a job's `events.jsonl` and `events.idx`.
#[derive(Debug)]
pub struct EventWriter {
    events: File,
    index: File,
}

/// An exclusive `flock` on a job's `events.idx`, released on drop.
struct IndexLock<'a>(&'a File);

impl<'a> IndexLock<'a> {
    fn take(index: &'a File) -> Result<Self> {
        rustix::fs::flock(index, rustix::fs::FlockOperation::LockExclusive).context("cannot lock events.idx")?;
        Ok(IndexLock(index))
    }
}

impl Drop for IndexLock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, rustix::fs::FlockOperation::Unlock);
    }
}

impl EventWriter {
    /// Appends one event and returns it. Under the lock, the line is written
    /// before its index entry, so a reader that sees the entry sees the whole line.
    pub fn append(&mut self, kind: &str, data: Value) -> Result<Event> {
        let _lock = IndexLock::take(&self.index)?;
        let seq = self.index.metadata()?.len() / INDEX_ENTRY;
        let end = self.events.metadata()?.len();
        let event = Event { seq, ts: Timestamp::now(), kind: kind.to_owned(), data };
        let mut line = serde_json::to_vec(&event)?;
        line.push(b'\n');
        (&self.events).write_all(&line)?;
        (&self.index).seek(SeekFrom::Start(seq * INDEX_ENTRY))?;
        (&self.index).write_all(&end.to_le_bytes())?;
        Ok(event)
    }

    /// Appends a [`STATUS_EVENT`].
    pub fn status(&mut self, meta: &JobMeta, extra: Value) -> Result<Event> {
        let mut data = serde_json::json!({"status": meta.status, "turn": meta.turn});
        if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
            d.extend(e);
        }
        self.append(STATUS_EVENT, data)
    }

    /// Makes everything appended so far durable (used at terminal transitions).
    pub fn sync(&self) -> Result<()> {
        self.events.sync_data()?;
        self.index.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobOptions;
    use serde_json::json;

    fn meta(id: JobId) -> JobMeta {
        JobMeta::queued(
            id,
            "p",
            "/tmp".into(),
            "exec",
            JobOptions { approval_policy: "suggest".into(), ..Default::default() },
            "/bin/codex".into(),
        )
    }

    #[test]
    fn meta_is_replaced_whole_and_leaves_no_temp_files() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let id = JobId::new();
        let job = store.create(&meta(id)).unwrap();
        let mut m = job.read_meta().unwrap();
        m.status = JobStatus::Running;
        m.prompt = "x".repeat(100_000);
        job.write_meta(&m).unwrap();
        m.prompt = "short".into();
        job.write_meta(&m).unwrap();
        assert_eq!(job.read_meta().unwrap(), m);
        let names: Vec<_> = std::fs::read_dir(job.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("meta.json")]);
        assert_eq!(store.job_ids().unwrap(), vec![id]);
    }

    #[test]
    fn unknown_jobs_are_a_clear_error() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let err = store.job(JobId::new()).unwrap_err();
        assert!(err.downcast_ref::<crate::InvalidInput>().is_some());
        assert!(err.to_string().starts_with("no job with id"), "{err}");
    }

    #[test]
    fn events_read_after_a_cursor_and_survive_a_torn_index() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let job = store.create(&meta(JobId::new())).unwrap();
        let mut w = job.event_writer().unwrap();
        for i in 0..10 {
            w.append(if i % 2 == 0 { "even" } else { "odd" }, json!({"i": i})).unwrap();
        }
        drop(w);
        let mut texts = Vec::new();
        let (page, next) = job
            .read_events(3, 4, u64::MAX, true, |e, data| {
                texts.push(data.unwrap().to_owned());
                Some(e)
            })
            .unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
        assert_eq!(texts, [r#"{"i":3}"#, r#"{"i":4}"#, r#"{"i":5}"#, r#"{"i":6}"#]);
        assert_eq!(next, 7);
        let (odd, next) = job.read_events(0, 100, u64::MAX, false, |e, _| Some(e).filter(|e| e.kind == "odd")).unwrap();
        assert_eq!(odd.len(), 5);
        assert_eq!(next, 10);
        let (none, next) = job.read_events(10, 5, u64::MAX, false, |e, _| Some(e)).unwrap();
        assert!(none.is_empty() && next == 10);
        let err = job.read_events(11, 5, u64::MAX, false, |e, _| Some(e)).unwrap_err().to_string();
        assert!(err.contains("invalid cursor 11") && err.contains("10 events"), "{err}");
        // Scanning stops at scan_max even when nothing matched.
        let (none, next) = job.read_events(0, 5, 3, false, |_, _| None).unwrap();
        assert!(none.is_empty() && next == 3);

        // A writer that died mid-way: half an index entry and half a line.
        let dir = job.path();
        std::fs::OpenOptions::new().append(true).open(dir.join("events.idx")).unwrap().write_all(&[1, 2, 3]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("events.jsonl"))
            .unwrap()
            .write_all(b"{\"seq\":10,")
            .unwrap();
        assert_eq!(job.event_count().unwrap(), 10);
        let mut w = job.event_writer().unwrap();
        assert_eq!(w.append("after", json!({})).unwrap().seq, 10);
        let (page, _) = job.read_events(9, 5, u64::MAX, false, |e, _| Some(e)).unwrap();
        assert_eq!(page.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), vec!["odd", "after"]);
    }

    #[test]
    fn tail_reads_only_the_end() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        let job = store.create(&meta(JobId::new())).unwrap();
        assert_eq!(job.tail_output(5, 1024).unwrap(), (String::new(), false));
        let mut log = job.output_log().unwrap();
        for i in 0..1000 {
            writeln!(log, "line {i}").unwrap();
        }
        assert_eq!(job.tail_output(2, 1 << 20).unwrap(), ("line 998\nline 999\n".to_string(), true));
        assert_eq!(job.tail_output(5000, 1 << 20).unwrap().0.lines().count(), 1000);
        assert!(!job.tail_output(5000, 1 << 20).unwrap().1);
        // The byte window wins over the line count, and drops the partial line.
        let (text, omitted) = job.tail_output(1000, 20).unwrap();
        assert_eq!(text, "line 998\nline 999\n");
        assert!(omitted);
    }

    #[test]
    fn notifications_are_read_by_byte_cursor() {
        let home = tempfile::tempdir().unwrap();
        let store = JobStore::open(home.path()).unwrap();
        assert_eq!(store.read_notifications(0, 10).unwrap(), (vec![], 0));
        let note = |n: u32| Notification {
            job_id: JobId::new().to_string(),
            status: JobStatus::Completed,
            turn: n,
            exit_code: Some(0),
            error: None,
            finished_at: Timestamp::now().to_string(),
        };
        store.append_notification(&note(0)).unwrap();
        store.append_notification(&note(1)).unwrap();
        let (first, c1) = store.read_notifications(0, 1).unwrap();
        assert_eq!(first[0].turn, 0);
        let (rest, c2) = store.read_notifications(c1, 10).unwrap();
        assert_eq!(rest.iter().map(|n| n.turn).collect::<Vec<_>>(), vec![1]);
        assert_eq!(store.read_notifications(c2, 10).unwrap(), (vec![], c2));
        assert!(store.read_notifications(c1 + 1, 10).unwrap_err().to_string().contains("invalid cursor"));
        assert!(store.read_notifications(c2 + 100, 10).is_err());
    }
}
