//! Reports topic copies that reached their contact's stream, so the owner
//! sees "delivered" per contact. Batched: one bus message per interval.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use switchboard_proto::bus::{Delivered, DeliveredBatch};
use switchboard_shared::bus::SharedBus;
use switchboard_shared::subjects;
use tokio::sync::mpsc;

const BATCH: usize = 512;
const EVERY: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct DeliveredReporter {
    queue: mpsc::Sender<Delivered>,
}

impl DeliveredReporter {
    pub fn start(bus: SharedBus) -> Self {
        let (queue, marks) = mpsc::channel(16 * 1024);
        tokio::spawn(report(bus, marks));
        Self { queue }
    }

    /// Best effort: a full queue drops the mark (the read receipt, when it
    /// comes, implies delivery anyway).
    pub fn delivered(&self, conversation_id: &str, user_id: &str, seq: u64) {
        let _ = self.queue.try_send(Delivered {
            conversation_id: conversation_id.to_owned(),
            user_id: user_id.to_owned(),
            seq,
        });
    }
}

async fn report(bus: SharedBus, mut marks: mpsc::Receiver<Delivered>) {
    let mut batch = Vec::with_capacity(BATCH);
    while marks.recv_many(&mut batch, BATCH).await > 0 {
        let payload = DeliveredBatch {
            delivered: std::mem::take(&mut batch),
        }
        .encode_to_vec();
        if let Err(err) = bus
            .publish(
                &subjects::router_delivered(),
                Vec::new(),
                Bytes::from(payload),
            )
            .await
        {
            tracing::warn!(%err, "cannot report deliveries");
        }
        // Let marks gather: one publish per interval at most.
        tokio::time::sleep(EVERY).await;
    }
}
