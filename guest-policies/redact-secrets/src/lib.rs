//! Output truncation that masks API-key shapes (`sk-…`, `AKIA…`, `ghp_…` and
//! friends) before cutting the text to the limits (keeping its end).

use codex_jobhost_policy::{Job, Limits, OutputTruncation, export_output_truncation};
use serde::Deserialize;

/// Settings (`config` in `jobhost.toml`).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// What replaces a secret.
    pub mask: String,
    /// Extra prefixes that start a secret, besides the built-in ones.
    pub extra_prefixes: Vec<String>,
    /// Cut to the limits after masking (keeping the end); `false` leaves the
    /// cutting to the next truncation in the chain.
    pub cut: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { mask: "[REDACTED]".into(), extra_prefixes: Vec::new(), cut: true }
    }
}

/// Prefixes of well-known key shapes and the fewest characters that must follow.
const PREFIXES: [(&str, usize); 7] =
    [("sk-", 16), ("AKIA", 16), ("ghp_", 20), ("gho_", 20), ("ghs_", 20), ("github_pat_", 20), ("xoxb-", 10)];

/// The policy.
pub struct RedactSecrets;

impl OutputTruncation for RedactSecrets {
    type Settings = Settings;

    fn truncate(settings: &Settings, _job: &Job, text: &str, limits: Limits) -> String {
        let masked = redact(text, settings);
        if settings.cut { cut_to_tail(&masked, limits) } else { masked }
    }
}

/// Replaces every token that starts with a key prefix and goes on with at
/// least the prefix's minimum of key characters.
pub fn redact(text: &str, settings: &Settings) -> String {
    let extra: Vec<(&str, usize)> = settings.extra_prefixes.iter().map(|p| (p.as_str(), 8)).collect();
    // Most text holds no prefix at all: one pass per prefix finds that out.
    if !PREFIXES.iter().chain(extra.iter()).any(|(p, _)| text.contains(p)) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (prefix, min) in PREFIXES.iter().copied().chain(extra.iter().copied()) {
            if let Some(after) = rest.strip_prefix(prefix) {
                let key_len =
                    after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(after.len());
                let at_word_start = out.chars().last().is_none_or(|c| !c.is_ascii_alphanumeric());
                if key_len >= min && at_word_start {
                    out.push_str(&settings.mask);
                    rest = &after[key_len..];
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Keeps the last `max_lines` lines and `max_chars` characters.
fn cut_to_tail(text: &str, limits: Limits) -> String {
    if text.len() <= limits.max_chars as usize
        && text.bytes().filter(|b| *b == b'\n').count() < limits.max_lines as usize
    {
        return text.to_owned();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let max_lines = limits.max_lines as usize;
    let text = if lines.len() > max_lines { lines[lines.len() - max_lines..].concat() } else { text.to_owned() };
    let count = text.chars().count();
    let max_chars = limits.max_chars as usize;
    if count <= max_chars {
        return text;
    }
    let tail: String = text.chars().skip(count - max_chars).collect();
    format!("[… {} chars cut …]{tail}", count - max_chars)
}

export_output_truncation!(RedactSecrets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_key_shapes() {
        let s = Settings::default();
        let text =
            "OPENAI=sk-proj-abcdefghijklmnop1234 aws AKIAIOSFODNN7EXAMPLE gh ghp_abcdefghijklmnopqrstuvwxyz0123 ok";
        assert_eq!(redact(text, &s), "OPENAI=[REDACTED] aws [REDACTED] gh [REDACTED] ok");
    }

    #[test]
    fn leaves_lookalikes_alone() {
        let s = Settings::default();
        assert_eq!(redact("task-list and risk-free sk-short", &s), "task-list and risk-free sk-short");
        assert_eq!(redact("é sk-ünïcode", &s), "é sk-ünïcode");
    }

    #[test]
    fn masks_before_cutting() {
        let s = Settings { extra_prefixes: vec!["tok_".into()], ..Settings::default() };
        let out = RedactSecrets::truncate(
            &s,
            &Job::default(),
            "a\nb tok_12345678\n",
            Limits { max_chars: 100, max_lines: 1 },
        );
        assert_eq!(out, "b [REDACTED]\n");
        let out = RedactSecrets::truncate(&s, &Job::default(), "0123456789", Limits { max_chars: 3, max_lines: 10 });
        assert_eq!(out, "[… 7 chars cut …]789");
        let uncut = Settings { cut: false, ..Settings::default() };
        assert_eq!(
            RedactSecrets::truncate(&uncut, &Job::default(), "0123456789", Limits { max_chars: 3, max_lines: 1 }),
            "0123456789"
        );
    }
}
