//! What the transport allows on this machine right now, measured the same
//! way as Switchboard: raw NATS publish -> subscribe (1:1 and fanned out to
//! 100 subscribers), and a bare pipeline with no gRPC and no logic —
//! "gateway" -> NATS -> "router" (optionally one Redis XADD) -> NATS ->
//! "gateway" — whose throughput is the ceiling a router can approach.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::json;

use crate::recorder::{Percentiles, unix_nanos};
use crate::report::Report;

fn message(size: usize) -> Bytes {
    let mut bytes = vec![b'x'; size.max(8)];
    bytes[..8].copy_from_slice(&unix_nanos().to_le_bytes());
    Bytes::from(bytes)
}

fn sent_at(payload: &[u8]) -> u64 {
    payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    Ok(async_nats::ConnectOptions::new()
        .subscription_capacity(1 << 20)
        .client_capacity(1 << 16)
        .connect(url)
        .await?)
}

/// Raw NATS: one publisher, `subscribers` subscribers on their own connections.
async fn raw(
    url: &str,
    subscribers: usize,
    duration: Duration,
    size: usize,
) -> anyhow::Result<Report> {
    let subject = format!("lg.raw.{}", switchboard_shared::ids::random_token(8));
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let client = connect(url).await?;
        let mut subscription = client.subscribe(subject.clone()).await?;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let _client = client;
            while subscription.next().await.is_some() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let publisher = connect(url).await?;
    publisher.flush().await?;
    let payload = message(size);
    let started = Instant::now();
    let mut published = 0u64;
    while started.elapsed() < duration {
        for _ in 0..256 {
            publisher.publish(subject.clone(), payload.clone()).await?;
        }
        published += 256;
        // Keep the receivers within reach, as a bounded buffer would.
        while published * subscribers as u64 > received.load(Ordering::Relaxed) + 200_000 {
            tokio::task::yield_now().await;
            if started.elapsed() > duration * 2 {
                break;
            }
        }
    }
    publisher.flush().await?;
    let seconds = started.elapsed().as_secs_f64();
    let delivered = received.load(Ordering::Relaxed);
    for reader in readers {
        reader.abort();
    }
    let mut report = Report::new(
        "transport.nats_raw",
        json!({"subscribers": subscribers, "size": size}),
    );
    report.seconds = seconds;
    report.messages_per_second = published as f64 / seconds;
    report.deliveries_per_second = delivered as f64 / seconds;
    report.delivered = delivered;
    Ok(report)
}

/// The bare pipeline, saturated with at most `window` messages in flight.
async fn pipeline(
    url: &str,
    redis_url: Option<&str>,
    duration: Duration,
    size: usize,
) -> anyhow::Result<Report> {
    let run = switchboard_shared::ids::random_token(8);
    let (to_router, to_gateway) = (format!("lg.bare.{run}.router"), format!("lg.bare.{run}.gw"));
    let redis = match redis_url {
        Some(url) => Some(
            redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?,
        ),
        None => None,
    };
    let stream_key = format!("lg:bare:{run}");
    // The "router": one hop through Redis (maybe), then on to the "gateway".
    let router = connect(url).await?;
    let mut requests = router
        .queue_subscribe(to_router.clone(), "bare".into())
        .await?;
    let router_task = tokio::spawn({
        let (router, to_gateway, stream_key) =
            (router.clone(), to_gateway.clone(), stream_key.clone());
        async move {
            let mut in_flight = futures::stream::FuturesUnordered::new();
            loop {
                tokio::select! {
                    Some(request) = requests.next(), if in_flight.len() < 512 => {
                        let (router, to_gateway, mut redis, key) =
                            (router.clone(), to_gateway.clone(), redis.clone(), stream_key.clone());
                        in_flight.push(async move {
                            if let Some(redis) = redis.as_mut() {
                                let _: Result<String, _> = redis::cmd("XADD")
                                    .arg(&key).arg("MAXLEN").arg("~").arg(100_000).arg("*")
                                    .arg("m").arg(request.payload.as_ref())
                                    .query_async(redis).await;
                            }
                            let _ = router.publish(to_gateway, request.payload).await;
                        });
                    }
                    Some(()) = in_flight.next() => {}
                    else => return,
                }
            }
        }
    });
    // The "gateway": sends, and receives what the router passes on.
    let gateway_in = connect(url).await?;
    let mut deliveries = gateway_in.subscribe(to_gateway.clone()).await?;
    let received = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| anyhow::anyhow!("{e}"))?,
    ));
    let reader = tokio::spawn({
        let (received, latency) = (received.clone(), latency.clone());
        async move {
            while let Some(delivery) = deliveries.next().await {
                let micros = unix_nanos().saturating_sub(sent_at(&delivery.payload)) / 1000;
                let _ = latency.lock().record(micros.max(1));
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let gateway_out = connect(url).await?;
    gateway_out.flush().await?;
    router.flush().await?;
    let window = 2_000u64;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        while sent - received.load(Ordering::Relaxed) >= window {
            tokio::task::yield_now().await;
        }
        gateway_out
            .publish(to_router.clone(), message(size))
            .await?;
        sent += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    reader.abort();
    router_task.abort();
    let done = received.load(Ordering::Relaxed);
    let name = if redis_url.is_some() {
        "transport.pipeline_redis"
    } else {
        "transport.pipeline"
    };
    let mut report = Report::new(name, json!({"size": size, "window": window}));
    report.seconds = seconds;
    report.messages_per_second = done as f64 / seconds;
    report.deliveries_per_second = done as f64 / seconds;
    report.delivered = done;
    report.missing = sent.saturating_sub(done);
    report.latency_ms = Percentiles::of(&latency.lock());
    Ok(report)
}

pub async fn run(
    nats: &str,
    redis: Option<&str>,
    duration: Duration,
    size: usize,
) -> anyhow::Result<Vec<Report>> {
    let mut reports = vec![
        raw(nats, 1, duration, size).await?,
        raw(nats, 100, duration, size).await?,
        pipeline(nats, None, duration, size).await?,
    ];
    if redis.is_some() {
        reports.push(pipeline(nats, redis, duration, size).await?);
    }
    Ok(reports)
}
