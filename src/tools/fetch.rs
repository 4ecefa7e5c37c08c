//! `fetch_url`: GET a web page and return it as readable text, within size
//! and time limits, refusing private, loopback and link-local addresses
//! (after DNS resolution, on every redirect) unless the policy allows them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::Policy;
use serde::Deserialize;
use serde_json::json;

use super::{Tool, ToolError};
use crate::llm::ToolSpec;

/// What `fetch_url` may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Whether private, loopback and link-local addresses may be fetched.
    pub allow_private: bool,
    /// The most bytes read from a response body.
    pub max_bytes: usize,
    /// The most characters of text returned to the model.
    pub max_chars: usize,
    /// The time one fetch (all redirects included) may take.
    pub timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_bytes: 2 * 1024 * 1024,
            max_chars: 20_000,
            timeout: Duration::from_secs(20),
            max_redirects: 5,
        }
    }
}

/// The `fetch_url` tool.
#[derive(Debug, Clone, Default)]
pub struct FetchUrl {
    policy: FetchPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    url: String,
}

impl FetchUrl {
    /// A fetcher with `policy`.
    pub fn new(policy: FetchPolicy) -> Self {
        Self { policy }
    }

    /// Fetches `url`, following redirects by hand so each hop is checked.
    async fn fetch(&self, url: &str) -> Result<String, ToolError> {
        let mut url =
            Url::parse(url).map_err(|e| ToolError::BadArguments(format!("not a URL: {e}")))?;
        for _ in 0..=self.policy.max_redirects {
            let target = self.resolve(&url).await?;
            // Connect to the address that was checked, not to a second lookup.
            let client = reqwest::Client::builder()
                .redirect(Policy::none())
                .timeout(self.policy.timeout)
                .user_agent(concat!("Baton/", env!("CARGO_PKG_VERSION"), " (fetch_url)"))
                .resolve(url.host_str().unwrap_or_default(), target)
                .build()
                .map_err(|e| ToolError::failed(format!("cannot build an HTTP client: {e}")))?;
            let response = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| ToolError::Failed {
                    message: format!("could not fetch {url}: {}", error_chain(&e)),
                    transient: e.is_timeout() || e.is_connect(),
                })?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| ToolError::failed(format!("{url} redirects nowhere")))?;
                url = url
                    .join(location)
                    .map_err(|e| ToolError::failed(format!("bad redirect from {url}: {e}")))?;
                continue;
            }
            return self.read(url, response).await;
        }
        Err(ToolError::failed(format!(
            "more than {} redirects",
            self.policy.max_redirects
        )))
    }

    /// The address to connect to for `url`, refused if the policy says so.
    async fn resolve(&self, url: &Url) -> Result<SocketAddr, ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::BadArguments(format!(
                "only http and https URLs can be fetched, not {}",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| ToolError::BadArguments(format!("{url} has no host")))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ToolError::Failed {
                message: format!("cannot resolve {host}: {e}"),
                transient: true,
            })?
            .collect();
        if !self.policy.allow_private
            && let Some(refused) = addresses.iter().find(|a| !is_public(a.ip()))
        {
            return Err(ToolError::failed(format!(
                "refused: {host} resolves to {}, a private, loopback or link-local address",
                refused.ip()
            )));
        }
        addresses
            .first()
            .copied()
            .ok_or_else(|| ToolError::failed(format!("{host} has no address")))
    }

    /// Reads at most `max_bytes` of the body and turns it into text.
    async fn read(&self, url: Url, mut response: reqwest::Response) -> Result<String, ToolError> {
        let status = response.status();
        let is_html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .is_none_or(|t| t.contains("html"));
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ToolError::failed(format!("reading {url} failed: {}", error_chain(&e))))?
        {
            let room = self.policy.max_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let raw = String::from_utf8_lossy(&body);
        let mut text = if is_html {
            html_to_text(&raw)
        } else {
            raw.into_owned()
        };
        if text.chars().count() > self.policy.max_chars {
            text = text.chars().take(self.policy.max_chars).collect();
            truncated = true;
        }
        Ok(json!({
            "url": url.as_str(),
            "status": status.as_u16(),
            "truncated": truncated,
            "text": text,
        })
        .to_string())
    }
}

#[async_trait::async_trait]
impl Tool for FetchUrl {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "fetch_url".into(),
            description: "Fetch a web page (http or https) and return its readable text.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"url": {"type": "string", "description": "The page's URL."}},
                "required": ["url"]
            }),
        }
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let args: FetchArgs = serde_json::from_value(arguments)
            .map_err(|e| ToolError::BadArguments(e.to_string()))?;
        self.fetch(&args.url).await
    }
}

/// Whether `ip` is a public unicast address (not private, loopback,
/// link-local, unspecified, multicast, shared, documentation or unique-local).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// A reqwest error with its causes, without the URL repeated.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Readable text from HTML: drops scripts, styles and tags, breaks lines at
/// block elements, decodes the common entities, squeezes blank space.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&decode_entities(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = after[..end].trim().to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        rest = &after[end + 1..];
        if (name == "script" || name == "style") && !tag.starts_with('/') {
            let close = format!("</{name}");
            rest = match rest.to_ascii_lowercase().find(&close) {
                Some(at) => &rest[at..],
                None => "",
            };
            continue;
        }
        if matches!(
            name.as_str(),
            "p" | "div"
                | "br"
                | "li"
                | "tr"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "section"
                | "article"
                | "header"
                | "footer"
                | "pre"
                | "blockquote"
                | "table"
                | "ul"
                | "ol"
        ) {
            text.push('\n');
        }
    }
    text.push_str(&decode_entities(rest));
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() || lines.last().is_some_and(|l| !l.is_empty()) {
            lines.push(line);
        }
    }
    lines.join("\n").trim().to_owned()
}

fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_readable_text() {
        let html = "<html><head><title>T</title><style>p{}</style><script>alert(1)</script></head>\
                    <body><h1>Hello &amp; welcome</h1><p>First   line.</p><p>Second<br>line &lt;3</p></body></html>";
        assert_eq!(
            html_to_text(html),
            "T\nHello & welcome\n\nFirst line.\n\nSecond\nline <3"
        );
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
