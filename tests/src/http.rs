//! `codex-jobhost serve --http` for tests: the server on a free loopback
//! port, its tokens, and a plain HTTP client (ureq) to speak to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::{World, codex_bin, host_bin};

/// `codex-jobhost` with `args` on `world`'s homes, the real Codex CLI and the mock model.
pub fn jobhost(world: &World, args: &[&str]) -> Command {
    let mut cmd = Command::new(host_bin());
    cmd.args(args)
        .env("CODEX_HOME", world.codex_home())
        .env("CODEX_JOBHOST_HOME", world.jobhost_home())
        .env("CODEX_BIN", codex_bin())
        .env("RUST_LOG", "codex_jobhost=debug");
    cmd
}

/// `http token add NAME [--read]`: the token it printed.
pub fn add_token(world: &World, name: &str, read: bool) -> Result<String> {
    let mut args = vec!["http", "token", "add", name];
    if read {
        args.push("--read");
    }
    let out = jobhost(world, &args).output()?;
    ensure!(out.status.success(), "token add: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A running `serve --http 127.0.0.1:0` and its URL.
pub struct HttpServer {
    child: Child,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
}

impl HttpServer {
    /// Starts `serve --http 127.0.0.1:0` with `extra` arguments; returns once it printed its URL.
    pub fn start(world: &World, extra: &[&str]) -> Result<Self> {
        let mut args = vec!["serve", "--http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = jobhost(world, &args).stdin(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let url = loop {
            let line = lines.next().context("the server exited before it served")??;
            if let Some(url) = line.split("serving MCP at ").nth(1) {
                break url.split_whitespace().next().unwrap_or_default().to_owned();
            }
        };
        // Keep draining its log, so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(HttpServer { child, url })
    }

    /// POSTs `body` with `headers` and, when given, `Authorization: Bearer token`:
    /// the status, the headers and the body (an SSE stream's JSON-RPC response, else the text).
    pub fn post(&self, token: Option<&str>, headers: &[(&str, &str)], body: &str) -> Result<Answer> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut request = agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body)?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (session, authenticate) = (header("mcp-session-id"), header("www-authenticate"));
        let text = response.body_mut().read_to_string()?;
        let json = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .chain(std::iter::once(text.as_str()))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id").is_some());
        Ok(Answer { status, session, authenticate, text, json })
    }

    /// Sends `head` (request line and headers, each ending in CRLF, the blank
    /// line not included) and `body` on a new raw socket: the socket and the
    /// response's status line.
    pub fn raw(&self, head: &str, body: &str) -> Result<(std::net::TcpStream, String)> {
        use std::io::Write;
        let addr = self.url.trim_start_matches("http://").trim_end_matches("/mcp");
        let mut socket = std::net::TcpStream::connect(addr)?;
        socket.write_all(format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\n{head}\r\n{body}").as_bytes())?;
        let mut status_line = String::new();
        BufReader::new(&socket).read_line(&mut status_line)?;
        Ok((socket, status_line))
    }

    /// Opens a session of the older era (`initialize`, 2025-06-18, then
    /// `notifications/initialized`): its `Mcp-Session-Id`.
    pub fn open_session(&self, token: &str) -> Result<String> {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
        let opened = self.post(Some(token), &[], &init.to_string())?;
        ensure!(opened.status == 200, "initialize: {opened:?}");
        let session = opened.session.context("no Mcp-Session-Id")?;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        self.post(Some(token), &Self::in_session(&session), &initialized)?;
        Ok(session)
    }

    /// The headers of a request in `session`.
    pub fn in_session(session: &str) -> [(&'static str, &str); 2] {
        [("Mcp-Session-Id", session), ("MCP-Protocol-Version", "2025-06-18")]
    }

    /// A 2026-07-28 request: `method` with `params` and their `_meta`, the
    /// headers SEP-2243 asks for, and the tasks extension declared when `tasks`.
    pub fn modern(&self, token: Option<&str>, method: &str, mut params: Value, tasks: bool) -> Result<Answer> {
        let mut caps = json!({});
        if tasks {
            caps["extensions"] = json!({"io.modelcontextprotocol/tasks": {}});
        }
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": caps,
        });
        let name = params.get("name").or(params.get("taskId")).and_then(Value::as_str).map(str::to_owned);
        let mut headers = vec![("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", method)];
        if let Some(name) = &name {
            headers.push(("Mcp-Name", name));
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        self.post(token, &headers, &body)
    }

    /// `tools/call` of `tool` in the 2026-07-28 era: its `result`.
    pub fn call(&self, token: &str, tool: &str, args: Value) -> Result<Value> {
        let answer = self.modern(Some(token), "tools/call", json!({"name": tool, "arguments": args}), false)?;
        answer.json.as_ref().and_then(|j| j.get("result")).cloned().with_context(|| format!("{tool}: {answer:?}"))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server answered a POST.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Mcp-Session-Id`.
    pub session: Option<String>,
    /// `WWW-Authenticate`.
    pub authenticate: Option<String>,
    /// The body.
    pub text: String,
    /// The JSON-RPC response in it.
    pub json: Option<Value>,
}
