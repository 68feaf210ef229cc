//! Changing a message after it was sent: deleting it for everyone, and its
//! sender editing it. The stored message changes in place (a tombstone, or
//! the new text), and a system message in the conversation's order says
//! so, so every device hears it live and one that was away hears it when it
//! resumes. The notice names the message and carries no text of it: a
//! later deletion leaves no copy of any version behind.

use std::time::Duration;

use switchboard_proto::pb::{self, system_event::Kind};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::MessageId;

use crate::error::{RouterError, RouterResult};
use crate::membership::Membership;
use crate::posting::{Post, Refused, message_text};
use crate::store::{Amendment, AppendBatch, NewMessage};
use crate::{Caller, Router};

/// Who may delete a message of `sender` in a conversation the caller is
/// in as `membership`: its sender, and in a group an owner or admin.
fn may_delete(membership: &Membership, caller: &str, sender: &str) -> bool {
    sender == caller
        || matches!(
            membership,
            Membership::Group {
                role: pb::Role::Owner | pb::Role::Admin,
                ..
            }
        )
}

/// Whether a message sent at `sent_at_ms` may still be edited at `now_ms`.
fn within_window(sent_at_ms: i64, now_ms: i64, window: Duration) -> bool {
    let age = u64::try_from(now_ms.saturating_sub(sent_at_ms)).unwrap_or(0);
    !window.is_zero() && u128::from(age) <= window.as_millis()
}

/// A message someone asks to change, and what they are to its conversation.
pub(crate) struct Target {
    pub id: MessageId,
    pub message: pb::Message,
    pub membership: Membership,
}

impl Router {
    /// The message `raw` names, if the caller belongs to its conversation
    /// now and may read it; a system message is refused, it is nobody's.
    pub(crate) async fn target(&self, caller: &Caller, raw: &str) -> RouterResult<Target> {
        let id = MessageId::parse(raw)?;
        // A current member only: someone who left cannot reach back in.
        let membership = self.membership(&caller.user, &id.conversation).await?;
        let message = self.readable_message(&caller.user, &id).await?;
        if message.system.is_some() || message.sender.is_empty() {
            return Err(RouterError::FailedPrecondition(
                "a system message cannot be changed".into(),
            ));
        }
        Ok(Target {
            id,
            message,
            membership,
        })
    }

    /// Posts the notice that `target` changed (`kind`, with `detail`), in
    /// its conversation's order; returns its seq.
    pub(crate) async fn post_notice(
        &self,
        caller: &Caller,
        target: &Target,
        kind: Kind,
        detail: &str,
        text: String,
    ) -> RouterResult<u64> {
        let (admission, index_for) = target.membership.write_rules(&caller.user);
        let now = now_ms();
        let notice = NewMessage {
            conversation: target.id.conversation.clone(),
            message: pb::Message {
                sent_at_ms: now,
                text,
                system: Some(pb::SystemEvent {
                    kind: kind as i32,
                    user_id: target.message.sender.clone(),
                    actor_id: caller.user.to_string(),
                    detail: detail.to_owned(),
                    message_id: target.id.to_string(),
                }),
                topic: target.message.topic.clone(),
                ..Default::default()
            },
            admission,
            index_for,
            read_by: Some(caller.user.clone()),
        };
        let batch = AppendBatch {
            idempotency: None,
            items: vec![notice],
            now_ms: now,
            timeline: None,
            memo: String::new(),
        };
        match self.post(Post::Append(batch)).await? {
            Ok(outcome) => Ok(outcome.single()?.seq),
            Err(Refused::NotAdmitted(_) | Refused::Precondition) => Err(
                RouterError::PermissionDenied("you are no longer in this conversation".into()),
            ),
        }
    }

    pub async fn delete_message(
        &self,
        caller: &Caller,
        req: pb::DeleteMessageRequest,
    ) -> RouterResult<pb::DeleteMessageResponse> {
        let target = self.target(caller, &req.message_id).await?;
        if !may_delete(
            &target.membership,
            caller.user.as_str(),
            &target.message.sender,
        ) {
            return Err(RouterError::PermissionDenied(
                "only its sender (or, in a group, an owner or admin) can delete a message".into(),
            ));
        }
        if target.message.deleted {
            return Ok(pb::DeleteMessageResponse { notice_seq: 0 });
        }
        // The notice first: if the erasure then fails, asking again finds
        // the text still there and finishes (a second notice is harmless:
        // clients apply it once). Erasing first could leave a deletion no
        // device ever hears of.
        let text = format!("{} deleted a message", caller.user);
        let notice_seq = self
            .post_notice(caller, &target, Kind::MessageDeleted, "", text)
            .await?;
        self.store
            .amend_message(&target.id.conversation, target.id.seq, &Amendment::Erase)
            .await?;
        self.store
            .drop_reactions(&target.id.conversation, target.id.seq)
            .await?;
        tracing::info!(message = %target.id, by = %caller.user, "message deleted for everyone");
        Ok(pb::DeleteMessageResponse { notice_seq })
    }

    pub async fn edit_message(
        &self,
        caller: &Caller,
        req: pb::EditMessageRequest,
    ) -> RouterResult<pb::EditMessageResponse> {
        let text = message_text(&req.text, self.config.max_message_bytes)?;
        let target = self.target(caller, &req.message_id).await?;
        if target.message.sender != caller.user.as_str() {
            return Err(RouterError::PermissionDenied(
                "only its sender can edit a message".into(),
            ));
        }
        if target.message.deleted {
            return Err(RouterError::FailedPrecondition(
                "a deleted message cannot be edited".into(),
            ));
        }
        let now = now_ms();
        if !within_window(target.message.sent_at_ms, now, self.config.edit_window) {
            return Err(RouterError::FailedPrecondition(format!(
                "messages can be edited for {} s after they are sent; this one is older",
                self.config.edit_window.as_secs()
            )));
        }
        if target.message.text == text {
            return Ok(pb::EditMessageResponse {
                notice_seq: 0,
                edited_at_ms: target.message.edited_at_ms,
            });
        }
        // The text first, then the notice: a client that hears the notice
        // reads the message again and must find the new text. If the
        // notice is lost (the router dies between the two), asking again
        // finds the same text, changes nothing and says so with no notice:
        // devices that were not told see the edit when they next load the
        // conversation.
        let edit = Amendment::Edit { text, at_ms: now };
        let changed = self
            .store
            .amend_message(&target.id.conversation, target.id.seq, &edit)
            .await?;
        if !changed {
            // Deleted (or edited to this text) in the meantime.
            return Err(RouterError::FailedPrecondition(
                "the message changed meanwhile; read it again".into(),
            ));
        }
        let text = format!("{} edited a message", caller.user);
        let notice_seq = self
            .post_notice(caller, &target, Kind::MessageEdited, "", text)
            .await?;
        Ok(pb::EditMessageResponse {
            notice_seq,
            edited_at_ms: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_shared::ids::{GroupId, UserId};

    #[test]
    fn senders_delete_their_own_and_group_admins_anyones() {
        let direct = Membership::Direct {
            peer: UserId::parse("bob").unwrap(),
        };
        assert!(may_delete(&direct, "alice", "alice"));
        assert!(!may_delete(&direct, "alice", "bob"));
        let group = |role| Membership::Group {
            group: GroupId::generate(),
            role,
        };
        assert!(may_delete(&group(pb::Role::Owner), "alice", "bob"));
        assert!(may_delete(&group(pb::Role::Admin), "alice", "bob"));
        assert!(!may_delete(&group(pb::Role::Member), "alice", "bob"));
        assert!(may_delete(&group(pb::Role::Member), "bob", "bob"));
    }

    #[test]
    fn edits_are_allowed_within_the_window_only() {
        let hour = Duration::from_secs(3600);
        assert!(within_window(0, 3_600_000, hour));
        assert!(!within_window(0, 3_600_001, hour));
        assert!(!within_window(0, 1, Duration::ZERO), "0 turns editing off");
        // A clock a little behind the sender's is no reason to refuse.
        assert!(within_window(1_000, 0, hour));
    }
}
