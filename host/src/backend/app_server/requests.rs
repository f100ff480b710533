//! The requests `codex app-server` sends its client, parsed once into
//! [`AgentRequest`]: an approval carries what the approval policies see (a
//! WIT `request`) and the shape its answer must take, so a decision is
//! answered in a form the request honours and never looser. Shapes as Codex
//! 0.169.0's `codex app-server generate-json-schema` gives them.

use serde_json::{Value, json};

use super::rpc::method;
use crate::job::approval::ApprovalDecision;
use crate::policy::{ChangeKind, Origin, Request};

/// A request from the app-server, by what it needs.
pub enum AgentRequest {
    /// An approval: judged by the policies, answered with [`Approval::answer`].
    Approval(Box<Approval>),
    /// A question for a person (the agent's `request_user_input` tool, an
    /// MCP server's elicitation): nobody can be reached through the turn's
    /// JSON-RPC; answered with this "no answer" result.
    Question(Value),
    /// A method this client does not handle: answered with a JSON-RPC error.
    Unknown,
}

/// An approval request of the agent's.
pub struct Approval {
    /// `command`, `file_change` or `permissions`.
    pub kind: &'static str,
    /// What the approval policies see.
    pub request: Request,
    /// Codex's id of the action asked about (`itemId`: a hook's `tool_use_id`).
    pub call_id: Option<String>,
    shape: AnswerShape,
}

/// How an approval's answer is given.
enum AnswerShape {
    /// `item/permissions/requestApproval`: the permissions asked for
    /// (granted for the turn or the session), or none.
    Permissions(Value),
    /// The older protocol (`execCommandApproval`, `applyPatchApproval`):
    /// `approved`, `approved_for_session`, `denied` or `abort`.
    Legacy,
    /// The current approvals: `accept`, `acceptForSession` (where the
    /// request offers it, else `accept`), `decline` or `cancel`.
    Decision { offers_session: bool },
}

impl AgentRequest {
    /// Parses the request `name` with `params`. `cwd` is the job's (for a
    /// command that names none); `file_changes(item)` gives the changes of
    /// a file-change item seen in the turn's notifications (a file-change
    /// request names only its item).
    pub fn parse<'a>(name: &str, params: &Value, cwd: &str, file_changes: impl Fn(&str) -> Option<&'a Value>) -> Self {
        let text = |p: &str| params.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let origin = match (text("/threadId"), text("/turnId"), text("/itemId")) {
            (Some(thread_id), Some(turn_id), Some(item_id)) => Some(Origin { thread_id, turn_id, item_id }),
            _ => None,
        };
        let offered = |name: &str| {
            params["availableDecisions"].as_array().is_none_or(|a| a.iter().any(|d| d.as_str() == Some(name)))
        };
        let decision = AnswerShape::Decision { offers_session: offered("acceptForSession") };
        let (kind, request, shape) = match name {
            method::REQUEST_USER_INPUT => return AgentRequest::Question(json!({"answers": {}})),
            method::ELICITATION => return AgentRequest::Question(json!({"action": "decline"})),
            method::COMMAND_APPROVAL => {
                let raw = text("/command").unwrap_or_default();
                let command = unwrap_shell(&raw);
                let request = Request::Command {
                    argv: plain_argv(&command),
                    command,
                    raw,
                    cwd: text("/cwd").unwrap_or_else(|| cwd.to_owned()),
                    reason: text("/reason"),
                    network_host: text("/networkApprovalContext/host"),
                    origin,
                };
                ("command", request, decision)
            }
            method::EXEC_COMMAND_APPROVAL => {
                let words: Vec<String> = params["command"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let command = unwrap_argv(&words);
                let request = Request::Command {
                    argv: plain_argv(&command),
                    raw: shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" ")),
                    command,
                    cwd: text("/cwd").unwrap_or_else(|| cwd.to_owned()),
                    reason: text("/reason"),
                    network_host: None,
                    origin: None,
                };
                ("command", request, AnswerShape::Legacy)
            }
            method::FILE_CHANGE_APPROVAL => {
                let changes = params["itemId"]
                    .as_str()
                    .and_then(file_changes)
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            .map(|c| {
                                let path = c["path"].as_str().unwrap_or_default().to_owned();
                                (path, c.pointer("/kind/type").and_then(Value::as_str).unwrap_or("update").to_owned())
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                ("file_change", file_change(changes, text("/reason"), origin), decision)
            }
            method::APPLY_PATCH_APPROVAL => {
                let changes = params["fileChanges"]
                    .as_object()
                    .map(|files| {
                        files
                            .iter()
                            .map(|(path, c)| (path.clone(), c["type"].as_str().unwrap_or("update").to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                ("file_change", file_change(changes, text("/reason"), None), AnswerShape::Legacy)
            }
            method::PERMISSIONS_APPROVAL => {
                let permissions = params["permissions"]
                    .as_object()
                    .map(|p| p.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| format!("{k}: {v}")).collect())
                    .unwrap_or_default();
                let network = params.pointer("/permissions/network/enabled").and_then(Value::as_bool) == Some(true);
                let request = Request::Permissions { permissions, network, reason: text("/reason"), origin };
                ("permissions", request, AnswerShape::Permissions(params["permissions"].clone()))
            }
            _ => return AgentRequest::Unknown,
        };
        AgentRequest::Approval(Box::new(Approval { kind, request, call_id: text("/itemId"), shape }))
    }
}

impl Approval {
    /// The JSON-RPC result that gives `decision` to this request, in a form
    /// it honours and never looser: a permissions request is granted what it
    /// asked (for the turn, or the session) or nothing; a request that does
    /// not offer `acceptForSession` gets `accept`.
    pub fn answer(&self, decision: ApprovalDecision) -> Value {
        use ApprovalDecision::*;
        match &self.shape {
            AnswerShape::Permissions(asked) => match decision {
                Accept => json!({"permissions": asked, "scope": "turn"}),
                AcceptForSession => json!({"permissions": asked, "scope": "session"}),
                Decline | Cancel => json!({"permissions": {}}),
            },
            AnswerShape::Legacy => {
                let d = match decision {
                    Accept => "approved",
                    AcceptForSession => "approved_for_session",
                    Decline => "denied",
                    Cancel => "abort",
                };
                json!({"decision": d})
            }
            AnswerShape::Decision { offers_session } => {
                let d = match decision {
                    Accept => "accept",
                    AcceptForSession if *offers_session => "acceptForSession",
                    AcceptForSession => "accept",
                    Decline => "decline",
                    Cancel => "cancel",
                };
                json!({"decision": d})
            }
        }
    }
}

fn file_change(changes: Vec<(String, String)>, reason: Option<String>, origin: Option<Origin>) -> Request {
    // One kind for the whole change: the one that can lose the most.
    let kind = if changes.iter().any(|(_, k)| k == "delete") {
        ChangeKind::Delete
    } else if changes.iter().any(|(_, k)| k == "update") {
        ChangeKind::Update
    } else {
        ChangeKind::Add
    };
    Request::FileChange { paths: changes.into_iter().map(|(p, _)| p).collect(), kind, reason, origin }
}

/// The script a command runs: Codex wraps what the agent meant as
/// `/bin/bash -lc '<script>'`; a policy should see `<script>`. Anything
/// else is returned as it is.
pub fn unwrap_shell(command: &str) -> String {
    match shlex::split(command) {
        Some(argv) => unwrap_argv(&argv),
        None => command.to_owned(),
    }
}

/// `command` split into words, when it is a plain command: no pipes,
/// sequences, redirections, substitutions or groups anywhere in it (quoted
/// or not, to be safe); else empty, and a policy reads the script itself.
pub fn plain_argv(command: &str) -> Vec<String> {
    if command.contains(['|', '&', ';', '<', '>', '$', '`', '\n', '(', ')', '{', '}']) {
        return Vec::new();
    }
    shlex::split(command).unwrap_or_default()
}

fn unwrap_argv(argv: &[String]) -> String {
    if let [shell, flag, script] = argv {
        let name = shell.rsplit('/').next().unwrap_or(shell);
        if matches!(name, "bash" | "sh" | "zsh" | "dash") && matches!(flag.as_str(), "-c" | "-lc" | "-ic") {
            return script.clone();
        }
    }
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_sees_the_script_codex_wraps_in_a_shell() {
        assert_eq!(unwrap_shell("/bin/bash -lc 'touch made.txt'"), "touch made.txt");
        assert_eq!(
            unwrap_shell("bash -lc 'git push origin main && echo \"ok\"'"),
            "git push origin main && echo \"ok\""
        );
        assert_eq!(unwrap_shell("ls -la"), "ls -la");
        assert_eq!(unwrap_shell("python3 -c 'print(1)'"), "python3 -c 'print(1)'");
    }

    #[test]
    fn a_plain_command_has_its_words_and_a_script_has_none() {
        assert_eq!(plain_argv("git push --force 'origin' main"), ["git", "push", "--force", "origin", "main"]);
        assert!(plain_argv("ls | sh").is_empty());
        assert!(plain_argv("echo $(cat .env)").is_empty());
        assert!(plain_argv("touch a && git push").is_empty());
    }

    /// The answer `name` with `params` gets for `decision`.
    fn response(name: &str, params: &Value, decision: ApprovalDecision) -> Value {
        match AgentRequest::parse(name, params, "/w", |_| None) {
            AgentRequest::Approval(approval) => approval.answer(decision),
            _ => panic!("{name} is not an approval"),
        }
    }

    #[test]
    fn every_decision_maps_to_an_answer_the_request_honours() {
        let escalation = json!({"availableDecisions": ["accept", {"acceptWithExecpolicyAmendment": {}}, "cancel"]});
        let m = "item/commandExecution/requestApproval";
        assert_eq!(response(m, &escalation, ApprovalDecision::AcceptForSession), json!({"decision": "accept"}));
        assert_eq!(
            response(m, &json!({}), ApprovalDecision::AcceptForSession),
            json!({"decision": "acceptForSession"})
        );
        assert_eq!(response(m, &escalation, ApprovalDecision::Decline), json!({"decision": "decline"}));
        let p = json!({"permissions": {"network": {"enabled": true}}});
        let perm = "item/permissions/requestApproval";
        assert_eq!(response(perm, &p, ApprovalDecision::Accept)["permissions"], p["permissions"]);
        assert_eq!(response(perm, &p, ApprovalDecision::Cancel), json!({"permissions": {}}));
        assert_eq!(response("execCommandApproval", &json!({}), ApprovalDecision::Cancel), json!({"decision": "abort"}));
    }

    #[test]
    fn questions_and_unknown_methods_are_not_approvals() {
        assert!(matches!(
            AgentRequest::parse(method::REQUEST_USER_INPUT, &json!({}), "/w", |_| None),
            AgentRequest::Question(v) if v == json!({"answers": {}})
        ));
        assert!(matches!(AgentRequest::parse("account/login", &json!({}), "/w", |_| None), AgentRequest::Unknown));
    }
}
