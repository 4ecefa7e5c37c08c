//! Message nonces: every piece of a reply is created with a `nonce` and
//! `enforce_nonce: true`, so that Discord answers a retried create (after a
//! 5xx or a timeout whose request did arrive) with the message it already
//! made instead of posting it twice. Discord keeps nonces for a few
//! minutes.
//!
//! A piece that answers a user's message gets a nonce derived from where
//! it goes and what it says, so the same reply posted again after a
//! restart (from the durable outbox) is also recognised within that
//! window. Other pieces get one unique to this post.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Sets `nonce` and `enforce_nonce` on a create-message `body` for piece
/// `index` of a reply in `channel` to the message `reply_to`.
pub fn enforce(body: &mut Value, channel: u64, reply_to: Option<u64>, index: usize, piece: &str) {
    let mut hasher = DefaultHasher::new();
    (channel, index, piece).hash(&mut hasher);
    match reply_to {
        Some(message) => message.hash(&mut hasher),
        // Nothing identifies a repeat of this post: make it unique.
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .hash(&mut hasher),
    }
    // Discord takes a string of up to 25 characters.
    body["nonce"] = json!(format!("{:x}", hasher.finish()));
    body["enforce_nonce"] = json!(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(channel: u64, reply_to: Option<u64>, index: usize, piece: &str) -> String {
        let mut body = json!({});
        enforce(&mut body, channel, reply_to, index, piece);
        assert_eq!(body["enforce_nonce"], json!(true));
        let nonce = body["nonce"].as_str().unwrap_or_default().to_owned();
        assert!(!nonce.is_empty() && nonce.len() <= 25, "{nonce}");
        nonce
    }

    #[test]
    fn a_reply_posted_again_has_the_same_nonces_and_others_differ() {
        assert_eq!(nonce(1, Some(7), 0, "hi"), nonce(1, Some(7), 0, "hi"));
        assert_ne!(nonce(1, Some(7), 0, "hi"), nonce(1, Some(7), 1, "hi"));
        assert_ne!(nonce(1, Some(7), 0, "hi"), nonce(1, Some(8), 0, "hi"));
        assert_ne!(nonce(1, Some(7), 0, "hi"), nonce(2, Some(7), 0, "hi"));
        assert_ne!(nonce(1, Some(7), 0, "hi"), nonce(1, Some(7), 0, "ho"));
    }
}
