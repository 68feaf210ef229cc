//! Deliveries from the routers to this gateway's connections, and logouts.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use prost::Message as _;
use switchboard_proto::bus::{DeliveryBatch, SessionRevoked};
use switchboard_proto::pb::event::Kind;
use switchboard_shared::bus::Subscription;
use switchboard_shared::ids::SessionId;
use switchboard_shared::metrics::reason;
use switchboard_shared::shutdown::Shutdown;
use switchboard_shared::{subjects, telemetry};
use tonic::Status;

use crate::Shared;
use crate::registry::Inbound;
use crate::sequencer::Sequencer;

/// The conversation and seq of a delivered message (other events are not
/// ordered by seq and go out as they come).
fn message_position(inbound: &Inbound) -> Option<(&str, u64)> {
    match inbound.delivery.event.as_ref()?.kind.as_ref()? {
        Kind::Message(message) => Some((message.conversation_id.as_str(), message.seq)),
        _ => None,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

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
    let mut sequencer = Sequencer::new(shared.config.reorder_hold);
    loop {
        let deadline = sequencer.next_deadline();
        tokio::select! {
            () = shutdown.token.cancelled() => return,
            () = sleep_until(deadline) => {
                for inbound in sequencer.expire(Instant::now()) {
                    shared.registry.dispatch(inbound);
                }
            }
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
                        let now = Instant::now();
                        for delivery in batch.deliveries {
                            let inbound = Arc::new(Inbound {
                                delivery,
                                span: span.clone(),
                            });
                            match message_position(&inbound) {
                                Some((conversation, seq)) => {
                                    let conversation = conversation.to_owned();
                                    for ready in sequencer.offer(&conversation, seq, inbound, now) {
                                        shared.registry.dispatch(ready);
                                    }
                                }
                                None => {
                                    shared.registry.dispatch(inbound);
                                }
                            }
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
