//! Password hashing, kept off the message path.
//!
//! Argon2id is slow on purpose (tens of milliseconds and 19 MiB per hash),
//! so a flood of logins could take the cores that route messages. Hashes run
//! on threads of their own at nice 10: next to a busy message thread they
//! get about a tenth of a core, so a login flood barely moves message
//! latency, yet a login on a saturated router still finishes in time.
//! (`SCHED_IDLE`, tried first, starved logins whenever the cores were busy,
//! until they timed out; nice 19 still took over 2 s under two busy loops
//! per core.) A short queue in front of them turns a flood into quick
//! refusals (RESOURCE_EXHAUSTED with a retry hint) instead of a growing
//! backlog, and so does a login that would wait past half the caller's
//! deadline (waiting hashes × the average hash time), so none times out; failed logins are also counted per
//! account and per address (`accounts.rs`), so a guesser is refused before
//! any hash is computed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{RouterError, RouterResult};

type Job = Box<dyn FnOnce() + Send>;

/// How long a refused hash should wait before asking again.
const BUSY_RETRY_MS: u64 = 500;

pub struct Hasher {
    jobs: mpsc::SyncSender<Job>,
    load: Arc<Load>,
}

/// What the queue holds and how long a hash takes, to refuse a login that
/// would wait past its caller's deadline.
struct Load {
    threads: u64,
    max_wait: Duration,
    /// Jobs accepted and not yet started.
    waiting: AtomicU64,
    /// Moving average of a hash's duration, µs.
    hash_us: AtomicU64,
}

impl Load {
    /// How long a job accepted now would wait for a thread.
    fn expected_wait(&self) -> Duration {
        let queued = self.waiting.load(Ordering::Relaxed);
        Duration::from_micros(queued * self.hash_us.load(Ordering::Relaxed) / self.threads)
    }

    fn record(&self, took: Duration) {
        let took = took.as_micros() as u64;
        let before = self.hash_us.load(Ordering::Relaxed);
        let average = if before == 0 {
            took
        } else {
            (before * 7 + took) / 8
        };
        self.hash_us.store(average, Ordering::Relaxed);
    }
}

/// Lowers the calling thread to nice 10; a failure only costs the
/// protection, so it is logged, not fatal.
fn yield_to_message_traffic() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    // The crate maps 0..=99 onto nice 19..=-20: 22 is nice 10.
    let nice_10 = ThreadPriorityValue::try_from(22u8).map(ThreadPriority::Crossplatform);
    let lowered = nice_10
        .map_err(|err| format!("{err:?}"))
        .and_then(|priority| {
            set_thread_priority_and_policy(
                thread_native_id(),
                priority,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
            )
            .map_err(|err| format!("{err:?}"))
        });
    if let Err(err) = lowered {
        tracing::warn!(%err, "cannot lower the password-hashing thread's priority");
    }
}

impl Hasher {
    /// `threads` hashing threads; at most `queue` hashes waiting, and none
    /// accepted that would wait longer than `max_wait`.
    pub fn start(threads: usize, queue: usize, max_wait: Duration) -> Self {
        let threads = threads.max(1);
        let (jobs, waiting) = mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        let load = Arc::new(Load {
            threads: threads as u64,
            max_wait,
            waiting: AtomicU64::new(0),
            hash_us: AtomicU64::new(0),
        });
        for i in 0..threads {
            let (waiting, load) = (waiting.clone(), load.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    yield_to_message_traffic();
                    loop {
                        // The lock is held only to take the next job.
                        let job = waiting.lock().recv();
                        match job {
                            Ok(job) => {
                                load.waiting.fetch_sub(1, Ordering::Relaxed);
                                job();
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(%err, "cannot start a password-hashing thread");
            }
        }
        Self { jobs, load }
    }

    /// Runs `work` on a hashing thread, or refuses at once if it would wait
    /// too long (or too many are waiting).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> RouterResult<T> {
        let busy = |wait: Duration| RouterError::ResourceExhausted {
            message: "too many logins at once; try again shortly".into(),
            retry_after_ms: (wait.as_millis() as u64).max(BUSY_RETRY_MS),
        };
        let wait = self.load.expected_wait();
        if wait >= self.load.max_wait {
            return Err(busy(wait));
        }
        let (done, answer) = oneshot::channel();
        let load = self.load.clone();
        self.load.waiting.fetch_add(1, Ordering::Relaxed);
        if self
            .jobs
            .try_send(Box::new(move || {
                let started = Instant::now();
                let result = work();
                // Before answering: whoever the answer wakes already sees
                // this hash in the average.
                load.record(started.elapsed());
                let _ = done.send(result);
            }))
            .is_err()
        {
            self.load.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(busy(wait));
        }
        answer
            .await
            .map_err(|_| RouterError::Unavailable("password hashing stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use super::*;

    type Pending = Pin<Box<dyn Future<Output = RouterResult<bool>> + Send>>;

    #[tokio::test]
    async fn hashes_run_and_a_full_queue_refuses_at_once() {
        let hasher = Arc::new(Hasher::start(1, 1, Duration::from_secs(60)));
        assert_eq!(hasher.run(|| 2 + 2).await.unwrap(), 4);
        // Jobs that wait for a release: one holds the thread, one the queue
        // slot; the next is refused without waiting.
        let refused = refused_after_at_most(&hasher, 2).await;
        assert!(
            matches!(refused, RouterError::ResourceExhausted { .. }),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_login_that_would_wait_too_long_is_refused_at_once() {
        let hasher = Arc::new(Hasher::start(1, 64, Duration::from_millis(100)));
        // A hash of ~60 ms teaches the average.
        hasher
            .run(|| {
                // Holds the hashing thread (not a runtime thread) for 60 ms.
                let until = Instant::now() + Duration::from_millis(60);
                while Instant::now() < until {
                    std::thread::park_timeout(until - Instant::now());
                }
            })
            .await
            .unwrap();
        // One job holds the thread; each queued one adds ~60 ms of waiting.
        let refused = refused_after_at_most(&hasher, 4).await;
        match refused {
            RouterError::ResourceExhausted { retry_after_ms, .. } => {
                assert!(retry_after_ms >= 100, "hint {retry_after_ms} ms");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Offers jobs that each hold their hashing thread until released, until
    /// the hasher refuses one, having accepted at most `most`; then releases
    /// those (each must finish) and answers the refusal.
    async fn refused_after_at_most(hasher: &Arc<Hasher>, most: usize) -> RouterError {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let mut waiting: Vec<Pending> = Vec::new();
        let refused = loop {
            let held = held.clone();
            let hasher = hasher.clone();
            let mut job: Pending =
                Box::pin(async move { hasher.run(move || held.lock().recv().is_ok()).await });
            match futures::poll!(job.as_mut()) {
                std::task::Poll::Ready(Err(err)) => break err,
                std::task::Poll::Ready(Ok(_)) => panic!("nothing was released yet"),
                std::task::Poll::Pending => waiting.push(job),
            }
            assert!(
                waiting.len() <= most,
                "the hasher kept accepting: {}",
                waiting.len()
            );
        };
        for _ in 0..waiting.len() {
            release.send(()).unwrap();
        }
        for job in waiting {
            assert!(job.await.unwrap());
        }
        refused
    }
}
