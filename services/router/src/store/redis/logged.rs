//! The Redis store with its messages in the history store (docs/STORAGE.md,
//! "Who may write, across two stores"). PostgreSQL assigns seqs and keeps
//! the logs; Redis keeps who may write, with a membership version per group
//! and per topic thread, and the cursors, conversation lists, retry records
//! and outbox. Every write goes to the history store first (the authority)
//! and is then recorded by one Redis script; a send is admitted from Redis
//! and judged again in PostgreSQL by its conversation's fence, so one
//! admitted before a removal never lands after it. A change whose Redis
//! half is missing (its router died between the two) is applied from its
//! message in the log by whoever next meets the fence ahead of Redis.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use switchboard_proto::pb::{self, system_event::Kind};
use switchboard_shared::ids::{ConversationId, GroupId, TopicId, UserId};
use switchboard_shared::keys;

use super::{Applied, RedisStore, decode_idempotency};
use crate::store::history::{
    ChangeStored, HistoryAppend, HistoryWriter, PgHistory, StoredMessage, change_key,
};
use crate::store::{
    Admission, AppendBatch, AppendOutcome, Appended, Binding, GroupRecord, MembershipChange,
    NewMessage, StoreError, StoreResult, decode_message, encode_message, parse_role, same_targets,
};

pub(super) struct History {
    pub log: Arc<PgHistory>,
    pub writer: HistoryWriter,
}

/// Rounds a send makes when a fence moved under it (each round reads the
/// membership again).
const FENCE_ROUNDS: usize = 4;

/// Rounds a membership change makes when the log moved past the version it
/// was judged at. Every such round means another change of the same group
/// (or thread) was logged meanwhile, so a change waits at most for the
/// others in flight with it: many people joining one group at once (ten in
/// the load generator's smoke run) each get their turn.
const CHANGE_ROUNDS: usize = 64;

pub(super) fn decode_stored(
    conv: &ConversationId,
    stored: Vec<StoredMessage>,
) -> StoreResult<Vec<pb::Message>> {
    stored
        .iter()
        .map(|m| decode_message(conv, m.seq, &m.body))
        .collect()
}

fn history_item(
    item: &NewMessage,
    sent_at_ms: i64,
    retry_key: Option<String>,
    fence: Option<u64>,
) -> HistoryAppend {
    HistoryAppend {
        conversation: item.conversation.clone(),
        sent_at_ms,
        retry_key,
        body: Bytes::from(encode_message(&item.message)),
        fence,
    }
}

/// The hash and field of the membership version a conversation's sends are
/// judged by: the group's, or the topic thread's.
fn version_field(admission: &Admission) -> (String, String) {
    match admission {
        Admission::GroupMember { group, .. } => (keys::group(group), "mver".to_owned()),
        Admission::TopicBound { topic, contact } => (keys::topic(topic), thread_field(contact)),
    }
}

/// The hash and field that say whether the admission's subject belongs: a
/// member of the group, or a contact on the topic's forwarding list.
fn belonging_field(admission: &Admission) -> (String, String) {
    match admission {
        Admission::GroupMember { group, user } => (keys::group_members(group), user.to_string()),
        Admission::TopicBound { topic, contact } => {
            (keys::topic_contacts(topic), contact.to_string())
        }
    }
}

fn thread_field(contact: &UserId) -> String {
    format!("mver:{contact}")
}

fn unavailable_after_rounds(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{what} kept changing under this request; try again"
    ))
}

/// The change a group's system message says was made, for the repair.
fn group_change_of(message: &pb::Message) -> StoreResult<(UserId, MembershipChange)> {
    let corrupt = || StoreError::Corrupt(format!("change {} has no change in it", message.seq));
    let system = message.system.as_ref().ok_or_else(corrupt)?;
    let user = UserId::parse(&system.user_id).map_err(|e| StoreError::Corrupt(e.0))?;
    let role = || {
        if system.detail.is_empty() {
            Ok(pb::Role::Member)
        } else {
            parse_role(&system.detail)
        }
    };
    let change = match system.kind() {
        Kind::MemberJoined => MembershipChange::Join { role: role()? },
        Kind::MemberLeft | Kind::MemberRemoved => MembershipChange::Leave,
        Kind::RoleChanged => MembershipChange::SetRole { role: role()? },
        Kind::OwnershipTransferred => MembershipChange::TakeOwnership,
        _ => return Err(corrupt()),
    };
    Ok((user, change))
}

impl RedisStore {
    async fn version(&self, hash: &str, field: &str) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        let version: Option<u64> = redis::cmd("HGET")
            .arg(hash)
            .arg(field)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(version.unwrap_or(0))
    }

    /// A retried send's record, and for each item whether its sender may
    /// write and under which membership version: one round trip (one per
    /// slot on a cluster, at once), with one `HMGET` per hash, so a
    /// broadcast to 200 contacts asks two commands, not 400.
    async fn admit(
        &self,
        batch: &AppendBatch,
    ) -> StoreResult<(Option<String>, Vec<Option<(bool, u64)>>)> {
        let record_key = super::retry_record_key(batch);
        // Per hash, the fields asked and, for each, (item, whether it is the
        // version rather than the belonging).
        #[derive(Default)]
        struct Asked {
            fields: Vec<String>,
            whose: Vec<(usize, bool)>,
        }
        let mut asked: BTreeMap<String, Asked> = BTreeMap::new();
        for (at, item) in batch.items.iter().enumerate() {
            if let Some(admission) = &item.admission {
                for (is_version, (hash, field)) in [
                    (false, belonging_field(admission)),
                    (true, version_field(admission)),
                ] {
                    let asked = asked.entry(hash).or_default();
                    asked.fields.push(field);
                    asked.whose.push((at, is_version));
                }
            }
        }
        let mut commands = Vec::with_capacity(asked.len() + 1);
        if let Some(key) = &record_key {
            let mut get = redis::cmd("GET");
            get.arg(key);
            commands.push(get);
        }
        for (hash, Asked { fields, .. }) in &asked {
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(hash).arg(fields);
            commands.push(hmget);
        }
        let corrupt = |e: redis::ParsingError| StoreError::Corrupt(e.to_string());
        let mut replies = self.query_all(commands).await?.into_iter();
        let prior: Option<String> = match &record_key {
            Some(_) => redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))
                .map_err(corrupt)?,
            None => None,
        };
        let mut facts: Vec<Option<(bool, u64)>> = batch
            .items
            .iter()
            .map(|item| item.admission.as_ref().map(|_| (false, 0)))
            .collect();
        for Asked { whose, .. } in asked.into_values() {
            let values: Vec<Option<String>> =
                redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))
                    .map_err(corrupt)?;
            if values.len() != whose.len() {
                return Err(StoreError::Corrupt("admission replies".into()));
            }
            for ((at, is_version), value) in whose.into_iter().zip(values) {
                let Some((belongs, version)) = facts[at].as_mut() else {
                    continue;
                };
                if is_version {
                    *version = match value {
                        Some(v) => v
                            .parse()
                            .map_err(|_| StoreError::Corrupt(format!("membership version {v}")))?,
                        None => 0,
                    };
                } else {
                    *belongs = value.is_some();
                }
            }
        }
        Ok((prior, facts))
    }

    pub(super) async fn append_logged(&self, batch: AppendBatch) -> StoreResult<AppendOutcome> {
        let retry_key = batch
            .idempotency
            .as_ref()
            .map(|(sender, id)| format!("{sender} {id}"));
        for _ in 0..FENCE_ROUNDS {
            let (prior, facts) = self.admit(&batch).await?;
            if let Some(record) = prior {
                let record = decode_idempotency(&record)?;
                if !same_targets(&batch, &record.appended) {
                    return Err(StoreError::IdempotencyConflict);
                }
                return Ok(AppendOutcome {
                    duplicate: true,
                    appended: record.appended,
                    epoch: self.visible_epoch(),
                    timeline_seq: record.timeline_seq,
                    memo: record.memo,
                });
            }
            if let Some(refused) = facts.iter().position(|f| matches!(f, Some((false, _)))) {
                return Err(StoreError::NotAdmitted(refused));
            }
            let items = batch
                .items
                .iter()
                .zip(&facts)
                .map(|(item, fact)| {
                    history_item(
                        item,
                        batch.now_ms,
                        retry_key.clone(),
                        fact.map(|(_, version)| version),
                    )
                })
                .collect();
            let answers = self.history.writer.append(items).await?;
            if let Some(fenced) = answers.iter().position(|a| a.fenced) {
                // A change reached the log after this sender was admitted:
                // bring Redis up to the log if it lags, and judge again.
                // (Items of a broadcast stored meanwhile answer their seq
                // again by their retry key.)
                if let Some(admission) = &batch.items[fenced].admission {
                    self.repair(admission).await?;
                }
                continue;
            }
            let seqs: Vec<u64> = answers.iter().map(|a| a.seq).collect();
            // Stored by an earlier attempt whose record Redis does not have
            // (lost between the two, or expired): recorded now, and in the
            // outbox, so it is delivered if it never was (gateways drop the
            // copy if it was); the sender is told it was a retry, and when
            // the first attempt sent it.
            let repeated = answers.iter().all(|a| a.repeated);
            let sent_at_ms = match answers.first() {
                Some(first) if repeated => first.sent_at_ms,
                _ => batch.now_ms,
            };
            let mut outcome = self.run_append(&batch, &seqs, sent_at_ms).await?;
            outcome.duplicate |= repeated;
            return Ok(outcome);
        }
        Err(unavailable_after_rounds("the membership"))
    }

    pub(super) async fn create_group_logged(
        &self,
        group: &GroupRecord,
        created: NewMessage,
    ) -> StoreResult<AppendOutcome> {
        // The creation is the group's first change (version 1); a log that
        // has one already means the id is taken.
        let item = history_item(&created, created.message.sent_at_ms, None, Some(0));
        let Some(stored) = self.history.log.append_change(&item).await? else {
            return Err(StoreError::Precondition);
        };
        self.run_create_group(group, &created, stored.seq).await
    }

    /// Logs a change's message at the membership version it was judged at
    /// (docs/STORAGE.md, "Who may write"): the version is read first, then
    /// whether `subject` belongs, which must be `belongs` for the change to
    /// apply; the log writes it only if it is still at that version. A log
    /// that has moved on (the same change from another router, someone
    /// else's, or one a dead router left half done) is applied to Redis and
    /// this change judged again, so it is logged once or not at all.
    async fn log_change(
        &self,
        subject: &Admission,
        belongs: bool,
        message: &NewMessage,
    ) -> StoreResult<ChangeStored> {
        let (version_hash, version_field) = version_field(subject);
        let (belonging_key, belonging) = belonging_field(subject);
        let mut rounds = 0;
        loop {
            // The version first: a change applied between the two reads
            // makes it stale, and the log refuses it.
            let version = self.version(&version_hash, &version_field).await?;
            if self.hexists(&belonging_key, &belonging).await? != belongs {
                return Err(StoreError::Precondition);
            }
            let item = history_item(message, message.message.sent_at_ms, None, Some(version));
            match self.history.log.append_change(&item).await? {
                Some(stored) => return Ok(stored),
                None if rounds < CHANGE_ROUNDS => {
                    rounds += 1;
                    self.repair(subject).await?;
                }
                None => {
                    return Err(unavailable_after_rounds(match subject {
                        Admission::GroupMember { .. } => "the membership",
                        Admission::TopicBound { .. } => "the binding",
                    }));
                }
            }
        }
    }

    /// The answer to a logged change, once its Redis script ran: if Redis
    /// had moved past the version the change expects, someone applied it
    /// (and maybe more) from the log; if it is still behind it (Redis lost
    /// its data meanwhile), the log's changes are applied now.
    async fn change_applied(
        &self,
        applied: Applied,
        stored: ChangeStored,
        subject: &Admission,
        message: &NewMessage,
    ) -> StoreResult<AppendOutcome> {
        match applied {
            Applied::Done(answer) => {
                let mut outcome = self.single_appended(&message.conversation, stored.seq, message);
                // An unbinding answers its entry in the topic's timeline.
                outcome.timeline_seq = answer.parse().unwrap_or(0);
                Ok(outcome)
            }
            Applied::Stale(now) => {
                if now < stored.version {
                    self.repair(subject).await?;
                }
                Ok(self.single_appended(&message.conversation, stored.seq, message))
            }
        }
    }

    /// The change's message goes to the log first ([`Self::log_change`]:
    /// numbered there, once), then Redis applies it.
    pub(super) async fn change_membership_logged(
        &self,
        group: &GroupId,
        user: &UserId,
        change: MembershipChange,
        message: NewMessage,
    ) -> StoreResult<AppendOutcome> {
        let subject = Admission::GroupMember {
            group: group.clone(),
            user: user.clone(),
        };
        let joins = matches!(change, MembershipChange::Join { .. });
        let stored = self.log_change(&subject, !joins, &message).await?;
        let logged = (stored.seq, stored.version - 1);
        let applied = self
            .run_membership(group, user, &change, &message, logged)
            .await?;
        self.change_applied(applied, stored, &subject, &message)
            .await
    }

    /// As a group's change (above), for one contact's thread.
    pub(super) async fn unbind_logged(
        &self,
        topic: &TopicId,
        contact: &UserId,
        reason: Binding,
        message: NewMessage,
    ) -> StoreResult<AppendOutcome> {
        let subject = Admission::TopicBound {
            topic: topic.clone(),
            contact: contact.clone(),
        };
        let stored = self.log_change(&subject, true, &message).await?;
        let logged = (stored.seq, stored.version - 1);
        let applied = self
            .run_unbind(topic, contact, reason, &message, logged)
            .await?;
        self.change_applied(applied, stored, &subject, &message)
            .await
    }

    fn single_appended(
        &self,
        conv: &ConversationId,
        seq: u64,
        message: &NewMessage,
    ) -> AppendOutcome {
        AppendOutcome {
            duplicate: false,
            appended: vec![Appended {
                conversation: conv.clone(),
                seq,
                sent_at_ms: message.message.sent_at_ms,
            }],
            epoch: self.visible_epoch(),
            timeline_seq: 0,
            memo: String::new(),
        }
    }

    async fn repair(&self, admission: &Admission) -> StoreResult<()> {
        match admission {
            Admission::GroupMember { group, .. } => self.repair_group(group).await,
            Admission::TopicBound { topic, contact } => self.repair_thread(topic, contact).await,
        }
    }

    /// The first change a conversation's log has and Redis lacks (a router
    /// died between writing a change's message and applying it, or is
    /// applying it now): the version Redis is at, and that change's seq and
    /// message. `None` once Redis has caught up with the log's fence.
    async fn missing_change(
        &self,
        conv: &ConversationId,
        hash: &str,
        field: &str,
    ) -> StoreResult<Option<(u64, u64, pb::Message)>> {
        let version = self.version(hash, field).await?;
        let fence = self.history.log.fences(std::slice::from_ref(conv)).await?[0];
        if version >= fence {
            return Ok(None);
        }
        let Some(stored) = self
            .history
            .log
            .find(conv, &change_key(version + 1))
            .await?
        else {
            return Err(StoreError::Corrupt(format!(
                "{conv} is fenced at {fence} but has no change {}",
                version + 1
            )));
        };
        let message = decode_message(conv, stored.seq, &stored.body)?;
        tracing::debug!(%conv, version = version + 1, "applying a membership change from the log");
        Ok(Some((version, stored.seq, message)))
    }

    /// Applies to Redis every change the group's log has and Redis lacks.
    async fn repair_group(&self, group: &GroupId) -> StoreResult<()> {
        let conv = ConversationId::Group(group.clone());
        let hash = keys::group(group);
        while let Some((version, seq, message)) = self.missing_change(&conv, &hash, "mver").await? {
            let (user, change) = group_change_of(&message)?;
            let repaired = NewMessage {
                conversation: conv.clone(),
                message,
                admission: None,
                index_for: Vec::new(),
                read_by: None,
            };
            // Stale: someone else applied it first. Precondition: it
            // changes nothing (a repeated join); its version is used up.
            match self
                .run_membership(group, &user, &change, &repaired, (seq, version))
                .await
            {
                Ok(_) | Err(StoreError::Precondition) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// [`Self::repair_group`] for one contact's thread of a topic.
    async fn repair_thread(&self, topic: &TopicId, contact: &UserId) -> StoreResult<()> {
        let conv = ConversationId::TopicThread {
            topic: topic.clone(),
            contact: contact.clone(),
        };
        let (hash, field) = (keys::topic(topic), thread_field(contact));
        while let Some((version, seq, message)) = self.missing_change(&conv, &hash, &field).await? {
            let reason = match message.system.as_ref().map(pb::SystemEvent::kind) {
                Some(Kind::ContactLeftTopic) => Binding::Left,
                Some(Kind::ContactRemovedFromTopic) => Binding::Removed,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "change {} of {conv} is not an unbinding",
                        version + 1
                    )));
                }
            };
            let owner = message
                .topic
                .as_ref()
                .and_then(|tag| UserId::parse(&tag.owner_id).ok());
            let repaired = NewMessage {
                conversation: conv.clone(),
                message,
                admission: None,
                index_for: owner.into_iter().chain([contact.clone()]).collect(),
                read_by: None,
            };
            match self
                .run_unbind(topic, contact, reason, &repaired, (seq, version))
                .await
            {
                Ok(_) | Err(StoreError::Precondition) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
