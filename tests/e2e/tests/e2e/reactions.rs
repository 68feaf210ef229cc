//! Emoji reactions: set per person, counted, heard live and on resume,
//! listed by who reacted; refused with why where they do not belong.

use switchboard_proto::pb::{self, system_event::Kind};

use crate::both_modes;
use crate::harness::client::system_of;
use crate::harness::{Cluster, User};

async fn react(
    user: &User,
    message_id: &str,
    emoji: &str,
    on: bool,
) -> Result<pb::ReactResponse, tonic::Status> {
    user.chat()
        .react(pb::ReactRequest {
            message_id: message_id.into(),
            emoji: emoji.into(),
            on,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// `(emoji, count, mine)` of each reaction.
fn counts(reactions: &[pb::Reaction]) -> Vec<(&str, u32, bool)> {
    reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.count, r.mine))
        .collect()
}

/// One message as `user` reads it now.
async fn read_one(user: &User, message_id: &str) -> pb::Message {
    let (conversation, seq) = message_id.rsplit_once('#').unwrap();
    let seq: u64 = seq.parse().unwrap();
    user.chat()
        .history(pb::HistoryRequest {
            conversation_id: conversation.into(),
            after_seq: Some(seq - 1),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages
        .into_iter()
        .find(|m| m.seq == seq)
        .unwrap_or_else(|| panic!("{} cannot read {message_id}", user.id))
}

async fn reactors(user: &User, message_id: &str) -> Result<Vec<(String, String)>, tonic::Status> {
    Ok(user
        .chat()
        .list_reactions(pb::ListReactionsRequest {
            message_id: message_id.into(),
        })
        .await?
        .into_inner()
        .reactors
        .into_iter()
        .map(|r| (r.user_id, r.emoji))
        .collect())
}

both_modes!(
    reactions_are_counted_per_person_live_and_on_resume,
    reactions_in_a_group
);
async fn reactions_in_a_group(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let carol = cluster.user("carol", 0).await;
    let group = alice.create_group("Dinner", pb::JoinPolicy::Open).await;
    bob.join(&group.group_id).await;
    carol.join(&group.group_id).await;
    let mut alice_events = alice.subscribe().await;
    let mut bob_events = bob.subscribe().await;
    let sent = alice.post(&group.group_id, "pizza tonight?").await;
    let id = sent.message_id.clone();
    alice_events.messages_until("pizza tonight?").await;
    bob_events.messages_until("pizza tonight?").await;

    // Bob reacts: his answer counts it as his; alice hears of it live.
    let bob_thumb = react(&bob, &id, "👍", true).await.unwrap();
    assert!(bob_thumb.notice_seq > sent.seq, "{bob_thumb:?}");
    assert_eq!(counts(&bob_thumb.reactions), [("👍", 1, true)]);
    let (notice, _) = alice_events.until(system_of(Kind::ReactionsChanged)).await;
    let system = notice.system.clone().unwrap();
    assert_eq!(
        (
            system.message_id.as_str(),
            system.actor_id.as_str(),
            system.user_id.as_str(),
            system.detail.as_str()
        ),
        (id.as_str(), "bob", "alice", "👍")
    );

    // Carol adds the same and another: each reader sees the counts, and
    // whether they are among them.
    react(&carol, &id, "👍", true).await.unwrap();
    react(&carol, &id, "🎉", true).await.unwrap();
    let by_alice = read_one(&alice, &id).await;
    assert_eq!(
        counts(&by_alice.reactions),
        [("👍", 2, false), ("🎉", 1, false)]
    );
    let by_bob = read_one(&bob, &id).await;
    assert_eq!(
        counts(&by_bob.reactions),
        [("👍", 2, true), ("🎉", 1, false)]
    );
    assert_eq!(
        reactors(&alice, &id).await.unwrap(),
        [
            ("bob".to_owned(), "👍".to_owned()),
            ("carol".to_owned(), "👍".to_owned()),
            ("carol".to_owned(), "🎉".to_owned()),
        ]
    );

    // Setting, not toggling: a retry changes nothing and posts nothing.
    let again = react(&bob, &id, "👍", true).await.unwrap();
    assert_eq!(again.notice_seq, 0);
    assert_eq!(
        counts(&again.reactions),
        [("👍", 2, true), ("🎉", 1, false)]
    );
    let head_before = bob.history(&group.conversation_id).await.len();
    assert_eq!(react(&bob, &id, "🎉", false).await.unwrap().notice_seq, 0);
    assert_eq!(bob.history(&group.conversation_id).await.len(), head_before);

    // A device that was away hears of a change on resume.
    let cursors = bob_events.cursors();
    let epoch = bob_events.epoch.clone();
    drop(bob_events);
    let taken_back = react(&bob, &id, "👍", false).await.unwrap();
    assert_eq!(
        counts(&taken_back.reactions),
        [("👍", 1, false), ("🎉", 1, false)]
    );
    let resumed = bob.subscribe_from(&cursors, &epoch).await;
    assert!(
        resumed
            .replayed
            .iter()
            .any(|m| m.seq == taken_back.notice_seq
                && m.system
                    .as_ref()
                    .is_some_and(|s| s.kind() == Kind::ReactionsChanged)),
        "{:?}",
        resumed.replayed
    );
    drop(resumed);

    // Bad reactions are refused with why, and change nothing.
    for bad in ["", "thumbs up", "a\u{7}", &"x".repeat(33)] {
        let refused = react(&bob, &id, bad, true).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{bad:?}: {refused:?}"
        );
    }
    let outsider = cluster.user("dave", 1).await;
    let not_in = react(&outsider, &id, "👍", true).await.unwrap_err();
    assert_eq!(not_in.code(), tonic::Code::PermissionDenied, "{not_in:?}");
    let not_listed = reactors(&outsider, &id).await.unwrap_err();
    assert_eq!(
        not_listed.code(),
        tonic::Code::PermissionDenied,
        "{not_listed:?}"
    );
    let created = format!("{}#1", group.conversation_id);
    let system_message = react(&bob, &created, "👍", true).await.unwrap_err();
    assert_eq!(system_message.code(), tonic::Code::FailedPrecondition);
    let missing = react(&bob, &format!("{}#999", group.conversation_id), "👍", true)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    // At most 20 different ones per person on a message.
    for n in 0..20 {
        react(&bob, &id, &format!(":r{n}:"), true).await.unwrap();
    }
    let too_many = react(&bob, &id, "🙃", true).await.unwrap_err();
    assert_eq!(
        too_many.code(),
        tonic::Code::FailedPrecondition,
        "{too_many:?}"
    );
    assert_eq!(reactors(&bob, &id).await.unwrap().len(), 22);

    // Deleting the message drops its reactions, and takes no new ones.
    alice
        .chat()
        .delete_message(pb::DeleteMessageRequest {
            message_id: id.clone(),
        })
        .await
        .unwrap();
    assert!(read_one(&carol, &id).await.reactions.is_empty());
    assert!(reactors(&carol, &id).await.unwrap().is_empty());
    let on_deleted = react(&carol, &id, "👍", true).await.unwrap_err();
    assert_eq!(
        on_deleted.code(),
        tonic::Code::FailedPrecondition,
        "{on_deleted:?}"
    );
}

both_modes!(
    a_reaction_in_a_direct_conversation_reaches_the_other_side,
    reactions_in_a_dm
);
async fn reactions_in_a_dm(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut alice_events = alice.subscribe().await;
    let sent = alice.dm(&bob, "made it home").await;
    alice_events.messages(1).await;
    react(&bob, &sent.message_id, "❤️", true).await.unwrap();
    let (notice, _) = alice_events.until(system_of(Kind::ReactionsChanged)).await;
    assert_eq!(notice.system.unwrap().detail, "❤️");
    assert_eq!(
        counts(&read_one(&alice, &sent.message_id).await.reactions),
        [("❤️", 1, false)]
    );
}
