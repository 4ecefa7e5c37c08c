//! The model's Markdown as Telegram HTML, and long text split into messages
//! Telegram accepts.
//!
//! Telegram's HTML parse mode knows a few tags (`b`, `i`, `s`, `code`,
//! `pre`, `a`, `blockquote`) and needs `<`, `>` and `&` escaped everywhere
//! else. The renderer only emits a tag when it has found the closing
//! delimiter, so tags always balance; whatever it does not recognise is
//! shown as the escaped source text. If Telegram still rejects a message's
//! entities, the sender falls back to the plain text.

use baton_channel::chunk_text;

/// Telegram's limit, in UTF-16 code units of the text after entity parsing.
pub const MESSAGE_LIMIT: usize = 4096;
/// Where Markdown is split: below the limit, so that the rendered text
/// (which only loses markup) fits with room to spare.
const SPLIT_AT: usize = 4000;

/// Splits `markdown` into pieces that each fit in one Telegram message once
/// rendered. Splits happen before rendering, at paragraph, line or word
/// boundaries, and a code block cut in two is closed and reopened, so every
/// piece renders on its own.
pub fn split(markdown: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    for chunk in chunk_text(markdown, SPLIT_AT) {
        if utf16_len(&chunk) <= MESSAGE_LIMIT {
            pieces.push(chunk);
        } else {
            // Characters outside the BMP count twice in UTF-16.
            pieces.extend(chunk_text(&chunk, SPLIT_AT / 2));
        }
    }
    pieces
}

/// The length Telegram counts: UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Cuts `text` to at most `limit` characters, marking the cut with `…`.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Escapes text for Telegram's HTML parse mode.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders Markdown (as models write it) to Telegram HTML: fenced code
/// blocks, inline code, bold, italic, strikethrough, links, headings (as
/// bold), bullets and block quotes.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + markdown.len() / 8);
    let mut code: Option<(String, Vec<&str>)> = None;
    let mut quote: Vec<String> = Vec::new();
    let mut first = true;
    let mut newline = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push('\n');
        }
    };
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        if let Some((language, lines)) = code.as_mut() {
            if fence.is_some_and(|rest| rest.trim().is_empty()) {
                newline(&mut out);
                out.push_str(&code_block(language, lines));
                code = None;
            } else {
                lines.push(line);
            }
            continue;
        }
        if let Some(rest) = line.trim_start().strip_prefix('>') {
            quote.push(inline(rest.strip_prefix(' ').unwrap_or(rest)));
            continue;
        }
        if !quote.is_empty() {
            newline(&mut out);
            out.push_str(&format!(
                "<blockquote>{}</blockquote>",
                std::mem::take(&mut quote).join("\n")
            ));
        }
        if let Some(info) = fence {
            code = Some((info.trim().to_owned(), Vec::new()));
            continue;
        }
        newline(&mut out);
        out.push_str(&block_line(line));
    }
    if !quote.is_empty() {
        newline(&mut out);
        out.push_str(&format!("<blockquote>{}</blockquote>", quote.join("\n")));
    }
    if let Some((language, lines)) = code {
        // An unclosed fence: close it, as Markdown renderers do.
        newline(&mut out);
        out.push_str(&code_block(&language, &lines));
    }
    out
}

fn code_block(language: &str, lines: &[&str]) -> String {
    let body = escape(&lines.join("\n"));
    let language: String = language
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '#'))
        .collect();
    if language.is_empty() {
        format!("<pre>{body}</pre>")
    } else {
        format!("<pre><code class=\"language-{language}\">{body}</code></pre>")
    }
}

/// One line outside code blocks: headings become bold, bullets become `•`.
fn block_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
        return format!("<b>{}</b>", inline(trimmed[hashes..].trim()));
    }
    let indent = &line[..line.len() - trimmed.len()];
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = trimmed.strip_prefix(bullet) {
            return format!("{indent}• {}", inline(rest));
        }
    }
    if trimmed.chars().all(|c| c == '-' || c == '*' || c == '_') && trimmed.len() >= 3 {
        return "──────".to_owned();
    }
    inline(line)
}

/// Inline Markdown within one line.
fn inline(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some((html, next)) = span(&chars, i) {
            out.push_str(&html);
            i = next;
        } else {
            out.push_str(&escape(&chars[i].to_string()));
            i += 1;
        }
    }
    out
}

/// A span starting at `i` (code, link, emphasis): its HTML and the index
/// after it, or `None` when `chars[i]` starts nothing that closes.
fn span(chars: &[char], i: usize) -> Option<(String, usize)> {
    match chars[i] {
        '`' => {
            let end = find(chars, i + 1, &['`'])?;
            let body: String = chars[i + 1..end].iter().collect();
            Some((format!("<code>{}</code>", escape(&body)), end + 1))
        }
        '[' => link(chars, i),
        '*' | '_' | '~' => {
            let c = chars[i];
            let double = chars.get(i + 1) == Some(&c);
            if c == '~' && !double {
                return None;
            }
            let width = if double { 2 } else { 1 };
            let open_end = i + width;
            // The opener must be followed by text, and `_` must start a word
            // (so snake_case stays as it is).
            let after = chars.get(open_end)?;
            if after.is_whitespace() || (c == '_' && i > 0 && chars[i - 1].is_alphanumeric()) {
                return None;
            }
            let delimiter = vec![c; width];
            let mut from = open_end + 1;
            let close = loop {
                let at = find(chars, from, &delimiter)?;
                let before_ok = !chars[at - 1].is_whitespace();
                let after_ok = c != '_'
                    || chars
                        .get(at + width)
                        .is_none_or(|next| !next.is_alphanumeric());
                let not_longer = chars.get(at + width) != Some(&c);
                if before_ok && after_ok && not_longer {
                    break at;
                }
                from = at + 1;
            };
            let inner: String = chars[open_end..close].iter().collect();
            let tag = match (c, double) {
                ('~', _) => "s",
                (_, true) => "b",
                (_, false) => "i",
            };
            Some((format!("<{tag}>{}</{tag}>", inline(&inner)), close + width))
        }
        _ => None,
    }
}

/// `[text](url)` with an http(s) or tg URL.
fn link(chars: &[char], i: usize) -> Option<(String, usize)> {
    let close = find(chars, i + 1, &[']'])?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = find(chars, close + 2, &[')'])?;
    let label: String = chars[i + 1..close].iter().collect();
    let url: String = chars[close + 2..end].iter().collect();
    let url = url.trim();
    let allowed = ["http://", "https://", "tg://"]
        .iter()
        .any(|scheme| url.starts_with(scheme));
    if !allowed || url.contains(char::is_whitespace) || label.is_empty() {
        return None;
    }
    Some((
        format!("<a href=\"{}\">{}</a>", escape(url), inline(&label)),
        end + 1,
    ))
}

/// The index of the first occurrence of `needle` at or after `from`.
fn find(chars: &[char], from: usize, needle: &[char]) -> Option<usize> {
    if needle.is_empty() || from > chars.len() {
        return None;
    }
    (from..=chars.len().saturating_sub(needle.len())).find(|&at| chars[at..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(to_html("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        assert_eq!(to_html("<script>"), "&lt;script&gt;");
    }

    #[test]
    fn renders_emphasis_code_and_links() {
        assert_eq!(to_html("**bold** and *it*"), "<b>bold</b> and <i>it</i>");
        assert_eq!(
            to_html("__bold__ _it_ ~~gone~~"),
            "<b>bold</b> <i>it</i> <s>gone</s>"
        );
        assert_eq!(to_html("`a<b>`"), "<code>a&lt;b&gt;</code>");
        assert_eq!(
            to_html("see [docs](https://x.org/?a=1&b=2)"),
            "see <a href=\"https://x.org/?a=1&amp;b=2\">docs</a>"
        );
        assert_eq!(
            to_html("**bold with `code`**"),
            "<b>bold with <code>code</code></b>"
        );
    }

    #[test]
    fn leaves_what_does_not_close_alone() {
        assert_eq!(to_html("2 * 3 = 6"), "2 * 3 = 6");
        assert_eq!(to_html("snake_case_name"), "snake_case_name");
        assert_eq!(to_html("**open"), "**open");
        assert_eq!(
            to_html("[x](javascript:alert(1))"),
            "[x](javascript:alert(1))"
        );
        assert_eq!(to_html("`open"), "`open");
    }

    #[test]
    fn renders_blocks() {
        assert_eq!(
            to_html("# Title\n- one\n- two"),
            "<b>Title</b>\n• one\n• two"
        );
        assert_eq!(
            to_html("```rust\nlet a = b < c;\n```\ndone"),
            "<pre><code class=\"language-rust\">let a = b &lt; c;</code></pre>\ndone"
        );
        assert_eq!(
            to_html("```\nplain **not bold**\n```"),
            "<pre>plain **not bold**</pre>"
        );
        assert_eq!(
            to_html("> quoted\n> more\nafter"),
            "<blockquote>quoted\nmore</blockquote>\nafter"
        );
        assert_eq!(to_html("```\nunclosed"), "<pre>unclosed</pre>");
    }

    #[test]
    fn tags_always_balance() {
        for input in [
            "**a *b** c*",
            "_a **b_ c**",
            "~~a `b~~ c`",
            "*a\nb*",
            "***x***",
        ] {
            let html = to_html(input);
            for tag in ["b", "i", "s", "code", "pre"] {
                assert_eq!(
                    html.matches(&format!("<{tag}>")).count(),
                    html.matches(&format!("</{tag}>")).count(),
                    "{input:?} -> {html:?}"
                );
            }
        }
    }

    #[test]
    fn splits_long_text_under_the_limit_with_code_blocks_closed() {
        let code: String = (0..300).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!(
            "**Intro** text.\n\n```rust\n{code}```\n\n{}",
            "word ".repeat(600)
        );
        let pieces = split(&text);
        assert!(pieces.len() >= 2);
        for piece in &pieces {
            assert!(utf16_len(piece) <= MESSAGE_LIMIT);
            let html = to_html(piece);
            assert_eq!(html.matches("<pre").count(), html.matches("</pre>").count());
            assert!(!html.contains("```"), "a fence was left unrendered: {html}");
        }
        let emoji = "😀".repeat(3000);
        for piece in split(&emoji) {
            assert!(utf16_len(&piece) <= MESSAGE_LIMIT);
        }
    }

    #[test]
    fn truncates_with_an_ellipsis() {
        assert_eq!(truncate("hello", 10), "hello");
        assert_eq!(truncate("hello world", 6), "hello…");
    }
}
