//! Waking when a job's `meta.json` is replaced, for jobs another host
//! process is starting: inotify, polled by tokio, so waiting costs no timer.

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Becomes ready when a file is renamed into (or created in) one directory,
/// which is how `meta.json` is replaced.
pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
}

impl DirWatch {
    /// Watches `dir` for files renamed or created in it.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::with(&[dir], WatchFlags::MOVED_TO | WatchFlags::CREATE)
    }

    /// Watches each of `dirs` for entries coming and going (created, renamed, removed).
    pub fn entries(dirs: &[&Path]) -> Result<Self> {
        let flags = WatchFlags::MOVED_TO | WatchFlags::CREATE | WatchFlags::DELETE | WatchFlags::MOVED_FROM;
        Self::with(dirs, flags)
    }

    fn with(dirs: &[&Path], flags: WatchFlags) -> Result<Self> {
        // Each DirWatch is an inotify instance: a user has 128 by default (fs.inotify.max_user_instances).
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .context("inotify_init (fs.inotify.max_user_instances reached?)")?;
        for dir in dirs {
            inotify::add_watch(&fd, *dir, flags).with_context(|| format!("cannot watch {}", dir.display()))?;
        }
        // SAFETY: the OwnedFd is moved in and stays open, unchanged, as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(DirWatch { fd })
    }

    /// Resolves at the next change after the last call (or after `open`).
    pub async fn changed(&self) -> Result<()> {
        let mut guard = self.fd.readable().await?;
        let mut buf = [0u8; 4096];
        // Drain every queued event; one wake-up is all the caller needs.
        loop {
            match rustix::io::read(self.fd.get_ref(), &mut buf) {
                Ok(0) | Err(rustix::io::Errno::AGAIN) => break,
                Ok(_) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        guard.clear_ready();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_rename_into_the_directory_wakes_it() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DirWatch::open(dir.path()).unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        assert!(waiting.is_err(), "nothing happened yet");
        std::fs::write(dir.path().join("tmp"), "x").unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("meta.json")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed()).await.unwrap().unwrap();
    }
}
