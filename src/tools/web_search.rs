//! `web_search`: searches the web through the backend `[tools.web_search]`
//! names and returns `[{title, url, snippet}]`; workers then read pages with
//! `fetch_url`.
//!
//! Backends and their wire formats:
//! - `searxng` (self-hosted, no key): `GET {base_url}/search?q=..&format=json`
//!   → `results[].{title, url, content}`. The instance must allow the `json`
//!   format (`search.formats` in its `settings.yml`); it answers 403 if not.
//! - `brave` (Brave Search API): `GET {base_url}/res/v1/web/search?q=..&count=N`
//!   with the key in `X-Subscription-Token` → `web.results[].{title, url,
//!   description}` (descriptions carry `<strong>` tags, which are dropped).
//! - `tavily`: `POST {base_url}/search` with `{"query", "max_results"}` and
//!   `Authorization: Bearer <key>` → `results[].{title, url, content}`.
//!
//! Everything is bounded: the query, the results asked for and kept, each
//! title, URL and snippet, the answer's body and the time a search takes.
//! 401 and 403 are permanent failures naming the key's variable (the
//! provider's body, which may quote the key, is never read); 429, 5xx,
//! timeouts and connection failures are transient. Like `fetch_url`, the
//! client ignores the environment's `*_PROXY` variables.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Tool, ToolError};
use crate::domain::ToolSpec;

/// The most results one search may ask for (`max_results` in the config
/// and in a call); Brave's and Tavily's own limit.
pub const MAX_RESULTS_CAP: usize = 20;
/// The longest query sent (Brave's own limit), in characters.
const MAX_QUERY_CHARS: usize = 400;
/// The longest snippet returned, in characters (longer ones are cut, `…`).
const MAX_SNIPPET_CHARS: usize = 400;
/// The longest title returned, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// Results whose URL is longer than this are dropped (a cut URL is wrong).
const MAX_URL_CHARS: usize = 2048;
/// The most bytes of an answer read; a longer answer fails the search.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Which search service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchBackend {
    /// A self-hosted SearXNG instance's JSON API (no key).
    Searxng,
    /// The Brave Search API (key in `X-Subscription-Token`).
    Brave,
    /// Tavily (key as a bearer token).
    Tavily,
}

impl SearchBackend {
    /// The name users know it by.
    pub fn label(self) -> &'static str {
        match self {
            SearchBackend::Searxng => "SearXNG",
            SearchBackend::Brave => "Brave Search",
            SearchBackend::Tavily => "Tavily",
        }
    }

    /// Its public API's URL; SearXNG has none (it is self-hosted).
    fn default_base_url(self) -> Option<&'static str> {
        match self {
            SearchBackend::Searxng => None,
            SearchBackend::Brave => Some("https://api.search.brave.com"),
            SearchBackend::Tavily => Some("https://api.tavily.com"),
        }
    }

    /// The variable its key is read from when `api_key_env` is unset;
    /// SearXNG takes no key.
    fn default_key_env(self) -> Option<&'static str> {
        match self {
            SearchBackend::Searxng => None,
            SearchBackend::Brave => Some("BRAVE_API_KEY"),
            SearchBackend::Tavily => Some("TAVILY_API_KEY"),
        }
    }
}

/// `[tools.web_search]`: present means the tool is wanted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSearchConfig {
    /// `searxng`, `brave` or `tavily`.
    pub backend: SearchBackend,
    /// The service's URL. Brave and Tavily default to their public API;
    /// SearXNG needs it (`http://127.0.0.1:8888`, say).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the key (Brave: `BRAVE_API_KEY`,
    /// Tavily: `TAVILY_API_KEY` when unset). SearXNG takes none.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Results a search returns unless the call asks for fewer (1 to
    /// [`MAX_RESULTS_CAP`]).
    #[serde(default = "default_max_results")]
    pub max_results: usize,
    /// Seconds one search may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The key, when found in the variable list given to
    /// `Config::from_toml`; wins over the process environment. Never read
    /// from the file.
    #[serde(skip)]
    pub api_key: Option<SecretString>,
}

fn default_max_results() -> usize {
    5
}

fn default_timeout_secs() -> u64 {
    15
}

impl WebSearchConfig {
    /// A config for `backend` at `base_url`, the rest at defaults.
    pub fn new(backend: SearchBackend, base_url: Option<String>) -> Self {
        Self {
            backend,
            base_url,
            api_key_env: None,
            max_results: default_max_results(),
            timeout_secs: default_timeout_secs(),
            api_key: None,
        }
    }

    /// The URL searches go to: `base_url`, or the backend's public one.
    pub fn base_url(&self) -> Option<&str> {
        self.base_url
            .as_deref()
            .or_else(|| self.backend.default_base_url())
    }

    /// The variable the key is read from (`None` for SearXNG).
    pub fn api_key_env(&self) -> Option<&str> {
        self.api_key_env
            .as_deref()
            .or_else(|| self.backend.default_key_env())
    }

    /// The key: from the variable list the config was read with, else from
    /// the process environment.
    pub fn api_key(&self) -> Option<SecretString> {
        if let Some(key) = &self.api_key {
            return Some(key.clone());
        }
        std::env::var(self.api_key_env()?)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .map(SecretString::from)
    }

    /// Takes the key from `env` (the list the config is read with) when its
    /// variable is there.
    pub fn take_key_from(&mut self, env: &[(String, String)]) {
        let Some(var) = self.api_key_env().map(str::to_owned) else {
            return;
        };
        if let Some((_, value)) = env
            .iter()
            .find(|(name, value)| *name == var && !value.trim().is_empty())
        {
            self.api_key = Some(SecretString::from(value.clone()));
        }
    }

    /// Why the config cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        let backend = self.backend;
        let Some(base) = self.base_url() else {
            return Err(format!(
                "tools.web_search.base_url is needed for {} (your instance's URL, \
                 such as http://127.0.0.1:8888)",
                backend.label()
            ));
        };
        match Url::parse(base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
            Ok(_) => {
                return Err(format!(
                    "tools.web_search.base_url {base:?} must be an http:// or https:// URL with a host"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "tools.web_search.base_url {base:?} is not a URL: {e}"
                ));
            }
        }
        if backend == SearchBackend::Searxng && self.api_key_env.is_some() {
            return Err(
                "tools.web_search.api_key_env does not apply to SearXNG (it takes no key)".into(),
            );
        }
        if !(1..=MAX_RESULTS_CAP).contains(&self.max_results) {
            return Err(format!(
                "tools.web_search.max_results must be 1 to {MAX_RESULTS_CAP}"
            ));
        }
        if self.timeout_secs == 0 {
            return Err("tools.web_search.timeout_secs must be at least 1".into());
        }
        Ok(())
    }

    /// What `baton check` says: `Ok` when the tool is offered, `Err` with
    /// what is missing when it is not.
    pub fn status(&self) -> Result<String, String> {
        let backend = self.backend.label();
        let base = self.base_url().unwrap_or_default();
        match self.api_key_env() {
            None => Ok(format!("web_search: {backend} at {base}")),
            Some(var) if self.api_key().is_some() => Ok(format!(
                "web_search: {backend} at {base}, API key found in {var}"
            )),
            Some(var) => Err(format!(
                "web_search: {backend} needs an API key: set the environment variable {var} \
                 (the tool is off until then)"
            )),
        }
    }
}

/// The `web_search` tool.
#[derive(Debug, Clone)]
pub struct WebSearch {
    backend: SearchBackend,
    /// The base URL, without a trailing `/`.
    base: String,
    key: Option<SecretString>,
    /// Where the key comes from, for messages.
    key_env: Option<String>,
    max_results: usize,
    timeout: Duration,
    client: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    max_results: Option<serde_json::Value>,
}

/// One result, as the model gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    /// The page's title.
    pub title: String,
    /// Its URL.
    pub url: String,
    /// What the service quotes from it.
    pub snippet: String,
}

/// One result in any backend's answer: SearXNG and Tavily call the snippet
/// `content`, Brave `description`.
#[derive(Deserialize)]
struct RawHit {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, alias = "description")]
    content: Option<String>,
}

/// SearXNG's and Tavily's answer.
#[derive(Deserialize)]
struct ResultsAnswer {
    #[serde(default)]
    results: Vec<RawHit>,
}

/// Brave's answer (`web` is absent when nothing was found).
#[derive(Deserialize)]
struct BraveAnswer {
    #[serde(default)]
    web: Option<ResultsAnswer>,
}

impl WebSearch {
    /// The tool for `config`, or why it cannot be offered (no base URL, no
    /// key where one is needed).
    pub fn from_config(config: &WebSearchConfig) -> Result<Self, String> {
        config.validate()?;
        config.status()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(config.timeout_secs))
            .user_agent(concat!(
                "Baton/",
                env!("CARGO_PKG_VERSION"),
                " (web_search)"
            ))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            backend: config.backend,
            base: config
                .base_url()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            key: config.api_key(),
            key_env: config.api_key_env().map(str::to_owned),
            max_results: config.max_results,
            timeout: Duration::from_secs(config.timeout_secs),
            client,
        })
    }

    /// Runs one search for at most `count` results.
    async fn search(&self, query: &str, count: usize) -> Result<Vec<SearchHit>, ToolError> {
        let request = self.request(query, count)?;
        let response = request.send().await.map_err(|e| self.send_failed(&e))?;
        self.check_status(&response)?;
        let body = self.read(response).await?;
        let hits = self.parse(&body)?;
        Ok(hits
            .into_iter()
            .filter_map(|hit| self.hit(hit))
            .take(count)
            .collect())
    }

    /// Reads at most [`MAX_BODY_BYTES`] of the answer; a longer one fails
    /// the search.
    async fn read(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ToolError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.send_failed(&e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ToolError::failed(format!(
                    "{}'s answer is larger than {MAX_BODY_BYTES} bytes",
                    self.backend.label()
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The backend's request for `query`.
    fn request(&self, query: &str, count: usize) -> Result<reqwest::RequestBuilder, ToolError> {
        let url = |path: &str| {
            Url::parse(&format!("{}{path}", self.base))
                .map_err(|e| ToolError::failed(format!("bad web_search base_url: {e}")))
        };
        let key = || {
            self.key
                .as_ref()
                .map(|k| k.expose_secret())
                .unwrap_or_default()
        };
        Ok(match self.backend {
            SearchBackend::Searxng => {
                let mut url = url("/search")?;
                url.query_pairs_mut()
                    .append_pair("q", query)
                    .append_pair("format", "json");
                self.client.get(url)
            }
            SearchBackend::Brave => {
                let mut url = url("/res/v1/web/search")?;
                url.query_pairs_mut()
                    .append_pair("q", query)
                    .append_pair("count", &count.to_string());
                self.client
                    .get(url)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .header("X-Subscription-Token", key())
            }
            SearchBackend::Tavily => self
                .client
                .post(url("/search")?)
                .bearer_auth(key())
                .json(&json!({"query": query, "max_results": count})),
        })
    }

    /// A failure to send or read, without the URL (it holds the query only,
    /// but the message is short without it).
    fn send_failed(&self, error: &reqwest::Error) -> ToolError {
        let backend = self.backend.label();
        if error.is_timeout() {
            return ToolError::Failed {
                message: format!(
                    "{backend} did not answer within {}s; try again",
                    self.timeout.as_secs()
                ),
                transient: true,
            };
        }
        ToolError::Failed {
            message: format!("{backend} could not be reached: {}", error_chain(error)),
            transient: error.is_connect() || error.is_request() || error.is_body(),
        }
    }

    /// Turns an error status into a failure, without reading the body.
    fn check_status(&self, response: &reqwest::Response) -> Result<(), ToolError> {
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let backend = self.backend.label();
        let code = status.as_u16();
        let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        let message = match (&self.key_env, refused) {
            (Some(var), true) => {
                format!("{backend} refused the API key (HTTP {code}): check the key in {var}")
            }
            (None, true) => format!(
                "{backend} refused the search (HTTP {code}): its settings.yml must list json \
                 in search.formats, and it must let Baton in"
            ),
            _ if status == StatusCode::TOO_MANY_REQUESTS => {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|secs| format!(" (retry after {secs}s)"))
                    .unwrap_or_default();
                format!("{backend} is rate limiting searches (HTTP 429){wait}; try again later")
            }
            _ if status.is_server_error() => {
                format!("{backend} failed (HTTP {code}); try again later")
            }
            _ => format!("{backend} refused the search (HTTP {code})"),
        };
        Err(ToolError::Failed {
            message,
            transient: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
        })
    }

    /// The results in the backend's answer.
    fn parse(&self, body: &[u8]) -> Result<Vec<RawHit>, ToolError> {
        let invalid = |e: serde_json::Error| {
            ToolError::failed(format!(
                "{}'s answer is not the expected JSON: {e}",
                self.backend.label()
            ))
        };
        match self.backend {
            SearchBackend::Searxng | SearchBackend::Tavily => {
                let answer: ResultsAnswer = serde_json::from_slice(body).map_err(invalid)?;
                Ok(answer.results)
            }
            SearchBackend::Brave => {
                let answer: BraveAnswer = serde_json::from_slice(body).map_err(invalid)?;
                Ok(answer.web.map(|web| web.results).unwrap_or_default())
            }
        }
    }

    /// One result, bounded and cleaned; `None` without a usable URL.
    fn hit(&self, raw: RawHit) -> Option<SearchHit> {
        let url = raw.url.map(|u| u.trim().to_owned())?;
        if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
            return None;
        }
        // Brave marks matches with <strong>; the others send plain text.
        let clean = |text: Option<String>| {
            let text = text.unwrap_or_default();
            match self.backend {
                SearchBackend::Brave => super::fetch::html_to_text(&text),
                _ => text,
            }
        };
        Some(SearchHit {
            title: bounded(&clean(raw.title), MAX_TITLE_CHARS),
            url,
            snippet: bounded(&clean(raw.content), MAX_SNIPPET_CHARS),
        })
    }

    /// The results a call gets: what it asked for, within 1 and the
    /// configured `max_results`.
    fn count(&self, asked: Option<&serde_json::Value>) -> Result<usize, ToolError> {
        let Some(asked) = asked.filter(|v| !v.is_null()) else {
            return Ok(self.max_results);
        };
        let number = asked
            .as_f64()
            .or_else(|| asked.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| ToolError::BadArguments("max_results must be a number".into()))?;
        Ok((number.max(1.0) as usize).min(self.max_results))
    }
}

#[async_trait::async_trait]
impl Tool for WebSearch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "web_search".into(),
            description: format!(
                "Search the web. Returns a JSON list of results, each with title, url and \
                 snippet (at most {} results). Read a result's page with fetch_url.",
                self.max_results
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to search for."},
                    "max_results": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": self.max_results,
                        "description": "How many results to return."
                    }
                },
                "required": ["query"]
            }),
        }
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let args: SearchArgs = serde_json::from_value(arguments)
            .map_err(|e| ToolError::BadArguments(e.to_string()))?;
        let query = args.query.trim();
        if query.is_empty() {
            return Err(ToolError::BadArguments("query is empty".into()));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(ToolError::BadArguments(format!(
                "query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let count = self.count(args.max_results.as_ref())?;
        let hits = self.search(query, count).await?;
        serde_json::to_string(&hits)
            .map_err(|e| ToolError::failed(format!("cannot write the results: {e}")))
    }
}

/// `text` on one line with its runs of white space squeezed, cut to `max`
/// characters (with `…` when cut).
fn bounded(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A reqwest error's causes (its own text says little more than "error
/// sending request" and repeats the URL); `baton check` words its own
/// connection failures with it too.
pub(crate) fn error_chain(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        causes.push(inner.to_string());
        source = inner.source();
    }
    if causes.is_empty() {
        error.to_string()
    } else {
        causes.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<WebSearchConfig, String> {
        let config: WebSearchConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn brave_and_tavily_default_to_their_public_apis_and_key_variables() {
        let brave = config("backend = \"brave\"").unwrap();
        assert_eq!(brave.base_url(), Some("https://api.search.brave.com"));
        assert_eq!(brave.api_key_env(), Some("BRAVE_API_KEY"));
        assert_eq!(brave.max_results, 5);
        let tavily = config("backend = \"tavily\"\napi_key_env = \"MY_TAVILY\"").unwrap();
        assert_eq!(tavily.base_url(), Some("https://api.tavily.com"));
        assert_eq!(tavily.api_key_env(), Some("MY_TAVILY"));
    }

    #[test]
    fn searxng_needs_a_base_url_and_takes_no_key() {
        let missing = config("backend = \"searxng\"").unwrap_err();
        assert!(
            missing.contains("base_url is needed for SearXNG"),
            "{missing}"
        );
        let keyed = config(
            "backend = \"searxng\"\nbase_url = \"http://127.0.0.1:8888\"\napi_key_env = \"K\"",
        )
        .unwrap_err();
        assert!(keyed.contains("does not apply"), "{keyed}");
        let fine = config("backend = \"searxng\"\nbase_url = \"http://127.0.0.1:8888\"").unwrap();
        assert_eq!(fine.api_key_env(), None);
        assert_eq!(
            fine.status(),
            Ok("web_search: SearXNG at http://127.0.0.1:8888".into())
        );
    }

    #[test]
    fn limits_and_urls_are_checked() {
        for text in [
            "backend = \"brave\"\nmax_results = 0",
            "backend = \"brave\"\nmax_results = 21",
            "backend = \"brave\"\ntimeout_secs = 0",
            "backend = \"brave\"\nbase_url = \"ftp://example.org\"",
            "backend = \"brave\"\nbase_url = \"not a url\"",
            "backend = \"bing\"",
            "backend = \"brave\"\ncount = 3",
        ] {
            assert!(config(text).is_err(), "{text}");
        }
        assert!(config("backend = \"brave\"\nmax_results = 20").is_ok());
    }

    #[test]
    fn a_missing_key_says_which_variable_to_set() {
        let mut brave =
            config("backend = \"brave\"\napi_key_env = \"BATON_TEST_NO_SUCH_KEY\"").unwrap();
        let why = brave.status().unwrap_err();
        assert!(
            why.contains("set the environment variable BATON_TEST_NO_SUCH_KEY"),
            "{why}"
        );
        assert!(WebSearch::from_config(&brave).is_err());
        brave.take_key_from(&[("BATON_TEST_NO_SUCH_KEY".into(), "k-123".into())]);
        assert_eq!(
            brave.status(),
            Ok(
                "web_search: Brave Search at https://api.search.brave.com, API key found in \
                BATON_TEST_NO_SUCH_KEY"
                    .into()
            )
        );
        assert!(WebSearch::from_config(&brave).is_ok());
    }

    #[test]
    fn texts_are_squeezed_and_cut() {
        assert_eq!(bounded("  a\n  b\tc ", 10), "a b c");
        assert_eq!(bounded("abcdef", 4), "abc…");
        assert_eq!(bounded("ab", 2), "ab");
    }

    #[test]
    fn the_count_asked_for_is_kept_within_bounds() {
        let mut config =
            WebSearchConfig::new(SearchBackend::Searxng, Some("http://127.0.0.1:8888".into()));
        config.max_results = 8;
        let tool = WebSearch::from_config(&config).unwrap();
        assert_eq!(tool.count(None).unwrap(), 8);
        assert_eq!(tool.count(Some(&json!(3))).unwrap(), 3);
        assert_eq!(tool.count(Some(&json!("2"))).unwrap(), 2);
        assert_eq!(tool.count(Some(&json!(100))).unwrap(), 8);
        assert_eq!(tool.count(Some(&json!(0))).unwrap(), 1);
        assert_eq!(tool.count(Some(&json!(null))).unwrap(), 8);
        assert!(tool.count(Some(&json!("many"))).is_err());
    }
}
