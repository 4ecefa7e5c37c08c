//! Turns and workers: their token counts (prompt-cache tokens too) and
//! the usage totals, unknown ids, and turns a crash left running.

use baton::domain::Mode;
use baton::domain::Usage;
use baton::store::{StoreError, TurnStatus};
use baton_channel::{Effort, WorkerId, WorkerStatus};

use super::{TestDb, alice, key, usage, worker};

/// Prompt-cache tokens go to the turn's and each worker's row, come back
/// from every read (the turn, its workers, the totals, the dashboard's tree)
/// and are added up like the other counts.
pub(super) async fn cache_tokens_are_stored_per_turn_and_worker(db: TestDb) {
    let store = db.connect().await;
    let k = key("12");
    let cached = |input, output, cached_input_tokens, cache_write_tokens| Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens,
        cache_write_tokens,
    };
    let turn = store
        .start_turn(&k, None, Mode::Orchestrator, "anthropic:claude")
        .await
        .unwrap();
    store.insert_worker(turn, &worker("w1")).await.unwrap();
    store
        .update_worker(
            turn,
            &WorkerId("w1".into()),
            WorkerStatus::Done,
            Some("done"),
            None,
            cached(400, 40, 300, 50),
        )
        .await
        .unwrap();
    store
        .finish_turn(turn, TurnStatus::Done, cached(2000, 100, 1500, 200), None)
        .await
        .unwrap();
    // A single-mode turn is written once, at its end.
    let single = store
        .record_turn(
            &k,
            None,
            Mode::Single,
            "anthropic:claude",
            0,
            baton::store::TurnEnd {
                status: TurnStatus::Done,
                usage: cached(1000, 10, 900, 0),
                error: None,
            },
        )
        .await
        .unwrap();

    let stored = store.load_turn(turn).await.unwrap().unwrap();
    assert_eq!(stored.usage, cached(2000, 100, 1500, 200));
    let workers = store.workers(turn).await.unwrap();
    assert_eq!(workers[0].usage, cached(400, 40, 300, 50));
    let stored = store.load_turn(single).await.unwrap().unwrap();
    assert_eq!(stored.usage, cached(1000, 10, 900, 0));
    assert_eq!(
        store.usage_since(&k, 0).await.unwrap(),
        cached(3400, 150, 2700, 250)
    );
    let tree = store.browse_turn(turn.0).await.unwrap().unwrap();
    assert_eq!(
        (tree.turn.cached_input_tokens, tree.turn.cache_write_tokens),
        (1500, 200)
    );
    assert_eq!(
        (
            tree.workers[0].cached_input_tokens,
            tree.workers[0].cache_write_tokens
        ),
        (300, 50)
    );
}

pub(super) async fn usage_since_adds_turn_and_worker_usage(db: TestDb) {
    let store = db.connect().await;
    let k = key("10");
    let inbound = store
        .record_inbound(&k, &alice(), "do it", Some("x"))
        .await
        .unwrap();
    let turn = store
        .start_turn(&k, inbound, Mode::Orchestrator, "openai:gpt")
        .await
        .unwrap();
    store.insert_worker(turn, &worker("w1")).await.unwrap();
    store.insert_worker(turn, &worker("w2")).await.unwrap();
    store
        .update_worker(
            turn,
            &WorkerId("w1".into()),
            WorkerStatus::Done,
            Some("result one"),
            None,
            usage(100, 10),
        )
        .await
        .unwrap();
    store
        .update_worker(
            turn,
            &WorkerId("w2".into()),
            WorkerStatus::Error,
            None,
            Some("model failed"),
            usage(50, 5),
        )
        .await
        .unwrap();
    store
        .finish_turn(turn, TurnStatus::Done, usage(1000, 200), None)
        .await
        .unwrap();

    // A second turn without workers, and a turn in another conversation.
    let second = store
        .start_turn(&k, None, Mode::Single, "openai:gpt")
        .await
        .unwrap();
    store
        .finish_turn(second, TurnStatus::Cancelled, usage(7, 3), None)
        .await
        .unwrap();
    let other = store
        .start_turn(&key("11"), None, Mode::Single, "openai:gpt")
        .await
        .unwrap();
    store
        .finish_turn(other, TurnStatus::Done, usage(99_999, 99_999), None)
        .await
        .unwrap();

    assert_eq!(
        store.usage_since(&k, 0).await.unwrap(),
        usage(1000 + 100 + 50 + 7, 200 + 10 + 5 + 3)
    );
    assert_eq!(
        store.usage_since(&k, i64::MAX).await.unwrap(),
        Usage::default()
    );
    assert_eq!(
        store.usage_since(&key("9004"), 0).await.unwrap(),
        Usage::default()
    );
    // The whole service, split by model (budgets price each model apart).
    let by_model = store.usage_by_model_since(None, 0).await.unwrap();
    let mut service = Usage::default();
    for part in &by_model {
        service.add(part.usage);
    }
    assert_eq!(service, usage(1157 + 99_999, 218 + 99_999), "{by_model:?}");
    assert!(
        by_model.iter().any(|p| p.model == "openai:gpt"),
        "{by_model:?}"
    );

    let stored = store.load_turn(turn).await.unwrap().unwrap();
    assert_eq!(stored.status, TurnStatus::Done);
    assert_eq!(stored.inbound, inbound);
    assert_eq!(stored.mode, Mode::Orchestrator);
    assert_eq!(stored.usage, usage(1000, 200));
    assert!(stored.finished_at.is_some());

    let workers = store.workers(turn).await.unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0].worker_id, WorkerId("w1".into()));
    assert_eq!(workers[0].status, WorkerStatus::Done);
    assert_eq!(workers[0].result.as_deref(), Some("result one"));
    assert_eq!(workers[0].effort, Effort::Off);
    assert_eq!(workers[1].status, WorkerStatus::Error);
    assert_eq!(workers[1].error.as_deref(), Some("model failed"));
    assert_eq!(workers[1].usage, usage(50, 5));
}

pub(super) async fn updating_an_unknown_turn_or_worker_is_not_found(db: TestDb) {
    let store = db.connect().await;
    let k = key("12");
    let turn = store.start_turn(&k, None, Mode::Single, "m").await.unwrap();
    let missing = store
        .update_worker(
            turn,
            &WorkerId("w9".into()),
            WorkerStatus::Done,
            None,
            None,
            Usage::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
    assert!(!missing.is_transient());
    let bogus = baton::store::TurnId(turn.0 + 1000);
    let missing = store
        .finish_turn(bogus, TurnStatus::Done, Usage::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
    // A worker for a turn that does not exist breaks a foreign key.
    let broken = store.insert_worker(bogus, &worker("w1")).await.unwrap_err();
    assert!(matches!(broken, StoreError::Database(_)), "{broken:?}");
}

pub(super) async fn abandoned_turns_are_failed_on_start(db: TestDb) {
    let k = key("13");

    let store = db.connect().await;
    let finished = store.start_turn(&k, None, Mode::Single, "m").await.unwrap();
    store
        .finish_turn(finished, TurnStatus::Done, usage(1, 1), None)
        .await
        .unwrap();
    let left_running = store
        .start_turn(&k, None, Mode::Orchestrator, "m")
        .await
        .unwrap();
    store
        .insert_worker(left_running, &worker("w1"))
        .await
        .unwrap();
    store.close().await; // the "crash"

    let store = db.connect().await;
    assert_eq!(store.fail_abandoned_turns().await.unwrap(), 1);
    assert_eq!(store.fail_abandoned_turns().await.unwrap(), 0);

    let turn = store.load_turn(left_running).await.unwrap().unwrap();
    assert_eq!(turn.status, TurnStatus::Failed);
    assert!(turn.error.unwrap().contains("abandoned"));
    assert!(turn.finished_at.is_some());
    let workers = store.workers(left_running).await.unwrap();
    assert_eq!(workers[0].status, WorkerStatus::Cancelled);
    let done = store.load_turn(finished).await.unwrap().unwrap();
    assert_eq!(done.status, TurnStatus::Done);
    assert_eq!(done.error, None);
    store.close().await;
}
