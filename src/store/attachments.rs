//! The `messages.attachments` column: a message's [`Attachment`] metadata
//! as a JSON array, NULL when it has none.

use baton_channel::Attachment;

/// The column's value for `attachments`.
pub(super) fn to_column(attachments: &[Attachment]) -> Option<String> {
    if attachments.is_empty() {
        return None;
    }
    serde_json::to_string(attachments)
        .inspect_err(|e| tracing::warn!(error = %e, "cannot encode a message's attachments"))
        .ok()
}

/// The attachments a column value holds; a value this version cannot read
/// is logged and reads as none (the message itself is kept).
pub(super) fn from_column(column: Option<&str>) -> Vec<Attachment> {
    let Some(text) = column else {
        return Vec::new();
    };
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read a message's stored attachments");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_round_trip_and_none_is_null() {
        assert_eq!(to_column(&[]), None);
        let file = Attachment {
            file_id: "f1".into(),
            name: "notes.txt".into(),
            mime: Some("text/plain".into()),
            size: Some(12),
            url: None,
            image: false,
        };
        let column = to_column(std::slice::from_ref(&file));
        assert_eq!(from_column(column.as_deref()), vec![file]);
        assert!(from_column(Some("not json")).is_empty());
    }
}
