//! Typing notices: ephemeral, never stored nor replayed. The caller must
//! belong to the conversation; the others in it are told, and the notice
//! lapses by itself. The gateway holding the call passes on at most one per
//! user and conversation every 2 s (clients send one every few seconds
//! while typing; more is noise).

use std::time::Duration;

use switchboard_proto::pb;
use switchboard_shared::ids::ConversationId;

use crate::error::RouterResult;
use crate::membership::Membership;
use crate::routing::{Audience, Outgoing};
use crate::{Caller, Router};

/// How long a client shows a notice without a newer one.
const SHOWN_FOR: Duration = Duration::from_secs(6);

impl Router {
    pub async fn typing(
        &self,
        caller: &Caller,
        req: pb::TypingRequest,
    ) -> RouterResult<pb::TypingResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        let membership = self.membership(&caller.user, &conv).await?;
        if let Membership::TopicThread { topic, contact } = &membership {
            crate::posting::topic_writable(topic, contact, &caller.user)?;
        }
        // Everyone in it but the typist (in a group, their own devices get
        // it too and know it is them).
        let audience = match membership.audience(&caller.user) {
            Audience::Users(users) => {
                Audience::Users(users.into_iter().filter(|u| u != &caller.user).collect())
            }
            group => group,
        };
        let notice = Outgoing {
            audience,
            event: pb::Event {
                kind: Some(pb::event::Kind::Typing(pb::TypingNotice {
                    conversation_id: conv.to_string(),
                    user_id: caller.user.to_string(),
                    expires_in_ms: u32::try_from(SHOWN_FOR.as_millis()).unwrap_or(u32::MAX),
                })),
            },
        };
        self.deliver_state(vec![notice]).await;
        Ok(pb::TypingResponse { delivered: true })
    }
}
