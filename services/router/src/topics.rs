//! One-to-many topics: the owner binds contacts, sends once, and each bound
//! contact gets a private copy in their own thread (`t:<topic>:<contact>`).
//!
//! The forwarding list is the topic's contacts hash: a copy or a reply is
//! admitted only while the contact's field is there, checked inside the same
//! atomic step that stores the message. A broadcast is one atomic append of
//! every copy under one client message id, so a retry after any crash
//! completes it with no gap and no duplicate.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt as _, TryStreamExt as _};
use switchboard_proto::pb::{
    self, binding_result::Outcome, follow_up::Who, topic_contact::State,
    topic_recipient::Outcome as RecipientOutcome,
};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{
    ClientMsgId, ConversationId, MessageId, TopicId, UserId, random_token,
};

use crate::access::page_size;
use crate::accounts::display_name;
use crate::error::{RouterError, RouterResult};
use crate::posting::{Post, Refused, message_text, tag, thread};
use crate::routing::{Audience, Outgoing};
use crate::store::{
    Admission, AppendBatch, BindOutcome, Binding, NewMessage, StoreError, TimelineWrite,
    TopicRecord,
};
use crate::{Caller, Router};

/// The contact whose thread a conversation is.
fn thread_contact(conv: &ConversationId) -> String {
    match conv {
        ConversationId::TopicThread { contact, .. } => contact.to_string(),
        other => other.to_string(),
    }
}

/// What a broadcast's retry must answer besides the copies' seqs: its id,
/// and who was skipped. Kept in the send's idempotency record as
/// `<broadcast id> <skipped contact>,<skipped contact>...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastMemo {
    pub broadcast_id: String,
    pub skipped: Vec<UserId>,
}

impl BroadcastMemo {
    pub fn encode(&self) -> String {
        let skipped: Vec<&str> = self.skipped.iter().map(UserId::as_str).collect();
        format!("{} {}", self.broadcast_id, skipped.join(","))
    }

    pub fn decode(memo: &str) -> RouterResult<Self> {
        let (broadcast_id, skipped) = memo.split_once(' ').unwrap_or((memo, ""));
        Ok(Self {
            broadcast_id: broadcast_id.to_owned(),
            skipped: skipped
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|u| UserId::parse(u).map_err(RouterError::from))
                .collect::<RouterResult<_>>()?,
        })
    }
}

fn state(binding: Binding) -> State {
    match binding {
        Binding::Bound => State::Bound,
        Binding::Muted => State::Muted,
        Binding::Left => State::Left,
        Binding::Removed => State::Removed,
    }
}

fn result(user: &str, outcome: Outcome, message: String) -> pb::BindingResult {
    pb::BindingResult {
        user_id: user.to_owned(),
        outcome: outcome as i32,
        message,
    }
}

/// Who of the bound contacts a send goes to. Pure.
pub fn recipients(
    bound: &[UserId],
    only: &[UserId],
    follow_up: Option<&HashSet<UserId>>,
) -> RouterResult<Vec<UserId>> {
    if let Some(stranger) = only.iter().find(|u| !bound.contains(u)) {
        return Err(RouterError::InvalidArgument(format!(
            "{stranger} is not in this topic"
        )));
    }
    let chosen: Vec<UserId> = bound
        .iter()
        .filter(|u| only.is_empty() || only.contains(u))
        .filter(|u| follow_up.is_none_or(|wanted| wanted.contains(*u)))
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(RouterError::FailedPrecondition(
            "nobody to send to: no bound contact matches".into(),
        ));
    }
    Ok(chosen)
}

/// Threads a topic's deletion ends at once.
const DELETION_CONCURRENCY: usize = 16;

impl Router {
    pub(crate) async fn topic(&self, id: &TopicId) -> RouterResult<TopicRecord> {
        self.store
            .topics(std::slice::from_ref(id))
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| RouterError::NotFound(format!("no topic {id}")))
    }

    /// The topic, if the caller owns it.
    async fn owned_topic(&self, caller: &Caller, raw: &str) -> RouterResult<TopicRecord> {
        let topic = self.topic(&TopicId::parse(raw)?).await?;
        if topic.owner != caller.user {
            return Err(RouterError::PermissionDenied(
                "only the topic's owner can do that".into(),
            ));
        }
        Ok(topic)
    }

    fn require_open(topic: &TopicRecord) -> RouterResult<()> {
        if topic.deleted {
            return Err(RouterError::FailedPrecondition(
                "this topic was deleted".into(),
            ));
        }
        Ok(())
    }

    async fn topic_view(&self, topic: &TopicRecord) -> RouterResult<pb::Topic> {
        let users: Vec<UserId> = topic.contacts.iter().map(|(u, _)| u.clone()).collect();
        let (records, mutual) = futures::try_join!(
            async { Ok::<_, RouterError>(self.store.users(&users).await?) },
            self.mutual_contacts(&topic.owner),
        )?;
        Ok(pb::Topic {
            topic_id: topic.id.to_string(),
            name: topic.name.clone(),
            owner_id: topic.owner.to_string(),
            created_at_ms: topic.created_at_ms,
            deleted: topic.deleted,
            contacts: topic
                .contacts
                .iter()
                .zip(records)
                .map(|((user, binding), record)| pb::TopicContact {
                    user_id: user.to_string(),
                    display_name: record.map(|r| r.display_name).unwrap_or_default(),
                    state: if binding.is_current() && !mutual.contains(user) {
                        State::NotMutual
                    } else {
                        state(*binding)
                    } as i32,
                    conversation_id: thread(&topic.id, user).to_string(),
                })
                .collect(),
        })
    }

    /// Binds whoever of `raw` may be bound: existing, mutual contacts of the owner.
    async fn bind_contacts(
        &self,
        topic: &TopicRecord,
        raw: &[String],
    ) -> RouterResult<Vec<pb::BindingResult>> {
        let mut wanted: Vec<UserId> = Vec::new();
        for name in raw {
            let user = UserId::parse(name)?;
            if user == topic.owner {
                return Err(RouterError::InvalidArgument(
                    "the owner cannot be bound into their own topic".into(),
                ));
            }
            if !wanted.contains(&user) {
                wanted.push(user);
            }
        }
        let (exists, mutual) = futures::try_join!(
            async { Ok(self.store.users(&wanted).await?) },
            self.mutual_contacts(&topic.owner),
        )?;
        let mut results = Vec::with_capacity(wanted.len());
        let mut eligible = Vec::new();
        for (user, record) in wanted.iter().zip(exists) {
            if record.is_none() {
                results.push(result(
                    user.as_str(),
                    Outcome::NoSuchUser,
                    format!("no user {user}"),
                ));
            } else if !mutual.contains(user) {
                // Consent: only someone who added the owner back can be broadcast to.
                results.push(result(
                    user.as_str(),
                    Outcome::NotAContact,
                    format!("{user} is not a mutual contact; you both need to add each other"),
                ));
            } else {
                eligible.push(user.clone());
            }
        }
        let outcomes = match self
            .store
            .bind(&topic.id, &eligible, self.config.max_topic_contacts)
            .await
        {
            Ok(outcomes) => outcomes,
            // Deleted since it was read.
            Err(StoreError::Precondition) => {
                return Err(RouterError::FailedPrecondition(
                    "this topic was deleted; its history stays readable".into(),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        // The new contacts are told from the topic as it is now, with them bound.
        let now_bound = self.topic(&topic.id).await?;
        for (user, outcome) in eligible.iter().zip(outcomes) {
            results.push(match outcome {
                BindOutcome::Added => {
                    self.tell(
                        vec![user.clone()],
                        pb::conversation_changed::Change::Added,
                        self.thread_summary(&now_bound, user, false),
                    )
                    .await;
                    result(user.as_str(), Outcome::Added, format!("added {user}"))
                }
                BindOutcome::Already => result(
                    user.as_str(),
                    Outcome::AlreadyInTopic,
                    format!("{user} is already in this topic"),
                ),
                BindOutcome::Full => result(
                    user.as_str(),
                    Outcome::TopicFull,
                    format!(
                        "the topic is full ({} contacts at most)",
                        self.config.max_topic_contacts
                    ),
                ),
            });
        }
        Ok(results)
    }

    /// A thread as a conversation summary, from `viewer_is_owner`'s side.
    pub(crate) fn thread_summary(
        &self,
        topic: &TopicRecord,
        contact: &UserId,
        viewer_is_owner: bool,
    ) -> pb::Conversation {
        let binding = topic.binding(contact);
        pb::Conversation {
            conversation_id: thread(&topic.id, contact).to_string(),
            kind: pb::ConversationKind::TopicThread as i32,
            title: if viewer_is_owner {
                format!("{} · {contact}", topic.name)
            } else {
                format!("{} (from {})", topic.name, topic.owner)
            },
            peer_id: if viewer_is_owner {
                contact.to_string()
            } else {
                topic.owner.to_string()
            },
            topic: Some(tag(topic, contact)),
            muted: binding == Some(Binding::Muted),
            closed: topic.deleted || !binding.is_some_and(Binding::is_current),
            ..Default::default()
        }
    }

    /// Delivers a conversation change (not stored: the lists have the state).
    pub(crate) async fn tell(
        &self,
        users: Vec<UserId>,
        change: pb::conversation_changed::Change,
        conversation: pb::Conversation,
    ) {
        let event = Outgoing {
            audience: Audience::Users(users),
            event: pb::Event {
                kind: Some(pb::event::Kind::Conversation(pb::ConversationChanged {
                    change: change as i32,
                    conversation: Some(conversation),
                })),
            },
        };
        self.deliver_state(vec![event]).await;
    }

    pub async fn create_topic(
        &self,
        caller: &Caller,
        req: pb::CreateTopicRequest,
    ) -> RouterResult<pb::CreateTopicResponse> {
        let name = topic_name(&req.name, &caller.user, self.config.max_name_chars)?;
        let mut topic = TopicRecord {
            id: TopicId::generate(),
            name,
            owner: caller.user.clone(),
            created_at_ms: now_ms(),
            deleted: false,
            contacts: Vec::new(),
        };
        self.store.create_topic(&topic).await?;
        let results = self.bind_contacts(&topic, &req.contacts).await?;
        topic = self.topic(&topic.id).await?;
        tracing::info!(topic = %topic.id, owner = %caller.user, "topic created");
        Ok(pb::CreateTopicResponse {
            topic: Some(self.topic_view(&topic).await?),
            results,
        })
    }

    pub async fn rename_topic(
        &self,
        caller: &Caller,
        req: pb::RenameTopicRequest,
    ) -> RouterResult<pb::RenameTopicResponse> {
        let topic = self.owned_topic(caller, &req.topic_id).await?;
        Self::require_open(&topic)?;
        let name = topic_name(&req.name, &caller.user, self.config.max_name_chars)?;
        self.store.rename_topic(&topic.id, &name).await?;
        let topic = self.topic(&topic.id).await?;
        for contact in topic.bound() {
            let mut users = vec![topic.owner.clone()];
            users.push(contact.clone());
            self.tell(
                users,
                pb::conversation_changed::Change::Updated,
                self.thread_summary(&topic, contact, false),
            )
            .await;
        }
        Ok(pb::RenameTopicResponse {
            topic: Some(self.topic_view(&topic).await?),
        })
    }

    /// Marks the topic deleted, then unbinds each contact still bound, each
    /// a change of their thread (so a reply admitted before it lands before
    /// the notice, and none after). A deletion cut short (its router died)
    /// is finished by asking again.
    pub async fn delete_topic(
        &self,
        caller: &Caller,
        req: pb::DeleteTopicRequest,
    ) -> RouterResult<pb::DeleteTopicResponse> {
        let topic = self.owned_topic(caller, &req.topic_id).await?;
        if topic.deleted && topic.bound().next().is_none() {
            Self::require_open(&topic)?;
        }
        self.delete_topic_now(&topic).await?;
        Ok(pb::DeleteTopicResponse {})
    }

    /// Deletes the topic and ends every thread still open, as
    /// [`Self::delete_topic`] after its checks (also an administrator's
    /// act, when the owner's account is deleted).
    pub(crate) async fn delete_topic_now(&self, topic: &TopicRecord) -> RouterResult<()> {
        let bound = self.store.delete_topic(&topic.id).await?;
        // The end is said in every thread, so both sides see it in history.
        // Threads are independent changes: several at a time, rather than a
        // full topic's 256 (the default cap) one after another.
        let ends: Vec<_> = bound
            .iter()
            .map(|contact| self.end_thread(topic, contact, &topic.owner))
            .collect();
        futures::stream::iter(ends)
            .buffer_unordered(DELETION_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// One contact's thread of a deleted topic, ended: unbound, with the
    /// notice. Already gone (they left, or another deletion got there
    /// first) is fine.
    async fn end_thread(
        &self,
        topic: &TopicRecord,
        contact: &UserId,
        owner: &UserId,
    ) -> RouterResult<()> {
        let text = "this topic was deleted";
        match self
            .unbind(topic, contact, owner, Binding::Removed, text)
            .await
        {
            Ok(()) | Err(RouterError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// A system message in one contact's thread.
    fn thread_notice(
        &self,
        topic: &TopicRecord,
        contact: &UserId,
        actor: &UserId,
        text: &str,
        now: i64,
    ) -> NewMessage {
        let kind = if actor == contact {
            pb::system_event::Kind::ContactLeftTopic
        } else {
            pb::system_event::Kind::ContactRemovedFromTopic
        };
        NewMessage {
            conversation: thread(&topic.id, contact),
            message: pb::Message {
                sent_at_ms: now,
                text: text.to_owned(),
                system: Some(pb::SystemEvent {
                    kind: kind as i32,
                    user_id: contact.to_string(),
                    actor_id: actor.to_string(),
                    detail: String::new(),
                    message_id: String::new(),
                }),
                topic: Some(tag(topic, contact)),
                ..Default::default()
            },
            admission: None,
            index_for: vec![topic.owner.clone(), contact.clone()],
            read_by: None,
        }
    }

    pub async fn list_topics(
        &self,
        caller: &Caller,
        _req: pb::ListTopicsRequest,
    ) -> RouterResult<pb::ListTopicsResponse> {
        let ids = self.store.user_topics(&caller.user).await?;
        let mut topics = Vec::with_capacity(ids.len());
        for topic in self.store.topics(&ids).await?.into_iter().flatten() {
            topics.push(self.topic_view(&topic).await?);
        }
        Ok(pb::ListTopicsResponse { topics })
    }

    pub async fn add_topic_contacts(
        &self,
        caller: &Caller,
        req: pb::AddTopicContactsRequest,
    ) -> RouterResult<pb::AddTopicContactsResponse> {
        let topic = self.owned_topic(caller, &req.topic_id).await?;
        Self::require_open(&topic)?;
        if req.contacts.is_empty() {
            return Err(RouterError::InvalidArgument(
                "name the contacts to add".into(),
            ));
        }
        let results = self.bind_contacts(&topic, &req.contacts).await?;
        let topic = self.topic(&topic.id).await?;
        Ok(pb::AddTopicContactsResponse {
            topic: Some(self.topic_view(&topic).await?),
            results,
        })
    }

    pub async fn remove_topic_contacts(
        &self,
        caller: &Caller,
        req: pb::RemoveTopicContactsRequest,
    ) -> RouterResult<pb::RemoveTopicContactsResponse> {
        let topic = self.owned_topic(caller, &req.topic_id).await?;
        Self::require_open(&topic)?;
        let mut results = Vec::with_capacity(req.contacts.len());
        for raw in &req.contacts {
            let contact = UserId::parse(raw)?;
            let text = format!("{} removed {contact} from this topic", caller.user);
            results.push(
                match self
                    .unbind(&topic, &contact, &caller.user, Binding::Removed, &text)
                    .await
                {
                    Ok(()) => result(raw, Outcome::Removed, format!("removed {contact}")),
                    Err(RouterError::NotFound(message)) => {
                        result(raw, Outcome::NotInTopic, message)
                    }
                    Err(err) => return Err(err),
                },
            );
        }
        let topic = self.topic(&topic.id).await?;
        Ok(pb::RemoveTopicContactsResponse {
            topic: Some(self.topic_view(&topic).await?),
            results,
        })
    }

    /// Unbinds and says so in the contact's thread, delivered to both sides.
    async fn unbind(
        &self,
        topic: &TopicRecord,
        contact: &UserId,
        actor: &UserId,
        reason: Binding,
        text: &str,
    ) -> RouterResult<()> {
        let notice = self.thread_notice(topic, contact, actor, text, now_ms());
        let posted = self
            .post(Post::Unbind {
                topic: topic.id.clone(),
                contact: contact.clone(),
                reason,
                message: notice,
            })
            .await?;
        match posted {
            Ok(_) => Ok(()),
            Err(_) => Err(RouterError::NotFound(format!(
                "{contact} is not in this topic"
            ))),
        }
    }

    pub async fn leave_topic(
        &self,
        caller: &Caller,
        req: pb::LeaveTopicRequest,
    ) -> RouterResult<pb::LeaveTopicResponse> {
        let topic = self.topic(&TopicId::parse(&req.topic_id)?).await?;
        if topic.binding(&caller.user).is_none() {
            return Err(RouterError::NotFound(format!("no topic {}", topic.id)));
        }
        self.leave_topic_now(&topic, &caller.user)
            .await
            .map_err(|err| match err {
                RouterError::NotFound(_) => {
                    RouterError::FailedPrecondition("you are not in this topic any more".into())
                }
                other => other,
            })?;
        Ok(pb::LeaveTopicResponse {})
    }

    /// `contact` leaves the topic's thread, saying so in it; NOT_FOUND if
    /// they were not bound.
    pub(crate) async fn leave_topic_now(
        &self,
        topic: &TopicRecord,
        contact: &UserId,
    ) -> RouterResult<()> {
        let text = format!("{contact} left this topic");
        self.unbind(topic, contact, contact, Binding::Left, &text)
            .await
    }

    pub async fn mute_topic(
        &self,
        caller: &Caller,
        req: pb::MuteTopicRequest,
    ) -> RouterResult<pb::MuteTopicResponse> {
        let id = TopicId::parse(&req.topic_id)?;
        if !self.store.set_muted(&id, &caller.user, req.muted).await? {
            return Err(RouterError::NotFound(format!(
                "you are not in a topic {id}"
            )));
        }
        let topic = self.topic(&id).await?;
        // The owner sees it; the contact's other devices follow.
        self.tell(
            vec![topic.owner.clone(), caller.user.clone()],
            pb::conversation_changed::Change::Updated,
            self.thread_summary(&topic, &caller.user, false),
        )
        .await;
        Ok(pb::MuteTopicResponse {})
    }

    pub async fn send_to_topic(
        &self,
        caller: &Caller,
        req: pb::SendToTopicRequest,
    ) -> RouterResult<pb::SendToTopicResponse> {
        let topic = self.owned_topic(caller, &req.topic_id).await?;
        Self::require_open(&topic)?;
        let client_msg_id = ClientMsgId::parse(&req.client_msg_id)?;

        // Copy and resend: the text of a message from any thread of this topic.
        let mut forwarded_from = String::new();
        let mut text = req.text.clone();
        if !req.forward_message_id.is_empty() {
            let original = self.topic_message(&topic, &req.forward_message_id).await?;
            forwarded_from = original.message_id.clone();
            if text.trim().is_empty() {
                text = original.text;
            }
        }
        let text = message_text(&text, self.config.max_message_bytes)?;

        let bound: Vec<UserId> = topic.bound().cloned().collect();
        let only = req
            .only
            .iter()
            .map(|u| UserId::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let follow_up = match &req.follow_up {
            Some(follow_up) => Some(self.follow_up_audience(&topic, follow_up).await?),
            None => None,
        };
        let chosen = recipients(&bound, &only, follow_up.as_ref())?;
        // Consent holds when sending, not only when binding: a contact who
        // is no longer a mutual contact is skipped, and the owner told.
        let mutual = self.store.mutual_among(&caller.user, &chosen).await?;
        let (mut sendable, mut skipped) = (Vec::new(), Vec::new());
        for (contact, mutual) in chosen.into_iter().zip(mutual) {
            if mutual {
                sendable.push(contact);
            } else {
                skipped.push(contact);
            }
        }
        if sendable.is_empty() {
            return Err(RouterError::FailedPrecondition(
                "nobody to send to: none of the chosen contacts is a mutual contact any more"
                    .into(),
            ));
        }

        let broadcast_id = format!("b{}", random_token(12));
        let now = now_ms();
        // A contact removed between reading the topic and storing is dropped
        // from the batch, which is retried: nothing was written.
        let outcome = loop {
            let items: Vec<NewMessage> = sendable
                .iter()
                .map(|contact| {
                    let mut topic_tag = tag(&topic, contact);
                    topic_tag.broadcast_id = broadcast_id.clone();
                    NewMessage {
                        conversation: thread(&topic.id, contact),
                        message: pb::Message {
                            sender: caller.user.to_string(),
                            sent_at_ms: now,
                            text: text.clone(),
                            client_msg_id: client_msg_id.to_string(),
                            topic: Some(topic_tag),
                            ..Default::default()
                        },
                        admission: Some(Admission::TopicBound {
                            topic: topic.id.clone(),
                            contact: contact.clone(),
                        }),
                        index_for: vec![caller.user.clone(), contact.clone()],
                        read_by: Some(caller.user.clone()),
                    }
                })
                .collect();
            let batch = AppendBatch {
                idempotency: Some((caller.user.clone(), client_msg_id.clone())),
                items,
                now_ms: now,
                // Where it was copied from is the owner's to know: in their
                // timeline, never in a contact's copy.
                timeline: Some(TimelineWrite {
                    topic: topic.id.clone(),
                    broadcast_id: broadcast_id.clone(),
                    forwarded_from: forwarded_from.clone(),
                }),
                memo: BroadcastMemo {
                    broadcast_id: broadcast_id.clone(),
                    skipped: skipped.clone(),
                }
                .encode(),
            };
            match self.post(Post::Append(batch)).await? {
                Ok(outcome) => break outcome,
                Err(Refused::NotAdmitted(index)) if sendable.len() > 1 => {
                    sendable.remove(index);
                }
                Err(_) => {
                    return Err(RouterError::FailedPrecondition(
                        "nobody to send to: the contacts were removed".into(),
                    ));
                }
            }
        };
        // A retry answers what the first send answered, from its record.
        let memo = BroadcastMemo::decode(&outcome.memo)?;
        let mut recipients: Vec<pb::TopicRecipient> = outcome
            .appended
            .iter()
            .map(|a| pb::TopicRecipient {
                user_id: thread_contact(&a.conversation),
                conversation_id: a.conversation.to_string(),
                seq: a.seq,
                outcome: RecipientOutcome::Sent as i32,
                message: String::new(),
            })
            .collect();
        recipients.extend(memo.skipped.iter().map(|contact| pb::TopicRecipient {
            user_id: contact.to_string(),
            conversation_id: thread(&topic.id, contact).to_string(),
            seq: 0,
            outcome: RecipientOutcome::NotMutual as i32,
            message: format!(
                "{contact} was skipped: no longer a mutual contact (you both need to add each other)"
            ),
        }));
        Ok(pb::SendToTopicResponse {
            broadcast_id: memo.broadcast_id,
            timeline_seq: outcome.timeline_seq,
            recipients,
            duplicate: outcome.duplicate,
            sent_at_ms: outcome.appended.first().map_or(now, |a| a.sent_at_ms),
        })
    }

    /// A message of one of this topic's threads, by id.
    async fn topic_message(&self, topic: &TopicRecord, raw: &str) -> RouterResult<pb::Message> {
        let id = MessageId::parse(raw)?;
        let ConversationId::TopicThread { topic: of, .. } = &id.conversation else {
            return Err(RouterError::InvalidArgument(format!(
                "{raw} is not a message of this topic"
            )));
        };
        if of != &topic.id {
            return Err(RouterError::InvalidArgument(format!(
                "{raw} is not a message of this topic"
            )));
        }
        self.store
            .messages_after(&id.conversation, id.seq - 1, 1)
            .await?
            .into_iter()
            .find(|m| m.seq == id.seq)
            .ok_or_else(|| RouterError::NotFound(format!("no message {raw}")))
    }

    async fn follow_up_audience(
        &self,
        topic: &TopicRecord,
        follow_up: &pb::FollowUp,
    ) -> RouterResult<HashSet<UserId>> {
        let statuses = self.statuses(topic, &follow_up.broadcast_id).await?;
        let wanted = match follow_up.who() {
            Who::NotRead => |s: &pb::ContactStatus| !s.read,
            Who::NotReplied => |s: &pb::ContactStatus| !s.replied,
            Who::Unspecified => {
                return Err(RouterError::InvalidArgument(
                    "say who to follow up: those who have not read, or not replied".into(),
                ));
            }
        };
        statuses
            .iter()
            .filter(|s| wanted(s))
            .map(|s| UserId::parse(&s.user_id).map_err(RouterError::from))
            .collect()
    }

    /// Delivered, read and replied, per copy of a broadcast.
    async fn statuses(
        &self,
        topic: &TopicRecord,
        broadcast_id: &str,
    ) -> RouterResult<Vec<pb::ContactStatus>> {
        let copies = self
            .store
            .broadcast(&topic.id, broadcast_id)
            .await?
            .ok_or_else(|| {
                RouterError::NotFound(format!("no broadcast {broadcast_id} in this topic"))
            })?;
        let threads: Vec<(ConversationId, UserId)> = copies
            .iter()
            .filter_map(|id| match &id.conversation {
                ConversationId::TopicThread { contact, .. } => {
                    Some((id.conversation.clone(), contact.clone()))
                }
                _ => None,
            })
            .collect();
        let states = self.store.thread_states(&threads).await?;
        Ok(copies
            .iter()
            .zip(threads.iter().zip(states))
            .map(|(copy, ((conv, contact), state))| pb::ContactStatus {
                user_id: contact.to_string(),
                conversation_id: conv.to_string(),
                seq: copy.seq,
                delivered: state.delivered >= copy.seq || state.read >= copy.seq,
                read: state.read >= copy.seq,
                replied: state.sent > copy.seq,
            })
            .collect())
    }

    pub async fn broadcast_status(
        &self,
        caller: &Caller,
        req: pb::BroadcastStatusRequest,
    ) -> RouterResult<pb::BroadcastStatusResponse> {
        let topic = self.owned_topic(caller, &req.topic_id).await?;
        Ok(pb::BroadcastStatusResponse {
            contacts: self.statuses(&topic, &req.broadcast_id).await?,
        })
    }

    pub async fn topic_timeline(
        &self,
        caller: &Caller,
        req: pb::TopicTimelineRequest,
    ) -> RouterResult<pb::TopicTimelineResponse> {
        let topic = self.owned_topic(caller, &req.topic_id).await?;
        let limit = page_size(req.limit);
        let before = match req.before_seq {
            0 => u64::MAX,
            before => before,
        };
        let mut entries = self
            .store
            .timeline(&topic.id, before, req.after_seq, limit + 1)
            .await?;
        let has_more = entries.len() > limit;
        if has_more {
            if req.after_seq.is_some() {
                entries.truncate(limit);
            } else {
                entries.remove(0);
            }
        }
        let firsts = futures::future::try_join_all(entries.iter().map(|entry| async move {
            match entry.messages.first() {
                Some(id) => Ok(self
                    .store
                    .messages_after(&id.conversation, id.seq - 1, 1)
                    .await?
                    .pop()),
                None => Ok::<_, RouterError>(None),
            }
        }))
        .await?;
        Ok(pb::TopicTimelineResponse {
            entries: entries
                .into_iter()
                .zip(firsts)
                .map(|(entry, mut message)| {
                    // The owner's view: where a resent broadcast came from.
                    if let Some(tag) = message.as_mut().and_then(|m| m.topic.as_mut()) {
                        tag.forwarded_from.clone_from(&entry.forwarded_from);
                    }
                    pb::TimelineEntry {
                        seq: entry.seq,
                        broadcast_id: entry.broadcast_id,
                        message,
                        recipients: entry
                            .messages
                            .iter()
                            .map(|id| pb::TopicRecipient {
                                user_id: thread_contact(&id.conversation),
                                conversation_id: id.conversation.to_string(),
                                seq: id.seq,
                                outcome: RecipientOutcome::Sent as i32,
                                message: String::new(),
                            })
                            .collect(),
                    }
                })
                .collect(),
            has_more,
        })
    }

    /// Topic messages that reached their contact: remember, and tell the owner.
    pub async fn delivered(&self, marks: Vec<(ConversationId, UserId, u64)>) -> RouterResult<()> {
        // Only a contact's own copies count; all marks go to the store at once.
        let marks: Vec<_> = marks
            .into_iter()
            .filter(|(conv, user, _)| {
                matches!(conv, ConversationId::TopicThread { contact, .. } if contact == user)
            })
            .collect();
        let moved = self.store.mark_delivered(&marks).await?;
        let mut owners: HashMap<TopicId, UserId> = HashMap::new();
        let mut receipts = Vec::new();
        for ((conv, user, seq), moved) in marks.into_iter().zip(moved) {
            let ConversationId::TopicThread { topic, .. } = &conv else {
                continue;
            };
            if !moved {
                continue;
            }
            let owner = match owners.get(topic) {
                Some(owner) => owner.clone(),
                None => {
                    let owner = self.topic(topic).await?.owner;
                    owners.insert(topic.clone(), owner.clone());
                    owner
                }
            };
            receipts.push(Outgoing {
                audience: Audience::Users(vec![owner]),
                event: pb::Event {
                    kind: Some(pb::event::Kind::Delivered(pb::DeliveryReceipt {
                        conversation_id: conv.to_string(),
                        user_id: user.to_string(),
                        delivered_seq: seq,
                    })),
                },
            });
        }
        if !receipts.is_empty() {
            self.deliver_state(receipts).await;
        }
        Ok(())
    }
}

/// A topic name: like a display name, but never empty.
fn topic_name(raw: &str, owner: &UserId, max: usize) -> RouterResult<String> {
    if raw.trim().is_empty() {
        return Err(RouterError::InvalidArgument("a topic needs a name".into()));
    }
    display_name(raw, owner, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(names: &[&str]) -> Vec<UserId> {
        names.iter().map(|n| UserId::parse(n).unwrap()).collect()
    }

    #[test]
    fn a_broadcast_memo_round_trips() {
        let memo = BroadcastMemo {
            broadcast_id: "babc".into(),
            skipped: users(&["ann", "ben"]),
        };
        assert_eq!(memo.encode(), "babc ann,ben");
        assert_eq!(BroadcastMemo::decode(&memo.encode()).unwrap(), memo);
        let none = BroadcastMemo {
            broadcast_id: "babc".into(),
            skipped: vec![],
        };
        assert_eq!(BroadcastMemo::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn a_send_goes_to_every_bound_contact_by_default() {
        let bound = users(&["ann", "ben", "cat"]);
        assert_eq!(recipients(&bound, &[], None).unwrap(), bound);
    }

    #[test]
    fn a_partial_send_goes_to_the_chosen_only() {
        let bound = users(&["ann", "ben", "cat"]);
        assert_eq!(
            recipients(&bound, &users(&["cat", "ann"]), None).unwrap(),
            users(&["ann", "cat"])
        );
        let err = recipients(&bound, &users(&["dan"]), None).unwrap_err();
        assert!(err.to_string().contains("dan is not in this topic"));
    }

    #[test]
    fn a_follow_up_goes_to_those_still_bound_who_qualify() {
        let bound = users(&["ann", "ben"]);
        // cat qualified but has been removed since.
        let lagging: HashSet<UserId> = users(&["ben", "cat"]).into_iter().collect();
        assert_eq!(
            recipients(&bound, &[], Some(&lagging)).unwrap(),
            users(&["ben"])
        );
        let nobody = HashSet::new();
        assert!(matches!(
            recipients(&bound, &[], Some(&nobody)),
            Err(RouterError::FailedPrecondition(_))
        ));
    }
}
