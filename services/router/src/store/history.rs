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
//! Not yet on the message path: the router still appends to
//! [`super::Store`]. This is the first step of issue 12.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{
    Config, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts,
};
use switchboard_shared::ids::ConversationId;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{StoreError, StoreResult};

/// The schema this code reads and writes; a database with another refuses
/// to be used.
pub const SCHEMA_VERSION: i32 = 1;
const SCHEMA: &str = include_str!("sql/history.sql");

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
}

/// What an append answered for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryAppended {
    pub seq: u64,
    /// The retry key was already stored: nothing was written, and `seq` is
    /// the first append's.
    pub repeated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: u64,
    pub sent_at_ms: i64,
    pub body: Bytes,
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
}

impl PgHistory {
    /// Connects, creates the schema in an empty database, and refuses a
    /// database whose schema version this code does not know.
    pub async fn connect(url: &str, max_connections: usize) -> StoreResult<Self> {
        let mut config = Config::new();
        config.url = Some(url.to_owned());
        config.manager = Some(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        config.pool = Some(PoolConfig {
            max_size: max_connections.max(1),
            timeouts: Timeouts {
                wait: Some(Duration::from_secs(2)),
                create: Some(Duration::from_secs(1)),
                recycle: Some(Duration::from_secs(1)),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|err| StoreError::Unavailable(format!("history store: {err}")))?;
        let history = Self { pool };
        history.prepare_schema().await?;
        Ok(history)
    }

    async fn prepare_schema(&self) -> StoreResult<()> {
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
        if exists {
            let found: Option<i32> = tx
                .query_opt("SELECT version FROM switchboard_schema", &[])
                .await
                .map_err(failed)?
                .map(|row| row.get(0));
            if found != Some(SCHEMA_VERSION) {
                return Err(StoreError::UnknownSchema(format!(
                    "the history database has schema version {}; this build knows only {SCHEMA_VERSION}",
                    found.map_or_else(|| "none".to_owned(), |v| v.to_string())
                )));
            }
        } else {
            tx.batch_execute(SCHEMA).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO switchboard_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
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
        let shard_keys: Vec<String> = batch.iter().map(|m| shard_key(&m.conversation)).collect();
        let conversations: Vec<String> = batch.iter().map(|m| m.conversation.to_string()).collect();
        let mut client = self.client().await.map_err(Attempt::Failed)?;
        let tx = client.transaction().await.map_err(attempt_error)?;

        // Items whose retry key is stored already, or repeats one earlier in
        // this batch, answer instead of being stored.
        let mut answers: Vec<Option<HistoryAppended>> = vec![None; batch.len()];
        let keyed: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].retry_key.is_some())
            .collect();
        let mut first_in_batch: HashMap<(&str, &str), usize> = HashMap::new();
        let mut repeats_in_batch = Vec::new();
        if !keyed.is_empty() {
            let (mut shards, mut convs, mut keys) = (Vec::new(), Vec::new(), Vec::new());
            for &i in &keyed {
                shards.push(shard_keys[i].as_str());
                convs.push(conversations[i].as_str());
                keys.push(batch[i].retry_key.as_deref().unwrap_or_default());
            }
            let stored = tx
                .query(
                    "SELECT m.conversation, m.retry_key, m.seq FROM messages m
                     JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(shard_key, conversation, retry_key)
                       ON m.shard_key = k.shard_key AND m.conversation = k.conversation
                      AND m.retry_key = k.retry_key",
                    &[&shards, &convs, &keys],
                )
                .await
                .map_err(attempt_error)?;
            let stored: HashMap<(String, String), i64> = stored
                .iter()
                .map(|row| ((row.get(0), row.get(1)), row.get(2)))
                .collect();
            for &i in &keyed {
                let key = batch[i].retry_key.as_deref().unwrap_or_default();
                if let Some(&seq) = stored.get(&(conversations[i].clone(), key.to_owned())) {
                    answers[i] = Some(HistoryAppended {
                        seq: seq as u64,
                        repeated: true,
                    });
                } else if let Some(&first) = first_in_batch.get(&(conversations[i].as_str(), key)) {
                    repeats_in_batch.push((i, first));
                } else {
                    first_in_batch.insert((conversations[i].as_str(), key), i);
                }
            }
        }
        let repeated: Vec<usize> = repeats_in_batch.iter().map(|&(i, _)| i).collect();
        let fresh: Vec<usize> = (0..batch.len())
            .filter(|&i| answers[i].is_none() && !repeated.contains(&i))
            .collect();

        if !fresh.is_empty() {
            let shards: Vec<&str> = fresh.iter().map(|&i| shard_keys[i].as_str()).collect();
            let convs: Vec<&str> = fresh.iter().map(|&i| conversations[i].as_str()).collect();
            let sent: Vec<i64> = fresh.iter().map(|&i| batch[i].sent_at_ms).collect();
            let keys: Vec<Option<&str>> = fresh
                .iter()
                .map(|&i| batch[i].retry_key.as_deref())
                .collect();
            let bodies: Vec<&[u8]> = fresh.iter().map(|&i| batch[i].body.as_ref()).collect();
            let statement = tx.prepare_cached(APPEND).await.map_err(attempt_error)?;
            let heads = tx
                .query(&statement, &[&shards, &convs, &sent, &keys, &bodies])
                .await
                .map_err(attempt_error)?;
            // Each conversation's items took the seqs (head - n, head], in
            // batch order.
            let mut next: HashMap<String, u64> = heads
                .iter()
                .map(|row| {
                    let head: i64 = row.get(1);
                    let n: i64 = row.get(2);
                    (row.get::<_, String>(0), (head - n + 1) as u64)
                })
                .collect();
            for &i in &fresh {
                let seq = next.get_mut(&conversations[i]).ok_or_else(|| {
                    Attempt::Failed(StoreError::Corrupt(format!(
                        "no head came back for {}",
                        conversations[i]
                    )))
                })?;
                answers[i] = Some(HistoryAppended {
                    seq: *seq,
                    repeated: false,
                });
                *seq += 1;
            }
        }
        for (i, first) in repeats_in_batch {
            answers[i] = answers[first].map(|a| HistoryAppended {
                seq: a.seq,
                repeated: true,
            });
        }
        tx.commit().await.map_err(attempt_error)?;
        answers
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| Attempt::Failed(StoreError::Corrupt("unanswered item".into())))
            })
            .collect()
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
        Ok(rows
            .iter()
            .map(|row| StoredMessage {
                seq: row.get::<_, i64>(0) as u64,
                sent_at_ms: row.get(1),
                body: Bytes::from(row.get::<_, Vec<u8>>(2)),
            })
            .collect())
    }

    /// Each conversation's last seq (0 for one with no messages).
    pub async fn heads(&self, conversations: &[ConversationId]) -> StoreResult<Vec<u64>> {
        let shards: Vec<String> = conversations.iter().map(shard_key).collect();
        let convs: Vec<String> = conversations.iter().map(ToString::to_string).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.conversation, c.head FROM conversations c
                 JOIN UNNEST($1::text[], $2::text[]) AS k(shard_key, conversation)
                   ON c.shard_key = k.shard_key AND c.conversation = k.conversation",
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

/// Appends the fresh items of a batch: each conversation's head moves by its
/// count (rows locked in key order, so two batches cannot deadlock on them),
/// the messages go in with the seqs below the new head, and the heads come
/// back with the counts.
const APPEND: &str = "
WITH batch AS (
  SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[])
    WITH ORDINALITY AS b(shard_key, conversation, sent_at, retry_key, body, ord)
), wanted AS (
  SELECT shard_key, conversation, count(*) AS n FROM batch
  GROUP BY shard_key, conversation ORDER BY shard_key, conversation
), heads AS (
  INSERT INTO conversations AS c (shard_key, conversation, head)
    SELECT shard_key, conversation, n FROM wanted
  ON CONFLICT (shard_key, conversation) DO UPDATE SET head = c.head + EXCLUDED.head
  RETURNING shard_key, conversation, head
), numbered AS (
  SELECT b.*, row_number() OVER (PARTITION BY b.shard_key, b.conversation ORDER BY b.ord) AS k
  FROM batch b
), stored AS (
  INSERT INTO messages (shard_key, conversation, seq, sent_at, retry_key, body)
  SELECT n.shard_key, n.conversation, h.head - w.n + n.k, n.sent_at, n.retry_key, n.body
  FROM numbered n JOIN heads h USING (shard_key, conversation) JOIN wanted w USING (shard_key, conversation)
)
SELECT h.conversation, h.head, w.n FROM heads h JOIN wanted w USING (shard_key, conversation)";

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
