//! Deliveries from the routers to this gateway's connections, and logouts.

use std::sync::Arc;

use futures::StreamExt as _;
use prost::Message as _;
use switchboard_proto::bus::{DeliveryBatch, SessionRevoked};
use switchboard_shared::bus::Subscription;
use switchboard_shared::ids::SessionId;
use switchboard_shared::metrics::reason;
use switchboard_shared::shutdown::Shutdown;
use switchboard_shared::{subjects, telemetry};
use tonic::Status;

use crate::Shared;
use crate::registry::Inbound;

/// Subscribes, then dispatches in the background until shutdown.
pub async fn start(shared: Arc<Shared>, shutdown: Shutdown) -> anyhow::Result<()> {
    let deliveries = shared
        .bus
        .subscribe(&subjects::gateway_deliver(&shared.id), None)
        .await?;
    let revoked = shared
        .bus
        .subscribe(&subjects::session_revoked(), None)
        .await?;
    let tracker = shutdown.tracker.clone();
    tracker.spawn(run(shared, deliveries, revoked, shutdown));
    Ok(())
}

async fn run(
    shared: Arc<Shared>,
    mut deliveries: Subscription,
    mut revoked: Subscription,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = shutdown.token.cancelled() => return,
            Some(batch) = deliveries.next() => {
                let span = if telemetry::tracing_enabled() {
                    let span = tracing::info_span!("gateway.deliver", trace_id = tracing::field::Empty);
                    telemetry::continue_from(&span, &batch.headers);
                    span
                } else {
                    tracing::Span::none()
                };
                match DeliveryBatch::decode(batch.payload) {
                    Ok(batch) => {
                        for delivery in batch.deliveries {
                            shared.registry.dispatch(Arc::new(Inbound {
                                delivery,
                                span: span.clone(),
                            }));
                        }
                    }
                    Err(err) => tracing::warn!(%err, "undecodable delivery batch"),
                }
            }
            Some(notice) = revoked.next() => {
                let Ok(notice) = SessionRevoked::decode(notice.payload) else { continue };
                let Ok(session) = SessionId::parse(&notice.session_id) else { continue };
                for entry in shared.registry.of_session(&session) {
                    entry.ending.end(None, Status::unauthenticated("you logged out"), reason::LOGOUT);
                }
            }
            else => return,
        }
    }
}
