//! The bound on what one reply may be: `[engine] max_reply_chars`. A model
//! can answer with megabytes; posted whole, that is thousands of platform
//! messages, minutes in which the conversation cannot answer anything
//! else, and the same megabytes again in every later request's context.

/// What is added to a reply that was cut; `{max}` is the limit.
const CUT_NOTE: &str = "_(This answer was cut: it was longer than {max} characters.)_";

/// `text`, or its first `max` characters (at a paragraph or line break
/// when one is near the end) with a note saying it was cut. A code block
/// left open by the cut is closed.
pub fn cap_reply(text: String, max: usize) -> String {
    let Some((end, _)) = text.char_indices().nth(max) else {
        return text;
    };
    let head = &text[..end];
    // Prefer a break in the last fifth of what is kept.
    let floor = head.len() - head.len() / 5;
    let cut = ["\n\n", "\n"]
        .iter()
        .find_map(|sep| head.rfind(sep).filter(|at| *at >= floor))
        .unwrap_or(head.len());
    let mut kept = head[..cut].trim_end().to_owned();
    if kept.matches("```").count() % 2 == 1 {
        kept.push_str("\n```");
    }
    kept.push_str("\n\n");
    kept.push_str(&CUT_NOTE.replace("{max}", &max.to_string()));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_reply_is_kept_whole() {
        assert_eq!(cap_reply("hello".into(), 5), "hello");
    }

    #[test]
    fn a_long_reply_is_cut_at_a_break_with_a_note() {
        let text = format!("{}\n\n{}", "a".repeat(90), "b".repeat(50));
        let capped = cap_reply(text, 100);
        assert!(capped.starts_with(&"a".repeat(90)), "{capped}");
        assert!(!capped.contains('b'), "{capped}");
        assert!(
            capped.ends_with("longer than 100 characters.)_"),
            "{capped}"
        );
    }

    #[test]
    fn a_cut_inside_a_code_block_closes_it_and_counts_characters_not_bytes() {
        let text = format!("```\n{}", "é".repeat(500));
        let capped = cap_reply(text, 100);
        assert!(capped.starts_with("```\né"), "{capped}");
        assert_eq!(capped.matches("```").count(), 2, "{capped}");
        assert!(capped.chars().count() < 200, "{capped}");
    }
}
