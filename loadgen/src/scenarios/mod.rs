//! One file per scenario, and what they share.

pub mod direct;
pub mod flood;
pub mod group;
pub mod idle;
pub mod pages;
pub mod smoke;
pub mod storm;
pub mod topic;
pub mod transport;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchboard_proto::pb;

use crate::client::{Client, Subscription};
use crate::recorder::Recorder;
use crate::report::Report;
use crate::schedule::open_loop;

/// How long stragglers may take to arrive once sending stopped.
pub const SETTLE: Duration = Duration::from_secs(20);

/// Subscribes every client (fresh: live from now), `parallel` at a time.
pub async fn subscribe_all(
    clients: &[Client],
    recorder: &Arc<Recorder>,
    parallel: usize,
) -> anyhow::Result<Vec<Subscription>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(clients.len());
    for client in clients {
        let (client, recorder, permits) = (client.clone(), recorder.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            client
                .subscribe(recorder, pb::SubscribeRequest::default())
                .await
        }));
    }
    let mut subscriptions = Vec::with_capacity(tasks.len());
    for task in tasks {
        subscriptions.push(task.await??);
    }
    Ok(subscriptions)
}

/// The highest acknowledged seq per conversation.
#[derive(Default)]
pub struct Acked(Mutex<HashMap<String, u64>>);

impl Acked {
    pub fn record(&self, conversation: &str, seq: u64) {
        let mut acked = self.0.lock();
        let head = acked.entry(conversation.to_owned()).or_insert(0);
        *head = (*head).max(seq);
    }

    pub fn head(&self, conversation: &str) -> u64 {
        self.0.lock().get(conversation).copied().unwrap_or(0)
    }

    /// Acknowledged messages of conversations not in `watched`.
    fn outside(&self, watched: &[(usize, String)]) -> u64 {
        let watched: std::collections::HashSet<&str> =
            watched.iter().map(|(_, conv)| conv.as_str()).collect();
        self.0
            .lock()
            .iter()
            .filter(|(conv, _)| !watched.contains(conv.as_str()))
            .map(|(_, head)| head)
            .sum()
    }
}

/// Waits until every (client, conversation) holds the acknowledged head;
/// returns how many messages are still missing after [`SETTLE`]. Messages
/// acknowledged in a conversation nobody in `expected` watches count as
/// missing too: nothing checked that they arrived (a wrong conversation id
/// in `expected` would otherwise pass unnoticed).
pub async fn settle(recorder: &Recorder, acked: &Acked, expected: &[(usize, String)]) -> u64 {
    let deadline = Instant::now() + SETTLE;
    let unwatched = acked.outside(expected);
    loop {
        let missing: u64 = expected
            .iter()
            .map(|(client, conv)| {
                acked
                    .head(conv)
                    .saturating_sub(recorder.cursor(*client, conv))
            })
            .sum();
        if missing == 0 || Instant::now() >= deadline {
            return unwatched + missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The part every sending scenario shares: two seconds (at most `duration`)
/// of warm-up, then `duration` of sends on `rate`'s open-loop schedule as
/// the measured window, then waiting until each (client, conversation) of
/// `expected` holds every acknowledged message. Fills in `report`.
#[allow(clippy::too_many_arguments)]
pub async fn measure_sends<F, Fut>(
    mut report: Report,
    watch: &Watch,
    recorder: &Recorder,
    acked: &Acked,
    expected: &[(usize, String)],
    rate: f64,
    duration: Duration,
    send: F,
) -> Report
where
    F: Fn(u64, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    // Warm up (connections, caches), then measure.
    open_loop(
        rate,
        Duration::from_secs(2).min(duration),
        MAX_IN_FLIGHT,
        send.clone(),
    )
    .await;
    recorder.reset_latency();
    let before = recorder.delivered_count();
    let cpu_before = watch.start();
    let started = Instant::now();
    let sends = open_loop(rate, duration, MAX_IN_FLIGHT, send).await;
    let seconds = started.elapsed().as_secs_f64();
    let delivered = recorder.delivered_count() - before;
    let cpu = watch.report(&cpu_before, sends.acked);
    let missing = settle(recorder, acked, expected).await;
    report = report.with_totals(recorder.totals());
    report.seconds = seconds;
    report.messages_per_second = sends.acked as f64 / seconds;
    report.deliveries_per_second = delivered as f64 / seconds;
    report.missing = missing;
    report.extra = serde_json::json!({ "cpu": cpu });
    report.sends = Some(sends);
    report
}

/// Sends awaiting their ack at once, past which the schedule drops sends.
const MAX_IN_FLIGHT: usize = 20_000;

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Makes `a` and `b` mutual contacts.
pub async fn befriend(a: &Client, b: &Client) -> anyhow::Result<()> {
    a.contacts()
        .add_contact(pb::AddContactRequest {
            user_id: b.user.clone(),
        })
        .await?;
    b.contacts()
        .add_contact(pb::AddContactRequest {
            user_id: a.user.clone(),
        })
        .await?;
    Ok(())
}

/// Lines on stderr around each measured window.
pub const WINDOW_START: &str = "loadgen: measuring";
pub const WINDOW_END: &str = "loadgen: measured";

/// CPU time of the server processes, sampled around the measured window.
#[derive(Clone, Default)]
pub struct Watch(pub Vec<(String, u32)>);

impl Watch {
    /// `name=pid` pairs; the load generator itself is always watched too
    /// (it shares the machine, so its CPU is part of the picture).
    pub fn parse(spec: &[String]) -> anyhow::Result<Self> {
        let mut watched = spec
            .iter()
            .map(|pair| {
                let (name, pid) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--watch takes name=pid, not {pair:?}"))?;
                Ok((name.to_owned(), pid.parse()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        watched.push(("loadgen".to_owned(), std::process::id()));
        Ok(Self(watched))
    }

    /// Marks the start of the measured window (on stderr, where
    /// `bench/run.py --profile` starts its profilers) and samples CPU time.
    pub fn start(&self) -> Vec<f64> {
        eprintln!("{WINDOW_START}");
        self.cpu_seconds()
    }

    fn cpu_seconds(&self) -> Vec<f64> {
        self.0
            .iter()
            .map(|(_, pid)| cpu_seconds(*pid).unwrap_or(0.0))
            .collect()
    }

    /// CPU seconds each process used since `before`, and per unit of work.
    pub fn report(&self, before: &[f64], units: u64) -> serde_json::Value {
        let after = self.cpu_seconds();
        eprintln!("{WINDOW_END}");
        let mut processes = serde_json::Map::new();
        for ((name, _), (b, a)) in self.0.iter().zip(before.iter().zip(after)) {
            let used = a - b;
            processes.insert(
                name.clone(),
                serde_json::json!({
                    "cpu_s": (used * 1000.0).round() / 1000.0,
                    "cpu_us_per_message": if units > 0 { (used * 1e6 / units as f64).round() } else { 0.0 },
                }),
            );
        }
        serde_json::Value::Object(processes)
    }
}

/// User + system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in clock ticks of 100 Hz on every architecture we run on.
    Some(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acknowledged_messages_nobody_watches_count_as_missing() {
        let (recorder, acked) = (Recorder::default(), Acked::default());
        acked.record("dm:alice:bob", 3);
        recorder.start_at(1, "dm:alice:bob", 3);
        let watched = [(1, "dm:alice:bob".to_owned())];
        assert_eq!(settle(&recorder, &acked, &watched).await, 0);
        // A scenario that named the conversation wrongly checked nothing.
        let misnamed = [(1, "dm:bob:alice".to_owned())];
        assert_eq!(settle(&recorder, &acked, &misnamed).await, 3);
    }
}
