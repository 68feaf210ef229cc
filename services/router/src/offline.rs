//! Telling an app's backend of new messages for users with no device
//! online, by webhook (`webhooks.rs` says how they are sent). Who a message
//! concerns is [`webhooks::recipients`]; here the router drops those who are
//! online, who muted the conversation (a mention reaches them anyway), and
//! those a stranger wrote to (a message request stays quiet until accepted).

use std::collections::HashMap;

use switchboard_proto::pb;
use switchboard_shared::ids::{ConversationId, GatewayId, UserId};

use crate::Router;
use crate::error::{RouterError, RouterResult};
use crate::routing::Locations;
use crate::store::Binding;
use crate::webhooks::{self, Reason, Webhook};

/// A delivered message and whom it may concern.
pub type Concerned = (pb::Message, Vec<(UserId, Reason)>);

impl Router {
    /// The messages among `messages` that concern someone, if webhooks are on.
    pub(crate) fn concerned(&self, messages: &[pb::Message]) -> Vec<Concerned> {
        if self.webhooks.is_none() {
            return Vec::new();
        }
        messages
            .iter()
            .filter_map(|message| {
                let recipients = webhooks::recipients(message);
                (!recipients.is_empty()).then(|| (message.clone(), recipients))
            })
            .collect()
    }

    /// Queues a webhook for each concerned user who was offline when the
    /// messages were delivered (`located`: where delivery found its users).
    pub(crate) async fn tell_offline(
        &self,
        concerned: Vec<Concerned>,
        located: &Locations,
    ) -> RouterResult<()> {
        let Some(hooks) = &self.webhooks else {
            return Ok(());
        };
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
        for (message, recipients) in concerned {
            for (user, reason) in recipients {
                if !online(&user) && self.wants_to_hear(&user, &message, reason).await? {
                    hooks.offer(Webhook::offline_message(&message, &user, reason));
                }
            }
        }
        Ok(())
    }

    /// Whether `user` should be woken for `message`.
    async fn wants_to_hear(
        &self,
        user: &UserId,
        message: &pb::Message,
        reason: Reason,
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
                let topic = self.store.topics(std::slice::from_ref(topic)).await?.pop();
                Ok(topic
                    .flatten()
                    .is_some_and(|t| t.binding(user) == Some(Binding::Bound)))
            }
            // The owner hears every reply; they mute no thread.
            (Reason::Topic, _) => Ok(true),
        }
    }
}
