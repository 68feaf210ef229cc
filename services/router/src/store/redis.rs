//! The production store: Redis (AOF on, `noeviction`) for who may write and
//! the hot state, the history store (PostgreSQL) for the messages. Atomic
//! steps in Redis are Lua scripts under `scripts/`, each on the keys of one
//! hash slot, so the same code runs on one Redis and on a Redis Cluster;
//! keys come from `switchboard_shared::keys`. Every message is stored by the
//! history store first and then recorded in Redis (`redis/logged.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use parking_lot::RwLock;
use redis::{Cmd, Script, Value};
use switchboard_proto::pb;
use switchboard_shared::ids::{
    ConversationId, DeviceId, GroupId, MessageId, SessionId, TopicId, UserId, random_token,
};
use switchboard_shared::keys::{self, PeerFact};
use switchboard_shared::redis_pool::{Connection, Pool};

mod logged;

use super::history::{HistoryWriter, PgHistory};
use super::{
    Amendment, AppendBatch, AppendOutcome, AuditRecord, BindOutcome, Binding, ContactEntry,
    DirectStates, GroupDeleted, GroupMembership, GroupRecord, LoginFailures, MembershipChange,
    NewMessage, PushSubscription, Reacted, SessionRecord, Store, StoreError, StoreResult,
    StoredReaction, ThreadState, TimelineRecord, TopicRecord, UserRecord, amended,
    decode_idempotency, decode_message, decode_message_ids, decode_timeline_entry, history_name,
    parse_history, parse_policy, parse_role, policy_name, role_name, same_targets,
};
use crate::remembered::Remembered;
use crate::search::{SearchPosition, SearchScope};

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("scripts/prelude.lua"),
            "\n",
            include_str!(concat!("scripts/", $file))
        ))
    };
}

struct Scripts {
    record: Script,
    membership: Script,
    create_group: Script,
    create_user: Script,
    outbox_claim: Script,
    bind: Script,
    unbind: Script,
    set_binding: Script,
}

pub struct RedisStore {
    pool: Pool,
    scripts: Scripts,
    /// The epoch appends are made under; refreshed when a write finds another.
    epoch: RwLock<String>,
    ttls: RecordTtls,
    /// The outbox shard the next claim starts at.
    outbox_cursor: AtomicU32,
    /// Outbox shards: `keys::OUTBOX_SHARDS` on a cluster, one on a single
    /// Redis (nothing to spread there, and one key batches confirmations).
    outbox_shards: u32,
    /// Conversations this router put in a user's list lately: the list is a
    /// set (`list_conversations` orders by last message, not by score), so
    /// a conversation already in it is not written again on every message.
    /// Forgotten when Redis's epoch changes.
    listed: Remembered<(UserId, ConversationId)>,
    /// Where the messages live (docs/STORAGE.md).
    history: logged::History,
}

/// How long Redis keeps retry records, in seconds (`RouterConfig`'s
/// `send_record_ttl` and `idempotency_ttl`).
#[derive(Debug, Clone, Copy)]
pub struct RecordTtls {
    /// A direct or group send's: the history store answers its retries
    /// after this, so it only bounds the check for an id reused elsewhere.
    pub send_secs: u64,
    /// A topic send's: its timeline entry is answered from it alone.
    pub topic_secs: u64,
}

/// How long a conversation this router put in a user's list is trusted to
/// be there. Redis never removes one; what can is a failover that loses the
/// write (asynchronous replication), which the next message after this long
/// repairs.
const LISTED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

fn cmd(name: &str) -> Cmd {
    redis::cmd(name)
}

/// `<conversation>#<seq>`, as the outbox, retry records and timelines name a message.
fn message_id(conv: &ConversationId, seq: u64) -> String {
    format!("{conv}#{seq}")
}

/// A retry record: ids|sent at|timeline seq|memo (`decode_idempotency`).
fn record_of(ids: &str, now_ms: i64, timeline_seq: u64, memo: &str) -> String {
    format!("{ids}|{now_ms}|{timeline_seq}|{memo}")
}

/// Where a send's retry record lives: with the topic for a topic send (the
/// script that writes its timeline entry writes the record), else with the
/// sender. (The history store keeps the retry key with each message too and
/// answers a retry whose record is gone; the record is what catches one
/// client message id reused for another conversation, which the history
/// store, keyed by conversation, cannot see.)
fn retry_record_key(batch: &AppendBatch) -> Option<String> {
    let (sender, id) = batch.idempotency.as_ref()?;
    Some(match &batch.timeline {
        Some(timeline) => keys::topic_idempotency(&timeline.topic, sender, id.as_str()),
        None => keys::idempotency(sender, id.as_str()),
    })
}

/// What a script answered: a status word and one value.
fn status(reply: &[String]) -> StoreResult<(&str, &str)> {
    match reply {
        [status, value, ..] => Ok((status.as_str(), value.as_str())),
        other => Err(StoreError::Corrupt(format!("script reply {other:?}"))),
    }
}

/// The outcome a retry record describes.
fn outcome(record: &str, duplicate: bool, epoch: String) -> StoreResult<AppendOutcome> {
    let record = decode_idempotency(record)?;
    Ok(AppendOutcome {
        duplicate,
        appended: record.appended,
        epoch,
        timeline_seq: record.timeline_seq,
        memo: record.memo,
    })
}

/// The answer to a send whose retry record was already there: the first
/// attempt's, if this one went to the same conversations.
fn repeated(batch: &AppendBatch, record: &str, epoch: String) -> StoreResult<AppendOutcome> {
    let prior = outcome(record, true, epoch)?;
    if !same_targets(batch, &prior.appended) {
        return Err(StoreError::IdempotencyConflict);
    }
    Ok(prior)
}

/// What a membership script did.
enum Applied {
    /// Applied; the value is what the script answered with it (the
    /// timeline seq of an unbinding).
    Done(String),
    /// The membership version was not the one expected: it is this one.
    Stale(u64),
}

fn applied(reply: &[String], script: &str) -> StoreResult<Applied> {
    match status(reply)? {
        ("OK", value) => Ok(Applied::Done(value.to_owned())),
        ("PRECONDITION", _) => Err(StoreError::Precondition),
        ("STALE", version) => version
            .parse()
            .map(Applied::Stale)
            .map_err(|_| StoreError::Corrupt(format!("{script} said STALE {version}"))),
        (other, _) => Err(StoreError::Corrupt(format!("{script} said {other}"))),
    }
}

fn seq_of_stream_id(id: &str) -> StoreResult<u64> {
    id.split_once('-')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("stream id {id:?}")))
}

/// A cursor as a sorted set keeps it: its score (seqs are far below 2^53).
fn cursor_of(value: &Value) -> StoreResult<u64> {
    let score: Option<f64> =
        redis::from_redis_value_ref(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(score.map_or(0, |s| s as u64))
}

/// `ZADD key at m1 at m2 …`: each member scored by when it was written.
fn scored_at(key: String, at_ms: i64, members: &[String]) -> Cmd {
    let mut zadd = cmd("ZADD");
    zadd.arg(key);
    for member in members {
        zadd.arg(at_ms).arg(member);
    }
    zadd
}

/// Moves `user`'s cursor in a cursor set forward to `seq`, never back
/// (`ZADD GT`: a late or repeated write changes nothing); answers 1 if it moved.
fn cursor_forward(key: String, user: &UserId, seq: u64) -> Cmd {
    let mut zadd = cmd("ZADD");
    zadd.arg(key)
        .arg("GT")
        .arg("CH")
        .arg(seq)
        .arg(user.as_str());
    zadd
}

impl RedisStore {
    /// Redis did not answer: the error names which Redis.
    fn unavailable(&self, err: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("{}: {err}", self.pool.name()))
    }

    /// The store over Redis and the history store, once Redis answers.
    pub async fn new(
        pool: Pool,
        ttls: RecordTtls,
        log: Arc<PgHistory>,
        writer: HistoryWriter,
    ) -> StoreResult<Self> {
        let outbox_shards = if pool.is_cluster() {
            keys::OUTBOX_SHARDS
        } else {
            1
        };
        let store = Self {
            pool,
            scripts: Scripts {
                record: script!("record.lua"),
                membership: script!("membership.lua"),
                create_group: script!("create_group.lua"),
                create_user: script!("create_user.lua"),
                outbox_claim: script!("outbox_claim.lua"),
                bind: script!("bind.lua"),
                unbind: script!("unbind.lua"),
                set_binding: script!("set_binding.lua"),
            },
            epoch: RwLock::new(String::new()),
            ttls,
            outbox_cursor: AtomicU32::new(0),
            outbox_shards,
            listed: Remembered::new(LISTED_FOR),
            history: logged::History { log, writer },
        };
        store.epoch().await?;
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Connection> {
        Ok(self.pool.get())
    }

    /// Commands that may span slots, in as few round trips as the
    /// deployment allows (`Pool::query_all`); replies in order.
    async fn query_all(&self, commands: Vec<Cmd>) -> StoreResult<Vec<Value>> {
        self.pool
            .query_all(commands)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn hexists(&self, key: &str, field: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        redis::cmd("HEXISTS")
            .arg(key)
            .arg(field)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    fn current_epoch(&self) -> String {
        self.epoch.read().clone()
    }

    /// The epoch clients number their cursors under: the history's (which
    /// Redis losing its data does not change). Redis's own epoch tells this
    /// process to forget what it learnt from a Redis that lost its data.
    fn visible_epoch(&self) -> String {
        self.history.log.epoch().to_owned()
    }

    /// Records messages the history store stored, outside any one slot:
    /// the reader's cursors move forward (`ZADD GT`), the conversation
    /// lists are touched, and each message enters its conversation's
    /// outbox shard until a router confirms it reached the bus. Each write
    /// is idempotent, so a retry or a repair may make it again; this runs
    /// before the step that commits (a retry record, a membership change),
    /// so what that step says is done has all of this done. `then`, when
    /// given, is that step as one command: it runs after the rest (in the
    /// same pipeline on a single Redis) and its reply is answered. Each
    /// outbox `ZADD` also names the epoch this process knows
    /// ([`keys::outbox_epoch_mark`]): if that mark was not there, Redis
    /// lost its data, and the caller is told to start over (what was just
    /// written is harmless: derived from the log, which is complete; a
    /// retry record written with it names seqs the log assigned). A mark is
    /// missing only where nothing was written under this epoch since the
    /// loss, and each send that adds a message writes it, so the first such
    /// send finds out; a send all of whose messages were already in the
    /// outbox was recorded after the loss by a router that knew of it.
    async fn record_items(
        &self,
        items: &[(&NewMessage, u64)],
        now_ms: i64,
        then: Option<Cmd>,
    ) -> StoreResult<Option<Value>> {
        let mut commands = Vec::new();
        let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // What this write lists, remembered once it is done.
        let mut listed: Vec<(UserId, ConversationId)> = Vec::new();
        let mut outboxes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (item, seq) in items {
            let conv = &item.conversation;
            if let Some(reader) = &item.read_by {
                commands.push(cursor_forward(keys::conversation_reads(conv), reader, *seq));
                // The sent cursor is read for a topic thread's contact only
                // (the owner's "replied"), so only their sends pay for it:
                // a broadcast moves none.
                if matches!(conv, ConversationId::TopicThread { contact, .. } if contact == reader)
                {
                    commands.push(cursor_forward(keys::conversation_sent(conv), reader, *seq));
                }
            }
            for user in &item.index_for {
                let entry = (user.clone(), conv.clone());
                if !self.listed.holds(&entry) {
                    lists
                        .entry(keys::user_conversations(user))
                        .or_default()
                        .push(conv.to_string());
                    listed.push(entry);
                }
            }
            outboxes
                .entry(keys::outbox_of(conv, self.outbox_shards))
                .or_default()
                .push(message_id(conv, *seq));
        }
        commands.extend(
            lists
                .into_iter()
                .map(|(key, members)| scored_at(key, now_ms, &members)),
        );
        let mark = keys::outbox_epoch_mark(&self.current_epoch());
        // Per outbox command: where it is, and how many messages it adds.
        let mut marked = Vec::with_capacity(outboxes.len());
        for (key, members) in outboxes {
            marked.push((commands.len(), members.len()));
            let mut zadd = scored_at(key, now_ms, &members);
            zadd.arg("+inf").arg(&mark);
            commands.push(zadd);
        }
        let answer_last = then.is_some();
        let mut replies = match then {
            None => self.query_all(commands).await?,
            Some(last) => self
                .pool
                .query_all_then(commands, last)
                .await
                .map_err(|e| self.unavailable(e))?,
        };
        for (at, messages) in marked {
            let added: usize = replies
                .get(at)
                .map(redis::from_redis_value_ref)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .unwrap_or(0);
            if added > messages {
                tracing::warn!(%mark, "Redis lost its data; refreshing the epoch");
                self.listed.clear();
                self.epoch().await?;
                return Err(StoreError::EpochChanged);
            }
        }
        for entry in listed {
            self.listed.remember(entry);
        }
        Ok(if answer_last { replies.pop() } else { None })
    }

    /// Records what the history store stored, one seq per item, sent at
    /// `sent_at_ms` (the first attempt's, for a retry the log answered),
    /// and answers the send: its retry record last, so a record found
    /// means the rest is done. A direct or group send's record is one
    /// `SET NX GET` after the rest; a topic send's is written with its
    /// timeline entry by one script, in the topic's slot.
    async fn run_append(
        &self,
        batch: &AppendBatch,
        seqs: &[u64],
        sent_at_ms: i64,
    ) -> StoreResult<AppendOutcome> {
        let items: Vec<(&NewMessage, u64)> = batch.items.iter().zip(seqs.iter().copied()).collect();
        let ids = items
            .iter()
            .map(|(item, seq)| message_id(&item.conversation, *seq))
            .collect::<Vec<_>>()
            .join(" ");
        let record = record_of(&ids, sent_at_ms, 0, &batch.memo);
        let record_key = retry_record_key(batch);
        let epoch = self.visible_epoch();
        let Some(timeline) = &batch.timeline else {
            let Some(key) = record_key else {
                self.record_items(&items, batch.now_ms, None).await?;
                return outcome(&record, false, epoch);
            };
            let mut set = cmd("SET");
            set.arg(&key)
                .arg(&record)
                .arg("NX")
                .arg("GET")
                .arg("EX")
                .arg(self.ttls.send_secs);
            let prior = match self.record_items(&items, batch.now_ms, Some(set)).await {
                Err(StoreError::EpochChanged) => {
                    // The record may have gone to a Redis that lost its
                    // data, without the list entries this router thought
                    // were there: removed, so the retry writes it all.
                    let mut del = cmd("DEL");
                    del.arg(&key);
                    self.query_all(vec![del]).await?;
                    return Err(StoreError::EpochChanged);
                }
                other => other?,
            };
            let prior: Option<String> = prior
                .map(redis::from_redis_value)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .flatten();
            return match prior {
                None => outcome(&record, false, epoch),
                Some(prior) => repeated(batch, &prior, epoch),
            };
        };
        self.record_items(&items, batch.now_ms, None).await?;
        let mut inv = self.scripts.record.prepare_invoke();
        // Unused without a record, but KEYS[1] must name a key of the topic's slot.
        inv.key(
            record_key
                .clone()
                .unwrap_or_else(|| keys::topic_timeline_seq(&timeline.topic)),
        )
        .key(keys::topic_timeline_seq(&timeline.topic))
        .key(keys::topic_timeline(&timeline.topic))
        .key(keys::topic_broadcasts(&timeline.topic));
        inv.arg(sent_at_ms)
            .arg(self.ttls.topic_secs)
            .arg(if record_key.is_some() { "1" } else { "0" })
            .arg(&timeline.broadcast_id)
            .arg(&timeline.forwarded_from)
            .arg(&ids)
            .arg(&batch.memo);
        let mut conn = self.conn().await?;
        let reply: Vec<String> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        match status(&reply)? {
            ("OK", record) => outcome(record, false, epoch),
            ("DUP", record) => repeated(batch, record, epoch),
            (other, _) => Err(StoreError::Corrupt(format!("record said {other}"))),
        }
    }

    async fn run_create_group(
        &self,
        group: &GroupRecord,
        created: &NewMessage,
        seq: u64,
    ) -> StoreResult<AppendOutcome> {
        let now_ms = created.message.sent_at_ms;
        self.record_items(&[(created, seq)], now_ms, None).await?;
        let mut conn = self.conn().await?;
        let reply: Vec<String> = self
            .scripts
            .create_group
            .key(keys::group(&group.id))
            .key(keys::group_members(&group.id))
            .key(keys::group_joined(&group.id))
            .arg(group.owner.as_str())
            .arg(&group.name)
            .arg(policy_name(group.policy))
            .arg(group.created_at_ms)
            .arg(history_name(group.history))
            .arg(seq)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        match status(&reply)? {
            ("OK", _) => {}
            ("PRECONDITION", _) => return Err(StoreError::Precondition),
            (other, _) => return Err(StoreError::Corrupt(format!("create_group said {other}"))),
        }
        self.sync_member_sets(&group.id, &group.owner).await?;
        let id = message_id(&created.conversation, seq);
        outcome(&record_of(&id, now_ms, 0, ""), false, self.visible_epoch())
    }

    /// Brings a user's own sets (their groups, their invites: in their
    /// slot) in line with the group's (the authority, in the group's slot),
    /// after a change of either. Idempotent: whoever meets a change half
    /// done (a router died between the two slots) finishes it by running
    /// the change again, which ends here.
    async fn sync_member_sets(&self, group: &GroupId, user: &UserId) -> StoreResult<()> {
        let (member, invited): (bool, bool) = {
            let mut conn = self.conn().await?;
            redis::pipe()
                .cmd("HEXISTS")
                .arg(keys::group_members(group))
                .arg(user.as_str())
                .cmd("HEXISTS")
                .arg(keys::group_invites(group))
                .arg(user.as_str())
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?
        };
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.cmd(if member { "SADD" } else { "SREM" })
            .arg(keys::user_groups(user))
            .arg(group.as_str())
            .ignore()
            .cmd(if invited { "SADD" } else { "SREM" })
            .arg(keys::user_invites(user))
            .arg(group.as_str())
            .ignore();
        if member {
            pipe.cmd("SADD")
                .arg(keys::user_groups_ever(user))
                .arg(group.as_str())
                .ignore();
        }
        let _: () = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    /// The membership script: applies the change whose message the history
    /// store keeps at `seq`, if the group's membership version is still
    /// `expected` (the one before the change). The message is recorded
    /// (outbox, lists) first: it is in the log whatever Redis says.
    async fn run_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        change: &MembershipChange,
        message: &NewMessage,
        (seq, expected): (u64, u64),
    ) -> StoreResult<Applied> {
        let (op, role) = match change {
            MembershipChange::Join { role } => ("join", role_name(*role)),
            MembershipChange::Leave => ("leave", ""),
            MembershipChange::SetRole { role } => ("role", role_name(*role)),
            MembershipChange::TakeOwnership => ("owner", ""),
        };
        self.record_items(&[(message, seq)], message.message.sent_at_ms, None)
            .await?;
        let mut conn = self.conn().await?;
        let reply: Vec<String> = self
            .scripts
            .membership
            .key(keys::group_members(group))
            .key(keys::group_invites(group))
            .key(keys::group_joined(group))
            .key(keys::group_left(group))
            .key(keys::group(group))
            .arg(op)
            .arg(user.as_str())
            .arg(role)
            .arg(expected)
            .arg(seq)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let result = applied(&reply, "membership");
        self.sync_member_sets(group, user).await?;
        result
    }

    /// The unbind script, as [`Self::run_membership`] for a topic.
    async fn run_unbind(
        &self,
        topic: &TopicId,
        contact: &UserId,
        reason: Binding,
        message: &NewMessage,
        (seq, expected): (u64, u64),
    ) -> StoreResult<Applied> {
        self.record_items(&[(message, seq)], message.message.sent_at_ms, None)
            .await?;
        let mut conn = self.conn().await?;
        let reply: Vec<String> = self
            .scripts
            .unbind
            .key(keys::topic_contacts(topic))
            .key(keys::topic_former(topic))
            .key(keys::topic_timeline_seq(topic))
            .key(keys::topic_timeline(topic))
            .key(keys::topic_broadcasts(topic))
            .key(keys::topic(topic))
            .arg(contact.as_str())
            .arg(reason.name())
            .arg(expected)
            .arg(message_id(&message.conversation, seq))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        applied(&reply, "unbind")
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn epoch(&self) -> StoreResult<String> {
        let mut conn = self.conn().await?;
        let _: Value = redis::cmd("SET")
            .arg(keys::epoch())
            .arg(random_token(16))
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let epoch: String = redis::cmd("GET")
            .arg(keys::epoch())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        // Every outbox shard carries the mark sends check it by.
        let mark = keys::outbox_epoch_mark(&epoch);
        let marks = (0..self.outbox_shards)
            .map(|shard| {
                let mut zadd = cmd("ZADD");
                zadd.arg(keys::outbox(shard)).arg("+inf").arg(&mark);
                zadd
            })
            .collect();
        let added =
            self.query_all(marks).await?.iter().any(|reply| {
                redis::from_redis_value_ref::<i64>(reply).is_ok_and(|added| added > 0)
            });
        let previous = std::mem::replace(&mut *self.epoch.write(), epoch);
        // A new Redis, or one (or, on a cluster, one primary) that lost its
        // data under the same epoch: nothing is listed.
        if previous != self.current_epoch() || added {
            self.listed.clear();
        }
        Ok(self.visible_epoch())
    }

    async fn state_epoch(&self) -> StoreResult<String> {
        self.epoch().await?;
        Ok(self.current_epoch())
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let created: i64 = self
            .scripts
            .create_user
            .key(keys::user(&user.id))
            .arg(&user.password_hash)
            .arg(&user.display_name)
            .arg(user.created_at_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if created == 1 {
            let mut indexed = cmd("ZADD");
            indexed.arg(keys::users()).arg(0).arg(user.id.as_str());
            self.query_all(vec![indexed]).await?;
        }
        Ok(created == 1)
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<Option<UserRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let commands = ids
            .iter()
            .map(|id| {
                let mut get = cmd("HGETALL");
                get.arg(keys::user(id));
                get
            })
            .collect();
        let rows: Vec<HashMap<String, String>> = self
            .query_all(commands)
            .await?
            .iter()
            .map(redis::from_redis_value_ref)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(ids
            .iter()
            .zip(rows)
            .map(|(id, mut row)| {
                let password_hash = row.remove("pw")?;
                Some(UserRecord {
                    id: id.clone(),
                    display_name: row.remove("name").unwrap_or_default(),
                    password_hash,
                    created_at_ms: row.get("created").and_then(|c| c.parse().ok()).unwrap_or(0),
                    banned: row.get("banned").is_some_and(|b| b == "1"),
                    deleted: row.get("deleted").is_some_and(|b| b == "1"),
                })
            })
            .collect())
    }

    async fn put_session(&self, session: &SessionRecord) -> StoreResult<()> {
        // The indexes first (other slots, each idempotent): an entry whose
        // session never got written is skipped and pruned when read. The
        // users index is written here too, so a user a crash left out of it
        // is back in at their next login.
        let mut listed = cmd("ZADD");
        listed
            .arg(keys::user_sessions(&session.user))
            .arg(session.expires_at_ms)
            .arg(session.id.as_str());
        let mut indexed = cmd("ZADD");
        indexed.arg(keys::users()).arg(0).arg(session.user.as_str());
        self.query_all(vec![listed, indexed]).await?;
        let mut conn = self.conn().await?;
        let key = keys::session(&session.id);
        let _: () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("user")
            .arg(session.user.as_str())
            .arg("device")
            .arg(session.device.as_str())
            .arg("exp")
            .arg(session.expires_at_ms)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(session.expires_at_ms)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn session(&self, id: &SessionId, now_ms: i64) -> StoreResult<Option<SessionRecord>> {
        // Redis expires the key with the token; the check here covers clocks.
        let mut conn = self.conn().await?;
        let (user, device, exp): (Option<String>, Option<String>, Option<i64>) =
            redis::cmd("HMGET")
                .arg(keys::session(id))
                .arg("user")
                .arg("device")
                .arg("exp")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?;
        let (Some(user), Some(device), Some(expires_at_ms)) = (user, device, exp) else {
            return Ok(None);
        };
        if expires_at_ms <= now_ms {
            return Ok(None);
        }
        Ok(Some(SessionRecord {
            id: id.clone(),
            user: UserId::parse(&user).map_err(|e| StoreError::Corrupt(e.0))?,
            device: DeviceId::parse(&device).map_err(|e| StoreError::Corrupt(e.0))?,
            expires_at_ms,
        }))
    }

    async fn delete_session(&self, id: &SessionId) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: () = redis::cmd("DEL")
            .arg(keys::session(id))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn login_failures(&self, user: &UserId, address: &str) -> StoreResult<LoginFailures> {
        let mut commands = Vec::with_capacity(4);
        for key in [
            keys::login_failures_of_user(user),
            keys::login_failures_from(address),
        ] {
            for name in ["GET", "PTTL"] {
                let mut c = cmd(name);
                c.arg(&key);
                commands.push(c);
            }
        }
        let replies = self.query_all(commands).await?;
        let (account, account_ttl, from, from_ttl): (Option<u32>, i64, Option<u32>, i64) =
            redis::from_redis_value(Value::Array(replies))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(LoginFailures {
            account: account.unwrap_or(0),
            account_window_left_ms: u64::try_from(account_ttl).unwrap_or(0),
            address: from.unwrap_or(0),
            address_window_left_ms: u64::try_from(from_ttl).unwrap_or(0),
        })
    }

    async fn record_login_failure(
        &self,
        user: &UserId,
        address: &str,
        window: std::time::Duration,
    ) -> StoreResult<()> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let mut commands = Vec::with_capacity(4);
        for key in [
            keys::login_failures_of_user(user),
            keys::login_failures_from(address),
        ] {
            let mut incr = cmd("INCR");
            incr.arg(&key);
            let mut expire = cmd("PEXPIRE");
            expire.arg(&key).arg(window_ms).arg("NX");
            commands.extend([incr, expire]);
        }
        self.query_all(commands).await?;
        Ok(())
    }

    async fn clear_login_failures(&self, user: &UserId) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: () = redis::cmd("DEL")
            .arg(keys::login_failures_of_user(user))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn user_ids(&self, prefix: &str, after: &str, limit: usize) -> StoreResult<Vec<UserId>> {
        // Ids are a-z0-9_-. only, so a prefix needs no escaping in a lex range.
        let start = if after.is_empty() || after < prefix {
            format!("[{prefix}")
        } else {
            format!("({after}")
        };
        let mut conn = self.conn().await?;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::users())
            .arg(start)
            .arg(format!("[{prefix}\u{7f}"))
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        ids.iter()
            .map(|id| UserId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
            .collect()
    }

    async fn user_sessions(&self, user: &UserId, now_ms: i64) -> StoreResult<Vec<SessionRecord>> {
        let index = keys::user_sessions(user);
        let mut prune = cmd("ZREMRANGEBYSCORE");
        prune.arg(&index).arg("-inf").arg(now_ms);
        let mut list = cmd("ZRANGE");
        list.arg(&index).arg(0).arg(-1);
        let replies = self.query_all(vec![prune, list]).await?;
        let ids: Vec<String> = replies
            .get(1)
            .map(redis::from_redis_value_ref)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .unwrap_or_default();
        let mut sessions = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for id in ids {
            let id = SessionId::parse(&id).map_err(|e| StoreError::Corrupt(e.0))?;
            match self.session(&id, now_ms).await? {
                Some(session) if &session.user == user => sessions.push(session),
                _ => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let mut forget = cmd("ZREM");
            forget.arg(&index);
            for id in &gone {
                forget.arg(id.as_str());
            }
            self.query_all(vec![forget]).await?;
        }
        Ok(sessions)
    }

    async fn set_banned(&self, user: &UserId, banned: bool) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        // Only an existing account: HSET would create a hash for a stranger.
        let found: i64 = redis::Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
             if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'banned', '1') \
             else redis.call('HDEL', KEYS[1], 'banned') end return 1",
        )
        .key(keys::user(user))
        .arg(if banned { "1" } else { "0" })
        .invoke_async(&mut conn)
        .await
        .map_err(|e| self.unavailable(e))?;
        Ok(found == 1)
    }

    async fn set_password(&self, user: &UserId, password_hash: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let found: i64 = redis::Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
             redis.call('HSET', KEYS[1], 'pw', ARGV[1]) return 1",
        )
        .key(keys::user(user))
        .arg(password_hash)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| self.unavailable(e))?;
        Ok(found == 1)
    }

    async fn set_display_name(&self, user: &UserId, name: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let found: i64 = redis::Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 0 \
                or redis.call('HGET', KEYS[1], 'deleted') == '1' then return 0 end \
             redis.call('HSET', KEYS[1], 'name', ARGV[1]) return 1",
        )
        .key(keys::user(user))
        .arg(name)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| self.unavailable(e))?;
        Ok(found == 1)
    }

    async fn delete_account(&self, user: &UserId) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let found: i64 = redis::Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
             redis.call('HSET', KEYS[1], 'pw', '', 'name', '', 'banned', '1', 'deleted', '1') \
             return 1",
        )
        .key(keys::user(user))
        .invoke_async(&mut conn)
        .await
        .map_err(|e| self.unavailable(e))?;
        Ok(found == 1)
    }

    async fn user_groups_ever(&self, user: &UserId) -> StoreResult<Vec<GroupId>> {
        self.group_set(keys::user_groups_ever(user)).await
    }

    async fn delete_group(&self, group: &GroupId) -> StoreResult<Option<GroupDeleted>> {
        // The group's keys (one slot) become a tombstone that remembers who
        // was in it, so a deletion cut short before every member's own sets
        // were brought in line (other slots) is finished by running it
        // again. Raising the membership version refuses any change judged
        // before the deletion.
        let (state, affected): (String, String) = {
            let mut conn = self.conn().await?;
            redis::Script::new(
                "local was = redis.call('HGET', KEYS[1], 'deleted_members') \
                 if was then return {'before', was} end \
                 if redis.call('HEXISTS', KEYS[1], 'name') == 0 then return {'none', ''} end \
                 local users = redis.call('HKEYS', KEYS[2]) \
                 for _, u in ipairs(redis.call('HKEYS', KEYS[3])) do table.insert(users, u) end \
                 local listed = table.concat(users, ' ') \
                 redis.call('HDEL', KEYS[1], 'name', 'owner', 'policy', 'history') \
                 redis.call('HINCRBY', KEYS[1], 'mver', 1) \
                 redis.call('HSET', KEYS[1], 'deleted_members', listed) \
                 redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5]) \
                 return {'now', listed}",
            )
            .key(keys::group(group))
            .key(keys::group_members(group))
            .key(keys::group_invites(group))
            .key(keys::group_joined(group))
            .key(keys::group_left(group))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?
        };
        if state == "none" {
            return Ok(None);
        }
        let users = affected
            .split(' ')
            .filter(|u| !u.is_empty())
            .map(|u| UserId::parse(u).map_err(|e| StoreError::Corrupt(e.0)))
            .collect::<StoreResult<Vec<_>>>()?;
        for user in &users {
            self.sync_member_sets(group, user).await?;
        }
        Ok(Some(GroupDeleted {
            users,
            before: state == "before",
        }))
    }

    async fn erase_sent(&self, conv: &ConversationId, sender: &UserId) -> StoreResult<u64> {
        self.history
            .log
            .rewrite(conv, 0, None, |seq, body| {
                amended(conv, seq, body, &Amendment::Erase, Some(sender))
            })
            .await
    }

    async fn amend_message(
        &self,
        conv: &ConversationId,
        seq: u64,
        amendment: &Amendment,
    ) -> StoreResult<bool> {
        let changed = self
            .history
            .log
            .rewrite(conv, seq.saturating_sub(1), Some(seq), |at, body| {
                amended(conv, at, body, amendment, None)
            })
            .await?;
        Ok(changed > 0)
    }

    async fn erase_conversation(&self, conv: &ConversationId) -> StoreResult<u64> {
        let removed = self.history.log.remove_all(conv).await?;
        self.history.log.drop_reactions(conv, None).await?;
        Ok(removed)
    }

    async fn react(
        &self,
        conv: &ConversationId,
        seq: u64,
        user: &UserId,
        emoji: &str,
        on: bool,
        at_ms: i64,
        max: usize,
    ) -> StoreResult<Reacted> {
        let history = &self.history.log;
        history.react(conv, seq, user, emoji, on, at_ms, max).await
    }

    async fn reactions(
        &self,
        conv: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<StoredReaction>> {
        self.history.log.reactions(conv, seqs).await
    }

    async fn drop_reactions(&self, conv: &ConversationId, seq: u64) -> StoreResult<()> {
        self.history.log.drop_reactions(conv, Some(seq)).await
    }

    async fn set_conversation_muted(
        &self,
        user: &UserId,
        conv: &ConversationId,
        muted: bool,
    ) -> StoreResult<bool> {
        let mut change = cmd(if muted { "SADD" } else { "SREM" });
        change.arg(keys::user_muted(user)).arg(conv.to_string());
        let replies = self.query_all(vec![change]).await?;
        let changed: i64 = redis::from_redis_value_ref(&replies[0])
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(changed == 1)
    }

    async fn muted_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>> {
        self.conversation_set(keys::user_muted(user)).await
    }

    async fn put_push(&self, user: &UserId, subscription: &PushSubscription) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("HSET")
            .arg(keys::user_push(user))
            .arg(&subscription.endpoint)
            .arg(subscription.encode())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn remove_push(&self, user: &UserId, endpoint: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let removed: i64 = redis::cmd("HDEL")
            .arg(keys::user_push(user))
            .arg(endpoint)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(removed == 1)
    }

    async fn push_subscriptions(&self, user: &UserId) -> StoreResult<Vec<PushSubscription>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(keys::user_push(user))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        rows.into_iter()
            .map(|(endpoint, stored)| PushSubscription::decode(endpoint, &stored))
            .collect()
    }

    async fn append_audit(&self, entry: &AuditRecord) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("XADD")
            .arg(keys::audit())
            .arg("MAXLEN")
            .arg("~")
            .arg(keys::AUDIT_KEPT)
            .arg("*")
            .arg("at")
            .arg(entry.at_ms)
            .arg("admin")
            .arg(&entry.admin)
            .arg("action")
            .arg(&entry.action)
            .arg("target")
            .arg(&entry.target)
            .arg("detail")
            .arg(&entry.detail)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn audit(&self, before: Option<&str>, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        let end = match before {
            Some(id) => format!("({id}"),
            None => "+".to_owned(),
        };
        let mut conn = self.conn().await?;
        let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(keys::audit())
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, mut fields)| AuditRecord {
                id,
                at_ms: fields.get("at").and_then(|a| a.parse().ok()).unwrap_or(0),
                admin: fields.remove("admin").unwrap_or_default(),
                action: fields.remove("action").unwrap_or_default(),
                target: fields.remove("target").unwrap_or_default(),
                detail: fields.remove("detail").unwrap_or_default(),
            })
            .collect())
    }

    async fn add_contact(&self, owner: &UserId, contact: &UserId, at_ms: i64) -> StoreResult<bool> {
        // The reverse entry first: a failure between the two leaves a
        // reverse entry without a contact, which nothing reads as a
        // contact, and the user's retry completes it.
        let mut reverse = cmd("HSET");
        reverse
            .arg(keys::contacted_by(contact))
            .arg(owner.as_str())
            .arg(at_ms);
        let mut forward = cmd("HSETNX");
        forward
            .arg(keys::contacts(owner))
            .arg(contact.as_str())
            .arg(at_ms);
        self.query_all(vec![reverse]).await?;
        let replies = self.query_all(vec![forward]).await?;
        redis::from_redis_value_ref(&replies[0]).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn remove_contact(&self, owner: &UserId, contact: &UserId) -> StoreResult<bool> {
        // The contact first, the reverse entry after (the mirror of
        // `add_contact`): a reverse entry alone is never read as a contact.
        let mut forward = cmd("HDEL");
        forward.arg(keys::contacts(owner)).arg(contact.as_str());
        let mut reverse = cmd("HDEL");
        reverse.arg(keys::contacted_by(contact)).arg(owner.as_str());
        let replies = self.query_all(vec![forward]).await?;
        self.query_all(vec![reverse]).await?;
        redis::from_redis_value_ref(&replies[0]).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn contacts(&self, owner: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.contact_hash(keys::contacts(owner)).await
    }

    async fn contacted_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.contact_hash(keys::contacted_by(user)).await
    }

    async fn mutual_among(&self, user: &UserId, others: &[UserId]) -> StoreResult<Vec<bool>> {
        if others.is_empty() {
            return Ok(Vec::new());
        }
        // Three hashes of `user`'s slot: one round trip.
        let mut conn = self.conn().await?;
        let mut mine = redis::cmd("HMGET");
        let mut theirs = redis::cmd("HMGET");
        let mut blocks = redis::cmd("HMGET");
        mine.arg(keys::contacts(user));
        theirs.arg(keys::contacted_by(user));
        blocks.arg(keys::user_peers(user));
        for other in others {
            mine.arg(other.as_str());
            theirs.arg(other.as_str());
            blocks
                .arg(keys::peer_field(other, PeerFact::Blocked))
                .arg(keys::peer_field(other, PeerFact::BlockedBy));
        }
        let (mine, theirs, blocks): (Vec<Option<i64>>, Vec<Option<i64>>, Vec<Option<i64>>) =
            redis::pipe()
                .add_command(mine)
                .add_command(theirs)
                .add_command(blocks)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?;
        Ok((0..others.len())
            .map(|i| {
                let blocked = blocks[2 * i].is_some() || blocks[2 * i + 1].is_some();
                mine[i].is_some() && theirs[i].is_some() && !blocked
            })
            .collect())
    }

    async fn set_blocked(
        &self,
        user: &UserId,
        other: &UserId,
        blocked: bool,
        at_ms: i64,
    ) -> StoreResult<bool> {
        // The blocker's record first, its mirror after: a block is in force
        // from the blocker's side at once, and asking again finishes one
        // cut short. Blocked again, it keeps the first time.
        let (mut forward, mut reverse) = if blocked {
            (cmd("HSETNX"), cmd("HSETNX"))
        } else {
            (cmd("HDEL"), cmd("HDEL"))
        };
        forward
            .arg(keys::user_peers(user))
            .arg(keys::peer_field(other, PeerFact::Blocked));
        reverse
            .arg(keys::user_peers(other))
            .arg(keys::peer_field(user, PeerFact::BlockedBy));
        if blocked {
            forward.arg(at_ms);
            reverse.arg(at_ms);
        }
        let replies = self.query_all(vec![forward]).await?;
        self.query_all(vec![reverse]).await?;
        let changed: i64 = redis::from_redis_value_ref(&replies[0])
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(changed == 1)
    }

    async fn blocked(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.peers_with(user, PeerFact::Blocked).await
    }

    async fn blocked_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.peers_with(user, PeerFact::BlockedBy).await
    }

    async fn direct_states(&self, user: &UserId, peer: &UserId) -> StoreResult<DirectStates> {
        let mut conn = self.conn().await?;
        let facts: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(keys::user_peers(user))
            .arg(keys::peer_field(peer, PeerFact::Blocked))
            .arg(keys::peer_field(peer, PeerFact::BlockedBy))
            .arg(keys::peer_field(peer, PeerFact::Accepted))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let has = |i: usize| facts.get(i).is_some_and(Option::is_some);
        Ok(DirectStates {
            blocked: has(0),
            blocked_by: has(1),
            accepted: has(2),
        })
    }

    async fn accept_direct(&self, user: &UserId, peer: &UserId) -> StoreResult<bool> {
        let mut accept = cmd("HSETNX");
        accept
            .arg(keys::user_peers(user))
            .arg(keys::peer_field(peer, PeerFact::Accepted))
            .arg(1);
        let replies = self.query_all(vec![accept]).await?;
        let added: i64 = redis::from_redis_value_ref(&replies[0])
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(added == 1)
    }

    async fn accepted_peers(&self, user: &UserId) -> StoreResult<Vec<UserId>> {
        Ok(self
            .peers_with(user, PeerFact::Accepted)
            .await?
            .into_iter()
            .map(|entry| entry.user)
            .collect())
    }

    async fn create_group(
        &self,
        group: &GroupRecord,
        created: NewMessage,
    ) -> StoreResult<AppendOutcome> {
        self.create_group_logged(group, created).await
    }

    async fn groups(&self, ids: &[GroupId]) -> StoreResult<Vec<Option<GroupRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut commands = Vec::with_capacity(ids.len() * 2);
        for id in ids {
            let mut fields = cmd("HGETALL");
            fields.arg(keys::group(id));
            let mut count = cmd("HLEN");
            count.arg(keys::group_members(id));
            commands.extend([fields, count]);
        }
        let rows = self.query_all(commands).await?;
        let mut groups = Vec::with_capacity(ids.len());
        for (id, pair) in ids.iter().zip(rows.chunks(2)) {
            let [fields, count] = pair else {
                return Err(StoreError::Corrupt("short pipeline reply".into()));
            };
            let mut fields: HashMap<String, String> =
                redis::from_redis_value_ref(fields).map_err(|e| self.unavailable(e))?;
            let member_count: u32 =
                redis::from_redis_value_ref(count).map_err(|e| self.unavailable(e))?;
            let (Some(name), Some(owner), Some(policy), Some(history)) = (
                fields.remove("name"),
                fields.remove("owner"),
                fields.remove("policy"),
                fields.remove("history"),
            ) else {
                groups.push(None);
                continue;
            };
            groups.push(Some(GroupRecord {
                id: id.clone(),
                name,
                owner: UserId::parse(&owner).map_err(|e| StoreError::Corrupt(e.0))?,
                policy: parse_policy(&policy)?,
                history: parse_history(&history)?,
                created_at_ms: fields
                    .get("created")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                member_count,
                description: fields.remove("description").unwrap_or_default(),
            }));
        }
        Ok(groups)
    }

    async fn update_group(
        &self,
        group: &GroupId,
        name: Option<&str>,
        description: Option<&str>,
    ) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        // Only a live group (a deleted one keeps no name).
        let found: i64 = redis::Script::new(
            "if redis.call('HEXISTS', KEYS[1], 'name') == 0 then return 0 end \
             if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'name', ARGV[2]) end \
             if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'description', ARGV[4]) end \
             return 1",
        )
        .key(keys::group(group))
        .arg(if name.is_some() { "1" } else { "0" })
        .arg(name.unwrap_or_default())
        .arg(if description.is_some() { "1" } else { "0" })
        .arg(description.unwrap_or_default())
        .invoke_async(&mut conn)
        .await
        .map_err(|e| self.unavailable(e))?;
        Ok(found == 1)
    }

    async fn member_role(&self, group: &GroupId, user: &UserId) -> StoreResult<Option<pb::Role>> {
        let mut conn = self.conn().await?;
        let role: Option<String> = redis::cmd("HGET")
            .arg(keys::group_members(group))
            .arg(user.as_str())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        role.as_deref().map(parse_role).transpose()
    }

    async fn group_membership(
        &self,
        group: &GroupId,
        user: &UserId,
    ) -> StoreResult<GroupMembership> {
        let mut conn = self.conn().await?;
        let (role, joined, left): (Option<String>, Option<u64>, Option<u64>) = redis::pipe()
            .cmd("HGET")
            .arg(keys::group_members(group))
            .arg(user.as_str())
            .cmd("HGET")
            .arg(keys::group_joined(group))
            .arg(user.as_str())
            .cmd("HGET")
            .arg(keys::group_left(group))
            .arg(user.as_str())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let role = role.as_deref().map(parse_role).transpose()?;
        Ok(GroupMembership {
            role,
            joined_seq: joined.unwrap_or(0),
            left_seq: if role.is_some() { 0 } else { left.unwrap_or(0) },
        })
    }

    async fn members(&self, group: &GroupId) -> StoreResult<Vec<(UserId, pb::Role)>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(keys::group_members(group))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let mut members = rows
            .into_iter()
            .map(|(user, role)| {
                Ok((
                    UserId::parse(&user).map_err(|e| StoreError::Corrupt(e.0))?,
                    parse_role(&role)?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        members.sort();
        Ok(members)
    }

    async fn user_groups(&self, user: &UserId) -> StoreResult<Vec<GroupId>> {
        self.group_set(keys::user_groups(user)).await
    }

    async fn invite(&self, group: &GroupId, user: &UserId, at_ms: i64) -> StoreResult<bool> {
        let mut add = cmd("HSETNX");
        add.arg(keys::group_invites(group))
            .arg(user.as_str())
            .arg(at_ms);
        let replies = self.query_all(vec![add]).await?;
        let added = redis::from_redis_value_ref(&replies[0])
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.sync_member_sets(group, user).await?;
        Ok(added)
    }

    async fn is_invited(&self, group: &GroupId, user: &UserId) -> StoreResult<bool> {
        self.hexists(&keys::group_invites(group), user.as_str())
            .await
    }

    async fn user_invites(&self, user: &UserId) -> StoreResult<Vec<GroupId>> {
        self.group_set(keys::user_invites(user)).await
    }

    async fn change_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        change: MembershipChange,
        message: NewMessage,
    ) -> StoreResult<AppendOutcome> {
        self.change_membership_logged(group, user, change, message)
            .await
    }

    async fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome> {
        self.append_logged(batch).await
    }

    async fn messages_after(
        &self,
        conv: &ConversationId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>> {
        let history = &self.history.log;
        logged::decode_stored(conv, history.after(conv, after, limit).await?)
    }

    async fn messages_at(
        &self,
        conv: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<pb::Message>> {
        logged::decode_stored(conv, self.history.log.at(conv, seqs).await?)
    }

    async fn messages_before(
        &self,
        conv: &ConversationId,
        before: u64,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>> {
        if before <= 1 {
            return Ok(Vec::new());
        }
        // 0 asks for the newest.
        let before = if before == u64::MAX { 0 } else { before };
        let history = &self.history.log;
        logged::decode_stored(conv, history.before(conv, before, limit).await?)
    }

    async fn search(
        &self,
        scopes: &[SearchScope],
        words: &[String],
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>> {
        let found = self.history.log.search(scopes, words, after, limit).await?;
        found
            .iter()
            .map(|(conv, m)| decode_message(conv, m.seq, &m.body))
            .collect()
    }

    async fn heads(&self, convs: &[ConversationId]) -> StoreResult<Vec<u64>> {
        if convs.is_empty() {
            return Ok(Vec::new());
        }
        self.history.log.heads(convs).await
    }

    async fn user_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(keys::user_conversations(user))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        ids.iter()
            .map(|id| ConversationId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
            .collect()
    }

    async fn mark_read(&self, conv: &ConversationId, user: &UserId, seq: u64) -> StoreResult<u64> {
        let key = keys::conversation_reads(conv);
        let mut score = cmd("ZSCORE");
        score.arg(&key).arg(user.as_str());
        let replies = self
            .query_all(vec![cursor_forward(key, user, seq), score])
            .await?;
        cursor_of(&replies[1])
    }

    async fn read_cursors(&self, conv: &ConversationId) -> StoreResult<Vec<(UserId, u64)>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(keys::conversation_reads(conv))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let mut cursors = rows
            .into_iter()
            .map(|(user, seq)| {
                Ok((
                    UserId::parse(&user).map_err(|e| StoreError::Corrupt(e.0))?,
                    seq as u64,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        cursors.sort();
        Ok(cursors)
    }

    async fn read_cursors_of(
        &self,
        user: &UserId,
        convs: &[ConversationId],
    ) -> StoreResult<Vec<u64>> {
        if convs.is_empty() {
            return Ok(Vec::new());
        }
        let commands = convs
            .iter()
            .map(|conv| {
                let mut score = cmd("ZSCORE");
                score.arg(keys::conversation_reads(conv)).arg(user.as_str());
                score
            })
            .collect();
        self.query_all(commands)
            .await?
            .iter()
            .map(cursor_of)
            .collect()
    }

    async fn create_topic(&self, topic: &TopicRecord) -> StoreResult<()> {
        // The topic first, then the owner's list of topics (another
        // slot): a topic missing from the list after a failure is one the
        // owner was told was not created.
        let mut hash = cmd("HSET");
        hash.arg(keys::topic(&topic.id))
            .arg("name")
            .arg(&topic.name)
            .arg("owner")
            .arg(topic.owner.as_str())
            .arg("created")
            .arg(topic.created_at_ms);
        let mut list = cmd("ZADD");
        list.arg(keys::user_topics(&topic.owner))
            .arg(topic.created_at_ms)
            .arg(topic.id.as_str());
        self.query_all(vec![hash]).await?;
        self.query_all(vec![list]).await?;
        Ok(())
    }

    async fn topics(&self, ids: &[TopicId]) -> StoreResult<Vec<Option<TopicRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut commands = Vec::with_capacity(ids.len() * 3);
        for id in ids {
            for key in [
                keys::topic(id),
                keys::topic_contacts(id),
                keys::topic_former(id),
            ] {
                let mut all = cmd("HGETALL");
                all.arg(key);
                commands.push(all);
            }
        }
        let rows: Vec<HashMap<String, String>> = self
            .query_all(commands)
            .await?
            .iter()
            .map(redis::from_redis_value_ref)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        ids.iter()
            .zip(rows.chunks(3))
            .map(|(id, parts)| {
                let [fields, current, former] = parts else {
                    return Err(StoreError::Corrupt("short pipeline reply".into()));
                };
                let (Some(name), Some(owner)) = (fields.get("name"), fields.get("owner")) else {
                    return Ok(None);
                };
                let mut contacts = current
                    .iter()
                    .chain(former.iter())
                    .map(|(user, state)| {
                        Ok((
                            UserId::parse(user).map_err(|e| StoreError::Corrupt(e.0))?,
                            Binding::parse(state)?,
                        ))
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                contacts.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(Some(TopicRecord {
                    id: id.clone(),
                    name: name.clone(),
                    owner: UserId::parse(owner).map_err(|e| StoreError::Corrupt(e.0))?,
                    created_at_ms: fields
                        .get("created")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0),
                    deleted: fields.contains_key("deleted"),
                    contacts,
                }))
            })
            .collect()
    }

    async fn user_topics(&self, owner: &UserId) -> StoreResult<Vec<TopicId>> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::user_topics(owner))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        ids.iter()
            .map(|id| TopicId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
            .collect()
    }

    async fn rename_topic(&self, topic: &TopicId, name: &str) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: () = redis::cmd("HSET")
            .arg(keys::topic(topic))
            .arg("name")
            .arg(name)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn delete_topic(&self, topic: &TopicId) -> StoreResult<Vec<UserId>> {
        let mut conn = self.conn().await?;
        // A bind after the mark is refused (bind.lua checks it); one before
        // it is in the list.
        let (bound,): (Vec<String>,) = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(keys::topic(topic))
            .arg("deleted")
            .arg(1)
            .ignore()
            .cmd("HKEYS")
            .arg(keys::topic_contacts(topic))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        bound
            .iter()
            .map(|u| UserId::parse(u).map_err(|e| StoreError::Corrupt(e.0)))
            .collect()
    }

    async fn bind(
        &self,
        topic: &TopicId,
        contacts: &[UserId],
        cap: usize,
    ) -> StoreResult<Vec<BindOutcome>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut inv = self.scripts.bind.prepare_invoke();
        inv.key(keys::topic(topic))
            .key(keys::topic_contacts(topic))
            .key(keys::topic_former(topic))
            .arg(cap);
        for contact in contacts {
            inv.arg(contact.as_str());
        }
        let words: Vec<String> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if words.first().map(String::as_str) == Some("DELETED") {
            return Err(StoreError::Precondition);
        }
        let outcomes = words
            .iter()
            .map(|w| match w.as_str() {
                "added" => Ok(BindOutcome::Added),
                "already" => Ok(BindOutcome::Already),
                "full" => Ok(BindOutcome::Full),
                other => Err(StoreError::Corrupt(format!("bind said {other}"))),
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // Each bound contact's list of topic dialogs, in their own slot;
        // "already" rewrites it too, so a bind retried after a failure
        // here completes it.
        let lists = contacts
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| **outcome != BindOutcome::Full)
            .map(|(contact, _)| {
                let mut add = cmd("SADD");
                add.arg(keys::user_bound_topics(contact))
                    .arg(topic.as_str());
                add
            })
            .collect::<Vec<_>>();
        if !lists.is_empty() {
            self.query_all(lists).await?;
        }
        Ok(outcomes)
    }

    async fn set_muted(&self, topic: &TopicId, contact: &UserId, muted: bool) -> StoreResult<bool> {
        let state = if muted {
            Binding::Muted
        } else {
            Binding::Bound
        };
        let mut conn = self.conn().await?;
        let updated: i64 = self
            .scripts
            .set_binding
            .key(keys::topic_contacts(topic))
            .arg(contact.as_str())
            .arg(state.name())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(updated == 1)
    }

    async fn unbind(
        &self,
        topic: &TopicId,
        contact: &UserId,
        reason: Binding,
        message: NewMessage,
    ) -> StoreResult<AppendOutcome> {
        self.unbind_logged(topic, contact, reason, message).await
    }

    async fn timeline(
        &self,
        topic: &TopicId,
        before: u64,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<TimelineRecord>> {
        let mut conn = self.conn().await?;
        let key = keys::topic_timeline(topic);
        let (command, start, end) = match after {
            Some(after) => (
                "XRANGE",
                format!("{}-0", after.saturating_add(1)),
                "+".to_owned(),
            ),
            None if before <= 1 => return Ok(Vec::new()),
            None if before == u64::MAX => ("XREVRANGE", "+".to_owned(), "-".to_owned()),
            None => ("XREVRANGE", format!("{}-0", before - 1), "-".to_owned()),
        };
        let reply: redis::streams::StreamRangeReply = redis::cmd(command)
            .arg(&key)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let mut entries = reply
            .ids
            .iter()
            .map(|entry| {
                let seq = seq_of_stream_id(&entry.id)?;
                match entry.map.get("e") {
                    Some(Value::BulkString(bytes)) => {
                        decode_timeline_entry(seq, &String::from_utf8_lossy(bytes))
                    }
                    other => Err(StoreError::Corrupt(format!("timeline entry {other:?}"))),
                }
            })
            .collect::<StoreResult<Vec<_>>>()?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    async fn broadcast(
        &self,
        topic: &TopicId,
        broadcast_id: &str,
    ) -> StoreResult<Option<Vec<MessageId>>> {
        let mut conn = self.conn().await?;
        let ids: Option<String> = redis::cmd("HGET")
            .arg(keys::topic_broadcasts(topic))
            .arg(broadcast_id)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        ids.as_deref().map(decode_message_ids).transpose()
    }

    async fn thread_states(
        &self,
        threads: &[(ConversationId, UserId)],
    ) -> StoreResult<Vec<ThreadState>> {
        if threads.is_empty() {
            return Ok(Vec::new());
        }
        let mut commands = Vec::with_capacity(threads.len() * 3);
        for (conv, user) in threads {
            for key in [
                keys::conversation_reads(conv),
                keys::conversation_delivered(conv),
                keys::conversation_sent(conv),
            ] {
                let mut score = cmd("ZSCORE");
                score.arg(key).arg(user.as_str());
                commands.push(score);
            }
        }
        let values = self
            .query_all(commands)
            .await?
            .iter()
            .map(cursor_of)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(values
            .chunks(3)
            .map(|v| ThreadState {
                read: v[0],
                delivered: v[1],
                sent: v[2],
            })
            .collect())
    }

    async fn mark_delivered(
        &self,
        marks: &[(ConversationId, UserId, u64)],
    ) -> StoreResult<Vec<bool>> {
        if marks.is_empty() {
            return Ok(Vec::new());
        }
        let commands = marks
            .iter()
            .map(|(conv, user, seq)| cursor_forward(keys::conversation_delivered(conv), user, *seq))
            .collect();
        self.query_all(commands)
            .await?
            .iter()
            .map(|moved| {
                redis::from_redis_value_ref::<i64>(moved)
                    .map(|m| m == 1)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn outbox_done(&self, ids: &[MessageId]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut shards: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in ids {
            shards
                .entry(keys::outbox_of(&id.conversation, self.outbox_shards))
                .or_default()
                .push(id.to_string());
        }
        let commands = shards
            .into_iter()
            .map(|(key, members)| {
                let mut remove = cmd("ZREM");
                remove.arg(key).arg(members);
                remove
            })
            .collect();
        self.query_all(commands).await?;
        Ok(())
    }

    async fn outbox_claim(
        &self,
        older_than_ms: i64,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<MessageId>> {
        // The shards in turn, from where the last claim stopped, so one
        // busy shard does not starve the others.
        let start = self.outbox_cursor.fetch_add(1, Ordering::Relaxed);
        let mut ids = Vec::new();
        let mut conn = self.conn().await?;
        for step in 0..self.outbox_shards {
            if ids.len() >= limit {
                break;
            }
            let shard = start.wrapping_add(step) % self.outbox_shards;
            let claimed: Vec<String> = self
                .scripts
                .outbox_claim
                .key(keys::outbox(shard))
                .arg(older_than_ms)
                .arg(now_ms)
                .arg(limit - ids.len())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?;
            for id in claimed {
                ids.push(MessageId::parse(&id).map_err(|e| StoreError::Corrupt(e.0))?);
            }
        }
        Ok(ids)
    }
}

impl RedisStore {
    /// The other users of whom `fact` holds for `user`, with its value
    /// (when, for a block).
    async fn peers_with(&self, user: &UserId, fact: PeerFact) -> StoreResult<Vec<ContactEntry>> {
        let rows = self.numbers_hash(keys::user_peers(user)).await?;
        let mut entries = Vec::new();
        for (field, value) in rows {
            if let Some((found, peer)) = PeerFact::parse_field(&field)
                && found == fact
            {
                entries.push(ContactEntry {
                    user: UserId::parse(peer).map_err(|e| StoreError::Corrupt(e.0))?,
                    added_at_ms: value,
                });
            }
        }
        entries.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(entries)
    }

    /// A hash whose values are numbers, as (field, value) pairs.
    async fn numbers_hash(&self, key: String) -> StoreResult<Vec<(String, i64)>> {
        let mut conn = self.conn().await?;
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn set_members(&self, key: String) -> StoreResult<Vec<String>> {
        let mut conn = self.conn().await?;
        redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn conversation_set(&self, key: String) -> StoreResult<Vec<ConversationId>> {
        self.set_members(key)
            .await?
            .iter()
            .map(|id| ConversationId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
            .collect()
    }

    async fn contact_hash(&self, key: String) -> StoreResult<Vec<ContactEntry>> {
        let mut entries = self
            .numbers_hash(key)
            .await?
            .into_iter()
            .map(|(user, added_at_ms)| {
                Ok(ContactEntry {
                    user: UserId::parse(&user).map_err(|e| StoreError::Corrupt(e.0))?,
                    added_at_ms,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        entries.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(entries)
    }

    async fn group_set(&self, key: String) -> StoreResult<Vec<GroupId>> {
        let mut groups = self
            .set_members(key)
            .await?
            .iter()
            .map(|id| GroupId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
            .collect::<StoreResult<Vec<_>>>()?;
        groups.sort();
        Ok(groups)
    }
}
