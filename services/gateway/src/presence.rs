//! This gateway's side of presence: connections opened and closed, groups
//! this gateway hosts members of, heartbeats, and a full resync whenever
//! presence says it does not know us.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use switchboard_proto::bus::{
    self, ConnectionClosed, ConnectionOpened, GatewayHeartbeat, GatewayState, GatewayStopping,
    GroupInterest, PresenceRequest, PresenceResponse, presence_request::Op,
    presence_response::Result as Reply,
};
use switchboard_shared::bus::SharedBus;
use switchboard_shared::ids::{ConnectionId, GatewayId, GroupId, UserId};
use switchboard_shared::subjects;
use tokio::sync::{mpsc, oneshot};

use crate::error::{GatewayError, GatewayResult};

/// A presence request's whole budget, attempts included.
const REQUEST_BUDGET: Duration = Duration::from_secs(3);

enum InterestOp {
    /// Make sure presence routes these groups here; answers once it does.
    Want(Vec<GroupId>, oneshot::Sender<GatewayResult<()>>),
    /// No local member left in these groups.
    Drop(Vec<GroupId>),
    /// Replace everything presence has for this gateway.
    Resync(GatewayState, oneshot::Sender<GatewayResult<()>>),
}

#[derive(Clone)]
pub struct PresenceClient {
    bus: SharedBus,
    gateway: GatewayId,
    ttl_ms: u32,
    interest: mpsc::UnboundedSender<InterestOp>,
}

impl PresenceClient {
    /// Starts the task that applies interest changes one at a time, in order.
    pub fn start(bus: SharedBus, gateway: GatewayId, ttl: Duration) -> Self {
        let (interest, ops) = mpsc::unbounded_channel();
        let client = Self {
            bus,
            gateway,
            ttl_ms: u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX),
            interest,
        };
        tokio::spawn(client.clone().apply_interest(ops));
        client
    }

    pub fn ttl_ms(&self) -> u32 {
        self.ttl_ms
    }

    async fn request(&self, op: Op) -> GatewayResult<bool> {
        let payload = Bytes::from(PresenceRequest { op: Some(op) }.encode_to_vec());
        // Every presence request is safe to repeat.
        let answer = crate::upstream::request_within(
            &self.bus,
            &subjects::presence_rpc(),
            payload,
            REQUEST_BUDGET,
            true,
        )
        .await?;
        let response = PresenceResponse::decode(answer)
            .map_err(|e| GatewayError::Internal(format!("undecodable presence answer: {e}")))?;
        match response.result {
            Some(Reply::Ack(ack)) => Ok(ack.known),
            Some(Reply::Error(err)) => Err(GatewayError::Upstream(err)),
            None => Err(GatewayError::Internal("empty presence answer".into())),
        }
    }

    /// Registers a connection. False if presence did not know this gateway
    /// (the caller should resync).
    pub async fn opened(&self, connection: bus::Connection) -> GatewayResult<bool> {
        self.request(Op::Opened(ConnectionOpened {
            gateway_id: self.gateway.to_string(),
            connection: Some(connection),
            ttl_ms: self.ttl_ms,
        }))
        .await
    }

    pub async fn closed(&self, connection: &ConnectionId, user: &UserId) {
        let closed = Op::Closed(ConnectionClosed {
            gateway_id: self.gateway.to_string(),
            connection_id: connection.to_string(),
            user_id: user.to_string(),
        });
        if let Err(err) = self.request(closed).await {
            // The next resync or the reaper clears it.
            tracing::warn!(%err, %connection, "cannot unregister a connection");
        }
    }

    /// Returns once presence routes these groups' deliveries here.
    pub async fn want_groups(&self, groups: Vec<GroupId>) -> GatewayResult<()> {
        let (done, answer) = oneshot::channel();
        self.interest
            .send(InterestOp::Want(groups, done))
            .map_err(|_| GatewayError::Unavailable("the gateway is stopping".into()))?;
        answer
            .await
            .map_err(|_| GatewayError::Unavailable("the gateway is stopping".into()))?
    }

    pub fn drop_groups(&self, groups: Vec<GroupId>) {
        if !groups.is_empty() {
            let _ = self.interest.send(InterestOp::Drop(groups));
        }
    }

    pub async fn resync(&self, state: GatewayState) -> GatewayResult<()> {
        let (done, answer) = oneshot::channel();
        self.interest
            .send(InterestOp::Resync(state, done))
            .map_err(|_| GatewayError::Unavailable("the gateway is stopping".into()))?;
        answer
            .await
            .map_err(|_| GatewayError::Unavailable("the gateway is stopping".into()))?
    }

    /// Keeps this gateway alive; false when presence needs a resync.
    pub async fn heartbeat(&self) -> GatewayResult<bool> {
        self.request(Op::Heartbeat(GatewayHeartbeat {
            gateway_id: self.gateway.to_string(),
            ttl_ms: self.ttl_ms,
        }))
        .await
    }

    /// This gateway is going away: presence forgets it at once.
    pub async fn stopping(&self) -> GatewayResult<()> {
        self.request(Op::Stopping(GatewayStopping {
            gateway_id: self.gateway.to_string(),
        }))
        .await
        .map(|_| ())
    }

    fn interest_request(&self, add: &[GroupId], remove: &[GroupId]) -> Op {
        Op::Interest(GroupInterest {
            gateway_id: self.gateway.to_string(),
            add: add.iter().map(ToString::to_string).collect(),
            remove: remove.iter().map(ToString::to_string).collect(),
        })
    }

    async fn apply_interest(self, mut ops: mpsc::UnboundedReceiver<InterestOp>) {
        // Groups presence routes here, as far as we know.
        let mut routed: HashSet<GroupId> = HashSet::new();
        while let Some(op) = ops.recv().await {
            match op {
                InterestOp::Want(groups, done) => {
                    let missing: Vec<GroupId> =
                        groups.into_iter().filter(|g| !routed.contains(g)).collect();
                    let result = if missing.is_empty() {
                        Ok(())
                    } else {
                        self.request(self.interest_request(&missing, &[]))
                            .await
                            .map(|_| routed.extend(missing))
                    };
                    let _ = done.send(result);
                }
                InterestOp::Drop(groups) => {
                    let present: Vec<GroupId> =
                        groups.into_iter().filter(|g| routed.remove(g)).collect();
                    if !present.is_empty()
                        && let Err(err) = self.request(self.interest_request(&[], &present)).await
                    {
                        // Extra deliveries the gateway ignores until the next resync.
                        tracing::warn!(%err, "cannot drop group interest");
                    }
                }
                InterestOp::Resync(state, done) => {
                    let groups = state
                        .groups
                        .iter()
                        .filter_map(|g| GroupId::parse(g).ok())
                        .collect();
                    let result = self.request(Op::Resync(state)).await.map(|_| ());
                    if result.is_ok() {
                        routed = groups;
                    }
                    let _ = done.send(result);
                }
            }
        }
    }
}
