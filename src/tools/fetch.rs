//! `fetch_url`: GET a web page and return it as readable text, within size
//! and time limits, refusing private, loopback and link-local addresses
//! (after DNS resolution, on every redirect) unless the policy allows them.
//!
//! The address that was checked is the one connected to (the name is
//! pinned to it), so the client ignores `HTTP_PROXY`, `HTTPS_PROXY` and
//! `ALL_PROXY`: a proxy would look the name up again. Only a proxy named in
//! `[tools.fetch_url] proxy` is used, and then its own policy applies too.
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4,
//! Teredo) are judged by the IPv4 address they carry, and `localhost` names
//! are refused before any lookup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::Policy;
use serde::Deserialize;
use serde_json::json;

use super::{Tool, ToolError};
use crate::domain::ToolSpec;

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
    /// An HTTP(S) proxy every fetch goes through (`[tools.fetch_url]
    /// proxy`). `None`: connect directly, whatever the environment's
    /// `*_PROXY` variables say.
    pub proxy: Option<String>,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_bytes: 2 * 1024 * 1024,
            max_chars: 20_000,
            timeout: Duration::from_secs(20),
            max_redirects: 5,
            proxy: None,
        }
    }
}

/// `[tools.fetch_url]`: what the config may change about `fetch_url`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchUrlConfig {
    /// An `http://` or `https://` proxy for every fetch. Unset (the
    /// default): fetches connect directly to the address Baton checked, and
    /// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored. Set: the
    /// proxy resolves names again and its own policy decides what it
    /// reaches; Baton still refuses what it can see is private.
    pub proxy: Option<String>,
}

impl FetchUrlConfig {
    /// The policy this config gives (the other limits at their defaults).
    pub fn policy(&self) -> FetchPolicy {
        FetchPolicy {
            proxy: self.proxy.clone(),
            ..FetchPolicy::default()
        }
    }

    /// Why the config cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        match Url::parse(proxy) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Ok(())
            }
            Ok(_) => Err(format!(
                "tools.fetch_url.proxy {proxy:?} must be an http:// or https:// URL with a host"
            )),
            Err(e) => Err(format!("tools.fetch_url.proxy {proxy:?} is not a URL: {e}")),
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
            let client = self.client(&url, target)?;
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

    /// A client for one hop. Without a configured proxy it connects to
    /// `target`, the address that was checked, and never to a proxy from the
    /// environment (a proxy would look the name up again). With one, the
    /// proxy connects, and `target` (if any) only was checked.
    fn client(&self, url: &Url, target: Option<SocketAddr>) -> Result<reqwest::Client, ToolError> {
        let mut builder = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(self.policy.timeout)
            .user_agent(concat!("Baton/", env!("CARGO_PKG_VERSION"), " (fetch_url)"));
        builder = match &self.policy.proxy {
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy.as_str())
                    .map_err(|e| ToolError::failed(format!("bad fetch_url proxy: {e}")))?,
            ),
            None => builder.no_proxy(),
        };
        if let Some(target) = target {
            builder = builder.resolve(url.host_str().unwrap_or_default(), target);
        }
        builder
            .build()
            .map_err(|e| ToolError::failed(format!("cannot build an HTTP client: {e}")))
    }

    /// The address to connect to for `url`, refused if the policy says so.
    /// `None` only with a configured proxy, for a name Baton cannot look up
    /// itself: the proxy resolves it.
    async fn resolve(&self, url: &Url) -> Result<Option<SocketAddr>, ToolError> {
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
        if !self.policy.allow_private && is_localhost_name(host) {
            return Err(ToolError::failed(format!(
                "refused: {host} is a localhost name (loopback)"
            )));
        }
        let addresses: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(addresses) => addresses.collect(),
            Err(_) if self.policy.proxy.is_some() => return Ok(None),
            Err(e) => {
                return Err(ToolError::Failed {
                    message: format!("cannot resolve {host}: {e}"),
                    transient: true,
                });
            }
        };
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
            .map(Some)
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

/// Whether `host` (a URL's host, lowercase or not, with or without the
/// trailing dot of a fully qualified name) is `localhost` or a name under
/// it, which resolvers answer with loopback addresses (RFC 6761).
fn is_localhost_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether `ip` is a public unicast address (not private, loopback,
/// link-local, unspecified, multicast, shared, documentation, benchmarking,
/// reserved or unique-local). An IPv6 address that carries an IPv4 address
/// is public only if the IPv4 address is.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b & 0xfe) == 18)
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let segments = v6.segments();
    // Local-use NAT64 (64:ff9b:1::/48, RFC 8215): translates to whatever
    // the local network chose, so nothing about it is known to be public.
    if segments[..3] == [0x64, 0xff9b, 1] {
        return false;
    }
    if let Some(v4) = embedded_ipv4(v6) {
        return is_public_v4(v4);
    }
    let first = segments[0];
    !(v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10, and the old site-local, fec0::/10.
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32.
        || segments[..2] == [0x2001, 0xdb8])
}

/// The IPv4 address an IPv6 address carries, in the forms that reach it:
/// IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`, which holds
/// `::1` and `::` too), IPv4-translated (`::ffff:0:0:0/96`), NAT64's
/// well-known prefix (`64:ff9b::/96`), 6to4 (`2002::/16`) and Teredo
/// (`2001::/32`, the client's address, inverted).
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let from = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        [0, 0, 0, 0, 0, 0xffff, high, low] => Some(from(high, low)),
        [0, 0, 0, 0, 0, 0, high, low] => Some(from(high, low)),
        [0, 0, 0, 0, 0xffff, 0, high, low] => Some(from(high, low)),
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some(from(high, low)),
        [0x2002, high, low, ..] => Some(from(high, low)),
        [0x2001, 0, .., high, low] => Some(from(!high, !low)),
        _ => None,
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
pub(super) fn html_to_text(html: &str) -> String {
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
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_of_private_ipv4_addresses_are_not_public() {
        for ip in [
            // IPv4-mapped, ::ffff:0:0/96.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:7f00:1",
            // IPv4-compatible, ::/96.
            "::127.0.0.1",
            "::7f00:1",
            "::10.0.0.1",
            "::169.254.169.254",
            // IPv4-translated, ::ffff:0:0:0/96.
            "::ffff:0:127.0.0.1",
            // NAT64, well-known prefix 64:ff9b::/96.
            "64:ff9b::7f00:1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::192.168.1.1",
            "64:ff9b::a9fe:a9fe",
            // Local-use NAT64, 64:ff9b:1::/48, whatever it carries.
            "64:ff9b:1::7f00:1",
            "64:ff9b:1::5db8:d822",
            "64:ff9b:1:abcd::1",
            // 6to4, 2002::/16, with a private IPv4 inside.
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:c0a8:101::1",
            // Teredo, 2001::/32: the client's IPv4 is stored inverted
            // (127.0.0.1 = 7f00:0001 -> 80ff:fffe).
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn public_addresses_stay_allowed_in_every_form() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
            "64:ff9b::808:808",
            // 6to4 with a public IPv4 inside (93.184.216.34).
            "2002:5db8:d822::1",
            // Teredo whose client is 93.184.216.34 (inverted: a247:27dd).
            "2001:0:4136:e378:8000:63bf:a247:27dd",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_embedded_ipv4_address_is_decoded() {
        let v4 = |text: &str| embedded_ipv4(text.parse().unwrap());
        let loopback = Some(Ipv4Addr::LOCALHOST);
        assert_eq!(v4("::127.0.0.1"), loopback);
        assert_eq!(v4("::ffff:127.0.0.1"), loopback);
        assert_eq!(v4("64:ff9b::7f00:1"), loopback);
        assert_eq!(v4("2002:7f00:1::"), loopback);
        assert_eq!(v4("2001:0:4136:e378:8000:63bf:80ff:fffe"), loopback);
        assert_eq!(v4("2606:4700::1111"), None);
    }

    #[test]
    fn localhost_names_are_recognised_in_every_spelling() {
        for name in [
            "localhost",
            "localhost.",
            "LOCALHOST",
            "LocalHost.",
            "app.localhost",
            "a.b.LOCALHOST.",
        ] {
            assert!(is_localhost_name(name), "{name}");
        }
        for name in [
            "localhost.example.com",
            "notlocalhost",
            "example.com",
            "127.0.0.1",
        ] {
            assert!(!is_localhost_name(name), "{name}");
        }
    }

    #[test]
    fn the_proxy_setting_must_be_an_http_url() {
        let config = |proxy: &str| FetchUrlConfig {
            proxy: Some(proxy.into()),
        };
        assert!(FetchUrlConfig::default().validate().is_ok());
        assert!(config("http://127.0.0.1:3128").validate().is_ok());
        assert!(config("https://proxy.example.org").validate().is_ok());
        assert!(config("socks5://127.0.0.1:1080").validate().is_err());
        assert!(config("not a url").validate().is_err());
        assert_eq!(
            config("http://127.0.0.1:3128").policy().proxy.as_deref(),
            Some("http://127.0.0.1:3128")
        );
    }
}
