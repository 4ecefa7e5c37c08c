//! A full disk, for real: the SQLite store on a tiny tmpfs that the test
//! mounts (the test is root on CI; where mounting is not allowed it says
//! "skipped" and passes). A write that did not reach the disk must never
//! be reported as done.

use std::path::{Path, PathBuf};
use std::process::Command;

use baton::store::{EventKind, Store};
use baton_channel::{Author, ConversationKey};

use crate::support::fake_llm::{FakeLlm, FakeReply, Wire};
use crate::support::fake_telegram::FakeTelegram;
use crate::support::service::App;
use crate::support::telegram_config::telegram_config;

/// A tmpfs of `size` mounted on a fresh folder; unmounted when dropped.
pub struct TinyDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TinyDisk {
    /// Mounts one, or `None` (with a line saying why) where that is not allowed.
    pub fn mount(size: &str) -> Option<TinyDisk> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(TinyDisk { path, _dir: dir }),
            _ => {
                eprintln!("skipped: cannot mount a tmpfs here");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills what is left with a file (so the next write fails).
    pub fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", self.path.join("filler").display()))
            .output();
    }

    /// Frees the space again.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.path.join("filler"));
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

fn ada() -> Author {
    Author {
        id: "42".into(),
        name: "Ada".into(),
    }
}

#[tokio::test]
async fn a_message_written_to_a_full_disk_is_an_error_not_an_id() {
    let Some(disk) = TinyDisk::mount("2m") else {
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("baton.db").display());
    let store = Store::connect(&url).await.unwrap();
    let key = ConversationKey::telegram(42, None);
    store
        .record_inbound(&key, &ada(), "before", Some("m1"))
        .await
        .unwrap();
    disk.fill();
    let big = "x".repeat(200_000);
    let mut reported = Vec::new();
    for n in 2..6 {
        let id = format!("m{n}");
        let result = store.record_inbound(&key, &ada(), &big, Some(&id)).await;
        reported.push((id, result));
    }
    // The event log cannot be written either: it counts what it lost.
    assert_eq!(store.events_lost(), 0);
    store
        .record_event(&key, None, EventKind::Message, "user", &big)
        .await
        .unwrap();
    store.flush_events().await;
    assert_eq!(store.events_lost(), 1, "the failed event write is counted");
    disk.free();
    let history = store.history(&key, 100).await.unwrap();
    for (id, result) in &reported {
        if let Ok(Some(row)) = result {
            assert!(
                history.iter().any(|m| m.id == *row),
                "message {id} was reported stored as row {row:?}, but it is not in the database: {history:?}"
            );
        }
    }
    assert!(
        reported
            .iter()
            .any(|(_, result)| result.as_ref().is_err_and(|e| e.is_transient())),
        "a full disk reported no (transient) error: {reported:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn a_message_that_cannot_be_stored_is_not_confirmed_and_is_answered_once_the_disk_has_room() {
    const ADA: u64 = 42;
    let Some(disk) = TinyDisk::mount("8m") else {
        return;
    };
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        FakeReply::Text(format!(
            "echo {}",
            request.last_user_text().unwrap_or_default()
        ))
    })
    .await;
    let db = disk.path().join("baton.db");
    let mut config = telegram_config(&telegram, ADA, &llm, Wire::OpenAi, &db, "");
    // The echo of the long message stays text (not answer.md), as asserted.
    config.media.max_pieces = 0;
    let app = App::spawn(config);
    telegram.dm(ADA, "before");
    telegram.wait_for_sent(ADA as i64, 1).await;

    disk.fill();
    // Larger than the room the log file keeps between checkpoints.
    let (update, message) = telegram.dm(ADA, &format!("during {}", "x".repeat(1_000_000)));
    telegram
        .wait_for("the notice", |calls| {
            calls
                .iter()
                .any(|c| c.text().starts_with("I can't store messages right now"))
        })
        .await;
    assert!(
        telegram.confirmed_offset() <= i64::from(update),
        "an update that is not stored is not confirmed"
    );
    assert!(
        !telegram
            .sent_to(ADA as i64)
            .iter()
            .any(|c| c.text().starts_with("echo Ada: during")),
        "not answered while it is not stored"
    );

    disk.free();
    telegram
        .wait_for("the answer", |calls| {
            calls
                .iter()
                .any(|c| c.text().starts_with("echo Ada: during"))
        })
        .await;
    telegram.wait_confirmed(update).await;
    app.stop().await;
    let sent = telegram.sent_to(ADA as i64);
    let answer = sent
        .iter()
        .find(|c| c.text().starts_with("echo Ada: during"))
        .unwrap();
    assert_eq!(answer.reply_to(), Some(message));
    let notices = sent
        .iter()
        .filter(|c| c.text().starts_with("I can't store"))
        .count();
    assert_eq!(notices, 1, "told once, not on every retry");
}
