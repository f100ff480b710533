//! MCP 2026-07-28 and its tasks extension (`io.modelcontextprotocol/tasks`),
//! spoken by a raw client: JSON-RPC lines written to the server's stdin, no
//! SDK between (no `initialize`; every request carries its own `_meta`).

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use codex_jobhost_e2e::raw::{RawClient, capabilities};
use codex_jobhost_e2e::{Reply, World, decided};
use serde_json::{Value, json};

/// The job id and turn of a task id (`<job id>.<turn>`).
fn job_of(task_id: &str) -> Result<(String, u32)> {
    let (job, turn) = task_id.rsplit_once('.').context("a task id is <job id>.<turn>")?;
    Ok((job.to_owned(), turn.parse()?))
}

#[tokio::test]
async fn job_start_is_a_task_only_for_a_request_that_declares_tasks_and_tasks_get_reads_the_job() -> Result<()> {
    let world = World::new([])?;
    world.model.route("PLAIN-JOB", [Reply::Message("plain answer".into())]);
    // The reply's conversation holds the first turn's prompt, so it takes its answer from the same route.
    world
        .model
        .route("TASK-JOB", [Reply::Message("the task's answer".into()), Reply::Message("the reply's answer".into())]);
    let mut client = RawClient::start(&world, &[]).await?;

    // Without the extension declared: the job id at once, as ever.
    let plain = client.call("job_start", world.start_args("PLAIN-JOB"), false).await?;
    assert_eq!(plain["resultType"], "complete", "{plain}");
    ensure!(plain["structuredContent"]["job_id"].is_string() && plain["structuredContent"]["turn"] == 0, "{plain}");

    // With it: the turn's task, resolvable at once, and the placeholder Claude Code shows its model.
    let created = client.call("job_start", world.start_args("TASK-JOB"), true).await?;
    ensure!(created["resultType"] == "task" && created["status"] == "working", "{created}");
    let task_id = created["taskId"].as_str().context("taskId")?.to_owned();
    let (job, turn) = job_of(&task_id)?;
    assert_eq!(turn, 0);
    let placeholder = created["_meta"]["com.anthropic/agent-task"]["modelImmediateResponse"].as_str().unwrap_or("");
    ensure!(placeholder.contains(&job) && placeholder.contains("job_status"), "{created}");
    assert_eq!(created["ttlMs"], Value::Null, "a job lives until gc: {created}");
    for stamp in ["createdAt", "lastUpdatedAt"] {
        created[stamp].as_str().context(stamp)?.parse::<jiff::Timestamp>()?;
    }

    let done = client.poll(&task_id, true).await?;
    assert_eq!(done["status"], "completed", "{done}");
    let result = &done["result"];
    assert_eq!(result["isError"], false, "{done}");
    assert_eq!(result["structuredContent"]["status"], "completed", "{done}");
    assert_eq!(result["structuredContent"]["job_id"], job.as_str(), "{done}");
    assert_eq!(result["structuredContent"]["last_message"], "the task's answer", "{done}");
    let text = result["content"][0]["text"].as_str().context("text content")?;
    assert_eq!(serde_json::from_str::<Value>(text)?, result["structuredContent"], "the text is the same report");
    ensure!(result["content"][1]["text"].as_str().is_some_and(|t| t.contains("job_events")), "{done}");
    assert_eq!(result["structuredContent"]["output_tail"], "", "no raw output in the model's context: {done}");

    // A server that never saw the task (a restart) answers the same from the job's files.
    client.stop().await?;
    let mut fresh = RawClient::start(&world, &[]).await?;
    let again = fresh.get(&task_id, true).await?;
    assert_eq!(again["result"], done["result"], "{again}");
    assert_eq!((&again["status"], &again["createdAt"]), (&done["status"], &done["createdAt"]));

    // A reply is turn 1's task; turn 0's stays what it came to.
    let replied = fresh.call("job_reply", json!({"job_id": job, "prompt": "go on"}), true).await?;
    assert_eq!(replied["taskId"], format!("{job}.1"), "{replied}");
    let second = fresh.poll(&format!("{job}.1"), true).await?;
    assert_eq!(second["result"]["structuredContent"]["last_message"], "the reply's answer", "{second}");
    let first = fresh.get(&task_id, true).await?;
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["result"]["structuredContent"]["last_message"], "the task's answer", "{first}");
    assert_eq!(first["result"]["structuredContent"]["current_turn"], 1, "{first}");

    // Unknown tasks are -32602, each naming what is wrong.
    let unknown_job = "0192f5d2-6a1b-7c3d-8e4f-0123456789ab";
    for (bad, says) in [
        ("nonsense".to_owned(), "<job id>.<turn>"),
        ("../../etc/passwd.0".to_owned(), "invalid job_id"),
        (format!("{job}.-1"), "<job id>.<turn>"),
        (format!("{unknown_job}.0"), "no job with id"),
        (format!("{job}.7"), "has no turn 7"),
    ] {
        let response = fresh.request("tasks/get", json!({"taskId": bad}), capabilities(true, false)).await?;
        assert_eq!(response["error"]["code"], -32602, "{response}");
        ensure!(response["error"]["message"].as_str().is_some_and(|m| m.contains(says)), "{bad}: {response}");
    }
    // A request that does not declare the extension may not use its methods (-32021).
    let undeclared = fresh.request("tasks/get", json!({"taskId": task_id}), capabilities(false, false)).await?;
    assert_eq!(undeclared["error"]["code"], -32021, "{undeclared}");
    fresh.stop().await
}

/// On app-server, where the built-in policy hands an escalation request to
/// the caller (as in approvals.rs).
#[tokio::test]
async fn an_approval_request_is_a_form_of_the_task_and_tasks_update_answers_it() -> Result<()> {
    let world = World::new([
        Reply::Escalated("touch by-task.txt".into()),
        Reply::Escalated("touch declined.txt".into()),
        Reply::Message("done".into()),
    ])?;
    let mut client = RawClient::start(&world, &[]).await?;
    let created = client.call("job_start", world.start_args("make files"), true).await?;
    let task_id = created["taskId"].as_str().context("taskId")?.to_owned();

    // A client that cannot elicit sees a working task whose message names job_approve.
    let task = loop {
        let task = client.get(&task_id, false).await?;
        if task["statusMessage"].as_str().is_some_and(|m| m.contains("job_approve")) {
            break task;
        }
        ensure!(task["status"] == "working", "{task}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(task.get("inputRequests").is_none(), "{task}");

    // One that can is shown the request as a form.
    let asked = client.poll(&task_id, true).await?;
    assert_eq!(asked["status"], "input_required", "{asked}");
    let requests = asked["inputRequests"].as_object().context("inputRequests")?;
    let (key, form) = requests.iter().next().context("one request")?;
    assert_eq!(form["method"], "elicitation/create", "{asked}");
    ensure!(form["params"]["message"].as_str().is_some_and(|m| m.contains("touch by-task.txt")), "{asked}");
    assert_eq!(form["params"]["requestedSchema"]["properties"]["decision"]["enum"][0], "accept", "{asked}");

    // A decision that is none of the four is refused, naming it; nothing is answered.
    let bad =
        json!({"taskId": task_id, "inputResponses": {key: {"action": "accept", "content": {"decision": "sure"}}}});
    let refused = client.request("tasks/update", bad, capabilities(true, true)).await?;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    ensure!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("\"sure\"")), "{refused}");

    // Accepted: the command runs. An answer to a key that is not pending is ignored.
    let answer = json!({"taskId": task_id, "inputResponses": {
        key: {"action": "accept", "content": {"decision": "accept"}},
        "9-9": {"action": "accept", "content": {"decision": "accept"}},
    }});
    let acked = client.request("tasks/update", answer, capabilities(true, true)).await?;
    assert_eq!(acked["result"], json!({"resultType": "complete"}), "{acked}");

    // The next request: a form declined is a declined request.
    let asked = loop {
        let task = client.poll(&task_id, true).await?;
        if task["status"] != "input_required" || !task["inputRequests"].as_object().unwrap().contains_key(key) {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(asked["status"], "input_required", "{asked}");
    let second = asked["inputRequests"].as_object().unwrap().keys().next().context("second request")?.clone();
    ensure!(&second != key, "keys are never reused: {asked}");
    let decline = json!({"taskId": task_id, "inputResponses": {&second: {"action": "decline"}}});
    client.request("tasks/update", decline, capabilities(true, true)).await?;

    let done = loop {
        let task = client.poll(&task_id, true).await?;
        if task["status"] != "input_required" {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert!(world.work_dir().join("by-task.txt").is_file());
    assert!(!world.work_dir().join("declined.txt").exists());
    let (job, _) = job_of(&task_id)?;
    let events = events_of(&mut client, &job).await?;
    let by: Vec<_> = decided(&events).iter().map(|d| (d["decision"].clone(), d["decided_by"].clone())).collect();
    assert_eq!(by, [(json!("accept"), json!("tasks/update")), (json!("decline"), json!("tasks/update"))]);
    client.stop().await
}

/// Every event of `job`, through `job_events` pages.
async fn events_of(client: &mut RawClient, job: &str) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    let mut cursor = 0;
    loop {
        let page = client.call("job_events", json!({"job_id": job, "cursor": cursor, "limit": 1000}), false).await?;
        let page = &page["structuredContent"];
        events.extend(page["events"].as_array().context("events")?.iter().cloned());
        cursor = page["next_cursor"].as_u64().context("next_cursor")?;
        if page["has_more"] != true {
            return Ok(events);
        }
    }
}

#[tokio::test]
async fn tasks_cancel_cancels_the_turn_and_a_second_cancel_is_acknowledged_too() -> Result<()> {
    let world = World::new([Reply::After(Duration::from_secs(600), Box::new(Reply::Message("never".into())))])?;
    let mut client = RawClient::start(&world, &[]).await?;
    let created = client.call("job_start", world.start_args("a long one"), true).await?;
    let task_id = created["taskId"].as_str().context("taskId")?.to_owned();
    while world.model.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..2 {
        let acked = client.request("tasks/cancel", json!({"taskId": task_id}), capabilities(true, false)).await?;
        assert_eq!(acked["result"], json!({"resultType": "complete"}), "{acked}");
    }
    let task = client.get(&task_id, false).await?;
    assert_eq!(task["status"], "cancelled", "{task}");
    ensure!(task["statusMessage"].as_str().is_some_and(|m| m.contains("job_cancel")), "{task}");
    let unknown = client.request("tasks/cancel", json!({"taskId": "x.0"}), capabilities(true, false)).await?;
    if unknown["error"]["code"] != -32602 {
        bail!("an unknown task's cancel: {unknown}");
    }
    client.stop().await
}

#[tokio::test]
async fn a_failed_turn_is_a_completed_task_whose_result_is_an_error() -> Result<()> {
    let world = World::new([Reply::ServerError])?;
    let mut client = RawClient::start(&world, &[]).await?;
    let created = client.call("job_start", world.start_args("fails"), true).await?;
    let task_id = created["taskId"].as_str().context("taskId")?.to_owned();
    // The spec keeps `failed` for JSON-RPC errors; a turn that failed is a tool result with isError.
    let done = client.poll(&task_id, false).await?;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["isError"], true, "{done}");
    assert_eq!(done["result"]["structuredContent"]["status"], "failed", "{done}");
    ensure!(done["result"]["structuredContent"]["error"].is_string(), "{done}");
    client.stop().await
}
