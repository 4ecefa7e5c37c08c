//! Taking secrets out of text that Baton did not write, before it is logged,
//! stored or shown: [`Redactor`].
//!
//! Provider error bodies are the case in point: a provider that refuses a
//! key often quotes it ("Incorrect API key provided: sk-…"). A redactor
//! replaces with [`REDACTED`]:
//! - every secret it was given (the configured provider keys, bot tokens,
//!   MCP bearer tokens and the webhook secret: [`Redactor::from_config`]);
//! - anything shaped like a key: `sk-…` (OpenAI, Anthropic `sk-ant-…`),
//!   `AIza…` (Google), the token after `Bearer`, a long token of letters and
//!   digits shortly after the word `key` or `token` (`api_key=…`,
//!   `x-api-key: …`, "API key provided: …"), and any very long token of
//!   letters and digits that is not a host name or a path.
//!
//! It errs on the side of redacting: a request id may go too.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Known secrets shorter than this are not replaced by value (they would
/// shred ordinary words); the shapes below still apply.
const MIN_SECRET_CHARS: usize = 4;
/// A token after the word `key` or `token` is redacted from this length.
const MIN_KEYWORD_TOKEN_CHARS: usize = 16;
/// A token after `Bearer` is redacted from this length.
const MIN_BEARER_TOKEN_CHARS: usize = 8;
/// Any token of letters and digits is redacted from this length.
const MIN_LONE_TOKEN_CHARS: usize = 32;
/// How many words after `key` or `token` a secret may come
/// ("API key provided: sk-…" puts one word between).
const KEYWORD_REACH: usize = 2;

/// Replaces known secrets and key-shaped tokens in text. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The secrets replaced by value, longest first.
    secrets: Arc<[SecretString]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for `secrets` (blank and very short ones are skipped) and
    /// the key shapes.
    pub fn new(secrets: impl IntoIterator<Item = SecretString>) -> Self {
        let mut secrets: Vec<SecretString> = secrets
            .into_iter()
            .filter(|secret| secret.expose_secret().trim().chars().count() >= MIN_SECRET_CHARS)
            .collect();
        // Longest first, so that a secret containing another goes whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.expose_secret().len()));
        Redactor {
            secrets: secrets.into(),
        }
    }

    /// A redactor for every secret the config can reach (see
    /// [`Config::secrets`]).
    pub fn from_config(config: &Config) -> Self {
        Self::new(config.secrets())
    }

    /// This redactor with one more secret.
    pub fn with_secret(&self, secret: Option<&SecretString>) -> Self {
        match secret {
            Some(secret) => Self::new(self.secrets.iter().cloned().chain([secret.clone()])),
            None => self.clone(),
        }
    }

    /// `text` with every known secret and key-shaped token replaced by
    /// [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter() {
            let secret = secret.expose_secret().trim();
            if secret.chars().count() >= MIN_SECRET_CHARS && text.contains(secret) {
                text = text.replace(secret, REDACTED);
            }
        }
        redact_shapes(&text)
    }
}

/// Whether `c` can be part of a token (a key, a word, base64 or hex).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '~' | '*')
}

/// `text` with key-shaped tokens replaced (see the module docs).
fn redact_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The words before the current one, lowercased, newest last.
    let mut previous: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(is_token_char) {
        out.push_str(&rest[..start]);
        let after_start = &rest[start..];
        let mut end = after_start
            .find(|c: char| !is_token_char(c))
            .unwrap_or(after_start.len());
        // Base64 padding belongs to the token.
        end += after_start[end..].len() - after_start[end..].trim_start_matches('=').len();
        let run = &after_start[..end];
        // A sentence's full stop does not.
        let token = run.trim_end_matches('.');
        let trailing = &run[token.len()..];
        if looks_like_a_secret(token, &previous) {
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        out.push_str(trailing);
        previous.push(token.to_ascii_lowercase());
        if previous.len() > KEYWORD_REACH {
            previous.remove(0);
        }
        rest = &after_start[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `token` should be redacted, given the words before it.
fn looks_like_a_secret(token: &str, previous: &[String]) -> bool {
    let length = token.chars().count();
    let letters_and_digits =
        token.chars().any(|c| c.is_ascii_alphabetic()) && token.chars().any(|c| c.is_ascii_digit());
    if token.starts_with("sk-") && length >= 3 + 8 {
        return true;
    }
    if token.starts_with("AIza") && length >= 4 + 20 {
        return true;
    }
    if previous.last().is_some_and(|word| word == "bearer") && length >= MIN_BEARER_TOKEN_CHARS {
        return true;
    }
    let after_keyword = previous
        .iter()
        .any(|word| word.ends_with("key") || word.ends_with("token"));
    if after_keyword && letters_and_digits && length >= MIN_KEYWORD_TOKEN_CHARS {
        return true;
    }
    // A long token alone: not a host name or a path.
    let path_like = token.contains('.') || token.matches('/').count() > 2;
    letters_and_digits && length >= MIN_LONE_TOKEN_CHARS && !path_like
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        Redactor::new(secrets.iter().map(|s| SecretString::from(*s)))
    }

    #[test]
    fn configured_secrets_go_by_value() {
        let redactor = redactor(&["hunter2-but-longer", "tiny", "", "  "]);
        assert_eq!(
            redactor.redact("key hunter2-but-longer was refused; tiny word"),
            "key [redacted] was refused; [redacted] word"
        );
        // A secret inside a longer one: the longer goes whole.
        let nested = redactor_nested();
        assert_eq!(nested.redact("x abcdefgh-ijkl y"), "x [redacted] y");
    }

    fn redactor_nested() -> Redactor {
        redactor(&["abcdefgh", "abcdefgh-ijkl"])
    }

    #[test]
    fn provider_key_shapes() {
        let r = Redactor::default();
        assert_eq!(
            r.redact("Incorrect API key provided: sk-proj-abc123XYZ789. You can find your key at https://platform.openai.com/account/api-keys."),
            "Incorrect API key provided: [redacted]. You can find your key at https://platform.openai.com/account/api-keys."
        );
        assert_eq!(
            r.redact("invalid x-api-key: sk-ant-api03-AbCdEf_12345-xyz"),
            "invalid x-api-key: [redacted]"
        );
        assert_eq!(
            r.redact(
                "GET /v1beta/models/m:generateContent?key=AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStU"
            ),
            "GET /v1beta/models/m:generateContent?key=[redacted]"
        );
        assert_eq!(
            r.redact("header was Authorization: Bearer abc.def-123_456"),
            "header was Authorization: Bearer [redacted]"
        );
        assert_eq!(
            r.redact(r#"{"api_key": "q7Wz9xLp2Rt5Vb8Nm3Kd"}"#),
            r#"{"api_key": "[redacted]"}"#
        );
        assert_eq!(
            r.redact("token=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA=="),
            "token=[redacted]"
        );
        let hex = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(r.redact(&format!("id {hex} seen")), "id [redacted] seen");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let r = Redactor::default();
        for text in [
            "The model gpt-5.1 is overloaded; retry after 30s.",
            "This model's maximum context length is 128000 tokens.",
            "a Bearer token is required",
            "API key not valid. Please pass a valid API key.",
            "skip the sk- prefix; ask-me-anything",
            "https://api.example.com/v1/chat/completions",
            "projects/123/locations/us-central1/publishers/google/models/x",
            "prompt is too long: 210000 tokens > 200000 maximum",
        ] {
            assert_eq!(r.redact(text), text);
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let r = redactor(&["very-secret-value"]);
        let shown = format!("{r:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        let added = Redactor::default().with_secret(Some(&SecretString::from("another-secret")));
        assert_eq!(added.redact("x another-secret y"), "x [redacted] y");
    }
}
