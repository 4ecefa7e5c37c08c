//! A fake of each web search API `web_search` speaks, on `127.0.0.1:0`:
//! SearXNG (`GET /search?q=..&format=json`), Brave Search (`GET
//! /res/v1/web/search?q=..&count=N` with `X-Subscription-Token`) and Tavily
//! (`POST /search` with `{"query", "max_results"}` and a bearer key).
//!
//! The fake answers in the API's own format with the results it was given
//! (all of them, whatever was asked: the tool must keep to its count), or
//! with the status it was told to answer. A request of the wrong shape (the
//! wrong method or path, a missing parameter, a missing or wrong key) gets
//! 400 with the reason, so that the tool's error names it. Every request is
//! kept for the test to look at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Which API the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchApi {
    /// SearXNG's JSON API.
    Searxng,
    /// The Brave Search API.
    Brave,
    /// Tavily.
    Tavily,
}

impl SearchApi {
    /// Its name in `[tools.web_search] backend`.
    pub fn backend(self) -> &'static str {
        match self {
            SearchApi::Searxng => "searxng",
            SearchApi::Brave => "brave",
            SearchApi::Tavily => "tavily",
        }
    }
}

/// One result the fake returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeHit {
    pub title: String,
    pub url: String,
    pub snippet: String,
}

impl FakeHit {
    pub fn new(title: &str, url: &str, snippet: &str) -> Self {
        Self {
            title: title.into(),
            url: url.into(),
            snippet: snippet.into(),
        }
    }
}

/// One request the fake got.
#[derive(Debug, Clone)]
pub struct SeenSearch {
    pub method: String,
    pub path: String,
    /// The query string's parameters.
    pub params: HashMap<String, String>,
    /// `X-Subscription-Token` (Brave).
    pub subscription_token: Option<String>,
    /// `Authorization` (Tavily).
    pub authorization: Option<String>,
    /// The JSON body (Tavily).
    pub body: Option<Value>,
}

/// What the fake answers.
#[derive(Debug, Clone)]
enum Answer {
    Results(Vec<FakeHit>),
    /// A status, a body (which may quote the key) and a `Retry-After`.
    Status(u16, Value, Option<u64>),
}

struct Shared {
    api: SearchApi,
    /// The key Brave and Tavily expect.
    key: String,
    answer: Mutex<Answer>,
    seen: Mutex<Vec<SeenSearch>>,
    /// Pages served by path (as a web server, or as an HTTP proxy for any
    /// host: `fetch_url` with `[tools.fetch_url] proxy` pointed here).
    pages: Mutex<HashMap<String, String>>,
}

/// A running fake search API; it stops when the test's runtime ends.
pub struct FakeSearch {
    url: String,
    shared: Arc<Shared>,
}

impl FakeSearch {
    /// Starts a fake of `api` answering `hits`; Brave and Tavily expect
    /// `key`.
    pub async fn start(api: SearchApi, key: &str, hits: Vec<FakeHit>) -> FakeSearch {
        let shared = Arc::new(Shared {
            api,
            key: key.to_owned(),
            answer: Mutex::new(Answer::Results(hits)),
            seen: Mutex::new(Vec::new()),
            pages: Mutex::new(HashMap::new()),
        });
        let app = Router::new().fallback(serve).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeSearch { url, shared }
    }

    /// Its base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `[tools.web_search]` table that points Baton here, reading the
    /// key (if any) from `key_env`.
    pub fn config(&self, key_env: Option<&str>) -> String {
        let mut table = format!(
            "[tools.web_search]\nbackend = \"{}\"\nbase_url = \"{}\"\n",
            self.shared.api.backend(),
            self.url
        );
        if let Some(var) = key_env {
            table.push_str(&format!("api_key_env = \"{var}\"\n"));
        }
        table
    }

    /// From now on, answers `status` with `body` (and `Retry-After`).
    pub fn fail_with(&self, status: u16, body: Value, retry_after: Option<u64>) {
        *self.shared.answer.lock().unwrap() = Answer::Status(status, body, retry_after);
    }

    /// Serves `html` at `path` too (to any host it is asked for as a
    /// proxy).
    pub fn serve_page(&self, path: &str, html: &str) {
        self.shared
            .pages
            .lock()
            .unwrap()
            .insert(path.to_owned(), html.to_owned());
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<SeenSearch> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn serve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = SeenSearch {
        method: method.to_string(),
        path: uri.path().to_owned(),
        params,
        subscription_token: header("x-subscription-token"),
        authorization: header("authorization"),
        body: serde_json::from_slice(&body).ok(),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    if let Some(page) = shared.pages.lock().unwrap().get(&seen.path).cloned() {
        return axum::response::Html(page).into_response();
    }
    if let Err(why) = check_shape(&shared, &seen) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let answer = shared.answer.lock().unwrap().clone();
    match answer {
        Answer::Status(status, body, retry_after) => {
            let mut response =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            response
        }
        Answer::Results(hits) => axum::Json(render(shared.api, &seen, &hits)).into_response(),
    }
}

/// Whether the request has the API's shape; why not if not.
fn check_shape(shared: &Shared, seen: &SeenSearch) -> Result<(), String> {
    let query_param = |name: &str| {
        seen.params
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("missing query parameter {name}"))
    };
    match shared.api {
        SearchApi::Searxng => {
            if (seen.method.as_str(), seen.path.as_str()) != ("GET", "/search") {
                return Err(format!("no route {} {}", seen.method, seen.path));
            }
            query_param("q")?;
            if query_param("format")? != "json" {
                return Err("format must be json".into());
            }
        }
        SearchApi::Brave => {
            if (seen.method.as_str(), seen.path.as_str()) != ("GET", "/res/v1/web/search") {
                return Err(format!("no route {} {}", seen.method, seen.path));
            }
            query_param("q")?;
            query_param("count")?
                .parse::<u32>()
                .map_err(|_| "count must be a number".to_owned())?;
            if seen.subscription_token.as_deref() != Some(shared.key.as_str()) {
                return Err("X-Subscription-Token is missing or wrong".into());
            }
        }
        SearchApi::Tavily => {
            if (seen.method.as_str(), seen.path.as_str()) != ("POST", "/search") {
                return Err(format!("no route {} {}", seen.method, seen.path));
            }
            let body = seen.body.as_ref().ok_or("the body is not JSON")?;
            if !body["query"].is_string() || !body["max_results"].is_u64() {
                return Err("the body needs query and max_results".into());
            }
            if seen.authorization.as_deref() != Some(&format!("Bearer {}", shared.key)) {
                return Err("Authorization is missing or wrong".into());
            }
        }
    }
    Ok(())
}

/// The answer in the API's format.
fn render(api: SearchApi, seen: &SeenSearch, hits: &[FakeHit]) -> Value {
    match api {
        SearchApi::Searxng => json!({
            "query": seen.params.get("q"),
            "number_of_results": hits.len(),
            "results": hits.iter().map(|h| json!({
                "url": h.url,
                "title": h.title,
                "content": h.snippet,
                "engine": "duckduckgo",
                "engines": ["duckduckgo"],
                "score": 1.0,
                "category": "general",
            })).collect::<Vec<_>>(),
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }),
        SearchApi::Brave => json!({
            "type": "search",
            "query": {"original": seen.params.get("q")},
            "mixed": {"type": "mixed", "main": []},
            "web": {
                "type": "search",
                "family_friendly": true,
                "results": hits.iter().map(|h| json!({
                    "type": "search_result",
                    "title": h.title,
                    "url": h.url,
                    "description": h.snippet,
                    "is_source_local": false,
                    "language": "en",
                })).collect::<Vec<_>>(),
            },
        }),
        SearchApi::Tavily => json!({
            "query": seen.body.as_ref().map(|b| b["query"].clone()),
            "answer": null,
            "images": [],
            "results": hits.iter().map(|h| json!({
                "title": h.title,
                "url": h.url,
                "content": h.snippet,
                "score": 0.9,
                "raw_content": null,
            })).collect::<Vec<_>>(),
            "response_time": 0.42,
        }),
    }
}
