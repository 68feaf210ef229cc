//! Telling users with no device online of their new messages: by webhook
//! to the app's backend (`webhooks.rs`) and by Web Push to the browsers they
//! subscribed (`push.rs`). Who a message concerns is [`recipients`], plain
//! code; then the router drops those who are online, who
//! muted the conversation (a mention reaches them anyway), and those a
//! stranger wrote to (a message request stays quiet until accepted). Also
//! the two calls by which a page subscribes.

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_proto::pb;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ConversationId, GatewayId, SessionId, TopicId, UserId};

use crate::error::{RouterError, RouterResult};
use crate::push::{self, Pusher};
use crate::routing::Locations;
use crate::store::{Binding, PushSubscription, Store, TopicRecord};
use crate::webhooks::Webhook;
use crate::{Caller, Router};

/// Why a user is told of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A direct message to them.
    Direct,
    /// A message in a topic thread they are part of (the owner's broadcast
    /// or message to a contact, or a contact's reply to the owner).
    Topic,
    /// A group message that names them.
    Mention,
}

/// Who a stored message may need to reach while they are offline, and why.
/// Only a person's message is told: never a system message, a notice of an
/// edit or reaction, or a tombstone; never to its sender.
pub fn recipients(message: &pb::Message) -> Vec<(UserId, Reason)> {
    if message.system.is_some() || message.deleted || message.text.is_empty() {
        return Vec::new();
    }
    let Ok(conv) = ConversationId::parse(&message.conversation_id) else {
        return Vec::new();
    };
    let not_sender = |user: &UserId| user.as_str() != message.sender;
    match conv {
        ConversationId::Direct(a, b) => [a, b]
            .into_iter()
            .filter(not_sender)
            .map(|u| (u, Reason::Direct))
            .collect(),
        ConversationId::TopicThread { topic: _, contact } => {
            let owner = message
                .topic
                .as_ref()
                .and_then(|tag| UserId::parse(&tag.owner_id).ok());
            [Some(contact), owner]
                .into_iter()
                .flatten()
                .filter(not_sender)
                .take(1)
                .map(|u| (u, Reason::Topic))
                .collect()
        }
        ConversationId::Group(_) => message
            .mentions
            .iter()
            .filter_map(|m| UserId::parse(m).ok())
            .filter(not_sender)
            .map(|u| (u, Reason::Mention))
            .collect(),
    }
}

/// A delivered message and whom it may concern.
pub type Concerned = (pb::Message, Vec<(UserId, Reason)>);

impl Router {
    /// The messages among `messages` that concern someone, if webhooks or
    /// pushes are on.
    pub(crate) fn concerned(&self, messages: &[pb::Message]) -> Vec<Concerned> {
        if self.webhooks.is_none() && self.push.is_none() {
            return Vec::new();
        }
        messages
            .iter()
            .filter_map(|message| {
                let recipients = recipients(message);
                (!recipients.is_empty()).then(|| (message.clone(), recipients))
            })
            .collect()
    }

    /// Queues a webhook and pushes for each concerned user who was offline
    /// when the messages were delivered (`located`: where delivery found its
    /// users).
    pub(crate) async fn tell_offline(
        &self,
        concerned: Vec<Concerned>,
        located: &Locations,
    ) -> RouterResult<()> {
        // A group's mentioned members were not located one by one.
        let mut unlocated: Vec<UserId> = Vec::new();
        for (user, _) in concerned.iter().flat_map(|(_, r)| r) {
            if !located.users.contains_key(user) && !unlocated.contains(user) {
                unlocated.push(user.clone());
            }
        }
        let mut found: HashMap<UserId, Vec<GatewayId>> = HashMap::new();
        if !unlocated.is_empty() {
            let gateways = self
                .directory
                .user_gateways(&unlocated)
                .await
                .map_err(|e| RouterError::Unavailable(e.to_string()))?;
            found.extend(unlocated.into_iter().zip(gateways));
        }
        let online = |user: &UserId| {
            located
                .users
                .get(user)
                .or_else(|| found.get(user))
                .is_some_and(|gateways| !gateways.is_empty())
        };
        // A broadcast's copies share one topic: it is read once, not per contact.
        let mut topics = HashMap::new();
        for (message, recipients) in concerned {
            for (user, reason) in recipients {
                if online(&user)
                    || !self
                        .wants_to_hear(&user, &message, reason, &mut topics)
                        .await?
                {
                    continue;
                }
                if let Some(hooks) = &self.webhooks {
                    hooks.offer(Webhook::offline_message(&message, &user, reason));
                }
                if let Some(pusher) = &self.push {
                    self.push_to(pusher, &user, &message, reason).await?;
                }
            }
        }
        Ok(())
    }

    /// Pushes `message` to each browser `user` subscribed from a session
    /// that still lasts (a subscription of an ended session is forgotten).
    async fn push_to(
        &self,
        pusher: &Pusher,
        user: &UserId,
        message: &pb::Message,
        reason: Reason,
    ) -> RouterResult<()> {
        for subscription in self.store.push_subscriptions(user).await? {
            let live = match SessionId::parse(&subscription.session) {
                Ok(session) => self.store.session(&session, now_ms()).await?.is_some(),
                Err(_) => false,
            };
            if !live {
                self.store.remove_push(user, &subscription.endpoint).await?;
                continue;
            }
            let gone = forget_if_gone(
                self.store.clone(),
                user.clone(),
                subscription.endpoint.clone(),
            );
            if let Err(err) = pusher.offer(message, reason, &subscription, gone) {
                tracing::warn!(%err, %user, "cannot push to a subscription; forgotten");
                self.store.remove_push(user, &subscription.endpoint).await?;
            }
        }
        Ok(())
    }

    fn pusher(&self) -> RouterResult<&Pusher> {
        self.push.as_ref().ok_or_else(|| {
            RouterError::FailedPrecondition(
                "Web Push is not set up on this deployment (SB_VAPID_PRIVATE_KEY)".into(),
            )
        })
    }

    pub fn push_key(&self) -> RouterResult<pb::GetPushKeyResponse> {
        Ok(pb::GetPushKeyResponse {
            vapid_public_key: self.pusher()?.vapid.public_key().to_owned(),
        })
    }

    pub async fn set_push_subscription(
        &self,
        caller: &Caller,
        req: pb::SetPushSubscriptionRequest,
    ) -> RouterResult<pb::SetPushSubscriptionResponse> {
        let pusher = self.pusher()?;
        let user = &caller.user;
        if req.remove {
            self.store.remove_push(user, &req.endpoint).await?;
            return Ok(pb::SetPushSubscriptionResponse {});
        }
        pusher
            .vapid
            .check(&req.endpoint, &req.p256dh, &req.auth)
            .map_err(RouterError::InvalidArgument)?;
        let mut kept = self.store.push_subscriptions(user).await?;
        kept.retain(|s| s.endpoint != req.endpoint);
        kept.sort_by_key(|s| s.added_at_ms);
        let excess = (kept.len() + 1).saturating_sub(push::MAX_SUBSCRIPTIONS);
        for oldest in kept.iter().take(excess) {
            self.store.remove_push(user, &oldest.endpoint).await?;
        }
        self.store
            .put_push(
                user,
                &PushSubscription {
                    endpoint: req.endpoint,
                    p256dh: req.p256dh,
                    auth: req.auth,
                    previews: req.previews,
                    session: caller.session.to_string(),
                    added_at_ms: now_ms(),
                },
            )
            .await?;
        Ok(pb::SetPushSubscriptionResponse {})
    }

    /// Whether `user` should be woken for `message`; `topics` keeps the
    /// topics read so far.
    async fn wants_to_hear(
        &self,
        user: &UserId,
        message: &pb::Message,
        reason: Reason,
        topics: &mut HashMap<TopicId, Option<TopicRecord>>,
    ) -> RouterResult<bool> {
        let conv = ConversationId::parse(&message.conversation_id)?;
        match (reason, &conv) {
            (Reason::Mention, _) => Ok(true),
            (Reason::Direct, _) => {
                if self.store.muted_conversations(user).await?.contains(&conv) {
                    return Ok(false);
                }
                let sender = UserId::parse(&message.sender)?;
                let states = self.store.direct_states(user, &sender).await?;
                if states.blocked {
                    return Ok(false);
                }
                Ok(states.accepted
                    || self
                        .store
                        .contacts(user)
                        .await?
                        .iter()
                        .any(|c| c.user == sender))
            }
            (Reason::Topic, ConversationId::TopicThread { topic, contact }) if contact == user => {
                if !topics.contains_key(topic) {
                    let record = self.store.topics(std::slice::from_ref(topic)).await?.pop();
                    topics.insert(topic.clone(), record.flatten());
                }
                Ok(topics[topic]
                    .as_ref()
                    .is_some_and(|t| t.binding(user) == Some(Binding::Bound)))
            }
            // The owner hears every reply; they mute no thread.
            (Reason::Topic, _) => Ok(true),
        }
    }
}

/// Forgets a subscription its push service no longer knows (404, 410).
fn forget_if_gone(
    store: Arc<dyn Store>,
    user: UserId,
    endpoint: String,
) -> crate::outbound::OnRefused {
    Box::new(move |status| {
        Box::pin(async move {
            if matches!(status, 404 | 410)
                && let Err(err) = store.remove_push(&user, &endpoint).await
            {
                tracing::warn!(%err, %user, "cannot forget a push subscription that is gone");
            }
        })
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A person's message, for the tests of who is told and what.
    pub(crate) fn message(conv: &str, sender: &str) -> pb::Message {
        pb::Message {
            conversation_id: conv.into(),
            seq: 7,
            message_id: "m1".into(),
            sender: sender.into(),
            sent_at_ms: 1_000,
            text: "hello @cyd".into(),
            ..Default::default()
        }
    }

    pub(crate) fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn who_is_told_of_what() {
        let direct = message("dm:ann:bob", "ann");
        assert_eq!(recipients(&direct), vec![(user("bob"), Reason::Direct)]);

        let mut reply = message("t:tlaunch1:bob", "bob");
        reply.topic = Some(pb::TopicTag {
            topic_id: "tlaunch1".into(),
            owner_id: "ann".into(),
            contact_id: "bob".into(),
            ..Default::default()
        });
        assert_eq!(recipients(&reply), vec![(user("ann"), Reason::Topic)]);
        let mut copy = reply.clone();
        copy.sender = "ann".into();
        assert_eq!(recipients(&copy), vec![(user("bob"), Reason::Topic)]);

        let mut mention = message("g:gcrew01", "ann");
        mention.mentions = vec!["ann".into(), "cyd".into()];
        assert_eq!(recipients(&mention), vec![(user("cyd"), Reason::Mention)]);
        assert!(
            recipients(&message("g:gcrew01", "ann")).is_empty(),
            "a group message names nobody"
        );

        let mut system = direct.clone();
        system.system = Some(pb::SystemEvent::default());
        let mut deleted = direct.clone();
        deleted.deleted = true;
        deleted.text.clear();
        for silent in [system, deleted] {
            assert!(recipients(&silent).is_empty(), "{silent:?}");
        }
    }
}
