//! Replies: what a reply quotes is checked on the way in and stored as a
//! pointer (id and sender); its excerpt is filled in on the way out (live
//! delivery, history, redelivery), so a quote always reads as the quoted
//! message does now: edited, it shows the new text; deleted, nothing.

use std::collections::HashMap;

use switchboard_proto::pb;
use switchboard_shared::ids::{ConversationId, MessageId, UserId};

use crate::Router;
use crate::error::{RouterError, RouterResult};

/// Longest excerpt, in characters.
const EXCERPT_CHARS: usize = 120;

/// The start of a message's text on one line, cut with "…".
pub fn excerpt(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= EXCERPT_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(EXCERPT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Fills `quote` from the message it points at (`None`: gone).
fn fill(quote: &mut pb::Quote, quoted: Option<&pb::Message>) {
    match quoted {
        Some(message) if !message.deleted => {
            quote.excerpt = excerpt(&message.text);
            quote.deleted = false;
        }
        _ => {
            quote.excerpt.clear();
            quote.deleted = true;
        }
    }
}

impl Router {
    /// The quote a new message of `conv` from `user` carries when it
    /// answers `raw` (empty: it answers nothing).
    pub(crate) async fn quote_for_send(
        &self,
        user: &UserId,
        conv: &ConversationId,
        raw: &str,
    ) -> RouterResult<Option<pb::Quote>> {
        if raw.is_empty() {
            return Ok(None);
        }
        let id = MessageId::parse(raw)?;
        if &id.conversation != conv {
            return Err(RouterError::InvalidArgument(format!(
                "a reply answers a message of the same conversation; {id} is not in {conv}"
            )));
        }
        let quoted = self.readable_message(user, &id).await?;
        if quoted.system.is_some() || quoted.sender.is_empty() {
            return Err(RouterError::FailedPrecondition(
                "a system message cannot be answered".into(),
            ));
        }
        let mut quote = pb::Quote {
            message_id: id.to_string(),
            sender: quoted.sender.clone(),
            ..Default::default()
        };
        fill(&mut quote, Some(&quoted));
        Ok(Some(quote))
    }

    /// Fills the excerpt of every quote among `messages` (of any
    /// conversations) from what the quoted messages say now: one read per
    /// conversation that has replies.
    pub(crate) async fn fill_quotes(&self, messages: &mut [pb::Message]) -> RouterResult<()> {
        let mut wanted: HashMap<ConversationId, Vec<u64>> = HashMap::new();
        for message in messages.iter() {
            if let Some(quote) = &message.reply_to
                && let Ok(id) = MessageId::parse(&quote.message_id)
            {
                wanted.entry(id.conversation).or_default().push(id.seq);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut found: HashMap<String, pb::Message> = HashMap::new();
        for (conv, seqs) in wanted {
            for message in self.store.messages_at(&conv, &seqs).await? {
                found.insert(message.message_id.clone(), message);
            }
        }
        for message in messages.iter_mut() {
            if let Some(quote) = &mut message.reply_to {
                fill(quote, found.get(&quote.message_id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_line_and_cut() {
        assert_eq!(excerpt("see you\n at   7"), "see you at 7");
        let long = "é".repeat(200);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_quote_of_a_deleted_or_missing_message_says_so_and_nothing_more() {
        let mut quote = pb::Quote {
            message_id: "dm:a:b#1".into(),
            sender: "a".into(),
            excerpt: "stale".into(),
            deleted: false,
        };
        fill(&mut quote, None);
        assert!(quote.deleted && quote.excerpt.is_empty());
        let tombstone = pb::Message {
            deleted: true,
            ..Default::default()
        };
        quote.excerpt = "stale".into();
        fill(&mut quote, Some(&tombstone));
        assert!(quote.deleted && quote.excerpt.is_empty());
        let edited = pb::Message {
            text: "now this".into(),
            ..Default::default()
        };
        fill(&mut quote, Some(&edited));
        assert_eq!((quote.excerpt.as_str(), quote.deleted), ("now this", false));
    }
}
