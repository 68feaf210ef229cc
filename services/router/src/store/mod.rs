//! The router's durable state, behind one trait with two backends:
//! [`redis::RedisStore`] (production) and [`embedded::EmbeddedStore`] (the
//! standalone mode, a redb file). Every operation that must be atomic is one
//! Lua script in Redis and one write transaction in redb; the conformance
//! tests in `tests/store_contract.rs` run the same cases against both.
//! [`history::PgHistory`] is the PostgreSQL message history: the Redis
//! store keeps its messages there when given one (docs/STORAGE.md), and the
//! contract tests run every case on that pairing too.

pub mod embedded;
pub mod history;
pub mod redis;
pub mod timed;

use async_trait::async_trait;
use switchboard_proto::pb;
use switchboard_shared::ids::{
    ClientMsgId, ConversationId, DeviceId, GroupId, MessageId, SessionId, TopicId, UserId,
};

use crate::search::{SearchPosition, SearchScope};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Unavailable(String),
    /// An item of an append batch failed its admission check.
    #[error("item {0} of the batch was not admitted")]
    NotAdmitted(usize),
    /// A membership change found the membership not as it required.
    #[error("the membership changed concurrently")]
    Precondition,
    /// The client message id was already used for other conversations.
    #[error("the client message id was already used for a different send")]
    IdempotencyConflict,
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store's epoch is not the one this process knew: it lost its data
    /// (and now has a new epoch). Nothing was written; whatever was learnt
    /// from the old store (sessions, users) must be forgotten before the
    /// operation is tried again.
    #[error("the store's epoch changed")]
    EpochChanged,
    /// The database holds a schema version this build does not know.
    #[error("{0}")]
    UnknownSchema(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at_ms: i64,
    /// Banned by an admin: no login until unbanned. Ignored on create.
    pub banned: bool,
    /// Deleted by an admin: a tombstone that keeps the id taken (no name,
    /// no password, banned). Ignored on create.
    pub deleted: bool,
}

/// What deleting a group did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDeleted {
    /// Its members and invitees when it was deleted.
    pub users: Vec<UserId>,
    /// An earlier call deleted it (this one finished what was left).
    pub before: bool,
}

/// One line of the admin audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Orders the log (the store's own id; empty on append).
    pub id: String,
    pub at_ms: i64,
    /// The admin credential's name.
    pub admin: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user: UserId,
    pub device: DeviceId,
    pub expires_at_ms: i64,
}

/// Failed logins counted in the current windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginFailures {
    /// For the account, and when its window ends (ms from now).
    pub account: u32,
    pub account_window_left_ms: u64,
    /// From the client address (any account), and when its window ends.
    pub address: u32,
    pub address_window_left_ms: u64,
}

/// A device's Web Push subscription (RFC 8030), as its page registered it,
/// kept while the session that registered it lasts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushSubscription {
    #[serde(skip)]
    pub endpoint: String,
    /// The browser's P-256 public key and auth secret, base64url.
    pub p256dh: String,
    pub auth: String,
    pub previews: bool,
    pub session: String,
    pub added_at_ms: i64,
}

impl PushSubscription {
    /// The stored form (the endpoint is the hash field).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers serialize")
    }

    pub fn decode(endpoint: String, stored: &[u8]) -> StoreResult<Self> {
        let mut sub: Self =
            serde_json::from_slice(stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sub.endpoint = endpoint;
        Ok(sub)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    pub user: UserId,
    pub added_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: String,
    pub owner: UserId,
    pub policy: pb::JoinPolicy,
    /// What new members can read (never `Unspecified` once stored).
    pub history: pb::HistoryVisibility,
    pub created_at_ms: i64,
    /// Filled on reads; ignored on create.
    pub member_count: u32,
    /// Empty until set (by `update_group`).
    pub description: String,
}

/// One user's place in a group, now and before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupMembership {
    /// Their role while a member; `None` if they are not one now.
    pub role: Option<pb::Role>,
    /// Seq of the message that says they (last) joined; 0 if never.
    pub joined_seq: u64,
    /// Seq of the message that says they left or were removed, while they
    /// are not a member; 0 otherwise.
    pub left_seq: u64,
}

/// A check made atomically with an append: the sender must still belong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    GroupMember { group: GroupId, user: UserId },
    TopicBound { topic: TopicId, contact: UserId },
}

/// One message to append to one conversation.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation: ConversationId,
    /// Everything but `conversation_id`, `seq` and `message_id`, which the
    /// store fills in on reads.
    pub message: pb::Message,
    pub admission: Option<Admission>,
    /// Users whose conversation list gets this conversation (direct and topic threads).
    pub index_for: Vec<UserId>,
    /// The sender, whose read cursor moves to the new message.
    pub read_by: Option<UserId>,
}

/// Messages appended in one atomic step under one idempotency key: a plain
/// send is one item, a topic broadcast one item per contact.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    pub idempotency: Option<(UserId, ClientMsgId)>,
    pub items: Vec<NewMessage>,
    pub now_ms: i64,
    /// Topic threads: also one entry in the topic's merged timeline.
    pub timeline: Option<TimelineWrite>,
    /// What the caller needs to answer a retry exactly as it answered this
    /// send (kept with the idempotency record, returned on a duplicate).
    pub memo: String,
}

/// The timeline entry an append adds to its topic.
#[derive(Debug, Clone)]
pub struct TimelineWrite {
    pub topic: TopicId,
    /// Set for a broadcast: its copies are remembered under this id.
    pub broadcast_id: String,
    /// Copy and resend: the message the broadcast was copied from. Kept in
    /// the owner's timeline only, never in a contact's copy.
    pub forwarded_from: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub conversation: ConversationId,
    pub seq: u64,
    pub sent_at_ms: i64,
}

impl Appended {
    pub fn message_id(&self) -> MessageId {
        MessageId {
            conversation: self.conversation.clone(),
            seq: self.seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The idempotency key had been used: nothing was written, and
    /// `appended`, `timeline_seq` and `memo` are what the first send stored.
    pub duplicate: bool,
    pub appended: Vec<Appended>,
    /// The store epoch the seqs belong to.
    pub epoch: String,
    /// The timeline entry written (0 without one).
    pub timeline_seq: u64,
    /// The batch's memo.
    pub memo: String,
}

/// What the idempotency record of a send keeps: enough to answer a retry
/// field for field as the first send was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub appended: Vec<Appended>,
    pub timeline_seq: u64,
    pub memo: String,
}

impl AppendOutcome {
    /// The one message of a single-item append.
    pub fn single(&self) -> Result<&Appended, crate::RouterError> {
        self.appended
            .first()
            .ok_or_else(|| crate::RouterError::Internal("the store appended nothing".into()))
    }
}

/// A membership change, applied atomically with its system message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Requires: not a member. Also clears an invitation.
    Join { role: pb::Role },
    /// Requires: a member.
    Leave,
    /// Requires: a member.
    SetRole { role: pb::Role },
    /// Requires: a member. They become the owner; the owner before them,
    /// if still a member, an admin.
    TakeOwnership,
}

/// A contact's place in a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Bound,
    Muted,
    /// No longer bound: left on their own.
    Left,
    /// No longer bound: removed by the owner (or the topic was deleted).
    Removed,
}

impl Binding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bound => "bound",
            Self::Muted => "muted",
            Self::Left => "left",
            Self::Removed => "removed",
        }
    }

    pub fn parse(name: &str) -> StoreResult<Self> {
        match name {
            "bound" => Ok(Self::Bound),
            "muted" => Ok(Self::Muted),
            "left" => Ok(Self::Left),
            "removed" => Ok(Self::Removed),
            other => Err(StoreError::Corrupt(format!("unknown binding {other:?}"))),
        }
    }

    /// Still receives the topic's messages and may reply.
    pub fn is_current(self) -> bool {
        matches!(self, Self::Bound | Self::Muted)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub id: TopicId,
    pub name: String,
    pub owner: UserId,
    pub created_at_ms: i64,
    pub deleted: bool,
    /// Every contact ever bound, sorted, with their state. Filled on reads.
    pub contacts: Vec<(UserId, Binding)>,
}

impl TopicRecord {
    pub fn binding(&self, contact: &UserId) -> Option<Binding> {
        self.contacts
            .iter()
            .find(|(user, _)| user == contact)
            .map(|(_, binding)| *binding)
    }

    pub fn bound(&self) -> impl Iterator<Item = &UserId> {
        self.contacts
            .iter()
            .filter(|(_, b)| b.is_current())
            .map(|(user, _)| user)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindOutcome {
    Added,
    Already,
    Full,
}

/// One entry of a topic's merged timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRecord {
    pub seq: u64,
    /// Empty for a single message.
    pub broadcast_id: String,
    pub messages: Vec<MessageId>,
    /// Copy and resend: what the broadcast was copied from (owner only).
    pub forwarded_from: String,
}

/// Where one participant of a thread stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadState {
    pub read: u64,
    pub delivered: u64,
    /// Seq of the last message they sent, kept for a topic thread's
    /// contact (the owner's "replied"); 0 for anyone else.
    pub sent: u64,
}

/// The timeline entry record:
/// `<broadcast id>|<message id> <message id>...|<forwarded from>`.
pub fn decode_timeline_entry(seq: u64, record: &str) -> StoreResult<TimelineRecord> {
    let mut parts = record.splitn(3, '|');
    let (Some(broadcast_id), Some(ids)) = (parts.next(), parts.next()) else {
        return Err(StoreError::Corrupt(format!("timeline entry {record:?}")));
    };
    Ok(TimelineRecord {
        seq,
        broadcast_id: broadcast_id.to_owned(),
        messages: decode_message_ids(ids)?,
        forwarded_from: parts.next().unwrap_or_default().to_owned(),
    })
}

pub fn encode_timeline_entry(
    broadcast_id: &str,
    ids: &[MessageId],
    forwarded_from: &str,
) -> String {
    format!(
        "{broadcast_id}|{}|{forwarded_from}",
        encode_message_ids(ids)
    )
}

pub fn decode_message_ids(ids: &str) -> StoreResult<Vec<MessageId>> {
    ids.split(' ')
        .filter(|s| !s.is_empty())
        .map(|id| MessageId::parse(id).map_err(|e| StoreError::Corrupt(e.0)))
        .collect()
}

pub fn encode_message_ids(ids: &[MessageId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Stored names of roles and join policies.
pub fn role_name(role: pb::Role) -> &'static str {
    match role {
        pb::Role::Owner => "owner",
        pb::Role::Admin => "admin",
        pb::Role::Member | pb::Role::Unspecified => "member",
    }
}

pub fn parse_role(name: &str) -> StoreResult<pb::Role> {
    match name {
        "owner" => Ok(pb::Role::Owner),
        "admin" => Ok(pb::Role::Admin),
        "member" => Ok(pb::Role::Member),
        other => Err(StoreError::Corrupt(format!("unknown role {other:?}"))),
    }
}

pub fn history_name(history: pb::HistoryVisibility) -> &'static str {
    match history {
        pb::HistoryVisibility::FromJoin => "join",
        pb::HistoryVisibility::All | pb::HistoryVisibility::Unspecified => "all",
    }
}

pub fn parse_history(name: &str) -> StoreResult<pb::HistoryVisibility> {
    match name {
        "join" => Ok(pb::HistoryVisibility::FromJoin),
        "all" => Ok(pb::HistoryVisibility::All),
        other => Err(StoreError::Corrupt(format!("unknown history {other:?}"))),
    }
}

pub fn policy_name(policy: pb::JoinPolicy) -> &'static str {
    match policy {
        pb::JoinPolicy::InviteOnly => "invite",
        pb::JoinPolicy::Open | pb::JoinPolicy::Unspecified => "open",
    }
}

pub fn parse_policy(name: &str) -> StoreResult<pb::JoinPolicy> {
    match name {
        "invite" => Ok(pb::JoinPolicy::InviteOnly),
        "open" => Ok(pb::JoinPolicy::Open),
        other => Err(StoreError::Corrupt(format!("unknown policy {other:?}"))),
    }
}

/// Decodes a stored message and fills in what the store knows.
pub fn decode_message(conv: &ConversationId, seq: u64, bytes: &[u8]) -> StoreResult<pb::Message> {
    let mut message = <pb::Message as prost::Message>::decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("message {conv}#{seq}: {e}")))?;
    message.conversation_id = conv.to_string();
    message.seq = seq;
    message.message_id = MessageId {
        conversation: conv.clone(),
        seq,
    }
    .to_string();
    Ok(message)
}

/// The stored form of a message. A quote is stored as what it points at
/// (id and sender): its excerpt is filled in on the way out, so it always
/// reads as the quoted message does now and keeps no copy of its text.
pub fn encode_message(message: &pb::Message) -> Vec<u8> {
    match &message.reply_to {
        Some(quote) if !quote.excerpt.is_empty() || quote.deleted => {
            let mut stored = message.clone();
            if let Some(quote) = &mut stored.reply_to {
                quote.excerpt.clear();
                quote.deleted = false;
            }
            prost::Message::encode_to_vec(&stored)
        }
        _ => prost::Message::encode_to_vec(message),
    }
}

/// Where one side of a direct conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectStates {
    /// The user blocked the peer.
    pub blocked: bool,
    /// The peer blocked the user.
    pub blocked_by: bool,
    /// The user wrote in, or accepted, their direct conversation.
    pub accepted: bool,
}

/// One person's reaction to a message, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReaction {
    pub seq: u64,
    pub user: UserId,
    pub emoji: String,
    pub at_ms: i64,
}

/// What setting a reaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reacted {
    Changed,
    /// It was already so: added and there, or taken back and not there.
    Unchanged,
    /// Not added: the person has the most different ones there already.
    TooMany,
}

/// A change of one stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amendment {
    /// Deleted for everyone: the text goes, a tombstone stays.
    Erase,
    /// Its sender edited it.
    Edit { text: String, at_ms: i64 },
}

/// The stored message `bytes` amended, or `None` if there is nothing to
/// change (a tombstone changes no more; the same text is no edit; with
/// `only_from`, someone else's message is left as it is).
pub fn amended(
    conv: &ConversationId,
    seq: u64,
    bytes: &[u8],
    amendment: &Amendment,
    only_from: Option<&UserId>,
) -> StoreResult<Option<Vec<u8>>> {
    let mut message = <pb::Message as prost::Message>::decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("message {conv}#{seq}: {e}")))?;
    if message.deleted || only_from.is_some_and(|sender| message.sender != sender.as_str()) {
        return Ok(None);
    }
    match amendment {
        Amendment::Erase => {
            message.text.clear();
            message.deleted = true;
        }
        Amendment::Edit { text, at_ms } => {
            if &message.text == text {
                return Ok(None);
            }
            message.text.clone_from(text);
            message.edited_at_ms = *at_ms;
        }
    }
    Ok(Some(encode_message(&message)))
}

/// The idempotency record:
/// `<message id> <message id>...|<sent at ms>|<timeline seq>|<memo>` (scripts
/// that append one system message write only the first two parts).
pub fn encode_idempotency(appended: &[Appended], timeline_seq: u64, memo: &str) -> String {
    let ids: Vec<String> = appended
        .iter()
        .map(|a| a.message_id().to_string())
        .collect();
    let sent_at = appended.first().map_or(0, |a| a.sent_at_ms);
    format!("{}|{sent_at}|{timeline_seq}|{memo}", ids.join(" "))
}

pub fn decode_idempotency(record: &str) -> StoreResult<IdempotencyRecord> {
    let corrupt = || StoreError::Corrupt(format!("idempotency record {record:?}"));
    // Message ids never hold a '|'; the memo, last, may.
    let mut parts = record.splitn(4, '|');
    let (Some(ids), Some(sent_at)) = (parts.next(), parts.next()) else {
        return Err(corrupt());
    };
    let sent_at_ms: i64 = sent_at.parse().map_err(|_| corrupt())?;
    let timeline_seq: u64 = match parts.next() {
        Some(seq) => seq.parse().map_err(|_| corrupt())?,
        None => 0,
    };
    let memo = parts.next().unwrap_or_default().to_owned();
    let appended = ids
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|id| {
            let id = MessageId::parse(id).map_err(|_| corrupt())?;
            Ok(Appended {
                conversation: id.conversation,
                seq: id.seq,
                sent_at_ms,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(IdempotencyRecord {
        appended,
        timeline_seq,
        memo,
    })
}

/// Checks that a replayed idempotency record answers the same send: the
/// same conversation, or for a topic broadcast the same topic (its
/// recipients may differ if the binding changed between the attempts).
pub fn same_targets(batch: &AppendBatch, stored: &[Appended]) -> bool {
    let (Some(item), Some(prior)) = (batch.items.first(), stored.first()) else {
        return false;
    };
    match (&item.conversation, &prior.conversation) {
        (
            ConversationId::TopicThread { topic: a, .. },
            ConversationId::TopicThread { topic: b, .. },
        ) => a == b,
        (a, b) => a == b,
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The epoch clients number their cursors under, created on first use.
    async fn epoch(&self) -> StoreResult<String>;
    /// The epoch of what a router caches (sessions, users): when it changes,
    /// the state behind them was lost. The same as [`Self::epoch`] unless
    /// messages live apart from that state (the history store).
    async fn state_epoch(&self) -> StoreResult<String> {
        self.epoch().await
    }

    // ---- accounts
    /// False if the id is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<bool>;
    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<Option<UserRecord>>>;
    async fn put_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session, if it exists and has not expired by `now_ms`.
    async fn session(&self, id: &SessionId, now_ms: i64) -> StoreResult<Option<SessionRecord>>;
    async fn delete_session(&self, id: &SessionId) -> StoreResult<()>;
    /// Failed logins in the current windows, for the account and the address.
    async fn login_failures(&self, user: &UserId, address: &str) -> StoreResult<LoginFailures>;
    /// Counts one failed login against the account and the address; each
    /// count goes away `window` after its first failure.
    async fn record_login_failure(
        &self,
        user: &UserId,
        address: &str,
        window: std::time::Duration,
    ) -> StoreResult<()>;
    /// A successful login forgets the account's failures.
    async fn clear_login_failures(&self, user: &UserId) -> StoreResult<()>;

    // ---- administration
    /// Ids of users starting with `prefix`, past `after`, in id order.
    async fn user_ids(&self, prefix: &str, after: &str, limit: usize) -> StoreResult<Vec<UserId>>;
    /// The user's sessions still valid at `now_ms`.
    async fn user_sessions(&self, user: &UserId, now_ms: i64) -> StoreResult<Vec<SessionRecord>>;
    /// Bans or unbans; false if there is no such user.
    async fn set_banned(&self, user: &UserId, banned: bool) -> StoreResult<bool>;
    /// Replaces the password hash; false if there is no such user.
    async fn set_password(&self, user: &UserId, password_hash: &str) -> StoreResult<bool>;
    /// Turns the account into a tombstone: no display name, no password,
    /// banned, deleted; the id stays taken. False if there is no such user.
    async fn delete_account(&self, user: &UserId) -> StoreResult<bool>;
    /// Renames an account; false if there is no such account or it was
    /// deleted.
    async fn set_display_name(&self, user: &UserId, name: &str) -> StoreResult<bool>;
    /// Every group the user has ever been a member of.
    async fn user_groups_ever(&self, user: &UserId) -> StoreResult<Vec<GroupId>>;
    /// Deletes the group: its record (reads find no such group from then
    /// on), members, invitations and join/leave seqs, and each member's and
    /// invitee's entry for it; a tombstone remembers who they were. `None`
    /// for a group that never existed. Asking again after a cut-short
    /// deletion finishes it.
    async fn delete_group(&self, group: &GroupId) -> StoreResult<Option<GroupDeleted>>;
    /// Erases the text of every message `sender` sent in the conversation,
    /// leaving tombstones (`deleted`, no text) in their places; how many
    /// were erased now.
    async fn erase_sent(&self, conv: &ConversationId, sender: &UserId) -> StoreResult<u64>;
    /// Changes one message as `amendment` says; false if there is no such
    /// message, it is a tombstone, or the change would change nothing.
    async fn amend_message(
        &self,
        conv: &ConversationId,
        seq: u64,
        amendment: &Amendment,
    ) -> StoreResult<bool>;
    /// Removes every message of the conversation, and their reactions; its
    /// head stays (seqs are never reused). How many were removed.
    async fn erase_conversation(&self, conv: &ConversationId) -> StoreResult<u64>;
    /// Adds (`on`) or takes back `user`'s `emoji` on message `seq`; one
    /// more would take the user past `max` different ones there: `TooMany`.
    /// The caller has checked that the message exists.
    #[allow(clippy::too_many_arguments)]
    async fn react(
        &self,
        conv: &ConversationId,
        seq: u64,
        user: &UserId,
        emoji: &str,
        on: bool,
        at_ms: i64,
        max: usize,
    ) -> StoreResult<Reacted>;
    /// The reactions to the messages `seqs` of a conversation, by seq, then
    /// oldest first.
    async fn reactions(
        &self,
        conv: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<StoredReaction>>;
    /// Mutes (or unmutes) a conversation for `user`; false if it already was.
    async fn set_conversation_muted(
        &self,
        user: &UserId,
        conv: &ConversationId,
        muted: bool,
    ) -> StoreResult<bool>;
    /// The conversations `user` muted.
    async fn muted_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>>;
    /// Keeps (or replaces, by endpoint) one of `user`'s push subscriptions.
    async fn put_push(&self, user: &UserId, subscription: &PushSubscription) -> StoreResult<()>;
    /// Forgets one; false if it was not kept.
    async fn remove_push(&self, user: &UserId, endpoint: &str) -> StoreResult<bool>;
    /// `user`'s push subscriptions, in no order.
    async fn push_subscriptions(&self, user: &UserId) -> StoreResult<Vec<PushSubscription>>;
    /// Drops every reaction to message `seq` (it was deleted).
    async fn drop_reactions(&self, conv: &ConversationId, seq: u64) -> StoreResult<()>;
    /// Appends to the audit log (about the last `switchboard_shared::keys::AUDIT_KEPT` kept).
    async fn append_audit(&self, entry: &AuditRecord) -> StoreResult<()>;
    /// The audit log, newest first, before the entry `before` (if any).
    async fn audit(&self, before: Option<&str>, limit: usize) -> StoreResult<Vec<AuditRecord>>;

    // ---- contacts
    /// False if already a contact.
    async fn add_contact(&self, owner: &UserId, contact: &UserId, at_ms: i64) -> StoreResult<bool>;
    /// False if it was not a contact.
    async fn remove_contact(&self, owner: &UserId, contact: &UserId) -> StoreResult<bool>;
    /// The users `owner` added.
    async fn contacts(&self, owner: &UserId) -> StoreResult<Vec<ContactEntry>>;
    /// The users who added `user`.
    async fn contacted_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>>;
    /// Whether `a` and `b` added each other.
    async fn mutual(&self, a: &UserId, b: &UserId) -> StoreResult<bool> {
        Ok(self.mutual_among(a, std::slice::from_ref(b)).await?[0])
    }
    /// For each of `others`, whether they and `user` added each other.
    /// For each of `others`: whether they and `user` added each other and
    /// neither blocked the other.
    async fn mutual_among(&self, user: &UserId, others: &[UserId]) -> StoreResult<Vec<bool>>;
    /// Blocks (or unblocks) `other` for `user`; false if it already was so.
    async fn set_blocked(
        &self,
        user: &UserId,
        other: &UserId,
        blocked: bool,
        at_ms: i64,
    ) -> StoreResult<bool>;
    /// The users `user` blocked, with when.
    async fn blocked(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>>;
    /// The users who blocked `user`.
    async fn blocked_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>>;
    /// What `user` writing to `peer` directly depends on: one read.
    async fn direct_states(&self, user: &UserId, peer: &UserId) -> StoreResult<DirectStates>;
    /// `user` accepts their direct conversation with `peer`; false if they had.
    async fn accept_direct(&self, user: &UserId, peer: &UserId) -> StoreResult<bool>;
    /// The users whose direct conversation with `user` they accepted (or
    /// wrote in).
    async fn accepted_peers(&self, user: &UserId) -> StoreResult<Vec<UserId>>;

    // ---- groups
    async fn create_group(
        &self,
        group: &GroupRecord,
        created: NewMessage,
    ) -> StoreResult<AppendOutcome>;
    async fn groups(&self, ids: &[GroupId]) -> StoreResult<Vec<Option<GroupRecord>>>;
    /// Renames the group and/or sets its description; false if there is
    /// no such group.
    async fn update_group(
        &self,
        group: &GroupId,
        name: Option<&str>,
        description: Option<&str>,
    ) -> StoreResult<bool>;
    async fn member_role(&self, group: &GroupId, user: &UserId) -> StoreResult<Option<pb::Role>>;
    /// The user's place in the group, now and before.
    async fn group_membership(
        &self,
        group: &GroupId,
        user: &UserId,
    ) -> StoreResult<GroupMembership>;
    async fn members(&self, group: &GroupId) -> StoreResult<Vec<(UserId, pb::Role)>>;
    async fn user_groups(&self, user: &UserId) -> StoreResult<Vec<GroupId>>;
    /// False if already invited.
    async fn invite(&self, group: &GroupId, user: &UserId, at_ms: i64) -> StoreResult<bool>;
    async fn is_invited(&self, group: &GroupId, user: &UserId) -> StoreResult<bool>;
    async fn user_invites(&self, user: &UserId) -> StoreResult<Vec<GroupId>>;
    /// Applies the change and appends its system message in one step;
    /// [`StoreError::Precondition`] if the membership is not as required.
    async fn change_membership(
        &self,
        group: &GroupId,
        user: &UserId,
        change: MembershipChange,
        message: NewMessage,
    ) -> StoreResult<AppendOutcome>;

    // ---- messages
    async fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome>;
    /// Messages with seq > `after`, ascending, at most `limit`.
    async fn messages_after(
        &self,
        conv: &ConversationId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>>;
    /// The messages with these seqs that exist, ascending.
    async fn messages_at(
        &self,
        conv: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<pb::Message>>;
    /// Messages with seq < `before`, the newest `limit` of them, ascending.
    async fn messages_before(
        &self,
        conv: &ConversationId,
        before: u64,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>>;
    /// Messages of `scopes` found by every one of `words` (each as a
    /// word's start, [`crate::search`]), newest first ([`SearchPosition`]
    /// order), after `after`; at most `limit`.
    async fn search(
        &self,
        scopes: &[SearchScope],
        words: &[String],
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> StoreResult<Vec<pb::Message>>;
    /// Last seq of each conversation (0 if none).
    async fn heads(&self, convs: &[ConversationId]) -> StoreResult<Vec<u64>>;
    /// Direct and topic-thread conversations of the user, most recent first.
    async fn user_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>>;
    /// Moves the read cursor forward; returns the cursor after the call.
    async fn mark_read(&self, conv: &ConversationId, user: &UserId, seq: u64) -> StoreResult<u64>;
    async fn read_cursors(&self, conv: &ConversationId) -> StoreResult<Vec<(UserId, u64)>>;
    /// The user's read cursor in each conversation.
    async fn read_cursors_of(
        &self,
        user: &UserId,
        convs: &[ConversationId],
    ) -> StoreResult<Vec<u64>>;

    // ---- topics
    /// Creates the topic (no contacts yet).
    async fn create_topic(&self, topic: &TopicRecord) -> StoreResult<()>;
    async fn topics(&self, ids: &[TopicId]) -> StoreResult<Vec<Option<TopicRecord>>>;
    /// Topics the user owns, oldest first.
    async fn user_topics(&self, owner: &UserId) -> StoreResult<Vec<TopicId>>;
    async fn rename_topic(&self, topic: &TopicId, name: &str) -> StoreResult<()>;
    /// Marks the topic deleted (from then on nobody is bound to it); returns
    /// who is still bound. The router unbinds each with [`Store::unbind`],
    /// a change of their thread ordered in its log like any other.
    async fn delete_topic(&self, topic: &TopicId) -> StoreResult<Vec<UserId>>;
    /// Binds contacts, never past `cap` bound at once;
    /// [`StoreError::Precondition`] if the topic was deleted (nobody bound).
    async fn bind(
        &self,
        topic: &TopicId,
        contacts: &[UserId],
        cap: usize,
    ) -> StoreResult<Vec<BindOutcome>>;
    /// Mutes or unmutes a bound contact; false if not bound.
    async fn set_muted(&self, topic: &TopicId, contact: &UserId, muted: bool) -> StoreResult<bool>;
    /// Unbinds a contact (`Left` or `Removed`) and appends `message` to their
    /// thread and the timeline in one step; [`StoreError::Precondition`] if
    /// they were not bound.
    async fn unbind(
        &self,
        topic: &TopicId,
        contact: &UserId,
        reason: Binding,
        message: NewMessage,
    ) -> StoreResult<AppendOutcome>;
    /// Timeline entries with seq < `before` (newest `limit`), or with seq >
    /// `after` when given (oldest `limit`); ascending.
    async fn timeline(
        &self,
        topic: &TopicId,
        before: u64,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<TimelineRecord>>;
    /// The copies of a broadcast.
    async fn broadcast(
        &self,
        topic: &TopicId,
        broadcast_id: &str,
    ) -> StoreResult<Option<Vec<MessageId>>>;
    /// Read, delivered and sent cursors of one user in each conversation.
    async fn thread_states(
        &self,
        threads: &[(ConversationId, UserId)],
    ) -> StoreResult<Vec<ThreadState>>;
    /// Moves each (conversation, user) delivered cursor forward to seq, in
    /// one round trip; true for each that moved.
    async fn mark_delivered(
        &self,
        marks: &[(ConversationId, UserId, u64)],
    ) -> StoreResult<Vec<bool>>;

    // ---- outbox
    /// These messages were handed to the bus.
    async fn outbox_done(&self, ids: &[MessageId]) -> StoreResult<()>;
    /// Claims up to `limit` entries stored before `older_than_ms` (their
    /// router died before delivering): they are re-stamped `now_ms` so no
    /// other router claims them at the same time.
    async fn outbox_claim(
        &self,
        older_than_ms: i64,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<MessageId>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_records_round_trip() {
        let conv = ConversationId::parse("dm:alice:bob").unwrap();
        let appended = vec![
            Appended {
                conversation: conv.clone(),
                seq: 4,
                sent_at_ms: 99,
            },
            Appended {
                conversation: ConversationId::parse("g:gabcdefgh").unwrap(),
                seq: 1,
                sent_at_ms: 99,
            },
        ];
        let record = encode_idempotency(&appended, 7, "b123|ann");
        assert_eq!(record, "dm:alice:bob#4 g:gabcdefgh#1|99|7|b123|ann");
        let decoded = decode_idempotency(&record).unwrap();
        assert_eq!(decoded.appended, appended);
        assert_eq!(
            (decoded.timeline_seq, decoded.memo.as_str()),
            (7, "b123|ann")
        );
        // A system message's record, as the membership scripts write it.
        let short = decode_idempotency("g:gabcdefgh#1|99").unwrap();
        assert_eq!((short.appended.len(), short.timeline_seq), (1, 0));
        assert!(decode_idempotency("garbage").is_err());
    }
}
