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
use switchboard_shared::clock::now_ms;
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
            | Op::TransferOwnership(_)
            | Op::DisbandGroup(_)
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

    /// A read made for a live stream (a replay, a hole filled from history).
    /// No client waits to retry it, and one that went unanswered may only
    /// have reached a router that died holding it: the whole call, with its
    /// own budget, is made again, up to `calls` times. Refusals from a router
    /// (a stalled store included) are not retried.
    pub async fn call_for_stream(
        &self,
        caller: bus::Caller,
        op: Op,
        calls: u32,
    ) -> GatewayResult<Reply> {
        let request = RouterRequest {
            caller: Some(caller),
            op: Some(op),
            ..RouterRequest::default()
        };
        let mut left = calls.max(1);
        loop {
            left -= 1;
            match self.request(request.clone()).await {
                Err(GatewayError::Unavailable(why)) if left > 0 => {
                    tracing::debug!(%why, "a read for a stream went unanswered; asking again");
                }
                answer => return answer,
            }
        }
    }

    /// A call with every field of the request the caller's to fill (the
    /// client's address, for a login).
    /// The router is told when this call stops waiting, and drops it if it
    /// only gets to it later.
    pub async fn request(&self, mut request: RouterRequest) -> GatewayResult<Reply> {
        let budget_ms = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        request.answer_by_unix_ms = now_ms().saturating_add(budget_ms);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt as _;
    use switchboard_proto::bus::RouterResponse;
    use switchboard_proto::pb;
    use switchboard_shared::bus::SharedBus;
    use switchboard_shared::bus::nats::{NatsBus, NatsConfig};
    use switchboard_shared::subjects;
    use switchboard_testkit::NatsServer;

    use super::*;

    async fn connect(nats: &NatsServer, name: &str) -> SharedBus {
        Arc::new(
            NatsBus::connect(&NatsConfig {
                url: nats.url(),
                user: None,
                password: None,
                creds_file: None,
                client_name: name.into(),
            })
            .await
            .unwrap(),
        )
    }

    /// A router on real NATS that swallows the first `lost` requests (as one
    /// killed while holding them would) and answers the rest.
    async fn router_losing(bus: SharedBus, lost: usize) -> Arc<AtomicUsize> {
        let seen = Arc::new(AtomicUsize::new(0));
        let mut requests = bus
            .subscribe(&subjects::router_rpc(), Some(subjects::ROUTER_QUEUE))
            .await
            .unwrap();
        bus.flush().await.unwrap();
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                if counter.fetch_add(1, Ordering::SeqCst) < lost {
                    continue;
                }
                let answer = RouterResponse {
                    result: Some(Reply::History(pb::HistoryResponse::default())),
                };
                let reply = request.reply.unwrap();
                bus.publish(&reply, vec![], Bytes::from(answer.encode_to_vec()))
                    .await
                    .unwrap();
            }
        });
        seen
    }

    fn history() -> Op {
        Op::History(pb::HistoryRequest {
            conversation_id: "dm:alice:bob".into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_read_for_a_stream_is_asked_again_after_a_lost_call() {
        let nats = NatsServer::start();
        let seen = router_losing(connect(&nats, "router").await, 1).await;
        let client = RouterClient::new(connect(&nats, "gateway").await, Duration::from_millis(300));
        let reply = client
            .call_for_stream(bus::Caller::default(), history(), 3)
            .await;
        assert!(matches!(reply, Ok(Reply::History(_))), "{reply:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_client_call_answers_within_one_budget_and_reads_for_streams_give_up() {
        let nats = NatsServer::start();
        let seen = router_losing(connect(&nats, "router").await, usize::MAX).await;
        let client = RouterClient::new(connect(&nats, "gateway").await, Duration::from_millis(300));
        // A client's call: one budget, then UNAVAILABLE for the client to retry.
        let started = Instant::now();
        let reply = client.call(Some(bus::Caller::default()), history()).await;
        assert!(
            matches!(reply, Err(GatewayError::Unavailable(_))),
            "{reply:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        // A read for a stream: as many calls as it was given, no more.
        let before = seen.load(Ordering::SeqCst);
        let reply = client
            .call_for_stream(bus::Caller::default(), history(), 3)
            .await;
        assert!(
            matches!(reply, Err(GatewayError::Unavailable(_))),
            "{reply:?}"
        );
        let calls = seen.load(Ordering::SeqCst) - before;
        assert!(
            (3..=6).contains(&calls),
            "{calls} requests reached the router"
        );
    }
}
