//! The two backends side by side, in one run, on the release build with the
//! real Codex CLI and the mock model: `job_start` → `turn.started`, `job_reply`
//! → `turn.started`, the memory of a running job (supervisor + Codex), and,
//! on app-server, an approval's round trip inside the supervisor (request
//! read → answer written, a cached policy deciding). Run:
//! `cargo build --release -p codex-jobhost && CODEX_BIN=… cargo bench -p codex-jobhost-e2e --bench backends`

use std::time::Duration;

use anyhow::{Context, Result};
use codex_jobhost_e2e::{Reply, Server, World, guest_wasm};
use serde_json::{Value, json};

const BACKENDS: [&str; 2] = ["exec", "app-server"];

fn ts(event: &Value) -> Result<jiff::Timestamp> {
    Ok(event["ts"].as_str().context("ts")?.parse()?)
}

/// Time from the `job.status` event that queued turn `turn` to its `turn.started`.
fn to_turn_started(events: &[Value], turn: u64) -> Result<Duration> {
    let queued = events
        .iter()
        .find(|e| e["type"] == "job.status" && e["data"]["status"] == "queued" && e["data"]["turn"] == turn)
        .context("queued event")?;
    let started = events
        .iter()
        .filter(|e| e["seq"].as_u64() > queued["seq"].as_u64())
        .find(|e| e["type"] == "turn.started")
        .with_context(|| {
            format!(
                "no turn.started in turn {turn}: {:?}",
                events.iter().map(|e| (&e["type"], &e["data"]["status"], &e["data"]["error"])).collect::<Vec<_>>()
            )
        })?;
    Ok(ts(started)?.duration_since(ts(queued)?).unsigned_abs())
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

/// Resident memory (KiB) of every process in process group `pgid`.
fn group_rss_kib(pgid: u32) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pgrp is the 3rd field after the `(comm)`.
        let after = &stat[stat.rfind(')').context("stat")? + 2..];
        if after.split(' ').nth(2).and_then(|p| p.parse::<u32>().ok()) != Some(pgid) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        if let Some(line) = status.lines().find(|l| l.starts_with("VmRSS:")) {
            total += line.split_whitespace().nth(1).unwrap_or("0").parse::<u64>()?;
        }
    }
    Ok(total)
}

async fn start(server: &Server, world: &World, backend: &str, prompt: &str) -> Result<String> {
    let mut args = world.start_args(prompt);
    args["backend"] = json!(backend);
    args["approval_policy"] = json!("auto-edit");
    server.start_job(args).await
}

#[tokio::main]
async fn main() -> Result<()> {
    const N: usize = 10;
    for backend in BACKENDS {
        let world = World::new([])?;
        let server = world.serve().await?;
        let (mut first, mut reply) = (Vec::new(), Vec::new());
        for _ in 0..N {
            let job = start(&server, &world, backend, "bench").await?;
            server.wait_done(&job, 120).await?;
            server.ok("job_reply", json!({"job_id": job, "prompt": "again"})).await?;
            server.wait_done(&job, 120).await?;
            let events = server.all_events(&job).await?;
            first.push(to_turn_started(&events, 0)?);
            reply.push(to_turn_started(&events, 1)?);
        }
        println!("{backend:<11} job_start → turn.started   median {:>7.1} ms (n={N})", median_ms(first));
        println!("{backend:<11} job_reply → turn.started   median {:>7.1} ms (n={N})", median_ms(reply));
    }

    // Memory while a turn waits for the model (the model answers after 5 s).
    for backend in BACKENDS {
        let slow = Reply::After(Duration::from_secs(5), Box::new(Reply::Message("late".into())));
        let world = World::new([slow])?;
        let server = world.serve().await?;
        let job = start(&server, &world, backend, "bench").await?;
        while world.model.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let meta: Value =
            serde_json::from_slice(&std::fs::read(world.jobhost_home().join("jobs").join(&job).join("meta.json"))?)?;
        let pgid = meta["pid"].as_u64().context("supervisor pid")? as u32;
        println!("{backend:<11} running job: supervisor + Codex RSS {} KiB", group_rss_kib(pgid)?);
        server.wait_done(&job, 120).await?;
    }

    // Approval round trip on app-server: 30 commands, each decided by a cached policy.
    let mut script: Vec<Reply> = (0..30).map(|i| Reply::Escalated(format!("touch f{i}"))).collect();
    script.push(Reply::Message("done".into()));
    let world = World::new(script)?;
    let dir = world.work_dir().join(".codex");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(guest_wasm("command_allowlist"), dir.join("allow.wasm"))?;
    world.project_policy("[[approval]]\npath = \"allow.wasm\"\nconfig = { allow = [\"touch\"] }\n")?;
    let server = world.serve().await?;
    let job = start(&server, &world, "app-server", "touch thirty files").await?;
    server.wait_done(&job, 240).await?;
    let events = server.all_events(&job).await?;
    let mut rtt: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "approval.decided")
        .filter_map(|e| e["data"]["elapsed_us"].as_u64())
        .collect();
    anyhow::ensure!(rtt.len() == 30, "30 decisions, got {}", rtt.len());
    let first = rtt[0];
    rtt.sort();
    println!(
        "app-server  approval round trip            median {:>7.3} ms  min {:.3}  max {:.3}  first (loads the policy) {:.3} (n=30)",
        rtt[15] as f64 / 1000.0,
        rtt[0] as f64 / 1000.0,
        rtt[29] as f64 / 1000.0,
        first as f64 / 1000.0
    );
    Ok(())
}
