//! A raw MCP 2026-07-28 client: JSON-RPC lines written to a server's stdin
//! and read from its stdout, no SDK between (no `initialize`; every request
//! carries its own `_meta`: protocol version, client info and capabilities).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::World;

/// A 2026-07-28 client over the server's stdio.
pub struct RawClient {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

/// Client capabilities: the tasks extension, and elicitation when `elicit`.
pub fn capabilities(tasks: bool, elicit: bool) -> Value {
    let mut caps = json!({});
    if tasks {
        caps["extensions"] = json!({"io.modelcontextprotocol/tasks": {}});
    }
    if elicit {
        caps["elicitation"] = json!({"form": {}});
    }
    caps
}

impl RawClient {
    /// Starts `codex-jobhost serve` for `world` (with `env` added) and
    /// checks that its `server/discover` lists 2026-07-28 and the tasks extension.
    pub async fn start(world: &World, env: &[(&str, &str)]) -> Result<Self> {
        let mut child = world
            .serve_command()
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut client = RawClient { child, stdin, lines, next_id: 1 };
        let discovered = client.request("server/discover", json!({}), capabilities(true, true)).await?;
        let result = &discovered["result"];
        ensure!(
            result["supportedVersions"].as_array().is_some_and(|v| v.contains(&json!("2026-07-28"))),
            "{discovered}"
        );
        ensure!(result["capabilities"]["extensions"]["io.modelcontextprotocol/tasks"] == json!({}), "{discovered}");
        Ok(client)
    }

    /// Sends `method` with `params` and this request's `_meta` (protocol
    /// version, `caps`); returns the whole response (`result` or `error`).
    pub async fn request(&mut self, method: &str, mut params: Value, caps: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw-test-client", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": caps,
        });
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        loop {
            let line = self.lines.next_line().await?.context("the server closed stdout")?;
            let message: Value = serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
            if message["id"] == json!(id) {
                return Ok(message);
            }
        }
    }

    /// `tools/call` of `tool`, declaring tasks when `tasks`; the `result`.
    pub async fn call(&mut self, tool: &str, args: Value, tasks: bool) -> Result<Value> {
        let response =
            self.request("tools/call", json!({"name": tool, "arguments": args}), capabilities(tasks, true)).await?;
        response.get("result").cloned().with_context(|| format!("{tool}: {response}"))
    }

    /// `tasks/get` with the tasks extension (and elicitation when `elicit`) declared: the `result`.
    pub async fn get(&mut self, task_id: &str, elicit: bool) -> Result<Value> {
        let response = self.request("tasks/get", json!({"taskId": task_id}), capabilities(true, elicit)).await?;
        response.get("result").cloned().with_context(|| format!("tasks/get {task_id}: {response}"))
    }

    /// Polls `tasks/get` until the task's status is not `working` (the client
    /// waits `pollIntervalMs`, as clients should, between polls; no deadline:
    /// the harness's mock model ends every turn it is given).
    pub async fn poll(&mut self, task_id: &str, elicit: bool) -> Result<Value> {
        loop {
            let task = self.get(task_id, elicit).await?;
            ensure!(task["resultType"] == "complete" && task["taskId"] == task_id, "{task}");
            if task["status"] != "working" {
                return Ok(task);
            }
            let every = task["pollIntervalMs"].as_u64().context("pollIntervalMs")?;
            ensure!((1_000..=2_000).contains(&every), "{task}");
            tokio::time::sleep(Duration::from_millis(every / 10)).await;
        }
    }

    /// Kills the server.
    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
