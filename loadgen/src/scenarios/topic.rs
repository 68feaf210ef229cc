//! Topic broadcasts: the owner sends once, each of the contacts gets a
//! private copy in their own thread.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_proto::pb;
use switchboard_shared::ids::{ConversationId, TopicId, UserId};

use super::{Acked, Watch, befriend, measure_sends, subscribe_all};
use crate::client::{Connections, Origin, register_many};
use crate::recorder::{Recorder, payload};
use crate::report::Report;

pub async fn run(
    origin: &Origin,
    watch: &Watch,
    prefix: &str,
    contacts: usize,
    rate: f64,
    duration: Duration,
    size: usize,
) -> anyhow::Result<Report> {
    let clients = register_many(origin, prefix, 0..contacts + 1, 64, Connections::Own).await?;
    let owner = clients[0].clone();
    let contact_clients = clients[1..].to_vec();
    for contact in &contact_clients {
        befriend(&owner, contact).await?;
    }
    let topic = owner
        .topics()
        .create_topic(pb::CreateTopicRequest {
            name: "load topic".into(),
            contacts: contact_clients.iter().map(|c| c.user.clone()).collect(),
        })
        .await?
        .into_inner()
        .topic
        .ok_or_else(|| anyhow::anyhow!("no topic"))?;
    let recorder = Arc::new(Recorder::default());
    // The contacts are online; the owner sends from an API client (its own
    // devices would receive a copy of every thread, see BENCHMARKS.md).
    let _subscriptions = subscribe_all(&contact_clients, &recorder, 64).await?;
    let acked = Arc::new(Acked::default());
    let send = {
        let (owner, acked, topic_id) = (owner.clone(), acked.clone(), topic.topic_id.clone());
        move |_: u64, scheduled_ns: u64| {
            let (owner, acked, topic_id) = (owner.clone(), acked.clone(), topic_id.clone());
            async move {
                let ack = owner
                    .topics()
                    .send_to_topic(pb::SendToTopicRequest {
                        topic_id,
                        client_msg_id: format!("t{scheduled_ns}"),
                        text: payload(scheduled_ns, size),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                for copy in &ack.recipients {
                    acked.record(&copy.conversation_id, copy.seq);
                }
                Ok(())
            }
        }
    };
    let topic_id = TopicId::parse(&topic.topic_id)?;
    let expected = contact_clients
        .iter()
        .map(|c| {
            let thread = ConversationId::TopicThread {
                topic: topic_id.clone(),
                contact: UserId::parse(&c.user)?,
            };
            Ok((c.index, thread.to_string()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = Report::new(
        "topic",
        json!({"contacts": contacts, "rate": rate, "seconds": duration.as_secs(), "size": size}),
    );
    Ok(measure_sends(
        report, watch, &recorder, &acked, &expected, rate, duration, send,
    )
    .await)
}
