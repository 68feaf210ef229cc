use serde_json::json;
use switchboard_proto::pb::{self, send_request::To};

use super::Session;
use crate::output::{self, Output};

/// Attempts of one send before giving up (waiting 0.25, 0.5, 1 and 2 s
/// between them).
const SEND_ATTEMPTS: u32 = 5;
const FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether the send may not have been answered, rather than refused.
fn unanswered(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    )
}

/// One message to send.
pub struct Outgoing {
    pub to: To,
    pub text: String,
    /// The client message id (a new one when `None`).
    pub id: Option<String>,
    /// The message it answers (empty: none).
    pub reply_to: String,
}

pub async fn send(mut session: Session, message: Outgoing, out: &Output) -> anyhow::Result<()> {
    let client_msg_id = message
        .id
        .unwrap_or_else(|| format!("cli-{}", switchboard_shared::ids::random_token(16)));
    let request = pb::SendRequest {
        to: Some(message.to),
        client_msg_id: client_msg_id.clone(),
        text: message.text,
        reply_to: message.reply_to,
    };
    // An unanswered send may have been stored: it is sent again with the
    // same id, which the server answers once, however often it arrives.
    let mut pause = FIRST_RETRY;
    let mut attempt = 1;
    let response = loop {
        match session.clients.chat.send(request.clone()).await {
            Ok(response) => break response.into_inner(),
            Err(status) if unanswered(&status) && attempt < SEND_ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(status) => {
                let message = format!(
                    "{} (client message id {client_msg_id}: to retry, send again with --id {client_msg_id})",
                    status.message()
                );
                return Err(tonic::Status::new(status.code(), message).into());
            }
        }
    };
    out.print(
        json!({
            "conversation_id": response.conversation_id,
            "seq": response.seq,
            "message_id": response.message_id,
            "sent_at_ms": response.sent_at_ms,
            "duplicate": response.duplicate,
            "client_msg_id": client_msg_id,
        }),
        || {
            let again = if response.duplicate {
                " (already sent before)"
            } else {
                ""
            };
            format!(
                "sent to {} as #{}{again} (id {client_msg_id})",
                response.conversation_id, response.seq
            )
        },
    );
    Ok(())
}

pub async fn history(
    mut session: Session,
    conversation: &str,
    before: Option<u64>,
    after: Option<u64>,
    limit: u32,
    out: &Output,
) -> anyhow::Result<()> {
    let conversation_id = session.conversation(conversation);
    let response = session
        .clients
        .chat
        .history(pb::HistoryRequest {
            conversation_id,
            before_seq: before.unwrap_or(0),
            after_seq: after,
            limit,
        })
        .await?
        .into_inner();
    for message in &response.messages {
        out.print(output::message(message), || output::message_line(message));
    }
    if !out.json() && response.has_more {
        out.print(json!({}), || {
            "-- more: page with --before <first seq>".to_owned()
        });
    }
    Ok(())
}

pub async fn conversations(mut session: Session, out: &Output) -> anyhow::Result<()> {
    let response = session
        .clients
        .chat
        .list_conversations(pb::ListConversationsRequest {})
        .await?
        .into_inner();
    for c in &response.conversations {
        out.print(output::conversation(c), || {
            let last = c
                .last_message
                .as_ref()
                .map(output::message_line)
                .unwrap_or_default();
            let mark = match (c.request, c.muted) {
                (true, _) => " (request)",
                (false, true) => " (muted)",
                _ => "",
            };
            format!(
                "{:<40} {:<24} unread {:>3}{mark}  {last}",
                c.conversation_id, c.title, c.unread
            )
        });
    }
    Ok(())
}

pub async fn read(
    mut session: Session,
    conversation: &str,
    seq: Option<u64>,
    out: &Output,
) -> anyhow::Result<()> {
    let conversation_id = session.conversation(conversation);
    let response = session
        .clients
        .chat
        .mark_read(pb::MarkReadRequest {
            conversation_id: conversation_id.clone(),
            seq: seq.unwrap_or(u64::MAX),
        })
        .await?
        .into_inner();
    out.print(
        json!({"conversation_id": conversation_id, "read_seq": response.read_seq}),
        || format!("{conversation_id} read up to #{}", response.read_seq),
    );
    Ok(())
}

pub async fn delete(mut session: Session, message_id: &str, out: &Output) -> anyhow::Result<()> {
    let response = session
        .clients
        .chat
        .delete_message(pb::DeleteMessageRequest {
            message_id: message_id.to_owned(),
        })
        .await?
        .into_inner();
    out.print(
        json!({"message_id": message_id, "notice_seq": response.notice_seq}),
        || {
            if response.notice_seq == 0 {
                format!("{message_id} was already deleted")
            } else {
                format!("{message_id} deleted for everyone")
            }
        },
    );
    Ok(())
}

pub async fn edit(
    mut session: Session,
    message_id: &str,
    text: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let response = session
        .clients
        .chat
        .edit_message(pb::EditMessageRequest {
            message_id: message_id.to_owned(),
            text: text.to_owned(),
        })
        .await?
        .into_inner();
    out.print(
        json!({"message_id": message_id, "notice_seq": response.notice_seq,
               "edited_at_ms": response.edited_at_ms}),
        || {
            if response.notice_seq == 0 {
                format!("{message_id} already says that")
            } else {
                format!("{message_id} edited")
            }
        },
    );
    Ok(())
}

pub async fn react(
    mut session: Session,
    message_id: &str,
    emoji: &str,
    on: bool,
    out: &Output,
) -> anyhow::Result<()> {
    let response = session
        .clients
        .chat
        .react(pb::ReactRequest {
            message_id: message_id.to_owned(),
            emoji: emoji.to_owned(),
            on,
        })
        .await?
        .into_inner();
    out.print(
        json!({"message_id": message_id, "notice_seq": response.notice_seq,
               "reactions": output::reactions(&response.reactions)}),
        || {
            let now = output::reactions_line(&response.reactions);
            match (response.notice_seq, on) {
                (0, true) => format!("{message_id}: you had reacted {emoji} already; {now}"),
                (0, false) => format!("{message_id}: you had not reacted {emoji}; {now}"),
                _ => format!("{message_id}: {now}"),
            }
        },
    );
    Ok(())
}

pub async fn accept(mut session: Session, conversation: &str, out: &Output) -> anyhow::Result<()> {
    let conversation_id = session.conversation(conversation);
    session
        .clients
        .chat
        .accept_conversation(pb::AcceptConversationRequest {
            conversation_id: conversation_id.clone(),
        })
        .await?;
    out.print(
        json!({"conversation_id": conversation_id, "accepted": true}),
        || format!("{conversation_id} accepted"),
    );
    Ok(())
}

pub async fn mute(
    mut session: Session,
    conversation: &str,
    muted: bool,
    out: &Output,
) -> anyhow::Result<()> {
    let conversation_id = session.conversation(conversation);
    session
        .clients
        .chat
        .mute_conversation(pb::MuteConversationRequest {
            conversation_id: conversation_id.clone(),
            muted,
        })
        .await?;
    out.print(
        json!({"conversation_id": conversation_id, "muted": muted}),
        || {
            let what = if muted { "muted" } else { "unmuted" };
            format!("{conversation_id} {what}")
        },
    );
    Ok(())
}

pub async fn reactions(mut session: Session, message_id: &str, out: &Output) -> anyhow::Result<()> {
    let response = session
        .clients
        .chat
        .list_reactions(pb::ListReactionsRequest {
            message_id: message_id.to_owned(),
        })
        .await?
        .into_inner();
    for r in &response.reactors {
        out.print(
            json!({"user_id": r.user_id, "emoji": r.emoji, "at_ms": r.at_ms}),
            || format!("{:<24} {}", r.user_id, r.emoji),
        );
    }
    Ok(())
}

/// What `sb search` asks.
pub struct Search {
    pub query: String,
    pub conversation: Option<String>,
    pub limit: u32,
    pub page: String,
}

pub async fn search(mut session: Session, search: Search, out: &Output) -> anyhow::Result<()> {
    let conversation_id = search
        .conversation
        .as_deref()
        .map(|c| session.conversation(c))
        .unwrap_or_default();
    let response = session
        .clients
        .chat
        .search(pb::SearchRequest {
            query: search.query,
            conversation_id,
            limit: search.limit,
            page_token: search.page,
        })
        .await?
        .into_inner();
    for hit in &response.hits {
        if let Some(message) = &hit.message {
            out.print(output::search_hit(message, &hit.pieces), || {
                output::search_line(message, &hit.pieces)
            });
        }
    }
    if !response.next_page_token.is_empty() {
        out.print(json!({"next_page_token": response.next_page_token}), || {
            format!("-- more: --page {}", response.next_page_token)
        });
    }
    Ok(())
}

pub async fn receipts(
    mut session: Session,
    conversation: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let conversation_id = session.conversation(conversation);
    let response = session
        .clients
        .chat
        .list_read_cursors(pb::ListReadCursorsRequest { conversation_id })
        .await?
        .into_inner();
    for r in &response.cursors {
        out.print(
            json!({"user_id": r.user_id, "read_seq": r.read_seq}),
            || format!("{:<24} read up to #{}", r.user_id, r.read_seq),
        );
    }
    Ok(())
}
