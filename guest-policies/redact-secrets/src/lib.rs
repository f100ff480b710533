//! Output truncation that masks API-key shapes (`sk-…`, `AKIA…`, `ghp_…` and
//! friends) before cutting the text to the limits (keeping the end the host
//! asks for: the end of an output tail, the start of an event's string).

use std::borrow::Cow;

use codex_jobhost_policy::{Job, Keep, Limits, OutputTruncation, export_output_truncation};
use serde::Deserialize;

/// Settings (`config` in `jobhost.toml`).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// What replaces a secret.
    pub mask: String,
    /// Extra prefixes that start a secret, besides the built-in ones.
    pub extra_prefixes: Vec<String>,
    /// Cut to the limits after masking; `false` leaves the cutting to the
    /// next truncation in the chain (or the host's built-in cut).
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
        if settings.cut { cut(masked, limits) } else { masked.into_owned() }
    }
}

/// Replaces every token that starts a word with a key prefix and goes on with
/// at least the prefix's minimum of key characters (ASCII letters, digits, `-`, `_`).
/// Text without a secret is returned as it is, uncopied.
pub fn redact<'t>(text: &'t str, settings: &Settings) -> Cow<'t, str> {
    let extra = settings.extra_prefixes.iter().map(|p| (p.as_str(), 8));
    let prefixes = || PREFIXES.iter().copied().chain(extra.clone());
    // Which bytes can start a secret: one pass over the text then finds them all.
    let mut starts = [false; 256];
    prefixes().filter_map(|(p, _)| p.bytes().next()).for_each(|b| starts[usize::from(b)] = true);
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0; // text[..copied] is settled: in `out`, or masked
    for (at, byte) in bytes.iter().enumerate() {
        // Cheapest test first: most bytes cannot start a secret.
        if !starts[usize::from(*byte)] || at < copied || (at > 0 && bytes[at - 1].is_ascii_alphanumeric()) {
            continue;
        }
        // `at` holds a prefix's first byte, never a UTF-8 continuation byte, so it is a char boundary.
        let rest = &text[at..];
        let secret = prefixes().find_map(|(prefix, min)| {
            let after = rest.strip_prefix(prefix)?;
            let key = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_').count();
            (key >= min).then_some(prefix.len() + key)
        });
        if let Some(len) = secret {
            out.push_str(&text[copied..at]);
            out.push_str(&settings.mask);
            copied = at + len;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Keeps `max_lines` lines and `max_chars` characters from the end `limits.keep` names.
fn cut(text: Cow<'_, str>, limits: Limits) -> String {
    let (max_chars, max_lines) = (limits.max_chars as usize, limits.max_lines as usize);
    // Fewer bytes than characters allowed, and fewer bytes (so newlines) than lines allowed.
    if text.len() <= max_chars && (text.len() < max_lines || text.bytes().filter(|b| *b == b'\n').count() < max_lines) {
        return text.into_owned();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let text = match limits.keep {
        _ if lines.len() <= max_lines => text.to_string(),
        Keep::Tail => lines[lines.len() - max_lines..].concat(),
        Keep::Head => lines[..max_lines].concat(),
    };
    let count = text.chars().count();
    if count <= max_chars {
        return text;
    }
    let cut = count - max_chars;
    match limits.keep {
        Keep::Tail => format!("[… {cut} chars cut …]{}", text.chars().skip(cut).collect::<String>()),
        Keep::Head => format!("{}[… {cut} chars cut …]", text.chars().take(max_chars).collect::<String>()),
    }
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
        let at_ends = "sk-abcdefghijklmnop1234\nxoxb-1234567890";
        assert_eq!(redact(at_ends, &s), "[REDACTED]\n[REDACTED]");
    }

    #[test]
    fn leaves_lookalikes_alone() {
        let s = Settings::default();
        assert_eq!(redact("task-list and risk-free sk-short", &s), "task-list and risk-free sk-short");
        assert_eq!(redact("é sk-ünïcode", &s), "é sk-ünïcode");
        assert_eq!(redact("mask-abcdefghijklmnopqrstuvw", &s), "mask-abcdefghijklmnopqrstuvw");
    }

    #[test]
    fn masks_before_cutting() {
        let s = Settings { extra_prefixes: vec!["tok_".into()], ..Settings::default() };
        let out = RedactSecrets::truncate(
            &s,
            &Job::default(),
            "a\nb tok_12345678\n",
            Limits { max_chars: 100, max_lines: 1, keep: Keep::Tail },
        );
        assert_eq!(out, "b [REDACTED]\n");
        let tail = Limits { max_chars: 3, max_lines: 10, keep: Keep::Tail };
        assert_eq!(RedactSecrets::truncate(&s, &Job::default(), "0123456789", tail), "[… 7 chars cut …]789");
        // An event's string keeps its start.
        let head = Limits { keep: Keep::Head, ..tail };
        assert_eq!(RedactSecrets::truncate(&s, &Job::default(), "0123456789", head), "012[… 7 chars cut …]");
        let out = RedactSecrets::truncate(&s, &Job::default(), "a\nb\nc\n", Limits { max_lines: 1, ..head });
        assert_eq!(out, "a\n");
        let uncut = Settings { cut: false, ..Settings::default() };
        assert_eq!(
            RedactSecrets::truncate(
                &uncut,
                &Job::default(),
                "0123456789",
                Limits { max_chars: 3, max_lines: 1, keep: Keep::Tail }
            ),
            "0123456789"
        );
    }
}
