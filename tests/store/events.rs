//! The event log: entries in order, and many written at once all stored
//! before the store closes.

use baton::domain::Mode;
use baton::store::EventKind;

use super::{TestDb, key};

pub(super) async fn events_are_logged_in_order(db: TestDb) {
    let store = db.connect().await;
    let k = key("14");
    let turn = store
        .start_turn(&k, None, Mode::Orchestrator, "m")
        .await
        .unwrap();
    store
        .record_event(&k, None, EventKind::Message, "user", "hi")
        .await
        .unwrap();
    store
        .record_event(
            &k,
            Some(turn),
            EventKind::Delegation,
            "orchestrator",
            "w1: look",
        )
        .await
        .unwrap();
    store
        .record_event(&k, Some(turn), EventKind::Result, "w1", "found it")
        .await
        .unwrap();
    let events = store.recent_events(&k, 2).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, Some(EventKind::Delegation));
    assert_eq!(events[0].turn, Some(turn));
    assert_eq!(events[1].source, "w1");
    assert_eq!(events[1].body, "found it");
    assert!(events[0].id < events[1].id);
}

pub(super) async fn concurrent_events_are_all_written_in_order_before_close(db: TestDb) {
    let store = db.connect().await;
    // 8 conversations (new rows, created by the writer) log 50 events each
    // at once; the writer batches them.
    let mut tasks = tokio::task::JoinSet::new();
    for conversation in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let k = key(&format!("{}", 500 + conversation));
            for n in 0..50 {
                store
                    .record_event(&k, None, EventKind::Progress, "w1", &n.to_string())
                    .await
                    .unwrap();
            }
        });
    }
    tasks.join_all().await;
    // Closing writes what is queued; a new connection sees all of it.
    store.close().await;
    let store = db.connect().await;
    for conversation in 0..8 {
        let events = store
            .recent_events(&key(&format!("{}", 500 + conversation)), 100)
            .await
            .unwrap();
        let bodies: Vec<String> = events.into_iter().map(|e| e.body).collect();
        let expected: Vec<String> = (0..50).map(|n| n.to_string()).collect();
        assert_eq!(bodies, expected, "conversation ev{conversation}");
    }
    store.close().await;
}
