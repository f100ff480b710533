//! The MCP surface as clients see it: `tools/list`, compared with a checked-in
//! snapshot so a change to any tool's name, description, schema or
//! annotations shows in review. Run with `UPDATE_SNAPSHOTS=1` to accept a change.

use anyhow::{Context, Result};
use codex_jobhost_e2e::{Reply, World};
use serde_json::{Value, json};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/tools_list.json");

#[tokio::test]
async fn tools_list_matches_its_snapshot_and_every_client_can_read_it() -> Result<()> {
    let world = World::new([])?;
    let server = world.serve().await?;
    let tools = server.client.list_all_tools().await?;
    let listed = serde_json::to_value(&tools)?;
    let text = serde_json::to_string_pretty(&listed)? + "\n";
    println!("tools/list: {} tools, {} bytes as compact JSON", tools.len(), serde_json::to_string(&listed)?.len());

    for tool in listed.as_array().context("a list")? {
        let name = tool["name"].as_str().unwrap_or_default();
        assert!(tool["outputSchema"].is_object(), "{name} has no outputSchema");
        assert!(tool["annotations"]["readOnlyHint"].is_boolean(), "{name} has no annotations");
        // Optional arguments are left out of `required`, never typed [X, "null"].
        for (arg, schema) in tool["inputSchema"]["properties"].as_object().context("properties")? {
            assert!(!schema["type"].is_array(), "{name}.{arg} has a type array: {schema}");
        }
    }
    let property = |tool: &str, arg: &str| -> Value {
        listed.as_array().unwrap().iter().find(|t| t["name"] == tool).unwrap()["inputSchema"]["properties"][arg].clone()
    };
    assert_eq!(
        property("job_start", "approval_policy")["enum"],
        serde_json::json!(["suggest", "auto-edit", "full-auto"])
    );
    assert!(property("job_start", "sandbox")["enum"].is_array());
    assert!(property("job_list", "status")["enum"].is_array());

    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &text)?;
    }
    let expected = std::fs::read_to_string(SNAPSHOT)
        .with_context(|| format!("{SNAPSHOT} is missing: run this test with UPDATE_SNAPSHOTS=1 and review it"))?;
    assert!(
        expected == text,
        "tools/list differs from {SNAPSHOT}; if the change is meant, run with UPDATE_SNAPSHOTS=1 and commit it.\n{text}"
    );
    Ok(())
}

/// The text content of a tool result, as a client shows it to its model.
async fn result_text(server: &codex_jobhost_e2e::Server, tool: &str, args: Value) -> Result<String> {
    let Value::Object(args) = args else { anyhow::bail!("arguments must be an object") };
    let params = rmcp::model::CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
    let result = server.client.call_tool(params).await?;
    Ok(result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect())
}

#[tokio::test]
async fn results_fit_a_clients_budget_with_the_status_first() -> Result<()> {
    // An answer of 256 KB (262,144 characters).
    let answer: String = "The answer, at length. ".repeat(11_398)[..262_144].to_owned();
    let world = World::new([codex_jobhost_e2e::Reply::Message(answer.clone())])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("explain everything")).await?;
    server.wait_done(&job, 120).await?;

    let text = result_text(&server, "job_status", serde_json::json!({"job_id": job})).await?;
    println!("job_status result: {} characters", text.chars().count());
    assert!(text.chars().count() <= 20_000, "{} characters", text.chars().count());
    assert!(
        text.starts_with(&format!(r#"{{"job_id":"{job}","status":"completed","turn":0,"exit_code":0"#)),
        "{}",
        &text[..200]
    );
    let status: Value = serde_json::from_str(&text)?;
    assert_eq!(status["last_message_truncated"], true);
    assert!(status["last_message"].as_str().unwrap().starts_with("The answer, at length."));
    // More when asked for.
    let full = result_text(&server, "job_status", serde_json::json!({"job_id": job, "max_chars": 1_000_000})).await?;
    let full: Value = serde_json::from_str(&full)?;
    assert_eq!(full["last_message"].as_str().map(str::len), Some(262_144));
    assert!(full.get("last_message_truncated").is_none());

    let text =
        result_text(&server, "job_events", serde_json::json!({"job_id": job, "limit": 1000, "truncate": 0})).await?;
    println!("job_events result (limit 1000, truncate 0): {} characters", text.chars().count());
    let page: Value = serde_json::from_str(&text)?;
    let shown = page["events"].as_array().unwrap().len();
    assert!(text.chars().count() <= 20_000 || shown == 1, "{} characters in {shown} events", text.chars().count());
    assert_eq!(page["has_more"], true, "the rest is on the next page");
    // A list that does not fit says so, newest first.
    let mut more = Vec::new();
    for i in 0..8 {
        more.push(server.start_job(world.start_args(&format!("job {i}: {}", "x".repeat(100)))).await?);
    }
    let newest = more.last().unwrap().clone();
    let text = result_text(&server, "job_list", serde_json::json!({"max_chars": 2000})).await?;
    let list: Value = serde_json::from_str(&text)?;
    let shown = list["jobs"].as_array().unwrap();
    assert!(text.chars().count() <= 2000 && list["truncated"] == true, "{text}");
    assert!(!shown.is_empty() && shown.len() < 9 && shown[0]["job_id"] == newest.as_str(), "{text}");
    for (tool, args) in [
        ("job_list", serde_json::json!({})),
        ("job_wait", serde_json::json!({"job_ids": [job]})),
        ("job_notifications", serde_json::json!({})),
    ] {
        let text = result_text(&server, tool, args).await?;
        println!("{tool} result: {} characters", text.chars().count());
        assert!(text.chars().count() <= 20_000, "{tool}");
    }
    for job in &more {
        server.wait_done(job, 120).await?; // leave no agent running
    }
    // A wait on many jobs fits too, finished ones first.
    let mut all = more.clone();
    all.push(job.clone());
    let text = result_text(&server, "job_wait", serde_json::json!({"job_ids": all, "max_chars": 2000})).await?;
    let waited: Value = serde_json::from_str(&text)?;
    assert!(text.chars().count() <= 2000 && waited["truncated"] == true, "{text}");
    assert!(!waited["finished"].as_array().unwrap().is_empty(), "{text}");
    Ok(())
}

/// Node's MCP clients (Claude Code, the MCP Inspector) start a server with a
/// Unix socket pair as its stdin and stdout, where Python's and Rust's give
/// pipes: a job runs over a socket pair from start to end. A file as stdin
/// (neither) is read too.
#[tokio::test]
async fn the_server_serves_over_a_unix_socket_pair_and_reads_a_file_as_stdin() -> Result<()> {
    use rmcp::ServiceExt;
    use std::os::fd::OwnedFd;
    use std::process::Stdio;

    let world = World::new([Reply::Message("Over a socket.".into())])?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let theirs = OwnedFd::from(theirs);
    let mut child = world
        .serve_command()
        .stdin(Stdio::from(theirs.try_clone()?))
        .stdout(Stdio::from(theirs))
        .kill_on_drop(true)
        .spawn()?;
    ours.set_nonblocking(true)?;
    let client = ().serve(tokio::net::UnixStream::from_std(ours)?).await?;
    let server = codex_jobhost_e2e::Server { client, pid: child.id().context("server pid")? };
    let job = server.start_job(world.start_args("Say something.")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], "Over a socket.");
    server.client.cancel().await?;
    child.wait().await?;

    // initialize, as the first line of a file; the answer comes before the file's end is read.
    let requests = world.root().join("requests.jsonl");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "file", "version": "1"}}});
    std::fs::write(&requests, format!("{initialize}\n"))?;
    let out = world.serve_command().stdin(std::fs::File::open(&requests)?).stderr(Stdio::null()).output().await?;
    let answer: Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap_or_default())
        .with_context(|| format!("stdout: {}", String::from_utf8_lossy(&out.stdout)))?;
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["result"]["serverInfo"]["name"], "codex-jobhost", "{answer}");
    Ok(())
}
