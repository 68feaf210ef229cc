//! The write side of presence, used only by the presence service.

use async_trait::async_trait;
use switchboard_shared::ids::{ConnectionId, DeviceId, GatewayId, GroupId, UserId};

use crate::PresenceResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    pub user: UserId,
    pub device: DeviceId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Presence had state for this gateway before; if not, the gateway must
    /// send its full state.
    pub gateway_known: bool,
    /// This was the user's first connection anywhere.
    pub came_online: bool,
}

/// Users whose online state a change flipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transitions {
    pub online: Vec<UserId>,
    pub offline: Vec<UserId>,
}

#[async_trait]
pub trait Registry: Send + Sync + 'static {
    async fn open(
        &self,
        gateway: &GatewayId,
        connection: &ConnectionRecord,
        ttl_ms: u32,
    ) -> PresenceResult<Opened>;

    /// Returns true if that was the user's last connection.
    async fn close(
        &self,
        gateway: &GatewayId,
        connection: &ConnectionId,
        user: &UserId,
    ) -> PresenceResult<bool>;

    /// The gateway started or stopped hosting members of these groups.
    /// Returns whether the gateway is known.
    async fn interest(
        &self,
        gateway: &GatewayId,
        add: &[GroupId],
        remove: &[GroupId],
    ) -> PresenceResult<bool>;

    /// Keeps the gateway alive for `ttl_ms`. False if presence has no state
    /// for it (it was reaped, or presence lost its data): it must resync.
    async fn heartbeat(&self, gateway: &GatewayId, ttl_ms: u32) -> PresenceResult<bool>;

    /// Replaces everything registered for the gateway.
    async fn replace(
        &self,
        gateway: &GatewayId,
        connections: &[ConnectionRecord],
        groups: &[GroupId],
        ttl_ms: u32,
    ) -> PresenceResult<Transitions>;

    /// Forgets the gateway; returns who went offline with it.
    async fn remove_gateway(&self, gateway: &GatewayId) -> PresenceResult<Vec<UserId>>;

    /// Gateways whose heartbeat expired.
    async fn dead_gateways(&self) -> PresenceResult<Vec<GatewayId>>;

    /// Users with at least one connection.
    async fn online_users(&self) -> PresenceResult<i64>;

    /// Takes or keeps the reaper role for `ttl_ms`; true if `instance` holds it.
    async fn lead(&self, instance: &str, ttl_ms: u32) -> PresenceResult<bool>;
}

/// Online/offline flips between two sets of users, for `replace`.
pub fn transitions(went_offline: Vec<UserId>, came_online: Vec<UserId>) -> Transitions {
    let offline: Vec<UserId> = went_offline
        .iter()
        .filter(|u| !came_online.contains(u))
        .cloned()
        .collect();
    let online: Vec<UserId> = came_online
        .into_iter()
        .filter(|u| !went_offline.contains(u))
        .collect();
    Transitions { online, offline }
}
