//! Group fan-out: each message reaches every online member; offline members
//! are members that never connect (they must cost the router nothing).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_proto::pb::{self, send_request::To};
use switchboard_shared::ids::{ConversationId, GroupId};

use super::{Acked, Watch, measure_sends, subscribe_all};
use crate::client::{Connections, Origin, register_many};
use crate::recorder::{Recorder, payload};
use crate::report::Report;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    origin: &Origin,
    watch: &Watch,
    prefix: &str,
    groups: usize,
    members: usize,
    online: usize,
    rate: f64,
    duration: Duration,
    size: usize,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        online >= 1 && online <= members,
        "--online must be 1..=--members"
    );
    // Members 0..online of each group come online and get their own
    // connection; the rest only register and join, over shared ones.
    let mut clients = Vec::with_capacity(groups * members);
    for g in 0..groups {
        let first = g * members;
        clients.extend(
            register_many(origin, prefix, first..first + online, 64, Connections::Own).await?,
        );
        clients.extend(
            register_many(
                origin,
                prefix,
                first + online..first + members,
                64,
                Connections::Shared(16),
            )
            .await?,
        );
    }
    let clients = Arc::new(clients);
    // Member 0 of each group creates it; the others join (before anyone is online).
    let mut group_ids = Vec::with_capacity(groups);
    for g in 0..groups {
        let owner = &clients[g * members];
        let group = owner
            .groups()
            .create_group(pb::CreateGroupRequest {
                name: format!("load {g}"),
                policy: pb::JoinPolicy::Open as i32,
                invite: vec![],
                ..Default::default()
            })
            .await?
            .into_inner()
            .group
            .ok_or_else(|| anyhow::anyhow!("no group"))?;
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let mut joins = Vec::new();
        for m in 1..members {
            let (member, id, permits) = (
                clients[g * members + m].clone(),
                group.group_id.clone(),
                permits.clone(),
            );
            joins.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await?;
                member
                    .groups()
                    .join_group(pb::JoinGroupRequest { group_id: id })
                    .await?;
                anyhow::Ok(())
            }));
        }
        for join in joins {
            join.await??;
        }
        group_ids.push(group.group_id);
    }
    let online_clients: Vec<_> = (0..groups)
        .flat_map(|g| (0..online).map(move |m| g * members + m))
        .map(|i| clients[i].clone())
        .collect();
    let recorder = Arc::new(Recorder::default());
    let _subscriptions = subscribe_all(&online_clients, &recorder, 64).await?;
    let acked = Arc::new(Acked::default());
    let group_ids = Arc::new(group_ids);

    let send = {
        let (clients, acked, group_ids) = (clients.clone(), acked.clone(), group_ids.clone());
        move |i: u64, scheduled_ns: u64| {
            let g = (i as usize) % groups;
            let sender = clients[g * members + (i as usize / groups) % online].clone();
            let (acked, group_id) = (acked.clone(), group_ids[g].clone());
            async move {
                let ack = sender
                    .chat()
                    .send(pb::SendRequest {
                        to: Some(To::GroupId(group_id)),
                        client_msg_id: format!("g{scheduled_ns}"),
                        text: payload(scheduled_ns, size),
                        reply_to: String::new(),
                    })
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                acked.record(&ack.conversation_id, ack.seq);
                Ok(())
            }
        }
    };
    let expected = online_clients
        .iter()
        .map(|c| {
            let group = GroupId::parse(&group_ids[c.index / members])?;
            Ok((c.index, ConversationId::Group(group).to_string()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = Report::new(
        "group",
        json!({"groups": groups, "members": members, "online": online, "rate": rate, "seconds": duration.as_secs(), "size": size}),
    );
    Ok(measure_sends(
        report, watch, &recorder, &acked, &expected, rate, duration, send,
    )
    .await)
}
