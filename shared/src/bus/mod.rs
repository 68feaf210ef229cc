//! The message bus between services: NATS in production ([`nats::NatsBus`]),
//! an in-process router in the standalone mode ([`local::LocalBus`]). Both
//! give the same semantics: fire-and-forget publish, request/reply with a
//! deadline, subscriptions with optional queue groups (one member of a group
//! gets each message), and "no responders" reported at once.

pub mod local;
pub mod nats;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::subjects::Subject;

/// Message headers (trace context travels here). Few and small.
pub type Headers = Vec<(String, String)>;

/// A message received on a subscription.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub subject: Subject,
    /// Where to send the answer, for requests.
    pub reply: Option<Subject>,
    pub headers: Headers,
    pub payload: Bytes,
}

pub type Subscription = Pin<Box<dyn Stream<Item = Incoming> + Send>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("no service is listening on {0}")]
    NoResponders(String),
    #[error("no answer from {0} in time")]
    TimedOut(String),
    #[error("bus error: {0}")]
    Failed(String),
}

impl BusError {
    /// Whether trying the same call again may succeed (another instance may
    /// answer). Only safe for idempotent calls.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NoResponders(_) | Self::TimedOut(_))
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish(
        &self,
        subject: &Subject,
        headers: Headers,
        payload: Bytes,
    ) -> Result<(), BusError>;

    async fn request(
        &self,
        subject: &Subject,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError>;

    async fn subscribe(
        &self,
        subject: &Subject,
        queue_group: Option<&str>,
    ) -> Result<Subscription, BusError>;

    /// Waits until everything published so far was handed to the bus.
    async fn flush(&self) -> Result<(), BusError>;

    /// Whether the bus is reachable right now (for readiness).
    fn is_connected(&self) -> bool;

    /// Which bus this is (`nats at host:port`), for logs and errors.
    fn name(&self) -> &str;
}

pub type SharedBus = Arc<dyn Bus>;
