//! Projects: a project and its boss's turn across a restart, and its
//! outcome posted once.

use baton::store::{NewProject, ProjectStatus, TurnStatus};
use baton_channel::WorkerStatus;

use super::{TestDb, key, usage, worker};

pub(super) async fn a_project_and_its_turn_survive_a_restart_and_its_outcome_is_posted_once(
    db: TestDb,
) {
    let k = key("77");
    let store = db.connect().await;
    let project = store
        .create_project(
            &k,
            NewProject {
                goal: "map the tides",
                plan: Some("north first"),
                model: "p:big",
                reply_to: Some("m9"),
            },
        )
        .await
        .unwrap();
    assert_eq!(project.status, ProjectStatus::Running);
    assert_eq!(project.transcript, "[]");
    assert_eq!(project.reply_to.as_deref(), Some("m9"));
    let turn = store.load_turn(project.turn).await.unwrap().unwrap();
    assert_eq!((turn.status, turn.inbound), (TurnStatus::Running, None));
    store
        .insert_worker(project.turn, &worker("w1"))
        .await
        .unwrap();
    store
        .save_project_transcript(
            project.id,
            r#"[{"role":"user","text":"go"}]"#,
            3,
            usage(30, 7),
        )
        .await
        .unwrap();
    store.close().await; // the "crash"

    let store = db.connect().await;
    // The project's turn stays running; its running worker is interrupted.
    assert_eq!(store.fail_abandoned_turns().await.unwrap(), 0);
    let turn = store.load_turn(project.turn).await.unwrap().unwrap();
    assert_eq!(turn.status, TurnStatus::Running);
    assert_eq!(turn.usage, usage(30, 7));
    let workers = store.workers(project.turn).await.unwrap();
    assert_eq!(workers[0].status, WorkerStatus::Cancelled);
    let resumed = store.projects_to_resume().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].rounds, 3);
    assert!(resumed[0].transcript.contains("go"));

    store
        .complete_project(project.id, "Tides mapped.")
        .await
        .unwrap();
    let done = store.load_project(project.id).await.unwrap().unwrap();
    assert_eq!(done.status, ProjectStatus::Completed);
    assert_eq!(done.result.as_deref(), Some("Tides mapped."));
    assert!(done.finished_at.is_some());
    let turn = store.load_turn(project.turn).await.unwrap().unwrap();
    assert_eq!(turn.status, TurnStatus::Done);
    // Completed but not posted: a restart posts it; once posted, never again.
    assert_eq!(store.projects_to_resume().await.unwrap().len(), 1);
    store.mark_project_posted(project.id).await.unwrap();
    assert!(store.projects_to_resume().await.unwrap().is_empty());
    assert_eq!(store.projects_of(&k, 10).await.unwrap().len(), 1);
    assert!(store.projects_of(&key("78"), 10).await.unwrap().is_empty());
    store.close().await;
}
