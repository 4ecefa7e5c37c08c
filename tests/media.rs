//! Attachments in, end to end: the real `baton::app::run` with the real
//! teloxide and serenity clients talking to the fake platforms (which serve
//! the files: Telegram `getFile` and downloads, Discord attachment URLs),
//! and a fake model that records the image parts of each wire format.

use baton_telegram::inbound::CANNOT_READ_YET;
use serde_json::json;

use crate::support::bot::{ORCHESTRATOR_MODEL, WORKER_MODEL};
use crate::support::fake_discord::FakeDiscord;
use crate::support::fake_llm::{FakeLlm, FakeReply, SeenImage, SeenMessage, SeenRequest, Wire};
use crate::support::fake_telegram::{FakeTelegram, private_chat};
use crate::support::service::App;
use crate::support::telegram_config::telegram_config;

/// The allowed user.
const ADA: u64 = 42;
/// Ada's DM channel with the Discord bot.
const ADA_DM: u64 = 4200;
/// A PNG as far as its signature goes (what Baton checks).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-a-small-picture";

/// Both test models can see images.
const VISION: &str = r#"
[models.catalog."fake:orch-model"]
vision = true

[models.catalog."fake:worker-model"]
vision = true
"#;

/// Starts the service against `telegram` and a model on `wire`; `extra`
/// is appended to the config.
fn start(
    telegram: &FakeTelegram,
    llm: &FakeLlm,
    wire: Wire,
    dir: &tempfile::TempDir,
    extra: &str,
) -> App {
    let db = dir.path().join("baton.db");
    App::spawn(telegram_config(telegram, ADA, llm, wire, &db, extra))
}

fn last_user(request: &SeenRequest) -> &SeenMessage {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .expect("a user message")
}

/// Says how many images the newest user message carried, and its text.
fn describe(request: &SeenRequest) -> FakeReply {
    let user = last_user(request);
    FakeReply::Text(format!(
        "{} image(s); you said: {}",
        user.images.len(),
        user.text
    ))
}

fn png() -> Vec<SeenImage> {
    vec![SeenImage {
        media_type: "image/png".into(),
        bytes: PNG.to_vec(),
    }]
}

#[tokio::test]
async fn a_photo_with_a_caption_reaches_each_wire_as_an_image_and_later_turns_see_a_placeholder() {
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let telegram = FakeTelegram::start().await;
        let llm = FakeLlm::start(wire, describe).await;
        let dir = tempfile::tempdir().unwrap();
        let app = start(&telegram, &llm, wire, &dir, VISION);
        let chat = ADA as i64;

        let (_, photo) = telegram.photo(ADA, "photo-1", PNG, Some("what is this?"));
        let sent = telegram.wait_for_sent(chat, 1).await;
        telegram.dm(ADA, "and its colour?");
        let sent_later = telegram.wait_for_sent(chat, 2).await;
        app.stop().await;

        assert_eq!(sent[0].reply_to(), Some(photo), "{wire:?}");
        assert!(
            sent[0].text().starts_with("1 image(s)"),
            "{wire:?}: {}",
            sent[0].text()
        );
        let requests = llm.requests();
        assert_eq!(requests.len(), 2, "{wire:?}");
        // The caption and the picture are one message; the largest size
        // was fetched, and the bytes' own type (PNG) is sent.
        let first = last_user(&requests[0]);
        assert!(
            first
                .text
                .starts_with("Ada: what is this?\n[image: photo.jpg, id "),
            "{wire:?}: {}",
            first.text
        );
        assert_eq!(first.images, png(), "{wire:?}");
        let got: Vec<String> = telegram
            .calls_of("getFile")
            .iter()
            .map(|c| c.body["file_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(got, ["photo-1"], "{wire:?}");
        // The next turn sees the photo as a placeholder, not the picture.
        let history = &requests[1].messages;
        assert!(
            history[0].text.contains("[image: photo.jpg, id "),
            "{wire:?}: {history:?}"
        );
        assert!(
            history.iter().all(|m| m.images.is_empty()),
            "{wire:?}: {history:?}"
        );
        assert_eq!(telegram.downloads().len(), 1, "{wire:?}: downloaded once");
        assert!(sent_later[1].text().starts_with("0 image(s)"), "{wire:?}");
    }
}

#[tokio::test]
async fn a_text_file_arrives_as_a_fenced_block_and_a_pdfs_text_reaches_the_model() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, describe).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&telegram, &llm, Wire::OpenAi, &dir, "");
    let chat = ADA as i64;

    let notes = b"# Plan\n- step one\n- step ```two```\n";
    telegram.add_file("notes", notes);
    telegram.document(
        ADA,
        "notes",
        "plan.md",
        "text/markdown",
        notes.len(),
        Some("summarise this"),
    );
    telegram.wait_for_sent(chat, 1).await;
    let pdf = tiny_pdf("Quarterly revenue grew");
    telegram.add_file("report", &pdf);
    telegram.document(
        ADA,
        "report",
        "report.pdf",
        "application/pdf",
        pdf.len(),
        None,
    );
    telegram.wait_for_sent(chat, 2).await;
    app.stop().await;

    let requests = llm.requests();
    let text = &last_user(&requests[0]).text;
    assert!(
        text.starts_with("Ada: summarise this\n[file: plan.md, id "),
        "{text}"
    );
    assert!(
        text.contains("Contents of plan.md (id ")
            && text.ends_with("````md\n# Plan\n- step one\n- step ```two```\n````"),
        "{text}"
    );
    let text = &last_user(&requests[1]).text;
    assert!(text.contains("Contents of report.pdf (id "), "{text}");
    assert!(text.contains("Quarterly revenue grew"), "{text}");
}

#[tokio::test]
async fn oversized_unsupported_undownloadable_and_unseeable_files_get_answers_and_the_chat_goes_on()
{
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, describe).await;
    let dir = tempfile::tempdir().unwrap();
    // The model has no `vision = true`.
    let app = start(
        &telegram,
        &llm,
        Wire::OpenAi,
        &dir,
        "[media]\nmax_bytes = 1000000",
    );
    let chat = ADA as i64;

    telegram.document(ADA, "big", "big.csv", "text/csv", 20_000_000, None);
    telegram.wait_for_sent(chat, 1).await;
    telegram.add_file("zip", b"PK\x03\x04");
    telegram.document(
        ADA,
        "zip",
        "archive.zip",
        "application/zip",
        4,
        Some("open this"),
    );
    telegram.wait_for_sent(chat, 2).await;
    // getFile does not know this one: the download fails.
    telegram.document(ADA, "gone", "notes.txt", "text/plain", 10, None);
    telegram.wait_for_sent(chat, 3).await;
    // A file whose size the message does not report, larger than the limit.
    telegram.add_file_reporting("huge", &vec![b'a'; 1_500_000], 1_500_000);
    telegram.message(
        private_chat(ADA),
        ADA,
        json!({"document": {"file_id": "huge", "file_unique_id": "h", "file_name": "huge.txt", "mime_type": "text/plain"}}),
    );
    telegram.wait_for_sent(chat, 4).await;
    telegram.photo(ADA, "photo-2", PNG, Some("look"));
    telegram.wait_for_sent(chat, 5).await;
    telegram.message(
        private_chat(ADA),
        ADA,
        json!({"voice": {"file_id": "v", "file_unique_id": "vu", "duration": 2}}),
    );
    telegram.wait_for_sent(chat, 6).await;
    telegram.dm(ADA, "still there?");
    let sent = telegram.wait_for_sent(chat, 7).await;
    app.stop().await;

    let texts: Vec<&str> = sent.iter().map(|c| c.text()).collect();
    assert_eq!(
        texts[0],
        "big.csv is too large: I can read text files up to 200 KB."
    );
    assert!(
        texts[1].starts_with("I can't read this kind of file (archive.zip)."),
        "{texts:?}"
    );
    assert_eq!(
        texts[2],
        "I could not download notes.txt; please send it again."
    );
    assert_eq!(
        texts[3],
        "huge.txt is too large: I can read text files up to 200 KB."
    );
    assert!(
        texts[4].contains("cannot see images") && texts[4].contains("/model"),
        "{texts:?}"
    );
    assert_eq!(texts[5], CANNOT_READ_YET);
    assert!(
        texts[6].ends_with("you said: Ada: still there?"),
        "{texts:?}"
    );
    // Only the last message reached the model; the oversized files were
    // refused before any download.
    assert_eq!(llm.requests().len(), 1);
    let asked: Vec<String> = telegram
        .calls_of("getFile")
        .iter()
        .map(|c| c.body["file_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(asked, ["gone", "huge"], "unsupported kinds are not fetched");
    assert!(
        telegram
            .downloads()
            .iter()
            .all(|path| !path.contains("huge"))
    );
}

#[tokio::test]
async fn a_stop_ends_a_stalled_download_and_the_next_message_is_answered() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, describe).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&telegram, &llm, Wire::OpenAi, &dir, VISION);
    let chat = ADA as i64;

    telegram.stall_downloads();
    let (_, photo) = telegram.photo(ADA, "photo-4", PNG, None);
    telegram
        .wait_for("the download to start", |_| {
            !telegram.downloads().is_empty()
        })
        .await;
    telegram.dm(ADA, "/stop");
    let sent = telegram.wait_for_sent(chat, 1).await;
    telegram.dm(ADA, "never mind, hello");
    let later = telegram.wait_for_sent(chat, 2).await;
    app.stop().await;

    assert_eq!(sent[0].text(), "Stopped.");
    assert_eq!(sent[0].reply_to(), Some(photo));
    assert!(
        later[1]
            .text()
            .ends_with("you said: Ada: never mind, hello"),
        "{}",
        later[1].text()
    );
    assert_eq!(
        llm.requests().len(),
        1,
        "the stopped photo never reached the model"
    );
}

/// The orchestrator hands the picture (by the id its context shows) to a
/// worker, which says what it got.
fn delegate_the_picture(request: &SeenRequest) -> FakeReply {
    if request.model == WORKER_MODEL {
        let brief = last_user(request);
        return FakeReply::Text(format!(
            "worker got {} image(s) with: {}",
            brief.images.len(),
            brief.text
        ));
    }
    assert_eq!(request.model, ORCHESTRATOR_MODEL);
    if request.tool_results().is_empty() {
        let text = &request.messages[0].text;
        let id = text
            .split("id ")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .unwrap_or_default();
        return FakeReply::ToolCalls(vec![(
            "spawn_worker".into(),
            json!({"prompt": "describe the picture", "attachments": [id]}),
        )]);
    }
    match request.awaited().first() {
        None => FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]),
        Some(result) => FakeReply::Text(format!(
            "Done: {}",
            result["result"].as_str().unwrap_or_default()
        )),
    }
}

#[tokio::test]
async fn spawn_worker_with_attachments_gives_the_worker_the_image() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, delegate_the_picture).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{VISION}\n[orchestrator]\ndefault_mode = \"orchestrator\"");
    let app = start(&telegram, &llm, Wire::OpenAi, &dir, &extra);

    telegram.photo(ADA, "photo-3", PNG, Some("what is in it?"));
    let sent = telegram.wait_for_sent(ADA as i64, 1).await;
    app.stop().await;

    assert!(
        sent[0]
            .text()
            .starts_with("Done: worker got 1 image(s) with: describe the picture"),
        "{}",
        sent[0].text()
    );
    let worker = llm
        .requests()
        .into_iter()
        .find(|r| r.model == WORKER_MODEL)
        .expect("the worker ran");
    assert_eq!(last_user(&worker).images, png());
    // The spawn_worker schema offers attachments.
    let orchestrator = &llm.requests()[0];
    let spawn = orchestrator.raw["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "spawn_worker")
        .unwrap();
    assert_eq!(
        spawn["function"]["parameters"]["properties"]["attachments"]["type"],
        "array"
    );
}

#[tokio::test]
async fn a_discord_attachment_reaches_the_model_as_an_image() {
    let discord = FakeDiscord::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, describe).await;
    let dir = tempfile::tempdir().unwrap();
    let app = crate::discord::start_app(&discord, &llm, &dir, VISION).await;

    let message = discord.dm_with_file(ADA_DM, ADA, "what is this?", ("cat.png", "image/png", PNG));
    let posts = discord.wait_for_posts(ADA_DM, 1).await;
    let notes = b"line one\nline two";
    discord.dm_with_file(
        ADA_DM,
        ADA,
        "",
        ("notes.txt", "text/plain; charset=utf-8", notes),
    );
    let more = discord.wait_for_posts(ADA_DM, 2).await;
    app.stop().await;

    assert_eq!(posts[0].reference(), Some(message));
    assert!(
        posts[0]
            .content()
            .starts_with("1 image(s); you said: ada: what is this?\n[image: cat.png, id "),
        "{}",
        posts[0].content()
    );
    let requests = llm.requests();
    assert_eq!(last_user(&requests[0]).images, png());
    assert_eq!(discord.downloads().len(), 2);
    let text = &last_user(&requests[1]).text;
    assert!(text.starts_with("ada: [file: notes.txt, id "), "{text}");
    assert!(text.ends_with("```txt\nline one\nline two\n```"), "{text}");
    assert!(more[1].content().starts_with("0 image(s)"));
}

#[tokio::test]
async fn attachment_metadata_is_stored_with_its_message_on_both_backends() {
    let mut urls = vec!["sqlite::memory:".to_owned()];
    urls.extend(crate::support::postgres::database().await);
    let key = baton_channel::ConversationKey::telegram(42, None);
    let ada = baton_channel::Author {
        id: "42".into(),
        name: "Ada".into(),
    };
    let file = baton_channel::Attachment {
        file_id: "AgACAgIAAxkB".into(),
        name: "plan.md".into(),
        mime: Some("text/markdown".into()),
        size: Some(123),
        url: None,
        image: false,
    };
    for url in urls {
        let store = baton::store::Store::connect(&url).await.unwrap();
        store
            .record_inbound(&key, &ada, "plain", Some("1"))
            .await
            .unwrap();
        store
            .record_inbound_with(
                &key,
                &ada,
                "with a file",
                Some("2"),
                std::slice::from_ref(&file),
            )
            .await
            .unwrap();
        let history = store.history(&key, 10).await.unwrap();
        assert_eq!(history.len(), 2, "{url}");
        assert!(history[0].attachments.is_empty(), "{url}");
        assert_eq!(history[1].attachments, std::slice::from_ref(&file), "{url}");
        let waiting = store.unanswered_messages(0, 10).await.unwrap();
        assert_eq!(
            waiting[1].attachments,
            std::slice::from_ref(&file),
            "{url}: a restart keeps the files"
        );
        store.close().await;
    }
}

/// A one-page PDF showing `text` in Helvetica, with a correct xref table.
fn tiny_pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 24 Tf 72 700 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", index + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}
