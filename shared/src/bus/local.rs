//! The standalone mode's bus: subjects routed inside the process, with the
//! semantics of NATS (queue groups, request/reply, no responders, and a
//! bounded buffer per subscriber that drops messages for a slow consumer).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::{Bus, BusError, Headers, Incoming, Subscription};
use crate::subjects::Subject;

/// Per-subscriber buffer, as NATS's per-subscription capacity.
const SUBSCRIBER_CAPACITY: usize = 65_536;

struct Subscriber {
    queue_group: Option<String>,
    tx: mpsc::Sender<Incoming>,
}

#[derive(Default)]
struct Routes {
    subscribers: HashMap<String, Vec<Subscriber>>,
    /// Round-robin position per (subject, queue group).
    next_in_group: HashMap<(String, String), usize>,
    /// Pending requests waiting for their reply.
    inboxes: HashMap<String, oneshot::Sender<Bytes>>,
}

#[derive(Default, Clone)]
pub struct LocalBus {
    routes: Arc<Mutex<Routes>>,
    next_inbox: Arc<AtomicU64>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands the message to every plain subscriber and to one member of each
    /// queue group. Returns how many subscribers took it.
    fn route(&self, message: Incoming) -> usize {
        let mut guard = self.routes.lock();
        let routes = &mut *guard;
        let subject = message.subject.as_str().to_owned();
        if let Some(inbox) = routes.inboxes.remove(&subject) {
            return usize::from(inbox.send(message.payload).is_ok());
        }
        let Some(subscribers) = routes.subscribers.get_mut(&subject) else {
            return 0;
        };
        subscribers.retain(|s| !s.tx.is_closed());
        let mut groups: Vec<String> = Vec::new();
        let mut taken = 0;
        for sub in subscribers.iter() {
            match &sub.queue_group {
                None => taken += usize::from(offer(&sub.tx, message.clone())),
                Some(group) if !groups.contains(group) => groups.push(group.clone()),
                Some(_) => {}
            }
        }
        for group in groups {
            let members: Vec<&Subscriber> = subscribers
                .iter()
                .filter(|s| s.queue_group.as_deref() == Some(group.as_str()))
                .collect();
            let position = routes
                .next_in_group
                .entry((subject.clone(), group))
                .or_insert(0);
            let chosen = members[*position % members.len()];
            *position = position.wrapping_add(1);
            taken += usize::from(offer(&chosen.tx, message.clone()));
        }
        taken
    }
}

fn offer(tx: &mpsc::Sender<Incoming>, message: Incoming) -> bool {
    match tx.try_send(message) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(m)) => {
            tracing::warn!(subject = %m.subject, "local bus slow consumer: message dropped");
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(
        &self,
        subject: &Subject,
        headers: Headers,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.route(Incoming {
            subject: subject.clone(),
            reply: None,
            headers,
            payload,
        });
        Ok(())
    }

    async fn request(
        &self,
        subject: &Subject,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        let inbox = format!(
            "_INBOX.local.{}",
            self.next_inbox.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        self.routes.lock().inboxes.insert(inbox.clone(), tx);
        let taken = self.route(Incoming {
            subject: subject.clone(),
            reply: Some(Subject::from_bus(inbox.clone())),
            headers,
            payload,
        });
        if taken == 0 {
            self.routes.lock().inboxes.remove(&inbox);
            return Err(BusError::NoResponders(subject.to_string()));
        }
        let answer = tokio::time::timeout(timeout, rx).await;
        self.routes.lock().inboxes.remove(&inbox);
        match answer {
            Ok(Ok(payload)) => Ok(payload),
            // The responder dropped the request, or did not answer in time.
            Ok(Err(_)) | Err(_) => Err(BusError::TimedOut(subject.to_string())),
        }
    }

    async fn subscribe(
        &self,
        subject: &Subject,
        queue_group: Option<&str>,
    ) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
        self.routes
            .lock()
            .subscribers
            .entry(subject.as_str().to_owned())
            .or_default()
            .push(Subscriber {
                queue_group: queue_group.map(str::to_owned),
                tx,
            });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn is_connected(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "the in-process bus"
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;
    use crate::subjects;

    #[tokio::test]
    async fn queue_groups_share_and_plain_subscribers_all_receive() {
        let bus = LocalBus::new();
        let subject = subjects::router_rpc();
        let mut a = bus.subscribe(&subject, Some("g")).await.unwrap();
        let mut b = bus.subscribe(&subject, Some("g")).await.unwrap();
        let mut watcher = bus.subscribe(&subject, None).await.unwrap();
        for i in 0..4u8 {
            bus.publish(&subject, vec![], Bytes::from(vec![i]))
                .await
                .unwrap();
        }
        let mut seen_by_group = Vec::new();
        for _ in 0..2 {
            seen_by_group.push(a.next().await.unwrap().payload[0]);
            seen_by_group.push(b.next().await.unwrap().payload[0]);
        }
        seen_by_group.sort();
        assert_eq!(seen_by_group, vec![0, 1, 2, 3]);
        for i in 0..4u8 {
            assert_eq!(watcher.next().await.unwrap().payload[0], i);
        }
    }

    #[tokio::test]
    async fn request_reply_and_no_responders() {
        let bus = LocalBus::new();
        let subject = subjects::presence_rpc();
        let err = bus
            .request(&subject, vec![], Bytes::new(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, BusError::NoResponders(_)));

        let mut server = bus.subscribe(&subject, Some("q")).await.unwrap();
        let responder = bus.clone();
        tokio::spawn(async move {
            while let Some(msg) = server.next().await {
                let mut answer = msg.payload.to_vec();
                answer.reverse();
                responder
                    .publish(&msg.reply.unwrap(), vec![], answer.into())
                    .await
                    .unwrap();
            }
        });
        let answer = bus
            .request(
                &subject,
                vec![],
                Bytes::from_static(b"abc"),
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert_eq!(&answer[..], b"cba");
    }

    #[tokio::test]
    async fn dropped_subscribers_stop_receiving() {
        let bus = LocalBus::new();
        let subject = subjects::session_revoked();
        let first = bus.subscribe(&subject, Some("q")).await.unwrap();
        let mut second = bus.subscribe(&subject, Some("q")).await.unwrap();
        drop(first);
        for _ in 0..3 {
            bus.publish(&subject, vec![], Bytes::from_static(b"x"))
                .await
                .unwrap();
            assert!(second.next().await.is_some());
        }
    }
}
