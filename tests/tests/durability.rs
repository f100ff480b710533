//! Durability end to end: processes killed at named points (fail points,
//! compiled in by `scripts/test.sh`; `FAILPOINTS` for the server,
//! `SUPERVISOR_FAILPOINTS` for its supervisors), the queue and its limit, damaged files,
//! large prompts and agents that ignore SIGTERM. The real Codex CLI and the mock model.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use codex_jobhost_e2e::{Reply, World};
use serde_json::{Value, json};

/// The `job.status` events of turn `turn` that end it.
fn terminal_events(events: &[Value], turn: u64) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "job.status" && e["data"]["turn"] == turn)
        .filter(|e| matches!(e["data"]["status"].as_str(), Some("completed" | "failed" | "cancelled")))
        .cloned()
        .collect()
}

/// The notifications of one job in the whole feed.
async fn notifications_of(server: &codex_jobhost_e2e::Server, job: &str) -> Result<Vec<Value>> {
    let page = server.ok("job_notifications", json!({"limit": 1000})).await?;
    Ok(page["notifications"].as_array().unwrap().iter().filter(|n| n["job_id"] == job).cloned().collect())
}

fn read_json(path: &Path) -> Result<Value> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

/// Whatever is killed at whatever point of recording a turn's end, the turn
/// ends up with one terminal event and one notification, and a supervisor
/// that recorded Codex's exit keeps its true exit code.
#[tokio::test]
async fn a_supervisor_killed_at_each_point_of_its_end_records_it_exactly_once() -> Result<()> {
    // (fail point, status and exit code the turn must end with)
    let points = [
        ("supervisor-before-end", "failed", Value::Null),
        ("end-after-event", "completed", json!(0)),
        ("end-after-meta", "completed", json!(0)),
        ("end-after-notification", "completed", json!(0)),
    ];
    for (point, status, exit_code) in points {
        let world = World::new([Reply::Message("finished".into())])?;
        let failpoints = format!("{point}=return");
        let server = world.serve_env((), &[("SUPERVISOR_FAILPOINTS", &failpoints)]).await?;
        // A second server on the home follows the same job: both settle the dead supervisor.
        let second = world.serve().await?;
        let job = server.start_job(world.start_args("end me")).await?;
        let (ended, seen) = tokio::join!(server.wait_done(&job, 120), second.wait_done(&job, 120));
        let (ended, seen) = (ended?, seen?);
        assert_eq!(ended["status"], status, "{point}: {ended}");
        assert_eq!(ended["exit_code"], exit_code, "{point}: {ended}");
        assert_eq!((&seen["status"], &seen["exit_code"]), (&ended["status"], &ended["exit_code"]), "{point}");
        // A third server on the home settles again: nothing is added.
        let third = world.serve().await?;
        third.wait_done(&job, 60).await?;
        let events = third.all_events(&job).await?;
        assert_eq!(terminal_events(&events, 0).len(), 1, "{point}: {events:?}");
        assert_eq!(notifications_of(&third, &job).await?.len(), 1, "{point}");
        let queue = world.queue_entries()?;
        assert!(queue.is_empty(), "{point}: the queue still holds {queue:?}");
        let names: Vec<String> = std::fs::read_dir(world.jobhost_home().join("jobs").join(&job))?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{point}: temporary files left: {names:?}");
    }
    Ok(())
}

/// `output.log` is the agent's raw output, never behind the events made from
/// it: a supervisor killed the instant it appended its first agent event
/// (`thread.started`) has already written the raw line that event came from.
#[tokio::test]
async fn a_supervisor_killed_after_an_agent_event_has_its_raw_line_in_output_log() -> Result<()> {
    let world = World::new([Reply::Message("finished".into())])?;
    let server = world.serve_env((), &[("SUPERVISOR_FAILPOINTS", "after-agent-event=return")]).await?;
    let job = server.start_job(world.start_args("die after one event")).await?;
    let ended = server.wait_done(&job, 120).await?;
    assert_eq!(ended["status"], "failed", "{ended}");
    let events = server.all_events(&job).await?;
    let agent: Vec<&Value> = events.iter().filter(|e| e["type"] == "thread.started").collect();
    assert_eq!(agent.len(), 1, "the supervisor died at its first agent event: {events:?}");
    let thread = agent[0]["data"]["thread_id"].as_str().expect("thread.started names its thread");
    let raw = std::fs::read_to_string(world.jobhost_home().join("jobs").join(&job).join("output.log"))?;
    assert!(raw.contains(thread), "output.log lacks the line thread.started came from ({thread}): {raw:?}");
    Ok(())
}

/// A server killed after acknowledging `job_start` and before starting the
/// supervisor: the next server runs the job.
#[tokio::test]
async fn an_acknowledged_job_runs_after_the_server_died_before_starting_it() -> Result<()> {
    let world = World::new([Reply::Message("ran anyway".into())])?;
    let server = world.serve_env((), &[("FAILPOINTS", "admit-before-spawn=return")]).await?;
    // The server dies in the background admission, before or after its answer reaches us.
    let acknowledged = server.start_job(world.start_args("survive the crash")).await.ok();
    let jobs: Vec<String> = std::fs::read_dir(world.jobhost_home().join("jobs"))?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    if let Some(id) = &acknowledged {
        assert_eq!(&jobs[0], id);
    }
    let meta = read_json(&world.jobhost_home().join("jobs").join(&jobs[0]).join("meta.json"))?;
    assert_eq!(meta["status"], "queued", "the fail point stopped the start: {meta}");

    let server = world.serve().await?;
    let status = server.wait_done(&jobs[0], 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], "ran anyway");
    Ok(())
}

/// The queue entry, fsynced before `job_start` answers, is a job's durable
/// record; its directory is written without fsync. Whatever of the directory
/// a crash costs, the next server makes it again from the entry and runs the
/// job: a server killed after the entry and before the directory; then, after
/// the answer, the directory gone (an unsynced rename lost), and `meta.json`
/// and `events.jsonl` empty with no index (unsynced data lost).
#[tokio::test]
async fn a_queued_job_whose_directory_a_crash_lost_runs_from_its_queue_entry() -> Result<()> {
    for (point, damage) in
        [("start-after-enqueue", "none"), ("admit-before-spawn", "removed"), ("admit-before-spawn", "emptied")]
    {
        let world = World::new([Reply::Message("ran anyway".into())])?;
        let server = world.serve_env((), &[("FAILPOINTS", &format!("{point}=return"))]).await?;
        let prompt = format!("survive {damage}");
        let _ = server.start_job(world.start_args(&prompt)).await; // the server dies, before or after answering
        server.exited().await?;
        let entries = world.queue_entries()?;
        assert_eq!(entries.len(), 1, "{damage}: {entries:?}");
        let id = &entries[0][21..entries[0].rfind('-').unwrap()];
        let dir = world.jobhost_home().join("jobs").join(id);
        match damage {
            "none" => assert!(!dir.exists(), "{damage}: the directory comes after the entry"),
            "removed" => std::fs::remove_dir_all(&dir)?,
            _ => {
                std::fs::write(dir.join("meta.json"), "")?;
                std::fs::write(dir.join("events.jsonl"), "")?;
                let _ = std::fs::remove_file(dir.join("events.idx"));
            }
        }

        let server = world.serve().await?;
        let status = server.wait_done(id, 120).await?;
        assert_eq!(status["status"], "completed", "{damage}: {status}");
        assert_eq!(status["last_message"], "ran anyway", "{damage}: {status}");
        let events = server.all_events(id).await?;
        assert_eq!(events[0]["data"], json!({"status": "queued", "turn": 0, "prompt": prompt}), "{damage}: {events:?}");
        assert_eq!(terminal_events(&events, 0).len(), 1, "{damage}: {events:?}");
        assert_eq!(notifications_of(&server, id).await?.len(), 1, "{damage}");
        assert_eq!(world.queue_entries()?, Vec::<String>::new(), "{damage}: the queue still holds the entry");
        let list = server.ok("job_list", json!({})).await?;
        assert!(list["unreadable"].as_array().is_none_or(Vec::is_empty), "{damage}: {list}");
    }
    Ok(())
}

/// With `max_running = 2`, five jobs start oldest first and never more than
/// two run at once, across a server restart.
#[tokio::test]
async fn the_queue_runs_jobs_in_order_under_the_limit_across_a_restart() -> Result<()> {
    let slow = || Reply::After(Duration::from_millis(1500), Box::new(Reply::Message("done".into())));
    let world = World::new((0..5).map(|_| slow()))?;
    std::fs::create_dir_all(world.jobhost_home())?;
    std::fs::write(world.jobhost_home().join("config.toml"), "[jobs]\nmax_running = 2\n")?;
    let server = world.serve().await?;
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(server.start_job(world.start_args(&format!("job {i}"))).await?);
    }
    let listed = server.ok("job_list", json!({"status": "queued"})).await?;
    assert!(!listed["jobs"].as_array().unwrap().is_empty(), "with a limit of 2, some of 5 wait: {listed}");
    // Their places in the queue grow with their age (the list is newest first;
    // one may have been admitted while the list was made, so they may start past 1).
    let mut places: Vec<(usize, u64)> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (jobs.iter().position(|id| j["job_id"] == id.as_str()).unwrap(), j["queue_position"].as_u64().unwrap())
        })
        .collect();
    places.sort();
    let positions: Vec<u64> = places.iter().map(|(_, p)| *p).collect();
    assert!(positions[0] >= 1 && positions.windows(2).all(|w| w[1] == w[0] + 1), "{listed}");
    let first_waiting = &jobs[places[0].0];
    let status = server.ok("job_status", json!({"job_id": first_waiting})).await?;
    assert!(status["status"] != "queued" || status["queue_position"] == 1, "{status}");
    server.kill()?;

    let server = world.serve().await?;
    for job in &jobs {
        let status = server.wait_done(job, 180).await?;
        assert_eq!(status["status"], "completed", "{status}");
    }
    let mut spans = Vec::new();
    for job in &jobs {
        let meta = read_json(&world.jobhost_home().join("jobs").join(job).join("meta.json"))?;
        let at = |k: &str| meta[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
        spans.push((at("started_at"), at("finished_at")));
    }
    // Oldest first. Two supervisors admitted in one pass may record their
    // starts in either order, so the order is checked the way admission makes
    // it, without timing: job j is admitted only once all older jobs are and at
    // most one other runs, so by its start at least j - 1 older jobs have ended.
    for (j, (start, _)) in spans.iter().enumerate() {
        let ended = spans[..j].iter().filter(|(_, finished)| finished <= start).count();
        assert!(ended + 1 >= j, "job {j} started before older jobs had their turn: {spans:?}");
    }
    // At each start, how many others were running.
    for (i, (start, _)) in spans.iter().enumerate() {
        let running = spans.iter().enumerate().filter(|(j, (s, f))| *j != i && s <= start && f > start).count();
        assert!(running < 2, "job {i} started while {running} others ran: {spans:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_project_may_lower_the_limit_for_its_own_jobs() -> Result<()> {
    let world =
        World::new((0..3).map(|_| Reply::After(Duration::from_millis(300), Box::new(Reply::Message("done".into())))))?;
    std::fs::create_dir_all(world.jobhost_home())?;
    std::fs::write(world.jobhost_home().join("config.toml"), "[jobs]\nmax_running = 3\n")?;
    let server = world.serve().await?;
    // A bad project limit is the caller's error at job_start, naming the file and what is wrong.
    for (toml, named) in [
        ("[jobs]\nmax_running = 0\n", "invalid [jobs] max_running 0: expected a whole number from 1 up"),
        ("[jobs]\nretention_days = 1\n", "[jobs] retention_days cannot be set by a project"),
    ] {
        world.project_policy(toml)?;
        let err = server.err("job_start", world.start_args("x")).await?;
        assert!(err.contains("jobhost.toml") && err.contains(named), "{err}");
    }
    world.project_policy("[jobs]\nmax_running = 1\n")?;
    let mut jobs = Vec::new();
    for i in 0..3 {
        jobs.push(server.start_job(world.start_args(&format!("job {i}"))).await?);
    }
    let mut spans = Vec::new();
    for job in &jobs {
        let status = server.wait_done(job, 180).await?;
        assert_eq!(status["status"], "completed", "{status}");
        let meta = read_json(&world.jobhost_home().join("jobs").join(job).join("meta.json"))?;
        let at = |k: &str| meta[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
        spans.push((at("started_at"), at("finished_at")));
    }
    // One at a time, in order, though the home would run three: each starts
    // after the one before it ended (admission waits for its end record).
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two jobs of the project ran at once: {spans:?}");
    }
    Ok(())
}

/// A job whose answer of 3 MB is more than a 1 MiB output cap in the output
/// alone (Codex's own lines carry it too), run with `env` for the server:
/// it completes with its answer whole. Returns the world, the job and its status.
async fn run_past_the_output_cap(env: &[(&str, &str)]) -> Result<(World, String, Value)> {
    let answer: String = "0123456789".repeat(300_000);
    let world = World::new([Reply::Message(answer.clone())])?;
    std::fs::create_dir_all(world.jobhost_home())?;
    std::fs::write(world.jobhost_home().join("config.toml"), "[jobs]\noutput_max_mib = 1\n")?;
    let server = world.serve_env((), env).await?;
    let job = server.start_job(world.start_args("say a lot")).await?;
    let status = server.wait_done(&job, 180).await?;
    assert_eq!(status["status"], "completed", "{status}");
    let meta = read_json(&world.jobhost_home().join("jobs").join(&job).join("meta.json"))?;
    assert_eq!(meta["last_message"].as_str().map(str::len), Some(answer.len()), "the answer itself is whole");
    Ok((world, job, status))
}

#[tokio::test]
async fn output_past_its_cap_loses_its_middle_and_the_job_goes_on() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (world, job, status) = run_past_the_output_cap(&[]).await?;
    let tail = status["output_tail"].as_str().unwrap_or_default();
    assert!(!tail.is_empty() && !tail.contains('\0'), "the tail is the latest output, not the cut");

    let log = world.jobhost_home().join("jobs").join(&job).join("output.log");
    let meta = std::fs::metadata(&log)?;
    let on_disk = meta.blocks() * 512;
    assert!(meta.len() > 3_000_000, "offsets stay: the log is {} bytes long", meta.len());
    assert!(on_disk <= (1 << 20) + (64 << 10), "{on_disk} bytes on disk for a 1 MiB cap");
    // `jobs logs --raw` shows the start, one marker for the cut, and the end.
    let out = std::process::Command::new(codex_jobhost_e2e::host_bin())
        .args(["--home".as_ref(), world.jobhost_home().as_os_str(), "jobs".as_ref(), "logs".as_ref(), "--raw".as_ref()])
        .arg(&job)
        .output()?;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(shown.matches("bytes of output cut").count(), 1, "one marker");
    assert!(!shown.contains('\0') && shown.len() < (1 << 20) + 4096, "{} bytes shown", shown.len());
    assert!(shown.starts_with(&std::fs::read_to_string(&log)?[..100]), "the start is kept");
    Ok(())
}

/// On a file system that cannot punch holes (a fail point stands in for
/// one), output past the cap is dropped after one marker line, and the job goes on.
#[tokio::test]
async fn output_past_its_cap_is_dropped_where_holes_cannot_be_punched() -> Result<()> {
    let (world, job, _) =
        run_past_the_output_cap(&[("SUPERVISOR_FAILPOINTS", "punch-hole-unsupported=return")]).await?;
    let log = std::fs::read(world.jobhost_home().join("jobs").join(&job).join("output.log"))?;
    let text = String::from_utf8_lossy(&log);
    assert_eq!(text.matches("dropped: this file system cannot cut the middle of output.log").count(), 1, "one marker");
    assert!(text.ends_with("…]\n"), "nothing after the marker: {:?}", &text[text.len().saturating_sub(200)..]);
    assert!(log.len() < (1 << 20) + (1 << 20) / 2, "{} bytes kept for a 1 MiB cap", log.len());
    Ok(())
}

/// The prompt reaches Codex on its stdin: 300 KiB runs (a command line
/// argument stops at 128 KiB); past the documented limit it is refused up front.
#[tokio::test]
async fn large_prompts_run_and_too_large_ones_are_refused_with_the_limit() -> Result<()> {
    let world = World::new([Reply::Message("read it all".into())])?;
    let server = world.serve().await?;
    let prompt = format!("{}THE END", "lorem ipsum ".repeat(300 * 1024 / 12));
    let job = server.start_job(world.start_args(&prompt)).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(world.model.requests()[0].to_string().contains("THE END"), "the model got the whole prompt");
    let ps = std::fs::read_dir("/proc")?
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains("lorem ipsum lorem"));
    assert!(!ps, "no command line shows the prompt");

    let err = server.err("job_start", world.start_args(&"x".repeat((1 << 20) + 1))).await?;
    assert!(err.contains("1048577 bytes") && err.contains("at most 1048576"), "{err}");
    Ok(())
}

/// `idle_timeout_s` escalates to SIGKILL when Codex does not stop on SIGTERM
/// (here: it is stopped, so SIGTERM stays pending).
#[tokio::test]
async fn an_idle_timeout_kills_a_codex_that_ignores_sigterm() -> Result<()> {
    let world = World::new([Reply::After(Duration::from_secs(600), Box::new(Reply::Message("never".into())))])?;
    let server = world.serve().await?;
    let mut args = world.start_args("hang");
    args["idle_timeout_s"] = json!(2);
    let job = server.start_job(args).await?;
    let begun = Instant::now();
    let codex = loop {
        let events = server.all_events(&job).await?;
        if let Some(pid) = events.iter().find(|e| e["type"] == "job.status" && e["data"]["status"] == "running") {
            break pid["data"]["pid"].as_i64().unwrap() as i32;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "never running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    rustix::process::kill_process(rustix::process::Pid::from_raw(codex).unwrap(), rustix::process::Signal::STOP)?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(status["error"].as_str().unwrap().contains("idle_timeout_s"), "{status}");
    assert_eq!(status["exit_code"], 128 + 9, "killed by SIGKILL: {status}");
    Ok(())
}

/// A write that fails for a full disk mid-turn: the turn ends `failed` with
/// the reason and the file named, not "killed or crashed", and nothing hangs.
/// The job home on a small tmpfs, when this process may mount one: the
/// mock model's first answer fills it (see [`fill_the_disk`]).
static FULL_DISK: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
static FILLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Fills the tmpfs under the job home to the last byte while the turn waits
/// for the model, once; then answers.
fn fill_the_disk(_: &Value) -> Option<Reply> {
    use std::io::Write;
    if FILLED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    if let Some(home) = FULL_DISK.get() {
        let mut filler = std::fs::File::create(home.join("filler")).expect("filler");
        for chunk in [1 << 16, 1 << 12, 1] {
            while filler.write_all(&vec![b'x'; chunk]).is_ok() {}
        }
    }
    Some(Reply::Message("written to a full disk".into()))
}

/// Unmounts the tmpfs (lazily: the server may still hold files there).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A disk that fills up mid-turn: on a 32 MiB tmpfs where the test may
/// mount one (else the fail point that makes an event append fail with
/// ENOSPC). The supervisor gives back the space it set aside and records
/// the failure with the reason and the path; once space returns, jobs run.
#[tokio::test]
async fn a_disk_that_fills_mid_turn_fails_the_job_with_the_reason() -> Result<()> {
    let world = World::new([Reply::Computed(fill_the_disk), Reply::Message("space is back".into())])?;
    let home = world.jobhost_home();
    std::fs::create_dir_all(&home)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(&home)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _unmount = mounted.then(|| Unmount(home.clone()));
    let env: &[(&str, &str)] = if mounted {
        FULL_DISK.set(home.clone()).unwrap();
        &[]
    } else {
        println!("cannot mount a tmpfs here: a fail point stands for the full disk");
        &[("SUPERVISOR_FAILPOINTS", "event-append=3*off->1*return->off")]
    };
    let server = world.serve_env((), env).await?;
    let job = server.start_job(world.start_args("fill the disk")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("No space left on device") && error.contains(&format!("/jobs/{job}/")), "{error}");
    let events = server.all_events(&job).await?;
    assert_eq!(terminal_events(&events, 0).len(), 1, "{events:?}");
    let notes = notifications_of(&server, &job).await?;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(!world.jobhost_home().join("jobs").join(&job).join("space.reserve").exists(), "the space was given back");
    // Space returns: the next job runs.
    if mounted {
        std::fs::remove_file(home.join("filler"))?;
    }
    let next = server.start_job(world.start_args("again")).await?;
    let status = server.wait_done(&next, 120).await?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], "space is back");
    Ok(())
}

#[tokio::test]
async fn a_full_disk_mid_turn_fails_the_job_with_the_reason() -> Result<()> {
    let world = World::new([Reply::Message("never recorded".into())])?;
    // The supervisor's third event append fails with ENOSPC, then space returns.
    let server = world.serve_env((), &[("SUPERVISOR_FAILPOINTS", "event-append=2*off->1*return->off")]).await?;
    let job = server.start_job(world.start_args("fill the disk")).await?;
    let status = server.wait_done(&job, 120).await?;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("No space left on device") && error.contains("events.jsonl"), "{error}");
    let events = server.all_events(&job).await?;
    assert_eq!(terminal_events(&events, 0).len(), 1, "{events:?}");
    Ok(())
}

/// `job_start` on a full disk: a clear error that names the file, nothing
/// left in `jobs/`, and the next start works once there is space.
#[tokio::test]
async fn job_start_on_a_full_disk_refuses_cleanly_and_leaves_nothing() -> Result<()> {
    let world = World::new([Reply::Message("fine now".into())])?;
    // The disk is full at the first write (the queue entry), then when the
    // entry, in place, is fsynced (while the job's directory is made, which
    // must go too), then at the job's directory.
    let failpoints = "enqueue=1*return->off;enqueue-sync=1*return->off;materialize=1*off->1*return->off";
    let server = world.serve_env((), &[("FAILPOINTS", failpoints)]).await?;
    let home = world.jobhost_home();
    let left = |dir: &str| -> Result<Vec<String>> {
        Ok(std::fs::read_dir(home.join(dir))?.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
    };
    // Each refusal in turn, in the order the fail points fire.
    for (failing, folder) in [("the entry", "queue"), ("the entry's fsync", "queue"), ("the directory", "jobs")] {
        let err = server.err("job_start", world.start_args("no space")).await?;
        let named = format!("{}/{folder}/", home.display());
        assert!(err.contains("No space left on device") && err.contains(&named), "{failing}: {err}");
        assert!(
            left("jobs")?.is_empty() && world.queue_entries()?.is_empty(),
            "{failing}: a failed start left {:?} {:?}",
            left("jobs")?,
            world.queue_entries()?
        );
    }
    let job = server.start_job(world.start_args("space again")).await?;
    assert_eq!(server.wait_done(&job, 120).await?["status"], "completed");
    Ok(())
}
