//! Who may do what. Pure functions of facts the caller already loaded; no I/O.

use switchboard_proto::pb::{HistoryVisibility, JoinPolicy, Role};
use switchboard_shared::ids::{ConversationId, UserId};

use crate::error::{RouterError, RouterResult};
use crate::store::GroupMembership;

/// The seqs of a conversation a reader may read: `from` (inclusive) to
/// `to` (inclusive; `None`: up to the head, whatever it becomes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readable {
    pub from: u64,
    pub to: Option<u64>,
}

impl Readable {
    /// Everything (direct chats, topic threads, groups with full history).
    pub const ALL: Self = Self { from: 1, to: None };
}

/// What a group's new members read when its creator did not say: an open
/// group's history (anyone could join and read it anyway), but only from
/// their join in an invite-only one (its earlier talk was among others).
pub fn default_history(policy: JoinPolicy) -> HistoryVisibility {
    match policy {
        JoinPolicy::InviteOnly => HistoryVisibility::FromJoin,
        JoinPolicy::Open | JoinPolicy::Unspecified => HistoryVisibility::All,
    }
}

/// What of a group someone may read: a member, all of it or from their join
/// (the group's setting); a former member the same, up to and including the
/// message that says they left or were removed; anyone else nothing.
pub fn readable_in_group(history: HistoryVisibility, place: &GroupMembership) -> Option<Readable> {
    let from = match history {
        HistoryVisibility::FromJoin => place.joined_seq.max(1),
        HistoryVisibility::All | HistoryVisibility::Unspecified => 1,
    };
    if place.role.is_some() {
        Some(Readable { from, to: None })
    } else if place.left_seq > 0 {
        Some(Readable {
            from,
            to: Some(place.left_seq),
        })
    } else {
        None
    }
}

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// How many messages a page holds: the default when the client did not
/// say, never more than the maximum.
pub fn page_size(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_PAGE,
        n => (n as usize).min(MAX_PAGE),
    }
}

/// The other party of a direct conversation, if `user` is one of its two.
pub fn direct_peer(conv: &ConversationId, user: &UserId) -> Option<UserId> {
    match conv {
        ConversationId::Direct(a, b) if a == user => Some(b.clone()),
        ConversationId::Direct(a, b) if b == user => Some(a.clone()),
        _ => None,
    }
}

/// Only the owner and admins may invite to an invite-only group; any member
/// may invite to an open one (anyone could join it anyway).
pub fn may_invite(actor: Role, policy: JoinPolicy) -> RouterResult<()> {
    let allowed = match policy {
        JoinPolicy::InviteOnly => matches!(actor, Role::Owner | Role::Admin),
        JoinPolicy::Open | JoinPolicy::Unspecified => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(RouterError::PermissionDenied(
            "only the owner or an admin can invite to this group".into(),
        ))
    }
}

/// Joining needs an open group or an invitation.
pub fn may_join(policy: JoinPolicy, invited: bool) -> RouterResult<()> {
    if policy == JoinPolicy::InviteOnly && !invited {
        return Err(RouterError::PermissionDenied(
            "this group is invite-only: ask its owner or an admin for an invitation".into(),
        ));
    }
    Ok(())
}

/// The owner removes anyone else; an admin removes plain members only.
pub fn may_remove(actor: Role, target: Role) -> RouterResult<()> {
    let allowed = match actor {
        Role::Owner => target != Role::Owner,
        Role::Admin => target == Role::Member,
        Role::Member | Role::Unspecified => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(RouterError::PermissionDenied(match actor {
            Role::Admin => "an admin can remove members only, not the owner or other admins".into(),
            _ => "only the owner or an admin can remove members".into(),
        }))
    }
}

/// Only the owner changes roles, and only between member and admin.
pub fn may_set_role(actor: Role, new_role: Role) -> RouterResult<()> {
    if actor != Role::Owner {
        return Err(RouterError::PermissionDenied(
            "only the group's owner can change roles".into(),
        ));
    }
    if !matches!(new_role, Role::Admin | Role::Member) {
        return Err(RouterError::InvalidArgument(
            "a role can be set to admin or member".into(),
        ));
    }
    Ok(())
}

/// The owner stays: a group always has one.
pub fn may_leave(role: Role) -> RouterResult<()> {
    if role == Role::Owner {
        return Err(RouterError::FailedPrecondition(
            "the owner cannot leave the group".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn only_the_two_parties_belong_to_a_direct_conversation() {
        let conv = ConversationId::direct(user("alice"), user("bob"));
        assert_eq!(direct_peer(&conv, &user("alice")), Some(user("bob")));
        assert_eq!(direct_peer(&conv, &user("bob")), Some(user("alice")));
        assert_eq!(direct_peer(&conv, &user("mallory")), None);
    }

    #[test]
    fn invitations_follow_the_policy() {
        assert!(may_invite(Role::Member, JoinPolicy::Open).is_ok());
        assert!(may_invite(Role::Member, JoinPolicy::InviteOnly).is_err());
        assert!(may_invite(Role::Admin, JoinPolicy::InviteOnly).is_ok());
        assert!(may_join(JoinPolicy::Open, false).is_ok());
        assert!(may_join(JoinPolicy::InviteOnly, false).is_err());
        assert!(may_join(JoinPolicy::InviteOnly, true).is_ok());
    }

    #[test]
    fn removal_respects_the_hierarchy() {
        assert!(may_remove(Role::Owner, Role::Admin).is_ok());
        assert!(may_remove(Role::Owner, Role::Owner).is_err());
        assert!(may_remove(Role::Admin, Role::Member).is_ok());
        assert!(may_remove(Role::Admin, Role::Admin).is_err());
        assert!(may_remove(Role::Admin, Role::Owner).is_err());
        assert!(may_remove(Role::Member, Role::Member).is_err());
    }

    #[test]
    fn new_members_read_by_the_groups_setting() {
        let member = GroupMembership {
            role: Some(Role::Member),
            joined_seq: 7,
            left_seq: 0,
        };
        assert_eq!(
            readable_in_group(HistoryVisibility::All, &member),
            Some(Readable::ALL)
        );
        assert_eq!(
            readable_in_group(HistoryVisibility::FromJoin, &member),
            Some(Readable { from: 7, to: None })
        );
        assert_eq!(default_history(JoinPolicy::Open), HistoryVisibility::All);
        assert_eq!(
            default_history(JoinPolicy::InviteOnly),
            HistoryVisibility::FromJoin
        );
    }

    #[test]
    fn former_members_read_up_to_their_leaving_and_strangers_nothing() {
        let former = GroupMembership {
            role: None,
            joined_seq: 2,
            left_seq: 5,
        };
        assert_eq!(
            readable_in_group(HistoryVisibility::All, &former),
            Some(Readable {
                from: 1,
                to: Some(5)
            })
        );
        assert_eq!(
            readable_in_group(HistoryVisibility::FromJoin, &former),
            Some(Readable {
                from: 2,
                to: Some(5)
            })
        );
        let stranger = GroupMembership::default();
        assert_eq!(readable_in_group(HistoryVisibility::All, &stranger), None);
    }

    #[test]
    fn roles_change_only_by_the_owner_between_member_and_admin() {
        assert!(may_set_role(Role::Owner, Role::Admin).is_ok());
        assert!(may_set_role(Role::Owner, Role::Owner).is_err());
        assert!(may_set_role(Role::Admin, Role::Admin).is_err());
        assert!(may_leave(Role::Owner).is_err());
        assert!(may_leave(Role::Admin).is_ok());
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page_size(0), DEFAULT_PAGE);
        assert_eq!(page_size(10), 10);
        assert_eq!(page_size(100_000), MAX_PAGE);
    }
}
