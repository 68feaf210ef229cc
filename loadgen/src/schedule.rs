//! Open-loop sending: send number `i` is due at `start + i / rate`, whether
//! or not earlier sends have finished, so queueing shows up as latency.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::recorder::unix_nanos;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SendStats {
    pub scheduled: u64,
    pub acked: u64,
    pub errors: u64,
    /// Sends that could not even start (too many in flight).
    pub dropped: u64,
    pub first_error: Option<String>,
}

/// Runs `send(i, scheduled_unix_ns)` at `rate` per second for `duration`;
/// returns once every send has finished.
pub async fn open_loop<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    send: F,
) -> SendStats
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let send = Arc::new(send);
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(parking_lot::Mutex::new(None));
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let start_ns = unix_nanos();
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut dropped = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let scheduled_ns =
            start_ns + u64::try_from(due.duration_since(start).as_nanos()).unwrap_or(0);
        let (send, acked, errors, first_error) = (
            send.clone(),
            acked.clone(),
            errors.clone(),
            first_error.clone(),
        );
        tasks.spawn(async move {
            match send(i, scheduled_ns).await {
                Ok(()) => {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().get_or_insert(err);
                }
            }
            drop(permit);
        });
        // Reap finished sends now and then so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    SendStats {
        scheduled: total,
        acked: acked.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        dropped,
        first_error: first_error.lock().take(),
    }
}
