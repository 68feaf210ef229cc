//! Prototypes of the two message-history store candidates, measured the same
//! way for docs/STORAGE.md (bench/storage.py starts the servers, runs these,
//! and adds CPU and bytes on disk):
//!
//! - **append**: `--messages` messages of `--size` bytes over
//!   `--conversations` conversations, `--in-flight` at once, each counted
//!   only once acknowledged durable (PostgreSQL: committed, with whatever
//!   `synchronous_commit` the server has; JetStream: the publish ack, with
//!   whatever sync policy the server has). Reports messages/s and the ack
//!   latency. PostgreSQL can take `--batch` messages per transaction (how a
//!   router would group concurrent sends) and assign each conversation's seq
//!   itself (`--seq store`) or take it from the caller (`--seq given`).
//! - **page**: one conversation of `--depth` messages (filled first, not
//!   measured), then `--pages` pages of 50 ending at random positions;
//!   reports the page latency.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use futures::{StreamExt as _, TryStreamExt as _};
use hdrhistogram::Histogram;
use rand::Rng as _;
use serde_json::json;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Seq {
    /// The store assigns each conversation's next seq (PostgreSQL: a row per
    /// conversation, updated in the same transaction).
    Store,
    /// The caller assigns seqs (as from a Redis counter).
    Given,
}

#[derive(Subcommand)]
enum Command {
    PgAppend {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000)]
        conversations: u64,
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// Messages per transaction (each worker groups what it has).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, value_enum, default_value_t = Seq::Given)]
        seq: Seq,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    PgPage {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        depth: u64,
        #[arg(long, default_value_t = 2_000)]
        pages: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    JsAppend {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000)]
        conversations: u64,
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    /// The router's own history writer (`HistoryWriter`: group commit over
    /// `--lanes` connections). With `--rate`, messages arrive at that rate
    /// from independent senders (ordinary load: the cost per message where
    /// most deployments run); without, `--senders` each send as fast as they
    /// are answered (the ceiling).
    PgWriter {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000)]
        conversations: u64,
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
        #[arg(long, default_value_t = 256)]
        senders: usize,
        /// Messages per second, spread evenly (0 = as fast as answered).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 4)]
        lanes: usize,
        #[arg(long, default_value_t = 64)]
        max_batch: usize,
        /// The writer's gathering window, in microseconds (0 = none).
        #[arg(long, default_value_t = 0)]
        gather_us: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    /// The router's search (`PgHistory::search`, with its schema and words
    /// index) over `--messages` messages spread over `--conversations`
    /// conversations, written by `PgHistory::append` as the router writes
    /// them. Each search looks in `--scope` random conversations (one
    /// reader's) for one or two words drawn as people write them (Zipf over
    /// a `--vocabulary` of made-up words; three in ten cut to a prefix).
    /// One more conversation holds `--deep` of the messages (a busy group)
    /// and is searched alone too. Measured once right after the writes (the
    /// index's pending list as writes leave it) and once after `VACUUM`.
    PgSearch {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 10_000)]
        conversations: u64,
        /// Conversations per reader, comma-separated for several runs.
        #[arg(long, default_value = "20,200")]
        scope: String,
        #[arg(long, default_value_t = 2_000)]
        searches: u64,
        #[arg(long, default_value_t = 20_000)]
        vocabulary: usize,
        #[arg(long, default_value_t = 100_000)]
        deep: u64,
    },
    /// Messages stored (after a kill and a restart).
    PgCount {
        #[arg(long)]
        url: String,
    },
    JsCount {
        #[arg(long)]
        url: String,
    },
    JsPage {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        depth: u64,
        #[arg(long, default_value_t = 2_000)]
        pages: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn body(size: usize) -> Vec<u8> {
    let mut rng = rand::rng();
    (0..size).map(|_| rng.random_range(b'a'..=b'z')).collect()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
  conversation text PRIMARY KEY,
  head bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  conversation text NOT NULL,
  seq bigint NOT NULL,
  body bytea NOT NULL,
  PRIMARY KEY (conversation, seq)
);";

/// The messages table with its indexes (not the WAL), per stored message.
async fn pg_table_bytes(url: &str) -> anyhow::Result<f64> {
    let row = pg(url)
        .await?
        .query_one(
            "SELECT pg_total_relation_size('messages')::float8 / greatest(count(*), 1) FROM messages",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn table_bytes_per_message(url: &str) -> anyhow::Result<f64> {
    pg_table_bytes(url).await.map(|b| (b * 10.0).round() / 10.0)
}

async fn pg(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Appends with given seqs: one multi-row INSERT per batch.
const INSERT_GIVEN: &str = "INSERT INTO messages (conversation, seq, body)
  SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bytea[])";
/// Appends with the store's seqs: the conversation's row is bumped by the
/// batch's count for it and the messages take the seqs below the new head.
const INSERT_STORE: &str = "WITH wanted AS (
    SELECT conversation, count(*) AS n FROM UNNEST($1::text[]) AS conversation GROUP BY conversation
  ), heads AS (
    INSERT INTO conversations AS c (conversation, head)
      SELECT conversation, n FROM wanted
    ON CONFLICT (conversation) DO UPDATE SET head = c.head + EXCLUDED.head
    RETURNING conversation, head
  ), numbered AS (
    SELECT m.conversation, m.body,
           row_number() OVER (PARTITION BY m.conversation ORDER BY m.ord) AS k
    FROM UNNEST($1::text[], $2::bytea[]) WITH ORDINALITY AS m(conversation, body, ord)
  )
  INSERT INTO messages (conversation, seq, body)
  SELECT n.conversation, h.head - w.n + n.k, n.body
  FROM numbered n JOIN heads h USING (conversation) JOIN wanted w USING (conversation)";

#[allow(clippy::too_many_arguments)]
async fn pg_append(
    url: &str,
    conversations: u64,
    messages: u64,
    in_flight: usize,
    batch: usize,
    seq: Seq,
    size: usize,
) -> anyhow::Result<serde_json::Value> {
    // Each run starts empty (earlier runs used the same conversation names).
    pg(url)
        .await?
        .batch_execute(&format!("{SCHEMA} TRUNCATE messages, conversations;"))
        .await?;
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let heads: Arc<Vec<AtomicU64>> =
        Arc::new((0..conversations).map(|_| AtomicU64::new(0)).collect());
    let payload = Arc::new(body(size));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight {
        let client = pg(url).await?;
        let (next, heads, payload, acked) =
            (next.clone(), heads.clone(), payload.clone(), acked.clone());
        workers.push(tokio::spawn(async move {
            let statement = client
                .prepare(if seq == Seq::Given {
                    INSERT_GIVEN
                } else {
                    INSERT_STORE
                })
                .await?;
            let mut latency = histogram();
            loop {
                let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                if first >= messages {
                    return anyhow::Ok(latency);
                }
                let count = (messages - first).min(batch as u64);
                let mut convs = Vec::with_capacity(count as usize);
                let mut seqs = Vec::with_capacity(count as usize);
                let mut bodies = Vec::with_capacity(count as usize);
                for i in first..first + count {
                    let c = i % conversations;
                    convs.push(format!("dm:user{c}:peer{c}"));
                    seqs.push(heads[c as usize].fetch_add(1, Ordering::Relaxed) as i64 + 1);
                    bodies.push(payload.as_slice());
                }
                let at = Instant::now();
                match seq {
                    Seq::Given => {
                        client
                            .execute(&statement, &[&convs, &seqs, &bodies])
                            .await?
                    }
                    Seq::Store => client.execute(&statement, &[&convs, &bodies]).await?,
                };
                let took = at.elapsed().as_micros() as u64;
                acked.fetch_add(count, Ordering::Relaxed);
                for _ in 0..count {
                    latency.record(took.max(1))?;
                }
            }
        }));
    }
    let mut latency = histogram();
    for worker in workers {
        match worker.await? {
            Ok(worker) => latency.add(worker)?,
            // The store went away (a kill test): say how much was acknowledged.
            Err(err) => {
                return Ok(json!({"store": "postgresql", "test": "append",
                    "error": format!("{err:#}"), "acked": acked.load(Ordering::Relaxed)}));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let table_bytes = table_bytes_per_message(url).await?;
    Ok(json!({
        "store": "postgresql", "test": "append", "acked": acked.load(Ordering::Relaxed),
        "table_bytes_per_message": table_bytes, "messages": messages, "conversations": conversations,
        "in_flight": in_flight, "batch": batch, "seq": if seq == Seq::Given { "given" } else { "store" },
        "seconds": seconds, "messages_per_second": messages as f64 / seconds,
        "ack_ms": {"p50": ms(&latency, 0.5), "p99": ms(&latency, 0.99)},
    }))
}

async fn pg_page(
    url: &str,
    depth: u64,
    pages: u64,
    size: usize,
) -> anyhow::Result<serde_json::Value> {
    let client = pg(url).await?;
    client.batch_execute(SCHEMA).await?;
    client
        .batch_execute(
            "SET synchronous_commit = off; DELETE FROM messages WHERE conversation = 'deep';",
        )
        .await?;
    let payload = body(size);
    let insert = client.prepare(INSERT_GIVEN).await?;
    let filled = Instant::now();
    let mut seq = 1_u64;
    while seq <= depth {
        let count = (depth - seq + 1).min(10_000);
        let convs: Vec<&str> = (0..count).map(|_| "deep").collect();
        let seqs: Vec<i64> = (seq..seq + count).map(|s| s as i64).collect();
        let bodies: Vec<&[u8]> = (0..count).map(|_| payload.as_slice()).collect();
        client.execute(&insert, &[&convs, &seqs, &bodies]).await?;
        seq += count;
    }
    client.batch_execute("VACUUM ANALYZE messages").await?;
    let fill_seconds = filled.elapsed().as_secs_f64();
    let page = client
        .prepare(
            "SELECT seq, body FROM messages WHERE conversation = $1 AND seq < $2
             ORDER BY seq DESC LIMIT 50",
        )
        .await?;
    let mut latency = histogram();
    let mut rng = rand::rng();
    for _ in 0..pages {
        let before = rng.random_range(51..=depth) as i64;
        let at = Instant::now();
        let rows = client.query(&page, &[&"deep", &before]).await?;
        latency.record((at.elapsed().as_micros() as u64).max(1))?;
        anyhow::ensure!(rows.len() == 50, "a page of {} rows", rows.len());
    }
    Ok(json!({
        "store": "postgresql", "test": "page", "depth": depth, "pages": pages,
        "table_bytes_per_message": table_bytes_per_message(url).await?,
        "fill_seconds": fill_seconds,
        "page_ms": {"p50": ms(&latency, 0.5), "p99": ms(&latency, 0.99), "max": ms(&latency, 1.0)},
    }))
}

const STREAM: &str = "HIST";

async fn js(url: &str) -> anyhow::Result<async_nats::jetstream::Context> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec!["hist.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    })
    .await?;
    Ok(js)
}

async fn js_append(
    url: &str,
    conversations: u64,
    messages: u64,
    in_flight: usize,
    size: usize,
) -> anyhow::Result<serde_json::Value> {
    let js = js(url).await?;
    // Counted afterwards by `js-count`: only this run's messages.
    js.get_stream(STREAM).await?.purge().await?;
    let payload = Bytes::from(body(size));
    let started = Instant::now();
    let latency = Arc::new(shared_histogram::Lat::default());
    let acked = Arc::new(AtomicU64::new(0));
    let outcome = futures::stream::iter(0..messages)
        .map(|i| {
            let (js, payload, latency, acked) =
                (js.clone(), payload.clone(), latency.clone(), acked.clone());
            async move {
                let c = i % conversations;
                let at = Instant::now();
                let ack = js
                    .publish(format!("hist.dm.user{c}.peer{c}"), payload)
                    .await?;
                ack.await?;
                acked.fetch_add(1, Ordering::Relaxed);
                latency.record(at.elapsed());
                anyhow::Ok(())
            }
        })
        .buffer_unordered(in_flight)
        // Stops at the first failure (the killed server), not after the whole run.
        .try_collect::<()>()
        .await;
    if let Err(err) = outcome {
        return Ok(json!({"store": "jetstream", "test": "append",
            "error": format!("{err:#}"), "acked": acked.load(Ordering::Relaxed)}));
    }
    let seconds = started.elapsed().as_secs_f64();
    let latency = latency.take();
    Ok(json!({
        "store": "jetstream", "test": "append", "acked": acked.load(Ordering::Relaxed), "messages": messages, "conversations": conversations,
        "in_flight": in_flight, "seconds": seconds, "messages_per_second": messages as f64 / seconds,
        "ack_ms": {"p50": ms(&latency, 0.5), "p99": ms(&latency, 0.99)},
    }))
}

/// A page of 50 through JetStream's batched direct get: the messages of the
/// conversation's subject from a stream sequence on. Backwards paging by a
/// conversation's own seq needs that sequence: here the conversation has a
/// stream to itself, so they coincide (the best case; with many
/// conversations in one stream an index from seq to stream sequence is
/// needed, which JetStream does not keep).
async fn js_page(
    url: &str,
    depth: u64,
    pages: u64,
    size: usize,
) -> anyhow::Result<serde_json::Value> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client.clone());
    let _ = js.delete_stream("DEEP").await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "DEEP".into(),
        subjects: vec!["deep".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    })
    .await?;
    let payload = Bytes::from(body(size));
    let filled = Instant::now();
    futures::stream::iter(0..depth)
        .map(|_| {
            let (js, payload) = (js.clone(), payload.clone());
            async move { js.publish("deep", payload).await?.await.map(|_| ()) }
        })
        .buffer_unordered(1024)
        .try_collect::<()>()
        .await?;
    let fill_seconds = filled.elapsed().as_secs_f64();
    let mut latency = histogram();
    let mut rng = rand::rng();
    for _ in 0..pages {
        let first = rng.random_range(1..=depth - 50);
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await?;
        let request = json!({"seq": first, "batch": 50, "next_by_subj": "deep"}).to_string();
        let at = Instant::now();
        client
            .publish_with_reply("$JS.API.DIRECT.GET.DEEP", inbox, request.into())
            .await?;
        let mut got = 0;
        while let Some(message) = tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .context("no end of batch: batched direct get needs nats-server 2.11 or later")?
        {
            // The end of a batch is a message without a payload and a status.
            if message.payload.is_empty() {
                break;
            }
            got += 1;
        }
        latency.record((at.elapsed().as_micros() as u64).max(1))?;
        anyhow::ensure!(got == 50, "a page of {got} messages");
    }
    Ok(json!({
        "store": "jetstream", "test": "page", "depth": depth, "pages": pages,
        "fill_seconds": fill_seconds,
        "page_ms": {"p50": ms(&latency, 0.5), "p99": ms(&latency, 0.99), "max": ms(&latency, 1.0)},
    }))
}

/// This process's CPU time (user + system), seconds.
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

async fn pg_writer(
    url: &str,
    conversations: u64,
    messages: u64,
    senders: usize,
    rate: u64,
    (lanes, max_batch, gather): (usize, usize, Duration),
    size: usize,
) -> anyhow::Result<serde_json::Value> {
    use switchboard_router::store::history::{HistoryAppend, HistoryWriter, PgHistory};
    use switchboard_shared::ids::{ConversationId, UserId};

    // A database of its own: the router's schema, not the prototypes'.
    let admin = pg(url).await?;
    admin
        .batch_execute("DROP DATABASE IF EXISTS sb_writer")
        .await?;
    admin.batch_execute("CREATE DATABASE sb_writer").await?;
    let url = format!("{url} dbname=sb_writer");
    let history = Arc::new(
        PgHistory::connect(&url, lanes + 1)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let writer = Arc::new(HistoryWriter::start(history, lanes, max_batch, gather));
    let convs: Arc<Vec<ConversationId>> = Arc::new(
        (0..conversations)
            .map(|c| {
                ConversationId::direct(
                    UserId::parse(&format!("user{c}")).unwrap(),
                    UserId::parse(&format!("peer{c}")).unwrap(),
                )
            })
            .collect(),
    );
    let payload = Bytes::from(body(size));
    let latency = Arc::new(shared_histogram::Lat::default());
    let append = {
        let (writer, convs, latency) = (writer.clone(), convs.clone(), latency.clone());
        move |i: u64| {
            let (writer, convs, latency, payload) = (
                writer.clone(),
                convs.clone(),
                latency.clone(),
                payload.clone(),
            );
            async move {
                let item = HistoryAppend {
                    conversation: convs[(i % conversations) as usize].clone(),
                    sent_at_ms: 0,
                    retry_key: Some(format!("user{} {i}", i % conversations)),
                    body: payload,
                    fence: None,
                };
                let at = Instant::now();
                writer
                    .append(vec![item])
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                latency.record(at.elapsed());
                anyhow::Ok(())
            }
        }
    };
    let cpu_before = own_cpu_seconds();
    let started = Instant::now();
    if rate == 0 {
        futures::stream::iter(0..messages)
            .map(append)
            .buffer_unordered(senders)
            .try_collect::<()>()
            .await?;
    } else {
        // Open loop: each message starts on its schedule, whatever the
        // earlier ones are doing.
        let every = Duration::from_secs_f64(1.0 / rate as f64);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut running = tokio::task::JoinSet::new();
        for i in 0..messages {
            ticks.tick().await;
            running.spawn(append(i));
        }
        while let Some(done) = running.join_next().await {
            done??;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu_before;
    let latency = latency.take();
    let transactions = writer.transactions();
    Ok(json!({
        "store": "postgresql", "test": "writer", "messages": messages, "conversations": conversations,
        "senders": senders, "rate": rate, "lanes": lanes, "max_batch": max_batch,
        "gather_us": gather.as_micros() as u64,
        "seconds": seconds, "messages_per_second": messages as f64 / seconds,
        "transactions": transactions, "messages_per_transaction": messages as f64 / transactions.max(1) as f64,
        "writer_cpu_us_per_message": cpu * 1e6 / messages as f64,
        "ack_ms": {"p50": ms(&latency, 0.5), "p99": ms(&latency, 0.99)},
    }))
}

/// A latency histogram shared by tasks.
mod shared_histogram {
    use std::time::Duration;

    use hdrhistogram::Histogram;
    use parking_lot::Mutex;

    pub struct Lat(Mutex<Histogram<u64>>);

    impl Default for Lat {
        fn default() -> Self {
            Self(Mutex::new(super::histogram()))
        }
    }

    impl Lat {
        pub fn record(&self, took: Duration) {
            let _ = self.0.lock().record((took.as_micros() as u64).max(1));
        }

        pub fn take(&self) -> Histogram<u64> {
            self.0.lock().clone()
        }
    }
}

mod search_bench {
    //! `pg-search`: the router's own search code on a filled history.

    use std::time::Instant;

    use rand::Rng as _;
    use rand::seq::IndexedRandom as _;
    use serde_json::json;
    use switchboard_proto::pb;
    use switchboard_router::search::{Query, SearchScope};
    use switchboard_router::store::encode_message;
    use switchboard_router::store::history::{HistoryAppend, PgHistory};
    use switchboard_shared::ids::{ConversationId, GroupId};

    pub struct Corpus {
        pub messages: u64,
        pub conversations: u64,
        pub vocabulary: usize,
        pub deep: u64,
    }

    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pu", "da", "fe", "go", "hi", "ju",
        "be",
    ];

    /// The `i`th made-up word: two or more syllables.
    fn word(mut i: usize) -> String {
        let mut out = String::new();
        loop {
            out.push_str(SYLLABLES[i % 16]);
            i /= 16;
            if i == 0 && out.len() >= 4 {
                return out;
            }
        }
    }

    /// Draws word ranks with P(rank k) ∝ 1/k^1.07 (how word use falls off).
    struct Zipf(Vec<f64>);

    impl Zipf {
        fn new(n: usize) -> Self {
            let mut total = 0.0;
            let cdf = (1..=n)
                .map(|k| {
                    total += 1.0 / (k as f64).powf(1.07);
                    total
                })
                .collect::<Vec<_>>();
            Self(cdf.into_iter().map(|c| c / total).collect())
        }

        fn draw(&self, rng: &mut impl rand::Rng) -> usize {
            let x: f64 = rng.random();
            self.0.partition_point(|c| *c < x).min(self.0.len() - 1)
        }
    }

    fn conversation(i: u64) -> ConversationId {
        ConversationId::Group(GroupId::parse(&format!("gbench{i:07}")).unwrap())
    }

    pub async fn run(
        url: &str,
        corpus: &Corpus,
        scopes: &[usize],
        searches: u64,
    ) -> anyhow::Result<serde_json::Value> {
        let history = PgHistory::connect(url, 4).await?;
        let zipf = Zipf::new(corpus.vocabulary);
        let words: Vec<String> = (0..corpus.vocabulary).map(word).collect();
        let mut rng = rand::rng();
        let filled = Instant::now();
        let mut written = 0;
        while written < corpus.messages {
            let n = (corpus.messages - written).min(2_000);
            let batch: Vec<HistoryAppend> = (0..n)
                .map(|k| {
                    let length = rng.random_range(4..=16);
                    let text = (0..length)
                        .map(|_| words[zipf.draw(&mut rng)].as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let sent_at_ms = 1_700_000_000_000 + (written + k) as i64;
                    let message = pb::Message {
                        sender: "someone".into(),
                        sent_at_ms,
                        text,
                        ..Default::default()
                    };
                    let which = if written + k < corpus.deep {
                        corpus.conversations
                    } else {
                        rng.random_range(0..corpus.conversations)
                    };
                    HistoryAppend {
                        conversation: conversation(which),
                        sent_at_ms,
                        retry_key: None,
                        body: encode_message(&message).into(),
                        fence: None,
                    }
                })
                .collect();
            history.append(&batch).await?;
            written += n;
        }
        let fill_seconds = filled.elapsed().as_secs_f64();
        let client = super::pg(url).await?;
        let table_bytes: f64 = client
            .query_one(
                "SELECT pg_total_relation_size('messages')::float8 / greatest(count(*), 1) FROM messages",
                &[],
            )
            .await?
            .get(0);
        let index_bytes: f64 = client
            .query_one(
                "SELECT pg_relation_size('messages_words')::float8 / greatest(count(*), 1) FROM messages",
                &[],
            )
            .await?
            .get(0);
        let mut runs = Vec::new();
        for (when, vacuum) in [("after writes", false), ("after vacuum", true)] {
            if vacuum {
                client.batch_execute("VACUUM ANALYZE messages").await?;
            }
            // 0: the deep conversation alone.
            for &scope in scopes.iter().chain(&[0]) {
                let mut latency = super::histogram();
                let mut hits = 0_u64;
                let all: Vec<u64> = (0..corpus.conversations).collect();
                for _ in 0..searches {
                    let chosen: Vec<u64> = match scope {
                        0 => vec![corpus.conversations],
                        n => all.choose_multiple(&mut rng, n).copied().collect(),
                    };
                    let scopes: Vec<SearchScope> = chosen
                        .iter()
                        .map(|&i| SearchScope {
                            conversation: conversation(i),
                            from: 1,
                            to: None,
                        })
                        .collect();
                    let query = (0..rng.random_range(1..=2))
                        .map(|_| {
                            let word = &words[zipf.draw(&mut rng)];
                            if rng.random_bool(0.3) {
                                word[..word.len().min(3)].to_owned()
                            } else {
                                word.clone()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    let query = Query::parse(&query)?;
                    let at = Instant::now();
                    let found = history.search(&scopes, &query.words, None, 21).await?;
                    latency.record((at.elapsed().as_micros() as u64).max(1))?;
                    hits += found.len() as u64;
                }
                let scope = match scope {
                    0 => format!("1 of {} messages", corpus.deep),
                    n => n.to_string(),
                };
                runs.push(json!({
                    "when": when, "scope": scope, "searches": searches,
                    "hits_per_search": hits as f64 / searches as f64,
                    "search_ms": {
                        "p50": super::ms(&latency, 0.5),
                        "p99": super::ms(&latency, 0.99),
                        "max": super::ms(&latency, 1.0)
                    },
                }));
            }
        }
        Ok(json!({
            "store": "postgresql", "test": "search", "messages": corpus.messages,
            "conversations": corpus.conversations, "vocabulary": corpus.vocabulary,
            "fill_seconds": fill_seconds,
            "fill_messages_per_second": corpus.messages as f64 / fill_seconds,
            "table_bytes_per_message": (table_bytes * 10.0).round() / 10.0,
            "words_index_bytes_per_message": (index_bytes * 10.0).round() / 10.0,
            "runs": runs,
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = match Cli::parse().command {
        Command::PgAppend {
            url,
            conversations,
            messages,
            in_flight,
            batch,
            seq,
            size,
        } => pg_append(&url, conversations, messages, in_flight, batch, seq, size).await?,
        Command::PgPage {
            url,
            depth,
            pages,
            size,
        } => pg_page(&url, depth, pages, size).await?,
        Command::JsAppend {
            url,
            conversations,
            messages,
            in_flight,
            size,
        } => js_append(&url, conversations, messages, in_flight, size).await?,
        Command::JsPage {
            url,
            depth,
            pages,
            size,
        } => js_page(&url, depth, pages, size).await?,
        Command::PgWriter {
            url,
            conversations,
            messages,
            senders,
            rate,
            lanes,
            max_batch,
            gather_us,
            size,
        } => {
            pg_writer(
                &url,
                conversations,
                messages,
                senders,
                rate,
                (lanes, max_batch, Duration::from_micros(gather_us)),
                size,
            )
            .await?
        }
        Command::PgSearch {
            url,
            messages,
            conversations,
            scope,
            searches,
            vocabulary,
            deep,
        } => {
            let scopes = scope
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()?;
            let corpus = search_bench::Corpus {
                messages,
                conversations,
                vocabulary,
                deep,
            };
            search_bench::run(&url, &corpus, &scopes, searches).await?
        }
        Command::PgCount { url } => {
            let stored: i64 = pg(&url)
                .await?
                .query_one("SELECT count(*) FROM messages", &[])
                .await?
                .get(0);
            json!({"store": "postgresql", "stored": stored})
        }
        Command::JsCount { url } => {
            let mut stream = js(&url).await?.get_stream(STREAM).await?;
            json!({"store": "jetstream", "stored": stream.info().await?.state.messages})
        }
    };
    println!("{report}");
    Ok(())
}
