//! Splitting a long reply into messages a platform accepts.
//!
//! Fenced code blocks are found with pulldown-cmark, so `~~~` fences,
//! fences of four or more backticks, fences inside block quotes and list
//! items, and fence-like lines inside a longer fence are all read as
//! CommonMark reads them. A chunk cut inside a block is closed with the
//! same fence and the next chunk reopens it.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag};

/// The shortest closing fence; room for it is kept in every chunk that is
/// cut, and more when the block being cut needs a longer one.
const CLOSE_FENCE: &str = "\n```";

/// Splits `text` into chunks of at most `limit` characters.
///
/// Splits prefer a paragraph break, then a line break, then a space, and cut
/// a word only when nothing else fits. A chunk that ends inside a fenced code
/// block gets a closing fence, and the next chunk reopens it with the same
/// fence line (fence characters, language, and the quote or list indentation
/// it sits in), so every chunk renders on its own. Lengths are counted in
/// Unicode scalar values; pass a smaller limit where a platform counts UTF-16
/// units and the text may hold characters outside the Basic Multilingual Plane.
pub fn chunk_text(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(16);
    let text = text.trim_end();
    let fences = fences(text);
    let mut chunks = Vec::new();
    // Byte offset in `text` where the next chunk's own text starts.
    let mut pos = 0;
    let mut reopen = String::new();
    while pos < text.len() {
        let rest = &text[pos..];
        let room = limit.saturating_sub(reopen.chars().count());
        if rest.chars().count() <= room {
            chunks.push(format!("{reopen}{rest}"));
            break;
        }
        let (cut, open) = cut_point(text, pos, room, &fences);
        let mut chunk = format!("{reopen}{}", text[pos..cut].trim_end());
        reopen.clear();
        pos = match open {
            Some(fence) => {
                chunk.push('\n');
                chunk.push_str(&fence.closing);
                let mut next = cut + text[cut..].len() - text[cut..].trim_start_matches('\n').len();
                if next == cut && text[cut..].starts_with(' ') {
                    next += 1;
                }
                if next >= fence.close {
                    // Only the closing fence is left: it was just written.
                    skip_blank(text, fence.end)
                } else {
                    reopen = fence.reopen(limit);
                    next
                }
            }
            None => skip_blank(text, cut),
        };
        chunks.push(chunk);
    }
    chunks
}

/// `from`, moved past line breaks and spaces.
fn skip_blank(text: &str, from: usize) -> usize {
    text.len() - text[from..].trim_start_matches(['\n', ' ']).len()
}

/// Where to end the chunk that starts at `pos` and may hold `room`
/// characters, and the code block it ends inside, if any.
fn cut_point<'f>(
    text: &str,
    pos: usize,
    room: usize,
    fences: &'f [Fence],
) -> (usize, Option<&'f Fence>) {
    let mut reserve = CLOSE_FENCE.len();
    loop {
        let budget = room.saturating_sub(reserve).max(1);
        let mut cut = pos + split_point(&text[pos..], budget);
        let Some(fence) = fences.iter().find(|f| f.start < cut && cut < f.end) else {
            return (cut, None);
        };
        if cut <= fence.body {
            // Cut in (or just after) the opening fence line: end the chunk
            // before the block instead, when anything comes before it.
            if fence.start > pos {
                return (fence.start, None);
            }
            // The chunk starts with the block and its first line is too long
            // to fit: cut that line where the budget ends.
            let hard = text[pos..]
                .char_indices()
                .nth(budget)
                .map_or(text.len(), |(index, _)| pos + index);
            if hard <= fence.body {
                // A fence line longer than a whole chunk: nothing sensible
                // is left to do but cut it.
                return (cut, None);
            }
            cut = hard;
        }
        let needed = fence.closing.chars().count() + 1;
        if needed > reserve {
            reserve = needed;
            continue;
        }
        cut = cut.min(fence.close);
        return (cut, Some(fence));
    }
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
    if max == 0 {
        // Never an empty chunk: take the first character.
        return text.chars().next().map_or(text.len(), char::len_utf8);
    }
    max
}

/// One fenced code block in the text, by byte offsets.
#[derive(Debug)]
struct Fence {
    /// The start of the opening fence line.
    start: usize,
    /// Just after the opening fence line and its line break: the code.
    body: usize,
    /// The start of the closing fence line, or `end` if the block is left
    /// open.
    close: usize,
    /// The end of the closing fence (or of the block, if left open).
    end: usize,
    /// The opening fence line, with a list marker before it turned into
    /// spaces, so that a reopened block sits where it sat.
    opening: String,
    /// `opening` without its info string, for when that is too long.
    bare: String,
    /// The line that closes the block: the same indentation and fence.
    closing: String,
}

impl Fence {
    /// The line (with its line break) that reopens this block at the start
    /// of a chunk of at most `limit` characters.
    fn reopen(&self, limit: usize) -> String {
        if self.opening.chars().count() <= limit / 4 {
            format!("{}\n", self.opening)
        } else {
            format!("{}\n", self.bare)
        }
    }
}

/// The fenced code blocks of `text`, in order.
fn fences(text: &str) -> Vec<Fence> {
    Parser::new_ext(text, Options::empty())
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                fence(text, range.start, range.end)
            }
            _ => None,
        })
        .collect()
}

/// The fence whose block pulldown-cmark reports at `from..to`.
fn fence(text: &str, from: usize, to: usize) -> Option<Fence> {
    let at = from + (text[from..].len() - text[from..].trim_start().len());
    let marker = text[at..]
        .chars()
        .next()
        .filter(|c| matches!(c, '`' | '~'))?;
    let width = text[at..].len() - text[at..].trim_start_matches(marker).len();
    let start = line_start(text, at);
    // A list marker before the fence becomes spaces; `>` and indentation stay.
    let indent: String = text[start..at]
        .chars()
        .map(|c| {
            if c == '>' || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect();
    let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
    let body = (line_end + 1).min(text.len());
    let fence = &text[at..at + width];
    let end = to.max(body).min(text.len());
    let end = from + text[from..end].trim_end().len();
    let last = line_start(text, end);
    let last_line = text[last..end].trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    let closed = last >= body
        && last_line.len() >= width
        && last_line.trim_end().chars().all(|c| c == marker);
    Some(Fence {
        start,
        body,
        close: if closed { last } else { end },
        end,
        opening: format!("{indent}{}", text[at..line_end].trim_end()),
        bare: format!("{indent}{fence}"),
        closing: format!("{indent}{fence}"),
    })
}

/// The start of the line that holds byte `at`.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every chunk fits and has its fences balanced, as
    /// CommonMark reads them: nothing in a chunk is left inside a block.
    fn assert_chunks_render_alone(chunks: &[String], limit: usize) {
        for chunk in chunks {
            assert!(chunk.chars().count() <= limit, "too long: {chunk:?}");
            for fence in fences(chunk) {
                assert!(
                    fence.close < fence.end,
                    "a block left open in {chunk:?}: {fence:?}"
                );
            }
        }
    }

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
        assert_chunks_render_alone(&chunks, 200);
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "é".repeat(150);
        let chunks = chunk_text(&text, 100);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].chars().count(), 100 - CLOSE_FENCE.len());
    }

    #[test]
    fn tilde_fences_are_closed_and_reopened_with_tildes() {
        let code: String = (0..40).map(|i| format!("x{i} = {i}\n")).collect();
        let text = format!("Intro.\n\n~~~python\n{code}~~~\nDone.");
        let chunks = chunk_text(&text, 120);
        assert!(chunks.len() > 2);
        assert_chunks_render_alone(&chunks, 120);
        for chunk in &chunks[1..chunks.len() - 1] {
            assert!(chunk.starts_with("~~~python\n"), "{chunk:?}");
            assert!(chunk.ends_with("\n~~~"), "{chunk:?}");
        }
        // Nothing lost, nothing doubled.
        let all = chunks.join("\n");
        for i in 0..40 {
            assert_eq!(all.matches(&format!("x{i} = {i}\n")).count(), 1, "{i}");
        }
    }

    #[test]
    fn a_longer_fence_is_kept_and_shorter_fences_inside_it_are_code() {
        let inner: String = (0..30)
            .map(|i| format!("```\nsnippet {i}\n```\n"))
            .collect();
        let text = format!("````markdown\n{inner}````\nafter");
        let chunks = chunk_text(&text, 150);
        assert!(chunks.len() > 2);
        assert_chunks_render_alone(&chunks, 150);
        for chunk in &chunks[..chunks.len() - 1] {
            assert!(chunk.starts_with("````markdown\n"), "{chunk:?}");
            assert!(chunk.ends_with("\n````"), "{chunk:?}");
        }
        assert!(chunks.concat().contains("after"));
    }

    #[test]
    fn fences_in_quotes_and_list_items_reopen_in_place() {
        let quoted: String = (0..30).map(|i| format!("> line {i}\n")).collect();
        let text = format!("> ```sh\n{quoted}> ```");
        let chunks = chunk_text(&text, 100);
        assert!(chunks.len() > 1);
        assert_chunks_render_alone(&chunks, 100);
        assert!(chunks[1].starts_with("> ```sh\n> line"), "{:?}", chunks[1]);
        assert!(chunks[0].ends_with("\n> ```"), "{:?}", chunks[0]);

        let listed: String = (0..30).map(|i| format!("   step {i}\n")).collect();
        let text = format!("1. Run:\n   ```\n{listed}   ```\n2. Done");
        let chunks = chunk_text(&text, 100);
        assert_chunks_render_alone(&chunks, 100);
        // The reopened fence keeps the item's indentation, not its marker.
        assert!(chunks[1].starts_with("   ```\n   step"), "{:?}", chunks[1]);
    }

    #[test]
    fn a_split_just_before_the_closing_fence_leaves_no_empty_block() {
        // The block ends right where the first chunk must end.
        let code = "c".repeat(70);
        let text = format!("```\n{code}\n```\n{}", "tail ".repeat(10));
        let chunks = chunk_text(&text, 82);
        assert_eq!(chunks[0], format!("```\n{code}\n```"));
        assert!(!chunks[1].contains("```"), "{:?}", chunks[1]);
    }

    #[test]
    fn an_unclosed_fence_is_closed_in_every_chunk_but_the_last() {
        let code: String = (0..30).map(|i| format!("row {i}\n")).collect();
        let text = format!("~~~~\n{code}");
        let chunks = chunk_text(&text, 80);
        assert!(chunks.len() > 1);
        for chunk in &chunks[..chunks.len() - 1] {
            assert!(chunk.ends_with("\n~~~~"), "{chunk:?}");
        }
        assert!(chunks.iter().all(|c| c.starts_with("~~~~\n")));
    }

    #[test]
    fn code_indentation_survives_a_split() {
        let code: String = (0..40).map(|i| format!("    indented {i}\n")).collect();
        let text = format!("```\n{code}```");
        for chunk in chunk_text(&text, 100) {
            for line in chunk.lines().filter(|l| l.contains("indented")) {
                assert!(line.starts_with("    indented"), "{line:?}");
            }
        }
    }
}
