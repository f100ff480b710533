//! `codex-jobhost-hook`, the process Codex runs before each tool call of a
//! governed job, fails closed: every way it can go wrong exits 2 with a
//! reason on stderr (what Codex reads as "block"), never 0, 1 or an empty
//! stderr (what Codex reads as "let it run"). Only an `allow` from the
//! supervisor's socket exits 0.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Output, Stdio};

const CALL: &str = r#"{"session_id":"t","turn_id":"u","cwd":"/w","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"cat .env"},"tool_use_id":"call_1"}"#;

/// Runs the hook with `stdin`, its socket variable set to `socket`.
fn hook(stdin: &str, socket: Option<&std::path::Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codex-jobhost-hook"));
    cmd.env_remove("CODEX_JOBHOST_HOOK_SOCKET");
    if let Some(socket) = socket {
        cmd.env("CODEX_JOBHOST_HOOK_SOCKET", socket);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn assert_blocked(out: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{why}: {stderr}");
    assert!(!stderr.trim().is_empty(), "{why}: exit 2 with an empty stderr lets the call run");
    assert!(out.stdout.is_empty(), "{why}: {}", String::from_utf8_lossy(&out.stdout));
}

/// A supervisor that reads one call and answers `answer` (a line, or nothing when empty).
fn supervisor(dir: &std::path::Path, answer: &'static str) -> (std::path::PathBuf, std::thread::JoinHandle<String>) {
    let path = dir.join("hook.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut call = String::new();
        BufReader::new(&stream).read_line(&mut call).unwrap();
        if !answer.is_empty() {
            (&stream).write_all(answer.as_bytes()).unwrap();
        }
        call
    });
    (path, handle)
}

#[test]
fn without_its_socket_the_hook_blocks() {
    assert_blocked(&hook(CALL, None), "no socket variable");
    let dir = tempfile::tempdir().unwrap();
    assert_blocked(&hook(CALL, Some(&dir.path().join("gone.sock"))), "no one listening");
}

#[test]
fn a_call_that_is_not_json_is_blocked_before_anything_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    assert_blocked(&hook("not json {", Some(&dir.path().join("hook.sock"))), "stdin not JSON");
}

#[test]
fn an_answer_that_is_missing_or_does_not_parse_blocks() {
    for (answer, why) in [("", "no answer"), ("yes please\n", "garbage"), ("{\"allow\": \"true\"}\n", "wrong type")] {
        let dir = tempfile::tempdir().unwrap();
        let (path, listening) = supervisor(dir.path(), answer);
        let out = hook(CALL, Some(&path));
        assert_eq!(listening.join().unwrap().trim(), CALL, "{why}: the call reached the supervisor as Codex gave it");
        assert_blocked(&out, why);
    }
}

#[test]
fn a_decline_blocks_with_its_reason_and_an_allow_lets_the_call_run() {
    let dir = tempfile::tempdir().unwrap();
    let (path, listening) = supervisor(dir.path(), "{\"allow\":false,\"reason\":\"decline by strict: no .env\"}\n");
    let out = hook(CALL, Some(&path));
    listening.join().unwrap();
    assert_blocked(&out, "a decline");
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "decline by strict: no .env");

    let dir = tempfile::tempdir().unwrap();
    let (path, listening) = supervisor(dir.path(), "{\"allow\":false,\"reason\":\"  \"}\n");
    let out = hook(CALL, Some(&path));
    listening.join().unwrap();
    assert_blocked(&out, "a decline with a blank reason");

    let dir = tempfile::tempdir().unwrap();
    let (path, listening) = supervisor(dir.path(), "{\"allow\":true,\"reason\":null}\n");
    let out = hook(CALL, Some(&path));
    listening.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "anything on stdout is read as hook output");
}

#[test]
fn a_socket_path_too_long_for_an_address_is_still_reached() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    // Bound the way the supervisor binds it: through /proc/self/fd, as the path is too long.
    let file = std::fs::File::open(&deep).unwrap();
    let short = format!("/proc/self/fd/{}/hook.sock", std::os::fd::AsRawFd::as_raw_fd(&file));
    let listener = UnixListener::bind(&short).unwrap();
    let answer = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut call = String::new();
        BufReader::new(&stream).read_line(&mut call).unwrap();
        (&stream).write_all(b"{\"allow\":true,\"reason\":null}\n").unwrap();
    });
    let out = hook(CALL, Some(&deep.join("hook.sock")));
    answer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
