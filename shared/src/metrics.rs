//! Every Prometheus metric Switchboard exports, defined here and nowhere
//! else. Names follow Prometheus conventions (`_total` counters, base units
//! in seconds); labels are closed sets, never a user, group or connection.
//! Each process registers all of them; a role only moves its own.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label values for the client transport.
pub mod transport {
    pub const GRPC: &str = "grpc";
    pub const GRPC_WEB: &str = "grpc_web";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    pub transport: &'static str,
}

/// Label values for why a client stream ended.
pub mod reason {
    /// The client went away.
    pub const CLIENT: &str = "client";
    /// It fell too far behind and was cut off.
    pub const SLOW_CONSUMER: &str = "slow_consumer";
    /// Its session logged out.
    pub const LOGOUT: &str = "logout";
    /// The token it was opened with expired.
    pub const EXPIRED: &str = "expired";
    /// The gateway is draining.
    pub const DRAIN: &str = "drain";
    /// Too many connections.
    pub const REFUSED: &str = "refused";
    /// The stream failed (store reset, router trouble).
    pub const ERROR: &str = "error";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DisconnectLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `Service/Method`, a closed set.
    pub method: String,
    /// The gRPC code name.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// A store operation (`append`, `history`, `locate_users`, ...).
    pub operation: &'static str,
}

/// What became of a notification the router sent out (a webhook, a Web
/// Push): each attempt that will be tried again, and each one's end.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// The receiver took it (2xx).
    Delivered,
    /// An attempt failed and another follows.
    Retried,
    /// The receiver refused it (a 4xx other than 408 and 429); not retried.
    Refused,
    /// Every attempt failed.
    Failed,
    /// The queue was full; never sent.
    Dropped,
}

/// Label values for the notification channel.
pub mod channel {
    pub const WEBHOOK: &str = "webhook";
    pub const WEB_PUSH: &str = "web_push";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub channel: &'static str,
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    // gateway
    pub connections: Family<TransportLabels, Gauge>,
    pub connects: Family<TransportLabels, Counter>,
    pub disconnects: Family<DisconnectLabels, Counter>,
    pub deliveries: Counter,
    pub delivery_latency: Histogram,
    pub slow_consumers: Counter,
    pub rpc_requests: Family<RpcLabels, Counter>,
    pub rpc_duration: Family<MethodLabels, Histogram>,
    pub rate_limited: Counter,
    pub client_connections: Gauge,
    pub connections_refused: Counter,
    pub idle_connections_closed: Counter,
    pub accept_errors: Counter,
    pub request_bodies_timed_out: Counter,
    pub tls_handshake_failures: Counter,
    pub tls_certificate_reloads: Counter,
    pub tls_certificate_reload_failures: Counter,
    // router
    pub fanout_gateways: Histogram,
    pub messages_stored: Counter,
    pub redelivered: Counter,
    pub expired_requests: Counter,
    pub store_duration: Family<OperationLabels, Histogram>,
    pub notifications: Family<NotificationLabels, Counter>,
    // bus
    pub nats_reconnects: Counter,
    pub nats_slow_consumers: Counter,
    // presence
    pub online_users: Gauge,
}

fn latency() -> Histogram {
    // 100 µs .. ~13 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Metrics {
    fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("switchboard"),
            connections: Family::default(),
            connects: Family::default(),
            disconnects: Family::default(),
            deliveries: Counter::default(),
            delivery_latency: latency(),
            slow_consumers: Counter::default(),
            rpc_requests: Family::default(),
            rpc_duration: Family::new_with_constructor(latency),
            rate_limited: Counter::default(),
            client_connections: Gauge::default(),
            connections_refused: Counter::default(),
            idle_connections_closed: Counter::default(),
            accept_errors: Counter::default(),
            request_bodies_timed_out: Counter::default(),
            tls_handshake_failures: Counter::default(),
            tls_certificate_reloads: Counter::default(),
            tls_certificate_reload_failures: Counter::default(),
            fanout_gateways: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            messages_stored: Counter::default(),
            redelivered: Counter::default(),
            expired_requests: Counter::default(),
            store_duration: Family::new_with_constructor(latency),
            notifications: Family::default(),
            nats_reconnects: Counter::default(),
            nats_slow_consumers: Counter::default(),
            online_users: Gauge::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "gateway_connections",
            "Open client streams",
            metrics.connections.clone(),
        );
        r.register(
            "gateway_connects",
            "Client streams opened",
            metrics.connects.clone(),
        );
        r.register(
            "gateway_disconnects",
            "Client streams ended, by reason",
            metrics.disconnects.clone(),
        );
        r.register(
            "gateway_deliveries",
            "Events written to client streams",
            metrics.deliveries.clone(),
        );
        r.register_with_unit(
            "delivery_latency",
            "From a router accepting a message to a gateway writing it to a client stream",
            prometheus_client::registry::Unit::Seconds,
            metrics.delivery_latency.clone(),
        );
        r.register(
            "gateway_slow_consumer_disconnects",
            "Client streams cut off for falling behind",
            metrics.slow_consumers.clone(),
        );
        r.register(
            "rpc_requests",
            "Client calls, by method and gRPC code",
            metrics.rpc_requests.clone(),
        );
        r.register_with_unit(
            "rpc_duration",
            "Client call latency, by method",
            prometheus_client::registry::Unit::Seconds,
            metrics.rpc_duration.clone(),
        );
        r.register(
            "gateway_rate_limited",
            "Sends refused by the per-user rate limit",
            metrics.rate_limited.clone(),
        );
        r.register(
            "gateway_client_connections",
            "Open client connections (TCP), whatever they carry",
            metrics.client_connections.clone(),
        );
        r.register(
            "gateway_connections_refused",
            "Client connections closed at once for being over a cap",
            metrics.connections_refused.clone(),
        );
        r.register(
            "gateway_idle_connections_closed",
            "Client connections closed for having no authenticated call for too long",
            metrics.idle_connections_closed.clone(),
        );
        r.register(
            "gateway_accept_errors",
            "Accepts that failed for lack of resources (file descriptors, memory)",
            metrics.accept_errors.clone(),
        );
        r.register(
            "gateway_request_bodies_timed_out",
            "Requests whose body did not arrive in time",
            metrics.request_bodies_timed_out.clone(),
        );
        r.register(
            "gateway_tls_handshake_failures",
            "Client connections closed because their TLS handshake failed or took too long",
            metrics.tls_handshake_failures.clone(),
        );
        r.register(
            "gateway_tls_certificate_reloads",
            "Times the gateway took up a changed certificate and key",
            metrics.tls_certificate_reloads.clone(),
        );
        r.register(
            "gateway_tls_certificate_reload_failures",
            "Changed certificate or key files that could not be used (the previous pair stays)",
            metrics.tls_certificate_reload_failures.clone(),
        );
        r.register(
            "router_fanout_gateways",
            "Gateways one routed event went to",
            metrics.fanout_gateways.clone(),
        );
        r.register(
            "router_messages_stored",
            "Messages stored",
            metrics.messages_stored.clone(),
        );
        r.register(
            "router_outbox_redelivered",
            "Messages redelivered from the outbox (their router died)",
            metrics.redelivered.clone(),
        );
        r.register(
            "router_requests_expired",
            "Requests dropped unworked: their gateway had stopped waiting before a router took them up",
            metrics.expired_requests.clone(),
        );
        r.register_with_unit(
            "store_operation_duration",
            "Store (Redis or embedded) operation latency, by operation",
            prometheus_client::registry::Unit::Seconds,
            metrics.store_duration.clone(),
        );
        r.register(
            "router_notifications",
            "Webhooks and Web Pushes by channel and outcome: delivered, retried (per attempt), refused, failed (every attempt), dropped (queue full)",
            metrics.notifications.clone(),
        );
        r.register(
            "nats_reconnects",
            "Reconnections to NATS",
            metrics.nats_reconnects.clone(),
        );
        r.register(
            "nats_slow_consumer_events",
            "NATS slow-consumer events (messages dropped by the client library)",
            metrics.nats_slow_consumers.clone(),
        );
        r.register(
            "presence_online_users",
            "Users with at least one connection",
            metrics.online_users.clone(),
        );
        metrics
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn notification(&self, channel: &'static str, outcome: NotificationOutcome) -> Counter {
        let outcome = match outcome {
            NotificationOutcome::Delivered => "delivered",
            NotificationOutcome::Retried => "retried",
            NotificationOutcome::Refused => "refused",
            NotificationOutcome::Failed => "failed",
            NotificationOutcome::Dropped => "dropped",
        };
        self.notifications
            .get_or_create(&NotificationLabels { channel, outcome })
            .clone()
    }

    pub fn observe_store(&self, operation: &'static str, elapsed: Duration) {
        self.store_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Times a future into the store latency histogram.
pub async fn timed<T>(operation: &'static str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = work.await;
    metrics().observe_store(operation, started.elapsed());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        metrics().deliveries.inc();
        metrics()
            .connections
            .get_or_create(&TransportLabels {
                transport: transport::GRPC_WEB,
            })
            .set(1);
        metrics().observe_store("append", Duration::from_millis(1));
        let text = metrics().encode();
        for name in [
            "switchboard_gateway_deliveries_total",
            "switchboard_delivery_latency_seconds_bucket",
            "switchboard_gateway_connections{transport=\"grpc_web\"} 1",
            "switchboard_store_operation_duration_seconds",
            "switchboard_presence_online_users",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
