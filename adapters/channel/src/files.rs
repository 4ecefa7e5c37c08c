//! Whether an answer goes out as a file attachment, and the short text
//! that goes with it: the one decision both adapters make the same way.
//!
//! An answer with a fenced code block longer than
//! [`MediaOut::code_as_file_lines`], or one that would take more than
//! [`MediaOut::max_pieces`] messages, is sent as a file. One long code
//! block in an answer that is otherwise short goes as that block alone
//! (`code.<ext>`, the extension from the block's language), and the chat
//! gets the answer with the block replaced by a note naming the file.
//! Anything else goes as the whole answer (`answer.md`), and the chat gets
//! its first part and a note. A platform says how many messages the
//! answer would take and how long the short text may be; it only has to
//! know how to send a document. Verbose worker output never comes here.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use crate::chunk::chunk_text;

/// The largest answer sent as a file, in bytes (Discord's smallest upload
/// limit is 10 MiB); a longer one goes as text pieces only.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// The name of the file that holds a whole answer.
pub const ANSWER_FILE: &str = "answer.md";

/// What goes out as files (`[media]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaOut {
    /// A code block with more lines than this goes as a file (0: never).
    pub code_as_file_lines: usize,
    /// An answer that would take more messages than this goes as a file
    /// (0: never).
    pub max_pieces: usize,
}

impl Default for MediaOut {
    fn default() -> Self {
        Self {
            code_as_file_lines: 80,
            max_pieces: 4,
        }
    }
}

/// A file to attach to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// The file name users see (`code.rs`, `answer.md`).
    pub name: String,
    /// Its MIME type.
    pub mime: &'static str,
    /// Its content (UTF-8 text).
    pub bytes: Vec<u8>,
}

/// An answer sent as a file: the file, and the text shown with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReply {
    /// Markdown, at most the `text_limit` characters given to
    /// [`file_reply`]: the answer with its long code block replaced by a
    /// note naming the file, or the answer's first part and such a note.
    pub text: String,
    /// The attachment.
    pub file: OutFile,
}

/// Decides whether `answer` (Markdown) goes out as a file, given how many
/// messages (`pieces`) the platform would need for it as text, and how many
/// characters the text shown with the file may have (`text_limit`, which
/// must leave room for the note of about 60 characters).
/// `None`: send it as text, as usual.
pub fn file_reply(
    answer: &str,
    pieces: usize,
    text_limit: usize,
    media: &MediaOut,
) -> Option<FileReply> {
    if answer.trim().is_empty() || answer.len() > MAX_FILE_BYTES {
        return None;
    }
    let too_many = media.max_pieces > 0 && pieces > media.max_pieces;
    let may_hold_long_code =
        media.code_as_file_lines > 0 && answer.lines().count() > media.code_as_file_lines;
    if !too_many && !may_hold_long_code {
        // Most answers: no need to parse them.
        return None;
    }
    let long: Vec<CodeBlock> = code_blocks(answer)
        .into_iter()
        .filter(|block| media.code_as_file_lines > 0 && block.lines > media.code_as_file_lines)
        .collect();
    if long.is_empty() && !too_many {
        return None;
    }
    if let [block] = long.as_slice()
        && !too_many
        && let Some(reply) = code_file(answer, block, text_limit)
    {
        return Some(reply);
    }
    Some(answer_file(answer, text_limit))
}

/// The one long `block` as its own file, with the rest of `answer` as the
/// text, if that text fits in `text_limit`.
fn code_file(answer: &str, block: &CodeBlock, text_limit: usize) -> Option<FileReply> {
    let name = format!("code.{}", extension(&block.language));
    let note = format!(
        "(The code, {} lines, is in the attached file `{name}`.)",
        block.lines
    );
    let before = answer[..block.start].trim_end();
    let after = answer[block.end..].trim_start();
    let text = [before, note.as_str(), after]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    (text.chars().count() <= text_limit).then(|| FileReply {
        text,
        file: OutFile {
            name,
            mime: "text/plain; charset=utf-8",
            bytes: block.code.clone().into_bytes(),
        },
    })
}

/// The whole `answer` as `answer.md`, with its first part as the text.
fn answer_file(answer: &str, text_limit: usize) -> FileReply {
    let note = format!("(The full answer is in the attached file `{ANSWER_FILE}`.)");
    let room = text_limit.saturating_sub(note.chars().count() + 2);
    let first = chunk_text(answer, room)
        .into_iter()
        .next()
        .unwrap_or_default();
    let text = if first.is_empty() {
        note
    } else {
        format!("{first}\n\n{note}")
    };
    FileReply {
        text,
        file: OutFile {
            name: ANSWER_FILE.to_owned(),
            mime: "text/markdown; charset=utf-8",
            bytes: answer.as_bytes().to_vec(),
        },
    }
}

/// One fenced code block: where it is in the text, its language and code.
#[derive(Debug)]
struct CodeBlock {
    /// Byte offsets of the whole block, fences included.
    start: usize,
    end: usize,
    /// The first word of the info string, lowercased.
    language: String,
    /// The code, without fences (and without the indentation of a list or
    /// quote the block sits in).
    code: String,
    lines: usize,
}

/// The fenced code blocks of `text`, as CommonMark reads them.
fn code_blocks(text: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<CodeBlock> = None;
    for (event, range) in Parser::new_ext(text, Options::empty()).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let language = info
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                open = Some(CodeBlock {
                    start: range.start,
                    end: range.end,
                    language,
                    code: String::new(),
                    lines: 0,
                });
            }
            Event::Text(code) => {
                if let Some(block) = open.as_mut() {
                    block.code.push_str(&code);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some(mut block) = open.take() {
                    block.lines = block.code.lines().count();
                    blocks.push(block);
                }
            }
            _ => {}
        }
    }
    blocks
}

/// The file extension for a code block's language (`txt` when unknown:
/// the info string is the model's text and is never used as a name).
fn extension(language: &str) -> &'static str {
    match language {
        "rust" | "rs" => "rs",
        "python" | "py" | "python3" => "py",
        "javascript" | "js" | "node" | "jsx" => "js",
        "typescript" | "ts" | "tsx" => "ts",
        "go" | "golang" => "go",
        "java" => "java",
        "kotlin" | "kt" => "kt",
        "swift" => "swift",
        "c" | "h" => "c",
        "cpp" | "c++" | "cc" | "cxx" | "hpp" => "cpp",
        "csharp" | "cs" | "c#" => "cs",
        "ruby" | "rb" => "rb",
        "php" => "php",
        "sh" | "bash" | "shell" | "zsh" | "console" => "sh",
        "powershell" | "ps1" => "ps1",
        "sql" => "sql",
        "html" => "html",
        "css" => "css",
        "json" => "json",
        "yaml" | "yml" => "yaml",
        "toml" => "toml",
        "xml" => "xml",
        "markdown" | "md" => "md",
        "lua" => "lua",
        "haskell" | "hs" => "hs",
        "scala" => "scala",
        "dockerfile" | "docker" => "dockerfile",
        "makefile" | "make" => "mk",
        "diff" | "patch" => "diff",
        _ => "txt",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(lines: usize) -> String {
        (0..lines).map(|i| format!("let x{i} = {i};\n")).collect()
    }

    fn media() -> MediaOut {
        MediaOut::default()
    }

    #[test]
    fn a_short_answer_stays_text() {
        let answer = format!("Here:\n\n```rust\n{}```\nDone.", code(80));
        assert_eq!(file_reply(&answer, 2, 2000, &media()), None);
        assert_eq!(file_reply("", 0, 2000, &media()), None);
        assert_eq!(file_reply("hi", 4, 2000, &media()), None);
    }

    #[test]
    fn one_long_code_block_goes_as_its_own_file_and_the_prose_stays() {
        let body = code(81);
        let answer = format!("Here is the program:\n\n```Rust\n{body}```\n\nRun it with cargo.");
        let reply = file_reply(&answer, 2, 2000, &media()).unwrap();
        assert_eq!(reply.file.name, "code.rs");
        assert_eq!(reply.file.bytes, body.as_bytes());
        assert!(reply.file.mime.starts_with("text/plain"));
        assert_eq!(
            reply.text,
            "Here is the program:\n\n(The code, 81 lines, is in the attached file `code.rs`.)\
             \n\nRun it with cargo."
        );
    }

    #[test]
    fn the_language_picks_the_extension_and_unknown_ones_are_txt() {
        for (info, name) in [
            ("python", "code.py"),
            ("ts title=\"x\"", "code.ts"),
            ("rust,ignore", "code.rs"),
            ("", "code.txt"),
            ("../../etc/passwd", "code.txt"),
        ] {
            let answer = format!("```{info}\n{}```", code(100));
            let reply = file_reply(&answer, 1, 2000, &media()).unwrap();
            assert_eq!(reply.file.name, name, "{info}");
        }
    }

    #[test]
    fn a_block_in_a_list_item_loses_its_indentation_in_the_file() {
        let listed: String = (0..90).map(|i| format!("   step {i}\n")).collect();
        let answer = format!("1. Run:\n   ```sh\n{listed}   ```\n2. Done");
        let reply = file_reply(&answer, 1, 2000, &media()).unwrap();
        assert_eq!(reply.file.name, "code.sh");
        let file = String::from_utf8(reply.file.bytes).unwrap();
        assert!(file.starts_with("step 0\nstep 1\n"), "{file}");
        assert!(reply.text.contains("2. Done"), "{}", reply.text);
    }

    #[test]
    fn too_many_pieces_send_the_whole_answer_with_its_first_part() {
        let answer: String = (0..300)
            .map(|i| format!("Line {i:03} of a long answer.\n"))
            .collect();
        let reply = file_reply(&answer, 5, 1000, &media()).unwrap();
        assert_eq!(reply.file.name, "answer.md");
        assert!(reply.file.mime.starts_with("text/markdown"));
        assert_eq!(reply.file.bytes, answer.as_bytes());
        assert!(reply.text.chars().count() <= 1000);
        assert!(reply.text.starts_with("Line 000 of a long answer.\n"));
        assert!(
            reply
                .text
                .ends_with("\n\n(The full answer is in the attached file `answer.md`.)"),
            "{}",
            reply.text
        );
        // Exactly max_pieces is still text.
        assert_eq!(file_reply(&answer, 4, 1000, &media()), None);
    }

    #[test]
    fn two_long_blocks_or_long_prose_around_one_send_the_whole_answer() {
        let two = format!("```py\n{}```\n\n```js\n{}```", code(90), code(90));
        assert_eq!(
            file_reply(&two, 2, 2000, &media()).unwrap().file.name,
            "answer.md"
        );
        let prose = "words ".repeat(400);
        let wordy = format!("{prose}\n\n```py\n{}```", code(90));
        let reply = file_reply(&wordy, 3, 2000, &media()).unwrap();
        assert_eq!(reply.file.name, "answer.md");
        assert!(reply.text.chars().count() <= 2000);
    }

    #[test]
    fn the_first_part_of_a_cut_code_block_keeps_its_fences_balanced() {
        let answer = format!("```rust\n{}```", code(300));
        let reply = file_reply(&answer, 9, 500, &media()).unwrap();
        assert_eq!(reply.file.name, "answer.md");
        let fences = reply.text.lines().filter(|l| l.starts_with("```")).count();
        assert_eq!(fences, 2, "{}", reply.text);
        assert!(reply.text.chars().count() <= 500);
    }

    #[test]
    fn zero_turns_each_rule_off() {
        let off = MediaOut {
            code_as_file_lines: 0,
            max_pieces: 0,
        };
        let answer = format!("```rust\n{}```", code(300));
        assert_eq!(file_reply(&answer, 50, 2000, &off), None);
    }
}
