//! Claude Code as the MCP client, registered as the README says: its
//! `claude mcp add` line run as written and its settings block as
//! `~/.claude/settings.json`; a scripted Anthropic model makes it call
//! `job_start`, `job_wait` and `job_status`, and `claude -p`'s stream shows
//! each call succeed and the inner job's answer come back.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use codex_jobhost_e2e::{
    Reply, World, claude_bin, codex_bin, host_bin, path_with, readme_block, wait_then_status_step,
};
use serde_json::Value;

const INNER_PROMPT: &str = "INNER-JOB: tell me the magic number";
const INNER_ANSWER: &str = "the magic number is 42";

fn tool(name: &str, args: Value) -> Reply {
    Reply::Tool { namespace: "mcp__codex-jobs".into(), name: name.into(), args }
}

/// After `job_start`: `job_wait` until it no longer times out, then `job_status`.
fn wait_then_status(body: &Value) -> Option<Reply> {
    let messages = body["messages"].as_array()?;
    let blocks = || messages.iter().flat_map(|m| m["content"].as_array().into_iter().flatten());
    let last_call = blocks().filter(|b| b["type"] == "tool_use").last()?;
    let result_text = |b: &Value| match &b["content"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let last_result = blocks().filter(|b| b["type"] == "tool_result").last().map(result_text)?;
    let job_id = blocks()
        .filter(|b| b["type"] == "tool_result")
        .map(result_text)
        .find_map(|t| Some(t.split("\"job_id\":\"").nth(1)?.split('"').next()?.to_owned()))?;
    let called = last_call["name"].as_str()?.strip_prefix("mcp__codex-jobs__")?;
    let (name, args) = wait_then_status_step(called, &last_result, &job_id)?;
    Some(tool(name, args))
}

#[test]
fn claude_code_registered_as_the_readme_says_runs_a_job_and_gets_its_answer() -> Result<()> {
    let world = World::new([])?;
    world.model.route(INNER_PROMPT, [Reply::Message(INNER_ANSWER.into())]);
    world.model.route(
        "OUTER-TURN",
        [
            tool("job_start", world.start_args(INNER_PROMPT)),
            Reply::Computed(wait_then_status),
            Reply::Message("outer done".into()),
        ],
    );
    let home = world.root();
    let claude = claude_bin();
    let path = path_with(&[host_bin().parent().context("bin dir")?, claude.parent().context("claude dir")?])?;
    let claude_env = |c: &mut Command| {
        c.current_dir(world.work_dir())
            .env("HOME", home)
            .env("PATH", &path)
            .env("ANTHROPIC_BASE_URL", world.model.anthropic_base_url())
            .env("ANTHROPIC_API_KEY", "sk-ant-test")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1") // no update checks or telemetry from a test
            .env("CODEX_HOME", world.codex_home())
            .env("CODEX_JOBHOST_HOME", world.jobhost_home())
            .env("CODEX_BIN", codex_bin())
            .stdin(Stdio::null());
    };

    // The README's registration, as written: the command, then the settings file.
    let add = readme_block("sh", "claude mcp add")?;
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", add]);
    claude_env(&mut cmd);
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "{add}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = readme_block("json", "{ \"permissions\"")?;
    serde_json::from_str::<Value>(settings).context("the README's settings block is not JSON")?;
    std::fs::create_dir_all(home.join(".claude"))?;
    std::fs::write(home.join(".claude/settings.json"), settings)?;

    let mut cmd = Command::new(&claude);
    cmd.args(["-p", "OUTER-TURN: run the job and report", "--output-format", "stream-json", "--verbose"]);
    claude_env(&mut cmd);
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || format!("claude -p exited {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "{}", context());

    let lines: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let calls: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "assistant")
        .flat_map(|l| l["message"]["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_use")
        .filter_map(|b| b["name"].as_str())
        .collect();
    ensure!(
        calls.first() == Some(&"mcp__codex-jobs__job_start")
            && calls.last() == Some(&"mcp__codex-jobs__job_status")
            && calls.contains(&"mcp__codex-jobs__job_wait"),
        "tools called: {calls:?}\n{}",
        context()
    );
    let results: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "user")
        .flat_map(|l| l["message"]["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_result")
        .collect();
    ensure!(results.len() == calls.len(), "{} results for {} calls\n{}", results.len(), calls.len(), context());
    for result in &results {
        ensure!(result["is_error"] != true, "a tool call failed: {result}");
    }
    let status: Value = serde_json::from_str(results.last().unwrap()["content"].as_str().context("text result")?)?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], INNER_ANSWER, "{status}");
    let done = lines.iter().find(|l| l["type"] == "result").context("no result line")?;
    assert_eq!(done["result"], "outer done", "{done}");
    Ok(())
}
