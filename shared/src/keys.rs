//! Every Redis key Switchboard uses, built here and nowhere else (Lua scripts
//! receive their keys as KEYS, never build them). The catalogue with types
//! and owners is in docs/ARCHITECTURE.md; the tests below pin each string.
//!
//! Every key that an atomic step touches with others carries a hash tag
//! (`{u:<user>}`, `{g:<group>}`, `{t:<topic>}`, `{c:<conversation>}`,
//! `{gw:<gateway>}`, `{o:<outbox shard>}`), so on Redis Cluster each script or
//! MULTI touches one slot; the slot map is in docs/ARCHITECTURE.md.
//!
//! Router-owned keys hold the durable data; presence-owned keys (`sb:presence:*`)
//! hold who is connected where and are rebuilt by gateways after a loss.

use crate::ids::{ConversationId, GatewayId, GroupId, SessionId, TopicId, UserId};

/// String: the store's epoch, a random id created once. If Redis loses its
/// data the epoch changes, and routers forget what they learnt from the old
/// data (clients hold their cursors under the history's epoch, which stays).
pub fn epoch() -> String {
    "sb:epoch".into()
}

/// Hash: `pw` (argon2id PHC string), `name`, `created`, `banned` (`1`
/// while banned).
pub fn user(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}")
}

/// Sorted set, every score 0: every user id, for finding users by prefix
/// (`ZRANGEBYLEX`). Written after the account; one that is missing (a crash
/// in between) is written again when the user next logs in.
pub fn users() -> String {
    "sb:users".into()
}

/// Hash: `user`, `device`, `exp`; expires with the token.
pub fn session(session: &SessionId) -> String {
    format!("sb:session:{session}")
}

/// Sorted set: the user's session ids scored by expiry (ms), so they can
/// all be listed and ended. Written before the session; entries whose
/// session is gone are skipped and pruned when read.
pub fn user_sessions(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:sessions")
}

/// Stream: the admin audit log (`at`, `admin`, `action`, `target`,
/// `detail`), capped at about [`AUDIT_KEPT`] entries.
pub fn audit() -> String {
    "sb:audit".into()
}

/// Audit entries kept, about.
pub const AUDIT_KEPT: usize = 100_000;

/// String with expiry: failed logins for this account in the current window.
pub fn login_failures_of_user(user: &UserId) -> String {
    format!("sb:login-failures:user:{user}")
}

/// String with expiry: failed logins from this client address (any account)
/// in the current window.
pub fn login_failures_from(address: &str) -> String {
    format!("sb:login-failures:addr:{address}")
}

/// Hash: contact user id -> added-at ms. The users `user` added.
pub fn contacts(user: &UserId) -> String {
    format!("sb:contacts:{{u:{user}}}")
}

/// Hash: what `user` and each other user have settled, a field per fact
/// ([`peer_field`]), so that a direct send reads all it depends on with
/// one HMGET in the sender's slot.
pub fn user_peers(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:peers")
}

/// A fact about `user` and one other user, kept in [`user_peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerFact {
    /// `user` blocked them (value: when, ms).
    Blocked,
    /// They blocked `user` (value: when, ms); the mirror of their `Blocked`.
    BlockedBy,
    /// `user` wrote in, or accepted, their direct conversation.
    Accepted,
}

impl PeerFact {
    const ALL: [Self; 3] = [Self::Blocked, Self::BlockedBy, Self::Accepted];

    fn tag(self) -> char {
        match self {
            Self::Blocked => 'b',
            Self::BlockedBy => 'B',
            Self::Accepted => 'a',
        }
    }

    /// The fact and the other user a field of [`user_peers`] names.
    pub fn parse_field(field: &str) -> Option<(Self, &str)> {
        let (peer, tag) = field.rsplit_once(' ')?;
        let fact = Self::ALL
            .into_iter()
            .find(|f| tag.len() == 1 && tag.starts_with(f.tag()))?;
        Some((fact, peer))
    }
}

/// The field of [`user_peers`] holding `fact` about `peer`.
pub fn peer_field(peer: &UserId, fact: PeerFact) -> String {
    format!("{peer} {}", fact.tag())
}

/// Hash: user id -> added-at ms. The users who added `user` (reverse index).
pub fn contacted_by(user: &UserId) -> String {
    format!("sb:contacted-by:{{u:{user}}}")
}

/// Hash: `name`, `owner`, `policy`, `history`, `created`.
pub fn group(group: &GroupId) -> String {
    format!("sb:group:{{g:{group}}}")
}

/// Hash: member user id -> role. The group's membership.
pub fn group_members(group: &GroupId) -> String {
    format!("sb:group:{{g:{group}}}:members")
}

/// Hash: invited user id -> invited-at ms.
pub fn group_invites(group: &GroupId) -> String {
    format!("sb:group:{{g:{group}}}:invites")
}

/// Hash: user id -> seq of the message that says they (last) joined. Kept
/// after they leave: with history from their join, they read from here.
pub fn group_joined(group: &GroupId) -> String {
    format!("sb:group:{{g:{group}}}:joined")
}

/// Hash: former member -> seq of the message that says they left or were
/// removed: they may still read everything up to and including it.
pub fn group_left(group: &GroupId) -> String {
    format!("sb:group:{{g:{group}}}:left")
}

/// Set: the groups `user` is a member of.
pub fn user_groups(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:groups")
}

/// Set: every group `user` has ever been a member of (deleting their
/// account erases their messages there, in groups they left too).
pub fn user_groups_ever(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:groups_ever")
}

/// Set: the groups `user` is invited to.
pub fn user_invites(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:invites")
}

/// Hash: `user`'s Web Push subscriptions, endpoint → the rest (JSON).
pub fn user_push(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:push")
}

/// Set: the direct and group conversations `user` muted.
pub fn user_muted(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:muted")
}

/// Sorted set: direct and topic-thread conversations of `user`, scored by
/// last activity (ms). Groups are found through [`user_groups`].
pub fn user_conversations(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:convs")
}

/// Integer: the conversation's last assigned seq (standalone store only:
/// with Redis, the history store assigns seqs).
pub fn conversation_seq(conv: &ConversationId) -> String {
    format!("sb:conv:{{c:{conv}}}:seq")
}

/// Stream: the conversation's messages, entry id `<seq>-0`, field `m` holds
/// the encoded message (standalone store only: with Redis, the history
/// store keeps them).
pub fn conversation_log(conv: &ConversationId) -> String {
    format!("sb:conv:{{c:{conv}}}:log")
}

/// Sorted set: the conversation's reactions, member `<seq, 20 digits>
/// <user> <emoji>` scored by when it was added (standalone store only:
/// with Redis, the history store keeps them).
pub fn conversation_reactions(conv: &ConversationId) -> String {
    format!("sb:conv:{{c:{conv}}}:reactions")
}

/// Sorted set: user id scored by their read seq (`ZADD GT`: it only moves
/// forward, with no script).
pub fn conversation_reads(conv: &ConversationId) -> String {
    format!("sb:conv:{{c:{conv}}}:read")
}

/// Sorted set: user id scored by the seq of the last message they sent
/// here. Read for topic
/// threads only (the owner's "replied"), so Redis keeps it only there.
pub fn conversation_sent(conv: &ConversationId) -> String {
    format!("sb:conv:{{c:{conv}}}:sent")
}

/// Sorted set: user id scored by the highest seq that reached one of their
/// devices.
pub fn conversation_delivered(conv: &ConversationId) -> String {
    format!("sb:conv:{{c:{conv}}}:delivered")
}

/// String with expiry: the stored result of a direct or group send with
/// this client message id, in the sender's slot.
pub fn idempotency(sender: &UserId, client_msg_id: &str) -> String {
    format!("sb:idem:{{u:{sender}}}:{client_msg_id}")
}

/// String with expiry: the stored result of a topic send (a broadcast or a
/// reply) with this client message id, in the topic's slot: the script that
/// writes the topic's timeline entry writes this record in the same step, so
/// a retry never adds a second entry.
pub fn topic_idempotency(topic: &TopicId, sender: &UserId, client_msg_id: &str) -> String {
    format!("sb:idem:{{t:{topic}}}:{sender}:{client_msg_id}")
}

/// How many outbox shards a Redis Cluster has. Each is a key of its own (its
/// own hash tag), so the outbox is spread over the primaries; a router
/// sweeps them all. A single Redis has one: confirmations of many
/// conversations' messages are then one `ZREM`, and a sweep one claim.
pub const OUTBOX_SHARDS: u32 = 64;

/// Sorted set: `<conversation>#<seq>` of messages stored but not yet handed
/// to the bus, scored by when they were stored (ms), for one shard of the
/// conversations. Routers redeliver entries that stay too long (their
/// router died).
pub fn outbox(shard: u32) -> String {
    format!("sb:outbox:{{o:{shard}}}")
}

/// Member of every outbox shard, scored `+inf` (never claimed): the store's
/// epoch as a router knows it. Each send's outbox `ZADD` names it too, and
/// finding it new means that Redis lost its data: the check costs the send
/// no command of its own.
pub fn outbox_epoch_mark(epoch: &str) -> String {
    format!("epoch:{epoch}")
}

/// The outbox shard, of `shards`, a conversation's messages are recorded in
/// (FNV-1a of its id: the same in every process and release).
pub fn outbox_of(conv: &ConversationId, shards: u32) -> String {
    let hash = conv.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    outbox(hash % shards.max(1))
}

/// Hash: `name`, `owner`, `created`, `deleted`.
pub fn topic(topic: &TopicId) -> String {
    format!("sb:topic:{{t:{topic}}}")
}

/// Hash: bound contact -> `bound` or `muted`. The forwarding list: a reply
/// is admitted only while its sender's field is here.
pub fn topic_contacts(topic: &TopicId) -> String {
    format!("sb:topic:{{t:{topic}}}:contacts")
}

/// Hash: contact no longer bound -> `left` or `removed`.
pub fn topic_former(topic: &TopicId) -> String {
    format!("sb:topic:{{t:{topic}}}:former")
}

/// Integer: the topic timeline's last seq.
pub fn topic_timeline_seq(topic: &TopicId) -> String {
    format!("sb:topic:{{t:{topic}}}:tl-seq")
}

/// Stream: the owner's merged timeline, entry id `<seq>-0`, field `e` =
/// `<broadcast id>|<message id> <message id>...`.
pub fn topic_timeline(topic: &TopicId) -> String {
    format!("sb:topic:{{t:{topic}}}:timeline")
}

/// Hash: broadcast id -> the message ids of its copies.
pub fn topic_broadcasts(topic: &TopicId) -> String {
    format!("sb:topic:{{t:{topic}}}:broadcasts")
}

/// Sorted set: the topics `user` owns, scored by creation time.
pub fn user_topics(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:topics")
}

/// Set: the topics `user` is or was bound into (their topic dialogs).
pub fn user_bound_topics(user: &UserId) -> String {
    format!("sb:user:{{u:{user}}}:bound")
}

/// Set: every gateway presence knows about.
pub fn presence_gateways() -> String {
    "sb:presence:gateways".into()
}

/// String: present while presence holds the gateway's state (set when it
/// registers, removed with its state); a gateway whose marker is gone must
/// resync.
pub fn presence_gateway_known(gateway: &GatewayId) -> String {
    format!("sb:presence:gw:{{gw:{gateway}}}:known")
}

/// String with expiry: present while the gateway heartbeats.
pub fn presence_gateway_alive(gateway: &GatewayId) -> String {
    format!("sb:presence:gw:{{gw:{gateway}}}:alive")
}

/// Hash: connection id -> user id, for every connection on the gateway.
pub fn presence_gateway_connections(gateway: &GatewayId) -> String {
    format!("sb:presence:gw:{{gw:{gateway}}}:conns")
}

/// Set: groups the gateway hosts members of.
pub fn presence_gateway_groups(gateway: &GatewayId) -> String {
    format!("sb:presence:gw:{{gw:{gateway}}}:groups")
}

/// Hash: connection id -> `<gateway> <device>`, for every live connection of the user.
pub fn presence_user(user: &UserId) -> String {
    format!("sb:presence:user:{{u:{user}}}")
}

/// Set: gateways that hold at least one connection of a member of the group.
pub fn presence_group(group: &GroupId) -> String {
    format!("sb:presence:group:{{g:{group}}}")
}

/// Integer: users with at least one connection (kept by the presence scripts).
pub fn presence_online_count() -> String {
    "sb:presence:online".into()
}

/// String with expiry: which presence instance runs the reaper.
pub fn presence_reaper_lock() -> String {
    "sb:presence:reaper".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pinned() {
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let g = GroupId::parse("gabcdefghjkmn").unwrap();
        let t = TopicId::parse("tabcdefghjkmn").unwrap();
        let s = SessionId::parse("sabcdefgh").unwrap();
        let gw = GatewayId::parse("gw-0-xyz").unwrap();
        let dm = ConversationId::direct(alice.clone(), bob.clone());

        assert_eq!(epoch(), "sb:epoch");
        assert_eq!(user(&alice), "sb:user:{u:alice}");
        assert_eq!(session(&s), "sb:session:sabcdefgh");
        assert_eq!(user_sessions(&alice), "sb:user:{u:alice}:sessions");
        assert_eq!(user_peers(&alice), "sb:user:{u:alice}:peers");
        assert_eq!(user_muted(&alice), "sb:user:{u:alice}:muted");
        assert_eq!(user_push(&alice), "sb:user:{u:alice}:push");
        assert_eq!(peer_field(&bob, PeerFact::BlockedBy), "bob B");
        for fact in PeerFact::ALL {
            assert_eq!(
                PeerFact::parse_field(&peer_field(&bob, fact)),
                Some((fact, "bob"))
            );
        }
        assert_eq!(PeerFact::parse_field("bob x"), None);
        assert_eq!(PeerFact::parse_field("bob"), None);
        assert_eq!(users(), "sb:users");
        assert_eq!(audit(), "sb:audit");
        assert_eq!(contacts(&alice), "sb:contacts:{u:alice}");
        assert_eq!(
            login_failures_of_user(&alice),
            "sb:login-failures:user:alice"
        );
        assert_eq!(
            login_failures_from("10.0.0.7"),
            "sb:login-failures:addr:10.0.0.7"
        );
        assert_eq!(contacted_by(&bob), "sb:contacted-by:{u:bob}");
        assert_eq!(group(&g), "sb:group:{g:gabcdefghjkmn}");
        assert_eq!(group_members(&g), "sb:group:{g:gabcdefghjkmn}:members");
        assert_eq!(group_invites(&g), "sb:group:{g:gabcdefghjkmn}:invites");
        assert_eq!(group_joined(&g), "sb:group:{g:gabcdefghjkmn}:joined");
        assert_eq!(group_left(&g), "sb:group:{g:gabcdefghjkmn}:left");
        assert_eq!(user_groups(&alice), "sb:user:{u:alice}:groups");
        assert_eq!(user_invites(&alice), "sb:user:{u:alice}:invites");
        assert_eq!(user_conversations(&alice), "sb:user:{u:alice}:convs");
        assert_eq!(conversation_seq(&dm), "sb:conv:{c:dm:alice:bob}:seq");
        assert_eq!(conversation_log(&dm), "sb:conv:{c:dm:alice:bob}:log");
        assert_eq!(conversation_reads(&dm), "sb:conv:{c:dm:alice:bob}:read");
        assert_eq!(conversation_sent(&dm), "sb:conv:{c:dm:alice:bob}:sent");
        assert_eq!(
            conversation_delivered(&dm),
            "sb:conv:{c:dm:alice:bob}:delivered"
        );
        assert_eq!(idempotency(&alice, "m-1"), "sb:idem:{u:alice}:m-1");
        assert_eq!(
            topic_idempotency(&t, &alice, "m-1"),
            "sb:idem:{t:tabcdefghjkmn}:alice:m-1"
        );
        assert_eq!(outbox(7), "sb:outbox:{o:7}");
        assert_eq!(outbox_of(&dm, OUTBOX_SHARDS), "sb:outbox:{o:49}");
        assert_eq!(outbox_of(&dm, 1), "sb:outbox:{o:0}");
        assert_eq!(outbox_epoch_mark("e1"), "epoch:e1");
        assert_eq!(topic(&t), "sb:topic:{t:tabcdefghjkmn}");
        assert_eq!(topic_contacts(&t), "sb:topic:{t:tabcdefghjkmn}:contacts");
        assert_eq!(topic_former(&t), "sb:topic:{t:tabcdefghjkmn}:former");
        assert_eq!(topic_timeline_seq(&t), "sb:topic:{t:tabcdefghjkmn}:tl-seq");
        assert_eq!(topic_timeline(&t), "sb:topic:{t:tabcdefghjkmn}:timeline");
        assert_eq!(
            topic_broadcasts(&t),
            "sb:topic:{t:tabcdefghjkmn}:broadcasts"
        );
        assert_eq!(user_topics(&alice), "sb:user:{u:alice}:topics");
        assert_eq!(user_bound_topics(&alice), "sb:user:{u:alice}:bound");
        assert_eq!(presence_gateways(), "sb:presence:gateways");
        assert_eq!(
            presence_gateway_alive(&gw),
            "sb:presence:gw:{gw:gw-0-xyz}:alive"
        );
        assert_eq!(
            presence_gateway_known(&gw),
            "sb:presence:gw:{gw:gw-0-xyz}:known"
        );
        assert_eq!(
            presence_gateway_connections(&gw),
            "sb:presence:gw:{gw:gw-0-xyz}:conns"
        );
        assert_eq!(
            presence_gateway_groups(&gw),
            "sb:presence:gw:{gw:gw-0-xyz}:groups"
        );
        assert_eq!(presence_user(&alice), "sb:presence:user:{u:alice}");
        assert_eq!(presence_group(&g), "sb:presence:group:{g:gabcdefghjkmn}");
        assert_eq!(presence_reaper_lock(), "sb:presence:reaper");
        assert_eq!(presence_online_count(), "sb:presence:online");
    }
}
