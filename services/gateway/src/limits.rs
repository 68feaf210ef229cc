//! Limits the gateway enforces itself: the per-user send rate, and request
//! sizes answered in gRPC's words.
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

/// A token bucket per user: `rate` sends a second on average, `burst` at once.
pub struct SendLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<UserId, (f64, Instant)>>,
}

/// Buckets idle this long are forgotten (they would be full again).
const IDLE: Duration = Duration::from_secs(120);

impl SendLimiter {
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one send from the user's bucket, or says how long to wait.
    pub fn check(&self, user: &UserId, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock();
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < IDLE);
        }
        let (tokens, at) = buckets.entry(user.clone()).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.rate))
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
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = SendLimiter::new(10.0, 3);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&alice, start).is_ok());
        }
        let wait = limiter.check(&alice, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Others are not affected.
        assert!(limiter.check(&bob, start).is_ok());
        // A tenth of a second later one more is allowed.
        assert!(
            limiter
                .check(&alice, start + Duration::from_millis(100))
                .is_ok()
        );
        assert!(
            limiter
                .check(&alice, start + Duration::from_millis(100))
                .is_err()
        );
    }
}
