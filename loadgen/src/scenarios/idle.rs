//! Connection density: clients connect and subscribe at a fixed ramp, then
//! idle; the gateway's resident memory per stream is what it costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_proto::pb;

use super::rss_kib;
use crate::client::{Connections, Origin, register_many};
use crate::recorder::Recorder;
use crate::report::Report;

pub async fn run(
    origin: &Origin,
    prefix: &str,
    clients: usize,
    ramp: f64,
    hold: Duration,
    gateway_pid: Option<u32>,
) -> anyhow::Result<Report> {
    let baseline = gateway_pid.and_then(rss_kib);
    // Accounts first (each over its own connection, as a real client).
    let users = register_many(origin, prefix, 0..clients, 128, Connections::Own).await?;
    // Connections open, no stream yet: splits the cost into the two.
    let connected = gateway_pid.and_then(rss_kib);
    let recorder = Arc::new(Recorder::default());
    let interval = Duration::from_secs_f64(1.0 / ramp.max(0.001));
    let started = Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    for (i, client) in users.iter().enumerate() {
        tokio::time::sleep_until((started + interval.mul_f64(i as f64)).into()).await;
        let (client, recorder) = (client.clone(), recorder.clone());
        pending.spawn(async move {
            client
                .subscribe(recorder, pb::SubscribeRequest::default())
                .await
        });
    }
    let mut subscriptions = Vec::with_capacity(clients);
    let mut errors = 0u64;
    let mut first_error = None;
    while let Some(result) = pending.join_next().await {
        match result {
            Ok(Ok(subscription)) => subscriptions.push(subscription),
            Ok(Err(err)) => {
                errors += 1;
                first_error.get_or_insert(format!("{err:#}"));
            }
            Err(err) => {
                errors += 1;
                first_error.get_or_insert(err.to_string());
            }
        }
    }
    let ramp_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold).await;
    let held = gateway_pid.and_then(rss_kib);
    let per_stream_kib = match (baseline, held) {
        (Some(before), Some(after)) if !subscriptions.is_empty() => {
            Some(after.saturating_sub(before) as f64 / subscriptions.len() as f64)
        }
        _ => None,
    };
    let mut report = Report::new(
        "idle",
        json!({"clients": clients, "ramp": ramp, "hold_s": hold.as_secs()}),
    )
    .with_totals(recorder.totals());
    report.seconds = ramp_seconds;
    report.extra = json!({
        "streams": subscriptions.len(),
        "errors": errors,
        "first_error": first_error,
        "gateway_rss_before_kib": baseline,
        "gateway_rss_connected_kib": connected,
        "gateway_rss_after_kib": held,
        "kib_per_stream": per_stream_kib,
    });
    if errors > 0 {
        report
            .problems
            .push(format!("{errors} clients could not subscribe"));
    }
    drop(subscriptions);
    Ok(report)
}
