//! Policy components through the MCP client: what a project's `.codex/jobhost.toml`
//! does to `job_start`, `job_status` and `job_events`.

use anyhow::Result;
use codex_jobhost_e2e::{Reply, World, guest_wasm};
use serde_json::{Value, json};

#[tokio::test]
async fn a_declined_launch_starts_nothing() -> Result<()> {
    let world = World::new([])?;
    world.project_policy(&format!("[[approval]]\npath = {:?}\n", world.project_guest("command_allowlist")?))?;
    let server = world.serve().await?;
    let mut args = world.start_args("go wild");
    args["approval_policy"] = json!("full-auto");
    let err = server.err("job_start", args).await?;
    assert!(err.contains("refused by policy command_allowlist") && err.contains("full-auto"), "{err}");
    assert!(world.model.requests().is_empty(), "no Codex started");
    let jobs = world.jobhost_home().join("jobs");
    assert!(!jobs.exists() || std::fs::read_dir(&jobs)?.next().is_none(), "no job created");
    // The same project allows a sandboxed launch.
    let job = server.start_job(world.start_args("behave")).await?;
    assert_eq!(server.wait_done(&job, 120).await?["status"], "completed");
    Ok(())
}

#[tokio::test]
async fn truncation_and_filter_policies_shape_what_callers_see() -> Result<()> {
    let secret = "sk-proj-abcdefghijklmnopqrstuvwx";
    let world = World::new([
        Reply::Command(format!("echo token={secret}")),
        Reply::Message(format!("The token is {secret}.")),
    ])?;
    world.project_policy(&format!(
        "[[truncation]]\npath = {:?}\n\n[[filter]]\npath = {:?}\nconfig = {{ drop_types = [\"turn.started\"] }}\n",
        world.project_guest("redact_secrets")?,
        world.project_guest("quiet_events")?,
    ))?;
    let server = world.serve().await?;
    let job = server.start_job(sandboxed(&world, "print the token")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    let tail = status["output_tail"].as_str().unwrap();
    assert!(tail.contains("[REDACTED]") && !tail.contains(secret), "{tail}");

    let events = server.all_events(&job).await?;
    let shown = serde_json::to_string(&events)?;
    assert!(shown.contains("[REDACTED]") && !shown.contains(secret), "{shown}");
    assert!(!events.iter().any(|e| e["type"] == "turn.started"), "filtered out");
    assert!(events.iter().any(|e| e["type"] == "turn.completed"));
    assert!(!events.iter().any(|e| e["type"] == "policy_error"));

    // Nothing is lost: the log on disk has it all.
    let raw = std::fs::read_to_string(world.jobhost_home().join("jobs").join(&job).join("events.jsonl"))?;
    assert!(raw.contains(secret) && raw.contains("\"turn.started\""));
    Ok(())
}

#[tokio::test]
async fn a_replaced_policy_applies_to_the_next_start() -> Result<()> {
    let world = World::new([])?;
    let policy = world.work_dir().join(".codex/policy.wasm");
    world.project_policy("[[approval]]\npath = \"policy.wasm\"\n")?;
    std::fs::copy(guest_wasm("fixture_accept_all"), &policy)?;
    let server = world.serve().await?;
    let mut args = world.start_args("anything goes");
    args["approval_policy"] = json!("full-auto");
    let job = server.start_job(args.clone()).await?;
    server.wait_done(&job, 120).await?;

    std::fs::copy(guest_wasm("command_allowlist"), &policy)?;
    let err = server.err("job_start", args).await?;
    assert!(err.contains("refused by policy policy"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_broken_policy_never_means_no_policy() -> Result<()> {
    let world = World::new([])?;
    let server = world.serve().await?;
    world.project_policy("[[approval]]\npath = \"missing.wasm\"\n")?;
    let err = server.err("job_start", world.start_args("x")).await?;
    assert!(err.contains("missing.wasm does not exist") && err.contains("jobhost.toml"), "{err}");
    world.project_policy(&format!("[[filter]]\npath = {:?}\n", world.project_guest("fixture_trap")?))?;
    let err = server.err("job_start", world.start_args("x")).await?;
    assert!(err.contains("listed under [[filter]] but implements the approval-policy world"), "{err}");
    world.project_policy(&format!("[[approval]]\npath = {:?}\n", world.project_guest("fixture_infinite_loop")?))?;
    let err = server.err("job_start", world.start_args("x")).await?;
    assert!(err.contains("ran out of fuel"), "an endless policy declines: {err}");
    assert!(world.model.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_page_that_runs_out_of_policy_time_falls_back_and_says_so() -> Result<()> {
    let world = World::new([Reply::Command("echo one".into()), Reply::Message("two".into())])?;
    // Each call of this truncation spins for tens of milliseconds or more, well
    // inside its own limits; the request's budget of 1 ms runs out after the first.
    std::fs::create_dir_all(world.jobhost_home())?;
    std::fs::write(
        world.jobhost_home().join("config.toml"),
        "[limits]\ndeadline_ms = 60000\nfuel = 1000000000000\nrequest_budget_ms = 1\n",
    )?;
    hostile_truncation(&world, "slow")?;
    let server = world.serve().await?;
    let job = server.start_job(sandboxed(&world, "go")).await?;
    server.wait_done(&job, 120).await?;
    let page = server.ok("job_events", json!({"job_id": job, "limit": 1000, "truncate": 5})).await?;
    assert_eq!(page["policy_budget_exhausted"], true, "{page}");
    // The rest of the page got the built-in cut to 5 characters.
    let shown = serde_json::to_string(&page["events"])?;
    assert!(shown.contains("more chars]"), "{shown}");
    assert!(!page["events"].as_array().unwrap().iter().any(|e| e["type"] == "policy_error"), "no failure: {page}");
    Ok(())
}

/// The project's one truncation: the hostile fixture, in `mode`.
fn hostile_truncation(world: &World, mode: &str) -> Result<()> {
    let guest = world.project_guest("fixture_hostile_truncation")?;
    world.project_policy(&format!("[[truncation]]\npath = {guest:?}\nconfig = {{ mode = {mode:?} }}\n"))
}

/// `job_start` arguments whose commands run in the sandbox, unasked (`auto-edit`).
fn sandboxed(world: &World, prompt: &str) -> serde_json::Value {
    let mut args = world.start_args(prompt);
    args["approval_policy"] = json!("auto-edit");
    args
}

#[test]
fn policy_check_refuses_exports_of_the_wrong_type_and_imports_the_host_does_not_offer() -> Result<()> {
    let home = tempfile::tempdir()?;
    let check = |guest: &str| -> Result<(bool, String)> {
        let file = guest_wasm(guest).display().to_string();
        let (ok, _, stderr) = cli(home.path(), home.path(), &["policy", "check", &file], "")?;
        Ok((ok, stderr))
    };
    let (ok, err) = check("fixture_wrong_types")?;
    assert!(!ok && err.contains("does not match the approval-policy world"), "{err}");
    let (ok, err) = check("fixture_sleeper")?;
    assert!(!ok && err.contains("wasi:clocks/monotonic-clock"), "{err}");
    let (ok, err) = check("command_allowlist")?;
    assert!(ok, "{err}");
    Ok(())
}

#[tokio::test]
async fn reads_write_nothing_and_report_policy_failures_in_the_result() -> Result<()> {
    let world = World::new([Reply::Command("echo one".into()), Reply::Message("two".into())])?;
    // This truncation returns 2,000,000 characters whatever it is given: a failure on every call.
    hostile_truncation(&world, "flood")?;
    let server = world.serve().await?;
    let job = server.start_job(sandboxed(&world, "go")).await?;
    let status = server.wait_done(&job, 120).await?;
    let count = status["event_count"].as_u64().unwrap();
    let errors = status["policy_errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{status}");
    assert_eq!(errors[0]["component"], "fixture_hostile_truncation");
    assert_eq!(errors[0]["fallback"], "used the built-in truncation");
    assert!(errors[0]["error"].as_str().unwrap().contains("returned 2000000 characters"), "{status}");
    for _ in 0..2 {
        let page = server.ok("job_events", json!({"job_id": job, "limit": 1000})).await?;
        assert_eq!(page["has_more"], false, "{page}");
        assert_eq!(page["next_cursor"].as_u64(), Some(count), "no event was added by reading");
        // Once per component and error, however many strings it failed on.
        assert_eq!(page["policy_errors"].as_array().map(Vec::len), Some(1), "{page}");
    }
    let again = server.ok("job_status", json!({"job_id": job})).await?;
    assert_eq!(again["event_count"].as_u64(), Some(count));
    Ok(())
}

#[test]
fn policy_test_runs_a_guest_that_prints_and_shows_a_panic() -> Result<()> {
    let home = tempfile::tempdir()?;
    let request = r#"{"command": {"command": "ls", "cwd": "/w"}}"#;
    let run = |guest: &str| -> Result<(bool, String, String)> {
        let file = guest_wasm(guest).display().to_string();
        cli(home.path(), home.path(), &["policy", "test", &file, "--request", request], "")
    };
    // It prints on every call: printing must not abort `policy test`.
    let (ok, stdout, stderr) = run("fixture_chatty")?;
    assert!(ok && stdout.contains("\"accept\""), "{stdout}{stderr}");
    // A panic's message reaches the error, not only the log.
    let (ok, _, stderr) = run("fixture_trap")?;
    assert!(!ok && stderr.contains("trapped") && stderr.contains("this policy always traps"), "{stderr}");
    assert!(!stderr.contains("Cannot start a runtime"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn a_redaction_hides_its_text_in_every_tools_result_and_the_cli() -> Result<()> {
    let secret = "sk-proj-abcdefghijklmnopqrstuvwx";
    let world = World::new([Reply::Message(format!("Here it is: {secret}"))])?;
    world.project_policy(&format!("[[truncation]]\npath = {:?}\n", world.project_guest("redact_secrets")?))?;
    let server = world.serve().await?;
    let job = server.start_job(world.start_args(&format!("Remember {secret} and say it back"))).await?;
    let mut results = Vec::new();
    let waited = server.ok("job_wait", json!({"job_ids": [job], "timeout_s": 120})).await?;
    assert_eq!(waited["finished"][0]["status"], "completed", "{waited}");
    results.push(("job_wait", waited));
    let status = server.ok("job_status", json!({"job_id": job})).await?;
    assert!(status["last_message"].as_str().unwrap().contains("[REDACTED]"), "{status}");
    assert!(status["prompt"].as_str().unwrap().contains("[REDACTED]"), "{status}");
    results.push(("job_status", status));
    results.push(("job_list", server.ok("job_list", json!({})).await?));
    results.push(("job_events", server.ok("job_events", json!({"job_id": job, "limit": 1000})).await?));
    results.push(("job_notifications", server.ok("job_notifications", json!({})).await?));
    for (tool, result) in &results {
        let shown = result.to_string();
        assert!(!shown.contains(secret), "{tool} shows the secret: {shown}");
        assert!(result.get("policy_errors").is_none(), "{tool}: {shown}");
    }
    // The CLI's `jobs show` goes through the same façade, and so do `jobs
    // logs` (the transcript: prompt, the agent's message) and `jobs logs --raw`
    // (the agent's raw output).
    for args in [&["show"][..], &["logs"], &["logs", "--raw"]] {
        let args: Vec<&str> = ["jobs"].into_iter().chain(args.iter().copied()).chain([job.as_str()]).collect();
        let (ok, shown, stderr) = cli(&world.jobhost_home(), &world.work_dir(), &args, "")?;
        assert!(ok && shown.contains("[REDACTED]") && !shown.contains(secret), "{args:?}: {shown}{stderr}");
    }
    let raw = std::fs::read_to_string(world.jobhost_home().join("jobs").join(&job).join("output.log"))?;
    assert!(raw.contains(secret), "the raw output has it: {raw}");
    // Nothing is lost on disk.
    let meta = std::fs::read_to_string(world.jobhost_home().join("jobs").join(&job).join("meta.json"))?;
    assert!(meta.contains(secret));
    Ok(())
}

#[tokio::test]
async fn a_job_keeps_the_policies_it_started_with() -> Result<()> {
    let secret = "sk-proj-abcdefghijklmnopqrstuvwx";
    let world = World::new([Reply::Message("done".into()), Reply::Message("done".into())])?;
    let redact = world.project_guest("redact_secrets")?;
    world.project_policy(&format!("[[truncation]]\npath = {redact:?}\n"))?;
    let server = world.serve().await?;
    let first = server.start_job(world.start_args(&format!("Use {secret}"))).await?;
    let status = server.wait_done(&first, 120).await?;
    assert_eq!(status["policies"][0]["name"], "redact_secrets", "{status}");
    let sha = status["policies"][0]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);

    // An agent (or anyone) edits the project's policies: the file and the component.
    world.project_policy("")?;
    std::fs::copy(guest_wasm("head_tail"), world.work_dir().join(".codex").join(&redact))?;
    let status = server.ok("job_status", json!({"job_id": first})).await?;
    let shown = status.to_string();
    assert!(!shown.contains(secret) && status["prompt"].as_str().unwrap().contains("[REDACTED]"), "{shown}");
    assert_eq!(status["policies"][0]["sha256"], sha.as_str());
    let events = server.ok("job_events", json!({"job_id": first, "limit": 1000})).await?;
    assert!(!events.to_string().contains(secret), "{events}");

    // A job started after the edit runs under the new (empty) set.
    let second = server.start_job(world.start_args(&format!("Use {secret}"))).await?;
    let status = server.wait_done(&second, 120).await?;
    assert!(status["prompt"].as_str().unwrap().contains(secret), "{status}");
    assert_eq!(status["policies"], json!([]));

    // A pinned copy that is gone is an error, never a silent switch to no policy.
    std::fs::remove_file(world.jobhost_home().join("pinned").join(format!("{sha}.wasm")))?;
    let fresh = world.serve().await?; // no warm copy in memory
    let err = fresh.err("job_status", json!({"job_id": first})).await?;
    assert!(err.contains("pinned copy of policy redact_secrets") && err.contains("is gone"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_launch_request_shows_the_policy_what_the_options_add_up_to() -> Result<()> {
    let world = World::new([])?;
    world.project_policy(&format!("[[approval]]\npath = {:?}\n", world.project_guest("command_allowlist")?))?;
    let server = world.serve().await?;
    // Asked as `suggest`, but the extra argument turns the sandbox and approvals off.
    let mut args = world.start_args("x");
    args["backend"] = json!("exec"); // extra_args are `codex exec` flags
    args["extra_args"] = json!(["--dangerously-bypass-approvals-and-sandbox"]);
    let err = server.err("job_start", args).await?;
    assert!(err.contains("refused by policy command_allowlist") && err.contains("full-auto"), "{err}");
    // What the host cannot show the policy is refused while one is configured.
    for (key, value, named) in [
        (
            "config",
            json!(["sandbox_workspace_write.network_access=true"]),
            "config \"sandbox_workspace_write.network_access=true\"",
        ),
        ("extra_args", json!(["--add-dir", "/"]), "extra_args \"--add-dir\""),
        ("profile", json!("wide-open"), "profile \"wide-open\""),
    ] {
        let mut args = world.start_args("x");
        args["backend"] = json!("exec");
        args[key] = value;
        let err = server.err("job_start", args).await?;
        assert!(err.contains("cannot judge") && err.contains(named) && err.contains("judges_options"), "{key}: {err}");
    }
    assert!(world.model.requests().is_empty(), "no Codex started");
    Ok(())
}

#[tokio::test]
async fn a_policy_that_judges_options_lets_through_only_those_it_names() -> Result<()> {
    let world = World::new([Reply::Message("ran with the named provider".into())])?;
    let allowed = "config \"model_provider=mock\"";
    world.project_policy(&format!(
        "[[approval]]\npath = {:?}\njudges_options = true\nconfig = {{ allow_options = [{allowed:?}] }}\n",
        world.project_guest("command_allowlist")?
    ))?;
    let server = world.serve().await?;
    // Named in allow_options: the policy sees it in `unjudged` and accepts; the job runs.
    let mut args = world.start_args("x");
    args["config"] = json!(["model_provider=mock"]);
    let job = server.start_job(args).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    // Not named: declined by the policy, which names it.
    let mut args = world.start_args("x");
    args["config"] = json!(["model_provider=mock", "sandbox_workspace_write.network_access=true"]);
    let err = server.err("job_start", args).await?;
    assert!(
        err.contains("refused by policy command_allowlist")
            && err.contains("config \"sandbox_workspace_write.network_access=true\" is not in allow_options"),
        "{err}"
    );
    assert_eq!(world.model.requests().len(), 1, "only the accepted job reached the model");
    Ok(())
}

/// A `full-auto` job runs with no policy; `before_policy(world, job)` runs,
/// then the project adds the command allowlist: the job's reply is refused by
/// it, and the job stays as it was.
async fn reply_refused_by_a_policy_added_later(before_policy: impl FnOnce(&World, &str) -> Result<()>) -> Result<()> {
    let world = World::new([Reply::Message("one".into())])?;
    let server = world.serve().await?;
    let mut args = world.start_args("go");
    args["approval_policy"] = json!("full-auto");
    let job = server.start_job(args).await?;
    assert_eq!(server.wait_done(&job, 120).await?["status"], "completed");
    before_policy(&world, &job)?;
    world.project_policy(&format!("[[approval]]\npath = {:?}\n", world.project_guest("command_allowlist")?))?;
    let err = server.err("job_reply", json!({"job_id": job, "prompt": "and now git push"})).await?;
    assert!(err.contains("job_reply refused by policy command_allowlist") && err.contains("full-auto"), "{err}");
    let status = server.ok("job_status", json!({"job_id": job})).await?;
    assert_eq!((status["status"].as_str(), status["turn"].as_u64()), (Some("completed"), Some(0)), "{status}");
    Ok(())
}

#[tokio::test]
async fn a_reply_is_judged_like_a_launch() -> Result<()> {
    // A job from before policies were pinned is judged by its project's policies now.
    reply_refused_by_a_policy_added_later(|world, job| {
        let meta_path = world.jobhost_home().join("jobs").join(job).join("meta.json");
        let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path)?)?;
        assert!(meta.as_object_mut().unwrap().remove("policies").is_some(), "pinned in meta.json: {meta}");
        std::fs::write(&meta_path, serde_json::to_vec(&meta)?)?;
        Ok(())
    })
    .await
}

/// Policies only tighten: an approval policy the project adds after a job
/// started judges that job's next turn at once (the job's pinned set had none).
#[tokio::test]
async fn a_policy_added_after_a_job_started_judges_its_reply() -> Result<()> {
    reply_refused_by_a_policy_added_later(|_, _| Ok(())).await
}

/// Runs the host's CLI with `args` (and `stdin`), in `cwd`; returns (success, stdout, stderr).
fn cli(home: &std::path::Path, cwd: &std::path::Path, args: &[&str], stdin: &str) -> Result<(bool, String, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new(codex_jobhost_e2e::host_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.success(), text(&out.stdout), text(&out.stderr)))
}

#[test]
fn policy_authors_test_a_project_with_cases_eval_and_show() -> Result<()> {
    let world = World::new([])?;
    world.project_policy(&format!(
        "[[approval]]\npath = {:?}\nconfig = {{ allow = [\"ls\"], deny = [\"git push --force\"] }}\n\
         [[truncation]]\npath = {:?}\n[[filter]]\npath = {:?}\n",
        world.project_guest("command_allowlist")?,
        world.project_guest("redact_secrets")?,
        world.project_guest("quiet_events")?,
    ))?;
    let (home, work) = (world.jobhost_home(), world.work_dir());
    let cases = work.join("cases.toml");
    let good = r#"
[[case]]
name = "no force push"
request = { command = { command = "git push --force origin main", cwd = "/w" } }
expect = "decline"
reason_contains = "git push --force"

[[case]]
name = "ls is fine"
request = { command = { command = "ls -la", cwd = "/w" } }
expect = "accept"

[[case]]
name = "keys are hidden"
text = "key sk-proj-abcdefghijklmnopqrstuvwx"
expect_text = "key [REDACTED]"

[[case]]
name = "reasoning is dropped"
event = { kind = "item.completed", payload = { item = { type = "reasoning" } } }
expect_action = "drop"
"#;
    std::fs::write(&cases, good)?;
    let (ok, stdout, stderr) = cli(&home, &work, &["policy", "test", "--cases", "cases.toml"], "")?;
    assert!(ok && stdout.contains("4 cases, 4 passed, 0 failed"), "{stdout}{stderr}");
    std::fs::write(&cases, good.replace("expect = \"accept\"", "expect = \"ask\""))?;
    let (ok, stdout, stderr) = cli(&home, &work, &["policy", "test", "--cases", "cases.toml"], "")?;
    assert!(!ok && stderr.contains("1 of 4 cases failed"), "{stderr}");
    assert!(
        stdout.contains("FAIL  ls is fine\n      - expected: ask\n      + got:      accept (by command_allowlist)"),
        "{stdout}"
    );

    let (ok, stdout, stderr) =
        cli(&home, &work, &["policy", "eval"], r#"{"command": {"command": "git push --force", "cwd": "/w"}}"#)?;
    let out: serde_json::Value = serde_json::from_str(&stdout)?;
    assert!(
        ok && out["decided_by"] == "command_allowlist" && out["decision"]["decline"].is_string(),
        "{stdout}{stderr}"
    );

    let (ok, stdout, _) = cli(&home, &work, &["policy", "show"], "")?;
    let shown: serde_json::Value = serde_json::from_str(&stdout)?;
    let approval = &shown["approval"][0];
    assert!(ok && approval["sha256"].as_str().map(str::len) == Some(64), "{stdout}");
    assert_eq!(approval["config"]["allow"], json!(["ls"]));
    assert_eq!(shown["truncation"][0]["on_failure"], "closed", "a redaction fails closed: {stdout}");
    world.project_policy("[[approval]]\npath = \"gone.wasm\"\n")?;
    let (ok, _, stderr) = cli(&home, &work, &["policy", "show"], "")?;
    assert!(!ok && stderr.contains("gone.wasm does not exist"), "{stderr}");
    Ok(())
}
