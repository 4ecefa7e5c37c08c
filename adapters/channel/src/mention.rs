//! The tidy-up of a message's text once the bot's mentions are taken out
//! of it, the same on every platform: runs of spaces become one, and the
//! comma or colon left after a leading mention (`@bot, hello`) goes. How a
//! mention is written, and so where it is, is the platform's business.

/// `text` without the byte `spans` (the bot's mentions, in order and not
/// overlapping), tidied with [`tidy`].
pub fn cut(text: &str, spans: impl IntoIterator<Item = (usize, usize)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (start, end) in spans {
        // A span off a char boundary, out of range or out of order is
        // ignored: nothing else is lost.
        if let (Some(kept), true) = (text.get(from..start), text.get(end..).is_some()) {
            out.push_str(kept);
            from = end;
        }
    }
    out.push_str(text.get(from..).unwrap_or_default());
    tidy(&out)
}

/// `text` with runs of spaces made one, trimmed, and without a leading
/// comma or colon.
pub fn tidy(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    words
        .join(" ")
        .trim()
        .trim_start_matches([',', ':'])
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_and_a_leading_comma_or_colon_are_tidied() {
        assert_eq!(tidy("  , hello   there "), "hello there");
        assert_eq!(tidy(": what is 2+2?"), "what is 2+2?");
        assert_eq!(tidy("a, b: c"), "a, b: c");
        assert_eq!(tidy(" \n "), "");
    }

    #[test]
    fn spans_are_cut_out_before_the_tidy_up() {
        let text = "@bot, hello @bot there";
        assert_eq!(cut(text, [(0, 4), (12, 16)]), "hello there");
        assert_eq!(cut("hello", []), "hello");
        assert_eq!(cut("@bot", [(0, 4)]), "");
    }

    #[test]
    fn spans_off_a_char_boundary_or_out_of_range_are_ignored() {
        assert_eq!(cut("é@bot x", [(1, 6)]), "é@bot x");
        assert_eq!(cut("abc", [(1, 99)]), "abc");
        assert_eq!(cut("ab cd", [(3, 5), (0, 2)]), "ab");
    }
}
