//! The presence service on the bus: answers gateways' requests on
//! `sb.presence.rpc`, announces online/offline flips on `sb.presence.changed`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use prost::Message as _;
use switchboard_proto::bus::{
    self, PresenceAck, PresenceChanged, PresenceRequest, PresenceResponse, presence_request::Op,
    presence_response::Result as Reply,
};
use switchboard_shared::bus::{Incoming, SharedBus};
use switchboard_shared::ids::{ConnectionId, DeviceId, GatewayId, GroupId, UserId};
use switchboard_shared::shutdown::Shutdown;
use switchboard_shared::subjects;
use tracing::Instrument as _;

use crate::registry::{ConnectionRecord, Registry, Transitions};
use crate::{PresenceError, PresenceResult};

#[derive(Clone)]
pub struct PresenceService {
    registry: Arc<dyn Registry>,
    bus: SharedBus,
}

fn invalid(err: switchboard_shared::ids::InvalidId) -> PresenceError {
    PresenceError::InvalidArgument(err.0)
}

fn groups(raw: &[String]) -> PresenceResult<Vec<GroupId>> {
    raw.iter()
        .map(|g| GroupId::parse(g).map_err(invalid))
        .collect()
}

fn connection(raw: Option<&bus::Connection>) -> PresenceResult<ConnectionRecord> {
    let raw = raw.ok_or_else(|| PresenceError::InvalidArgument("no connection".into()))?;
    Ok(ConnectionRecord {
        id: ConnectionId::parse(&raw.connection_id).map_err(invalid)?,
        user: UserId::parse(&raw.user_id).map_err(invalid)?,
        device: DeviceId::parse(&raw.device_id).map_err(invalid)?,
    })
}

impl PresenceService {
    pub fn new(registry: Arc<dyn Registry>, bus: SharedBus) -> Self {
        Self { registry, bus }
    }

    /// Subscribes, then serves requests in the background until shutdown.
    /// Returns once presence is taking requests.
    pub async fn start(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let mut requests = self
            .bus
            .subscribe(&subjects::presence_rpc(), Some(subjects::PRESENCE_QUEUE))
            .await?;
        let tracker = shutdown.tracker.clone();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.token.cancelled() => return,
                    request = requests.next() => {
                        let Some(request) = request else { return };
                        let service = self.clone();
                        shutdown.tracker.spawn(async move { service.answer(request).await });
                    }
                }
            }
        });
        Ok(())
    }

    async fn answer(&self, request: Incoming) {
        let Some(reply_to) = request.reply else {
            return;
        };
        let span = tracing::info_span!("presence.rpc", trace_id = tracing::field::Empty);
        switchboard_shared::telemetry::continue_from(&span, &request.headers);
        let response = match PresenceRequest::decode(request.payload) {
            Ok(request) => self.handle(request).instrument(span).await,
            Err(err) => Err(PresenceError::InvalidArgument(format!(
                "undecodable request: {err}"
            ))),
        };
        let reply = match response {
            Ok(known) => Reply::Ack(PresenceAck { known }),
            Err(err) => {
                tracing::warn!(%err, "presence request failed");
                Reply::Error(err.to_rpc())
            }
        };
        let payload = PresenceResponse {
            result: Some(reply),
        }
        .encode_to_vec();
        if let Err(err) = self
            .bus
            .publish(&reply_to, Vec::new(), Bytes::from(payload))
            .await
        {
            tracing::warn!(%err, "cannot answer presence request");
        }
    }

    /// Applies one request; returns whether the gateway was known.
    pub async fn handle(&self, request: PresenceRequest) -> PresenceResult<bool> {
        let op = request
            .op
            .ok_or_else(|| PresenceError::InvalidArgument("empty request".into()))?;
        match op {
            Op::Opened(opened) => {
                let gateway = GatewayId::parse(&opened.gateway_id).map_err(invalid)?;
                let connection = connection(opened.connection.as_ref())?;
                let outcome = self
                    .registry
                    .open(&gateway, &connection, opened.ttl_ms)
                    .await?;
                if outcome.came_online {
                    self.announce(&connection.user, true).await;
                }
                Ok(outcome.gateway_known)
            }
            Op::Closed(closed) => {
                let gateway = GatewayId::parse(&closed.gateway_id).map_err(invalid)?;
                let connection_id = ConnectionId::parse(&closed.connection_id).map_err(invalid)?;
                let user = UserId::parse(&closed.user_id).map_err(invalid)?;
                if self.registry.close(&gateway, &connection_id, &user).await? {
                    self.announce(&user, false).await;
                }
                Ok(true)
            }
            Op::Interest(interest) => {
                let gateway = GatewayId::parse(&interest.gateway_id).map_err(invalid)?;
                self.registry
                    .interest(
                        &gateway,
                        &groups(&interest.add)?,
                        &groups(&interest.remove)?,
                    )
                    .await
            }
            Op::Heartbeat(heartbeat) => {
                let gateway = GatewayId::parse(&heartbeat.gateway_id).map_err(invalid)?;
                self.registry.heartbeat(&gateway, heartbeat.ttl_ms).await
            }
            Op::Resync(state) => {
                let gateway = GatewayId::parse(&state.gateway_id).map_err(invalid)?;
                let connections = state
                    .connections
                    .iter()
                    .map(|c| connection(Some(c)))
                    .collect::<PresenceResult<Vec<_>>>()?;
                let transitions = self
                    .registry
                    .replace(
                        &gateway,
                        &connections,
                        &groups(&state.groups)?,
                        state.ttl_ms,
                    )
                    .await?;
                self.announce_all(transitions).await;
                Ok(true)
            }
            Op::Stopping(stopping) => {
                let gateway = GatewayId::parse(&stopping.gateway_id).map_err(invalid)?;
                let offline = self.registry.remove_gateway(&gateway).await?;
                self.announce_all(Transitions {
                    online: Vec::new(),
                    offline,
                })
                .await;
                Ok(true)
            }
        }
    }

    pub async fn announce_all(&self, transitions: Transitions) {
        for user in &transitions.online {
            self.announce(user, true).await;
        }
        for user in &transitions.offline {
            self.announce(user, false).await;
        }
    }

    async fn announce(&self, user: &UserId, online: bool) {
        let payload = PresenceChanged {
            user_id: user.to_string(),
            online,
        }
        .encode_to_vec();
        if let Err(err) = self
            .bus
            .publish(
                &subjects::presence_changed(),
                Vec::new(),
                Bytes::from(payload),
            )
            .await
        {
            tracing::warn!(%err, %user, online, "cannot announce presence change");
        }
    }
}
