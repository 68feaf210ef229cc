//! A [`Store`] that times every operation (latency histogram by operation)
//! and wraps it in a trace span, whatever the backend underneath.

use crate::search::{SearchPosition, SearchScope};
use async_trait::async_trait;
use switchboard_proto::pb;
use switchboard_shared::ids::{ConversationId, GroupId, MessageId, SessionId, TopicId, UserId};
use switchboard_shared::metrics::timed;
use tracing::Instrument as _;

use super::{
    Amendment, AppendBatch, AppendOutcome, AuditRecord, BindOutcome, Binding, ContactEntry,
    DirectStates, GroupDeleted, GroupMembership, GroupRecord, LoginFailures, MembershipChange,
    NewMessage, PushSubscription, Reacted, SessionRecord, Store, StoreResult, StoredReaction,
    ThreadState, TimelineRecord, TopicRecord, UserRecord,
};

pub struct Timed<S>(pub S);

/// Delegates each listed method, timed and traced under its own name.
macro_rules! timed {
    ($( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        #[async_trait]
        impl<S: Store> Store for Timed<S> {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    let span = tracing::info_span!("store", operation = stringify!($name));
                    timed(stringify!($name), self.0.$name($($arg),*)).instrument(span).await
                }
            )*
        }
    };
}

timed! {
    fn epoch(&self) -> StoreResult<String>;
    fn state_epoch(&self) -> StoreResult<String>;
    fn create_user(&self, user: &UserRecord) -> StoreResult<bool>;
    fn users(&self, ids: &[UserId]) -> StoreResult<Vec<Option<UserRecord>>>;
    fn put_session(&self, session: &SessionRecord) -> StoreResult<()>;
    fn session(&self, id: &SessionId, now_ms: i64) -> StoreResult<Option<SessionRecord>>;
    fn delete_session(&self, id: &SessionId) -> StoreResult<()>;
    fn login_failures(&self, user: &UserId, address: &str) -> StoreResult<LoginFailures>;
    fn record_login_failure(&self, user: &UserId, address: &str, window: std::time::Duration) -> StoreResult<()>;
    fn clear_login_failures(&self, user: &UserId) -> StoreResult<()>;
    fn user_ids(&self, prefix: &str, after: &str, limit: usize) -> StoreResult<Vec<UserId>>;
    fn user_sessions(&self, user: &UserId, now_ms: i64) -> StoreResult<Vec<SessionRecord>>;
    fn set_banned(&self, user: &UserId, banned: bool) -> StoreResult<bool>;
    fn set_password(&self, user: &UserId, password_hash: &str) -> StoreResult<bool>;
    fn delete_account(&self, user: &UserId) -> StoreResult<bool>;
    fn set_display_name(&self, user: &UserId, name: &str) -> StoreResult<bool>;
    fn user_groups_ever(&self, user: &UserId) -> StoreResult<Vec<GroupId>>;
    fn delete_group(&self, group: &GroupId) -> StoreResult<Option<GroupDeleted>>;
    fn erase_sent(&self, conv: &ConversationId, sender: &UserId) -> StoreResult<u64>;
    fn amend_message(&self, conv: &ConversationId, seq: u64, amendment: &Amendment) -> StoreResult<bool>;
    fn erase_conversation(&self, conv: &ConversationId) -> StoreResult<u64>;
    fn react(&self, conv: &ConversationId, seq: u64, user: &UserId, emoji: &str, on: bool, at_ms: i64, max: usize) -> StoreResult<Reacted>;
    fn reactions(&self, conv: &ConversationId, seqs: &[u64]) -> StoreResult<Vec<StoredReaction>>;
    fn drop_reactions(&self, conv: &ConversationId, seq: u64) -> StoreResult<()>;
    fn set_conversation_muted(&self, user: &UserId, conv: &ConversationId, muted: bool) -> StoreResult<bool>;
    fn muted_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>>;
    fn put_push(&self, user: &UserId, subscription: &PushSubscription) -> StoreResult<()>;
    fn remove_push(&self, user: &UserId, endpoint: &str) -> StoreResult<bool>;
    fn push_subscriptions(&self, user: &UserId) -> StoreResult<Vec<PushSubscription>>;
    fn append_audit(&self, entry: &AuditRecord) -> StoreResult<()>;
    fn audit(&self, before: Option<&str>, limit: usize) -> StoreResult<Vec<AuditRecord>>;
    fn add_contact(&self, owner: &UserId, contact: &UserId, at_ms: i64) -> StoreResult<bool>;
    fn remove_contact(&self, owner: &UserId, contact: &UserId) -> StoreResult<bool>;
    fn contacts(&self, owner: &UserId) -> StoreResult<Vec<ContactEntry>>;
    fn contacted_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>>;
    fn mutual_among(&self, user: &UserId, others: &[UserId]) -> StoreResult<Vec<bool>>;
    fn set_blocked(&self, user: &UserId, other: &UserId, blocked: bool, at_ms: i64) -> StoreResult<bool>;
    fn blocked(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>>;
    fn blocked_by(&self, user: &UserId) -> StoreResult<Vec<ContactEntry>>;
    fn direct_states(&self, user: &UserId, peer: &UserId) -> StoreResult<DirectStates>;
    fn accept_direct(&self, user: &UserId, peer: &UserId) -> StoreResult<bool>;
    fn accepted_peers(&self, user: &UserId) -> StoreResult<Vec<UserId>>;
    fn create_group(&self, group: &GroupRecord, created: NewMessage) -> StoreResult<AppendOutcome>;
    fn groups(&self, ids: &[GroupId]) -> StoreResult<Vec<Option<GroupRecord>>>;
    fn update_group(&self, group: &GroupId, name: Option<&str>, description: Option<&str>) -> StoreResult<bool>;
    fn member_role(&self, group: &GroupId, user: &UserId) -> StoreResult<Option<pb::Role>>;
    fn group_membership(&self, group: &GroupId, user: &UserId) -> StoreResult<GroupMembership>;
    fn members(&self, group: &GroupId) -> StoreResult<Vec<(UserId, pb::Role)>>;
    fn user_groups(&self, user: &UserId) -> StoreResult<Vec<GroupId>>;
    fn invite(&self, group: &GroupId, user: &UserId, at_ms: i64) -> StoreResult<bool>;
    fn is_invited(&self, group: &GroupId, user: &UserId) -> StoreResult<bool>;
    fn user_invites(&self, user: &UserId) -> StoreResult<Vec<GroupId>>;
    fn change_membership(&self, group: &GroupId, user: &UserId, change: MembershipChange, message: NewMessage) -> StoreResult<AppendOutcome>;
    fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome>;
    fn messages_after(&self, conv: &ConversationId, after: u64, limit: usize) -> StoreResult<Vec<pb::Message>>;
    fn messages_at(&self, conv: &ConversationId, seqs: &[u64]) -> StoreResult<Vec<pb::Message>>;
    fn messages_before(&self, conv: &ConversationId, before: u64, limit: usize) -> StoreResult<Vec<pb::Message>>;
    fn search(&self, scopes: &[SearchScope], words: &[String], after: Option<&SearchPosition>, limit: usize) -> StoreResult<Vec<pb::Message>>;
    fn heads(&self, convs: &[ConversationId]) -> StoreResult<Vec<u64>>;
    fn user_conversations(&self, user: &UserId) -> StoreResult<Vec<ConversationId>>;
    fn mark_read(&self, conv: &ConversationId, user: &UserId, seq: u64) -> StoreResult<u64>;
    fn read_cursors(&self, conv: &ConversationId) -> StoreResult<Vec<(UserId, u64)>>;
    fn read_cursors_of(&self, user: &UserId, convs: &[ConversationId]) -> StoreResult<Vec<u64>>;
    fn create_topic(&self, topic: &TopicRecord) -> StoreResult<()>;
    fn topics(&self, ids: &[TopicId]) -> StoreResult<Vec<Option<TopicRecord>>>;
    fn user_topics(&self, owner: &UserId) -> StoreResult<Vec<TopicId>>;
    fn rename_topic(&self, topic: &TopicId, name: &str) -> StoreResult<()>;
    fn delete_topic(&self, topic: &TopicId) -> StoreResult<Vec<UserId>>;
    fn bind(&self, topic: &TopicId, contacts: &[UserId], cap: usize) -> StoreResult<Vec<BindOutcome>>;
    fn set_muted(&self, topic: &TopicId, contact: &UserId, muted: bool) -> StoreResult<bool>;
    fn unbind(&self, topic: &TopicId, contact: &UserId, reason: Binding, message: NewMessage) -> StoreResult<AppendOutcome>;
    fn timeline(&self, topic: &TopicId, before: u64, after: Option<u64>, limit: usize) -> StoreResult<Vec<TimelineRecord>>;
    fn broadcast(&self, topic: &TopicId, broadcast_id: &str) -> StoreResult<Option<Vec<MessageId>>>;
    fn thread_states(&self, threads: &[(ConversationId, UserId)]) -> StoreResult<Vec<ThreadState>>;
    fn mark_delivered(&self, marks: &[(ConversationId, UserId, u64)]) -> StoreResult<Vec<bool>>;
    fn outbox_done(&self, ids: &[MessageId]) -> StoreResult<()>;
    fn outbox_claim(&self, older_than_ms: i64, now_ms: i64, limit: usize) -> StoreResult<Vec<MessageId>>;
}
