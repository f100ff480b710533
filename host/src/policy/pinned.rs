//! Policies pinned per job: at `job_start` the host records the policy set in
//! force (each component by the sha256 of its content, with its settings and
//! limits) in the job's `meta.json` (`policies`), and keeps a copy of every component
//! it loads under `$CODEX_JOBHOST_HOME/pinned/<sha256>.wasm`. The job's reads
//! use that set for good: an edited `jobhost.toml` or a replaced `.wasm`
//! applies to jobs started after it, and never switches a job's policies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::engine::sha256_hex;
use super::guest::LoadedComponent;
use super::source::{self, COMPONENT_MAX_BYTES};
use super::{FailureMode, Guest, GuestLimits, Policies, PolicySet, World};

use crate::home::PINNED_DIR;

/// A job's policy set as pinned at its start: `policies` in its `meta.json`
/// (`policies.json` in jobs of earlier versions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinnedSet {
    /// The project root the set was resolved for.
    pub project_root: Option<PathBuf>,
    /// The policy files it came from, user's first.
    pub sources: Vec<PathBuf>,
    /// Per-call fuel of each guest.
    pub fuel: u64,
    /// Per-call wall-clock backstop, in milliseconds.
    pub deadline_ms: u64,
    /// Bytes of memories and tables per instance.
    pub memory_bytes: usize,
    /// Time budget of one request, in milliseconds.
    pub request_budget_ms: u64,
    /// The entries, in the order they run.
    pub entries: Vec<PinnedEntry>,
}

/// One entry of a pinned set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinnedEntry {
    /// Its world.
    pub world: World,
    /// Its name.
    pub name: String,
    /// The sha256 of the component's content, lowercase hex.
    pub sha256: String,
    /// The file it was loaded from at the job's start (for messages only).
    pub path: PathBuf,
    /// Its settings, as JSON.
    pub config: String,
    /// What a failure shows (truncations).
    pub on_failure: FailureMode,
    /// Whether it judges the options the host cannot (approvals).
    #[serde(default)]
    pub judges_options: bool,
    /// Whether its decisions hold (approvals; false: shadow mode).
    #[serde(default = "enforced")]
    pub enforce: bool,
}

fn enforced() -> bool {
    true
}

impl PolicySet {
    /// This set, to pin on a job.
    pub fn pin(&self) -> PinnedSet {
        let entries = self
            .entries()
            .map(|(world, g)| PinnedEntry {
                world,
                name: g.name.to_string(),
                sha256: g.component.sha256.clone(),
                path: g.component.path.clone(),
                config: g.config().to_owned(),
                on_failure: g.failure_mode,
                judges_options: g.judges_options,
                enforce: g.enforce,
            })
            .collect();
        PinnedSet {
            project_root: self.project_root.clone(),
            sources: self.sources.clone(),
            fuel: self.limits.fuel,
            deadline_ms: self.limits.deadline.as_millis() as u64,
            memory_bytes: self.limits.memory,
            request_budget_ms: self.request_budget.as_millis() as u64,
            entries,
        }
    }
}

/// How long an unreferenced pinned copy is kept after it was last pinned or
/// written: a job start pins (and so touches) its copies milliseconds before
/// its `meta.json` names them.
pub const PINNED_GRACE: Duration = Duration::from_secs(3600);

impl Policies {
    /// Pins `set` for a new job: its [`PinnedSet`], with every copy under
    /// `pinned/` touched now, so that `jobs gc` keeps it while the job is made.
    /// A copy gone since the set was cached (collected) is written again: the
    /// set is reloaded from its files, and pinned from that.
    ///
    /// Errors: the set's files cannot be loaded again.
    pub fn pin(&self, set: &Arc<PolicySet>, cwd: &std::path::Path) -> Result<(Arc<PolicySet>, PinnedSet)> {
        let pinned = set.pin();
        if pinned.entries.iter().all(|e| self.touch_pinned_copy(&e.sha256)) {
            return Ok((Arc::clone(set), pinned));
        }
        self.forget_loaded();
        let set = self.for_cwd(cwd)?;
        let pinned = set.pin();
        for e in &pinned.entries {
            self.touch_pinned_copy(&e.sha256);
        }
        Ok((set, pinned))
    }

    /// Sets a pinned copy's modification time to now; false when it is gone.
    fn touch_pinned_copy(&self, sha256: &str) -> bool {
        let file = self.home.join(PINNED_DIR).join(format!("{sha256}.wasm"));
        std::fs::File::options()
            .append(true)
            .open(&file)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .is_ok()
    }

    /// Removes pinned copies no job in `referenced` uses and nobody pinned or
    /// wrote within [`PINNED_GRACE`]. Each is renamed aside first and its time
    /// checked again, so a start that pins it meanwhile (touching it) keeps it.
    /// Returns the bytes freed.
    ///
    /// Errors: the folder cannot be listed, or a copy cannot be removed.
    pub fn collect_pinned(home: &std::path::Path, referenced: &std::collections::HashSet<String>) -> Result<u64> {
        let dir = home.join(PINNED_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let stale = |path: &std::path::Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > PINNED_GRACE))
        };
        let mut freed = 0;
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let Some(sha) = name.strip_suffix(".wasm").filter(|s| !s.starts_with('.')) else { continue };
            if referenced.contains(sha) || !stale(&path) {
                continue;
            }
            let aside = dir.join(format!(".gc-{name}"));
            std::fs::rename(&path, &aside).with_context(|| format!("cannot move {}", path.display()))?;
            if !stale(&aside) {
                // Pinned this instant: put it back.
                std::fs::rename(&aside, &path).with_context(|| format!("cannot restore {}", path.display()))?;
                continue;
            }
            freed += std::fs::metadata(&aside).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&aside).with_context(|| format!("cannot delete {}", aside.display()))?;
        }
        Ok(freed)
    }

    /// Keeps a copy of a loaded component's `bytes` under `pinned/`, once per content.
    pub(super) fn keep_pinned_copy(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.home.join(PINNED_DIR);
        let file = dir.join(format!("{sha256}.wasm"));
        if file.is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir)?;
        std::io::Write::write_all(tmp.as_file_mut(), bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&file).with_context(|| format!("cannot write {}", file.display()))?;
        Ok(())
    }

    /// The policy set a job pinned at its start, built from the pinned
    /// copies of its components (cached per pinned set, so jobs that share
    /// one share warm instances).
    ///
    /// Errors: a pinned copy is gone or its content no longer has its sha256;
    /// the message names the entry, the file and the job's own record, and
    /// nothing falls back to other policies.
    pub fn for_pinned(&self, pinned: &PinnedSet) -> Result<Arc<PolicySet>> {
        let key = serde_json::to_string(pinned)?;
        if let Some(set) = self.pinned_sets.lock().unwrap().get(&key) {
            return Ok(Arc::clone(set));
        }
        let limits = GuestLimits {
            deadline: Duration::from_millis(pinned.deadline_ms),
            memory: pinned.memory_bytes,
            fuel: pinned.fuel,
        };
        let mut set = PolicySet {
            project_root: pinned.project_root.clone(),
            sources: pinned.sources.clone(),
            request_budget: Duration::from_millis(pinned.request_budget_ms),
            limits,
            ..PolicySet::default()
        };
        for entry in &pinned.entries {
            let component = self.pinned_component(entry)?;
            let guest = Guest::new(&entry.name, component, entry.config.clone(), limits)
                .on_failure(entry.on_failure)
                .judging_options(entry.judges_options)
                .enforcing(entry.enforce);
            match entry.world {
                World::Approval => set.approval.push(guest),
                World::Truncation => set.truncation.push(guest),
                World::Filter => set.filter.push(guest),
            }
        }
        let set = Arc::new(set);
        let mut sets = self.pinned_sets.lock().unwrap();
        if sets.len() >= 256 {
            sets.clear(); // bounded; a set is rebuilt from the cached components
        }
        sets.insert(key, Arc::clone(&set));
        Ok(set)
    }

    fn pinned_component(&self, entry: &PinnedEntry) -> Result<Arc<LoadedComponent>> {
        if let Some(c) = self.by_content.lock().unwrap().get(&entry.sha256) {
            return Ok(Arc::clone(c));
        }
        let dir = self.home.join(PINNED_DIR);
        let file = dir.join(format!("{}.wasm", entry.sha256));
        let what =
            format!("the pinned copy of policy {} ({}, sha256 {})", entry.name, entry.path.display(), entry.sha256);
        let Some(bytes) = source::read_inside(&dir, &file, COMPONENT_MAX_BYTES, "pinned policy component")? else {
            bail!("{what} is gone from {}: the job's policies cannot run", dir.display());
        };
        if sha256_hex(&bytes) != entry.sha256 {
            bail!("{what} was changed in {}: the job's policies cannot run", file.display());
        }
        let (component, _) = self.engine()?.load_bytes(&file, &bytes)?;
        let component = Arc::new(component);
        let mut cache = self.by_content.lock().unwrap();
        Ok(Arc::clone(cache.entry(entry.sha256.clone()).or_insert(component)))
    }
}
