#![allow(clippy::unwrap_used)]

//! The store contract: every case runs against the Redis store with its
//! messages in PostgreSQL (a real redis-server and a real PostgreSQL of the
//! test's own), the same on a real Redis Cluster (three primaries, a replica
//! each), and the embedded redb store, so the backends cannot drift apart.

use std::future::Future;
use std::sync::Arc;

use switchboard_proto::pb::{self, system_event::Kind};
use switchboard_router::search::{Query, SearchPosition, SearchScope};
use switchboard_router::store::embedded::EmbeddedStore;
use switchboard_router::store::history::{HistoryAppend, HistoryWriter, PgHistory};
use switchboard_router::store::redis::{RecordTtls, RedisStore};
use switchboard_router::store::{
    Admission, Amendment, AppendBatch, AuditRecord, ContactEntry, DirectStates, GroupMembership,
    GroupRecord, MembershipChange, NewMessage, PushSubscription, Reacted, SessionRecord, Store,
    StoreError, StoredReaction, UserRecord,
};
use switchboard_shared::ids::{ClientMsgId, ConversationId, DeviceId, GroupId, SessionId, UserId};
use switchboard_shared::redis_pool::{self, RedisConfig};
use switchboard_testkit::{PostgresServer, RedisCluster, RedisServer};

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

async fn on_each_store<F, Fut>(case: F)
where
    F: Fn(Box<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    case(Box::new(with_history(&redis.url(), &postgres).await.0)).await;
    drop(redis);

    let cluster = RedisCluster::start(3, 1);
    let postgres = PostgresServer::start();
    case(Box::new(with_history(&cluster.url(), &postgres).await.0)).await;
    drop(cluster);

    let dir = tempfile::tempdir().unwrap();
    case(Box::new(
        EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
    ))
    .await;
}

/// Retry records' lifetimes in the Redis store under test.
const TTLS: RecordTtls = RecordTtls {
    send_secs: 600,
    topic_secs: 3600,
};

/// A connection of the test's own to `redis`, to look at or change what the
/// store wrote.
async fn raw_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A Redis store whose messages live in the history store, and that store.
async fn with_history(redis_url: &str, postgres: &PostgresServer) -> (RedisStore, Arc<PgHistory>) {
    let pool = redis_pool::connect(&RedisConfig::new(redis_url))
        .await
        .unwrap();
    assert_eq!(pool.is_cluster(), redis_url.contains(','), "{redis_url}");
    let log = Arc::new(PgHistory::connect(&postgres.url(), 4).await.unwrap());
    let writer = HistoryWriter::start(log.clone(), 1, 64, std::time::Duration::ZERO);
    let store = RedisStore::new(pool, TTLS, log.clone(), writer)
        .await
        .unwrap();
    (store, log)
}

fn text(conv: &ConversationId, sender: &UserId, body: &str, now: i64) -> NewMessage {
    NewMessage {
        conversation: conv.clone(),
        message: pb::Message {
            sender: sender.to_string(),
            sent_at_ms: now,
            text: body.into(),
            ..Default::default()
        },
        admission: None,
        index_for: vec![],
        read_by: Some(sender.clone()),
    }
}

/// A membership change's message as the router writes it: `actor` did it to
/// `user`, and the system event says so (a repair reads it from the log).
fn change_message(
    conv: &ConversationId,
    actor: &UserId,
    user: &UserId,
    kind: Kind,
    body: &str,
    now: i64,
) -> NewMessage {
    let mut message = text(conv, actor, body, now);
    message.message.system = Some(pb::SystemEvent {
        kind: kind as i32,
        user_id: user.to_string(),
        actor_id: actor.to_string(),
        detail: String::new(),
        message_id: String::new(),
    });
    message
}

/// An open group `owner` has just created, and its conversation.
async fn open_group(
    store: &dyn Store,
    owner: &UserId,
    name: &str,
) -> (GroupRecord, ConversationId) {
    let group = GroupRecord {
        id: GroupId::generate(),
        name: name.into(),
        owner: owner.clone(),
        policy: pb::JoinPolicy::Open,
        history: pb::HistoryVisibility::All,
        created_at_ms: 1,
        member_count: 0,
        description: String::new(),
    };
    let conv = ConversationId::Group(group.id.clone());
    store
        .create_group(&group, text(&conv, owner, "created", 1))
        .await
        .unwrap();
    (group, conv)
}

/// The texts of a conversation's first messages, in order.
async fn texts_of(store: &dyn Store, conv: &ConversationId) -> Vec<String> {
    store
        .messages_after(conv, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

fn single(conv: &ConversationId, sender: &UserId, body: &str, id: Option<&str>) -> AppendBatch {
    AppendBatch {
        idempotency: id.map(|id| (sender.clone(), ClientMsgId::parse(id).unwrap())),
        items: vec![text(conv, sender, body, 1_000)],
        now_ms: 1_000,
        timeline: None,
        memo: String::new(),
    }
}

#[tokio::test]
async fn users_are_created_once() {
    on_each_store(|store| async move {
        let record = UserRecord {
            id: user("alice"),
            display_name: "Alice".into(),
            password_hash: "$argon2id$x".into(),
            created_at_ms: 5,
            banned: false,
            deleted: false,
        };
        assert!(store.create_user(&record).await.unwrap());
        let mut second = record.clone();
        second.display_name = "Impostor".into();
        assert!(!store.create_user(&second).await.unwrap());
        let found = store.users(&[user("alice"), user("nobody")]).await.unwrap();
        assert_eq!(found, vec![Some(record), None]);
    })
    .await;
}

#[tokio::test]
async fn sessions_name_their_user_and_end_when_deleted_or_expired() {
    on_each_store(|store| async move {
        let far = switchboard_shared::clock::now_ms() + 3_600_000;
        let session = SessionRecord {
            id: SessionId::generate(),
            user: user("alice"),
            device: DeviceId::parse("laptop").unwrap(),
            expires_at_ms: far,
        };
        assert_eq!(store.session(&session.id, 0).await.unwrap(), None);
        store.put_session(&session).await.unwrap();
        assert_eq!(
            store.session(&session.id, 0).await.unwrap(),
            Some(session.clone()),
            "the session names its user and device"
        );
        assert_eq!(
            store.session(&session.id, far).await.unwrap(),
            None,
            "expired at its time"
        );
        store.delete_session(&session.id).await.unwrap();
        assert_eq!(store.session(&session.id, 0).await.unwrap(), None);
    })
    .await;
}

fn account(id: &str) -> UserRecord {
    UserRecord {
        id: user(id),
        display_name: id.to_uppercase(),
        password_hash: "$argon2id$x".into(),
        created_at_ms: 5,
        banned: false,
        deleted: false,
    }
}

#[tokio::test]
async fn users_are_found_by_prefix_a_page_at_a_time() {
    on_each_store(|store| async move {
        for id in ["ann", "anna", "annika", "bob", "amy"] {
            assert!(store.create_user(&account(id)).await.unwrap());
        }
        let ids = |found: Vec<UserId>| found.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            ids(store.user_ids("ann", "", 10).await.unwrap()),
            ["ann", "anna", "annika"]
        );
        assert_eq!(
            ids(store.user_ids("ann", "", 2).await.unwrap()),
            ["ann", "anna"]
        );
        assert_eq!(
            ids(store.user_ids("ann", "anna", 2).await.unwrap()),
            ["annika"]
        );
        assert_eq!(
            ids(store.user_ids("", "", 10).await.unwrap()),
            ["amy", "ann", "anna", "annika", "bob"]
        );
        assert!(store.user_ids("carl", "", 10).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_users_sessions_are_listed_until_they_end() {
    on_each_store(|store| async move {
        let now = switchboard_shared::clock::now_ms();
        let session = |device: &str, expires_at_ms: i64| SessionRecord {
            id: SessionId::generate(),
            user: user("alice"),
            device: DeviceId::parse(device).unwrap(),
            expires_at_ms,
        };
        let (laptop, phone, old) = (
            session("laptop", now + 3_600_000),
            session("phone", now + 7_200_000),
            session("old", now - 1),
        );
        for s in [&laptop, &phone, &old] {
            store.put_session(s).await.unwrap();
        }
        let mut listed = store.user_sessions(&user("alice"), now).await.unwrap();
        listed.sort_by_key(|s| s.expires_at_ms);
        assert_eq!(
            listed,
            vec![laptop.clone(), phone.clone()],
            "expired ones are not listed"
        );
        store.delete_session(&laptop.id).await.unwrap();
        assert_eq!(
            store.user_sessions(&user("alice"), now).await.unwrap(),
            vec![phone]
        );
        assert!(
            store
                .user_sessions(&user("bob"), now)
                .await
                .unwrap()
                .is_empty()
        );
        // A session makes its user findable even if nothing else indexed them.
        assert_eq!(
            store.user_ids("ali", "", 5).await.unwrap(),
            vec![user("alice")]
        );
    })
    .await;
}

#[tokio::test]
async fn bans_passwords_and_names_change_existing_accounts_only() {
    on_each_store(|store| async move {
        assert!(store.create_user(&account("eve")).await.unwrap());
        assert!(store.set_banned(&user("eve"), true).await.unwrap());
        let eve = || async {
            store
                .users(&[user("eve")])
                .await
                .unwrap()
                .remove(0)
                .unwrap()
        };
        assert!(eve().await.banned);
        assert!(store.set_banned(&user("eve"), false).await.unwrap());
        assert!(!eve().await.banned);
        assert!(
            store
                .set_password(&user("eve"), "$argon2id$new")
                .await
                .unwrap()
        );
        assert_eq!(eve().await.password_hash, "$argon2id$new");
        assert!(
            store
                .set_display_name(&user("eve"), "Eve M.")
                .await
                .unwrap()
        );
        assert_eq!(eve().await.display_name, "Eve M.");
        // A deleted account keeps no name.
        assert!(store.create_user(&account("gone")).await.unwrap());
        assert!(store.delete_account(&user("gone")).await.unwrap());
        assert!(!store.set_display_name(&user("gone"), "Back").await.unwrap());
        let gone = store
            .users(&[user("gone")])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert!(gone.display_name.is_empty(), "{gone:?}");
        // Nobody is created by any of them.
        assert!(
            !store
                .set_display_name(&user("ghost"), "Ghost")
                .await
                .unwrap()
        );
        assert!(!store.set_banned(&user("ghost"), true).await.unwrap());
        assert!(
            !store
                .set_password(&user("ghost"), "$argon2id$x")
                .await
                .unwrap()
        );
        assert_eq!(store.users(&[user("ghost")]).await.unwrap(), vec![None]);
    })
    .await;
}

#[tokio::test]
async fn a_deleted_account_is_a_tombstone_that_keeps_its_id() {
    on_each_store(|store| async move {
        assert!(store.create_user(&account("eve")).await.unwrap());
        assert!(store.delete_account(&user("eve")).await.unwrap());
        let eve = store
            .users(&[user("eve")])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert!(eve.deleted && eve.banned, "{eve:?}");
        assert!(eve.display_name.is_empty() && eve.password_hash.is_empty());
        // The id stays taken, and found.
        assert!(!store.create_user(&account("eve")).await.unwrap());
        assert_eq!(
            store.user_ids("eve", "", 10).await.unwrap(),
            vec![user("eve")]
        );
        assert!(!store.delete_account(&user("ghost")).await.unwrap());
        assert_eq!(store.users(&[user("ghost")]).await.unwrap(), vec![None]);
    })
    .await;
}

#[tokio::test]
async fn a_senders_messages_are_erased_to_tombstones_and_others_stay() {
    on_each_store(|store| async move {
        let (alice, bob) = (user("alice"), user("bob"));
        let conv = ConversationId::direct(alice.clone(), bob.clone());
        for (who, body) in [(&alice, "one"), (&bob, "two"), (&alice, "three")] {
            store.append(single(&conv, who, body, None)).await.unwrap();
        }
        assert_eq!(store.erase_sent(&conv, &alice).await.unwrap(), 2);
        let messages = store.messages_after(&conv, 0, 10).await.unwrap();
        let seen: Vec<_> = messages
            .iter()
            .map(|m| (m.seq, m.sender.as_str(), m.text.as_str(), m.deleted))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "alice", "", true),
                (2, "bob", "two", false),
                (3, "alice", "", true)
            ]
        );
        // Done already: nothing more to erase; the head stays.
        assert_eq!(store.erase_sent(&conv, &alice).await.unwrap(), 0);
        // One message alone: edited (the same text is no edit), then
        // erased once; a tombstone is edited no more; no such seq changes
        // nothing.
        let edit = |text: &str| Amendment::Edit {
            text: text.into(),
            at_ms: 5_000,
        };
        assert!(
            store
                .amend_message(&conv, 2, &edit("two, fixed"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .amend_message(&conv, 2, &edit("two, fixed"))
                .await
                .unwrap()
        );
        let two = store.messages_after(&conv, 1, 1).await.unwrap().remove(0);
        assert_eq!((two.text.as_str(), two.edited_at_ms), ("two, fixed", 5_000));
        assert!(
            store
                .amend_message(&conv, 2, &Amendment::Erase)
                .await
                .unwrap()
        );
        assert!(
            !store
                .amend_message(&conv, 2, &Amendment::Erase)
                .await
                .unwrap()
        );
        assert!(!store.amend_message(&conv, 2, &edit("back")).await.unwrap());
        assert!(
            !store
                .amend_message(&conv, 9, &Amendment::Erase)
                .await
                .unwrap()
        );
        let two = store.messages_after(&conv, 1, 1).await.unwrap().remove(0);
        assert!(
            two.deleted && two.text.is_empty() && two.sender == "bob",
            "{two:?}"
        );
        assert_eq!(
            store.heads(std::slice::from_ref(&conv)).await.unwrap(),
            vec![3]
        );
        // A whole conversation goes; its seqs are not given out again.
        assert_eq!(store.erase_conversation(&conv).await.unwrap(), 3);
        assert!(store.messages_after(&conv, 0, 10).await.unwrap().is_empty());
        let next = store
            .append(single(&conv, &bob, "after", None))
            .await
            .unwrap();
        assert_eq!(next.single().unwrap().seq, 4);
    })
    .await;
}

/// What a search answers, as `<conversation>#<seq> <text>`.
async fn searched(
    store: &dyn Store,
    scopes: &[SearchScope],
    query: &str,
    after: Option<&SearchPosition>,
    limit: usize,
) -> Vec<String> {
    let words = Query::parse(query).unwrap().words;
    store
        .search(scopes, &words, after, limit)
        .await
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m.message_id, m.text))
        .collect()
}

#[tokio::test]
async fn search_finds_word_starts_newest_first_within_what_may_be_read() {
    on_each_store(|store| async move {
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        let dm = ConversationId::direct(alice.clone(), bob.clone());
        let other = ConversationId::direct(bob.clone(), carol.clone());
        let at = |conv: &ConversationId, who: &UserId, body: &str, now: i64| AppendBatch {
            idempotency: None,
            items: vec![text(conv, who, body, now)],
            now_ms: now,
            timeline: None,
            memo: String::new(),
        };
        for (conv, who, body, now) in [
            (&dm, &alice, "Meeting at noon?", 1_000),
            (&dm, &bob, "yes, the meeting room upstairs", 2_000),
            (&other, &carol, "meet me, not alice", 3_000),
            (&dm, &alice, "no: greeted", 4_000),
            (&dm, &bob, "MEET in Zürich then", 5_000),
        ] {
            store.append(at(conv, who, body, now)).await.unwrap();
        }
        let all = |conv: &ConversationId| SearchScope {
            conversation: conv.clone(),
            from: 1,
            to: None,
        };
        let mine = [all(&dm)];
        let d = dm.to_string();
        assert_eq!(
            searched(&*store, &mine, "meet", None, 10).await,
            [
                format!("{d}#4 MEET in Zürich then"),
                format!("{d}#2 yes, the meeting room upstairs"),
                format!("{d}#1 Meeting at noon?"),
            ],
            "word starts only, case aside, newest first, only the scope's conversations"
        );
        assert_eq!(
            searched(&*store, &mine, "zur meet", None, 10).await,
            Vec::<String>::new(),
            "ü is no u"
        );
        assert_eq!(
            searched(&*store, &mine, "zür MEE", None, 10).await,
            [format!("{d}#4 MEET in Zürich then")],
            "every word must be there"
        );
        // A range of seqs (a group read from a join, or up to a leaving).
        let window = [SearchScope {
            conversation: dm.clone(),
            from: 2,
            to: Some(3),
        }];
        assert_eq!(
            searched(&*store, &window, "meet", None, 10).await,
            [format!("{d}#2 yes, the meeting room upstairs")]
        );
        // Pages: each goes on after the last hit of the one before, across
        // conversations.
        let both = [all(&dm), all(&other)];
        let first = store
            .search(&both, &["meet".to_owned()], None, 2)
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        let last = SearchPosition::of(&first[1]);
        let o = other.to_string();
        assert_eq!(last.conversation, o);
        assert_eq!(
            searched(&*store, &both, "meet", Some(&last), 2).await,
            [
                format!("{d}#2 yes, the meeting room upstairs"),
                format!("{d}#1 Meeting at noon?"),
            ]
        );
        // An edit is found by its new words only; a deleted message not at all.
        store
            .amend_message(
                &dm,
                2,
                &Amendment::Edit {
                    text: "yes, upstairs".into(),
                    at_ms: 6_000,
                },
            )
            .await
            .unwrap();
        store
            .amend_message(&dm, 1, &Amendment::Erase)
            .await
            .unwrap();
        assert_eq!(
            searched(&*store, &mine, "meet", None, 10).await,
            [format!("{d}#4 MEET in Zürich then")]
        );
        assert_eq!(
            searched(&*store, &mine, "upstairs", None, 10).await,
            [format!("{d}#2 yes, upstairs")]
        );
        // A sender's erased messages, and an erased conversation, are gone.
        store.erase_sent(&dm, &bob).await.unwrap();
        assert_eq!(
            searched(&*store, &mine, "upstairs", None, 10).await,
            Vec::<String>::new()
        );
        store.erase_conversation(&other).await.unwrap();
        assert_eq!(
            searched(&*store, &both, "meet", None, 10).await,
            Vec::<String>::new()
        );
        // System messages are not searched.
        let (_, conv) = open_group(&*store, &alice, "Standup").await;
        let mut note = text(&conv, &alice, "alice renamed the meeting", 7_000);
        note.message.system = Some(pb::SystemEvent {
            kind: Kind::GroupUpdated as i32,
            ..Default::default()
        });
        store
            .append(AppendBatch {
                idempotency: None,
                items: vec![note, text(&conv, &alice, "meeting notes", 7_000)],
                now_ms: 7_000,
                timeline: None,
                memo: String::new(),
            })
            .await
            .unwrap();
        let hits = searched(&*store, &[all(&conv)], "meeting", None, 10).await;
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0].ends_with(" meeting notes"), "{hits:?}");
    })
    .await;
}

#[tokio::test]
async fn a_quote_is_stored_as_a_pointer_without_the_quoted_text() {
    on_each_store(|store| async move {
        let (alice, bob) = (user("alice"), user("bob"));
        let conv = ConversationId::direct(alice.clone(), bob.clone());
        store
            .append(single(&conv, &alice, "the secret", None))
            .await
            .unwrap();
        let mut answer = single(&conv, &bob, "noted", None);
        answer.items[0].message.reply_to = Some(pb::Quote {
            message_id: format!("{conv}#1"),
            sender: "alice".into(),
            excerpt: "the secret".into(),
            deleted: false,
        });
        store.append(answer).await.unwrap();
        let stored = store.messages_at(&conv, &[2, 7]).await.unwrap();
        assert_eq!(stored.len(), 1, "only the seqs that exist");
        let quote = stored[0].reply_to.clone().unwrap();
        assert_eq!(quote.message_id, format!("{conv}#1"));
        assert_eq!(quote.sender, "alice");
        assert!(quote.excerpt.is_empty(), "{quote:?}");
    })
    .await;
}

#[tokio::test]
async fn reactions_are_set_per_person_capped_and_dropped_with_their_message() {
    on_each_store(|store| async move {
        let (alice, bob, ali) = (user("alice"), user("bob"), user("ali"));
        let conv = ConversationId::direct(alice.clone(), bob.clone());
        for body in ["one", "two"] {
            store
                .append(single(&conv, &alice, body, None))
                .await
                .unwrap();
        }
        let react = |user: &UserId, seq, emoji: &str, on, at_ms| {
            let (store, conv, user, emoji) = (&store, &conv, user.clone(), emoji.to_owned());
            async move {
                store
                    .react(conv, seq, &user, &emoji, on, at_ms, 2)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(react(&bob, 1, "👍", true, 30).await, Reacted::Changed);
        assert_eq!(react(&bob, 1, "👍", true, 31).await, Reacted::Unchanged);
        assert_eq!(react(&alice, 1, "👍", true, 10).await, Reacted::Changed);
        assert_eq!(react(&bob, 1, "🎉", true, 40).await, Reacted::Changed);
        // Bob has two on #1: a third is refused; another message is not #1.
        assert_eq!(react(&bob, 1, "❤️", true, 50).await, Reacted::TooMany);
        assert_eq!(react(&bob, 2, "❤️", true, 50).await, Reacted::Changed);
        // A user whose id begins another's counts only their own.
        assert_eq!(react(&ali, 1, "🎉", true, 60).await, Reacted::Changed);
        assert_eq!(react(&ali, 1, "👍", true, 61).await, Reacted::Changed);
        assert_eq!(react(&alice, 1, "🎉", false, 70).await, Reacted::Unchanged);
        let seen = |found: Vec<StoredReaction>| {
            found
                .into_iter()
                .map(|r| (r.seq, r.user.to_string(), r.emoji, r.at_ms))
                .collect::<Vec<_>>()
        };
        let r = |seq, user: &str, emoji: &str, at| (seq, user.to_owned(), emoji.to_owned(), at);
        assert_eq!(
            seen(store.reactions(&conv, &[2, 1, 9]).await.unwrap()),
            [
                r(1, "alice", "👍", 10),
                r(1, "bob", "👍", 30),
                r(1, "bob", "🎉", 40),
                r(1, "ali", "🎉", 60),
                r(1, "ali", "👍", 61),
                r(2, "bob", "❤️", 50),
            ]
        );
        // Taken back: gone, and room for another.
        assert_eq!(react(&bob, 1, "👍", false, 80).await, Reacted::Changed);
        assert_eq!(react(&bob, 1, "👍", false, 81).await, Reacted::Unchanged);
        assert_eq!(react(&bob, 1, "❤️", true, 90).await, Reacted::Changed);
        // A deleted message's reactions go; the others' stay.
        store.drop_reactions(&conv, 1).await.unwrap();
        assert!(store.reactions(&conv, &[1]).await.unwrap().is_empty());
        assert_eq!(
            seen(store.reactions(&conv, &[2]).await.unwrap()),
            [r(2, "bob", "❤️", 50)]
        );
        // A whole conversation's go with it.
        store.erase_conversation(&conv).await.unwrap();
        assert!(store.reactions(&conv, &[1, 2]).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_direct_conversation_is_accepted_once_by_one_side() {
    on_each_store(|store| async move {
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        let accepted = |of: UserId, peer: UserId| {
            let store = &store;
            async move { store.direct_states(&of, &peer).await.unwrap().accepted }
        };
        assert!(!accepted(alice.clone(), carol.clone()).await);
        assert!(store.accept_direct(&alice, &carol).await.unwrap());
        assert!(!store.accept_direct(&alice, &carol).await.unwrap());
        assert!(accepted(alice.clone(), carol.clone()).await);
        assert!(!accepted(carol.clone(), alice.clone()).await, "one side's");
        assert!(!accepted(alice.clone(), bob.clone()).await);
        store.accept_direct(&alice, &bob).await.unwrap();
        // Beside blocks in the same record, each fact stays apart.
        store.set_blocked(&alice, &bob, true, 5).await.unwrap();
        let states = store.direct_states(&alice, &bob).await.unwrap();
        assert!(states.blocked && states.accepted && !states.blocked_by);
        assert_eq!(store.accepted_peers(&alice).await.unwrap(), [bob, carol]);
        assert!(
            store
                .accepted_peers(&user("dave"))
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_users_muted_conversations_are_theirs_alone() {
    on_each_store(|store| async move {
        let (alice, bob) = (user("alice"), user("bob"));
        let dm = ConversationId::direct(alice.clone(), bob.clone());
        let group = ConversationId::Group(GroupId::generate());
        assert!(store.muted_conversations(&bob).await.unwrap().is_empty());
        assert!(store.set_conversation_muted(&bob, &dm, true).await.unwrap());
        assert!(!store.set_conversation_muted(&bob, &dm, true).await.unwrap());
        assert!(
            store
                .set_conversation_muted(&bob, &group, true)
                .await
                .unwrap()
        );
        let mut muted = store.muted_conversations(&bob).await.unwrap();
        muted.sort_by_key(ToString::to_string);
        let mut expected = vec![dm.clone(), group.clone()];
        expected.sort_by_key(ToString::to_string);
        assert_eq!(muted, expected);
        assert!(store.muted_conversations(&alice).await.unwrap().is_empty());
        assert!(
            store
                .set_conversation_muted(&bob, &dm, false)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_conversation_muted(&bob, &dm, false)
                .await
                .unwrap()
        );
        assert_eq!(store.muted_conversations(&bob).await.unwrap(), [group]);
    })
    .await;
}

#[tokio::test]
async fn push_subscriptions_are_kept_per_user_by_endpoint() {
    on_each_store(|store| async move {
        let (alice, bob) = (user("alice"), user("bob"));
        let subscription = |endpoint: &str, previews: bool, at: i64| PushSubscription {
            endpoint: endpoint.into(),
            p256dh: "BCVxsr7N".into(),
            auth: "BTBZMqHH6r4Tts7J_aSIgg".into(),
            previews,
            session: "s1".into(),
            added_at_ms: at,
        };
        assert!(store.push_subscriptions(&bob).await.unwrap().is_empty());
        let laptop = subscription("https://fcm.googleapis.com/fcm/send/a", false, 1);
        let phone = subscription(
            "https://updates.push.services.mozilla.com/wpush/v2/b",
            true,
            2,
        );
        store.put_push(&bob, &laptop).await.unwrap();
        store.put_push(&bob, &phone).await.unwrap();
        // The same endpoint again replaces it.
        let laptop_again = subscription(&laptop.endpoint, true, 3);
        store.put_push(&bob, &laptop_again).await.unwrap();
        let mut kept = store.push_subscriptions(&bob).await.unwrap();
        kept.sort_by_key(|s| s.added_at_ms);
        assert_eq!(kept, [phone.clone(), laptop_again]);
        assert!(store.push_subscriptions(&alice).await.unwrap().is_empty());
        assert!(store.remove_push(&bob, &laptop.endpoint).await.unwrap());
        assert!(!store.remove_push(&bob, &laptop.endpoint).await.unwrap());
        assert_eq!(store.push_subscriptions(&bob).await.unwrap(), [phone]);
    })
    .await;
}

#[tokio::test]
async fn a_deleted_group_is_gone_from_every_list_and_remembers_who_was_in_it() {
    on_each_store(|store| async move {
        let (owner, bob, carol) = (user("owner"), user("bob"), user("carol"));
        let (group, conv) = open_group(&*store, &owner, "Climbing").await;
        let joined = change_message(&conv, &bob, &bob, Kind::MemberJoined, "bob joined", 2_000);
        let join = MembershipChange::Join {
            role: pb::Role::Member,
        };
        store
            .change_membership(&group.id, &bob, join.clone(), joined)
            .await
            .unwrap();
        assert!(store.invite(&group.id, &carol, 2_500).await.unwrap());
        let left = change_message(&conv, &bob, &bob, Kind::MemberLeft, "bob left", 3_000);
        store
            .change_membership(&group.id, &bob, MembershipChange::Leave, left)
            .await
            .unwrap();
        // Bob left, but the group stays among those he was ever in.
        assert!(store.user_groups(&bob).await.unwrap().is_empty());
        assert_eq!(
            store.user_groups_ever(&bob).await.unwrap(),
            vec![group.id.clone()]
        );
        assert_eq!(
            store.user_groups_ever(&owner).await.unwrap(),
            vec![group.id.clone()]
        );

        let deleted = store.delete_group(&group.id).await.unwrap().unwrap();
        let mut users = deleted.users.clone();
        users.sort();
        assert_eq!(users, vec![carol.clone(), owner.clone()]);
        assert!(!deleted.before);
        assert_eq!(
            store.groups(std::slice::from_ref(&group.id)).await.unwrap(),
            vec![None]
        );
        assert!(store.members(&group.id).await.unwrap().is_empty());
        assert!(store.user_groups(&owner).await.unwrap().is_empty());
        assert!(store.user_invites(&carol).await.unwrap().is_empty());
        assert_eq!(store.member_role(&group.id, &owner).await.unwrap(), None);
        // Nobody joins it any more.
        let rejoin = change_message(&conv, &bob, &bob, Kind::MemberJoined, "again", 4_000);
        assert!(
            store
                .change_membership(&group.id, &bob, join, rejoin)
                .await
                .is_err()
        );
        // Asking again answers the same people, as done before.
        let again = store.delete_group(&group.id).await.unwrap().unwrap();
        assert!(again.before);
        assert_eq!(again.users.len(), 2);
        assert_eq!(
            store.delete_group(&GroupId::generate()).await.unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn the_audit_log_reads_newest_first_a_page_at_a_time() {
    on_each_store(|store| async move {
        for n in 0..5 {
            store
                .append_audit(&AuditRecord {
                    id: String::new(),
                    at_ms: 1_000 + n,
                    admin: "ops".into(),
                    action: "BanUser".into(),
                    target: format!("user{n}"),
                    detail: "reason: spam".into(),
                })
                .await
                .unwrap();
        }
        let first = store.audit(None, 2).await.unwrap();
        let targets =
            |page: &[AuditRecord]| page.iter().map(|e| e.target.clone()).collect::<Vec<_>>();
        assert_eq!(targets(&first), ["user4", "user3"]);
        assert_eq!(first[0].admin, "ops");
        assert_eq!(first[0].at_ms, 1_004);
        assert_eq!(first[0].detail, "reason: spam");
        let next = store.audit(Some(&first[1].id), 10).await.unwrap();
        assert_eq!(targets(&next), ["user2", "user1", "user0"]);
        assert!(store.audit(Some(&next[2].id), 10).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn ownership_moves_to_a_member_and_the_owner_before_stays_an_admin() {
    on_each_store(|store| async move {
        let (owner, bob) = (user("owner"), user("bob"));
        let (group, conv) = open_group(&*store, &owner, "Climbing").await;
        let joined = change_message(&conv, &bob, &bob, Kind::MemberJoined, "bob joined", 2_000);
        store
            .change_membership(
                &group.id,
                &bob,
                MembershipChange::Join {
                    role: pb::Role::Member,
                },
                joined,
            )
            .await
            .unwrap();
        let moved = change_message(
            &conv,
            &owner,
            &bob,
            Kind::OwnershipTransferred,
            "bob owns it",
            3_000,
        );
        store
            .change_membership(&group.id, &bob, MembershipChange::TakeOwnership, moved)
            .await
            .unwrap();
        let record = store
            .groups(std::slice::from_ref(&group.id))
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!(record.owner, bob);
        assert_eq!(
            store.member_role(&group.id, &bob).await.unwrap(),
            Some(pb::Role::Owner)
        );
        assert_eq!(
            store.member_role(&group.id, &owner).await.unwrap(),
            Some(pb::Role::Admin)
        );
        // Only a member can take it.
        let carol = user("carol");
        let taken = change_message(
            &conv,
            &owner,
            &carol,
            Kind::OwnershipTransferred,
            "carol owns it",
            4_000,
        );
        assert!(matches!(
            store
                .change_membership(&group.id, &carol, MembershipChange::TakeOwnership, taken)
                .await,
            Err(StoreError::Precondition)
        ));
    })
    .await;
}

#[tokio::test]
async fn appends_are_numbered_without_holes_and_idempotent() {
    on_each_store(|store| async move {
        let (alice, bob) = (user("alice"), user("bob"));
        let conv = ConversationId::direct(alice.clone(), bob.clone());
        for (i, body) in ["one", "two", "three"].iter().enumerate() {
            let mut batch = single(&conv, &alice, body, Some(&format!("m{i}")));
            batch.items[0].index_for = vec![alice.clone(), bob.clone()];
            let outcome = store.append(batch).await.unwrap();
            assert!(!outcome.duplicate);
            assert_eq!(outcome.appended[0].seq, i as u64 + 1);
        }
        // A retry with the same client message id stores nothing new.
        let retry = store
            .append(single(&conv, &alice, "two again", Some("m1")))
            .await
            .unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.appended[0].seq, 2);
        assert_eq!(
            store.heads(std::slice::from_ref(&conv)).await.unwrap(),
            vec![3]
        );
        // The same id for another conversation is a conflict, not a silent replay.
        let other = ConversationId::direct(alice.clone(), user("carol"));
        assert!(matches!(
            store.append(single(&other, &alice, "x", Some("m1"))).await,
            Err(StoreError::IdempotencyConflict)
        ));

        let all = store.messages_after(&conv, 0, 10).await.unwrap();
        let texts: Vec<&str> = all.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(all[1].message_id, format!("{conv}#2"));
        assert_eq!(all[1].conversation_id, conv.to_string());
        // Paging backwards from the newest, and forwards from a cursor.
        let newest = store.messages_before(&conv, u64::MAX, 2).await.unwrap();
        assert_eq!(newest.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
        let older = store.messages_before(&conv, 2, 10).await.unwrap();
        assert_eq!(older.iter().map(|m| m.seq).collect::<Vec<_>>(), [1]);
        let after = store.messages_after(&conv, 1, 1).await.unwrap();
        assert_eq!(after.iter().map(|m| m.seq).collect::<Vec<_>>(), [2]);

        // The sender's read cursor followed their messages; both parties list it.
        assert_eq!(
            store
                .read_cursors_of(&alice, std::slice::from_ref(&conv))
                .await
                .unwrap(),
            [3]
        );
        assert_eq!(
            store.user_conversations(&bob).await.unwrap(),
            std::slice::from_ref(&conv)
        );
    })
    .await;
}

/// The same change asked of two routers at once (a client retrying on
/// another gateway, two admins removing one member): made and logged once;
/// the others are told it no longer applies. Different changes at once all
/// go through.
#[tokio::test]
async fn the_same_change_asked_at_once_is_made_once() {
    on_each_store(|store| async move {
        let (owner, bob) = (user("owner"), user("bob"));
        let (group, conv) = open_group(&*store, &owner, "Open").await;
        let joins = (0..8).map(|i| {
            let joined = change_message(&conv, &bob, &bob, Kind::MemberJoined, "bob joined", 2 + i);
            store.change_membership(
                &group.id,
                &bob,
                MembershipChange::Join {
                    role: pb::Role::Member,
                },
                joined,
            )
        });
        let outcomes = futures::future::join_all(joins).await;
        let made = outcomes.iter().filter(|o| o.is_ok()).count();
        let refused = outcomes
            .iter()
            .filter(|o| matches!(o, Err(StoreError::Precondition)))
            .count();
        assert_eq!((made, refused), (1, 7), "{outcomes:?}");
        assert_eq!(texts_of(&*store, &conv).await, ["created", "bob joined"]);
        assert_eq!(
            store.member_role(&group.id, &bob).await.unwrap(),
            Some(pb::Role::Member)
        );

        // Different people joining at once each get in, each said once.
        let people: Vec<UserId> = (0..12).map(|i| user(&format!("person{i}"))).collect();
        let joins = people.iter().map(|person| {
            let joined = change_message(&conv, person, person, Kind::MemberJoined, "joined", 20);
            store.change_membership(
                &group.id,
                person,
                MembershipChange::Join {
                    role: pb::Role::Member,
                },
                joined,
            )
        });
        for outcome in futures::future::join_all(joins).await {
            outcome.unwrap();
        }
        assert_eq!(texts_of(&*store, &conv).await.len(), 2 + people.len());
        assert_eq!(
            store.members(&group.id).await.unwrap().len(),
            2 + people.len()
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_item_writes_nothing() {
    on_each_store(|store| async move {
        let group = GroupId::generate();
        let conv = ConversationId::Group(group.clone());
        let mallory = user("mallory");
        let mut batch = single(&conv, &mallory, "spam", Some("x1"));
        batch.items[0].admission = Some(Admission::GroupMember {
            group,
            user: mallory.clone(),
        });
        assert!(matches!(
            store.append(batch).await,
            Err(StoreError::NotAdmitted(0))
        ));
        assert_eq!(store.heads(std::slice::from_ref(&conv)).await.unwrap(), [0]);
        // The refused id was not burnt either.
        let ok = store
            .append(single(&conv, &mallory, "later", Some("x1")))
            .await
            .unwrap();
        assert!(!ok.duplicate);
    })
    .await;
}

#[tokio::test]
async fn membership_changes_are_sequenced_with_their_conversation() {
    on_each_store(|store| async move {
        let (owner, bob) = (user("owner"), user("bob"));
        let group = GroupRecord {
            id: GroupId::generate(),
            name: "Badminton".into(),
            owner: owner.clone(),
            policy: pb::JoinPolicy::InviteOnly,
            history: pb::HistoryVisibility::FromJoin,
            created_at_ms: 7,
            member_count: 0,
            description: String::new(),
        };
        let conv = ConversationId::Group(group.id.clone());
        let created = store
            .create_group(&group, text(&conv, &owner, "created", 7))
            .await
            .unwrap();
        assert_eq!(created.appended[0].seq, 1);
        let found = store.groups(std::slice::from_ref(&group.id)).await.unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!((found.name.as_str(), found.member_count), ("Badminton", 1));
        assert_eq!(found.policy, pb::JoinPolicy::InviteOnly);
        assert_eq!(found.history, pb::HistoryVisibility::FromJoin);
        assert_eq!(
            store.group_membership(&group.id, &owner).await.unwrap(),
            GroupMembership {
                role: Some(pb::Role::Owner),
                joined_seq: 1,
                left_seq: 0
            },
            "the owner joined with the group's creation"
        );
        assert_eq!(
            store.group_membership(&group.id, &bob).await.unwrap(),
            GroupMembership::default()
        );

        assert!(store.invite(&group.id, &bob, 8).await.unwrap());
        assert!(!store.invite(&group.id, &bob, 9).await.unwrap());
        assert!(store.is_invited(&group.id, &bob).await.unwrap());
        assert_eq!(
            store.user_invites(&bob).await.unwrap(),
            std::slice::from_ref(&group.id)
        );

        let join = MembershipChange::Join {
            role: pb::Role::Member,
        };
        let joined = store
            .change_membership(
                &group.id,
                &bob,
                join.clone(),
                text(&conv, &bob, "joined", 9),
            )
            .await
            .unwrap();
        assert_eq!(joined.appended[0].seq, 2);
        assert_eq!(
            store.group_membership(&group.id, &bob).await.unwrap(),
            GroupMembership {
                role: Some(pb::Role::Member),
                joined_seq: 2,
                left_seq: 0
            }
        );
        assert!(
            !store.is_invited(&group.id, &bob).await.unwrap(),
            "invite used up"
        );
        assert!(matches!(
            store
                .change_membership(&group.id, &bob, join, text(&conv, &bob, "again", 9))
                .await,
            Err(StoreError::Precondition)
        ));
        assert_eq!(
            store.member_role(&group.id, &bob).await.unwrap(),
            Some(pb::Role::Member)
        );
        store
            .change_membership(
                &group.id,
                &bob,
                MembershipChange::SetRole {
                    role: pb::Role::Admin,
                },
                text(&conv, &owner, "promoted", 10),
            )
            .await
            .unwrap();
        assert_eq!(
            store.members(&group.id).await.unwrap(),
            [
                (bob.clone(), pb::Role::Admin),
                (owner.clone(), pb::Role::Owner)
            ]
        );
        assert_eq!(
            store.user_groups(&bob).await.unwrap(),
            std::slice::from_ref(&group.id)
        );

        let left = store
            .change_membership(
                &group.id,
                &bob,
                MembershipChange::Leave,
                text(&conv, &bob, "left", 11),
            )
            .await
            .unwrap();
        assert_eq!(left.appended[0].seq, 4);
        assert!(store.user_groups(&bob).await.unwrap().is_empty());
        assert_eq!(
            store.group_membership(&group.id, &bob).await.unwrap(),
            GroupMembership {
                role: None,
                joined_seq: 2,
                left_seq: 4
            },
            "a former member keeps where they joined and left"
        );
        assert!(matches!(
            store
                .change_membership(
                    &group.id,
                    &bob,
                    MembershipChange::Leave,
                    text(&conv, &bob, "left twice", 12)
                )
                .await,
            Err(StoreError::Precondition)
        ));
    })
    .await;
}

#[tokio::test]
async fn read_cursors_only_move_forward() {
    on_each_store(|store| async move {
        let conv = ConversationId::direct(user("alice"), user("bob"));
        assert_eq!(store.mark_read(&conv, &user("bob"), 5).await.unwrap(), 5);
        assert_eq!(store.mark_read(&conv, &user("bob"), 3).await.unwrap(), 5);
        assert_eq!(store.read_cursors(&conv).await.unwrap(), [(user("bob"), 5)]);
    })
    .await;
}

#[tokio::test]
async fn contacts_have_a_reverse_index() {
    on_each_store(|store| async move {
        let (alice, bob) = (user("alice"), user("bob"));
        assert!(store.add_contact(&alice, &bob, 1).await.unwrap());
        assert!(!store.add_contact(&alice, &bob, 2).await.unwrap());
        assert_eq!(store.contacts(&alice).await.unwrap()[0].user, bob);
        assert_eq!(store.contacted_by(&bob).await.unwrap()[0].user, alice);
        assert!(store.remove_contact(&alice, &bob).await.unwrap());
        assert!(!store.remove_contact(&alice, &bob).await.unwrap());
        assert!(store.contacted_by(&bob).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn mutual_contacts_are_those_who_added_each_other() {
    on_each_store(|store| async move {
        let (alice, bob, carol, dan) = (user("alice"), user("bob"), user("carol"), user("dan"));
        store.add_contact(&alice, &bob, 1).await.unwrap();
        store.add_contact(&bob, &alice, 1).await.unwrap();
        store.add_contact(&alice, &carol, 1).await.unwrap();
        store.add_contact(&dan, &alice, 1).await.unwrap();
        assert_eq!(
            store
                .mutual_among(&alice, &[bob.clone(), carol.clone(), dan.clone()])
                .await
                .unwrap(),
            [true, false, false],
            "carol never added alice back; alice never added dan"
        );
        assert!(store.mutual(&bob, &alice).await.unwrap());
        assert!(store.mutual_among(&alice, &[]).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_block_ends_mutuality_either_way_until_lifted() {
    on_each_store(|store| async move {
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        for (a, b) in [
            (&alice, &bob),
            (&bob, &alice),
            (&alice, &carol),
            (&carol, &alice),
        ] {
            store.add_contact(a, b, 1).await.unwrap();
        }
        assert!(store.set_blocked(&bob, &alice, true, 7).await.unwrap());
        assert!(!store.set_blocked(&bob, &alice, true, 8).await.unwrap());
        // Neither side sees the other as mutual; carol is unaffected.
        assert_eq!(
            store
                .mutual_among(&alice, &[bob.clone(), carol.clone()])
                .await
                .unwrap(),
            [false, true]
        );
        assert!(!store.mutual(&bob, &alice).await.unwrap());
        assert_eq!(
            store.direct_states(&alice, &bob).await.unwrap(),
            DirectStates {
                blocked: false,
                blocked_by: true,
                accepted: false
            }
        );
        assert_eq!(
            store.direct_states(&bob, &alice).await.unwrap(),
            DirectStates {
                blocked: true,
                blocked_by: false,
                accepted: false
            }
        );
        let entry = |u: &UserId, at| ContactEntry {
            user: u.clone(),
            added_at_ms: at,
        };
        assert_eq!(store.blocked(&bob).await.unwrap(), [entry(&alice, 7)]);
        assert_eq!(store.blocked_by(&alice).await.unwrap(), [entry(&bob, 7)]);
        assert!(store.blocked(&alice).await.unwrap().is_empty());
        // Lifted: as before.
        assert!(store.set_blocked(&bob, &alice, false, 9).await.unwrap());
        assert!(!store.set_blocked(&bob, &alice, false, 9).await.unwrap());
        assert!(store.mutual(&alice, &bob).await.unwrap());
        assert!(store.blocked_by(&alice).await.unwrap().is_empty());
    })
    .await;
}

/// Redis only: the outbox (the embedded store has none, see its docs).
#[tokio::test]
async fn stale_outbox_entries_are_claimed_once() {
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let (store, _) = with_history(&redis.url(), &postgres).await;
    let conv = ConversationId::direct(user("alice"), user("bob"));
    let stored = store
        .append(single(&conv, &user("alice"), "hi", None))
        .await
        .unwrap();
    let id = stored.appended[0].message_id();
    // Not stale yet.
    assert!(store.outbox_claim(999, 2_000, 10).await.unwrap().is_empty());
    assert_eq!(
        store.outbox_claim(1_000, 2_000, 10).await.unwrap(),
        std::slice::from_ref(&id)
    );
    // Claimed: re-stamped, so a second sweeper does not take it too.
    assert!(
        store
            .outbox_claim(1_500, 2_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.outbox_done(&[id]).await.unwrap();
    assert!(
        store
            .outbox_claim(i64::MAX, 3_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Redis only: losing its data changes Redis's epoch (the router is told
/// once, and forgets what it cached), not the epoch clients hold their
/// cursors under: the history kept them valid.
#[tokio::test]
async fn a_wiped_redis_is_reported_to_the_router_not_to_clients() {
    let mut redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let (store, _) = with_history(&redis.url(), &postgres).await;
    let clients_epoch = store.epoch().await.unwrap();
    let state_epoch = store.state_epoch().await.unwrap();
    let conv = ConversationId::direct(user("alice"), user("bob"));
    let listed = |mut batch: AppendBatch| {
        batch.items[0].index_for = vec![user("alice"), user("bob")];
        batch
    };
    store
        .append(listed(single(&conv, &user("alice"), "hi", None)))
        .await
        .unwrap();
    redis.restart_empty();
    // A command racing the old connection's end fails UNAVAILABLE (nothing
    // acknowledged, nothing lost) while the connection is replaced; a client
    // retries, and so does this test, a bounded number of times. The first
    // append that reaches the empty store is stored in the log but not
    // recorded, and says the epoch changed; its retry (the router retries
    // once with the same client message id) finds it by its retry key.
    let mut attempts = 0;
    let mut told = false;
    let after = loop {
        match store
            .append(listed(single(
                &conv,
                &user("alice"),
                "again",
                Some("alice-2"),
            )))
            .await
        {
            Ok(after) => break after,
            Err(StoreError::Unavailable(_)) if attempts < 8 => attempts += 1,
            Err(StoreError::EpochChanged) if !told => told = true,
            Err(e) => panic!("append after the wipe: {e}"),
        }
    };
    assert!(told, "the epoch change was reported once");
    assert_ne!(store.state_epoch().await.unwrap(), state_epoch);
    assert_eq!(after.epoch, clients_epoch, "clients keep their cursors");
    assert_eq!(after.appended[0].seq, 2);
    assert_eq!(texts_of(&store, &conv).await, ["hi", "again"]);
    // The new Redis lists the conversation again (the store had written it
    // to the old one and remembered so).
    for who in ["alice", "bob"] {
        assert_eq!(
            store.user_conversations(&user(who)).await.unwrap(),
            std::slice::from_ref(&conv),
            "{who}'s conversations"
        );
    }
}

/// With the history store, losing Redis loses no history: the log keeps its
/// seqs, and the next message follows the last one.
#[tokio::test]
async fn a_wiped_redis_does_not_turn_seqs_back_when_history_is_elsewhere() {
    let mut redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let (store, _) = with_history(&redis.url(), &postgres).await;
    let conv = ConversationId::direct(user("alice"), user("bob"));
    for body in ["one", "two"] {
        store
            .append(single(&conv, &user("alice"), body, None))
            .await
            .unwrap();
    }
    redis.restart_empty();
    let mut attempts = 0;
    let after = loop {
        // A client's retry carries the same client message id.
        match store
            .append(single(&conv, &user("alice"), "three", Some("alice-3")))
            .await
        {
            Ok(after) => break after,
            Err(StoreError::Unavailable(_) | StoreError::EpochChanged) if attempts < 8 => {
                attempts += 1;
            }
            Err(e) => panic!("append after the wipe: {e}"),
        }
    };
    assert_eq!(after.appended[0].seq, 3, "the log's seqs go on");
    let texts = texts_of(&store, &conv).await;
    // The attempt the wipe interrupted reached the log; its retry found it
    // there by its retry key instead of storing it twice.
    assert_eq!(texts, ["one", "two", "three"]);
}

/// A send the log has but Redis has no record of (its record expired, or
/// the router died between the two): the retry stores nothing, is told it
/// is one and when the first was sent, is put in the outbox to be delivered
/// if it never was, and moves no cursor back past what the sender has sent
/// since.
#[tokio::test]
async fn a_retry_the_log_answers_is_a_duplicate_and_moves_no_cursor_back() {
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let (store, _) = with_history(&redis.url(), &postgres).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = ConversationId::direct(alice.clone(), bob.clone());
    let first = store
        .append(single(&conv, &alice, "first", Some("a-1")))
        .await
        .unwrap();
    store
        .append(single(&conv, &alice, "second", Some("a-2")))
        .await
        .unwrap();
    store
        .outbox_done(&[first.appended[0].message_id()])
        .await
        .unwrap();
    // The first send's record goes (as when it expires).
    let mut conn = raw_connection(&redis).await;
    let removed: i64 = redis::cmd("DEL")
        .arg(switchboard_shared::keys::idempotency(&alice, "a-1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed, 1);

    // The retry comes a second later.
    let mut retry = single(&conv, &alice, "first", Some("a-1"));
    retry.now_ms += 1_000;
    retry.items[0].message.sent_at_ms += 1_000;
    let retried = store.append(retry).await.unwrap();
    assert_eq!(
        retried.appended[0].sent_at_ms, first.appended[0].sent_at_ms,
        "answered as the first was"
    );
    assert!(retried.duplicate);
    assert_eq!(retried.appended[0].seq, 1);
    let texts = texts_of(&store, &conv).await;
    assert_eq!(texts, ["first", "second"], "stored once");
    assert_eq!(
        store
            .read_cursors_of(&alice, std::slice::from_ref(&conv))
            .await
            .unwrap(),
        [2],
        "alice's read cursor stays on her last message"
    );
    let claimed = store.outbox_claim(i64::MAX, 0, 10).await.unwrap();
    assert!(
        claimed.contains(&first.appended[0].message_id()),
        "in the outbox again: {claimed:?}"
    );
}

/// Redis keeps a direct send's retry record minutes (the log answers its
/// retries after that) and a topic send's a day (its timeline entry is in
/// Redis only): what bounds Redis's memory per message (docs/CAPACITY.md).
#[tokio::test]
async fn retry_records_live_as_long_as_their_kind_needs() {
    use switchboard_router::store::TimelineWrite;
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let (store, _) = with_history(&redis.url(), &postgres).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = ConversationId::direct(alice.clone(), bob.clone());
    store
        .append(single(&conv, &alice, "hi", Some("a-1")))
        .await
        .unwrap();
    let topic = topic_record(&alice);
    store.create_topic(&topic).await.unwrap();
    let thread = ConversationId::TopicThread {
        topic: topic.id.clone(),
        contact: bob.clone(),
    };
    let mut broadcast = single(&thread, &alice, "Saturday?", Some("a-2"));
    broadcast.timeline = Some(TimelineWrite {
        topic: topic.id.clone(),
        broadcast_id: "bcast1".into(),
        forwarded_from: String::new(),
    });
    store.append(broadcast).await.unwrap();

    let mut conn = raw_connection(&redis).await;
    let mut ttl_of = async |key: String| -> i64 {
        redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let direct = ttl_of(switchboard_shared::keys::idempotency(&alice, "a-1")).await;
    let topical = ttl_of(switchboard_shared::keys::topic_idempotency(
        &topic.id, &alice, "a-2",
    ))
    .await;
    assert!(
        (TTLS.send_secs - 5..=TTLS.send_secs).contains(&u64::try_from(direct).unwrap()),
        "direct record ttl {direct}"
    );
    assert!(
        (TTLS.topic_secs - 5..=TTLS.topic_secs).contains(&u64::try_from(topical).unwrap()),
        "topic record ttl {topical}"
    );
}

/// A router that dies between writing a removal to the log and applying it
/// to Redis leaves the member in Redis: the next send of that member meets
/// the fence, the removal is applied from its message, and the send is
/// refused, as if the router had finished.
#[tokio::test]
async fn a_change_left_half_done_is_applied_by_the_next_send() {
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let (store, log) = with_history(&redis.url(), &postgres).await;
    let (owner, bob) = (user("owner"), user("bob"));
    let (group, conv) = open_group(&store, &owner, "Chess").await;
    store
        .change_membership(
            &group.id,
            &bob,
            MembershipChange::Join {
                role: pb::Role::Member,
            },
            text(&conv, &bob, "bob joined", 2),
        )
        .await
        .unwrap();

    // The removal's first half only: its message in the log (version 3).
    let removal = change_message(
        &conv,
        &owner,
        &bob,
        Kind::MemberRemoved,
        "owner removed bob",
        3,
    );
    let stored = log
        .append_change(&HistoryAppend {
            conversation: conv.clone(),
            sent_at_ms: 3,
            retry_key: None,
            body: prost::Message::encode_to_vec(&removal.message).into(),
            fence: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.seq, stored.version), (3, 3));
    assert_eq!(
        store.member_role(&group.id, &bob).await.unwrap(),
        Some(pb::Role::Member),
        "Redis does not know yet"
    );

    let mut send = single(&conv, &bob, "still here?", Some("bob-1"));
    send.items[0].admission = Some(Admission::GroupMember {
        group: group.id.clone(),
        user: bob.clone(),
    });
    assert!(matches!(
        store.append(send).await,
        Err(StoreError::NotAdmitted(0))
    ));
    assert_eq!(
        store.group_membership(&group.id, &bob).await.unwrap(),
        GroupMembership {
            role: None,
            joined_seq: 2,
            left_seq: 3
        },
        "the removal was applied, with its seq"
    );
    let texts = texts_of(&store, &conv).await;
    assert_eq!(texts, ["created", "bob joined", "owner removed bob"]);
    // And the owner's next change follows on from it.
    store
        .change_membership(
            &group.id,
            &bob,
            MembershipChange::Join {
                role: pb::Role::Member,
            },
            text(&conv, &bob, "bob joined again", 4),
        )
        .await
        .unwrap();
    assert_eq!(log.fences(std::slice::from_ref(&conv)).await.unwrap(), [4]);
}

fn topic_record(owner: &UserId) -> switchboard_router::store::TopicRecord {
    switchboard_router::store::TopicRecord {
        id: switchboard_shared::ids::TopicId::generate(),
        name: "Badminton Saturday".into(),
        owner: owner.clone(),
        created_at_ms: 1,
        deleted: false,
        contacts: vec![],
    }
}

#[tokio::test]
async fn topic_bindings_are_capped_and_admit_replies_only_while_bound() {
    use switchboard_router::store::{BindOutcome, Binding};
    on_each_store(|store| async move {
        let owner = user("owner");
        let (ann, ben, cat) = (user("ann"), user("ben"), user("cat"));
        let topic = topic_record(&owner);
        store.create_topic(&topic).await.unwrap();
        let outcomes = store
            .bind(
                &topic.id,
                &[ann.clone(), ben.clone(), ann.clone(), cat.clone()],
                2,
            )
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                BindOutcome::Added,
                BindOutcome::Added,
                BindOutcome::Already,
                BindOutcome::Full
            ]
        );
        assert!(store.set_muted(&topic.id, &ben, true).await.unwrap());
        assert!(
            !store.set_muted(&topic.id, &cat, true).await.unwrap(),
            "cat is not bound"
        );
        let found = store.topics(std::slice::from_ref(&topic.id)).await.unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(
            found.contacts,
            [(ann.clone(), Binding::Bound), (ben.clone(), Binding::Muted)]
        );
        assert_eq!(
            store.user_topics(&owner).await.unwrap(),
            std::slice::from_ref(&topic.id)
        );

        // A reply from ann's thread is admitted while she is bound...
        let thread = ConversationId::TopicThread {
            topic: topic.id.clone(),
            contact: ann.clone(),
        };
        let mut reply = single(&thread, &ann, "count me in", None);
        reply.items[0].admission = Some(Admission::TopicBound {
            topic: topic.id.clone(),
            contact: ann.clone(),
        });
        store.append(reply.clone()).await.unwrap();
        // ...and her exit is a message in her thread, atomically with the unbinding.
        let left = store
            .unbind(
                &topic.id,
                &ann,
                Binding::Left,
                text(&thread, &ann, "ann left", 2),
            )
            .await
            .unwrap();
        assert_eq!(left.appended[0].seq, 2);
        assert!(matches!(
            store
                .unbind(
                    &topic.id,
                    &ann,
                    Binding::Left,
                    text(&thread, &ann, "again", 3)
                )
                .await,
            Err(StoreError::Precondition)
        ));
        assert!(matches!(
            store.append(reply).await,
            Err(StoreError::NotAdmitted(0))
        ));
        let found = store.topics(std::slice::from_ref(&topic.id)).await.unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(found.binding(&ann), Some(Binding::Left));

        // A broadcast is judged copy by copy: the copy for ann, who left, is
        // named by its place in the batch, and no copy is stored.
        let bens = ConversationId::TopicThread {
            topic: topic.id.clone(),
            contact: ben.clone(),
        };
        let before = texts_of(store.as_ref(), &bens).await;
        let mut broadcast = single(&bens, &owner, "news", Some("news-1"));
        broadcast
            .items
            .push(single(&thread, &owner, "news", None).items.remove(0));
        for (item, contact) in broadcast.items.iter_mut().zip([&ben, &ann]) {
            item.admission = Some(Admission::TopicBound {
                topic: topic.id.clone(),
                contact: contact.clone(),
            });
        }
        assert!(matches!(
            store.append(broadcast).await,
            Err(StoreError::NotAdmitted(1))
        ));
        assert_eq!(
            texts_of(store.as_ref(), &bens).await,
            before,
            "nothing stored"
        );

        // Deletion marks the topic and names who is still bound; each is
        // then unbound as a change of their own thread.
        let still_bound = store.delete_topic(&topic.id).await.unwrap();
        assert_eq!(still_bound, std::slice::from_ref(&ben));
        let found = store.topics(std::slice::from_ref(&topic.id)).await.unwrap()[0]
            .clone()
            .unwrap();
        assert!(found.deleted);
        store
            .unbind(
                &topic.id,
                &ben,
                Binding::Removed,
                text(&bens, &owner, "this topic was deleted", 4),
            )
            .await
            .unwrap();
        assert_eq!(
            store.delete_topic(&topic.id).await.unwrap(),
            Vec::<UserId>::new(),
            "asked again, nobody is left to unbind"
        );
        let found = store.topics(std::slice::from_ref(&topic.id)).await.unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(found.binding(&ben), Some(Binding::Removed));
        // Nobody is bound to a deleted topic, whoever read it open before.
        assert!(matches!(
            store.bind(&topic.id, std::slice::from_ref(&ann), 10).await,
            Err(StoreError::Precondition)
        ));
        let found = store.topics(std::slice::from_ref(&topic.id)).await.unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(found.bound().count(), 0);
        assert_eq!(found.binding(&ann), Some(Binding::Left));
    })
    .await;
}

#[tokio::test]
async fn a_broadcast_is_one_timeline_entry_and_threads_track_their_cursors() {
    use switchboard_router::store::{ThreadState, TimelineWrite};
    on_each_store(|store| async move {
        let owner = user("owner");
        let topic = topic_record(&owner);
        store.create_topic(&topic).await.unwrap();
        let contacts = [user("ann"), user("ben"), user("cat")];
        let threads: Vec<ConversationId> = contacts
            .iter()
            .map(|c| ConversationId::TopicThread {
                topic: topic.id.clone(),
                contact: c.clone(),
            })
            .collect();
        let broadcast = AppendBatch {
            idempotency: Some((owner.clone(), ClientMsgId::parse("b-1").unwrap())),
            items: threads
                .iter()
                .map(|t| text(t, &owner, "Saturday 10:00?", 5))
                .collect(),
            now_ms: 5,
            timeline: Some(TimelineWrite {
                topic: topic.id.clone(),
                broadcast_id: "bcast1".into(),
                forwarded_from: "t:tabcdefghjkmn:zoe#2".into(),
            }),
            memo: "bcast1 dan|with a bar".into(),
        };
        let sent = store.append(broadcast.clone()).await.unwrap();
        assert_eq!(sent.timeline_seq, 1);
        assert_eq!(sent.memo, "bcast1 dan|with a bar");
        // The retry writes nothing (no second copy in any thread, no second
        // entry) and answers what the first send answered.
        let again = store.append(broadcast).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.appended, sent.appended);
        assert_eq!(again.timeline_seq, sent.timeline_seq);
        assert_eq!(again.memo, sent.memo);
        let mut reply = single(&threads[1], &contacts[1], "yes!", None);
        reply.timeline = Some(TimelineWrite {
            topic: topic.id.clone(),
            broadcast_id: String::new(),
            forwarded_from: String::new(),
        });
        assert_eq!(store.append(reply).await.unwrap().timeline_seq, 2);

        let timeline = store.timeline(&topic.id, u64::MAX, None, 10).await.unwrap();
        assert_eq!(timeline.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(timeline[0].broadcast_id, "bcast1");
        assert_eq!(timeline[0].forwarded_from, "t:tabcdefghjkmn:zoe#2");
        assert_eq!(timeline[1].forwarded_from, "");
        assert_eq!(timeline[0].messages.len(), 3);
        assert_eq!(timeline[1].messages[0].conversation, threads[1]);
        assert_eq!(
            store.timeline(&topic.id, 2, None, 10).await.unwrap().len(),
            1
        );
        assert_eq!(
            store.timeline(&topic.id, 0, Some(1), 10).await.unwrap()[0].seq,
            2
        );
        let copies = store.broadcast(&topic.id, "bcast1").await.unwrap().unwrap();
        assert_eq!(copies, timeline[0].messages);
        assert!(store.broadcast(&topic.id, "nope").await.unwrap().is_none());

        store.mark_read(&threads[0], &contacts[0], 1).await.unwrap();
        let marks = [
            (threads[2].clone(), contacts[2].clone(), 1),
            // Forward only: a second mark at the same seq moves nothing.
            (threads[2].clone(), contacts[2].clone(), 1),
        ];
        assert_eq!(store.mark_delivered(&marks).await.unwrap(), [true, false]);
        assert!(store.mark_delivered(&[]).await.unwrap().is_empty());
        let states = store
            .thread_states(
                &threads
                    .iter()
                    .cloned()
                    .zip(contacts.iter().cloned())
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap();
        assert_eq!(
            states,
            [
                ThreadState {
                    read: 1,
                    delivered: 0,
                    sent: 0
                },
                ThreadState {
                    read: 2,
                    delivered: 0,
                    sent: 2
                },
                ThreadState {
                    read: 0,
                    delivered: 1,
                    sent: 0
                },
            ]
        );
    })
    .await;
}
