//! One-to-one messages: pairs of users, each first user writing to its
//! partner, at a fixed total rate. Both ends are subscribed (the sender's
//! own copy keeps its other devices in sync); latency counts the partner's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_proto::pb::{self, send_request::To};

use super::{Acked, Watch, settle, subscribe_all};
use crate::client::{Connections, Origin, register_many};
use crate::recorder::{Recorder, payload};
use crate::report::Report;
use crate::schedule::open_loop;

pub async fn run(
    origin: &Origin,
    watch: &Watch,
    prefix: &str,
    pairs: usize,
    rate: f64,
    duration: Duration,
    size: usize,
) -> anyhow::Result<Report> {
    let clients =
        Arc::new(register_many(origin, prefix, 0..pairs * 2, 64, Connections::Own).await?);
    let recorder = Arc::new(Recorder::default());
    let _subscriptions = subscribe_all(&clients, &recorder, 64).await?;
    let acked = Arc::new(Acked::default());

    let send = {
        let (clients, acked) = (clients.clone(), acked.clone());
        move |i: u64, scheduled_ns: u64| {
            let pair = (i as usize) % pairs;
            let (sender, receiver) = (
                clients[pair * 2].clone(),
                clients[pair * 2 + 1].user.clone(),
            );
            let acked = acked.clone();
            async move {
                let ack = sender
                    .chat()
                    .send(pb::SendRequest {
                        to: Some(To::UserId(receiver)),
                        client_msg_id: format!("d{scheduled_ns}"),
                        text: payload(scheduled_ns, size),
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                acked.record(&ack.conversation_id, ack.seq);
                Ok(())
            }
        }
    };
    // Warm up (connections, caches), then measure.
    let warmup = Duration::from_secs(2).min(duration);
    open_loop(rate, warmup, 20_000, send.clone()).await;
    recorder.reset_latency();
    let before = recorder.delivered_count();
    let cpu_before = watch.start();
    let started = Instant::now();
    let sends = open_loop(rate, duration, 20_000, send).await;
    let seconds = started.elapsed().as_secs_f64();
    let delivered = recorder.delivered_count() - before;
    let cpu = watch.report(&cpu_before, sends.acked);

    let expected: Vec<(usize, String)> = (0..pairs)
        .flat_map(|pair| {
            let (a, b) = (&clients[pair * 2], &clients[pair * 2 + 1]);
            let conv = if a.user < b.user {
                format!("dm:{}:{}", a.user, b.user)
            } else {
                format!("dm:{}:{}", b.user, a.user)
            };
            [(a.index, conv.clone()), (b.index, conv)]
        })
        .collect();
    let missing = settle(&recorder, &acked, &expected).await;
    let mut report = Report::new(
        "direct",
        json!({"pairs": pairs, "rate": rate, "seconds": duration.as_secs(), "size": size}),
    )
    .with_totals(recorder.totals());
    report.seconds = seconds;
    report.messages_per_second = sends.acked as f64 / seconds;
    report.deliveries_per_second = delivered as f64 / seconds;
    report.missing = missing;
    report.extra = serde_json::json!({"cpu": cpu});
    report.sends = Some(sends);
    Ok(report)
}
