//! Reaps gateways that stopped heartbeating: their connections go offline
//! and their group interest goes away. One presence instance reaps at a time.

use std::time::Duration;

use switchboard_shared::ids::random_token;
use switchboard_shared::shutdown::Shutdown;

use std::sync::Arc;

use crate::registry::{Registry, Transitions};
use crate::service::PresenceService;

pub struct Reaper {
    registry: Arc<dyn Registry>,
    service: PresenceService,
    every: Duration,
    instance: String,
}

impl Reaper {
    pub fn new(registry: Arc<dyn Registry>, service: PresenceService, every: Duration) -> Self {
        Self {
            registry,
            service,
            every,
            instance: random_token(12),
        }
    }

    pub async fn run(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lease_ms = u32::try_from(self.every.as_millis() * 3).unwrap_or(u32::MAX);
        loop {
            tokio::select! {
                () = shutdown.token.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.reap_once(lease_ms).await {
                tracing::warn!(%err, "presence reaper pass failed");
            }
            if let Ok(online) = self.registry.online_users().await {
                switchboard_shared::metrics::metrics()
                    .online_users
                    .set(online);
            }
        }
    }

    /// One pass; returns how many gateways were reaped.
    pub async fn reap_once(&self, lease_ms: u32) -> crate::PresenceResult<usize> {
        if !self.registry.lead(&self.instance, lease_ms).await? {
            return Ok(0);
        }
        let dead = self.registry.dead_gateways().await?;
        for gateway in &dead {
            let offline = self.registry.remove_gateway(gateway).await?;
            tracing::info!(%gateway, offline = offline.len(), "reaped a gateway that stopped heartbeating");
            self.service
                .announce_all(Transitions {
                    online: Vec::new(),
                    offline,
                })
                .await;
        }
        Ok(dead.len())
    }
}
