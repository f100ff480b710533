//! `codex-jobhost-hook`: the process Codex runs before each tool call of a
//! job with an approval policy (the `codex_jobhost_hook` crate). A program of
//! its own, installed beside `codex-jobhost`, because it starts once a tool
//! call: it links only the hook client, not the server.

fn main() -> std::process::ExitCode {
    codex_jobhost_hook::run()
}
