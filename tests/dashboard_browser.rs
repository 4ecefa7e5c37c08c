//! The dashboard in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven through chromedriver with fantoccini): sign in
//! with the token, watch an orchestrator turn's workers appear and finish
//! in the live view, and see the turn's tree on its page.
//!
//! Without chromedriver the test prints `skipped: no chromedriver` and
//! passes, unless `BATON_TEST_REQUIRE_CHROMIUM` is set (`.ci/run` sets it
//! after installing the packages), in which case it fails.

use std::process::{Child, Command, Stdio};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::dashboard::{ADA, TOKEN, start, two_workers};
use crate::support::eventually::eventually_async;
use crate::support::fake_llm::{FakeLlm, Gate, Wire};
use crate::support::fake_telegram::FakeTelegram;

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path).chain(["/usr/lib/chromium".into()]) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate.display().to_string());
            }
        }
    }
    None
}

/// Starts chromedriver on a free port, or says why not.
fn chromedriver() -> Option<(Driver, u16, String)> {
    let driver = find(&["chromedriver"]);
    let browser = find(&["chromium", "chromium-browser", "google-chrome"]);
    let (Some(driver), Some(browser)) = (driver, browser) else {
        assert!(
            std::env::var_os("BATON_TEST_REQUIRE_CHROMIUM").is_none(),
            "BATON_TEST_REQUIRE_CHROMIUM is set but chromium/chromedriver are missing"
        );
        println!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some((Driver(child), port, browser))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_shows_workers_and_the_turn_page_shows_the_tree() {
    let Some((_driver, port, browser)) = chromedriver() else {
        return;
    };
    let telegram = FakeTelegram::start().await;
    let gate = Gate::new();
    let llm = FakeLlm::start(Wire::OpenAi, two_workers(gate.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let (app, base) = start(&telegram, &llm, &dir, "").await;

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
        }),
    );
    let browser = eventually_async("chromedriver to answer", async || {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .ok()
    })
    .await;

    // Sign in once: the page asks for the token and keeps it in a cookie.
    browser.goto(&format!("{base}/live")).await.unwrap();
    browser
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    browser
        .find(Locator::Css("#sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#events"))
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::XPath("//p[@id='state' and text()='live']"))
        .await
        .unwrap();

    telegram.dm(ADA, "/orchestrator on");
    telegram.wait_for_sent(ADA as i64, 1).await;
    telegram.dm(ADA, "research two things");

    // Both workers appear, running (their model waits on the gate).
    let running = Locator::Css(".worker[data-status='running']");
    browser.wait().for_element(running).await.unwrap();
    let workers_shown = async |status: &str| {
        let css = format!(".worker[data-status='{status}']");
        eventually_async(&format!("two workers shown {status}"), async || {
            let shown = browser.find_all(Locator::Css(&css)).await.unwrap();
            (shown.len() >= 2).then_some(())
        })
        .await;
    };
    workers_shown("running").await;
    gate.open();
    // ... and finish, without a reload.
    workers_shown("done").await;
    telegram.wait_for_sent(ADA as i64, 2).await;
    save_screenshot(&browser, "BATON_SCREENSHOT_LIVE").await;

    // The turn page shows the tree: both workers with their results, and the reply.
    let link = browser.find(Locator::Css(".worker a")).await.unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    browser.goto(&format!("{base}{href}")).await.unwrap();
    let tree = browser
        .find(Locator::Css("#tree"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(tree.contains("alpha") && tree.contains("beta"), "{tree}");
    assert!(tree.contains("research alpha done"), "{tree}");
    let reply = browser
        .find(Locator::Css("#reply"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(reply.trim(), "Summary: both done");
    save_screenshot(&browser, "BATON_SCREENSHOT_TURN").await;
    browser.close().await.unwrap();
    app.stop().await;
}

/// Saves what the browser shows to the file the variable `var` names, if
/// it is set (how the README's screenshots are made:
/// `BATON_SCREENSHOT_LIVE=docs/dashboard-live.png BATON_SCREENSHOT_TURN=docs/dashboard-turn.png cargo nextest run -E 'test(/dashboard_browser/)'`).
async fn save_screenshot(browser: &fantoccini::Client, var: &str) {
    if let Some(path) = std::env::var_os(var) {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
    }
}
