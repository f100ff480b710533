//! `jobs gc`: ended jobs older than the cutoff go; queued and running jobs,
//! and jobs whose supervisor still holds its lock, stay; notification cursors
//! stay valid.

mod common;

use std::time::Duration;

use codex_jobhost::job::{JobId, JobMeta, JobOptions, JobStatus, JobStore, Notification};
use codex_jobhost::{HostConfig, JobHost};
use jiff::{SignedDuration, Timestamp};

fn job(store: &JobStore, status: JobStatus, ended_days_ago: i64) -> JobId {
    let when = Timestamp::now() - SignedDuration::from_hours(24 * ended_days_ago);
    let mut meta = JobMeta::queued(
        JobId::new(),
        "p",
        std::env::temp_dir(),
        codex_jobhost::job::BackendKind::Exec,
        JobOptions { approval_mode: "suggest".into(), ..Default::default() },
        "/bin/true".into(),
    );
    meta.status = status;
    meta.created_at = when;
    meta.finished_at = status.is_terminal().then_some(when);
    store.materialize(&meta).unwrap();
    meta.id
}

#[test]
fn gc_removes_old_ended_jobs_and_never_a_live_one() {
    let home = tempfile::tempdir().unwrap();
    let store = JobStore::open(home.path()).unwrap();
    let old_done = job(&store, JobStatus::Completed, 10);
    let old_failed = job(&store, JobStatus::Failed, 10);
    let young = job(&store, JobStatus::Completed, 1);
    let old_running = job(&store, JobStatus::Running, 10);
    let old_queued = job(&store, JobStatus::Queued, 10);
    // Recorded as ended, but its supervisor still holds its lock.
    let held = job(&store, JobStatus::Completed, 10);
    let _supervisor = store.job(held).unwrap().try_supervisor_lock().unwrap().expect("free");
    let note = Notification {
        job_id: old_done.to_string(),
        status: JobStatus::Completed,
        turn: 0,
        exit_code: Some(0),
        error: None,
        finished_at: Timestamp::now().to_string(),
    };
    store.feed().append(&note).unwrap();
    // A creation that crashed long ago left this.
    let leftover = home.path().join("jobs/.new-0192f5d2-6a1b-7c3d-8e4f-0123456789ab");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::File::open(&leftover).unwrap().set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();

    let host = JobHost::open(HostConfig::new(Some(home.path().to_path_buf()), None).unwrap()).unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    let preview = host.gc(week, &[], true).unwrap();
    let mut expected = vec![old_done.to_string(), old_failed.to_string()];
    expected.sort();
    let mut removed = preview.removed.clone();
    removed.sort();
    assert_eq!(removed, expected);
    assert_eq!(preview.live, 3, "running, queued, and the one whose supervisor runs");
    assert!(store.job(old_done).is_ok(), "a dry run removes nothing");

    let only_failed = host.gc(week, &[JobStatus::Failed], false).unwrap();
    assert_eq!(only_failed.removed, [old_failed.to_string()]);
    assert_eq!(only_failed.leftovers, 1);
    assert!(!leftover.exists());
    let report = host.gc(week, &[], false).unwrap();
    assert_eq!(report.removed, [old_done.to_string()]);
    for gone in [old_done, old_failed] {
        assert!(store.job(gone).is_err(), "{gone} is gone");
    }
    for kept in [young, old_running, old_queued, held] {
        assert!(store.job(kept).is_ok(), "{kept} is kept");
    }
    // The feed is untouched: an old cursor still reads the collected job's notification.
    let page = host.notifications(Some(0), None).unwrap();
    assert_eq!(page.notifications.len(), 1);
    assert_eq!(page.notifications[0].job_id, old_done.to_string());
}

#[test]
fn retention_in_the_users_config_removes_old_ended_jobs() {
    let home = tempfile::tempdir().unwrap();
    let store = JobStore::open(home.path()).unwrap();
    let old = job(&store, JobStatus::Completed, 10);
    let young = job(&store, JobStatus::Completed, 1);
    let running = job(&store, JobStatus::Running, 10);
    let config = |text: &str| {
        std::fs::write(home.path().join("config.toml"), text).unwrap();
        HostConfig::new(Some(home.path().to_path_buf()), None)
    };
    let host = JobHost::open(config("").unwrap()).unwrap();
    assert!(host.apply_retention().unwrap().is_none(), "off unless configured");
    let err = format!("{:#}", config("[jobs]\nretention_days = \"a week\"\n").unwrap_err());
    assert!(err.contains("retention_days") && err.contains("whole number"), "{err}");
    let host = JobHost::open(config("[jobs]\nretention_days = 7\n").unwrap()).unwrap();
    let report = host.apply_retention().unwrap().unwrap();
    assert_eq!(report.removed, [old.to_string()]);
    assert!(store.job(young).is_ok() && store.job(running).is_ok());
}

#[tokio::test]
async fn an_unreadable_job_is_listed_with_its_error() {
    let home = tempfile::tempdir().unwrap();
    let store = JobStore::open(home.path()).unwrap();
    let fine = job(&store, JobStatus::Completed, 1);
    let damaged = job(&store, JobStatus::Completed, 1);
    std::fs::write(home.path().join("jobs").join(damaged.to_string()).join("meta.json"), "{not json").unwrap();
    let host = JobHost::open(HostConfig::new(Some(home.path().to_path_buf()), None).unwrap()).unwrap();
    host.index_jobs().await.unwrap();
    let list = host.list(&codex_jobhost::host::ListRequest::default()).await.unwrap();
    assert_eq!(list.jobs.len(), 1);
    assert_eq!(list.jobs[0].job_id, fine.to_string());
    assert_eq!(list.unreadable.len(), 1);
    assert_eq!(list.unreadable[0].job_id, damaged.to_string());
    assert!(list.unreadable[0].error.contains("meta.json"), "{}", list.unreadable[0].error);
}

#[test]
fn gc_removes_pinned_copies_no_job_uses_and_a_start_writes_a_collected_one_again() {
    let home = tempfile::tempdir().unwrap();
    let store = JobStore::open(home.path()).unwrap();
    common::copy_guest(home.path(), "command_allowlist");
    std::fs::write(home.path().join("config.toml"), "[[approval]]\npath = \"command_allowlist.wasm\"\n").unwrap();
    let policies = codex_jobhost::policy::Policies::new(home.path());
    let set = policies.for_cwd(home.path()).unwrap();
    let (_, pinned) = policies.pin(&set, home.path()).unwrap();
    let used = home.path().join("pinned").join(format!("{}.wasm", pinned.entries[0].sha256));
    assert!(used.is_file());
    let id = job(&store, JobStatus::Completed, 1);
    let job = store.job(id).unwrap();
    let mut meta = job.read_meta().unwrap();
    meta.policies = Some(serde_json::to_value(&pinned).unwrap());
    job.write_meta(&meta).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let touch = |path: &std::path::Path, when| {
        std::fs::File::options().append(true).open(path).unwrap().set_modified(when).unwrap()
    };
    touch(&used, old);
    // Copies no job uses: one old, one pinned a moment ago by a start still making its job.
    let unused = home.path().join("pinned").join(format!("{}.wasm", "a".repeat(64)));
    let fresh = home.path().join("pinned").join(format!("{}.wasm", "b".repeat(64)));
    std::fs::write(&unused, b"x".repeat(1000)).unwrap();
    touch(&unused, old);
    std::fs::write(&fresh, b"y").unwrap();

    let host = JobHost::open(HostConfig::new(Some(home.path().to_path_buf()), None).unwrap()).unwrap();
    let report = host.gc(Duration::from_secs(7 * 24 * 3600), &[], false).unwrap();
    assert_eq!(report.pinned_freed_bytes, 1000);
    assert!(!unused.exists() && fresh.exists() && used.exists());

    // Its job gone, the old copy goes too; a later start with the cached set writes it again.
    store.remove(id).unwrap();
    host.gc(Duration::from_secs(7 * 24 * 3600), &[], false).unwrap();
    assert!(!used.exists());
    let (_, again) = policies.pin(&set, home.path()).unwrap();
    assert_eq!(again, pinned);
    assert!(used.is_file(), "the pinned copy is written again");
}
