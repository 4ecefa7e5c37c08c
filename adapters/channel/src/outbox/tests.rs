//! The outbox machinery against a fake platform that records what it was
//! asked to send and fails as scripted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::reply::CancelSource;

#[derive(Default)]
struct Fake {
    sent: Mutex<Vec<Piece>>,
    /// The answers to the next sends, failures first.
    failures: Mutex<VecDeque<SendFailure>>,
}

/// The fake behind an outbox, to look at what it sent.
#[derive(Clone, Default)]
struct Shared(Arc<Fake>);

#[async_trait::async_trait]
impl Transport for Shared {
    const NAME: &'static str = "Fake";
    type Chat = i64;
    type Target = u64;
    type Typing = ();
    type State = ();

    fn rules(&self, _chat: i64) -> Rules {
        Rules {
            min_interval: Duration::from_secs(1),
            per_minute: None,
            verbose_batch: Duration::from_secs(1),
            verbose_line_limit: 10,
            media: MediaOut {
                code_as_file_lines: 0,
                max_pieces: 2,
            },
            file_text_limit: 100,
            typing_timeout: Duration::from_secs(1),
        }
    }

    fn split(&self, markdown: &str) -> Vec<String> {
        markdown.split("||").map(str::to_owned).collect()
    }

    fn verbose_pieces(&self, label: &str, lines: &[String]) -> Vec<String> {
        vec![format!("[{label}] {}", lines.join(" / "))]
    }

    async fn send(
        &self,
        _state: &mut (),
        _chat: i64,
        _target: &u64,
        piece: &Piece,
    ) -> Result<(), SendFailure> {
        let failure = self.0.failures.lock().unwrap().pop_front();
        match failure {
            Some(failure) => Err(failure),
            None => {
                self.0.sent.lock().unwrap().push(piece.clone());
                Ok(())
            }
        }
    }

    async fn typing(&self, _chat: i64, _typing: &()) -> Result<(), SendFailure> {
        Ok(())
    }
}

impl Shared {
    fn texts(&self) -> Vec<String> {
        self.0
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.text.clone())
            .collect()
    }

    fn fail_next(&self, failures: impl IntoIterator<Item = SendFailure>) {
        self.0.failures.lock().unwrap().extend(failures);
    }
}

fn verbose(label: &str, line: &str, ticket: Ticket) -> Outgoing<Shared> {
    Outgoing::Verbose {
        target: 7,
        label: label.into(),
        line: line.into(),
        ticket,
    }
}

#[tokio::test(start_paused = true)]
async fn worker_output_given_before_a_reply_is_sent_before_it_and_later_output_after() {
    let fake = Shared::default();
    let outboxes = Outboxes::new(fake.clone());
    assert!(outboxes.offer(1, verbose("a", "started", Ticket::default())));
    assert!(outboxes.offer(1, verbose("b", "started", Ticket::default())));
    assert!(outboxes.offer(1, verbose("a", "done", Ticket::default())));
    outboxes
        .deliver(1, 7, "the answer", Ticket::default())
        .await
        .unwrap();
    assert!(outboxes.offer(1, verbose("a", "late", Ticket::default())));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        fake.texts(),
        [
            "[a] started / done",
            "[b] started",
            "the answer",
            "[a] late"
        ]
    );
    outboxes.close().await;
}

#[tokio::test(start_paused = true)]
async fn verbose_lines_are_cut_with_an_ellipsis_and_pieces_are_paced() {
    let fake = Shared::default();
    let outboxes = Outboxes::new(fake.clone());
    let started = tokio::time::Instant::now();
    outboxes.offer(
        1,
        verbose("a", "a very long line indeed", Ticket::default()),
    );
    outboxes
        .deliver(1, 7, "one||two", Ticket::default())
        .await
        .unwrap();
    assert_eq!(fake.texts(), ["[a] a very lo…", "one", "two"]);
    // Three messages, one a second.
    assert!(started.elapsed() >= Duration::from_secs(2));
    outboxes.close().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_outbox_is_reaped_and_the_next_item_starts_a_new_one() {
    let fake = Shared::default();
    let outboxes = Outboxes::new(fake.clone());
    outboxes
        .deliver(1, 7, "first", Ticket::default())
        .await
        .unwrap();
    assert_eq!(outboxes.open(), 1);
    tokio::time::sleep(IDLE * 2 + Duration::from_secs(1)).await;
    assert_eq!(outboxes.open(), 0, "the idle outbox is forgotten");
    outboxes
        .deliver(1, 7, "second", Ticket::default())
        .await
        .unwrap();
    assert_eq!(fake.texts(), ["first", "second"]);
    outboxes.close().await;
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_sent_plain_or_given_up_as_their_kind_says() {
    let fake = Shared::default();
    let outboxes = Outboxes::new(fake.clone());
    fake.fail_next([
        SendFailure::RetryAfter(Duration::from_secs(3)),
        SendFailure::Transient("timeout".into()),
        SendFailure::Formatting("bad tag".into()),
    ]);
    outboxes
        .deliver(1, 7, "hello", Ticket::default())
        .await
        .unwrap();
    let sent = fake.0.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].formatted, "sent again without formatting");

    fake.fail_next([SendFailure::Failed(ChannelError::Permanent("gone".into()))]);
    let error = outboxes.deliver(1, 7, "lost", Ticket::default()).await;
    assert_eq!(error, Err(ChannelError::Permanent("gone".into())));

    fake.fail_next((0..MAX_ATTEMPTS).map(|_| SendFailure::Transient("down".into())));
    let error = outboxes.deliver(1, 7, "lost", Ticket::default()).await;
    assert!(error.is_err_and(|e| e.is_transient()));
    outboxes.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_reply_whose_file_is_refused_goes_as_text_pieces() {
    let fake = Shared::default();
    let outboxes = Outboxes::new(fake.clone());
    fake.fail_next([SendFailure::Failed(ChannelError::Permanent(
        "no attachments here".into(),
    ))]);
    // Three pieces, more than max_pieces: a file first.
    outboxes
        .deliver(1, 7, "a||b||c", Ticket::default())
        .await
        .unwrap();
    assert_eq!(fake.texts(), ["a", "b", "c"]);
    outboxes.close().await;
}

#[tokio::test(start_paused = true)]
async fn cancelled_output_is_dropped_and_its_poster_hears_ok() {
    let fake = Shared::default();
    let outboxes = Arc::new(Outboxes::new(fake.clone()));
    let source = CancelSource::new();
    let cancel = source.handle();
    outboxes.offer(1, verbose("a", "started", source.ticket()));
    // The first piece goes at once; the next waits a second.
    let posting = tokio::spawn({
        let outboxes = outboxes.clone();
        let ticket = source.ticket();
        async move { outboxes.deliver(1, 7, "x||y", ticket).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    assert_eq!(posting.await.unwrap(), Ok(()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Later output goes as usual.
    outboxes
        .deliver(1, 7, "after", source.ticket())
        .await
        .unwrap();
    assert_eq!(fake.texts(), ["[a] started", "x", "after"]);
    outboxes.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_worker_output_is_held_back_only_up_to_a_bound() {
    let fake = Shared::default();
    let outboxes = Outboxes::new(fake.clone());
    for n in 0..2000 {
        let item = verbose(&format!("w{}", n % 300), "x", Ticket::default());
        outboxes.send(1, item).await.unwrap();
    }
    outboxes
        .deliver(1, 7, "the answer", Ticket::default())
        .await
        .unwrap();
    let texts = fake.texts();
    assert_eq!(texts.last().map(String::as_str), Some("the answer"));
    let lines: usize = texts.iter().map(|t| t.matches('x').count()).sum();
    assert!((512..2000).contains(&lines), "{lines} lines shown");
    outboxes.close().await;
}

#[tokio::test]
async fn after_close_nothing_is_taken() {
    let outboxes = Outboxes::new(Shared::default());
    outboxes.close().await;
    assert!(!outboxes.offer(1, Outgoing::Typing(())));
    let error = outboxes.deliver(1, 7, "late", Ticket::default()).await;
    assert!(error.is_err_and(|e| !e.is_transient()));
}

#[test]
fn truncate_marks_the_cut() {
    assert_eq!(truncate("hello", 10), "hello");
    assert_eq!(truncate("hello world", 6), "hello…");
}
