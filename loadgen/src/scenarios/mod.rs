//! One file per scenario, and what they share.

pub mod direct;
pub mod group;
pub mod idle;
pub mod smoke;
pub mod storm;
pub mod topic;
pub mod transport;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchboard_proto::pb;

use crate::client::{Client, Subscription};
use crate::recorder::Recorder;

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
}

/// Waits until every (client, conversation) holds the acknowledged head;
/// returns how many messages are still missing after [`SETTLE`].
pub async fn settle(recorder: &Recorder, acked: &Acked, expected: &[(usize, String)]) -> u64 {
    let deadline = Instant::now() + SETTLE;
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
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
