//! Policy benchmarks (numbers for the issue note). Needs the guests built:
//! `cargo build --release --target wasm32-wasip2 --manifest-path guest-policies/Cargo.toml`,
//! then `cargo bench -p codex-jobhost --bench policy`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_jobhost::host::EventsRequest;
use codex_jobhost::job::{JobId, JobMeta, JobOptions, JobStatus, JobStore};
use codex_jobhost::policy::{Decision, Guest, GuestLimits, JobContext, LoadSource, Policies, PolicyEngine, Request};
use codex_jobhost::{HostConfig, JobHost};
use serde_json::json;

fn wasm(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../guest-policies/target/wasm32-wasip2/release/{name}.wasm"))
}

/// Median of `runs` timings of `f`, each over `batch` calls, per call.
fn per_call(runs: usize, batch: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let begun = Instant::now();
            for _ in 0..batch {
                f();
            }
            begun.elapsed() / batch
        })
        .collect();
    samples.sort();
    samples[runs / 2]
}

fn show(name: &str, d: Duration) {
    println!("{name:<58} {:>12.3} µs", d.as_secs_f64() * 1e6);
}

/// The process's resident set, in KiB (Linux `/proc/self/status`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resident memory added by policy sets of many entries, each instantiated
/// by one `decide`: one entry first (the engine's own cost), then the most a
/// user file and a project file may hold together (2 × 16), then one file of
/// 64 entries, which the host refuses.
fn memory_of_many_entries(job: &JobContext, request: &Request) {
    let home = tempfile::tempdir().unwrap();
    let policies = Policies::new(home.path());
    let project = |entries: usize| {
        let dir = tempfile::tempdir().unwrap();
        let codex = dir.path().join(".codex");
        std::fs::create_dir_all(&codex).unwrap();
        std::fs::copy(wasm("command_allowlist"), codex.join("allowlist.wasm")).unwrap();
        std::fs::write(codex.join("jobhost.toml"), "[[approval]]\npath = \"allowlist.wasm\"\n".repeat(entries))
            .unwrap();
        dir
    };
    std::fs::copy(wasm("command_allowlist"), home.path().join("allowlist.wasm")).unwrap();
    let before = rss_kib();
    let one = project(1);
    policies.for_cwd(one.path()).unwrap().decide(job, request);
    let after_one = rss_kib();
    std::fs::write(home.path().join("config.toml"), "[[approval]]\npath = \"allowlist.wasm\"\n".repeat(16)).unwrap();
    let most = project(16);
    let set = policies.for_cwd(most.path()).unwrap();
    set.decide(job, request);
    let after_most = rss_kib();
    println!("{:<58} {:>12} KiB", "RSS added: engine + 1 entry, after one decide", after_one - before);
    println!("{:<58} {:>12} KiB", "RSS added: 32 entries (16 user + 16 project), one decide", after_most - after_one);
    let refused = policies.for_cwd(project(64).path()).err().unwrap();
    println!("64 entries in one file: {refused:#}");
}

fn main() {
    let job = JobContext {
        job_id: JobId::new().to_string(),
        backend: "exec".into(),
        cwd: "/w".into(),
        project_root: None,
        prompt: "p".into(),
    };
    let request = Request::Command {
        command: "cargo test --all".into(),
        argv: vec!["cargo".into(), "test".into(), "--all".into()],
        raw: "/bin/bash -lc 'cargo test --all'".into(),
        cwd: "/w".into(),
        reason: None,
        network_host: None,
        origin: None,
    };
    memory_of_many_entries(&job, &request);
    let engine = PolicyEngine::new(None).unwrap();
    let (component, _) = engine.load(&wasm("command_allowlist")).unwrap();
    let component = Arc::new(component);
    let config = json!({"allow": ["cargo test"]}).to_string();

    let warm = Guest::new("allowlist", Arc::clone(&component), config.clone(), GuestLimits::default());
    assert_eq!(warm.decide(&job, &request).unwrap(), Decision::Accept);
    show(
        "decide, warm instance",
        per_call(21, 10_000, || {
            warm.decide(&job, &request).unwrap();
        }),
    );
    show(
        "fresh instance from InstancePre + one decide",
        per_call(21, 200, || {
            let fresh = Guest::new("allowlist", Arc::clone(&component), config.clone(), GuestLimits::default());
            fresh.decide(&job, &request).unwrap();
        }),
    );

    let cache = tempfile::tempdir().unwrap();
    let cached = PolicyEngine::new(Some(cache.path().to_path_buf())).unwrap();
    let compile = per_call(5, 1, || {
        let no_cache = PolicyEngine::new(None).unwrap();
        no_cache.load(&wasm("command_allowlist")).unwrap();
    });
    cached.load(&wasm("command_allowlist")).unwrap();
    let load = per_call(21, 10, || {
        assert_eq!(cached.load(&wasm("command_allowlist")).unwrap().1, LoadSource::Cache);
    });
    show("load a component, compiling it", compile);
    show("load a component from the on-disk cache", load);

    // job_events of 1,000 events, with no policy and with a filter and a truncation.
    let home = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    // A project whose `.codex/` holds these (table, guest) entries, each guest copied in.
    let project = |entries: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let codex = dir.path().join(".codex");
        std::fs::create_dir_all(&codex).unwrap();
        let mut toml = String::new();
        for (table, name) in entries {
            std::fs::copy(wasm(name), codex.join(format!("{name}.wasm"))).unwrap();
            toml += &format!("[[{table}]]\npath = \"{name}.wasm\"\n");
        }
        std::fs::write(codex.join("jobhost.toml"), toml).unwrap();
        dir
    };
    let governed = project(&[("truncation", "redact_secrets"), ("filter", "quiet_events")]);
    let filtered = project(&[("filter", "quiet_events")]);
    let truncated = project(&[("truncation", "redact_secrets")]);
    let store = JobStore::open(home.path()).unwrap();
    let mut jobs = Vec::new();
    for cwd in [plain.path(), governed.path(), filtered.path(), truncated.path()] {
        let meta = JobMeta {
            status: JobStatus::Completed,
            exit_code: Some(0),
            last_message: Some("the answer: ok\n".repeat(100)),
            ..JobMeta::queued(
                JobId::new(),
                "bench",
                cwd.to_path_buf(),
                codex_jobhost::job::BackendKind::Exec,
                JobOptions { approval_mode: "suggest".into(), ..Default::default() },
                "/bin/true".into(),
            )
        };
        let dir = store.materialize(&meta).unwrap();
        let mut events = dir.event_writer().unwrap();
        for i in 0..1000 {
            let item = json!({"id": format!("item_{i}"), "type": "command_execution", "command": "cargo test", "aggregated_output": format!("test {i} ... ok\n").repeat(20), "exit_code": 0});
            events.append("item.completed", json!({"type": "item.completed", "item": item})).unwrap();
        }
        jobs.push(meta.id.to_string());
    }
    let host = JobHost::open(HostConfig::new(Some(home.path().to_path_buf()), None).unwrap()).unwrap();
    let read = |job: &str| {
        let page = host
            .events(&EventsRequest {
                job_id: job.to_owned(),
                cursor: Some(0),
                limit: Some(1000),
                event_types: None,
                truncate: None,
                max_chars: None,
            })
            .unwrap();
        assert_eq!(page.events.len(), 1000);
    };
    jobs.iter().for_each(|j| read(j)); // load and compile the policies once
    // Rounds read each job once in turn, so a slow spell of the machine hits
    // all four alike; the cost added is the median of each round's difference.
    let timed = |job: &str| {
        let begun = Instant::now();
        read(job);
        begun.elapsed()
    };
    let rounds: Vec<[Duration; 4]> =
        (0..51).map(|_| [timed(&jobs[0]), timed(&jobs[1]), timed(&jobs[2]), timed(&jobs[3])]).collect();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let column = |i: usize| median(rounds.iter().map(|r| r[i]).collect());
    show("job_events, 1,000 events, no policy", column(0));
    show("job_events, 1,000 events, quiet-events only", column(2));
    show("job_events, 1,000 events, redact-secrets only", column(3));
    show("job_events, 1,000 events, redact-secrets + quiet-events", column(1));
    let added = median(rounds.iter().map(|r| r[1].saturating_sub(r[0])).collect());
    println!("{:<58} {:>12.3} ms", "  added by the policies (median of the rounds)", added.as_secs_f64() * 1e3);

    // job_status: no policy, and redact-secrets (every caller-visible field, where the host shapes them all).
    let status = |job: &str| {
        host.status(job, None, None).unwrap();
    };
    status(&jobs[3]);
    show("job_status, no policy", per_call(21, 200, || status(&jobs[0])));
    show("job_status, redact-secrets", per_call(21, 200, || status(&jobs[3])));
}
