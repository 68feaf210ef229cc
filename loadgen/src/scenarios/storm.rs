//! A reconnect storm: every client goes away, a message arrives for each
//! meanwhile, and all come back at once with their cursors. Each must get
//! exactly its missed message, in order, once.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use switchboard_proto::pb::{self, send_request::To};
use switchboard_shared::ids::{ConversationId, UserId};

use super::{Acked, settle, subscribe_all};
use crate::client::{Connections, Origin, register_many};
use crate::recorder::{Recorder, payload, unix_nanos};
use crate::report::Report;

pub async fn run(origin: &Origin, prefix: &str, clients: usize) -> anyhow::Result<Report> {
    let users =
        Arc::new(register_many(origin, prefix, 0..clients + 1, 128, Connections::Own).await?);
    let sender = users[clients].clone();
    let members = users[..clients].to_vec();
    let recorder = Arc::new(Recorder::default());
    let subscriptions = subscribe_all(&members, &recorder, 256).await?;
    let epoch = subscriptions
        .first()
        .map(|s| s.epoch.clone())
        .unwrap_or_default();
    drop(subscriptions);

    // While they are away: one message for each.
    let acked = Arc::new(Acked::default());
    let permits = Arc::new(tokio::sync::Semaphore::new(256));
    let mut sends = tokio::task::JoinSet::new();
    for member in &members {
        let (sender, to, acked, permits) = (
            sender.clone(),
            member.user.clone(),
            acked.clone(),
            permits.clone(),
        );
        sends.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let ack = sender
                .chat()
                .send(pb::SendRequest {
                    to: Some(To::UserId(to)),
                    client_msg_id: String::new(),
                    text: payload(unix_nanos(), 100),
                    reply_to: String::new(),
                })
                .await?
                .into_inner();
            acked.record(&ack.conversation_id, ack.seq);
            anyhow::Ok(())
        });
    }
    while let Some(sent) = sends.join_next().await {
        sent??;
    }

    // Everyone back at once, with the epoch (a returning client).
    let started = Instant::now();
    let mut back = tokio::task::JoinSet::new();
    for member in &members {
        let (member, recorder, epoch) = (member.clone(), recorder.clone(), epoch.clone());
        back.spawn(async move {
            member
                .subscribe(
                    recorder,
                    pb::SubscribeRequest {
                        cursors: vec![],
                        epoch,
                    },
                )
                .await
        });
    }
    let mut resumed = Vec::with_capacity(clients);
    let mut errors = 0;
    while let Some(result) = back.join_next().await {
        match result {
            Ok(Ok(subscription)) => resumed.push(subscription),
            _ => errors += 1,
        }
    }
    let resume_seconds = started.elapsed().as_secs_f64();
    let sender_id = UserId::parse(&sender.user)?;
    let expected = members
        .iter()
        .map(|m| {
            let conv = ConversationId::direct(UserId::parse(&m.user)?, sender_id.clone());
            Ok((m.index, conv.to_string()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let missing = settle(&recorder, &acked, &expected).await;
    let totals = recorder.totals();
    let mut report = Report::new("storm", json!({"clients": clients})).with_totals(totals.clone());
    report.seconds = resume_seconds;
    report.delivered = totals.replayed + totals.delivered;
    report.missing = missing;
    report.extra =
        json!({"resumed": resumed.len(), "errors": errors, "all_resumed_in_s": resume_seconds});
    if errors > 0 {
        report
            .problems
            .push(format!("{errors} clients could not resume"));
    }
    Ok(report)
}
