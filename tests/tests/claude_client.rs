//! Claude Code as the MCP client, registered as the README says: its
//! `claude mcp add` line run as written and its settings block as
//! `~/.claude/settings.json`; a scripted Anthropic model makes it call
//! `job_start`, `job_wait` and `job_status`, and `claude -p`'s stream shows
//! each call succeed and the inner job's answer come back.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use codex_jobhost_e2e::http::{HttpServer, add_token};
use codex_jobhost_e2e::{
    Reply, World, claude_bin, codex_bin, host_bin, path_with, readme_block, wait_then_status_step,
};
use serde_json::{Value, json};

const INNER_PROMPT: &str = "INNER-JOB: tell me the magic number";
const INNER_ANSWER: &str = "the magic number is 42";

fn tool(name: &str, args: Value) -> Reply {
    Reply::Tool { namespace: "mcp__codex-jobs".into(), name: name.into(), args }
}

/// After `job_start`: `job_wait` until it no longer times out, then `job_status`.
fn wait_then_status(body: &Value) -> Option<Reply> {
    let messages = body["messages"].as_array()?;
    let blocks = || messages.iter().flat_map(|m| m["content"].as_array().into_iter().flatten());
    let last_call = blocks().filter(|b| b["type"] == "tool_use").last()?;
    let result_text = |b: &Value| match &b["content"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let last_result = blocks().filter(|b| b["type"] == "tool_result").last().map(result_text)?;
    let job_id = blocks()
        .filter(|b| b["type"] == "tool_result")
        .map(result_text)
        .find_map(|t| Some(t.split("\"job_id\":\"").nth(1)?.split('"').next()?.to_owned()))?;
    let called = last_call["name"].as_str()?.strip_prefix("mcp__codex-jobs__")?;
    let (name, args) = wait_then_status_step(called, &last_result, &job_id)?;
    Some(tool(name, args))
}

/// Claude Code's environment in `world`: its own home, a PATH with
/// `codex-jobhost` and `claude` on it (as after an install), the mock model,
/// and the homes the jobs use.
fn claude_env(world: &World) -> Result<impl Fn(&mut Command) + '_> {
    let claude = claude_bin();
    let path = path_with(&[host_bin().parent().context("bin dir")?, claude.parent().context("claude dir")?])?;
    Ok(move |c: &mut Command| {
        c.current_dir(world.work_dir())
            .env("HOME", world.root())
            .env("PATH", &path)
            .env("ANTHROPIC_BASE_URL", world.model.anthropic_base_url())
            .env("ANTHROPIC_API_KEY", API_KEY)
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1") // no update checks or telemetry from a test
            .env("CODEX_HOME", world.codex_home())
            .env("CODEX_JOBHOST_HOME", world.jobhost_home())
            .env("CODEX_BIN", codex_bin());
    })
}

/// The README's stdio registration line.
fn stdio_registration() -> Result<&'static str> {
    readme_block("sh", "claude mcp add codex-jobs --")
}

/// The README's registration, as written: its `claude mcp add` line `add`
/// (run in bash with `env`'s environment), then its settings block as `~/.claude/settings.json`.
fn register_as_the_readme_says(home: &Path, add: &str, env: &dyn Fn(&mut Command)) -> Result<()> {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", add]);
    env(&mut cmd);
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "{add}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = readme_block("json", "{ \"permissions\"")?;
    serde_json::from_str::<Value>(settings).context("the README's settings block is not JSON")?;
    std::fs::create_dir_all(home.join(".claude"))?;
    std::fs::write(home.join(".claude/settings.json"), settings)?;
    Ok(())
}

#[test]
fn claude_code_registered_as_the_readme_says_runs_a_job_and_gets_its_answer() -> Result<()> {
    claude_p_runs_a_job(&World::new([])?, stdio_registration()?, &[])
}

/// The same over HTTP: `serve --http` with a token, registered with the
/// README's HTTP line (the test server's address in place of its 127.0.0.1:8765).
#[test]
fn claude_code_registered_over_http_as_the_readme_says_runs_a_job_and_gets_its_answer() -> Result<()> {
    let world = World::new([])?;
    let token = add_token(&world, "claude", false)?;
    let server = HttpServer::start(&world, &[])?;
    let add = readme_block("sh", "claude mcp add --transport http")?;
    ensure!(add.contains("http://127.0.0.1:8765/mcp"), "{add}");
    let add = add.replace("http://127.0.0.1:8765/mcp", &server.url);
    claude_p_runs_a_job(&world, &add, &[("CODEX_JOBHOST_TOKEN", &token)])
}

/// `claude -p` registered with `add`, on a scripted model that calls
/// `job_start`, `job_wait` and `job_status`: each call succeeds and the inner
/// job's answer comes back.
fn claude_p_runs_a_job(world: &World, add: &str, env: &[(&str, &str)]) -> Result<()> {
    world.model.route(INNER_PROMPT, [Reply::Message(INNER_ANSWER.into())]);
    world.model.route(
        "OUTER-TURN",
        [
            tool("job_start", world.start_args(INNER_PROMPT)),
            Reply::Computed(wait_then_status),
            Reply::Message("outer done".into()),
        ],
    );
    let home = world.root();
    let claude = claude_bin();
    let base = claude_env(world)?;
    let claude_env = |c: &mut Command| {
        base(c);
        c.envs(env.iter().copied()).stdin(Stdio::null());
    };

    register_as_the_readme_says(home, add, &claude_env)?;

    let mut cmd = Command::new(&claude);
    cmd.args(["-p", "OUTER-TURN: run the job and report", "--output-format", "stream-json", "--verbose"]);
    claude_env(&mut cmd);
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || format!("claude -p exited {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "{}", context());

    let lines: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let calls: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "assistant")
        .flat_map(|l| l["message"]["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_use")
        .filter_map(|b| b["name"].as_str())
        .collect();
    ensure!(
        calls.first() == Some(&"mcp__codex-jobs__job_start")
            && calls.last() == Some(&"mcp__codex-jobs__job_status")
            && calls.contains(&"mcp__codex-jobs__job_wait"),
        "tools called: {calls:?}\n{}",
        context()
    );
    let results: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "user")
        .flat_map(|l| l["message"]["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_result")
        .collect();
    ensure!(results.len() == calls.len(), "{} results for {} calls\n{}", results.len(), calls.len(), context());
    for result in &results {
        ensure!(result["is_error"] != true, "a tool call failed: {result}");
    }
    let status: Value = serde_json::from_str(results.last().unwrap()["content"].as_str().context("text result")?)?;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["last_message"], INNER_ANSWER, "{status}");
    let done = lines.iter().find(|l| l["type"] == "result").context("no result line")?;
    assert_eq!(done["result"], "outer done", "{done}");
    Ok(())
}

/// The interactive session's model, from what each request holds: the main
/// loop (whose tools include `job_start`) starts the job whose arguments the
/// prompt typed carries (as JSON between `START ` and ` END`), says it runs in the
/// background, and once a request carries the job's answer, says it saw it.
/// Claude Code's side requests (titles, summaries: no such tool) get a word.
fn background_conversation(body: &Value) -> Option<Reply> {
    let tools = body["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !tools.iter().any(|t| t["name"] == "mcp__codex-jobs__job_start") {
        return Some(Reply::Message("Codex job".into()));
    }
    let text = body["messages"].to_string();
    let start_args = || {
        let typed = text.split("START ").nth(1)?;
        let end = typed.find(" END")?;
        serde_json::from_str::<Value>(&typed[..end].replace("\\\"", "\"")).ok()
    };
    Some(if text.contains(INNER_ANSWER) {
        Reply::Message(format!("{OUTER_DONE}: the job said so"))
    } else if text.contains("tool_result") {
        Reply::Message("It runs in the background; I will hear back.".into())
    } else {
        tool("job_start", start_args()?)
    })
}

/// What the interactive session's model says once the job's answer reached it.
const OUTER_DONE: &str = "OUTER-DONE";

/// Claude Code, interactive, in a pseudo-terminal (util-linux `script`), as a
/// person runs it, on `world`'s model, with the server registered as the README
/// says and a user who has used Claude Code before (onboarding done, the folder
/// trusted, the key accepted). MCP 2026-07-28 is forced with
/// `MCP_PROTOCOL_NEGOTIATION=auto`.
struct Interactive {
    session: std::process::Child,
    keys: Mutex<std::process::ChildStdin>,
    screen: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    debug_log: std::path::PathBuf,
}

impl Interactive {
    /// Starts the session; returns once the server is connected (its tools
    /// are the model's) and the prompt box is up.
    fn start(world: &World) -> Result<Self> {
        use std::io::Read;
        let home = world.root();
        let claude = claude_bin();
        let base = claude_env(world)?;
        let claude_env = |c: &mut Command| {
            base(c);
            // A person's terminal: under `CI` (set on the CI machine) Claude Code 2.1.330
            // shows another notice, draws gaps as cursor moves and its form did not take keys.
            c.env_remove("CI")
                .env("TERM", "xterm-256color")
                .env("DISABLE_AUTOUPDATER", "1")
                .env("MCP_PROTOCOL_NEGOTIATION", "auto")
                .env("ENABLE_TOOL_SEARCH", "false"); // the mock model calls job_start without searching for it first
        };
        register_as_the_readme_says(home, stdio_registration()?, &|c| {
            claude_env(c);
            c.stdin(Stdio::null());
        })?;
        let state_file = home.join(".claude.json");
        let mut state: Value = serde_json::from_slice(&std::fs::read(&state_file)?)?;
        state["hasCompletedOnboarding"] = json!(true);
        state["theme"] = json!("dark");
        state["customApiKeyResponses"] = json!({"approved": [&API_KEY[API_KEY.len() - 20..]], "rejected": []});
        let project = &mut state["projects"][world.work_dir().to_string_lossy().as_ref()];
        project["hasTrustDialogAccepted"] = json!(true);
        project["hasCompletedProjectOnboarding"] = json!(true);
        std::fs::write(&state_file, serde_json::to_vec_pretty(&state)?)?;

        let debug_log = home.join("claude-debug.log");
        let line = format!("stty cols 160 rows 50; exec {} --debug-file {}", claude.display(), debug_log.display());
        let mut cmd = Command::new("script");
        cmd.args(["--quiet", "--flush", "--return", "--command", &line, "/dev/null"]);
        claude_env(&mut cmd);
        let mut session = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut out = session.stdout.take().context("stdout")?;
        let reader = {
            let screen = Arc::clone(&screen);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = out.read(&mut buf) {
                    screen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        let keys = session.stdin.take().context("stdin")?;
        let me = Interactive { session, keys: Mutex::new(keys), screen, reader: Some(reader), debug_log };
        me.check(world, || {
            wait_for("the server connected", || {
                me.log().contains(r#"MCP server "codex-jobs": Connection established"#)
            })?;
            let modern = r#"MCP server "codex-jobs": no auto-opened subscriptions/listen on a modern connection"#;
            ensure!(me.log().contains(modern), "the server was not opened with MCP 2026-07-28");
            wait_for("the prompt box", || me.shows("shift+tab to cycle"))
        })?;
        Ok(me)
    }

    /// What the terminal showed so far, without escape sequences.
    fn shown(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(&self.screen.lock().unwrap()))
    }

    /// What the terminal showed so far with all white space taken out: Claude Code
    /// draws a gap either as spaces or as a cursor move (seen on CI: "(shift+tabtocycle)"),
    /// so text on screen is compared without it (see [`squeezed`]).
    fn shown_squeezed(&self) -> String {
        squeezed(&self.shown())
    }

    /// Whether the terminal showed `text` so far, white space aside.
    fn shows(&self, text: &str) -> bool {
        self.shown_squeezed().contains(&squeezed(text))
    }

    /// Claude Code's debug log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.debug_log).unwrap_or_default()
    }

    /// Types `keys` as a person would, with a pause before Enter when `enter`.
    fn press(&self, keys: &str, enter: bool) -> Result<()> {
        use std::io::Write;
        let mut stdin = self.keys.lock().unwrap();
        stdin.write_all(keys.as_bytes())?;
        stdin.flush()?;
        if enter {
            std::thread::sleep(std::time::Duration::from_millis(500));
            stdin.write_all(b"\r")?;
            stdin.flush()?;
        }
        Ok(())
    }

    /// `step`'s outcome, with the screen and what the model was asked when it failed.
    fn check(&self, world: &World, step: impl FnOnce() -> Result<()>) -> Result<()> {
        step().with_context(|| {
            let asked: Vec<String> = world
                .model
                .requests()
                .iter()
                .map(|r| {
                    let tools: Vec<&str> =
                        r["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
                    format!("tools {tools:?}, messages {}", r["messages"])
                })
                .collect();
            format!("the session's screen:\n{}\nthe model was asked:\n{}", self.shown(), asked.join("\n"))
        })
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.session.kill();
        let _ = self.session.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The requests of the session's main loop (those offering `job_start`).
fn main_loop(world: &World) -> Vec<Value> {
    let offers_job_start =
        |r: &Value| r["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "mcp__codex-jobs__job_start"));
    world.model.requests().into_iter().filter(offers_job_start).collect()
}

/// The tools the main loop's model called, in order.
fn called(main_loop: &[Value]) -> Vec<String> {
    let last = main_loop.last().map(|r| r["messages"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
    last.iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_use")
        .filter_map(|b| b["name"].as_str().map(str::to_owned))
        .collect()
}

/// One prompt typed; the model calls `job_start`, which answers with an MCP
/// task; Claude Code polls `tasks/get` and, when the job ends, starts the
/// model's next turn itself with the job's answer, with nothing more typed.
#[test]
fn claude_code_interactive_runs_a_job_as_a_task_and_hands_its_answer_to_the_model_by_itself() -> Result<()> {
    let world = World::new([])?;
    // First: the task's result that reaches the session holds the inner job's prompt too.
    world.model.route("OUTER-TURN", [Reply::Computed(background_conversation)]);
    world.model.route(INNER_PROMPT, [Reply::Message(INNER_ANSWER.into())]);
    let session = Interactive::start(&world)?;
    let prompt = format!("OUTER-TURN: run this job in the background: START {} END", world.start_args(INNER_PROMPT));
    session.press(&prompt, true)?;
    session.check(&world, || {
        wait_for("a model request with the job's answer", || {
            world.model.requests().iter().any(|r| r["messages"].to_string().contains(INNER_ANSWER))
        })?;
        wait_for("the model's last word on screen", || session.shows(OUTER_DONE))
    })?;
    let log = session.log();
    ensure!(log.contains("Tool 'job_start' returned task"), "Claude Code's debug log:\n{log}");
    drop(session);

    // The model saw the placeholder first, then a turn Claude Code started with the answer;
    // nothing polled the job through job_wait or job_status.
    let main_loop = main_loop(&world);
    let calls = called(&main_loop);
    ensure!(calls == ["mcp__codex-jobs__job_start"], "tools called: {calls:?}");
    let answered = main_loop.iter().position(|r| r["messages"].to_string().contains(INNER_ANSWER)).context("answer")?;
    let placeholder =
        main_loop[..answered].iter().any(|r| r["messages"].to_string().contains("runs in the background as MCP task"));
    ensure!(placeholder, "the model never saw the task's placeholder: {main_loop:#?}");
    let typed = |r: &Value| {
        r["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "user" && m.to_string().contains("OUTER-TURN")).count())
    };
    ensure!(typed(&main_loop[answered]) == 1, "the answer came with one prompt typed: {:#}", main_loop[answered]);
    Ok(())
}

const API_KEY: &str = "sk-ant-test-0123456789abcdefghijklmnop";

/// Waits (polling every 100 ms) until `done`; a guard of 10 minutes against a
/// hang, far past what any step takes (the whole test: 6 s here).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !done() {
        ensure!(std::time::Instant::now() < guard, "no {what} after 10 minutes");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// `text` without white space.
fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The terminal's text without its escape sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next_if_eq(&'[').is_some() {
                while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
            } else {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The job's agent asks to run a command; the job's task turns
/// `input_required`, Claude Code shows its form, the person picks `accept`
/// and submits it: the command runs, the answer is recorded as `tasks/update`'s,
/// and the job's answer reaches the model as before.
#[test]
fn claude_code_interactive_shows_an_approval_request_as_a_form_and_its_answer_runs_the_command() -> Result<()> {
    let world = World::new([])?;
    world.model.route("OUTER-TURN", [Reply::Computed(background_conversation)]);
    let inner = [Reply::Escalated("touch via-claude.txt".into()), Reply::Message(INNER_ANSWER.into())];
    world.model.route(INNER_PROMPT, inner);
    let session = Interactive::start(&world)?;
    let prompt = format!("OUTER-TURN: run this job in the background: START {} END", world.start_args(INNER_PROMPT));
    session.press(&prompt, true)?;
    let made = world.work_dir().join("via-claude.txt");
    session.check(&world, || {
        wait_for("the form", || session.shows("Codex asks for approval (command): touch via-claude.txt"))?;
        ensure!(!made.exists(), "the command ran before it was answered");
        session.press("\x1b[C", false)?; // → opens the Decision field's choices
        wait_for("the choices", || session.shows("accept_for_session"))?;
        session.press("\r", false)?; // the first: accept
        wait_for("the choice made, the Accept button focused", || {
            let shown = session.shown_squeezed();
            shown.rsplit_once("Decision:accept").is_some_and(|(_, after)| after.contains("❯Accept"))
        })?;
        // Enter on the Accept button, again every 2 s while the form has not taken it
        // (a key that lands while the form still settles is lost; an extra one on the
        // empty prompt box afterwards does nothing).
        let mut presses = 0;
        wait_for("the command run", || {
            presses += 1;
            if presses % 20 == 1 {
                let _ = session.press("\r", false);
            }
            made.exists()
        })?;
        wait_for("the model's last word on screen", || session.shows(OUTER_DONE))
    })?;
    drop(session);

    let jobs: Vec<_> = std::fs::read_dir(world.jobhost_home().join("jobs"))?.collect::<std::io::Result<_>>()?;
    ensure!(jobs.len() == 1, "{} jobs", jobs.len());
    let events = std::fs::read_to_string(jobs[0].path().join("events.jsonl"))?;
    let decided: Vec<Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "approval.decided")
        .collect();
    ensure!(decided.len() == 1, "{decided:?}");
    assert_eq!(
        (&decided[0]["data"]["decision"], &decided[0]["data"]["decided_by"]),
        (&json!("accept"), &json!("tasks/update"))
    );
    Ok(())
}
