//! `web_search` against a fake of each backend's API on 127.0.0.1: the
//! request each API expects, results bounded and cleaned, refused keys and
//! rate limits as the model sees them, and end to end through a turn.

use secrecy::SecretString;
use serde_json::{Value, json};

use baton::tools::{SearchBackend, Tool, ToolError, WebSearch, WebSearchConfig};

use crate::support::bot::{TestBot, WORKER_MODEL, test_config};
use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use crate::support::fake_search::{FakeHit, FakeSearch, SearchApi};

/// The key the Brave and Tavily fakes expect.
const KEY: &str = "sk-search-key-0123456789abcdef";

/// Eight results: the tool must keep to its count.
fn hits() -> Vec<FakeHit> {
    let mut hits = vec![
        FakeHit::new(
            "The Rust Programming Language",
            "https://doc.rust-lang.org/book/",
            "An <strong>introductory</strong> book about Rust &amp; its tools.",
        ),
        FakeHit::new(
            "Tokio tutorial",
            "https://tokio.rs/tokio/tutorial",
            &"Asynchronous Rust. ".repeat(100),
        ),
    ];
    for n in 3..=8 {
        hits.push(FakeHit::new(
            &format!("Result {n}"),
            &format!("https://example.org/{n}"),
            "more",
        ));
    }
    hits
}

fn tool_for(fake: &FakeSearch, api: SearchApi) -> WebSearch {
    let backend = match api {
        SearchApi::Searxng => SearchBackend::Searxng,
        SearchApi::Brave => SearchBackend::Brave,
        SearchApi::Tavily => SearchBackend::Tavily,
    };
    let mut config = WebSearchConfig::new(backend, Some(fake.url().to_owned()));
    if api != SearchApi::Searxng {
        config.api_key_env = Some("BATON_TEST_SEARCH_KEY".into());
        config.api_key = Some(SecretString::from(KEY));
    }
    WebSearch::from_config(&config).unwrap()
}

#[tokio::test]
async fn web_search_speaks_each_backends_api_and_bounds_the_results() {
    for api in [SearchApi::Searxng, SearchApi::Brave, SearchApi::Tavily] {
        let fake = FakeSearch::start(api, KEY, hits()).await;
        let tool = tool_for(&fake, api);
        let text = tool
            .call(json!({"query": "rust async book", "max_results": 3}))
            .await
            .unwrap_or_else(|e| panic!("{api:?}: {e}"));
        let results: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(results.len(), 3, "{api:?}: {text}");
        assert_eq!(results[0]["title"], "The Rust Programming Language");
        assert_eq!(results[0]["url"], "https://doc.rust-lang.org/book/");
        let snippet = results[1]["snippet"].as_str().unwrap();
        assert_eq!(snippet.chars().count(), 400, "{api:?}: a bounded snippet");
        assert!(snippet.ends_with('…'), "{api:?}");
        assert_eq!(results[2]["title"], "Result 3");
        if api == SearchApi::Brave {
            // Brave's descriptions are HTML: the markup goes.
            assert_eq!(
                results[0]["snippet"],
                "An introductory book about Rust & its tools."
            );
        }

        let requests = fake.requests();
        assert_eq!(requests.len(), 1, "{api:?}");
        let seen = &requests[0];
        match api {
            SearchApi::Searxng => {
                assert_eq!(
                    (seen.method.as_str(), seen.path.as_str()),
                    ("GET", "/search")
                );
                assert_eq!(seen.params["q"], "rust async book");
                assert_eq!(seen.params["format"], "json");
                assert_eq!(seen.authorization, None);
            }
            SearchApi::Brave => {
                assert_eq!(
                    (seen.method.as_str(), seen.path.as_str()),
                    ("GET", "/res/v1/web/search")
                );
                assert_eq!(seen.params["q"], "rust async book");
                assert_eq!(seen.params["count"], "3");
                assert_eq!(seen.subscription_token.as_deref(), Some(KEY));
            }
            SearchApi::Tavily => {
                assert_eq!(
                    (seen.method.as_str(), seen.path.as_str()),
                    ("POST", "/search")
                );
                assert_eq!(
                    seen.body,
                    Some(json!({"query": "rust async book", "max_results": 3}))
                );
                assert_eq!(
                    seen.authorization.as_deref(),
                    Some(format!("Bearer {KEY}").as_str())
                );
            }
        }
    }
}

#[tokio::test]
async fn web_search_without_a_count_uses_the_configured_one_and_refuses_empty_queries() {
    let fake = FakeSearch::start(SearchApi::Searxng, KEY, hits()).await;
    let tool = tool_for(&fake, SearchApi::Searxng);
    let results: Vec<Value> =
        serde_json::from_str(&tool.call(json!({"query": "rust"})).await.unwrap()).unwrap();
    assert_eq!(results.len(), 5, "the default max_results");
    for arguments in [json!({}), json!({"query": "  "}), json!({"q": "rust"})] {
        let error = tool.call(arguments.clone()).await.unwrap_err();
        assert!(
            matches!(error, ToolError::BadArguments(_)),
            "{arguments}: {error}"
        );
    }
    assert_eq!(fake.requests().len(), 1, "bad arguments send nothing");
}

#[tokio::test]
async fn a_refused_key_is_a_plain_permanent_error_that_never_quotes_the_key() {
    for api in [SearchApi::Brave, SearchApi::Tavily] {
        for status in [401, 403] {
            let fake = FakeSearch::start(api, KEY, hits()).await;
            fake.fail_with(
                status,
                json!({"error": format!("Invalid API key: {KEY}")}),
                None,
            );
            let error = tool_for(&fake, api)
                .call(json!({"query": "rust"}))
                .await
                .unwrap_err();
            let ToolError::Failed { message, transient } = &error else {
                panic!("{api:?}: {error:?}");
            };
            assert!(!transient, "{api:?} {status}: permanent");
            assert!(
                message.contains(&format!("HTTP {status}"))
                    && message.contains("BATON_TEST_SEARCH_KEY"),
                "{api:?}: {message}"
            );
            assert!(
                !message.contains(KEY) && !message.contains("sk-"),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn rate_limits_server_errors_and_an_unreachable_service_are_transient() {
    let fake = FakeSearch::start(SearchApi::Brave, KEY, hits()).await;
    let tool = tool_for(&fake, SearchApi::Brave);
    fake.fail_with(429, json!({"type": "ErrorResponse"}), Some(7));
    let error = tool.call(json!({"query": "rust"})).await.unwrap_err();
    assert_eq!(
        error,
        ToolError::Failed {
            message: "Brave Search is rate limiting searches (HTTP 429) (retry after 7s); \
                      try again later"
                .into(),
            transient: true
        }
    );
    fake.fail_with(503, json!({}), None);
    let error = tool.call(json!({"query": "rust"})).await.unwrap_err();
    assert!(
        matches!(&error, ToolError::Failed { message, transient: true } if message.contains("HTTP 503")),
        "{error:?}"
    );
    // A bad request (here: a SearXNG without the json format) is permanent.
    let searxng = FakeSearch::start(SearchApi::Searxng, KEY, hits()).await;
    searxng.fail_with(403, json!({}), None);
    let error = tool_for(&searxng, SearchApi::Searxng)
        .call(json!({"query": "rust"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ToolError::Failed { message, transient: false } if message.contains("search.formats")),
        "{error:?}"
    );

    // Nothing listens on a port that was just freed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let config = WebSearchConfig::new(SearchBackend::Searxng, Some(gone));
    let error = WebSearch::from_config(&config)
        .unwrap()
        .call(json!({"query": "rust"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ToolError::Failed {
                transient: true,
                ..
            }
        ),
        "{error:?}"
    );
}

/// A single-mode orchestrator that searches once, then answers with the
/// first result's title and URL.
fn searching(request: &SeenRequest) -> FakeReply {
    match request.tool_results().first() {
        None => FakeReply::ToolCalls(vec![(
            "web_search".into(),
            json!({"query": "rust book", "max_results": 2}),
        )]),
        Some(result) => {
            let Ok(Value::Array(results)) = serde_json::from_str::<Value>(&result.text) else {
                return FakeReply::Text(format!("no results: {}", result.text));
            };
            FakeReply::Text(format!(
                "Read \"{}\" at {} ({} results)",
                results[0]["title"].as_str().unwrap_or_default(),
                results[0]["url"].as_str().unwrap_or_default(),
                results.len()
            ))
        }
    }
}

#[tokio::test]
async fn in_single_mode_the_model_searches_and_the_answer_quotes_a_result() {
    let search = FakeSearch::start(SearchApi::Searxng, KEY, hits()).await;
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&search.config(None))
        .start(searching)
        .await;
    bot.say("which book teaches rust?").await;
    bot.drain().await;

    assert_eq!(
        bot.channel.replies(),
        ["Read \"The Rust Programming Language\" at https://doc.rust-lang.org/book/ (2 results)"]
    );
    let first = &bot.llm.requests()[0];
    assert!(first.has_tool("web_search"), "{:?}", first.tool_names);
    assert!(first.has_tool("fetch_url"));
    assert_eq!(search.requests()[0].params["q"], "rust book");
    bot.stop().await;
}

#[tokio::test]
async fn brave_is_offered_only_with_its_key_and_check_names_the_missing_variable() {
    let search = FakeSearch::start(SearchApi::Brave, KEY, hits()).await;
    let var = "BATON_TEST_BRAVE_KEY_E2E";

    // Without the key: not offered, and `baton check` says what to set.
    let mut keyless = TestBot::builder(Wire::OpenAi)
        .config(&search.config(Some(var)))
        .start(|request| FakeReply::Text(format!("tools: {:?}", request.tool_names)))
        .await;
    keyless.say("hello").await;
    keyless.drain().await;
    assert!(!keyless.channel.replies()[0].contains("web_search"));
    let report = baton::check::check(&keyless.services.config).await;
    let problem = report
        .findings
        .iter()
        .find(|f| f.text.starts_with("web_search:"))
        .unwrap();
    assert!(!problem.ok);
    assert!(
        problem
            .text
            .contains(&format!("set the environment variable {var}")),
        "{}",
        problem.text
    );
    keyless.stop().await;

    // With it: offered, searched with the key, never shown.
    let mut keyed = TestBot::builder(Wire::OpenAi)
        .config(&search.config(Some(var)))
        .env(var, KEY)
        .start(searching)
        .await;
    keyed.say("which book teaches rust?").await;
    keyed.drain().await;
    let replies = keyed.channel.replies();
    assert!(
        replies[0].starts_with("Read \"The Rust Programming Language\""),
        "{replies:?}"
    );
    assert_eq!(search.requests()[0].params["count"], "2");
    let report = baton::check::check(&keyed.services.config).await;
    let found = report.render();
    assert!(
        found.contains(&format!(
            "ok: web_search: Brave Search at {}, API key found in {var}",
            search.url()
        )),
        "{found}"
    );
    assert!(!found.contains(KEY));
    keyed.stop().await;
}

#[tokio::test]
async fn without_the_table_there_is_no_web_search_and_check_says_it_is_off() {
    let llm = FakeLlm::start(Wire::OpenAi, |_| FakeReply::Text("hi".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&llm, Wire::OpenAi, &dir.path().join("baton.db"), "");
    assert!(config.tools.web_search.is_none());
    let report = baton::check::check(&config).await;
    assert!(
        report
            .render()
            .contains("ok: web_search: off (no [tools.web_search])"),
        "{}",
        report.render()
    );
    let registry = baton::tools::ToolRegistry::worker_defaults(&config.tools);
    use baton::tools::Toolbox;
    assert!(!registry.specs().iter().any(|s| s.name == "web_search"));
}

/// A research worker: searches, reads the first result with `fetch_url`,
/// then reports the page's text.
fn researching_worker(request: &SeenRequest) -> FakeReply {
    let results = request.tool_results();
    match results.as_slice() {
        [] => FakeReply::ToolCalls(vec![("web_search".into(), json!({"query": "baton"}))]),
        [search] => {
            let hits: Value = serde_json::from_str(&search.text).unwrap_or_default();
            FakeReply::ToolCalls(vec![(
                "fetch_url".into(),
                json!({"url": hits[0]["url"].as_str().unwrap_or("none")}),
            )])
        }
        [_, page] => {
            let page: Value = serde_json::from_str(&page.text).unwrap_or_default();
            FakeReply::Text(format!("found: {}", page["text"].as_str().unwrap_or("?")))
        }
        _ => FakeReply::Text("too many results".into()),
    }
}

#[tokio::test]
async fn a_research_worker_searches_then_reads_the_page_with_fetch_url() {
    // The result's URL is a public address; `fetch_url` reaches it through
    // the configured proxy, which is the fake itself: nothing leaves 127.0.0.1.
    let search = FakeSearch::start(
        SearchApi::Searxng,
        KEY,
        vec![FakeHit::new(
            "Baton guide",
            "http://93.184.216.34/baton-guide",
            "How Baton conducts.",
        )],
    )
    .await;
    search.serve_page(
        "/baton-guide",
        "<h1>Baton</h1><p>One orchestrator, many workers.</p>",
    );
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .config(&search.config(None))
        .config(&format!("[tools.fetch_url]\nproxy = \"{}\"", search.url()))
        .start(|request| {
            if request.model == WORKER_MODEL {
                return researching_worker(request);
            }
            match request.tool_results().len() {
                0 => FakeReply::ToolCalls(vec![(
                    "spawn_worker".into(),
                    json!({"label": "research", "prompt": "find out what Baton is"}),
                )]),
                1 => FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]),
                _ => FakeReply::Text(format!(
                    "Answer: {}",
                    request.awaited()[0]["result"].as_str().unwrap_or("?")
                )),
            }
        })
        .await;
    bot.say("what is Baton?").await;
    bot.drain().await;

    assert_eq!(
        bot.channel.replies(),
        ["Answer: found: Baton\n\nOne orchestrator, many workers."]
    );
    let paths: Vec<String> = search.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/search", "/baton-guide"]);
    bot.stop().await;
}
