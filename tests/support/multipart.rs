//! multipart/form-data bodies as the real servers read them (multer): what
//! teloxide sends for `sendDocument` and `setWebhook`, and what Baton sends
//! Discord for a message with files.

use axum::body::Bytes;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field's name (`chat_id`, `files[0]`, an `attach://` id).
    pub name: String,
    /// The file name, for a file.
    pub file_name: Option<String>,
    /// The part's own content type, if it gave one.
    pub content_type: Option<String>,
    /// Its content.
    pub bytes: Vec<u8>,
}

impl Part {
    /// The content as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The parts of `body` if `content_type` says it is a multipart form;
/// `None` if it is not one, `Some(Err)` if it does not parse.
pub async fn parts(content_type: &str, body: Bytes) -> Option<Result<Vec<Part>, String>> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Some(Ok(parts)),
            Err(error) => return Some(Err(error.to_string())),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        match field.bytes().await {
            Ok(bytes) => parts.push(Part {
                name,
                file_name,
                content_type,
                bytes: bytes.to_vec(),
            }),
            Err(error) => return Some(Err(error.to_string())),
        }
    }
}
