//! The `codex-jobhost` command line: parse, call the library, print.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use codex_jobhost::host::{ApproveRequest, ListRequest};
use codex_jobhost::job::supervisor;
use codex_jobhost::job::{BackendKind, JobId, JobStatus};
use codex_jobhost::policy::JobContext;
use codex_jobhost::{HostConfig, InvalidInput, JobHost, mcp};

/// Run the OpenAI Codex CLI as durable background jobs, over MCP.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Job home: jobs/, notifications.jsonl [default: ~/.codex-jobhost]
    #[arg(long, global = true, env = "CODEX_JOBHOST_HOME")]
    home: Option<PathBuf>,
    /// Codex CLI to run [default: `codex` on PATH]
    #[arg(long, global = true, env = "CODEX_BIN")]
    codex_bin: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over stdio (register this command with your MCP client), or
    /// with --http over streamable HTTP at http://ADDR/mcp, for several clients.
    Serve {
        /// Serve MCP over HTTP on this address (e.g. 127.0.0.1:8765), not stdio;
        /// every request needs a token (`http token add`).
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Accept HTTP requests without a token: loopback addresses only.
        #[arg(long, requires = "http")]
        no_auth: bool,
        /// A browser origin allowed to call the server (e.g. https://app.example.com:443); repeatable.
        #[arg(long, value_name = "ORIGIN", requires = "http")]
        allow_origin: Vec<String>,
        /// A host name (or host:port) the server answers to besides localhost, 127.0.0.1 and ::1; repeatable.
        #[arg(long, value_name = "HOST", requires = "http")]
        allow_host: Vec<String>,
    },
    /// Manage what `serve --http` accepts.
    Http {
        #[command(subcommand)]
        command: HttpCommand,
    },
    /// Inspect and manage jobs from the shell.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Check the set-up: Codex found, its version and features, home writable.
    Doctor,
    /// Check, try and inspect policy components.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run one turn of a job (started by the server; not for direct use).
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        job: String,
    },
}

#[derive(Subcommand)]
enum HttpCommand {
    /// The bearer tokens of `serve --http`, kept as hashes in $CODEX_JOBHOST_HOME/http-tokens.toml.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Add a token and print it (the only time it is shown).
    Add {
        /// Its name (shown as started_by on the jobs it starts).
        name: String,
        /// Reading only: status, events, list, wait, notifications.
        #[arg(long)]
        read: bool,
    },
    /// List the tokens: name, access, when added.
    List,
    /// Remove a token; running servers refuse it from the next request on.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Which world and WIT version a component implements, or why it is refused.
    Check { file: PathBuf },
    /// Run one call of a component (FILE --request JSON), or a table of cases
    /// against a project's layered set (--cases FILE): exits 1 when a case fails.
    Test {
        /// The component, for one call with --request.
        file: Option<PathBuf>,
        /// The input, JSON: an approval request ({"command": {"command": "ls", "cwd": "/w"}}),
        /// {"text": "...", "limits": {...}} for a truncation, {"kind": "...", "payload": {...}} for a filter.
        #[arg(long, requires = "file", conflicts_with = "cases")]
        request: Option<String>,
        /// The component's settings, JSON (as the `config` table in jobhost.toml would give them).
        #[arg(long, default_value = "{}", requires = "file")]
        config: String,
        /// A TOML table of cases: requests, texts and events with what each should give.
        #[arg(long, conflicts_with = "file")]
        cases: Option<PathBuf>,
        /// With --cases: a directory in the project whose policies to test [default: the current directory].
        #[arg(long, requires = "cases")]
        cwd: Option<PathBuf>,
    },
    /// Decide one approval request, read as JSON from stdin, by a project's
    /// layered set: prints the decision, the deciding component and any failures.
    Eval {
        /// A directory in the project [default: the current directory].
        #[arg(long)]
        cwd: Option<PathBuf>,
    },
    /// The effective, layered policy set for a project.
    Show {
        /// A directory in the project [default: the current directory].
        #[arg(long)]
        cwd: Option<PathBuf>,
    },
    /// The approval decisions made in jobs, those of policies in shadow
    /// (`enforce = false`) among them: one line each, or JSON lines.
    Log {
        /// Only jobs in this directory's project [default: every job].
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Only decisions made in this past span, such as 7d, 12h or 30m [default: all].
        #[arg(long)]
        since: Option<String>,
        /// Print each decision as a JSON object, one a line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Jobs, newest first.
    List {
        /// Only jobs with this status (queued, running, input_required, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only jobs in this directory or below (absolute).
        #[arg(long)]
        cwd: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// A job's status and result, as JSON.
    Show { id: String },
    /// A job's transcript: the agent's messages, commands with their exit code
    /// and output, file changes, tool calls, approval decisions, each turn's end.
    Logs {
        id: String,
        /// Keep printing until the job's turn ends.
        #[arg(long, short)]
        follow: bool,
        /// Print the agent's raw output (output.log) instead.
        #[arg(long)]
        raw: bool,
    },
    /// Cancel a running job.
    Cancel { id: String },
    /// Answer an approval request a job waits on (see `pending_approvals` in `jobs show`).
    Approve {
        id: String,
        /// The request's id, e.g. 0-1.
        request: String,
        /// accept, accept_for_session, decline or cancel.
        decision: String,
        /// Why, for the job's log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove ended jobs older than a cutoff (never a queued or running one).
    Gc {
        /// Jobs whose last turn ended longer ago than this: e.g. 7d, 12h, 30m.
        #[arg(long)]
        older_than: String,
        /// Only jobs with this status (completed, failed, cancelled); repeat for several.
        #[arg(long)]
        status: Vec<String>,
        /// Show what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "failpoints")]
    set_failpoints(matches!(cli.command, Command::Supervise { .. }));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match cli.command {
        // One thread is plenty for a supervisor and keeps it small.
        Command::Supervise { .. } => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build(),
    };
    let result = runtime.map_err(anyhow::Error::from).and_then(|rt| {
        let result = rt.block_on(run(cli));
        // Nothing in flight outlives the command: a job_wait or a follower
        // thread must not hold the exit (everything on disk is already durable).
        rt.shutdown_background();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<InvalidInput>().is_some() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

/// Fail points for the crash tests, `name=action;…` as the `fail` crate takes
/// them: from `SUPERVISOR_FAILPOINTS` in a supervisor, `FAILPOINTS` elsewhere,
/// so a test can stop one without the other.
#[cfg(feature = "failpoints")]
fn set_failpoints(supervisor: bool) {
    let var = if supervisor { "SUPERVISOR_FAILPOINTS" } else { "FAILPOINTS" };
    for point in std::env::var(var).unwrap_or_default().split(';').filter(|p| !p.is_empty()) {
        if let Some((name, action)) = point.split_once('=') {
            fail::cfg(name, action).expect("a fail point action");
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config = HostConfig::new(cli.home, cli.codex_bin)?;
    if let Command::Supervise { job } = cli.command {
        return supervisor::run(config.home, JobId::parse(&job)?, codex_jobhost::backend::BackendDriver).await;
    }
    let host = JobHost::open(config)?;
    match cli.command {
        Command::Serve { http: None, .. } => mcp::serve_stdio(host).await,
        Command::Serve { http: Some(addr), no_auth, allow_origin, allow_host } => {
            let options =
                mcp::http::HttpOptions { addr, no_auth, allowed_origins: allow_origin, allowed_hosts: allow_host };
            mcp::http::serve_http(host, options).await
        }
        Command::Http { command: HttpCommand::Token { command } } => http_token(&host, command),
        Command::Doctor => doctor(&host).await,
        Command::Policy { command } => {
            // Only test and eval judge as a job would; check and show need no Codex.
            let backend = match command {
                PolicyCommand::Test { .. } | PolicyCommand::Eval { .. } => host.default_backend().await,
                PolicyCommand::Check { .. } | PolicyCommand::Show { .. } | PolicyCommand::Log { .. } => {
                    BackendKind::Exec
                }
            };
            host.off_runtime(move |host| policy(host, command, backend)).await
        }
        Command::Jobs { command } => jobs(&host, command).await,
        Command::Supervise { .. } => unreachable!(),
    }
}

async fn jobs(host: &std::sync::Arc<JobHost>, command: JobsCommand) -> Result<()> {
    match command {
        JobsCommand::List { status, cwd, limit } => {
            host.index_jobs().await?;
            let list = host.list(&ListRequest { status, cwd, limit: Some(limit), max_chars: None }).await?;
            // As `docker ps` and `kubectl get` show them: a header, then how old and how long.
            let now = jiff::Timestamp::now();
            let since = |from: &str, to: jiff::Timestamp| {
                from.parse::<jiff::Timestamp>().map_or("-".into(), |t| short_span(to, t))
            };
            println!(
                "{:<36}  {:<14}  {:>4}  {:>5}  {:>8}  {:<30}  PROMPT",
                "JOB ID", "STATUS", "TURN", "AGE", "DURATION", "CWD"
            );
            for j in list.jobs {
                let ended = j.finished_at.as_deref().and_then(|f| f.parse().ok());
                println!(
                    "{:<36}  {:<14}  {:>4}  {:>5}  {:>8}  {:<30}  {}",
                    j.job_id,
                    j.status.as_str(),
                    j.turn,
                    since(&j.created_at, now),
                    since(&j.created_at, ended.unwrap_or(now)),
                    j.cwd.display(),
                    j.prompt.replace('\n', " ")
                );
            }
            for u in list.unreadable {
                println!("{:<36}  {:<14}  {}", u.job_id, "unreadable", u.error);
            }
        }
        JobsCommand::Show { id } => {
            let status = host.off_runtime(move |host| host.status(&id, Some(20), None)).await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        JobsCommand::Logs { id, follow, raw: false } => {
            let job = id.clone();
            let status = host.off_runtime(move |host| host.status(&job, Some(0), None)).await?;
            println!("== turn 0: {}", status.prompt.replace('\n', " "));
            let mut cursor = 0;
            loop {
                // Whether the turn had ended before this read: then what it reads is all there is.
                let job = id.clone();
                let ended = !follow
                    || host.off_runtime(move |host| host.status(&job, Some(0), None)).await?.status.is_terminal();
                let job = id.clone();
                let (lines, next) = host.off_runtime(move |host| host.transcript(&job, cursor)).await?;
                for line in &lines {
                    println!("{line}");
                }
                if next != cursor {
                    cursor = next;
                } else if ended {
                    break;
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
        JobsCommand::Logs { id, follow, raw: true } => {
            let mut offset = 0;
            let mut out = std::io::stdout().lock();
            loop {
                let job = id.clone();
                let (bytes, next) = host.off_runtime(move |host| host.output_since(&job, offset, 1 << 20)).await?;
                out.write_all(&bytes)?;
                out.flush()?;
                offset = next;
                if !bytes.is_empty() {
                    continue;
                }
                let job = id.clone();
                if !follow || host.off_runtime(move |host| host.status(&job, Some(0), None)).await?.status.is_terminal()
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
        JobsCommand::Gc { older_than, status, dry_run } => {
            let age = parse_span("--older-than", &older_than)?;
            let statuses = status.iter().map(|s| JobStatus::parse(s)).collect::<Result<Vec<_>, _>>()?;
            let report = host.off_runtime(move |host| host.gc(age, &statuses, dry_run)).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        JobsCommand::Approve { id, request, decision, reason } => {
            let decision = serde_json::from_value(serde_json::Value::String(decision.clone())).map_err(|_| {
                anyhow::anyhow!("invalid decision {decision:?}: expected accept, accept_for_session, decline or cancel")
            })?;
            let req = ApproveRequest { job_id: id, request_id: request, decision, reason };
            let outcome = host.approve(&req, "jobs approve")?;
            println!("{} {} {}", outcome.job_id, outcome.request_id, outcome.decision.as_str());
        }
        JobsCommand::Cancel { id } => {
            host.index_jobs().await?;
            let outcome = host.cancel(&id).await?;
            println!("{} {}", outcome.job_id, outcome.status);
        }
    }
    Ok(())
}

fn policy(host: &JobHost, command: PolicyCommand, backend: BackendKind) -> Result<()> {
    let json = |what: &str, text: &str| -> Result<serde_json::Value> {
        serde_json::from_str(text)
            .map_err(|e| InvalidInput::new(format!("invalid {what} {text:?}: not JSON: {e}")).into())
    };
    match command {
        PolicyCommand::Check { file } => {
            let (c, _) = host.policies().load_file(&file)?;
            println!("{}: {} world of codex-jobhost:policy@{}", file.display(), c.world.world_name(), c.version);
        }
        PolicyCommand::Test { file: Some(file), request: Some(request), config, .. } => {
            let (input, config) = (json("--request", &request)?, json("--config", &config)?);
            let (component, _) = host.policies().load_file(&file)?;
            let cwd = std::env::current_dir()?;
            let out = codex_jobhost::policy::trial::call_once(
                component,
                &config.to_string(),
                &trial_job(&cwd, backend),
                &input,
            )?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        PolicyCommand::Test { cases: Some(cases), cwd, .. } => {
            let text = std::fs::read_to_string(&cases).with_context(|| format!("cannot read {}", cases.display()))?;
            let parsed = codex_jobhost::policy::cases::parse(&text).with_context(|| cases.display().to_string())?;
            let cwd = std::path::absolute(cwd.unwrap_or(std::env::current_dir()?))?;
            let set = host.policies().for_cwd(&cwd)?;
            let (report, failed) = codex_jobhost::policy::cases::run(&set, &trial_job(&cwd, backend), &parsed);
            print!("{report}");
            if failed > 0 {
                anyhow::bail!("{failed} of {} cases failed", parsed.cases.len());
            }
        }
        PolicyCommand::Test { .. } => {
            return Err(InvalidInput::new("policy test needs FILE --request JSON, or --cases FILE").into());
        }
        PolicyCommand::Eval { cwd } => {
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
            let request: codex_jobhost::policy::Request = serde_json::from_str(&input).map_err(|e| {
                InvalidInput::new(format!(
                    "invalid request on stdin: {e}; expected e.g. {{\"command\": {{\"command\": \"ls\", \"cwd\": \"/w\"}}}}"
                ))
            })?;
            let cwd = std::path::absolute(cwd.unwrap_or(std::env::current_dir()?))?;
            let set = host.policies().for_cwd(&cwd)?;
            let out = codex_jobhost::policy::cases::eval(&set, &trial_job(&cwd, backend), &request);
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        PolicyCommand::Show { cwd } => {
            let cwd = std::path::absolute(cwd.unwrap_or(std::env::current_dir()?))?;
            println!("{}", serde_json::to_string_pretty(&host.policies().for_cwd(&cwd)?.describe())?);
        }
        PolicyCommand::Log { cwd, since, json } => {
            let cwd = cwd.map(std::path::absolute).transpose()?;
            let since = match since {
                Some(span) => {
                    jiff::Timestamp::now().checked_sub(parse_span("--since", &span)?).unwrap_or(jiff::Timestamp::MIN)
                }
                None => jiff::Timestamp::MIN,
            };
            for d in host.decisions(cwd.as_deref(), since)? {
                if json {
                    println!("{}", serde_json::to_string(&d)?);
                    continue;
                }
                let e = &d.event.data;
                let text = |key: &str| e[key].as_str().unwrap_or("-").to_owned();
                let what = codex_jobhost::host::transcript::request_summary(&e["request"]);
                println!(
                    "{}  {}  {}{}  {} {}  {}  {}",
                    d.event.ts,
                    d.job_id,
                    if e["shadow"] == true { "shadow " } else { "" },
                    text("decided_by"),
                    text("decision"),
                    text("kind"),
                    what,
                    e["reason"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// `to - from` as `docker ps` shows an age: `45s`, `12m`, `3h`, `2d` (whole units, rounded down).
fn short_span(to: jiff::Timestamp, from: jiff::Timestamp) -> String {
    let s = to.duration_since(from).as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// A span such as `7d`, `12h` or `30m` given to `flag` (jiff's friendly
/// format; a day is 24 hours).
fn parse_span(flag: &str, text: &str) -> Result<std::time::Duration> {
    let invalid = || InvalidInput::new(format!("invalid {flag} {text:?}: expected a duration such as 7d, 12h or 30m"));
    let span: jiff::Span = text.parse().map_err(|_| invalid())?;
    let duration = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(|_| invalid())?;
    std::time::Duration::try_from(duration).map_err(|_| invalid().into())
}

/// The job a policy sees in `policy test` and `policy eval`: working in
/// `cwd`, on the backend a job started there would get.
fn trial_job(cwd: &std::path::Path, backend: BackendKind) -> JobContext {
    let root = codex_jobhost::policy::project_root(cwd);
    codex_jobhost::policy::job_context(JobId::new(), backend, cwd, root.as_deref(), "policy test")
}

async fn doctor(host: &JobHost) -> Result<()> {
    let home = &host.config().home;
    let probe = home.join(".doctor-probe");
    match std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe)) {
        Ok(()) => println!("home:     {} (writable)", home.display()),
        Err(e) => println!("home:     {} NOT WRITABLE: {e}", home.display()),
    }
    match host.codex().await {
        Ok(cli) => {
            println!("codex:    {} (version {})", cli.located.display(), cli.version);
            if cli.program != cli.located {
                println!("runs:     {} (the native binary behind the npm launcher)", cli.program.display());
            }
            let app_server = match cli.capabilities.app_server {
                true => "app-server (the default)",
                false => "no app-server (this Codex has no `codex app-server`; jobs run on exec)",
            };
            println!(
                "backends: {app_server}; exec (codex exec --json{})",
                if cli.capabilities.resume { ", replies via exec resume" } else { "" }
            );
            println!("features: {}", serde_json::to_string(&cli.capabilities)?);
            // What a job with an approval policy gets: the hook, trusted as Codex computes it.
            use codex_jobhost::backend::hooks;
            let cwd = std::env::current_dir()?;
            match hooks::trusted_command(&cli.program, &cli.env, &cwd, home).await {
                Ok((_, hash)) => println!(
                    "governed: with an approval policy, every shell command, apply_patch and MCP tool call of a job goes \
                     to the policies before it runs, on both backends (Codex's PreToolUse hook, trusted as {hash}); \
                     Codex's web search and image views are not hooked"
                ),
                Err(e) => println!("governed: NO: {e:#}; the turns of a job with an approval policy fail to start"),
            }
            Ok(())
        }
        Err(e) => {
            println!("codex:    NOT FOUND: {e:#}");
            Err(e)
        }
    }
}

fn http_token(host: &JobHost, command: TokenCommand) -> Result<()> {
    use mcp::http::tokens::{Access, Tokens};
    let tokens = Tokens::of(&host.config().home);
    match command {
        TokenCommand::Add { name, read } => {
            let token = tokens.add(&name, if read { Access::Read } else { Access::Full })?;
            println!("{token}");
            eprintln!("token {name:?} added; it is shown this once: keep it (only its hash is stored)");
        }
        TokenCommand::List => {
            println!("{:<24} {:<6} ADDED", "NAME", "ACCESS");
            for t in tokens.list()? {
                let access = if t.access == Access::Read { "read" } else { "full" };
                println!("{:<24} {access:<6} {}", t.name, t.created_at);
            }
        }
        TokenCommand::Revoke { name } => {
            tokens.revoke(&name)?;
            eprintln!("token {name:?} revoked");
        }
    }
    Ok(())
}
