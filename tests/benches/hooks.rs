//! What the policy hook adds to a command, side by side in one run: turns of
//! 20 commands (`true`) with no policy (no hook) and with a project policy
//! that accepts everything (`fixture_accept_all`: every command goes through
//! Codex's `PreToolUse` hook to the supervisor and the policy), alternating,
//! on both backends, on the release build with the real Codex CLI and the
//! mock model. Per command: the turn's time (`turn.started` → `turn.completed`)
//! over its commands; the hook's cost is the difference of the medians. On
//! app-server, Codex also reports each hook run's own wall time
//! (`hook/completed`'s `durationMs`, read from `output.log`). Run:
//! `cargo build --release -p codex-jobhost && CODEX_JOBHOST_BIN=target/release/codex-jobhost CODEX_BIN=… cargo bench -p codex-jobhost-e2e --bench hooks`

use std::time::Duration;

use anyhow::{Context, Result};
use codex_jobhost_e2e::{Reply, World};
use serde_json::{Value, json};

/// Commands per turn.
const K: usize = 20;
/// Turns per side.
const N: usize = 15;

fn ts(event: &Value) -> Result<jiff::Timestamp> {
    Ok(event["ts"].as_str().context("ts")?.parse()?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One turn of `K` commands in `world`: its time per command, the
/// supervisor's own time per decision (`elapsed_us`), and Codex's time per
/// hook run (app-server only), in ms.
async fn turn(world: &World, backend: &str) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    let server = world.serve().await?;
    let mut args = world.start_args("run the commands");
    args["backend"] = json!(backend);
    args["approval_policy"] = json!(if backend == "exec" { "auto-edit" } else { "full-auto" });
    let job = server.start_job(args).await?;
    let status = server.wait_done(&job, 240).await?;
    anyhow::ensure!(status["status"] == "completed", "{status}");
    let events = server.all_events(&job).await?;
    let at = |kind: &str| events.iter().find(|e| e["type"] == kind).with_context(|| format!("no {kind}"));
    let took = ts(at("turn.completed")?)?.duration_since(ts(at("turn.started")?)?).unsigned_abs();
    let ran = events
        .iter()
        .filter(|e| e["type"] == "item.completed" && e["data"]["item"]["type"] == "command_execution")
        .count();
    anyhow::ensure!(ran == K, "{ran} of {K} commands ran");
    let decided = events
        .iter()
        .filter(|e| e["type"] == "approval.decided")
        .filter_map(|e| e["data"]["elapsed_us"].as_u64())
        .map(|us| us as f64 / 1000.0)
        .collect();
    let log = std::fs::read_to_string(world.jobhost_home().join("jobs").join(&job).join("output.log"))?;
    let hook_runs = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["method"] == "hook/completed")
        .filter_map(|m| m.pointer("/params/run/durationMs").and_then(Value::as_f64))
        .collect();
    Ok((Duration::as_secs_f64(&took) * 1000.0 / K as f64, decided, hook_runs))
}

fn world(policy: bool) -> Result<World> {
    let mut script: Vec<Reply> = (0..K).map(|_| Reply::Command("true".into())).collect();
    script.push(Reply::Message("done".into()));
    let world = World::new(script)?;
    if policy {
        let guest = world.project_guest("fixture_accept_all")?;
        world.project_policy(&format!("[[approval]]\npath = {guest:?}\n"))?;
    }
    Ok(world)
}

#[tokio::main]
async fn main() -> Result<()> {
    for backend in ["exec", "app-server"] {
        let (mut bare, mut hooked, mut decisions, mut runs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..N {
            bare.push(turn(&world(false)?, backend).await?.0);
            let (per_command, decided, hook_runs) = turn(&world(true)?, backend).await?;
            anyhow::ensure!(decided.len() == K, "{} of {K} commands decided", decided.len());
            hooked.push(per_command);
            decisions.extend(decided);
            runs.extend(hook_runs);
        }
        let (bare, hooked) = (median(bare), median(hooked));
        println!(
            "{backend:<11} per command: no policy {bare:>7.2} ms, policy through the hook {hooked:>7.2} ms, \
             added {:>6.2} ms (medians of {N} turns of {K}); supervisor's decision median {:.3} ms (n={})",
            hooked - bare,
            median(decisions.clone()),
            decisions.len()
        );
        if !runs.is_empty() {
            println!(
                "{backend:<11} hook run as Codex times it (durationMs): median {:.1} ms (n={})",
                median(runs.clone()),
                runs.len()
            );
        }
    }
    Ok(())
}
