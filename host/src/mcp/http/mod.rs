//! MCP over streamable HTTP (`codex-jobhost serve --http ADDR`): rmcp's
//! `StreamableHttpService` at `/mcp` under axum, both protocol eras (sessions
//! for clients that `initialize`, stateless requests for MCP 2026-07-28).
//!
//! Every request passes, in this order:
//! 1. the bearer token ([`tokens`]): none or an unknown one is 401 with
//!    `WWW-Authenticate: Bearer`; a read token's request whose JSON-RPC
//!    messages would change anything is 403 (its body is read, checked and
//!    passed on as checked, so what runs is what was judged);
//! 2. rmcp's own checks: `Host` among the names the server answers to (DNS
//!    rebinding), `Origin` on the allowed list when present (403), the body at
//!    most [`MAX_BODY_BYTES`] (413).
//!
//! Beside `/mcp`, the page for people at `/` ([`page`]) has checks of its
//! own, with the same tokens.

mod page;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tokens::{Access, Caller, Tokens};

use super::JobServer;
use crate::JobHost;

/// Largest request body, in bytes: a prompt may take 1 MiB, its JSON escapes more.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The tools a read token may call.
const READ_TOOLS: [&str; 5] = ["job_status", "job_events", "job_list", "job_wait", "job_notifications"];

/// The JSON-RPC methods a read token may send besides `tools/call` of a read tool.
const READ_METHODS: [&str; 6] =
    ["initialize", "ping", "server/discover", "tools/list", "tasks/get", "subscriptions/listen"];

/// How `serve --http` serves.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// The address to listen on (port 0: any free one; the one taken is printed).
    pub addr: SocketAddr,
    /// Accept requests without a token (loopback addresses only).
    pub no_auth: bool,
    /// Browser origins allowed besides the server's own (`http://localhost:PORT`).
    pub allowed_origins: Vec<String>,
    /// Host names (or `host:port`) the server answers to besides the loopback ones.
    pub allowed_hosts: Vec<String>,
}

/// Serves MCP on `options.addr` until the process is stopped (SIGINT, SIGTERM).
///
/// Errors: `--no-auth` on an address that is not loopback; no token in the
/// home's token file (without `--no-auth`); the address cannot be bound.
pub async fn serve_http(host: Arc<JobHost>, options: HttpOptions) -> Result<()> {
    let tokens = Tokens::of(&host.config().home);
    if options.no_auth {
        if !options.addr.ip().is_loopback() {
            bail!(
                "--no-auth is allowed on a loopback address only (127.0.0.1, ::1), not {}: add a token with \
                 `codex-jobhost http token add NAME` and serve without --no-auth",
                options.addr
            );
        }
        eprintln!("codex-jobhost: WARNING: --no-auth: anyone who can reach {} may start jobs", options.addr);
    } else if tokens.list()?.is_empty() {
        bail!(
            "no HTTP tokens in {}: add one with `codex-jobhost http token add NAME` (or serve a loopback \
             address with --no-auth)",
            host.config().home.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("cannot listen on {}", options.addr))?;
    let bound = listener.local_addr()?;
    super::start_background_work(&host);

    let port = bound.port();
    let mut origins = vec![format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}")];
    origins.extend(options.allowed_origins.iter().cloned());
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    hosts.extend(options.allowed_hosts.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    let server_host = Arc::clone(&host);
    let mcp = StreamableHttpService::new(
        move || Ok(JobServer::new(Arc::clone(&server_host))),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let gate = Arc::new(Gate { tokens, no_auth: options.no_auth });
    let page = page::Page { host: Arc::clone(&host), gate: Arc::clone(&gate), hosts, origins: options.allowed_origins };
    let app = axum::Router::new()
        .route_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(gate, authorize))
        .merge(page::router(Arc::new(page)));
    eprintln!("codex-jobhost: serving MCP at http://{bound}/mcp and a page for people at http://{bound}/");
    axum::serve(listener, app).with_graceful_shutdown(stopped()).await?;
    Ok(())
}

async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Who may in.
pub(super) struct Gate {
    tokens: Tokens,
    no_auth: bool,
}

impl Gate {
    /// The caller `token` names: anyone (with full access) under `--no-auth`;
    /// `None` for no token or an unknown or revoked one.
    ///
    /// Errors: the token file cannot be read.
    fn caller(&self, token: Option<&str>) -> Result<Option<Caller>> {
        if self.no_auth {
            return Ok(Some(Caller { name: None, access: Access::Full }));
        }
        match token {
            Some(token) => self.tokens.verify(token),
            None => Ok(None),
        }
    }
}

/// The token in a request's `Authorization: Bearer …` header.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The token check (see the module's doc); the caller goes on in the
/// request's extensions, where the tools find it.
async fn authorize(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let token = bearer(request.headers());
    let caller = match gate.caller(token) {
        Ok(Some(caller)) => caller,
        Ok(None) if token.is_none() => {
            return unauthorized("this server needs Authorization: Bearer <token> (codex-jobhost http token add)");
        }
        Ok(None) => return unauthorized("unknown or revoked token"),
        Err(e) => {
            tracing::error!("cannot check a token: {e:#}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot check tokens").into_response();
        }
    };
    // A body announced too large is refused before a byte of it is read, so a
    // client that waits for `100 Continue` (curl does, past 1 MiB) gets the answer.
    let announced = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let (mut parts, body) = request.into_parts();
    let body = if caller.access == Access::Read && parts.method == axum::http::Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return too_large();
        };
        match read_only(&bytes) {
            Ok(checked) => Body::from(checked),
            Err(why) => return (StatusCode::FORBIDDEN, format!("a read token may not {why}")).into_response(),
        }
    } else {
        body
    };
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

fn too_large() -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, format!("a request body may take at most {MAX_BODY_BYTES} bytes")).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, message.to_owned()).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A read token's request body, re-serialized from what was checked, when
/// every JSON-RPC message in it only reads; otherwise what it would do.
/// Responses (to the server's own requests) pass: a read token's session
/// starts no job, so the server asks it nothing about one.
fn read_only(body: &[u8]) -> Result<Vec<u8>, String> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| format!("send a body that is not JSON ({e})"))?;
    let messages = match &parsed {
        Value::Array(batch) => batch.iter().collect(),
        message => vec![message],
    };
    for message in messages {
        let Some(method) = message.get("method") else { continue };
        let method = method.as_str().ok_or("send a method that is not a string")?;
        let allowed = match method {
            "tools/call" => {
                let tool = message.pointer("/params/name").and_then(Value::as_str).unwrap_or_default();
                if !READ_TOOLS.contains(&tool) {
                    return Err(format!("call {tool:?}: read tokens call only {}", READ_TOOLS.join(", ")));
                }
                true
            }
            m => READ_METHODS.contains(&m) || m.starts_with("notifications/"),
        };
        if !allowed {
            return Err(format!("send {method}"));
        }
    }
    serde_json::to_vec(&parsed).map_err(|e| e.to_string())
}

/// The caller of an MCP request that came over HTTP, from the request's
/// extensions; `None` over stdio.
pub fn caller_of(extensions: &rmcp::model::Extensions) -> Option<Caller> {
    extensions.get::<axum::http::request::Parts>()?.extensions.get::<Caller>().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_read_token_may_read_and_nothing_else_and_what_passes_is_what_was_checked() {
        let call = |tool: &str| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}});
        assert!(read_only(call("job_status").to_string().as_bytes()).is_ok());
        let refused = read_only(call("job_start").to_string().as_bytes()).unwrap_err();
        assert!(refused.contains("call \"job_start\""), "{refused}");
        for method in ["tasks/update", "tasks/cancel", "resources/subscribe"] {
            let message = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
            assert!(read_only(message.to_string().as_bytes()).is_err(), "{method}");
        }
        let batch = json!([call("job_list"), call("job_cancel")]);
        assert!(read_only(batch.to_string().as_bytes()).is_err());
        assert!(read_only(b"{not json").is_err());
        // A duplicate key: what is passed on is the value that was checked.
        let twice =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"job_start","name":"job_status"}}"#;
        let passed: Value = serde_json::from_slice(&read_only(twice).unwrap()).unwrap();
        assert_eq!(passed["params"]["name"], "job_status");
        assert_eq!(passed.to_string().matches("\"name\"").count(), 1);
    }
}
