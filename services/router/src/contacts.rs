//! Contacts, and telling mutual contacts when someone comes online or goes offline.

use std::collections::{HashMap, HashSet};

use switchboard_proto::pb;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::UserId;

use crate::error::{RouterError, RouterResult};
use crate::routing::{Audience, Outgoing};
use crate::store::ContactEntry;
use crate::{Caller, Router};

impl Router {
    pub async fn add_contact(
        &self,
        caller: &Caller,
        req: pb::AddContactRequest,
    ) -> RouterResult<pb::AddContactResponse> {
        let contact = UserId::parse(&req.user_id)?;
        if contact == caller.user {
            return Err(RouterError::InvalidArgument(
                "you cannot add yourself as a contact".into(),
            ));
        }
        let record = self
            .store
            .users(std::slice::from_ref(&contact))
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| RouterError::NotFound(format!("no user {contact}")))?;
        let added_at_ms = now_ms();
        let added = self
            .store
            .add_contact(&caller.user, &contact, added_at_ms)
            .await?;
        let mutual = self.store.mutual(&caller.user, &contact).await?;
        let online = mutual && self.directory_online(std::slice::from_ref(&contact)).await[0];
        Ok(pb::AddContactResponse {
            contact: Some(pb::Contact {
                user_id: contact.to_string(),
                display_name: record.display_name,
                mutual,
                online,
                added_at_ms,
            }),
            already_added: !added,
        })
    }

    pub async fn remove_contact(
        &self,
        caller: &Caller,
        req: pb::RemoveContactRequest,
    ) -> RouterResult<pb::RemoveContactResponse> {
        let contact = UserId::parse(&req.user_id)?;
        if !self.store.remove_contact(&caller.user, &contact).await? {
            return Err(RouterError::NotFound(format!(
                "{contact} is not in your contacts"
            )));
        }
        Ok(pb::RemoveContactResponse {})
    }

    pub async fn list_contacts(
        &self,
        caller: &Caller,
        _req: pb::ListContactsRequest,
    ) -> RouterResult<pb::ListContactsResponse> {
        let (mine, theirs, blocks) = futures::try_join!(
            async { Ok(self.store.contacts(&caller.user).await?) },
            async { Ok(self.store.contacted_by(&caller.user).await?) },
            self.blocks(&caller.user),
        )?;
        let added_me: HashSet<&UserId> = theirs
            .iter()
            .map(|c| &c.user)
            .filter(|u| !blocks.contains(*u))
            .collect();
        let added_by_me: HashSet<&UserId> = mine.iter().map(|c| &c.user).collect();
        // Someone blocked asks in vain: their request is not shown.
        let requests: Vec<&ContactEntry> = theirs
            .iter()
            .filter(|c| !added_by_me.contains(&c.user) && !blocks.contains(&c.user))
            .collect();
        let everyone: Vec<UserId> = mine
            .iter()
            .chain(requests.iter().copied())
            .map(|c| c.user.clone())
            .collect();
        let records = self.store.users(&everyone).await?;
        let online = self.directory_online(&everyone).await;
        let known: HashMap<&UserId, (String, bool)> = everyone
            .iter()
            .zip(records)
            .zip(online)
            .map(|((user, record), online)| {
                (
                    user,
                    (record.map(|r| r.display_name).unwrap_or_default(), online),
                )
            })
            .collect();
        let row = |entry: &ContactEntry, mutual: bool| {
            let (display_name, online) = known.get(&entry.user).cloned().unwrap_or_default();
            pb::Contact {
                user_id: entry.user.to_string(),
                display_name,
                mutual,
                // Presence is shown to mutual contacts only.
                online: mutual && online,
                added_at_ms: entry.added_at_ms,
            }
        };
        let contacts = mine
            .iter()
            .map(|entry| row(entry, added_me.contains(&entry.user)))
            .collect();
        let requests = requests.iter().map(|entry| row(entry, false)).collect();
        Ok(pb::ListContactsResponse { contacts, requests })
    }

    /// Online flags; presence trouble reads as offline rather than failing the call.
    pub(crate) async fn directory_online(&self, users: &[UserId]) -> Vec<bool> {
        match self.directory.online(users).await {
            Ok(online) => online,
            Err(err) => {
                tracing::warn!(%err, "presence unavailable; reporting contacts offline");
                vec![false; users.len()]
            }
        }
    }

    /// The users who blocked `user` or whom `user` blocked.
    async fn blocks(&self, user: &UserId) -> RouterResult<HashSet<UserId>> {
        let (blocked, blocked_by) =
            futures::try_join!(self.store.blocked(user), self.store.blocked_by(user))?;
        Ok(blocked
            .into_iter()
            .chain(blocked_by)
            .map(|entry| entry.user)
            .collect())
    }

    /// `user`'s mutual contacts: both added each other and neither blocked
    /// the other. They see each other's presence and share topics.
    pub(crate) async fn mutual_contacts(&self, user: &UserId) -> RouterResult<HashSet<UserId>> {
        let (mine, theirs, blocks) = futures::try_join!(
            async { Ok(self.store.contacts(user).await?) },
            async { Ok(self.store.contacted_by(user).await?) },
            self.blocks(user),
        )?;
        let theirs: HashSet<UserId> = theirs.into_iter().map(|c| c.user).collect();
        Ok(mine
            .into_iter()
            .map(|c| c.user)
            .filter(|u| theirs.contains(u) && !blocks.contains(u))
            .collect())
    }

    pub async fn block_user(
        &self,
        caller: &Caller,
        req: pb::BlockUserRequest,
    ) -> RouterResult<pb::BlockUserResponse> {
        let other = UserId::parse(&req.user_id)?;
        if other == caller.user {
            return Err(RouterError::InvalidArgument(
                "you cannot block yourself".into(),
            ));
        }
        if self
            .store
            .users(std::slice::from_ref(&other))
            .await?
            .pop()
            .flatten()
            .is_none()
        {
            return Err(RouterError::NotFound(format!("no user {other}")));
        }
        let changed = self
            .store
            .set_blocked(&caller.user, &other, req.blocked, now_ms())
            .await?;
        if changed {
            tracing::info!(by = %caller.user, user = %other, blocked = req.blocked, "block changed");
            // Presence stops (or starts again) between the two at once,
            // both ways.
            let mutual = self.store.mutual(&caller.user, &other).await?;
            let pair = [caller.user.clone(), other.clone()];
            let online = self.directory_online(&pair).await;
            self.tell_presence(&caller.user, mutual && online[0], vec![other.clone()])
                .await;
            self.tell_presence(&other, mutual && online[1], vec![caller.user.clone()])
                .await;
        }
        Ok(pb::BlockUserResponse {})
    }

    pub async fn list_blocked(
        &self,
        caller: &Caller,
        _req: pb::ListBlockedRequest,
    ) -> RouterResult<pb::ListBlockedResponse> {
        let blocked = self.store.blocked(&caller.user).await?;
        let ids: Vec<UserId> = blocked.iter().map(|b| b.user.clone()).collect();
        let records = self.store.users(&ids).await?;
        Ok(pb::ListBlockedResponse {
            blocked: blocked
                .into_iter()
                .zip(records)
                .map(|(entry, record)| pb::Contact {
                    user_id: entry.user.to_string(),
                    display_name: record.map(|r| r.display_name).unwrap_or_default(),
                    mutual: false,
                    online: false,
                    added_at_ms: entry.added_at_ms,
                })
                .collect(),
        })
    }

    /// Tells a user's mutual contacts that they came online or went offline.
    pub async fn presence_changed(&self, user: UserId, online: bool) -> RouterResult<()> {
        let mutual: Vec<UserId> = self.mutual_contacts(&user).await?.into_iter().collect();
        self.tell_presence(&user, online, mutual).await;
        Ok(())
    }

    /// Tells `audience` whether `user` is online.
    async fn tell_presence(&self, user: &UserId, online: bool, audience: Vec<UserId>) {
        if audience.is_empty() {
            return;
        }
        let update = Outgoing {
            audience: Audience::Users(audience),
            event: pb::Event {
                kind: Some(pb::event::Kind::Presence(pb::PresenceUpdate {
                    user_id: user.to_string(),
                    online,
                })),
            },
        };
        self.deliver_state(vec![update]).await;
    }
}
