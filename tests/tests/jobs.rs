//! Jobs end to end: the built server over stdio, rmcp's client, the real Codex
//! CLI (`CODEX_BIN`) and a mock model.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use codex_jobhost_e2e::{Reply, World};
use rmcp::model::{CallToolRequestParams, ClientRequest, ProgressNotificationParam, ServerResult};
use rmcp::service::{NotificationContext, PeerRequestOptions};
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};

fn kinds(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap_or("").to_owned()).collect()
}

fn statuses(events: &[Value]) -> Vec<(String, u64)> {
    events
        .iter()
        .filter(|e| e["type"] == "job.status")
        .map(|e| (e["data"]["status"].as_str().unwrap().to_owned(), e["data"]["turn"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_job_completes_with_the_agents_message() -> Result<()> {
    let world = World::new([Reply::Message("The answer is 42.".into())])?;
    let server = world.serve().await?;
    let started = server.ok("job_start", world.start_args("What is the answer?")).await?;
    assert_eq!(started["status"], "queued");
    assert_eq!(started["cursor"], 0);
    let job = started["job_id"].as_str().unwrap().to_owned();

    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["exit_code"], 0);
    assert_eq!(status["last_message"], "The answer is 42.");
    assert!(status["thread_id"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(status["finished_at"].as_str().unwrap().ends_with('Z'));

    let events = server.all_events(&job).await?;
    let k = kinds(&events);
    assert!(k.contains(&"thread.started".to_owned()) && k.contains(&"turn.completed".to_owned()), "{k:?}");
    assert_eq!(statuses(&events), [("queued".into(), 0), ("running".into(), 0), ("completed".into(), 0)]);
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == i as u64));
    // The prompt reached the model.
    assert!(world.model.requests()[0].to_string().contains("What is the answer?"));

    // Paging with a cursor and a type filter.
    let page = server.ok("job_events", json!({"job_id": job, "cursor": 1, "limit": 2})).await?;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0]["seq"], 1);
    assert_eq!(page["next_cursor"], 3);
    let messages = server.ok("job_events", json!({"job_id": job, "event_types": ["agent_message"]})).await?;
    assert_eq!(messages["events"].as_array().unwrap().len(), 1);
    assert_eq!(messages["events"][0]["data"]["item"]["text"], "The answer is 42.");
    let cut = server.ok("job_events", json!({"job_id": job, "event_types": ["agent_message"], "truncate": 3})).await?;
    assert_eq!(cut["events"][0]["data"]["item"]["text"], "The…[14 more chars]");
    // Tags and references stay whole: only text is cut.
    let item = &cut["events"][0]["data"]["item"];
    assert_eq!((&item["type"], &cut["events"][0]["data"]["type"]), (&json!("agent_message"), &json!("item.completed")));
    assert_eq!(item["id"], messages["events"][0]["data"]["item"]["id"]);
    let started =
        server.ok("job_events", json!({"job_id": job, "event_types": ["thread.started"], "truncate": 3})).await?;
    assert_eq!(started["events"][0]["data"]["thread_id"], status["thread_id"]);

    let list = server.ok("job_list", json!({"status": "completed"})).await?;
    assert_eq!(list["jobs"][0]["job_id"], job.as_str());
    let feed = server.ok("job_notifications", json!({})).await?;
    assert_eq!(feed["notifications"][0]["job_id"], job.as_str());
    assert_eq!(feed["notifications"][0]["status"], "completed");
    let after = server.ok("job_notifications", json!({"cursor": feed["next_cursor"]})).await?;
    assert!(after["notifications"].as_array().unwrap().is_empty());

    // `jobs list`, as `docker ps` shows containers: a header, then each job with its age and duration.
    let out = std::process::Command::new(codex_jobhost_e2e::host_bin())
        .args(["--home".as_ref(), world.jobhost_home().as_os_str(), "jobs".as_ref(), "list".as_ref()])
        .output()?;
    let shown = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Vec<&str>> = shown.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0][..7], ["JOB", "ID", "STATUS", "TURN", "AGE", "DURATION", "CWD"], "{shown}");
    let row = &lines[1];
    assert_eq!((row[0], row[1], row[2]), (job.as_str(), "completed", "0"), "{shown}");
    let span = |s: &str| s.strip_suffix(['s', 'm', 'h', 'd']).is_some_and(|n| n.parse::<u64>().is_ok());
    assert!(span(row[3]) && span(row[4]), "age and duration: {shown}");
    Ok(())
}

#[tokio::test]
async fn the_models_command_really_runs() -> Result<()> {
    let world = World::new([
        Reply::Command("echo made-by-codex > proof.txt && cat proof.txt".into()),
        Reply::Message("Wrote proof.txt.".into()),
    ])?;
    let server = world.serve().await?;
    let mut args = world.start_args("Write proof.txt");
    args["approval_policy"] = json!("auto-edit");
    let job = server.start_job(args).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(std::fs::read_to_string(world.work_dir().join("proof.txt"))?.trim(), "made-by-codex");
    let commands =
        server.ok("job_events", json!({"job_id": job, "event_types": ["command_execution"], "limit": 100})).await?;
    let done = commands["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "item.completed")
        .expect("a completed command");
    assert_eq!(done["data"]["item"]["exit_code"], 0);
    assert!(done["data"]["item"]["aggregated_output"].as_str().unwrap().contains("made-by-codex"));
    // The command's output went back to the model.
    assert_eq!(world.model.requests().len(), 2);
    assert!(world.model.requests()[1].to_string().contains("made-by-codex"));
    Ok(())
}

#[tokio::test]
async fn a_model_error_fails_the_job_with_codexs_message() -> Result<()> {
    let world = World::new([Reply::ServerError])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("fail please")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "failed", "{status}");
    assert_ne!(status["exit_code"], 0);
    let error = status["error"].as_str().unwrap();
    assert!(!error.is_empty() && !error.contains("supervisor"), "Codex's own message: {error}");
    let events = server.all_events(&job).await?;
    assert!(kinds(&events).contains(&"turn.failed".to_owned()));
    let feed = server.ok("job_notifications", json!({})).await?;
    assert_eq!(feed["notifications"][0]["status"], "failed");
    Ok(())
}

#[tokio::test]
async fn job_wait_wakes_when_the_job_ends() -> Result<()> {
    let slow = Reply::After(Duration::from_secs(3), Box::new(Reply::Message("slow answer".into())));
    let world = World::new([slow])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("take your time")).await?;

    // A short wait times out and says what is still pending.
    let short = server.ok("job_wait", json!({"job_ids": [job], "timeout_s": 1})).await?;
    assert_eq!(short["timed_out"], true);
    assert_eq!(short["pending"][0]["job_id"], job.as_str());

    // A wait with no ids waits for any running job.
    let begun = Instant::now();
    let any = server.ok("job_wait", json!({"timeout_s": 120})).await?;
    assert_eq!(any["timed_out"], false, "{any}");
    assert_eq!(any["finished"][0]["job_id"], job.as_str());
    assert_eq!(any["finished"][0]["status"], "completed");
    assert!(begun.elapsed() < Duration::from_secs(100), "woken by the job's end, not the timeout");

    // Waiting on a finished job returns at once.
    let again = server.ok("job_wait", json!({"job_ids": [job], "timeout_s": 240})).await?;
    assert_eq!(again["finished"][0]["status"], "completed");
    Ok(())
}

/// Counts `notifications/progress` from the server.
#[derive(Clone, Default)]
struct ProgressCounter(Arc<AtomicUsize>);

impl ClientHandler for ProgressCounter {
    async fn on_progress(&self, _params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn job_wait_reports_progress_to_a_caller_with_a_progress_token() -> Result<()> {
    let world = World::new([Reply::After(Duration::from_secs(5), Box::new(Reply::Message("done".into())))])?;
    let counter = ProgressCounter::default();
    let server = world.serve_with(counter.clone()).await?;
    let job = server.start_job(world.start_args("slow")).await?;
    let mut args = serde_json::Map::new();
    args.insert("job_ids".into(), json!([job]));
    args.insert("timeout_s".into(), json!(60));
    let request = ClientRequest::CallToolRequest(rmcp::model::Request::new(
        CallToolRequestParams::new("job_wait").with_arguments(args),
    ));
    // A request timeout that progress resets: the wait outlives it only if progress arrives.
    let options = PeerRequestOptions::with_timeout(Duration::from_millis(2500)).reset_timeout_on_progress();
    let response = server.client.send_request_with_option(request, options).await?.await_response().await?;
    let ServerResult::CallToolResult(result) = response else { anyhow::bail!("unexpected response {response:?}") };
    assert_eq!(result.structured_content.unwrap()["finished"][0]["status"], "completed");
    assert!(counter.0.load(Ordering::SeqCst) >= 1, "progress notifications while waiting");
    Ok(())
}

#[tokio::test]
async fn job_reply_adds_a_second_turn() -> Result<()> {
    let world = World::new([Reply::Message("first answer".into()), Reply::Message("second answer".into())])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("first question")).await?;
    let first = server.wait_done(&job, 120).await?;
    assert_eq!(first["last_message"], "first answer");

    let replied = server.ok("job_reply", json!({"job_id": job, "prompt": "second question"})).await?;
    assert_eq!(replied["job_id"], job.as_str());
    assert_eq!(replied["turn"], 1);
    let cursor = replied["cursor"].as_u64().unwrap();
    let second = server.wait_done(&job, 120).await?;
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(second["turn"], 1);
    assert_eq!(second["last_message"], "second answer");
    assert_eq!(second["thread_id"], first["thread_id"], "same Codex thread");

    let events = server.all_events(&job).await?;
    assert_eq!(
        statuses(&events),
        [
            ("queued".into(), 0),
            ("running".into(), 0),
            ("completed".into(), 0),
            ("queued".into(), 1),
            ("running".into(), 1),
            ("completed".into(), 1)
        ]
    );
    assert_eq!(events[cursor as usize]["data"]["prompt"], "second question");
    // The second request carried the whole conversation.
    let second_request = world.model.requests()[1].to_string();
    assert!(second_request.contains("first answer") && second_request.contains("second question"));
    Ok(())
}

#[tokio::test]
async fn job_cancel_stops_a_slow_job() -> Result<()> {
    let world = World::new([Reply::After(Duration::from_secs(600), Box::new(Reply::Message("never".into())))])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("hang")).await?;
    // Wait until Codex has asked the model, so the job is really in flight.
    let begun = Instant::now();
    while world.model.requests().is_empty() {
        assert!(begun.elapsed() < Duration::from_secs(60), "Codex never called the model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = server.err("job_reply", json!({"job_id": job, "prompt": "more"})).await?;
    assert!(err.contains("is running"), "{err}");

    let cancelled = server.ok("job_cancel", json!({"job_id": job})).await?;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let status = server.ok("job_status", json!({"job_id": job})).await?;
    assert_eq!(status["status"], "cancelled");
    let pid = status["exit_code"].clone();
    assert!(pid.is_null() || pid.as_i64().unwrap() != 0);
    let err = server.err("job_cancel", json!({"job_id": job})).await?;
    assert!(err.contains("already cancelled"), "{err}");
    Ok(())
}

#[tokio::test]
async fn jobs_outlive_a_killed_server() -> Result<()> {
    let world = World::new([Reply::After(Duration::from_secs(4), Box::new(Reply::Message("survived".into())))])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("outlive the server")).await?;
    let begun = Instant::now();
    while world.model.requests().is_empty() {
        assert!(begun.elapsed() < Duration::from_secs(60), "Codex never called the model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill()?;

    let server = world.serve().await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["exit_code"], 0);
    assert_eq!(status["last_message"], "survived");
    let list = server.ok("job_list", json!({})).await?;
    assert_eq!(list["jobs"][0]["job_id"], job.as_str());
    Ok(())
}

#[tokio::test]
async fn a_dead_supervisor_is_reported_as_failed() -> Result<()> {
    let world = World::new([Reply::After(Duration::from_secs(600), Box::new(Reply::Message("never".into())))])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("hang")).await?;
    let meta_path = world.jobhost_home().join("jobs").join(&job).join("meta.json");
    let begun = Instant::now();
    let pid = loop {
        let meta: Value = serde_json::from_slice(&std::fs::read(&meta_path)?)?;
        if meta["status"] == "running" {
            break meta["pid"].as_i64().unwrap() as i32;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "never running: {meta}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.kill()?;
    // The supervisor and its Codex die unrecorded.
    rustix::process::kill_process_group(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::KILL)?;

    let server = world.serve().await?;
    let status = server.wait_done(&job, 60).await?;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(status["error"].as_str().unwrap().contains("supervisor"), "{status}");
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_an_error_that_names_it() -> Result<()> {
    let world = World::new([])?;
    let server = world.serve().await?;
    let long = "x".repeat(10_000);
    for bad in ["../x", "/etc", "", "a\0b", long.as_str(), "0192f5d2-6a1b-4c3d-8e4f-0123456789ab"] {
        for tool in ["job_status", "job_events", "job_cancel"] {
            let err = server.err(tool, json!({"job_id": bad})).await?;
            assert!(err.starts_with("invalid job_id"), "{tool} {bad:.20}: {err}");
            assert!(err.len() < 400, "{tool}: error stays short");
        }
        let err = server.err("job_reply", json!({"job_id": bad, "prompt": "x"})).await?;
        assert!(err.starts_with("invalid job_id"), "{err}");
        let err = server.err("job_wait", json!({"job_ids": [bad]})).await?;
        assert!(err.starts_with("invalid job_id"), "{err}");
    }
    assert!(server.err("job_status", json!({"job_id": "../x"})).await?.contains("\"../x\""));
    let unknown = "0192f5d2-6a1b-7c3d-8e4f-0123456789ab";
    assert!(server.err("job_status", json!({"job_id": unknown})).await?.starts_with("no job with id"));

    let work = world.work_dir();
    let file = work.join("a-file");
    std::fs::write(&file, "")?;
    let start = |patch: Value| {
        let mut args = world.start_args("do it");
        for (k, v) in patch.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    let cases = [
        (json!({"cwd": "relative/dir"}), "invalid cwd \"relative/dir\": expected an absolute path"),
        (json!({"cwd": "/no/such/dir"}), "invalid cwd \"/no/such/dir\""),
        (json!({"cwd": file}), "not a directory"),
        (json!({"cwd": ""}), "invalid cwd \"\""),
        (json!({"prompt": "  "}), "invalid prompt"),
        (json!({"approval_policy": "yolo"}), "invalid approval_policy \"yolo\""),
        (json!({"sandbox": "none"}), "invalid sandbox \"none\""),
        (json!({"config": ["no-equals"]}), "invalid config entry \"no-equals\""),
        (json!({"approval_policy": "full-auto", "sandbox": "read-only"}), "cannot be combined"),
    ];
    for (patch, expected) in cases {
        let err = server.err("job_start", start(patch.clone())).await?;
        assert!(err.contains(expected), "{patch}: {err}");
    }
    assert!(world.model.requests().is_empty(), "no Codex started for refused input");
    assert!(std::fs::read_dir(world.jobhost_home().join("jobs"))?.next().is_none(), "no job created");

    let job = server.start_job(world.start_args("fine")).await?;
    server.wait_done(&job, 120).await?;
    let err = server.err("job_events", json!({"job_id": job, "cursor": 1000})).await?;
    assert!(err.contains("invalid cursor 1000"), "{err}");
    let err = server.err("job_events", json!({"job_id": job, "limit": 0})).await?;
    assert!(err.contains("invalid limit 0"), "{err}");
    let err = server.err("job_list", json!({"status": "done"})).await?;
    assert!(err.contains("invalid status \"done\""), "{err}");
    let err = server.err("job_wait", json!({"job_ids": [job], "timeout_s": 241})).await?;
    assert!(err.contains("invalid timeout_s 241: expected 0 to 240 seconds"), "{err}");
    let err = server.err("job_notifications", json!({"cursor": 3})).await?;
    assert!(err.contains("invalid cursor 3"), "{err}");
    // Numbers may come as strings of digits (the MCP Inspector's CLI sends them so); nothing else.
    let page = server.ok("job_events", json!({"job_id": job, "limit": "2", "cursor": "0"})).await?;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2), "{page}");
    let err = server.err("job_events", json!({"job_id": job, "limit": "two"})).await?;
    assert!(err.contains("invalid value \"two\": expected a whole number (or a string of digits)"), "{err}");
    let err = server.err("job_reply", json!({"job_id": job, "prompt": ""})).await?;
    assert!(err.contains("invalid prompt"), "{err}");
    // Arguments of the wrong JSON type, or unknown ones, are named too.
    let err = server.err("job_status", json!({"job_id": 5})).await?;
    assert!(err.contains("invalid type: integer `5`, expected a string"), "{err}");
    let err = server.err("job_list", json!({"state": "running"})).await?;
    assert!(err.contains("unknown field `state`"), "{err}");
    // An unknown tool is a protocol error.
    assert!(server.call("job_explode", json!({})).await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_second_server_on_the_same_home_can_wait_for_the_firsts_job() -> Result<()> {
    let world = World::new([Reply::After(Duration::from_secs(2), Box::new(Reply::Message("shared".into())))])?;
    let first = world.serve().await?;
    let second = world.serve().await?;
    second.ok("job_list", json!({})).await?; // the second has indexed the (empty) home
    let job = first.start_job(world.start_args("share")).await?;
    let status = second.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], "shared");
    Ok(())
}

/// Until `server`'s job_list shows `want` (status, turn) for the job, which
/// another server started: it learns from the home's queue, not from a call
/// naming the job.
async fn listed(server: &codex_jobhost_e2e::Server, job: &str, want: (&str, u64)) -> Result<()> {
    for _ in 0..1200 {
        let list = server.ok("job_list", json!({})).await?;
        let found = list["jobs"].as_array().into_iter().flatten().find(|j| j["job_id"] == job);
        if found.is_some_and(|j| j["status"] == want.0 && j["turn"] == want.1) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the server never listed {job} as {want:?}")
}

#[tokio::test]
async fn a_server_lists_the_jobs_and_replies_another_server_starts_unasked() -> Result<()> {
    let world = World::new([Reply::Message("first turn".into()), Reply::Message("second turn".into())])?;
    let first = world.serve().await?;
    let second = world.serve().await?;
    second.ok("job_list", json!({})).await?; // the second has indexed the (empty) home
    let job = first.start_job(world.start_args("share")).await?;
    first.wait_done(&job, 120).await?;
    listed(&second, &job, ("completed", 0)).await?;
    first.ok("job_reply", json!({"job_id": job, "prompt": "more"})).await?;
    first.wait_done(&job, 120).await?;
    listed(&second, &job, ("completed", 1)).await?;
    Ok(())
}

/// A job another server queued behind the limit (never admitted, so its
/// entry never moves to `admitted/`) is listed as queued, with its place.
#[tokio::test]
async fn a_server_lists_a_job_another_server_queued_behind_the_limit() -> Result<()> {
    // The model never answers the first job: it runs until cancelled, however slow the machine.
    let world = World::new([Reply::After(Duration::from_secs(600), Box::new(Reply::Message("never".into())))])?;
    std::fs::create_dir_all(world.jobhost_home())?;
    std::fs::write(world.jobhost_home().join("config.toml"), "[jobs]\nmax_running = 1\n")?;
    let first = world.serve().await?;
    let second = world.serve().await?;
    second.ok("job_list", json!({})).await?; // the second has indexed the (empty) home
    let running = first.start_job(world.start_args("hold the only place")).await?;
    listed(&second, &running, ("running", 0)).await?;
    let waiting = first.start_job(world.start_args("wait")).await?;
    listed(&second, &waiting, ("queued", 0)).await?;
    let status = second.ok("job_status", json!({"job_id": waiting})).await?;
    assert_eq!(status["queue_position"], 1, "{status}");
    for job in [&waiting, &running] {
        first.ok("job_cancel", json!({"job_id": job})).await?;
        assert_eq!(first.wait_done(job, 120).await?["status"], "cancelled");
    }
    Ok(())
}

#[tokio::test]
async fn a_reply_to_a_thread_codex_lost_fails_with_codexs_reason() -> Result<()> {
    let world = World::new([Reply::Message("first".into())])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("one")).await?;
    assert_eq!(server.wait_done(&job, 120).await?["status"], "completed");
    // The user cleaned up Codex's own records of the conversation.
    std::fs::remove_dir_all(world.codex_home().join("sessions"))?;
    server.ok("job_reply", json!({"job_id": job, "prompt": "two"})).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty() && !error.contains("supervisor"), "Codex's own reason: {error}");
    Ok(())
}
