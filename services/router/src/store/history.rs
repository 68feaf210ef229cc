//! Message history on PostgreSQL: the conversation log and its sequencer
//! (docs/STORAGE.md has the decision, the measurements and the plan).
//!
//! An append is one transaction: each conversation's `head` moves by the
//! number of its messages and the messages take the seqs below it, so seqs
//! have no holes and never go backwards, whatever happens to Redis. A
//! message may carry a retry key (`<sender> <client message id>`); a batch
//! item whose key is already stored in its conversation is not stored again
//! and answers the first seq. The commit is acknowledged only once its WAL
//! is flushed (`synchronous_commit = on`, the server's default), which is
//! what "acknowledged means durable" rests on.
//!
//! The Redis store appends through [`HistoryWriter`] when it has a history
//! store (`redis/logged.rs`); membership changes go through
//! [`PgHistory::append_change`], which numbers them and moves the fence.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::{StreamExt as _, TryStreamExt as _};
use switchboard_shared::ids::{ConversationId, UserId, random_token};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{Reacted, StoreError, StoreResult, StoredReaction};
use crate::search::{SearchPosition, SearchScope, indexed_words_of_body, search_bound};

/// The schema this code reads and writes; a database with another refuses
/// to be used.
pub const SCHEMA_VERSION: i32 = 1;
const SCHEMA: &str = include_str!("sql/history.sql");

/// Set on every connection of the history store (see [`PgHistory::connect`]).
const SESSION_OPTIONS: &str =
    "-c enable_seqscan=off -c plan_cache_mode=force_generic_plan -c jit=off";

/// Serialises schema creation between routers starting together.
const SCHEMA_LOCK: i64 = 0x5357_4254_4348_0001;

/// How many times a batch runs again after a conflict it cannot see in
/// advance (a retry of the same send committed by another router in the
/// meantime, or a deadlock between two batches).
const CONFLICT_ATTEMPTS: usize = 3;

/// One message to append.
#[derive(Debug, Clone)]
pub struct HistoryAppend {
    pub conversation: ConversationId,
    pub sent_at_ms: i64,
    /// `<sender> <client message id>`, for sends a client may retry.
    pub retry_key: Option<String>,
    pub body: Bytes,
    /// The membership version under which the sender was admitted (read
    /// from Redis with the membership); `None` where nobody joins or leaves
    /// (direct conversations, system messages). An item whose conversation's
    /// fence has moved past it is not stored. For a membership change
    /// ([`PgHistory::append_change`]): the version it expects the
    /// conversation to be at.
    pub fence: Option<u64>,
}

/// What an append answered for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryAppended {
    /// 0 when fenced.
    pub seq: u64,
    /// The retry key was already stored: nothing was written, and `seq` is
    /// the first append's.
    pub repeated: bool,
    /// When the stored message was sent: this append's time, or the first
    /// append's for a repeated one (0 when fenced).
    pub sent_at_ms: i64,
    /// A membership change was written to the conversation after the
    /// sender's admission was read: nothing was written; read the
    /// membership again. (Every item of that conversation in the batch
    /// whose fence is not the newest is refused with it.)
    pub fenced: bool,
}

/// Where a membership change's message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStored {
    pub seq: u64,
    /// The membership version the change makes (the conversation's fence
    /// from now on); its message's retry key is [`change_key`] of it.
    pub version: u64,
}

/// The retry key of the change that makes membership version `version`.
pub fn change_key(version: u64) -> String {
    format!("change {version}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: u64,
    pub sent_at_ms: i64,
    pub body: Bytes,
}

impl StoredMessage {
    /// A row of `SELECT seq, sent_at, body FROM messages`.
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            seq: row.get::<_, i64>(0) as u64,
            sent_at_ms: row.get(1),
            body: Bytes::from(row.get::<_, Vec<u8>>(2)),
        }
    }
}

/// The rows of a conversation live with its shard key: the conversation
/// itself, or the topic for a topic's threads (a broadcast then writes to
/// one shard).
pub fn shard_key(conversation: &ConversationId) -> String {
    match conversation {
        ConversationId::TopicThread { topic, .. } => format!("t:{topic}"),
        other => other.to_string(),
    }
}

pub struct PgHistory {
    pool: Pool,
    epoch: String,
}

impl PgHistory {
    /// Connects, creates the schema in an empty database, and refuses a
    /// database whose schema version this code does not know.
    pub async fn connect(url: &str, max_connections: usize) -> StoreResult<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|err| {
            StoreError::Unavailable(format!("history store address: {}", chain(&err)))
        })?;
        // Every statement here is a keyed lookup or a range of one key
        // (search: one per conversation, or a large one planned alone).
        // Planning the append each time costs ~0.5 ms, so plans are made once
        // per connection (generic); a plan made while a table was nearly
        // empty would then scan or hash the whole table for ever after, so
        // sequential scans are off. That makes plans look dear, and JIT
        // compiled search plans for 30-200 ms that ran in 15-40 ms without it
        // (docs/STORAGE.md "Search"), so JIT is off. Added to whatever the
        // address asks for.
        let options = [config.get_options().unwrap_or_default(), SESSION_OPTIONS]
            .join(" ")
            .trim()
            .to_owned();
        config.options(&options);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(2)))
            .create_timeout(Some(Duration::from_secs(1)))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|err| StoreError::Unavailable(format!("history store: {err}")))?;
        let mut history = Self {
            pool,
            epoch: String::new(),
        };
        history.epoch = history.prepare_schema().await?;
        Ok(history)
    }

    /// The epoch of this history: seqs are numbered under it, and it lasts
    /// as long as the database does.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Creates the schema in an empty database; answers the history's epoch.
    async fn prepare_schema(&self) -> StoreResult<String> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(failed)?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('switchboard_schema') IS NOT NULL", &[])
            .await
            .map_err(failed)?
            .get(0);
        let epoch = if exists {
            let row = tx
                .query_opt("SELECT version, epoch FROM switchboard_schema", &[])
                .await
                .map_err(failed)?;
            let found: Option<i32> = row.as_ref().map(|row| row.get(0));
            if found != Some(SCHEMA_VERSION) {
                return Err(StoreError::UnknownSchema(format!(
                    "the history database has schema version {}; this build knows only {SCHEMA_VERSION}",
                    found.map_or_else(|| "none".to_owned(), |v| v.to_string())
                )));
            }
            row.map(|row| row.get::<_, String>(1)).unwrap_or_default()
        } else {
            let epoch = random_token(16);
            tx.batch_execute(SCHEMA).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO switchboard_schema (version, epoch) VALUES ($1, $2)",
                &[&SCHEMA_VERSION, &epoch],
            )
            .await
            .map_err(failed)?;
            epoch
        };
        tx.commit().await.map_err(failed)?;
        Ok(epoch)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|err| StoreError::Unavailable(format!("history store: {}", chain(&err))))
    }

    /// Appends the batch in one transaction and answers each item, in order.
    pub async fn append(&self, batch: &[HistoryAppend]) -> StoreResult<Vec<HistoryAppended>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.append_once(batch).await {
                Err(Attempt::Conflict(_)) if attempt < CONFLICT_ATTEMPTS => continue,
                Err(Attempt::Conflict(err)) | Err(Attempt::Failed(err)) => return Err(err),
                Ok(answers) => return Ok(answers),
            }
        }
    }

    async fn append_once(&self, batch: &[HistoryAppend]) -> Result<Vec<HistoryAppended>, Attempt> {
        // An item repeating the retry key of an earlier one in this batch is
        // not sent: it answers what that one answers.
        let mut first_of: HashMap<(String, &str), usize> = HashMap::new();
        let mut repeats = Vec::new();
        let mut sent = Vec::with_capacity(batch.len());
        for (i, item) in batch.iter().enumerate() {
            if let Some(key) = item.retry_key.as_deref() {
                match first_of.entry((item.conversation.to_string(), key)) {
                    std::collections::hash_map::Entry::Occupied(first) => {
                        repeats.push((i, *first.get()));
                        continue;
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
            sent.push(i);
        }
        let shards: Vec<String> = sent
            .iter()
            .map(|&i| shard_key(&batch[i].conversation))
            .collect();
        let convs: Vec<String> = sent
            .iter()
            .map(|&i| batch[i].conversation.to_string())
            .collect();
        let times: Vec<i64> = sent.iter().map(|&i| batch[i].sent_at_ms).collect();
        let keys: Vec<Option<&str>> = sent
            .iter()
            .map(|&i| batch[i].retry_key.as_deref())
            .collect();
        let bodies: Vec<&[u8]> = sent.iter().map(|&i| batch[i].body.as_ref()).collect();
        let words: Vec<Option<String>> = sent.iter().map(|&i| ts_words(&batch[i].body)).collect();
        let fences: Vec<Option<i64>> = sent
            .iter()
            .map(|&i| batch[i].fence.map(|f| f as i64))
            .collect();

        // One statement, so one round trip and its own transaction.
        let client = self.client().await.map_err(Attempt::Failed)?;
        let statement = client.prepare_cached(APPEND).await.map_err(attempt_error)?;
        let rows = client
            .query(
                &statement,
                &[&shards, &convs, &times, &keys, &bodies, &fences, &words],
            )
            .await
            .map_err(attempt_error)?;

        let mut answers: Vec<Option<HistoryAppended>> = vec![None; batch.len()];
        for row in rows {
            // `ord` counts the sent items from 1.
            let ord: i64 = row.get(0);
            let seq: i64 = row.get(1);
            let sent_at_ms: i64 = row.get(3);
            let item = usize::try_from(ord - 1)
                .ok()
                .and_then(|k| sent.get(k))
                .copied()
                .ok_or_else(|| {
                    Attempt::Failed(StoreError::Corrupt(format!("answer for item {ord}")))
                })?;
            answers[item] = Some(HistoryAppended {
                seq: seq as u64,
                repeated: row.get(2),
                sent_at_ms,
                fenced: false,
            });
        }
        // A sent item without an answer was not placed: its conversation's
        // fence refused it.
        for &i in &sent {
            answers[i].get_or_insert(HistoryAppended {
                seq: 0,
                repeated: false,
                sent_at_ms: 0,
                fenced: true,
            });
        }
        for (i, first) in repeats {
            answers[i] = answers[first].map(|a| HistoryAppended {
                repeated: !a.fenced,
                ..a
            });
        }
        answers
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| Attempt::Failed(StoreError::Corrupt("unanswered item".into())))
            })
            .collect()
    }

    /// Appends the system message of a membership change as the next
    /// version of its conversation's membership: the fence moves to it in
    /// the same transaction, so every send admitted under an older version
    /// and not yet stored is refused from now on. Changes of one
    /// conversation are numbered here, one at a time (the row lock), which
    /// is what orders them for Redis too. The item's own retry key is
    /// replaced by the version's ([`change_key`]), by which a router that
    /// finds Redis behind the log finds the change to apply.
    ///
    /// With `item.fence`, the change is made only if the conversation is at
    /// that version (the one its caller judged the membership under): else
    /// `None` and nothing is written, so two routers making the same change
    /// at once do not both log it.
    pub async fn append_change(&self, item: &HistoryAppend) -> StoreResult<Option<ChangeStored>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let (shard, conv) = (shard_key(&item.conversation), item.conversation.to_string());
        tx.execute(
            "INSERT INTO conversations (shard_key, conversation, head) VALUES ($1, $2, 0)
             ON CONFLICT (shard_key, conversation) DO NOTHING",
            &[&shard, &conv],
        )
        .await
        .map_err(failed)?;
        let row = tx
            .query_one(
                "SELECT head, fence FROM conversations
                 WHERE shard_key = $1 AND conversation = $2 FOR UPDATE",
                &[&shard, &conv],
            )
            .await
            .map_err(failed)?;
        let (head, fence): (i64, i64) = (row.get(0), row.get(1));
        if item
            .fence
            .is_some_and(|expected| i64::try_from(expected) != Ok(fence))
        {
            // Rolled back when dropped: the row lock goes, nothing changed.
            return Ok(None);
        }
        let (seq, version) = (head + 1, fence + 1);
        tx.execute(
            "UPDATE conversations SET head = $3, fence = $4
             WHERE shard_key = $1 AND conversation = $2",
            &[&shard, &conv, &seq, &version],
        )
        .await
        .map_err(failed)?;
        tx.execute(
            "INSERT INTO messages (shard_key, conversation, seq, sent_at, retry_key, body)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &shard,
                &conv,
                &seq,
                &item.sent_at_ms,
                &change_key(version as u64),
                &item.body.as_ref(),
            ],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(Some(ChangeStored {
            seq: seq as u64,
            version: version as u64,
        }))
    }

    /// The message stored under a retry key in a conversation, if any.
    pub async fn find(
        &self,
        conversation: &ConversationId,
        retry_key: &str,
    ) -> StoreResult<Option<StoredMessage>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT seq, sent_at, body FROM messages
                 WHERE shard_key = $1 AND conversation = $2 AND retry_key = $3",
                &[
                    &shard_key(conversation),
                    &conversation.to_string(),
                    &retry_key,
                ],
            )
            .await
            .map_err(failed)?;
        Ok(row.as_ref().map(StoredMessage::from_row))
    }

    /// Each conversation's fence: the membership version of the last change
    /// written to it (0 for none).
    pub async fn fences(&self, conversations: &[ConversationId]) -> StoreResult<Vec<u64>> {
        self.per_conversation("fence", conversations).await
    }

    /// Up to `limit` messages after `after_seq`, oldest first.
    pub async fn after(
        &self,
        conversation: &ConversationId,
        after_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredMessage>> {
        self.page(conversation, PAGE_AFTER, after_seq, limit).await
    }

    /// The messages with these seqs that exist, oldest first.
    pub async fn at(
        &self,
        conversation: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<StoredMessage>> {
        let seqs: Vec<i64> = seqs.iter().map(|s| *s as i64).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, sent_at, body FROM messages
                 WHERE shard_key = $1 AND conversation = $2 AND seq = ANY($3) ORDER BY seq",
                &[&shard_key(conversation), &conversation.to_string(), &seqs],
            )
            .await
            .map_err(failed)?;
        Ok(rows.iter().map(StoredMessage::from_row).collect())
    }

    /// Up to `limit` messages before `before_seq` (the newest ones when it
    /// is 0), oldest first.
    pub async fn before(
        &self,
        conversation: &ConversationId,
        before_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredMessage>> {
        let before = if before_seq == 0 {
            u64::MAX >> 1
        } else {
            before_seq
        };
        let mut page = self.page(conversation, PAGE_BEFORE, before, limit).await?;
        page.reverse();
        Ok(page)
    }

    async fn page(
        &self,
        conversation: &ConversationId,
        sql: &str,
        seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredMessage>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(failed)?;
        let rows = client
            .query(
                &statement,
                &[
                    &shard_key(conversation),
                    &conversation.to_string(),
                    &(seq as i64),
                    &(limit as i64),
                ],
            )
            .await
            .map_err(failed)?;
        Ok(rows.iter().map(StoredMessage::from_row).collect())
    }

    /// Rewrites messages of a conversation in place, those after `after`
    /// up to `until` (or the end): `rewrite` sees each stored body and
    /// answers the new one, or `None` to leave it. A page at a time, each
    /// page one statement; how many were rewritten.
    pub async fn rewrite(
        &self,
        conversation: &ConversationId,
        mut after: u64,
        until: Option<u64>,
        rewrite: impl Fn(u64, &[u8]) -> StoreResult<Option<Vec<u8>>>,
    ) -> StoreResult<u64> {
        const REWRITE_PAGE: usize = 500;
        let (shard, conv) = (shard_key(conversation), conversation.to_string());
        let mut rewritten = 0;
        loop {
            let left = until.map_or(u64::MAX, |until| until.saturating_sub(after));
            let limit = REWRITE_PAGE.min(usize::try_from(left).unwrap_or(REWRITE_PAGE));
            if limit == 0 {
                return Ok(rewritten);
            }
            let page = self.page(conversation, PAGE_AFTER, after, limit).await?;
            let mut seqs = Vec::new();
            let mut bodies = Vec::new();
            let mut words = Vec::new();
            // Seqs may have holes (a removed conversation): past `until`
            // is not this call's.
            let page: Vec<_> = page
                .into_iter()
                .take_while(|m| until.is_none_or(|until| m.seq <= until))
                .collect();
            for message in &page {
                if let Some(body) = rewrite(message.seq, &message.body)? {
                    seqs.push(message.seq as i64);
                    words.push(ts_words(&body));
                    bodies.push(body);
                }
            }
            if !seqs.is_empty() {
                let client = self.client().await?;
                let changed = client
                    .execute(
                        "UPDATE messages m SET body = k.body, words = k.words::tsvector
                         FROM UNNEST($3::bigint[], $4::bytea[], $5::text[]) AS k(seq, body, words)
                         WHERE m.shard_key = $1 AND m.conversation = $2 AND m.seq = k.seq",
                        &[&shard, &conv, &seqs, &bodies, &words],
                    )
                    .await
                    .map_err(failed)?;
                rewritten += changed;
            }
            match page.last() {
                Some(last) if page.len() == limit => after = last.seq,
                _ => return Ok(rewritten),
            }
        }
    }

    /// Messages of `scopes` (each a conversation and the seqs of it to
    /// look at) with every one of `words` as a word's start, newest first
    /// ([`SearchPosition`] order), after `after`; at most `limit`.
    ///
    /// Each conversation answers its newest `limit` matches, and those are
    /// merged. Small conversations go together, up to 64 a statement (more
    /// are split over statements run at once), through the words index (`messages_words`: its postings of the conversation
    /// and of each word intersected, then the matches sorted). In a large
    /// one a common word can match tens of thousands of messages, all of
    /// which that way would be read to sort them, so each large one is
    /// asked alone, planned for its own words: the planner then walks its
    /// newest messages (`messages_recent`) until it has enough for a
    /// common word, and takes the words index for a rare one.
    pub async fn search(
        &self,
        scopes: &[SearchScope],
        words: &[String],
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> StoreResult<Vec<(ConversationId, StoredMessage)>> {
        let convs: Vec<ConversationId> = scopes.iter().map(|s| s.conversation.clone()).collect();
        let heads = self.heads(&convs).await?;
        let (large, small): (Vec<_>, Vec<_>) = scopes
            .iter()
            .zip(heads)
            .filter(|(_, head)| *head > 0)
            .partition(|(_, head)| *head > LARGE_CONVERSATION);
        let query = words
            .iter()
            .map(|w| format!("{}:*", ts_lexeme(w)))
            .collect::<Vec<_>>()
            .join(" & ");
        let small: Vec<&SearchScope> = small.into_iter().map(|(s, _)| s).collect();
        // Many small conversations are split over several connections, so
        // their index lookups (~0.2 ms each) run side by side, not in a
        // row; a search holds at most SEARCH_CONNECTIONS of the pool.
        let mut work: Vec<futures::future::BoxFuture<'_, StoreResult<Vec<_>>>> = small
            .chunks(SMALL_PER_STATEMENT)
            .map(|chunk| Box::pin(self.search_small(chunk, &query, after, limit)) as _)
            .collect();
        work.extend(
            large
                .iter()
                .map(|(scope, _)| Box::pin(self.search_large(scope, &query, after, limit)) as _),
        );
        let parts: Vec<Vec<_>> = futures::stream::iter(work)
            .buffer_unordered(SEARCH_CONNECTIONS)
            .try_collect()
            .await?;
        let mut found: Vec<_> = parts.into_iter().flatten().collect();
        let position = |(conv, m): &(ConversationId, StoredMessage)| SearchPosition {
            sent_at_ms: m.sent_at_ms,
            conversation: conv.to_string(),
            seq: m.seq,
        };
        found.sort_by_cached_key(|hit| std::cmp::Reverse(position(hit)));
        found.truncate(limit);
        Ok(found)
    }

    async fn search_small(
        &self,
        scopes: &[&SearchScope],
        query: &str,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> StoreResult<Vec<(ConversationId, StoredMessage)>> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let shards: Vec<String> = scopes.iter().map(|s| shard_key(&s.conversation)).collect();
        let convs: Vec<String> = scopes.iter().map(|s| s.conversation.to_string()).collect();
        let (from, to) = seq_ranges(scopes);
        let (below_sent, below_seq): (Vec<i64>, Vec<i64>) =
            convs.iter().map(|conv| search_bound(after, conv)).unzip();
        let client = self.client().await?;
        let statement = client.prepare_cached(SEARCH_SMALL).await.map_err(failed)?;
        let rows = client
            .query(
                &statement,
                &[
                    &shards,
                    &convs,
                    &from,
                    &to,
                    &below_sent,
                    &below_seq,
                    &query,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                let conversation = ConversationId::parse(row.get::<_, &str>(3))
                    .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                Ok((conversation, StoredMessage::from_row(row)))
            })
            .collect()
    }

    async fn search_large(
        &self,
        scope: &SearchScope,
        query: &str,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> StoreResult<Vec<(ConversationId, StoredMessage)>> {
        let conv = scope.conversation.to_string();
        let (below_sent, below_seq) = search_bound(after, &conv);
        let (from, to) = seq_ranges(&[scope]);
        let mut client = self.client().await?;
        // Planned with its values (the session plans generically), so the
        // planner sees how common the words are and how large this
        // conversation is.
        let tx = client.transaction().await.map_err(failed)?;
        tx.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")
            .await
            .map_err(failed)?;
        let rows = tx
            .query(
                SEARCH_LARGE,
                &[
                    &shard_key(&scope.conversation),
                    &conv,
                    &from[0],
                    &to[0],
                    &below_sent,
                    &below_seq,
                    &query,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(rows
            .iter()
            .map(|row| (scope.conversation.clone(), StoredMessage::from_row(row)))
            .collect())
    }

    /// Removes every message of a conversation; its head stays, so seqs are
    /// never given out twice. How many were removed.
    pub async fn remove_all(&self, conversation: &ConversationId) -> StoreResult<u64> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM messages WHERE shard_key = $1 AND conversation = $2",
                &[&shard_key(conversation), &conversation.to_string()],
            )
            .await
            .map_err(failed)
    }

    /// Adds (`on`) or takes back a reaction; adding is refused when `user`
    /// has `max` different ones on the message already.
    #[allow(clippy::too_many_arguments)]
    pub async fn react(
        &self,
        conversation: &ConversationId,
        seq: u64,
        user: &UserId,
        emoji: &str,
        on: bool,
        at_ms: i64,
        max: usize,
    ) -> StoreResult<Reacted> {
        let (shard, conv) = (shard_key(conversation), conversation.to_string());
        let (seq, user) = (seq as i64, user.as_str());
        let client = self.client().await?;
        if !on {
            let removed = client
                .execute(
                    "DELETE FROM reactions WHERE shard_key = $1 AND conversation = $2
                       AND seq = $3 AND user_id = $4 AND emoji = $5",
                    &[&shard, &conv, &seq, &user, &emoji],
                )
                .await
                .map_err(failed)?;
            return Ok(if removed > 0 {
                Reacted::Changed
            } else {
                Reacted::Unchanged
            });
        }
        // Two adds of one person at once may pass the count together and
        // end one over `max`: a bound on abuse, not an exact quota.
        let added = client
            .execute(
                "INSERT INTO reactions (shard_key, conversation, seq, user_id, emoji, at)
                 SELECT $1, $2, $3, $4, $5, $6
                 WHERE (SELECT count(*) FROM reactions WHERE shard_key = $1
                          AND conversation = $2 AND seq = $3 AND user_id = $4) < $7
                 ON CONFLICT DO NOTHING",
                &[&shard, &conv, &seq, &user, &emoji, &at_ms, &(max as i64)],
            )
            .await
            .map_err(failed)?;
        if added > 0 {
            return Ok(Reacted::Changed);
        }
        let there = client
            .query_opt(
                "SELECT 1 FROM reactions WHERE shard_key = $1 AND conversation = $2
                   AND seq = $3 AND user_id = $4 AND emoji = $5",
                &[&shard, &conv, &seq, &user, &emoji],
            )
            .await
            .map_err(failed)?;
        Ok(if there.is_some() {
            Reacted::Unchanged
        } else {
            Reacted::TooMany
        })
    }

    /// The reactions to messages `seqs`, by seq, then oldest first.
    pub async fn reactions(
        &self,
        conversation: &ConversationId,
        seqs: &[u64],
    ) -> StoreResult<Vec<StoredReaction>> {
        let seqs: Vec<i64> = seqs.iter().map(|s| *s as i64).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, user_id, emoji, at FROM reactions
                 WHERE shard_key = $1 AND conversation = $2 AND seq = ANY($3)
                 ORDER BY seq, at, user_id, emoji",
                &[&shard_key(conversation), &conversation.to_string(), &seqs],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                Ok(StoredReaction {
                    seq: row.get::<_, i64>(0) as u64,
                    user: UserId::parse(row.get::<_, &str>(1))
                        .map_err(|e| StoreError::Corrupt(e.0))?,
                    emoji: row.get(2),
                    at_ms: row.get(3),
                })
            })
            .collect()
    }

    /// Drops the reactions to message `seq`, or (`None`) to every message
    /// of the conversation.
    pub async fn drop_reactions(
        &self,
        conversation: &ConversationId,
        seq: Option<u64>,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        let (shard, conv) = (shard_key(conversation), conversation.to_string());
        match seq {
            Some(seq) => {
                client
                    .execute(
                        "DELETE FROM reactions
                         WHERE shard_key = $1 AND conversation = $2 AND seq = $3",
                        &[&shard, &conv, &(seq as i64)],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "DELETE FROM reactions WHERE shard_key = $1 AND conversation = $2",
                        &[&shard, &conv],
                    )
                    .await
            }
        }
        .map_err(failed)?;
        Ok(())
    }

    /// Each conversation's last seq (0 for one with no messages).
    pub async fn heads(&self, conversations: &[ConversationId]) -> StoreResult<Vec<u64>> {
        self.per_conversation("head", conversations).await
    }

    /// One column of `conversations` (`head` or `fence`) per conversation,
    /// 0 where there is no row.
    async fn per_conversation(
        &self,
        column: &'static str,
        conversations: &[ConversationId],
    ) -> StoreResult<Vec<u64>> {
        let shards: Vec<String> = conversations.iter().map(shard_key).collect();
        let convs: Vec<String> = conversations.iter().map(ToString::to_string).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT c.conversation, c.{column} FROM conversations c
                     JOIN UNNEST($1::text[], $2::text[]) AS k(shard_key, conversation)
                       ON c.shard_key = k.shard_key AND c.conversation = k.conversation"
                ),
                &[&shards, &convs],
            )
            .await
            .map_err(failed)?;
        let heads: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(convs
            .iter()
            .map(|c| heads.get(c).copied().unwrap_or(0) as u64)
            .collect())
    }
}

/// Appends from many concurrent callers, grouped into shared transactions
/// (group commit): each of a few lanes takes everything queued when it is
/// free, up to a batch size, and writes it in one transaction. Under light
/// load a message is written alone and at once (no timer: nothing waits for
/// company, and an idle writer does not wake); under load transactions grow,
/// and with them what one commit and one WAL flush pay for.
///
/// One caller's items stay in one transaction (a topic broadcast is stored
/// whole or not at all); a transaction that fails fails every caller in it.
/// Clones share the lanes, which stop when the last clone is dropped.
#[derive(Clone)]
pub struct HistoryWriter {
    queue: mpsc::Sender<Pending>,
    transactions: Arc<AtomicU64>,
}

struct Pending {
    items: Vec<HistoryAppend>,
    answer: oneshot::Sender<StoreResult<Vec<HistoryAppended>>>,
}

impl HistoryWriter {
    /// `lanes` transactions may be in flight at once, each of up to
    /// `max_batch` messages (a caller's items are never split, so one
    /// larger caller makes a larger transaction). With a `gather` window, a
    /// lane that has a message waits up to that long for company before it
    /// writes: at ordinary rates fewer, larger transactions (fewer wake-ups
    /// and commits per message) for at most that much added latency. Zero
    /// writes at once and sets no timer.
    pub fn start(
        history: Arc<PgHistory>,
        lanes: usize,
        max_batch: usize,
        gather: Duration,
    ) -> Self {
        let (queue, waiting) = mpsc::channel(WRITER_QUEUE);
        let waiting = Arc::new(tokio::sync::Mutex::new(waiting));
        let transactions = Arc::new(AtomicU64::new(0));
        for _ in 0..lanes.max(1) {
            tokio::spawn(lane(
                history.clone(),
                waiting.clone(),
                max_batch.max(1),
                gather,
                transactions.clone(),
            ));
        }
        Self {
            queue,
            transactions,
        }
    }

    /// Stores the items in one transaction (shared with other callers') and
    /// answers each, in order.
    pub async fn append(&self, items: Vec<HistoryAppend>) -> StoreResult<Vec<HistoryAppended>> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the history writer has stopped".into());
        self.queue
            .send(Pending { items, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Transactions written so far (messages / transactions = the grouping).
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }
}

/// How many callers may wait for a lane before `append` waits to queue.
const WRITER_QUEUE: usize = 4096;

async fn lane(
    history: Arc<PgHistory>,
    waiting: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    max_batch: usize,
    gather: Duration,
    transactions: Arc<AtomicU64>,
) {
    loop {
        let mut taken = Vec::new();
        {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut count = first.items.len();
            taken.push(first);
            let deadline = tokio::time::Instant::now() + gather;
            while count < max_batch {
                let next = match waiting.try_recv() {
                    Ok(next) => next,
                    Err(mpsc::error::TryRecvError::Empty) if !gather.is_zero() => {
                        match tokio::time::timeout_at(deadline, waiting.recv()).await {
                            Ok(Some(next)) => next,
                            Ok(None) | Err(_) => break,
                        }
                    }
                    Err(_) => break,
                };
                count += next.items.len();
                taken.push(next);
            }
        }
        let batch: Vec<HistoryAppend> = taken.iter().flat_map(|p| p.items.clone()).collect();
        let outcome = history.append(&batch).await;
        transactions.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(answers) => {
                let mut answers = answers.into_iter();
                for pending in taken {
                    let mine = answers.by_ref().take(pending.items.len()).collect();
                    let _ = pending.answer.send(Ok(mine));
                }
            }
            Err(err) => {
                for pending in taken {
                    let _ = pending.answer.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Appends a batch in one statement (its own transaction): items whose
/// retry key is stored already answer its seq; the others, unless fenced,
/// move their conversation's head by their count (rows locked in key order,
/// so two batches cannot deadlock on them) and take the seqs below the new
/// head, in batch order. Answers `(ord, seq, repeated, sent_at)` per item
/// (a repeated item's first `sent_at`); an item not answered was fenced.
///
/// The fence and the head are read by `SELECT … FOR UPDATE`, which waits
/// for a change holding the row and then sees the row as that change left
/// it, not as this statement's snapshot saw it: a send that started before
/// a change committed is still judged by it, and numbered after it. Each
/// item is judged by its own fence; items without one are not checked.
/// (Were either read stale, the seqs it gives would already be taken: the
/// insert fails and the batch runs again.)
const APPEND: &str = "
WITH batch AS (
  SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::bigint[],
                       $7::text[])
    WITH ORDINALITY AS b(shard_key, conversation, sent_at, retry_key, body, fence, words, ord)
), known AS (
  -- A lookup per item (a subquery, never a join that reads the table).
  -- (LATERAL: an index lookup per item, in the order of the batch.)
  SELECT b.ord, first.seq, first.sent_at FROM batch b
  CROSS JOIN LATERAL (
    SELECT m.seq, m.sent_at FROM messages m
    WHERE m.shard_key = b.shard_key AND m.conversation = b.conversation
      AND m.retry_key = b.retry_key AND m.retry_key IS NOT NULL
  ) first
  WHERE b.retry_key IS NOT NULL
), fresh AS (
  SELECT b.* FROM batch b WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.ord = b.ord)
), looked AS (
  -- Each item's conversation as it is once locked: `FOR UPDATE` waits for a
  -- change holding the row and then reads the row that change left. Items
  -- are taken in key order, so two batches lock rows in the same order.
  -- Per item and by index, never a join of two CTEs: the plan is made once
  -- for small batches, and would join CTEs by nested loop (a 200-copy
  -- broadcast then cost 11-25 ms).
  SELECT f.*, c.head AS old_head, c.fence AS current_fence
  FROM (SELECT * FROM fresh ORDER BY shard_key, conversation, ord) f
  LEFT JOIN LATERAL (
    SELECT head, fence FROM conversations c
    WHERE c.shard_key = f.shard_key AND c.conversation = f.conversation FOR UPDATE
  ) c ON true
), judged AS (
  SELECT l.*, (l.fence IS NULL OR coalesce(l.current_fence, 0) <= l.fence) AS admitted
  FROM looked l
), ranked AS (
  -- An admitted item's place among its conversation's admitted items.
  SELECT j.*, count(*) FILTER (WHERE admitted)
                OVER (PARTITION BY shard_key, conversation ORDER BY ord) AS rank
  FROM judged j
), wanted AS (
  SELECT shard_key, conversation, count(*) AS n FROM ranked WHERE admitted
  GROUP BY shard_key, conversation ORDER BY shard_key, conversation
), heads AS (
  INSERT INTO conversations AS c (shard_key, conversation, head)
    SELECT shard_key, conversation, n FROM wanted
  ON CONFLICT (shard_key, conversation) DO UPDATE SET head = c.head + EXCLUDED.head
), placed AS (
  -- The head read under the lock is the head this statement moves: the
  -- seqs follow it. (Two batches creating one conversation at once both
  -- read none; the second then fails on a taken seq and runs again.)
  SELECT r.*, coalesce(r.old_head, 0) + r.rank AS seq FROM ranked r WHERE admitted
), stored AS (
  INSERT INTO messages (shard_key, conversation, seq, sent_at, retry_key, body, words)
  SELECT shard_key, conversation, seq, sent_at, retry_key, body, words::tsvector FROM placed
)
SELECT ord, seq, false, sent_at FROM placed
UNION ALL
SELECT ord, seq, true, sent_at FROM known";

/// Above this many messages a conversation is searched on its own
/// ([`PgHistory::search`]).
const LARGE_CONVERSATION: u64 = 2_000;

/// Small conversations searched by one statement: a reader of more has
/// them split over several statements, run at once on as many connections.
const SMALL_PER_STATEMENT: usize = 64;
/// Connections one search uses at once, at most (of the pool, 8 by
/// default): the rest stay free for the writes.
const SEARCH_CONNECTIONS: usize = 3;

/// For each scope, its newest matches below its bound, by the words index
/// (`messages_words`); then the newest of all of them, conversations in
/// byte order as the router orders them.
const SEARCH_SMALL: &str = "
SELECT m.seq, m.sent_at, m.body, s.conversation
FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
  AS s(shard_key, conversation, lo, hi, below_sent, below_seq)
CROSS JOIN LATERAL (
  SELECT seq, sent_at, body FROM messages
  WHERE shard_key = s.shard_key AND conversation = s.conversation
    AND words IS NOT NULL AND words @@ $7::text::tsquery
    AND seq BETWEEN s.lo AND s.hi
    AND (sent_at, seq) < (s.below_sent, s.below_seq)
  ORDER BY sent_at DESC, seq DESC LIMIT $8
) m
ORDER BY m.sent_at DESC, s.conversation COLLATE \"C\" DESC, m.seq DESC LIMIT $8";

/// One conversation's newest matches below the bound: by `messages_recent`
/// walking back with the words as a filter, or by the words index, as the
/// planner judges.
const SEARCH_LARGE: &str = "
SELECT seq, sent_at, body FROM messages
WHERE shard_key = $1 AND conversation = $2
  AND words IS NOT NULL AND words @@ $7::text::tsquery
  AND seq BETWEEN $3 AND $4
  AND (sent_at, seq) < ($5, $6)
ORDER BY sent_at DESC, seq DESC LIMIT $8";

/// The scopes' seq ranges as columns (`i64::MAX`: up to the head).
fn seq_ranges(scopes: &[&SearchScope]) -> (Vec<i64>, Vec<i64>) {
    scopes
        .iter()
        .map(|s| (s.from as i64, s.to.map_or(i64::MAX, |to| to as i64)))
        .unzip()
}

const PAGE_AFTER: &str = "SELECT seq, sent_at, body FROM messages
  WHERE shard_key = $1 AND conversation = $2 AND seq > $3 ORDER BY seq LIMIT $4";

const PAGE_BEFORE: &str = "SELECT seq, sent_at, body FROM messages
  WHERE shard_key = $1 AND conversation = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4";

/// Why one attempt at a batch failed: a conflict runs it again.
enum Attempt {
    Conflict(StoreError),
    Failed(StoreError),
}

fn attempt_error(err: tokio_postgres::Error) -> Attempt {
    let conflict = matches!(
        err.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
    );
    if conflict {
        Attempt::Conflict(failed(err))
    } else {
        Attempt::Failed(failed(err))
    }
}

/// A statement that failed: the server could not be reached or is not
/// serving (connection, resources, shutdown: try again later), or it
/// refused the statement (a defect here).
fn failed(err: tokio_postgres::Error) -> StoreError {
    let transient = match err.code() {
        None => true,
        Some(code) => ["08", "40", "53", "57"]
            .iter()
            .any(|class| code.code().starts_with(class)),
    };
    let described = match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => chain(&err),
    };
    if transient {
        StoreError::Unavailable(format!("history store: {described}"))
    } else {
        StoreError::Corrupt(format!("history store refused a statement: {described}"))
    }
}

/// An error with its causes ("db error" alone says nothing).
/// A stored body's words as a `tsvector` literal, or `None` for a message
/// found by none.
fn ts_words(body: &[u8]) -> Option<String> {
    let words = indexed_words_of_body(body);
    (!words.is_empty()).then(|| {
        words
            .iter()
            .map(|w| ts_lexeme(w))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// One lexeme, quoted for a `tsvector` or `tsquery` literal: taken as it
/// is, never normalised by a text search configuration.
fn ts_lexeme(word: &str) -> String {
    format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"))
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut described = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        described.push_str(": ");
        described.push_str(&inner.to_string());
        cause = inner.source();
    }
    described
}
