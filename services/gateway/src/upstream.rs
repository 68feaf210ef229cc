//! Calls to the routers over the bus: request/reply with a deadline, retried
//! when that cannot do harm.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use switchboard_proto::bus::{
    self, RouterRequest, RouterResponse, router_request::Op, router_response::Result as Reply,
};
use switchboard_shared::bus::{BusError, SharedBus};
use switchboard_shared::{subjects, telemetry};

use crate::error::{GatewayError, GatewayResult};

/// Whether a call may be sent again after a timeout (the first attempt may
/// have been applied). Sends carry a client message id, so they may.
fn repeatable(op: &Op) -> bool {
    !matches!(
        op,
        Op::Register(_)
            | Op::CreateGroup(_)
            | Op::InviteMember(_)
            | Op::JoinGroup(_)
            | Op::LeaveGroup(_)
            | Op::RemoveMember(_)
            | Op::RemoveContact(_)
            | Op::CreateTopic(_)
            | Op::DeleteTopic(_)
            | Op::AddTopicContacts(_)
            | Op::RemoveTopicContacts(_)
            | Op::LeaveTopic(_)
    )
}

#[derive(Clone)]
pub struct RouterClient {
    bus: SharedBus,
    timeout: Duration,
    attempts: u32,
}

impl RouterClient {
    pub fn new(bus: SharedBus, timeout: Duration, attempts: u32) -> Self {
        Self {
            bus,
            timeout,
            attempts: attempts.max(1),
        }
    }

    pub async fn call(&self, caller: Option<bus::Caller>, op: Op) -> GatewayResult<Reply> {
        let repeatable = repeatable(&op);
        let payload = Bytes::from(
            RouterRequest {
                caller,
                op: Some(op),
            }
            .encode_to_vec(),
        );
        let mut attempt = 1;
        let answer = loop {
            match self
                .bus
                .request(
                    &subjects::router_rpc(),
                    telemetry::inject(),
                    payload.clone(),
                    self.timeout,
                )
                .await
            {
                Ok(answer) => break answer,
                // No router got it: always safe to try again. A timeout may
                // have been applied: only repeatable calls try again.
                Err(err @ (BusError::NoResponders(_) | BusError::TimedOut(_)))
                    if attempt < self.attempts
                        && (repeatable || matches!(err, BusError::NoResponders(_))) =>
                {
                    tracing::debug!(%err, attempt, "router call failed; trying again");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        };
        let response = RouterResponse::decode(answer)
            .map_err(|e| GatewayError::Internal(format!("undecodable router answer: {e}")))?;
        match response.result {
            Some(Reply::Error(err)) => Err(GatewayError::Upstream(err)),
            Some(reply) => Ok(reply),
            None => Err(GatewayError::Internal("empty router answer".into())),
        }
    }
}

/// Unwraps the expected variant of a router reply.
#[macro_export]
macro_rules! expect_reply {
    ($reply:expr, $variant:ident) => {
        match $reply {
            switchboard_proto::bus::router_response::Result::$variant(inner) => Ok(inner),
            _ => Err($crate::error::GatewayError::Internal(
                concat!(
                    "the router answered something other than ",
                    stringify!($variant)
                )
                .into(),
            )),
        }
    };
}
