//! Every agent action passes the project's approval policy (app-server
//! backend): the real Codex CLI asks, the job's policies (or the caller,
//! through job_approve) answer, and the job's events are the audit trail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use codex_jobhost_e2e::{Reply, World, decided};
use rmcp::RoleClient;
use rmcp::model::{ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability};
use rmcp::service::RequestContext;
use serde_json::json;

fn allowlist(world: &World, config: &str) -> Result<()> {
    let guest = world.project_guest("command_allowlist")?;
    world.project_policy(&format!("[[approval]]\npath = {guest:?}\nconfig = {config}\n"))
}

/// An MCP client that declares `elicitation` and accepts whatever it is asked.
#[derive(Clone, Default)]
struct Accepting {
    asked: Arc<Mutex<Vec<String>>>,
}

impl rmcp::ClientHandler for Accepting {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, rmcp::ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked.lock().unwrap().push(message);
        }
        Ok(ElicitResult::new(ElicitationAction::Accept))
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.capabilities.elicitation = Some(ElicitationCapability::new());
        info
    }
}

#[tokio::test]
async fn a_client_that_can_be_asked_answers_by_elicitation() -> Result<()> {
    let world = World::new([Reply::Escalated("touch elicited.txt".into()), Reply::Message("done".into())])?;
    let client = Accepting::default();
    let server = world.serve_with(client.clone()).await?;
    let job = server.start_job(world.start_args("make a file")).await?;
    let status = server.wait_finished(&job).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(world.work_dir().join("elicited.txt").is_file());
    let asked = client.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].contains("touch elicited.txt") && asked[0].contains(&job), "{}", asked[0]);
    let events = server.all_events(&job).await?;
    assert_eq!(decided(&events)[0]["decided_by"], "elicitation");
    Ok(())
}

#[tokio::test]
async fn a_policy_accepts_an_allowed_command_and_declines_a_denied_one() -> Result<()> {
    let world = World::new([
        Reply::Escalated("touch made.txt".into()),
        Reply::Escalated("rm -rf keep".into()),
        Reply::Message("done".into()),
    ])?;
    std::fs::create_dir_all(world.work_dir().join("keep"))?;
    allowlist(&world, r#"{ allow = ["touch"], deny = ["rm -rf"] }"#)?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("make a file, then clean up")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["backend"], "app-server");
    assert!(world.work_dir().join("made.txt").is_file(), "the accepted command ran");
    assert!(world.work_dir().join("keep").is_dir(), "the declined command never ran");

    let events = server.all_events(&job).await?;
    let d = decided(&events);
    assert_eq!(d.len(), 2, "{events:?}");
    // The policy saw the command the agent meant, not Codex's shell wrapper.
    assert_eq!(d[0]["request"]["command"]["command"], "touch made.txt");
    assert_eq!(d[0]["request"]["command"]["argv"], json!(["touch", "made.txt"]));
    // Decided once, by the hook Codex runs before the command (its approval request got the same answer).
    assert_eq!(d[0]["via"], "hook");
    // Where in Codex's conversation it came from: the thread the job reports, and the item.
    let origin = &d[0]["request"]["command"]["origin"];
    assert_eq!(origin["thread_id"], status["thread_id"], "{origin}");
    assert!(origin["item_id"].as_str().is_some_and(|i| !i.is_empty()), "{origin}");
    assert_eq!((d[0]["decision"].as_str(), d[0]["decided_by"].as_str()), (Some("accept"), Some("command_allowlist")));
    assert_eq!(d[1]["decision"], "decline");
    assert!(d[1]["reason"].as_str().unwrap().contains("rm -rf"), "{:?}", d[1]);
    // The hook blocked it before Codex began it: no command item for it at all.
    let began = events.iter().any(|e| {
        e["data"]["item"]["type"] == "command_execution"
            && e["data"]["item"]["command"].as_str().is_some_and(|c| c.contains("rm -rf"))
    });
    assert!(!began, "{events:?}");
    Ok(())
}

#[tokio::test]
async fn without_a_policy_the_caller_answers_with_job_approve() -> Result<()> {
    let world = World::new([
        Reply::Escalated("touch yes.txt".into()),
        Reply::Escalated("touch no.txt".into()),
        Reply::Message("done".into()),
    ])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("make two files")).await?;

    let status = server.wait_input_required(&job).await?;
    assert_eq!(status["status"], "input_required", "{status}");
    let pending = &status["pending_approvals"][0];
    assert_eq!((pending["kind"].as_str(), pending["asked_by"].as_str()), (Some("command"), Some("built-in")));
    assert_eq!(pending["request"]["command"]["command"], "touch yes.txt");
    let first = pending["request_id"].as_str().context("request_id")?.to_owned();
    let listed = server.ok("job_list", json!({"status": "input_required"})).await?;
    assert_eq!(listed["jobs"][0]["job_id"], job.as_str(), "{listed}");
    let feed = server.ok("job_notifications", json!({})).await?;
    assert_eq!(feed["notifications"][0]["status"], "input_required", "{feed}");

    let approved = server.ok("job_approve", json!({"job_id": job, "request_id": first, "decision": "accept"})).await?;
    assert_eq!(approved["decision"], "accept");
    let again = server.err("job_approve", json!({"job_id": job, "request_id": first, "decision": "decline"})).await?;
    assert!(again.contains("already answered: accept by job_approve"), "{again}");

    let status = server.wait_input_required(&job).await?;
    let second = status["pending_approvals"][0]["request_id"].as_str().context("request_id")?.to_owned();
    assert_ne!(second, first);
    let unknown = server.err("job_approve", json!({"job_id": job, "request_id": "0-99", "decision": "accept"})).await?;
    assert!(unknown.contains("no approval request 0-99") && unknown.contains(&second), "{unknown}");
    let args = json!({"job_id": job, "request_id": second, "decision": "decline", "reason": "not that one"});
    server.ok("job_approve", args).await?;

    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(world.work_dir().join("yes.txt").is_file());
    assert!(!world.work_dir().join("no.txt").exists());
    let events = server.all_events(&job).await?;
    let by: Vec<_> = decided(&events).iter().map(|d| (d["decision"].clone(), d["decided_by"].clone())).collect();
    assert_eq!(by, [(json!("accept"), json!("job_approve")), (json!("decline"), json!("job_approve"))]);
    assert_eq!(events.iter().filter(|e| e["type"] == "approval.requested").count(), 2);
    Ok(())
}

/// A job whose agent waits for a person holds no running place: with
/// `max_running = 1`, a second job starts and ends while the first waits for
/// `job_approve`, and the first ends once answered.
#[tokio::test]
async fn a_job_waiting_for_an_answer_holds_no_running_place() -> Result<()> {
    let world = World::new([
        Reply::Escalated("touch a.txt".into()),
        Reply::Message("b done".into()),
        Reply::Message("a done".into()),
    ])?;
    std::fs::create_dir_all(world.jobhost_home())?;
    std::fs::write(world.jobhost_home().join("config.toml"), "[jobs]\nmax_running = 1\n")?;
    let server = world.serve().await?;
    let a = server.start_job(world.start_args("make a file")).await?;
    let status = server.wait_input_required(&a).await?;
    let request = status["pending_approvals"][0]["request_id"].as_str().context("request_id")?.to_owned();

    let b = server.start_job(world.start_args("just answer")).await?;
    let done = server.wait_done(&b, 120).await?;
    assert_eq!((done["status"].as_str(), done["last_message"].as_str()), (Some("completed"), Some("b done")), "{done}");
    assert_eq!(server.ok("job_status", json!({"job_id": a})).await?["status"], "input_required");

    server.ok("job_approve", json!({"job_id": a, "request_id": request, "decision": "accept"})).await?;
    let done = server.wait_done(&a, 120).await?;
    assert_eq!((done["status"].as_str(), done["last_message"].as_str()), (Some("completed"), Some("a done")), "{done}");
    assert!(world.work_dir().join("a.txt").is_file());
    Ok(())
}

#[tokio::test]
async fn a_pending_approval_survives_a_server_crash() -> Result<()> {
    let world = World::new([Reply::Escalated("touch after-crash.txt".into()), Reply::Message("done".into())])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("make a file")).await?;
    let status = server.wait_input_required(&job).await?;
    let request = status["pending_approvals"][0]["request_id"].as_str().context("request_id")?.to_owned();
    server.kill()?;

    let server = world.serve().await?;
    let status = server.ok("job_status", json!({"job_id": job})).await?;
    assert_eq!(status["status"], "input_required", "{status}");
    assert_eq!(status["pending_approvals"][0]["request_id"], request.as_str());
    server.ok("job_approve", json!({"job_id": job, "request_id": request, "decision": "accept"})).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(world.work_dir().join("after-crash.txt").is_file());
    Ok(())
}

#[tokio::test]
async fn an_unanswered_approval_is_declined_at_its_deadline() -> Result<()> {
    let world = World::new([Reply::Escalated("touch never.txt".into()), Reply::Message("done".into())])?;
    let server = world.serve().await?;
    let mut args = world.start_args("make a file");
    args["approval_timeout_s"] = json!(1);
    let job = server.start_job(args).await?;
    let status = server.wait_finished(&job).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(!world.work_dir().join("never.txt").exists());
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    assert_eq!((d[0]["decision"].as_str(), d[0]["decided_by"].as_str()), (Some("decline"), Some("timeout")), "{d:?}");
    Ok(())
}

#[tokio::test]
async fn a_file_change_is_decided_by_the_policy() -> Result<()> {
    let world = World::new([
        Reply::Patch("*** Begin Patch\n*** Add File: .env\n+TOKEN=1\n*** End Patch\n".into()),
        Reply::Message("done".into()),
    ])?;
    allowlist(&world, r#"{ deny_paths = [".env"] }"#)?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("write .env")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(!world.work_dir().join(".env").exists(), "the declined change was not made");
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    assert_eq!(d.len(), 1, "{events:?}");
    assert_eq!(d[0]["kind"], "file_change");
    let path = world.work_dir().join(".env").display().to_string();
    assert_eq!(d[0]["request"]["file-change"]["paths"], json!([path]));
    assert_eq!(d[0]["request"]["file-change"]["kind"], "add");
    assert_eq!(d[0]["decision"], "decline");
    Ok(())
}

#[tokio::test]
async fn a_trapping_policy_declines_and_the_job_goes_on() -> Result<()> {
    let world = World::new([Reply::Escalated("touch trapped.txt".into()), Reply::Message("went on".into())])?;
    let guest = world.project_guest("fixture_trap")?;
    world.project_policy(&format!("[[approval]]\npath = {guest:?}\nconfig = {{ spare_launches = true }}\n"))?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("make a file")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], "went on");
    assert!(!world.work_dir().join("trapped.txt").exists());
    let events = server.all_events(&job).await?;
    let d = decided(&events);
    assert_eq!(d[0]["decision"], "decline");
    assert!(d[0]["reason"].as_str().unwrap().contains("fixture_trap failed"), "{d:?}");
    Ok(())
}

#[tokio::test]
async fn cancel_interrupts_a_turn_and_reply_continues_the_thread() -> Result<()> {
    let world = World::new([
        Reply::Message("first".into()),
        Reply::After(Duration::from_secs(600), Box::new(Reply::Message("never".into()))),
    ])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("one")).await?;
    let first = server.wait_done(&job, 120).await?;
    assert_eq!(first["status"], "completed", "{first}");
    let thread = first["thread_id"].clone();
    server.ok("job_reply", json!({"job_id": job, "prompt": "two"})).await?;
    // The second turn runs on the same thread; job_list sees it running.
    let running = loop {
        let listed = server.ok("job_list", json!({"status": "running"})).await?;
        if !listed["jobs"].as_array().unwrap().is_empty() && world.model.requests().len() >= 2 {
            break listed;
        }
        server.ok("job_wait", json!({"job_ids": [job], "timeout_s": 1})).await?;
    };
    assert_eq!(running["jobs"][0]["job_id"], job.as_str());
    assert!(world.model.requests()[1].to_string().contains("first"), "the second turn carries the thread's history");
    let cancelled = server.ok("job_cancel", json!({"job_id": job})).await?;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let status = server.ok("job_status", json!({"job_id": job})).await?;
    assert_eq!((status["status"].as_str(), &status["thread_id"]), (Some("cancelled"), &thread));
    // Codex was asked to interrupt the turn (turn/interrupt), and did, before anything was killed.
    let events = server.all_events(&job).await?;
    let interrupted = events.iter().any(|e| {
        e["type"] == "turn.failed"
            && e["data"]["error"]["message"].as_str().is_some_and(|m| m.to_lowercase().contains("interrupt"))
    });
    assert!(interrupted, "{events:?}");
    assert_eq!(cancelled["killed"], false, "{cancelled}");
    Ok(())
}

#[tokio::test]
async fn a_cancel_answer_ends_the_turn_cancelled_with_its_reason() -> Result<()> {
    let world = World::new([Reply::Escalated("touch never.txt".into()), Reply::Message("not reached".into())])?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args("make a file")).await?;
    let status = server.wait_input_required(&job).await?;
    let request = status["pending_approvals"][0]["request_id"].as_str().context("request_id")?.to_owned();
    let args = json!({"job_id": job, "request_id": request, "decision": "cancel", "reason": "stop here"});
    server.ok("job_approve", args).await?;
    let status = server.wait_finished(&job).await?;
    assert_eq!(status["status"], "cancelled", "{status}");
    assert_eq!(status["error"], "cancelled by job_approve: stop here");
    assert!(!world.work_dir().join("never.txt").exists());
    Ok(())
}
