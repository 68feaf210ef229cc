//! Profiles and finding people: one's own display name, and lookup by exact
//! id (anyone) or by the start of a name or id among the people one shares
//! a group with or has as a contact (nobody else: names are no directory).

use std::collections::BTreeSet;

use futures::{StreamExt as _, TryStreamExt as _};
use switchboard_proto::pb;
use switchboard_shared::ids::UserId;

use crate::accounts::display_name;
use crate::error::{RouterError, RouterResult};
use crate::store::UserRecord;
use crate::{Caller, Router};

/// Longest query, in characters.
const MAX_QUERY_CHARS: usize = 80;
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 50;
/// People looked at by name, at most: for a member of many large groups,
/// their contacts and the members of their groups read in id order until
/// this many are known (then the lowest ids).
const MAX_CANDIDATES: usize = 5_000;
/// Groups whose member lists are read at once.
const GROUP_READS: usize = 8;

/// A query as it is matched: trimmed, lower case; refused if empty or long.
fn query(raw: &str) -> RouterResult<String> {
    let query = raw.trim();
    let chars = query.chars().count();
    if chars == 0 || chars > MAX_QUERY_CHARS {
        return Err(RouterError::InvalidArgument(format!(
            "a search is 1 to {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(query.to_lowercase())
}

/// Whether `user` is found by `query` (lower case): their name or id starts
/// with it.
fn found_by(user: &UserRecord, query: &str) -> bool {
    !user.deleted
        && (user.display_name.to_lowercase().starts_with(query)
            || user.id.as_str().starts_with(query))
}

fn public(user: &UserRecord) -> pb::User {
    pb::User {
        user_id: user.id.to_string(),
        display_name: user.display_name.clone(),
    }
}

impl Router {
    pub async fn update_profile(
        &self,
        caller: &Caller,
        req: pb::UpdateProfileRequest,
    ) -> RouterResult<pb::UpdateProfileResponse> {
        let name = display_name(&req.display_name, &caller.user, self.config.max_name_chars)?;
        if !self.store.set_display_name(&caller.user, &name).await? {
            return Err(RouterError::NotFound(format!("no user {}", caller.user)));
        }
        Ok(pb::UpdateProfileResponse {
            user: Some(pb::User {
                user_id: caller.user.to_string(),
                display_name: name,
            }),
        })
    }

    pub async fn find_people(
        &self,
        caller: &Caller,
        req: pb::FindPeopleRequest,
    ) -> RouterResult<pb::FindPeopleResponse> {
        let query = query(&req.query)?;
        let limit = match req.limit as usize {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let me = &caller.user;
        let mut users = Vec::new();
        // The exact id first: anyone may be found by it (to add them).
        let exact = UserId::parse(&query).ok().filter(|id| id != me);
        if let Some(id) = &exact
            && let Some(user) = self
                .store
                .users(std::slice::from_ref(id))
                .await?
                .pop()
                .flatten()
            && !user.deleted
        {
            users.push(public(&user));
        }
        let candidates = self.known_people(me).await?;
        let candidates: Vec<UserId> = candidates
            .into_iter()
            .filter(|id| Some(id) != exact.as_ref())
            .collect();
        let mut named: Vec<UserRecord> = self
            .store
            .users(&candidates)
            .await?
            .into_iter()
            .flatten()
            .filter(|user| found_by(user, &query))
            .collect();
        named.sort_by(|a, b| {
            (a.display_name.to_lowercase(), &a.id).cmp(&(b.display_name.to_lowercase(), &b.id))
        });
        users.extend(named.iter().map(public));
        users.truncate(limit);
        Ok(pb::FindPeopleResponse { users })
    }

    /// The people `user` may find by name: their contacts and everyone in
    /// their groups, themselves not, at most `MAX_CANDIDATES`.
    async fn known_people(&self, user: &UserId) -> RouterResult<BTreeSet<UserId>> {
        let (contacts, groups) =
            futures::try_join!(self.store.contacts(user), self.store.user_groups(user))?;
        let mut known: BTreeSet<UserId> = contacts.into_iter().map(|c| c.user).collect();
        let mut members = futures::stream::iter(groups)
            .map(|group| async move { self.store.members(&group).await })
            .buffered(GROUP_READS);
        while known.len() < MAX_CANDIDATES
            && let Some(group) = members.try_next().await?
        {
            known.extend(group.into_iter().map(|(member, _)| member));
        }
        known.remove(user);
        Ok(known.into_iter().take(MAX_CANDIDATES).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str) -> UserRecord {
        UserRecord {
            id: UserId::parse(id).unwrap(),
            display_name: name.into(),
            password_hash: String::new(),
            created_at_ms: 0,
            banned: false,
            deleted: false,
        }
    }

    #[test]
    fn a_query_is_trimmed_lower_case_and_bounded() {
        assert_eq!(query("  Émile ").unwrap(), "émile");
        assert!(matches!(query("   "), Err(RouterError::InvalidArgument(_))));
        assert!(query(&"é".repeat(80)).is_ok());
        assert!(matches!(
            query(&"é".repeat(81)),
            Err(RouterError::InvalidArgument(_))
        ));
    }

    #[test]
    fn people_are_found_by_the_start_of_their_name_or_id() {
        let emile = user("emile", "Émile Zola");
        assert!(found_by(&emile, "émile"));
        assert!(found_by(&emile, "emi"));
        assert!(!found_by(&emile, "zola"), "the start only");
        let gone = UserRecord {
            deleted: true,
            ..user("ghost", "Ghost")
        };
        assert!(!found_by(&gone, "gho"));
    }
}
