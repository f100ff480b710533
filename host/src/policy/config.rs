//! Policy files and the [`Policies`] cache.
//!
//! Two files may name components, in the same format:
//! the user's `$CODEX_JOBHOST_HOME/config.toml` and the project's
//! `<project root>/.codex/jobhost.toml`:
//!
//! ```toml
//! [limits]                  # user file only: per-call limits of every guest
//! fuel = 200000000        # one call: about one unit per WebAssembly instruction
//! deadline_ms = 2000       # one call: a wall-clock backstop
//! memory_mib = 16          # one instance: its memories and tables together
//! request_budget_ms = 2000 # all the calls of one request (a job_events page, a job_status)
//!
//! [[approval]]              # also [[truncation]] and [[filter]]; any number, run in order
//! path = "policies/command_allowlist.wasm"   # relative to this file's directory; must stay inside
//!                                            # the project root (user file: the job home)
//! name = "allowlist"        # optional; default: the file name without .wasm
//! config = { allow = ["ls", "cargo test"], deny = ["rm -rf /"] }   # given to the guest as JSON
//! on_failure = "closed"    # [[truncation]] only: "closed" withholds the text when it
//!                          # fails, "open" shows the built-in cut; default: closed for a
//!                          # component whose name has "redact" in it or that fails on
//!                          # an empty text (e.g. its settings do not parse), open otherwise
//! judges_options = true    # [[approval]] only: it decides on launches with options the
//!                          # host cannot judge (`unjudged`); without one that does, such
//!                          # a launch is refused before any policy is asked
//! enforce = false          # [[approval]] only: shadow mode: asked about everything the
//!                          # others are, its decisions recorded, never applied
//! ```
//!
//! Changes to either file or to a `.wasm` take effect at the next lookup: the
//! cache is keyed by the files' modification times and sizes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::engine::{LoadSource, PolicyEngine};
use super::guest::{GuestLimits, LoadedComponent};
use super::source::{self, COMPONENT_MAX_BYTES, POLICY_FILE_MAX_BYTES};
use super::{FailureMode, Guest, PolicySet, World};

use crate::config::PROJECT_FILE;
use crate::home::USER_FILE;
/// Most `[[approval]]`, `[[truncation]]` and `[[filter]]` entries one policy file may hold.
pub const MAX_ENTRIES_PER_FILE: usize = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    limits: Option<LimitsTable>,
    /// Job settings: the user file's are read by `HostConfig`; a project
    /// file's (`max_running` only) are checked here.
    #[serde(default)]
    jobs: Option<toml::Table>,
    #[serde(default)]
    approval: Vec<Entry>,
    #[serde(default)]
    truncation: Vec<Entry>,
    #[serde(default)]
    filter: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsTable {
    deadline_ms: Option<u64>,
    memory_mib: Option<u64>,
    fuel: Option<u64>,
    request_budget_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    path: PathBuf,
    name: Option<String>,
    /// Truncation entries only: what a failure shows (see [`FailureMode`]).
    on_failure: Option<FailureMode>,
    /// Approval entries only: whether it judges the options the host cannot.
    #[serde(default)]
    judges_options: bool,
    /// Approval entries only: false runs it in shadow (see [`Guest::enforce`]).
    enforce: Option<bool>,
    #[serde(default)]
    config: toml::Table,
}

/// A file's identity for change detection: modification time and size, or
/// `None` when it does not exist.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// The nearest ancestor of `cwd` (itself included) that holds
/// `.codex/jobhost.toml` or `.git`.
pub fn project_root(cwd: &Path) -> Option<PathBuf> {
    // Any file there marks the root, a symlink or a FIFO too: the loader then
    // refuses it, so a broken policy file never silently means no policy.
    cwd.ancestors()
        .find(|dir| dir.join(PROJECT_FILE).symlink_metadata().is_ok() || dir.join(".git").exists())
        .map(Path::to_path_buf)
}

struct CachedSet {
    stamps: Vec<(PathBuf, Stamp)>,
    set: Arc<PolicySet>,
}

/// Resolves and caches the [`PolicySet`] of each project, and the loaded
/// components behind them. The wasmtime engine is made on first need, so a
/// host with no policies configured never pays for it.
pub struct Policies {
    pub(super) home: PathBuf,
    engine: OnceLock<PolicyEngine>,
    components: Mutex<HashMap<PathBuf, (Stamp, Arc<LoadedComponent>)>>,
    sets: Mutex<HashMap<Option<PathBuf>, CachedSet>>,
    /// Loaded components by the sha256 of their content (pinned sets).
    pub(super) by_content: Mutex<HashMap<String, Arc<LoadedComponent>>>,
    /// Pinned sets, by their JSON.
    pub(super) pinned_sets: Mutex<HashMap<String, Arc<PolicySet>>>,
}

impl Policies {
    /// Policies for the job home `home` (user file `home/config.toml`, compiled cache `home/cache/`).
    pub fn new(home: &Path) -> Self {
        Policies {
            home: home.to_path_buf(),
            engine: OnceLock::new(),
            components: Mutex::default(),
            sets: Mutex::default(),
            by_content: Mutex::default(),
            pinned_sets: Mutex::default(),
        }
    }

    /// The engine, made on first use.
    pub fn engine(&self) -> Result<&PolicyEngine> {
        if let Some(e) = self.engine.get() {
            return Ok(e);
        }
        let engine = PolicyEngine::new(Some(self.home.join(crate::home::CACHE_DIR)))?;
        Ok(self.engine.get_or_init(|| engine))
    }

    /// The policy set for a job working in `cwd`: the user's file, then the
    /// project's. Reuses the cached set while no file it came from changed.
    ///
    /// Errors: a policy file that does not parse, or a component it names that
    /// cannot be loaded; the message names the file and the reason. A broken
    /// policy never silently means no policy.
    pub fn for_cwd(&self, cwd: &Path) -> Result<Arc<PolicySet>> {
        let root = project_root(cwd);
        let files: Vec<PathBuf> =
            std::iter::once(self.home.join(USER_FILE)).chain(root.as_ref().map(|r| r.join(PROJECT_FILE))).collect();
        if let Some(cached) = self.sets.lock().unwrap().get(&root) {
            if cached.stamps.iter().all(|(path, s)| stamp(path) == *s) {
                return Ok(Arc::clone(&cached.set));
            }
        }
        let mut stamps: Vec<(PathBuf, Stamp)> = files.iter().map(|f| (f.clone(), stamp(f))).collect();
        let mut set = PolicySet { project_root: root.clone(), ..PolicySet::default() };
        let mut limits = GuestLimits::default();
        for (i, file) in files.iter().enumerate() {
            // The user's file governs the home; a project's, its root.
            let jail = if i == 0 { self.home.as_path() } else { root.as_deref().unwrap_or(Path::new("/")) };
            let Some(parsed) = read_file(jail, file)? else {
                continue;
            };
            let entries = parsed.approval.len() + parsed.truncation.len() + parsed.filter.len();
            if entries > MAX_ENTRIES_PER_FILE {
                bail!("{}: {entries} policy entries; the limit is {MAX_ENTRIES_PER_FILE} per file", file.display());
            }
            set.sources.push(file.clone());
            if let (true, Some(jobs)) = (i > 0, &parsed.jobs) {
                crate::config::project_jobs(file, jobs)?;
            }
            if let Some(l) = &parsed.limits {
                if i > 0 {
                    bail!("{}: [limits] belongs in the user's {USER_FILE}, not in a project file", file.display());
                }
                limits = limits_from(l, file)?;
                if let Some(ms) = l.request_budget_ms {
                    if !(1..=600_000).contains(&ms) {
                        bail!("{}: invalid limits.request_budget_ms {ms}: expected 1 to 600000", file.display());
                    }
                    set.request_budget = Duration::from_millis(ms);
                }
            }
            let base = file.parent().unwrap_or(Path::new("/"));
            for (world, entries) in [
                (World::Approval, &parsed.approval),
                (World::Truncation, &parsed.truncation),
                (World::Filter, &parsed.filter),
            ] {
                for entry in entries {
                    let path = base.join(&entry.path);
                    let component = self.component(jail, &path).with_context(|| format!("in {}", file.display()))?;
                    if component.world != world {
                        bail!(
                            "{}: {} is listed under [[{}]] but implements the {} world",
                            file.display(),
                            path.display(),
                            world.table(),
                            component.world.world_name()
                        );
                    }
                    stamps.push((path.clone(), stamp(&path)));
                    let name = entry.name.clone().unwrap_or_else(|| {
                        path.file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| path.display().to_string())
                    });
                    let config = serde_json::to_string(&entry.config)?;
                    if entry.on_failure.is_some() && world != World::Truncation {
                        bail!(
                            "{}: on_failure is for [[truncation]] entries; {} is under [[{}]]",
                            file.display(),
                            path.display(),
                            world.table()
                        );
                    }
                    if entry.judges_options && (world != World::Approval || component.version.starts_with("0.1.")) {
                        bail!(
                            "{}: judges_options is for [[approval]] components of WIT 0.2 or later, whose launch request lists the options; {} is a {} component of WIT {}",
                            file.display(),
                            path.display(),
                            world.world_name(),
                            component.version
                        );
                    }
                    if entry.enforce.is_some() && world != World::Approval {
                        bail!(
                            "{}: enforce is for [[approval]] entries; {} is under [[{}]]",
                            file.display(),
                            path.display(),
                            world.table()
                        );
                    }
                    let on_failure = entry.on_failure.unwrap_or_else(|| FailureMode::default_for(&name));
                    let mut guest = Guest::new(&name, component, config, limits)
                        .on_failure(on_failure)
                        .judging_options(entry.judges_options)
                        .enforcing(entry.enforce.unwrap_or(true));
                    if world == World::Truncation && entry.on_failure.is_none() {
                        guest = fail_closed_if_broken(guest);
                    }
                    match world {
                        World::Approval => set.approval.push(guest),
                        World::Truncation => set.truncation.push(guest),
                        World::Filter => set.filter.push(guest),
                    }
                }
            }
        }
        set.limits = limits;
        let set = Arc::new(set);
        self.sets.lock().unwrap().insert(root, CachedSet { stamps, set: Arc::clone(&set) });
        Ok(set)
    }

    /// A loaded component from a file inside `jail`, reused while the file is unchanged.
    fn component(&self, jail: &Path, path: &Path) -> Result<Arc<LoadedComponent>> {
        let now = stamp(path);
        if let Some((s, c)) = self.components.lock().unwrap().get(path) {
            if now.is_some() && *s == now {
                return Ok(Arc::clone(c));
            }
        }
        let Some(bytes) = source::read_inside(jail, path, COMPONENT_MAX_BYTES, "policy component")? else {
            bail!("policy component {} does not exist", path.display());
        };
        let (component, source) = self.engine()?.load_bytes(path, &bytes)?;
        tracing::info!(path = %path.display(), world = component.world.world_name(), from = ?source, "loaded policy component");
        // A job started under it runs under this content for good.
        self.keep_pinned_copy(&component.sha256, &bytes)?;
        let component = Arc::new(component);
        self.components.lock().unwrap().insert(path.to_path_buf(), (now, Arc::clone(&component)));
        self.by_content.lock().unwrap().insert(component.sha256.clone(), Arc::clone(&component));
        Ok(component)
    }

    /// Forgets the sets and components loaded from files, so the next
    /// [`Policies::for_cwd`] loads them again (and writes their pinned copies).
    pub(super) fn forget_loaded(&self) {
        self.sets.lock().unwrap().clear();
        self.components.lock().unwrap().clear();
    }

    /// Loads one component file on its own (for `policy check` and `policy test`).
    pub fn load_file(&self, path: &Path) -> Result<(Arc<LoadedComponent>, LoadSource)> {
        let (c, s) = self.engine()?.load(path)?;
        Ok((Arc::new(c), s))
    }
}

/// A policy file under `jail`, parsed; `None` when it does not exist.
fn read_file(jail: &Path, path: &Path) -> Result<Option<PolicyFile>> {
    let Some(bytes) = source::read_inside(jail, path, POLICY_FILE_MAX_BYTES, "policy file")? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).with_context(|| format!("policy file {} is not UTF-8", path.display()))?;
    let parsed = toml::from_str(&text).with_context(|| format!("policy file {} is not valid", path.display()))?;
    Ok(Some(parsed))
}

fn limits_from(table: &LimitsTable, file: &Path) -> Result<GuestLimits> {
    let mut limits = GuestLimits::default();
    if let Some(ms) = table.deadline_ms {
        if !(1..=60_000).contains(&ms) {
            bail!("{}: invalid limits.deadline_ms {ms}: expected 1 to 60000", file.display());
        }
        limits.deadline = Duration::from_millis(ms);
    }
    if let Some(fuel) = table.fuel {
        if !(1_000..=1_000_000_000_000).contains(&fuel) {
            bail!("{}: invalid limits.fuel {fuel}: expected 1000 to 1000000000000", file.display());
        }
        limits.fuel = fuel;
    }
    if let Some(mib) = table.memory_mib {
        if !(1..=4096).contains(&mib) {
            bail!("{}: invalid limits.memory_mib {mib}: expected 1 to 4096", file.display());
        }
        limits.memory = (mib as usize) << 20;
    }
    Ok(limits)
}

/// A truncation whose entry does not choose `on_failure`, and that fails on
/// an empty text (its settings do not parse, or it is broken otherwise),
/// fails closed: what it cannot shape is withheld, never shown unshaped.
fn fail_closed_if_broken(guest: Guest) -> Guest {
    if guest.failure_mode == FailureMode::Closed {
        return guest;
    }
    match guest.truncate(&super::JobContext::default(), "", super::builtin::OUTPUT_LIMITS) {
        Ok(_) => guest,
        Err(error) => {
            tracing::warn!(component = &*guest.name, "fails closed: it failed on an empty text: {error}");
            guest.on_failure(FailureMode::Closed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_root_is_the_nearest_marked_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("repo/sub/dir");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(project_root(&deep), None);
        std::fs::create_dir_all(tmp.path().join("repo/.git")).unwrap();
        assert_eq!(project_root(&deep), Some(tmp.path().join("repo")));
        std::fs::create_dir_all(tmp.path().join("repo/sub/.codex")).unwrap();
        std::fs::write(tmp.path().join("repo/sub/.codex/jobhost.toml"), "").unwrap();
        assert_eq!(project_root(&deep), Some(tmp.path().join("repo/sub")));
    }

    #[test]
    fn nothing_configured_is_the_built_in_set_without_an_engine() {
        let tmp = tempfile::tempdir().unwrap();
        let policies = Policies::new(tmp.path());
        let set = policies.for_cwd(tmp.path()).unwrap();
        assert!(set.is_empty());
        assert!(policies.engine.get().is_none(), "no engine made");
    }

    #[test]
    fn bad_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let policies = Policies::new(tmp.path());
        std::fs::write(tmp.path().join(USER_FILE), "[[approval]]\npath = \"missing.wasm\"\n").unwrap();
        let err = format!("{:#}", policies.for_cwd(tmp.path()).err().unwrap());
        assert!(err.contains("missing.wasm does not exist") && err.contains("config.toml"), "{err}");
        std::fs::write(tmp.path().join(USER_FILE), "[[approvals]]\npath = \"x.wasm\"\n").unwrap();
        let err = format!("{:#}", policies.for_cwd(tmp.path()).err().unwrap());
        assert!(err.contains("not valid") && err.contains("approvals"), "{err}");
        std::fs::write(tmp.path().join(USER_FILE), "[limits]\ndeadline_ms = 0\n").unwrap();
        let err = format!("{:#}", policies.for_cwd(tmp.path()).err().unwrap());
        assert!(err.contains("invalid limits.deadline_ms 0"), "{err}");
        std::fs::write(tmp.path().join("not.wasm"), "hello").unwrap();
        std::fs::write(tmp.path().join(USER_FILE), "[[filter]]\npath = \"not.wasm\"\n").unwrap();
        let err = format!("{:#}", policies.for_cwd(tmp.path()).err().unwrap());
        assert!(err.contains("not.wasm") && err.contains("not a WebAssembly file"), "{err}");
    }
}
