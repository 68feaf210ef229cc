use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use switchboard_proto::bus::{Caller, SyncRequest, SyncResponse, router_request::Op};
use switchboard_proto::pb::{self, chat_service_server::ChatService};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ClientMsgId, ConnectionId, GroupId};
use switchboard_shared::metrics;
use switchboard_shared::token::{Claims, TokenError};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use super::{Api, forward, observe};
use crate::connection::{Connection, Registration, Start, client_cursors, plan_replay};
use crate::error::{GatewayError, GatewayResult, send_failure};
use crate::registry::{Ending, Entry};
use crate::{Shared, auth, expect_reply};

pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;
pub type SendResults = Pin<Box<dyn Stream<Item = Result<pb::SendResult, Status>> + Send>>;

impl Api {
    async fn sync(&self, caller: &switchboard_proto::bus::Caller) -> GatewayResult<SyncResponse> {
        let reply = self
            .shared
            .router
            .call(Some(caller.clone()), Op::Sync(SyncRequest {}))
            .await?;
        expect_reply!(reply, Sync)
    }

    /// One send of a SendStream call: what a unary Send does, for a caller
    /// authenticated when the call opened.
    async fn send_one(
        &self,
        claims: &Claims,
        caller: &Caller,
        mut request: pb::SendRequest,
    ) -> pb::SendResult {
        if request.client_msg_id.is_empty() {
            request.client_msg_id = ClientMsgId::generate().to_string();
        }
        let client_msg_id = request.client_msg_id.clone();
        let started = std::time::Instant::now();
        let result = async {
            if claims.expires_at_ms <= now_ms() {
                return Err(GatewayError::Unauthenticated(
                    TokenError::Expired.to_string(),
                ));
            }
            self.check_size(&request)?;
            self.check_send_rate(&claims.user).await?;
            self.check_call_rate(&claims.user, 1).await?;
            let reply = self
                .shared
                .router
                .call(Some(caller.clone()), Op::Send(request))
                .await?;
            expect_reply!(reply, Send)
        }
        .await
        .map_err(Status::from);
        observe("ChatService/SendStream", started, &result);
        pb::SendResult {
            client_msg_id,
            outcome: Some(match result {
                Ok(sent) => pb::send_result::Outcome::Sent(sent),
                Err(status) => pb::send_result::Outcome::Failed(send_failure(&status)),
            }),
        }
    }
}

/// A SendStream call between two requests.
struct SendCall {
    api: Api,
    claims: Claims,
    caller: Caller,
    requests: Streaming<pb::SendRequest>,
    /// The user's slot among their open SendStream calls.
    _slot: crate::limits::Slot,
}

/// The next result of a SendStream call, or its end: the client closed its
/// side, sent something unreadable (the call ends with that status), or the
/// gateway is draining.
async fn next_send(
    mut call: SendCall,
) -> Option<(Result<pb::SendResult, Status>, Option<SendCall>)> {
    let next = tokio::select! {
        biased;
        () = call.api.shared.draining.cancelled() => {
            return Some((Err(Status::unavailable("the gateway is shutting down; reconnect")), None));
        }
        next = call.requests.message() => next,
    };
    let request = match next {
        Ok(Some(request)) => request,
        Ok(None) => return None,
        Err(status) => return Some((Err(crate::limits::oversize_status(status)), None)),
    };
    // Each message its own trace, as a unary Send is.
    let span = tracing::info_span!(parent: None, "SendStream.send", rpc.method = "SendStream");
    let result = call
        .api
        .send_one(&call.claims, &call.caller, request)
        .instrument(span)
        .await;
    Some((Ok(result), Some(call)))
}

/// Registers the connection with presence, and unregisters it once it ends,
/// in that order whatever happens to the request that opened it.
fn spawn_presence_lifetime(
    shared: Arc<Shared>,
    entry: Arc<Entry>,
) -> oneshot::Receiver<GatewayResult<bool>> {
    let (opened, answer) = oneshot::channel();
    tokio::spawn(async move {
        let result = shared.presence.opened(entry.describe()).await;
        let _ = opened.send(result);
        entry.ending.token().cancelled().await;
        shared.presence.closed(&entry.id, &entry.user).await;
    });
    answer
}

#[tonic::async_trait]
impl ChatService for Api {
    type SubscribeStream = EventStream;
    type SendStreamStream = SendResults;

    async fn send_stream(
        &self,
        request: Request<Streaming<pb::SendRequest>>,
    ) -> Result<Response<Self::SendStreamStream>, Status> {
        let claims = self.claims(&request)?;
        if self.shared.draining.is_cancelled() {
            return Err(GatewayError::Unavailable(
                "this gateway is shutting down; connect to another".into(),
            )
            .into());
        }
        let slot = self.shared.send_streams.take(&claims.user).ok_or_else(|| {
            GatewayError::ResourceExhausted {
                message: format!(
                    "too many open send streams for one user (at most {}); close one first",
                    self.shared.send_streams.max()
                ),
                retry_after: Some(std::time::Duration::from_secs(5)),
            }
        })?;
        let call = SendCall {
            caller: auth::caller(&claims, &self.shared.id),
            claims,
            api: self.clone(),
            requests: request.into_inner(),
            _slot: slot,
        };
        let results =
            futures::stream::unfold(Some(call), |call| async move { next_send(call?).await });
        Ok(Response::new(Box::pin(results)))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let claims = self.claims(&request)?;
        let caller = auth::caller(&claims, &self.shared.id);
        let transport = if request
            .metadata()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc-web"))
        {
            metrics::transport::GRPC_WEB
        } else {
            metrics::transport::GRPC
        };
        let request = request.into_inner();
        self.check_size(&request)?;
        // A subscription starts with two syncs of every conversation.
        self.check_call_rate(
            &claims.user,
            2 * crate::limits::call_cost(&Op::Sync(SyncRequest {})),
        )
        .await?;
        let shared = &self.shared;
        let limits = &shared.config.limits;
        if shared.draining.is_cancelled() {
            return Err(GatewayError::Unavailable(
                "this gateway is shutting down; connect to another".into(),
            )
            .into());
        }
        if shared.registry.len() >= limits.max_connections {
            return Err(GatewayError::ResourceExhausted {
                message: "this gateway is full; connect to another".into(),
                retry_after: Some(std::time::Duration::from_secs(1)),
            }
            .into());
        }
        if shared.registry.connections_of(&claims.user) >= limits.max_connections_per_user {
            return Err(GatewayError::ResourceExhausted {
                message: format!(
                    "too many open streams for one user (at most {}); close one first",
                    limits.max_connections_per_user
                ),
                retry_after: Some(std::time::Duration::from_secs(5)),
            }
            .into());
        }

        // Registered here and with presence first, so that everything stored
        // from now on is routed to this gateway...
        let (queue, inbound) = mpsc::channel(shared.config.connection_queue);
        let entry = Arc::new(Entry {
            id: ConnectionId::generate(),
            user: claims.user.clone(),
            session: claims.session.clone(),
            device: claims.device.clone(),
            transport,
            queue,
            ending: Ending::default(),
        });
        shared.registry.add(entry.clone());
        let labels = metrics::TransportLabels { transport };
        metrics::metrics().connects.get_or_create(&labels).inc();
        metrics::metrics().connections.get_or_create(&labels).inc();
        let registration = Registration {
            shared: shared.clone(),
            entry: entry.clone(),
        };
        let known = spawn_presence_lifetime(shared.clone(), entry.clone())
            .await
            .map_err(|_| GatewayError::Unavailable("the gateway is stopping".into()))??;
        if !known {
            crate::spawn_resync(shared.clone());
        }

        // ...then the user's conversations, with their groups routed here...
        let first = self.sync(&caller).await?;
        let groups: Vec<GroupId> = first
            .group_ids
            .iter()
            .filter_map(|g| GroupId::parse(g).ok())
            .collect();
        shared
            .registry
            .join_groups(&entry.id, groups.clone())
            .await?;
        // ...and the heads once more: whatever was stored while the groups
        // were being routed here is replayed, not lost.
        let second = self.sync(&caller).await?;

        let (resume, epoch_notice) = client_cursors(&request, &first.epoch);
        let mut plan = plan_replay(resume, &first.heads, shared.config.max_replay);
        for head in &second.heads {
            let cursor = plan
                .cursors
                .entry(head.conversation_id.clone())
                .or_insert(0);
            if head.seq > *cursor && !plan.replay.contains(&head.conversation_id) {
                plan.replay.push(head.conversation_id.clone());
            }
        }
        let mut first_events = vec![pb::Event {
            kind: Some(pb::event::Kind::Ready(pb::Ready {
                session_id: claims.session.to_string(),
                gateway_id: shared.id.to_string(),
                epoch: first.epoch.clone(),
                heartbeat_interval_ms: u32::try_from(shared.config.client_heartbeat.as_millis())
                    .unwrap_or(u32::MAX),
            })),
        }];
        first_events.extend(epoch_notice);
        first_events.extend(plan.notices);
        tracing::debug!(user = %claims.user, connection = %entry.id, "subscribed");

        let connection = Connection::new(
            registration,
            caller,
            inbound,
            Start {
                expires_at_ms: claims.expires_at_ms,
                epoch: first.epoch,
                cursors: plan.cursors,
                groups: groups.into_iter().collect::<HashSet<_>>(),
                first_events,
                replay: plan.replay,
                closing: plan.closing,
            },
        );
        let stream = futures::stream::unfold(connection, |mut connection| async move {
            connection
                .next_event()
                .await
                .map(|event| (event, connection))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        let mut request = request;
        self.check_size(request.get_ref())?;
        self.rate_limit(&request).await?;
        // Without a client id, one made here still keeps the gateway's own
        // retries from storing the message twice.
        if request.get_ref().client_msg_id.is_empty() {
            request.get_mut().client_msg_id = ClientMsgId::generate().to_string();
        }
        forward!(self, request, Send)
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        forward!(self, request, History)
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        forward!(self, request, MarkRead)
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        forward!(self, request, ListConversations)
    }

    async fn list_read_cursors(
        &self,
        request: Request<pb::ListReadCursorsRequest>,
    ) -> Result<Response<pb::ListReadCursorsResponse>, Status> {
        forward!(self, request, ListReadCursors)
    }

    async fn delete_message(
        &self,
        request: Request<pb::DeleteMessageRequest>,
    ) -> Result<Response<pb::DeleteMessageResponse>, Status> {
        forward!(self, request, DeleteMessage)
    }

    async fn edit_message(
        &self,
        request: Request<pb::EditMessageRequest>,
    ) -> Result<Response<pb::EditMessageResponse>, Status> {
        forward!(self, request, EditMessage)
    }

    async fn react(
        &self,
        request: Request<pb::ReactRequest>,
    ) -> Result<Response<pb::ReactResponse>, Status> {
        forward!(self, request, React)
    }

    async fn list_reactions(
        &self,
        request: Request<pb::ListReactionsRequest>,
    ) -> Result<Response<pb::ListReactionsResponse>, Status> {
        forward!(self, request, ListReactions)
    }

    async fn accept_conversation(
        &self,
        request: Request<pb::AcceptConversationRequest>,
    ) -> Result<Response<pb::AcceptConversationResponse>, Status> {
        forward!(self, request, AcceptConversation)
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        forward!(self, request, Search)
    }

    async fn mute_conversation(
        &self,
        request: Request<pb::MuteConversationRequest>,
    ) -> Result<Response<pb::MuteConversationResponse>, Status> {
        forward!(self, request, MuteConversation)
    }

    async fn typing(
        &self,
        request: Request<pb::TypingRequest>,
    ) -> Result<Response<pb::TypingResponse>, Status> {
        // One notice per user and conversation every 2 s is passed on; the
        // router checks who may say so (a refusal is never remembered).
        let user = self.claims(&request).map_err(Status::from)?.user;
        let conversation = request.get_ref().conversation_id.clone();
        if self
            .shared
            .typing
            .holds(&user, &conversation, std::time::Instant::now())
        {
            return Ok(Response::new(pb::TypingResponse { delivered: false }));
        }
        let answer = forward!(self, request, Typing)?;
        self.shared
            .typing
            .passed(&user, &conversation, std::time::Instant::now());
        Ok(answer)
    }
}
