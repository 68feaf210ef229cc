use serde_json::json;
use switchboard_proto::pb;

use super::Session;
use crate::args::ContactsCommand;
use crate::output::{self, Output};

pub async fn run(
    mut session: Session,
    command: &ContactsCommand,
    out: &Output,
) -> anyhow::Result<()> {
    let contacts = &mut session.clients.contacts;
    match command {
        ContactsCommand::List => {
            let response = contacts
                .list_contacts(pb::ListContactsRequest {})
                .await?
                .into_inner();
            for c in &response.contacts {
                out.print(output::contact(c), || {
                    let state = match (c.mutual, c.online) {
                        (true, true) => "online",
                        (true, false) => "offline",
                        (false, _) => "waiting for them to add you back",
                    };
                    format!("{:<24} {:<24} {state}", c.user_id, c.display_name)
                });
            }
            for r in &response.requests {
                let mut value = output::contact(r);
                value["request"] = json!(true);
                out.print(value, || {
                    format!("{:<24} added you: sb contacts add {}", r.user_id, r.user_id)
                });
            }
        }
        ContactsCommand::Add { user } => {
            let response = contacts
                .add_contact(pb::AddContactRequest {
                    user_id: user.clone(),
                })
                .await?
                .into_inner();
            let contact = response.contact.unwrap_or_default();
            let mut value = output::contact(&contact);
            value["already_added"] = json!(response.already_added);
            out.print(value, || {
                if response.already_added {
                    format!("{} is already in your contacts", contact.user_id)
                } else {
                    format!("added {}", contact.user_id)
                }
            });
        }
        ContactsCommand::Block { user } | ContactsCommand::Unblock { user } => {
            let blocked = matches!(command, ContactsCommand::Block { .. });
            contacts
                .block_user(pb::BlockUserRequest {
                    user_id: user.clone(),
                    blocked,
                })
                .await?;
            out.print(json!({"user_id": user, "blocked": blocked}), || {
                format!("{user} {}", if blocked { "blocked" } else { "unblocked" })
            });
        }
        ContactsCommand::Blocked => {
            let response = contacts
                .list_blocked(pb::ListBlockedRequest {})
                .await?
                .into_inner();
            for b in &response.blocked {
                out.print(
                    json!({"user_id": b.user_id, "display_name": b.display_name, "blocked_at_ms": b.added_at_ms}),
                    || format!("{:<24} {}", b.user_id, b.display_name),
                );
            }
        }
        ContactsCommand::Find { query, limit } => {
            let response = contacts
                .find_people(pb::FindPeopleRequest {
                    query: query.join(" "),
                    limit: limit.unwrap_or(0),
                })
                .await?
                .into_inner();
            for u in &response.users {
                out.print(
                    json!({"user_id": u.user_id, "display_name": u.display_name}),
                    || format!("{:<24} {}", u.user_id, u.display_name),
                );
            }
        }
        ContactsCommand::Remove { user } => {
            contacts
                .remove_contact(pb::RemoveContactRequest {
                    user_id: user.clone(),
                })
                .await?;
            out.print(json!({"removed": user}), || format!("removed {user}"));
        }
    }
    Ok(())
}
