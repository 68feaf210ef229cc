//! `sb watch`: the one stream, resumed from saved cursors, reconnecting with
//! jittered backoff, and noticing a dead connection by its missing heartbeats.

use std::time::{Duration, Instant};

use rand::Rng as _;
use serde_json::json;
use switchboard_proto::pb::{self, event::Kind, gap::Reason};
use tonic::Code;

use super::Session;
use crate::output::{self, Output};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Without an event for this many heartbeat intervals, the connection is dead.
const MISSED_HEARTBEATS: u32 = 3;
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Full jitter: anywhere up to the backoff, so a crowd does not return at once.
fn jittered(backoff: Duration) -> Duration {
    let millis = u64::try_from(backoff.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

enum Outcome {
    Done,
    Reconnect(String),
}

pub async fn watch(
    mut session: Session,
    until_synced: bool,
    count: Option<usize>,
    from_now: bool,
    out: &Output,
) -> anyhow::Result<()> {
    if from_now {
        session.profile.cursors.clear();
        session.profile.epoch.clear();
    } else if session.profile.epoch.is_empty() && session.profile.cursors.is_empty() {
        // A first watch shows what is unread: each conversation resumes
        // from where this user last read it (on any device).
        let listed = session
            .clients
            .chat
            .list_conversations(pb::ListConversationsRequest {})
            .await?
            .into_inner();
        session.profile.epoch = listed.epoch;
        session.profile.cursors = listed
            .conversations
            .iter()
            .map(|c| (c.conversation_id.clone(), c.read_seq))
            .collect();
    }
    let mut messages = 0usize;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let outcome = tokio::select! {
            outcome = stream_once(&mut session, until_synced, count, &mut messages, out) => outcome?,
            _ = tokio::signal::ctrl_c() => Outcome::Done,
        };
        session.save()?;
        match outcome {
            Outcome::Done => return Ok(()),
            Outcome::Reconnect(reason) => {
                let wait = jittered(backoff);
                out.print(json!({"event": "disconnected", "reason": reason, "retry_in_ms": wait.as_millis() as u64}), || {
                    format!("-- disconnected ({reason}); reconnecting in {:.1}s", wait.as_secs_f32())
                });
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn stream_once(
    session: &mut Session,
    until_synced: bool,
    count: Option<usize>,
    messages: &mut usize,
    out: &Output,
) -> anyhow::Result<Outcome> {
    let request = pb::SubscribeRequest {
        cursors: session
            .profile
            .cursors
            .iter()
            .map(|(conversation_id, seq)| pb::Cursor {
                conversation_id: conversation_id.clone(),
                seq: *seq,
            })
            .collect(),
        epoch: session.profile.epoch.clone(),
    };
    let mut stream = match session.clients.chat.subscribe(request).await {
        Ok(response) => response.into_inner(),
        Err(status)
            if matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied
            ) =>
        {
            return Err(status.into());
        }
        Err(status) => return Ok(Outcome::Reconnect(status.message().to_owned())),
    };
    let mut silence_limit = Duration::from_secs(60);
    let mut last_save = Instant::now();
    loop {
        let event = match tokio::time::timeout(silence_limit, stream.message()).await {
            Err(_) => return Ok(Outcome::Reconnect("no heartbeat from the server".into())),
            Ok(Ok(Some(event))) => event,
            Ok(Ok(None)) => return Ok(Outcome::Reconnect("the server ended the stream".into())),
            Ok(Err(status)) if status.code() == Code::Unauthenticated => return Err(status.into()),
            Ok(Err(status)) => return Ok(Outcome::Reconnect(status.message().to_owned())),
        };
        let profile = &mut session.profile;
        match &event.kind {
            Some(Kind::Ready(ready)) => {
                profile.epoch = ready.epoch.clone();
                silence_limit = Duration::from_millis(u64::from(ready.heartbeat_interval_ms))
                    * MISSED_HEARTBEATS;
            }
            Some(Kind::Message(m)) => {
                let cursor = profile
                    .cursors
                    .entry(m.conversation_id.clone())
                    .or_insert(0);
                *cursor = (*cursor).max(m.seq);
                *messages += 1;
            }
            Some(Kind::Gap(g)) if g.reason() == Reason::EpochChanged => {
                profile.cursors.clear();
                profile.epoch.clear();
            }
            Some(Kind::Synced(synced)) => {
                for head in &synced.heads {
                    profile
                        .cursors
                        .insert(head.conversation_id.clone(), head.seq);
                }
            }
            Some(Kind::Conversation(change))
                if change.change() == pb::conversation_changed::Change::Removed =>
            {
                if let Some(c) = &change.conversation {
                    profile.cursors.remove(&c.conversation_id);
                }
            }
            _ => {}
        }
        if let Some(line) = output::event_line(&event) {
            out.print(output::event(&event), || line);
        }
        if last_save.elapsed() >= SAVE_EVERY {
            session.save()?;
            last_save = Instant::now();
        }
        let synced = matches!(event.kind, Some(Kind::Synced(_)));
        if (until_synced && synced) || count.is_some_and(|n| *messages >= n) {
            return Ok(Outcome::Done);
        }
    }
}
