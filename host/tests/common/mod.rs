//! Helpers shared by the policy tests: built guests, a job, requests.
#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codex_jobhost::policy::{Guest, GuestLimits, JobContext, Policies, PolicyEngine, PolicySet, Request};

/// A built guest: `$GUEST_POLICIES_DIR/<name>.wasm`, by default
/// `guest-policies/target/wasm32-wasip2/release`.
pub fn wasm(name: &str) -> PathBuf {
    let dir = std::env::var_os("GUEST_POLICIES_DIR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-policies/target/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the guests first (cargo build --release --target wasm32-wasip2 --manifest-path guest-policies/Cargo.toml)",
        path.display()
    );
    path
}

pub fn guest(engine: &PolicyEngine, name: &str, config: serde_json::Value) -> Guest {
    let (component, _) = engine.load(&wasm(name)).unwrap();
    Guest::new(name, Arc::new(component), config.to_string(), GuestLimits::default())
}

/// Copies the built guest `name` into `dir` (policies may only name files
/// inside the directory their file governs); returns its file name there.
pub fn copy_guest(dir: &Path, name: &str) -> String {
    let file = format!("{name}.wasm");
    std::fs::copy(wasm(name), dir.join(&file)).unwrap();
    file
}

/// The policy set of a user-level `config.toml` holding `toml`, with the
/// `guests` copied into the home as `<name>.wasm` (the home must outlive the set).
pub fn user_policies(guests: &[&str], toml: &str) -> (tempfile::TempDir, Arc<PolicySet>) {
    let home = tempfile::tempdir().unwrap();
    for name in guests {
        copy_guest(home.path(), name);
    }
    std::fs::write(home.path().join("config.toml"), toml).unwrap();
    let set = Policies::new(home.path()).for_cwd(home.path()).unwrap();
    (home, set)
}

pub fn job() -> JobContext {
    JobContext {
        job_id: "0192f5d2-6a1b-7c3d-8e4f-0123456789ab".into(),
        backend: "exec".into(),
        cwd: "/w".into(),
        project_root: None,
        prompt: "p".into(),
    }
}

pub fn command(c: &str) -> Request {
    Request::command(c, "/w")
}

pub fn launch(mode: &str) -> Request {
    Request::Launch(codex_jobhost::policy::Launch { approval_mode: mode.into(), ..Default::default() })
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with the host's log going to a buffer; returns `f`'s result and the log.
pub fn capture_log<R>(f: impl FnOnce() -> R) -> (R, String) {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    (result, text)
}
