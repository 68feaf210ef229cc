//! The outbox sweeper. Every stored message sits in the outbox until its
//! router has handed it to the bus; an entry that stays too long belongs to
//! a router that died between storing and delivering, so any router claims
//! it and delivers it again. Gateways drop the duplicates this can make.

use std::sync::Arc;

use switchboard_shared::clock::now_ms;
use switchboard_shared::shutdown::Shutdown;

use crate::Router;
use crate::error::RouterResult;

/// Entries claimed per pass.
const CLAIM_BATCH: usize = 256;

pub async fn run(router: Arc<Router>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(router.config.outbox_sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.token.cancelled() => return,
            _ = tick.tick() => {}
        }
        match router.sweep_outbox().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "redelivered messages a router left behind"),
            Err(err) => tracing::warn!(%err, "outbox sweep failed"),
        }
    }
}

impl Router {
    /// One pass; returns how many messages were redelivered.
    pub async fn sweep_outbox(&self) -> RouterResult<usize> {
        let now = now_ms();
        let stale_before =
            now - i64::try_from(self.config.outbox_redeliver_after.as_millis()).unwrap_or(i64::MAX);
        let ids = self
            .store
            .outbox_claim(stale_before, now, CLAIM_BATCH)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let epoch = self.store.epoch().await?;
        let mut messages = Vec::with_capacity(ids.len());
        for id in &ids {
            let found = self
                .store
                .messages_after(&id.conversation, id.seq - 1, 1)
                .await?
                .into_iter()
                .find(|m| m.seq == id.seq);
            match found {
                Some(message) => messages.push(message),
                // Gone (e.g. the store was reset): nothing left to deliver.
                None => self.store.outbox_done(std::slice::from_ref(id)).await?,
            }
        }
        let count = messages.len();
        self.fill_quotes(&mut messages).await?;
        self.deliver_messages(messages, &epoch).await?;
        switchboard_shared::metrics::metrics()
            .redelivered
            .inc_by(count as u64);
        Ok(count)
    }
}
