//! Searching one's history by words.
//!
//! The word rules are here, once, for both stores and for highlighting: a
//! text's words are its runs of letters and digits, lowercased (cut to
//! [`MAX_WORD_CHARS`]); a query word matches a message word that starts
//! with it. A message is indexed by its words when it is a person's
//! message with text (not a system message, not a tombstone); an edit
//! indexes the new text, a deletion drops it.
//!
//! What a reader may search is what they may read ([`Router::readable`]):
//! each conversation with the range of seqs they can see, handed to the
//! store, which answers the newest matches first.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::try_join_all;
use switchboard_proto::pb;
use switchboard_shared::ids::{ConversationId, GroupId, UserId};

use crate::access::{Readable, readable_in_group};
use crate::error::{RouterError, RouterResult};
use crate::messaging::thread_topics;
use crate::{Caller, Router};

/// Longer words are indexed and matched by their first this many characters.
pub const MAX_WORD_CHARS: usize = 64;
const MAX_QUERY_WORDS: usize = 8;
const MAX_QUERY_BYTES: usize = 256;
const DEFAULT_HITS: usize = 20;
const MAX_HITS: usize = 100;

/// The distinct words of a text, in order of first appearance.
pub fn words(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    runs(text)
        .filter(|(_, is_word)| *is_word)
        .map(|(run, _)| word_of(run))
        .filter(|word| seen.insert(word.clone()))
        .collect()
}

/// The words a stored message is found by: none for a system message, a
/// tombstone or an empty text.
pub fn indexed_words(message: &pb::Message) -> Vec<String> {
    if message.system.is_some() || message.deleted {
        return Vec::new();
    }
    words(&message.text)
}

/// The same, from a stored body (as the stores keep it).
pub fn indexed_words_of_body(body: &[u8]) -> Vec<String> {
    <pb::Message as prost::Message>::decode(body)
        .map(|message| indexed_words(&message))
        .unwrap_or_default()
}

fn word_of(run: &str) -> String {
    run.chars()
        .take(MAX_WORD_CHARS)
        .flat_map(char::to_lowercase)
        .collect()
}

/// The text cut into alternating runs: letters and digits (`true`) and
/// everything else (`false`).
fn runs(text: &str) -> impl Iterator<Item = (&str, bool)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let is_word = first.is_alphanumeric();
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric() != is_word)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some((run, is_word))
    })
}

/// A parsed query: the words every hit has (each as a word's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub words: Vec<String>,
}

impl Query {
    pub fn parse(query: &str) -> RouterResult<Self> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(RouterError::InvalidArgument(format!(
                "a search is at most {MAX_QUERY_BYTES} bytes (this one is {})",
                query.len()
            )));
        }
        let words = words(query);
        if words.is_empty() {
            return Err(RouterError::InvalidArgument(
                "a search needs at least one word (letters or digits)".into(),
            ));
        }
        if words.len() > MAX_QUERY_WORDS {
            return Err(RouterError::InvalidArgument(format!(
                "a search has at most {MAX_QUERY_WORDS} words (this one has {})",
                words.len()
            )));
        }
        Ok(Self { words })
    }

    /// Whether a word of a text matches one of the query's.
    fn matches(&self, word: &str) -> bool {
        self.words.iter().any(|q| word.starts_with(q.as_str()))
    }

    /// Whether a stored text has every word of the query.
    pub fn found_in(&self, text_words: &[String]) -> bool {
        self.words
            .iter()
            .all(|q| text_words.iter().any(|w| w.starts_with(q.as_str())))
    }

    /// `text` in pieces, each matched or not, which joined give `text`.
    pub fn pieces(&self, text: &str) -> Vec<pb::TextPiece> {
        let mut pieces: Vec<pb::TextPiece> = Vec::new();
        for (run, is_word) in runs(text) {
            let matched = is_word && self.matches(&word_of(run));
            match pieces.last_mut() {
                Some(last) if last.matched == matched => last.text.push_str(run),
                _ => pieces.push(pb::TextPiece {
                    text: run.to_owned(),
                    matched,
                }),
            }
        }
        pieces
    }
}

/// One conversation to search, and the seqs of it the reader may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchScope {
    pub conversation: ConversationId,
    pub from: u64,
    /// Inclusive; `None`: up to the head.
    pub to: Option<u64>,
}

impl SearchScope {
    fn new(conversation: ConversationId, readable: Readable) -> Self {
        Self {
            conversation,
            from: readable.from,
            to: readable.to,
        }
    }

    pub fn holds(&self, seq: u64) -> bool {
        seq >= self.from && self.to.is_none_or(|to| seq <= to)
    }
}

/// A hit's place in the order of hits, newest first: by time sent, then
/// conversation, then seq, all descending. A page goes on after the last
/// hit of the one before.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SearchPosition {
    pub sent_at_ms: i64,
    pub conversation: String,
    pub seq: u64,
}

impl SearchPosition {
    pub fn of(message: &pb::Message) -> Self {
        Self {
            sent_at_ms: message.sent_at_ms,
            conversation: message.conversation_id.clone(),
            seq: message.seq,
        }
    }

    fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{} {} {}",
            self.sent_at_ms, self.seq, self.conversation
        ))
    }

    fn parse_token(token: &str) -> RouterResult<Self> {
        let bad = || RouterError::InvalidArgument("page_token is not one this server gave".into());
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(3, ' ');
        let (Some(sent_at), Some(seq), Some(conversation)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let conversation = ConversationId::parse(conversation).map_err(|_| bad())?;
        Ok(Self {
            sent_at_ms: sent_at.parse().map_err(|_| bad())?,
            conversation: conversation.to_string(),
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// What of `conversation` lies after `after` in the order of hits, as a
/// bound on `(sent_at_ms, seq)` that its messages must be below: its own
/// hits before the position were on earlier pages, as were, at the
/// position's time, those of conversations ordered before it.
pub fn search_bound(after: Option<&SearchPosition>, conversation: &str) -> (i64, i64) {
    let Some(after) = after else {
        return (i64::MAX, i64::MAX);
    };
    let seq = match conversation.cmp(after.conversation.as_str()) {
        std::cmp::Ordering::Less => i64::MAX,
        std::cmp::Ordering::Equal => after.seq as i64,
        std::cmp::Ordering::Greater => 0,
    };
    (after.sent_at_ms, seq)
}

fn hits_per_page(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_HITS,
        n => (n as usize).min(MAX_HITS),
    }
}

impl Router {
    pub async fn search(
        &self,
        caller: &Caller,
        req: pb::SearchRequest,
    ) -> RouterResult<pb::SearchResponse> {
        let query = Query::parse(&req.query)?;
        let after = match req.page_token.as_str() {
            "" => None,
            token => Some(SearchPosition::parse_token(token)?),
        };
        let limit = hits_per_page(req.limit);
        let scopes = match req.conversation_id.as_str() {
            "" => self.searchable(&caller.user).await?,
            id => {
                let conv = ConversationId::parse(id)?;
                let readable = self.readable(&caller.user, &conv).await?;
                vec![SearchScope::new(conv, readable)]
            }
        };
        if scopes.is_empty() {
            return Ok(pb::SearchResponse::default());
        }
        let mut found = self
            .store
            .search(&scopes, &query.words, after.as_ref(), limit + 1)
            .await?;
        let more = found.len() > limit;
        found.truncate(limit);
        let next_page_token = match (more, found.last()) {
            (true, Some(last)) => SearchPosition::of(last).token(),
            _ => String::new(),
        };
        self.fill_quotes(&mut found).await?;
        self.fill_reactions(&caller.user, &mut found).await?;
        let hits = found
            .into_iter()
            .map(|message| pb::SearchHit {
                pieces: query.pieces(&message.text),
                message: Some(message),
            })
            .collect();
        Ok(pb::SearchResponse {
            hits,
            next_page_token,
        })
    }

    /// Every conversation `user` may read, with what of it: their direct
    /// conversations, the topic threads they own or are bound to, and each
    /// group they are or were in, as its history setting and their joining
    /// and leaving allow.
    async fn searchable(&self, user: &UserId) -> RouterResult<Vec<SearchScope>> {
        let (convs, now, ever) = futures::try_join!(
            self.store.user_conversations(user),
            self.store.user_groups(user),
            self.store.user_groups_ever(user),
        )?;
        let mut groups: Vec<GroupId> = now.into_iter().chain(ever).collect();
        groups.sort();
        groups.dedup();
        let topic_ids = thread_topics(&convs);
        let (topics, records, places) = futures::try_join!(
            self.store.topics(&topic_ids),
            self.store.groups(&groups),
            try_join_all(groups.iter().map(|g| self.store.group_membership(g, user))),
        )?;
        let topics: Vec<_> = topics.into_iter().flatten().collect();
        let mut scopes = Vec::new();
        for conv in convs {
            let readable = match &conv {
                ConversationId::Direct(..) => true,
                ConversationId::TopicThread { topic, contact } => topics.iter().any(|t| {
                    &t.id == topic
                        && (&t.owner == user || (contact == user && t.binding(contact).is_some()))
                }),
                // Groups come from the memberships below.
                ConversationId::Group(_) => false,
            };
            if readable {
                scopes.push(SearchScope::new(conv, Readable::ALL));
            }
        }
        for ((group, record), place) in groups.into_iter().zip(records).zip(places) {
            if let Some(readable) = record.and_then(|r| readable_in_group(r.history, &place)) {
                scopes.push(SearchScope::new(ConversationId::Group(group), readable));
            }
        }
        Ok(scopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(query: &str, text: &str) -> Vec<(String, bool)> {
        Query::parse(query)
            .unwrap()
            .pieces(text)
            .into_iter()
            .map(|p| (p.text, p.matched))
            .collect()
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_lowercased_once_each() {
        assert_eq!(
            words("Meet me at 10:30, MEET-up at Café Zürich!"),
            ["meet", "me", "at", "10", "30", "up", "café", "zürich"]
        );
        assert_eq!(words("  ...  "), Vec::<String>::new());
        let long = "x".repeat(100);
        assert_eq!(words(&long), ["x".repeat(MAX_WORD_CHARS)]);
    }

    #[test]
    fn a_query_word_matches_the_start_of_a_word() {
        let query = Query::parse("meet ZUR").unwrap();
        assert!(query.found_in(&words("Meeting in Zürich? no: Zurich")));
        assert!(!query.found_in(&words("a meeting somewhere else")));
        assert!(!query.found_in(&words("greet Zurich")), "not inside a word");
    }

    #[test]
    fn pieces_join_to_the_text_and_mark_what_matched() {
        assert_eq!(
            pieces("meet", "Meeting at noon, meet me"),
            [
                ("Meeting".to_owned(), true),
                (" at noon, ".to_owned(), false),
                ("meet".to_owned(), true),
                (" me".to_owned(), false),
            ]
        );
        let text = "naïve ünïcode — 東京 tōkyō";
        let joined: String = pieces("tō", text).into_iter().map(|(t, _)| t).collect();
        assert_eq!(joined, text);
        assert_eq!(pieces("x", ""), Vec::<(String, bool)>::new());
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        for (query, says) in [
            ("", "at least one word"),
            ("?! ...", "at least one word"),
            ("a b c d e f g h i", "at most 8 words"),
        ] {
            let err = Query::parse(query).unwrap_err();
            assert!(err.to_string().contains(says), "{query:?}: {err}");
        }
        let long = "word ".repeat(60);
        assert!(
            Query::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("256 bytes")
        );
    }

    #[test]
    fn page_tokens_round_trip_and_forgeries_are_refused() {
        let position = SearchPosition {
            sent_at_ms: 1_700_000_000_123,
            conversation: "g:gteam1".into(),
            seq: 42,
        };
        assert_eq!(
            SearchPosition::parse_token(&position.token()).unwrap(),
            position
        );
        for token in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("1 2 nonsense")] {
            assert!(SearchPosition::parse_token(token).is_err(), "{token:?}");
        }
    }

    #[test]
    fn a_bound_leaves_out_what_earlier_pages_held() {
        let after = SearchPosition {
            sent_at_ms: 500,
            conversation: "g:gm1234".into(),
            seq: 7,
        };
        let position = |conversation: &str, sent_at_ms, seq| SearchPosition {
            sent_at_ms,
            conversation: conversation.into(),
            seq,
        };
        for conv in ["g:ga1234", "g:gm1234", "g:gz1234"] {
            let (sent, seq) = search_bound(Some(&after), conv);
            for (at, s) in [(499, 99), (500, 1), (500, 6), (500, 7), (500, 8), (501, 1)] {
                let later = position(conv, at, s) < after;
                assert_eq!((at, s as i64) < (sent, seq), later, "{conv} {at} {s}");
            }
        }
        assert_eq!(search_bound(None, "g:ga1234"), (i64::MAX, i64::MAX));
    }

    #[test]
    fn scopes_hold_what_may_be_read() {
        let scope = SearchScope {
            conversation: ConversationId::parse("g:gteam1").unwrap(),
            from: 5,
            to: Some(9),
        };
        assert!(!scope.holds(4));
        assert!(scope.holds(5) && scope.holds(9));
        assert!(!scope.holds(10));
    }
}
