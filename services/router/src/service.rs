//! The router on the bus: decodes each request, calls the action, encodes the
//! answer. Requests arrive on `sb.router.rpc` in the "router" queue group, so
//! each goes to exactly one router however many run.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use prost::Message as _;
use switchboard_proto::bus::{
    self, DeliveredBatch, PresenceChanged, RouterRequest, RouterResponse, SessionRevoked,
    router_request::Op, router_response::Result as Reply,
};
use switchboard_shared::bus::Incoming;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ConversationId, DeviceId, GatewayId, SessionId, UserId};
use switchboard_shared::metrics::metrics;
use switchboard_shared::shutdown::Shutdown;
use switchboard_shared::{subjects, telemetry};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use crate::error::{RouterError, RouterResult};
use crate::{Caller, Router, outbox};

/// Subscribes, then serves in the background until shutdown: client
/// actions, presence changes, revocations, and the outbox sweeper. Returns
/// once the router is taking requests.
pub async fn start(router: Arc<Router>, shutdown: Shutdown) -> anyhow::Result<()> {
    let bus = router.bus.clone();
    let mut requests = bus
        .subscribe(&subjects::router_rpc(), Some(subjects::ROUTER_QUEUE))
        .await?;
    let mut presence = bus
        .subscribe(&subjects::presence_changed(), Some(subjects::ROUTER_QUEUE))
        .await?;
    let mut revoked = bus.subscribe(&subjects::session_revoked(), None).await?;
    let mut delivered = bus
        .subscribe(&subjects::router_delivered(), Some(subjects::ROUTER_QUEUE))
        .await?;
    shutdown
        .tracker
        .spawn(outbox::run(router.clone(), shutdown.clone()));
    shutdown
        .tracker
        .spawn(watch_epoch(router.clone(), shutdown.clone()));
    let in_flight = Arc::new(Semaphore::new(router.config.max_in_flight));
    tracing::info!("router serving");
    let tracker = shutdown.tracker.clone();
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.token.cancelled() => break,
                Some(request) = requests.next() => {
                    // Back-pressure: past the limit, stop reading; NATS buffers.
                    let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                    let router = router.clone();
                    shutdown.tracker.spawn(async move {
                        answer(&router, request).await;
                        drop(permit);
                    });
                }
                Some(change) = presence.next() => {
                    let router = router.clone();
                    shutdown.tracker.spawn(async move { presence_changed(&router, change).await });
                }
                Some(batch) = delivered.next() => {
                    let router = router.clone();
                    shutdown.tracker.spawn(async move { delivered_batch(&router, batch).await });
                }
                Some(notice) = revoked.next() => {
                    if let Ok(notice) = SessionRevoked::decode(notice.payload)
                        && let Ok(session) = SessionId::parse(&notice.session_id)
                    {
                        router.forget_session(&session);
                    }
                }
                else => break,
            }
        }
        tracing::info!("router stopped taking requests");
    });
    Ok(())
}

/// Notices a store that lost its data even while no write tells us (writes
/// find out at once, inside their script): what was learnt from the old
/// store is forgotten within one check interval.
async fn watch_epoch(router: Arc<Router>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(router.config.epoch_check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut known: Option<String> = None;
    loop {
        tokio::select! {
            () = shutdown.token.cancelled() => return,
            _ = tick.tick() => {}
        }
        match router.store.state_epoch().await {
            Ok(epoch) => {
                if known.as_ref().is_some_and(|k| k != &epoch) {
                    router.store_reset();
                }
                known = Some(epoch);
            }
            Err(err) => tracing::debug!(%err, "cannot read the store's epoch"),
        }
    }
}

async fn presence_changed(router: &Router, change: Incoming) {
    let Ok(change) = PresenceChanged::decode(change.payload) else {
        tracing::warn!("undecodable presence change");
        return;
    };
    let Ok(user) = UserId::parse(&change.user_id) else {
        return;
    };
    if let Err(err) = router.presence_changed(user, change.online).await {
        tracing::warn!(%err, "cannot tell contacts about a presence change");
    }
}

async fn delivered_batch(router: &Router, batch: Incoming) {
    let Ok(batch) = DeliveredBatch::decode(batch.payload) else {
        tracing::warn!("undecodable delivered batch");
        return;
    };
    let marks = batch
        .delivered
        .iter()
        .filter_map(|d| {
            Some((
                ConversationId::parse(&d.conversation_id).ok()?,
                UserId::parse(&d.user_id).ok()?,
                d.seq,
            ))
        })
        .collect();
    if let Err(err) = router.delivered(marks).await {
        tracing::warn!(%err, "cannot record deliveries");
    }
}

async fn answer(router: &Router, request: Incoming) {
    let Some(reply_to) = request.reply else {
        tracing::warn!("router request without a reply subject");
        return;
    };
    let span = tracing::info_span!(
        "router.rpc",
        op = tracing::field::Empty,
        trace_id = tracing::field::Empty
    );
    telemetry::continue_from(&span, &request.headers);
    let result = async {
        match RouterRequest::decode(request.payload) {
            Ok(request) if expired(&request, now_ms()) => {
                // Nobody waits for the answer: not worked, not answered.
                metrics().expired_requests.inc();
                tracing::debug!("dropped a request its gateway stopped waiting for");
                None
            }
            Ok(request) => {
                if let Some(op) = &request.op {
                    tracing::Span::current().record("op", op_name(op));
                }
                Some(handle(router, request).await)
            }
            Err(err) => Some(Err(RouterError::InvalidArgument(format!(
                "undecodable request: {err}"
            )))),
        }
    }
    .instrument(span)
    .await;
    let Some(result) = result else { return };
    let result = result.unwrap_or_else(|err| {
        match &err {
            RouterError::Internal(_) => tracing::error!(%err, "request failed"),
            RouterError::Unavailable(_) => tracing::warn!(%err, "request failed"),
            _ => tracing::debug!(%err, "request refused"),
        }
        Reply::Error(err.to_rpc())
    });
    let payload = RouterResponse {
        result: Some(result),
    }
    .encode_to_vec();
    if let Err(err) = router
        .bus
        .publish(&reply_to, Vec::new(), Bytes::from(payload))
        .await
    {
        tracing::warn!(%err, "cannot answer a request");
    }
}

/// Whether the gateway that sent `request` may have stopped waiting for it
/// by `now_ms` (clocks of the two hosts agree to well within a call's budget).
/// The gateway gives up no earlier than `answer_by_unix_ms`, in whole
/// milliseconds truncated from a finer clock: in the millisecond of the
/// deadline itself it may already have refused the call, so that millisecond
/// counts as expired. (A strict `>` let a send refused UNAVAILABLE be stored
/// after all when the router woke within that millisecond.)
fn expired(request: &RouterRequest, now_ms: i64) -> bool {
    request.answer_by_unix_ms > 0 && now_ms >= request.answer_by_unix_ms
}

/// The operation's name, for traces and logs.
fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Register(_) => "register",
        Op::Login(_) => "login",
        Op::LoginWithToken(_) => "login_with_token",
        Op::Logout(_) => "logout",
        Op::AddContact(_) => "add_contact",
        Op::RemoveContact(_) => "remove_contact",
        Op::ListContacts(_) => "list_contacts",
        Op::Send(_) => "send",
        Op::History(_) => "history",
        Op::MarkRead(_) => "mark_read",
        Op::ListConversations(_) => "list_conversations",
        Op::ListReadCursors(_) => "list_read_cursors",
        Op::DeleteMessage(_) => "delete_message",
        Op::EditMessage(_) => "edit_message",
        Op::Typing(_) => "typing",
        Op::React(_) => "react",
        Op::ListReactions(_) => "list_reactions",
        Op::MuteConversation(_) => "mute_conversation",
        Op::AcceptConversation(_) => "accept_conversation",
        Op::Search(_) => "search",
        Op::UpdateProfile(_) => "update_profile",
        Op::GetPushKey(_) => "get_push_key",
        Op::SetPushSubscription(_) => "set_push_subscription",
        Op::FindPeople(_) => "find_people",
        Op::BlockUser(_) => "block_user",
        Op::ListBlocked(_) => "list_blocked",
        Op::Sync(_) => "sync",
        Op::CreateGroup(_) => "create_group",
        Op::InviteMember(_) => "invite_member",
        Op::JoinGroup(_) => "join_group",
        Op::LeaveGroup(_) => "leave_group",
        Op::RemoveMember(_) => "remove_member",
        Op::SetMemberRole(_) => "set_member_role",
        Op::TransferOwnership(_) => "transfer_ownership",
        Op::DisbandGroup(_) => "disband_group",
        Op::UpdateGroup(_) => "update_group",
        Op::ListMyGroups(_) => "list_my_groups",
        Op::ListMembers(_) => "list_members",
        Op::CreateTopic(_) => "create_topic",
        Op::RenameTopic(_) => "rename_topic",
        Op::DeleteTopic(_) => "delete_topic",
        Op::ListTopics(_) => "list_topics",
        Op::AddTopicContacts(_) => "add_topic_contacts",
        Op::RemoveTopicContacts(_) => "remove_topic_contacts",
        Op::SendToTopic(_) => "send_to_topic",
        Op::TopicTimeline(_) => "topic_timeline",
        Op::BroadcastStatus(_) => "broadcast_status",
        Op::LeaveTopic(_) => "leave_topic",
        Op::MuteTopic(_) => "mute_topic",
    }
}

fn caller(raw: Option<bus::Caller>) -> RouterResult<Caller> {
    let raw = raw.ok_or_else(|| RouterError::Unauthenticated("not logged in".into()))?;
    let unauthenticated = |_| RouterError::Unauthenticated("malformed caller".into());
    Ok(Caller {
        user: UserId::parse(&raw.user_id).map_err(unauthenticated)?,
        session: SessionId::parse(&raw.session_id).map_err(unauthenticated)?,
        device: DeviceId::parse(&raw.device_id).map_err(unauthenticated)?,
        gateway: GatewayId::parse(&raw.gateway_id).map_err(unauthenticated)?,
    })
}

/// One request to one action. If the store turns out to have lost its data
/// (a new epoch) since this router learnt sessions and users from it, they
/// are forgotten and the request runs once more from scratch, so nothing is
/// allowed on the strength of the old store.
pub async fn handle(router: &Router, request: RouterRequest) -> RouterResult<Reply> {
    match handle_once(router, request.clone()).await {
        Err(RouterError::StoreReset) => {
            router.store_reset();
            handle_once(router, request).await
        }
        other => other,
    }
}

async fn handle_once(router: &Router, request: RouterRequest) -> RouterResult<Reply> {
    let op = request
        .op
        .ok_or_else(|| RouterError::InvalidArgument("empty request".into()))?;
    Ok(match op {
        Op::Register(r) => Reply::Register(router.register(r).await?),
        Op::Login(r) => Reply::Login(router.login(r, &request.client_address).await?),
        Op::LoginWithToken(r) => Reply::LoginWithToken(router.login_with_token(r).await?),
        op => {
            let caller = caller(request.caller)?;
            router.check_session(&caller).await?;
            handle_authenticated(router, &caller, op).await?
        }
    })
}

async fn handle_authenticated(router: &Router, caller: &Caller, op: Op) -> RouterResult<Reply> {
    Ok(match op {
        Op::Register(_) | Op::Login(_) | Op::LoginWithToken(_) => {
            return Err(RouterError::InvalidArgument("already logged in".into()));
        }
        Op::Logout(_) => Reply::Logout(router.logout(caller).await?),
        Op::AddContact(r) => Reply::AddContact(router.add_contact(caller, r).await?),
        Op::RemoveContact(r) => Reply::RemoveContact(router.remove_contact(caller, r).await?),
        Op::ListContacts(r) => Reply::ListContacts(router.list_contacts(caller, r).await?),
        Op::Send(r) => Reply::Send(router.send(caller, r).await?),
        Op::History(r) => Reply::History(router.history(caller, r).await?),
        Op::MarkRead(r) => Reply::MarkRead(router.mark_read(caller, r).await?),
        Op::ListConversations(r) => {
            Reply::ListConversations(router.list_conversations(caller, r).await?)
        }
        Op::ListReadCursors(r) => {
            Reply::ListReadCursors(router.list_read_cursors(caller, r).await?)
        }
        Op::DeleteMessage(r) => Reply::DeleteMessage(router.delete_message(caller, r).await?),
        Op::EditMessage(r) => Reply::EditMessage(router.edit_message(caller, r).await?),
        Op::Typing(r) => Reply::Typing(router.typing(caller, r).await?),
        Op::React(r) => Reply::React(router.react(caller, r).await?),
        Op::ListReactions(r) => Reply::ListReactions(router.list_reactions(caller, r).await?),
        Op::UpdateProfile(r) => Reply::UpdateProfile(router.update_profile(caller, r).await?),
        Op::GetPushKey(_) => Reply::GetPushKey(router.push_key()?),
        Op::SetPushSubscription(r) => {
            Reply::SetPushSubscription(router.set_push_subscription(caller, r).await?)
        }
        Op::FindPeople(r) => Reply::FindPeople(router.find_people(caller, r).await?),
        Op::BlockUser(r) => Reply::BlockUser(router.block_user(caller, r).await?),
        Op::ListBlocked(r) => Reply::ListBlocked(router.list_blocked(caller, r).await?),
        Op::AcceptConversation(r) => {
            Reply::AcceptConversation(router.accept_conversation(caller, r).await?)
        }
        Op::Search(r) => Reply::Search(router.search(caller, r).await?),
        Op::MuteConversation(r) => {
            Reply::MuteConversation(router.mute_conversation(caller, r).await?)
        }
        Op::Sync(r) => Reply::Sync(router.sync(caller, r).await?),
        Op::CreateGroup(r) => Reply::CreateGroup(router.create_group(caller, r).await?),
        Op::InviteMember(r) => Reply::InviteMember(router.invite_member(caller, r).await?),
        Op::JoinGroup(r) => Reply::JoinGroup(router.join_group(caller, r).await?),
        Op::LeaveGroup(r) => Reply::LeaveGroup(router.leave_group(caller, r).await?),
        Op::RemoveMember(r) => Reply::RemoveMember(router.remove_member(caller, r).await?),
        Op::SetMemberRole(r) => Reply::SetMemberRole(router.set_member_role(caller, r).await?),
        Op::TransferOwnership(r) => {
            Reply::TransferOwnership(router.transfer_group(caller, r).await?)
        }
        Op::DisbandGroup(r) => Reply::DisbandGroup(router.disband_group(caller, r).await?),
        Op::UpdateGroup(r) => Reply::UpdateGroup(router.update_group(caller, r).await?),
        Op::ListMyGroups(r) => Reply::ListMyGroups(router.list_my_groups(caller, r).await?),
        Op::ListMembers(r) => Reply::ListMembers(router.list_members(caller, r).await?),
        Op::CreateTopic(r) => Reply::CreateTopic(router.create_topic(caller, r).await?),
        Op::RenameTopic(r) => Reply::RenameTopic(router.rename_topic(caller, r).await?),
        Op::DeleteTopic(r) => Reply::DeleteTopic(router.delete_topic(caller, r).await?),
        Op::ListTopics(r) => Reply::ListTopics(router.list_topics(caller, r).await?),
        Op::AddTopicContacts(r) => {
            Reply::AddTopicContacts(router.add_topic_contacts(caller, r).await?)
        }
        Op::RemoveTopicContacts(r) => {
            Reply::RemoveTopicContacts(router.remove_topic_contacts(caller, r).await?)
        }
        Op::SendToTopic(r) => Reply::SendToTopic(router.send_to_topic(caller, r).await?),
        Op::TopicTimeline(r) => Reply::TopicTimeline(router.topic_timeline(caller, r).await?),
        Op::BroadcastStatus(r) => Reply::BroadcastStatus(router.broadcast_status(caller, r).await?),
        Op::LeaveTopic(r) => Reply::LeaveTopic(router.leave_topic(caller, r).await?),
        Op::MuteTopic(r) => Reply::MuteTopic(router.mute_topic(caller, r).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_expires_in_the_millisecond_its_gateway_may_give_up() {
        let by = |answer_by_unix_ms| RouterRequest {
            answer_by_unix_ms,
            ..RouterRequest::default()
        };
        assert!(!expired(&by(1_000), 999));
        assert!(expired(&by(1_000), 1_000));
        assert!(expired(&by(1_000), 1_001));
        // Old gateways send no deadline: such a request never expires.
        assert!(!expired(&by(0), i64::MAX));
    }
}
