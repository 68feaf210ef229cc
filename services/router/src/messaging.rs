//! Reading: history, read cursors, the conversation list, and the sync a
//! gateway makes when a client subscribes (sending is [`crate::posting`]).

use std::collections::{HashMap, HashSet};

use futures::future::try_join_all;
use switchboard_proto::bus::{SyncRequest, SyncResponse};
use switchboard_proto::pb;
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{ConversationId, GroupId, MessageId, TopicId, UserId};

use crate::access::{direct_peer, page_size};
use crate::error::{RouterError, RouterResult};
use crate::membership::Membership;
use crate::routing::Outgoing;
use crate::store::TopicRecord;
use crate::{Caller, Router};

/// The topics of the topic threads among `convs`, each once.
pub(crate) fn thread_topics(convs: &[ConversationId]) -> Vec<TopicId> {
    let mut topics: Vec<TopicId> = convs
        .iter()
        .filter_map(|c| match c {
            ConversationId::TopicThread { topic, .. } => Some(topic.clone()),
            _ => None,
        })
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

impl Router {
    /// Delivers events that are not messages (receipts, presence, changes).
    /// They are state kept elsewhere too, so a failure is logged, not retried.
    pub async fn deliver_state(&self, outgoing: Vec<Outgoing>) {
        let delivered = match self.store.epoch().await {
            Ok(epoch) => {
                self.deliverer
                    .deliver(&outgoing, &epoch, now_ms(), Vec::new())
                    .await
            }
            Err(err) => Err(err.into()),
        };
        if let Err(err) = delivered {
            tracing::warn!(%err, "cannot deliver a state change");
        }
    }

    pub async fn history(
        &self,
        caller: &Caller,
        req: pb::HistoryRequest,
    ) -> RouterResult<pb::HistoryResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        let readable = self.readable(&caller.user, &conv).await?;
        let head = self.store.heads(std::slice::from_ref(&conv)).await?[0];
        let last = readable.to.map_or(head, |to| to.min(head));
        let first = readable.from;
        let limit = page_size(req.limit);
        // Pages are fetched one message long and cut to what may be read: a
        // message cut off at an end means nothing more lies that way.
        let (mut messages, has_more) = if let Some(after) = req.after_seq {
            let after = after.max(first - 1);
            let mut page = if after >= last {
                Vec::new()
            } else {
                self.store.messages_after(&conv, after, limit + 1).await?
            };
            page.retain(|m| m.seq <= last);
            let more = page.len() > limit;
            page.truncate(limit);
            (page, more)
        } else {
            let before = match req.before_seq {
                0 => u64::MAX,
                before => before,
            }
            .min(last.saturating_add(1));
            let mut page = if before <= first {
                Vec::new()
            } else {
                self.store.messages_before(&conv, before, limit + 1).await?
            };
            page.retain(|m| m.seq >= first);
            let more = page.len() > limit;
            if more {
                page.remove(0);
            }
            (page, more)
        };
        messages.sort_by_key(|m| m.seq);
        self.fill_quotes(&mut messages).await?;
        self.fill_reactions(&caller.user, &mut messages).await?;
        Ok(pb::HistoryResponse {
            messages,
            has_more,
            head_seq: last,
        })
    }

    /// One message `user` may read, as stored; NOT_FOUND if there is no
    /// such message or it lies outside what they may read (the same
    /// answer, so it tells nothing).
    pub(crate) async fn readable_message(
        &self,
        user: &UserId,
        id: &MessageId,
    ) -> RouterResult<pb::Message> {
        let readable = self.readable(user, &id.conversation).await?;
        let not_found = || RouterError::NotFound(format!("no message {id}"));
        if id.seq < readable.from || readable.to.is_some_and(|to| id.seq > to) {
            return Err(not_found());
        }
        self.store
            .messages_at(&id.conversation, &[id.seq])
            .await?
            .pop()
            .ok_or_else(not_found)
    }

    pub async fn mark_read(
        &self,
        caller: &Caller,
        req: pb::MarkReadRequest,
    ) -> RouterResult<pb::MarkReadResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        let membership = self.membership(&caller.user, &conv).await?;
        let head = self.store.heads(std::slice::from_ref(&conv)).await?[0];
        let read_seq = self
            .store
            .mark_read(&conv, &caller.user, req.seq.min(head))
            .await?;
        let receipt = Outgoing {
            audience: membership.audience(&caller.user),
            event: pb::Event {
                kind: Some(pb::event::Kind::Receipt(pb::ReadReceipt {
                    conversation_id: conv.to_string(),
                    user_id: caller.user.to_string(),
                    read_seq,
                })),
            },
        };
        self.deliver_state(vec![receipt]).await;
        Ok(pb::MarkReadResponse { read_seq })
    }

    pub async fn list_read_cursors(
        &self,
        caller: &Caller,
        req: pb::ListReadCursorsRequest,
    ) -> RouterResult<pb::ListReadCursorsResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        self.membership(&caller.user, &conv).await?;
        let cursors = self
            .store
            .read_cursors(&conv)
            .await?
            .into_iter()
            .map(|(user, read_seq)| pb::ReadReceipt {
                conversation_id: conv.to_string(),
                user_id: user.to_string(),
                read_seq,
            })
            .collect();
        Ok(pb::ListReadCursorsResponse { cursors })
    }

    /// Every conversation of the user: direct and topic threads from their
    /// list, groups from their memberships.
    async fn conversations_of(
        &self,
        user: &UserId,
    ) -> RouterResult<(Vec<ConversationId>, Vec<GroupId>)> {
        let (mut convs, groups) = futures::try_join!(
            self.store.user_conversations(user),
            self.store.user_groups(user),
        )?;
        convs.extend(groups.iter().cloned().map(ConversationId::Group));
        Ok((convs, groups))
    }

    pub async fn sync(&self, caller: &Caller, _req: SyncRequest) -> RouterResult<SyncResponse> {
        let epoch = self.store.epoch().await?;
        let (convs, groups) = self.conversations_of(&caller.user).await?;
        let heads = self.store.heads(&convs).await?;
        Ok(SyncResponse {
            epoch,
            heads: convs
                .iter()
                .zip(heads)
                .map(|(conv, seq)| pb::Cursor {
                    conversation_id: conv.to_string(),
                    seq,
                })
                .collect(),
            group_ids: groups.iter().map(ToString::to_string).collect(),
        })
    }

    pub async fn list_conversations(
        &self,
        caller: &Caller,
        _req: pb::ListConversationsRequest,
    ) -> RouterResult<pb::ListConversationsResponse> {
        let user = &caller.user;
        let (convs, _) = self.conversations_of(user).await?;
        let (epoch, mut conversations) = futures::try_join!(
            async { Ok(self.store.epoch().await?) },
            self.summaries(user, &convs)
        )?;
        conversations.sort_by_key(|c| {
            std::cmp::Reverse(c.last_message.as_ref().map_or(0, |m| m.sent_at_ms))
        });
        Ok(pb::ListConversationsResponse {
            conversations,
            epoch,
        })
    }

    /// What `user` sees of each of `convs` in their conversation list.
    pub(crate) async fn summaries(
        &self,
        user: &UserId,
        convs: &[ConversationId],
    ) -> RouterResult<Vec<pb::Conversation>> {
        let groups: Vec<GroupId> = convs
            .iter()
            .filter_map(|c| match c {
                ConversationId::Group(group) => Some(group.clone()),
                _ => None,
            })
            .collect();
        let has_direct = convs
            .iter()
            .any(|c| matches!(c, ConversationId::Direct(..)));
        let (heads, reads, muted, accepted, contacts, lasts) = futures::try_join!(
            self.store.heads(convs),
            self.store.read_cursors_of(user, convs),
            self.store.muted_conversations(user),
            async {
                if has_direct {
                    self.store.accepted_peers(user).await
                } else {
                    Ok(Vec::new())
                }
            },
            async {
                if has_direct {
                    self.store.contacts(user).await
                } else {
                    Ok(Vec::new())
                }
            },
            try_join_all(
                convs
                    .iter()
                    .map(|conv| self.store.messages_before(conv, u64::MAX, 1))
            ),
        )?;
        let peers: Vec<UserId> = convs.iter().filter_map(|c| direct_peer(c, user)).collect();
        let topic_ids = thread_topics(convs);
        let (peer_records, group_records, topic_records) = futures::try_join!(
            self.store.users(&peers),
            self.store.groups(&groups),
            self.store.topics(&topic_ids),
        )?;
        let topics: HashMap<TopicId, TopicRecord> = topic_records
            .into_iter()
            .flatten()
            .map(|t| (t.id.clone(), t))
            .collect();
        let names: HashMap<String, String> = peer_records
            .into_iter()
            .flatten()
            .map(|u| (u.id.to_string(), u.display_name))
            .chain(
                group_records
                    .into_iter()
                    .flatten()
                    .map(|g| (g.id.to_string(), g.name)),
            )
            .collect();
        let muted: HashSet<ConversationId> = muted.into_iter().collect();
        let accepted: HashSet<UserId> = accepted.into_iter().collect();
        let contacts: HashSet<UserId> = contacts.into_iter().map(|c| c.user).collect();
        Ok(convs
            .iter()
            .zip(heads)
            .zip(reads)
            .zip(lasts)
            .map(|(((conv, head_seq), read_seq), mut last)| {
                let mut summary = pb::Conversation {
                    conversation_id: conv.to_string(),
                    head_seq,
                    read_seq,
                    unread: head_seq.saturating_sub(read_seq),
                    last_message: last.pop(),
                    muted: muted.contains(conv),
                    ..Default::default()
                };
                match conv {
                    ConversationId::Direct(..) => {
                        let peer = direct_peer(conv, user)
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        summary.kind = pb::ConversationKind::Direct as i32;
                        summary.title = names.get(&peer).cloned().unwrap_or_else(|| peer.clone());
                        summary.request = !UserId::parse(&peer)
                            .is_ok_and(|p| accepted.contains(&p) || contacts.contains(&p));
                        summary.peer_id = peer;
                    }
                    ConversationId::Group(group) => {
                        summary.kind = pb::ConversationKind::Group as i32;
                        summary.title = names.get(group.as_str()).cloned().unwrap_or_default();
                        summary.group_id = group.to_string();
                    }
                    ConversationId::TopicThread { topic, contact } => {
                        if let Some(topic) = topics.get(topic) {
                            let described =
                                self.thread_summary(topic, contact, &topic.owner == user);
                            summary = pb::Conversation {
                                conversation_id: summary.conversation_id,
                                head_seq: summary.head_seq,
                                read_seq: summary.read_seq,
                                unread: summary.unread,
                                last_message: summary.last_message,
                                ..described
                            };
                        }
                    }
                }
                summary
            })
            .collect())
    }

    /// Tells `user`'s devices how `conv` reads for them now.
    async fn tell_own_devices(&self, user: &UserId, conv: &ConversationId) -> RouterResult<()> {
        let summary = self.summaries(user, std::slice::from_ref(conv)).await?;
        if let Some(summary) = summary.into_iter().next() {
            self.tell(
                vec![user.clone()],
                pb::conversation_changed::Change::Updated,
                summary,
            )
            .await;
        }
        Ok(())
    }

    pub async fn accept_conversation(
        &self,
        caller: &Caller,
        req: pb::AcceptConversationRequest,
    ) -> RouterResult<pb::AcceptConversationResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        let Membership::Direct { peer } = self.membership(&caller.user, &conv).await? else {
            return Err(RouterError::InvalidArgument(
                "only a direct conversation can be a message request".into(),
            ));
        };
        let user = &caller.user;
        if self.store.accept_direct(user, &peer).await? {
            // The caller's other devices move it to the inbox too.
            self.tell_own_devices(user, &conv).await?;
        }
        Ok(pb::AcceptConversationResponse {})
    }

    pub async fn mute_conversation(
        &self,
        caller: &Caller,
        req: pb::MuteConversationRequest,
    ) -> RouterResult<pb::MuteConversationResponse> {
        let conv = ConversationId::parse(&req.conversation_id)?;
        if matches!(conv, ConversationId::TopicThread { .. }) {
            return Err(RouterError::InvalidArgument(
                "a topic's contact mutes it with MuteTopic; its owner mutes no thread".into(),
            ));
        }
        self.membership(&caller.user, &conv).await?;
        let user = &caller.user;
        if self
            .store
            .set_conversation_muted(user, &conv, req.muted)
            .await?
        {
            // The caller's other devices follow.
            self.tell_own_devices(user, &conv).await?;
        }
        Ok(pb::MuteConversationResponse {})
    }
}
