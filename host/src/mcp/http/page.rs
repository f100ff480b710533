//! The page for people at `/` (`serve --http`): the jobs, newest first; one
//! job's transcript as it streams; its pending approval requests with Accept
//! and Decline buttons. Server-rendered HTML (maud escapes every value) and a
//! little inline script, no external asset.
//!
//! What it shows comes from the same calls as the tools (`job_list`,
//! `job_status`, `jobs logs`' transcript of `job_events`), so the project's
//! redaction policies apply exactly as they do to tool results; a button
//! calls the code of `job_approve`, recorded as `page (token NAME)`.
//!
//! | route                                   | answers                                  |
//! |-----------------------------------------|------------------------------------------|
//! | `GET /`                                 | the jobs page                            |
//! | `GET /jobs`                             | its table alone (the script refreshes it)|
//! | `GET /jobs/{id}`                        | one job's page                           |
//! | `GET /jobs/{id}/live?cursor=N`          | JSON: `{status, approvals_html, lines, next_cursor}` |
//! | `POST /jobs/{id}/approvals/{request_id}`| form `decision=accept\|decline`; 303 back |
//! | `GET`, `POST /login`                    | the token form; sets the login cookie    |
//!
//! Who may in: the same tokens as `/mcp`, from `Authorization: Bearer` or from
//! the login cookie (HttpOnly, SameSite=Strict); a read token sees, a full
//! token may answer. Every request's `Host` must be one the server answers to
//! (DNS rebinding); a `POST` with an `Origin` must come from the page's own
//! origin or an allowed one, and one without `Origin` must carry its token
//! in `Authorization` (a browser sends `Origin` with every form it posts).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::Gate;
use super::tokens::{Access, Caller};
use crate::JobHost;
use crate::host::{ApproveRequest, ListRequest, StatusReport};
use crate::job::approval::ApprovalDecision;

/// The login cookie's name; its value is the token.
const COOKIE: &str = "codex_jobhost_token";

/// Jobs the jobs page shows.
const LISTED: usize = 200;

/// What the page's handlers share.
pub(super) struct Page {
    pub host: Arc<JobHost>,
    pub gate: Arc<Gate>,
    /// Host names (or `host:port`) the server answers to.
    pub hosts: Vec<String>,
    /// Browser origins allowed besides the page's own.
    pub origins: Vec<String>,
}

/// The page's routes, each behind [`guard`].
pub(super) fn router(page: Arc<Page>) -> Router {
    Router::new()
        .route("/", get(jobs_page))
        .route("/jobs", get(jobs_table_only))
        .route("/jobs/{id}", get(job_page))
        .route("/jobs/{id}/live", get(live))
        .route("/jobs/{id}/approvals/{request_id}", post(answer))
        .route("/login", get(login_form).post(log_in))
        .layer(middleware::from_fn_with_state(Arc::clone(&page), guard))
        .with_state(page)
}

/// Host, Origin and token checks (see the module's doc); the caller goes on
/// in the request's extensions.
async fn guard(State(page): State<Arc<Page>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return refused(StatusCode::BAD_REQUEST, "a request needs a Host header");
    };
    if !host_allowed(host, &page.hosts) {
        return refused(StatusCode::FORBIDDEN, &format!("this server does not answer to Host {host:?}"));
    }
    let bearer = super::bearer(headers);
    if request.method() == Method::POST {
        match headers.get(header::ORIGIN).map(|o| o.to_str().unwrap_or("")) {
            Some(origin) if !origin_allowed(origin, host, &page.origins) => {
                return refused(StatusCode::FORBIDDEN, &format!("Origin {origin:?} may not post here"));
            }
            None if bearer.is_none() && !page.gate.no_auth => {
                return refused(StatusCode::FORBIDDEN, "a POST without Origin must carry Authorization: Bearer");
            }
            _ => {}
        }
    }
    if request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let token = bearer.map(str::to_owned).or_else(|| cookie_token(headers));
    match page.gate.caller(token.as_deref()) {
        Ok(Some(caller)) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok(None) if request.method() == Method::GET && !request.uri().path().ends_with("/live") => {
            Redirect::to("/login").into_response()
        }
        Ok(None) => super::unauthorized("log in at /login, or send Authorization: Bearer <token>"),
        Err(e) => {
            tracing::error!("cannot check a token: {e:#}");
            refused(StatusCode::INTERNAL_SERVER_ERROR, "cannot check tokens")
        }
    }
}

/// Whether `host` (a `Host` header: `name` or `name:port`) names one of
/// `allowed` (names, or `name:port` to pin the port too).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let split = |authority: &str| -> Option<(String, Option<u16>)> {
        let parsed = authority.parse::<axum::http::uri::Authority>().ok();
        let (name, port) = match &parsed {
            Some(a) => (a.host(), a.port_u16()),
            None => (authority, None),
        };
        Some((name.trim_matches(['[', ']']).to_ascii_lowercase(), port))
    };
    let Some((name, port)) = split(host) else { return false };
    allowed
        .iter()
        .filter_map(|a| split(a))
        .any(|(a_name, a_port)| a_name == name && a_port.is_none_or(|p| Some(p) == port))
}

/// Whether a browser `Origin` may post: the page's own (`http://` and the
/// request's `Host`), or one of `allowed`, exactly.
fn origin_allowed(origin: &str, host: &str, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    origin == format!("http://{}", host.to_ascii_lowercase()) || allowed.iter().any(|a| a.eq_ignore_ascii_case(&origin))
}

/// The token in the login cookie.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}

/// An error of the host as a page: a bad value (an unknown job, a request
/// already answered) is 400 with its message, anything else 500.
fn failed(e: anyhow::Error) -> Response {
    let status = if e.downcast_ref::<crate::InvalidInput>().is_some() {
        StatusCode::BAD_REQUEST
    } else {
        tracing::error!("page: {e:#}");
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, layout("Error", html! { p.error { (format!("{e:#}")) } p { a href="/" { "All jobs" } } })).into_response()
}

/// A whole page around `body`.
fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · codex-jobhost" }
                style { (STYLE) }
            }
            body { header { a href="/" { "codex-jobhost" } } main { (body) } }
        }
    }
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}\
header{padding:.6em 1em;background:#20232a}header a{color:#fff;text-decoration:none;font-weight:600}\
main{padding:1em;max-width:70em}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
.status{font-weight:600}.input_required{color:#b35900}.failed{color:#b00020}.completed{color:#1b7f3b}\
.running,.queued{color:#0b57d0}.cancelled{color:#666}pre{white-space:pre-wrap;background:#fff;border:1px solid #ddd;\
padding:.6em;font:13px/1.35 ui-monospace,monospace}.approval{border:2px solid #b35900;background:#fff8ef;\
padding:.6em;margin:.6em 0}.approval pre{margin:.4em 0}button{font:inherit;padding:.3em 1.2em;margin-right:.5em}\
.error{color:#b00020}.muted{color:#666}";

/// `GET /`: the jobs, newest first, refreshed by a script every 2 s.
async fn jobs_page(State(page): State<Arc<Page>>) -> Response {
    match jobs_table(&page.host).await {
        Ok(table) => layout(
            "Jobs",
            html! {
                h1 { "Jobs" }
                div #jobs { (table) }
                script { (maud::PreEscaped(LIST_SCRIPT)) }
            },
        )
        .into_response(),
        Err(e) => failed(e),
    }
}

const LIST_SCRIPT: &str = "setInterval(async()=>{const r=await fetch('/jobs');\
if(r.ok)document.getElementById('jobs').innerHTML=await r.text()},2000);";

/// `GET /jobs`: the table of the jobs page alone.
async fn jobs_table_only(State(page): State<Arc<Page>>) -> Response {
    match jobs_table(&page.host).await {
        Ok(table) => table.into_response(),
        Err(e) => failed(e),
    }
}

async fn jobs_table(host: &Arc<JobHost>) -> anyhow::Result<Markup> {
    let req =
        ListRequest { limit: Some(LISTED), max_chars: Some(crate::host::RESULT_MAX_CHARS_LIMIT), ..Default::default() };
    let list = host.list(&req).await?;
    let now = jiff::Timestamp::now();
    Ok(html! {
        @if list.jobs.is_empty() {
            p.muted { "No jobs yet." }
        } @else {
            table {
                thead { tr { th { "Job" } th { "Status" } th { "Age" } th { "Project" } th { "Started by" } th { "Prompt" } } }
                tbody {
                    @for job in &list.jobs {
                        tr {
                            td { a href=(format!("/jobs/{}", job.job_id)) { code { (job.job_id) } } }
                            td.status.(job.status.as_str()) { (job.status.as_str()) }
                            td { (age(&job.created_at, now)) }
                            td { code { (job.cwd.display()) } }
                            td { (job.started_by.as_deref().unwrap_or("")) }
                            td { (job.prompt) }
                        }
                    }
                }
            }
        }
    })
}

/// How long ago an RFC 3339 time was, as `docker ps` says it: `42s`, `5m`, `3h`, `2d`.
fn age(at: &str, now: jiff::Timestamp) -> String {
    let Ok(at) = at.parse::<jiff::Timestamp>() else { return String::new() };
    let s = now.as_second().saturating_sub(at.as_second()).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `GET /jobs/{id}`: the job's status, its pending approval requests and its
/// transcript so far; a script appends the rest as it comes.
async fn job_page(State(page): State<Arc<Page>>, Path(id): Path<String>, caller: axum::Extension<Caller>) -> Response {
    let job = id.clone();
    let got =
        page.host.off_runtime(move |host| Ok((host.status(&job, Some(0), None)?, host.transcript(&job, 0)?))).await;
    let (status, (lines, cursor)) = match got {
        Ok(got) => got,
        Err(e) => return failed(e),
    };
    let can_answer = caller.access == Access::Full;
    layout(
        &format!("Job {id}"),
        html! {
            h1 { "Job " code { (id) } }
            p {
                span #status .status.(status.status.as_str()) { (status.status.as_str()) }
                " · turn " (status.turn) " · " code { (status.cwd.display()) }
                @if let Some(by) = &status.started_by { " · started by " (by) }
            }
            div #approvals { (approvals(&status, can_answer)) }
            h2 { "Transcript" }
            pre #transcript data-cursor=(cursor) data-job=(id) {
                @for line in &lines { (line) "\n" }
            }
            script { (maud::PreEscaped(JOB_SCRIPT)) }
        },
    )
    .into_response()
}

/// The job's status (no output tail) and its transcript from `cursor` on.
async fn status_and_transcript(
    host: &Arc<JobHost>,
    id: String,
    cursor: u64,
) -> anyhow::Result<(StatusReport, (Vec<String>, u64))> {
    host.off_runtime(move |host| Ok((host.status(&id, Some(0), None)?, host.transcript(&id, cursor)?))).await
}

/// Polls `/live` once a second (at once while there is more), appending the
/// transcript's new lines as text and replacing the status and approvals.
const JOB_SCRIPT: &str = "(()=>{const t=document.getElementById('transcript'),s=document.getElementById('status'),\
a=document.getElementById('approvals');let c=t.dataset.cursor;async function tick(){let more=false;try{\
const r=await fetch('/jobs/'+t.dataset.job+'/live?cursor='+c);if(r.ok){const j=await r.json();\
for(const l of j.lines)t.append(l+'\\n');more=j.lines.length>0;c=j.next_cursor;s.textContent=j.status;\
s.className='status '+j.status;if(a.innerHTML!==j.approvals_html)a.innerHTML=j.approvals_html}}catch(e){}\
setTimeout(tick,more?0:1000)}setTimeout(tick,1000)})();";

/// The pending approval requests, each with its buttons for a full token.
fn approvals(status: &StatusReport, can_answer: bool) -> Markup {
    html! {
        @for pending in &status.pending_approvals {
            div.approval data-request=(pending.request_id) {
                strong { "Approval request " (pending.request_id) ": " (pending.kind) }
                " (asked by " (pending.asked_by) ", declined unanswered at " (pending.deadline) ")"
                pre { (crate::host::transcript::request_summary(&pending.request)) }
                @if can_answer {
                    form method="post" action=(format!("/jobs/{}/approvals/{}", status.job_id, pending.request_id)) {
                        button name="decision" value="accept" { "Accept" }
                        button name="decision" value="decline" { "Decline" }
                    }
                } @else {
                    p.muted { "A full token may answer it." }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct Cursor {
    #[serde(default)]
    cursor: u64,
}

/// `GET /jobs/{id}/live?cursor=N`: what changed since the transcript's cursor.
async fn live(
    State(page): State<Arc<Page>>,
    Path(id): Path<String>,
    Query(Cursor { cursor }): Query<Cursor>,
    caller: axum::Extension<Caller>,
) -> Response {
    let got =
        page.host.off_runtime(move |host| Ok((host.status(&id, Some(0), None)?, host.transcript(&id, cursor)?))).await;
    match got {
        Ok((status, (lines, next_cursor))) => axum::Json(json!({
            "status": status.status.as_str(),
            "approvals_html": approvals(&status, caller.access == Access::Full).into_string(),
            "lines": lines,
            "next_cursor": next_cursor,
        }))
        .into_response(),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct Answer {
    decision: String,
}

/// `POST /jobs/{id}/approvals/{request_id}`: the answer, as `job_approve`
/// records it; back to the job's page.
async fn answer(
    State(page): State<Arc<Page>>,
    Path((id, request_id)): Path<(String, String)>,
    caller: axum::Extension<Caller>,
    Form(Answer { decision }): Form<Answer>,
) -> Response {
    if caller.access != Access::Full {
        return refused(StatusCode::FORBIDDEN, "a read token may not answer approval requests");
    }
    let decision = match decision.as_str() {
        "accept" => ApprovalDecision::Accept,
        "decline" => ApprovalDecision::Decline,
        other => {
            return refused(StatusCode::BAD_REQUEST, &format!("decision {other:?}: expected accept or decline"));
        }
    };
    let by = Caller::answering(Some(&caller), "page");
    let req = ApproveRequest { job_id: id.clone(), request_id, decision, reason: Some("answered on the page".into()) };
    match page.host.off_runtime(move |host| host.approve(&req, &by)).await {
        Ok(_) => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Err(e) => failed(e),
    }
}

/// `GET /login`: the token form.
async fn login_form() -> Markup {
    login(None)
}

fn login(error: Option<&str>) -> Markup {
    layout(
        "Log in",
        html! {
            h1 { "Log in" }
            @if let Some(error) = error { p.error { (error) } }
            form method="post" action="/login" {
                label { "Token " input type="password" name="token" autocomplete="off" size="70" autofocus; }
                " " button { "Log in" }
            }
            p.muted { "A token from " code { "codex-jobhost http token add NAME" } "." }
        },
    )
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// `POST /login`: a known token is set as the login cookie; back to `/`.
async fn log_in(State(page): State<Arc<Page>>, Form(Login { token }): Form<Login>) -> Response {
    match page.gate.tokens.verify(token.trim()) {
        Ok(Some(_)) => {
            let cookie = cookie::Cookie::build((COOKIE, token.trim().to_owned()))
                .path("/")
                .http_only(true)
                .same_site(cookie::SameSite::Strict)
                .build();
            ([(header::SET_COOKIE, cookie.to_string())], Redirect::to("/")).into_response()
        }
        Ok(None) => (StatusCode::UNAUTHORIZED, login(Some("Unknown or revoked token."))).into_response(),
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_answers_only_to_its_own_hosts_and_origins() {
        let hosts = ["localhost", "127.0.0.1", "::1", "jobs.example:8765"].map(String::from);
        for ok in ["127.0.0.1:8765", "LOCALHOST:1", "[::1]:80", "jobs.example:8765"] {
            assert!(host_allowed(ok, &hosts), "{ok}");
        }
        for bad in ["evil.example", "127.0.0.1.evil.example:8765", "jobs.example:80", ""] {
            assert!(!host_allowed(bad, &hosts), "{bad}");
        }
        let allowed = ["https://app.example.com".to_owned()];
        assert!(origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765", &allowed));
        assert!(origin_allowed("https://app.example.com", "127.0.0.1:8765", &allowed));
        for bad in ["http://127.0.0.1:9999", "https://127.0.0.1:8765", "null", "http://evil.example"] {
            assert!(!origin_allowed(bad, "127.0.0.1:8765", &allowed), "{bad}");
        }
    }

    #[test]
    fn ages_read_as_docker_ps_shows_them() {
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        assert_eq!(age("2026-12-02T11:59:18Z", now), "42s");
        assert_eq!(age("2026-12-02T09:00:00Z", now), "3h");
        assert_eq!(age("2026-11-30T12:00:00Z", now), "2d");
        assert_eq!(age("not a time", now), "");
    }
}
