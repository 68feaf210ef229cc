use serde_json::json;
use switchboard_proto::pb::{self, follow_up::Who, send_request::To};

use super::Session;
use crate::args::TopicsCommand;
use crate::output::{self, Output};

/// Prints each contact's outcome; a command none of whose contacts got
/// `done` did nothing it was asked, and fails (so a script notices).
fn results(
    out: &Output,
    results: &[pb::BindingResult],
    done: pb::binding_result::Outcome,
) -> anyhow::Result<()> {
    for r in results {
        out.print(output::binding_result(r), || r.message.clone());
    }
    if !results.is_empty() && results.iter().all(|r| r.outcome() != done) {
        anyhow::bail!(
            "nothing changed: no contact was {}",
            match done {
                pb::binding_result::Outcome::Removed => "removed",
                _ => "added",
            }
        );
    }
    Ok(())
}

fn describe(t: &pb::Topic) -> String {
    let contacts: Vec<String> = t
        .contacts
        .iter()
        .map(|c| match c.state() {
            pb::topic_contact::State::Bound => c.user_id.clone(),
            state => format!(
                "{} ({})",
                c.user_id,
                state
                    .as_str_name()
                    .trim_start_matches("STATE_")
                    .to_lowercase()
            ),
        })
        .collect();
    let deleted = if t.deleted { " [deleted]" } else { "" };
    format!(
        "{:<14} {:<28} {}{deleted}",
        t.topic_id,
        t.name,
        contacts.join(", ")
    )
}

pub async fn run(
    mut session: Session,
    command: &TopicsCommand,
    out: &Output,
) -> anyhow::Result<()> {
    let me = session.profile.user_id.clone();
    let topics = &mut session.clients.topics;
    match command {
        TopicsCommand::List => {
            let response = topics
                .list_topics(pb::ListTopicsRequest {})
                .await?
                .into_inner();
            for t in &response.topics {
                out.print(output::topic(t), || describe(t));
            }
        }
        TopicsCommand::Create { name, contacts } => {
            let response = topics
                .create_topic(pb::CreateTopicRequest {
                    name: name.clone(),
                    contacts: contacts.clone(),
                })
                .await?
                .into_inner();
            let t = response.topic.unwrap_or_default();
            out.print(output::topic(&t), || format!("created {}", describe(&t)));
            results(out, &response.results, pb::binding_result::Outcome::Added)?;
        }
        TopicsCommand::Rename { topic, name } => {
            let response = topics
                .rename_topic(pb::RenameTopicRequest {
                    topic_id: topic.clone(),
                    name: name.clone(),
                })
                .await?
                .into_inner();
            let t = response.topic.unwrap_or_default();
            out.print(output::topic(&t), || format!("renamed {}", describe(&t)));
        }
        TopicsCommand::Delete { topic } => {
            topics
                .delete_topic(pb::DeleteTopicRequest {
                    topic_id: topic.clone(),
                })
                .await?;
            out.print(json!({"deleted": topic}), || format!("deleted {topic}"));
        }
        TopicsCommand::Add { topic, users } => {
            let response = topics
                .add_topic_contacts(pb::AddTopicContactsRequest {
                    topic_id: topic.clone(),
                    contacts: users.clone(),
                })
                .await?
                .into_inner();
            results(out, &response.results, pb::binding_result::Outcome::Added)?;
        }
        TopicsCommand::Remove { topic, users } => {
            let response = topics
                .remove_topic_contacts(pb::RemoveTopicContactsRequest {
                    topic_id: topic.clone(),
                    contacts: users.clone(),
                })
                .await?
                .into_inner();
            results(out, &response.results, pb::binding_result::Outcome::Removed)?;
        }
        TopicsCommand::Send {
            topic,
            text,
            only,
            not_read,
            not_replied,
            forward,
            id,
        } => {
            let follow_up = match (not_read, not_replied) {
                (Some(b), _) => Some(pb::FollowUp {
                    broadcast_id: b.clone(),
                    who: Who::NotRead as i32,
                }),
                (_, Some(b)) => Some(pb::FollowUp {
                    broadcast_id: b.clone(),
                    who: Who::NotReplied as i32,
                }),
                _ => None,
            };
            let response = topics
                .send_to_topic(pb::SendToTopicRequest {
                    topic_id: topic.clone(),
                    client_msg_id: id.clone().unwrap_or_else(|| {
                        format!("cli-{}", switchboard_shared::ids::random_token(16))
                    }),
                    text: text.join(" "),
                    only: only.clone(),
                    follow_up,
                    forward_message_id: forward.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            out.print(
                json!({
                    "broadcast_id": response.broadcast_id,
                    "timeline_seq": response.timeline_seq,
                    "duplicate": response.duplicate,
                    "recipients": response.recipients.iter().map(|r| json!({
                        "user_id": r.user_id, "conversation_id": r.conversation_id, "seq": r.seq,
                    })).collect::<Vec<_>>(),
                }),
                || {
                    let to: Vec<&str> = response
                        .recipients
                        .iter()
                        .map(|r| r.user_id.as_str())
                        .collect();
                    format!("broadcast {} to {}", response.broadcast_id, to.join(", "))
                },
            );
        }
        TopicsCommand::Answer {
            topic,
            contact,
            text,
        } => {
            let conversation = format!("t:{topic}:{}", contact.to_ascii_lowercase());
            send_in(&mut session, conversation, text.join(" "), out).await?;
        }
        TopicsCommand::Reply { topic, text } => {
            let conversation = format!("t:{topic}:{me}");
            send_in(&mut session, conversation, text.join(" "), out).await?;
        }
        TopicsCommand::Timeline {
            topic,
            before,
            limit,
        } => {
            let response = topics
                .topic_timeline(pb::TopicTimelineRequest {
                    topic_id: topic.clone(),
                    before_seq: before.unwrap_or(0),
                    after_seq: None,
                    limit: *limit,
                })
                .await?
                .into_inner();
            for entry in &response.entries {
                let message = entry.message.clone().unwrap_or_default();
                out.print(
                    json!({
                        "seq": entry.seq,
                        "broadcast_id": entry.broadcast_id,
                        "message": output::message(&message),
                        "recipients": entry.recipients.iter().map(|r| &r.user_id).collect::<Vec<_>>(),
                    }),
                    || {
                        let who = if message.sender.is_empty() { "*" } else { message.sender.as_str() };
                        if entry.broadcast_id.is_empty() {
                            format!("#{:<4} {who} (thread {}): {}", entry.seq, message.topic.as_ref().map(|t| t.contact_id.as_str()).unwrap_or(""), message.text)
                        } else {
                            format!("#{:<4} {who} → {} contacts [{}]: {}", entry.seq, entry.recipients.len(), entry.broadcast_id, message.text)
                        }
                    },
                );
            }
        }
        TopicsCommand::Status { topic, broadcast } => {
            let response = topics
                .broadcast_status(pb::BroadcastStatusRequest {
                    topic_id: topic.clone(),
                    broadcast_id: broadcast.clone(),
                })
                .await?
                .into_inner();
            for c in &response.contacts {
                out.print(
                    json!({"user_id": c.user_id, "seq": c.seq, "delivered": c.delivered, "read": c.read, "replied": c.replied}),
                    || {
                        let mark = |b: bool| if b { "yes" } else { "no" };
                        format!("{:<24} delivered {:<3} read {:<3} replied {}", c.user_id, mark(c.delivered), mark(c.read), mark(c.replied))
                    },
                );
            }
        }
        TopicsCommand::Leave { topic } => {
            topics
                .leave_topic(pb::LeaveTopicRequest {
                    topic_id: topic.clone(),
                })
                .await?;
            out.print(json!({"left": topic}), || format!("left {topic}"));
        }
        TopicsCommand::Mute { topic, off } => {
            topics
                .mute_topic(pb::MuteTopicRequest {
                    topic_id: topic.clone(),
                    muted: !off,
                })
                .await?;
            out.print(json!({"topic_id": topic, "muted": !off}), || {
                format!("{topic} {}", if *off { "unmuted" } else { "muted" })
            });
        }
    }
    Ok(())
}

async fn send_in(
    session: &mut Session,
    conversation: String,
    text: String,
    out: &Output,
) -> anyhow::Result<()> {
    let response = session
        .clients
        .chat
        .send(pb::SendRequest {
            to: Some(To::ConversationId(conversation)),
            client_msg_id: format!("cli-{}", switchboard_shared::ids::random_token(16)),
            text,
            reply_to: String::new(),
        })
        .await?
        .into_inner();
    out.print(
        json!({"conversation_id": response.conversation_id, "seq": response.seq, "message_id": response.message_id}),
        || format!("sent in {} as #{}", response.conversation_id, response.seq),
    );
    Ok(())
}
