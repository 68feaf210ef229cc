//! Handing events to the gateways that hold their recipients: locate through
//! presence, plan one batch per gateway, publish, then tell the outbox.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use switchboard_presence::Directory;
use switchboard_shared::bus::SharedBus;
use switchboard_shared::ids::{MessageId, UserId};
use switchboard_shared::metrics::{metrics, timed};
use switchboard_shared::shutdown::Shutdown;
use switchboard_shared::{subjects, telemetry};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::error::{RouterError, RouterResult};
use crate::routing::{Audience, Locations, Outgoing, plan};
use crate::store::Store;

/// Confirmations waiting to be written to the outbox in one command.
const OUTBOX_BATCH: usize = 512;
/// How long a confirmation waits for others to share its write.
const OUTBOX_GATHER: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub struct Deliverer {
    bus: SharedBus,
    directory: Arc<dyn Directory>,
    delivered: mpsc::Sender<MessageId>,
}

impl Deliverer {
    /// Also starts the task that confirms delivered messages to the outbox.
    pub fn start(
        bus: SharedBus,
        directory: Arc<dyn Directory>,
        store: Arc<dyn Store>,
        shutdown: &Shutdown,
    ) -> Self {
        let (delivered, confirmations) = mpsc::channel(64 * 1024);
        shutdown
            .tracker
            .spawn(confirm_outbox(store, confirmations, shutdown.clone()));
        Self {
            bus,
            directory,
            delivered,
        }
    }

    async fn locate(&self, outgoing: &[Outgoing]) -> RouterResult<Locations> {
        let mut users: Vec<UserId> = Vec::new();
        let mut seen = HashSet::new();
        let mut locations = Locations::default();
        for item in outgoing {
            match &item.audience {
                Audience::Users(list) => {
                    users.extend(list.iter().filter(|u| seen.insert(*u)).cloned());
                }
                Audience::Group(group) => {
                    if !locations.groups.contains_key(group) {
                        let gateways = timed("locate_group", self.directory.group_gateways(group))
                            .instrument(tracing::info_span!("presence.locate_group"))
                            .await
                            .map_err(|e| RouterError::Unavailable(e.to_string()))?;
                        locations.groups.insert(group.clone(), gateways);
                    }
                }
            }
        }
        let gateways = timed("locate_users", self.directory.user_gateways(&users))
            .instrument(tracing::info_span!(
                "presence.locate_users",
                users = users.len()
            ))
            .await
            .map_err(|e| RouterError::Unavailable(e.to_string()))?;
        locations.users = users.into_iter().zip(gateways).collect();
        Ok(locations)
    }

    /// Delivers the events; `stored` are the messages among them whose
    /// outbox entries this completes. Answers where their users were found.
    pub async fn deliver(
        &self,
        outgoing: &[Outgoing],
        epoch: &str,
        accepted_at_ms: i64,
        stored: Vec<MessageId>,
    ) -> RouterResult<Locations> {
        let locations = self.locate(outgoing).await?;
        let batches = plan(outgoing, &locations, epoch, accepted_at_ms);
        metrics().fanout_gateways.observe(batches.len() as f64);
        for (gateway, batch) in batches {
            let payload = Bytes::from(batch.encode_to_vec());
            self.bus
                .publish(
                    &subjects::gateway_deliver(&gateway),
                    telemetry::inject(),
                    payload,
                )
                .await
                .map_err(|e| RouterError::Unavailable(e.to_string()))?;
        }
        for id in stored {
            // If the queue is full the entry stays and is redelivered later:
            // a duplicate the gateways drop, never a loss.
            let _ = self.delivered.try_send(id);
        }
        Ok(locations)
    }
}

/// Writes delivery confirmations to the outbox in batches.
async fn confirm_outbox(
    store: Arc<dyn Store>,
    mut confirmations: mpsc::Receiver<MessageId>,
    shutdown: Shutdown,
) {
    let mut batch = Vec::with_capacity(OUTBOX_BATCH);
    loop {
        // Queued confirmations first, so stopping does not drop them.
        let received = tokio::select! {
            biased;
            received = confirmations.recv_many(&mut batch, OUTBOX_BATCH) => received,
            () = shutdown.token.cancelled() => 0,
        };
        if received == 0 {
            return;
        }
        // What else is confirmed in the next moments goes in the same write
        // (on a single Redis, one ZREM): a confirmation is not urgent, an
        // entry is only redelivered after seconds.
        if !shutdown.token.is_cancelled() {
            let _ = tokio::time::timeout(OUTBOX_GATHER, async {
                while batch.len() < OUTBOX_BATCH {
                    let room = OUTBOX_BATCH - batch.len();
                    if confirmations.recv_many(&mut batch, room).await == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        if let Err(err) = store.outbox_done(&batch).await {
            tracing::warn!(%err, count = batch.len(), "cannot confirm deliveries; they will be redelivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        batch.clear();
    }
}
