//! Limits the gateway enforces itself: the per-user send rate, send streams
//! per user, and request sizes answered in gRPC's words.
//!
//! tonic answers a request over the decoding limit with OUT_OF_RANGE; gRPC's
//! convention for "message larger than allowed" is RESOURCE_EXHAUSTED, which
//! is what clients branch on. No Switchboard code answers OUT_OF_RANGE, so
//! the rewrite ([`OversizeLayer`]) is unambiguous.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use parking_lot::Mutex;
use switchboard_shared::ids::UserId;
use tonic::Status;
use tower::{Layer, Service};

/// A token bucket per key (a user, or a client address): `rate` units a
/// second on average, `burst` at once. Sends take one unit of the send
/// limiter; every call takes its cost ([`call_cost`]) from the call limiter;
/// logins and registrations one unit of their address's.
pub struct RateLimiter<K = UserId> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

/// Longest a refusal is held before it is answered. A refused client is
/// told to wait anyway (RetryInfo); holding the answer for that long makes a
/// client that ignores the hint wait too, so a flood of refused calls costs
/// the server one timer per call rather than a busy loop.
pub const MAX_TARPIT: Duration = Duration::from_secs(1);

/// Holds a refusal for its retry delay (at most [`MAX_TARPIT`]), then hands it back.
pub async fn tarpit<E>(wait: Duration, refusal: E) -> E {
    tokio::time::sleep(wait.min(MAX_TARPIT)).await;
    refusal
}

/// Buckets idle this long are forgotten (they would be full again).
const IDLE: Duration = Duration::from_secs(120);

impl<K: std::hash::Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` units from the user's bucket, or says how long to wait
    /// until they are there (a cost above the burst is charged the burst).
    pub fn take(&self, key: &K, cost: u32, now: Instant) -> Result<(), Duration> {
        let cost = f64::from(cost).min(self.burst);
        let mut buckets = self.buckets.lock();
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < IDLE);
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if refilled >= cost {
            *tokens = refilled - cost;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((cost - refilled) / self.rate))
        }
    }
}

/// What a call costs a user's call budget: 1 for a plain call, more for
/// those that read much (a history page by its size, the conversation list,
/// a subscription's sync).
pub fn call_cost(op: &switchboard_proto::bus::router_request::Op) -> u32 {
    use switchboard_proto::bus::router_request::Op;
    let page = |limit: u32| 1 + (if limit == 0 { 50 } else { limit.min(500) }) / 50;
    match op {
        Op::History(r) => page(r.limit),
        Op::TopicTimeline(r) => page(r.limit),
        Op::ListConversations(_) | Op::Sync(_) => 5,
        Op::ListContacts(_) | Op::ListMembers(_) | Op::ListMyGroups(_) | Op::ListTopics(_) => 2,
        _ => 1,
    }
}

/// Keys seen lately: one pass per key per interval (typing notices, per
/// user and conversation). Bounded: past its capacity it starts over.
pub struct Recently {
    every: Duration,
    seen: Mutex<HashMap<(UserId, String), Instant>>,
}

const RECENTLY_CAPACITY: usize = 100_000;

impl Recently {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` passed less than the interval before `now`.
    pub fn holds(&self, user: &UserId, what: &str, now: Instant) -> bool {
        self.seen
            .lock()
            .get(&(user.clone(), what.to_owned()))
            .is_some_and(|at| now.duration_since(*at) < self.every)
    }

    /// `key` passed at `now`.
    pub fn passed(&self, user: &UserId, what: &str, now: Instant) {
        let mut seen = self.seen.lock();
        if seen.len() >= RECENTLY_CAPACITY {
            seen.clear();
        }
        seen.insert((user.clone(), what.to_owned()), now);
    }
}

/// Open calls of one kind per user (SendStream calls), capped.
pub struct PerUserCap {
    max: usize,
    open: Mutex<HashMap<UserId, usize>>,
}

/// One open call; its slot is given back when dropped.
pub struct Slot {
    cap: std::sync::Arc<PerUserCap>,
    user: UserId,
}

impl PerUserCap {
    pub fn new(max: usize) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `user`, unless they hold `max` already.
    pub fn take(self: &std::sync::Arc<Self>, user: &UserId) -> Option<Slot> {
        let mut open = self.open.lock();
        let count = open.entry(user.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            cap: self.clone(),
            user: user.clone(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock();
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";

/// tonic refuses a request past the size limit with OUT_OF_RANGE; ours is
/// RESOURCE_EXHAUSTED, like every other limit. [`OversizeLayer`] rewrites it
/// for unary calls (an early status, in the headers); a stream's requests
/// are read after the headers went out, so streaming handlers map it here.
pub fn oversize_status(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange {
        Status::resource_exhausted(status.message().to_owned())
    } else {
        status
    }
}

#[derive(Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> Layer<S> for OversizeLayer {
    type Service = Oversize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Oversize { inner }
    }
}

#[derive(Clone)]
pub struct Oversize<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Oversize<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let headers = response.headers_mut();
            if headers
                .get("grpc-status")
                .is_some_and(|status| status == OUT_OF_RANGE)
            {
                headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_typing_notice_passes_once_per_interval_per_user_and_conversation() {
        let recently = Recently::new(Duration::from_secs(2));
        let (ann, ben) = (UserId::parse("ann").unwrap(), UserId::parse("ben").unwrap());
        let start = Instant::now();
        assert!(!recently.holds(&ann, "dm:ann:ben", start));
        recently.passed(&ann, "dm:ann:ben", start);
        assert!(recently.holds(&ann, "dm:ann:ben", start + Duration::from_millis(1999)));
        assert!(!recently.holds(&ann, "dm:ann:ben", start + Duration::from_secs(2)));
        assert!(!recently.holds(&ann, "g:gother", start));
        assert!(!recently.holds(&ben, "dm:ann:ben", start));
    }

    use super::*;

    #[test]
    fn a_user_holds_at_most_the_cap_and_slots_come_back() {
        let cap = PerUserCap::new(2);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let first = cap.take(&alice).unwrap();
        let _second = cap.take(&alice).unwrap();
        assert!(cap.take(&alice).is_none());
        assert!(cap.take(&bob).is_some(), "others are not affected");
        drop(first);
        assert!(cap.take(&alice).is_some());
    }

    #[test]
    fn reads_cost_by_their_size() {
        use switchboard_proto::bus::router_request::Op;
        use switchboard_proto::pb;
        let history = |limit| {
            call_cost(&Op::History(pb::HistoryRequest {
                limit,
                ..Default::default()
            }))
        };
        assert_eq!(history(0), 2, "the default page of 50");
        assert_eq!(history(500), 11);
        assert_eq!(history(10_000), 11, "pages are capped at 500");
        assert_eq!(call_cost(&Op::MarkRead(pb::MarkReadRequest::default())), 1);
        let limiter = RateLimiter::new(10.0, 20);
        let alice = UserId::parse("alice").unwrap();
        let start = Instant::now();
        assert!(limiter.take(&alice, 11, start).is_ok());
        assert_eq!(
            limiter.take(&alice, 11, start).unwrap_err(),
            Duration::from_millis(200),
            "two units short at 10 a second"
        );
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new(10.0, 3);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(&alice, 1, start).is_ok());
        }
        let wait = limiter.take(&alice, 1, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Others are not affected.
        assert!(limiter.take(&bob, 1, start).is_ok());
        // A tenth of a second later one more is allowed.
        assert!(
            limiter
                .take(&alice, 1, start + Duration::from_millis(100))
                .is_ok()
        );
        assert!(
            limiter
                .take(&alice, 1, start + Duration::from_millis(100))
                .is_err()
        );
    }
}
