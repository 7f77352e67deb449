//! Discord's message limits and the middle truncation that keeps texts within them.
//!
//! Discord counts Unicode code points after trimming whitespace, so do we (`chars()`, never
//! `len()`). Long texts lose their middle, not their end: the root cause of an outage is often
//! the last line of the timeline.

/// `embeds[].title`.
pub const TITLE_MAX: usize = 256;
/// `embeds[].description`.
pub const DESCRIPTION_MAX: usize = 4096;
/// `embeds[].footer.text`.
pub const FOOTER_MAX: usize = 2048;
/// `embeds[].author.name`.
pub const AUTHOR_NAME_MAX: usize = 256;
/// `embeds[].fields[].name`.
pub const FIELD_NAME_MAX: usize = 256;
/// `embeds[].fields[].value`.
pub const FIELD_VALUE_MAX: usize = 1024;
/// Fields per embed.
pub const FIELDS_MAX: usize = 25;
/// Embeds per message.
pub const EMBEDS_MAX: usize = 10;
/// `content`.
pub const CONTENT_MAX: usize = 2000;
/// Sum of every title, description, field name and value, footer text and author name of
/// all embeds of one message.
pub const EMBED_TOTAL_MAX: usize = 6000;
/// The largest embed colour.
pub const COLOR_MAX: u64 = 0xFF_FF_FF;

/// The length Discord checks: code points after trimming.
pub fn count(text: &str) -> usize {
    text.trim().chars().count()
}

/// Marker put where text was cut, on one line.
pub const MARKER_INLINE: &str = " … ";
/// Marker put where text was cut, for multi-line text (the cut shows as its own line).
pub const MARKER_LINES: &str = "\n…\n";

/// The pieces of a middle-truncated text: `head + marker + tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut<'a> {
    pub head: &'a str,
    pub marker: &'static str,
    pub tail: &'a str,
}

/// How `text` (already trimmed) is cut to fit `max` code points; `None` if it fits or `max`
/// is too small for a marker (then [`truncate_middle`] keeps only the start).
pub fn cut(text: &str, max: usize) -> Option<Cut<'_>> {
    let n = text.chars().count();
    if n <= max {
        return None;
    }
    let marker = if text.contains('\n') {
        MARKER_LINES
    } else {
        MARKER_INLINE
    };
    let marker_len = marker.chars().count();
    if max < marker_len + 2 {
        return None;
    }
    let keep = max - marker_len;
    let mut head_len = keep / 2;
    let mut tail_len = keep - head_len;
    // Byte offsets of every char boundary, so slices stay on code points.
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars: Vec<char> = text.chars().collect();
    if marker == MARKER_LINES {
        // Prefer whole lines when a line break is near the cut (within a quarter of the part).
        if let Some(p) = chars[..head_len].iter().rposition(|&c| c == '\n')
            && p > 0
            && p >= head_len - head_len / 4
        {
            head_len = p;
        }
        let tail_start = n - tail_len;
        if let Some(p) = chars[tail_start..].iter().position(|&c| c == '\n')
            && p < tail_len / 4
            && p + 1 < tail_len
        {
            tail_len -= p + 1;
        }
    }
    let head = text[..bounds[head_len]].trim_end();
    let tail = text[bounds[n - tail_len]..].trim_start();
    Some(Cut { head, marker, tail })
}

/// Trims `text` and, if it has more than `max` code points, replaces its middle with an
/// ellipsis marker so that the result has at most `max` code points and keeps the text's start
/// and end. Never returns an empty string for a non-blank text and `max > 0`.
pub fn truncate_middle(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    match cut(text, max) {
        Some(c) => format!("{}{}{}", c.head, c.marker, c.tail),
        None => {
            // Too short for a marker: keep the start.
            let head: String = text.chars().take(max).collect();
            head.trim_end().to_string()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_only_trimmed() {
        assert_eq!(truncate_middle("  hello \n", 10), "hello");
        assert_eq!(truncate_middle("", 10), "");
    }

    #[test]
    fn long_line_keeps_head_and_tail() {
        let text = format!("{}{}", "a".repeat(50), "z".repeat(50));
        let out = truncate_middle(&text, 21);
        assert_eq!(out, format!("{} … {}", "a".repeat(9), "z".repeat(9)));
        assert_eq!(out.chars().count(), 21);
    }

    #[test]
    fn counts_code_points_not_bytes() {
        // 4-byte emoji: 300 code points, 1200 bytes.
        let text = "🔥".repeat(300);
        let out = truncate_middle(&text, 256);
        assert_eq!(out.chars().count(), 256);
        assert!(out.starts_with("🔥🔥") && out.ends_with("🔥🔥"));
        assert_eq!(truncate_middle(&"é".repeat(256), 256).chars().count(), 256);
    }

    #[test]
    fn multi_line_cut_prefers_whole_lines() {
        let lines: Vec<String> = (0..40).map(|i| format!("12:00:{i:02} line {i}")).collect();
        let text = lines.join("\n");
        let out = truncate_middle(&text, 120);
        assert!(out.chars().count() <= 120);
        assert!(out.starts_with("12:00:00 line 0\n"));
        assert!(out.ends_with("12:00:39 line 39"));
        assert!(out.contains("\n…\n"));
        // Whole lines on both sides of the marker.
        let (head, tail) = out.split_once("\n…\n").unwrap();
        assert!(
            head.lines().all(|l| lines.contains(&l.to_string())),
            "{head}"
        );
        assert!(
            tail.lines().all(|l| lines.contains(&l.to_string())),
            "{tail}"
        );
    }

    #[test]
    fn tiny_limits_keep_the_start() {
        assert_eq!(truncate_middle("abcdef", 3), "abc");
        assert_eq!(truncate_middle("abcdef", 0), "");
        assert_eq!(truncate_middle("ab    cdef", 4), "ab");
    }

    fn texts() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z \n]{0,400}",
            "(🔥|é|中|\u{200d}|👩‍👩‍👧|\n| |x|\u{3000}){0,600}",
            proptest::collection::vec("[ -~]{0,80}", 0..60).prop_map(|l| l.join("\n")),
        ]
    }

    proptest! {
        #[test]
        fn always_within_limit_and_keeps_both_ends(text in texts(), max in 0usize..300) {
            let out = truncate_middle(&text, max);
            let trimmed = text.trim();
            prop_assert!(count(&out) <= max);
            prop_assert!(out.chars().count() <= max);
            if trimmed.chars().count() <= max {
                prop_assert_eq!(&out, trimmed);
            } else if let Some(c) = cut(trimmed, max) {
                prop_assert_eq!(&out, &format!("{}{}{}", c.head, c.marker, c.tail));
                prop_assert!(trimmed.starts_with(c.head));
                prop_assert!(trimmed.ends_with(c.tail));
                prop_assert!(!c.head.is_empty() && !c.tail.is_empty());
            } else {
                prop_assert!(trimmed.starts_with(out.as_str()));
            }
            if !trimmed.is_empty() && max > 0 {
                prop_assert!(!out.is_empty());
            }
        }

        #[test]
        fn both_ends_keep_a_fair_share(text in "([a-z]{1,5}\n){0,10}[a-z]{500,900}(\n[a-z]{1,5}){0,10}", max in 10usize..300) {
            // Without blanks at the cut, each side keeps at least 3/4 of its half.
            let c = cut(&text, max).unwrap();
            let keep = max - c.marker.chars().count();
            prop_assert!(c.head.chars().count() + 1 >= keep / 2 - keep / 8);
            prop_assert!(c.tail.chars().count() >= (keep - keep / 2) - (keep - keep / 2) / 4 - 1);
            prop_assert!(text.starts_with(c.head) && text.ends_with(c.tail));
        }
    }
}
