//! Reading policy files and components safely: a path named in a policy file
//! resolves inside the directory that file governs (the project root, or the
//! job home for the user's file), symlinks included, to a regular file no
//! larger than a cap. Anything else (`..` or an absolute path leading out, a
//! symlink out, a device, a FIFO, `/proc`) is refused with the path and the rule.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};

/// Largest policy file (`jobhost.toml`, `config.toml`) read, in bytes: 1 MiB.
pub const POLICY_FILE_MAX_BYTES: u64 = 1 << 20;
/// Largest component file loaded, in bytes: 16 MiB (the example guests are
/// about 150 KB; a component's compile costs memory in proportion).
pub const COMPONENT_MAX_BYTES: u64 = 16 << 20;

/// Opened without blocking on a FIFO and without becoming a controlling terminal.
const OPEN_FLAGS: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32 | rustix::fs::OFlags::NOCTTY.bits() as i32;

/// A file under `jail`, read whole: `path` is absolute and lexically inside
/// `jail`, or relative to it; it is resolved inside `jail` with symlinks
/// followed only while they stay inside it.
///
/// Returns `None` when it does not exist. Errors name `path`, `jail` and the
/// rule: outside `jail`, not a regular file, larger than `max` bytes, unreadable.
pub fn read_inside(jail: &Path, path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>> {
    let shown = path.display();
    let outside = || {
        format!(
            "{what} {shown} is outside {}: a policy may only name files inside it (after `..` and symlinks)",
            jail.display()
        )
    };
    let inside = match path.strip_prefix(jail) {
        Ok(p) => p,
        Err(_) if path.is_absolute() => bail!(outside()),
        Err(_) => path,
    };
    let dir = Dir::open_ambient_dir(jail, ambient_authority())
        .with_context(|| format!("cannot open {} to read {what} {shown}", jail.display()))?;
    let mut options = OpenOptions::new();
    options.read(true);
    options.custom_flags(OPEN_FLAGS);
    let file = match dir.open_with(inside, &options) {
        Ok(f) => f.into_std(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_escape(&e) => bail!(outside()),
        Err(e) => return Err(e).with_context(|| format!("cannot open {what} {shown}")),
    };
    read_regular(file, path, max, what).map(Some)
}

/// A file at `path` as given (for a component named on the command line):
/// the same rules as [`read_inside`] but for the jail.
pub fn read_file(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    read_regular(file, path, max, what)
}

/// Reads an open file whole if it is a regular file of at most `max` bytes.
fn read_regular(file: File, path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta = file.metadata().with_context(|| format!("cannot read {what} {shown}"))?;
    if !meta.is_file() {
        bail!("{what} {shown} is not a regular file (a device, FIFO, socket or directory is never read)");
    }
    if meta.len() > max {
        bail!("{what} {shown} is {} bytes; the limit is {max} bytes", meta.len());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Read at most one byte past the cap, so a file that grows meanwhile is still refused.
    file.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {what} {shown}"))?;
    if bytes.len() as u64 > max {
        bail!("{what} {shown} grew past the limit of {max} bytes while it was read");
    }
    Ok(bytes)
}

/// Whether cap-std refused a path for leading outside its directory.
fn is_escape(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error())
        || (e.kind() == std::io::ErrorKind::PermissionDenied && e.to_string().contains("outside"))
}
