//! Topic broadcasts: the owner sends once, each of the contacts gets a
//! private copy in their own thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_proto::pb;

use super::{Acked, Watch, befriend, settle, subscribe_all};
use crate::client::{Connections, Origin, register_many};
use crate::recorder::{Recorder, payload};
use crate::report::Report;
use crate::schedule::open_loop;

pub async fn run(
    origin: &Origin,
    watch: &Watch,
    prefix: &str,
    contacts: usize,
    rate: f64,
    duration: Duration,
    size: usize,
) -> anyhow::Result<Report> {
    let clients = register_many(origin, prefix, 0..contacts + 1, 64, Connections::Own).await?;
    let owner = clients[0].clone();
    let contact_clients = clients[1..].to_vec();
    for contact in &contact_clients {
        befriend(&owner, contact).await?;
    }
    let topic = owner
        .topics()
        .create_topic(pb::CreateTopicRequest {
            name: "load topic".into(),
            contacts: contact_clients.iter().map(|c| c.user.clone()).collect(),
        })
        .await?
        .into_inner()
        .topic
        .ok_or_else(|| anyhow::anyhow!("no topic"))?;
    let recorder = Arc::new(Recorder::default());
    // The contacts are online; the owner sends from an API client (its own
    // devices would receive a copy of every thread, see BENCHMARKS.md).
    let _subscriptions = subscribe_all(&contact_clients, &recorder, 64).await?;
    let acked = Arc::new(Acked::default());
    let send = {
        let (owner, acked, topic_id) = (owner.clone(), acked.clone(), topic.topic_id.clone());
        move |_: u64, scheduled_ns: u64| {
            let (owner, acked, topic_id) = (owner.clone(), acked.clone(), topic_id.clone());
            async move {
                let ack = owner
                    .topics()
                    .send_to_topic(pb::SendToTopicRequest {
                        topic_id,
                        client_msg_id: format!("t{scheduled_ns}"),
                        text: payload(scheduled_ns, size),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                for copy in &ack.recipients {
                    acked.record(&copy.conversation_id, copy.seq);
                }
                Ok(())
            }
        }
    };
    open_loop(
        rate,
        Duration::from_secs(2).min(duration),
        20_000,
        send.clone(),
    )
    .await;
    recorder.reset_latency();
    let before = recorder.delivered_count();
    let cpu_before = watch.start();
    let started = Instant::now();
    let sends = open_loop(rate, duration, 20_000, send).await;
    let seconds = started.elapsed().as_secs_f64();
    let delivered = recorder.delivered_count() - before;
    let cpu = watch.report(&cpu_before, sends.acked);
    let expected: Vec<(usize, String)> = contact_clients
        .iter()
        .map(|c| (c.index, format!("t:{}:{}", topic.topic_id, c.user)))
        .collect();
    let missing = settle(&recorder, &acked, &expected).await;
    let mut report = Report::new(
        "topic",
        json!({"contacts": contacts, "rate": rate, "seconds": duration.as_secs(), "size": size}),
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
