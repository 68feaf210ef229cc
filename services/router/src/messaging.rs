//! Sending, history, read cursors, the conversation list, and the sync a
//! gateway makes when a client subscribes.

use std::collections::HashMap;

use futures::future::try_join_all;
use switchboard_proto::bus::{SyncRequest, SyncResponse};
use switchboard_proto::pb::{self, send_request::To};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ClientMsgId, ConversationId, GroupId, TopicId, UserId};

use tracing::Instrument as _;

use crate::access::{self, Readable, direct_peer};
use crate::error::{RouterError, RouterResult};
use crate::routing::{Audience, Outgoing};
use crate::store::{
    Admission, AppendBatch, AppendOutcome, NewMessage, StoreError, TimelineWrite, TopicRecord,
};
use crate::{Caller, Router};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// What the caller is to a conversation they belong to.
#[derive(Debug, Clone)]
pub enum Membership {
    Direct {
        peer: UserId,
    },
    Group {
        group: GroupId,
        role: pb::Role,
    },
    /// The owner, or the contact (bound now or before: history stays readable).
    TopicThread {
        topic: TopicRecord,
        contact: UserId,
    },
}

impl Membership {
    /// Who sees what happens in the conversation.
    pub fn audience(&self, caller: &UserId) -> Audience {
        match self {
            Self::Direct { peer } => Audience::Users(vec![caller.clone(), peer.clone()]),
            Self::Group { group, .. } => Audience::Group(group.clone()),
            Self::TopicThread { topic, contact } => {
                Audience::Users(vec![topic.owner.clone(), contact.clone()])
            }
        }
    }
}

/// Checks a message text against the rules every client sees.
pub fn message_text(text: &str, max_bytes: usize) -> RouterResult<String> {
    if text.trim().is_empty() {
        return Err(RouterError::InvalidArgument(
            "a message cannot be empty".into(),
        ));
    }
    if text.len() > max_bytes {
        return Err(RouterError::ResourceExhausted {
            message: format!(
                "the message is {} bytes; the limit is {max_bytes}",
                text.len()
            ),
            retry_after_ms: 0,
        });
    }
    Ok(text.to_owned())
}

/// The stored form of appended messages (from what was appended and where
/// it landed), for delivery.
pub fn stored_messages(items: Vec<NewMessage>, outcome: &AppendOutcome) -> Vec<pb::Message> {
    items
        .into_iter()
        .zip(&outcome.appended)
        .map(|(item, appended)| pb::Message {
            conversation_id: appended.conversation.to_string(),
            seq: appended.seq,
            message_id: appended.message_id().to_string(),
            ..item.message
        })
        .collect()
}

pub fn topic_writable(topic: &TopicRecord, contact: &UserId, sender: &UserId) -> RouterResult<()> {
    if topic.deleted {
        return Err(RouterError::FailedPrecondition(
            "this topic was deleted; its history stays readable".into(),
        ));
    }
    if topic
        .binding(contact)
        .is_some_and(crate::store::Binding::is_current)
    {
        return Ok(());
    }
    if sender == contact {
        Err(RouterError::PermissionDenied(format!(
            "you are no longer in this topic; write to {} directly instead",
            topic.owner
        )))
    } else {
        Err(RouterError::FailedPrecondition(format!(
            "{contact} is no longer in this topic"
        )))
    }
}

pub fn message_event(message: pb::Message) -> pb::Event {
    pb::Event {
        kind: Some(pb::event::Kind::Message(message)),
    }
}

pub(crate) fn page_size(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_PAGE,
        n => (n as usize).min(MAX_PAGE),
    }
}

impl Router {
    /// Whether `user` belongs to `conv`, and as what.
    pub async fn membership(
        &self,
        user: &UserId,
        conv: &ConversationId,
    ) -> RouterResult<Membership> {
        match conv {
            ConversationId::Direct(..) => {
                let peer = direct_peer(conv, user).ok_or_else(|| {
                    RouterError::PermissionDenied("this is not your conversation".into())
                })?;
                Ok(Membership::Direct { peer })
            }
            ConversationId::Group(group) => match self.store.member_role(group, user).await? {
                Some(role) => Ok(Membership::Group {
                    group: group.clone(),
                    role,
                }),
                None => Err(self.not_a_member(group).await),
            },
            ConversationId::TopicThread { topic, contact } => {
                let topic = self.topic(topic).await?;
                let belongs =
                    &topic.owner == user || (user == contact && topic.binding(contact).is_some());
                if !belongs {
                    return Err(RouterError::PermissionDenied(
                        "this is not your conversation".into(),
                    ));
                }
                Ok(Membership::TopicThread {
                    topic,
                    contact: contact.clone(),
                })
            }
        }
    }

    /// NOT_FOUND for a group that does not exist, PERMISSION_DENIED otherwise.
    pub async fn not_a_member(&self, group: &GroupId) -> RouterError {
        match self.store.groups(std::slice::from_ref(group)).await {
            Ok(found) if found.first().is_some_and(Option::is_some) => {
                RouterError::PermissionDenied(format!("you are not a member of group {group}"))
            }
            Ok(_) => RouterError::NotFound(format!("no group {group}")),
            Err(err) => err.into(),
        }
    }

    /// A direct message needs its recipient to exist; asked of the store
    /// once a minute per user, not once per message.
    async fn require_user(&self, user: &UserId) -> RouterResult<()> {
        if self.known_users.holds(user) {
            return Ok(());
        }
        match self.store.users(std::slice::from_ref(user)).await?.pop() {
            Some(Some(_)) => {
                self.known_users.remember(user.clone());
                Ok(())
            }
            _ => Err(RouterError::NotFound(format!("no user {user}"))),
        }
    }

    pub async fn send(
        &self,
        caller: &Caller,
        req: pb::SendRequest,
    ) -> RouterResult<pb::SendResponse> {
        let conv = match req.to {
            Some(To::UserId(raw)) => {
                let peer = UserId::parse(&raw)?;
                if peer == caller.user {
                    return Err(RouterError::InvalidArgument(
                        "you cannot send a message to yourself".into(),
                    ));
                }
                ConversationId::direct(caller.user.clone(), peer)
            }
            Some(To::GroupId(raw)) => ConversationId::Group(GroupId::parse(&raw)?),
            Some(To::ConversationId(raw)) => ConversationId::parse(&raw)?,
            None => {
                return Err(RouterError::InvalidArgument(
                    "say where to send: user_id, group_id or conversation_id".into(),
                ));
            }
        };
        let text = message_text(&req.text, self.config.max_message_bytes)?;
        let client_msg_id = ClientMsgId::parse(&req.client_msg_id)?;
        let membership = self.membership(&caller.user, &conv).await?;
        let mut topic_tag = None;
        let mut timeline = None;
        let (admission, index_for) = match &membership {
            Membership::Direct { peer } => {
                self.require_user(peer).await?;
                (None, vec![caller.user.clone(), peer.clone()])
            }
            Membership::Group { group, .. } => (
                Some(Admission::GroupMember {
                    group: group.clone(),
                    user: caller.user.clone(),
                }),
                Vec::new(),
            ),
            Membership::TopicThread { topic, contact } => {
                topic_writable(topic, contact, &caller.user)?;
                // Consent holds when writing, not only when binding: the
                // owner answers a contact only while they are mutual contacts.
                if caller.user == topic.owner && !self.store.mutual(&topic.owner, contact).await? {
                    return Err(RouterError::FailedPrecondition(format!(
                        "{contact} is no longer a mutual contact; you both need to add each other again"
                    )));
                }
                topic_tag = Some(crate::topics::tag(topic, contact));
                timeline = Some(TimelineWrite {
                    topic: topic.id.clone(),
                    broadcast_id: String::new(),
                    forwarded_from: String::new(),
                });
                (
                    Some(Admission::TopicBound {
                        topic: topic.id.clone(),
                        contact: contact.clone(),
                    }),
                    vec![topic.owner.clone(), contact.clone()],
                )
            }
        };
        let now = now_ms();
        let item = NewMessage {
            conversation: conv.clone(),
            message: pb::Message {
                sender: caller.user.to_string(),
                sent_at_ms: now,
                text,
                client_msg_id: client_msg_id.to_string(),
                topic: topic_tag,
                ..Default::default()
            },
            admission,
            index_for,
            read_by: Some(caller.user.clone()),
        };
        let batch = AppendBatch {
            idempotency: Some((caller.user.clone(), client_msg_id)),
            items: vec![item.clone()],
            now_ms: now,
            timeline,
            memo: String::new(),
        };
        let outcome = match self.store.append(batch).await {
            Ok(outcome) => outcome,
            Err(StoreError::NotAdmitted(_)) => {
                return Err(match &membership {
                    // Removed between the check and the write.
                    Membership::TopicThread { topic, contact } => {
                        let mut gone = topic.clone();
                        gone.contacts.retain(|(user, _)| user != contact);
                        topic_writable(&gone, contact, &caller.user)
                            .err()
                            .unwrap_or_else(|| RouterError::PermissionDenied("refused".into()))
                    }
                    _ => self.not_a_member_of(&conv).await,
                });
            }
            Err(StoreError::IdempotencyConflict) => {
                return Err(RouterError::InvalidArgument(
                    "this client_msg_id was already used for a message to another conversation"
                        .into(),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        let appended = outcome.single()?.clone();
        if !outcome.duplicate {
            self.deliver_appended(vec![item], &outcome);
        }
        Ok(pb::SendResponse {
            conversation_id: conv.to_string(),
            seq: appended.seq,
            message_id: appended.message_id().to_string(),
            sent_at_ms: appended.sent_at_ms,
            duplicate: outcome.duplicate,
        })
    }

    async fn not_a_member_of(&self, conv: &ConversationId) -> RouterError {
        match conv {
            ConversationId::Group(group) => self.not_a_member(group).await,
            _ => RouterError::PermissionDenied(format!("you cannot write to {conv}")),
        }
    }

    /// Delivers just-appended messages after the reply went out. A failure
    /// leaves them in the outbox, which any router redelivers.
    pub fn deliver_appended(&self, items: Vec<NewMessage>, outcome: &AppendOutcome) {
        let Some(router) = self.me() else {
            return;
        };
        let messages = stored_messages(items, outcome);
        switchboard_shared::metrics::metrics()
            .messages_stored
            .inc_by(messages.len() as u64);
        let epoch = outcome.epoch.clone();
        // A child of the request's span: the trace goes on to the gateways.
        let span = tracing::info_span!("router.deliver", messages = messages.len());
        self.shutdown.tracker.spawn(
            async move {
                if let Err(err) = router.deliver_messages(messages, &epoch).await {
                    tracing::warn!(%err, "delivery failed; the outbox will retry it");
                }
            }
            .instrument(span),
        );
    }

    /// Delivers events that are not messages (receipts, presence, changes).
    /// They are state kept elsewhere too, so a failure is logged, not retried.
    pub async fn deliver_state(&self, outgoing: Vec<Outgoing>) {
        let delivered = match self.store.epoch().await {
            Ok(epoch) => {
                self.deliverer
                    .deliver(&outgoing, &epoch, now_ms(), Vec::new())
                    .await
            }
            Err(err) => Err(err.into()),
        };
        if let Err(err) = delivered {
            tracing::warn!(%err, "cannot deliver a state change");
        }
    }

    pub async fn deliver_messages(
        &self,
        messages: Vec<pb::Message>,
        epoch: &str,
    ) -> RouterResult<()> {
        let mut outgoing = Vec::new();
        let mut stored = Vec::new();
        let mut accepted_at_ms = 0;
        for message in messages {
            accepted_at_ms = accepted_at_ms.max(message.sent_at_ms);
            stored.push(switchboard_shared::ids::MessageId::parse(
                &message.message_id,
            )?);
            outgoing.extend(self.outgoing_for_message(message).await?);
        }
        self.deliverer
            .deliver(&outgoing, epoch, accepted_at_ms, stored)
            .await
    }

    /// Who receives a stored message, and what else they must be told.
    pub async fn outgoing_for_message(&self, message: pb::Message) -> RouterResult<Vec<Outgoing>> {
        let conv = ConversationId::parse(&message.conversation_id)?;
        let mut outgoing = Vec::new();
        let audience = match &conv {
            ConversationId::Direct(a, b) => Audience::Users(vec![a.clone(), b.clone()]),
            ConversationId::Group(group) => {
                // A new member's gateway does not host the group yet: tell
                // the member directly, and their gateway starts hosting it.
                if let Some(system) = &message.system {
                    let kind = system.kind();
                    if matches!(
                        kind,
                        pb::system_event::Kind::GroupCreated | pb::system_event::Kind::MemberJoined
                    ) {
                        let member = UserId::parse(&system.user_id)?;
                        let summary = self.group_summary(group, message.seq).await?;
                        outgoing.push(Outgoing {
                            audience: Audience::Users(vec![member]),
                            event: pb::Event {
                                kind: Some(pb::event::Kind::Conversation(
                                    pb::ConversationChanged {
                                        change: pb::conversation_changed::Change::Added as i32,
                                        conversation: Some(summary),
                                    },
                                )),
                            },
                        });
                    }
                }
                Audience::Group(group.clone())
            }
            // Only the owner and that contact: the other contacts never see it.
            ConversationId::TopicThread { contact, .. } => {
                let owner = message
                    .topic
                    .as_ref()
                    .map(|t| UserId::parse(&t.owner_id))
                    .transpose()?
                    .ok_or_else(|| {
                        RouterError::Internal(format!("{conv} message without its topic"))
                    })?;
                Audience::Users(vec![owner, contact.clone()])
            }
        };
        outgoing.push(Outgoing {
            audience,
            event: message_event(message),
        });
        Ok(outgoing)
    }

    async fn group_summary(
        &self,
        group: &GroupId,
        head_seq: u64,
    ) -> RouterResult<pb::Conversation> {
        let title = self
            .store
            .groups(std::slice::from_ref(group))
            .await?
            .pop()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_default();
        Ok(pb::Conversation {
            conversation_id: ConversationId::Group(group.clone()).to_string(),
            kind: pb::ConversationKind::Group as i32,
            title,
            head_seq,
            group_id: group.to_string(),
            ..Default::default()
        })
    }

    /// What of `conv` the user may read: everything of a conversation they
    /// belong to, or of a group what its history setting and their joining
    /// and leaving allow.
    pub async fn readable(&self, user: &UserId, conv: &ConversationId) -> RouterResult<Readable> {
        let ConversationId::Group(group) = conv else {
            self.membership(user, conv).await?;
            return Ok(Readable::ALL);
        };
        let (place, record) = futures::try_join!(
            self.store.group_membership(group, user),
            self.store.groups(std::slice::from_ref(group)),
        )?;
        let Some(record) = record.into_iter().next().flatten() else {
            return Err(RouterError::NotFound(format!("no group {group}")));
        };
        access::readable_in_group(record.history, &place).ok_or_else(|| {
            RouterError::PermissionDenied(format!("you are not a member of group {group}"))
        })
    }

    pub async fn history(
        &self,
        caller: &Caller,
        req: pb::HistoryRequest,
    ) -> RouterResult<pb::HistoryResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        let readable = self.readable(&caller.user, &conv).await?;
        let head = self.store.heads(std::slice::from_ref(&conv)).await?[0];
        let last = readable.to.map_or(head, |to| to.min(head));
        let first = readable.from;
        let limit = page_size(req.limit);
        // Pages are fetched one message long and cut to what may be read: a
        // message cut off at an end means nothing more lies that way.
        let (mut messages, has_more) = if let Some(after) = req.after_seq {
            let after = after.max(first - 1);
            let mut page = if after >= last {
                Vec::new()
            } else {
                self.store.messages_after(&conv, after, limit + 1).await?
            };
            page.retain(|m| m.seq <= last);
            let more = page.len() > limit;
            page.truncate(limit);
            (page, more)
        } else {
            let before = match req.before_seq {
                0 => u64::MAX,
                before => before,
            }
            .min(last.saturating_add(1));
            let mut page = if before <= first {
                Vec::new()
            } else {
                self.store.messages_before(&conv, before, limit + 1).await?
            };
            page.retain(|m| m.seq >= first);
            let more = page.len() > limit;
            if more {
                page.remove(0);
            }
            (page, more)
        };
        messages.sort_by_key(|m| m.seq);
        Ok(pb::HistoryResponse {
            messages,
            has_more,
            head_seq: last,
        })
    }

    pub async fn mark_read(
        &self,
        caller: &Caller,
        req: pb::MarkReadRequest,
    ) -> RouterResult<pb::MarkReadResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        let membership = self.membership(&caller.user, &conv).await?;
        let head = self.store.heads(std::slice::from_ref(&conv)).await?[0];
        let read_seq = self
            .store
            .mark_read(&conv, &caller.user, req.seq.min(head))
            .await?;
        let receipt = Outgoing {
            audience: membership.audience(&caller.user),
            event: pb::Event {
                kind: Some(pb::event::Kind::Receipt(pb::ReadReceipt {
                    conversation_id: conv.to_string(),
                    user_id: caller.user.to_string(),
                    read_seq,
                })),
            },
        };
        self.deliver_state(vec![receipt]).await;
        Ok(pb::MarkReadResponse { read_seq })
    }

    pub async fn list_read_cursors(
        &self,
        caller: &Caller,
        req: pb::ListReadCursorsRequest,
    ) -> RouterResult<pb::ListReadCursorsResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        self.membership(&caller.user, &conv).await?;
        let cursors = self
            .store
            .read_cursors(&conv)
            .await?
            .into_iter()
            .map(|(user, read_seq)| pb::ReadReceipt {
                conversation_id: conv.to_string(),
                user_id: user.to_string(),
                read_seq,
            })
            .collect();
        Ok(pb::ListReadCursorsResponse { cursors })
    }

    /// Every conversation of the user: direct and topic threads from their
    /// list, groups from their memberships.
    async fn conversations_of(
        &self,
        user: &UserId,
    ) -> RouterResult<(Vec<ConversationId>, Vec<GroupId>)> {
        let (mut convs, groups) = futures::try_join!(
            self.store.user_conversations(user),
            self.store.user_groups(user),
        )?;
        convs.extend(groups.iter().cloned().map(ConversationId::Group));
        Ok((convs, groups))
    }

    pub async fn sync(&self, caller: &Caller, _req: SyncRequest) -> RouterResult<SyncResponse> {
        let epoch = self.store.epoch().await?;
        let (convs, groups) = self.conversations_of(&caller.user).await?;
        let heads = self.store.heads(&convs).await?;
        Ok(SyncResponse {
            epoch,
            heads: convs
                .iter()
                .zip(heads)
                .map(|(conv, seq)| pb::Cursor {
                    conversation_id: conv.to_string(),
                    seq,
                })
                .collect(),
            group_ids: groups.iter().map(ToString::to_string).collect(),
        })
    }

    pub async fn list_conversations(
        &self,
        caller: &Caller,
        _req: pb::ListConversationsRequest,
    ) -> RouterResult<pb::ListConversationsResponse> {
        let user = &caller.user;
        let (convs, groups) = self.conversations_of(user).await?;
        let (epoch, heads, reads, lasts) = futures::try_join!(
            self.store.epoch(),
            self.store.heads(&convs),
            self.store.read_cursors_of(user, &convs),
            try_join_all(
                convs
                    .iter()
                    .map(|conv| self.store.messages_before(conv, u64::MAX, 1))
            ),
        )?;
        let peers: Vec<UserId> = convs.iter().filter_map(|c| direct_peer(c, user)).collect();
        let mut topic_ids: Vec<TopicId> = convs
            .iter()
            .filter_map(|c| match c {
                ConversationId::TopicThread { topic, .. } => Some(topic.clone()),
                _ => None,
            })
            .collect();
        topic_ids.sort();
        topic_ids.dedup();
        let (peer_records, group_records, topic_records) = futures::try_join!(
            self.store.users(&peers),
            self.store.groups(&groups),
            self.store.topics(&topic_ids),
        )?;
        let topics: HashMap<TopicId, TopicRecord> = topic_records
            .into_iter()
            .flatten()
            .map(|t| (t.id.clone(), t))
            .collect();
        let names: HashMap<String, String> = peer_records
            .into_iter()
            .flatten()
            .map(|u| (u.id.to_string(), u.display_name))
            .chain(
                group_records
                    .into_iter()
                    .flatten()
                    .map(|g| (g.id.to_string(), g.name)),
            )
            .collect();
        let mut conversations: Vec<pb::Conversation> = convs
            .iter()
            .zip(heads)
            .zip(reads)
            .zip(lasts)
            .map(|(((conv, head_seq), read_seq), mut last)| {
                let mut summary = pb::Conversation {
                    conversation_id: conv.to_string(),
                    head_seq,
                    read_seq,
                    unread: head_seq.saturating_sub(read_seq),
                    last_message: last.pop(),
                    ..Default::default()
                };
                match conv {
                    ConversationId::Direct(..) => {
                        let peer = direct_peer(conv, user)
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        summary.kind = pb::ConversationKind::Direct as i32;
                        summary.title = names.get(&peer).cloned().unwrap_or_else(|| peer.clone());
                        summary.peer_id = peer;
                    }
                    ConversationId::Group(group) => {
                        summary.kind = pb::ConversationKind::Group as i32;
                        summary.title = names.get(group.as_str()).cloned().unwrap_or_default();
                        summary.group_id = group.to_string();
                    }
                    ConversationId::TopicThread { topic, contact } => {
                        if let Some(topic) = topics.get(topic) {
                            let described =
                                self.thread_summary(topic, contact, &topic.owner == user);
                            summary = pb::Conversation {
                                conversation_id: summary.conversation_id,
                                head_seq: summary.head_seq,
                                read_seq: summary.read_seq,
                                unread: summary.unread,
                                last_message: summary.last_message,
                                ..described
                            };
                        }
                    }
                }
                summary
            })
            .collect();
        conversations.sort_by_key(|c| {
            std::cmp::Reverse(c.last_message.as_ref().map_or(0, |m| m.sent_at_ms))
        });
        Ok(pb::ListConversationsResponse {
            conversations,
            epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_texts_are_checked() {
        assert!(message_text("", 10).is_err());
        assert!(message_text("  \n\t", 10).is_err());
        assert_eq!(message_text(" hi ", 10).unwrap(), " hi ");
        assert!(message_text("0123456789", 10).is_ok());
        let err = message_text("01234567890", 10).unwrap_err();
        assert!(matches!(err, RouterError::ResourceExhausted { .. }));
        assert!(err.to_string().contains("limit is 10"), "{err}");
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page_size(0), DEFAULT_PAGE);
        assert_eq!(page_size(10), 10);
        assert_eq!(page_size(100_000), MAX_PAGE);
    }
}
