//! Conversations: their settings (saved, changed, read back after a
//! reconnect, unknown stored words read as the defaults) and the
//! dashboard's list of them by last activity.

use baton::domain::{ConversationSettings, Mode};
use baton_channel::{ConversationKey, Effort};

use super::{TestDb, alice, key};

pub(super) async fn settings_round_trip_and_survive_a_reconnect(db: TestDb) {
    let k = ConversationKey::telegram(-100123, Some(7));
    let settings = ConversationSettings {
        mode: Mode::Orchestrator,
        verbose: true,
        effort: Effort::High,
        model: Some("anthropic:claude-x".into()),
        greedy: true,
        autonomy: false,
    };

    let store = db.connect().await;
    assert_eq!(store.load_settings(&k).await.unwrap(), None);
    store.save_settings(&k, &settings).await.unwrap();
    assert_eq!(store.load_settings(&k).await.unwrap(), Some(settings));
    let changed = ConversationSettings {
        mode: Mode::Single,
        verbose: false,
        effort: Effort::Off,
        model: None,
        greedy: false,
        autonomy: true,
    };
    store.save_settings(&k, &changed).await.unwrap();
    assert_eq!(
        store.load_settings(&k).await.unwrap(),
        Some(changed.clone())
    );
    store.close().await;

    let store = db.connect().await;
    assert_eq!(store.load_settings(&k).await.unwrap(), Some(changed));
    // Another conversation in the same chat is another key.
    assert_eq!(store.load_settings(&key("-100123")).await.unwrap(), None);
    store.close().await;
}

pub(super) async fn a_conversation_with_messages_but_no_saved_settings_has_none(db: TestDb) {
    let store = db.connect().await;
    let k = key("5");
    store
        .record_inbound(&k, &alice(), "hi", None)
        .await
        .unwrap();
    store.reset_context(&k).await.unwrap();
    assert_eq!(store.load_settings(&k).await.unwrap(), None);
}

pub(super) async fn unknown_stored_words_fall_back_to_defaults(db: TestDb) {
    let store = db.connect().await;
    let k = key("6");
    let raw_key = k.to_string();
    store
        .with_connection(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO conversations \
                     (key, mode, \"verbose\", effort, created_at, updated_at) \
                     VALUES ($1, 'swarm', TRUE, 'extreme', 0, 0)",
                )
                .bind(raw_key)
                .execute(conn)
                .await
            })
        })
        .await
        .unwrap();
    let settings = store.load_settings(&k).await.unwrap().unwrap();
    assert_eq!(settings.mode, Mode::default());
    assert_eq!(settings.effort, Effort::default());
    assert!(settings.verbose);
}

/// The dashboard's list: most recently active first, paged by cursor,
/// named by the chat's title when one was noted (else the last user).
pub(super) async fn conversations_browse_by_last_activity_with_titles(db: TestDb) {
    let store = db.connect().await;
    for (chat, text) in [("1", "a"), ("2", "b"), ("3", "c"), ("1", "d")] {
        store
            .record_inbound(&key(chat), &alice(), text, None)
            .await
            .unwrap();
    }
    store.note_title(&key("2"), "Team two").await.unwrap();
    // Unchanged: nothing written; blank: ignored.
    store.note_title(&key("2"), "Team two").await.unwrap();
    store.note_title(&key("3"), "   ").await.unwrap();

    let first = store.browse_conversations(None, 2, 0).await.unwrap();
    let names: Vec<(&str, Option<&str>)> = first
        .iter()
        .map(|c| (c.key.as_str(), c.name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [("telegram/1", Some("Alice")), ("telegram/3", Some("Alice"))]
    );
    let rest = store
        .browse_conversations(Some(first[1].cursor.clone()), 2, 0)
        .await
        .unwrap();
    let names: Vec<(&str, Option<&str>)> = rest
        .iter()
        .map(|c| (c.key.as_str(), c.name.as_deref()))
        .collect();
    assert_eq!(names, [("telegram/2", Some("Team two"))]);
    assert!(
        store
            .browse_conversations(Some("not a cursor".into()), 2, 0)
            .await
            .unwrap()
            .len()
            == 2,
        "an unreadable cursor starts from the top"
    );
}
