//! Waking when a job's `meta.json` is replaced, for jobs another host
//! process is starting: inotify, polled by tokio, so waiting costs no timer.
//!
//! A user has 128 inotify instances (`fs.inotify.max_user_instances`) and
//! far more watches (`max_user_watches`, often 8,192 or more): a host that
//! follows many jobs at once watches them all through one instance,
//! [`DirWatches`]; [`DirWatch`] is an instance of its own, for a process that
//! watches one or two directories.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// Becomes ready when a file is renamed into (or created in) one or more
/// directories, which is how `meta.json` is replaced.
pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
    /// The watch descriptor of each directory, in the order they were given.
    wds: Vec<i32>,
}

/// What came into the watched directories, as [`DirWatch::arrivals`] tells it.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// Each name created in or renamed into a directory: the directory's
    /// index in the list given to [`DirWatch::entries`], and the name.
    Named(Vec<(usize, String)>),
    /// The kernel dropped events (its queue, `fs.inotify.max_queued_events`,
    /// overflowed): anything may have come.
    Lost,
}

impl DirWatch {
    /// Watches `dir` for files renamed or created in it.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::entries(&[dir])
    }

    /// Watches each of `dirs` for files renamed or created in it.
    pub fn entries(dirs: &[&Path]) -> Result<Self> {
        // Each DirWatch is an inotify instance: a user has 128 by default (fs.inotify.max_user_instances).
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .context("inotify_init (fs.inotify.max_user_instances reached?)")?;
        let mut wds = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let flags = WatchFlags::MOVED_TO | WatchFlags::CREATE;
            wds.push(inotify::add_watch(&fd, *dir, flags).with_context(|| format!("cannot watch {}", dir.display()))?);
        }
        // SAFETY: the OwnedFd is moved in and stays open, unchanged, as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(DirWatch { fd, wds })
    }

    /// Resolves once something came into a watched directory after the last
    /// call (or after `open`), with what came: the names, which cost the
    /// caller nothing to look at one by one, or [`Arrivals::Lost`].
    pub async fn arrivals(&self) -> Result<Arrivals> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut names = Vec::new();
        loop {
            let mut guard = self.fd.readable().await?;
            let mut reader = inotify::Reader::new(self.fd.get_ref(), &mut buf);
            loop {
                match reader.next() {
                    Ok(event) if event.events().contains(inotify::ReadFlags::QUEUE_OVERFLOW) => {
                        return Ok(Arrivals::Lost); // the rest are read at the next call
                    }
                    Ok(event) => {
                        let dir = self.wds.iter().position(|wd| *wd == event.wd());
                        if let (Some(dir), Some(name)) = (dir, event.file_name()) {
                            names.push((dir, name.to_string_lossy().into_owned()));
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            guard.clear_ready();
            if !names.is_empty() {
                return Ok(Arrivals::Named(names));
            }
        }
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

/// Directories watched through one shared inotify instance, made on first
/// use (inside the tokio runtime, which reads it).
#[derive(Default)]
pub struct DirWatches {
    shared: Mutex<Option<Arc<Shared>>>,
}

struct Shared {
    fd: AsyncFd<OwnedFd>,
    /// Per watch descriptor, the wake-up of each [`Watched`] on it.
    waiters: Mutex<HashMap<i32, Vec<Arc<Notify>>>>,
}

/// One directory watched through [`DirWatches`]; the watch goes with the last
/// [`Watched`] of its directory.
pub struct Watched {
    shared: Arc<Shared>,
    wd: i32,
    wake: Arc<Notify>,
}

impl DirWatches {
    /// Watches `dir` for files renamed or created in it, as [`DirWatch::open`] does.
    pub fn open(&self, dir: &Path) -> Result<Watched> {
        let shared = self.shared()?;
        let wake = Arc::new(Notify::new());
        let mut waiters = shared.waiters.lock().unwrap();
        // Under the lock, so the reader cannot pass over an event of this watch before it is listed.
        let flags = WatchFlags::MOVED_TO | WatchFlags::CREATE | WatchFlags::MASK_ADD;
        let wd = inotify::add_watch(shared.fd.get_ref(), dir, flags)
            .with_context(|| format!("cannot watch {} (fs.inotify.max_user_watches reached?)", dir.display()))?;
        waiters.entry(wd).or_default().push(Arc::clone(&wake));
        drop(waiters);
        Ok(Watched { shared, wd, wake })
    }

    fn shared(&self) -> Result<Arc<Shared>> {
        let mut slot = self.shared.lock().unwrap();
        if let Some(shared) = &*slot {
            return Ok(Arc::clone(shared));
        }
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .context("inotify_init (fs.inotify.max_user_instances reached?)")?;
        // SAFETY: the OwnedFd is moved in and stays open, unchanged, as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        let shared = Arc::new(Shared { fd, waiters: Mutex::default() });
        tokio::spawn(read_events(Arc::clone(&shared)));
        *slot = Some(Arc::clone(&shared));
        Ok(shared)
    }
}

/// Wakes the waiters of each event's watch, for as long as the process runs.
async fn read_events(shared: Arc<Shared>) {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 16 * 1024];
    loop {
        let Ok(mut guard) = shared.fd.readable().await else { return };
        let mut reader = inotify::Reader::new(shared.fd.get_ref(), &mut buf);
        loop {
            match reader.next() {
                Ok(event) => {
                    let waiters = shared.waiters.lock().unwrap();
                    if event.events().contains(inotify::ReadFlags::QUEUE_OVERFLOW) {
                        waiters.values().flatten().for_each(|w| w.notify_one()); // events were lost: everyone looks
                    } else if let Some(list) = waiters.get(&event.wd()) {
                        list.iter().for_each(|w| w.notify_one());
                    }
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => {
                    tracing::error!("cannot read inotify events: {e}");
                    return;
                }
            }
        }
        guard.clear_ready();
    }
}

impl Watched {
    /// Resolves at the next change after the last call (or after `open`).
    pub async fn changed(&self) -> Result<()> {
        self.wake.notified().await;
        Ok(())
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut waiters = self.shared.waiters.lock().unwrap();
        if let Some(list) = waiters.get_mut(&self.wd) {
            list.retain(|w| !Arc::ptr_eq(w, &self.wake));
            if list.is_empty() {
                waiters.remove(&self.wd);
                let _ = inotify::remove_watch(self.shared.fd.get_ref(), self.wd);
            }
        }
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

    /// Names come with the directory they came into; past the kernel's
    /// queue of events, [`Arrivals::Lost`] says that some were dropped.
    #[tokio::test]
    async fn arrivals_name_each_file_and_tell_when_events_were_lost() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let watch = DirWatch::entries(&[a.path(), b.path()]).unwrap();
        std::fs::write(b.path().join("tmp"), "x").unwrap();
        std::fs::rename(b.path().join("tmp"), a.path().join("entry")).unwrap();
        std::fs::remove_file(a.path().join("entry")).unwrap();
        let came = tokio::time::timeout(Duration::from_secs(5), watch.arrivals()).await.unwrap().unwrap();
        assert_eq!(came, Arrivals::Named(vec![(1, "tmp".into()), (0, "entry".into())]));

        let queued: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .map_or(16384, |s| s.trim().parse().unwrap());
        for i in 0..=queued {
            std::fs::File::create(a.path().join(i.to_string())).unwrap();
        }
        let came = tokio::time::timeout(Duration::from_secs(5), watch.arrivals()).await.unwrap().unwrap();
        assert_eq!(came, Arrivals::Lost);
    }

    /// More directories than a user has inotify instances, through one
    /// instance; each wakes for its own change only, and a dropped watch of
    /// a directory leaves another of the same directory working.
    #[tokio::test]
    async fn one_instance_watches_more_directories_than_a_user_has_instances() {
        let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
            .map_or(128, |s| s.trim().parse().unwrap());
        let root = tempfile::tempdir().unwrap();
        let watches = DirWatches::default();
        let mut watched = Vec::new();
        for i in 0..limit + 10 {
            let dir = root.path().join(i.to_string());
            std::fs::create_dir(&dir).unwrap();
            watched.push((watches.open(&dir).unwrap(), dir));
        }
        let twice = watches.open(&watched[3].1).unwrap();
        let (last, dir) = watched.last().unwrap();
        std::fs::write(dir.join("meta.json"), "x").unwrap();
        tokio::time::timeout(Duration::from_secs(5), last.changed()).await.unwrap().unwrap();
        let others = tokio::time::timeout(Duration::from_millis(100), watched[0].0.changed()).await;
        assert!(others.is_err(), "another directory's change does not wake it");
        drop(watched.remove(3));
        std::fs::write(watched[2].1.parent().unwrap().join("3").join("meta.json"), "x").unwrap();
        tokio::time::timeout(Duration::from_secs(5), twice.changed()).await.unwrap().unwrap();
    }
}
