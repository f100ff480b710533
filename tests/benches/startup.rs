//! Benchmarks of a server's start and of the durable queue (release build,
//! the real Codex CLI, the mock model), side by side in one run:
//!
//! - the first `job_start` right after `initialize`, with the Codex probe
//!   cached on disk and with the cache removed before each start;
//! - with `CODEX_MCP_ASYNC_BIN` or `CODEX_MCP_SWARM_BIN` set (the commands
//!   of the PyPI packages `codex-mcp-async` and `codex-mcp-swarm`, e.g. each
//!   `pip install`ed in a venv), the same first call against those servers'
//!   `codex_execute_async` and `codex_async`, in turn with `job_start`: each
//!   starts `codex exec` at once and keeps no durable record;
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

/// Another MCP server that starts Codex in the background, measured side by
/// side with ours; it finds the real Codex CLI as `codex` on `PATH`.
struct Other {
    /// Its name in the report.
    name: &'static str,
    /// Its command.
    bin: std::path::PathBuf,
    /// The tool that starts a Codex run and answers at once, with its arguments.
    start: (&'static str, serde_json::Value),
    /// What comes just before the task id in the start call's text.
    id_after: &'static str,
    /// The tool that tells (or waits until) the task ended, with its arguments for a task id.
    check: (&'static str, fn(&str) -> serde_json::Value),
    /// What its text says while the task still runs.
    still_running: &'static str,
}

/// The other servers named in the environment: `CODEX_MCP_ASYNC_BIN` (the
/// `codex-mcp-async` command of <https://pypi.org/project/codex-mcp-async/>)
/// and `CODEX_MCP_SWARM_BIN` (`codex-mcp-swarm`, <https://pypi.org/project/codex-mcp-swarm/>),
/// e.g. each `pip install`ed in a venv.
fn others(world: &World) -> Vec<Other> {
    let mut others = Vec::new();
    if let Some(bin) = std::env::var_os("CODEX_MCP_ASYNC_BIN") {
        others.push(Other {
            name: "codex_execute_async (codex-mcp-async)",
            bin: bin.into(),
            start: ("codex_execute_async", json!({"prompt": "side by side", "args": ["--full-auto"]})),
            id_after: "Task ID: ",
            check: ("codex_check_result", |task| json!({"task_id": task})),
            still_running: "is still running",
        });
    }
    if let Some(bin) = std::env::var_os("CODEX_MCP_SWARM_BIN") {
        let args = json!({"prompt": "side by side", "cwd": world.work_dir(), "sandbox": "workspace-write",
            "approval-policy": "never"});
        others.push(Other {
            name: "codex_async (codex-mcp-swarm)",
            bin: bin.into(),
            start: ("codex_async", args),
            id_after: "Codex task ",
            check: ("codex_wait", |task| json!({"task_ids": [task], "timeout": 120})),
            still_running: "Still running (wait timed out",
        });
    }
    others
}

/// The first tool call that starts a Codex job right after `initialize`:
/// `job_start` here and each other server's start tool, in turn, each server
/// new for each call. All run the real Codex CLI against the mock model, and
/// each call waits until the Codex run before it ended.
async fn side_by_side(world: &World, others: &[Other]) -> Result<()> {
    let bin = world.root().join("side-by-side-bin");
    std::fs::create_dir_all(&bin)?;
    let _ = std::fs::remove_file(bin.join("codex"));
    std::os::unix::fs::symlink(codex_bin(), bin.join("codex"))?;
    let path = path_with(&[&bin])?;
    let text = |r: &rmcp::model::CallToolResult| {
        r.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect::<String>()
    };
    let call = |tool: &'static str, args: serde_json::Value| -> Result<CallToolRequestParams> {
        Ok(CallToolRequestParams::new(tool).with_arguments(args.as_object().cloned().context("an object")?))
    };
    let (mut ours, mut theirs) = (Vec::new(), vec![Vec::new(); others.len()]);
    for _ in 0..SAMPLES {
        let server = world.serve_env((), QUIET).await?;
        let begun = Instant::now();
        let job = server.start_job(world.start_args("side by side")).await?;
        ours.push(begun.elapsed());
        server.wait_done(&job, 120).await?;
        server.client.cancel().await?;
        for (other, samples) in others.iter().zip(&mut theirs) {
            let cmd = tokio::process::Command::new(&other.bin).configure(|c| {
                c.current_dir(world.work_dir()).env("PATH", &path).env("CODEX_HOME", world.codex_home());
            });
            let client = ().serve(TokioChildProcess::new(cmd)?).await?;
            let start = call(other.start.0, other.start.1.clone())?;
            let begun = Instant::now();
            let result = client.call_tool(start).await?;
            samples.push(begun.elapsed());
            let said = text(&result);
            anyhow::ensure!(result.is_error != Some(true), "{} failed: {said}", other.start.0);
            let task = said
                .split(other.id_after)
                .nth(1)
                .and_then(|t| t.split(|c: char| !c.is_ascii_alphanumeric() && c != '-').next())
                .with_context(|| format!("no task id in {said:?}"))?;
            let check = call(other.check.0, (other.check.1)(task))?;
            let mut polls = 0;
            while text(&client.call_tool(check.clone()).await?).contains(other.still_running) {
                polls += 1;
                anyhow::ensure!(polls < 1200, "{}'s task {task} still runs after 120 s", other.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            client.cancel().await?;
        }
    }
    report("first job_start after initialize, side by side", ours);
    for (other, samples) in others.iter().zip(theirs) {
        report(&format!("first {}, side by side", other.name), samples);
    }
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
    let others = others(&world);
    if !others.is_empty() {
        side_by_side(&world, &others).await?;
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
