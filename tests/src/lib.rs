//! End-to-end test harness: the built `codex-jobhost` binary driven over stdio
//! by rmcp's client, running the real Codex CLI against [`MockModel`].

pub mod http;
pub mod raw;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// One scripted answer of the mock model to `POST /v1/responses`.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An assistant message with this text; the turn ends.
    Message(String),
    /// A `function_call` to `exec_command` with `{"cmd": ...}`: Codex runs it
    /// and asks the model again with the output.
    Command(String),
    /// As [`Reply::Command`], asking to run outside the sandbox
    /// (`"sandbox_permissions": "require_escalated"`, with a justification):
    /// under a strict approval mode Codex asks for approval first.
    Escalated(String),
    /// A patch in `apply_patch` format run through `exec_command`
    /// (`apply_patch <<'EOF' … EOF`), which Codex turns into a file change
    /// (and, under a strict approval mode, a file-change approval request).
    Patch(String),
    /// A `function_call` to the MCP tool `name` of the server Codex
    /// presents as the namespace `namespace` (`mcp__<server>`), with `args`.
    Tool { namespace: String, name: String, args: Value },
    /// Answers each request with what `step` makes of its JSON body (e.g. a
    /// tool call naming the job id an earlier tool output carried), for as
    /// long as `step` returns `Some`; then the script goes on.
    Computed(fn(&Value) -> Option<Reply>),
    /// HTTP 500 with an error body.
    ServerError,
    /// Wait this long, then answer with the inner reply.
    After(Duration, Box<Reply>),
}

/// A model server on 127.0.0.1 that speaks just enough of the OpenAI
/// Responses API for Codex: each `POST /v1/responses` takes the next
/// scripted [`Reply`] and streams it as server-sent events
/// (`response.created`, `response.output_item.done`, `response.completed`).
/// It speaks the Anthropic Messages API for Claude Code too: `POST
/// /v1/messages` streams a [`Reply::Message`] as a text block and a
/// [`Reply::Tool`] as a `tool_use` named `<namespace>__<name>`.
/// With the script used up it answers with the message "done". A
/// conversation whose user messages contain a [`MockModel::route`] marker
/// takes its replies from that route's script instead, so a job started
/// from inside another Codex conversation has its own script whatever the
/// order of their requests.
pub struct MockModel {
    port: u16,
    scripts: Arc<Mutex<Scripts>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

/// The default script and the routed ones, by marker.
#[derive(Default)]
struct Scripts {
    default: VecDeque<Reply>,
    routes: Vec<(String, VecDeque<Reply>)>,
}

impl Scripts {
    /// The script for this request body: the first route whose marker a
    /// user message contains, else the default.
    fn for_request(&mut self, body: &Value) -> &mut VecDeque<Reply> {
        // Responses API: `input`; Messages API: `messages`, whose content may be a plain string.
        let user_text: String = [&body["input"], &body["messages"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter(|item| item["role"] == "user")
            .flat_map(|item| match &item["content"] {
                Value::String(s) => vec![s.as_str()],
                content => content.as_array().into_iter().flatten().filter_map(|c| c["text"].as_str()).collect(),
            })
            .collect();
        match self.routes.iter().position(|(marker, _)| user_text.contains(marker.as_str())) {
            Some(i) => &mut self.routes[i].1,
            None => &mut self.default,
        }
    }

    fn next(&mut self, body: &Value) -> Reply {
        let script = self.for_request(body);
        loop {
            match script.front() {
                Some(Reply::Computed(step)) => match step(body) {
                    Some(reply) => return reply,
                    None => _ = script.pop_front(),
                },
                Some(_) => return script.pop_front().unwrap(),
                None => return Reply::Message("done".into()),
            }
        }
    }
}

impl MockModel {
    /// Starts the server on a free port with this script.
    pub fn start(script: impl IntoIterator<Item = Reply>) -> Result<Self> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("mock model: {e}"))?);
        let port = server.server_addr().to_ip().context("mock model has no IP address")?.port();
        let scripts = Arc::new(Mutex::new(Scripts { default: script.into_iter().collect(), routes: Vec::new() }));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (Arc::clone(&scripts), Arc::clone(&requests));
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let (s, r) = (Arc::clone(&s), Arc::clone(&r));
                // One thread a request, so a delayed answer holds up no other.
                std::thread::spawn(move || answer(request, &s, &r));
            }
        });
        Ok(MockModel { port, scripts, requests })
    }

    /// Answers conversations whose user messages contain `marker` from `script`.
    pub fn route(&self, marker: &str, script: impl IntoIterator<Item = Reply>) {
        self.scripts.lock().unwrap().routes.push((marker.to_owned(), script.into_iter().collect()));
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The JSON bodies Codex posted so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// Replies of the default script still unused.
    pub fn remaining(&self) -> usize {
        self.scripts.lock().unwrap().default.len()
    }
}

fn answer(mut request: tiny_http::Request, scripts: &Mutex<Scripts>, requests: &Mutex<Vec<Value>>) {
    let url = request.url().to_owned();
    let messages_api = url.starts_with("/v1/messages");
    if request.method() != &tiny_http::Method::Post || !(url.ends_with("/responses") || messages_api) {
        let _ = request.respond(tiny_http::Response::empty(404));
        return;
    }
    if url.starts_with("/v1/messages/count_tokens") {
        let header = "Content-Type: application/json".parse::<tiny_http::Header>().unwrap();
        let _ = request.respond(tiny_http::Response::from_string(r#"{"input_tokens":10}"#).with_header(header));
        return;
    }
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut reply = scripts.lock().unwrap().next(&body);
    let n = {
        let mut r = requests.lock().unwrap();
        r.push(body.clone());
        r.len()
    };
    while let Reply::After(delay, inner) = reply {
        std::thread::sleep(delay);
        reply = *inner;
    }
    if messages_api {
        let model = body["model"].as_str().unwrap_or("mock").to_owned();
        let _ = request.respond(anthropic_stream(n, &model, reply));
        return;
    }
    let item = match reply {
        Reply::Message(text) => json!({
            "type": "message", "role": "assistant", "id": format!("msg_{n}"),
            "content": [{"type": "output_text", "text": text}]
        }),
        Reply::Command(cmd) => json!({
            "type": "function_call", "call_id": format!("call_{n}"), "name": "exec_command",
            "arguments": json!({"cmd": cmd}).to_string()
        }),
        Reply::Escalated(cmd) => json!({
            "type": "function_call", "call_id": format!("call_{n}"), "name": "exec_command",
            "arguments": json!({"cmd": cmd, "sandbox_permissions": "require_escalated", "justification": "the test needs it"}).to_string()
        }),
        Reply::Patch(patch) => json!({
            "type": "function_call", "call_id": format!("call_{n}"), "name": "exec_command",
            "arguments": json!({"cmd": format!("apply_patch <<'EOF'\n{patch}EOF\n")}).to_string()
        }),
        Reply::Tool { namespace, name, args } => json!({
            "type": "function_call", "call_id": format!("call_{n}"), "namespace": namespace, "name": name,
            "arguments": args.to_string()
        }),
        Reply::ServerError => {
            let body = json!({"error": {"message": "mock model exploded", "type": "server_error"}}).to_string();
            let header = "Content-Type: application/json".parse::<tiny_http::Header>().unwrap();
            let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(500).with_header(header));
            return;
        }
        Reply::After(..) | Reply::Computed(_) => {
            unreachable!("After is unwrapped above, Computed by Scripts::next (not inside After)")
        }
    };
    let id = format!("resp_{n}");
    let events = [
        ("response.created", json!({"type": "response.created", "response": {"id": id}})),
        ("response.output_item.done", json!({"type": "response.output_item.done", "item": item})),
        (
            "response.completed",
            json!({"type": "response.completed", "response": {"id": id, "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}}}),
        ),
    ];
    let sse: String = events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
    let header = "Content-Type: text/event-stream".parse::<tiny_http::Header>().unwrap();
    let _ = request.respond(tiny_http::Response::from_string(sse).with_header(header));
}

/// A reply as the Anthropic Messages API streams it (`message_start`, one
/// content block, `message_delta` with the stop reason, `message_stop`).
fn anthropic_stream(n: usize, model: &str, reply: Reply) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let (block, delta, stop) = match reply {
        Reply::Message(text) => {
            (json!({"type": "text", "text": ""}), json!({"type": "text_delta", "text": text}), "end_turn")
        }
        Reply::Tool { namespace, name, args } => (
            json!({"type": "tool_use", "id": format!("toolu_{n}"), "name": format!("{namespace}__{name}"), "input": {}}),
            json!({"type": "input_json_delta", "partial_json": args.to_string()}),
            "tool_use",
        ),
        other => panic!("the mock speaks only messages and tool calls to Claude Code, not {other:?}"),
    };
    let message = json!({"id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}});
    let events = [
        ("message_start", json!({"type": "message_start", "message": message})),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": block})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": delta})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let sse: String = events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
    let header = "Content-Type: text/event-stream".parse::<tiny_http::Header>().unwrap();
    tiny_http::Response::from_string(sse).with_header(header)
}

/// Claude Code, for the test of its registration: `CLAUDE_BIN`, which
/// `.ci/run` sets to the pinned release it installs. Missing, the test fails.
pub fn claude_bin() -> PathBuf {
    let path = std::env::var_os("CLAUDE_BIN").map(PathBuf::from).expect(
        "CLAUDE_BIN is not set: the Claude Code registration test needs Claude Code; run .ci/run, which installs it, or set CLAUDE_BIN",
    );
    assert!(path.is_file(), "CLAUDE_BIN={} is not a file", path.display());
    path
}

/// The Codex CLI the tests run: `CODEX_BIN`, which `.ci/run` sets to the
/// pinned release it installs. Missing, the tests fail; they never skip.
pub fn codex_bin() -> PathBuf {
    let path = std::env::var_os("CODEX_BIN").map(PathBuf::from).expect(
        "CODEX_BIN is not set: the end-to-end tests need the real Codex CLI; run .ci/run, which installs it, or set CODEX_BIN",
    );
    assert!(path.is_file(), "CODEX_BIN={} is not a file", path.display());
    path
}

/// The README, for the tests that follow it as written.
pub const README: &str = include_str!("../../README.md");

/// The body of the README's first fenced block tagged `tag` whose text
/// starts with `start` (e.g. `("toml", "[mcp_servers.codex_jobs]")`).
pub fn readme_block(tag: &str, start: &str) -> Result<&'static str> {
    let fence = format!("```{tag}\n{start}");
    let at = README.find(&fence).with_context(|| format!("the README has no block {fence:?}"))? + tag.len() + 4;
    let len = README[at..].find("```").context("the README's block is not closed")?;
    Ok(&README[at..at + len])
}

/// The next call of an outer agent that started a job (`job_id`) and waits
/// for it: after `job_start`, `job_wait`; after a `job_wait` whose result
/// (`last_result`, its text) timed out, `job_wait` again; after the last
/// `job_wait`, `job_status`; then nothing. `last_tool` is the job tool's own
/// name, whatever prefix a client gives it. Returns the tool and its arguments.
pub fn wait_then_status_step(last_tool: &str, last_result: &str, job_id: &str) -> Option<(&'static str, Value)> {
    let wait = ("job_wait", json!({"job_ids": [job_id], "timeout_s": 240}));
    match last_tool {
        "job_start" => Some(wait),
        "job_wait" if last_result.contains("\"timed_out\":true") => Some(wait),
        "job_wait" => Some(("job_status", json!({"job_id": job_id}))),
        _ => None,
    }
}

/// `PATH` with `dirs` first, then this process's own: commands the README
/// names (`codex-jobhost`, `claude`) are found as after an install.
pub fn path_with(dirs: &[&Path]) -> Result<std::ffi::OsString> {
    let own = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::join_paths(dirs.iter().map(|d| d.to_path_buf()).chain(std::env::split_paths(&own)))?)
}

/// The `codex-jobhost` binary under test: `CODEX_JOBHOST_BIN`, else the one
/// cargo built beside this test executable.
pub fn host_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CODEX_JOBHOST_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join("codex-jobhost");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build -p codex-jobhost) or set CODEX_JOBHOST_BIN",
        bin.display()
    );
    bin
}

/// One isolated world: a mock model, a `CODEX_HOME` pointing at it, a job
/// home and a work directory, all in a temporary directory.
pub struct World {
    /// The mock model.
    pub model: MockModel,
    root: tempfile::TempDir,
}

impl World {
    /// A world whose model answers with `script`.
    pub fn new(script: impl IntoIterator<Item = Reply>) -> Result<Self> {
        let model = MockModel::start(script)?;
        let root = tempfile::Builder::new().prefix("jobhost-e2e-").tempdir_in(std::env::temp_dir())?;
        let world = World { model, root };
        std::fs::create_dir_all(world.codex_home())?;
        std::fs::create_dir_all(world.work_dir())?;
        std::fs::write(
            world.codex_home().join("config.toml"),
            format!(
                "model = \"mock-model\"\nmodel_provider = \"mock\"\n\n[model_providers.mock]\nname = \"mock\"\nbase_url = \"{}\"\nwire_api = \"responses\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
                world.model.base_url()
            ),
        )?;
        Ok(world)
    }

    /// The world's folder, which holds the others (a `HOME` for clients).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `$CODEX_HOME` for Codex.
    pub fn codex_home(&self) -> PathBuf {
        self.root.path().join("codex-home")
    }

    /// Appends `toml` to Codex's `config.toml` (e.g. an `[mcp_servers.…]` block).
    pub fn add_codex_config(&self, toml: &str) -> Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().append(true).open(self.codex_home().join("config.toml"))?;
        write!(file, "\n{toml}\n")?;
        Ok(())
    }

    /// `$CODEX_JOBHOST_HOME`.
    pub fn jobhost_home(&self) -> PathBuf {
        self.root.path().join("jobhost-home")
    }

    /// The names of the home's queue entries, waiting (`queue/`) and admitted (`admitted/`).
    pub fn queue_entries(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for folder in ["queue", "admitted"] {
            for entry in std::fs::read_dir(self.jobhost_home().join(folder))? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    /// The agent's working directory.
    pub fn work_dir(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// Starts `codex-jobhost serve` and connects rmcp's client to it.
    pub async fn serve(&self) -> Result<Server> {
        self.serve_with(()).await
    }

    /// As [`World::serve`], with a client handler of the test's (e.g. one that counts progress notifications).
    pub async fn serve_with<H: rmcp::ClientHandler>(&self, handler: H) -> Result<Server<H>> {
        self.serve_env(handler, &[]).await
    }

    /// As [`World::serve_with`], with more environment for the server (and
    /// the supervisors it starts), e.g. `FAILPOINTS`; it overrides the
    /// defaults (e.g. `RUST_LOG`).
    pub async fn serve_env<H: rmcp::ClientHandler>(&self, handler: H, env: &[(&str, &str)]) -> Result<Server<H>> {
        let cmd = self.serve_command().configure(|c| {
            c.envs(env.iter().copied());
        });
        let transport = TokioChildProcess::new(cmd)?;
        let pid = transport.id().context("server pid")?;
        let client = handler.serve(transport).await?;
        Ok(Server { client, pid })
    }

    /// The command that runs `codex-jobhost serve` on this world's homes,
    /// the real Codex CLI and the mock model (`RUST_LOG=codex_jobhost=debug`).
    pub fn serve_command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(host_bin());
        cmd.arg("serve")
            .env("CODEX_HOME", self.codex_home())
            .env("CODEX_JOBHOST_HOME", self.jobhost_home())
            .env("CODEX_BIN", codex_bin())
            .env("RUST_LOG", "codex_jobhost=debug");
        cmd
    }

    /// `job_start` arguments for `prompt` in the work directory, on the
    /// backend `CODEX_JOBHOST_E2E_BACKEND` names (`exec`, `app-server`;
    /// unset: the default, `auto`), so one test runs against each.
    pub fn start_args(&self, prompt: &str) -> Value {
        let mut args = json!({"prompt": prompt, "cwd": self.work_dir(), "skip_git_repo_check": true});
        if let Ok(backend) = std::env::var("CODEX_JOBHOST_E2E_BACKEND") {
            args["backend"] = json!(backend);
        }
        args
    }
}

/// A running server and the client connected to it.
pub struct Server<H: rmcp::ClientHandler = ()> {
    /// rmcp's client.
    pub client: RunningService<RoleClient, H>,
    /// The server's pid.
    pub pid: u32,
}

/// What a tool call returned: its structured result, or the text of a tool error.
pub type ToolOutcome = std::result::Result<Value, String>;

impl<H: rmcp::ClientHandler> Server<H> {
    /// `job_wait` until the job needs its caller; returns its `job_status`.
    pub async fn wait_input_required(&self, job: &str) -> Result<Value> {
        let waited = self.ok("job_wait", json!({"job_ids": [job], "timeout_s": 120})).await?;
        assert_eq!(waited["input_required"][0]["job_id"], job, "{waited}");
        self.ok("job_status", json!({"job_id": job})).await
    }

    /// `job_wait` until the job's turn has ended, past any `input_required`; returns its `job_status`.
    pub async fn wait_finished(&self, job: &str) -> Result<Value> {
        loop {
            let waited = self.ok("job_wait", json!({"job_ids": [job], "timeout_s": 120})).await?;
            if waited["finished"].as_array().is_some_and(|f| !f.is_empty()) {
                return self.ok("job_status", json!({"job_id": job})).await;
            }
            assert_eq!(waited["timed_out"], false, "{waited}");
        }
    }

    /// Calls `tool` with `args`: `Ok(structuredContent)` or `Err(text)` when
    /// the result has `isError: true`. Protocol errors are `Result` errors.
    pub async fn call(&self, tool: &str, args: Value) -> Result<ToolOutcome> {
        let Value::Object(args) = args else { bail!("arguments must be an object") };
        let result = self.client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)).await?;
        if result.is_error == Some(true) {
            let text = result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join("\n");
            return Ok(Err(text));
        }
        result.structured_content.context("no structured content").map(Ok)
    }

    /// Calls `tool` and expects success.
    pub async fn ok(&self, tool: &str, args: Value) -> Result<Value> {
        match self.call(tool, args.clone()).await? {
            Ok(v) => Ok(v),
            Err(e) => bail!("{tool} {args} failed: {e}"),
        }
    }

    /// Calls `tool` and expects a tool error; returns its text.
    pub async fn err(&self, tool: &str, args: Value) -> Result<String> {
        match self.call(tool, args.clone()).await? {
            Ok(v) => bail!("{tool} {args} succeeded but should have failed: {v}"),
            Err(e) => Ok(e),
        }
    }

    /// `job_start` with `args`; returns the new job's id.
    pub async fn start_job(&self, args: Value) -> Result<String> {
        let started = self.ok("job_start", args).await?;
        started["job_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("job_start returned no job_id: {started}"))
    }

    /// `job_wait` on one job until it finishes (at most `timeout_s`); returns its `job_status`.
    pub async fn wait_done(&self, job_id: &str, timeout_s: u64) -> Result<Value> {
        let waited = self.ok("job_wait", json!({"job_ids": [job_id], "timeout_s": timeout_s})).await?;
        if waited["timed_out"] == true {
            bail!("job {job_id} did not finish in {timeout_s} s: {waited}");
        }
        self.ok("job_status", json!({"job_id": job_id})).await
    }

    /// All events of a job, page after page (each page within the result's size cap).
    pub async fn all_events(&self, job_id: &str) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        let mut cursor = 0;
        loop {
            let args = json!({"job_id": job_id, "limit": 1000, "truncate": 0, "cursor": cursor});
            let page = self.ok("job_events", args).await?;
            events.extend(page["events"].as_array().cloned().unwrap_or_default());
            if page["has_more"] != true {
                return Ok(events);
            }
            cursor = page["next_cursor"].as_u64().context("no next_cursor")?;
        }
    }

    /// Waits until the server has gone (its end of the connection closed),
    /// e.g. after a fail point stopped it.
    pub async fn exited(self) -> Result<()> {
        self.client.waiting().await?;
        Ok(())
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(self) -> Result<()> {
        let pid = rustix_pid(self.pid)?;
        rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
        Ok(())
    }
}

fn rustix_pid(pid: u32) -> Result<rustix::process::Pid> {
    rustix::process::Pid::from_raw(pid as i32).context("bad pid")
}

/// The `approval.decided` events' payloads, in order.
pub fn decided(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["type"] == "approval.decided").map(|e| &e["data"]).collect()
}

/// A built policy component: `$GUEST_POLICIES_DIR/<name>.wasm`, by default
/// `guest-policies/target/wasm32-wasip2/release` (built by `scripts/test.sh`).
pub fn guest_wasm(name: &str) -> PathBuf {
    let dir = std::env::var_os("GUEST_POLICIES_DIR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-policies/target/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the guests (cargo build --release --target wasm32-wasip2 --manifest-path guest-policies/Cargo.toml)",
        path.display()
    );
    path
}

impl World {
    /// Writes the project policy file `<work dir>/.codex/jobhost.toml`.
    /// Copies the built guest `name` into the project's `.codex/` (a project
    /// policy may only name files inside the project); returns the path to
    /// write in `jobhost.toml`.
    pub fn project_guest(&self, name: &str) -> Result<String> {
        let dir = self.work_dir().join(".codex");
        std::fs::create_dir_all(&dir)?;
        let file = format!("{name}.wasm");
        std::fs::copy(guest_wasm(name), dir.join(&file))?;
        Ok(file)
    }

    pub fn project_policy(&self, toml: &str) -> Result<()> {
        let dir = self.work_dir().join(".codex");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("jobhost.toml"), toml)?;
        Ok(())
    }
}
