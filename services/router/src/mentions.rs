//! Mentions: `@user` in a group message names a member. The router keeps
//! the members a message names with it, so every client can tell the
//! mentioned member apart without parsing text or knowing the members.

use std::collections::BTreeSet;

use switchboard_shared::ids::{GroupId, UserId};

use crate::Router;
use crate::error::RouterResult;

/// Most mentions kept per message.
const MAX_MENTIONS: usize = 50;

/// The user ids a text names as `@user`, each once, in id order.
/// An `@` right after a letter or digit (an e-mail address) names nobody.
pub fn named(text: &str) -> BTreeSet<UserId> {
    let mut previous = ' ';
    let mut names = BTreeSet::new();
    for (at, c) in text.char_indices() {
        if c == '@' && !previous.is_alphanumeric() {
            let token: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .collect();
            // A sentence's full stop is not part of the name.
            if let Ok(user) = UserId::parse(token.trim_end_matches('.')) {
                names.insert(user);
                if names.len() == MAX_MENTIONS {
                    break;
                }
            }
        }
        previous = c;
    }
    names
}

impl Router {
    /// The members of `group` that `text` names, as a message keeps them:
    /// one role read per name (a text names few; a group may hold many).
    pub(crate) async fn mentions(&self, group: &GroupId, text: &str) -> RouterResult<Vec<String>> {
        let named: Vec<UserId> = named(text).into_iter().collect();
        let roles = futures::future::try_join_all(
            named.iter().map(|user| self.store.member_role(group, user)),
        )
        .await?;
        Ok(named
            .into_iter()
            .zip(roles)
            .filter(|(_, role)| role.is_some())
            .map(|(user, _)| user.to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_after_at_signs_once_each() {
        let names: Vec<String> = named("hey @Bob and @carol.x, ping @bob. mail a@b.c @no @-x")
            .into_iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(names, ["bob", "carol.x"]);
        assert!(named("no mentions here").is_empty());
    }
}
