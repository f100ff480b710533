//! Hostile policy components: each class of attack on the host, with a guest
//! of its own (built from `guest-policies/fixtures/`, or made here from a
//! hand-written core module where Rust cannot express the attack).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codex_jobhost::policy::{Guest, GuestLimits, PolicyEngine};
use common::{job, wasm};
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection, HeapType,
    Instruction as I, MemorySection, MemoryType, Module, RefType, TableSection, TableType, TypeSection, ValType,
};

/// What a hand-made truncation does when the host refuses to grow its table.
#[derive(Clone, Copy, PartialEq)]
enum OnRefusal {
    /// Traps.
    Trap,
    /// Goes on as if nothing happened (and traps only when `max_chars` is 0).
    Ignore,
}

/// A component made by hand: an `output-truncation` whose `truncate` grows
/// its funcref table by `grow` elements per call and returns `"ok"`; with
/// `memories` linear memories in its one core module.
fn handmade_truncation(dir: &Path, name: &str, grow: i32, memories: u32, on_refusal: OnRefusal) -> PathBuf {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32; 4], [ValType::I32]); // cabi_realloc
    types.ty().function([ValType::I32; 16], [ValType::I32]); // truncate(job-info, text, limits) -> retptr
    module.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    funcs.function(1);
    module.section(&funcs);
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: 1,
        maximum: None,
        shared: false,
    });
    module.section(&tables);
    let mut mems = MemorySection::new();
    for _ in 0..memories {
        mems.memory(MemoryType { minimum: 4, maximum: None, memory64: false, shared: false, page_size_log2: None });
    }
    module.section(&mems);
    let mut globals = wasm_encoder::GlobalSection::new();
    globals.global(
        wasm_encoder::GlobalType { val_type: ValType::I32, mutable: true, shared: false },
        &ConstExpr::i32_const(1024),
    );
    module.section(&globals);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("cabi_realloc", ExportKind::Func, 0);
    exports.export("codex-jobhost:policy/truncation@0.3.0#truncate", ExportKind::Func, 1);
    module.section(&exports);
    let mut code = CodeSection::new();
    // cabi_realloc: a bump allocator, 8-byte aligned, never freeing.
    let mut realloc = Function::new([]);
    for i in [
        I::GlobalGet(0),
        I::I32Const(7),
        I::I32Add,
        I::I32Const(-8),
        I::I32And,
        I::GlobalSet(0),
        I::GlobalGet(0),
        I::GlobalGet(0),
        I::LocalGet(3),
        I::I32Add,
        I::GlobalSet(0),
        I::End,
    ] {
        realloc.instruction(&i);
    }
    code.function(&realloc);
    let mut truncate = Function::new([]);
    let grow_table = [I::RefNull(HeapType::FUNC), I::I32Const(grow), I::TableGrow(0)];
    let body: Vec<I> = match on_refusal {
        OnRefusal::Trap => {
            let trap_if_refused =
                [I::I32Const(-1), I::I32Eq, I::If(wasm_encoder::BlockType::Empty), I::Unreachable, I::End];
            grow_table.into_iter().chain(trap_if_refused).collect()
        }
        OnRefusal::Ignore => {
            // Parameter 13 is `limits.max-chars`.
            let trap_if_zero =
                [I::LocalGet(13), I::I32Eqz, I::If(wasm_encoder::BlockType::Empty), I::Unreachable, I::End];
            trap_if_zero.into_iter().chain(grow_table).chain([I::Drop]).collect()
        }
    };
    // The result: (ptr 32, len 2) at 16, "ok" at 32.
    for i in body.iter().chain(&[I::I32Const(16), I::End]) {
        truncate.instruction(i);
    }
    code.function(&truncate);
    module.section(&code);
    let mut data = DataSection::new();
    data.active(0, &ConstExpr::i32_const(16), [32, 0, 0, 0, 2, 0, 0, 0]);
    data.active(0, &ConstExpr::i32_const(32), *b"ok");
    module.section(&data);
    let mut bytes = module.finish();

    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")).unwrap();
    let world = resolve.select_world(&[package], Some("output-truncation")).unwrap();
    wit_component::embed_component_metadata(&mut bytes, &resolve, world, wit_component::StringEncoding::UTF8).unwrap();
    let component = wit_component::ComponentEncoder::default().module(&bytes).unwrap().encode().unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, component).unwrap();
    path
}

fn limits() -> codex_jobhost::policy::Limits {
    codex_jobhost::policy::Limits { max_chars: 100, max_lines: 10, keep: codex_jobhost::policy::Keep::Tail }
}

#[test]
fn tables_count_against_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    // 1 Mi elements a call: 8 MiB counted; the second call passes 16 MiB.
    let path = handmade_truncation(dir.path(), "table_grower", 1 << 20, 1, OnRefusal::Trap);
    let engine = PolicyEngine::new(None).unwrap();
    let (component, _) = engine.load(&path).unwrap();
    let g = Guest::new("table_grower", Arc::new(component), "{}".into(), GuestLimits::default());
    assert_eq!(g.truncate(&job(), "text", limits()).unwrap(), "ok");
    let err = g.truncate(&job(), "text", limits()).unwrap_err();
    assert!(err.contains("exceeded its memory cap of 16 MiB (memories and tables together)"), "{err}");
    // A fresh instance starts from nothing again.
    assert_eq!(g.truncate(&job(), "text", limits()).unwrap(), "ok");
}

#[test]
fn a_trap_after_a_refused_growth_is_reported_as_the_trap_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = handmade_truncation(dir.path(), "shrugs", 1 << 20, 1, OnRefusal::Ignore);
    let engine = PolicyEngine::new(None).unwrap();
    let (component, _) = engine.load(&path).unwrap();
    let g = Guest::new("shrugs", Arc::new(component), "{}".into(), GuestLimits::default());
    assert_eq!(g.truncate(&job(), "text", limits()).unwrap(), "ok");
    // The host refuses the second growth; the guest goes on.
    assert_eq!(g.truncate(&job(), "text", limits()).unwrap(), "ok");
    assert_eq!(g.instantiations(), 1);
    // An unrelated trap on the same instance is a trap, not the memory cap.
    let zero = codex_jobhost::policy::Limits { max_chars: 0, max_lines: 10, keep: codex_jobhost::policy::Keep::Tail };
    let err = g.truncate(&job(), "text", zero).unwrap_err();
    assert!(err.starts_with("trapped:") && !err.contains("memory cap"), "{err}");
}

#[test]
fn a_core_module_with_two_memories_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = handmade_truncation(dir.path(), "two_memories", 1, 2, OnRefusal::Trap);
    let engine = PolicyEngine::new(None).unwrap();
    let err = format!("{:#}", engine.load(&path).err().unwrap());
    assert!(err.contains("two_memories.wasm") && err.contains("memor"), "{err}");
}

#[test]
fn a_guest_that_sleeps_in_wasi_is_refused_at_load() {
    // A sleep inside a host call is out of the deadline's reach, so the host
    // offers no monotonic clock to subscribe to; the load names the import.
    let engine = PolicyEngine::new(None).unwrap();
    let err = format!("{:#}", engine.load(&wasm("fixture_sleeper")).err().unwrap());
    assert!(err.contains("fixture_sleeper.wasm") && err.contains("wasi:clocks/monotonic-clock"), "{err}");
}

#[test]
fn exports_with_the_right_names_and_wrong_types_are_refused() {
    let engine = PolicyEngine::new(None).unwrap();
    let err = format!("{:#}", engine.load(&wasm("fixture_wrong_types")).err().unwrap());
    assert!(
        err.contains("fixture_wrong_types.wasm")
            && err.contains("does not match the approval-policy world")
            && err.contains("decide"),
        "{err}"
    );
}

/// A repository whose `.codex/jobhost.toml` names `path` as an approval policy.
fn repo_naming(path: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join(".codex")).unwrap();
    std::fs::write(repo.path().join(".codex/jobhost.toml"), format!("[[approval]]\npath = {path:?}\n")).unwrap();
    repo
}

fn load_error(home: &Path, repo: &Path) -> String {
    let policies = codex_jobhost::policy::Policies::new(home);
    format!("{:#}", policies.for_cwd(repo).err().expect("refused"))
}

#[test]
fn policy_paths_stay_inside_the_project() {
    let home = tempfile::tempdir().unwrap();
    for path in ["../../../../../../etc/passwd", "/etc/passwd", "/dev/zero", "/proc/self/fd/0"] {
        let repo = repo_naming(path);
        let err = load_error(home.path(), repo.path());
        assert!(
            err.contains(path) && err.contains("is outside") && err.contains("may only name files inside"),
            "{path}: {err}"
        );
    }
    // Symlinks are followed only while they stay inside.
    for target in ["/etc/passwd", "/dev/zero", "/proc/self/fd/0"] {
        let repo = repo_naming("evil.wasm");
        std::os::unix::fs::symlink(target, repo.path().join(".codex/evil.wasm")).unwrap();
        let err = load_error(home.path(), repo.path());
        assert!(err.contains("evil.wasm") && err.contains("is outside"), "{target}: {err}");
    }
    let repo = repo_naming("inside.wasm");
    std::fs::copy(wasm("fixture_accept_all"), repo.path().join("real.wasm")).unwrap();
    std::os::unix::fs::symlink("../real.wasm", repo.path().join(".codex/inside.wasm")).unwrap();
    let set = codex_jobhost::policy::Policies::new(home.path()).for_cwd(repo.path()).unwrap();
    assert_eq!(set.decide(&job(), &common::command("ls")).decision, codex_jobhost::policy::Decision::Accept);
}

#[test]
fn policy_files_that_are_not_regular_or_too_large_are_refused() {
    let home = tempfile::tempdir().unwrap();
    // A FIFO: refused at once, never waited on.
    let repo = repo_naming("fifo.wasm");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        repo.path().join(".codex/fifo.wasm"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let err = load_error(home.path(), repo.path());
    assert!(err.contains("fifo.wasm is not a regular file"), "{err}");
    // Larger than the component cap (a sparse file: nothing is written).
    let repo = repo_naming("big.wasm");
    let big = std::fs::File::create(repo.path().join(".codex/big.wasm")).unwrap();
    big.set_len(codex_jobhost::policy::source::COMPONENT_MAX_BYTES + 1).unwrap();
    let err = load_error(home.path(), repo.path());
    assert!(err.contains("big.wasm is 16777217 bytes; the limit is 16777216 bytes"), "{err}");
    // The policy file itself may not lead outside either.
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join(".codex")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", repo.path().join(".codex/jobhost.toml")).unwrap();
    let err = load_error(home.path(), repo.path());
    assert!(err.contains("jobhost.toml is outside"), "{err}");
}

#[test]
fn a_policy_file_has_at_most_16_entries() {
    let home = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join(".codex")).unwrap();
    let name = common::copy_guest(&repo.path().join(".codex"), "fixture_accept_all");
    let toml = format!("[[approval]]\npath = {name:?}\n").repeat(17);
    std::fs::write(repo.path().join(".codex/jobhost.toml"), toml).unwrap();
    let err = load_error(home.path(), repo.path());
    assert!(err.contains("17 policy entries; the limit is 16 per file"), "{err}");
}

#[test]
fn the_users_policies_stay_inside_the_job_home() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), format!("[[approval]]\npath = {:?}\n", wasm("fixture_accept_all")))
        .unwrap();
    let err = load_error(home.path(), home.path());
    assert!(err.contains("fixture_accept_all.wasm is outside") && err.contains("config.toml"), "{err}");
}

#[test]
fn a_truncation_that_returns_more_than_its_limits_is_cut_again() {
    let (_home, set) = common::user_policies(
        &["fixture_hostile_truncation"],
        "[[truncation]]\npath = \"fixture_hostile_truncation.wasm\"\nconfig = { mode = \"flood\" }\n",
    );
    let text = "a line\n".repeat(2_000);
    let limits =
        codex_jobhost::policy::Limits { max_chars: 8_000, max_lines: 100, keep: codex_jobhost::policy::Keep::Tail };
    let (out, failures) = set.truncate(&job(), &text, limits);
    assert!(out.chars().count() <= 8_100 && !out.contains("xxx"), "{} characters", out.chars().count());
    assert!(out.ends_with("a line\n") && out.contains("lines cut"), "the built-in cut of the input: {out}");
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0]
            .error
            .contains("returned 2000000 characters in 1 lines, more than its limits (8000 characters, 100 lines)"),
        "{failures:?}"
    );
}

#[test]
fn a_redaction_that_keeps_the_length_does_not_switch_the_limits_off() {
    let (_home, set) = common::user_policies(
        &["fixture_hostile_truncation"],
        "[[truncation]]\npath = \"fixture_hostile_truncation.wasm\"\nconfig = { mode = \"unchanged\" }\n",
    );
    let text = "a line\n".repeat(2_000);
    let limits =
        codex_jobhost::policy::Limits { max_chars: 8_000, max_lines: 100, keep: codex_jobhost::policy::Keep::Tail };
    let (out, failures) = set.truncate(&job(), &text, limits);
    assert!(failures.is_empty(), "returning what it was given is no failure: {failures:?}");
    assert!(out.split_inclusive('\n').count() <= 101 && out.contains("1900 lines cut"), "{out}");
}

#[test]
fn a_filter_cannot_forge_host_events_or_return_huge_or_deep_replacements() {
    use codex_jobhost::policy::FilterOutcome;
    let set_for = |mode: &str| {
        common::user_policies(
            &["fixture_hostile_filter"],
            &format!("[[filter]]\npath = \"fixture_hostile_filter.wasm\"\nconfig = {{ mode = \"{mode}\" }}\n"),
        )
    };
    let payload = r#"{"type":"item.completed","item":{"type":"agent_message","text":"hi"}}"#;
    for (mode, error) in [
        ("forge", "replaced a \"item.completed\" event with the host's own type \"job.status\""),
        ("huge", "the limit is 65536 bytes"),
        ("deep", "nested 100 deep; the limit is 32"),
    ] {
        let (_home, set) = set_for(mode);
        let (outcome, failures) = set.filter(&job(), "item.completed", payload);
        assert_eq!(outcome, FilterOutcome::Keep, "{mode}");
        assert_eq!(failures.len(), 1, "{mode}");
        assert!(failures[0].error.contains(error) && failures[0].fallback == "kept the event", "{mode}: {failures:?}");
    }
    // A job.status event may stay a job.status event (notifications are filtered as one).
    let (_home, set) = set_for("forge");
    let (outcome, failures) = set.filter(&job(), "job.status", r#"{"status":"failed"}"#);
    assert!(failures.is_empty() && matches!(outcome, FilterOutcome::Replace(k, _) if k == "job.status"));
}

#[test]
fn a_guest_cannot_flood_the_log_or_forge_its_lines() {
    let (_home, set) = common::user_policies(
        &["fixture_hostile_truncation"],
        "[[truncation]]\npath = \"fixture_hostile_truncation.wasm\"\nconfig = { mode = \"log\" }\n",
    );
    let limits =
        codex_jobhost::policy::Limits { max_chars: 100, max_lines: 10, keep: codex_jobhost::policy::Keep::Tail };
    let ((), log) = common::capture_log(|| {
        // One call writes 1,000 log lines and prints 1,000 more.
        let (out, failures) = set.truncate(&job(), "text", limits);
        assert_eq!((out.as_str(), failures.len()), ("text", 0));
    });
    let lines: Vec<&str> = log.lines().collect();
    // 20 lines a call, then one line saying how many were held back.
    assert_eq!(lines.len(), 21, "{log}");
    assert!(lines[20].contains("1980 log lines held back"), "{}", lines[20]);
    assert!(lines.iter().all(|l| l.contains("component=\"fixture_hostile_truncation\"")), "{log}");
    assert!(lines[0].contains(r"guest line 0\nERROR codex_jobhost: forged host line\u{1b}[31m"), "{}", lines[0]);
    assert!(!log.contains('\x1b') && !log.contains('\x07'), "no control character reaches the log");
}

#[test]
fn simultaneous_loads_of_one_component_compile_it_once() {
    use codex_jobhost::policy::LoadSource;
    let cache = tempfile::tempdir().unwrap();
    let sources: Vec<LoadSource> = std::thread::scope(|scope| {
        let loads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let engine = PolicyEngine::new(Some(cache.path().to_path_buf())).unwrap();
                    engine.load(&wasm("head_tail")).unwrap().1
                })
            })
            .collect();
        loads.into_iter().map(|l| l.join().unwrap()).collect()
    });
    assert_eq!(sources.iter().filter(|s| **s == LoadSource::Compiled).count(), 1, "{sources:?}");
    assert_eq!(sources.iter().filter(|s| **s == LoadSource::Cache).count(), 3, "{sources:?}");
}

#[test]
fn the_component_cache_is_trimmed_least_recently_used_first() {
    use codex_jobhost::policy::LoadSource;
    let cache = tempfile::tempdir().unwrap();
    let entries = || -> Vec<PathBuf> {
        let mut e: Vec<PathBuf> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect();
        e.sort();
        e
    };
    let mut engine = PolicyEngine::new(Some(cache.path().to_path_buf())).unwrap();
    engine.load(&wasm("head_tail")).unwrap();
    engine.load(&wasm("quiet_events")).unwrap();
    let sizes: u64 = entries().iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    // Room for two entries of about this size, not three.
    engine.set_cache_limit(sizes + sizes / 4);
    // Both entries last used long ago; then head_tail is used again, so
    // quiet_events is the least recently used.
    for entry in entries() {
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800);
        std::fs::File::options().write(true).open(entry).unwrap().set_modified(long_ago).unwrap();
    }
    assert_eq!(engine.load(&wasm("head_tail")).unwrap().1, LoadSource::Cache);
    engine.load(&wasm("redact_secrets")).unwrap();
    assert_eq!(entries().len(), 2);
    assert_eq!(engine.load(&wasm("head_tail")).unwrap().1, LoadSource::Cache);
    assert_eq!(engine.load(&wasm("quiet_events")).unwrap().1, LoadSource::Compiled, "it was trimmed");
}

#[test]
fn a_request_that_runs_out_of_policy_time_gets_the_built_in_behaviour() {
    let (_home, set) = common::user_policies(
        &["fixture_hostile_truncation", "fixture_replace_events"],
        "[limits]\ndeadline_ms = 60000\nfuel = 1000000000000\nrequest_budget_ms = 1\n\
         [[truncation]]\npath = \"fixture_hostile_truncation.wasm\"\nconfig = { mode = \"slow\" }\n\
         [[filter]]\npath = \"fixture_replace_events.wasm\"\n",
    );
    let limits = codex_jobhost::policy::Limits { max_chars: 3, max_lines: 10, keep: codex_jobhost::policy::Keep::Head };
    let request = set.within(std::time::Instant::now());
    // The first call may or may not start inside 1 ms; it takes far longer than that.
    request.truncate(&job(), "hello", limits);
    // After it: the built-in cut, every event kept (the filter would replace this one).
    assert_eq!(request.truncate(&job(), "hello", limits).0, "hel…[2 more chars]");
    assert!(request.exhausted());
    assert_eq!(request.filter(&job(), "thread.started", "{}").0, codex_jobhost::policy::FilterOutcome::Keep);
    // A new request has its own budget.
    let (replaced, _) = set.within(std::time::Instant::now() + std::time::Duration::from_secs(60)).filter(
        &job(),
        "thread.started",
        "{}",
    );
    assert!(matches!(replaced, codex_jobhost::policy::FilterOutcome::Replace(..)), "{replaced:?}");
}

/// Runs `f` while every core is kept busy by spinning threads.
fn under_load<R>(f: impl FnOnce() -> R) -> R {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..cores * 2 {
            scope.spawn(|| {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            });
        }
        let result = f();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    })
}

#[test]
fn fuel_gives_a_cpu_heavy_guest_the_same_answer_on_an_idle_and_a_loaded_machine() {
    // 200 million loop iterations: more than the default fuel allows, and far
    // less than a deadline of 60 s on any machine, so fuel alone decides.
    let outcome = |fuel: &str| {
        let (_home, set) = common::user_policies(
            &["fixture_hostile_truncation"],
            &format!(
                "[limits]\ndeadline_ms = 60000\n{fuel}\n[[truncation]]\npath = \"fixture_hostile_truncation.wasm\"\nconfig = {{ mode = \"slow\" }}\n"
            ),
        );
        let limits =
            codex_jobhost::policy::Limits { max_chars: 3, max_lines: 10, keep: codex_jobhost::policy::Keep::Head };
        let idle = set.truncate(&job(), "hello", limits);
        let loaded = under_load(|| set.truncate(&job(), "hello", limits));
        (idle, loaded)
    };
    let (idle, loaded) = outcome("");
    assert_eq!(idle, loaded);
    assert!(idle.1.len() == 1 && idle.1[0].error.contains("ran out of fuel"), "{idle:?}");
    let (idle, loaded) = outcome("fuel = 10000000000");
    assert_eq!(idle, loaded);
    assert_eq!(idle, ("hello".to_owned(), Vec::new()), "within its fuel the guest's answer stands");
}

#[test]
fn a_redaction_that_fails_withholds_the_text() {
    let limits =
        codex_jobhost::policy::Limits { max_chars: 8_000, max_lines: 100, keep: codex_jobhost::policy::Keep::Tail };
    let secret = "token sk-abcdefghijklmnopqrstuv\n";
    for (entry, withheld) in [
        // Named as a redaction: fails closed by default.
        ("name = \"redact-corp\"\nconfig = { mode = \"flood\" }", true),
        ("config = { mode = \"flood\" }\non_failure = \"closed\"", true),
        ("name = \"redact-corp\"\nconfig = { mode = \"flood\" }\non_failure = \"open\"", false),
        ("config = { mode = \"flood\" }", false),
    ] {
        let (_home, set) = common::user_policies(
            &["fixture_hostile_truncation"],
            &format!("[[truncation]]\npath = \"fixture_hostile_truncation.wasm\"\n{entry}\n"),
        );
        let (out, failures) = set.truncate(&job(), secret, limits);
        assert_eq!(failures.len(), 1, "{entry}");
        if withheld {
            assert!(out.starts_with("[withheld: truncation policy ") && out.ends_with(" failed]"), "{entry}: {out}");
            assert_eq!(failures[0].fallback, "withheld the text (fails closed)");
        } else {
            assert_eq!(out, secret, "{entry}: the built-in cut of a short text is the text");
        }
    }
    // When a request's policy time runs out, a fail-closed chain withholds too.
    let (_home, set) = common::user_policies(
        &["fixture_hostile_truncation"],
        "[limits]\nrequest_budget_ms = 1\n[[truncation]]\npath = \"fixture_hostile_truncation.wasm\"\nname = \"redact-corp\"\n",
    );
    let request = set.within(std::time::Instant::now() - std::time::Duration::from_secs(1));
    let (out, _) = request.truncate(&job(), secret, limits);
    assert_eq!(out, "[withheld: truncation policy redact-corp ran out of time for this request]");
    // on_failure belongs to truncations.
    let home = tempfile::tempdir().unwrap();
    let name = common::copy_guest(home.path(), "fixture_accept_all");
    std::fs::write(
        home.path().join("config.toml"),
        format!("[[approval]]\npath = {name:?}\non_failure = \"closed\"\n"),
    )
    .unwrap();
    let err = format!("{:#}", codex_jobhost::policy::Policies::new(home.path()).for_cwd(home.path()).err().unwrap());
    assert!(err.contains("on_failure is for [[truncation]] entries"), "{err}");
}

#[test]
fn a_truncation_whose_settings_do_not_parse_fails_closed() {
    let limits =
        codex_jobhost::policy::Limits { max_chars: 8_000, max_lines: 100, keep: codex_jobhost::policy::Keep::Tail };
    let secret = "token sk-abcdefghijklmnopqrstuv\n";
    for (entry, withheld) in [
        ("config = { head_share = \"most\" }", true),
        ("config = { head_share = \"most\" }\non_failure = \"open\"", false),
        ("config = { head_share = 0.5 }", false),
    ] {
        let (_home, set) =
            common::user_policies(&["head_tail"], &format!("[[truncation]]\npath = \"head_tail.wasm\"\n{entry}\n"));
        let (out, failures) = set.truncate(&job(), secret, limits);
        if withheld {
            assert_eq!(out, "[withheld: truncation policy head_tail failed]", "{entry}");
            assert!(failures[0].error.contains("invalid policy settings"), "{failures:?}");
            assert_eq!(set.describe()["truncation"][0]["on_failure"], "closed");
        } else {
            assert_eq!(out, secret, "{entry}");
        }
    }
}
