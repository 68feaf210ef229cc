//! Presence state in process memory, for the standalone mode. The same
//! semantics as [`crate::redis::RedisPresence`]; the state dies with the
//! process, as do the connections it describes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use switchboard_shared::ids::{ConnectionId, DeviceId, GatewayId, GroupId, UserId};

use crate::PresenceResult;
use crate::directory::Directory;
use crate::registry::{ConnectionRecord, Opened, Registry, Transitions, transitions};

struct Gateway {
    alive_until: Instant,
    connections: HashMap<ConnectionId, UserId>,
    groups: HashSet<GroupId>,
}

#[derive(Default)]
struct State {
    gateways: HashMap<GatewayId, Gateway>,
    users: HashMap<UserId, HashMap<ConnectionId, (GatewayId, DeviceId)>>,
    groups: HashMap<GroupId, HashSet<GatewayId>>,
}

impl State {
    fn gateway(&mut self, id: &GatewayId, ttl_ms: u32) -> &mut Gateway {
        let alive_until = Instant::now() + Duration::from_millis(u64::from(ttl_ms));
        let gateway = self.gateways.entry(id.clone()).or_insert_with(|| Gateway {
            alive_until,
            connections: HashMap::new(),
            groups: HashSet::new(),
        });
        gateway.alive_until = alive_until;
        gateway
    }

    /// Returns true if this was the user's last connection.
    fn close(&mut self, gateway: &GatewayId, connection: &ConnectionId, user: &UserId) -> bool {
        let removed = self
            .gateways
            .get_mut(gateway)
            .and_then(|g| g.connections.remove(connection))
            .is_some();
        let Some(connections) = self.users.get_mut(user) else {
            return false;
        };
        connections.remove(connection);
        if connections.is_empty() {
            self.users.remove(user);
            return removed;
        }
        false
    }

    fn set_interest(&mut self, gateway: &GatewayId, add: &[GroupId], remove: &[GroupId]) {
        for group in add {
            self.groups
                .entry(group.clone())
                .or_default()
                .insert(gateway.clone());
        }
        for group in remove {
            if let Some(gateways) = self.groups.get_mut(group) {
                gateways.remove(gateway);
                if gateways.is_empty() {
                    self.groups.remove(group);
                }
            }
        }
        if let Some(g) = self.gateways.get_mut(gateway) {
            g.groups.extend(add.iter().cloned());
            for group in remove {
                g.groups.remove(group);
            }
        }
    }

    fn clear(&mut self, gateway: &GatewayId, forget: bool) -> Vec<UserId> {
        let Some(g) = self.gateways.get_mut(gateway) else {
            return Vec::new();
        };
        let connections: Vec<(ConnectionId, UserId)> = g.connections.drain().collect();
        let groups: Vec<GroupId> = g.groups.drain().collect();
        let mut offline = Vec::new();
        for (connection, user) in connections {
            if let Some(user_connections) = self.users.get_mut(&user) {
                user_connections.remove(&connection);
                if user_connections.is_empty() {
                    self.users.remove(&user);
                    offline.push(user);
                }
            }
        }
        self.set_interest(gateway, &[], &groups);
        if forget {
            self.gateways.remove(gateway);
        }
        offline
    }
}

#[derive(Default)]
pub struct MemoryPresence {
    state: Mutex<State>,
}

impl MemoryPresence {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Directory for MemoryPresence {
    async fn user_gateways(&self, users: &[UserId]) -> PresenceResult<Vec<Vec<GatewayId>>> {
        let state = self.state.lock();
        Ok(users
            .iter()
            .map(|user| {
                let mut gateways: Vec<GatewayId> = state
                    .users
                    .get(user)
                    .map(|c| c.values().map(|(g, _)| g.clone()).collect())
                    .unwrap_or_default();
                gateways.sort();
                gateways.dedup();
                gateways
            })
            .collect())
    }

    async fn group_gateways(&self, group: &GroupId) -> PresenceResult<Vec<GatewayId>> {
        let state = self.state.lock();
        Ok(state
            .groups
            .get(group)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl Registry for MemoryPresence {
    async fn open(
        &self,
        gateway: &GatewayId,
        connection: &ConnectionRecord,
        ttl_ms: u32,
    ) -> PresenceResult<Opened> {
        let mut state = self.state.lock();
        let gateway_known = state.gateways.contains_key(gateway);
        state
            .gateway(gateway, ttl_ms)
            .connections
            .insert(connection.id.clone(), connection.user.clone());
        let user = state.users.entry(connection.user.clone()).or_default();
        let came_online = user.is_empty();
        user.insert(
            connection.id.clone(),
            (gateway.clone(), connection.device.clone()),
        );
        Ok(Opened {
            gateway_known,
            came_online,
        })
    }

    async fn close(
        &self,
        gateway: &GatewayId,
        connection: &ConnectionId,
        user: &UserId,
    ) -> PresenceResult<bool> {
        Ok(self.state.lock().close(gateway, connection, user))
    }

    async fn interest(
        &self,
        gateway: &GatewayId,
        add: &[GroupId],
        remove: &[GroupId],
    ) -> PresenceResult<bool> {
        let mut state = self.state.lock();
        state.set_interest(gateway, add, remove);
        Ok(state.gateways.contains_key(gateway))
    }

    async fn heartbeat(&self, gateway: &GatewayId, ttl_ms: u32) -> PresenceResult<bool> {
        let mut state = self.state.lock();
        if !state.gateways.contains_key(gateway) {
            return Ok(false);
        }
        state.gateway(gateway, ttl_ms);
        Ok(true)
    }

    async fn replace(
        &self,
        gateway: &GatewayId,
        connections: &[ConnectionRecord],
        groups: &[GroupId],
        ttl_ms: u32,
    ) -> PresenceResult<Transitions> {
        let went_offline = self.state.lock().clear(gateway, false);
        let mut came_online = Vec::new();
        for connection in connections {
            if self.open(gateway, connection, ttl_ms).await?.came_online {
                came_online.push(connection.user.clone());
            }
        }
        let mut state = self.state.lock();
        state.gateway(gateway, ttl_ms);
        state.set_interest(gateway, groups, &[]);
        Ok(transitions(went_offline, came_online))
    }

    async fn remove_gateway(&self, gateway: &GatewayId) -> PresenceResult<Vec<UserId>> {
        Ok(self.state.lock().clear(gateway, true))
    }

    async fn dead_gateways(&self) -> PresenceResult<Vec<GatewayId>> {
        let now = Instant::now();
        Ok(self
            .state
            .lock()
            .gateways
            .iter()
            .filter(|(_, g)| g.alive_until <= now)
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn online_users(&self) -> PresenceResult<i64> {
        Ok(i64::try_from(self.state.lock().users.len()).unwrap_or(i64::MAX))
    }

    async fn lead(&self, _instance: &str, _ttl_ms: u32) -> PresenceResult<bool> {
        // One process, one presence instance.
        Ok(true)
    }
}
