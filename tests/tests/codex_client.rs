//! The real Codex CLI as the MCP client, registered with the README's own
//! `[mcp_servers.codex_jobs]` block, word for word: a scripted model makes it
//! call `job_start`, `job_wait` and `job_status`, and `codex exec --json`
//! shows each call succeed and the inner job's answer come back.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use codex_jobhost_e2e::http::{HttpServer, add_token};
use codex_jobhost_e2e::{Reply, World, codex_bin, host_bin, path_with, readme_block, wait_then_status_step};
use serde_json::Value;

/// The inner job's prompt; the mock model answers it from its own script.
const INNER_PROMPT: &str = "INNER-JOB: tell me the magic number";
const INNER_ANSWER: &str = "the magic number is 42";
/// The model `$HOME/.codex/config.toml` names, where Codex looks without `CODEX_HOME`.
const WRONG_HOME_MODEL: &str = "model-of-a-codex-home-never-forwarded";

fn tool(name: &str, args: Value) -> Reply {
    Reply::Tool { namespace: "mcp__codex_jobs".into(), name: name.into(), args }
}

/// After `job_start`: `job_wait` on the job until it no longer times out,
/// then `job_status`; then the script goes on.
fn wait_then_status(body: &Value) -> Option<Reply> {
    let input = body["input"].as_array()?;
    let last_call = input.iter().rev().find(|i| i["type"] == "function_call")?;
    let last_output = input.iter().rev().find(|i| i["type"] == "function_call_output")?["output"].as_str()?;
    let job_id = input
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .find_map(|i| i["output"].as_str()?.split("\"job_id\":\"").nth(1)?.split('"').next())?;
    let (name, args) = wait_then_status_step(last_call["name"].as_str()?, last_output, job_id)?;
    Some(tool(name, args))
}

#[test]
fn codex_registered_as_the_readme_says_runs_a_job_and_gets_its_answer() -> Result<()> {
    let world = World::new([])?;
    world.add_codex_config(readme_block("toml", "[mcp_servers.codex_jobs]\ncommand")?)?;
    codex_runs_a_job_through_the_server(&world, &[])
}

/// The same over HTTP: `serve --http` with a token, and the README's HTTP
/// block (the test server's address in place of its 127.0.0.1:8765).
#[test]
fn codex_registered_over_http_as_the_readme_says_runs_a_job_and_gets_its_answer() -> Result<()> {
    let world = World::new([])?;
    let token = add_token(&world, "codex", false)?;
    let server = HttpServer::start(&world, &[])?;
    let block = readme_block("toml", "[mcp_servers.codex_jobs]\nurl")?;
    ensure!(block.contains("http://127.0.0.1:8765/mcp"), "{block}");
    world.add_codex_config(&block.replace("http://127.0.0.1:8765/mcp", &server.url))?;
    codex_runs_a_job_through_the_server(&world, &[("CODEX_JOBHOST_TOKEN", &token)])
}

/// `codex exec` on a scripted model that calls `job_start`, `job_wait` and
/// `job_status` through the server `world`'s Codex config names.
fn codex_runs_a_job_through_the_server(world: &World, env: &[(&str, &str)]) -> Result<()> {
    // The machine's own ~/.codex is replaced by one naming another model: a
    // job that did not get CODEX_HOME through the block runs on it, and shows.
    let home = world.root();
    let config = std::fs::read_to_string(world.codex_home().join("config.toml"))?;
    std::fs::create_dir_all(home.join(".codex"))?;
    std::fs::write(home.join(".codex/config.toml"), config.replace("mock-model", WRONG_HOME_MODEL))?;
    world.model.route(INNER_PROMPT, [Reply::Message(INNER_ANSWER.into())]);
    let script = [
        tool("job_start", world.start_args(INNER_PROMPT)),
        Reply::Computed(wait_then_status),
        Reply::Message("outer done".into()),
    ];
    world.model.route("OUTER-TURN", script);

    // The block names the command `codex-jobhost`: found on PATH, as after `cargo install`.
    let path = path_with(&[host_bin().parent().context("binary directory")?])?;
    let out = Command::new(codex_bin())
        .args(["exec", "--json", "--skip-git-repo-check", "OUTER-TURN: run the job and report"])
        .current_dir(world.work_dir())
        .env("PATH", path)
        .env("HOME", home)
        .env("CODEX_HOME", world.codex_home())
        .env("CODEX_JOBHOST_HOME", world.jobhost_home())
        .env("CODEX_BIN", codex_bin())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || {
        format!(
            "codex exec exited {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    };
    ensure!(out.status.success(), "{}", context());

    let items: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "item.completed")
        .map(|e| e["item"].clone())
        .collect();
    let calls: Vec<&Value> = items.iter().filter(|i| i["type"] == "mcp_tool_call").collect();
    let names: Vec<&str> = calls.iter().filter_map(|c| c["tool"].as_str()).collect();
    ensure!(
        names.first() == Some(&"job_start") && names.last() == Some(&"job_status") && names.contains(&"job_wait"),
        "tools called: {names:?}\n{}",
        context()
    );
    for call in &calls {
        ensure!(
            call["status"] == "completed" && call["error"].is_null() && call["server"] == "codex_jobs",
            "a tool call failed: {call}"
        );
    }
    let status = &calls.last().unwrap()["result"]["structured_content"];
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], INNER_ANSWER, "{status}");

    let requests = world.model.requests();
    let models: Vec<&Value> = requests.iter().map(|r| &r["model"]).collect();
    assert!(
        models.iter().all(|m| *m == "mock-model"),
        "a job ran without the CODEX_HOME of the client: models {models:?}"
    );
    // The answer reached the outer model, and its last word reached the user.
    let last_outer =
        requests.iter().rev().find(|r| r.to_string().contains("OUTER-TURN")).context("no outer request")?;
    assert!(last_outer.to_string().contains(INNER_ANSWER), "the outer model never saw the inner answer");
    let said: Vec<&str> =
        items.iter().filter(|i| i["type"] == "agent_message").filter_map(|i| i["text"].as_str()).collect();
    assert_eq!(said, ["outer done"]);
    Ok(())
}
