//! The read side of presence, used by routers on every delivery.

use async_trait::async_trait;
use switchboard_shared::ids::{GatewayId, GroupId, UserId};

use crate::PresenceResult;

#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// For each user, the gateways holding their connections (empty = offline).
    async fn user_gateways(&self, users: &[UserId]) -> PresenceResult<Vec<Vec<GatewayId>>>;

    /// Gateways holding a connection of at least one member of the group. The
    /// cost does not depend on the group's size or its offline members.
    async fn group_gateways(&self, group: &GroupId) -> PresenceResult<Vec<GatewayId>>;

    /// Whether each user has a connection anywhere.
    async fn online(&self, users: &[UserId]) -> PresenceResult<Vec<bool>> {
        Ok(self
            .user_gateways(users)
            .await?
            .iter()
            .map(|gateways| !gateways.is_empty())
            .collect())
    }
}
