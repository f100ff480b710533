//! The page for people at `/` of `serve --http`, in a real headless browser:
//! Debian's Chromium driven through its ChromeDriver (WebDriver, by
//! fantoccini), both started by the test. A job started over MCP waits for
//! an approval; a read token sees it and cannot answer; a full token logs in,
//! answers it with the Accept button, and the page streams the rest of the
//! transcript. Beside it, the page's refusals tried with a plain HTTP client.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use codex_jobhost_e2e::http::{HttpServer, add_token};
use codex_jobhost_e2e::{Reply, World, decided};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a step may take before the test gives up on a hung browser:
/// a guard against hanging forever, not a speed the test expects.
const HANG_GUARD: Duration = Duration::from_secs(600);

/// ChromeDriver, from `CHROMEDRIVER_BIN` or Debian's package.
fn chromedriver_bin() -> PathBuf {
    std::env::var_os("CHROMEDRIVER_BIN").map_or_else(|| "/usr/bin/chromedriver".into(), PathBuf::from)
}

/// A ChromeDriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(chromedriver_bin())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("cannot start {} (Debian: apt-get install chromium-driver)", chromedriver_bin().display())
            })?;
        Ok(Driver { child, url: format!("http://127.0.0.1:{port}") })
    }

    /// A headless Chromium session, once the driver listens.
    async fn browser(&self) -> Result<Client> {
        let caps = json!({"goog:chromeOptions": {"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"]}});
        let caps = caps.as_object().context("capabilities")?.clone();
        let mut last = None;
        for _ in 0..600 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&self.url).await {
                Ok(client) => return Ok(client),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow::anyhow!("ChromeDriver at {} never took a session: {last:?}", self.url))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the element `css` finds shows text containing `text`.
async fn wait_for_text(browser: &Client, css: &str, text: &str) -> Result<String> {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            let shown = element.text().await?;
            if shown.contains(text) {
                return Ok(shown);
            }
            ensure!(std::time::Instant::now() < deadline, "{css} never showed {text:?}; it shows {shown:?}");
        }
        ensure!(std::time::Instant::now() < deadline, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Logs `browser` in at `base` with `token`.
async fn log_in(browser: &Client, base: &str, token: &str) -> Result<()> {
    browser.delete_all_cookies().await?;
    browser.goto(&format!("{base}/login")).await?;
    browser.find(Locator::Css("input[name=token]")).await?.send_keys(token).await?;
    browser.find(Locator::Css("form button")).await?.click().await?;
    wait_for_text(browser, "h1", "Jobs").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_answers_an_approval_on_the_page_in_a_real_browser() -> Result<()> {
    let world = World::new([
        Reply::Escalated("touch from-page.txt".into()),
        Reply::Escalated("touch from-tool.txt".into()),
        Reply::Message("done".into()),
    ])?;
    let full = add_token(&world, "alice", false)?;
    let read = add_token(&world, "ci", true)?;
    let server = HttpServer::start(&world, &[])?;
    let base = server.url.trim_end_matches("/mcp").to_owned();
    let prompt = "make <b>two</b> files";
    let started = server.call(&full, "job_start", world.start_args(prompt))?;
    let job = started["structuredContent"]["job_id"].as_str().context("job_id")?.to_owned();

    let driver = Driver::start()?;
    let browser = driver.browser().await?;
    let shown = async {
        // Not logged in: the login form.
        browser.goto(&format!("{base}/")).await?;
        wait_for_text(&browser, "h1", "Log in").await?;

        // A read token sees the job and its request, and no button to answer it.
        log_in(&browser, &base, &read).await?;
        let row = wait_for_text(&browser, "#jobs tbody tr", &job).await?;
        // The prompt is shown as text, never as markup.
        ensure!(row.contains(prompt), "{row}");
        browser.goto(&format!("{base}/jobs/{job}")).await?;
        let request = wait_for_text(&browser, "#approvals", "touch from-page.txt").await?;
        ensure!(request.contains("A full token may answer it."), "{request}");
        ensure!(browser.find(Locator::Css("#approvals button")).await.is_err(), "a read token sees a button");

        // A full token answers it with the Accept button.
        log_in(&browser, &base, &full).await?;
        browser.find(Locator::Css(&format!("a[href='/jobs/{job}']"))).await?.click().await?;
        wait_for_text(&browser, "#status", "input_required").await?;
        let accept =
            browser.wait().at_most(HANG_GUARD).for_element(Locator::Css("#approvals button[value=accept]")).await?;
        let png = browser.screenshot().await?;
        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page-approval.png");
        std::fs::write(&shot, &png)?;
        eprintln!("screenshot of the job page: {}", shot.display());
        ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        accept.click().await?;

        // The page streams on: the next request appears without a reload; it is answered over MCP.
        wait_for_text(&browser, "#approvals", "touch from-tool.txt").await?;
        let status = server.call(&full, "job_status", json!({"job_id": job}))?;
        let second = status["structuredContent"]["pending_approvals"][0]["request_id"].as_str().context("request")?;
        let args = json!({"job_id": job, "request_id": second, "decision": "decline"});
        server.call(&full, "job_approve", args)?;
        wait_for_text(&browser, "#transcript", "agent: done").await?;
        let transcript = wait_for_text(&browser, "#status", "completed").await?;
        Ok::<_, anyhow::Error>(transcript)
    }
    .await;
    let _ = browser.close().await;
    shown?;

    // Each answer names who gave it: the page and the tool, each with its token.
    let mut events = Vec::new();
    loop {
        let page = server.call(&read, "job_events", json!({"job_id": job, "cursor": events.len()}))?;
        let page = &page["structuredContent"];
        events.extend(page["events"].as_array().context("events")?.iter().cloned());
        if page["has_more"] != true {
            break;
        }
    }
    let by: Vec<(&str, &str)> =
        decided(&events).iter().map(|d| (d["decision"].as_str().unwrap(), d["decided_by"].as_str().unwrap())).collect();
    assert_eq!(by, [("accept", "page (token alice)"), ("decline", "job_approve (token alice)")], "{events:?}");
    assert!(world.work_dir().join("from-page.txt").exists());
    assert!(!world.work_dir().join("from-tool.txt").exists());
    Ok(())
}

#[test]
fn the_page_refuses_strangers_foreign_origins_foreign_hosts_and_read_tokens() -> Result<()> {
    let world = World::new([Reply::Escalated("touch x.txt".into()), Reply::Message("done".into())])?;
    let full = add_token(&world, "alice", false)?;
    let read = add_token(&world, "ci", true)?;
    let server = HttpServer::start(&world, &[])?;
    let base = server.url.trim_end_matches("/mcp").to_owned();
    let job = server.call(&full, "job_start", world.start_args("one file"))?["structuredContent"]["job_id"]
        .as_str()
        .context("job_id")?
        .to_owned();
    loop {
        let waited = server.call(&full, "job_wait", json!({"job_ids": [job], "timeout_s": 120}))?;
        if waited["structuredContent"]["input_required"].as_array().is_some_and(|j| !j.is_empty()) {
            break;
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let get = |path: &str, headers: &[(&str, &str)]| -> Result<(u16, String)> {
        let mut request = agent.get(format!("{base}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call()?;
        Ok((response.status().as_u16(), response.body_mut().read_to_string()?))
    };
    let answer = |headers: &[(&str, &str)], decision: &str| -> Result<(u16, String)> {
        let mut request = agent
            .post(format!("{base}/jobs/{job}/approvals/0-1"))
            .header("Content-Type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(format!("decision={decision}"))?;
        Ok((response.status().as_u16(), response.body_mut().read_to_string()?))
    };
    let own_origin = base.clone();
    let bearer = |t: &str| format!("Bearer {t}");
    let (full_auth, read_auth) = (bearer(&full), bearer(&read));
    let cookie = format!("codex_jobhost_token={full}");

    // No token: the jobs page sends to the login form; the live feed and a post are 401.
    assert_eq!(get("/", &[])?.0, 303);
    assert_eq!(get(&format!("/jobs/{job}/live"), &[])?.0, 401);
    assert_eq!(get("/", &[("Authorization", "Bearer cjh_0000")])?.0, 303);
    assert_eq!(answer(&[("Origin", &own_origin)], "accept")?.0, 401);
    // A foreign Host, whatever the token (DNS rebinding).
    let (status, said) = get("/", &[("Authorization", &full_auth), ("Host", "evil.example")])?;
    assert_eq!(status, 403, "{said}");
    // A post from a foreign origin, or with the cookie and no Origin at all (not a browser's form).
    let (status, said) = answer(&[("Cookie", &cookie), ("Origin", "http://evil.example")], "accept")?;
    assert_eq!(status, 403, "{said}");
    ensure!(said.contains("evil.example"), "{said}");
    assert_eq!(answer(&[("Cookie", &cookie)], "accept")?.0, 403);
    // A read token may look, not answer; a decision that is not one is named.
    assert_eq!(get(&format!("/jobs/{job}"), &[("Authorization", &read_auth)])?.0, 200);
    let (status, said) = answer(&[("Authorization", &read_auth)], "accept")?;
    assert_eq!(status, 403, "{said}");
    let (status, said) = answer(&[("Authorization", &full_auth)], "maybe")?;
    ensure!(status == 400 && said.contains("\"maybe\""), "{status} {said}");
    // Nothing above answered it.
    let status = server.call(&read, "job_status", json!({"job_id": job}))?;
    assert_eq!(status["structuredContent"]["status"], "input_required", "{status}");
    // The page's own form, with the cookie a login sets, does.
    let (status, said) = answer(&[("Cookie", &cookie), ("Origin", &own_origin)], "decline")?;
    assert_eq!(status, 303, "{said}");
    let (status, said) = answer(&[("Cookie", &cookie), ("Origin", &own_origin)], "accept")?;
    ensure!(status == 400 && said.contains("already answered: decline by page (token alice)"), "{status} {said}");
    let live: Value = serde_json::from_str(&get(&format!("/jobs/{job}/live?cursor=0"), &[("Cookie", &cookie)])?.1)?;
    ensure!(live["lines"].as_array().is_some_and(|l| !l.is_empty()), "{live}");
    server.call(&full, "job_cancel", json!({"job_id": job}))?;
    Ok(())
}
