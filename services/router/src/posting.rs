//! Posting: the one path by which the router stores a message and hands it
//! on. A send to a conversation is built here; a topic broadcast and the
//! system messages of groups and topics are built by their modules. Each
//! comes to [`Router::post`] as a [`Post`]: it is stored in one atomic step
//! with whatever must change with it, store errors become answers (the
//! refusals only the poster can word come back as a [`Refused`]), and what
//! was stored is delivered, after the reply, through the outbox's guarantee.
//! When history moves to its own store (docs/STORAGE.md), this is the one
//! place on the message path that changes.

use switchboard_proto::pb::{self, send_request::To};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ClientMsgId, ConversationId, GroupId, TopicId, UserId};
use tracing::Instrument as _;

use crate::error::{RouterError, RouterResult};
use crate::membership::Membership;
use crate::routing::{Audience, Outgoing};
use crate::store::{
    AppendBatch, AppendOutcome, Binding, GroupRecord, MembershipChange, NewMessage, StoreError,
    TimelineWrite, TopicRecord,
};
use crate::{Caller, Router};

/// A message to store, with what changes atomically with it.
#[derive(Debug, Clone)]
pub enum Post {
    /// Messages under one idempotency key: a send, a topic broadcast (one
    /// item per copy), or notices.
    Append(AppendBatch),
    /// A new group, with the message that says so.
    CreateGroup {
        group: GroupRecord,
        message: NewMessage,
    },
    /// A change of a group's membership, with its system message.
    Membership {
        group: GroupId,
        user: UserId,
        change: MembershipChange,
        message: NewMessage,
    },
    /// A contact unbound from a topic, with the notice in their thread.
    Unbind {
        topic: TopicId,
        contact: UserId,
        reason: Binding,
        message: NewMessage,
    },
}

impl Post {
    /// The messages the post stores, in the order the store answers them.
    fn items(&self) -> Vec<NewMessage> {
        match self {
            Self::Append(batch) => batch.items.clone(),
            Self::CreateGroup { message, .. }
            | Self::Membership { message, .. }
            | Self::Unbind { message, .. } => vec![message.clone()],
        }
    }
}

/// A post the store refused for a reason only its poster can put in words.
/// Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The sender of this item (by index) no longer belongs: removed
    /// between the check and the write.
    NotAdmitted(usize),
    /// The membership or binding was not as the change required.
    Precondition,
}

/// The thread of one contact in one topic.
pub fn thread(topic: &TopicId, contact: &UserId) -> ConversationId {
    ConversationId::TopicThread {
        topic: topic.clone(),
        contact: contact.clone(),
    }
}

/// The tag every message of a thread carries.
pub fn tag(topic: &TopicRecord, contact: &UserId) -> pb::TopicTag {
    pb::TopicTag {
        topic_id: topic.id.to_string(),
        topic_name: topic.name.clone(),
        owner_id: topic.owner.to_string(),
        contact_id: contact.to_string(),
        broadcast_id: String::new(),
        forwarded_from: String::new(),
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

/// Whether `sender` (the owner or the contact) may write in `contact`'s
/// thread of `topic`: only while the contact is bound and the topic lives.
pub fn topic_writable(topic: &TopicRecord, contact: &UserId, sender: &UserId) -> RouterResult<()> {
    if topic.deleted {
        return Err(RouterError::FailedPrecondition(
            "this topic was deleted; its history stays readable".into(),
        ));
    }
    if topic.binding(contact).is_some_and(Binding::is_current) {
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

/// The event that carries a stored message to its recipients.
pub fn message_event(message: pb::Message) -> pb::Event {
    pb::Event {
        kind: Some(pb::event::Kind::Message(message)),
    }
}

impl Router {
    /// Stores a post and, unless it repeats an earlier one, delivers it.
    pub async fn post(&self, post: Post) -> RouterResult<Result<AppendOutcome, Refused>> {
        let items = post.items();
        let stored = match post {
            Post::Append(batch) => self.store.append(batch).await,
            Post::CreateGroup { group, message } => self.store.create_group(&group, message).await,
            Post::Membership {
                group,
                user,
                change,
                message,
            } => {
                self.store
                    .change_membership(&group, &user, change, message)
                    .await
            }
            Post::Unbind {
                topic,
                contact,
                reason,
                message,
            } => self.store.unbind(&topic, &contact, reason, message).await,
        };
        match stored {
            Ok(outcome) => {
                if !outcome.duplicate {
                    self.deliver_appended(items, &outcome);
                }
                Ok(Ok(outcome))
            }
            Err(StoreError::NotAdmitted(index)) => Ok(Err(Refused::NotAdmitted(index))),
            Err(StoreError::Precondition) => Ok(Err(Refused::Precondition)),
            Err(StoreError::IdempotencyConflict) => Err(RouterError::InvalidArgument(
                "this client_msg_id was already used for a message to another conversation".into(),
            )),
            Err(err) => Err(err.into()),
        }
    }

    /// A direct message needs its recipient to exist; asked of the store
    /// once a minute per user, not once per message.
    async fn require_user(&self, user: &UserId) -> RouterResult<()> {
        if self.known_users.holds(user) {
            return Ok(());
        }
        match self.store.users(std::slice::from_ref(user)).await?.pop() {
            Some(Some(record)) if !record.deleted => {
                self.known_users.remember(user.clone());
                Ok(())
            }
            _ => Err(RouterError::NotFound(format!("no user {user}"))),
        }
    }

    /// A direct message goes only between two who have not blocked each
    /// other; writing in a conversation accepts it (a message request
    /// answered is one no more).
    async fn admit_direct(&self, user: &UserId, peer: &UserId) -> RouterResult<()> {
        let states = self.store.direct_states(user, peer).await?;
        if states.blocked {
            return Err(RouterError::FailedPrecondition(format!(
                "you blocked {peer}; unblock them to write to them"
            )));
        }
        if states.blocked_by {
            return Err(RouterError::PermissionDenied(format!(
                "{peer} does not take messages from you"
            )));
        }
        if !states.accepted {
            self.store.accept_direct(user, peer).await?;
        }
        Ok(())
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
        match &membership {
            Membership::Direct { peer } => {
                self.require_user(peer).await?;
                self.admit_direct(&caller.user, peer).await?;
            }
            Membership::Group { .. } => {}
            Membership::TopicThread { topic, contact } => {
                topic_writable(topic, contact, &caller.user)?;
                // Consent holds when writing, not only when binding: the
                // owner answers a contact only while they are mutual contacts.
                if caller.user == topic.owner && !self.store.mutual(&topic.owner, contact).await? {
                    return Err(RouterError::FailedPrecondition(format!(
                        "{contact} is no longer a mutual contact; you both need to add each other again"
                    )));
                }
                topic_tag = Some(tag(topic, contact));
                timeline = Some(TimelineWrite {
                    topic: topic.id.clone(),
                    broadcast_id: String::new(),
                    forwarded_from: String::new(),
                });
            }
        }
        let (admission, index_for) = membership.write_rules(&caller.user);
        let reply_to = self
            .quote_for_send(&caller.user, &conv, &req.reply_to)
            .await?;
        let mentions = match &membership {
            Membership::Group { group, .. } if text.contains('@') => {
                self.mentions(group, &text).await?
            }
            _ => Vec::new(),
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
                reply_to,
                mentions,
                ..Default::default()
            },
            admission,
            index_for,
            read_by: Some(caller.user.clone()),
        };
        let batch = AppendBatch {
            idempotency: Some((caller.user.clone(), client_msg_id)),
            items: vec![item],
            now_ms: now,
            timeline,
            memo: String::new(),
        };
        let outcome = match self.post(Post::Append(batch)).await? {
            Ok(outcome) => outcome,
            // Removed between the check and the write.
            Err(_) => {
                return Err(match &membership {
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
        };
        let appended = outcome.single()?.clone();
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
    fn deliver_appended(&self, items: Vec<NewMessage>, outcome: &AppendOutcome) {
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

    pub async fn deliver_messages(
        &self,
        messages: Vec<pb::Message>,
        epoch: &str,
    ) -> RouterResult<()> {
        let concerned = self.concerned(&messages);
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
        let located = self
            .deliverer
            .deliver(&outgoing, epoch, accepted_at_ms, stored)
            .await?;
        // Delivered already: a failure here loses a notification, not a
        // message, and is not the outbox's to retry.
        if !concerned.is_empty()
            && let Err(err) = self.tell_offline(concerned, &located).await
        {
            tracing::warn!(%err, "cannot tell offline users of their messages");
        }
        Ok(())
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
}
