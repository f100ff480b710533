//! Processes the host did not necessarily start: waiting for a supervisor to
//! exit through a pidfd, and signalling its process group.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A handle on a running process that becomes ready when it exits, whether or
/// not it is this process's child: a Linux pidfd polled by tokio, so waiting
/// costs no timer and no thread.
#[derive(Debug)]
pub struct ProcessWatch {
    pid: u32,
    fd: AsyncFd<OwnedFd>,
}

impl ProcessWatch {
    /// Opens a pidfd on `pid`. `Ok(None)` when no such process exists.
    pub fn open(pid: u32) -> Result<Option<Self>> {
        let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return Ok(None);
        };
        match pidfd_open(raw, PidfdFlags::empty()) {
            Ok(fd) => {
                // SAFETY: the OwnedFd is moved in and stays open, unchanged, as long as the AsyncFd.
                let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
                Ok(Some(ProcessWatch { pid, fd }))
            }
            Err(rustix::io::Errno::SRCH) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("pidfd_open({pid})")),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves once the process has exited.
    pub async fn exited(&self) {
        // A pidfd turns readable when its process exits and stays so.
        let _ = self.fd.readable().await;
    }

    /// Whether the process's command line contains every one of `parts`:
    /// checked after opening the pidfd, so a pid reused by an unrelated
    /// process is not mistaken for the one recorded.
    pub fn command_line_contains(&self, parts: &[&str]) -> bool {
        let Ok(raw) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        let args: Vec<String> = raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        parts.iter().all(|p| args.iter().any(|a| a.contains(p)))
    }
}

/// Sends `signal` to the process group `pgid`. A group that is already gone is not an error.
pub fn signal_group(pgid: u32, signal: Signal) -> Result<()> {
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        anyhow::bail!("invalid process group {pgid}");
    };
    match kill_process_group(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot signal process group {pgid}")),
    }
}

/// Sends `signal` to the one process `pid`; a process that is gone is not an error.
pub fn signal_process(pid: u32, signal: Signal) -> Result<()> {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        anyhow::bail!("invalid pid {pid}");
    };
    match rustix::process::kill_process(p, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot signal process {pid}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_pidfd_wakes_when_the_process_exits() {
        let mut child = tokio::process::Command::new("sleep").arg("0.5").spawn().unwrap();
        let watch = ProcessWatch::open(child.id().unwrap()).unwrap().unwrap();
        // /proc may show the pre-exec command line for a moment.
        let begun = std::time::Instant::now();
        while !watch.command_line_contains(&["sleep", "0.5"]) {
            assert!(begun.elapsed() < Duration::from_millis(400), "never showed sleep 0.5");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!watch.command_line_contains(&["supervise"]));
        tokio::time::timeout(Duration::from_secs(5), watch.exited()).await.unwrap();
        let pid = child.id().unwrap();
        child.wait().await.unwrap();
        assert!(ProcessWatch::open(pid).unwrap().is_none(), "a reaped process is gone");
    }
}
