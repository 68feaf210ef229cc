//! Printing results: readable text, or one JSON object per line with --json.

use serde_json::{Value, json};
use switchboard_proto::pb::{self, event::Kind};
use switchboard_proto::status::code_name;

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// One result: `value` for --json, `text` otherwise.
    #[allow(clippy::print_stdout)]
    pub fn print(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    #[allow(clippy::print_stderr)]
    pub fn error(&self, err: &anyhow::Error) {
        let status = err.downcast_ref::<tonic::Status>();
        let (code, message) = match status {
            Some(status) => (
                code_name(status.code()).to_owned(),
                status.message().to_owned(),
            ),
            None => ("Error".to_owned(), format!("{err:#}")),
        };
        if self.json {
            eprintln!("{}", json!({"error": {"code": code, "message": message}}));
        } else if status.is_some() {
            eprintln!("error ({code}): {message}");
        } else {
            eprintln!("error: {message}");
        }
    }
}

pub fn message(m: &pb::Message) -> Value {
    let mut value = json!({
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "message_id": m.message_id,
        "sender": m.sender,
        "sent_at_ms": m.sent_at_ms,
        "text": m.text,
        "client_msg_id": m.client_msg_id,
        "deleted": m.deleted,
        "edited_at_ms": m.edited_at_ms,
        "mentions": m.mentions,
        "reactions": reactions(&m.reactions),
    });
    if let Some(system) = &m.system {
        value["system"] = json!({
            "kind": system.kind().as_str_name(),
            "user_id": system.user_id,
            "actor_id": system.actor_id,
            "detail": system.detail,
            "message_id": system.message_id,
        });
    }
    if let Some(topic) = &m.topic {
        value["topic"] = topic_tag(topic);
    }
    if let Some(quote) = &m.reply_to {
        value["reply_to"] = json!({
            "message_id": quote.message_id,
            "sender": quote.sender,
            "excerpt": quote.excerpt,
            "deleted": quote.deleted,
        });
    }
    value
}

pub fn reactions(reactions: &[pb::Reaction]) -> Value {
    reactions
        .iter()
        .map(|r| json!({"emoji": r.emoji, "count": r.count, "mine": r.mine}))
        .collect()
}

/// `👍 2 (you) · 🎉 1`, or `no reactions`.
pub fn reactions_line(reactions: &[pb::Reaction]) -> String {
    if reactions.is_empty() {
        return "no reactions".into();
    }
    reactions
        .iter()
        .map(|r| {
            let mine = if r.mine { " (you)" } else { "" };
            format!("{} {}{mine}", r.emoji, r.count)
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

pub fn topic_tag(t: &pb::TopicTag) -> Value {
    json!({
        "topic_id": t.topic_id,
        "topic_name": t.topic_name,
        "owner_id": t.owner_id,
        "contact_id": t.contact_id,
        "broadcast_id": t.broadcast_id,
        "forwarded_from": t.forwarded_from,
    })
}

pub fn topic(t: &pb::Topic) -> Value {
    json!({
        "topic_id": t.topic_id,
        "name": t.name,
        "owner_id": t.owner_id,
        "deleted": t.deleted,
        "contacts": t.contacts.iter().map(|c| json!({
            "user_id": c.user_id,
            "state": c.state().as_str_name(),
            "conversation_id": c.conversation_id,
        })).collect::<Vec<_>>(),
    })
}

pub fn binding_result(r: &pb::BindingResult) -> Value {
    json!({"user_id": r.user_id, "outcome": r.outcome().as_str_name(), "message": r.message})
}

pub fn message_line(m: &pb::Message) -> String {
    let who = if m.sender.is_empty() { "*" } else { &m.sender };
    let text = if m.deleted {
        "(message deleted)".to_owned()
    } else if m.edited_at_ms > 0 {
        format!("{} (edited)", m.text)
    } else {
        m.text.clone()
    };
    let text = if m.reactions.is_empty() {
        text
    } else {
        format!("{text}  [{}]", reactions_line(&m.reactions))
    };
    match &m.topic {
        Some(t) => format!(
            "[topic \"{}\" · {} #{}] {who}: {text}",
            t.topic_name, t.contact_id, m.seq
        ),
        None => format!("[{} #{}] {who}: {text}", m.conversation_id, m.seq),
    }
}

/// A search hit: the message, and its text in pieces saying what matched.
pub fn search_hit(m: &pb::Message, pieces: &[pb::TextPiece]) -> Value {
    let mut value = message(m);
    value["pieces"] = pieces
        .iter()
        .map(|p| json!({"text": p.text, "matched": p.matched}))
        .collect();
    value
}

/// A search hit as a line, with what matched in `*stars*`.
pub fn search_line(m: &pb::Message, pieces: &[pb::TextPiece]) -> String {
    let text: String = pieces
        .iter()
        .map(|p| {
            if p.matched {
                format!("*{}*", p.text)
            } else {
                p.text.clone()
            }
        })
        .collect();
    message_line(&pb::Message {
        text,
        reactions: Vec::new(),
        ..m.clone()
    })
}

pub fn conversation(c: &pb::Conversation) -> Value {
    json!({
        "conversation_id": c.conversation_id,
        "kind": c.kind().as_str_name(),
        "title": c.title,
        "head_seq": c.head_seq,
        "read_seq": c.read_seq,
        "unread": c.unread,
        "peer_id": c.peer_id,
        "group_id": c.group_id,
        "topic": c.topic.as_ref().map(topic_tag),
        "muted": c.muted,
        "request": c.request,
        "closed": c.closed,
        "last_message": c.last_message.as_ref().map(message),
    })
}

pub fn group(g: &pb::Group) -> Value {
    json!({
        "group_id": g.group_id,
        "name": g.name,
        "owner_id": g.owner_id,
        "policy": g.policy().as_str_name(),
        "history": g.history().as_str_name(),
        "member_count": g.member_count,
        "conversation_id": g.conversation_id,
        "description": g.description,
    })
}

pub fn contact(c: &pb::Contact) -> Value {
    json!({
        "user_id": c.user_id,
        "display_name": c.display_name,
        "mutual": c.mutual,
        "online": c.online,
    })
}

/// A stream event as JSON, with its kind named.
pub fn event(e: &pb::Event) -> Value {
    match &e.kind {
        Some(Kind::Ready(r)) => {
            json!({"event": "ready", "gateway_id": r.gateway_id, "epoch": r.epoch})
        }
        Some(Kind::Message(m)) => json!({"event": "message", "message": message(m)}),
        Some(Kind::Receipt(r)) => {
            json!({"event": "receipt", "conversation_id": r.conversation_id, "user_id": r.user_id, "read_seq": r.read_seq})
        }
        Some(Kind::Presence(p)) => {
            json!({"event": "presence", "user_id": p.user_id, "online": p.online})
        }
        Some(Kind::Conversation(c)) => json!({
            "event": "conversation",
            "change": c.change().as_str_name(),
            "conversation": c.conversation.as_ref().map(conversation),
        }),
        Some(Kind::Synced(s)) => json!({"event": "synced", "conversations": s.heads.len()}),
        Some(Kind::Gap(g)) => json!({
            "event": "gap",
            "conversation_id": g.conversation_id,
            "from_seq": g.from_seq,
            "to_seq": g.to_seq,
            "reason": g.reason().as_str_name(),
            "detail": g.detail,
        }),
        Some(Kind::Heartbeat(_)) => json!({"event": "heartbeat"}),
        Some(Kind::Delivered(d)) => {
            json!({"event": "delivered", "conversation_id": d.conversation_id, "user_id": d.user_id, "delivered_seq": d.delivered_seq})
        }
        Some(Kind::Reconnect(r)) => json!({"event": "reconnect", "reason": r.reason}),
        Some(Kind::Typing(t)) => {
            json!({"event": "typing", "conversation_id": t.conversation_id, "user_id": t.user_id, "expires_in_ms": t.expires_in_ms})
        }
        None => json!({"event": "unknown"}),
    }
}

pub fn event_line(e: &pb::Event) -> Option<String> {
    Some(match &e.kind {
        Some(Kind::Ready(r)) => format!("-- connected to {}", r.gateway_id),
        Some(Kind::Message(m)) => message_line(m),
        Some(Kind::Receipt(r)) => format!(
            "-- {} read {} up to #{}",
            r.user_id, r.conversation_id, r.read_seq
        ),
        Some(Kind::Presence(p)) => format!(
            "-- {} is {}",
            p.user_id,
            if p.online { "online" } else { "offline" }
        ),
        Some(Kind::Conversation(c)) => {
            let id = c
                .conversation
                .as_ref()
                .map(|c| c.conversation_id.as_str())
                .unwrap_or("");
            let title = c
                .conversation
                .as_ref()
                .map(|c| c.title.as_str())
                .unwrap_or("");
            format!(
                "-- {} {id} {title}",
                c.change()
                    .as_str_name()
                    .trim_start_matches("CHANGE_")
                    .to_lowercase()
            )
        }
        Some(Kind::Synced(_)) => "-- caught up".to_owned(),
        Some(Kind::Gap(g)) => format!(
            "-- gap in {} #{}..#{}: {}",
            g.conversation_id, g.from_seq, g.to_seq, g.detail
        ),
        Some(Kind::Reconnect(r)) => format!("-- server asks to reconnect: {}", r.reason),
        Some(Kind::Delivered(d)) => format!(
            "-- delivered to {} in {} up to #{}",
            d.user_id, d.conversation_id, d.delivered_seq
        ),
        Some(Kind::Typing(t)) => format!("-- {} is typing in {}", t.user_id, t.conversation_id),
        Some(Kind::Heartbeat(_)) | None => return None,
    })
}
