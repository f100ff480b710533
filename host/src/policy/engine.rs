//! The shared wasmtime engine, the epoch ticker behind guest deadlines, and
//! loading components: compiled once, cached on disk, checked for their world
//! and WIT version.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::World;
use super::bindings::{self, PACKAGE, SUPPORTED};
use super::guest::{EPOCH_TICK, LoadedComponent, WorldPre};
use super::source::{self, COMPONENT_MAX_BYTES};
use super::state::State;

/// The engine and the linkers, one per world. Cheap to clone.
#[derive(Clone)]
pub struct PolicyEngine {
    engine: Engine,
    linkers: Arc<[Linker<State>; 3]>,
    cache_dir: Option<PathBuf>,
    cache_max_bytes: u64,
}

/// The most the compiled-component cache holds by default, in bytes: 512 MiB.
/// Beyond it, the least recently used entries are removed.
pub const CACHE_MAX_BYTES: u64 = 512 << 20;

/// Where a load found its compiled code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled now (and written to the cache, if there is one).
    Compiled,
    /// Read from the on-disk cache.
    Cache,
}

impl PolicyEngine {
    /// An engine with epoch interruption on, caching compiled components in
    /// `cache_dir` (created if needed) when given.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        let engine = shared_engine()?.clone();
        let linker = |add: fn(&mut Linker<State>) -> wasmtime::Result<()>| -> Result<Linker<State>> {
            let mut linker = Linker::new(&engine);
            add_guest_wasi(&mut linker)?;
            add(&mut linker)?;
            Ok(linker)
        };
        let linkers =
            [linker(bindings::add_approval)?, linker(bindings::add_truncation)?, linker(bindings::add_filter)?];
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the component cache {}", dir.display()))?;
        }
        Ok(PolicyEngine { engine, linkers: Arc::new(linkers), cache_dir, cache_max_bytes: CACHE_MAX_BYTES })
    }

    /// Loads a component file named directly (`policy check`): a regular
    /// file of at most [`COMPONENT_MAX_BYTES`]; then as [`PolicyEngine::load_bytes`].
    pub fn load(&self, path: &Path) -> Result<(LoadedComponent, LoadSource)> {
        let bytes = source::read_file(path, COMPONENT_MAX_BYTES, "policy component")?;
        self.load_bytes(path, &bytes)
    }

    /// Loads a component from its bytes, read from `path`: compiled code from
    /// the cache (keyed by the sha256 of its bytes and the engine's
    /// compatibility hash, which includes the wasmtime version) or compiled
    /// now; then its world and WIT version are checked, its imports resolved
    /// and its exports type-checked against the world.
    ///
    /// Errors name the file and the reason: not WebAssembly, a core module
    /// instead of a component, a WIT version the host does not support, no
    /// world of `codex-jobhost:policy`, exports of the wrong type, or imports
    /// the host does not offer.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<(LoadedComponent, LoadSource)> {
        let shown = path.display();
        check_header(bytes).with_context(|| format!("policy component {shown} is refused"))?;
        let (component, source) =
            self.compile_cached(bytes).with_context(|| format!("policy component {shown} does not compile"))?;
        let (world, version, interface) =
            self.identify(&component).with_context(|| format!("policy component {shown} is refused"))?;
        let linker = &self.linkers[world as usize];
        let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
            format!("policy component {shown} needs imports the host does not offer (it may import `{PACKAGE}/host` and, of WASI 0.2, only io, cli, wall-clock, random and filesystem: no monotonic clock, so no sleeping, and no sockets)")
        })?;
        let pre = WorldPre::new(world, &version, &interface, pre).map_err(anyhow::Error::from).with_context(|| {
            format!("policy component {shown} does not match the {} world of {PACKAGE}@{version}", world.world_name())
        })?;
        let sha256 = sha256_hex(bytes);
        Ok((LoadedComponent { path: path.to_path_buf(), world, version, sha256, pre }, source))
    }

    fn compile_cached(&self, bytes: &[u8]) -> Result<(Component, LoadSource)> {
        let Some(dir) = &self.cache_dir else {
            return Ok((Component::from_binary(&self.engine, bytes)?, LoadSource::Compiled));
        };
        let key = self.cache_key(bytes);
        let entry = dir.join(format!("{key}.cwasm"));
        // One compile per content at a time, across threads and processes:
        // the others wait here, then find the entry.
        let _compiling = lock(&dir.join(format!("{key}.lock")))?;
        if entry.is_file() {
            // SAFETY: the cache holds only what this host wrote; wasmtime checks
            // the header and engine compatibility and refuses what does not match.
            match unsafe { Component::deserialize_file(&self.engine, &entry) } {
                Ok(component) => {
                    touch(&entry); // its age orders the trim: least recently used first
                    return Ok((component, LoadSource::Cache));
                }
                Err(e) => tracing::warn!("recompiling {}: the cache entry does not load: {e:#}", entry.display()),
            }
        }
        let component = Component::from_binary(&self.engine, bytes)?;
        let compiled = component.serialize()?;
        // Written aside and renamed, so a reader never sees half an entry.
        let mut tmp = tempfile_in(dir)?;
        std::io::Write::write_all(tmp.as_file_mut(), &compiled)?;
        if let Err(e) = tmp.persist(&entry) {
            tracing::warn!("cannot write the cache entry {}: {e}", entry.display());
        }
        if let Err(e) = trim(dir, self.cache_max_bytes, &entry) {
            tracing::warn!("cannot trim the component cache {}: {e:#}", dir.display());
        }
        Ok((component, LoadSource::Compiled))
    }

    /// Sets the most the on-disk cache may hold, in bytes (default
    /// [`CACHE_MAX_BYTES`]); it is trimmed after each compile.
    pub fn set_cache_limit(&mut self, bytes: u64) {
        self.cache_max_bytes = bytes;
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut hasher = Sha256Hasher(Sha256::new());
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(bytes);
        hex(&hasher.0.finalize())
    }

    /// The world a component implements, the WIT version it was built
    /// against, and the name it exports the world's interface under.
    fn identify(&self, component: &Component) -> Result<(World, String, String)> {
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(name, _)| name.to_owned()).collect();
        let mut found = Vec::new();
        for name in &exports {
            let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else {
                continue;
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            let world = match interface {
                "approval" => World::Approval,
                "truncation" => World::Truncation,
                "filter" => World::Filter,
                _ => continue,
            };
            found.push((world, version.to_owned(), name.clone()));
        }
        match found.as_slice() {
            [] => bail!(
                "it implements none of the worlds approval-policy, output-truncation, event-filter of {PACKAGE} (its exports: {})",
                if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
            ),
            [(world, version, name)] => {
                if !version_supported(version) {
                    bail!(
                        "it was built for {PACKAGE}@{version}; this host supports {PACKAGE}@{}.x (rebuild it against the host's wit/)",
                        SUPPORTED.join(".x and ")
                    );
                }
                Ok((*world, version.clone(), name.clone()))
            }
            _ => bail!("it exports more than one policy interface; a component implements exactly one world"),
        }
    }
}

/// The part of WASI 0.2 a Rust `wasm32-wasip2` guest needs to start, print
/// and fail cleanly: streams, stdio, environment (empty), exit, the wall
/// clock (frozen), random, and the filesystem (with nothing opened).
///
/// Left out on purpose: `wasi:clocks/monotonic-clock`, whose
/// `subscribe-duration` is the one way a guest could sleep in a host call,
/// where the deadline cannot stop it; and `wasi:sockets`. Every pollable a
/// guest can still make (stdio streams) is ready at once, so `wasi:io/poll`
/// never blocks. A component importing more is refused at load, naming the import.
fn add_guest_wasi(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    use wasmtime_wasi::WasiView;
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    struct HasTable;
    impl wasmtime::component::HasData for HasTable {
        type Data<'a> = &'a mut wasmtime::component::ResourceTable;
    }
    let l = linker;
    sync::io::error::add_to_linker::<State, HasTable>(l, |t| t.ctx().table)?;
    sync::io::poll::add_to_linker::<State, HasTable>(l, |t| t.ctx().table)?;
    sync::io::streams::add_to_linker::<State, HasTable>(l, |t| t.ctx().table)?;
    cli::exit::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::environment::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_input::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_output::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    clocks::wall_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
    random::random::add_to_linker::<State, WasiRandom>(l, State::random)?;
    random::insecure::add_to_linker::<State, WasiRandom>(l, State::random)?;
    random::insecure_seed::add_to_linker::<State, WasiRandom>(l, State::random)?;
    filesystem::preopens::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;
    sync::filesystem::types::add_to_linker::<State, WasiFilesystem>(l, State::filesystem)?;
    Ok(())
}

/// Whether `version` is in one of the [`SUPPORTED`] lines: `0.y.z` is in
/// `0.y`; for 1.0 and later, `x.y.z` is in `x.*`.
fn version_supported(version: &str) -> bool {
    let mut parts = version.split('.');
    let (major, minor) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    SUPPORTED.iter().any(|line| {
        let mut want = line.split('.');
        let (want_major, want_minor) = (want.next().unwrap_or(""), want.next().unwrap_or(""));
        major == want_major && (major != "0" || minor == want_minor)
    })
}

/// Refuses what is not a WebAssembly component before compiling it.
fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!("it is not a WebAssembly file (no \\0asm header)");
    }
    // Bytes 4..8: version and layer; layer 0 is a core module, 1 a component.
    if bytes[6..8] == [0, 0] {
        bail!(
            "it is a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
        );
    }
    Ok(())
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An exclusive `flock` on `path` (created if needed), held until dropped.
fn lock(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// Marks a cache entry as used now.
fn touch(entry: &Path) {
    let touched =
        std::fs::OpenOptions::new().write(true).open(entry).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!("cannot mark {} as used: {e}", entry.display());
    }
}

/// Removes the least recently used entries (and their lock files) until the
/// cache holds at most `max` bytes; `keep`, the entry just written, stays.
fn trim(dir: &Path, max: u64, keep: &Path) -> Result<()> {
    let mut entries = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let meta = item.metadata()?;
            entries.push((meta.modified()?, meta.len(), path));
        }
    }
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort();
    for (_, len, path) in entries {
        if total <= max {
            break;
        }
        if path == keep {
            continue;
        }
        std::fs::remove_file(&path)?;
        // A load waiting on this lock compiles again at worst; nothing tears.
        let _ = std::fs::remove_file(path.with_extension("lock"));
        total -= len;
        tracing::info!(entry = %path.display(), "removed from the component cache (least recently used)");
    }
    Ok(())
}

fn tempfile_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    Ok(tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?)
}

/// Feeds `Hash` output into sha256.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The one wasmtime engine of the process, with epoch interruption on. Its
/// epoch advances every [`EPOCH_TICK`] on a thread started with it, so a
/// host that never loads a policy never starts either.
fn shared_engine() -> Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine);
    }
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Fuel bounds a guest's work deterministically; the epoch deadline is the backstop.
    config.consume_fuel(true);
    config.wasm_component_model(true);
    // One memory per core module: no guest needs more, and each counts
    // against the same budget anyway (see `GuestBudget`).
    config.wasm_multi_memory(false);
    let engine = Engine::new(&config)?;
    let mut started = false;
    let engine = ENGINE.get_or_init(|| {
        started = true;
        engine
    });
    if started {
        let ticking = engine.clone();
        std::thread::Builder::new().name("policy-epoch".into()).spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                ticking.increment_epoch();
            }
        })?;
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        assert!(version_supported("0.1.0"));
        assert!(version_supported("0.1.7"));
        assert!(version_supported("0.2.0"));
        assert!(version_supported("0.3.0"));
        assert!(!version_supported("0.4.0"));
        assert!(!version_supported("1.1.0"));
        assert!(!version_supported(""));
    }

    #[test]
    fn headers() {
        assert!(check_header(b"hello").unwrap_err().to_string().contains("not a WebAssembly file"));
        assert!(check_header(b"\0asm\x01\0\0\0").unwrap_err().to_string().contains("core WebAssembly module"));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
