//! A job's event log: `events.jsonl`, the truth, and `events.idx`, derived from it.
//!
//! `events.jsonl` holds one [`Event`] a line. `events.idx` holds, for each
//! whole line, the byte offset just past its `\n` (u64 little-endian), so the
//! event with `seq` N starts where entry N−1 ends and a read seeks instead of
//! scanning. The index is consistent when its last entry equals the length of
//! `events.jsonl`; anything else (missing, short, long, torn) is repaired from
//! the log under the log's lock before anyone relies on it. The log itself is
//! never cut to match an index: only a torn last line (a writer killed
//! mid-write, never indexed, never seen) is moved to `events.torn`.
//!
//! Writers (the job's supervisor, and the host recording an end or a policy
//! failure) take turns through an exclusive `flock` on `events.idx`.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
use cap_std::fs::{Dir, File, OpenOptions};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::event::{Event, STATUS_EVENT};
use super::{JobId, JobMeta};
use crate::error::invalid;

use crate::home::job::{EVENTS, EVENTS_INDEX, EVENTS_TORN};

/// Bytes of an entry in `events.idx`.
const INDEX_ENTRY: u64 = 8;

/// Appends events to a job's `events.jsonl` and `events.idx`.
#[derive(Debug)]
pub struct EventWriter {
    events: File,
    index: File,
    path: std::path::PathBuf,
}

/// An exclusive `flock` on a job's `events.idx`, released on drop.
struct IndexLock<'a>(&'a File);

impl<'a> IndexLock<'a> {
    fn take(index: &'a File, path: &Path) -> Result<Self> {
        rustix::fs::flock(index, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("cannot lock {}/{EVENTS_INDEX}", path.display()))?;
        Ok(IndexLock(index))
    }
}

impl Drop for IndexLock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, rustix::fs::FlockOperation::Unlock);
    }
}

/// Opens the log of the job in `dir` (at `path`, for messages) for appending,
/// repairing the index first if it does not match the log.
pub(super) fn writer(dir: &Dir, path: &Path) -> Result<EventWriter> {
    let events = dir
        .open_with(EVENTS, OpenOptions::new().read(true).append(true).create(true))
        .with_context(|| format!("cannot open {}/{EVENTS}", path.display()))?;
    // A new job has no index until its log is first appended to or read (see [`write_first`]).
    let (index, new) = match dir.open_with(EVENTS_INDEX, OpenOptions::new().read(true).write(true)) {
        Ok(index) => (Ok(index), false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            (dir.open_with(EVENTS_INDEX, OpenOptions::new().read(true).write(true).create(true)), true)
        }
        Err(e) => (Err(e), false),
    };
    let index = index.with_context(|| format!("cannot open {}/{EVENTS_INDEX}", path.display()))?;
    let writer = EventWriter { events, index, path: path.to_path_buf() };
    {
        let _lock = IndexLock::take(&writer.index, path)?;
        writer.repair(dir, !new)?;
    }
    Ok(writer)
}

/// Writes a new job's log: `events.jsonl` holding its first event, the
/// `queued` status with the prompt, stamped with the job's creation time (so
/// that the log made again from the job's queue entry is the same). Its index
/// is made when the log is first appended to or read.
pub(super) fn write_first(dir: &Dir, path: &Path, meta: &JobMeta) -> Result<()> {
    let data = serde_json::json!({"status": meta.status, "turn": meta.turn, "prompt": meta.prompt});
    let event = Event { seq: 0, ts: meta.created_at, kind: STATUS_EVENT.to_owned(), data };
    let mut line = serde_json::to_vec(&event)?;
    line.push(b'\n');
    dir.write(EVENTS, line).with_context(|| format!("cannot write {}/{EVENTS}", path.display()))
}

/// How many events the job in `dir` has (the next event's `seq`), repairing
/// the index first when it does not match the log.
pub(super) fn count(dir: &Dir, path: &Path) -> Result<u64> {
    match consistent_count(dir, path)? {
        Some(n) => Ok(n),
        // No log yet: nothing to repair, nothing to create.
        None if !exists(dir, EVENTS)? => Ok(0),
        None => {
            let w = writer(dir, path)?;
            Ok(w.index.metadata()?.len() / INDEX_ENTRY)
        }
    }
}

fn exists(dir: &Dir, name: &str) -> Result<bool> {
    match dir.metadata(name) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The number of entries when the index matches the log (without taking the
/// lock: a writer between its line and its entry looks inconsistent, and the
/// caller then repairs under the lock, which finds nothing to do).
fn consistent_count(dir: &Dir, path: &Path) -> Result<Option<u64>> {
    let len_of = |name: &str| match dir.metadata(name) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}/{name}", path.display()))),
    };
    let (Some(log_len), index_len) = (len_of(EVENTS)?, len_of(EVENTS_INDEX)?) else {
        return Ok(None);
    };
    let index_len = index_len.unwrap_or(0);
    if index_len % INDEX_ENTRY != 0 {
        return Ok(None);
    }
    let entries = index_len / INDEX_ENTRY;
    if entries == 0 {
        return Ok((log_len == 0).then_some(0));
    }
    let index = dir.open(EVENTS_INDEX).with_context(|| format!("cannot open {}/{EVENTS_INDEX}", path.display()))?;
    let last = entry(&index, entries - 1)?;
    // The last entry ends the log, after the one before it (a repeated tail is not an index).
    let ordered = entries == 1 || entry(&index, entries - 2)? < last;
    Ok((last == log_len && ordered).then_some(entries))
}

/// Entry `n` of an index: the end offset of line `n`.
fn entry(index: &File, n: u64) -> Result<u64> {
    let mut bytes = [0u8; 8];
    let mut index = index;
    index.seek(SeekFrom::Start(n * INDEX_ENTRY))?;
    index.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

impl EventWriter {
    /// Under the lock: makes `events.idx` list exactly the whole lines of
    /// `events.jsonl`. Keeps the longest prefix of the index that still
    /// points at line ends, re-indexes the lines after it, and moves a torn
    /// last line aside to `events.torn`. With `warn`, says so when the
    /// index had to change (a new job's first index is no news).
    fn repair(&self, dir: &Dir, warn: bool) -> Result<()> {
        let log_len = self.events.metadata()?.len();
        let index_len = self.index.metadata()?.len();
        let mut old = Vec::with_capacity(usize::try_from(index_len)?);
        (&self.index).seek(SeekFrom::Start(0))?;
        (&self.index).read_to_end(&mut old)?;
        let old: Vec<u64> =
            old.chunks_exact(INDEX_ENTRY as usize).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        // The longest prefix of entries that rise strictly, stay inside the
        // log and whose last one ends at a line end.
        let mut entries = old
            .iter()
            .zip(std::iter::once(&0).chain(old.iter()))
            .take_while(|(e, prev)| e > prev && **e <= log_len)
            .count();
        if index_len % INDEX_ENTRY == 0 && entries == old.len() && old.last().copied().unwrap_or(0) == log_len {
            return Ok(());
        }
        let mut start = 0;
        while entries > 0 {
            let end = old[entries - 1];
            if self.byte_at(end - 1)? == b'\n' {
                start = end;
                break;
            }
            entries -= 1;
        }
        let entries = entries as u64;
        let mut ends = Vec::new();
        let mut reader = BufReader::new(&self.events);
        reader.seek(SeekFrom::Start(start))?;
        let mut offset = start;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)? as u64;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                // A torn last line: keep its bytes, then cut it from the log.
                let mut torn = dir
                    .open_with(EVENTS_TORN, OpenOptions::new().append(true).create(true))
                    .with_context(|| format!("cannot open {}/{EVENTS_TORN}", self.path.display()))?;
                torn.write_all(&line)?;
                torn.write_all(b"\n")?;
                torn.sync_data()?;
                self.events.set_len(offset)?;
                tracing::warn!(
                    "{}/{EVENTS}: moved a torn last line of {n} bytes to {EVENTS_TORN}",
                    self.path.display()
                );
                break;
            }
            offset += n;
            ends.push(offset);
        }
        let mut bytes = Vec::with_capacity(ends.len() * INDEX_ENTRY as usize);
        ends.iter().for_each(|e| bytes.extend_from_slice(&e.to_le_bytes()));
        self.index.set_len(entries * INDEX_ENTRY)?;
        (&self.index).seek(SeekFrom::Start(entries * INDEX_ENTRY))?;
        (&self.index).write_all(&bytes)?;
        self.index.sync_data()?;
        if warn && (index_len != (entries + ends.len() as u64) * INDEX_ENTRY || start != offset) {
            tracing::warn!(
                "{}/{EVENTS_INDEX} did not match {EVENTS} ({} entries for the log's {} lines); rebuilt it",
                self.path.display(),
                index_len / INDEX_ENTRY,
                entries + ends.len() as u64
            );
        }
        Ok(())
    }

    fn byte_at(&self, offset: u64) -> Result<u8> {
        let mut byte = [0u8; 1];
        let mut events = &self.events;
        events.seek(SeekFrom::Start(offset))?;
        events.read_exact(&mut byte)?;
        Ok(byte[0])
    }

    /// Appends one event and returns it. Under the lock, the line is written
    /// before its index entry, so a reader that sees the entry sees the whole line.
    ///
    /// Errors: the write fails (a full disk included); the message names the file.
    pub fn append(&mut self, kind: &str, data: Value) -> Result<Event> {
        let _lock = IndexLock::take(&self.index, &self.path)?;
        let seq = self.index.metadata()?.len() / INDEX_ENTRY;
        let end = self.events.metadata()?.len();
        let event = Event { seq, ts: Timestamp::now(), kind: kind.to_owned(), data };
        let mut line = serde_json::to_vec(&event)?;
        line.push(b'\n');
        let written = crate::failpoint_io!("event-append").and_then(|()| (&self.events).write_all(&line));
        if let Err(e) = written {
            // Leave no partial line behind for the next writer to find.
            let _ = self.events.set_len(end);
            return Err(e).with_context(|| format!("cannot append to {}/{EVENTS}", self.path.display()));
        }
        (&self.index).seek(SeekFrom::Start(seq * INDEX_ENTRY))?;
        (&self.index)
            .write_all(&(end + line.len() as u64).to_le_bytes())
            .with_context(|| format!("cannot append to {}/{EVENTS_INDEX}", self.path.display()))?;
        Ok(event)
    }

    /// Appends a [`STATUS_EVENT`] for the job's current status and turn, with `extra` fields.
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

    /// The last [`STATUS_EVENT`] in the log, looking back past at most
    /// `look_back` other events (host notes such as `policy_error` that follow
    /// a turn's end). `None` when there is none that close to the end.
    pub fn last_status(&self, look_back: u64) -> Result<Option<Event>> {
        let _lock = IndexLock::take(&self.index, &self.path)?;
        let entries = self.index.metadata()?.len() / INDEX_ENTRY;
        for seq in (entries.saturating_sub(look_back + 1)..entries).rev() {
            let start = if seq == 0 { 0 } else { entry(&self.index, seq - 1)? };
            let end = entry(&self.index, seq)?;
            let mut line = vec![0u8; usize::try_from(end - start)?];
            let mut events = &self.events;
            events.seek(SeekFrom::Start(start))?;
            events.read_exact(&mut line)?;
            let event: Event = serde_json::from_slice(&line)
                .with_context(|| format!("{}/{EVENTS}: event {seq} is not valid JSON", self.path.display()))?;
            if event.kind == STATUS_EVENT {
                return Ok(Some(event));
            }
        }
        Ok(None)
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

/// See [`super::JobDir::read_events`].
#[allow(clippy::too_many_arguments)]
pub(super) fn read(
    dir: &Dir,
    path: &Path,
    id: JobId,
    cursor: u64,
    limit: usize,
    scan_max: u64,
    data_text: bool,
    mut pick: impl FnMut(Event, Option<&str>) -> Option<Event>,
) -> Result<(Vec<Event>, u64)> {
    let count = count(dir, path)?;
    if cursor > count {
        return Err(invalid(format!(
            "invalid cursor {cursor}: job {id} has {count} events; expected a cursor from 0 to {count}"
        )));
    }
    if cursor == count || limit == 0 {
        return Ok((Vec::new(), cursor));
    }
    let index = dir.open(EVENTS_INDEX).with_context(|| format!("cannot open {}/{EVENTS_INDEX}", path.display()))?;
    let start = if cursor == 0 { 0 } else { entry(&index, cursor - 1)? };
    let mut events = dir.open(EVENTS).with_context(|| format!("cannot open {}/{EVENTS}", path.display()))?;
    events.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(events);
    let (mut out, mut next) = (Vec::new(), cursor);
    let end = count.min(cursor.saturating_add(scan_max));
    let mut line = String::new();
    while next < end && out.len() < limit {
        line.clear();
        if reader.read_line(&mut line).with_context(|| format!("cannot read {}/{EVENTS}", path.display()))? == 0 {
            break;
        }
        let not_json = || format!("{}/{EVENTS}: event {next} is not valid JSON", path.display());
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
