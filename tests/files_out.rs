//! Answers sent back as files, end to end on both platforms: the real
//! `baton::app::run`, a scripted fake model, and what the fake Telegram and
//! fake Discord were asked to show. A long code block goes as its own file
//! (`code.<ext>`) with the rest of the answer as the text; an answer of more
//! than `[media] max_pieces` messages goes as `answer.md` with its first
//! part; short answers and verbose worker output stay text, and a refused
//! upload falls back to text pieces.

use serde_json::json;

use crate::discord::{loud_turn_in_the_thread, start_app as start_discord};
use crate::support::bot::WORKER_MODEL;
use crate::support::fake_discord::{CHANNEL, Call as DiscordCall, FakeDiscord, THREAD};
use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use crate::support::fake_telegram::{Call, FakeFailure, FakeTelegram};
use crate::telegram::{ADA, echo, loud_turn, start_app};

/// `lines` lines of Python.
fn code(lines: usize) -> String {
    (0..lines)
        .map(|i| format!("value_{i:03} = compute({i}) * 2  # step {i:03}\n"))
        .collect()
}

/// An answer with a 120-line Python block between two short paragraphs.
fn code_answer() -> String {
    format!(
        "Here is the script.\n\n```python\n{}```\n\nRun it with `python3 script.py`.",
        code(120)
    )
}

/// About 15,000 characters of prose.
fn long_prose() -> String {
    (0..220)
        .map(|i| format!("Line {i:03} of prose: the quick brown fox jumps over the lazy dog.\n"))
        .collect()
}

/// The model: `answer` for a message that asks for it, an echo otherwise.
fn answering(answer: String) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |request| {
        if request.last_user_text().unwrap_or("").contains("please") {
            FakeReply::Text(answer.clone())
        } else {
            echo(request)
        }
    }
}

/// An orchestrator with one worker that writes 120 lines of code, then a
/// one-line summary.
fn coding_worker(request: &SeenRequest) -> FakeReply {
    if request.model == WORKER_MODEL {
        return FakeReply::Text(format!("Done:\n\n```python\n{}```", code(120)));
    }
    if request.tool_results().is_empty() {
        return FakeReply::ToolCalls(vec![(
            "spawn_worker".into(),
            json!({"label": "coder", "prompt": "write the script"}),
        )]);
    }
    if request.awaited().is_empty() {
        return FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]);
    }
    FakeReply::Text("Summary: the worker wrote the script.".into())
}

/// Waits until `chat` got `n` documents, and returns them.
async fn wait_for_documents(telegram: &FakeTelegram, chat: i64, n: usize) -> Vec<Call> {
    telegram
        .wait_for(&format!("{n} documents to {chat}"), |calls| {
            calls
                .iter()
                .filter(|c| c.method == "senddocument" && c.ok() && c.chat() == Some(chat))
                .count()
                >= n
        })
        .await;
    telegram.documents_to(chat)
}

#[tokio::test]
async fn a_long_code_answer_arrives_on_telegram_as_a_file_with_the_prose_as_caption() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, answering(code_answer())).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");
    let chat = ADA as i64;

    let (_, asked) = telegram.dm(ADA, "write the script please");
    let documents = wait_for_documents(&telegram, chat, 1).await;
    // Nothing else follows: the next answer is the only text message.
    let (_, thanks) = telegram.dm(ADA, "thanks");
    let sent = telegram.wait_for_sent(chat, 1).await;
    app.stop().await;

    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].reply_to(), Some(thanks));
    assert_eq!(telegram.documents_to(chat).len(), 1);
    let document = &documents[0];
    assert_eq!(document.reply_to(), Some(asked), "a reply to the request");
    let file = document.document().expect("the uploaded file");
    assert_eq!(file.file_name.as_deref(), Some("code.py"));
    assert_eq!(file.text(), code(120), "the file is the code, whole");
    assert_eq!(document.body["parse_mode"], "HTML");
    assert_eq!(
        document.caption(),
        "Here is the script.\n\n(The code, 120 lines, is in the attached file \
         <code>code.py</code>.)\n\nRun it with <code>python3 script.py</code>."
    );
}

#[tokio::test]
async fn an_answer_of_more_than_max_pieces_arrives_on_telegram_as_answer_md() {
    let answer = long_prose();
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, answering(answer.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    // 15,000 characters are four Telegram messages: more than two.
    let app = start_app(&telegram, &llm, &dir, "[media]\nmax_pieces = 2");
    let chat = ADA as i64;

    let (_, asked) = telegram.dm(ADA, "tell me everything please");
    let documents = wait_for_documents(&telegram, chat, 1).await;
    telegram.dm(ADA, "thanks");
    let sent = telegram.wait_for_sent(chat, 1).await;
    app.stop().await;

    assert_eq!(sent.len(), 1, "only the next answer is text: {sent:#?}");
    let document = &documents[0];
    assert_eq!(document.reply_to(), Some(asked));
    let file = document.document().expect("the uploaded file");
    assert_eq!(file.file_name.as_deref(), Some("answer.md"));
    assert_eq!(file.text(), answer, "the whole answer");
    let caption = document.caption();
    assert!(caption.starts_with("Line 000 of prose"), "{caption}");
    assert!(
        caption.ends_with("(The full answer is in the attached file <code>answer.md</code>.)"),
        "{caption}"
    );
    assert!(caption.encode_utf16().count() <= 1024, "{caption}");
}

#[tokio::test]
async fn short_answers_and_verbose_worker_code_stay_text_on_telegram() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, |request: &SeenRequest| {
        if request.last_user_text().unwrap_or("").contains("short") {
            FakeReply::Text(format!("Short:\n\n```python\n{}```", code(80)))
        } else {
            coding_worker(request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");
    let chat = ADA as i64;

    // 80 lines is not more than code_as_file_lines.
    telegram.dm(ADA, "something short");
    let sent = telegram.wait_for_sent(chat, 1).await;
    assert!(sent[0].text().contains("value_079"), "{}", sent[0].text());

    let asked = loud_turn(&telegram, 1, "get the script written").await;
    // Verbose output is a glimpse: the start of the worker's code.
    telegram
        .wait_for("the worker's code shown", |calls| {
            calls.iter().any(|c| {
                c.method == "sendmessage"
                    && c.text().starts_with("[coder]")
                    && c.text().contains("value_030")
            })
        })
        .await;
    app.stop().await;

    assert!(
        telegram.calls_of("sendDocument").is_empty(),
        "no file at all: {:#?}",
        telegram.calls_of("sendDocument")
    );
    let verbose: Vec<Call> = telegram
        .sent_to(chat)
        .into_iter()
        .filter(|c| c.reply_to() == Some(asked) && c.text().starts_with("[coder]"))
        .collect();
    assert!(
        verbose.iter().any(|c| c.text().contains("value_030")),
        "{verbose:#?}"
    );
}

#[tokio::test]
async fn a_refused_document_still_gets_the_answer_to_the_telegram_user_as_text() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, answering(code_answer())).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");
    let chat = ADA as i64;
    telegram.fail_next(
        "sendDocument",
        FakeFailure::BadRequest("Bad Request: not enough rights to send documents".into()),
    );

    let (_, asked) = telegram.dm(ADA, "write the script please");
    telegram
        .wait_for("the last line of code as text", |calls| {
            calls
                .iter()
                .any(|c| c.method == "sendmessage" && c.ok() && c.text().contains("value_119"))
        })
        .await;
    telegram.dm(ADA, "thanks");
    telegram
        .wait_for("the next answer", |calls| {
            calls
                .iter()
                .any(|c| c.method == "sendmessage" && c.text().contains("You said: Ada: thanks"))
        })
        .await;
    app.stop().await;

    let attempts = telegram.calls_of("sendDocument");
    assert_eq!(attempts.len(), 1, "not retried: {attempts:#?}");
    assert_eq!(attempts[0].status, 400);
    let pieces: Vec<Call> = telegram
        .sent_to(chat)
        .into_iter()
        .filter(|c| c.reply_to() == Some(asked))
        .collect();
    let all: String = pieces.iter().map(Call::text).collect();
    assert!(all.starts_with("Here is the script."), "{all}");
    for i in 0..120 {
        assert!(all.contains(&format!("value_{i:03}")), "line {i} lost");
    }
    assert!(all.contains("python3 script.py"));
    assert!(!all.contains("attached file"), "{all}");
}

#[tokio::test]
async fn a_caption_telegram_cannot_parse_goes_again_as_plain_text_with_the_file() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, answering(code_answer())).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");
    let chat = ADA as i64;
    telegram.fail_next(
        "sendDocument",
        FakeFailure::BadRequest("Bad Request: can't parse entities: unclosed tag".into()),
    );

    telegram.dm(ADA, "write the script please");
    let documents = wait_for_documents(&telegram, chat, 1).await;
    app.stop().await;

    let attempts = telegram.calls_of("sendDocument");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0].body["parse_mode"], "HTML");
    let plain = &documents[0];
    assert!(plain.body.get("parse_mode").is_none(), "{:?}", plain.body);
    assert!(
        plain.caption().contains("`code.py`"),
        "the Markdown as it was: {}",
        plain.caption()
    );
    assert_eq!(plain.document().map(|f| f.text()), Some(code(120)));
    assert!(telegram.sent_to(chat).is_empty(), "no text fallback needed");
}

/// A fake Discord and a model answering with `script`; the bot started.
async fn discord_world(
    script: impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static,
) -> (
    FakeDiscord,
    FakeLlm,
    tempfile::TempDir,
    crate::support::service::App,
) {
    let discord = FakeDiscord::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, script).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_discord(&discord, &llm, &dir, "").await;
    (discord, llm, dir, app)
}

#[tokio::test]
async fn a_long_code_answer_arrives_on_discord_as_one_message_with_the_file() {
    let (discord, _llm, _dir, app) = discord_world(answering(code_answer())).await;

    let asked = discord.mention(CHANNEL, ADA, "write the script please");
    let posts = discord.wait_for_posts(CHANNEL, 1).await;
    let thanks = discord.mention(CHANNEL, ADA, "thanks");
    let posts_after = discord.wait_for_posts(CHANNEL, 2).await;
    app.stop().await;

    assert_eq!(posts_after.len(), 2, "{posts_after:#?}");
    assert_eq!(posts_after[1].reference(), Some(thanks));
    assert!(posts_after[1].files.is_empty());
    let post = &posts[0];
    assert_eq!(post.reference(), Some(asked));
    assert_eq!(
        post.content(),
        "Here is the script.\n\n(The code, 120 lines, is in the attached file `code.py`.)\
         \n\nRun it with `python3 script.py`."
    );
    assert_eq!(post.files.len(), 1, "{post:#?}");
    let file = &post.files[0];
    assert_eq!(file.name, "files[0]");
    assert_eq!(file.file_name.as_deref(), Some("code.py"));
    assert_eq!(file.text(), code(120));
    assert!(
        file.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("text/plain"),
        "{file:?}"
    );
    assert_eq!(
        post.body["attachments"],
        json!([{"id": 0, "filename": "code.py"}])
    );
    assert_eq!(post.body["allowed_mentions"]["parse"], json!([]));
}

#[tokio::test]
async fn an_answer_of_more_than_max_pieces_arrives_on_discord_as_answer_md() {
    let answer = long_prose();
    let (discord, _llm, _dir, app) = discord_world(answering(answer.clone())).await;

    let asked = discord.mention(CHANNEL, ADA, "tell me everything please");
    let posts = discord.wait_for_posts(CHANNEL, 1).await;
    discord.mention(CHANNEL, ADA, "thanks");
    discord.wait_for_posts(CHANNEL, 2).await;
    app.stop().await;

    // Eight messages' worth went as one.
    assert_eq!(discord.posted_in(CHANNEL).len(), 2);
    let post = &posts[0];
    assert_eq!(post.reference(), Some(asked));
    assert_eq!(post.files.len(), 1);
    assert_eq!(post.files[0].file_name.as_deref(), Some("answer.md"));
    assert_eq!(post.files[0].text(), answer);
    assert!(post.content().starts_with("Line 000 of prose"));
    assert!(post.content().chars().count() < 2000);
    assert!(
        post.content()
            .ends_with("(The full answer is in the attached file `answer.md`.)"),
        "{}",
        post.content()
    );
}

#[tokio::test]
async fn refused_files_still_get_the_answer_to_the_discord_user_as_text() {
    let (discord, _llm, _dir, app) = discord_world(answering(code_answer())).await;
    discord.refuse_files_in(CHANNEL);

    let asked = discord.mention(CHANNEL, ADA, "write the script please");
    discord
        .wait_until("the last line of code as text", |fake| {
            fake.posted_in(CHANNEL)
                .iter()
                .any(|c| c.content().contains("value_119"))
        })
        .await;
    app.stop().await;

    let refused: Vec<DiscordCall> = discord
        .calls()
        .into_iter()
        .filter(|c| c.creates_message() && !c.files.is_empty())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0].status, 403);
    let posts = discord.posted_in(CHANNEL);
    assert!(posts.len() > 1, "{posts:#?}");
    assert_eq!(posts[0].reference(), Some(asked));
    let all: String = posts.iter().map(DiscordCall::content).collect();
    for i in 0..120 {
        assert!(all.contains(&format!("value_{i:03}")), "line {i} lost");
    }
    assert!(!all.contains("attached file"), "{all}");
}

#[tokio::test]
async fn verbose_worker_code_never_goes_as_a_file_on_discord() {
    let (discord, _llm, _dir, app) = discord_world(coding_worker).await;
    loud_turn_in_the_thread(&discord, "get the script written").await;
    app.stop().await;

    let posts = discord.posted_in(THREAD);
    let shown: String = posts
        .iter()
        .filter(|c| c.content().starts_with("**[coder]**"))
        .map(DiscordCall::content)
        .collect();
    // Verbose output is a glimpse: the start of the worker's code.
    assert!(shown.contains("value_030"), "{posts:#?}");
    assert!(
        discord.calls().iter().all(|c| c.files.is_empty()),
        "no file at all"
    );
}
