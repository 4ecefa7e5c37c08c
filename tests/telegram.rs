//! The Telegram adapter end to end: the real `baton::app::run` with the real
//! teloxide client talking to a fake Bot API server, a scripted fake model,
//! and assertions on what Telegram was asked to show.

use std::sync::Arc;
use std::time::Duration;

use baton::config::Config;
use baton_channel::{Accepted, ChannelEvent, Dispatch, DispatchError};
use baton_telegram::inbound::{ADMINS_ONLY, CANNOT_READ_YET};
use baton_telegram::webhook::SECRET_HEADER;
use baton_telegram::{Settings, Telegram, TelegramConfig, TelegramMode};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::bot::{ORCHESTRATOR_MODEL, WORKER_MODEL, test_config};
use crate::support::eventually::until;
use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use crate::support::fake_telegram::{
    BOT_ID, BOT_USERNAME, Call, FakeFailure, FakeTelegram, bot_json, group_chat, private_chat,
};
use crate::support::service::App;

/// The user in `allowed_users`.
pub(crate) const ADA: u64 = 42;
/// The group in `allowed_chats`.
const GROUP: i64 = -100;
/// A member of the group who is neither allowed nor an administrator.
const BOB: u64 = 5;

/// Starts the service against `telegram` and `llm`, with its database in
/// `dir`; `telegram_extra` goes in the `[telegram]` table.
pub(crate) fn start_app(
    telegram: &FakeTelegram,
    llm: &FakeLlm,
    dir: &tempfile::TempDir,
    telegram_extra: &str,
) -> App {
    start_app_paced(telegram, llm, dir, 10, telegram_extra)
}

/// [`start_app`] with `min_send_interval_ms` set to `interval_ms`.
fn start_app_paced(
    telegram: &FakeTelegram,
    llm: &FakeLlm,
    dir: &tempfile::TempDir,
    interval_ms: u64,
    telegram_extra: &str,
) -> App {
    let extra = format!(
        r#"
[server]
enabled = false

[telegram]
api_url = "{api}"
allowed_users = [{ADA}]
allowed_chats = [{GROUP}]
min_send_interval_ms = {interval_ms}
{batch}
poll_timeout_secs = 1
{telegram_extra}
"#,
        api = telegram.api_url(),
        batch = default_batch(telegram_extra),
    );
    let mut config: Config = test_config(llm, Wire::OpenAi, &dir.path().join("baton.db"), &extra);
    config.telegram.token = Some(SecretString::from("123456:TEST-TOKEN"));
    App::spawn(config)
}

/// A short verbose batch, unless `extra` sets its own.
pub(crate) fn default_batch(extra: &str) -> &'static str {
    if extra.contains("verbose_batch_ms") {
        ""
    } else {
        "verbose_batch_ms = 50"
    }
}

pub(crate) fn echo(request: &SeenRequest) -> FakeReply {
    FakeReply::Text(format!(
        "Hello! You said: {}",
        request.last_user_text().unwrap_or("")
    ))
}

fn replies_to(calls: &[Call], message: i64) -> Vec<&Call> {
    calls
        .iter()
        .filter(|c| c.reply_to() == Some(message))
        .collect()
}

#[tokio::test]
async fn a_dm_in_single_mode_gets_one_reply_to_the_users_message() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    let (update, message) = telegram.dm(ADA, "hi there");
    let sent = telegram.wait_for_sent(ADA as i64, 1).await;
    telegram.wait_confirmed(update).await;
    app.stop().await;

    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].text(), "Hello! You said: Ada: hi there");
    assert_eq!(
        sent[0].reply_to(),
        Some(message),
        "a reply to the user's message"
    );
    assert_eq!(sent[0].body["parse_mode"], "HTML");
    assert_eq!(telegram.sent_to(ADA as i64).len(), 1, "exactly one reply");

    // Start-up: commands registered, webhook removed before polling, and
    // the typing indicator shown while the turn ran.
    let commands = telegram.calls_of("setMyCommands");
    assert_eq!(commands.len(), 1);
    let names: Vec<&str> = commands[0].body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "orchestrator",
            "verbose",
            "effort",
            "model",
            "greedy",
            "autonomy",
            "status",
            "stop",
            "reset",
            "help",
            "project"
        ]
    );
    assert_eq!(telegram.calls_of("deleteWebhook").len(), 1);
    let typing = telegram.calls_of("sendChatAction");
    assert!(
        typing
            .iter()
            .any(|c| c.body["action"] == "typing" && c.chat() == Some(ADA as i64)),
        "{typing:#?}"
    );
    assert_eq!(llm.requests().len(), 1);
}

/// The orchestrator of the engine tests: three workers, awaited until all
/// three results are in.
pub(crate) fn three_workers(request: &SeenRequest) -> FakeReply {
    if request.model == WORKER_MODEL {
        let brief = request.last_user_text().unwrap_or_default();
        return FakeReply::Text(format!("{brief} done"));
    }
    assert_eq!(request.model, ORCHESTRATOR_MODEL);
    let labels = ["alpha", "beta", "gamma"];
    let results = request.awaited().len();
    if request.tool_results().is_empty() {
        return FakeReply::ToolCalls(
            labels
                .iter()
                .map(|label| {
                    (
                        "spawn_worker".to_owned(),
                        json!({"label": label, "prompt": format!("research {label}")}),
                    )
                })
                .collect(),
        );
    }
    if results < labels.len() {
        return FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]);
    }
    FakeReply::Text("Summary: all three researched.".into())
}

#[tokio::test]
async fn orchestrator_mode_posts_one_final_reply_and_verbose_shows_workers_under_the_message() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, three_workers).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");
    let chat = ADA as i64;

    telegram.dm(ADA, "/orchestrator on");
    telegram.wait_for_sent(chat, 1).await;
    let (_, quiet) = telegram.dm(ADA, "research alpha, beta and gamma");
    let sent = telegram.wait_for_sent(chat, 2).await;
    assert!(
        sent[0].text().starts_with("Orchestrator mode on"),
        "{}",
        sent[0].text()
    );
    assert_eq!(sent[1].text(), "Summary: all three researched.");
    assert_eq!(sent[1].reply_to(), Some(quiet));

    telegram.dm(ADA, "/verbose on");
    telegram.wait_for_sent(chat, 3).await;
    let (_, loud) = telegram.dm(ADA, "research alpha, beta and gamma again");
    // The final reply and every worker's "finished" line.
    telegram
        .wait_for("the summary and three finished workers", |calls| {
            let under: Vec<&Call> = calls
                .iter()
                .filter(|c| c.method == "sendmessage" && c.ok() && c.reply_to() == Some(loud))
                .collect();
            under.iter().any(|c| c.text().starts_with("Summary"))
                && ["alpha", "beta", "gamma"].iter().all(|label| {
                    under
                        .iter()
                        .any(|c| c.text().contains(&format!("[{label}] finished: done")))
                })
        })
        .await;
    app.stop().await;

    let sent = telegram.sent_to(chat);
    // Verbose off: exactly the one final reply under the quiet request.
    let quiet_replies = replies_to(&sent, quiet);
    assert_eq!(quiet_replies.len(), 1, "{quiet_replies:#?}");

    // Verbose on: one final reply, the rest are the workers' messages,
    // each a reply to the user's message and tagged with its label.
    let loud_replies = replies_to(&sent, loud);
    let finals: Vec<&&Call> = loud_replies
        .iter()
        .filter(|c| c.text().starts_with("Summary"))
        .collect();
    assert_eq!(finals.len(), 1, "{loud_replies:#?}");
    assert_eq!(finals[0].body["parse_mode"], "HTML");
    let verbose: Vec<&&Call> = loud_replies
        .iter()
        .filter(|c| !c.text().starts_with("Summary"))
        .collect();
    assert!(!verbose.is_empty());
    for call in &verbose {
        for line in call.text().lines() {
            assert!(
                ["[alpha] ", "[beta] ", "[gamma] "]
                    .iter()
                    .any(|tag| line.starts_with(tag)),
                "untagged verbose line {line:?}"
            );
        }
        // One message per worker batch: never two labels in one message.
        let first = call.text().split(']').next().unwrap();
        assert!(
            call.text().lines().all(|l| l.starts_with(first)),
            "{}",
            call.text()
        );
    }
    for label in ["alpha", "beta", "gamma"] {
        let text: String = verbose
            .iter()
            .filter(|c| c.text().starts_with(&format!("[{label}]")))
            .map(|c| c.text().to_owned())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains(&format!("[{label}] started: research {label}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("[{label}] research {label} done")),
            "{text}"
        );
    }
}

/// Asserts that `texts` end with the summary of [`three_workers`], the
/// reply being the last thing users read, and that each of `shown` is in
/// a message before it.
pub(crate) fn assert_shown_before_the_summary(texts: &[&str], shown: &[String]) {
    let Some((last, before)) = texts.split_last() else {
        panic!("nothing was sent");
    };
    assert_eq!(*last, "Summary: all three researched.", "{texts:#?}");
    for line in shown {
        assert!(
            before.iter().any(|text| text.contains(line.as_str())),
            "{line:?} before the reply: {texts:#?}"
        );
    }
}

/// Ada switches orchestrator mode and verbose output on in her DM (which
/// had `before` messages from the bot), asks `text` and waits for the
/// summary; returns her message's id.
pub(crate) async fn loud_turn(telegram: &FakeTelegram, before: usize, text: &str) -> i64 {
    telegram.dm(ADA, "/orchestrator on");
    telegram.dm(ADA, "/verbose on");
    telegram.wait_for_sent(ADA as i64, before + 2).await;
    let (_, asked) = telegram.dm(ADA, text);
    telegram
        .wait_for("the summary", |calls| {
            calls.iter().any(|c| {
                c.method == "sendmessage"
                    && c.reply_to() == Some(asked)
                    && c.text().starts_with("Summary")
            })
        })
        .await;
    asked
}

#[tokio::test]
async fn worker_output_still_being_collected_is_sent_before_the_reply() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, three_workers).await;
    let dir = tempfile::tempdir().unwrap();
    // Batches that would wait ten minutes: only the reply flushes them.
    let app = start_app(&telegram, &llm, &dir, "verbose_batch_ms = 600000");
    let chat = ADA as i64;
    let asked = loud_turn(&telegram, 0, "research alpha, beta and gamma").await;
    app.stop().await;

    let sent = telegram.sent_to(chat);
    let under = replies_to(&sent, asked);
    let texts: Vec<&str> = under.iter().map(|c| c.text()).collect();
    let started = ["alpha", "beta", "gamma"].map(|l| format!("[{l}] started: research {l}"));
    assert_shown_before_the_summary(&texts, &started);
}

#[tokio::test]
async fn groups_answer_mentions_only_and_refuse_settings_to_non_admins() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    let (_, unaddressed) = telegram.group_message(GROUP, BOB, "just chatting here", json!({}));
    let (_, mention) = telegram.group_message(
        GROUP,
        BOB,
        &format!("@{BOT_USERNAME} what is up?"),
        json!({}),
    );
    let sent = telegram.wait_for_sent(GROUP, 1).await;
    assert_eq!(sent[0].reply_to(), Some(mention));
    assert_eq!(sent[0].text(), "Hello! You said: User5: what is up?");

    // A reply to the bot's message counts as addressing it.
    let bots_message = json!({
        "message_id": 900, "date": 1_700_000_000, "chat": group_chat(GROUP),
        "from": bot_json(), "text": "earlier"
    });
    let (_, reply) = telegram.group_message(
        GROUP,
        BOB,
        "and then?",
        json!({ "reply_to_message": bots_message }),
    );
    let sent = telegram.wait_for_sent(GROUP, 2).await;
    assert_eq!(sent[1].reply_to(), Some(reply));

    // A non-admin may not change settings; an admin may.
    let (_, refused) = telegram.group_message(GROUP, BOB, "/verbose on", json!({}));
    let sent = telegram.wait_for_sent(GROUP, 3).await;
    assert_eq!(sent[2].text(), ADMINS_ONLY);
    assert_eq!(sent[2].reply_to(), Some(refused));
    telegram.make_admin(GROUP, 7);
    telegram.group_message(GROUP, 7, &format!("/verbose@{BOT_USERNAME} on"), json!({}));
    let sent = telegram.wait_for_sent(GROUP, 4).await;
    assert!(
        sent[3].text().starts_with("Verbose on"),
        "{}",
        sent[3].text()
    );
    // /status changes nothing, so anyone in the group may ask.
    telegram.group_message(GROUP, BOB, "/status", json!({}));
    let sent = telegram.wait_for_sent(GROUP, 5).await;
    assert!(sent[4].text().contains("Verbose: on"), "{}", sent[4].text());
    // A forum topic is a conversation of its own, answered in the topic.
    let (_, in_topic) = telegram.group_message(
        GROUP,
        BOB,
        &format!("@{BOT_USERNAME} hello topic"),
        json!({ "message_thread_id": 11, "is_topic_message": true }),
    );
    let sent = telegram.wait_for_sent(GROUP, 6).await;
    assert_eq!(sent[5].reply_to(), Some(in_topic));
    assert_eq!(sent[5].body["message_thread_id"], 11);
    app.stop().await;

    assert!(replies_to(&telegram.sent_to(GROUP), unaddressed).is_empty());
    assert_eq!(telegram.sent_to(GROUP).len(), 6);
    let requests = llm.requests();
    assert_eq!(
        requests.len(),
        3,
        "only the addressed messages reached the model"
    );
    assert_eq!(requests[1].messages.len(), 3, "the group's own history");
    assert_eq!(requests[2].messages.len(), 1, "the topic starts afresh");
    assert_eq!(telegram.calls_of("getChatMember").len(), 2);
}

#[tokio::test]
async fn strangers_edits_and_stickers_get_silence_or_a_short_answer() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    telegram.dm(BOB, "hello, may I?");
    let (_, stranger_command) = telegram.dm(BOB, "/status");
    let (_, first) = telegram.dm(ADA, "first");
    telegram.edit(ADA, first, "first, edited");
    let (_, sticker) = telegram.message(
        private_chat(ADA),
        ADA,
        json!({ "sticker": {
            "file_id": "f", "file_unique_id": "u", "type": "regular",
            "width": 1, "height": 1, "is_animated": false, "is_video": false
        }}),
    );
    let (_, last) = telegram.dm(ADA, "last");
    let ada = telegram.wait_for_sent(ADA as i64, 3).await;
    let bob = telegram.wait_for_sent(BOB as i64, 1).await;
    app.stop().await;

    assert_eq!(bob.len(), 1, "chat from a stranger gets silence");
    assert_eq!(bob[0].reply_to(), Some(stranger_command));
    assert!(bob[0].text().contains("not allowed"), "{}", bob[0].text());
    let texts: Vec<(Option<i64>, &str)> = ada.iter().map(|c| (c.reply_to(), c.text())).collect();
    assert!(
        texts.contains(&(Some(first), "Hello! You said: Ada: first")),
        "{texts:?}"
    );
    assert!(
        texts.contains(&(Some(sticker), CANNOT_READ_YET)),
        "{texts:?}"
    );
    assert!(
        texts.contains(&(Some(last), "Hello! You said: Ada: last")),
        "{texts:?}"
    );
    assert_eq!(ada.len(), 3, "the edit is not answered: {texts:?}");
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_message_delivered_once() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    telegram.fail_next(
        "sendMessage",
        FakeFailure::TooManyRequests { retry_after: 1 },
    );
    let app = start_app(&telegram, &llm, &dir, "");

    let (_, message) = telegram.dm(ADA, "hello");
    telegram.wait_for_sent(ADA as i64, 1).await;
    // A later message proves nothing else was queued for the first.
    telegram.dm(ADA, "again");
    telegram.wait_for_sent(ADA as i64, 2).await;
    app.stop().await;

    let attempts = telegram.calls_of("sendMessage");
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    assert_eq!(attempts[0].status, 429);
    assert!(attempts[1].ok());
    assert_eq!(attempts[0].text(), attempts[1].text());
    assert_eq!(attempts[1].reply_to(), Some(message));
    assert!(
        attempts[1].at.duration_since(attempts[0].at) >= Duration::from_secs(1),
        "retry_after was not honoured"
    );
    assert_eq!(replies_to(&telegram.sent_to(ADA as i64), message).len(), 1);
}

#[tokio::test]
async fn rejected_formatting_is_sent_again_as_plain_text() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, |_| FakeReply::Text("**bold** claim".into())).await;
    let dir = tempfile::tempdir().unwrap();
    telegram.fail_next(
        "sendMessage",
        FakeFailure::BadRequest("Bad Request: can't parse entities: unsupported start tag".into()),
    );
    let app = start_app(&telegram, &llm, &dir, "");
    telegram.dm(ADA, "hello");
    let sent = telegram.wait_for_sent(ADA as i64, 1).await;
    app.stop().await;

    let attempts = telegram.calls_of("sendMessage");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].body["parse_mode"], "HTML");
    assert_eq!(attempts[0].text(), "<b>bold</b> claim");
    assert_eq!(sent[0].body.get("parse_mode"), None);
    assert_eq!(sent[0].text(), "**bold** claim");
}

/// About 9,000 characters: a bold title, a little prose, a long Rust code
/// block (longer than the first message has room for) and more prose.
fn long_answer() -> String {
    let prose = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!("Line {i:03} of prose: the quick brown fox jumps over the lazy dog <&>.\n")
            })
            .collect()
    };
    let code: String = (0..90)
        .map(|i| format!("    let value_{i:03} = compute({i}) * 2 + offset; // step {i:03}\n"))
        .collect();
    format!(
        "**Report**\n\n{}\n```rust\n{code}```\n\n{}",
        prose(10),
        prose(47)
    )
}

fn visible_len(html: &str) -> usize {
    // Tags do not count; entities count as one character.
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&quot;", "\"");
    text.encode_utf16().count()
}

#[tokio::test]
async fn a_long_answer_arrives_as_three_messages_under_the_limit_with_formatting_intact() {
    let answer = long_answer();
    assert!(
        (8_500..9_500).contains(&answer.chars().count()),
        "{}",
        answer.len()
    );
    let telegram = FakeTelegram::start().await;
    let reply = answer.clone();
    let llm = FakeLlm::start(Wire::OpenAi, move |_| FakeReply::Text(reply.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    // Its 90-line code block would go as a file (tests/files_out.rs).
    let app = start_app(&telegram, &llm, &dir, "[media]\ncode_as_file_lines = 100");

    let (_, message) = telegram.dm(ADA, "write a report");
    let sent = telegram.wait_for_sent(ADA as i64, 3).await;
    // Nothing more follows: the next answer is the fourth message.
    telegram.dm(ADA, "thanks");
    telegram.wait_for_sent(ADA as i64, 4).await;
    app.stop().await;

    let all_sent = telegram.sent_to(ADA as i64);
    let parts: Vec<&Call> = replies_to(&all_sent, message);
    assert_eq!(
        parts.len(),
        3,
        "{:#?}",
        sent.iter().map(Call::text).collect::<Vec<_>>()
    );
    for part in &parts {
        let html = part.text();
        assert_eq!(part.body["parse_mode"], "HTML");
        assert!(visible_len(html) < 4096, "too long: {}", visible_len(html));
        assert_eq!(
            html.matches("<pre>").count(),
            html.matches("</pre>").count(),
            "{html}"
        );
        assert_eq!(
            html.matches("<code").count(),
            html.matches("</code>").count(),
            "{html}"
        );
        assert!(!html.contains("```"), "a raw fence: {html}");
        assert!(!html.contains(" <&>"), "unescaped: {html}");
    }
    assert!(parts[0].text().starts_with("<b>Report</b>"));
    // The code block was cut in two, and each half is a block of its own.
    let with_code: Vec<&&Call> = parts
        .iter()
        .filter(|p| p.text().contains("<pre><code class=\"language-rust\">"))
        .collect();
    assert_eq!(with_code.len(), 2, "the code block spans a split");
    // Nothing was lost: every line of the answer is in some message.
    let all: String = parts
        .iter()
        .map(|p| p.text())
        .collect::<Vec<_>>()
        .join("\n");
    for i in 0..90 {
        assert!(
            all.contains(&format!("let value_{i:03}")),
            "code line {i} lost"
        );
    }
    assert!(all.contains("Line 046 of prose"));
}

#[tokio::test]
async fn a_stop_while_a_long_reply_is_sent_drops_the_rest_and_the_next_message_is_answered() {
    // About 15,500 characters of prose: four messages, a second apart.
    let answer: String = (0..230)
        .map(|i| format!("Line {i:03} of prose: the quick brown fox jumps over the lazy dog.\n"))
        .collect();
    assert!((14_000..16_000).contains(&answer.chars().count()));
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, move |request| {
        if request.last_user_text().unwrap_or("").contains("report") {
            FakeReply::Text(answer.clone())
        } else {
            echo(request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app_paced(&telegram, &llm, &dir, 1000, "");

    let (_, report) = telegram.dm(ADA, "write a report");
    telegram.wait_for_sent(ADA as i64, 1).await;
    let (_, stop) = telegram.dm(ADA, "/stop");
    telegram
        .wait_for("the stop answered", |calls| {
            calls
                .iter()
                .any(|c| c.method == "sendmessage" && c.ok() && c.reply_to() == Some(stop))
        })
        .await;
    let (_, thanks) = telegram.dm(ADA, "thanks");
    telegram
        .wait_for("the next message answered", |calls| {
            calls
                .iter()
                .any(|c| c.method == "sendmessage" && c.ok() && c.reply_to() == Some(thanks))
        })
        .await;
    app.stop().await;

    let sent = telegram.sent_to(ADA as i64);
    let parts = replies_to(&sent, report);
    assert!(
        !parts.is_empty() && parts.len() < 4,
        "the rest of the reply was dropped: {:#?}",
        sent.iter().map(Call::text).collect::<Vec<_>>()
    );
    assert!(parts[0].text().starts_with("Line 000"));
    assert!(
        parts.iter().all(|p| !p.text().contains("Line 229")),
        "the last piece was not sent"
    );
    let stopped = replies_to(&sent, stop);
    assert_eq!(stopped.len(), 1, "{sent:#?}");
    assert_eq!(stopped[0].text(), "Stopped.");
    let answered = replies_to(&sent, thanks);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].text(), "Hello! You said: Ada: thanks");
    assert_eq!(sent.len(), parts.len() + 2, "{sent:#?}");
}

#[tokio::test]
async fn a_stop_between_receiving_and_replying_is_answered_exactly_once_after_restart() {
    let telegram = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    // First life: the model never answers in time.
    let slow = FakeLlm::start(Wire::OpenAi, |_| {
        FakeReply::Delayed(
            Duration::from_secs(600),
            Box::new(FakeReply::Text("too late".into())),
        )
    })
    .await;
    let app = start_app(&telegram, &slow, &dir, "");
    let (update, message) = telegram.dm(ADA, "remember me");
    let llm = &slow;
    until("the model to be asked", || !llm.requests().is_empty()).await;
    app.stop().await;
    assert!(
        telegram.sent_to(ADA as i64).is_empty(),
        "nothing was answered yet"
    );

    // Telegram did not hear the confirmation: it delivers the update again.
    telegram.redeliver(update);
    let fast = FakeLlm::start(Wire::OpenAi, echo).await;
    let app = start_app(&telegram, &fast, &dir, "");
    telegram.wait_confirmed(update).await;
    telegram.wait_for_sent(ADA as i64, 1).await;
    // A later message is answered after anything still queued before it.
    let (_, later) = telegram.dm(ADA, "still there?");
    telegram.wait_for_sent(ADA as i64, 2).await;
    app.stop().await;

    let sent = telegram.sent_to(ADA as i64);
    let answers = replies_to(&sent, message);
    assert_eq!(answers.len(), 1, "answered exactly once: {sent:#?}");
    assert_eq!(answers[0].text(), "Hello! You said: Ada: remember me");
    assert_eq!(replies_to(&sent, later).len(), 1);
    assert_eq!(sent.len(), 2);
    let asked: Vec<String> = fast
        .requests()
        .iter()
        .map(|r| r.last_user_text().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(asked, ["Ada: remember me", "Ada: still there?"]);
}

#[tokio::test]
async fn a_conflict_with_another_poller_does_not_stop_the_bot() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    telegram.fail_next("getUpdates", FakeFailure::Conflict);
    let app = start_app(&telegram, &llm, &dir, "");
    telegram.dm(ADA, "are you there?");
    let sent = telegram.wait_for_sent(ADA as i64, 1).await;
    app.stop().await;
    assert_eq!(telegram.calls_of("getUpdates")[0].status, 409);
    assert_eq!(sent[0].text(), "Hello! You said: Ada: are you there?");
}

/// An engine stand-in that records what it is given.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) events: std::sync::Mutex<Vec<ChannelEvent>>,
    pub(crate) fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Dispatch for Recorder {
    async fn dispatch(&self, event: ChannelEvent) -> Result<Accepted, DispatchError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(DispatchError {
                transient: true,
                message: "database is locked".into(),
            });
        }
        self.events.lock().unwrap().push(event);
        Ok(Accepted::New)
    }
}

/// The adapter's settings in webhook mode on `telegram`: ADA allowed, the
/// hook at `https://bot.example.org/telegram` with the secret `s3cret`.
pub fn webhook_settings(telegram: &FakeTelegram) -> Settings {
    let mut settings = Settings::new(SecretString::from("123456:TEST-TOKEN"));
    settings.config = TelegramConfig {
        api_url: telegram.api_url(),
        allowed_users: vec![ADA],
        mode: TelegramMode::Webhook,
        webhook_url: Some("https://bot.example.org/telegram".into()),
        ..TelegramConfig::default()
    };
    settings.webhook_secret = Some(SecretString::from("s3cret"));
    settings
}

#[tokio::test]
async fn webhook_mode_without_a_secret_fails_to_start_and_sets_no_webhook() {
    let telegram = FakeTelegram::start().await;
    let mut settings = webhook_settings(&telegram);
    settings.webhook_secret = None;
    let Err(error) = Telegram::connect(settings).await else {
        panic!("connected in webhook mode without a secret");
    };
    assert!(!error.is_transient());
    assert_eq!(
        error.to_string(),
        "telegram webhook mode needs a secret token in TELEGRAM_WEBHOOK_SECRET"
    );
    assert!(telegram.calls_of("setWebhook").is_empty());
}

#[tokio::test]
async fn the_webhook_checks_the_secret_and_confirms_only_what_was_stored() {
    let telegram = FakeTelegram::start().await;
    let bot = Telegram::connect(webhook_settings(&telegram))
        .await
        .unwrap();
    assert_eq!(bot.identity().id.0, BOT_ID);
    let hooks = telegram.calls_of("setWebhook");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].body["secret_token"], "s3cret");
    assert_eq!(hooks[0].body["url"], "https://bot.example.org/telegram");

    let engine = Arc::new(Recorder::default());
    let router = bot.webhook("/telegram", engine.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/telegram", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let update: Value = json!({"update_id": 7, "message": {
        "message_id": 3, "date": 1_700_000_000, "chat": private_chat(ADA),
        "from": {"id": ADA, "is_bot": false, "first_name": "Ada"}, "text": "via webhook"
    }});
    let client = reqwest::Client::new();
    let post = |secret: Option<&'static str>| {
        let mut request = client.post(&url).json(&update);
        if let Some(secret) = secret {
            request = request.header(SECRET_HEADER, secret);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    assert!(engine.events.lock().unwrap().is_empty());
    engine.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        post(Some("s3cret")).await.unwrap().status(),
        503,
        "not stored: not confirmed"
    );
    engine
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(post(Some("s3cret")).await.unwrap().status(), 200);
    let events = engine.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    let ChannelEvent::Message(inbound) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(inbound.text, "via webhook");
    assert_eq!(inbound.key.to_string(), format!("telegram/{ADA}"));
    server.abort();
    bot.close().await;
}

#[tokio::test]
async fn a_wrong_token_stops_baton_run_with_a_clear_error_that_hides_the_token() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    telegram.fail_next("getMe", FakeFailure::BadRequest("Unauthorized".into()));
    let app = start_app(&telegram, &llm, &dir, "");
    let error = app.exit().await.expect_err("a wrong token is an error");
    let text = error.to_string();
    assert!(text.contains("getMe"), "{text}");
    assert!(!text.contains("TEST-TOKEN"), "the token leaked: {text}");
    assert_eq!(telegram.calls_of("getMe").len(), 1, "not retried");
}
