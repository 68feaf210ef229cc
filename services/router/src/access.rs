//! Who may do what. Pure functions of facts the caller already loaded; no I/O.

use switchboard_proto::pb::{JoinPolicy, Role};
use switchboard_shared::ids::{ConversationId, UserId};

use crate::error::{RouterError, RouterResult};

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
    fn roles_change_only_by_the_owner_between_member_and_admin() {
        assert!(may_set_role(Role::Owner, Role::Admin).is_ok());
        assert!(may_set_role(Role::Owner, Role::Owner).is_err());
        assert!(may_set_role(Role::Admin, Role::Admin).is_err());
        assert!(may_leave(Role::Owner).is_err());
        assert!(may_leave(Role::Admin).is_ok());
    }
}
