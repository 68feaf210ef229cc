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
        let mutual = self
            .store
            .contacted_by(&caller.user)
            .await?
            .iter()
            .any(|c| c.user == contact);
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
        let (mine, theirs) = futures::try_join!(
            self.store.contacts(&caller.user),
            self.store.contacted_by(&caller.user),
        )?;
        let added_me: HashSet<&UserId> = theirs.iter().map(|c| &c.user).collect();
        let added_by_me: HashSet<&UserId> = mine.iter().map(|c| &c.user).collect();
        let requests: Vec<&ContactEntry> = theirs
            .iter()
            .filter(|c| !added_by_me.contains(&c.user))
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

    /// Tells a user's mutual contacts that they came online or went offline.
    pub async fn presence_changed(&self, user: UserId, online: bool) -> RouterResult<()> {
        let (mine, theirs) =
            futures::try_join!(self.store.contacts(&user), self.store.contacted_by(&user),)?;
        let added_me: HashSet<&UserId> = theirs.iter().map(|c| &c.user).collect();
        let mutual: Vec<UserId> = mine
            .into_iter()
            .map(|c| c.user)
            .filter(|u| added_me.contains(u))
            .collect();
        if mutual.is_empty() {
            return Ok(());
        }
        let update = Outgoing {
            audience: Audience::Users(mutual),
            event: pb::Event {
                kind: Some(pb::event::Kind::Presence(pb::PresenceUpdate {
                    user_id: user.to_string(),
                    online,
                })),
            },
        };
        self.deliver_state(vec![update]).await;
        Ok(())
    }
}
