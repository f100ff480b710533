//! Finding the Codex CLI and learning what the installed version supports.
//!
//! Everything that differs between Codex releases is read here, once, from
//! `codex --version`, `codex exec --help`, `codex exec resume --help` and
//! `codex --help`, and kept per binary in `<home>/cache/codex/`: four runs of
//! Codex take ~100 ms of CPU, which a server's first calls would wait for.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// A located Codex CLI and what it can do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodexCli {
    /// What was found (`--codex-bin`, `CODEX_BIN` or `codex` on `PATH`).
    pub located: PathBuf,
    /// What jobs run: the native binary when `located` is the npm package's
    /// Node launcher and the binary beside it could be found, else `located`.
    pub program: PathBuf,
    /// Environment the launcher would have set for the native binary.
    pub env: Vec<(String, String)>,
    /// The version, as `codex --version` prints it after the name (`0.169.0`).
    pub version: String,
    /// Flags the installed `codex exec` accepts.
    pub capabilities: Capabilities,
}

/// Flags of `codex exec` (and of `codex exec resume`) found in their `--help`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `exec --full-auto` (0.125 has it; later releases dropped it).
    pub full_auto: bool,
    /// `exec --profile`.
    pub profile: bool,
    /// `exec --skip-git-repo-check`.
    pub skip_git_repo_check: bool,
    /// `exec --dangerously-bypass-approvals-and-sandbox`.
    pub bypass_sandbox: bool,
    /// `exec resume` exists.
    pub resume: bool,
    /// `exec resume --full-auto`.
    pub resume_full_auto: bool,
    /// `exec resume --skip-git-repo-check`.
    pub resume_skip_git_repo_check: bool,
    /// `exec resume --dangerously-bypass-approvals-and-sandbox`.
    pub resume_bypass_sandbox: bool,
    /// `exec resume --model`.
    pub resume_model: bool,
    /// `codex app-server` exists (the `app-server` backend).
    #[serde(default)]
    pub app_server: bool,
}

impl CodexCli {
    /// Finds Codex: `explicit` (from `--codex-bin` / `CODEX_BIN`), else `codex`
    /// on `PATH`; then runs it to read its version and flags.
    ///
    /// With `cache` (a folder), what a probe found is kept there per binary
    /// and reused while the binary's path, size and modification time stay.
    ///
    /// Errors: not found, not runnable, or `--version` printed something other
    /// than `codex-cli X.Y.Z`; each message names the path.
    pub async fn locate(explicit: Option<&Path>, cache: Option<&Path>) -> Result<Self> {
        let located = match explicit {
            Some(p) => {
                let p = std::path::absolute(p)?;
                if !p.is_file() {
                    bail!("Codex CLI not found at {} (from --codex-bin or CODEX_BIN)", p.display());
                }
                p
            }
            None => which::which("codex").map_err(|_| {
                anyhow!("Codex CLI not found: no `codex` on PATH; install it (`npm install -g @openai/codex`) or pass --codex-bin / set CODEX_BIN")
            })?,
        };
        let (program, env) = match native_behind_launcher(&located) {
            Some((native, env)) => (native, env),
            None => (located.clone(), Vec::new()),
        };
        let key = located.as_os_str().as_encoded_bytes();
        let cached = cache.map(|dir| ProbeCache::new(dir, "", key, &program));
        if let Some(cli) = cached.as_ref().and_then(ProbeCache::read) {
            return Ok(cli);
        }
        let run = |args: &'static [&'static str]| run_for_output(&program, &env, args);
        let (version, exec_help, resume_help, root_help) = tokio::join!(
            run(&["--version"]),
            run(&["exec", "--help"]),
            run(&["exec", "resume", "--help"]),
            run(&["--help"])
        );
        let version = parse_version(&version?).with_context(|| format!("{} --version", program.display()))?;
        let mut capabilities = Capabilities::from_help(&exec_help?, resume_help.as_deref().ok());
        capabilities.app_server = root_help.as_deref().is_ok_and(lists_app_server);
        let cli = CodexCli { located, program, env, version, capabilities };
        if let Some(cache) = cached {
            if let Err(e) = cache.write(&cli) {
                tracing::warn!("cannot keep what the Codex probe found: {e:#}");
            }
        }
        Ok(cli)
    }
}

/// One entry of the probe cache: `<cache>/codex/<name>.json`, holding what
/// a probe of a Codex program found and the program's stamp (size and
/// modification time), so that a changed binary is probed again.
pub(crate) struct ProbeCache {
    file: PathBuf,
    program: PathBuf,
    stamp: Option<(u64, i128)>,
}

#[derive(Serialize, Deserialize)]
struct CachedProbe<T> {
    /// The program's size and modification time (ns since the epoch).
    stamp: (u64, i128),
    program: PathBuf,
    found: T,
}

impl ProbeCache {
    /// The entry `<prefix><sha256 of key>` for what a probe of `program` finds.
    pub(crate) fn new(dir: &Path, prefix: &str, key: &[u8], program: &Path) -> Self {
        use sha2::Digest;
        let key = sha2::Sha256::digest(key);
        let name: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let stamp = std::fs::metadata(program).ok().and_then(|m| {
            let mtime = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
            Some((m.len(), mtime.as_nanos() as i128))
        });
        let file = dir.join("codex").join(format!("{prefix}{name}.json"));
        ProbeCache { file, program: program.to_owned(), stamp }
    }

    /// The cached finding, if the program is the one it was made of.
    pub(crate) fn read<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        let cached: CachedProbe<T> = serde_json::from_slice(&std::fs::read(&self.file).ok()?).ok()?;
        (Some(cached.stamp) == self.stamp && cached.program == self.program).then_some(cached.found)
    }

    /// Keeps `found` for the program as it is now.
    pub(crate) fn write<T: Serialize>(&self, found: &T) -> Result<()> {
        let Some(stamp) = self.stamp else { return Ok(()) };
        let dir = self.file.parent().context("cache folder")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, &CachedProbe { stamp, program: self.program.clone(), found })?;
        tmp.persist(&self.file).with_context(|| format!("cannot write {}", self.file.display()))?;
        Ok(())
    }
}

impl Capabilities {
    /// Reads the flags out of `codex exec --help` and, when it exists, `codex exec resume --help`.
    pub fn from_help(exec_help: &str, resume_help: Option<&str>) -> Self {
        let has = |help: &str, flag: &str| help.split(|c: char| c.is_whitespace() || c == ',').any(|word| word == flag);
        let resume = resume_help.filter(|_| exec_help.contains("resume")).unwrap_or("");
        Capabilities {
            full_auto: has(exec_help, "--full-auto"),
            profile: has(exec_help, "--profile"),
            skip_git_repo_check: has(exec_help, "--skip-git-repo-check"),
            bypass_sandbox: has(exec_help, "--dangerously-bypass-approvals-and-sandbox"),
            resume: !resume.is_empty(),
            resume_full_auto: has(resume, "--full-auto"),
            resume_skip_git_repo_check: has(resume, "--skip-git-repo-check"),
            resume_bypass_sandbox: has(resume, "--dangerously-bypass-approvals-and-sandbox"),
            resume_model: has(resume, "--model"),
            app_server: false,
        }
    }
}

/// Whether `codex --help` lists the `app-server` command.
fn lists_app_server(help: &str) -> bool {
    help.lines().any(|l| l.split_whitespace().next() == Some("app-server"))
}

async fn run_for_output(program: &Path, env: &[(String, String)], args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `codex-cli 0.169.0` → `0.169.0`.
fn parse_version(text: &str) -> Result<String> {
    let line = text.lines().next().unwrap_or("").trim();
    let version = line.rsplit(' ').next().unwrap_or("");
    if !line.starts_with("codex") || version.split('.').count() < 3 {
        bail!("unexpected version output {line:?}; expected `codex-cli X.Y.Z`");
    }
    Ok(version.to_owned())
}

/// When `located` is the npm package's Node launcher (`bin/codex.js`, often
/// reached through a `codex` symlink), the native binary it would start and
/// the environment it would give it. Found as the launcher finds it: the
/// platform package `@openai/codex-<platform>` beside or inside the main
/// package, `vendor/<target triple>/bin/codex` (0.150+) or
/// `vendor/<target triple>/codex/codex` (0.125).
fn native_behind_launcher(located: &Path) -> Option<(PathBuf, Vec<(String, String)>)> {
    let script = std::fs::canonicalize(located).ok()?;
    if script.extension().is_none_or(|e| e != "js") {
        return None;
    }
    let package_root = script.parent()?.parent()?; // <root>/bin/codex.js
    let (platform, triple) = platform_and_triple()?;
    let platform_package = format!("codex-{platform}");
    let vendors = [
        package_root.join("node_modules/@openai").join(&platform_package).join("vendor"),
        package_root.parent()?.join(&platform_package).join("vendor"), // hoisted: node_modules/@openai/
        package_root.join("vendor"),
    ];
    let native = vendors
        .iter()
        .flat_map(|v| [v.join(triple).join("bin/codex"), v.join(triple).join("codex/codex")])
        .find(|p| p.is_file())?;
    let env = vec![
        ("CODEX_MANAGED_PACKAGE_ROOT".to_owned(), package_root.display().to_string()),
        ("CODEX_MANAGED_BY_NPM".to_owned(), "1".to_owned()),
    ];
    Some((native, env))
}

/// The npm platform suffix and Rust target triple the launcher uses here.
fn platform_and_triple() -> Option<(&'static str, &'static str)> {
    Some(match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => ("linux-x64", "x86_64-unknown-linux-musl"),
        ("linux", "aarch64") => ("linux-arm64", "aarch64-unknown-linux-musl"),
        ("macos", "x86_64") => ("darwin-x64", "x86_64-apple-darwin"),
        ("macos", "aarch64") => ("darwin-arm64", "aarch64-apple-darwin"),
        _ => return None,
    })
}

/// `OsString` arguments from string slices.
pub(crate) fn os_args<I: IntoIterator<Item = S>, S: Into<OsString>>(args: I) -> Vec<OsString> {
    args.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC_0169: &str = "  -s, --sandbox <SANDBOX_MODE>\n      --dangerously-bypass-approvals-and-sandbox\n      --skip-git-repo-check\n  -p, --profile <CONFIG_PROFILE_V2>\nCommands:\n  resume  Resume a previous session";
    const RESUME_0169: &str =
        "  -m, --model <MODEL>\n      --dangerously-bypass-approvals-and-sandbox\n      --skip-git-repo-check\n";

    #[test]
    fn flags_come_from_help_text() {
        let caps = Capabilities::from_help(EXEC_0169, Some(RESUME_0169));
        assert!(!caps.full_auto && caps.profile && caps.bypass_sandbox && caps.skip_git_repo_check);
        assert!(caps.resume && caps.resume_model && caps.resume_skip_git_repo_check && !caps.resume_full_auto);
        let old = Capabilities::from_help("      --full-auto\n  -p, --profile <P>\n", None);
        assert!(old.full_auto && !old.resume);
        // A flag named inside another word does not count.
        assert!(!Capabilities::from_help("--full-auto-ish", None).full_auto);
    }

    #[test]
    fn the_app_server_command_is_found_in_the_help() {
        assert!(lists_app_server("Commands:\n  exec  Run\n  app-server        [experimental] Run the app server\n"));
        assert!(!lists_app_server("Commands:\n  exec  Run Codex; see app-server\n"));
    }

    #[tokio::test]
    async fn a_probe_is_kept_per_binary_until_the_binary_changes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let codex = dir.path().join("codex");
        let script = |version: &str| {
            format!(
                "#!/bin/sh\ncase \"$1\" in --version) echo 'codex-cli {version}';; *) echo 'app-server  run';; esac\n"
            )
        };
        std::fs::write(&codex, script("1.0.0")).unwrap();
        std::fs::set_permissions(&codex, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mtime = std::fs::metadata(&codex).unwrap().modified().unwrap();
        let cache = dir.path().join("cache");
        let first = CodexCli::locate(Some(&codex), Some(&cache)).await.unwrap();
        assert_eq!(first.version, "1.0.0");
        assert!(first.capabilities.app_server);
        // The same size and time: the cache answers, the binary is not run.
        std::fs::write(&codex, script("2.0.0")).unwrap();
        std::fs::File::options().write(true).open(&codex).unwrap().set_modified(mtime).unwrap();
        assert_eq!(CodexCli::locate(Some(&codex), Some(&cache)).await.unwrap(), first);
        // A changed binary is probed again.
        std::fs::File::options()
            .write(true)
            .open(&codex)
            .unwrap()
            .set_modified(mtime + std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(CodexCli::locate(Some(&codex), Some(&cache)).await.unwrap().version, "2.0.0");
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("codex-cli 0.169.0\n").unwrap(), "0.169.0");
        assert!(parse_version("node: not found").is_err());
    }

    #[test]
    fn launcher_is_seen_through_to_the_native_binary() {
        let (platform, triple) = platform_and_triple().unwrap();
        let root = tempfile::tempdir().unwrap();
        let pkg = root.path().join("node_modules/@openai/codex");
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        std::fs::write(pkg.join("bin/codex.js"), "#!/usr/bin/env node\n").unwrap();
        let link = root.path().join("codex");
        std::os::unix::fs::symlink(pkg.join("bin/codex.js"), &link).unwrap();
        assert!(native_behind_launcher(&link).is_none(), "no platform package yet");
        let native = root.path().join(format!("node_modules/@openai/codex-{platform}/vendor/{triple}/bin/codex"));
        std::fs::create_dir_all(native.parent().unwrap()).unwrap();
        std::fs::write(&native, "").unwrap();
        let (found, env) = native_behind_launcher(&link).unwrap();
        assert_eq!(found, std::fs::canonicalize(&native).unwrap());
        assert!(env.iter().any(|(k, _)| k == "CODEX_MANAGED_PACKAGE_ROOT"));
        // A plain binary is run as it is.
        assert!(native_behind_launcher(&native).is_none());
    }
}
