//! Calls to the routers (and presence) over the bus: request/reply within
//! one deadline for the whole call, retried inside it when that cannot do
//! harm.

use std::time::{Duration, Instant};

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

/// Shortest attempt worth starting: less than this left of a call's budget
/// and the call gives up rather than send a request that cannot be answered.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// One request/reply on the bus within `budget` in total, attempts included:
/// after "no responders" (nobody got it) it always tries again, after a
/// timeout (it may have been applied) only if `repeatable`, while the budget
/// lasts. So a caller hears back within `budget` whatever the bus does.
pub async fn request_within(
    bus: &SharedBus,
    subject: &switchboard_shared::subjects::Subject,
    payload: Bytes,
    budget: Duration,
    repeatable: bool,
) -> Result<Bytes, BusError> {
    let deadline = Instant::now() + budget;
    let mut attempt: u32 = 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match bus
            .request(subject, telemetry::inject(), payload.clone(), left)
            .await
        {
            Ok(answer) => return Ok(answer),
            Err(err @ (BusError::NoResponders(_) | BusError::TimedOut(_)))
                if repeatable || matches!(err, BusError::NoResponders(_)) =>
            {
                let pause = Duration::from_millis(50 * u64::from(attempt));
                if Instant::now() + pause + MIN_ATTEMPT > deadline {
                    return Err(err);
                }
                tracing::debug!(%err, attempt, "bus call failed; trying again");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[derive(Clone)]
pub struct RouterClient {
    bus: SharedBus,
    /// A call's whole budget, every attempt included.
    timeout: Duration,
}

impl RouterClient {
    pub fn new(bus: SharedBus, timeout: Duration) -> Self {
        Self { bus, timeout }
    }

    pub async fn call(&self, caller: Option<bus::Caller>, op: Op) -> GatewayResult<Reply> {
        self.request(RouterRequest {
            caller,
            op: Some(op),
            ..RouterRequest::default()
        })
        .await
    }

    /// A call with every field of the request the caller's to fill (the
    /// client's address, for a login).
    pub async fn request(&self, request: RouterRequest) -> GatewayResult<Reply> {
        let repeatable = request.op.as_ref().is_some_and(repeatable);
        let payload = Bytes::from(request.encode_to_vec());
        let answer = request_within(
            &self.bus,
            &subjects::router_rpc(),
            payload,
            self.timeout,
            repeatable,
        )
        .await?;
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
