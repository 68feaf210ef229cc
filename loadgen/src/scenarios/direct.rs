//! One-to-one messages: pairs of users, each first user writing to its
//! partner, at a fixed total rate. Both ends are subscribed (the sender's
//! own copy keeps its other devices in sync); latency counts the partner's.
//! Senders use unary `Send` calls (as a browser must) or one `SendStream`
//! call each (as a native client can).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_proto::pb::{self, send_request::To};
use switchboard_shared::ids::{ConversationId, UserId};

use super::flood::Flood;
use super::{Acked, Watch, measure_sends, subscribe_all};
use crate::client::{Connections, Origin, StreamSender, register_many};
use crate::recorder::{Recorder, payload};
use crate::report::Report;

/// How senders send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendVia {
    /// One unary `Send` call per message.
    Unary,
    /// One `SendStream` call per sender, every message on it.
    Stream,
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    origin: &Origin,
    watch: &Watch,
    prefix: &str,
    pairs: usize,
    rate: f64,
    duration: Duration,
    size: usize,
    via: SendVia,
    flood: (Flood, usize),
) -> anyhow::Result<Report> {
    let clients =
        Arc::new(register_many(origin, prefix, 0..pairs * 2, 64, Connections::Own).await?);
    let recorder = Arc::new(Recorder::default());
    let _subscriptions = subscribe_all(&clients, &recorder, 64).await?;
    let acked = Arc::new(Acked::default());
    let streams = match via {
        SendVia::Unary => Vec::new(),
        SendVia::Stream => {
            futures::future::try_join_all((0..pairs).map(|p| StreamSender::open(&clients[p * 2])))
                .await?
        }
    };
    let streams = Arc::new(streams);

    let send = {
        let (clients, acked, streams) = (clients.clone(), acked.clone(), streams.clone());
        move |i: u64, scheduled_ns: u64| {
            let pair = (i as usize) % pairs;
            let (sender, receiver) = (
                clients[pair * 2].clone(),
                clients[pair * 2 + 1].user.clone(),
            );
            let stream = streams.get(pair).cloned();
            let acked = acked.clone();
            async move {
                let request = pb::SendRequest {
                    to: Some(To::UserId(receiver)),
                    client_msg_id: format!("d{scheduled_ns}"),
                    text: payload(scheduled_ns, size),
                    reply_to: String::new(),
                };
                let ack = match stream {
                    Some(stream) => stream.send(request).await?,
                    None => sender
                        .chat()
                        .send(request)
                        .await
                        .map_err(|s| s.to_string())?
                        .into_inner(),
                };
                acked.record(&ack.conversation_id, ack.seq);
                Ok(())
            }
        }
    };
    let expected = (0..pairs)
        .map(|pair| {
            let (a, b) = (&clients[pair * 2], &clients[pair * 2 + 1]);
            let conv = ConversationId::direct(UserId::parse(&a.user)?, UserId::parse(&b.user)?)
                .to_string();
            Ok([(a.index, conv.clone()), (b.index, conv)])
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .concat();
    let report = Report::new(
        "direct",
        json!({"pairs": pairs, "rate": rate, "seconds": duration.as_secs(), "size": size,
               "send_via": format!("{via:?}").to_lowercase(),
               "flood": format!("{:?}", flood.0).to_lowercase()}),
    );
    // The bad actor: pair 0's receiver floods (its own conversation for
    // history; the first sender's account for login guesses).
    let flooding = super::flood::start(
        flood.0,
        flood.1,
        origin,
        &clients[0].user,
        &clients[1],
        &expected[0].1,
    )
    .await?;
    let mut report = measure_sends(
        report, watch, &recorder, &acked, &expected, rate, duration, send,
    )
    .await;
    let flooded = flooding.stop().await;
    if flood.0 != Flood::None {
        report.extra = json!({"flood": flooded});
    }
    Ok(report)
}
