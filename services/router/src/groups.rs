//! Groups: create, invite, join, leave, remove, roles, listings. Every
//! membership change is a system message in the group's conversation, so it
//! has a seq and every member and gateway sees changes and messages in one
//! order (a member who left never receives what came after).

use switchboard_proto::pb::{self, system_event::Kind};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ConversationId, GroupId, UserId};

use crate::access;
use crate::accounts::display_name;
use crate::error::{RouterError, RouterResult};

use crate::posting::Post;
use crate::routing::{Audience, Outgoing};
use crate::store::{GroupRecord, MembershipChange, NewMessage};
use crate::{Caller, Router};

/// Longest group description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;

/// Most users invited when a group is created.
const MAX_INITIAL_INVITES: usize = 256;

fn system_message(kind: Kind, user: &UserId, actor: &UserId, text: String) -> NewMessage {
    NewMessage {
        // Filled in by the caller.
        conversation: ConversationId::Direct(user.clone(), actor.clone()),
        message: pb::Message {
            sent_at_ms: now_ms(),
            text,
            system: Some(pb::SystemEvent {
                kind: kind as i32,
                user_id: user.to_string(),
                actor_id: actor.to_string(),
                detail: String::new(),
                message_id: String::new(),
            }),
            ..Default::default()
        },
        admission: None,
        index_for: Vec::new(),
        read_by: None,
    }
}

fn group_view(record: GroupRecord) -> pb::Group {
    pb::Group {
        conversation_id: ConversationId::Group(record.id.clone()).to_string(),
        group_id: record.id.to_string(),
        name: record.name,
        owner_id: record.owner.to_string(),
        policy: record.policy as i32,
        history: record.history as i32,
        created_at_ms: record.created_at_ms,
        member_count: record.member_count,
        description: record.description,
    }
}

fn role_word(role: pb::Role) -> &'static str {
    match role {
        pb::Role::Owner => "the owner",
        pb::Role::Admin => "an admin",
        pb::Role::Member | pb::Role::Unspecified => "a member",
    }
}

impl Router {
    async fn group(&self, group: &GroupId) -> RouterResult<GroupRecord> {
        self.store
            .groups(std::slice::from_ref(group))
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| RouterError::NotFound(format!("no group {group}")))
    }

    async fn role_in(&self, group: &GroupId, user: &UserId) -> RouterResult<pb::Role> {
        match self.store.member_role(group, user).await? {
            Some(role) => Ok(role),
            None => Err(self.not_a_member(group).await),
        }
    }

    /// Applies a membership change with its system message, then delivers it.
    async fn change(
        &self,
        group: &GroupId,
        user: &UserId,
        change: MembershipChange,
        mut message: NewMessage,
    ) -> RouterResult<u64> {
        let conv = ConversationId::Group(group.clone());
        message.conversation = conv.clone();
        let posted = self
            .post(Post::Membership {
                group: group.clone(),
                user: user.clone(),
                change: change.clone(),
                message,
            })
            .await?;
        match posted {
            Ok(outcome) => Ok(outcome.single()?.seq),
            Err(_) => Err(match change {
                MembershipChange::Join { .. } => {
                    RouterError::AlreadyExists(format!("{user} is already a member of this group"))
                }
                _ => RouterError::NotFound(format!("{user} is not a member of this group")),
            }),
        }
    }

    /// Makes `new_owner`, a member, the group's owner (an administrator's
    /// act, see [`crate::admin`]); the owner before stays, as an admin.
    /// Returns the owner before.
    pub(crate) async fn transfer_ownership(
        &self,
        group: &GroupId,
        new_owner: &UserId,
    ) -> RouterResult<UserId> {
        let record = self.group(group).await?;
        if &record.owner == new_owner {
            return Err(RouterError::FailedPrecondition(format!(
                "{new_owner} already owns this group"
            )));
        }
        if self.store.member_role(group, new_owner).await?.is_none() {
            return Err(RouterError::FailedPrecondition(format!(
                "{new_owner} is not a member of this group: only a member can own it"
            )));
        }
        let message = system_message(
            Kind::OwnershipTransferred,
            new_owner,
            &record.owner,
            format!(
                "{new_owner} now owns the group; {} is an admin",
                record.owner
            ),
        );
        self.change(group, new_owner, MembershipChange::TakeOwnership, message)
            .await?;
        Ok(record.owner)
    }

    /// `user` leaves the group as if they had asked (their account is
    /// being deleted); NOT_FOUND if they are not a member.
    pub(crate) async fn leave_now(&self, group: &GroupId, user: &UserId) -> RouterResult<()> {
        let left = system_message(Kind::MemberLeft, user, user, format!("{user} left"));
        self.change(group, user, MembershipChange::Leave, left)
            .await
            .map(|_| ())
    }

    /// Deletes the group and its history (its owner's act, or an
    /// administrator's), then tells every member's and invitee's clients it
    /// is gone. Returns how
    /// many members and invitees it had (0 if an earlier call deleted it)
    /// and how many messages were erased; NOT_FOUND for no such group. A
    /// deletion cut short is finished by asking again.
    pub(crate) async fn delete_group_now(&self, group: &GroupId) -> RouterResult<(u32, u64)> {
        let deleted = self
            .store
            .delete_group(group)
            .await?
            .ok_or_else(|| RouterError::NotFound(format!("no group {group}")))?;
        let users = deleted.users;
        let conversation = ConversationId::Group(group.clone());
        let erased = self.store.erase_conversation(&conversation).await?;
        let gone = Outgoing {
            audience: Audience::Users(users.clone()),
            event: pb::Event {
                kind: Some(pb::event::Kind::Conversation(pb::ConversationChanged {
                    change: pb::conversation_changed::Change::Removed as i32,
                    conversation: Some(pb::Conversation {
                        conversation_id: conversation.to_string(),
                        kind: pb::ConversationKind::Group as i32,
                        group_id: group.to_string(),
                        ..Default::default()
                    }),
                })),
            },
        };
        // The group is gone from every list; a client that misses this
        // finds it so when it next syncs.
        self.deliver_state(vec![gone]).await;
        let removed = if deleted.before { 0 } else { users.len() };
        Ok((u32::try_from(removed).unwrap_or(u32::MAX), erased))
    }

    async fn notify_invited(&self, user: &UserId, group: &GroupRecord) {
        let invitation = Outgoing {
            audience: Audience::Users(vec![user.clone()]),
            event: pb::Event {
                kind: Some(pb::event::Kind::Conversation(pb::ConversationChanged {
                    change: pb::conversation_changed::Change::Invited as i32,
                    conversation: Some(pb::Conversation {
                        conversation_id: ConversationId::Group(group.id.clone()).to_string(),
                        kind: pb::ConversationKind::Group as i32,
                        title: group.name.clone(),
                        group_id: group.id.to_string(),
                        ..Default::default()
                    }),
                })),
            },
        };
        // The invitation is stored; ListMyGroups shows it if this is lost.
        self.deliver_state(vec![invitation]).await;
    }

    pub async fn create_group(
        &self,
        caller: &Caller,
        req: pb::CreateGroupRequest,
    ) -> RouterResult<pb::CreateGroupResponse> {
        let name = req.name.trim();
        if name.is_empty() {
            return Err(RouterError::InvalidArgument("a group needs a name".into()));
        }
        let name = display_name(name, &caller.user, self.config.max_name_chars)?;
        if req.invite.len() > MAX_INITIAL_INVITES {
            return Err(RouterError::InvalidArgument(format!(
                "invite at most {MAX_INITIAL_INVITES} users at creation"
            )));
        }
        let mut invitees = Vec::new();
        for raw in &req.invite {
            let user = UserId::parse(raw)?;
            if user != caller.user && !invitees.contains(&user) {
                invitees.push(user);
            }
        }
        let found = self.store.users(&invitees).await?;
        if let Some((missing, _)) = invitees.iter().zip(&found).find(|(_, r)| r.is_none()) {
            return Err(RouterError::NotFound(format!("no user {missing}")));
        }
        let policy = match req.policy() {
            pb::JoinPolicy::Unspecified => pb::JoinPolicy::Open,
            policy => policy,
        };
        let history = match req.history() {
            pb::HistoryVisibility::Unspecified => access::default_history(policy),
            history => history,
        };
        let record = GroupRecord {
            id: GroupId::generate(),
            name,
            owner: caller.user.clone(),
            policy,
            history,
            created_at_ms: now_ms(),
            member_count: 1,
            description: String::new(),
        };
        let mut created = system_message(
            Kind::GroupCreated,
            &caller.user,
            &caller.user,
            format!("{} created the group \"{}\"", caller.user, record.name),
        );
        created.conversation = ConversationId::Group(record.id.clone());
        self.post(Post::CreateGroup {
            group: record.clone(),
            message: created,
        })
        .await?
        // A new group has no membership to check.
        .map_err(|refused| RouterError::Internal(format!("group creation: {refused:?}")))?;
        for user in &invitees {
            self.store.invite(&record.id, user, now_ms()).await?;
            self.notify_invited(user, &record).await;
        }
        tracing::info!(group = %record.id, owner = %caller.user, "group created");
        Ok(pb::CreateGroupResponse {
            group: Some(group_view(record)),
        })
    }

    pub async fn invite_member(
        &self,
        caller: &Caller,
        req: pb::InviteMemberRequest,
    ) -> RouterResult<pb::InviteMemberResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        let user = UserId::parse(&req.user_id)?;
        let group = self.group(&group_id).await?;
        let role = self.role_in(&group_id, &caller.user).await?;
        access::may_invite(role, group.policy)?;
        if self.store.users(std::slice::from_ref(&user)).await?[0].is_none() {
            return Err(RouterError::NotFound(format!("no user {user}")));
        }
        if self.store.member_role(&group_id, &user).await?.is_some() {
            return Ok(pb::InviteMemberResponse {
                already_member: true,
            });
        }
        if self.store.invite(&group_id, &user, now_ms()).await? {
            self.notify_invited(&user, &group).await;
        }
        Ok(pb::InviteMemberResponse {
            already_member: false,
        })
    }

    pub async fn join_group(
        &self,
        caller: &Caller,
        req: pb::JoinGroupRequest,
    ) -> RouterResult<pb::JoinGroupResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        let group = self.group(&group_id).await?;
        if self
            .store
            .member_role(&group_id, &caller.user)
            .await?
            .is_some()
        {
            return Err(RouterError::AlreadyExists(
                "you are already a member of this group".into(),
            ));
        }
        let invited = self.store.is_invited(&group_id, &caller.user).await?;
        access::may_join(group.policy, invited)?;
        let joined = system_message(
            Kind::MemberJoined,
            &caller.user,
            &caller.user,
            format!("{} joined", caller.user),
        );
        let seq = self
            .change(
                &group_id,
                &caller.user,
                MembershipChange::Join {
                    role: pb::Role::Member,
                },
                joined,
            )
            .await?;
        let group = self.group(&group_id).await?;
        Ok(pb::JoinGroupResponse {
            group: Some(group_view(group)),
            joined_at_seq: seq,
        })
    }

    pub async fn leave_group(
        &self,
        caller: &Caller,
        req: pb::LeaveGroupRequest,
    ) -> RouterResult<pb::LeaveGroupResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        let role = self.role_in(&group_id, &caller.user).await?;
        access::may_leave(role)?;
        let left = system_message(
            Kind::MemberLeft,
            &caller.user,
            &caller.user,
            format!("{} left", caller.user),
        );
        self.change(&group_id, &caller.user, MembershipChange::Leave, left)
            .await?;
        Ok(pb::LeaveGroupResponse {})
    }

    pub async fn remove_member(
        &self,
        caller: &Caller,
        req: pb::RemoveMemberRequest,
    ) -> RouterResult<pb::RemoveMemberResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        let user = UserId::parse(&req.user_id)?;
        let actor_role = self.role_in(&group_id, &caller.user).await?;
        let target_role = self
            .store
            .member_role(&group_id, &user)
            .await?
            .ok_or_else(|| {
                RouterError::NotFound(format!("{user} is not a member of this group"))
            })?;
        access::may_remove(actor_role, target_role)?;
        let removed = system_message(
            Kind::MemberRemoved,
            &user,
            &caller.user,
            format!("{} removed {user}", caller.user),
        );
        self.change(&group_id, &user, MembershipChange::Leave, removed)
            .await?;
        Ok(pb::RemoveMemberResponse {})
    }

    pub async fn set_member_role(
        &self,
        caller: &Caller,
        req: pb::SetMemberRoleRequest,
    ) -> RouterResult<pb::SetMemberRoleResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        let user = UserId::parse(&req.user_id)?;
        let new_role = req.role();
        let actor_role = self.role_in(&group_id, &caller.user).await?;
        access::may_set_role(actor_role, new_role)?;
        if user == caller.user {
            return Err(RouterError::InvalidArgument(
                "the owner's own role cannot change".into(),
            ));
        }
        let mut changed = system_message(
            Kind::RoleChanged,
            &user,
            &caller.user,
            format!("{user} is now {}", role_word(new_role)),
        );
        if let Some(system) = &mut changed.message.system {
            system.detail = crate::store::role_name(new_role).to_owned();
        }
        self.change(
            &group_id,
            &user,
            MembershipChange::SetRole { role: new_role },
            changed,
        )
        .await?;
        Ok(pb::SetMemberRoleResponse {})
    }

    /// The owner hands the group to another member (see
    /// [`Self::transfer_ownership`]).
    pub async fn transfer_group(
        &self,
        caller: &Caller,
        req: pb::TransferOwnershipRequest,
    ) -> RouterResult<pb::TransferOwnershipResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        let new_owner = UserId::parse(&req.new_owner_id)?;
        if self.role_in(&group_id, &caller.user).await? != pb::Role::Owner {
            return Err(RouterError::PermissionDenied(
                "only the owner can hand the group over".into(),
            ));
        }
        self.transfer_ownership(&group_id, &new_owner).await?;
        Ok(pb::TransferOwnershipResponse {})
    }

    /// The owner deletes the group (see [`Self::delete_group_now`]).
    pub async fn disband_group(
        &self,
        caller: &Caller,
        req: pb::DisbandGroupRequest,
    ) -> RouterResult<pb::DisbandGroupResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        if self.role_in(&group_id, &caller.user).await? != pb::Role::Owner {
            return Err(RouterError::PermissionDenied(
                "only the owner can delete the group".into(),
            ));
        }
        self.delete_group_now(&group_id).await?;
        tracing::info!(group = %group_id, owner = %caller.user, "group deleted by its owner");
        Ok(pb::DisbandGroupResponse {})
    }

    /// The owner or an admin renames the group or changes its description.
    pub async fn update_group(
        &self,
        caller: &Caller,
        req: pb::UpdateGroupRequest,
    ) -> RouterResult<pb::UpdateGroupResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        let name = match req.name.as_deref().map(str::trim) {
            None => None,
            Some("") => {
                return Err(RouterError::InvalidArgument("a group needs a name".into()));
            }
            Some(name) => Some(display_name(
                name,
                &caller.user,
                self.config.max_name_chars,
            )?),
        };
        let description = req.description.as_deref().map(str::trim).map(str::to_owned);
        if let Some(text) = &description {
            if text.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(RouterError::InvalidArgument(format!(
                    "a description is at most {MAX_DESCRIPTION_CHARS} characters"
                )));
            }
            if text.chars().any(|c| c.is_control() && c != '\n') {
                return Err(RouterError::InvalidArgument(
                    "a description cannot hold control characters".into(),
                ));
            }
        }
        if name.is_none() && description.is_none() {
            return Err(RouterError::InvalidArgument(
                "say what to change: name, description or both".into(),
            ));
        }
        let role = self.role_in(&group_id, &caller.user).await?;
        if !matches!(role, pb::Role::Owner | pb::Role::Admin) {
            return Err(RouterError::PermissionDenied(
                "only the owner or an admin can rename the group or change its description".into(),
            ));
        }
        if !self
            .store
            .update_group(&group_id, name.as_deref(), description.as_deref())
            .await?
        {
            return Err(RouterError::NotFound(format!("no group {group_id}")));
        }
        let (changed, text) = match (&name, &description) {
            (Some(name), None) => (
                "name",
                format!("{} renamed the group to {name}", caller.user),
            ),
            (None, Some(_)) => (
                "description",
                format!("{} changed the group's description", caller.user),
            ),
            _ => (
                "name description",
                format!(
                    "{} renamed the group to {} and changed its description",
                    caller.user,
                    name.as_deref().unwrap_or_default()
                ),
            ),
        };
        // Said in the group, in its order: members' clients refresh their lists.
        let mut notice = system_message(Kind::GroupUpdated, &caller.user, &caller.user, text);
        notice.conversation = ConversationId::Group(group_id.clone());
        let membership = crate::membership::Membership::Group {
            group: group_id.clone(),
            role,
        };
        notice.admission = membership.write_rules(&caller.user).0;
        if let Some(system) = &mut notice.message.system {
            system.detail = changed.to_owned();
        }
        let batch = crate::store::AppendBatch {
            idempotency: None,
            items: vec![notice],
            now_ms: now_ms(),
            timeline: None,
            memo: String::new(),
        };
        if self.post(Post::Append(batch)).await?.is_err() {
            return Err(self.not_a_member(&group_id).await);
        }
        Ok(pb::UpdateGroupResponse {
            group: Some(group_view(self.group(&group_id).await?)),
        })
    }

    pub async fn list_my_groups(
        &self,
        caller: &Caller,
        _req: pb::ListMyGroupsRequest,
    ) -> RouterResult<pb::ListMyGroupsResponse> {
        let (groups, invites) = futures::try_join!(
            self.store.user_groups(&caller.user),
            self.store.user_invites(&caller.user),
        )?;
        let (groups, invitations) =
            futures::try_join!(self.store.groups(&groups), self.store.groups(&invites))?;
        Ok(pb::ListMyGroupsResponse {
            groups: groups.into_iter().flatten().map(group_view).collect(),
            invitations: invitations.into_iter().flatten().map(group_view).collect(),
        })
    }

    pub async fn list_members(
        &self,
        caller: &Caller,
        req: pb::ListMembersRequest,
    ) -> RouterResult<pb::ListMembersResponse> {
        let group_id = GroupId::parse(&req.group_id)?;
        self.role_in(&group_id, &caller.user).await?;
        let members = self.store.members(&group_id).await?;
        let users: Vec<UserId> = members.iter().map(|(u, _)| u.clone()).collect();
        let records = self.store.users(&users).await?;
        let online = self.directory_online(&users).await;
        Ok(pb::ListMembersResponse {
            members: members
                .into_iter()
                .zip(records)
                .zip(online)
                .map(|(((user, role), record), online)| pb::Member {
                    display_name: record
                        .map(|r| r.display_name)
                        .unwrap_or_else(|| user.to_string()),
                    user_id: user.to_string(),
                    role: role as i32,
                    online,
                })
                .collect(),
        })
    }
}
