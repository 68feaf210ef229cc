//! History pages at depth: one conversation holding `depth` messages, and
//! 50-message `History` pages at random positions in it, on an open-loop
//! schedule, through a gateway and a router as a client pages.
//!
//! Sending a million messages through the API would take this machine
//! minutes, so the conversation is seeded in the history store itself: one
//! real message is sent, and its stored row is copied to seqs 2..=depth (the
//! head moved to match), as the router would have written them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::Rng as _;
use serde_json::json;
use switchboard_proto::pb::{self, send_request::To};
use switchboard_shared::ids::{ConversationId, UserId};
use tokio_postgres::types::ToSql;

use super::Watch;
use crate::client::{Connections, Origin, register_many};
use crate::recorder::{Percentiles, payload, unix_nanos};
use crate::report::Report;
use crate::schedule::open_loop;

const PAGE: u32 = 50;

/// Copies the conversation's first message to seqs 2..=depth in one
/// statement, and moves its head there.
async fn seed(history_url: &str, conversation: &str, depth: u64) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(history_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let depth = i64::try_from(depth)?;
    let copied = client
        .execute(
            "INSERT INTO messages (shard_key, conversation, seq, sent_at, body)
             SELECT shard_key, conversation, n, sent_at, body
             FROM messages, generate_series(2, $2::bigint) AS n
             WHERE conversation = $1 AND seq = 1",
            &[&conversation as &(dyn ToSql + Sync), &depth],
        )
        .await?;
    anyhow::ensure!(
        copied == u64::try_from(depth - 1)?,
        "seeded {copied} messages, not {}",
        depth - 1
    );
    client
        .execute(
            "UPDATE conversations SET head = $2 WHERE conversation = $1",
            &[&conversation as &(dyn ToSql + Sync), &depth],
        )
        .await?;
    // Fresh statistics, as a table that grew this way would have after autovacuum.
    client.execute("ANALYZE messages", &[]).await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

pub async fn run(
    origin: &Origin,
    watch: &Watch,
    prefix: &str,
    depth: u64,
    rate: f64,
    duration: Duration,
    history_url: &str,
) -> anyhow::Result<Report> {
    anyhow::ensure!(depth > u64::from(PAGE), "a depth of more than one page");
    let clients = register_many(origin, prefix, 0..2, 2, Connections::Own).await?;
    let (reader, writer) = (clients[0].clone(), &clients[1]);
    writer
        .chat()
        .send(pb::SendRequest {
            to: Some(To::UserId(reader.user.clone())),
            client_msg_id: "seed".into(),
            text: payload(unix_nanos(), 200),
            reply_to: String::new(),
        })
        .await?;
    let conversation =
        ConversationId::direct(UserId::parse(&reader.user)?, UserId::parse(&writer.user)?)
            .to_string();
    let seeding = Instant::now();
    seed(history_url, &conversation, depth).await?;
    let seeded_s = seeding.elapsed().as_secs_f64();

    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let page = {
        let (latency, problems, conversation) =
            (latency.clone(), problems.clone(), conversation.clone());
        move |_: u64, _: u64| {
            let (reader, latency, problems, conversation) = (
                reader.clone(),
                latency.clone(),
                problems.clone(),
                conversation.clone(),
            );
            async move {
                // Any page that is a full one: the messages before `before`.
                let before = rand::rng().random_range(u64::from(PAGE) + 1..=depth + 1);
                let asked = Instant::now();
                let answer = reader
                    .chat()
                    .history(pb::HistoryRequest {
                        conversation_id: conversation,
                        before_seq: before,
                        after_seq: None,
                        limit: PAGE,
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                let took = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = latency.lock().record(took.max(1));
                let seqs: Vec<u64> = answer.messages.iter().map(|m| m.seq).collect();
                let expected: Vec<u64> = (before - u64::from(PAGE)..before).collect();
                if seqs != expected {
                    let mut problems = problems.lock();
                    if problems.len() < 20 {
                        problems.push(format!(
                            "page before {before}: {} messages, {:?}..{:?}",
                            seqs.len(),
                            seqs.first(),
                            seqs.last()
                        ));
                    }
                }
                Ok(())
            }
        }
    };
    // Warm up (connections, the router's caches), then measure.
    open_loop(
        rate,
        Duration::from_secs(2).min(duration),
        10_000,
        page.clone(),
    )
    .await;
    latency.lock().reset();
    let cpu_before = watch.start();
    let started = Instant::now();
    let pages = open_loop(rate, duration, 10_000, page).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = watch.report(&cpu_before, pages.acked);

    let mut report = Report::new(
        "pages",
        json!({"depth": depth, "page": PAGE, "rate": rate, "seconds": duration.as_secs()}),
    );
    report.seconds = seconds;
    report.messages_per_second = pages.acked as f64 / seconds;
    report.latency_ms = Percentiles::of(&latency.lock());
    report.problems = problems.lock().clone();
    report.sends = Some(pages);
    report.extra = json!({"cpu": cpu, "seeded_seconds": seeded_s});
    Ok(report)
}
