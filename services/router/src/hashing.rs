//! Password hashing, kept off the message path.
//!
//! Argon2id is slow on purpose (tens of milliseconds and 19 MiB per hash),
//! so a flood of logins could take the cores that route messages. Hashes run
//! on threads of their own at nice 10: next to a busy message thread they
//! get about a tenth of a core, so a login flood barely moves message
//! latency, yet a login on a saturated router still finishes in time.
//! (`SCHED_IDLE`, tried first, starved logins whenever the cores were busy,
//! until they timed out; nice 19 still took over 2 s under two busy loops
//! per core.) A short queue in front of
//! them turns a flood into quick refusals (RESOURCE_EXHAUSTED with a retry
//! hint) instead of a growing backlog; failed logins are also counted per
//! account and per address (`accounts.rs`), so a guesser is refused before
//! any hash is computed.

use std::sync::Arc;
use std::sync::mpsc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{RouterError, RouterResult};

type Job = Box<dyn FnOnce() + Send>;

/// How long a refused hash should wait before asking again.
const BUSY_RETRY_MS: u64 = 500;

pub struct Hasher {
    jobs: mpsc::SyncSender<Job>,
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
    /// `threads` hashing threads, and at most `queue` hashes waiting.
    pub fn start(threads: usize, queue: usize) -> Self {
        let (jobs, waiting) = mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..threads.max(1) {
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    yield_to_message_traffic();
                    loop {
                        // The lock is held only to take the next job.
                        let job = waiting.lock().recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(%err, "cannot start a password-hashing thread");
            }
        }
        Self { jobs }
    }

    /// Runs `work` on a hashing thread, or refuses at once if too many are
    /// waiting.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> RouterResult<T> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|_| RouterError::ResourceExhausted {
                message: "too many logins at once; try again shortly".into(),
                retry_after_ms: BUSY_RETRY_MS,
            })?;
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
        let hasher = Arc::new(Hasher::start(1, 1));
        assert_eq!(hasher.run(|| 2 + 2).await.unwrap(), 4);
        // Jobs that wait for a release: one holds the thread, one the queue
        // slot; the next is refused without waiting.
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
            assert!(waiting.len() <= 2, "one thread and one queue slot at most");
        };
        assert!(
            matches!(refused, RouterError::ResourceExhausted { .. }),
            "{refused:?}"
        );
        for _ in 0..waiting.len() {
            release.send(()).unwrap();
        }
        for job in waiting {
            assert!(job.await.unwrap());
        }
    }
}
