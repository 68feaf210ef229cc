//! The production store: Redis (AOF on, `noeviction`) for who may write and
//! the hot state, the history store (PostgreSQL) for the messages. Atomic
//! steps in Redis are Lua scripts under `scripts/`; keys come from
//! `switchboard_shared::keys`. Every message is stored by the history store
//! first and then recorded in Redis (`redis/logged.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use redis::aio::ConnectionManager as Connection;
use redis::{Script, Value};
use switchboard_proto::pb;
use switchboard_shared::ids::{
    ConversationId, DeviceId, GroupId, MessageId, SessionId, TopicId, UserId, random_token,
};
use switchboard_shared::keys;
use switchboard_shared::redis_pool::Pool;

mod logged;

use super::history::{HistoryWriter, PgHistory};
use super::{
    AppendBatch, AppendOutcome, BindOutcome, Binding, ContactEntry, GroupMembership, GroupRecord,
    LoginFailures, MembershipChange, NewMessage, SessionRecord, Store, StoreError, StoreResult,
    ThreadState, TimelineRecord, TopicRecord, UserRecord, decode_idempotency, decode_message_ids,
    decode_timeline_entry, history_name, parse_history, parse_policy, parse_role, policy_name,
    role_name, same_targets,
};

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
    append: Script,
    membership: Script,
    create_group: Script,
    create_user: Script,
    mark_read: Script,
    mark_delivered: Script,
    outbox_claim: Script,
    bind: Script,
    unbind: Script,
    set_binding: Script,
}

pub struct RedisStore {
    pool: Pool,
    scripts: Scripts,
    /// The epoch appends are made under; refreshed when a script reports a change.
    epoch: RwLock<String>,
    idempotency_ttl_secs: u64,
    /// Where the messages live (docs/STORAGE.md).
    history: logged::History,
}

/// Adds one item's KEYS and ARGV, in the layout `prelude.lua` reads: the
/// history store has assigned `seq`, keeps the message and has judged the
/// sender's admission by its fence; the script only records it. The sent
/// cursor is kept for topic threads only (their status roll-up reads it:
/// "replied"); nothing reads it elsewhere, so a direct or group send does
/// not pay for it.
fn push_item(invocation: &mut redis::ScriptInvocation<'_>, item: &NewMessage, seq: u64) {
    let conv = &item.conversation;
    let keeps_sent = matches!(conv, ConversationId::TopicThread { .. });
    invocation
        .key(keys::conversation_reads(conv))
        .key(keys::conversation_sent(conv));
    for user in &item.index_for {
        invocation.key(keys::user_conversations(user));
    }
    invocation
        .arg(conv.to_string())
        .arg(
            item.read_by
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        )
        .arg(seq)
        .arg(if keeps_sent { "1" } else { "" })
        .arg(item.index_for.len());
}

/// What a script answered: a status word and one value.
fn status(reply: &[String]) -> StoreResult<(&str, &str)> {
    match reply {
        [status, value, ..] => Ok((status.as_str(), value.as_str())),
        other => Err(StoreError::Corrupt(format!("script reply {other:?}"))),
    }
}

/// The outcome an appending script's record describes.
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

/// The answer of a script that appends one system message under a precondition.
fn single_outcome(reply: &[String], epoch: String, script: &str) -> StoreResult<AppendOutcome> {
    match status(reply)? {
        ("OK", record) => outcome(record, false, epoch),
        ("PRECONDITION", _) => Err(StoreError::Precondition),
        (other, _) => Err(StoreError::Corrupt(format!("{script} said {other}"))),
    }
}

/// What a membership script did.
enum Applied {
    Done(AppendOutcome),
    /// The membership version was not the one expected: it is this one.
    Stale(u64),
}

fn applied(reply: &[String], epoch: String, script: &str) -> StoreResult<Applied> {
    match status(reply)? {
        ("STALE", version) => version
            .parse()
            .map(Applied::Stale)
            .map_err(|_| StoreError::Corrupt(format!("{script} said STALE {version}"))),
        _ => single_outcome(reply, epoch, script).map(Applied::Done),
    }
}

fn seq_of_stream_id(id: &str) -> StoreResult<u64> {
    id.split_once('-')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("stream id {id:?}")))
}

impl RedisStore {
    /// Redis did not answer: the error names which Redis.
    fn unavailable(&self, err: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("{}: {err}", self.pool.name()))
    }

    /// The store over Redis and the history store, once Redis answers.
    pub async fn new(
        pool: Pool,
        idempotency_ttl_secs: u64,
        log: Arc<PgHistory>,
        writer: HistoryWriter,
    ) -> StoreResult<Self> {
        let store = Self {
            pool,
            scripts: Scripts {
                append: script!("append.lua"),
                membership: script!("membership.lua"),
                create_group: script!("create_group.lua"),
                create_user: script!("create_user.lua"),
                mark_read: script!("mark_read.lua"),
                mark_delivered: script!("mark_delivered.lua"),
                outbox_claim: script!("outbox_claim.lua"),
                bind: script!("bind.lua"),
                unbind: script!("unbind.lua"),
                set_binding: script!("set_binding.lua"),
            },
            epoch: RwLock::new(String::new()),
            idempotency_ttl_secs,
            history: logged::History { log, writer },
        };
        store.epoch().await?;
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Connection> {
        Ok(self.pool.get())
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

    /// Runs a script that appends under the epoch this store knows. When the
    /// script reports another, nothing was written: the epoch is refreshed
    /// (a new one made if the data was lost) and the caller is told, so it
    /// can forget what it learnt from the old store and start over.
    async fn run_appending<'s>(
        &'s self,
        build: impl Fn(&str) -> redis::ScriptInvocation<'s>,
    ) -> StoreResult<(Vec<String>, String)> {
        let mut conn = self.conn().await?;
        let epoch = self.current_epoch();
        let reply: Vec<String> = build(&epoch)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if status(&reply)?.0 == "EPOCH" {
            tracing::warn!(previous = %epoch, "store epoch changed; refreshing");
            self.epoch().await?;
            return Err(StoreError::EpochChanged);
        }
        Ok((reply, self.visible_epoch()))
    }

    /// The epoch clients number their cursors under: the history's (which
    /// Redis losing its data does not change). Redis's own epoch tells this
    /// process to forget what it learnt from a Redis that lost its data.
    fn visible_epoch(&self) -> String {
        self.history.log.epoch().to_owned()
    }

    /// The append script: records what the history store stored, one seq
    /// per item.
    async fn run_append(&self, batch: &AppendBatch, seqs: &[u64]) -> StoreResult<AppendOutcome> {
        let (idem_key, has_idem) = match &batch.idempotency {
            Some((sender, id)) => (keys::idempotency(sender, id.as_str()), "1"),
            // Unused by the script, but KEYS[2] must name something.
            None => (keys::outbox(), "0"),
        };
        // Unused without a timeline, but the KEYS must name something.
        let (timeline_keys, has_timeline, broadcast_id, forwarded_from) = match &batch.timeline {
            Some(timeline) => (
                [
                    keys::topic_timeline_seq(&timeline.topic),
                    keys::topic_timeline(&timeline.topic),
                    keys::topic_broadcasts(&timeline.topic),
                ],
                "1",
                timeline.broadcast_id.as_str(),
                timeline.forwarded_from.as_str(),
            ),
            None => (
                [keys::outbox(), keys::outbox(), keys::outbox()],
                "0",
                "",
                "",
            ),
        };
        let (reply, epoch) = self
            .run_appending(|epoch| {
                let mut inv = self.scripts.append.prepare_invoke();
                inv.key(keys::epoch()).key(&idem_key).key(keys::outbox());
                for key in &timeline_keys {
                    inv.key(key);
                }
                inv.arg(epoch)
                    .arg(batch.now_ms)
                    .arg(self.idempotency_ttl_secs)
                    .arg(has_idem)
                    .arg(batch.items.len())
                    .arg(has_timeline)
                    .arg(broadcast_id)
                    .arg(forwarded_from)
                    .arg(&batch.memo);
                for (i, item) in batch.items.iter().enumerate() {
                    push_item(&mut inv, item, seqs[i]);
                }
                inv
            })
            .await?;
        match status(&reply)? {
            ("OK", record) => outcome(record, false, epoch),
            ("DUP", record) => {
                let prior = outcome(record, true, epoch)?;
                if !same_targets(batch, &prior.appended) {
                    return Err(StoreError::IdempotencyConflict);
                }
                Ok(prior)
            }
            (other, _) => Err(StoreError::Corrupt(format!("append said {other}"))),
        }
    }

    async fn run_create_group(
        &self,
        group: &GroupRecord,
        created: &NewMessage,
        seq: u64,
    ) -> StoreResult<AppendOutcome> {
        let now_ms = created.message.sent_at_ms;
        let (reply, epoch) = self
            .run_appending(|epoch| {
                let mut inv = self.scripts.create_group.prepare_invoke();
                inv.key(keys::epoch())
                    .key(keys::outbox())
                    .key(keys::group(&group.id))
                    .key(keys::group_members(&group.id))
                    .key(keys::user_groups(&group.owner))
                    .key(keys::group_joined(&group.id))
                    .arg(epoch)
                    .arg(now_ms)
                    .arg(group.owner.as_str())
                    .arg(group.id.as_str())
                    .arg(&group.name)
                    .arg(policy_name(group.policy))
                    .arg(group.created_at_ms)
                    .arg(history_name(group.history));
                push_item(&mut inv, created, seq);
                inv
            })
            .await?;
        single_outcome(&reply, epoch, "create_group")
    }

    /// The membership script: applies the change whose message the history
    /// store keeps at `seq`, if the group's membership version is still
    /// `expected` (the one before the change).
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
        };
        let now_ms = message.message.sent_at_ms;
        let (reply, epoch) = self
            .run_appending(|epoch| {
                let mut inv = self.scripts.membership.prepare_invoke();
                inv.key(keys::epoch())
                    .key(keys::outbox())
                    .key(keys::group_members(group))
                    .key(keys::user_groups(user))
                    .key(keys::group_invites(group))
                    .key(keys::user_invites(user))
                    .key(keys::group_joined(group))
                    .key(keys::group_left(group))
                    .key(keys::group(group))
                    .arg(epoch)
                    .arg(now_ms)
                    .arg(op)
                    .arg(user.as_str())
                    .arg(group.as_str())
                    .arg(role)
                    .arg(expected);
                push_item(&mut inv, message, seq);
                inv
            })
            .await?;
        applied(&reply, epoch, "membership")
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
        let now_ms = message.message.sent_at_ms;
        let (reply, epoch) = self
            .run_appending(|epoch| {
                let mut inv = self.scripts.unbind.prepare_invoke();
                inv.key(keys::epoch())
                    .key(keys::outbox())
                    .key(keys::topic_contacts(topic))
                    .key(keys::topic_former(topic))
                    .key(keys::topic_timeline_seq(topic))
                    .key(keys::topic_timeline(topic))
                    .key(keys::topic_broadcasts(topic))
                    .key(keys::topic(topic))
                    .arg(epoch)
                    .arg(now_ms)
                    .arg(contact.as_str())
                    .arg(reason.name())
                    .arg(expected);
                push_item(&mut inv, message, seq);
                inv
            })
            .await?;
        applied(&reply, epoch, "unbind")
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
        *self.epoch.write() = epoch;
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
        Ok(created == 1)
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<Option<UserRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(keys::user(id));
        }
        let rows: Vec<HashMap<String, String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
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
                })
            })
            .collect())
    }

    async fn put_session(&self, session: &SessionRecord) -> StoreResult<()> {
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
        let mut conn = self.conn().await?;
        let (account, account_ttl, from, from_ttl): (Option<u32>, i64, Option<u32>, i64) =
            redis::pipe()
                .cmd("GET")
                .arg(keys::login_failures_of_user(user))
                .cmd("PTTL")
                .arg(keys::login_failures_of_user(user))
                .cmd("GET")
                .arg(keys::login_failures_from(address))
                .cmd("PTTL")
                .arg(keys::login_failures_from(address))
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?;
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
        let mut conn = self.conn().await?;
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let _: () = redis::pipe()
            .cmd("INCR")
            .arg(keys::login_failures_of_user(user))
            .ignore()
            .cmd("PEXPIRE")
            .arg(keys::login_failures_of_user(user))
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(keys::login_failures_from(address))
            .ignore()
            .cmd("PEXPIRE")
            .arg(keys::login_failures_from(address))
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
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

    async fn add_contact(&self, owner: &UserId, contact: &UserId, at_ms: i64) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let (added,): (bool,) = redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(keys::contacts(owner))
            .arg(contact.as_str())
            .arg(at_ms)
            .cmd("HSETNX")
            .arg(keys::contacted_by(contact))
            .arg(owner.as_str())
            .arg(at_ms)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(added)
    }

    async fn remove_contact(&self, owner: &UserId, contact: &UserId) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let (removed,): (bool,) = redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(keys::contacts(owner))
            .arg(contact.as_str())
            .cmd("HDEL")
            .arg(keys::contacted_by(contact))
            .arg(owner.as_str())
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(removed)
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
        let mut conn = self.conn().await?;
        let mut mine = redis::cmd("HMGET");
        let mut theirs = redis::cmd("HMGET");
        mine.arg(keys::contacts(user));
        theirs.arg(keys::contacted_by(user));
        for other in others {
            mine.arg(other.as_str());
            theirs.arg(other.as_str());
        }
        let (mine, theirs): (Vec<Option<i64>>, Vec<Option<i64>>) = redis::pipe()
            .add_command(mine)
            .add_command(theirs)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(mine
            .iter()
            .zip(&theirs)
            .map(|(a, b)| a.is_some() && b.is_some())
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
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL")
                .arg(keys::group(id))
                .cmd("HLEN")
                .arg(keys::group_members(id));
        }
        let rows: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
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
            }));
        }
        Ok(groups)
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
        let mut conn = self.conn().await?;
        let (added,): (bool,) = redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(keys::group_invites(group))
            .arg(user.as_str())
            .arg(at_ms)
            .cmd("SADD")
            .arg(keys::user_invites(user))
            .arg(group.as_str())
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
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
        let mut conn = self.conn().await?;
        self.scripts
            .mark_read
            .key(keys::conversation_reads(conv))
            .arg(user.as_str())
            .arg(seq)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn read_cursors(&self, conv: &ConversationId) -> StoreResult<Vec<(UserId, u64)>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, u64)> = redis::cmd("HGETALL")
            .arg(keys::conversation_reads(conv))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let mut cursors = rows
            .into_iter()
            .map(|(user, seq)| {
                Ok((
                    UserId::parse(&user).map_err(|e| StoreError::Corrupt(e.0))?,
                    seq,
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
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for conv in convs {
            pipe.cmd("HGET")
                .arg(keys::conversation_reads(conv))
                .arg(user.as_str());
        }
        let cursors: Vec<Option<u64>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(cursors.into_iter().map(Option::unwrap_or_default).collect())
    }

    async fn create_topic(&self, topic: &TopicRecord) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(keys::topic(&topic.id))
            .arg("name")
            .arg(&topic.name)
            .arg("owner")
            .arg(topic.owner.as_str())
            .arg("created")
            .arg(topic.created_at_ms)
            .ignore()
            .cmd("ZADD")
            .arg(keys::user_topics(&topic.owner))
            .arg(topic.created_at_ms)
            .arg(topic.id.as_str())
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn topics(&self, ids: &[TopicId]) -> StoreResult<Vec<Option<TopicRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL")
                .arg(keys::topic(id))
                .cmd("HGETALL")
                .arg(keys::topic_contacts(id))
                .cmd("HGETALL")
                .arg(keys::topic_former(id));
        }
        let rows: Vec<HashMap<String, String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
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
            .arg(topic.as_str())
            .arg(cap);
        for contact in contacts {
            inv.key(keys::user_bound_topics(contact))
                .arg(contact.as_str());
        }
        let words: Vec<String> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if words.first().map(String::as_str) == Some("DELETED") {
            return Err(StoreError::Precondition);
        }
        words
            .iter()
            .map(|w| match w.as_str() {
                "added" => Ok(BindOutcome::Added),
                "already" => Ok(BindOutcome::Already),
                "full" => Ok(BindOutcome::Full),
                other => Err(StoreError::Corrupt(format!("bind said {other}"))),
            })
            .collect()
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
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for (conv, user) in threads {
            pipe.cmd("HGET")
                .arg(keys::conversation_reads(conv))
                .arg(user.as_str())
                .cmd("HGET")
                .arg(keys::conversation_delivered(conv))
                .arg(user.as_str())
                .cmd("HGET")
                .arg(keys::conversation_sent(conv))
                .arg(user.as_str());
        }
        let values: Vec<Option<u64>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(values
            .chunks(3)
            .map(|v| ThreadState {
                read: v[0].unwrap_or(0),
                delivered: v.get(1).copied().flatten().unwrap_or(0),
                sent: v.get(2).copied().flatten().unwrap_or(0),
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
        let mut conn = self.conn().await?;
        let mut invocation = self.scripts.mark_delivered.prepare_invoke();
        for (conv, user, seq) in marks {
            invocation
                .key(keys::conversation_delivered(conv))
                .arg(user.as_str())
                .arg(*seq);
        }
        let moved: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(moved.into_iter().map(|m| m == 1).collect())
    }

    async fn outbox_done(&self, ids: &[MessageId]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(keys::outbox());
        for id in ids {
            cmd.arg(id.to_string());
        }
        let _: () = cmd
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn outbox_claim(
        &self,
        older_than_ms: i64,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<MessageId>> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = self
            .scripts
            .outbox_claim
            .key(keys::outbox())
            .arg(older_than_ms)
            .arg(now_ms)
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        ids.iter()
            .map(|id| MessageId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
            .collect()
    }
}

impl RedisStore {
    async fn contact_hash(&self, key: String) -> StoreResult<Vec<ContactEntry>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, i64)> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let mut entries = rows
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
        let mut conn = self.conn().await?;
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let mut groups = ids
            .iter()
            .map(|id| GroupId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
            .collect::<StoreResult<Vec<_>>>()?;
        groups.sort();
        Ok(groups)
    }
}
