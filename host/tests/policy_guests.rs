//! The policy host against real guest components: the examples and the
//! misbehaving fixtures built from `guest-policies/` (by `scripts/test.sh`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_jobhost::policy::builtin::Keep;
use codex_jobhost::policy::{
    Decision, FilterOutcome, Guest, GuestLimits, Limits, LoadSource, Policies, PolicyEngine, World,
};
use common::{command, copy_guest, guest, job, launch, user_policies, wasm};
use serde_json::json;

#[test]
fn the_allowlist_decides_with_its_settings() {
    let engine = PolicyEngine::new(None).unwrap();
    let g = guest(&engine, "command_allowlist", json!({"allow": ["ls"], "deny": ["rm -rf /"]}));
    assert_eq!(g.decide(&job(), &command("ls -la")).unwrap(), Decision::Accept);
    assert_eq!(g.decide(&job(), &command("make")).unwrap(), Decision::Ask);
    assert!(matches!(g.decide(&job(), &command("rm -rf /")).unwrap(), Decision::Decline(r) if r.contains("rm -rf /")));
    assert!(matches!(g.decide(&job(), &launch("full-auto")).unwrap(), Decision::Decline(_)));
    assert_eq!(g.instantiations(), 1, "a healthy instance is reused");
}

#[test]
fn an_endless_guest_runs_out_of_fuel() {
    let engine = PolicyEngine::new(None).unwrap();
    let g = guest(&engine, "fixture_infinite_loop", json!({}));
    let err = g.decide(&job(), &command("ls")).unwrap_err();
    assert!(err.contains("ran out of fuel: more than 200000000 instructions in one call"), "{err}");
    g.decide(&job(), &command("ls")).unwrap_err();
    assert_eq!(g.instantiations(), 2, "a failed instance is never reused");
}

#[test]
fn the_deadline_stops_a_guest_with_fuel_to_spare() {
    let engine = PolicyEngine::new(None).unwrap();
    let (component, _) = engine.load(&wasm("fixture_infinite_loop")).unwrap();
    let limits = GuestLimits { deadline: Duration::from_millis(50), fuel: 1 << 62, ..GuestLimits::default() };
    let g = Guest::new("endless", Arc::new(component), "{}".into(), limits);
    let err = g.decide(&job(), &command("ls")).unwrap_err();
    assert!(err.contains("ran past its deadline of 50 ms"), "{err}");
}

#[test]
fn a_memory_hog_is_stopped_at_the_cap() {
    let engine = PolicyEngine::new(None).unwrap();
    let g = guest(&engine, "fixture_memory_hog", json!({}));
    let err = g.decide(&job(), &command("ls")).unwrap_err();
    assert!(err.contains("memory cap of 16 MiB"), "{err}");
}

#[test]
fn a_trap_is_a_failure_and_the_set_fails_closed() {
    let (_home, set) = user_policies(&["fixture_trap"], "[[approval]]\npath = \"fixture_trap.wasm\"\n");
    let verdict = set.decide(&job(), &launch("suggest"));
    assert!(matches!(&verdict.decision, Decision::Decline(r) if r.contains("trapped")), "{verdict:?}");
    assert_eq!(verdict.failures.len(), 1);
    assert_eq!(verdict.failures[0].fallback, "declined (fail closed)");
}

#[test]
fn a_guest_has_no_files_to_open() {
    let engine = PolicyEngine::new(None).unwrap();
    let g = guest(&engine, "fixture_open_file", json!({}));
    match g.decide(&job(), &command("ls")).unwrap() {
        Decision::Decline(r) => assert!(r.starts_with("no file access"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_project_cannot_widen_what_its_user_allows() {
    let home = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[[approval]]\npath = {:?}\nconfig = {{ deny = [\"rm -rf\"] }}\n",
            copy_guest(home.path(), "command_allowlist")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(repo.path().join(".codex")).unwrap();
    std::fs::write(
        repo.path().join(".codex/jobhost.toml"),
        format!("[[approval]]\npath = {:?}\n", copy_guest(&repo.path().join(".codex"), "fixture_accept_all")),
    )
    .unwrap();
    let policies = Policies::new(home.path());
    let set = policies.for_cwd(&repo.path().join("src/deep")).unwrap();
    assert_eq!(set.project_root.as_deref(), Some(repo.path()));
    let verdict = set.decide(&job(), &command("rm -rf build"));
    assert!(matches!(verdict.decision, Decision::Decline(_)), "{verdict:?}");
    assert_eq!(verdict.decided_by.as_deref(), Some("command_allowlist"));
    // Where the user's policy only asks, the project's accept cannot lower that either.
    assert_eq!(set.decide(&job(), &command("make")).decision, Decision::Ask);
}

#[test]
fn a_replaced_wasm_takes_effect_at_the_next_lookup() {
    let home = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join(".codex")).unwrap();
    std::fs::write(repo.path().join(".codex/jobhost.toml"), "[[approval]]\npath = \"policy.wasm\"\n").unwrap();
    let policy = repo.path().join(".codex/policy.wasm");
    std::fs::copy(wasm("fixture_accept_all"), &policy).unwrap();
    let policies = Policies::new(home.path());
    assert_eq!(policies.for_cwd(repo.path()).unwrap().decide(&job(), &launch("full-auto")).decision, Decision::Accept);
    std::fs::copy(wasm("command_allowlist"), &policy).unwrap();
    let verdict = policies.for_cwd(repo.path()).unwrap().decide(&job(), &launch("full-auto"));
    assert!(matches!(verdict.decision, Decision::Decline(_)), "{verdict:?}");
}

#[test]
fn truncations_chain_and_filters_drop() {
    let (_home, set) = user_policies(
        &["redact_secrets", "head_tail", "quiet_events"],
        "[[truncation]]\npath = \"redact_secrets.wasm\"\nconfig = { cut = false }\n[[truncation]]\npath = \"head_tail.wasm\"\nconfig = { head_share = 0.5 }\n[[filter]]\npath = \"quiet_events.wasm\"\n",
    );
    let text: String = (0..10).map(|i| format!("line {i} key sk-abcdefghijklmnopqrstuv\n")).collect();
    let (out, failures) = set.truncate(&job(), &text, Limits { max_chars: 10_000, max_lines: 4, keep: Keep::Tail });
    assert!(failures.is_empty());
    assert!(!out.contains("sk-abc") && out.contains("[REDACTED]"), "{out}");
    assert!(out.contains("lines cut") && out.starts_with("line 0"), "{out}");
    let (dropped, _) = set.filter(&job(), "item.completed", r#"{"item": {"type": "reasoning"}}"#);
    assert_eq!(dropped, FilterOutcome::Drop);
    let (kept, _) = set.filter(&job(), "item.completed", r#"{"item": {"type": "agent_message"}}"#);
    assert_eq!(kept, FilterOutcome::Keep);
}

#[test]
fn a_truncation_is_told_which_end_to_keep() {
    let engine = PolicyEngine::new(None).unwrap();
    let g = guest(&engine, "redact_secrets", json!({}));
    let text = "first sk-abcdefghijklmnopqrstuv\nmiddle\nlast line\n";
    let limits = |keep| Limits { max_chars: 1_000, max_lines: 1, keep };
    // An output tail keeps its last line, an event's string its first.
    assert_eq!(g.truncate(&job(), text, limits(Keep::Tail)).unwrap(), "last line\n");
    assert_eq!(g.truncate(&job(), text, limits(Keep::Head)).unwrap(), "first [REDACTED]\n");
}

#[test]
fn replacements_chain_and_bad_ones_keep_the_event() {
    let (_home, set) = user_policies(
        &["fixture_replace_events", "quiet_events"],
        "[[filter]]\npath = \"fixture_replace_events.wasm\"\n[[filter]]\npath = \"quiet_events.wasm\"\n",
    );
    // The next filter sees the replacement: quiet-events drops what became `item.updated`.
    assert_eq!(set.filter(&job(), "turn.started", "{}"), (FilterOutcome::Drop, Vec::new()));
    let (replaced, failures) = set.filter(&job(), "thread.started", r#"{"thread_id":"t"}"#);
    assert_eq!(replaced, FilterOutcome::Replace("thread.started".into(), json!({"replaced": true})));
    assert!(failures.is_empty());
    let (kept, failures) = set.filter(&job(), "turn.completed", "{}");
    assert_eq!(kept, FilterOutcome::Keep);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].error.contains("not JSON") && failures[0].fallback == "kept the event", "{failures:?}");
    assert_eq!(set.filter(&job(), "item.completed", "{}"), (FilterOutcome::Keep, Vec::new()));
}

#[test]
fn components_are_refused_with_the_reason() {
    let engine = PolicyEngine::new(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = format!("{:#}", engine.load(&core).err().unwrap());
    assert!(err.contains("core.wasm") && err.contains("core WebAssembly module"), "{err}");
    let err = format!("{:#}", engine.load(&wasm("fixture_wrong_version")).err().unwrap());
    assert!(
        err.contains("fixture_wrong_version.wasm")
            && err.contains("codex-jobhost:policy@0.9.0")
            && err.contains("supports"),
        "{err}"
    );
    let err = format!("{:#}", engine.load(&wasm("fixture_no_world")).err().unwrap());
    assert!(err.contains("implements none of the worlds"), "{err}");
    let (quiet, _) = engine.load(&wasm("quiet_events")).unwrap();
    assert_eq!((quiet.world, quiet.version.as_str()), (World::Filter, "0.3.0"));
}

#[test]
fn compiled_components_come_back_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let first = PolicyEngine::new(Some(cache.path().to_path_buf())).unwrap();
    assert_eq!(first.load(&wasm("head_tail")).unwrap().1, LoadSource::Compiled);
    let second = PolicyEngine::new(Some(cache.path().to_path_buf())).unwrap();
    assert_eq!(second.load(&wasm("head_tail")).unwrap().1, LoadSource::Cache);
    // A damaged entry is recompiled, not trusted.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = PolicyEngine::new(Some(cache.path().to_path_buf())).unwrap();
    let (component, source) = third.load(&wasm("head_tail")).unwrap();
    assert_eq!(source, LoadSource::Compiled);
    assert_eq!(component.world, World::Truncation);
}

#[test]
fn what_a_guest_prints_goes_to_the_log_within_its_rate() {
    let engine = PolicyEngine::new(None).unwrap();
    let g = guest(&engine, "fixture_chatty", json!({}));
    let begun = Instant::now();
    let ((), log) = common::capture_log(|| {
        // 200 calls print 400 lines, 200 KiB: more than any fixed buffer a store
        // might keep, and more than the component's rate allows.
        for _ in 0..200 {
            assert_eq!(g.decide(&job(), &command("ls")).unwrap(), Decision::Accept);
        }
    });
    let elapsed = begun.elapsed().as_secs_f64();
    assert_eq!(g.instantiations(), 1, "printing never fails the instance");
    let lines: Vec<&str> = log.lines().collect();
    let stdout = lines.iter().filter(|l| l.contains("stream=\"stdout\"") && l.contains("chatty xxx")).count();
    let stderr = lines
        .iter()
        .filter(|l| l.contains("stream=\"stderr\"") && l.contains(": to stderr, in two writes component="))
        .count();
    // The burst of 100 lines is logged whole; after it, 10 lines a second.
    let allowed = 100.0 + 10.0 * elapsed;
    assert!(
        stdout + stderr >= 100 && (stdout + stderr) as f64 <= allowed + 1.0,
        "{stdout} + {stderr} lines in {elapsed} s"
    );
    assert!(lines.iter().any(|l| l.contains("log lines held back")), "what is held back is reported");
    assert!(lines.iter().all(|l| l.contains("component=\"fixture_chatty\"")), "{}", lines[0]);
}

#[test]
fn a_0_1_guest_and_a_0_3_guest_decide_side_by_side() {
    let toml = "[[approval]]\npath = \"fixture_v0_1_approval.wasm\"\n\n[[approval]]\npath = \"command_allowlist.wasm\"\nconfig = { allow = [\"git\", \"touch\"] }\n";
    let (_home, set) = user_policies(&["fixture_v0_1_approval", "command_allowlist"], toml);
    let versions: Vec<_> = set.entries().map(|(_, g)| g.component.version.clone()).collect();
    assert_eq!(versions, ["0.1.0", "0.3.0"]);
    // A command: 0.1 gets the unwrapped command only, 0.3 the argv and raw string too.
    let push = codex_jobhost::policy::Request::Command {
        command: "git push origin main".into(),
        argv: vec!["git".into(), "push".into(), "origin".into(), "main".into()],
        raw: "/bin/bash -lc 'git push origin main'".into(),
        cwd: "/w".into(),
        reason: None,
        network_host: None,
        origin: None,
    };
    let verdict = set.decide(&job(), &push);
    assert_eq!(verdict.decision, Decision::Decline("0.1 saw git push origin main".into()), "{verdict:?}");
    assert_eq!(verdict.decided_by.as_deref(), Some("fixture_v0_1_approval"));
    assert_eq!(set.decide(&job(), &command("touch a")).decision, Decision::Accept);
    // A reply, which 0.1 cannot express, reaches the 0.1 guest as a launch with the job's settings.
    let reply = |mode: &str| codex_jobhost::policy::Request::Reply {
        prompt: "more".into(),
        turn: 1,
        settings: codex_jobhost::policy::Launch { approval_mode: mode.into(), ..Default::default() },
    };
    let verdict = set.decide(&job(), &reply("full-auto"));
    assert!(matches!(&verdict.decision, Decision::Decline(r) if r == "0.1 saw a full-auto launch"), "{verdict:?}");
    assert_eq!(set.decide(&job(), &reply("suggest")).decision, Decision::Accept);
    // A tool call, which 0.1 cannot express, is not put to it: its answer counts as `ask`.
    let verdict = set.decide(&job(), &tool_call("docs", "search"));
    assert_eq!((verdict.decision, verdict.decided_by.as_deref()), (Decision::Ask, Some("fixture_v0_1_approval")));
}

fn tool_call(server: &str, tool: &str) -> codex_jobhost::policy::Request {
    codex_jobhost::policy::Request::ToolCall {
        server: server.into(),
        tool: tool.into(),
        arguments: r#"{"q":"x"}"#.into(),
        origin: None,
    }
}

#[test]
fn a_0_2_guest_is_asked_what_0_2_can_express_and_a_tool_call_is_ask_for_it() {
    let toml = "[[approval]]\npath = \"fixture_v0_2_approval.wasm\"\n\n[[approval]]\npath = \"command_allowlist.wasm\"\nconfig = { allow = [\"git\"], allow_tools = [\"docs/*\"], deny_tools = [\"shell/run\"] }\n";
    let (_home, set) = user_policies(&["fixture_v0_2_approval", "command_allowlist"], toml);
    let versions: Vec<_> = set.entries().map(|(_, g)| g.component.version.clone()).collect();
    assert_eq!(versions, ["0.2.0", "0.3.0"]);
    let verdict = set.decide(&job(), &command("git push origin main"));
    assert_eq!(verdict.decision, Decision::Decline("0.2 saw git push origin main".into()), "{verdict:?}");
    assert_eq!(set.decide(&job(), &command("git status")).decision, Decision::Accept);
    // The 0.3 policy accepts the call, the 0.2 one cannot be asked: ask, by the 0.2 one.
    let verdict = set.decide(&job(), &tool_call("docs", "search"));
    assert_eq!((verdict.decision, verdict.decided_by.as_deref()), (Decision::Ask, Some("fixture_v0_2_approval")));
    // A decline by the 0.3 policy still wins.
    let verdict = set.decide(&job(), &tool_call("shell", "run"));
    assert!(matches!(&verdict.decision, Decision::Decline(r) if r.contains("shell/run")), "{verdict:?}");
}

#[test]
fn only_a_0_2_approval_policy_may_judge_options() {
    let home = tempfile::tempdir().unwrap();
    common::copy_guest(home.path(), "fixture_v0_1_approval");
    let toml = "[[approval]]\npath = \"fixture_v0_1_approval.wasm\"\njudges_options = true\n";
    std::fs::write(home.path().join("config.toml"), toml).unwrap();
    let Err(err) = Policies::new(home.path()).for_cwd(home.path()) else {
        panic!("a 0.1 guest judging options loaded")
    };
    let err = format!("{err:#}");
    assert!(
        err.contains("judges_options is for [[approval]] components of WIT 0.2") && err.contains("WIT 0.1.0"),
        "{err}"
    );
    let (_home, set) = user_policies(
        &["command_allowlist"],
        "[[approval]]\npath = \"command_allowlist.wasm\"\njudges_options = true\n",
    );
    assert!(set.judges_options());
    assert_eq!(set.describe()["approval"][0]["judges_options"], true);
}
