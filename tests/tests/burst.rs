//! A burst of quick `job_start`s under the default limit: every job runs and
//! its end reaches `job_list`, however many wait at once (each job followed
//! with its own inotify instance would pass the 128 a user has).

use anyhow::Result;
use codex_jobhost_e2e::World;
use serde_json::json;

#[tokio::test]
async fn two_hundred_quick_jobs_all_run_and_are_listed_as_ended() -> Result<()> {
    let world = World::new([])?;
    let server = world.serve().await?;
    let mut jobs = Vec::new();
    for i in 0..200 {
        jobs.push(server.start_job(world.start_args(&format!("quick {i}"))).await?);
    }
    for job in &jobs {
        let status = server.wait_done(job, 240).await?;
        assert_eq!(status["status"], "completed", "{status}");
    }
    let list = server.ok("job_list", json!({"limit": 500, "max_chars": 1_000_000})).await?;
    let listed = list["jobs"].as_array().unwrap();
    assert_eq!(listed.len(), 200, "{list}");
    assert!(listed.iter().all(|j| j["status"] == "completed"), "{list}");
    Ok(())
}
