//! What kind of file an attachment is: an image a vision model can take
//! (PNG, JPEG, GIF, WebP, recognised by their bytes), a text-like file
//! (text/*, JSON, CSV, Markdown, source code), a PDF, or something Baton
//! cannot read.

use baton_channel::Attachment;

/// What Baton can do with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A picture, for vision models.
    Image,
    /// Text, given to the model in a fenced block.
    Text,
    /// A PDF, whose text is extracted.
    Pdf,
    /// Anything else.
    Unsupported,
}

/// MIME types outside `text/*` that are text.
const TEXT_TYPES: [&str; 12] = [
    "application/json",
    "application/ld+json",
    "application/xml",
    "application/javascript",
    "application/x-javascript",
    "application/typescript",
    "application/x-yaml",
    "application/yaml",
    "application/toml",
    "application/x-sh",
    "application/sql",
    "application/x-python",
];

/// File name extensions of text and source code.
const TEXT_EXTENSIONS: [&str; 48] = [
    "txt", "md", "markdown", "csv", "tsv", "json", "jsonl", "xml", "yaml", "yml", "toml", "ini",
    "cfg", "conf", "log", "rs", "py", "js", "mjs", "ts", "tsx", "jsx", "go", "java", "kt", "c",
    "h", "cc", "cpp", "hpp", "cs", "rb", "php", "swift", "scala", "sh", "bash", "zsh", "sql",
    "html", "htm", "css", "scss", "lua", "pl", "r", "tex", "diff",
];

/// The kind the platform's description suggests (before the bytes are
/// seen).
pub fn expected(attachment: &Attachment) -> Kind {
    let mime = attachment.mime.as_deref().map(|m| {
        m.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    let extension = extension(&attachment.name);
    if attachment.image || mime.as_deref().is_some_and(|m| m.starts_with("image/")) {
        return Kind::Image;
    }
    if mime.as_deref() == Some("application/pdf") || extension.as_deref() == Some("pdf") {
        return Kind::Pdf;
    }
    let text_mime = mime
        .as_deref()
        .is_some_and(|m| m.starts_with("text/") || TEXT_TYPES.contains(&m));
    let text_name = extension
        .as_deref()
        .is_some_and(|e| TEXT_EXTENSIONS.contains(&e));
    if text_mime || text_name {
        Kind::Text
    } else {
        Kind::Unsupported
    }
}

/// The image type `bytes` are, by their signature, if one every provider
/// takes.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Whether `bytes` look like a PDF.
pub fn is_pdf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"%PDF-")
}

/// The lower-case extension of `name`, if it has one.
pub fn extension(name: &str) -> Option<String> {
    let (stem, extension) = name.rsplit_once('.')?;
    (!stem.is_empty() && !extension.is_empty()).then(|| extension.to_ascii_lowercase())
}

/// A file name fit to show the model and the user: no line breaks or
/// brackets or backticks (which would end a placeholder or a fence), at
/// most 100 characters.
pub fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if matches!(c, '[' | ']' | '`') { '_' } else { c })
        .take(100)
        .collect();
    match cleaned.trim() {
        "" => "file".to_owned(),
        name => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, mime: Option<&str>) -> Attachment {
        Attachment {
            file_id: "f".into(),
            name: name.into(),
            mime: mime.map(str::to_owned),
            size: None,
            url: None,
            image: false,
        }
    }

    #[test]
    fn kinds_come_from_the_type_or_the_name() {
        assert_eq!(expected(&file("a.png", Some("image/png"))), Kind::Image);
        assert_eq!(expected(&file("a.bin", Some("application/pdf"))), Kind::Pdf);
        assert_eq!(expected(&file("report.PDF", None)), Kind::Pdf);
        assert_eq!(
            expected(&file("data", Some("text/csv; charset=utf-8"))),
            Kind::Text
        );
        assert_eq!(
            expected(&file("main.rs", Some("application/octet-stream"))),
            Kind::Text
        );
        assert_eq!(expected(&file("x.json", None)), Kind::Text);
        assert_eq!(
            expected(&file("song.mp3", Some("audio/mpeg"))),
            Kind::Unsupported
        );
        assert_eq!(expected(&file(".bashrc", None)), Kind::Unsupported);
    }

    #[test]
    fn images_are_recognised_by_their_bytes() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(image_type(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_type(b"<svg>"), None);
        assert!(is_pdf(b"%PDF-1.7\n"));
    }

    #[test]
    fn names_cannot_break_out_of_a_placeholder() {
        assert_eq!(clean_name("a]\n[image: b`.txt"), "a__image: b_.txt");
        assert_eq!(clean_name("  "), "file");
        assert_eq!(clean_name(&"x".repeat(500)).len(), 100);
    }
}
