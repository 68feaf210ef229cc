use serde_json::json;
use switchboard_proto::pb;

use super::Session;
use crate::args::{GroupsCommand, HistoryArg};
use crate::output::{self, Output};

fn bare(group: &str) -> String {
    group.trim_start_matches("g:").to_owned()
}

pub async fn run(
    mut session: Session,
    command: &GroupsCommand,
    out: &Output,
) -> anyhow::Result<()> {
    let groups = &mut session.clients.groups;
    match command {
        GroupsCommand::List => {
            let response = groups
                .list_my_groups(pb::ListMyGroupsRequest {})
                .await?
                .into_inner();
            for g in &response.groups {
                out.print(output::group(g), || {
                    format!(
                        "{:<14} {:<28} {} members",
                        g.group_id, g.name, g.member_count
                    )
                });
            }
            for g in &response.invitations {
                let mut value = output::group(g);
                value["invitation"] = json!(true);
                out.print(value, || {
                    format!(
                        "{:<14} {:<28} invited: sb groups join {}",
                        g.group_id, g.name, g.group_id
                    )
                });
            }
        }
        GroupsCommand::Create {
            name,
            invite_only,
            history,
            invite,
        } => {
            let policy = if *invite_only {
                pb::JoinPolicy::InviteOnly
            } else {
                pb::JoinPolicy::Open
            };
            let history = match history {
                None => pb::HistoryVisibility::Unspecified,
                Some(HistoryArg::All) => pb::HistoryVisibility::All,
                Some(HistoryArg::FromJoin) => pb::HistoryVisibility::FromJoin,
            };
            let response = groups
                .create_group(pb::CreateGroupRequest {
                    name: name.clone(),
                    policy: policy as i32,
                    invite: invite.clone(),
                    history: history as i32,
                })
                .await?
                .into_inner();
            let g = response.group.unwrap_or_default();
            out.print(output::group(&g), || {
                let history = match g.history() {
                    pb::HistoryVisibility::FromJoin => "new members read from their joining",
                    _ => "new members read all history",
                };
                format!("created {} \"{}\" ({history})", g.group_id, g.name)
            });
        }
        GroupsCommand::Join { group } => {
            let response = groups
                .join_group(pb::JoinGroupRequest {
                    group_id: bare(group),
                })
                .await?
                .into_inner();
            let g = response.group.unwrap_or_default();
            let mut value = output::group(&g);
            value["joined_at_seq"] = json!(response.joined_at_seq);
            out.print(value, || format!("joined {} \"{}\"", g.group_id, g.name));
        }
        GroupsCommand::Invite { group, user } => {
            let response = groups
                .invite_member(pb::InviteMemberRequest {
                    group_id: bare(group),
                    user_id: user.clone(),
                })
                .await?
                .into_inner();
            out.print(
                json!({"invited": user, "already_member": response.already_member}),
                || {
                    if response.already_member {
                        format!("{user} is already a member")
                    } else {
                        format!("invited {user}")
                    }
                },
            );
        }
        GroupsCommand::Update {
            group,
            name,
            description,
        } => {
            let updated = groups
                .update_group(pb::UpdateGroupRequest {
                    group_id: bare(group),
                    name: name.clone(),
                    description: description.clone(),
                })
                .await?
                .into_inner()
                .group
                .unwrap_or_default();
            out.print(output::group(&updated), || {
                format!("{} is now \"{}\"", updated.group_id, updated.name)
            });
        }
        GroupsCommand::Transfer { group, user } => {
            groups
                .transfer_ownership(pb::TransferOwnershipRequest {
                    group_id: bare(group),
                    new_owner_id: user.clone(),
                })
                .await?;
            out.print(json!({"group_id": bare(group), "owner": user}), || {
                format!("{user} now owns {}; you are an admin", bare(group))
            });
        }
        GroupsCommand::Delete { group, yes } => {
            super::confirmed(
                *yes,
                &format!(
                    "deleting {} erases it and its history for everyone",
                    bare(group)
                ),
            )?;
            groups
                .disband_group(pb::DisbandGroupRequest {
                    group_id: bare(group),
                })
                .await?;
            out.print(json!({"deleted": bare(group)}), || {
                format!("deleted {}", bare(group))
            });
        }
        GroupsCommand::Leave { group } => {
            groups
                .leave_group(pb::LeaveGroupRequest {
                    group_id: bare(group),
                })
                .await?;
            out.print(json!({"left": bare(group)}), || {
                format!("left {}", bare(group))
            });
        }
        GroupsCommand::Remove { group, user } => {
            groups
                .remove_member(pb::RemoveMemberRequest {
                    group_id: bare(group),
                    user_id: user.clone(),
                })
                .await?;
            out.print(json!({"removed": user, "group_id": bare(group)}), || {
                format!("removed {user}")
            });
        }
        GroupsCommand::Role { group, user, role } => {
            let role = if role == "admin" {
                pb::Role::Admin
            } else {
                pb::Role::Member
            };
            groups
                .set_member_role(pb::SetMemberRoleRequest {
                    group_id: bare(group),
                    user_id: user.clone(),
                    role: role as i32,
                })
                .await?;
            out.print(json!({"user_id": user, "role": role.as_str_name()}), || {
                format!(
                    "{user} is now {}",
                    role.as_str_name()
                        .trim_start_matches("ROLE_")
                        .to_lowercase()
                )
            });
        }
        GroupsCommand::Members { group } => {
            let response = groups
                .list_members(pb::ListMembersRequest {
                    group_id: bare(group),
                })
                .await?
                .into_inner();
            for m in &response.members {
                out.print(
                    json!({"user_id": m.user_id, "display_name": m.display_name, "role": m.role().as_str_name(), "online": m.online}),
                    || {
                        let role = m.role().as_str_name().trim_start_matches("ROLE_").to_lowercase();
                        let online = if m.online { "online" } else { "" };
                        format!("{:<24} {:<8} {online}", m.user_id, role)
                    },
                );
            }
        }
    }
    Ok(())
}
