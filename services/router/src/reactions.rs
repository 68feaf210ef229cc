//! Emoji reactions. Each is kept beside its message (one row per person,
//! emoji and message), never in the message's body; a change is a system
//! message in the conversation's order naming the message, so devices hear
//! it live and on resume and read the message again. Counts, and whether
//! the reader is among them, are filled in on the way out.

use std::collections::HashMap;

use switchboard_proto::pb::{self, system_event::Kind};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ConversationId, MessageId, UserId};

use crate::error::{RouterError, RouterResult};
use crate::store::{Reacted, StoredReaction};
use crate::{Caller, Router};

/// Longest emoji, in bytes (a family with skin tones and joiners is ~25).
const MAX_EMOJI_BYTES: usize = 32;

/// Different emoji one person may put on one message.
pub const MAX_PER_PERSON: usize = 20;

/// An emoji as a reaction may carry it: 1-32 bytes, no spaces, no control
/// characters.
fn emoji(raw: &str) -> RouterResult<&str> {
    if raw.is_empty() || raw.len() > MAX_EMOJI_BYTES {
        return Err(RouterError::InvalidArgument(format!(
            "a reaction is 1 to {MAX_EMOJI_BYTES} bytes; this one is {}",
            raw.len()
        )));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RouterError::InvalidArgument(
            "a reaction has no spaces or control characters".into(),
        ));
    }
    Ok(raw)
}

/// One message's reactions (oldest first) as a reader sees them: one entry
/// per emoji in the order each was first used, counted, marked `mine`.
fn summary<'a>(
    reactions: impl IntoIterator<Item = &'a StoredReaction>,
    reader: &UserId,
) -> Vec<pb::Reaction> {
    let mut summary: Vec<pb::Reaction> = Vec::new();
    for reaction in reactions {
        let at = match summary.iter().position(|r| r.emoji == reaction.emoji) {
            Some(at) => at,
            None => {
                summary.push(pb::Reaction {
                    emoji: reaction.emoji.clone(),
                    ..Default::default()
                });
                summary.len() - 1
            }
        };
        summary[at].count += 1;
        summary[at].mine |= &reaction.user == reader;
    }
    summary
}

impl Router {
    pub async fn react(
        &self,
        caller: &Caller,
        req: pb::ReactRequest,
    ) -> RouterResult<pb::ReactResponse> {
        let emoji = emoji(&req.emoji)?;
        let target = self.target(caller, &req.message_id).await?;
        if target.message.deleted && req.on {
            return Err(RouterError::FailedPrecondition(
                "a deleted message takes no reactions".into(),
            ));
        }
        let (conv, seq) = (&target.id.conversation, target.id.seq);
        let outcome = self
            .store
            .react(
                conv,
                seq,
                &caller.user,
                emoji,
                req.on,
                now_ms(),
                MAX_PER_PERSON,
            )
            .await?;
        // The reaction first, then the notice: a device that hears the
        // notice reads the counts again and must find it. Lost between the
        // two (the router died), asking again changes nothing and posts no
        // notice; devices see it when they next load the conversation.
        let notice_seq = match outcome {
            Reacted::Unchanged => 0,
            Reacted::TooMany => {
                return Err(RouterError::FailedPrecondition(format!(
                    "one person puts at most {MAX_PER_PERSON} different reactions on a message"
                )));
            }
            Reacted::Changed => {
                let text = if req.on {
                    format!("{} reacted {emoji}", caller.user)
                } else {
                    format!("{} took back {emoji}", caller.user)
                };
                self.post_notice(caller, &target, Kind::ReactionsChanged, emoji, text)
                    .await?
            }
        };
        let reactions = self.store.reactions(conv, &[seq]).await?;
        Ok(pb::ReactResponse {
            notice_seq,
            reactions: summary(&reactions, &caller.user),
        })
    }

    pub async fn list_reactions(
        &self,
        caller: &Caller,
        req: pb::ListReactionsRequest,
    ) -> RouterResult<pb::ListReactionsResponse> {
        let id = MessageId::parse(&req.message_id)?;
        let message = self.readable_message(&caller.user, &id).await?;
        if message.deleted {
            return Ok(pb::ListReactionsResponse::default());
        }
        let reactors = self
            .store
            .reactions(&id.conversation, &[id.seq])
            .await?
            .into_iter()
            .map(|r| pb::Reactor {
                user_id: r.user.to_string(),
                emoji: r.emoji,
                at_ms: r.at_ms,
            })
            .collect();
        Ok(pb::ListReactionsResponse { reactors })
    }

    /// Fills the reactions of `messages` (of any conversations) as `reader`
    /// sees them: one read per conversation. A deleted message has none,
    /// whatever a deletion cut short left behind.
    pub(crate) async fn fill_reactions(
        &self,
        reader: &UserId,
        messages: &mut [pb::Message],
    ) -> RouterResult<()> {
        let mut wanted: HashMap<ConversationId, Vec<u64>> = HashMap::new();
        for message in messages.iter() {
            if message.system.is_none() && !message.deleted {
                let conv = ConversationId::parse(&message.conversation_id)?;
                wanted.entry(conv).or_default().push(message.seq);
            }
        }
        let mut found: HashMap<(String, u64), Vec<StoredReaction>> = HashMap::new();
        for (conv, seqs) in wanted {
            for reaction in self.store.reactions(&conv, &seqs).await? {
                found
                    .entry((conv.to_string(), reaction.seq))
                    .or_default()
                    .push(reaction);
            }
        }
        for message in messages.iter_mut() {
            if message.deleted {
                continue;
            }
            if let Some(reactions) = found.get(&(message.conversation_id.clone(), message.seq)) {
                message.reactions = summary(reactions, reader);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emoji_is_short_and_one_word() {
        assert_eq!(emoji("👍").unwrap(), "👍");
        assert!(emoji(":+1:").is_ok());
        // A family with a skin tone: several code points, one emoji.
        assert!(emoji("👨🏽‍👩🏽‍👧🏽").is_ok());
        for bad in ["", "👍 👍", "a\u{0}", "\n", &"x".repeat(33)] {
            assert!(
                matches!(emoji(bad), Err(RouterError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_summary_counts_each_emoji_in_order_of_first_use_and_marks_the_readers() {
        let reaction = |user: &str, emoji: &str| StoredReaction {
            seq: 1,
            user: UserId::parse(user).unwrap(),
            emoji: emoji.into(),
            at_ms: 0,
        };
        let reactions = [
            reaction("bob", "🎉"),
            reaction("alice", "👍"),
            reaction("cyd", "🎉"),
        ];
        let seen = summary(&reactions, &UserId::parse("alice").unwrap());
        let seen: Vec<_> = seen
            .iter()
            .map(|r| (r.emoji.as_str(), r.count, r.mine))
            .collect();
        assert_eq!(seen, [("🎉", 2, false), ("👍", 1, true)]);
        assert!(summary(&[], &UserId::parse("alice").unwrap()).is_empty());
    }
}
