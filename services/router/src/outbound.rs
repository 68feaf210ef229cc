//! What the router sends out to other parties' HTTP endpoints (webhooks,
//! Web Push): a bounded set of POSTs waiting, in flight or between
//! attempts, each posted by a task on the router's shutdown tracker.
//!
//! A `2xx` answer is done; a connection error, a timeout, `408`, `429` or a
//! `5xx` is tried again after a doubling wait (with jitter; `Retry-After` if
//! longer) up to the attempts allowed; any other answer is given up at once
//! (and handed to the job's `on_refused`: a push service's `404`/`410` means
//! the subscription is gone). Past the bound a new job is dropped and
//! counted, never slowing the send that caused it. Jobs still queued when the
//! router stops are lost: they are notifications, not messages (the message
//! itself is stored and reaches its user on their next connection).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rand::Rng as _;
use switchboard_shared::metrics::{NotificationOutcome, metrics};
use switchboard_shared::shutdown::Shutdown;
use tokio::sync::Semaphore;

use crate::web_client::{Answer, WebClient};

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How hard one channel tries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Jobs waiting, in flight or between attempts at most.
    pub queue: usize,
    /// POSTs in flight at once.
    pub concurrency: usize,
    /// Attempts per job.
    pub attempts: u32,
    /// The wait before the first retry.
    pub first_retry: Duration,
    /// How long one POST may take.
    pub timeout: Duration,
}

/// Headers for one attempt (a webhook is signed anew for each).
pub type Headers = Box<dyn Fn() -> Vec<(&'static str, String)> + Send + Sync>;
/// What to do when the receiver refuses a job (its status).
pub type OnRefused = Box<dyn FnOnce(u16) -> BoxFuture<'static, ()> + Send>;

/// One POST to make.
pub struct Job {
    /// For logs: the webhook id, the message and user.
    pub id: String,
    pub url: String,
    pub body: Bytes,
    pub headers: Headers,
    pub on_refused: Option<OnRefused>,
}

/// What to do after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Try again, not sooner than the server asked (if it did).
    Retry(Option<Duration>),
    GiveUp,
}

pub fn verdict(answer: &Result<Answer, String>) -> Verdict {
    let Ok(answer) = answer else {
        return Verdict::Retry(None);
    };
    let status = answer.status;
    if status.is_success() {
        Verdict::Done
    } else if status.is_server_error()
        || status == hyper::StatusCode::REQUEST_TIMEOUT
        || status == hyper::StatusCode::TOO_MANY_REQUESTS
    {
        Verdict::Retry(answer.retry_after)
    } else {
        Verdict::GiveUp
    }
}

/// The wait before attempt `attempt + 1` (the first retry follows attempt
/// 1): `first` doubled per attempt, at most [`MAX_BACKOFF`], then scaled by
/// `jitter` (0.8 to 1.2) so retries of many webhooks spread out.
pub fn backoff(first: Duration, attempt: u32, jitter: f64) -> Duration {
    let doubled = first.saturating_mul(1 << attempt.saturating_sub(1).min(20));
    doubled.min(MAX_BACKOFF).mul_f64(jitter.clamp(0.8, 1.2))
}

#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

struct Inner {
    /// The metrics label: `webhook`, `web_push`.
    channel: &'static str,
    policy: Policy,
    client: WebClient,
    /// One permit per job waiting, in flight or between attempts.
    room: Arc<Semaphore>,
    /// One permit per POST in flight.
    calls: Semaphore,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("channel", &self.inner.channel)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn start(
        client: WebClient,
        policy: Policy,
        channel: &'static str,
        shutdown: &Shutdown,
    ) -> Result<Self, String> {
        if policy.queue == 0 || policy.concurrency == 0 || policy.attempts == 0 {
            return Err(format!(
                "{channel}: queue, concurrency and attempts must be at least 1"
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                channel,
                policy,
                client,
                room: Arc::new(Semaphore::new(policy.queue)),
                calls: Semaphore::new(policy.concurrency),
                shutdown: shutdown.clone(),
            }),
        })
    }

    /// Queues a job; never waits. Past the queue's bound it is dropped.
    pub fn offer(&self, job: Job) {
        let channel = self.inner.channel;
        let Ok(permit) = self.inner.room.clone().try_acquire_owned() else {
            metrics()
                .notification(channel, NotificationOutcome::Dropped)
                .inc();
            tracing::warn!(channel, id = %job.id, "notification queue full; dropped");
            return;
        };
        let inner = self.inner.clone();
        self.inner.shutdown.tracker.spawn(async move {
            let token = inner.shutdown.token.clone();
            tokio::select! {
                () = inner.post(job) => {}
                () = token.cancelled() => {}
            }
            drop(permit);
        });
    }
}

impl Inner {
    async fn post(&self, job: Job) {
        let channel = self.channel;
        let count = |outcome| metrics().notification(channel, outcome).inc();
        for attempt in 1..=self.policy.attempts {
            let answer = {
                let Ok(_call) = self.calls.acquire().await else {
                    return;
                };
                self.client
                    .post(
                        &job.url,
                        &(job.headers)(),
                        job.body.clone(),
                        self.policy.timeout,
                    )
                    .await
            };
            let wait = match verdict(&answer) {
                Verdict::Done => {
                    count(NotificationOutcome::Delivered);
                    return;
                }
                Verdict::GiveUp => {
                    count(NotificationOutcome::Refused);
                    let status = answer.map(|a| a.status.as_u16()).unwrap_or_default();
                    tracing::warn!(channel, id = %job.id, status, "the receiver refused a notification; given up");
                    if let Some(on_refused) = job.on_refused {
                        on_refused(status).await;
                    }
                    return;
                }
                Verdict::Retry(asked) => {
                    let jitter = rand::rng().random_range(0.8..=1.2);
                    let wait = backoff(self.policy.first_retry, attempt, jitter);
                    asked.map_or(wait, |asked| wait.max(asked.min(MAX_BACKOFF)))
                }
            };
            if attempt == self.policy.attempts {
                break;
            }
            count(NotificationOutcome::Retried);
            match &answer {
                Ok(a) => {
                    tracing::info!(channel, id = %job.id, status = a.status.as_u16(), attempt, ?wait, "notification not taken; trying again")
                }
                Err(err) => {
                    tracing::info!(channel, id = %job.id, %err, attempt, ?wait, "notification not delivered; trying again")
                }
            }
            tokio::time::sleep(wait).await;
        }
        count(NotificationOutcome::Failed);
        tracing::warn!(channel, id = %job.id, attempts = self.policy.attempts, "notification not delivered after every attempt; given up");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<u64>) -> Result<Answer, String> {
        Ok(Answer {
            status: hyper::StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
            body: Vec::new(),
        })
    }

    #[test]
    fn what_is_retried_and_what_is_given_up() {
        assert_eq!(verdict(&answer(200, None)), Verdict::Done);
        assert_eq!(verdict(&answer(204, None)), Verdict::Done);
        assert_eq!(verdict(&answer(500, None)), Verdict::Retry(None));
        assert_eq!(
            verdict(&answer(503, Some(30))),
            Verdict::Retry(Some(Duration::from_secs(30)))
        );
        assert_eq!(verdict(&answer(429, None)), Verdict::Retry(None));
        assert_eq!(verdict(&answer(408, None)), Verdict::Retry(None));
        assert_eq!(
            verdict(&Err("connection refused".into())),
            Verdict::Retry(None)
        );
        assert_eq!(
            verdict(&answer(401, None)),
            Verdict::GiveUp,
            "a refused signature"
        );
        assert_eq!(verdict(&answer(404, None)), Verdict::GiveUp);
    }

    #[test]
    fn waits_double_up_to_five_minutes() {
        let first = Duration::from_secs(1);
        assert_eq!(backoff(first, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(first, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(first, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(first, 12, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(first, 40, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(first, 2, 0.8), Duration::from_millis(1600));
        assert_eq!(
            backoff(first, 2, 5.0),
            Duration::from_millis(2400),
            "jitter is clamped"
        );
    }
}
