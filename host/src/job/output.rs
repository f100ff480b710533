//! `output.log` within a cap: past it, the middle of the log is cut. The
//! first half of the cap stays, and so does the latest output; the bytes in
//! between become a hole (`fallocate(PUNCH_HOLE)`), which takes no space and
//! which readers show as one marker line. Offsets never move, so a reader
//! that follows the file by offset (`jobs logs --follow`) keeps its place;
//! the job goes on as before.
//!
//! Where the file system cannot punch holes, the log is cut short where the
//! hole would begin, one marker line is appended, and later output is dropped.

use std::io;
use std::os::fd::AsFd;

use rustix::fs::{FallocateFlags, SeekFrom};

/// Default cap of one job's `output.log`: 256 MiB (`[jobs] output_max_mib`).
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The line readers show in place of `n` cut bytes.
pub fn cut_marker(n: u64) -> Vec<u8> {
    format!("[… {n} bytes of output cut: output.log keeps its start and its latest output …]\n").into_bytes()
}

/// Keeps one `output.log` within `max` bytes of data as it grows.
#[derive(Debug)]
pub struct OutputCap {
    max: u64,
    /// The file's length (what has been written, holes included).
    len: u64,
    /// Where the kept start ends and the hole begins (block-aligned).
    head_end: u64,
    /// Where the hole ends and the latest output begins.
    hole_end: u64,
    block: u64,
    /// The file system cannot punch holes: the log was cut short at the
    /// cap's first half, with one marker line, and output is dropped.
    dropping: bool,
}

/// What to do with the next line.
#[derive(Debug, PartialEq, Eq)]
pub enum Write {
    /// Append it.
    Line,
    /// Drop it.
    Drop,
}

impl OutputCap {
    /// The cap of the open `file` (appended to), at most `max` bytes of data.
    pub fn new(file: impl AsFd, max: u64) -> io::Result<Self> {
        let stat = rustix::fs::fstat(&file)?;
        let len = stat.st_size as u64;
        let block = (stat.st_blksize as u64).clamp(512, 1 << 20);
        let head_end = (max / 2).div_ceil(block) * block;
        // A hole from an earlier turn ends where data starts again.
        let hole_end = match rustix::fs::seek(&file, SeekFrom::Data(head_end)) {
            Ok(data) => data.max(head_end),
            Err(_) => len.max(head_end), // no data past the head (ENXIO), or no SEEK_DATA
        };
        Ok(OutputCap { max, len, head_end, hole_end, block, dropping: false })
    }

    /// Before appending a line of `n` bytes: whether to.
    pub fn before(&mut self, n: u64) -> Write {
        if self.dropping {
            return Write::Drop;
        }
        self.len += n;
        Write::Line
    }

    /// After an append: the bytes to cut, when the latest output has
    /// outgrown its share of the cap (half that share is kept). Everything
    /// appended must be on the file before [`OutputCap::cut`] (flushed), or
    /// a write that lands after the cut fills the hole again.
    pub fn cut_due(&self) -> Option<std::ops::Range<u64>> {
        let share = self.max.saturating_sub(self.head_end).max(self.block);
        let latest = self.hole_end.max(self.head_end);
        if self.dropping || self.len <= self.max || self.len - latest <= share {
            return None;
        }
        let end = (self.len - share / 2) / self.block * self.block;
        (end > latest).then_some(latest..end)
    }

    /// Cuts `range` (from [`OutputCap::cut_due`]) out of `file`. A file
    /// system that cannot punch holes switches the cap to dropping.
    pub fn cut(&mut self, file: impl AsFd, range: std::ops::Range<u64>) -> io::Result<()> {
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        // Tests stand in a file system without hole punching (ext4 and tmpfs have it).
        let punched = crate::failpoint_io!("punch-hole-unsupported", rustix::io::Errno::OPNOTSUPP)
            .and_then(|()| Ok(rustix::fs::fallocate(&file, punch, range.start, range.end - range.start)?));
        let unsupported = [rustix::io::Errno::OPNOTSUPP, rustix::io::Errno::NOSYS].map(|e| Some(e.raw_os_error()));
        match punched {
            Ok(()) => {
                self.hole_end = range.end;
                Ok(())
            }
            Err(e) if unsupported.contains(&e.raw_os_error()) => {
                // Cut short instead: the start stays, the rest (and all to come) goes.
                rustix::fs::ftruncate(&file, range.start)?;
                let marker = format!(
                    "[… output past {} bytes dropped: this file system cannot cut the middle of output.log …]\n",
                    range.start
                );
                rustix::io::write(&file, marker.as_bytes())?;
                self.dropping = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Where the next data in `file` at or after `offset` starts, when `offset`
/// is in a hole; `None` when `offset` holds data (or the file system does
/// not say). A hole that runs to the end of the file ends at `len`.
pub fn hole_at(file: impl AsFd, offset: u64, len: u64) -> Option<u64> {
    if offset >= len {
        return None;
    }
    match rustix::fs::seek(&file, SeekFrom::Data(offset)) {
        Ok(data) if data > offset => Some(data),
        Ok(_) => None,
        Err(rustix::io::Errno::NXIO) => Some(len),
        Err(_) => None,
    }
}

/// Where the data at `offset` ends: the next hole, or `len`.
pub fn data_end(file: impl AsFd, offset: u64, len: u64) -> u64 {
    rustix::fs::seek(&file, SeekFrom::Hole(offset)).map_or(len, |hole| hole.min(len))
}

/// Up to `max` bytes of the log `file` from byte `offset`, and the offset
/// after them. Where the log's middle was cut, the cut bytes come back as
/// one marker line ([`cut_marker`]).
pub fn read(file: &mut std::fs::File, offset: u64, max: usize) -> io::Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek};
    let len = file.metadata()?.len();
    if let Some(data) = hole_at(&*file, offset, len) {
        return Ok((cut_marker(data - offset), data));
    }
    let end = data_end(&*file, offset, len);
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take((max as u64).min(end.saturating_sub(offset))).read_to_end(&mut buf)?;
    let next = offset + buf.len() as u64;
    Ok((buf, next))
}

/// The last `max_lines` lines of the log `file`, reading at most `max_bytes`
/// from its end: it seeks, so a 1 GiB log costs what a 1 kB one does.
/// Returns the text and whether older output was left out.
pub fn tail(file: &mut std::fs::File, max_lines: usize, max_bytes: u64) -> io::Result<(String, bool)> {
    use std::io::{Read, Seek};
    if max_lines == 0 {
        return Ok((String::new(), file.metadata()?.len() > 0));
    }
    let len = file.metadata()?.len();
    let mut start = len.saturating_sub(max_bytes);
    // Not into the log's cut middle: the tail starts after it (mid-line).
    let data_end = data_end(&*file, start, len);
    if let Some(data) = hole_at(&*file, start, len) {
        start = data;
    } else if data_end < len {
        start = hole_at(&*file, data_end, len).unwrap_or(data_end);
    }
    file.seek(std::io::SeekFrom::Start(start))?;
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_middle_is_cut_and_offsets_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let mut file = std::fs::OpenOptions::new().append(true).create(true).open(&path).unwrap();
        let max = 1 << 20;
        let mut cap = OutputCap::new(&file, max).unwrap();
        let line = format!("{}\n", "x".repeat(999));
        for _ in 0..5_000 {
            assert_eq!(cap.before(line.len() as u64), Write::Line);
            file.write_all(line.as_bytes()).unwrap();
            if let Some(range) = cap.cut_due() {
                cap.cut(&file, range).unwrap();
            }
        }
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 5_000_000, "the length (every offset) stays");
        assert!(meta.blocks() * 512 <= max + 2 * cap.block, "{} bytes on disk", meta.blocks() * 512);
        // The start and the latest output are kept; the middle is a hole.
        assert_eq!(hole_at(&file, 0, meta.len()), None);
        let hole_end = hole_at(&file, cap.head_end, meta.len()).expect("a hole after the head");
        assert!(hole_end > cap.head_end && hole_end < meta.len());
        assert_eq!(data_end(&file, 0, meta.len()), cap.head_end);
        // A later turn finds the hole where it was.
        let again = OutputCap::new(&file, max).unwrap();
        assert_eq!((again.head_end, again.hole_end, again.len), (cap.head_end, cap.hole_end, cap.len));
    }
}
