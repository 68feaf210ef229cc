//! One-to-one messages, multi-device, history, receipts and the delivery contract.

use switchboard_proto::pb::{self, event::Kind, send_request::To};

use crate::both_modes;
use crate::harness::client::{seqs, system_of, texts};
use crate::harness::{Cluster, User};

both_modes!(
    direct_messages_cross_gateways,
    direct_messages_cross_gateways
);
async fn direct_messages_cross_gateways(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut alice_events = alice.subscribe().await;
    let mut bob_events = bob.subscribe().await;

    let sent = alice.dm(&bob, "hello bob").await;
    assert_eq!(sent.conversation_id, "dm:alice:bob");
    assert_eq!(sent.seq, 1);
    assert!(!sent.duplicate);

    let received = bob_events.message().await;
    assert_eq!(received.text, "hello bob");
    assert_eq!(received.sender, "alice", "the sender is who authenticated");
    assert_eq!(received.seq, 1);
    assert_eq!(received.message_id, sent.message_id);
    // The sender's own stream carries it too (their other devices stay in sync).
    assert_eq!(alice_events.message().await.message_id, sent.message_id);

    let reply = bob.dm(&alice, "hi alice").await;
    assert_eq!(
        reply.seq, 2,
        "one conversation, one sequence, either direction"
    );
    assert_eq!(alice_events.message().await.text, "hi alice");
}

both_modes!(
    every_device_of_a_user_receives,
    every_device_of_a_user_receives
);
async fn every_device_of_a_user_receives(cluster: Cluster) {
    let alice_laptop = cluster.user("alice", 0).await;
    let alice_phone = alice_laptop.another_device(&cluster, 1, "phone").await;
    let bob = cluster.user("bob", 1).await;
    let mut laptop = alice_laptop.subscribe().await;
    let mut phone = alice_phone.subscribe().await;

    bob.dm(&alice_laptop, "to both devices").await;
    assert_eq!(laptop.message().await.text, "to both devices");
    assert_eq!(phone.message().await.text, "to both devices");

    // What one device sends shows up on the other.
    alice_phone.dm(&bob, "sent from the phone").await;
    let on_laptop = laptop.message().await;
    assert_eq!(
        (on_laptop.text.as_str(), on_laptop.seq),
        ("sent from the phone", 2)
    );
}

both_modes!(
    a_reconnecting_client_gets_what_it_missed_once,
    reconnect_catches_up
);
async fn reconnect_catches_up(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "one").await;
    alice.dm(&bob, "two").await;
    assert_eq!(texts(&bob_events.messages(2).await), ["one", "two"]);
    let cursors = bob_events.cursors();
    let epoch = bob_events.epoch.clone();
    drop(bob_events);

    for text in ["three", "four", "five"] {
        alice.dm(&bob, text).await;
    }
    // Reconnect through the other gateway with the cursors held.
    let bob_elsewhere = bob.via(&cluster.gateway_url(0)).await;
    let mut resumed = bob_elsewhere.subscribe_from(&cursors, &epoch).await;
    assert_eq!(texts(&resumed.replayed), ["three", "four", "five"]);
    assert_eq!(seqs(&resumed.replayed), [3, 4, 5]);
    // Then live, with nothing repeated.
    alice.dm(&bob, "six").await;
    let live = resumed.message().await;
    assert_eq!((live.text.as_str(), live.seq), ("six", 6));
}

both_modes!(a_retried_send_is_stored_once, retried_send_is_idempotent);
async fn retried_send_is_idempotent(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    let to = || To::UserId("bob".into());
    let first = alice.send(to(), "only once", "client-id-1").await.unwrap();
    let again = alice.send(to(), "only once", "client-id-1").await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(
        (again.seq, &again.message_id),
        (first.seq, &first.message_id),
        "the retry answers with the first send's seq"
    );
    alice.send(to(), "next", "client-id-2").await.unwrap();
    assert_eq!(
        texts(&alice.history("dm:alice:bob").await),
        ["only once", "next"]
    );
    // The recipient saw one copy, then the next message.
    assert_eq!(texts(&bob_events.messages(2).await), ["only once", "next"]);
}

both_modes!(
    a_send_stream_answers_each_send_in_order,
    send_stream_answers_in_order
);
async fn send_stream_answers_in_order(cluster: Cluster) {
    use futures::StreamExt as _;
    use pb::send_result::Outcome;

    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    let request = |to: &str, text: &str, id: &str| pb::SendRequest {
        to: Some(To::UserId(to.into())),
        client_msg_id: id.into(),
        text: text.into(),
        reply_to: String::new(),
    };
    let (requests, outgoing) = futures::channel::mpsc::unbounded();
    // Everything goes out before the first answer comes back.
    for r in [
        request("bob", "one", "s1"),
        request("bob", "", "s2"),
        request("bob", "two", "s3"),
        request("bob", "one", "s1"),
        request("nobody", "lost", "s5"),
        request("bob", "three", ""),
    ] {
        requests.unbounded_send(r).unwrap();
    }
    let mut results = alice
        .chat()
        .send_stream(outgoing)
        .await
        .unwrap()
        .into_inner();
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(results.next().await.unwrap().unwrap());
    }
    // (client_msg_id, (seq, duplicate) or the refusal's code)
    type Answer = (String, Result<(u64, bool), tonic::Code>);
    let summary: Vec<Answer> = answers
        .iter()
        .map(|a| {
            let outcome = match a.outcome.as_ref().unwrap() {
                Outcome::Sent(sent) => Ok((sent.seq, sent.duplicate)),
                Outcome::Failed(failed) => {
                    assert!(!failed.message.is_empty(), "a refusal says why");
                    Err(tonic::Code::from(failed.code))
                }
            };
            (a.client_msg_id.clone(), outcome)
        })
        .collect();
    assert_eq!(
        summary[..5].to_vec(),
        [
            ("s1".to_owned(), Ok((1, false))),
            ("s2".to_owned(), Err(tonic::Code::InvalidArgument)),
            ("s3".to_owned(), Ok((2, false))),
            ("s1".to_owned(), Ok((1, true))),
            ("s5".to_owned(), Err(tonic::Code::NotFound)),
        ]
    );
    assert!(
        !summary[5].0.is_empty(),
        "the gateway names a send that had no id"
    );
    assert_eq!(summary[5].1, Ok((3, false)));
    assert_eq!(
        texts(&bob_events.messages(3).await),
        ["one", "two", "three"],
        "one copy each, in the order sent"
    );
    // Closing our side ends the call.
    drop(requests);
    assert!(results.next().await.is_none());

    // An oversized send is refused on its own and the call goes on...
    let (requests, outgoing) = futures::channel::mpsc::unbounded();
    for r in [
        request("bob", "before", "b1"),
        request("bob", &"x".repeat(100 * 1024), "big"),
        request("bob", "after", "b3"),
    ] {
        requests.unbounded_send(r).unwrap();
    }
    let mut results = alice
        .chat()
        .send_stream(outgoing)
        .await
        .unwrap()
        .into_inner();
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(results.next().await.unwrap().unwrap());
    }
    assert!(
        matches!(answers[0].outcome, Some(Outcome::Sent(_))),
        "{answers:?}"
    );
    match &answers[1].outcome {
        Some(Outcome::Failed(failed)) => {
            assert_eq!(failed.code, tonic::Code::ResourceExhausted as i32);
            assert!(failed.message.contains("too large"), "{failed:?}");
            assert_eq!(failed.retry_after_ms, 0, "a size refusal is not retried");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(answers[1].client_msg_id, "big");
    assert!(
        matches!(answers[2].outcome, Some(Outcome::Sent(_))),
        "{answers:?}"
    );
    assert_eq!(texts(&bob_events.messages(2).await), ["before", "after"]);

    // ...while a frame past what the transport reads at all (four times the
    // request limit) cannot be answered on its own: it ends the call, with
    // a status that says so, as the proto documents.
    requests
        .unbounded_send(request("bob", &"y".repeat(300 * 1024), "huge"))
        .unwrap();
    let status = results
        .next()
        .await
        .unwrap()
        .expect_err("an unreadable request");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
    assert!(status.message().contains("too large"), "{status}");
    assert_eq!(
        texts(&alice.history("dm:alice:bob").await),
        ["one", "two", "three", "before", "after"],
        "nothing else was stored"
    );
}

both_modes!(history_pages_backwards_and_forwards, history_pages);
async fn history_pages(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    for i in 1..=12 {
        alice.dm(&bob, &format!("m{i}")).await;
    }
    let page = |before_seq, after_seq: Option<u64>| {
        let bob = bob.clone();
        async move {
            bob.chat()
                .history(pb::HistoryRequest {
                    conversation_id: "dm:alice:bob".into(),
                    before_seq,
                    after_seq,
                    limit: 5,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let newest = page(0, None).await;
    assert_eq!(seqs(&newest.messages), [8, 9, 10, 11, 12]);
    assert!(newest.has_more);
    assert_eq!(newest.head_seq, 12);
    let older = page(8, None).await;
    assert_eq!(seqs(&older.messages), [3, 4, 5, 6, 7]);
    let oldest = page(3, None).await;
    assert_eq!(seqs(&oldest.messages), [1, 2]);
    assert!(!oldest.has_more);
    let forward = page(0, Some(10)).await;
    assert_eq!(seqs(&forward.messages), [11, 12]);
    assert!(!forward.has_more);
    let from_the_start = page(0, Some(0)).await;
    assert_eq!(seqs(&from_the_start.messages), [1, 2, 3, 4, 5]);
    assert!(from_the_start.has_more);
    // A user logging in on another computer sees everything.
    let bob_elsewhere = User::login(&cluster.gateway_url(0), "bob", "desktop").await;
    assert_eq!(bob_elsewhere.history("dm:alice:bob").await.len(), 12);
}

both_modes!(read_receipts_reach_the_other_side, read_receipts);
async fn read_receipts(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut alice_events = alice.subscribe().await;
    alice.dm(&bob, "did you read this?").await;
    alice_events.message().await;

    let read = bob
        .chat()
        .mark_read(pb::MarkReadRequest {
            conversation_id: "dm:alice:bob".into(),
            seq: 99,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.read_seq, 1, "a cursor cannot pass the head");
    let (receipt, _) = alice_events
        .until(|e| match &e.kind {
            Some(Kind::Receipt(r)) => Some(r.clone()),
            _ => None,
        })
        .await;
    assert_eq!((receipt.user_id.as_str(), receipt.read_seq), ("bob", 1));

    let cursors = alice
        .chat()
        .list_read_cursors(pb::ListReadCursorsRequest {
            conversation_id: "dm:alice:bob".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cursors;
    let of = |user: &str| {
        cursors
            .iter()
            .find(|c| c.user_id == user)
            .map(|c| c.read_seq)
    };
    assert_eq!((of("alice"), of("bob")), (Some(1), Some(1)));

    let listed = bob
        .chat()
        .list_conversations(pb::ListConversationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let conversation = &listed.conversations[0];
    assert_eq!(conversation.title, "alice (display)");
    assert_eq!((conversation.head_seq, conversation.unread), (1, 0));
}

both_modes!(one_order_for_every_participant, one_order_for_everyone);
async fn one_order_for_everyone(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut alice_events = alice.subscribe().await;
    let mut bob_events = bob.subscribe().await;
    // Both write at once through different gateways (and routers).
    let (a1, b1) = (alice.clone(), bob.clone());
    let (a2, b2) = (alice.clone(), bob.clone());
    tokio::join!(
        async move {
            for i in 0..20 {
                a1.dm(&b1, &format!("a{i}")).await;
            }
        },
        async move {
            for i in 0..20 {
                b2.dm(&a2, &format!("b{i}")).await;
            }
        },
    );
    let seen_by_alice = alice_events.messages(40).await;
    let seen_by_bob = bob_events.messages(40).await;
    assert_eq!(seqs(&seen_by_alice), (1..=40).collect::<Vec<_>>());
    assert_eq!(
        texts(&seen_by_alice),
        texts(&seen_by_bob),
        "both sides see the same order"
    );
    assert_eq!(
        texts(&alice.history("dm:alice:bob").await),
        texts(&seen_by_bob)
    );
}

async fn delete(user: &User, message_id: &str) -> Result<pb::DeleteMessageResponse, tonic::Status> {
    user.chat()
        .delete_message(pb::DeleteMessageRequest {
            message_id: message_id.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

both_modes!(
    a_message_deleted_for_everyone_is_a_tombstone_everywhere,
    delete_for_everyone
);
async fn delete_for_everyone(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    let oops = alice.dm(&bob, "sent to the wrong person").await;
    let kept = alice.dm(&bob, "this one stays").await;
    bob_events.messages(2).await;
    let cursors = bob_events.cursors();
    let epoch = bob_events.epoch.clone();
    let oops_id = format!("{}#{}", oops.conversation_id, oops.seq);

    // Bob cannot delete alice's message; she can, and bob hears it live.
    let refused = delete(&bob, &oops_id).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let done = delete(&alice, &oops_id).await.unwrap();
    assert!(done.notice_seq > kept.seq, "{done:?}");
    let (notice, _) = bob_events
        .until(system_of(pb::system_event::Kind::MessageDeleted))
        .await;
    let system = notice.system.clone().unwrap();
    assert_eq!(
        (
            system.message_id.as_str(),
            system.user_id.as_str(),
            system.actor_id.as_str()
        ),
        (oops_id.as_str(), "alice", "alice")
    );
    assert_eq!(notice.seq, done.notice_seq);

    // History keeps the place, without the text; the other message stays.
    let history = bob.history(&oops.conversation_id).await;
    let erased = history.iter().find(|m| m.seq == oops.seq).unwrap();
    assert!(erased.deleted && erased.text.is_empty(), "{erased:?}");
    assert_eq!(erased.sender, "alice");
    let stays = history.iter().find(|m| m.seq == kept.seq).unwrap();
    assert_eq!(stays.text, "this one stays");
    assert!(!stays.deleted);

    // A device that was away hears of it when it resumes.
    drop(bob_events);
    let before_deletion: Vec<pb::Cursor> = cursors;
    let resumed = bob.subscribe_from(&before_deletion, &epoch).await;
    assert!(
        resumed.replayed.iter().any(|m| m.seq == done.notice_seq
            && m.system.as_ref().is_some_and(|s| s.message_id == oops_id)),
        "{:?}",
        resumed.replayed
    );
    drop(resumed);

    // Twice is fine and changes nothing; bad asks are told why.
    assert_eq!(delete(&alice, &oops_id).await.unwrap().notice_seq, 0);
    let system_message = delete(
        &alice,
        &format!("{}#{}", oops.conversation_id, done.notice_seq),
    )
    .await
    .unwrap_err();
    assert_eq!(
        system_message.code(),
        tonic::Code::FailedPrecondition,
        "{system_message:?}"
    );
    let missing = delete(&alice, &format!("{}#999", oops.conversation_id))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let malformed = delete(&alice, "not a message id").await.unwrap_err();
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
    let carol = cluster.user("carol", 0).await;
    let stranger = delete(&carol, &format!("{}#{}", kept.conversation_id, kept.seq))
        .await
        .unwrap_err();
    assert_eq!(
        stranger.code(),
        tonic::Code::PermissionDenied,
        "{stranger:?}"
    );
    assert_eq!(
        bob.history(&oops.conversation_id).await.len(),
        history.len()
    );

    // In a group: a member deletes only their own; the owner anyone's.
    let group = carol.create_group("Hikers", pb::JoinPolicy::Open).await;
    alice.join(&group.group_id).await;
    bob.join(&group.group_id).await;
    let bobs = bob.post(&group.group_id, "bob's post").await;
    let bobs_id = format!("{}#{}", bobs.conversation_id, bobs.seq);
    let not_hers = delete(&alice, &bobs_id).await.unwrap_err();
    assert_eq!(
        not_hers.code(),
        tonic::Code::PermissionDenied,
        "{not_hers:?}"
    );
    delete(&carol, &bobs_id).await.unwrap();
    let in_group = alice.history(&group.conversation_id).await;
    let tombstone = in_group.iter().find(|m| m.seq == bobs.seq).unwrap();
    assert!(
        tombstone.deleted && tombstone.text.is_empty(),
        "{tombstone:?}"
    );
    assert!(
        in_group.iter().any(|m| m.system.as_ref().is_some_and(|s| {
            s.kind() == pb::system_event::Kind::MessageDeleted && s.actor_id == "carol"
        })),
        "{in_group:?}"
    );
}

async fn edit(
    user: &User,
    message_id: &str,
    text: &str,
) -> Result<pb::EditMessageResponse, tonic::Status> {
    user.chat()
        .edit_message(pb::EditMessageRequest {
            message_id: message_id.into(),
            text: text.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

both_modes!(
    an_edited_message_shows_its_latest_text_everywhere,
    edit_a_message
);
async fn edit_a_message(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    let sent = alice.dm(&bob, "see you at 5").await;
    bob_events.messages(1).await;
    let cursors = bob_events.cursors();
    let epoch = bob_events.epoch.clone();
    let id = format!("{}#{}", sent.conversation_id, sent.seq);

    // Only the sender edits; bob hears of it live and reads the new text.
    let refused = edit(&bob, &id, "see you never").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let edited = edit(&alice, &id, "see you at 6").await.unwrap();
    assert!(
        edited.notice_seq > sent.seq && edited.edited_at_ms > 0,
        "{edited:?}"
    );
    let (notice, _) = bob_events
        .until(system_of(pb::system_event::Kind::MessageEdited))
        .await;
    let system = notice.system.clone().unwrap();
    assert_eq!(
        (system.message_id.as_str(), system.actor_id.as_str()),
        (id.as_str(), "alice")
    );
    assert!(
        !notice.text.contains("see you at 6"),
        "the notice carries no text: {notice:?}"
    );
    let latest = bob
        .chat()
        .history(pb::HistoryRequest {
            conversation_id: sent.conversation_id.clone(),
            after_seq: Some(sent.seq - 1),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages
        .remove(0);
    assert_eq!(latest.text, "see you at 6");
    assert_eq!(latest.edited_at_ms, edited.edited_at_ms);

    // A device that was away hears of it on resume.
    drop(bob_events);
    let resumed = bob.subscribe_from(&cursors, &epoch).await;
    assert!(
        resumed.replayed.iter().any(|m| m.seq == edited.notice_seq),
        "{:?}",
        resumed.replayed
    );
    drop(resumed);

    // The same text again changes nothing; bad edits are refused with why.
    assert_eq!(
        edit(&alice, &id, "see you at 6").await.unwrap().notice_seq,
        0
    );
    let empty = edit(&alice, &id, "   ").await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument, "{empty:?}");
    let huge = edit(&alice, &id, &"x".repeat(64 * 1024)).await.unwrap_err();
    assert_eq!(huge.code(), tonic::Code::ResourceExhausted, "{huge:?}");
    let notice_id = format!("{}#{}", sent.conversation_id, edited.notice_seq);
    let system_message = edit(&alice, &notice_id, "hm").await.unwrap_err();
    assert_eq!(system_message.code(), tonic::Code::FailedPrecondition);
    delete(&alice, &id).await.unwrap();
    let after_deletion = edit(&alice, &id, "back again").await.unwrap_err();
    assert_eq!(
        after_deletion.code(),
        tonic::Code::FailedPrecondition,
        "{after_deletion:?}"
    );
    let history = bob.history(&sent.conversation_id).await;
    let tombstone = history.iter().find(|m| m.seq == sent.seq).unwrap();
    assert!(
        tombstone.deleted && tombstone.text.is_empty(),
        "{tombstone:?}"
    );
    // No version of the text is left anywhere in the conversation.
    assert!(
        history.iter().all(|m| !m.text.contains("see you at")),
        "{history:?}"
    );
}

async fn reply(
    user: &User,
    conversation: &str,
    text: &str,
    reply_to: &str,
) -> Result<pb::SendResponse, tonic::Status> {
    user.chat()
        .send(pb::SendRequest {
            to: Some(To::ConversationId(conversation.into())),
            client_msg_id: String::new(),
            text: text.into(),
            reply_to: reply_to.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

both_modes!(a_reply_quotes_the_message_as_it_reads_now, replies_quote);
async fn replies_quote(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut alice_events = alice.subscribe().await;
    let question = alice.dm(&bob, "lunch   at\n noon?").await;
    let question_id = question.message_id.clone();
    let conv = question.conversation_id.clone();
    alice_events.messages(1).await;

    // Bob answers it: alice gets the quote live, and history has it.
    let answer = reply(&bob, &conv, "yes!", &question_id).await.unwrap();
    let live = alice_events.message().await;
    let quote = live.reply_to.clone().expect("a quote");
    assert_eq!(
        (
            quote.message_id.as_str(),
            quote.sender.as_str(),
            quote.excerpt.as_str(),
            quote.deleted
        ),
        (question_id.as_str(), "alice", "lunch at noon?", false)
    );
    let quoted_in_history = |history: &[pb::Message]| {
        history
            .iter()
            .find(|m| m.seq == answer.seq)
            .and_then(|m| m.reply_to.clone())
            .unwrap()
    };
    assert_eq!(quoted_in_history(&alice.history(&conv).await), quote);

    // The quote reads as the message does now: edited, then deleted.
    alice
        .chat()
        .edit_message(pb::EditMessageRequest {
            message_id: question_id.clone(),
            text: "lunch at one?".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        quoted_in_history(&bob.history(&conv).await).excerpt,
        "lunch at one?"
    );
    delete(&alice, &question_id).await.unwrap();
    let gone = quoted_in_history(&bob.history(&conv).await);
    assert!(gone.deleted && gone.excerpt.is_empty(), "{gone:?}");
    assert_eq!(gone.sender, "alice");
    assert!(
        bob.history(&conv)
            .await
            .iter()
            .all(|m| !format!("{m:?}").contains("lunch")),
        "no copy of the text is left in the conversation"
    );

    // What cannot be answered is refused with why, and nothing is stored.
    let group = alice.create_group("Lunch", pb::JoinPolicy::Open).await;
    let elsewhere = reply(&bob, &conv, "hm", &format!("{}#1", group.conversation_id))
        .await
        .unwrap_err();
    assert_eq!(
        elsewhere.code(),
        tonic::Code::InvalidArgument,
        "{elsewhere:?}"
    );
    let missing = reply(&bob, &conv, "hm", &format!("{conv}#999"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let malformed = reply(&bob, &conv, "hm", "yesterday").await.unwrap_err();
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
    bob.join(&group.group_id).await;
    let created = format!("{}#1", group.conversation_id);
    let system = reply(&bob, &group.conversation_id, "hm", &created)
        .await
        .unwrap_err();
    assert_eq!(system.code(), tonic::Code::FailedPrecondition, "{system:?}");
    let head = bob.history(&conv).await.len();
    assert_eq!(
        head, 4,
        "question, answer and two notices; nothing refused was stored"
    );
}

async fn typing(user: &User, conversation: &str) -> Result<bool, tonic::Status> {
    user.chat()
        .typing(pb::TypingRequest {
            conversation_id: conversation.into(),
        })
        .await
        .map(|r| r.into_inner().delivered)
}

/// The typing notice in `conversation`, if `event` is one.
fn typing_in(conversation: &str) -> impl FnMut(&pb::Event) -> Option<pb::TypingNotice> + '_ {
    move |event| match &event.kind {
        Some(Kind::Typing(t)) if t.conversation_id == conversation => Some(t.clone()),
        _ => None,
    }
}

both_modes!(
    typing_reaches_the_others_and_is_never_stored,
    typing_notices
);
async fn typing_notices(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let carol = cluster.user("carol", 0).await;
    let dm = alice.dm(&bob, "hi").await.conversation_id;
    let group = carol.create_group("Typists", pb::JoinPolicy::Open).await;
    alice.join(&group.group_id).await;
    bob.join(&group.group_id).await;
    let mut bob_events = bob.subscribe().await;
    let mut carol_events = carol.subscribe().await;
    let heads_before = bob.history(&dm).await.len();

    // In a direct chat the other side hears it; in a group every member.
    assert!(typing(&alice, &dm).await.unwrap());
    // Again at once: not passed on (a client sends one every few seconds).
    assert!(!typing(&alice, &dm).await.unwrap());
    let (notice, _) = bob_events.until(typing_in(&dm)).await;
    assert_eq!(notice.user_id, "alice");
    assert!(notice.expires_in_ms >= 1000, "{notice:?}");
    assert!(typing(&alice, &group.conversation_id).await.unwrap());
    bob_events.until(typing_in(&group.conversation_id)).await;
    carol_events.until(typing_in(&group.conversation_id)).await;

    // Never stored: no message, nothing for a device that resumes.
    assert_eq!(bob.history(&dm).await.len(), heads_before);
    let epoch = bob_events.epoch.clone();
    drop(bob_events);
    let mut cursors = Vec::new();
    for conversation in [&dm, &group.conversation_id] {
        let head = bob.history(conversation).await.last().map_or(0, |m| m.seq);
        cursors.push(pb::Cursor {
            conversation_id: conversation.clone(),
            seq: head,
        });
    }
    let resumed = bob.subscribe_from(&cursors, &epoch).await;
    assert!(resumed.replayed.is_empty(), "{:?}", resumed.replayed);
    drop(resumed);

    // Only someone in the conversation may say so.
    let refused = typing(&carol, &dm).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let malformed = typing(&carol, "nowhere").await.unwrap_err();
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
}

async fn mute(user: &User, conversation: &str, muted: bool) -> Result<(), tonic::Status> {
    user.chat()
        .mute_conversation(pb::MuteConversationRequest {
            conversation_id: conversation.into(),
            muted,
        })
        .await
        .map(|_| ())
}

/// `conversation` as `user`'s conversation list shows it.
async fn listed(user: &User, conversation: &str) -> pb::Conversation {
    user.chat()
        .list_conversations(pb::ListConversationsRequest {})
        .await
        .unwrap()
        .into_inner()
        .conversations
        .into_iter()
        .find(|c| c.conversation_id == conversation)
        .unwrap_or_else(|| panic!("{} does not list {conversation}", user.id))
}

/// Whether `user`'s conversation list shows `conversation` muted.
async fn listed_muted(user: &User, conversation: &str) -> bool {
    listed(user, conversation).await.muted
}

both_modes!(
    a_muted_conversation_is_muted_on_every_device_and_still_delivered,
    mute_conversations
);
async fn mute_conversations(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let group = alice.create_group("Noisy", pb::JoinPolicy::Open).await;
    bob.join(&group.group_id).await;
    let dm = alice.dm(&bob, "hi").await.conversation_id;
    let phone = bob.another_device(&cluster, 0, "phone").await;
    let mut phone_events = phone.subscribe().await;

    // Bob mutes the group: his other device hears it, his list says so,
    // alice's does not, and messages still arrive and count.
    mute(&bob, &group.conversation_id, true).await.unwrap();
    let changed = phone_events
        .until_changed(pb::conversation_changed::Change::Updated)
        .await;
    assert_eq!(
        (
            changed.conversation_id.as_str(),
            changed.muted,
            changed.title.as_str()
        ),
        (group.conversation_id.as_str(), true, "Noisy")
    );
    assert!(listed_muted(&bob, &group.conversation_id).await);
    assert!(!listed_muted(&bob, &dm).await);
    assert!(!listed_muted(&alice, &group.conversation_id).await);
    alice.post(&group.group_id, "still here").await;
    phone_events.messages_until("still here").await;

    // Again changes nothing; a chat mutes too; unmuting undoes it.
    mute(&bob, &group.conversation_id, true).await.unwrap();
    mute(&bob, &dm, true).await.unwrap();
    assert!(listed_muted(&bob, &dm).await);
    mute(&bob, &group.conversation_id, false).await.unwrap();
    assert!(!listed_muted(&bob, &group.conversation_id).await);
    assert!(listed_muted(&phone, &dm).await);

    // Refused with why: not one's conversation, a topic thread, nonsense.
    let carol = cluster.user("carol", 0).await;
    let outsider = mute(&carol, &dm, true).await.unwrap_err();
    assert_eq!(
        outsider.code(),
        tonic::Code::PermissionDenied,
        "{outsider:?}"
    );
    let topic = alice
        .topics()
        .create_topic(pb::CreateTopicRequest {
            name: "News".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    let thread = format!("t:{}:bob", topic.topic_id);
    let refused = mute(&bob, &thread, true).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let malformed = mute(&bob, "nonsense", true).await.unwrap_err();
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
}

/// Whether `user`'s list shows `conversation` as a message request.
async fn listed_request(user: &User, conversation: &str) -> bool {
    listed(user, conversation).await.request
}

both_modes!(
    a_stranger_s_message_waits_as_a_request_until_accepted_or_answered,
    message_requests
);
async fn message_requests(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let carol = cluster.user("carol", 0).await;
    let phone = alice.another_device(&cluster, 1, "phone").await;
    let mut phone_events = phone.subscribe().await;

    // A stranger writes: delivered, and a request for alice, not for him.
    let from_bob = bob.dm(&alice, "hi, we met at the conference").await;
    phone_events
        .messages_until("hi, we met at the conference")
        .await;
    let dm = from_bob.conversation_id.clone();
    assert!(listed_request(&alice, &dm).await);
    assert!(
        !listed_request(&bob, &dm).await,
        "who started it accepted it"
    );

    // Accepted: on every device of hers.
    alice
        .chat()
        .accept_conversation(pb::AcceptConversationRequest {
            conversation_id: dm.clone(),
        })
        .await
        .unwrap();
    let changed = phone_events
        .until_changed(pb::conversation_changed::Change::Updated)
        .await;
    assert_eq!(
        (changed.conversation_id.as_str(), changed.request),
        (dm.as_str(), false)
    );
    assert!(!listed_request(&alice, &dm).await);

    // Answering accepts too; a contact's message is never a request.
    let from_carol = carol.dm(&alice, "lunch?").await.conversation_id;
    assert!(listed_request(&alice, &from_carol).await);
    alice.dm(&carol, "sure").await;
    assert!(!listed_request(&alice, &from_carol).await);
    let dave = cluster.user("dave", 1).await;
    alice.add_contact(&dave).await;
    let from_dave = dave.dm(&alice, "hey").await.conversation_id;
    assert!(!listed_request(&alice, &from_dave).await);

    // Only a direct conversation of one's own can be accepted.
    let group = alice.create_group("Team", pb::JoinPolicy::Open).await;
    let not_direct = alice
        .chat()
        .accept_conversation(pb::AcceptConversationRequest {
            conversation_id: group.conversation_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        not_direct.code(),
        tonic::Code::InvalidArgument,
        "{not_direct:?}"
    );
    let not_mine = carol
        .chat()
        .accept_conversation(pb::AcceptConversationRequest {
            conversation_id: dm.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        not_mine.code(),
        tonic::Code::PermissionDenied,
        "{not_mine:?}"
    );
}
