//! One client's stream: replay from the client's cursors, then live events.
//!
//! The stream keeps, per conversation, the highest seq it has sent. A
//! delivery at or below it is a duplicate and dropped; one above the next
//! expected seq means something was missed, and the hole is filled from
//! history first. So each conversation reaches the client whole, in order
//! and once, whatever the bus did. Where the hole cannot be filled, a `Gap`
//! event says so.
//!
//! The stream is polled by the server as the client reads: no task per
//! connection, and a client that does not read only fills its own queue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use switchboard_proto::bus::router_request::Op;
use switchboard_proto::pb::{self, event::Kind, gap::Reason, system_event};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ConversationId, GroupId};
use switchboard_shared::metrics::{TransportLabels, metrics, reason};
use switchboard_shared::telemetry;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument as _;

use crate::Shared;
use crate::registry::{Entry, Inbound};

/// Messages fetched per history page while replaying.
const REPLAY_PAGE: u32 = 500;

fn event(kind: Kind) -> pb::Event {
    pb::Event { kind: Some(kind) }
}

fn gap(conversation: &str, from: u64, to: u64, reason: Reason, detail: &str) -> pb::Event {
    event(Kind::Gap(pb::Gap {
        conversation_id: conversation.to_owned(),
        from_seq: from,
        to_seq: to,
        reason: reason as i32,
        detail: detail.to_owned(),
    }))
}

fn removed(conversation: &str) -> pb::Event {
    event(Kind::Conversation(pb::ConversationChanged {
        change: pb::conversation_changed::Change::Removed as i32,
        conversation: Some(pb::Conversation {
            conversation_id: conversation.to_owned(),
            ..Default::default()
        }),
    }))
}

/// What a subscribing client holds.
#[derive(Debug, Default)]
pub struct Resume {
    /// The client synced before under the current epoch: a conversation it
    /// has no cursor for is new to it and is replayed from the start. A new
    /// client (no epoch) starts every conversation live from now.
    pub returning: bool,
    pub cursors: HashMap<String, u64>,
}

/// Where each conversation of a subscription starts.
#[derive(Debug, Default)]
pub struct ReplayPlan {
    /// The cursor each conversation starts from.
    pub cursors: HashMap<String, u64>,
    /// Conversations to replay from their cursor, in order.
    pub replay: Vec<String>,
    /// Of those, the ones the user no longer belongs to (a group they left or
    /// were removed from while this client was away): replayed up to where
    /// they may still read (the message that says they left), then reported
    /// removed.
    pub closing: Vec<String>,
    /// What the client must see first (gaps).
    pub notices: Vec<pb::Event>,
}

/// Where each conversation starts, from the client's cursors and the heads
/// the router reported.
pub fn plan_replay(resume: Resume, heads: &[pb::Cursor], max_replay: u64) -> ReplayPlan {
    let returning = resume.returning;
    let mut client = resume.cursors;
    let mut plan = ReplayPlan {
        cursors: HashMap::with_capacity(heads.len()),
        ..ReplayPlan::default()
    };
    for head in heads {
        let conv = &head.conversation_id;
        let seen = client.remove(conv).or(returning.then_some(0));
        let start = match seen {
            // A new client starts live from now.
            None => head.seq,
            Some(seen) if seen > head.seq => {
                plan.notices.push(gap(
                    conv,
                    head.seq + 1,
                    seen,
                    Reason::CursorAhead,
                    "the server has fewer messages than you have seen; some were lost server-side",
                ));
                head.seq
            }
            Some(seen) if head.seq - seen > max_replay => {
                let resume = head.seq - max_replay;
                plan.notices.push(gap(
                    conv,
                    seen + 1,
                    resume,
                    Reason::Truncated,
                    "too many messages to replay; page them with History",
                ));
                resume
            }
            Some(seen) => seen,
        };
        if start < head.seq {
            plan.replay.push(conv.clone());
        }
        plan.cursors.insert(conv.clone(), start);
    }
    // Cursors for conversations the user no longer belongs to: what came
    // before they left is still theirs.
    let mut gone: Vec<(String, u64)> = client.into_iter().collect();
    gone.sort();
    for (conv, seen) in gone {
        plan.cursors.insert(conv.clone(), seen);
        plan.replay.push(conv.clone());
        plan.closing.push(conv);
    }
    plan
}

pub struct Connection {
    shared: Arc<Shared>,
    entry: Arc<Entry>,
    caller: switchboard_proto::bus::Caller,
    inbound: mpsc::Receiver<Arc<Inbound>>,
    heartbeat: tokio::time::Interval,
    /// When the token the stream was opened with expires: the stream ends then.
    expiry: std::pin::Pin<Box<tokio::time::Sleep>>,
    epoch: String,
    cursors: HashMap<String, u64>,
    groups: HashSet<GroupId>,
    pending: VecDeque<pb::Event>,
    replay: VecDeque<String>,
    /// Replayed conversations to report removed once replayed.
    left_while_away: HashSet<String>,
    synced: bool,
    finished: bool,
    closing: Option<Status>,
    /// Unregisters the connection when the stream is dropped.
    _registration: Registration,
}

/// Removes the connection from the registry and ends it (which lets its
/// presence task unregister it) when dropped.
pub struct Registration {
    pub shared: Arc<Shared>,
    pub entry: Arc<Entry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.registry.remove(&self.entry.id);
        self.entry.ending.end(
            None,
            Status::cancelled("the stream was dropped"),
            reason::CLIENT,
        );
        let m = metrics();
        m.connections
            .get_or_create(&TransportLabels {
                transport: self.entry.transport,
            })
            .dec();
        m.disconnects
            .get_or_create(&switchboard_shared::metrics::DisconnectLabels {
                reason: self.entry.ending.reason().unwrap_or(reason::CLIENT),
            })
            .inc();
    }
}

pub struct Start {
    /// When the caller's token expires (ms since the epoch).
    pub expires_at_ms: i64,
    pub epoch: String,
    pub cursors: HashMap<String, u64>,
    pub groups: HashSet<GroupId>,
    pub first_events: Vec<pb::Event>,
    pub replay: Vec<String>,
    pub closing: Vec<String>,
}

impl Connection {
    pub fn new(
        registration: Registration,
        caller: switchboard_proto::bus::Caller,
        inbound: mpsc::Receiver<Arc<Inbound>>,
        start: Start,
    ) -> Self {
        let shared = registration.shared.clone();
        let mut heartbeat = tokio::time::interval(shared.config.client_heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        let remaining = u64::try_from(start.expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
        let expiry = Box::pin(tokio::time::sleep(std::time::Duration::from_millis(
            remaining,
        )));
        Self {
            expiry,
            entry: registration.entry.clone(),
            shared,
            caller,
            inbound,
            heartbeat,
            epoch: start.epoch,
            cursors: start.cursors,
            groups: start.groups,
            pending: start.first_events.into(),
            replay: start.replay.into(),
            left_while_away: start.closing.into_iter().collect(),
            synced: false,
            finished: false,
            closing: None,
            _registration: registration,
        }
    }

    /// The next event for the client, or the status the stream ends with.
    pub async fn next_event(&mut self) -> Option<Result<pb::Event, Status>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                // The closing status, once; then the end of the stream.
                return self.closing.take().map(Err);
            }
            if self.entry.ending.token().is_cancelled() {
                self.finished = true;
                let Some(end) = self.entry.ending.take() else {
                    self.closing = Some(Status::cancelled("connection closed"));
                    continue;
                };
                self.closing = Some(end.status);
                if let Some(last) = end.last_event {
                    return Some(Ok(last));
                }
                continue;
            }
            // Router calls are boxed here and below: inline, their large
            // futures would sit in every idle stream's state.
            if let Some(conversation) = self.replay.front().cloned() {
                if let Err(status) = Box::pin(self.replay_page(&conversation)).await {
                    self.entry.ending.end(None, status, reason::ERROR);
                }
                continue;
            }
            if !self.synced {
                self.synced = true;
                let mut heads: Vec<pb::Cursor> = self
                    .cursors
                    .iter()
                    .map(|(conversation_id, seq)| pb::Cursor {
                        conversation_id: conversation_id.clone(),
                        seq: *seq,
                    })
                    .collect();
                heads.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
                self.pending
                    .push_back(event(Kind::Synced(pb::SyncComplete { heads })));
                continue;
            }
            tokio::select! {
                biased;
                () = self.entry.ending.token().cancelled() => {}
                inbound = self.inbound.recv() => match inbound {
                    Some(inbound) => {
                        if let Err(status) = self.on_delivery(&inbound).await {
                            self.entry.ending.end(None, status, reason::ERROR);
                        }
                    }
                    None => {
                        self.entry.ending.end(
                            None,
                            Status::unavailable("the gateway is stopping"),
                            reason::DRAIN,
                        );
                    }
                },
                () = &mut self.expiry => {
                    self.entry.ending.end(
                        None,
                        Status::unauthenticated(
                            "the session token expired; log in again and subscribe with your cursors",
                        ),
                        reason::EXPIRED,
                    );
                }
                _ = self.heartbeat.tick() => {
                    self.pending.push_back(event(Kind::Heartbeat(pb::Heartbeat {
                        server_time_ms: now_ms(),
                    })));
                }
            }
        }
    }

    async fn history(
        &self,
        conversation: &str,
        after: u64,
        limit: u32,
    ) -> Result<pb::HistoryResponse, Status> {
        let reply = self
            .shared
            .router
            .call_for_stream(
                self.caller.clone(),
                Op::History(pb::HistoryRequest {
                    conversation_id: conversation.to_owned(),
                    before_seq: 0,
                    after_seq: Some(after),
                    limit,
                }),
                self.shared.config.stream_read_calls,
            )
            .await
            .map_err(Status::from)?;
        crate::expect_reply!(reply, History).map_err(Status::from)
    }

    /// Replays one page of a conversation; done with it when nothing more follows.
    async fn replay_page(&mut self, conversation: &str) -> Result<(), Status> {
        let after = self.cursors.get(conversation).copied().unwrap_or(0);
        let page = match self.history(conversation, after, REPLAY_PAGE).await {
            Ok(page) => page,
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                // Nothing here may be read: nothing to replay.
                self.replay.pop_front();
                self.left_while_away.remove(conversation);
                self.pending.push_back(removed(conversation));
                return Ok(());
            }
            Err(status) => return Err(status),
        };
        for message in page.messages {
            self.accept(message, None);
        }
        if !page.has_more {
            self.replay.pop_front();
            // A conversation left while away: replayed up to the leaving
            // (which said so itself, if this client had not seen it yet).
            if self.left_while_away.remove(conversation) {
                self.pending.push_back(removed(conversation));
            }
        }
        Ok(())
    }

    async fn on_delivery(&mut self, inbound: &Inbound) -> Result<(), Status> {
        let delivery = &inbound.delivery;
        let Some(event) = &delivery.event else {
            return Ok(());
        };
        match &event.kind {
            Some(Kind::Message(message)) => {
                if delivery.epoch != self.epoch {
                    self.pending.push_back(gap(
                        &message.conversation_id,
                        0,
                        0,
                        Reason::EpochChanged,
                        "the server's store was reset: drop local history and subscribe again",
                    ));
                    return Err(Status::unavailable(
                        "the server's store was reset; subscribe again without cursors",
                    ));
                }
                // The last hop of the message's trace: the write to this client.
                let write = if telemetry::tracing_enabled() {
                    tracing::info_span!(
                        parent: &inbound.span,
                        "stream.write",
                        conversation = %message.conversation_id,
                        seq = message.seq
                    )
                } else {
                    tracing::Span::none()
                };
                self.on_message(message.clone(), delivery.accepted_at_ms)
                    .instrument(write)
                    .await;
            }
            Some(Kind::Conversation(change))
                if change.change() == pb::conversation_changed::Change::Added =>
            {
                Box::pin(self.on_added(change)).await?;
            }
            Some(Kind::Conversation(change))
                if change.change() == pb::conversation_changed::Change::Removed =>
            {
                // A group deleted: no longer routed here, nothing to replay.
                let conversation = change
                    .conversation
                    .as_ref()
                    .map_or("", |c| c.conversation_id.as_str());
                if let Ok(ConversationId::Group(group)) = ConversationId::parse(conversation) {
                    self.stop_routing(&group, conversation);
                    self.replay
                        .retain(|pending| pending.as_str() != conversation);
                }
                self.pending.push_back(event.clone());
            }
            _ => self.pending.push_back(event.clone()),
        }
        Ok(())
    }

    async fn on_message(&mut self, message: pb::Message, accepted_at_ms: i64) {
        let conversation = message.conversation_id.clone();
        if let Ok(ConversationId::Group(group)) = ConversationId::parse(&conversation)
            && !self.groups.contains(&group)
        {
            // Not (or no longer) a member on this stream.
            return;
        }
        let last = self.cursors.get(&conversation).copied().unwrap_or(0);
        if message.seq <= last {
            return;
        }
        if message.seq > last + 1 {
            tracing::debug!(
                connection = %self.entry.id,
                conversation,
                last,
                next = message.seq,
                "filling a gap from history"
            );
            Box::pin(self.fill_gap(&conversation, last, message.seq)).await;
        }
        self.accept(message, Some(accepted_at_ms));
    }

    /// Fetches what came between `last` and `next` from history.
    async fn fill_gap(&mut self, conversation: &str, last: u64, next: u64) {
        let missing = next - last - 1;
        if missing > self.shared.config.max_replay {
            self.pending.push_back(gap(
                conversation,
                last + 1,
                next - 1,
                Reason::Truncated,
                "too many messages missed; page them with History",
            ));
            self.cursors.insert(conversation.to_owned(), next - 1);
            return;
        }
        let mut after = last;
        while after + 1 < next {
            let limit = u32::try_from(next - after - 1)
                .unwrap_or(REPLAY_PAGE)
                .min(REPLAY_PAGE);
            match self.history(conversation, after, limit).await {
                Ok(page) if !page.messages.is_empty() => {
                    for message in page.messages.into_iter().filter(|m| m.seq < next) {
                        after = message.seq;
                        self.accept(message, None);
                    }
                }
                Ok(_) => break,
                Err(status) => {
                    tracing::warn!(%status, conversation, "cannot fill a gap");
                    break;
                }
            }
        }
        if after + 1 < next {
            self.pending.push_back(gap(
                conversation,
                after + 1,
                next - 1,
                Reason::Unavailable,
                "these messages could not be fetched; page them with History",
            ));
            self.cursors.insert(conversation.to_owned(), next - 1);
        }
    }

    /// Sends a message on and applies what it means for this stream.
    /// `accepted_at_ms` is set for live deliveries (for the latency metric).
    fn accept(&mut self, message: pb::Message, accepted_at_ms: Option<i64>) {
        let conversation = message.conversation_id.clone();
        let last = self.cursors.entry(conversation.clone()).or_insert(0);
        if message.seq <= *last {
            return;
        }
        *last = message.seq;
        let m = metrics();
        m.deliveries.inc();
        if let Some(accepted) = accepted_at_ms.filter(|at| *at > 0) {
            let latency_ms = (now_ms() - accepted).max(0);
            m.delivery_latency.observe(latency_ms as f64 / 1000.0);
        }
        // A topic copy reaching its contact: the owner's "delivered".
        if let Some(topic) = &message.topic
            && topic.contact_id == self.entry.user.as_str()
            && message.sender != self.entry.user.as_str()
        {
            self.shared
                .delivered
                .delivered(&conversation, topic.contact_id.as_str(), message.seq);
        }
        let left = message.system.as_ref().is_some_and(|system| {
            system.user_id == self.entry.user.as_str()
                && matches!(
                    system.kind(),
                    system_event::Kind::MemberLeft | system_event::Kind::MemberRemoved
                )
        });
        self.pending.push_back(event(Kind::Message(message)));
        if left && let Ok(ConversationId::Group(group)) = ConversationId::parse(&conversation) {
            self.stop_routing(&group, &conversation);
            self.pending.push_back(removed(&conversation));
        }
    }

    /// The user is no longer in `group` (left, removed, or it was deleted):
    /// its deliveries stop coming to this stream.
    fn stop_routing(&mut self, group: &GroupId, conversation: &str) {
        self.groups.remove(group);
        self.shared.registry.leave_group(&self.entry.id, group);
        self.left_while_away.remove(conversation);
    }

    /// The user joined (or created) a group: route it here, then replay it
    /// from the join.
    async fn on_added(&mut self, change: &pb::ConversationChanged) -> Result<(), Status> {
        let Some(conversation) = &change.conversation else {
            return Ok(());
        };
        let Ok(group) = GroupId::parse(&conversation.group_id) else {
            self.pending
                .push_back(event(Kind::Conversation(change.clone())));
            return Ok(());
        };
        if self.groups.contains(&group) {
            return Ok(());
        }
        self.shared
            .registry
            .join_groups(&self.entry.id, vec![group.clone()])
            .await
            .map_err(Status::from)?;
        self.groups.insert(group);
        let start = conversation.head_seq.saturating_sub(1);
        let cursor = self
            .cursors
            .entry(conversation.conversation_id.clone())
            .or_insert(start);
        *cursor = (*cursor).max(start);
        self.pending
            .push_back(event(Kind::Conversation(change.clone())));
        self.replay.push_back(conversation.conversation_id.clone());
        Ok(())
    }
}

/// What the client asked to resume from, if it matches the server's epoch.
pub fn client_cursors(request: &pb::SubscribeRequest, epoch: &str) -> (Resume, Option<pb::Event>) {
    if !request.epoch.is_empty() && request.epoch != epoch {
        let notice = gap(
            "",
            0,
            0,
            Reason::EpochChanged,
            "the server's store was reset since your last visit: drop local history",
        );
        return (Resume::default(), Some(notice));
    }
    let resume = Resume {
        returning: !request.epoch.is_empty(),
        cursors: request
            .cursors
            .iter()
            .map(|c| (c.conversation_id.clone(), c.seq))
            .collect(),
    };
    (resume, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(conv: &str, seq: u64) -> pb::Cursor {
        pb::Cursor {
            conversation_id: conv.into(),
            seq,
        }
    }

    fn gap_reason(event: &pb::Event) -> Option<Reason> {
        match &event.kind {
            Some(Kind::Gap(g)) => Some(g.reason()),
            _ => None,
        }
    }

    fn returning(cursors: &[(&str, u64)]) -> Resume {
        Resume {
            returning: true,
            cursors: cursors.iter().map(|(c, s)| (c.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn a_new_client_starts_live() {
        let plan = plan_replay(Resume::default(), &[head("g:gaaaa", 7)], 100);
        assert_eq!(plan.cursors["g:gaaaa"], 7);
        assert!(plan.replay.is_empty());
        assert!(plan.notices.is_empty());
    }

    #[test]
    fn a_returning_client_gets_conversations_new_to_it_from_the_start() {
        let plan = plan_replay(returning(&[]), &[head("dm:a:b", 2)], 100);
        assert_eq!(plan.cursors["dm:a:b"], 0);
        assert_eq!(plan.replay, ["dm:a:b"]);
    }

    #[test]
    fn cursors_behind_the_head_are_replayed() {
        let plan = plan_replay(returning(&[("g:gaaaa", 3)]), &[head("g:gaaaa", 7)], 100);
        assert_eq!(plan.cursors["g:gaaaa"], 3);
        assert_eq!(plan.replay, ["g:gaaaa"]);
        assert!(plan.notices.is_empty());
    }

    #[test]
    fn a_cursor_past_the_head_is_reported_not_hidden() {
        let plan = plan_replay(returning(&[("g:gaaaa", 9)]), &[head("g:gaaaa", 7)], 100);
        assert_eq!(plan.cursors["g:gaaaa"], 7);
        assert!(plan.replay.is_empty());
        assert_eq!(gap_reason(&plan.notices[0]), Some(Reason::CursorAhead));
    }

    #[test]
    fn long_absences_are_truncated_explicitly() {
        let plan = plan_replay(returning(&[("g:gaaaa", 1)]), &[head("g:gaaaa", 500)], 100);
        assert_eq!(plan.cursors["g:gaaaa"], 400);
        assert_eq!(plan.replay, ["g:gaaaa"]);
        match &plan.notices[0].kind {
            Some(Kind::Gap(g)) => {
                assert_eq!((g.from_seq, g.to_seq), (2, 400));
                assert_eq!(g.reason(), Reason::Truncated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conversations_left_while_away_are_replayed_up_to_the_leaving_then_closed() {
        let plan = plan_replay(returning(&[("g:gbbbb", 4)]), &[head("g:gaaaa", 1)], 100);
        assert_eq!(plan.cursors["g:gbbbb"], 4, "from where the client was");
        assert_eq!(plan.replay, ["g:gaaaa", "g:gbbbb"]);
        assert_eq!(plan.closing, ["g:gbbbb"]);
        assert!(plan.notices.is_empty(), "removed only after the replay");
    }

    #[test]
    fn a_changed_epoch_voids_the_cursors() {
        let request = pb::SubscribeRequest {
            cursors: vec![head("g:gaaaa", 3)],
            epoch: "old".into(),
        };
        let (resume, notice) = client_cursors(&request, "new");
        assert!(resume.cursors.is_empty() && !resume.returning);
        assert_eq!(gap_reason(&notice.unwrap()), Some(Reason::EpochChanged));
        let (resume, notice) = client_cursors(&request, "old");
        assert_eq!(resume.cursors["g:gaaaa"], 3);
        assert!(resume.returning);
        assert!(notice.is_none());
    }
}
