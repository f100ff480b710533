//! `codex-jobhost serve --http`: MCP over streamable HTTP, tried with a plain
//! HTTP client (ureq) the way an attacker would and the way a client does:
//! tokens, read tokens, Origin, Host, a 20 MB body, refusals at start, and
//! jobs started over HTTP in both protocol eras, one of them as a task.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use codex_jobhost_e2e::http::{HttpServer, add_token, jobhost};
use codex_jobhost_e2e::{Reply, World};
use serde_json::{Value, json};

const DISCOVER: &str = "server/discover";

#[test]
fn tokens_let_in_who_they_name_and_a_read_token_only_reads() -> Result<()> {
    let world = World::new([Reply::Message("over http".into())])?;
    let full = add_token(&world, "alice", false)?;
    let read = add_token(&world, "ci", true)?;
    let server = HttpServer::start(&world, &[])?;

    // No token, a wrong one: 401, saying how to authenticate.
    for token in [None, Some("cjh_0000"), Some("")] {
        let answer = server.modern(token, DISCOVER, json!({}), false)?;
        assert_eq!((answer.status, answer.authenticate.as_deref()), (401, Some("Bearer")), "{token:?}: {answer:?}");
    }
    // A read token reads, and is refused (403) whatever would change something.
    let discovered = server.modern(Some(&read), DISCOVER, json!({}), true)?;
    assert_eq!(discovered.status, 200, "{discovered:?}");
    let listed = server.call(&read, "job_list", json!({}))?;
    assert_eq!(listed["structuredContent"]["jobs"], json!([]), "{listed}");
    for (method, params) in [
        ("tools/call", json!({"name": "job_start", "arguments": world.start_args("no")})),
        ("tools/call", json!({"name": "job_approve", "arguments": {}})),
        ("tasks/cancel", json!({"taskId": "x.0"})),
    ] {
        let answer = server.modern(Some(&read), method, params, true)?;
        assert_eq!(answer.status, 403, "{method}: {answer:?}");
        ensure!(answer.text.contains("a read token may not"), "{answer:?}");
    }

    // A full token starts a job; the job says who started it.
    let started = server.call(&full, "job_start", world.start_args("a job over http"))?;
    let job = started["structuredContent"]["job_id"].as_str().context("job_id")?.to_owned();
    let status = loop {
        let waited = server.call(&full, "job_wait", json!({"job_ids": [job], "timeout_s": 120}))?;
        if waited["structuredContent"]["finished"].as_array().is_some_and(|f| !f.is_empty()) {
            break server.call(&read, "job_status", json!({"job_id": job}))?;
        }
    };
    assert_eq!(status["structuredContent"]["status"], "completed", "{status}");
    assert_eq!(status["structuredContent"]["started_by"], "alice", "{status}");
    let listed = server.call(&read, "job_list", json!({}))?;
    assert_eq!(listed["structuredContent"]["jobs"][0]["started_by"], "alice", "{listed}");
    // started_by is the transport's to set, never the caller's.
    let mut spoofed = world.start_args("spoof");
    spoofed["started_by"] = json!("mallory");
    let refused = server.call(&full, "job_start", spoofed)?;
    assert_eq!(refused["isError"], true, "{refused}");

    // Revoked: refused from the next request on, by the running server.
    let out = jobhost(&world, &["http", "token", "revoke", "ci"]).output()?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer = server.modern(Some(&read), DISCOVER, json!({}), false)?;
    assert_eq!(answer.status, 401, "{answer:?}");
    Ok(())
}

#[test]
fn a_foreign_origin_a_foreign_host_and_a_20_mb_body_are_refused() -> Result<()> {
    let world = World::new([])?;
    let token = add_token(&world, "alice", false)?;
    let server = HttpServer::start(&world, &["--allow-origin", "https://app.example.com:443"])?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": DISCOVER, "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let modern = [("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", DISCOVER)];
    let with = |extra: (&'static str, &'static str)| {
        let mut headers = modern.to_vec();
        headers.push(extra);
        headers
    };
    let evil = server.post(Some(&token), &with(("Origin", "http://evil.example")), &body)?;
    assert_eq!(evil.status, 403, "{evil:?}");
    let allowed = server.post(Some(&token), &with(("Origin", "https://app.example.com")), &body)?;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    let rebinding = server.post(Some(&token), &with(("Host", "evil.example")), &body)?;
    assert_eq!(rebinding.status, 403, "{rebinding:?}");
    // 20 MB announced, sent as curl sends a body past 1 MiB: headers first, the body once the server says go on.
    let head = format!(
        "Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nExpect: 100-continue\r\n",
        20 << 20
    );
    let (_socket, status_line) = server.raw(&head, "")?;
    ensure!(status_line.starts_with("HTTP/1.1 413"), "{status_line:?}");
    Ok(())
}

#[test]
fn serving_without_tokens_is_refused_and_no_auth_is_for_loopback_only() -> Result<()> {
    let world = World::new([])?;
    let out = jobhost(&world, &["serve", "--http", "127.0.0.1:0"]).output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success() && said.contains("no HTTP tokens"), "{said}");
    let out = jobhost(&world, &["serve", "--http", "0.0.0.0:0", "--no-auth"]).output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success() && said.contains("loopback address only") && said.contains("0.0.0.0"), "{said}");
    // On loopback it serves, with a warning, and lets a request without a token in.
    let server = HttpServer::start(&world, &["--no-auth"])?;
    let answer = server.modern(None, DISCOVER, json!({}), false)?;
    assert_eq!(answer.status, 200, "{answer:?}");
    Ok(())
}

#[test]
fn both_eras_over_http_a_session_that_initializes_and_a_task_polled_to_its_end() -> Result<()> {
    let world = World::new([])?;
    world.model.route("SESSION-JOB", [Reply::Message("from a session".into())]);
    world.model.route("TASK-JOB", [Reply::Message("from a task".into())]);
    let token = add_token(&world, "alice", false)?;
    let server = HttpServer::start(&world, &[])?;

    // The older era: initialize, a session id, then requests in that session.
    let session = server.open_session(&token)?;
    let in_session = HttpServer::in_session(&session);
    let start = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "job_start", "arguments": world.start_args("SESSION-JOB")}});
    let started = server.post(Some(&token), &in_session, &start.to_string())?;
    let result = &started.json.as_ref().context("an answer")?["result"];
    ensure!(result["structuredContent"]["job_id"].is_string(), "{started:?}");

    // The current era, the tasks extension declared: a task, polled to its end.
    let created = server.modern(
        Some(&token),
        "tools/call",
        json!({"name": "job_start", "arguments": world.start_args("TASK-JOB")}),
        true,
    )?;
    let task = &created.json.as_ref().context("an answer")?["result"];
    assert_eq!(task["resultType"], "task", "{created:?}");
    let task_id = task["taskId"].as_str().context("taskId")?.to_owned();
    let done = loop {
        let got = server.modern(Some(&token), "tasks/get", json!({"taskId": task_id}), true)?;
        let result = got.json.as_ref().and_then(|j| j.get("result")).cloned().with_context(|| format!("{got:?}"))?;
        if result["status"] != "working" {
            break result;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["structuredContent"]["last_message"], "from a task", "{done}");
    assert_eq!(done["result"]["structuredContent"]["started_by"], "alice", "{done}");
    Ok(())
}

/// Two clients, each in its own session, wait at once with their own
/// progress tokens: each stream carries its own progress notifications and
/// none of the other's.
#[test]
fn two_clients_at_once_each_get_their_own_progress_notifications() -> Result<()> {
    let (_world, token, server, job) = a_long_job_over_http()?;
    let waits: Vec<Result<(String, Vec<Value>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["first", "second"]
            .map(|name| {
                let (server, token, job) = (&server, &token, &job);
                scope.spawn(move || -> Result<(String, Vec<Value>)> {
                    let session = server.open_session(token)?;
                    let progress_token = format!("progress-of-{name}");
                    // job_wait reports every second; its 3 s end comes after at least the first report.
                    let wait = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                        "name": "job_wait", "arguments": {"job_ids": [job], "timeout_s": 3},
                        "_meta": {"progressToken": progress_token}}});
                    let answer = server.post(Some(token), &HttpServer::in_session(&session), &wait.to_string())?;
                    ensure!(answer.status == 200, "{answer:?}");
                    let waited = &answer.json.as_ref().context("job_wait's answer")?["result"]["structuredContent"];
                    ensure!(waited["timed_out"] == true, "{answer:?}");
                    let notes = answer
                        .text
                        .lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l.strip_prefix("data:")?.trim()).ok())
                        .filter(|m| m["method"] == "notifications/progress")
                        .collect();
                    Ok((progress_token, notes))
                })
            })
            .into();
        handles.into_iter().map(|h| h.join().expect("a client thread")).collect()
    });
    for wait in waits {
        let (progress_token, notes) = wait?;
        ensure!(!notes.is_empty(), "{progress_token}: no progress notifications");
        for note in &notes {
            assert_eq!(note["params"]["progressToken"], progress_token.as_str(), "{note}");
        }
    }
    server.call(&token, "job_cancel", json!({"job_id": job}))?;
    Ok(())
}

/// A client that goes away in the middle of a `job_wait` cancels nothing
/// but that wait: the job runs on, and another client is served as before.
#[test]
fn a_client_that_disconnects_mid_wait_cancels_nothing_else() -> Result<()> {
    let (world, token, server, job) = a_long_job_over_http()?;
    while world.model.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }

    // A session's job_wait, on a raw socket closed once the answer has begun.
    let session = server.open_session(&token)?;
    let wait = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "job_wait", "arguments": {"job_ids": [job], "timeout_s": 240}}})
    .to_string();
    let head = format!(
        "Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\n\
         Content-Length: {}\r\n",
        wait.len()
    );
    let (socket, status_line) = server.raw(&head, &wait)?;
    ensure!(status_line.starts_with("HTTP/1.1 200"), "{status_line:?}");
    drop(socket);

    // The job runs on; another client waits, and reads, as before.
    let waited = server.call(&token, "job_wait", json!({"job_ids": [job], "timeout_s": 1}))?;
    assert_eq!(waited["structuredContent"]["timed_out"], true, "{waited}");
    let status = server.call(&token, "job_status", json!({"job_id": job}))?;
    assert_eq!(status["structuredContent"]["status"], "running", "{status}");
    server.call(&token, "job_cancel", json!({"job_id": job}))?;
    Ok(())
}

/// A server with a full token `alice`, and a job started through it whose
/// model answers only after 10 minutes: the world, the token, the server, the job id.
fn a_long_job_over_http() -> Result<(World, String, HttpServer, String)> {
    let world = World::new([Reply::After(Duration::from_secs(600), Box::new(Reply::Message("never".into())))])?;
    let token = add_token(&world, "alice", false)?;
    let server = HttpServer::start(&world, &[])?;
    let started = server.call(&token, "job_start", world.start_args("a long one"))?;
    let job = started["structuredContent"]["job_id"].as_str().context("job_id")?.to_owned();
    Ok((world, token, server, job))
}
