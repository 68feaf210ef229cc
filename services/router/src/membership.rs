//! What a user is to a conversation: the lookups behind every check of
//! who may write to or read a conversation ([`crate::access`] has the pure
//! rules they feed).

use switchboard_proto::pb;
use switchboard_shared::ids::{ConversationId, GroupId, UserId};

use crate::Router;
use crate::access::{self, Readable, direct_peer};
use crate::error::{RouterError, RouterResult};
use crate::routing::Audience;
use crate::store::{Admission, TopicRecord};

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
    /// What a message `writer` posts here is admitted by (the store checks
    /// it in the same step as the append), and whose conversation lists it
    /// goes in (a group's are found through its members instead).
    pub fn write_rules(&self, writer: &UserId) -> (Option<Admission>, Vec<UserId>) {
        match self {
            Self::Direct { peer } => (None, vec![writer.clone(), peer.clone()]),
            Self::Group { group, .. } => (
                Some(Admission::GroupMember {
                    group: group.clone(),
                    user: writer.clone(),
                }),
                Vec::new(),
            ),
            Self::TopicThread { topic, contact } => (
                Some(Admission::TopicBound {
                    topic: topic.id.clone(),
                    contact: contact.clone(),
                }),
                vec![topic.owner.clone(), contact.clone()],
            ),
        }
    }

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
}
