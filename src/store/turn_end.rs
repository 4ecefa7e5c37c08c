//! Ending a turn in one transaction: its row (written whole for a
//! single-mode turn, updated for a turn started earlier) and, when it
//! answered, its reply in the transcript and the outbox. A stop between
//! the two could otherwise leave a message counted as answered whose
//! answer was never stored, and so never sent.

use baton_channel::ConversationKey;
use sqlx::Connection;

use super::outbox::insert_reply;
use super::turns::{WholeTurn, insert_whole_turn, update_turn_end};
use super::{MessageId, OutboxId, Store, StoreError, StoredReply, TurnEnd, TurnId, now_ms};
use crate::domain::Mode;

/// Which row a turn's end goes to.
#[derive(Debug, Clone, Copy)]
pub enum EndingTurn<'a> {
    /// The row written when the turn started.
    Started(TurnId),
    /// None yet: the turn is written whole (single mode).
    Whole {
        inbound: Option<MessageId>,
        mode: Mode,
        model: &'a str,
        started_at: i64,
    },
}

/// The lease a write is made under (a cluster): the write happens only
/// while `owner` still holds `name` at `epoch`, unexpired.
#[derive(Debug, Clone)]
pub struct UnderLease {
    /// The lease's name.
    pub name: String,
    /// This instance.
    pub owner: String,
    /// The epoch of the take.
    pub epoch: i64,
}

/// A reply to store with its turn's end.
#[derive(Debug, Clone, Copy)]
pub struct ReplyToStore<'a> {
    /// The reply.
    pub text: &'a str,
    /// The platform id of the message it answers.
    pub reply_to: Option<&'a str>,
}

impl Store {
    /// Records how a turn ended and, with `reply`, stores its reply and
    /// queues it in the outbox, all in one transaction. Returns the turn's
    /// id and the stored reply. With `lease` (Postgres), the transaction
    /// first locks the lease row and writes nothing, failing with
    /// [`StoreError::LeaseLost`], unless the lease is still held as named;
    /// an instance taking the conversation over waits for the commit.
    pub async fn end_turn(
        &self,
        key: &ConversationKey,
        turn: EndingTurn<'_>,
        ended: TurnEnd<'_>,
        reply: Option<ReplyToStore<'_>>,
        lease: Option<UnderLease>,
    ) -> Result<(TurnId, Option<StoredReply>), StoreError> {
        let now = now_ms();
        let (status, usage) = (ended.status, ended.usage);
        let error = ended.error.map(str::to_owned);
        let reply = reply.map(|reply| (reply.text.to_owned(), reply.reply_to.map(str::to_owned)));
        let turn = match turn {
            EndingTurn::Started(id) => Ok(id),
            EndingTurn::Whole {
                inbound,
                mode,
                model,
                started_at,
            } => Err((inbound, mode, model.to_owned(), started_at)),
        };
        let ended = self
            .run_in_conversation(key, now, move |conn, key| {
                Box::pin(async move {
                    let mut tx = conn.begin().await?;
                    if let Some(lease) = lease {
                        let held: Vec<i64> = sqlx::query_scalar(
                            "SELECT epoch FROM leases \
                             WHERE name = $1 AND owner = $2 AND epoch = $3 AND expires_at >= $4 \
                             FOR SHARE",
                        )
                        .bind(lease.name)
                        .bind(lease.owner)
                        .bind(lease.epoch)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await?;
                        if held.is_empty() {
                            return Ok(Ended::LeaseLost);
                        }
                    }
                    let id = match turn {
                        Ok(id) => {
                            if update_turn_end(&mut tx, id, status, usage, error.as_deref()).await?
                                == 0
                            {
                                return Ok(Ended::NoSuchTurn);
                            }
                            id.0
                        }
                        Err((inbound, mode, model, started_at)) => {
                            let whole = WholeTurn {
                                key: &key,
                                inbound,
                                mode,
                                model: &model,
                                started_at,
                            };
                            insert_whole_turn(&mut tx, &whole, status, usage, error.as_deref(), now)
                                .await?
                        }
                    };
                    let stored = match reply {
                        Some((text, reply_to)) => Some(
                            insert_reply(
                                &mut tx,
                                &key,
                                TurnId(id),
                                &text,
                                reply_to.as_deref(),
                                now,
                            )
                            .await?,
                        ),
                        None => None,
                    };
                    tx.commit().await?;
                    Ok(Ended::Written(id, stored))
                })
            })
            .await?;
        let (id, stored) = match ended {
            Ended::Written(id, stored) => (id, stored),
            Ended::NoSuchTurn => {
                return Err(StoreError::NotFound("the turn that ended".to_owned()));
            }
            Ended::LeaseLost => return Err(StoreError::LeaseLost),
        };
        Ok((
            TurnId(id),
            stored.map(|(message, outbox)| StoredReply {
                message: MessageId(message),
                outbox: OutboxId(outbox),
            }),
        ))
    }
}

/// What the transaction of [`Store::end_turn`] did.
enum Ended {
    Written(i64, Option<(i64, i64)>),
    NoSuchTurn,
    LeaseLost,
}
