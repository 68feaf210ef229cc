//! `sb admin`: the admin API, with an admin credential instead of a login.

use anyhow::Context as _;
use serde_json::json;
use switchboard_proto::client::Bearer;
use switchboard_proto::pb;
use switchboard_proto::pb::admin_service_client::AdminServiceClient;

use crate::args::{AdminArgs, AdminCommand, Args};
use crate::client;
use crate::output::Output;

use super::confirmed;

pub async fn run(args: &Args, admin: &AdminArgs, out: &Output) -> anyhow::Result<()> {
    let channel = client::connect(&args.server_or(None), args.ca.as_deref()).await?;
    let bearer = Bearer::new(&admin.token).context("the admin token is not valid metadata")?;
    let mut api = AdminServiceClient::with_interceptor(channel, bearer);
    match &admin.command {
        AdminCommand::Find {
            prefix,
            after,
            limit,
        } => {
            let found = api
                .find_users(pb::FindUsersRequest {
                    prefix: prefix.clone(),
                    after: after.clone(),
                    limit: *limit,
                })
                .await?
                .into_inner();
            for user in &found.users {
                let value = json!({
                    "user_id": user.user_id, "display_name": user.display_name,
                    "created_at_ms": user.created_at_ms, "banned": user.banned,
                    "passwordless": user.passwordless, "deleted": user.deleted,
                });
                out.print(value, || {
                    let mut flags = Vec::new();
                    if user.deleted {
                        flags.push("deleted");
                    } else if user.banned {
                        flags.push("banned");
                    }
                    if user.passwordless {
                        flags.push("app tokens only");
                    }
                    format!(
                        "{:<24} {:<24} {}",
                        user.user_id,
                        user.display_name,
                        flags.join(", ")
                    )
                });
            }
            if found.more
                && let Some(last) = found.users.last()
            {
                out.print(json!({"more_after": last.user_id}), || {
                    format!("more: sb admin find {prefix} --after {}", last.user_id)
                });
            }
        }
        AdminCommand::Ban { user, reason } => {
            let banned = api
                .ban_user(pb::BanUserRequest {
                    user_id: user.clone(),
                    reason: reason.clone(),
                })
                .await?
                .into_inner();
            out.print(
                json!({"banned": user, "sessions_revoked": banned.sessions_revoked}),
                || format!("banned {user}; {} sessions ended", banned.sessions_revoked),
            );
        }
        AdminCommand::Unban { user, reason } => {
            api.unban_user(pb::UnbanUserRequest {
                user_id: user.clone(),
                reason: reason.clone(),
            })
            .await?;
            out.print(json!({"unbanned": user}), || format!("unbanned {user}"));
        }
        AdminCommand::ResetPassword { user, password } => {
            let reset = api
                .reset_password(pb::ResetPasswordRequest {
                    user_id: user.clone(),
                    new_password: password.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            let generated = reset.generated_password.clone();
            out.print(
                json!({"reset": user, "generated_password": generated, "sessions_revoked": reset.sessions_revoked}),
                || {
                    if generated.is_empty() {
                        format!("new password set for {user}; {} sessions ended", reset.sessions_revoked)
                    } else {
                        format!(
                            "new password for {user}: {generated}\n{} sessions ended",
                            reset.sessions_revoked
                        )
                    }
                },
            );
        }
        AdminCommand::Sessions { user } => {
            let sessions = api
                .list_sessions(pb::ListSessionsRequest {
                    user_id: user.clone(),
                })
                .await?
                .into_inner()
                .sessions;
            for session in &sessions {
                out.print(
                    json!({"session_id": session.session_id, "device_id": session.device_id, "expires_at_ms": session.expires_at_ms}),
                    || format!("{:<24} {:<24} expires_at_ms={}", session.session_id, session.device_id, session.expires_at_ms),
                );
            }
        }
        AdminCommand::Revoke { user, sessions } => {
            let revoked = api
                .revoke_sessions(pb::RevokeSessionsRequest {
                    user_id: user.clone(),
                    session_ids: sessions.clone(),
                })
                .await?
                .into_inner();
            out.print(
                json!({"user_id": user, "sessions_revoked": revoked.sessions_revoked}),
                || format!("{} sessions of {user} ended", revoked.sessions_revoked),
            );
        }
        AdminCommand::TransferGroup { group, new_owner } => {
            let moved = api
                .transfer_group(pb::TransferGroupRequest {
                    group_id: group.clone(),
                    new_owner_id: new_owner.clone(),
                })
                .await?
                .into_inner();
            out.print(
                json!({"group_id": group, "owner": new_owner, "previous_owner": moved.previous_owner_id}),
                || format!("{new_owner} now owns {group} ({} is an admin)", moved.previous_owner_id),
            );
        }
        AdminCommand::DeleteUser { user, reason, yes } => {
            confirmed(
                *yes,
                &format!("deleting {user} erases their account and messages"),
            )?;
            let done = api
                .delete_user(pb::DeleteUserRequest {
                    user_id: user.clone(),
                    reason: reason.clone(),
                })
                .await?
                .into_inner();
            out.print(
                json!({"user_id": user, "sessions_revoked": done.sessions_revoked,
                       "groups_left": done.groups_left, "groups_deleted": done.groups_deleted,
                       "topics_deleted": done.topics_deleted, "topics_left": done.topics_left,
                       "contacts_removed": done.contacts_removed,
                       "messages_erased": done.messages_erased}),
                || {
                    format!(
                        "{user} deleted: {} sessions ended, {} groups left, {} deleted, {} topics deleted, {} left, {} contacts removed, {} messages erased",
                        done.sessions_revoked,
                        done.groups_left,
                        done.groups_deleted,
                        done.topics_deleted,
                        done.topics_left,
                        done.contacts_removed,
                        done.messages_erased
                    )
                },
            );
        }
        AdminCommand::DeleteGroup { group, reason, yes } => {
            confirmed(*yes, &format!("deleting {group} erases it and its history"))?;
            let done = api
                .delete_group(pb::DeleteGroupRequest {
                    group_id: group.clone(),
                    reason: reason.clone(),
                })
                .await?
                .into_inner();
            out.print(
                json!({"group_id": group, "members_removed": done.members_removed,
                       "messages_erased": done.messages_erased}),
                || {
                    format!(
                        "{group} deleted: {} members and invitations removed, {} messages erased",
                        done.members_removed, done.messages_erased
                    )
                },
            );
        }
        AdminCommand::Audit { before, limit } => {
            let entries = api
                .audit_log(pb::AuditLogRequest {
                    before: before.clone(),
                    limit: *limit,
                })
                .await?
                .into_inner()
                .entries;
            for entry in &entries {
                out.print(
                    json!({"id": entry.id, "at_ms": entry.at_ms, "admin": entry.admin,
                           "action": entry.action, "target": entry.target, "detail": entry.detail}),
                    || {
                        format!(
                            "{} {:<10} {:<15} {:<24} {}",
                            entry.id, entry.admin, entry.action, entry.target, entry.detail
                        )
                    },
                );
            }
        }
    }
    Ok(())
}
