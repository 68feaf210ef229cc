#![allow(clippy::unwrap_used)]

//! The store contract: every case runs against the Redis store (a real
//! redis-server of the test's own) and the embedded redb store, so the two
//! backends cannot drift apart.

use std::future::Future;

use switchboard_proto::pb;
use switchboard_router::store::embedded::EmbeddedStore;
use switchboard_router::store::redis::RedisStore;
use switchboard_router::store::{
    Admission, AppendBatch, GroupRecord, MembershipChange, NewMessage, SessionRecord, Store,
    StoreError, UserRecord,
};
use switchboard_shared::ids::{ClientMsgId, ConversationId, DeviceId, GroupId, SessionId, UserId};
use switchboard_shared::redis_pool::{self, RedisConfig};
use switchboard_testkit::RedisServer;

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

async fn on_both<F, Fut>(case: F)
where
    F: Fn(Box<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let redis = RedisServer::start();
    let pool = redis_pool::connect(&RedisConfig::new(redis.url())).unwrap();
    case(Box::new(RedisStore::new(pool, 3600).await.unwrap())).await;

    let dir = tempfile::tempdir().unwrap();
    case(Box::new(
        EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
    ))
    .await;
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

fn single(conv: &ConversationId, sender: &UserId, body: &str, id: Option<&str>) -> AppendBatch {
    AppendBatch {
        idempotency: id.map(|id| (sender.clone(), ClientMsgId::parse(id).unwrap())),
        items: vec![text(conv, sender, body, 1_000)],
        now_ms: 1_000,
    }
}

#[tokio::test]
async fn users_are_created_once() {
    on_both(|store| async move {
        let record = UserRecord {
            id: user("alice"),
            display_name: "Alice".into(),
            password_hash: "$argon2id$x".into(),
            created_at_ms: 5,
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
async fn sessions_exist_until_deleted() {
    on_both(|store| async move {
        let far = switchboard_shared::clock::now_ms() + 3_600_000;
        let session = SessionRecord {
            id: SessionId::generate(),
            user: user("alice"),
            device: DeviceId::parse("laptop").unwrap(),
            expires_at_ms: far,
        };
        assert!(!store.session_exists(&session.id, 0).await.unwrap());
        store.put_session(&session).await.unwrap();
        assert!(store.session_exists(&session.id, 0).await.unwrap());
        store.delete_session(&session.id).await.unwrap();
        assert!(!store.session_exists(&session.id, 0).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn appends_are_numbered_without_holes_and_idempotent() {
    on_both(|store| async move {
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

#[tokio::test]
async fn a_refused_item_writes_nothing() {
    on_both(|store| async move {
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
    on_both(|store| async move {
        let (owner, bob) = (user("owner"), user("bob"));
        let group = GroupRecord {
            id: GroupId::generate(),
            name: "Badminton".into(),
            owner: owner.clone(),
            policy: pb::JoinPolicy::InviteOnly,
            created_at_ms: 7,
            member_count: 0,
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
    on_both(|store| async move {
        let conv = ConversationId::direct(user("alice"), user("bob"));
        assert_eq!(store.mark_read(&conv, &user("bob"), 5).await.unwrap(), 5);
        assert_eq!(store.mark_read(&conv, &user("bob"), 3).await.unwrap(), 5);
        assert_eq!(store.read_cursors(&conv).await.unwrap(), [(user("bob"), 5)]);
    })
    .await;
}

#[tokio::test]
async fn contacts_have_a_reverse_index() {
    on_both(|store| async move {
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

/// Redis only: the outbox (the embedded store has none, see its docs).
#[tokio::test]
async fn stale_outbox_entries_are_claimed_once() {
    let redis = RedisServer::start();
    let pool = redis_pool::connect(&RedisConfig::new(redis.url())).unwrap();
    let store = RedisStore::new(pool, 3600).await.unwrap();
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

/// Redis only: losing the data changes the epoch, and appends go on under the new one.
#[tokio::test]
async fn a_wiped_redis_gets_a_new_epoch() {
    let mut redis = RedisServer::start();
    let pool = redis_pool::connect(&RedisConfig::new(redis.url())).unwrap();
    let store = RedisStore::new(pool, 3600).await.unwrap();
    let before = store.epoch().await.unwrap();
    let conv = ConversationId::direct(user("alice"), user("bob"));
    store
        .append(single(&conv, &user("alice"), "hi", None))
        .await
        .unwrap();
    redis.restart_empty();
    let after = store
        .append(single(&conv, &user("alice"), "again", None))
        .await
        .unwrap();
    assert_ne!(after.epoch, before);
    assert_eq!(after.appended[0].seq, 1, "seqs restart under the new epoch");
}
