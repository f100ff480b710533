//! `docs/policy-authors.md` followed literally from an empty folder: its
//! shell blocks run as written beside a checkout of this repository, its
//! `src/lib.rs` is the crate's, and what `codex-jobhost policy check` and
//! `policy test` print is what the guide's comments say they print.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use codex_jobhost_e2e::{host_bin, path_with};

const GUIDE: &str = include_str!("../../docs/policy-authors.md");

/// The fenced blocks of `text` with their language tag, in order.
fn blocks(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(tag_end) = after.find('\n') else { break };
        let body = &after[tag_end + 1..];
        let Some(end) = body.find("```") else { break };
        out.push((&after[..tag_end], &body[..end]));
        rest = &body[end + 3..];
    }
    out
}

/// The guide's section that starts with `heading`.
fn section(heading: &str) -> Result<&'static str> {
    let start = GUIDE.find(heading).with_context(|| format!("the guide has no section {heading:?}"))?;
    let len = GUIDE[start + heading.len()..].find("\n## ").map_or(GUIDE.len() - start, |n| n + heading.len());
    Ok(&GUIDE[start..start + len])
}

/// Runs a shell block with bash (`-eu`, as a careful reader would) in `dir`;
/// returns its stdout.
fn run(block: &str, dir: &Path, path: &std::ffi::OsStr) -> Result<String> {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{block}\nexited {}\nstdout:\n{stdout}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

#[test]
fn the_policy_authors_guide_works_as_written() -> Result<()> {
    let root = tempfile::Builder::new().prefix("jobhost-guide-").tempdir()?;
    // "Start in the folder that holds your checkout of codex-jobhost."
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?;
    std::os::unix::fs::symlink(checkout, root.path().join("codex-jobhost"))?;
    let path = path_with(&[host_bin().parent().context("binary directory")?])?;

    // 1. Set up: the first shell block, from the empty folder.
    let setup = blocks(section("## 1. Set up")?);
    let (_, commands) = setup.iter().find(|(tag, _)| *tag == "sh").context("no sh block in 1. Set up")?;
    run(commands, root.path(), &path)?;
    let krate = root.path().join("no-force-push");

    // 2. Write the policy: the rust block is src/lib.rs.
    let write = blocks(section("## 2. Write the policy")?);
    let (_, lib) = write.iter().find(|(tag, _)| *tag == "rust").context("no rust block in 2.")?;
    std::fs::write(krate.join("src/lib.rs"), lib)?;

    // 3. Test and build, then ask the host. A warm build folder for this
    // test only (the guide's paths still say target/…).
    let warm = checkout.join("target/guide-policy");
    std::fs::create_dir_all(&warm)?;
    std::os::unix::fs::symlink(&warm, krate.join("target"))?;
    let test_and_build: Vec<&str> =
        blocks(section("## 3. Test and build")?).into_iter().filter(|(tag, _)| *tag == "sh").map(|(_, b)| b).collect();
    ensure!(
        test_and_build.len() >= 2,
        "3. has {} sh blocks, expected the build and the host's check",
        test_and_build.len()
    );
    run(test_and_build[0], &krate, &path)?;
    let printed = run(test_and_build[1], &krate, &path)?;
    // Each `# …` comment in the block is what the commands print (whitespace aside; `…/` stands for a path).
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    let said: Vec<String> = test_and_build[1]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# "))
        .map(|c| squeeze(c.trim_start_matches("…/")))
        .collect();
    ensure!(!said.is_empty(), "the block says nothing of what it prints");
    for expected in &said {
        ensure!(
            squeeze(&printed).contains(expected.as_str()),
            "the guide says {expected}; the host printed:\n{printed}"
        );
    }
    Ok(())
}
