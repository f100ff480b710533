//! The JSON-RPC 2.0 connection to `codex app-server`: messages one JSON
//! object a line on its stdin, and the one table of the protocol's method
//! names this client uses (as `codex app-server generate-json-schema`
//! prints them, checked against Codex 0.169.0).

use anyhow::Result;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

/// Method names of the app-server protocol.
pub mod method {
    /// Client request: the handshake.
    pub const INITIALIZE: &str = "initialize";
    /// Client notification: the handshake is done.
    pub const INITIALIZED: &str = "initialized";
    /// Client request: a new thread (a job's first turn).
    pub const THREAD_START: &str = "thread/start";
    /// Client request: continue a thread by id (a reply).
    pub const THREAD_RESUME: &str = "thread/resume";
    /// Client request: a turn with the prompt.
    pub const TURN_START: &str = "turn/start";
    /// Client request: end the running turn (`job_cancel`).
    pub const TURN_INTERRUPT: &str = "turn/interrupt";

    /// Notification: the turn began.
    pub const TURN_STARTED: &str = "turn/started";
    /// Notification: the turn ended (`turn.status`: completed, failed, interrupted).
    pub const TURN_COMPLETED: &str = "turn/completed";
    /// Notification: an item began.
    pub const ITEM_STARTED: &str = "item/started";
    /// Notification: an item is complete.
    pub const ITEM_COMPLETED: &str = "item/completed";
    /// Notification: token usage of the thread (`tokenUsage.last`: of the last request).
    pub const TOKEN_USAGE_UPDATED: &str = "thread/tokenUsage/updated";
    /// Notification: an error (`error.message`).
    pub const ERROR: &str = "error";

    /// Server request: may this command run?
    pub const COMMAND_APPROVAL: &str = "item/commandExecution/requestApproval";
    /// Server request: may this file change be applied?
    pub const FILE_CHANGE_APPROVAL: &str = "item/fileChange/requestApproval";
    /// Server request: may the turn have more permissions?
    pub const PERMISSIONS_APPROVAL: &str = "item/permissions/requestApproval";
    /// Server request (the older protocol): may this command run?
    pub const EXEC_COMMAND_APPROVAL: &str = "execCommandApproval";
    /// Server request (the older protocol): may this patch be applied?
    pub const APPLY_PATCH_APPROVAL: &str = "applyPatchApproval";
    /// Server request: the agent's `request_user_input` tool asks a person.
    pub const REQUEST_USER_INPUT: &str = "item/tool/requestUserInput";
    /// Server request: an MCP server's elicitation asks a person.
    pub const ELICITATION: &str = "mcpServer/elicitation/request";
}

/// Writes JSON-RPC messages to the app-server's stdin.
pub struct Rpc {
    stdin: Option<ChildStdin>,
    next_id: u64,
}

impl Rpc {
    /// A connection writing to `stdin`; request ids count from 0.
    pub fn new(stdin: ChildStdin) -> Self {
        Rpc { stdin: Some(stdin), next_id: 0 }
    }

    async fn send(&mut self, message: Value) -> Result<()> {
        let Some(stdin) = self.stdin.as_mut() else { return Ok(()) };
        let mut line = serde_json::to_vec(&message)?;
        line.push(b'\n');
        // A closed pipe means the app-server is gone; its exit ends the turn.
        if stdin.write_all(&line).await.is_err() {
            self.stdin = None;
        }
        Ok(())
    }

    /// Sends a request; returns its id.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await?;
        Ok(id)
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str) -> Result<()> {
        self.send(json!({"jsonrpc": "2.0", "method": method})).await
    }

    /// Answers the server's request `id` with `result`.
    pub async fn respond(&mut self, id: Value, result: Value) -> Result<()> {
        self.send(json!({"jsonrpc": "2.0", "id": id, "result": result})).await
    }

    /// Answers the server's request `id` with a JSON-RPC error.
    pub async fn respond_error(&mut self, id: Value, code: i64, message: &str) -> Result<()> {
        self.send(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})).await
    }

    /// Closes stdin, which ends the app-server; later sends are dropped.
    pub fn close(&mut self) {
        self.stdin = None;
    }
}
