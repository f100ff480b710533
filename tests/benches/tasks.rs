//! Benchmark of `tasks/get` (MCP 2026-07-28 tasks extension) on a home of
//! 10,000 jobs: the round trip through a raw client on stdio, p50 and p99,
//! side by side in one run with `job_status` on the same jobs (taken
//! alternating, so each pair shares the machine's state).
//!
//! Run: `cargo build --release -p codex-jobhost && CODEX_JOBHOST_BIN=target/release/codex-jobhost
//! CODEX_BIN=… cargo bench -p codex-jobhost-e2e --bench tasks`

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use codex_jobhost_e2e::raw::RawClient;
use codex_jobhost_e2e::{Reply, World};
use serde_json::json;

/// Jobs in the home.
const JOBS: usize = 10_000;
/// Round trips of each kind.
const SAMPLES: usize = 2_000;
/// Servers log as users run them, not at the tests' debug level.
const QUIET: &[(&str, &str)] = &[("RUST_LOG", "warn")];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let at = |q: f64| ms(samples[((n as f64 * q) as usize).min(n - 1)]);
    println!("{name:<40} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  (n={n})", at(0.5), at(0.99), at(1.0));
}

#[tokio::main]
async fn main() -> Result<()> {
    let world = World::new([Reply::Message("the answer".into())])?;
    let mut client = RawClient::start(&world, QUIET).await?;
    let created = client.call("job_start", world.start_args("one job"), true).await?;
    let task_id = created["taskId"].as_str().context("taskId")?.to_owned();
    let done = client.poll(&task_id, false).await?;
    ensure!(done["status"] == "completed", "{done}");
    client.stop().await?;

    // 10,000 copies of the completed job.
    let jobs_dir = world.jobhost_home().join("jobs");
    let (template_id, _) = task_id.rsplit_once('.').context("task id")?;
    let template = jobs_dir.join(template_id);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(template.join("meta.json"))?)?;
    let mut ids = vec![template_id.to_owned()];
    while ids.len() < JOBS {
        let id = uuid::Uuid::now_v7().to_string();
        let dir = jobs_dir.join(&id);
        std::fs::create_dir(&dir)?;
        for entry in std::fs::read_dir(&template)? {
            let entry = entry?;
            if entry.file_name() != "meta.json" && entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
            }
        }
        let mut meta = meta.clone();
        meta["id"] = json!(id);
        std::fs::write(dir.join("meta.json"), serde_json::to_vec(&meta)?)?;
        ids.push(id);
    }

    let mut client = RawClient::start(&world, QUIET).await?;
    let (mut tasks, mut status) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..SAMPLES {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let job = &ids[(seed >> 33) as usize % ids.len()];
        let begun = Instant::now();
        let task = client.get(&format!("{job}.0"), false).await?;
        tasks.push(begun.elapsed());
        ensure!(task["status"] == "completed", "{task}");
        let begun = Instant::now();
        let report = client.call("job_status", json!({"job_id": job}), false).await?;
        status.push(begun.elapsed());
        ensure!(report["structuredContent"]["status"] == "completed", "{report}");
    }
    println!("home of {} jobs, one server, a raw 2026-07-28 client on stdio", ids.len());
    report("tasks/get (a completed turn)", tasks);
    report("job_status (the same jobs)", status);
    client.stop().await
}
