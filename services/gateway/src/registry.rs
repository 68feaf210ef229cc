//! The connections this gateway holds, indexed by user, session and group,
//! so a delivery finds its local recipients without asking anyone.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_proto::bus::{self, Delivery};
use switchboard_proto::pb;
use switchboard_shared::ids::{ConnectionId, DeviceId, GroupId, SessionId, UserId};
use switchboard_shared::metrics::{metrics, reason};
use switchboard_shared::shutdown::CancellationToken;
use tokio::sync::mpsc;
use tonic::Status;

use crate::error::GatewayResult;
use crate::presence::PresenceClient;

/// How a connection ends: a last event, a status, and why (a metrics label).
pub struct End {
    pub last_event: Option<pb::Event>,
    pub status: Status,
    pub reason: &'static str,
}

/// Why and how a connection ends; the first reason given wins.
#[derive(Default)]
pub struct Ending {
    token: CancellationToken,
    end: Mutex<Option<End>>,
    reason: Mutex<Option<&'static str>>,
}

impl Ending {
    /// Ends the connection for `reason`; true if this was the first reason
    /// given (later ones change nothing).
    pub fn end(&self, last_event: Option<pb::Event>, status: Status, reason: &'static str) -> bool {
        let mut end = self.end.lock();
        let first = end.is_none() && self.reason.lock().is_none();
        if first {
            *self.reason.lock() = Some(reason);
            *end = Some(End {
                last_event,
                status,
                reason,
            });
        }
        drop(end);
        self.token.cancel();
        first
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The last event and status, once.
    pub fn take(&self) -> Option<End> {
        self.end.lock().take()
    }

    /// Why it ended (kept after [`Ending::take`]).
    pub fn reason(&self) -> Option<&'static str> {
        *self.reason.lock()
    }
}

/// A delivery on its way to local connections, with the trace it belongs to.
pub struct Inbound {
    pub delivery: Delivery,
    pub span: tracing::Span,
}

/// One client stream.
pub struct Entry {
    pub id: ConnectionId,
    pub user: UserId,
    pub session: SessionId,
    pub device: DeviceId,
    /// A metrics label: `grpc` or `grpc_web`.
    pub transport: &'static str,
    pub queue: mpsc::Sender<Arc<Inbound>>,
    pub ending: Ending,
}

impl Entry {
    pub fn describe(&self) -> bus::Connection {
        bus::Connection {
            connection_id: self.id.to_string(),
            user_id: self.user.to_string(),
            device_id: self.device.to_string(),
            session_id: self.session.to_string(),
        }
    }
}

#[derive(Default)]
struct Index {
    connections: HashMap<ConnectionId, Arc<Entry>>,
    by_user: HashMap<UserId, Vec<Arc<Entry>>>,
    by_group: HashMap<GroupId, Vec<Arc<Entry>>>,
    groups_of: HashMap<ConnectionId, Vec<GroupId>>,
}

fn remove_from(list: &mut Vec<Arc<Entry>>, id: &ConnectionId) {
    if let Some(at) = list.iter().position(|e| &e.id == id) {
        list.swap_remove(at);
    }
}

pub struct Registry {
    index: Mutex<Index>,
    presence: PresenceClient,
}

impl Registry {
    pub fn new(presence: PresenceClient) -> Self {
        Self {
            index: Mutex::new(Index::default()),
            presence,
        }
    }

    pub fn add(&self, entry: Arc<Entry>) {
        let mut index = self.index.lock();
        index
            .by_user
            .entry(entry.user.clone())
            .or_default()
            .push(entry.clone());
        index.connections.insert(entry.id.clone(), entry);
    }

    /// Forgets a connection; groups left without a local member stop being routed here.
    pub fn remove(&self, id: &ConnectionId) {
        let mut index = self.index.lock();
        let Some(entry) = index.connections.remove(id) else {
            return;
        };
        if let Some(list) = index.by_user.get_mut(&entry.user) {
            remove_from(list, id);
            if list.is_empty() {
                index.by_user.remove(&entry.user);
            }
        }
        let groups = index.groups_of.remove(id).unwrap_or_default();
        let emptied = Self::unlink(&mut index, id, groups);
        drop(index);
        self.presence.drop_groups(emptied);
    }

    /// Removes the connection from the groups; returns those now without a local member.
    fn unlink(index: &mut Index, id: &ConnectionId, groups: Vec<GroupId>) -> Vec<GroupId> {
        let mut emptied = Vec::new();
        for group in groups {
            if let Some(list) = index.by_group.get_mut(&group) {
                remove_from(list, id);
                if list.is_empty() {
                    index.by_group.remove(&group);
                    emptied.push(group);
                }
            }
        }
        emptied
    }

    /// Routes these groups' deliveries to the connection; returns once
    /// presence sends them to this gateway.
    pub async fn join_groups(&self, id: &ConnectionId, groups: Vec<GroupId>) -> GatewayResult<()> {
        if groups.is_empty() {
            return Ok(());
        }
        {
            let mut index = self.index.lock();
            let Some(entry) = index.connections.get(id).cloned() else {
                return Ok(());
            };
            for group in &groups {
                let members = index.by_group.entry(group.clone()).or_default();
                if !members.iter().any(|e| &e.id == id) {
                    members.push(entry.clone());
                }
            }
            let mine = index.groups_of.entry(id.clone()).or_default();
            for group in &groups {
                if !mine.contains(group) {
                    mine.push(group.clone());
                }
            }
        }
        self.presence.want_groups(groups).await
    }

    pub fn leave_group(&self, id: &ConnectionId, group: &GroupId) {
        let mut index = self.index.lock();
        if let Some(mine) = index.groups_of.get_mut(id) {
            mine.retain(|g| g != group);
        }
        let emptied = Self::unlink(&mut index, id, vec![group.clone()]);
        drop(index);
        self.presence.drop_groups(emptied);
    }

    /// Hands a delivery to each local recipient. A connection whose queue is
    /// full is cut off (it reconnects and catches up from its cursors).
    pub fn dispatch(&self, inbound: Arc<Inbound>) -> usize {
        let delivery = &inbound.delivery;
        let mut slow = Vec::new();
        let mut handed = 0;
        {
            let index = self.index.lock();
            let mut offer = |entry: &Arc<Entry>| match entry.queue.try_send(inbound.clone()) {
                Ok(()) => handed += 1,
                Err(mpsc::error::TrySendError::Full(_)) => slow.push(entry.clone()),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            };
            if delivery.group_id.is_empty() {
                for user in &delivery.users {
                    let Ok(user) = UserId::parse(user) else {
                        continue;
                    };
                    for entry in index.by_user.get(&user).into_iter().flatten() {
                        offer(entry);
                    }
                }
            } else if let Ok(group) = GroupId::parse(&delivery.group_id) {
                for entry in index.by_group.get(&group).into_iter().flatten() {
                    offer(entry);
                }
            }
        }
        for entry in slow {
            // Out of every index at once: its writes are stuck, so it would
            // otherwise stay registered (and be found full again by every
            // later delivery) until the client read or went away.
            self.remove(&entry.id);
            let cut = entry.ending.end(
                None,
                Status::resource_exhausted(
                    "this connection fell too far behind; reconnect to catch up",
                ),
                reason::SLOW_CONSUMER,
            );
            if cut {
                tracing::warn!(connection = %entry.id, user = %entry.user, "slow consumer cut off");
                metrics().slow_consumers.inc();
            }
        }
        handed
    }

    /// Every connection of a session (for logout).
    pub fn of_session(&self, session: &SessionId) -> Vec<Arc<Entry>> {
        self.index
            .lock()
            .connections
            .values()
            .filter(|e| &e.session == session)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.index.lock().connections.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.index.lock().connections.len()
    }

    /// Connections of one user on this gateway.
    pub fn connections_of(&self, user: &UserId) -> usize {
        self.index.lock().by_user.get(user).map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What presence should know about this gateway.
    pub fn snapshot(&self) -> (Vec<bus::Connection>, Vec<GroupId>) {
        let index = self.index.lock();
        (
            index.connections.values().map(|e| e.describe()).collect(),
            index.by_group.keys().cloned().collect(),
        )
    }
}
