//! Worker-safe tools against local servers.

use baton::tools::{FetchPolicy, FetchUrl, Tool, ToolError};
use serde_json::{Value, json};

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
