//! Reading updates that teloxide could not read, so that one bad update
//! never stops the bot.
//!
//! This module owns three things:
//! - [`repair_surrogates`]: replacing every lone UTF-16 surrogate escape in
//!   raw JSON text (Telegram can send `"\ud800"` with no low surrogate
//!   after it, which no JSON parser in Rust accepts) with `\uFFFD`, so that
//!   the text is answered with U+FFFD in place of what cannot be shown.
//! - [`batch`]: decoding a `getUpdates` answer update by update, after
//!   repair, when teloxide could not read it as a whole. An update that
//!   still cannot be read is returned as [`Unreadable`] with its
//!   `update_id` (when that can be read), in its place, so that the caller
//!   can skip it and still handle the others in order.
//! - [`webhook_body`]: decoding one webhook body by the same rule.
//!
//! [`describe`] words a JSON error without quoting the input, which holds
//! users' text and must not reach the logs.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::error::Category;
use serde_json::value::RawValue;
use teloxide::types::Update;

/// An update that cannot be read even after repair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable update: {reason}")]
pub(crate) struct Unreadable {
    /// Its `update_id`, when the JSON has one that fits a `u32`.
    pub id: Option<u32>,
    /// Why it cannot be read, without the input (see [`describe`]).
    pub reason: String,
}

/// A `getUpdates` answer that is not `{"ok": true, "result": [...]}` even
/// after repair: nothing in it can be read, so the call is a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the getUpdates answer cannot be read: {0}")]
pub(crate) struct BadEnvelope(String);

/// The shape of a `getUpdates` answer, with each update left unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    ok: bool,
    #[serde(borrow, default)]
    result: Vec<&'a RawValue>,
}

/// Decodes a `getUpdates` answer update by update: every update in order,
/// each either read or [`Unreadable`].
pub(crate) fn batch(raw: &str) -> Result<Vec<Result<Update, Unreadable>>, BadEnvelope> {
    let text = repair_surrogates(raw);
    let envelope: Envelope<'_> =
        serde_json::from_str(&text).map_err(|error| BadEnvelope(describe(&error)))?;
    if !envelope.ok {
        return Err(BadEnvelope("\"ok\" is false".to_owned()));
    }
    Ok(envelope
        .result
        .into_iter()
        .map(|update| one(update.get()))
        .collect())
}

/// Decodes one webhook body (one update), after repair. Bytes that are not
/// UTF-8 are replaced by U+FFFD, as teloxide does for `getUpdates`.
pub(crate) fn webhook_body(body: &[u8]) -> Result<Update, Unreadable> {
    let text = String::from_utf8_lossy(body);
    one(&repair_surrogates(&text))
}

/// One update's JSON text as an [`Update`].
fn one(text: &str) -> Result<Update, Unreadable> {
    serde_json::from_str(text).map_err(|error| Unreadable {
        id: update_id(text),
        reason: describe(&error),
    })
}

/// The `update_id` of an update's JSON text, when it has a readable one.
fn update_id(text: &str) -> Option<u32> {
    let value: Value = serde_json::from_str(text).ok()?;
    let id = value.get("update_id")?.as_u64()?;
    u32::try_from(id).ok()
}

/// A JSON error in words that never quote the input: syntax errors as
/// serde_json words them (they name the problem and where it is), data
/// errors only by where they are (their words can quote a value, e.g.
/// `invalid type: string "..."`).
pub(crate) fn describe(error: &serde_json::Error) -> String {
    match error.classify() {
        Category::Data => format!(
            "unexpected JSON shape at line {} column {}",
            error.line(),
            error.column()
        ),
        Category::Syntax | Category::Eof | Category::Io => error.to_string(),
    }
}

/// `json` with every lone UTF-16 surrogate escape replaced by `\uFFFD`: a
/// high one (`\uD800`-`\uDBFF`) not followed by a low one
/// (`\uDC00`-`\uDFFF`), and a low one not preceded by a high one. Valid
/// pairs and everything else are kept as they are; `\\u...` is an escaped
/// backslash followed by `u`, not an escape. Borrowed when nothing changes.
pub(crate) fn repair_surrogates(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    let mut repaired: Option<String> = None;
    // Bytes of `json` before this are in `repaired` already.
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            at += 1;
            continue;
        }
        let lone = match unicode_escape(bytes, at) {
            Some(0xD800..=0xDBFF) => match unicode_escape(bytes, at + 6) {
                Some(0xDC00..=0xDFFF) => {
                    // A valid pair: kept.
                    at += 12;
                    continue;
                }
                _ => true,
            },
            Some(0xDC00..=0xDFFF) => true,
            Some(_) => {
                at += 6;
                continue;
            }
            None => {
                // `\` and the character it escapes (`\\`, `\"`, `\n`, ...).
                at += 2;
                continue;
            }
        };
        if lone {
            // Every index here is at an ASCII byte (`\` or the byte after
            // four hex digits), so at a character boundary.
            let out = repaired.get_or_insert_with(|| String::with_capacity(json.len()));
            out.push_str(&json[copied..at]);
            out.push_str("\\uFFFD");
            at += 6;
            copied = at;
        }
    }
    match repaired {
        None => Cow::Borrowed(json),
        Some(mut out) => {
            out.push_str(&json[copied..]);
            Cow::Owned(out)
        }
    }
}

/// The code unit of the `\uXXXX` escape starting at `at`, if there is one.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<u16> {
    if bytes.get(at) != Some(&b'\\') || bytes.get(at + 1) != Some(&b'u') {
        return None;
    }
    let digits = bytes.get(at + 2..at + 6)?;
    digits.iter().try_fold(0u16, |unit, digit| {
        let value = char::from(*digit).to_digit(16)?;
        Some((unit << 4) | u16::try_from(value).ok()?)
    })
}

#[cfg(test)]
mod tests {
    use teloxide::types::UpdateKind;

    use super::*;

    /// A `getUpdates` answer read as a whole.
    #[derive(Debug, Deserialize)]
    struct Whole {
        #[allow(dead_code)]
        result: Vec<Update>,
    }

    fn text_of(update: &Update) -> Option<&str> {
        match &update.kind {
            UpdateKind::Message(message) => message.text(),
            _ => None,
        }
    }

    fn message(id: u32, text_json: &str) -> String {
        format!(
            r#"{{"update_id":{id},"message":{{"message_id":{id},"date":1700000000,"chat":{{"id":42,"type":"private","first_name":"Ada"}},"from":{{"id":42,"is_bot":false,"first_name":"Ada"}},"text":{text_json}}}}}"#
        )
    }

    #[test]
    fn a_lone_high_surrogate_becomes_a_replacement_character() {
        assert_eq!(repair_surrogates(r#""a\ud800b""#), r#""a\uFFFDb""#);
        assert_eq!(repair_surrogates(r#""\uDBFF""#), r#""\uFFFD""#);
        // Followed by something that is not a low surrogate.
        assert_eq!(repair_surrogates(r#""\ud800\u0041""#), r#""\uFFFD\u0041""#);
        assert_eq!(
            repair_surrogates(r#""\ud800\ud800\udc00""#),
            r#""\uFFFD\ud800\udc00""#
        );
        // At the very end of the text, even cut short.
        assert_eq!(repair_surrogates(r"\ud800"), r"\uFFFD");
        assert_eq!(repair_surrogates(r"\ud8"), r"\ud8");
        let text: String =
            serde_json::from_str(&repair_surrogates(r#""hi \ud800 there""#)).unwrap_or_default();
        assert_eq!(text, "hi \u{FFFD} there");
    }

    #[test]
    fn a_lone_low_surrogate_becomes_a_replacement_character() {
        assert_eq!(repair_surrogates(r#""a\udc00b""#), r#""a\uFFFDb""#);
        assert_eq!(repair_surrogates(r#""\uDFFF\uDFFF""#), r#""\uFFFD\uFFFD""#);
    }

    #[test]
    fn a_valid_pair_and_other_escapes_are_kept_as_they_are() {
        let pair = r#""smile \ud83d\ude00 \u00e9 \n \" é""#;
        assert!(matches!(repair_surrogates(pair), Cow::Borrowed(_)));
        let text: String = serde_json::from_str(pair).unwrap_or_default();
        assert_eq!(text, "smile \u{1F600} é \n \" é");
        // Non-ASCII text around a repair stays intact.
        assert_eq!(repair_surrogates(r#""é\ud800ü""#), r#""é\uFFFDü""#);
    }

    #[test]
    fn an_escaped_backslash_before_u_is_not_an_escape() {
        let escaped = r#""\\ud800 and \\\\udc00""#;
        assert!(matches!(repair_surrogates(escaped), Cow::Borrowed(_)));
        // An escaped backslash, then a real lone surrogate.
        assert_eq!(repair_surrogates(r#""\\\ud800""#), r#""\\\uFFFD""#);
    }

    #[test]
    fn a_batch_is_read_update_by_update() {
        // 101: a lone surrogate (repaired); 102: a duplicate `update_id`,
        // which serde refuses (teloxide fails the whole answer on it); 103:
        // a message teloxide cannot read, which it keeps as
        // `UpdateKind::Error` rather than failing; 104: plain.
        let duplicate = message(102, r#""twice""#).replacen('{', r#"{"update_id":102,"#, 1);
        let bad_message = message(103, r#""bad""#)
            .replace(r#""message_id":103"#, r#""message_id":"not a number""#);
        let raw = format!(
            r#"{{"ok":true,"result":[{},{duplicate},{bad_message},{}]}}"#,
            message(101, r#""hi \ud800 there""#),
            message(104, r#""plain""#),
        );
        // Read as a whole (as teloxide reads it), it fails.
        assert!(serde_json::from_str::<Whole>(&raw).is_err());
        let without_surrogate = raw.replace(r"\ud800", "");
        assert!(serde_json::from_str::<Whole>(&without_surrogate).is_err());
        let updates = batch(&raw).unwrap();
        assert_eq!(updates.len(), 4);
        let first = updates[0].as_ref().unwrap();
        assert_eq!(first.id.0, 101);
        assert_eq!(text_of(first), Some("hi \u{FFFD} there"));
        let skipped = updates[1].as_ref().unwrap_err();
        assert_eq!(skipped.id, Some(102));
        assert!(skipped.reason.contains("line 1"), "{}", skipped.reason);
        let tolerated = updates[2].as_ref().unwrap();
        assert_eq!(tolerated.id.0, 103);
        assert!(matches!(tolerated.kind, UpdateKind::Error(_)));
        let last = updates[3].as_ref().unwrap();
        assert_eq!(text_of(last), Some("plain"));
    }

    #[test]
    fn an_update_without_a_readable_id_is_unreadable_without_one() {
        let raw = r#"{"ok":true,"result":[{"message":{}},{"update_id":-3},7]}"#;
        let updates = batch(raw).unwrap();
        assert_eq!(updates.len(), 3);
        for update in &updates {
            assert_eq!(update.as_ref().unwrap_err().id, None);
        }
    }

    #[test]
    fn an_unreadable_envelope_is_an_error() {
        assert!(batch("<html>Bad Gateway</html>").is_err());
        assert!(batch(r#"{"ok":true,"result":[{"update_id":1"#).is_err());
        assert!(batch(r#"{"ok":false,"description":"x"}"#).is_err());
        assert_eq!(batch(r#"{"ok":true,"result":[]}"#).unwrap(), Vec::new());
    }

    #[test]
    fn a_webhook_body_is_repaired_then_read() {
        let update = webhook_body(message(7, r#""hi \udc00""#).as_bytes()).unwrap();
        assert_eq!(update.id.0, 7);
        assert_eq!(text_of(&update), Some("hi \u{FFFD}"));
        assert_eq!(webhook_body(b"{\"hello\":\"world\"}").unwrap_err().id, None);
        assert_eq!(webhook_body(b"not json").unwrap_err().id, None);
        let duplicate = message(8, r#""x""#).replacen('{', r#"{"update_id":8,"#, 1);
        assert_eq!(webhook_body(duplicate.as_bytes()).unwrap_err().id, Some(8));
    }

    #[test]
    fn errors_are_described_without_quoting_the_input() {
        let error = serde_json::from_str::<u32>(r#""private words""#).unwrap_err();
        let text = describe(&error);
        assert!(!text.contains("private"), "{text}");
        assert!(text.contains("line 1"), "{text}");
        let error = serde_json::from_str::<String>(r#""\ud800""#).unwrap_err();
        assert!(
            describe(&error).contains("hex escape"),
            "{}",
            describe(&error)
        );
    }
}
