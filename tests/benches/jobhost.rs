//! Benchmarks of the built server (release build) with the real Codex CLI and
//! the mock model: handshake, `job_start`, completion latency, `job_status` on
//! a huge log, and memory. Run:
//! `cargo build --release -p codex-jobhost && CODEX_BIN=… cargo bench -p codex-jobhost-e2e`

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use codex_jobhost_e2e::{Server, World, codex_bin};
use serde_json::{Value, json};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(name: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let min = *samples.iter().min().unwrap();
    let max = *samples.iter().max().unwrap();
    println!("{name:<44} median {:>8.3} ms  min {:>8.3}  max {:>8.3}  (n={n})", ms(median(samples)), ms(min), ms(max));
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

/// One job: `job_start` round trip, start → `job_wait` returned, the time
/// from the supervisor's record of the agent's exit (`finished_at`) to
/// `job_wait` returning, and the job id.
async fn start_and_wait(server: &Server, world: &World) -> Result<(Duration, Duration, Duration, String)> {
    let begun = Instant::now();
    let started = server.ok("job_start", world.start_args("bench")).await?;
    let start_rtt = begun.elapsed();
    let job = started["job_id"].as_str().unwrap().to_owned();
    let waited = server.ok("job_wait", json!({"job_ids": [job], "timeout_s": 120})).await?;
    let returned = jiff::Timestamp::now();
    let total = begun.elapsed();
    let finished = &waited["finished"][0];
    anyhow::ensure!(finished["status"] == "completed", "{waited}");
    let finished_at: jiff::Timestamp = finished["finished_at"].as_str().context("finished_at")?.parse()?;
    let notice = returned.duration_since(finished_at).unsigned_abs();
    Ok((start_rtt, total, notice, job))
}

#[tokio::main]
async fn main() -> Result<()> {
    let world = World::new([])?;

    // Server spawn → initialize answered (rmcp's client handshake).
    let mut handshakes = Vec::new();
    let mut idle_rss = 0;
    for i in 0..30 {
        let begun = Instant::now();
        let server = world.serve().await?;
        handshakes.push(begun.elapsed());
        if i == 29 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            idle_rss = rss_kib(server.pid)?;
        }
        server.client.cancel().await?;
    }
    report("spawn -> initialize answered", handshakes);
    println!("{:<44} {:>8} KiB", "server RSS, idle (no jobs)", idle_rss);

    let server = world.serve().await?;
    // Warm-up: Codex located and probed, page cache warm.
    start_and_wait(&server, &world).await?;

    // job_start round trip, and job_start → job_wait return for a whole job.
    let (mut starts, mut totals, mut notices) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..40 {
        let (start, total, notice, _) = start_and_wait(&server, &world).await?;
        starts.push(start);
        totals.push(total);
        notices.push(notice);
    }
    report("job_start round trip", starts);
    report("exit recorded (finished_at) -> job_wait returned", notices);

    // The same work as plain `codex exec`, through the npm launcher and
    // straight to the native binary (what jobs run), for the completion overhead.
    // The platform package npm hoists beside @openai/codex (x86_64 Linux here).
    let native = std::fs::canonicalize(codex_bin())?
        .ancestors()
        .nth(3)
        .context("node_modules/@openai")?
        .join("codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex");
    let mut plain_native = Vec::new();
    let mut plain = Vec::new();
    for i in 0..40 {
        let program = if i % 2 == 0 { codex_bin() } else { native.clone() };
        let begun = Instant::now();
        let out = tokio::process::Command::new(&program)
            .args(["exec", "--json", "--skip-git-repo-check", "--sandbox", "read-only", "--cd"])
            .arg(world.work_dir())
            .args(["--", "bench"])
            .env("CODEX_HOME", world.codex_home())
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        anyhow::ensure!(out.status.success(), "plain codex exec failed: {}", program.display());
        if i % 2 == 0 { plain.push(begun.elapsed()) } else { plain_native.push(begun.elapsed()) }
    }
    let native_median = median(plain_native.clone());
    let total_median = median(totals.clone());
    report("plain `codex exec` via the npm launcher", plain);
    report("plain `codex exec`, native binary", plain_native);
    report("job_start -> job_wait returned", totals);
    println!("{:<44} {:>8.3} ms", "  minus plain native exec (medians)", ms(total_median) - ms(native_median));

    // job_status with a 1 MiB and a 1 GiB output.log.
    for (label, size) in [("1 MiB", 1u64 << 20), ("1 GiB", 1u64 << 30)] {
        let (_, _, _, job) = start_and_wait(&server, &world).await?;
        let log = world.jobhost_home().join("jobs").join(&job).join("output.log");
        let file = std::fs::OpenOptions::new().append(true).open(&log)?;
        // Sparse up to the size, then real lines at the end to show.
        file.set_len(size - 100 * 80 - 1)?;
        let mut w = std::io::BufWriter::new(file);
        writeln!(w)?;
        for i in 0..100 {
            writeln!(w, "{:<79}", format!("line {i} of the tail"))?;
        }
        w.flush()?;
        let mut samples = Vec::new();
        for _ in 0..100 {
            let begun = Instant::now();
            let status = server.ok("job_status", json!({"job_id": job, "tail_lines": 100})).await?;
            samples.push(begun.elapsed());
            anyhow::ensure!(status["output_tail"].as_str().unwrap().lines().count() == 100);
        }
        report(&format!("job_status, output.log of {label}"), samples);
    }
    let rss_after = rss_kib(server.pid)?;
    println!("{:<44} {:>8} KiB", "server RSS after 43 jobs", rss_after);
    server.client.cancel().await?;

    // Index growth: a home with 5,000 finished jobs.
    let count = 5000;
    let jobs = world.jobhost_home().join("jobs");
    let template: Value = {
        let first = std::fs::read_dir(&jobs)?.next().context("a job")??.path();
        serde_json::from_slice(&std::fs::read(first.join("meta.json"))?)?
    };
    let big = World::new([])?;
    let big_jobs = big.jobhost_home().join("jobs");
    for _ in 0..count {
        let id = uuid::Uuid::now_v7().to_string();
        let mut meta = template.clone();
        meta["id"] = json!(id);
        std::fs::create_dir_all(big_jobs.join(&id))?;
        std::fs::write(big_jobs.join(&id).join("meta.json"), serde_json::to_vec(&meta)?)?;
    }
    let empty = World::new([])?;
    let mut rss = Vec::new();
    for (w, n) in [(&empty, 0), (&big, count)] {
        let server = w.serve().await?;
        let begun = Instant::now();
        server.ok("job_list", json!({"limit": 1})).await?;
        println!("{:<44} {:>8.3} ms", format!("index {n} jobs (job_list waits for it)"), ms(begun.elapsed()));
        rss.push(rss_kib(server.pid)?);
        server.client.cancel().await?;
    }
    println!("{:<44} {:>8} KiB -> {} KiB", format!("server RSS, 0 -> {count} jobs indexed"), rss[0], rss[1]);
    println!(
        "{:<44} {:>8.0} bytes",
        "  growth per finished job",
        (rss[1] as f64 - rss[0] as f64) * 1024.0 / count as f64
    );
    Ok(())
}
