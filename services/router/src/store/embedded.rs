//! The standalone mode's store: one redb file, laid out like the Redis store
//! (hashes, sets, sorted sets, strings and logs under the same
//! `switchboard_shared::keys` names), so both backends share one data model.
//! Each atomic Redis script is one redb write transaction here; every commit
//! is durable before the call returns.
//!
//! No outbox: in the standalone mode the router, the bus and every gateway
//! live and die in one process, so a message cannot outlive the delivery task
//! that carries it while a connection to deliver to still exists; after a
//! crash clients reconnect and the replay from their cursors covers it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use switchboard_proto::pb;
use switchboard_shared::ids::{
    ConversationId, DeviceId, GroupId, MessageId, SessionId, TopicId, UserId, random_token,
};
use switchboard_shared::keys::{self, PeerFact};

use super::{
    Admission, Amendment, AppendBatch, AppendOutcome, Appended, AuditRecord, BindOutcome, Binding,
    ContactEntry, DirectStates, GroupDeleted, GroupMembership, GroupRecord, LoginFailures,
    MembershipChange, NewMessage, PushSubscription, Reacted, SessionRecord, Store, StoreError,
    StoreResult, StoredReaction, ThreadState, TimelineRecord, TopicRecord, UserRecord, amended,
    decode_idempotency, decode_message, decode_message_ids, decode_timeline_entry,
    encode_idempotency, encode_message, encode_message_ids, encode_timeline_entry, history_name,
    parse_history, parse_policy, parse_role, policy_name, role_name, same_targets,
};

use crate::search::{Query, SearchPosition, SearchScope, indexed_words};

type Pair = (&'static str, &'static str);

const HASHES: TableDefinition<'static, Pair, &'static [u8]> = TableDefinition::new("hashes");
const SETS: TableDefinition<'static, Pair, ()> = TableDefinition::new("sets");
const ZSETS: TableDefinition<'static, Pair, i64> = TableDefinition::new("zsets");
const STRINGS: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("strings");
const LOGS: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
    TableDefinition::new("logs");
/// The search index: (word, conversation, seq) → when the message was sent.
/// Kept by [`Write::put_message`] and [`Write::remove_message`], the only
/// writers of messages.
const WORDS: TableDefinition<'static, (&'static str, &'static str, u64), i64> =
    TableDefinition::new("words");

fn failed(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {err}"))
}

fn corrupt(err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(err.to_string())
}

fn text(bytes: &[u8]) -> StoreResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(corrupt)
}

fn number<T: std::str::FromStr>(bytes: &[u8]) -> StoreResult<T> {
    text(bytes)?
        .parse()
        .map_err(|_| corrupt("a stored number does not parse"))
}

// ---- reads, usable in read and write transactions

fn hget(
    t: &impl ReadableTable<Pair, &'static [u8]>,
    key: &str,
    field: &str,
) -> StoreResult<Option<Vec<u8>>> {
    Ok(t.get((key, field))
        .map_err(failed)?
        .map(|v| v.value().to_vec()))
}

fn hgetall(
    t: &impl ReadableTable<Pair, &'static [u8]>,
    key: &str,
) -> StoreResult<Vec<(String, Vec<u8>)>> {
    let mut rows = Vec::new();
    for entry in t.range((key, "")..).map_err(failed)? {
        let (k, v) = entry.map_err(failed)?;
        let (row_key, field) = k.value();
        if row_key != key {
            break;
        }
        rows.push((field.to_owned(), v.value().to_vec()));
    }
    Ok(rows)
}

fn smembers(t: &impl ReadableTable<Pair, ()>, key: &str) -> StoreResult<Vec<String>> {
    let mut members = Vec::new();
    for entry in t.range((key, "")..).map_err(failed)? {
        let (k, _) = entry.map_err(failed)?;
        let (row_key, member) = k.value();
        if row_key != key {
            break;
        }
        members.push(member.to_owned());
    }
    Ok(members)
}

fn zmembers_by_score_desc(
    t: &impl ReadableTable<Pair, i64>,
    key: &str,
) -> StoreResult<Vec<String>> {
    let mut members = Vec::new();
    for entry in t.range((key, "")..).map_err(failed)? {
        let (k, score) = entry.map_err(failed)?;
        let (row_key, member) = k.value();
        if row_key != key {
            break;
        }
        members.push((score.value(), member.to_owned()));
    }
    members.sort_by(|a, b| b.cmp(a));
    Ok(members.into_iter().map(|(_, m)| m).collect())
}

fn get_u64(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> StoreResult<u64> {
    match t.get(key).map_err(failed)? {
        Some(v) => number(v.value()),
        None => Ok(0),
    }
}

fn log_range(
    t: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    conv: &ConversationId,
    from: u64,
    to: u64,
) -> StoreResult<Vec<(u64, Vec<u8>)>> {
    let key = keys::conversation_log(conv);
    let mut rows = Vec::new();
    for entry in t
        .range((key.as_str(), from)..=(key.as_str(), to))
        .map_err(failed)?
    {
        let (k, v) = entry.map_err(failed)?;
        rows.push((k.value().1, v.value().to_vec()));
    }
    Ok(rows)
}

/// The members of a conversation's reactions set that belong to message
/// `seq` (all of them when `None`), with their scores, in member order.
fn reactions_of(
    t: &impl ReadableTable<Pair, i64>,
    key: &str,
    seq: Option<u64>,
) -> StoreResult<Vec<(String, i64)>> {
    let prefix = seq.map(reaction_prefix).unwrap_or_default();
    let mut found = Vec::new();
    for entry in t.range((key, prefix.as_str())..).map_err(failed)? {
        let (k, score) = entry.map_err(failed)?;
        let (row_key, member) = k.value();
        if row_key != key || !member.starts_with(&prefix) {
            break;
        }
        found.push((member.to_owned(), score.value()));
    }
    Ok(found)
}

/// How the members of message `seq`'s reactions begin.
fn reaction_prefix(seq: u64) -> String {
    format!("{seq:020} ")
}

fn parse_reaction(member: &str, at_ms: i64) -> StoreResult<StoredReaction> {
    let mut parts = member.splitn(3, ' ');
    let (Some(seq), Some(user), Some(emoji)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt(format!("a stored reaction reads {member:?}")));
    };
    Ok(StoredReaction {
        seq: seq
            .parse()
            .map_err(|_| corrupt("a stored reaction's seq"))?,
        user: parse_user(user)?,
        emoji: emoji.to_owned(),
        at_ms,
    })
}

fn parse_user(raw: &str) -> StoreResult<UserId> {
    UserId::parse(raw).map_err(|e| corrupt(e.0))
}

fn parse_group(raw: &str) -> StoreResult<GroupId> {
    GroupId::parse(raw).map_err(|e| corrupt(e.0))
}

/// The tables of one write transaction.
struct Write<'t> {
    hashes: redb::Table<'t, Pair, &'static [u8]>,
    sets: redb::Table<'t, Pair, ()>,
    zsets: redb::Table<'t, Pair, i64>,
    strings: redb::Table<'t, &'static str, &'static [u8]>,
    logs: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    words: redb::Table<'t, (&'static str, &'static str, u64), i64>,
}

impl Write<'_> {
    /// Stores message `seq` of `conv` (new or rewritten) and indexes its
    /// words in place of the old body's.
    fn put_message(&mut self, conv: &ConversationId, seq: u64, body: &[u8]) -> StoreResult<()> {
        let key = keys::conversation_log(conv);
        let old = self
            .logs
            .insert((key.as_str(), seq), body)
            .map_err(failed)?
            .map(|old| old.value().to_vec());
        if let Some(old) = old {
            self.index(conv, seq, &old, false)?;
        }
        self.index(conv, seq, body, true)
    }

    fn remove_message(&mut self, conv: &ConversationId, seq: u64) -> StoreResult<()> {
        let key = keys::conversation_log(conv);
        let old = self
            .logs
            .remove((key.as_str(), seq))
            .map_err(failed)?
            .map(|old| old.value().to_vec());
        match old {
            Some(old) => self.index(conv, seq, &old, false),
            None => Ok(()),
        }
    }

    /// Adds (or takes out) the postings of a stored body's words.
    fn index(
        &mut self,
        conv: &ConversationId,
        seq: u64,
        body: &[u8],
        add: bool,
    ) -> StoreResult<()> {
        let message = decode_message(conv, seq, body)?;
        let name = conv.to_string();
        for word in indexed_words(&message) {
            let key = (word.as_str(), name.as_str(), seq);
            if add {
                self.words.insert(key, message.sent_at_ms).map_err(failed)?;
            } else {
                self.words.remove(key).map_err(failed)?;
            }
        }
        Ok(())
    }

    fn hset(&mut self, key: &str, field: &str, value: &[u8]) -> StoreResult<()> {
        self.hashes.insert((key, field), value).map_err(failed)?;
        Ok(())
    }

    fn hdel(&mut self, key: &str, field: &str) -> StoreResult<bool> {
        Ok(self.hashes.remove((key, field)).map_err(failed)?.is_some())
    }

    fn hexists(&self, key: &str, field: &str) -> StoreResult<bool> {
        Ok(self.hashes.get((key, field)).map_err(failed)?.is_some())
    }

    fn hget_u64(&self, key: &str, field: &str) -> StoreResult<u64> {
        hget(&self.hashes, key, field)?.map_or(Ok(0), |v| number(&v))
    }

    fn incr(&mut self, key: &str) -> StoreResult<u64> {
        let next = get_u64(&self.strings, key)? + 1;
        self.strings
            .insert(key, next.to_string().as_bytes())
            .map_err(failed)?;
        Ok(next)
    }

    /// As `write_timeline` in `scripts/prelude.lua`.
    fn write_timeline(
        &mut self,
        topic: &TopicId,
        broadcast_id: &str,
        forwarded_from: &str,
        appended: &[Appended],
    ) -> StoreResult<u64> {
        let seq = self.incr(&keys::topic_timeline_seq(topic))?;
        let ids: Vec<MessageId> = appended.iter().map(Appended::message_id).collect();
        let copies = encode_message_ids(&ids);
        self.logs
            .insert(
                (keys::topic_timeline(topic).as_str(), seq),
                encode_timeline_entry(broadcast_id, &ids, forwarded_from).as_bytes(),
            )
            .map_err(failed)?;
        if !broadcast_id.is_empty() {
            self.hset(
                &keys::topic_broadcasts(topic),
                broadcast_id,
                copies.as_bytes(),
            )?;
        }
        Ok(seq)
    }

    /// Removes a whole hash; its fields.
    fn hclear(&mut self, key: &str) -> StoreResult<Vec<String>> {
        let fields: Vec<String> = hgetall(&self.hashes, key)?
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        for field in &fields {
            self.hdel(key, field)?;
        }
        Ok(fields)
    }

    fn sadd(&mut self, key: &str, member: &str) -> StoreResult<()> {
        self.sets.insert((key, member), ()).map_err(failed)?;
        Ok(())
    }

    fn srem(&mut self, key: &str, member: &str) -> StoreResult<()> {
        self.sets.remove((key, member)).map_err(failed)?;
        Ok(())
    }

    fn admitted(&self, admission: Option<&Admission>) -> StoreResult<bool> {
        match admission {
            None => Ok(true),
            Some(Admission::GroupMember { group, user }) => {
                self.hexists(&keys::group_members(group), user.as_str())
            }
            Some(Admission::TopicBound { topic, contact }) => {
                self.hexists(&keys::topic_contacts(topic), contact.as_str())
            }
        }
    }

    /// The same steps as `write_items` in `scripts/prelude.lua`, minus the outbox.
    fn write_item(&mut self, item: &NewMessage, now_ms: i64) -> StoreResult<Appended> {
        let conv = &item.conversation;
        let seq = self.incr(&keys::conversation_seq(conv))?;
        self.put_message(conv, seq, &encode_message(&item.message))?;
        if let Some(reader) = &item.read_by {
            let reads = keys::conversation_reads(conv);
            if seq > self.hget_u64(&reads, reader.as_str())? {
                self.hset(&reads, reader.as_str(), seq.to_string().as_bytes())?;
            }
            // As in Redis: kept for a topic thread's contact only.
            if matches!(conv, ConversationId::TopicThread { contact, .. } if contact == reader) {
                self.hset(
                    &keys::conversation_sent(conv),
                    reader.as_str(),
                    seq.to_string().as_bytes(),
                )?;
            }
        }
        let conv_name = conv.to_string();
        for user in &item.index_for {
            self.zsets
                .insert(
                    (keys::user_conversations(user).as_str(), conv_name.as_str()),
                    now_ms,
                )
                .map_err(failed)?;
        }
        Ok(Appended {
            conversation: conv.clone(),
            seq,
            sent_at_ms: now_ms,
        })
    }
}

pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Fixed for the life of the file.
    epoch: String,
    /// Failed-login counts and when they go away: not durable data (one
    /// process, and a restart may forget them), so kept in memory.
    login_failures:
        parking_lot::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let db = Database::create(path).map_err(failed)?;
        // Create every table so read transactions can open them.
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(HASHES).map_err(failed)?;
        txn.open_table(SETS).map_err(failed)?;
        txn.open_table(ZSETS).map_err(failed)?;
        txn.open_table(STRINGS).map_err(failed)?;
        txn.open_table(LOGS).map_err(failed)?;
        txn.open_table(WORDS).map_err(failed)?;
        let epoch = {
            let mut strings = txn.open_table(STRINGS).map_err(failed)?;
            let key = keys::epoch();
            let existing = strings
                .get(key.as_str())
                .map_err(failed)?
                .map(|v| text(v.value()))
                .transpose()?;
            match existing {
                Some(epoch) => epoch,
                None => {
                    let epoch = random_token(16);
                    strings
                        .insert(key.as_str(), epoch.as_bytes())
                        .map_err(failed)?;
                    epoch
                }
            }
        };
        txn.commit().map_err(failed)?;
        Ok(Self {
            db: Arc::new(db),
            epoch,
            login_failures: parking_lot::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Runs `f` in one write transaction on a blocking thread and commits.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Write<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(failed)?;
            let result = {
                let mut w = Write {
                    hashes: txn.open_table(HASHES).map_err(failed)?,
                    sets: txn.open_table(SETS).map_err(failed)?,
                    zsets: txn.open_table(ZSETS).map_err(failed)?,
                    strings: txn.open_table(STRINGS).map_err(failed)?,
                    logs: txn.open_table(LOGS).map_err(failed)?,
                    words: txn.open_table(WORDS).map_err(failed)?,
                };
                f(&mut w)
            };
            match result {
                Ok(value) => {
                    txn.commit().map_err(failed)?;
                    Ok(value)
                }
                // Dropping the transaction aborts it: nothing is written.
                Err(err) => Err(err),
            }
        })
        .await
        .map_err(failed)?
    }

    /// Runs `f` in one read transaction on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(failed)?;
            f(&txn)
        })
        .await
        .map_err(failed)?
    }

    async fn contact_hash(&self, key: String) -> StoreResult<Vec<ContactEntry>> {
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            hgetall(&hashes, &key)?
                .into_iter()
                .map(|(user, at)| {
                    Ok(ContactEntry {
                        user: parse_user(&user)?,
                        added_at_ms: number(&at)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// The other users of whom `fact` holds for `user`, with its value
    /// (when, for a block).
    async fn peers_with(&self, user: &UserId, fact: PeerFact) -> StoreResult<Vec<ContactEntry>> {
        let peers = keys::user_peers(user);
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            let mut entries = Vec::new();
            for (field, value) in hgetall(&hashes, &peers)? {
                if let Some((found, peer)) = PeerFact::parse_field(&field)
                    && found == fact
                {
                    entries.push(ContactEntry {
                        user: parse_user(peer)?,
                        added_at_ms: number(&value)?,
                    });
                }
            }
            Ok(entries)
        })
        .await
    }

    async fn conversation_set(&self, key: String) -> StoreResult<Vec<ConversationId>> {
        self.read(move |txn| {
            let sets = txn.open_table(SETS).map_err(failed)?;
            smembers(&sets, &key)?
                .iter()
                .map(|id| ConversationId::parse(id).map_err(|e| corrupt(e.0.clone())))
                .collect()
        })
        .await
    }

    async fn group_set(&self, key: String) -> StoreResult<Vec<GroupId>> {
        self.read(move |txn| {
            let sets = txn.open_table(SETS).map_err(failed)?;
            smembers(&sets, &key)?
                .iter()
                .map(|g| parse_group(g))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn epoch(&self) -> StoreResult<String> {
        Ok(self.epoch.clone())
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let user = user.clone();
        self.write(move |w| {
            let key = keys::user(&user.id);
            if w.hexists(&key, "pw")? {
                return Ok(false);
            }
            w.hset(&key, "pw", user.password_hash.as_bytes())?;
            w.hset(&key, "name", user.display_name.as_bytes())?;
            w.hset(&key, "created", user.created_at_ms.to_string().as_bytes())?;
            w.zsets
                .insert((keys::users().as_str(), user.id.as_str()), 0)
                .map_err(failed)?;
            Ok(true)
        })
        .await
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<Option<UserRecord>>> {
        let ids = ids.to_vec();
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            ids.into_iter()
                .map(|id| {
                    let key = keys::user(&id);
                    let Some(pw) = hget(&hashes, &key, "pw")? else {
                        return Ok(None);
                    };
                    Ok(Some(UserRecord {
                        display_name: hget(&hashes, &key, "name")?
                            .map(|n| text(&n))
                            .transpose()?
                            .unwrap_or_default(),
                        password_hash: text(&pw)?,
                        created_at_ms: hget(&hashes, &key, "created")?
                            .map(|c| number(&c))
                            .transpose()?
                            .unwrap_or(0),
                        banned: hget(&hashes, &key, "banned")?.is_some_and(|b| b == b"1"),
                        deleted: hget(&hashes, &key, "deleted")?.is_some_and(|b| b == b"1"),
                        id,
                    }))
                })
                .collect()
        })
        .await
    }

    async fn put_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let session = session.clone();
        self.write(move |w| {
            let key = keys::session(&session.id);
            w.hset(&key, "user", session.user.as_str().as_bytes())?;
            w.hset(&key, "device", session.device.as_str().as_bytes())?;
            w.hset(&key, "exp", session.expires_at_ms.to_string().as_bytes())?;
            let listed = keys::user_sessions(&session.user);
            w.zsets
                .insert(
                    (listed.as_str(), session.id.as_str()),
                    session.expires_at_ms,
                )
                .map_err(failed)?;
            w.zsets
                .insert((keys::users().as_str(), session.user.as_str()), 0)
                .map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &SessionId, now_ms: i64) -> StoreResult<Option<SessionRecord>> {
        let key = keys::session(id);
        let id = id.clone();
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            let fields = |field| hget(&hashes, &key, field);
            let (Some(user), Some(device), Some(exp)) =
                (fields("user")?, fields("device")?, fields("exp")?)
            else {
                return Ok(None);
            };
            let expires_at_ms: i64 = number(&exp)?;
            if expires_at_ms <= now_ms {
                return Ok(None);
            }
            Ok(Some(SessionRecord {
                id,
                user: parse_user(&text(&user)?)?,
                device: DeviceId::parse(&text(&device)?).map_err(|e| corrupt(e.0))?,
                expires_at_ms,
            }))
        })
        .await
    }

    async fn delete_session(&self, id: &SessionId) -> StoreResult<()> {
        let key = keys::session(id);
        let id = id.clone();
        self.write(move |w| {
            if let Some(user) = hget(&w.hashes, &key, "user")? {
                let user = parse_user(&text(&user)?)?;
                let listed = keys::user_sessions(&user);
                w.zsets
                    .remove((listed.as_str(), id.as_str()))
                    .map_err(failed)?;
            }
            for field in ["user", "device", "exp"] {
                w.hdel(&key, field)?;
            }
            Ok(())
        })
        .await
    }

    async fn login_failures(&self, user: &UserId, address: &str) -> StoreResult<LoginFailures> {
        let now = std::time::Instant::now();
        let counts = self.login_failures.lock();
        let count = |key: String| match counts.get(&key) {
            Some((count, until)) if *until > now => (
                *count,
                u64::try_from(until.duration_since(now).as_millis()).unwrap_or(u64::MAX),
            ),
            _ => (0, 0),
        };
        let (account, account_window_left_ms) = count(keys::login_failures_of_user(user));
        let (address, address_window_left_ms) = count(keys::login_failures_from(address));
        Ok(LoginFailures {
            account,
            account_window_left_ms,
            address,
            address_window_left_ms,
        })
    }

    async fn record_login_failure(
        &self,
        user: &UserId,
        address: &str,
        window: std::time::Duration,
    ) -> StoreResult<()> {
        let now = std::time::Instant::now();
        let mut counts = self.login_failures.lock();
        if counts.len() > 100_000 {
            counts.retain(|_, (_, until)| *until > now);
        }
        for key in [
            keys::login_failures_of_user(user),
            keys::login_failures_from(address),
        ] {
            let entry = counts.entry(key).or_insert((0, now + window));
            if entry.1 <= now {
                *entry = (0, now + window);
            }
            entry.0 += 1;
        }
        Ok(())
    }

    async fn clear_login_failures(&self, user: &UserId) -> StoreResult<()> {
        self.login_failures
            .lock()
            .remove(&keys::login_failures_of_user(user));
        Ok(())
    }

    async fn user_ids(&self, prefix: &str, after: &str, limit: usize) -> StoreResult<Vec<UserId>> {
        let (prefix, after) = (prefix.to_owned(), after.to_owned());
        self.read(move |txn| {
            let zsets = txn.open_table(ZSETS).map_err(failed)?;
            let index = keys::users();
            let start = if after.as_str() > prefix.as_str() {
                after.as_str()
            } else {
                prefix.as_str()
            };
            let mut ids = Vec::new();
            for entry in zsets.range((index.as_str(), start)..).map_err(failed)? {
                let (k, _) = entry.map_err(failed)?;
                let (key, member) = k.value();
                if key != index || !member.starts_with(prefix.as_str()) || ids.len() == limit {
                    break;
                }
                if member != after {
                    ids.push(parse_user(member)?);
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn user_sessions(&self, user: &UserId, now_ms: i64) -> StoreResult<Vec<SessionRecord>> {
        let user = user.clone();
        self.read(move |txn| {
            let zsets = txn.open_table(ZSETS).map_err(failed)?;
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            let listed = keys::user_sessions(&user);
            let mut sessions = Vec::new();
            for entry in zsets.range((listed.as_str(), "")..).map_err(failed)? {
                let (k, exp) = entry.map_err(failed)?;
                let (key, id) = k.value();
                if key != listed {
                    break;
                }
                let key = keys::session(&SessionId::parse(id).map_err(|e| corrupt(e.0))?);
                let device = hget(&hashes, &key, "device")?;
                if let Some(device) = device
                    && exp.value() > now_ms
                {
                    sessions.push(SessionRecord {
                        id: SessionId::parse(id).map_err(|e| corrupt(e.0))?,
                        user: user.clone(),
                        device: DeviceId::parse(&text(&device)?).map_err(|e| corrupt(e.0))?,
                        expires_at_ms: exp.value(),
                    });
                }
            }
            Ok(sessions)
        })
        .await
    }

    async fn set_banned(&self, user: &UserId, banned: bool) -> StoreResult<bool> {
        let key = keys::user(user);
        self.write(move |w| {
            if !w.hexists(&key, "pw")? {
                return Ok(false);
            }
            if banned {
                w.hset(&key, "banned", b"1")?;
            } else {
                w.hdel(&key, "banned")?;
            }
            Ok(true)
        })
        .await
    }

    async fn set_password(&self, user: &UserId, password_hash: &str) -> StoreResult<bool> {
        let (key, hash) = (keys::user(user), password_hash.to_owned());
        self.write(move |w| {
            if !w.hexists(&key, "pw")? {
                return Ok(false);
            }
            w.hset(&key, "pw", hash.as_bytes())?;
            Ok(true)
        })
        .await
    }

    async fn set_display_name(&self, user: &UserId, name: &str) -> StoreResult<bool> {
        let (key, name) = (keys::user(user), name.to_owned());
        self.write(move |w| {
            let deleted = hget(&w.hashes, &key, "deleted")?.is_some_and(|d| d == b"1");
            if !w.hexists(&key, "pw")? || deleted {
                return Ok(false);
            }
            w.hset(&key, "name", name.as_bytes())?;
            Ok(true)
        })
        .await
    }

    async fn delete_account(&self, user: &UserId) -> StoreResult<bool> {
        let key = keys::user(user);
        self.write(move |w| {
            if !w.hexists(&key, "pw")? {
                return Ok(false);
            }
            w.hset(&key, "pw", b"")?;
            w.hset(&key, "name", b"")?;
            w.hset(&key, "banned", b"1")?;
            w.hset(&key, "deleted", b"1")?;
            Ok(true)
        })
        .await
    }

    async fn user_groups_ever(&self, user: &UserId) -> StoreResult<Vec<GroupId>> {
        self.group_set(keys::user_groups_ever(user)).await
    }

    async fn delete_group(&self, group: &GroupId) -> StoreResult<Option<GroupDeleted>> {
        let group = group.clone();
        self.write(move |w| {
            let key = keys::group(&group);
            let users = |listed: &str| -> StoreResult<Vec<UserId>> {
                listed
                    .split(' ')
                    .filter(|u| !u.is_empty())
                    .map(parse_user)
                    .collect()
            };
            if let Some(listed) = hget(&w.hashes, &key, "deleted_members")? {
                return Ok(Some(GroupDeleted {
                    users: users(&text(&listed)?)?,
                    before: true,
                }));
            }
            if !w.hexists(&key, "name")? {
                return Ok(None);
            }
            for field in ["name", "owner", "policy", "history"] {
                w.hdel(&key, field)?;
            }
            let mut listed = w.hclear(&keys::group_members(&group))?;
            listed.extend(w.hclear(&keys::group_invites(&group))?);
            w.hclear(&keys::group_joined(&group))?;
            w.hclear(&keys::group_left(&group))?;
            let listed = listed.join(" ");
            w.hset(&key, "deleted_members", listed.as_bytes())?;
            let users = users(&listed)?;
            for user in &users {
                w.srem(&keys::user_groups(user), group.as_str())?;
                w.srem(&keys::user_invites(user), group.as_str())?;
            }
            Ok(Some(GroupDeleted {
                users,
                before: false,
            }))
        })
        .await
    }

    async fn erase_sent(&self, conv: &ConversationId, sender: &UserId) -> StoreResult<u64> {
        let (conv, sender) = (conv.clone(), sender.clone());
        self.write(move |w| {
            let mut tombstones = Vec::new();
            for (seq, body) in log_range(&w.logs, &conv, 0, u64::MAX)? {
                if let Some(tombstone) =
                    amended(&conv, seq, &body, &Amendment::Erase, Some(&sender))?
                {
                    tombstones.push((seq, tombstone));
                }
            }
            for (seq, tombstone) in &tombstones {
                w.put_message(&conv, *seq, tombstone)?;
            }
            Ok(tombstones.len() as u64)
        })
        .await
    }

    async fn amend_message(
        &self,
        conv: &ConversationId,
        seq: u64,
        amendment: &Amendment,
    ) -> StoreResult<bool> {
        let (conv, amendment) = (conv.clone(), amendment.clone());
        self.write(move |w| {
            let Some((_, body)) = log_range(&w.logs, &conv, seq, seq)?.pop() else {
                return Ok(false);
            };
            let Some(changed) = amended(&conv, seq, &body, &amendment, None)? else {
                return Ok(false);
            };
            w.put_message(&conv, seq, &changed)?;
            Ok(true)
        })
        .await
    }

    async fn erase_conversation(&self, conv: &ConversationId) -> StoreResult<u64> {
        let conv = conv.clone();
        self.write(move |w| {
            let seqs: Vec<u64> = log_range(&w.logs, &conv, 0, u64::MAX)?
                .into_iter()
                .map(|(seq, _)| seq)
                .collect();
            for seq in &seqs {
                w.remove_message(&conv, *seq)?;
            }
            let reactions = keys::conversation_reactions(&conv);
            for (member, _) in reactions_of(&w.zsets, &reactions, None)? {
                w.zsets
                    .remove((reactions.as_str(), member.as_str()))
                    .map_err(failed)?;
            }
            Ok(seqs.len() as u64)
        })
        .await
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
        let key = keys::conversation_reactions(conv);
        let mine = format!("{}{user} ", reaction_prefix(seq));
        let member = format!("{mine}{emoji}");
        self.write(move |w| {
            let there = w
                .zsets
                .get((key.as_str(), member.as_str()))
                .map_err(failed)?
                .is_some();
            if there == on {
                return Ok(Reacted::Unchanged);
            }
            if !on {
                w.zsets
                    .remove((key.as_str(), member.as_str()))
                    .map_err(failed)?;
                return Ok(Reacted::Changed);
            }
            let held = reactions_of(&w.zsets, &key, Some(seq))?
                .iter()
                .filter(|(m, _)| m.starts_with(&mine))
                .count();
            if held >= max {
                return Ok(Reacted::TooMany);
            }
            w.zsets
                .insert((key.as_str(), member.as_str()), at_ms)
                .map_err(failed)?;
            Ok(Reacted::Changed)
        })
        .await
    }

    async fn reactions(
        &self,
        conv: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<StoredReaction>> {
        let key = keys::conversation_reactions(conv);
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        self.read(move |txn| {
            let zsets = txn.open_table(ZSETS).map_err(failed)?;
            let mut found = Vec::new();
            for seq in seqs {
                let mut of_seq = reactions_of(&zsets, &key, Some(seq))?
                    .into_iter()
                    .map(|(member, at_ms)| parse_reaction(&member, at_ms))
                    .collect::<StoreResult<Vec<_>>>()?;
                of_seq.sort_by(|a, b| {
                    (a.at_ms, &a.user, &a.emoji).cmp(&(b.at_ms, &b.user, &b.emoji))
                });
                found.extend(of_seq);
            }
            Ok(found)
        })
        .await
    }

    async fn set_conversation_muted(
        &self,
        user: &UserId,
        conv: &ConversationId,
        muted: bool,
    ) -> StoreResult<bool> {
        let (key, member) = (keys::user_muted(user), conv.to_string());
        self.write(move |w| {
            let there = w
                .sets
                .get((key.as_str(), member.as_str()))
                .map_err(failed)?
                .is_some();
            if there == muted {
                return Ok(false);
            }
            if muted {
                w.sadd(&key, &member)?;
            } else {
                w.srem(&key, &member)?;
            }
            Ok(true)
        })
        .await
    }

    async fn muted_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>> {
        self.conversation_set(keys::user_muted(user)).await
    }

    async fn put_push(&self, user: &UserId, subscription: &PushSubscription) -> StoreResult<()> {
        let (key, endpoint, stored) = (
            keys::user_push(user),
            subscription.endpoint.clone(),
            subscription.encode(),
        );
        self.write(move |w| w.hset(&key, &endpoint, &stored)).await
    }

    async fn remove_push(&self, user: &UserId, endpoint: &str) -> StoreResult<bool> {
        let (key, endpoint) = (keys::user_push(user), endpoint.to_owned());
        self.write(move |w| w.hdel(&key, &endpoint)).await
    }

    async fn push_subscriptions(&self, user: &UserId) -> StoreResult<Vec<PushSubscription>> {
        let key = keys::user_push(user);
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            hgetall(&hashes, &key)?
                .into_iter()
                .map(|(endpoint, stored)| PushSubscription::decode(endpoint, &stored))
                .collect()
        })
        .await
    }

    async fn drop_reactions(&self, conv: &ConversationId, seq: u64) -> StoreResult<()> {
        let key = keys::conversation_reactions(conv);
        self.write(move |w| {
            for (member, _) in reactions_of(&w.zsets, &key, Some(seq))? {
                w.zsets
                    .remove((key.as_str(), member.as_str()))
                    .map_err(failed)?;
            }
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditRecord) -> StoreResult<()> {
        let entry = entry.clone();
        self.write(move |w| {
            let log = keys::audit();
            let seq = w.incr(&log)?;
            let row = serde_json::json!({
                "at": entry.at_ms, "admin": entry.admin, "action": entry.action,
                "target": entry.target, "detail": entry.detail,
            })
            .to_string();
            w.logs
                .insert((log.as_str(), seq), row.as_bytes())
                .map_err(failed)?;
            if let Some(old) = seq.checked_sub(keys::AUDIT_KEPT as u64) {
                w.logs.remove((log.as_str(), old)).map_err(failed)?;
            }
            Ok(())
        })
        .await
    }

    async fn audit(&self, before: Option<&str>, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        // Ids are `<ms>-<seq>`; the seq orders the log.
        let before = before
            .and_then(|id| id.split_once('-'))
            .and_then(|(_, seq)| seq.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        self.read(move |txn| {
            let logs = txn.open_table(LOGS).map_err(failed)?;
            let log = keys::audit();
            let mut entries = Vec::new();
            for row in logs
                .range((log.as_str(), 0)..(log.as_str(), before))
                .map_err(failed)?
                .rev()
                .take(limit)
            {
                let (k, v) = row.map_err(failed)?;
                let fields: serde_json::Value =
                    serde_json::from_slice(v.value()).map_err(corrupt)?;
                let field = |name: &str| fields[name].as_str().unwrap_or_default().to_owned();
                let at_ms = fields["at"].as_i64().unwrap_or(0);
                entries.push(AuditRecord {
                    id: format!("{at_ms}-{}", k.value().1),
                    at_ms,
                    admin: field("admin"),
                    action: field("action"),
                    target: field("target"),
                    detail: field("detail"),
                });
            }
            Ok(entries)
        })
        .await
    }

    async fn add_contact(&self, owner: &UserId, contact: &UserId, at_ms: i64) -> StoreResult<bool> {
        let (owner, contact) = (owner.clone(), contact.clone());
        self.write(move |w| {
            let key = keys::contacts(&owner);
            if w.hexists(&key, contact.as_str())? {
                return Ok(false);
            }
            let at = at_ms.to_string();
            w.hset(&key, contact.as_str(), at.as_bytes())?;
            w.hset(&keys::contacted_by(&contact), owner.as_str(), at.as_bytes())?;
            Ok(true)
        })
        .await
    }

    async fn remove_contact(&self, owner: &UserId, contact: &UserId) -> StoreResult<bool> {
        let (owner, contact) = (owner.clone(), contact.clone());
        self.write(move |w| {
            let removed = w.hdel(&keys::contacts(&owner), contact.as_str())?;
            w.hdel(&keys::contacted_by(&contact), owner.as_str())?;
            Ok(removed)
        })
        .await
    }

    async fn contacts(&self, owner: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.contact_hash(keys::contacts(owner)).await
    }

    async fn contacted_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.contact_hash(keys::contacted_by(user)).await
    }

    async fn mutual_among(&self, user: &UserId, others: &[UserId]) -> StoreResult<Vec<bool>> {
        let (user, others) = (user.clone(), others.to_vec());
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            others
                .iter()
                .map(|other| {
                    let has = |key: String, field: &UserId| -> StoreResult<bool> {
                        Ok(hget(&hashes, &key, field.as_str())?.is_some())
                    };
                    let peers = keys::user_peers(&user);
                    let fact = |fact| -> StoreResult<bool> {
                        Ok(hget(&hashes, &peers, &keys::peer_field(other, fact))?.is_some())
                    };
                    Ok(has(keys::contacts(&user), other)?
                        && has(keys::contacts(other), &user)?
                        && !fact(PeerFact::Blocked)?
                        && !fact(PeerFact::BlockedBy)?)
                })
                .collect()
        })
        .await
    }

    async fn set_blocked(
        &self,
        user: &UserId,
        other: &UserId,
        blocked: bool,
        at_ms: i64,
    ) -> StoreResult<bool> {
        let (user, other) = (user.clone(), other.clone());
        self.write(move |w| {
            let (mine, theirs) = (keys::user_peers(&user), keys::user_peers(&other));
            let forward = keys::peer_field(&other, PeerFact::Blocked);
            let reverse = keys::peer_field(&user, PeerFact::BlockedBy);
            if w.hexists(&mine, &forward)? == blocked {
                return Ok(false);
            }
            if blocked {
                let at = at_ms.to_string();
                w.hset(&mine, &forward, at.as_bytes())?;
                w.hset(&theirs, &reverse, at.as_bytes())?;
            } else {
                w.hdel(&mine, &forward)?;
                w.hdel(&theirs, &reverse)?;
            }
            Ok(true)
        })
        .await
    }

    async fn blocked(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.peers_with(user, PeerFact::Blocked).await
    }

    async fn blocked_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>> {
        self.peers_with(user, PeerFact::BlockedBy).await
    }

    async fn direct_states(&self, user: &UserId, peer: &UserId) -> StoreResult<DirectStates> {
        let (peers, peer) = (keys::user_peers(user), peer.clone());
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            let has = |fact| -> StoreResult<bool> {
                Ok(hget(&hashes, &peers, &keys::peer_field(&peer, fact))?.is_some())
            };
            Ok(DirectStates {
                blocked: has(PeerFact::Blocked)?,
                blocked_by: has(PeerFact::BlockedBy)?,
                accepted: has(PeerFact::Accepted)?,
            })
        })
        .await
    }

    async fn accept_direct(&self, user: &UserId, peer: &UserId) -> StoreResult<bool> {
        let (peers, field) = (
            keys::user_peers(user),
            keys::peer_field(peer, PeerFact::Accepted),
        );
        self.write(move |w| {
            if w.hexists(&peers, &field)? {
                return Ok(false);
            }
            w.hset(&peers, &field, b"1")?;
            Ok(true)
        })
        .await
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
        let group = group.clone();
        let epoch = self.epoch.clone();
        self.write(move |w| {
            let key = keys::group(&group.id);
            if w.hexists(&key, "name")? {
                return Err(StoreError::Precondition);
            }
            w.hset(&key, "name", group.name.as_bytes())?;
            w.hset(&key, "owner", group.owner.as_str().as_bytes())?;
            w.hset(&key, "policy", policy_name(group.policy).as_bytes())?;
            w.hset(&key, "history", history_name(group.history).as_bytes())?;
            w.hset(&key, "created", group.created_at_ms.to_string().as_bytes())?;
            w.hset(
                &keys::group_members(&group.id),
                group.owner.as_str(),
                role_name(pb::Role::Owner).as_bytes(),
            )?;
            w.sadd(&keys::user_groups(&group.owner), group.id.as_str())?;
            w.sadd(&keys::user_groups_ever(&group.owner), group.id.as_str())?;
            let appended = w.write_item(&created, created.message.sent_at_ms)?;
            w.hset(
                &keys::group_joined(&group.id),
                group.owner.as_str(),
                appended.seq.to_string().as_bytes(),
            )?;
            Ok(AppendOutcome {
                duplicate: false,
                appended: vec![appended],
                epoch,
                timeline_seq: 0,
                memo: String::new(),
            })
        })
        .await
    }

    async fn groups(&self, ids: &[GroupId]) -> StoreResult<Vec<Option<GroupRecord>>> {
        let ids = ids.to_vec();
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            ids.into_iter()
                .map(|id| {
                    let key = keys::group(&id);
                    let (Some(name), Some(owner), Some(policy), Some(history)) = (
                        hget(&hashes, &key, "name")?,
                        hget(&hashes, &key, "owner")?,
                        hget(&hashes, &key, "policy")?,
                        hget(&hashes, &key, "history")?,
                    ) else {
                        return Ok(None);
                    };
                    let member_count = hgetall(&hashes, &keys::group_members(&id))?.len();
                    Ok(Some(GroupRecord {
                        name: text(&name)?,
                        owner: parse_user(&text(&owner)?)?,
                        policy: parse_policy(&text(&policy)?)?,
                        history: parse_history(&text(&history)?)?,
                        created_at_ms: hget(&hashes, &key, "created")?
                            .map(|c| number(&c))
                            .transpose()?
                            .unwrap_or(0),
                        member_count: u32::try_from(member_count).unwrap_or(u32::MAX),
                        description: hget(&hashes, &key, "description")?
                            .map(|d| text(&d))
                            .transpose()?
                            .unwrap_or_default(),
                        id,
                    }))
                })
                .collect()
        })
        .await
    }

    async fn update_group(
        &self,
        group: &GroupId,
        name: Option<&str>,
        description: Option<&str>,
    ) -> StoreResult<bool> {
        let key = keys::group(group);
        let (name, description) = (name.map(str::to_owned), description.map(str::to_owned));
        self.write(move |w| {
            if !w.hexists(&key, "name")? {
                return Ok(false);
            }
            if let Some(name) = name {
                w.hset(&key, "name", name.as_bytes())?;
            }
            if let Some(description) = description {
                w.hset(&key, "description", description.as_bytes())?;
            }
            Ok(true)
        })
        .await
    }

    async fn member_role(&self, group: &GroupId, user: &UserId) -> StoreResult<Option<pb::Role>> {
        let (key, user) = (keys::group_members(group), user.clone());
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            hget(&hashes, &key, user.as_str())?
                .map(|r| parse_role(&text(&r)?))
                .transpose()
        })
        .await
    }

    async fn group_membership(
        &self,
        group: &GroupId,
        user: &UserId,
    ) -> StoreResult<GroupMembership> {
        let (group, user) = (group.clone(), user.clone());
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            let seq = |key: String| -> StoreResult<u64> {
                hget(&hashes, &key, user.as_str())?.map_or(Ok(0), |v| number(&v))
            };
            let role = hget(&hashes, &keys::group_members(&group), user.as_str())?
                .map(|r| parse_role(&text(&r)?))
                .transpose()?;
            Ok(GroupMembership {
                role,
                joined_seq: seq(keys::group_joined(&group))?,
                left_seq: if role.is_some() {
                    0
                } else {
                    seq(keys::group_left(&group))?
                },
            })
        })
        .await
    }

    async fn members(&self, group: &GroupId) -> StoreResult<Vec<(UserId, pb::Role)>> {
        let key = keys::group_members(group);
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            hgetall(&hashes, &key)?
                .into_iter()
                .map(|(user, role)| Ok((parse_user(&user)?, parse_role(&text(&role)?)?)))
                .collect()
        })
        .await
    }

    async fn user_groups(&self, user: &UserId) -> StoreResult<Vec<GroupId>> {
        self.group_set(keys::user_groups(user)).await
    }

    async fn invite(&self, group: &GroupId, user: &UserId, at_ms: i64) -> StoreResult<bool> {
        let (group, user) = (group.clone(), user.clone());
        self.write(move |w| {
            let key = keys::group_invites(&group);
            if w.hexists(&key, user.as_str())? {
                return Ok(false);
            }
            w.hset(&key, user.as_str(), at_ms.to_string().as_bytes())?;
            w.sadd(&keys::user_invites(&user), group.as_str())?;
            Ok(true)
        })
        .await
    }

    async fn is_invited(&self, group: &GroupId, user: &UserId) -> StoreResult<bool> {
        let (key, user) = (keys::group_invites(group), user.clone());
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            Ok(hget(&hashes, &key, user.as_str())?.is_some())
        })
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
        let (group, user) = (group.clone(), user.clone());
        let epoch = self.epoch.clone();
        self.write(move |w| {
            let members = keys::group_members(&group);
            let is_member = w.hexists(&members, user.as_str())?;
            let deleted = w.hexists(&keys::group(&group), "deleted_members")?;
            if deleted || matches!(change, MembershipChange::Join { .. }) == is_member {
                return Err(StoreError::Precondition);
            }
            match change {
                MembershipChange::Join { role } => {
                    w.hset(&members, user.as_str(), role_name(role).as_bytes())?;
                    w.sadd(&keys::user_groups(&user), group.as_str())?;
                    w.sadd(&keys::user_groups_ever(&user), group.as_str())?;
                    w.hdel(&keys::group_invites(&group), user.as_str())?;
                    w.srem(&keys::user_invites(&user), group.as_str())?;
                }
                MembershipChange::Leave => {
                    w.hdel(&members, user.as_str())?;
                    w.srem(&keys::user_groups(&user), group.as_str())?;
                }
                MembershipChange::SetRole { role } => {
                    w.hset(&members, user.as_str(), role_name(role).as_bytes())?;
                }
                MembershipChange::TakeOwnership => {
                    // As 'owner' in `scripts/membership.lua`.
                    let group_key = keys::group(&group);
                    let before = hget(&w.hashes, &group_key, "owner")?
                        .map(|v| text(&v))
                        .transpose()?;
                    if let Some(before) = before.filter(|b| b.as_str() != user.as_str())
                        && w.hexists(&members, &before)?
                    {
                        w.hset(&members, &before, role_name(pb::Role::Admin).as_bytes())?;
                    }
                    w.hset(
                        &members,
                        user.as_str(),
                        role_name(pb::Role::Owner).as_bytes(),
                    )?;
                    w.hset(&group_key, "owner", user.as_str().as_bytes())?;
                }
            }
            let appended = w.write_item(&message, message.message.sent_at_ms)?;
            let seq = appended.seq.to_string();
            match change {
                MembershipChange::Join { .. } => {
                    w.hset(&keys::group_joined(&group), user.as_str(), seq.as_bytes())?;
                    w.hdel(&keys::group_left(&group), user.as_str())?;
                }
                MembershipChange::Leave => {
                    w.hset(&keys::group_left(&group), user.as_str(), seq.as_bytes())?;
                }
                MembershipChange::SetRole { .. } | MembershipChange::TakeOwnership => {}
            }
            Ok(AppendOutcome {
                duplicate: false,
                appended: vec![appended],
                epoch,
                timeline_seq: 0,
                memo: String::new(),
            })
        })
        .await
    }

    async fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome> {
        let epoch = self.epoch.clone();
        self.write(move |w| {
            let idem_key = batch
                .idempotency
                .as_ref()
                .map(|(sender, id)| keys::idempotency(sender, id.as_str()));
            if let Some(key) = &idem_key
                && let Some(prior) = w.strings.get(key.as_str()).map_err(failed)?
            {
                let prior = decode_idempotency(&text(prior.value())?)?;
                if !same_targets(&batch, &prior.appended) {
                    return Err(StoreError::IdempotencyConflict);
                }
                return Ok(AppendOutcome {
                    duplicate: true,
                    appended: prior.appended,
                    epoch,
                    timeline_seq: prior.timeline_seq,
                    memo: prior.memo,
                });
            }
            for (index, item) in batch.items.iter().enumerate() {
                if !w.admitted(item.admission.as_ref())? {
                    return Err(StoreError::NotAdmitted(index));
                }
            }
            let appended = batch
                .items
                .iter()
                .map(|item| w.write_item(item, batch.now_ms))
                .collect::<StoreResult<Vec<_>>>()?;
            let timeline_seq = match &batch.timeline {
                Some(timeline) => w.write_timeline(
                    &timeline.topic,
                    &timeline.broadcast_id,
                    &timeline.forwarded_from,
                    &appended,
                )?,
                None => 0,
            };
            if let Some(key) = &idem_key {
                // Kept for ever: the standalone mode's volumes are small.
                w.strings
                    .insert(
                        key.as_str(),
                        encode_idempotency(&appended, timeline_seq, &batch.memo).as_bytes(),
                    )
                    .map_err(failed)?;
            }
            Ok(AppendOutcome {
                duplicate: false,
                appended,
                epoch,
                timeline_seq,
                memo: batch.memo,
            })
        })
        .await
    }

    async fn messages_after(
        &self,
        conv: &ConversationId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>> {
        let conv = conv.clone();
        self.read(move |txn| {
            let logs = txn.open_table(LOGS).map_err(failed)?;
            let key = keys::conversation_log(&conv);
            let mut messages = Vec::new();
            for entry in logs
                .range((key.as_str(), after.saturating_add(1))..=(key.as_str(), u64::MAX))
                .map_err(failed)?
                .take(limit)
            {
                let (k, v) = entry.map_err(failed)?;
                messages.push(decode_message(&conv, k.value().1, v.value())?);
            }
            Ok(messages)
        })
        .await
    }

    async fn messages_at(
        &self,
        conv: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<pb::Message>> {
        let (conv, mut seqs) = (conv.clone(), seqs.to_vec());
        seqs.sort_unstable();
        seqs.dedup();
        self.read(move |txn| {
            let logs = txn.open_table(LOGS).map_err(failed)?;
            let key = keys::conversation_log(&conv);
            let mut messages = Vec::new();
            for seq in seqs {
                if let Some(body) = logs.get((key.as_str(), seq)).map_err(failed)? {
                    messages.push(decode_message(&conv, seq, body.value())?);
                }
            }
            Ok(messages)
        })
        .await
    }

    async fn messages_before(
        &self,
        conv: &ConversationId,
        before: u64,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>> {
        if before <= 1 || limit == 0 {
            return Ok(Vec::new());
        }
        let conv = conv.clone();
        self.read(move |txn| {
            let logs = txn.open_table(LOGS).map_err(failed)?;
            let rows = log_range(&logs, &conv, 1, before - 1)?;
            let skip = rows.len().saturating_sub(limit);
            rows.into_iter()
                .skip(skip)
                .map(|(seq, bytes)| decode_message(&conv, seq, &bytes))
                .collect()
        })
        .await
    }

    async fn search(
        &self,
        scopes: &[SearchScope],
        words: &[String],
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>> {
        let scopes: HashMap<String, SearchScope> = scopes
            .iter()
            .map(|s| (s.conversation.to_string(), s.clone()))
            .collect();
        let words = words.to_vec();
        let after = after.cloned();
        self.read(move |txn| {
            let index = txn.open_table(WORDS).map_err(failed)?;
            let logs = txn.open_table(LOGS).map_err(failed)?;
            // The postings of the longest word (the fewest, as a rule),
            // newest first; each candidate is then read and must have
            // every word.
            let Some(longest) = words.iter().max_by_key(|w| w.len()) else {
                return Ok(Vec::new());
            };
            let mut candidates = Vec::new();
            for entry in index.range((longest.as_str(), "", 0)..).map_err(failed)? {
                let (key, sent_at) = entry.map_err(failed)?;
                let (word, conv, seq) = key.value();
                if !word.starts_with(longest.as_str()) {
                    break;
                }
                let position = SearchPosition {
                    sent_at_ms: sent_at.value(),
                    conversation: conv.to_owned(),
                    seq,
                };
                let in_scope = scopes.get(conv).is_some_and(|s| s.holds(seq));
                if in_scope && after.as_ref().is_none_or(|after| &position < after) {
                    candidates.push(position);
                }
            }
            candidates.sort_by(|a, b| b.cmp(a));
            candidates.dedup();
            let query = Query { words };
            let mut found = Vec::new();
            for position in candidates {
                let conv = &scopes[&position.conversation].conversation;
                let Some((seq, body)) = log_range(&logs, conv, position.seq, position.seq)?.pop()
                else {
                    continue;
                };
                let message = decode_message(conv, seq, &body)?;
                if query.found_in(&indexed_words(&message)) {
                    found.push(message);
                    if found.len() == limit {
                        break;
                    }
                }
            }
            Ok(found)
        })
        .await
    }

    async fn heads(&self, convs: &[ConversationId]) -> StoreResult<Vec<u64>> {
        let convs = convs.to_vec();
        self.read(move |txn| {
            let strings = txn.open_table(STRINGS).map_err(failed)?;
            convs
                .iter()
                .map(|conv| get_u64(&strings, &keys::conversation_seq(conv)))
                .collect()
        })
        .await
    }

    async fn user_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>> {
        let key = keys::user_conversations(user);
        self.read(move |txn| {
            let zsets = txn.open_table(ZSETS).map_err(failed)?;
            zmembers_by_score_desc(&zsets, &key)?
                .iter()
                .map(|c| ConversationId::parse(c).map_err(|e| corrupt(e.0)))
                .collect()
        })
        .await
    }

    async fn mark_read(&self, conv: &ConversationId, user: &UserId, seq: u64) -> StoreResult<u64> {
        let (key, user) = (keys::conversation_reads(conv), user.clone());
        self.write(move |w| {
            let current: u64 = match hget(&w.hashes, &key, user.as_str())? {
                Some(v) => number(&v)?,
                None => 0,
            };
            if seq > current {
                w.hset(&key, user.as_str(), seq.to_string().as_bytes())?;
                return Ok(seq);
            }
            Ok(current)
        })
        .await
    }

    async fn read_cursors(&self, conv: &ConversationId) -> StoreResult<Vec<(UserId, u64)>> {
        let key = keys::conversation_reads(conv);
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            hgetall(&hashes, &key)?
                .into_iter()
                .map(|(user, seq)| Ok((parse_user(&user)?, number(&seq)?)))
                .collect()
        })
        .await
    }

    async fn read_cursors_of(
        &self,
        user: &UserId,
        convs: &[ConversationId],
    ) -> StoreResult<Vec<u64>> {
        let (user, convs) = (user.clone(), convs.to_vec());
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            convs
                .iter()
                .map(|conv| {
                    hget(&hashes, &keys::conversation_reads(conv), user.as_str())?
                        .map_or(Ok(0), |v| number(&v))
                })
                .collect()
        })
        .await
    }

    async fn create_topic(&self, topic: &TopicRecord) -> StoreResult<()> {
        let topic = topic.clone();
        self.write(move |w| {
            let key = keys::topic(&topic.id);
            w.hset(&key, "name", topic.name.as_bytes())?;
            w.hset(&key, "owner", topic.owner.as_str().as_bytes())?;
            w.hset(&key, "created", topic.created_at_ms.to_string().as_bytes())?;
            w.zsets
                .insert(
                    (keys::user_topics(&topic.owner).as_str(), topic.id.as_str()),
                    topic.created_at_ms,
                )
                .map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn topics(&self, ids: &[TopicId]) -> StoreResult<Vec<Option<TopicRecord>>> {
        let ids = ids.to_vec();
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            ids.into_iter()
                .map(|id| {
                    let key = keys::topic(&id);
                    let (Some(name), Some(owner)) =
                        (hget(&hashes, &key, "name")?, hget(&hashes, &key, "owner")?)
                    else {
                        return Ok(None);
                    };
                    let mut contacts = hgetall(&hashes, &keys::topic_contacts(&id))?
                        .into_iter()
                        .chain(hgetall(&hashes, &keys::topic_former(&id))?)
                        .map(|(user, state)| {
                            Ok((parse_user(&user)?, Binding::parse(&text(&state)?)?))
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    contacts.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Some(TopicRecord {
                        name: text(&name)?,
                        owner: parse_user(&text(&owner)?)?,
                        created_at_ms: hget(&hashes, &key, "created")?
                            .map(|c| number(&c))
                            .transpose()?
                            .unwrap_or(0),
                        deleted: hget(&hashes, &key, "deleted")?.is_some(),
                        contacts,
                        id,
                    }))
                })
                .collect()
        })
        .await
    }

    async fn user_topics(&self, owner: &UserId) -> StoreResult<Vec<TopicId>> {
        let key = keys::user_topics(owner);
        self.read(move |txn| {
            let zsets = txn.open_table(ZSETS).map_err(failed)?;
            let mut ids = zmembers_by_score_desc(&zsets, &key)?;
            ids.reverse();
            ids.iter()
                .map(|t| TopicId::parse(t).map_err(|e| corrupt(e.0)))
                .collect()
        })
        .await
    }

    async fn rename_topic(&self, topic: &TopicId, name: &str) -> StoreResult<()> {
        let (key, name) = (keys::topic(topic), name.to_owned());
        self.write(move |w| w.hset(&key, "name", name.as_bytes()))
            .await
    }

    async fn delete_topic(&self, topic: &TopicId) -> StoreResult<Vec<UserId>> {
        let topic = topic.clone();
        self.write(move |w| {
            w.hset(&keys::topic(&topic), "deleted", b"1")?;
            hgetall(&w.hashes, &keys::topic_contacts(&topic))?
                .into_iter()
                .map(|(contact, _)| parse_user(&contact))
                .collect()
        })
        .await
    }

    async fn bind(
        &self,
        topic: &TopicId,
        contacts: &[UserId],
        cap: usize,
    ) -> StoreResult<Vec<BindOutcome>> {
        let (topic, contacts) = (topic.clone(), contacts.to_vec());
        self.write(move |w| {
            if w.hexists(&keys::topic(&topic), "deleted")? {
                return Err(StoreError::Precondition);
            }
            let current = keys::topic_contacts(&topic);
            let mut bound = hgetall(&w.hashes, &current)?.len();
            contacts
                .iter()
                .map(|contact| {
                    if w.hexists(&current, contact.as_str())? {
                        return Ok(BindOutcome::Already);
                    }
                    if bound >= cap {
                        return Ok(BindOutcome::Full);
                    }
                    w.hset(&current, contact.as_str(), Binding::Bound.name().as_bytes())?;
                    w.hdel(&keys::topic_former(&topic), contact.as_str())?;
                    w.sadd(&keys::user_bound_topics(contact), topic.as_str())?;
                    bound += 1;
                    Ok(BindOutcome::Added)
                })
                .collect()
        })
        .await
    }

    async fn set_muted(&self, topic: &TopicId, contact: &UserId, muted: bool) -> StoreResult<bool> {
        let (key, contact) = (keys::topic_contacts(topic), contact.clone());
        let state = if muted {
            Binding::Muted
        } else {
            Binding::Bound
        };
        self.write(move |w| {
            if !w.hexists(&key, contact.as_str())? {
                return Ok(false);
            }
            w.hset(&key, contact.as_str(), state.name().as_bytes())?;
            Ok(true)
        })
        .await
    }

    async fn unbind(
        &self,
        topic: &TopicId,
        contact: &UserId,
        reason: Binding,
        message: NewMessage,
    ) -> StoreResult<AppendOutcome> {
        let (topic, contact) = (topic.clone(), contact.clone());
        let epoch = self.epoch.clone();
        self.write(move |w| {
            if !w.hdel(&keys::topic_contacts(&topic), contact.as_str())? {
                return Err(StoreError::Precondition);
            }
            w.hset(
                &keys::topic_former(&topic),
                contact.as_str(),
                reason.name().as_bytes(),
            )?;
            let appended = w.write_item(&message, message.message.sent_at_ms)?;
            let timeline_seq = w.write_timeline(&topic, "", "", std::slice::from_ref(&appended))?;
            Ok(AppendOutcome {
                duplicate: false,
                appended: vec![appended],
                epoch,
                timeline_seq,
                memo: String::new(),
            })
        })
        .await
    }

    async fn timeline(
        &self,
        topic: &TopicId,
        before: u64,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<TimelineRecord>> {
        let key = keys::topic_timeline(topic);
        self.read(move |txn| {
            let logs = txn.open_table(LOGS).map_err(failed)?;
            let (from, to) = match after {
                Some(after) => (after.saturating_add(1), u64::MAX),
                None if before <= 1 => return Ok(Vec::new()),
                None => (1, before - 1),
            };
            let mut rows = Vec::new();
            for entry in logs
                .range((key.as_str(), from)..=(key.as_str(), to))
                .map_err(failed)?
            {
                let (k, v) = entry.map_err(failed)?;
                rows.push((k.value().1, text(v.value())?));
            }
            let window: Vec<(u64, String)> = if after.is_some() {
                rows.into_iter().take(limit).collect()
            } else {
                let skip = rows.len().saturating_sub(limit);
                rows.into_iter().skip(skip).collect()
            };
            window
                .iter()
                .map(|(seq, record)| decode_timeline_entry(*seq, record))
                .collect()
        })
        .await
    }

    async fn broadcast(
        &self,
        topic: &TopicId,
        broadcast_id: &str,
    ) -> StoreResult<Option<Vec<MessageId>>> {
        let (key, id) = (keys::topic_broadcasts(topic), broadcast_id.to_owned());
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            hget(&hashes, &key, &id)?
                .map(|ids| decode_message_ids(&text(&ids)?))
                .transpose()
        })
        .await
    }

    async fn thread_states(
        &self,
        threads: &[(ConversationId, UserId)],
    ) -> StoreResult<Vec<ThreadState>> {
        let threads = threads.to_vec();
        self.read(move |txn| {
            let hashes = txn.open_table(HASHES).map_err(failed)?;
            let field = |key: String, user: &UserId| -> StoreResult<u64> {
                hget(&hashes, &key, user.as_str())?.map_or(Ok(0), |v| number(&v))
            };
            threads
                .iter()
                .map(|(conv, user)| {
                    Ok(ThreadState {
                        read: field(keys::conversation_reads(conv), user)?,
                        delivered: field(keys::conversation_delivered(conv), user)?,
                        sent: field(keys::conversation_sent(conv), user)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn mark_delivered(
        &self,
        marks: &[(ConversationId, UserId, u64)],
    ) -> StoreResult<Vec<bool>> {
        let marks: Vec<(String, UserId, u64)> = marks
            .iter()
            .map(|(conv, user, seq)| (keys::conversation_delivered(conv), user.clone(), *seq))
            .collect();
        self.write(move |w| {
            let mut moved = Vec::with_capacity(marks.len());
            for (key, user, seq) in &marks {
                let forward = *seq > w.hget_u64(key, user.as_str())?;
                if forward {
                    w.hset(key, user.as_str(), seq.to_string().as_bytes())?;
                }
                moved.push(forward);
            }
            Ok(moved)
        })
        .await
    }

    async fn outbox_done(&self, _ids: &[MessageId]) -> StoreResult<()> {
        Ok(())
    }

    async fn outbox_claim(
        &self,
        _older_than_ms: i64,
        _now_ms: i64,
        _limit: usize,
    ) -> StoreResult<Vec<MessageId>> {
        Ok(Vec::new())
    }
}
