//! The model's Markdown as Telegram HTML, and long text split into messages
//! Telegram accepts.
//!
//! Telegram's HTML parse mode knows a few tags (`b`, `i`, `s`, `code`,
//! `pre`, `a`, `blockquote`) and needs `<`, `>` and `&` escaped everywhere
//! else. pulldown-cmark parses the Markdown (CommonMark with
//! strikethrough), so tags always balance: every tag written is closed by
//! the event that ends its element. Raw HTML, links to schemes Telegram
//! does not take and anything else without a tag is shown as escaped text.
//! If Telegram still rejects a message's entities, the sender falls back to
//! the plain text.

use std::ops::Range;

use baton_channel::chunk_text;
use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

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

/// Renders Markdown (as models write it) to Telegram HTML: fenced (` ``` `,
/// `~~~`, longer fences) and indented code blocks, inline code, bold,
/// italic, strikethrough, links, headings (as bold), lists (as `•` and
/// numbered lines, indented when nested) and block quotes (a nested quote,
/// which Telegram cannot show, as `> ` lines inside the outer one).
///
/// Each source line stays one line and a blank line between blocks stays
/// one blank line, as the model wrote them.
pub fn to_html(markdown: &str) -> String {
    let (source, inserted) = end_lazy_quotes(markdown);
    let mut html = Html {
        source: &source,
        inserted: &inserted,
        out: String::with_capacity(markdown.len() + markdown.len() / 8),
        prefixes: Vec::new(),
        quotes: 0,
        lists: Vec::new(),
        links: Vec::new(),
        code: None,
        raw: None,
        fresh: false,
        last_end: 0,
    };
    for (event, range) in Parser::new_ext(&source, options()).into_offset_iter() {
        html.event(event, range);
    }
    html.out
}

fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH
}

/// CommonMark continues a quoted paragraph on a following line that lacks
/// `>` (a "lazy" line); models mean the quote to end there. Puts a line
/// break before each such line, and returns the new text with the byte
/// offsets of the inserted breaks, which do not count as blank lines.
fn end_lazy_quotes(markdown: &str) -> (String, Vec<usize>) {
    let mut lazy: Vec<usize> = Vec::new();
    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        if !matches!(event, Event::Start(Tag::BlockQuote(_))) {
            continue;
        }
        let mut at = range.start;
        for (index, line) in markdown[range].split_inclusive('\n').enumerate() {
            let text = line.trim_start();
            if index > 0 && !text.trim_end().is_empty() && !text.starts_with('>') {
                lazy.push(at);
            }
            at += line.len();
        }
    }
    lazy.sort_unstable();
    lazy.dedup();
    let mut source = String::with_capacity(markdown.len() + lazy.len());
    let mut inserted = Vec::with_capacity(lazy.len());
    let mut from = 0;
    for at in lazy {
        source.push_str(&markdown[from..at]);
        inserted.push(source.len());
        source.push('\n');
        from = at;
    }
    source.push_str(&markdown[from..]);
    (source, inserted)
}

/// The renderer's state while it walks pulldown-cmark's events.
struct Html<'a> {
    /// The Markdown being rendered, for the blank lines between blocks.
    source: &'a str,
    /// Offsets of line breaks in `source` that `end_lazy_quotes` added.
    inserted: &'a [usize],
    out: String,
    /// What each new line starts with inside the open containers: list
    /// indentation, and `> ` for each quote inside the outermost one.
    prefixes: Vec<String>,
    /// How many block quotes are open; only the outermost is a tag.
    quotes: usize,
    /// Open lists: the next item's number, or `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Open links: where the label starts in `out`, the URL and its kind.
    links: Vec<(usize, String, LinkType)>,
    /// The open code block: its language and the code so far.
    code: Option<(String, String)>,
    /// The open HTML block's source, shown as text.
    raw: Option<String>,
    /// Set right after a list marker or a quote opens: the next block goes
    /// on the same line.
    fresh: bool,
    /// Where in `source` the text rendered so far ends.
    last_end: usize,
}

impl Html<'_> {
    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::Start(tag) => self.start(tag, range.start),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => match (self.code.as_mut(), self.raw.as_mut()) {
                (Some((_, code)), _) => code.push_str(&text),
                (_, Some(raw)) => raw.push_str(&text),
                _ => self.push_text(&text),
            },
            Event::Html(html) => match self.raw.as_mut() {
                Some(raw) => raw.push_str(&html),
                None => self.push_text(html.trim_end_matches('\n')),
            },
            Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text)
            | Event::FootnoteReference(text) => self.push_text(&text),
            Event::Code(code) => {
                self.out.push_str("<code>");
                self.out.push_str(&escape(&code));
                self.out.push_str("</code>");
            }
            Event::SoftBreak | Event::HardBreak => self.newline(),
            Event::Rule => {
                self.block(range.start);
                self.out.push_str("──────");
            }
            Event::TaskListMarker(done) => self.out.push_str(if done { "☑ " } else { "☐ " }),
        }
        if !is_start {
            self.fresh = false;
            let end = range.start + self.source[range].trim_end().len();
            self.last_end = self.last_end.max(end);
        }
    }

    fn start(&mut self, tag: Tag<'_>, at: usize) {
        match tag {
            Tag::Paragraph => self.block(at),
            Tag::Heading { .. } => {
                self.block(at);
                self.out.push_str("<b>");
            }
            Tag::BlockQuote(_) => {
                self.block(at);
                if self.quotes == 0 {
                    self.out.push_str("<blockquote>");
                } else {
                    // Telegram cannot nest quotes.
                    self.out.push_str("&gt; ");
                    self.prefixes.push("&gt; ".to_owned());
                }
                self.quotes += 1;
                self.fresh = true;
            }
            Tag::CodeBlock(kind) => {
                self.block(at);
                let language = match kind {
                    CodeBlockKind::Fenced(info) => info.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some((language, String::new()));
            }
            Tag::HtmlBlock => {
                self.block(at);
                self.raw = Some(String::new());
            }
            Tag::List(first) => self.lists.push(first),
            Tag::Item => {
                self.block(at);
                let marker = match self.lists.last_mut() {
                    Some(Some(number)) => {
                        let marker = format!("{number}. ");
                        *number += 1;
                        marker
                    }
                    _ => "• ".to_owned(),
                };
                self.out.push_str(&marker);
                self.prefixes.push(" ".repeat(marker.chars().count()));
                self.fresh = true;
            }
            Tag::Emphasis => self.inline("<i>"),
            Tag::Strong => self.inline("<b>"),
            Tag::Strikethrough => self.inline("<s>"),
            Tag::Link {
                link_type,
                dest_url,
                ..
            }
            | Tag::Image {
                link_type,
                dest_url,
                ..
            } => {
                self.fresh = false;
                self.links
                    .push((self.out.len(), dest_url.to_string(), link_type));
            }
            // Not enabled in `options`: their content shows as text.
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::TableCell
            | Tag::Superscript
            | Tag::Subscript
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) | TagEnd::Strong => self.out.push_str("</b>"),
            TagEnd::Emphasis => self.out.push_str("</i>"),
            TagEnd::Strikethrough => self.out.push_str("</s>"),
            TagEnd::BlockQuote(_) => {
                self.quotes = self.quotes.saturating_sub(1);
                if self.quotes == 0 {
                    self.out.push_str("</blockquote>");
                } else {
                    self.prefixes.pop();
                }
            }
            TagEnd::CodeBlock => {
                if let Some((language, code)) = self.code.take() {
                    let code = code.strip_suffix('\n').unwrap_or(&code);
                    self.out.push_str(&code_block(&language, code));
                }
            }
            TagEnd::HtmlBlock => {
                if let Some(raw) = self.raw.take() {
                    self.push_text(raw.trim_end_matches('\n'));
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::Item => {
                self.prefixes.pop();
            }
            TagEnd::Link | TagEnd::Image => {
                if let Some((at, url, kind)) = self.links.pop() {
                    self.close_link(at, &url, kind);
                }
            }
            _ => {}
        }
    }

    /// Wraps the label written since `at` in a link, or, where Telegram
    /// would not take the link, shows it as the Markdown it was.
    fn close_link(&mut self, at: usize, url: &str, kind: LinkType) {
        let url = url.trim();
        let allowed = ["http://", "https://", "tg://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
            && !url.contains(char::is_whitespace);
        if allowed && self.out.len() > at {
            self.out
                .insert_str(at, &format!("<a href=\"{}\">", escape(url)));
            self.out.push_str("</a>");
        } else if !matches!(kind, LinkType::Autolink | LinkType::Email) {
            self.out.insert(at, '[');
            self.out.push_str("](");
            self.out.push_str(&escape(url));
            self.out.push(')');
        }
    }

    /// An inline tag: it goes where the text is.
    fn inline(&mut self, tag: &str) {
        self.fresh = false;
        self.out.push_str(tag);
    }

    /// Starts a block that begins at `at` in the source on a line of its
    /// own, after a blank line if the source has one there.
    fn block(&mut self, at: usize) {
        if std::mem::take(&mut self.fresh) || self.out.is_empty() {
            return;
        }
        let blank = self.source[self.last_end.min(at)..at]
            .match_indices('\n')
            .filter(|(index, _)| !self.inserted.contains(&(self.last_end.min(at) + index)))
            .nth(1)
            .is_some();
        if blank {
            self.out.push('\n');
            let prefix = self.prefixes.concat();
            self.out.push_str(prefix.trim_end());
        }
        self.newline();
    }

    /// A line break, and the open containers' prefixes.
    fn newline(&mut self) {
        self.out.push('\n');
        for prefix in &self.prefixes {
            self.out.push_str(prefix);
        }
    }

    /// Escaped text; each line break starts a line inside the containers.
    fn push_text(&mut self, text: &str) {
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 {
                self.newline();
            }
            self.out.push_str(&escape(line));
        }
    }
}

/// A code block as `pre`, with its language (the info string's first word)
/// as a class when it has one.
fn code_block(info: &str, code: &str) -> String {
    let body = escape(code);
    let language: String = info
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '#'))
        .collect();
    if language.is_empty() {
        format!("<pre>{body}</pre>")
    } else {
        format!("<pre><code class=\"language-{language}\">{body}</code></pre>")
    }
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
    fn renders_tilde_and_long_fences() {
        assert_eq!(
            to_html("~~~\ncode <x>\n~~~\nafter"),
            "<pre>code &lt;x&gt;</pre>\nafter"
        );
        assert_eq!(
            to_html("~~~python\nprint(1)\n~~~"),
            "<pre><code class=\"language-python\">print(1)</code></pre>"
        );
        // A shorter fence inside a longer one is code, not a fence.
        assert_eq!(
            to_html("````md\n```rust\nlet a = 1;\n```\n````"),
            "<pre><code class=\"language-md\">```rust\nlet a = 1;\n```</code></pre>"
        );
        assert_eq!(
            to_html("~~~\n```\nstill code\n~~~"),
            "<pre>```\nstill code</pre>"
        );
        assert_eq!(to_html("````\nunclosed\n```"), "<pre>unclosed\n```</pre>");
    }

    #[test]
    fn renders_nested_lists_with_indentation() {
        assert_eq!(
            to_html("- a\n  - b\n    - c\n- d"),
            "• a\n  • b\n    • c\n• d"
        );
        assert_eq!(
            to_html("1. one\n2. two\n   - sub **bold**\n3. three"),
            "1. one\n2. two\n   • sub <b>bold</b>\n3. three"
        );
        assert_eq!(to_html("3. x\n4. y"), "3. x\n4. y");
        assert_eq!(
            to_html("- step:\n  ```sh\n  ls -l\n  ```\n- done"),
            "• step:\n  <pre><code class=\"language-sh\">ls -l</code></pre>\n• done"
        );
        // A loose list keeps its blank lines, and a second paragraph in an
        // item is indented under it.
        assert_eq!(to_html("- a\n\n  more\n\n- b"), "• a\n\n  more\n\n• b");
    }

    #[test]
    fn renders_nested_quotes_inside_one_blockquote() {
        assert_eq!(
            to_html("> outer\n>\n> > inner\n>\n> back"),
            "<blockquote>outer\n\n&gt; inner\n\nback</blockquote>"
        );
        assert_eq!(
            to_html("> > deep\n> > er"),
            "<blockquote>&gt; deep\n&gt; er</blockquote>"
        );
        assert_eq!(
            to_html("> - a\n> - b\n\ntext"),
            "<blockquote>• a\n• b</blockquote>\n\ntext"
        );
        assert_eq!(
            to_html("- item\n  > quoted"),
            "• item\n  <blockquote>quoted</blockquote>"
        );
        assert_eq!(
            to_html("> ```\n> a < b\n> ```"),
            "<blockquote><pre>a &lt; b</pre></blockquote>"
        );
    }

    #[test]
    fn shows_raw_html_and_odd_links_as_text() {
        assert_eq!(
            to_html("<div>\n**x**\n</div>"),
            "&lt;div&gt;\n**x**\n&lt;/div&gt;"
        );
        assert_eq!(to_html("a <b>b</b>"), "a &lt;b&gt;b&lt;/b&gt;");
        assert_eq!(to_html("[](https://x.org)"), "[](https://x.org)");
        assert_eq!(
            to_html("<https://x.org>"),
            "<a href=\"https://x.org\">https://x.org</a>"
        );
        assert_eq!(to_html("a\n\n\nb"), "a\n\nb");
    }

    #[test]
    fn splits_inside_tilde_and_long_fences_and_renders_each_piece() {
        let code: String = (0..400).map(|i| format!("x{i} = {i}  # ok\n")).collect();
        for fence in ["~~~", "````"] {
            let text = format!("Intro.\n\n{fence}python\n{code}{fence}\nDone.");
            let pieces = split(&text);
            assert!(pieces.len() >= 2);
            for piece in &pieces {
                let html = to_html(piece);
                assert_eq!(
                    html.matches("<pre>").count(),
                    html.matches("</pre>").count()
                );
                assert!(!html.contains(fence), "a fence was left unrendered: {html}");
                assert!(html.contains("language-python"), "{html}");
            }
        }
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
}
