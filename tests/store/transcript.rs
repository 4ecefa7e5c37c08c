//! The transcript: inbound messages deduplicated by platform message id,
//! history in order, a reply placed after its message, `/reset`, and stored
//! replies that stay unsent until marked.

use baton::domain::Mode;
use baton::store::Role;

use super::{TestDb, alice, key};

pub(super) async fn inbound_is_deduplicated_by_platform_message_id(db: TestDb) {
    let store = db.connect().await;
    let k = key("42");
    let first = store
        .record_inbound(&k, &alice(), "hello", Some("m1"))
        .await
        .unwrap();
    assert!(first.is_some());
    let again = store
        .record_inbound(&k, &alice(), "hello", Some("m1"))
        .await
        .unwrap();
    assert_eq!(again, None);
    // The same platform id in another conversation is another message.
    assert!(
        store
            .record_inbound(&key("43"), &alice(), "hello", Some("m1"))
            .await
            .unwrap()
            .is_some()
    );
    // Messages without a platform id are never deduplicated.
    for _ in 0..2 {
        assert!(
            store
                .record_inbound(&k, &alice(), "no id", None)
                .await
                .unwrap()
                .is_some()
        );
    }

    let history = store.history(&k, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["hello", "no id", "no id"]);
    assert_eq!(history[0].id, first.unwrap());
    assert_eq!(history[0].role, Role::User);
    assert_eq!(history[0].author.as_deref(), Some("Alice"));
}

pub(super) async fn history_returns_the_newest_messages_oldest_first(db: TestDb) {
    let store = db.connect().await;
    let k = key("7");
    for i in 1..=5 {
        let inbound = store
            .record_inbound(&k, &alice(), &format!("q{i}"), Some(&format!("p{i}")))
            .await
            .unwrap();
        let turn = store
            .start_turn(&k, inbound, Mode::Single, "openai:gpt")
            .await
            .unwrap();
        store
            .record_reply(&k, turn, &format!("a{i}"), None)
            .await
            .unwrap();
    }
    let history = store.history(&k, 3).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["a4", "q5", "a5"]);
    assert_eq!(history[0].role, Role::Assistant);
    assert_eq!(history[0].author, None);
    assert_eq!(history[1].role, Role::User);
    assert!(history.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(store.history(&k, 100).await.unwrap().len(), 10);
    assert!(store.history(&k, 0).await.unwrap().is_empty());
    assert!(store.history(&key("9001"), 10).await.unwrap().is_empty());
}

pub(super) async fn a_reply_follows_its_message_even_when_others_queued_before_it(db: TestDb) {
    let store = db.connect().await;
    let k = key("9002");
    // q2 and q3 arrive (and are stored) while q1's turn runs.
    let q1 = store
        .record_inbound(&k, &alice(), "q1", None)
        .await
        .unwrap();
    let q2 = store
        .record_inbound(&k, &alice(), "q2", None)
        .await
        .unwrap();
    store
        .record_inbound(&k, &alice(), "q3", None)
        .await
        .unwrap();
    let turn = store.start_turn(&k, q1, Mode::Single, "m").await.unwrap();
    store.record_reply(&k, turn, "a1", None).await.unwrap();

    let texts = |history: Vec<baton::store::StoredMessage>| -> Vec<String> {
        history.into_iter().map(|m| m.content).collect()
    };
    assert_eq!(
        texts(store.history(&k, 10).await.unwrap()),
        ["q1", "a1", "q2", "q3"]
    );
    // q2's turn sees q1 and its answer, not q3 (it waits for its own turn).
    assert_eq!(
        texts(store.history_through(&k, q2, 10).await.unwrap()),
        ["q1", "a1", "q2"]
    );
    // A reset through q1 hides q1's reply too.
    store.reset_context_through(&k, q1.unwrap()).await.unwrap();
    assert_eq!(texts(store.history(&k, 10).await.unwrap()), ["q2", "q3"]);
}

pub(super) async fn reset_context_hides_earlier_messages(db: TestDb) {
    let store = db.connect().await;
    let k = key("8");
    store
        .record_inbound(&k, &alice(), "old", None)
        .await
        .unwrap();
    // Another conversation's later messages do not move this one's start.
    store
        .record_inbound(&key("9"), &alice(), "elsewhere", None)
        .await
        .unwrap();
    store.reset_context(&k).await.unwrap();
    assert!(store.history(&k, 10).await.unwrap().is_empty());
    assert_eq!(store.history(&key("9"), 10).await.unwrap().len(), 1);

    store
        .record_inbound(&k, &alice(), "new", None)
        .await
        .unwrap();
    let history = store.history(&k, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["new"]);

    // A reset before anything was said is fine too.
    store.reset_context(&key("9003")).await.unwrap();
    assert!(store.history(&key("9003"), 10).await.unwrap().is_empty());
}

pub(super) async fn a_stored_reply_is_unsent_until_marked_even_across_a_restart(db: TestDb) {
    let k = key("88");
    let store = db.connect().await;
    let inbound = store
        .record_inbound(&k, &alice(), "q1", Some("m1"))
        .await
        .unwrap();
    let turn = store
        .start_turn(&k, inbound, Mode::Single, "m")
        .await
        .unwrap();
    let first = store
        .record_reply(&k, turn, "a1", Some("m1"))
        .await
        .unwrap();
    let second = store.record_reply(&k, turn, "a2", None).await.unwrap();
    // The reply is in the transcript as well as in the outbox.
    let history = store.history(&k, 10).await.unwrap();
    assert_eq!(history.last().map(|m| m.id), Some(second.message));
    store.mark_sent(second.outbox).await.unwrap();
    store.close().await; // a stop before the first was posted

    let store = db.connect().await;
    let unsent = store.unsent_replies(0, 10).await.unwrap();
    assert_eq!(unsent.len(), 1, "{unsent:?}");
    assert_eq!(unsent[0].id, first.outbox);
    assert_eq!(unsent[0].key, k);
    assert_eq!(unsent[0].text, "a1");
    assert_eq!(unsent[0].reply_to.as_deref(), Some("m1"));
    // Only replies stored since the given time are posted again.
    assert!(store.unsent_replies(i64::MAX, 10).await.unwrap().is_empty());
    store.mark_sent(first.outbox).await.unwrap();
    assert!(store.unsent_replies(0, 10).await.unwrap().is_empty());
    store.close().await;
}
