//! Output truncation that keeps the head and the tail of the text, with a
//! marker saying how much was cut, whichever end the host says matters most
//! (`head_share` decides). Cuts on character boundaries (UTF-8 safe).

use codex_jobhost_policy::{Job, Limits, OutputTruncation, export_output_truncation};
use serde::Deserialize;

/// Settings (`config` in `jobhost.toml`).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Share of the kept lines and characters taken from the head, 0.0 to 1.0.
    pub head_share: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { head_share: 0.3 }
    }
}

/// The policy.
pub struct HeadTail;

impl OutputTruncation for HeadTail {
    type Settings = Settings;

    fn truncate(settings: &Settings, _job: &Job, text: &str, limits: Limits) -> String {
        let share = settings.head_share.clamp(0.0, 1.0);
        let by_lines = keep_lines(text, limits.max_lines as usize, share);
        keep_chars(&by_lines, limits.max_chars as usize, share)
    }
}

fn keep_lines(text: &str, max: usize, share: f64) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.len() <= max {
        return text.to_owned();
    }
    let head = ((max as f64) * share).floor() as usize;
    let tail = max - head;
    let cut = lines.len() - head - tail;
    let mut out: String = lines[..head].concat();
    out.push_str(&format!("[… {cut} lines cut …]\n"));
    out.push_str(&lines[lines.len() - tail..].concat());
    out
}

fn keep_chars(text: &str, max: usize, share: f64) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let head = ((max as f64) * share).floor() as usize;
    let tail = max - head;
    let head_str: String = text.chars().take(head).collect();
    let tail_str: String = text.chars().skip(count - tail).collect();
    format!("{head_str}[… {} chars cut …]{tail_str}", count - head - tail)
}

export_output_truncation!(HeadTail);

#[cfg(test)]
mod tests {
    use codex_jobhost_policy::Keep;

    use super::*;

    fn limits(max_chars: u32, max_lines: u32) -> Limits {
        Limits { max_chars, max_lines, keep: Keep::Tail }
    }

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(HeadTail::truncate(&Settings::default(), &Job::default(), "a\nb\n", limits(100, 10)), "a\nb\n");
    }

    #[test]
    fn keeps_head_and_tail_lines() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let out = HeadTail::truncate(&Settings { head_share: 0.5 }, &Job::default(), &text, limits(10_000, 4));
        assert_eq!(out, "line 0\nline 1\n[… 96 lines cut …]\nline 98\nline 99\n");
    }

    #[test]
    fn cuts_chars_on_boundaries() {
        let out = HeadTail::truncate(&Settings { head_share: 0.5 }, &Job::default(), "ééééééééé€€", limits(4, 100));
        assert_eq!(out, "éé[… 7 chars cut …]€€");
    }
}
