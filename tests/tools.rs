//! Worker-safe tools against local servers.

use std::sync::{Arc, Mutex};

use baton::tools::{FetchPolicy, FetchUrl, Tool, ToolError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves a small site on 127.0.0.1:0: a page, a redirect to it, a big page.
async fn site() -> String {
    use axum::response::{Html, Redirect};
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/page",
            get(|| async { Html("<h1>Baton</h1><p>An orchestra &amp; its <b>workers</b>.</p>") }),
        )
        .route("/moved", get(|| async { Redirect::temporary("/page") }))
        .route(
            "/big",
            get(|| async { Html("<p>".to_owned() + &"word ".repeat(10_000) + "</p>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn local_allowed() -> FetchUrl {
    FetchUrl::new(FetchPolicy {
        allow_private: true,
        max_chars: 1_000,
        ..FetchPolicy::default()
    })
}

#[tokio::test]
async fn fetch_url_returns_a_pages_text_following_redirects() {
    let base = site().await;
    let result: Value = serde_json::from_str(
        &local_allowed()
            .call(json!({"url": format!("{base}/moved")}))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(result["status"], 200);
    assert_eq!(result["url"], format!("{base}/page"));
    assert_eq!(result["text"], "Baton\n\nAn orchestra & its workers.");
    assert_eq!(result["truncated"], false);

    let big: Value = serde_json::from_str(
        &local_allowed()
            .call(json!({"url": format!("{base}/big")}))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(big["truncated"], true);
    assert_eq!(big["text"].as_str().unwrap().chars().count(), 1_000);
}

#[tokio::test]
async fn fetch_url_refuses_loopback_unless_allowed() {
    let base = site().await;
    let port = base.rsplit(':').next().unwrap();
    let strict = FetchUrl::default();
    for url in [
        format!("{base}/page"),
        format!("http://localhost:{port}/page"),
        format!("http://[::1]:{port}/page"),
    ] {
        let error = strict.call(json!({ "url": url })).await.unwrap_err();
        assert!(
            matches!(&error, ToolError::Failed { message, .. } if message.starts_with("refused:")),
            "{url}: {error}"
        );
    }
    let error = strict
        .call(json!({"url": "file:///etc/passwd"}))
        .await
        .unwrap_err();
    assert!(matches!(error, ToolError::BadArguments(_)), "{error}");
}

/// Asserts that `fetch_url` refused `url` with a "refused:" failure.
async fn assert_refused(fetch: &FetchUrl, url: &str) {
    let error = fetch.call(json!({ "url": url })).await.unwrap_err();
    assert!(
        matches!(&error, ToolError::Failed { message, .. } if message.starts_with("refused:")),
        "{url}: {error}"
    );
}

#[tokio::test]
async fn fetch_url_refuses_ipv6_forms_of_loopback_and_localhost_names() {
    let base = site().await;
    let port = base.rsplit(':').next().unwrap();
    let strict = FetchUrl::default();
    for host in [
        "[::127.0.0.1]",
        "[::7f00:1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::7f00:1]",
        "[2002:7f00:1::1]",
        "localhost.",
        "LOCALHOST",
        "baton.localhost",
        "baton.localhost.",
    ] {
        assert_refused(&strict, &format!("http://{host}:{port}/page")).await;
    }
}

/// A fake HTTP proxy on 127.0.0.1: answers every request with a page of
/// its own, and keeps each request's first line.
struct FakeProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeProxy {
    async fn start() -> FakeProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    log.lock().unwrap().push(line);
                    let body = "<p>from the proxy</p>";
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        FakeProxy { url, seen }
    }

    /// The first lines of the requests the proxy got.
    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Set in the child process that runs
/// [`fetch_url_with_proxy_variables_in_the_environment`].
const CHILD_MARKER: &str = "BATON_TEST_PROXY_CHILD";

/// The test that [`fetch_url_ignores_proxies_from_the_environment`] runs in a
/// child process of this test binary, with the `*_PROXY` variables set
/// (they are process-wide, so they are set for that process only).
#[tokio::test]
#[ignore = "run in a child process by fetch_url_ignores_proxies_from_the_environment"]
async fn fetch_url_with_proxy_variables_in_the_environment() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        eprintln!("skipped: only meaningful in the child process its parent starts");
        return;
    }
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
        assert!(std::env::var(var).is_ok(), "{var} is not set");
    }
    let base = site().await;
    let port = base.rsplit(':').next().unwrap();
    for url in [
        format!("{base}/page"),
        format!("http://localhost:{port}/page"),
    ] {
        let result: Value =
            serde_json::from_str(&local_allowed().call(json!({ "url": url })).await.unwrap())
                .unwrap();
        assert_eq!(
            result["text"], "Baton\n\nAn orchestra & its workers.",
            "{url}"
        );
    }
    // With the strict policy nothing private is fetched, directly or not.
    assert_refused(&FetchUrl::default(), &format!("{base}/page")).await;
    assert_refused(
        &FetchUrl::default(),
        &format!("http://localhost.:{port}/page"),
    )
    .await;
}

#[tokio::test]
async fn fetch_url_ignores_proxies_from_the_environment() {
    let proxy = FakeProxy::start().await;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "tools::fetch_url_with_proxy_variables_in_the_environment",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_MARKER, "1")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        child.env(var, &proxy.url);
    }
    let output = child.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}"
    );
    assert_eq!(proxy.requests(), Vec::<String>::new());
}

#[tokio::test]
async fn fetch_url_uses_a_configured_proxy_and_still_refuses_private_addresses() {
    let proxy = FakeProxy::start().await;
    // Port 9 (discard): nothing listens there; only the proxy answers.
    let through_proxy = FetchUrl::new(FetchPolicy {
        allow_private: true,
        proxy: Some(proxy.url.clone()),
        ..FetchPolicy::default()
    });
    let result: Value = serde_json::from_str(
        &through_proxy
            .call(json!({"url": "http://127.0.0.1:9/page"}))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(result["text"], "from the proxy");
    assert_eq!(proxy.requests(), ["GET http://127.0.0.1:9/page HTTP/1.1"]);

    let strict = FetchUrl::new(FetchPolicy {
        proxy: Some(proxy.url.clone()),
        ..FetchPolicy::default()
    });
    assert_refused(&strict, "http://127.0.0.1:9/page").await;
    assert_refused(&strict, "http://[64:ff9b::7f00:1]:9/page").await;
    assert_refused(&strict, "http://localhost.:9/page").await;
    assert_eq!(proxy.requests().len(), 1);
}
