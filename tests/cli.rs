//! `baton chat` and `baton check`, driven as a person would: lines typed in,
//! what the terminal shows out; the real binary for `check`.

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::support::bot::{WORKER_MODEL, test_config};
use crate::support::fake_llm::{FakeLlm, FakeReply, Wire};

#[tokio::test]
async fn chat_prints_the_reply_and_with_verbose_the_labelled_worker_lines() {
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        if request.model == WORKER_MODEL {
            let brief = request.last_user_text().unwrap_or_default();
            return FakeReply::Text(format!("{brief}: found it\nsecond line"));
        }
        match (request.tool_results().len(), request.awaited().len()) {
            (0, _) => FakeReply::ToolCalls(vec![
                (
                    "spawn_worker".into(),
                    json!({"label": "north", "prompt": "search north"}),
                ),
                (
                    "spawn_worker".into(),
                    json!({"label": "south", "prompt": "search south"}),
                ),
            ]),
            // Await until both results are in (one call may bring both).
            (_, 0 | 1) => FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]),
            _ => FakeReply::Text("Both searches are done.".into()),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&llm, Wire::OpenAi, &dir.path().join("baton.db"), "");
    let services = baton::app::services(config).await.unwrap();

    let input = "/verbose on\n/orchestrator on\n\nsearch both ways\n";
    let (writer, mut reader) = tokio::io::duplex(64 * 1024);
    baton::chat::chat(services, "local", input.as_bytes(), writer)
        .await
        .unwrap();
    let mut output = String::new();
    reader.read_to_string(&mut output).await.unwrap();

    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(
        lines[0], "baton> Verbose on: worker output appears under your message.",
        "{output}"
    );
    assert!(
        lines[1].starts_with("baton> Orchestrator mode on"),
        "{output}"
    );
    for label in ["north", "south"] {
        let tag = format!("    [{label}] ");
        assert!(
            lines.contains(&format!("{tag}started: search {label}").as_str()),
            "{output}"
        );
        assert!(
            lines.contains(&format!("{tag}search {label}: found it").as_str()),
            "{output}"
        );
        assert!(
            lines.contains(&format!("{tag}second line").as_str()),
            "{output}"
        );
        assert!(
            lines.contains(&format!("{tag}finished: done").as_str()),
            "{output}"
        );
    }
    let reply = lines
        .iter()
        .position(|l| *l == "baton> Both searches are done.")
        .expect("the reply");
    let last_worker_line = lines.iter().rposition(|l| l.starts_with("    [")).unwrap();
    assert!(
        last_worker_line < reply,
        "worker lines come before the reply: {output}"
    );
    assert_eq!(reply, lines.len() - 1, "{output}");
}

pub(crate) fn baton() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    command.env_remove("RUST_LOG").env("NO_COLOR", "1");
    command
}

/// Writes a config for `llm` with its database in `dir` and `extra`
/// appended, and returns a function that makes the command `baton run` on
/// it (with a Telegram token set), for a child process a test may kill.
pub(crate) fn telegram_service(
    dir: &std::path::Path,
    llm: &crate::support::fake_llm::FakeLlm,
    extra: &str,
) -> impl Fn() -> std::process::Command + use<> {
    use crate::support::fake_llm::Wire;
    let config_path = dir.join("baton.toml");
    let text =
        crate::support::bot::test_config_text(llm, Wire::OpenAi, &dir.join("baton.db"), extra);
    std::fs::write(&config_path, text).unwrap();
    move || {
        let mut command = baton();
        command
            .args(["run", "--config"])
            .arg(&config_path)
            .env("TELEGRAM_BOT_TOKEN", "123456:TEST-TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    }
}

#[tokio::test]
async fn check_says_plainly_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[storage]
url = "sqlite://{db}"

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "BATON_TEST_MISSING_KEY"

[models]
orchestrator = "openai:gpt-5.1"
worker = "nowhere:small"
"#,
            db = dir.path().join("baton.db").display()
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        baton()
            .args(["check", "--config"])
            .arg(&config)
            .env_remove("BATON_TEST_MISSING_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "check must fail: {stdout}");
    assert!(
        stdout.contains(
            "problem: worker model nowhere:small: there is no [providers.nowhere] section"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("problem: provider openai: no API key: set the environment variable BATON_TEST_MISSING_KEY"), "{stdout}");
    assert!(
        stdout.contains("problem: provider openai: http://127.0.0.1:9/v1 is unreachable"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: storage:"), "{stdout}");
}

#[tokio::test]
async fn check_passes_a_complete_config_and_never_prints_the_key() {
    let llm = FakeLlm::start(Wire::OpenAi, |_| FakeReply::Text("unused".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[storage]
url = "sqlite://{db}"

[providers.fake]
kind = "openai"
base_url = "{url}"
api_key_env = "BATON_TEST_KEY"

[models]
orchestrator = "fake:big"
worker = "fake:small"
"#,
            db = dir.path().join("baton.db").display(),
            url = llm.base_url(),
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        baton()
            .args(["check", "--config"])
            .arg(&config)
            .env("BATON_TEST_KEY", "sk-very-secret-value")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok: provider fake: API key found in BATON_TEST_KEY"),
        "{stdout}"
    );
    assert!(stdout.contains("is reachable"), "{stdout}");
    assert!(!stdout.contains("sk-very-secret") && !stderr.contains("sk-very-secret"));
}

#[tokio::test]
async fn the_binary_chats_over_stdin_and_stdout_with_env_overrides() {
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        FakeReply::Text(format!(
            "{} says {}",
            request.model,
            request.last_user_text().unwrap_or_default()
        ))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"sqlite://{}\"\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[models]\norchestrator = \"fake:from-file\"\n",
            dir.path().join("baton.db").display(),
            llm.base_url()
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = baton()
            .args(["chat", "--config"])
            .arg(&config)
            .env("BATON__MODELS__ORCHESTRATOR", "fake:from-env")
            .env("USER", "grace")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hello\n/effort max\n")
            .unwrap();
        child.wait_with_output().unwrap()
    });
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines.contains(&"baton> from-env says grace: hello"),
        "{stdout}"
    );
    // Typed while the reply is being written, the command is acknowledged at
    // once and applies from the next message on; typed after, it just applies.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("baton> Effort set to max.")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_missing_config_file_is_a_clear_error() {
    let output = tokio::task::spawn_blocking(|| {
        baton()
            .args(["check", "--config", "/nonexistent/baton.toml"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot read config file /nonexistent/baton.toml"),
        "{stderr}"
    );
}

/// A config with a provider whose key variable is not set, no platform
/// token, and no HTTP server.
fn newcomer_config(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let config = dir.path().join("baton.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[storage]
url = "sqlite://{db}"

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "BATON_TEST_NEWCOMER_KEY"

[models]
orchestrator = "openai:gpt-5.1"
worker = "openai:gpt-5.1"

[server]
enabled = false
"#,
            db = dir.path().join("baton.db").display()
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn run_without_a_token_or_a_key_says_plainly_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let config = newcomer_config(&dir);
    let mut child = baton()
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("BATON_TEST_NEWCOMER_KEY")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("DISCORD_BOT_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It keeps running (waiting for a token would be pointless, but the
    // operator may be testing the config); read what it said at start.
    let mut stderr = child.stderr.take().unwrap();
    let said = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut text = String::new();
        let mut buffer = [0u8; 4096];
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline
            && !(text.contains("no platform token") && text.contains("no API key"))
        {
            match stderr.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buffer[..n])),
            }
        }
        text
    });
    let said = tokio::time::timeout(Duration::from_secs(25), said)
        .await
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        said.contains("no platform token")
            && said.contains("TELEGRAM_BOT_TOKEN")
            && said.contains("baton chat"),
        "{said}"
    );
    assert!(
        said.contains("no API key") && said.contains("BATON_TEST_NEWCOMER_KEY"),
        "{said}"
    );
}

#[tokio::test]
async fn chat_without_a_key_says_so_before_the_first_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = newcomer_config(&dir);
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = baton()
            .args(["chat", "--config"])
            .arg(&config)
            .env_remove("BATON_TEST_NEWCOMER_KEY")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // End of input at once: the warning must come without a message.
        child.stdin.take().unwrap().flush().unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no API key") && stderr.contains("BATON_TEST_NEWCOMER_KEY"),
        "{stderr}"
    );
}
