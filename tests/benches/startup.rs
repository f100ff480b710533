//! Benchmarks of a server's start and of the durable queue (release build,
//! the real Codex CLI, the mock model), side by side in one run:
//!
//! - the first `job_start` right after `initialize`, with the Codex probe
//!   cached on disk and with the cache removed before each start;
//! - with `CODEX_MCP_ASYNC_BIN` set (the `codex-mcp-async` command of
//!   <https://pypi.org/project/codex-mcp-async/>, e.g. `pip install
//!   codex-mcp-async` in a venv), the same first call against that server's
//!   `codex_execute_async`, alternating with `job_start`: it starts `codex
//!   exec` at once and keeps no durable record;
//! - 200 quick `job_start`s in a row: time until all are acknowledged, the
//!   most supervisors and Codex processes alive at once and the peak
//!   1-minute load, under the default limit on running turns;
//! - `jobs gc` on 10,000 ended jobs.
//!
//! Run: `cargo build --release -p codex-jobhost && CODEX_JOBHOST_BIN=target/release/codex-jobhost
//! CODEX_BIN=… cargo bench -p codex-jobhost-e2e --bench startup`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use codex_jobhost_e2e::{World, codex_bin, host_bin, path_with};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::json;

/// Servers log as users run them, not at the tests' debug level.
const QUIET: &[(&str, &str)] = &[("RUST_LOG", "warn")];

/// Samples of each first-call measure (taken alternating, so each pair shares the machine's state).
const SAMPLES: usize = 20;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    println!(
        "{name:<52} median {:>9.3} ms  min {:>9.3}  max {:>9.3}  (n={n})",
        ms(samples[n / 2]),
        ms(samples[0]),
        ms(samples[n - 1])
    );
}

/// Processes alive now: supervisors (`codex-jobhost … supervise --job …`)
/// and agents (Codex's native binary running `exec` or `app-server`; not
/// its Node.js launcher, nor the children it forks before they exec).
fn processes() -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir("/proc") else { return (0, 0) };
    let (mut supervisors, mut agents) = (0, HashMap::new()); // agents: pid → parent pid
    for entry in dir.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&&b"supervise"[..]) {
            supervisors += 1;
        } else if args.first().is_some_and(|p| p.ends_with(b"/codex"))
            && args.iter().any(|a| *a == b"exec" || *a == b"app-server")
        {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid …; comm may hold spaces, so read after its ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            agents.insert(entry.file_name().to_string_lossy().parse::<u32>().unwrap_or(0), ppid.unwrap_or(0));
        }
    }
    let forks = agents.values().filter(|parent| agents.contains_key(parent)).count();
    (supervisors, agents.len() - forks)
}

fn load_1min() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

/// The first tool call that starts a Codex job right after `initialize`:
/// `job_start` here, `codex_execute_async` of codex-mcp-async (`other`),
/// alternating, each server new for each call. Both run the real Codex CLI
/// against the mock model; codex-mcp-async finds it as `codex` on `PATH`.
async fn side_by_side(world: &World, other: std::path::PathBuf) -> Result<()> {
    let bin = world.root().join("side-by-side-bin");
    std::fs::create_dir_all(&bin)?;
    let _ = std::fs::remove_file(bin.join("codex"));
    std::os::unix::fs::symlink(codex_bin(), bin.join("codex"))?;
    let path = path_with(&[&bin])?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..2 * SAMPLES {
        if i % 2 == 0 {
            let server = world.serve_env((), QUIET).await?;
            let begun = Instant::now();
            let job = server.start_job(world.start_args("side by side")).await?;
            ours.push(begun.elapsed());
            server.wait_done(&job, 120).await?;
            server.client.cancel().await?;
        } else {
            let cmd = tokio::process::Command::new(&other).configure(|c| {
                c.current_dir(world.work_dir()).env("PATH", &path).env("CODEX_HOME", world.codex_home());
            });
            let client = ().serve(TokioChildProcess::new(cmd)?).await?;
            let args = json!({"prompt": "side by side", "args": ["--full-auto"]});
            let call = CallToolRequestParams::new("codex_execute_async")
                .with_arguments(args.as_object().cloned().context("an object")?);
            let begun = Instant::now();
            let result = client.call_tool(call).await?;
            theirs.push(begun.elapsed());
            anyhow::ensure!(result.is_error != Some(true), "codex_execute_async failed: {result:?}");
            // As for job_start, the next call waits until this Codex ended.
            let text = |r: &rmcp::model::CallToolResult| {
                r.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect::<String>()
            };
            let said = text(&result);
            let task = said
                .split("Task ID: ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .with_context(|| format!("no task id in {said:?}"))?;
            let check = CallToolRequestParams::new("codex_check_result")
                .with_arguments(json!({"task_id": task}).as_object().cloned().context("an object")?);
            let mut polls = 0;
            while text(&client.call_tool(check.clone()).await?).contains("is still running") {
                polls += 1;
                anyhow::ensure!(polls < 1200, "codex-mcp-async's task {task} still runs after 120 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            client.cancel().await?;
        }
    }
    report("first job_start after initialize, side by side", ours);
    report("first codex_execute_async (codex-mcp-async), side by side", theirs);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let world = World::new([])?;
    let cache = world.jobhost_home().join("cache/codex");

    // The first job_start after initialize, probe cached vs not, alternating.
    let (mut cached, mut uncached) = (Vec::new(), Vec::new());
    {
        let server = world.serve_env((), QUIET).await?; // probes once, and writes the cache
        let job = server.start_job(world.start_args("warm-up")).await?;
        server.wait_done(&job, 120).await?;
    }
    for i in 0..2 * SAMPLES {
        let with_cache = i % 2 == 0;
        if !with_cache {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let server = world.serve_env((), QUIET).await?;
        let begun = Instant::now();
        let job = server.start_job(world.start_args("first")).await?;
        let took = begun.elapsed();
        if with_cache {
            cached.push(took)
        } else {
            uncached.push(took)
        }
        server.wait_done(&job, 120).await?;
        server.client.cancel().await?;
    }
    report("first job_start after initialize, probe cached", cached);
    report("first job_start after initialize, probe run", uncached);
    if let Some(other) = std::env::var_os("CODEX_MCP_ASYNC_BIN") {
        side_by_side(&world, other.into()).await?;
    }

    // 200 quick job_starts under the default limit.
    let server = world.serve_env((), QUIET).await?;
    let job = server.start_job(world.start_args("warm-up")).await?;
    server.wait_done(&job, 120).await?;
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let (mut most, mut agents, mut load) = (0, 0, 0.0f64);
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let (s, a) = processes();
                (most, agents) = (most.max(s), agents.max(a));
                load = load.max(load_1min());
                std::thread::sleep(Duration::from_millis(20));
            }
            (most, agents, load)
        })
    };
    let begun = Instant::now();
    let mut jobs = Vec::new();
    for i in 0..200 {
        jobs.push(server.start_job(world.start_args(&format!("quick {i}"))).await?);
    }
    let acknowledged = begun.elapsed();
    for job in &jobs {
        server.wait_done(job, 240).await?;
    }
    let all_done = begun.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (most, agents, load) = sampler.join().unwrap();
    println!("{:<52} {:>9.3} ms", "200 job_starts, all acknowledged", ms(acknowledged));
    println!("{:<52} {:>9.3} s", "200 jobs, all completed", all_done.as_secs_f64());
    println!("{:<52} {:>9}", "supervisors alive at once, at most", most);
    println!("{:<52} {:>9}", "Codex processes at once, at most", agents);
    println!("{:<52} {:>9.2}", "1-minute load, peak", load);
    println!(
        "{:<52} {:>9}",
        "default limit (CPUs, at least 2)",
        std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
    );

    // jobs gc on 10,000 ended jobs: copies of one completed job.
    let jobs_dir = world.jobhost_home().join("jobs");
    let template = jobs_dir.join(&jobs[0]);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(template.join("meta.json"))?)?;
    for _ in 0..10_000 {
        let id = uuid::Uuid::now_v7().to_string();
        let dir = jobs_dir.join(&id);
        std::fs::create_dir(&dir)?;
        for entry in std::fs::read_dir(&template)? {
            let entry = entry?;
            let name = entry.file_name();
            if name != "meta.json" && entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), dir.join(&name))?;
            }
        }
        let mut meta = meta.clone();
        meta["id"] = json!(id);
        std::fs::write(dir.join("meta.json"), serde_json::to_vec(&meta)?)?;
    }
    server.client.cancel().await?;
    let begun = Instant::now();
    let out = std::process::Command::new(host_bin())
        .arg("--home")
        .arg(world.jobhost_home())
        .args(["jobs", "gc", "--older-than", "0m"])
        .output()?;
    let took = begun.elapsed();
    anyhow::ensure!(out.status.success(), "jobs gc failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let removed = report["removed"].as_array().map_or(0, Vec::len);
    println!("{:<52} {:>9.3} ms", format!("jobs gc on {removed} ended jobs"), ms(took));
    let left = std::fs::read_dir(&jobs_dir).context("jobs")?.count();
    anyhow::ensure!(left == 0, "{left} jobs left");
    Ok(())
}
