//! A PDF's text, through pdf-extract (pure Rust, on lopdf). It runs on a
//! blocking thread; a panic in the parser (hostile files) is an error, not
//! a crash.

/// Why a PDF gave no text.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The file could not be parsed (or the parser panicked); not retried.
    #[error("unreadable PDF: {0}")]
    Unreadable(String),
}

/// The text of the PDF in `bytes`.
pub async fn text(bytes: Vec<u8>) -> Result<String, PdfError> {
    tokio::task::spawn_blocking(move || pdf_extract::extract_text_from_mem(&bytes))
        .await
        .map_err(|e| PdfError::Unreadable(format!("the parser failed: {e}")))?
        .map_err(|e| PdfError::Unreadable(e.to_string()))
}
