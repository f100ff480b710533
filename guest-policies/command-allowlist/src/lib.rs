//! Approval policy: accept commands that start with an allowed prefix, decline
//! commands that contain a dangerous pattern, ask about everything else; refuse
//! `full-auto` launches unless allowed, and options the host cannot judge
//! unless listed; accept or decline MCP tool calls by server and tool, and ask
//! about the rest. See README.md for the settings.

use codex_jobhost_policy::{ApprovalPolicy, Decision, Job, Request, export_approval_policy};
use serde::Deserialize;

/// Settings (`config` in `jobhost.toml`).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Command prefixes accepted without asking, e.g. `["ls", "cat ", "cargo test"]`.
    pub allow: Vec<String>,
    /// Substrings that make a command declined, e.g. `["rm -rf /", "git push --force"]`.
    pub deny: Vec<String>,
    /// Whether `full-auto` launches (no sandbox) are allowed.
    pub allow_full_auto: bool,
    /// Substrings of paths whose change is declined, e.g. `[".env", ".git/"]`.
    pub deny_paths: Vec<String>,
    /// Options the host cannot judge that a launch may carry, exactly as the
    /// launch request's `unjudged` lists them, e.g. `["profile \"fast\""]`;
    /// any other is declined. Asked only with `judges_options = true`.
    pub allow_options: Vec<String>,
    /// MCP tools called without asking, as `server/tool` or `server/*`.
    pub allow_tools: Vec<String>,
    /// MCP tools whose calls are declined, as `server/tool` or `server/*`.
    pub deny_tools: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow: Vec::new(),
            deny: ["rm -rf /", "rm -rf ~", "git push --force", "git push -f", "mkfs", ":(){ :|:& };:"]
                .map(String::from)
                .to_vec(),
            allow_full_auto: false,
            deny_paths: Vec::new(),
            allow_options: Vec::new(),
            allow_tools: Vec::new(),
            deny_tools: Vec::new(),
        }
    }
}

/// The policy.
pub struct CommandAllowlist;

impl ApprovalPolicy for CommandAllowlist {
    type Settings = Settings;

    fn decide(settings: &Settings, _job: &Job, request: &Request) -> Decision {
        match request {
            Request::Launch(l) | Request::Reply { settings: l, .. }
                if l.approval_mode == "full-auto" && !settings.allow_full_auto =>
            {
                Decision::Decline("full-auto launches (no sandbox, no approvals) are not allowed here".into())
            }
            Request::Launch(l) | Request::Reply { settings: l, .. } => {
                match l.unjudged.iter().find(|o| !settings.allow_options.contains(o)) {
                    Some(option) => Decision::Decline(format!("{option} is not in allow_options")),
                    None => Decision::Accept,
                }
            }
            Request::Command { command, .. } => {
                let normalized = command.split_whitespace().collect::<Vec<_>>().join(" ");
                if let Some(bad) = settings.deny.iter().find(|d| normalized.contains(d.as_str())) {
                    Decision::Decline(format!("`{command}` matches the denied pattern `{bad}`"))
                } else if settings.allow.iter().any(|a| normalized.starts_with(a.as_str())) {
                    Decision::Accept
                } else {
                    Decision::Ask
                }
            }
            Request::FileChange { paths, .. } => {
                let denied = paths
                    .iter()
                    .find_map(|p| settings.deny_paths.iter().find(|d| p.contains(d.as_str())).map(|d| (p, d)));
                match denied {
                    Some((path, pattern)) => Decision::Decline(format!("changing {path} is not allowed (`{pattern}`)")),
                    None => Decision::Ask,
                }
            }
            Request::Permissions { .. } => Decision::Ask,
            Request::ToolCall { server, tool, .. } => {
                let named = |pattern: &&String| match pattern.split_once('/') {
                    Some((s, "*")) => s == server,
                    Some((s, t)) => s == server && t == tool,
                    None => false,
                };
                if let Some(bad) = settings.deny_tools.iter().find(named) {
                    Decision::Decline(format!("the MCP tool {server}/{tool} matches the denied `{bad}`"))
                } else if settings.allow_tools.iter().any(|p| named(&p)) {
                    Decision::Accept
                } else {
                    Decision::Ask
                }
            }
        }
    }
}

export_approval_policy!(CommandAllowlist);

#[cfg(test)]
mod tests {
    use super::*;

    fn command(c: &str) -> Request {
        Request::command(c, "/w")
    }

    fn launch(mode: &str) -> Request {
        Request::Launch(codex_jobhost_policy::Launch { approval_mode: mode.into(), ..Default::default() })
    }

    #[test]
    fn allowed_prefixes_pass_and_dangerous_patterns_are_declined() {
        let s = Settings { allow: vec!["ls".into(), "cargo test".into()], ..Settings::default() };
        let job = Job::default();
        assert_eq!(CommandAllowlist::decide(&s, &job, &command("ls -la")), Decision::Accept);
        assert_eq!(CommandAllowlist::decide(&s, &job, &command("cargo  test --all")), Decision::Accept);
        assert_eq!(CommandAllowlist::decide(&s, &job, &command("make")), Decision::Ask);
        assert!(
            matches!(CommandAllowlist::decide(&s, &job, &command("ls; rm -rf /")), Decision::Decline(r) if r.contains("rm -rf /"))
        );
        assert!(matches!(
            CommandAllowlist::decide(&s, &job, &command("git push  --force origin")),
            Decision::Decline(_)
        ));
    }

    #[test]
    fn changes_to_denied_paths_are_declined() {
        let s = Settings { deny_paths: vec![".env".into()], ..Settings::default() };
        let change = |p: &str| Request::FileChange {
            paths: vec!["/w/src/main.rs".into(), p.into()],
            kind: codex_jobhost_policy::ChangeKind::Update,
            reason: None,
            origin: None,
        };
        assert!(
            matches!(CommandAllowlist::decide(&s, &Job::default(), &change("/w/.env")), Decision::Decline(r) if r.contains("/w/.env"))
        );
        assert_eq!(CommandAllowlist::decide(&s, &Job::default(), &change("/w/README.md")), Decision::Ask);
    }

    #[test]
    fn mcp_tools_are_judged_by_server_and_name() {
        let s = Settings {
            allow_tools: vec!["docs/search".into()],
            deny_tools: vec!["shell/*".into()],
            ..Settings::default()
        };
        let call = |server: &str, tool: &str| Request::ToolCall {
            server: server.into(),
            tool: tool.into(),
            arguments: "{}".into(),
            origin: None,
        };
        let job = Job::default();
        assert_eq!(CommandAllowlist::decide(&s, &job, &call("docs", "search")), Decision::Accept);
        assert_eq!(CommandAllowlist::decide(&s, &job, &call("docs", "delete")), Decision::Ask);
        assert!(
            matches!(CommandAllowlist::decide(&s, &job, &call("shell", "run")), Decision::Decline(r) if r.contains("shell/run"))
        );
    }

    #[test]
    fn full_auto_needs_permission() {
        let job = Job::default();
        assert!(matches!(
            CommandAllowlist::decide(&Settings::default(), &job, &launch("full-auto")),
            Decision::Decline(_)
        ));
        assert_eq!(CommandAllowlist::decide(&Settings::default(), &job, &launch("suggest")), Decision::Accept);
        let s = Settings { allow_full_auto: true, ..Settings::default() };
        assert_eq!(CommandAllowlist::decide(&s, &job, &launch("full-auto")), Decision::Accept);
    }

    #[test]
    fn options_the_host_cannot_judge_pass_only_when_listed() {
        let s = Settings { allow_options: vec!["profile \"fast\"".into()], ..Settings::default() };
        let with = |unjudged: &[&str]| {
            let settings = codex_jobhost_policy::Launch {
                approval_mode: "suggest".into(),
                unjudged: unjudged.iter().map(|o| o.to_string()).collect(),
                ..Default::default()
            };
            Request::Reply { prompt: "go on".into(), turn: 1, settings }
        };
        assert_eq!(CommandAllowlist::decide(&s, &Job::default(), &with(&["profile \"fast\""])), Decision::Accept);
        assert!(matches!(
            CommandAllowlist::decide(&s, &Job::default(), &with(&["profile \"fast\"", "extra_args \"--add-dir\""])),
            Decision::Decline(r) if r.contains("--add-dir")
        ));
    }
}
