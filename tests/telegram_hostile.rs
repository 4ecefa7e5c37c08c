//! Telegram updates that teloxide cannot read, through the real wire
//! format: one such update must never stop the bot. A lone UTF-16
//! surrogate in a message's text is answered with U+FFFD in its place; an
//! update that cannot be read at all is skipped and confirmed; every other
//! update is answered as usual. By long polling and by webhook.

use std::sync::Arc;

use baton_channel::ChannelEvent;
use baton_telegram::Telegram;
use baton_telegram::webhook::SECRET_HEADER;

use crate::support::fake_llm::{FakeLlm, Wire};
use crate::support::fake_telegram::{FakeTelegram, raw_message_update};
use crate::telegram::{ADA, Recorder, echo, start_app, webhook_settings};

/// Another user, who may talk to the bot in private (`dm_policy = "open"`).
const EVE: u64 = 77;

/// What the model was asked, turn by turn.
fn asked(llm: &FakeLlm) -> Vec<String> {
    llm.requests()
        .iter()
        .map(|r| r.last_user_text().unwrap_or_default().to_owned())
        .collect()
}

/// The JSON text of update `id` whose `update_id` key is written twice:
/// valid JSON that serde refuses for an `Update` ("duplicate field"), so
/// teloxide fails the whole `getUpdates` answer on it.
fn duplicate_id_update(id: u32, message_id: i64) -> String {
    raw_message_update(id, message_id, ADA, r#""text":"twice""#).replacen(
        '{',
        &format!(r#"{{"update_id":{id},"#),
        1,
    )
}

#[tokio::test]
async fn polling_answers_a_lone_surrogate_with_a_replacement_character_and_the_next_chat_too() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    // Both in the first getUpdates answer, which teloxide cannot read.
    let (hostile, message) = telegram.raw_dm(ADA, r#""hi \ud800 there""#);
    let (normal, _) = telegram.dm(EVE, "hello");
    let app = start_app(&telegram, &llm, &dir, r#"dm_policy = "open""#);

    let to_ada = telegram.wait_for_sent(ADA as i64, 1).await;
    let to_eve = telegram.wait_for_sent(EVE as i64, 1).await;
    telegram.wait_confirmed(normal).await;
    app.stop().await;

    assert_eq!(to_ada.len(), 1, "{to_ada:#?}");
    assert_eq!(to_ada[0].text(), "Hello! You said: Ada: hi \u{FFFD} there");
    assert_eq!(to_ada[0].reply_to(), Some(message));
    assert_eq!(to_eve.len(), 1, "{to_eve:#?}");
    assert_eq!(to_eve[0].text(), "Hello! You said: User77: hello");
    let mut seen = asked(&llm);
    seen.sort();
    assert_eq!(seen, ["Ada: hi \u{FFFD} there", "User77: hello"]);
    assert!(telegram.confirmed_offset() > i64::from(hostile));
    assert!(telegram.confirmed_offset() > i64::from(normal));
}

#[tokio::test]
async fn polling_skips_updates_that_cannot_be_read_and_answers_the_rest_of_the_batch() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    // No update_id at all: skipped, passed by the next confirmed update.
    let no_id = telegram.push_raw_update(|id| {
        raw_message_update(id, 50, ADA, r#""text":"no id""#).replacen(
            &format!(r#""update_id":{id},"#),
            "",
            1,
        )
    });
    // A message teloxide cannot read, which it keeps as
    // `UpdateKind::Error`: ignored, as any update that is not a message.
    let bad_message = telegram.push_raw_update(|id| {
        raw_message_update(id, 51, ADA, r#""text":"bad""#).replacen(
            r#""message_id":51"#,
            r#""message_id":"not a number""#,
            1,
        )
    });
    // Cannot be read even update by update: skipped with its id.
    let duplicate = telegram.push_raw_update(|id| duplicate_id_update(id, 52));
    let (normal, message) = telegram.dm(ADA, "still here");
    let app = start_app(&telegram, &llm, &dir, "");

    let sent = telegram.wait_for_sent(ADA as i64, 1).await;
    telegram.wait_confirmed(normal).await;
    app.stop().await;

    assert_eq!(sent.len(), 1, "only the readable message: {sent:#?}");
    assert_eq!(sent[0].text(), "Hello! You said: Ada: still here");
    assert_eq!(sent[0].reply_to(), Some(message));
    assert_eq!(asked(&llm), ["Ada: still here"]);
    for id in [no_id, bad_message, duplicate, normal] {
        assert!(
            telegram.confirmed_offset() > i64::from(id),
            "update {id} confirmed"
        );
    }
    let polls = telegram.calls_of("getUpdates");
    assert!(
        polls.iter().all(|call| call.ok()),
        "answered every time: {polls:#?}"
    );
}

#[tokio::test]
async fn the_webhook_takes_updates_it_cannot_read_and_checks_the_secret_first() {
    let telegram = FakeTelegram::start().await;
    let bot = Telegram::connect(webhook_settings(&telegram))
        .await
        .unwrap();
    let engine = Arc::new(Recorder::default());
    let router = bot.webhook("/telegram", engine.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/telegram", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let post = |secret: Option<&'static str>, body: String| {
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(secret) = secret {
            request = request.header(SECRET_HEADER, secret);
        }
        request.send()
    };
    let texts = || -> Vec<String> {
        engine
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|event| match event {
                ChannelEvent::Message(inbound) => inbound.text.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };

    let hostile = raw_message_update(7, 3, ADA, r#""text":"hi \ud800 there""#);
    assert_eq!(post(None, hostile.clone()).await.unwrap().status(), 401);
    assert!(texts().is_empty());
    assert_eq!(post(Some("s3cret"), hostile).await.unwrap().status(), 200);
    assert_eq!(texts(), ["hi \u{FFFD} there"]);

    // Not an update, or an update that cannot be read: taken, not retried.
    let not_an_update = r#"{"hello":"world"}"#.to_owned();
    assert_eq!(
        post(Some("s3cret"), not_an_update).await.unwrap().status(),
        200
    );
    let duplicate = duplicate_id_update(8, 4);
    assert_eq!(post(Some("s3cret"), duplicate).await.unwrap().status(), 200);
    assert_eq!(texts().len(), 1);

    // The secret is checked before the body is read; the body limit holds.
    let huge = format!(r#"{{"padding":"{}"}}"#, "x".repeat((2 << 20) + 1024));
    assert_eq!(post(None, huge.clone()).await.unwrap().status(), 401);
    assert_eq!(post(Some("s3cret"), huge).await.unwrap().status(), 413);

    // Nothing broke: the next update is taken as usual.
    let next = raw_message_update(9, 5, ADA, r#""text":"and now?""#);
    assert_eq!(post(Some("s3cret"), next).await.unwrap().status(), 200);
    assert_eq!(texts(), ["hi \u{FFFD} there", "and now?"]);
    server.abort();
    bot.close().await;
}
