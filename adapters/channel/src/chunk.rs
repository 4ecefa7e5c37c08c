//! Splitting a long reply into messages a platform accepts.

/// The closing fence appended to a chunk that ends inside a code block.
const CLOSE_FENCE: &str = "\n```";

/// Splits `text` into chunks of at most `limit` characters.
///
/// Splits prefer a paragraph break, then a line break, then a space, and cut
/// a word only when nothing else fits. A chunk that ends inside a fenced code
/// block gets a closing fence, and the next chunk reopens it with the same
/// language, so every chunk renders on its own. Lengths are counted in
/// Unicode scalar values; pass a smaller limit where a platform counts UTF-16
/// units and the text may hold characters outside the Basic Multilingual Plane.
pub fn chunk_text(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(16);
    let mut chunks = Vec::new();
    let mut rest = text.trim_end();
    let mut reopen = String::new();
    while !rest.is_empty() {
        let room = limit.saturating_sub(reopen.chars().count());
        if rest.chars().count() <= room {
            chunks.push(format!("{reopen}{rest}"));
            break;
        }
        let budget = room.saturating_sub(CLOSE_FENCE.len()).max(1);
        let cut = split_point(rest, budget);
        let body = rest[..cut].trim_end();
        let mut chunk = format!("{reopen}{body}");
        reopen = match open_fence(&chunk) {
            Some(info) => {
                chunk.push_str(CLOSE_FENCE);
                format!("```{info}\n")
            }
            None => String::new(),
        };
        chunks.push(chunk);
        rest = rest[cut..].trim_start_matches(['\n', ' ']);
    }
    chunks
}

/// The byte index to split at so that `text[..index]` has at most `budget`
/// characters, preferring paragraph, then line, then word boundaries.
fn split_point(text: &str, budget: usize) -> usize {
    let max = text
        .char_indices()
        .nth(budget)
        .map_or(text.len(), |(index, _)| index);
    let window = &text[..max];
    // A boundary in the first quarter would make a needlessly short chunk.
    let min = max / 4;
    for separator in ["\n\n", "\n", " "] {
        if let Some(index) = window.rfind(separator)
            && index > min
        {
            return index;
        }
    }
    max
}

/// The info string (language) of the code block left open at the end of
/// `text`, if one is.
fn open_fence(text: &str) -> Option<String> {
    let mut open: Option<String> = None;
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            open = match open {
                Some(_) => None,
                None => Some(info.trim().to_owned()),
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(chunk_text("hello", 100), vec!["hello"]);
        assert!(chunk_text("", 100).is_empty());
    }

    #[test]
    fn prefers_paragraph_then_line_then_word_boundaries() {
        let text = format!("{}\n\n{}", "a".repeat(60), "b".repeat(60));
        assert_eq!(chunk_text(&text, 100), vec!["a".repeat(60), "b".repeat(60)]);
        let words = "word ".repeat(50);
        for chunk in chunk_text(&words, 32) {
            assert!(chunk.chars().count() <= 32);
            assert!(
                chunk.split(' ').all(|w| w == "word"),
                "cut a word: {chunk:?}"
            );
        }
    }

    #[test]
    fn cuts_a_word_only_when_nothing_else_fits() {
        let chunks = chunk_text(&"x".repeat(250), 100);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.chars().count() <= 100));
        assert_eq!(chunks.concat(), "x".repeat(250));
    }

    #[test]
    fn code_blocks_are_closed_and_reopened_across_chunks() {
        let code: String = (0..40).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!("Here:\n\n```rust\n{code}```\nDone.");
        let chunks = chunk_text(&text, 200);
        assert!(chunks.len() > 2);
        for chunk in &chunks {
            assert!(chunk.chars().count() <= 200, "too long: {}", chunk.len());
            let fences = chunk.lines().filter(|l| l.starts_with("```")).count();
            assert_eq!(fences % 2, 0, "unbalanced fences in {chunk:?}");
        }
        assert!(chunks[1].starts_with("```rust\n"));
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "é".repeat(150);
        let chunks = chunk_text(&text, 100);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].chars().count(), 100 - CLOSE_FENCE.len());
    }
}
