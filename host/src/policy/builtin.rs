//! The built-in truncations: used when no truncation component is configured,
//! and in place of one that fails.

pub use super::Keep;
use super::Limits;

/// Default limits for `job_status` output: the last 100 lines, at most 8,000 characters.
pub const OUTPUT_LIMITS: Limits = Limits { max_chars: 8_000, max_lines: 100, keep: Keep::Tail };

/// No length limit, for redaction only; the `keep` end is the start.
pub const NO_LIMIT: Limits = Limits { max_chars: u32::MAX, max_lines: u32::MAX, keep: Keep::Head };

/// Cuts `text` to `limits`, keeping the `limits.keep` end, with a marker
/// saying how much was cut: `[… 123 chars cut …]` at the cut. Cuts on
/// character boundaries.
pub fn truncate(text: &str, limits: Limits) -> String {
    let keep = limits.keep;
    let max_lines = limits.max_lines as usize;
    let max_chars = limits.max_chars as usize;
    if text.len() <= max_chars && text.len() < max_lines {
        return text.to_owned(); // fewer bytes than either limit: nothing to cut
    }
    let mut text = std::borrow::Cow::Borrowed(text);
    let line_count = text.split_inclusive('\n').count();
    if line_count > max_lines {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let kept = match keep {
            Keep::Tail => lines[line_count - max_lines..].concat(),
            Keep::Head => lines[..max_lines].concat(),
        };
        let cut = line_count - max_lines;
        text = match keep {
            Keep::Tail => format!("[… {cut} lines cut …]\n{kept}"),
            Keep::Head => format!("{kept}[… {cut} lines cut …]"),
        }
        .into();
    }
    let count = text.chars().count();
    if count <= max_chars {
        return text.into_owned();
    }
    let cut = count - max_chars;
    match keep {
        Keep::Tail => format!("[… {cut} chars cut …]{}", text.chars().skip(cut).collect::<String>()),
        Keep::Head => format!("{}…[{cut} more chars]", text.chars().take(max_chars).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_chosen_end() {
        let l = |c, n, keep| Limits { max_chars: c, max_lines: n, keep };
        assert_eq!(truncate("a\nb\nc\n", l(100, 2, Keep::Tail)), "[… 1 lines cut …]\nb\nc\n");
        assert_eq!(truncate("a\nb\nc\n", l(100, 2, Keep::Head)), "a\nb\n[… 1 lines cut …]");
        assert_eq!(truncate("héllo wörld", l(2, 10, Keep::Head)), "hé…[9 more chars]");
        assert_eq!(truncate("héllo wörld", l(3, 10, Keep::Tail)), "[… 8 chars cut …]rld");
        assert_eq!(truncate("short", OUTPUT_LIMITS), "short");
    }
}
