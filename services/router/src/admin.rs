//! Administration (`AdminService`): what an operator does to users and
//! groups. Transport-free: the caller has already been recognised as an
//! admin ([`AdminTokens::who`]) and passes the credential's name along.
//! Every change is written to the audit log before it answers, so an
//! action the operator saw succeed is in the log.

use switchboard_proto::pb;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ConversationId, GroupId, SessionId, UserId, random_token};

use crate::Router;
use crate::accounts::{check_password, hash_password};
use crate::error::{RouterError, RouterResult};
use crate::store::{AuditRecord, SessionRecord, UserRecord};

/// One admin credential: `name:secret` on the command line.
#[derive(Clone)]
pub struct AdminToken {
    name: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken({})", self.name)
    }
}

const MIN_SECRET: usize = 32;

impl AdminToken {
    /// `name:secret`: a name of 1-32 of `a-z0-9_-` (it goes in the audit
    /// log) and a secret of at least 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, secret) = text
            .split_once(':')
            .ok_or("an admin token is `name:secret` (the name goes in the audit log)")?;
        let name_ok = (1..=32).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !name_ok {
            return Err(format!(
                "the admin token name `{name}` is not 1-32 of a-z, 0-9, '_' and '-'"
            ));
        }
        if secret.len() < MIN_SECRET {
            return Err(format!(
                "the secret of admin token `{name}` is shorter than {MIN_SECRET} bytes"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            secret: secret.as_bytes().to_vec(),
        })
    }
}

/// The admin credentials a deployment accepts.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens(Vec<AdminToken>);

impl AdminTokens {
    pub fn new(tokens: Vec<AdminToken>) -> Self {
        Self(tokens)
    }

    /// Whether the admin API is on at all.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// The name of the credential `presented` is, compared in constant
    /// time against every one (which one matched is not timed either).
    pub fn who(&self, presented: &[u8]) -> Option<&str> {
        use subtle::ConstantTimeEq as _;
        let mut found = None;
        for token in &self.0 {
            if bool::from(token.secret.as_slice().ct_eq(presented)) {
                found = Some(token.name.as_str());
            }
        }
        found
    }
}

const PAGE: u32 = 100;
const MAX_PAGE: u32 = 500;

fn page(limit: u32) -> RouterResult<usize> {
    match limit {
        0 => Ok(PAGE as usize),
        1..=MAX_PAGE => Ok(limit as usize),
        _ => Err(RouterError::InvalidArgument(format!(
            "limit is 1 to {MAX_PAGE} (0 for {PAGE})"
        ))),
    }
}

fn no_such_user(user: &UserId) -> RouterError {
    RouterError::NotFound(format!("there is no user {user}"))
}

fn session_view(session: SessionRecord) -> pb::AdminSession {
    pb::AdminSession {
        session_id: session.id.to_string(),
        device_id: session.device.to_string(),
        expires_at_ms: session.expires_at_ms,
    }
}

/// An audit entry id as the stores make them: `<ms>-<n>`.
fn audit_id(text: &str) -> RouterResult<Option<&str>> {
    if text.is_empty() {
        return Ok(None);
    }
    let valid = text.split_once('-').is_some_and(|(ms, n)| {
        !ms.is_empty()
            && !n.is_empty()
            && ms.bytes().all(|b| b.is_ascii_digit())
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    if valid {
        Ok(Some(text))
    } else {
        Err(RouterError::InvalidArgument(format!(
            "`{text}` is not an audit entry id (they look like 1764700000000-0)"
        )))
    }
}

impl Router {
    /// The user's account, if it exists and was not deleted.
    async fn live_account(&self, user: &UserId) -> RouterResult<UserRecord> {
        let record = self
            .store
            .users(std::slice::from_ref(user))
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| no_such_user(user))?;
        if record.deleted {
            return Err(RouterError::FailedPrecondition(format!(
                "the account {user} was deleted"
            )));
        }
        Ok(record)
    }

    async fn audit(
        &self,
        admin: &str,
        action: &str,
        target: &str,
        detail: String,
    ) -> RouterResult<()> {
        tracing::info!(target: "switchboard::audit", admin, action, target, detail, "admin action");
        self.store
            .append_audit(&AuditRecord {
                id: String::new(),
                at_ms: now_ms(),
                admin: admin.to_owned(),
                action: action.to_owned(),
                target: target.to_owned(),
                detail,
            })
            .await?;
        Ok(())
    }

    /// Ends every session of `user` (or those of `only`); how many.
    async fn end_sessions(&self, user: &UserId, only: &[SessionId]) -> RouterResult<u32> {
        let sessions = self.store.user_sessions(user, now_ms()).await?;
        let mut ended = 0;
        for session in sessions
            .iter()
            .filter(|s| only.is_empty() || only.contains(&s.id))
        {
            self.end_session(&session.id, user).await?;
            ended += 1;
        }
        Ok(ended)
    }

    pub async fn admin_find_users(
        &self,
        req: pb::FindUsersRequest,
    ) -> RouterResult<pb::FindUsersResponse> {
        let limit = page(req.limit)?;
        let mut ids = self
            .store
            .user_ids(&req.prefix, &req.after, limit + 1)
            .await?;
        // A whole id is found even if the index missed it (a crash between
        // the account and its index entry, before its next login).
        if req.after.is_empty()
            && let Ok(exact) = UserId::parse(&req.prefix)
            && !ids.contains(&exact)
        {
            ids.insert(0, exact);
        }
        let more = ids.len() > limit;
        ids.truncate(limit);
        let users = self.store.users(&ids).await?;
        Ok(pb::FindUsersResponse {
            users: users
                .into_iter()
                .flatten()
                .map(|user| pb::AdminUser {
                    user_id: user.id.to_string(),
                    display_name: user.display_name,
                    created_at_ms: user.created_at_ms,
                    banned: user.banned,
                    passwordless: user.password_hash.is_empty() && !user.deleted,
                    deleted: user.deleted,
                })
                .collect(),
            more,
        })
    }

    pub async fn admin_ban_user(
        &self,
        admin: &str,
        req: pb::BanUserRequest,
    ) -> RouterResult<pb::BanUserResponse> {
        let user = UserId::parse(&req.user_id)?;
        // The flag first: a login that races the ban sees it once its
        // session exists (see `open_session`), and the sweep below ends
        // every session written before.
        if !self.store.set_banned(&user, true).await? {
            return Err(no_such_user(&user));
        }
        let ended = self.end_sessions(&user, &[]).await?;
        self.audit(
            admin,
            "BanUser",
            user.as_str(),
            format!("reason: {}; sessions ended: {ended}", req.reason),
        )
        .await?;
        Ok(pb::BanUserResponse {
            sessions_revoked: ended,
        })
    }

    pub async fn admin_unban_user(
        &self,
        admin: &str,
        req: pb::UnbanUserRequest,
    ) -> RouterResult<pb::UnbanUserResponse> {
        let user = UserId::parse(&req.user_id)?;
        self.live_account(&user).await?;
        if !self.store.set_banned(&user, false).await? {
            return Err(no_such_user(&user));
        }
        self.audit(
            admin,
            "UnbanUser",
            user.as_str(),
            format!("reason: {}", req.reason),
        )
        .await?;
        Ok(pb::UnbanUserResponse {})
    }

    pub async fn admin_reset_password(
        &self,
        admin: &str,
        req: pb::ResetPasswordRequest,
    ) -> RouterResult<pb::ResetPasswordResponse> {
        let user = UserId::parse(&req.user_id)?;
        self.live_account(&user).await?;
        let (password, generated) = if req.new_password.is_empty() {
            (random_token(24), true)
        } else {
            check_password(&req.new_password)?;
            (req.new_password, false)
        };
        let cost = self.config.password_hashing;
        let hash = {
            let password = password.clone();
            self.hasher
                .run(move || hash_password(&password, cost))
                .await??
        };
        if !self.store.set_password(&user, &hash).await? {
            return Err(no_such_user(&user));
        }
        let ended = self.end_sessions(&user, &[]).await?;
        let how = if generated { "made up" } else { "given" };
        self.audit(
            admin,
            "ResetPassword",
            user.as_str(),
            format!("password {how}; sessions ended: {ended}"),
        )
        .await?;
        Ok(pb::ResetPasswordResponse {
            generated_password: if generated { password } else { String::new() },
            sessions_revoked: ended,
        })
    }

    pub async fn admin_list_sessions(
        &self,
        req: pb::ListSessionsRequest,
    ) -> RouterResult<pb::ListSessionsResponse> {
        let user = UserId::parse(&req.user_id)?;
        let (sessions, users) = futures::try_join!(
            self.store.user_sessions(&user, now_ms()),
            self.store.users(std::slice::from_ref(&user)),
        )?;
        if users.into_iter().flatten().next().is_none() {
            return Err(no_such_user(&user));
        }
        Ok(pb::ListSessionsResponse {
            sessions: sessions.into_iter().map(session_view).collect(),
        })
    }

    pub async fn admin_revoke_sessions(
        &self,
        admin: &str,
        req: pb::RevokeSessionsRequest,
    ) -> RouterResult<pb::RevokeSessionsResponse> {
        let user = UserId::parse(&req.user_id)?;
        let only = req
            .session_ids
            .iter()
            .map(|id| SessionId::parse(id))
            .collect::<Result<Vec<_>, _>>()?;
        let ended = self.end_sessions(&user, &only).await?;
        if ended == 0 && !only.is_empty() {
            return Err(RouterError::NotFound(format!(
                "none of those is a live session of {user}"
            )));
        }
        let which = if only.is_empty() {
            "all".to_owned()
        } else {
            only.iter()
                .map(SessionId::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.audit(
            admin,
            "RevokeSessions",
            user.as_str(),
            format!("sessions: {which}; ended: {ended}"),
        )
        .await?;
        Ok(pb::RevokeSessionsResponse {
            sessions_revoked: ended,
        })
    }

    pub async fn admin_transfer_group(
        &self,
        admin: &str,
        req: pb::TransferGroupRequest,
    ) -> RouterResult<pb::TransferGroupResponse> {
        let group = GroupId::parse(&req.group_id)?;
        let new_owner = UserId::parse(&req.new_owner_id)?;
        let previous = self.transfer_ownership(&group, &new_owner).await?;
        self.audit(
            admin,
            "TransferGroup",
            group.as_str(),
            format!("owner: {previous} -> {new_owner}"),
        )
        .await?;
        Ok(pb::TransferGroupResponse {
            previous_owner_id: previous.to_string(),
        })
    }

    /// Deletes an account: see `DeleteUser` in `proto/switchboard/v1/admin.proto`.
    /// Each step can be made again, so asking again after a deletion that
    /// was cut short (or that already finished) completes it.
    pub async fn admin_delete_user(
        &self,
        admin: &str,
        req: pb::DeleteUserRequest,
    ) -> RouterResult<pb::DeleteUserResponse> {
        let user = UserId::parse(&req.user_id)?;
        if self
            .store
            .users(std::slice::from_ref(&user))
            .await?
            .pop()
            .flatten()
            .is_none()
        {
            return Err(no_such_user(&user));
        }
        let groups = self.store.user_groups(&user).await?;
        let mut owned_alone = Vec::new();
        let mut member_of = Vec::new();
        let mut handed_over_first = Vec::new();
        for group in self.store.groups(&groups).await?.into_iter().flatten() {
            if group.owner != user {
                member_of.push(group.id);
            } else if group.member_count <= 1 {
                owned_alone.push(group.id);
            } else {
                handed_over_first.push(group.id.to_string());
            }
        }
        if !handed_over_first.is_empty() {
            return Err(RouterError::FailedPrecondition(format!(
                "{user} owns groups with other members ({}): transfer or delete them first",
                handed_over_first.join(", ")
            )));
        }
        // No login from here on; then no session.
        self.store.set_banned(&user, true).await?;
        let mut done = pb::DeleteUserResponse {
            sessions_revoked: self.end_sessions(&user, &[]).await?,
            ..Default::default()
        };
        for group in &member_of {
            match self.leave_now(group, &user).await {
                Ok(()) => done.groups_left += 1,
                Err(RouterError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        for group in &owned_alone {
            match self.delete_group_now(group).await {
                Ok(_) => done.groups_deleted += 1,
                Err(RouterError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        let owned_topics = self.store.user_topics(&user).await?;
        for topic in self
            .store
            .topics(&owned_topics)
            .await?
            .into_iter()
            .flatten()
        {
            if !topic.deleted || topic.bound().next().is_some() {
                self.delete_topic_now(&topic).await?;
                done.topics_deleted += 1;
            }
        }
        let conversations = self.store.user_conversations(&user).await?;
        let bound_to: Vec<_> = conversations
            .iter()
            .filter_map(|conv| match conv {
                ConversationId::TopicThread { topic, contact } if contact == &user => {
                    Some(topic.clone())
                }
                _ => None,
            })
            .collect();
        for topic in self.store.topics(&bound_to).await?.into_iter().flatten() {
            if topic.binding(&user).is_some_and(|b| b.is_current()) {
                match self.leave_topic_now(&topic, &user).await {
                    Ok(()) => done.topics_left += 1,
                    Err(RouterError::NotFound(_)) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        let (contacts, contacted_by) =
            futures::try_join!(self.store.contacts(&user), self.store.contacted_by(&user),)?;
        for entry in &contacts {
            if self.store.remove_contact(&user, &entry.user).await? {
                done.contacts_removed += 1;
            }
        }
        for entry in &contacted_by {
            if self.store.remove_contact(&entry.user, &user).await? {
                done.contacts_removed += 1;
            }
        }
        // Every conversation they could have written in: direct and topic
        // threads (listed for them whatever happened since), and every
        // group they ever belonged to.
        let mut written: Vec<ConversationId> = self.store.user_conversations(&user).await?;
        written.extend(
            self.store
                .user_groups_ever(&user)
                .await?
                .into_iter()
                .map(ConversationId::Group),
        );
        for conversation in &written {
            done.messages_erased += self.store.erase_sent(conversation, &user).await?;
        }
        self.store.delete_account(&user).await?;
        self.audit(
            admin,
            "DeleteUser",
            user.as_str(),
            format!(
                "reason: {}; sessions ended: {}; groups left: {}, deleted: {}; topics deleted: {}, left: {}; contacts removed: {}; messages erased: {}",
                req.reason,
                done.sessions_revoked,
                done.groups_left,
                done.groups_deleted,
                done.topics_deleted,
                done.topics_left,
                done.contacts_removed,
                done.messages_erased
            ),
        )
        .await?;
        Ok(done)
    }

    pub async fn admin_delete_group(
        &self,
        admin: &str,
        req: pb::DeleteGroupRequest,
    ) -> RouterResult<pb::DeleteGroupResponse> {
        let group = GroupId::parse(&req.group_id)?;
        let (members_removed, messages_erased) = self.delete_group_now(&group).await?;
        self.audit(
            admin,
            "DeleteGroup",
            group.as_str(),
            format!(
                "reason: {}; members and invitations removed: {members_removed}; messages erased: {messages_erased}",
                req.reason
            ),
        )
        .await?;
        Ok(pb::DeleteGroupResponse {
            members_removed,
            messages_erased,
        })
    }

    pub async fn admin_audit_log(
        &self,
        req: pb::AuditLogRequest,
    ) -> RouterResult<pb::AuditLogResponse> {
        let limit = page(req.limit)?;
        let before = audit_id(&req.before)?;
        let entries = self.store.audit(before, limit).await?;
        Ok(pb::AuditLogResponse {
            entries: entries
                .into_iter()
                .map(|entry| pb::AuditEntry {
                    id: entry.id,
                    at_ms: entry.at_ms,
                    admin: entry.admin,
                    action: entry.action,
                    target: entry.target,
                    detail: entry.detail,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn admin_tokens_are_named_and_long() {
        let ops = AdminToken::parse(&format!("ops:{SECRET}")).unwrap();
        assert_eq!(format!("{ops:?}"), "AdminToken(ops)");
        assert!(
            AdminToken::parse(SECRET)
                .unwrap_err()
                .contains("name:secret")
        );
        assert!(
            AdminToken::parse("ops:short")
                .unwrap_err()
                .contains("shorter than 32")
        );
        assert!(
            AdminToken::parse(&format!("Ops!:{SECRET}"))
                .unwrap_err()
                .contains("not 1-32")
        );
        let tokens = AdminTokens::new(vec![
            ops,
            AdminToken::parse(&format!("ci:{SECRET}-ci")).unwrap(),
        ]);
        assert_eq!(tokens.who(SECRET.as_bytes()), Some("ops"));
        assert_eq!(tokens.who(format!("{SECRET}-ci").as_bytes()), Some("ci"));
        assert_eq!(tokens.who(b"0123456789abcdef0123456789abcdeX"), None);
        assert_eq!(tokens.who(b""), None);
        assert!(!AdminTokens::default().any());
    }

    #[test]
    fn audit_ids_are_checked() {
        assert_eq!(audit_id("").unwrap(), None);
        assert_eq!(audit_id("17-0").unwrap(), Some("17-0"));
        for bad in ["17", "-0", "17-", "a-1", "1-2-3", "(1-2"] {
            assert!(audit_id(bad).is_err(), "{bad}");
        }
    }
}
