//! Searching one's history: by word starts, newest first, a page at a
//! time, highlighted, and never past what the searcher may read.

use switchboard_proto::pb::{self, send_request::To};
use tonic::Code;

use crate::both_modes;
use crate::harness::{Cluster, User};

async fn search(
    user: &User,
    query: &str,
    conversation: &str,
) -> Result<pb::SearchResponse, tonic::Status> {
    user.chat()
        .search(pb::SearchRequest {
            query: query.into(),
            conversation_id: conversation.into(),
            limit: 0,
            page_token: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The texts `user` finds for `query` everywhere, newest first.
async fn found(user: &User, query: &str) -> Vec<String> {
    search(user, query, "")
        .await
        .unwrap_or_else(|s| panic!("{} searches {query:?}: {s}", user.id))
        .hits
        .into_iter()
        .map(|hit| hit.message.unwrap().text)
        .collect()
}

both_modes!(
    search_finds_what_the_searcher_may_read_newest_first,
    searching
);
async fn searching(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let carol = cluster.user("carol", 0).await;
    let dave = cluster.user("dave", 1).await;

    // An invite-only group reads from the join: dave, invited later, finds
    // nothing from before it.
    let board = alice
        .create_group("Board", pb::JoinPolicy::InviteOnly)
        .await;
    let board_conv = format!("g:{}", board.group_id);
    let draft = alice.post(&board.group_id, "Budget draft one").await;
    alice
        .groups()
        .invite_member(pb::InviteMemberRequest {
            group_id: board.group_id.clone(),
            user_id: dave.id.clone(),
        })
        .await
        .unwrap();
    dave.join(&board.group_id).await;
    alice.post(&board.group_id, "budget, final version").await;
    alice.dm(&bob, "lunch to talk about the BUDGETS?").await;

    assert_eq!(
        found(&alice, "budg").await,
        [
            "lunch to talk about the BUDGETS?",
            "budget, final version",
            "Budget draft one"
        ],
        "every conversation of hers, newest first, case aside"
    );
    assert_eq!(found(&dave, "budget").await, ["budget, final version"]);
    assert_eq!(
        found(&bob, "budget").await,
        ["lunch to talk about the BUDGETS?"]
    );
    assert!(
        found(&carol, "budget").await.is_empty(),
        "carol is in none of them"
    );

    // The matched words come back marked.
    let hit = search(&alice, "talk budg", "")
        .await
        .unwrap()
        .hits
        .remove(0);
    let marked: Vec<(&str, bool)> = hit
        .pieces
        .iter()
        .map(|p| (p.text.as_str(), p.matched))
        .collect();
    assert_eq!(
        marked,
        [
            ("lunch to ", false),
            ("talk", true),
            (" about the ", false),
            ("BUDGETS", true),
            ("?", false)
        ]
    );

    // One conversation only; one the searcher cannot read is refused.
    let only_board = search(&alice, "budget", &board_conv).await.unwrap();
    assert_eq!(only_board.hits.len(), 2);
    let refused = search(&carol, "budget", &board_conv).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Deleted: gone from search; edited: found by its new words.
    alice
        .chat()
        .delete_message(pb::DeleteMessageRequest {
            message_id: draft.message_id.clone(),
        })
        .await
        .unwrap();
    let lunch = bob.dm(&alice, "sure, at noon").await;
    bob.chat()
        .edit_message(pb::EditMessageRequest {
            message_id: lunch.message_id.clone(),
            text: "sure, at the canteen".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        found(&alice, "budget").await,
        ["lunch to talk about the BUDGETS?", "budget, final version"]
    );
    assert_eq!(found(&alice, "canteen").await, ["sure, at the canteen"]);
    assert!(found(&alice, "noon").await.is_empty());

    // A former member of an open group finds what was said until they left.
    let club = bob.create_group("Club", pb::JoinPolicy::Open).await;
    carol.join(&club.group_id).await;
    bob.post(&club.group_id, "club budget before").await;
    carol
        .groups()
        .leave_group(pb::LeaveGroupRequest {
            group_id: club.group_id.clone(),
        })
        .await
        .unwrap();
    bob.post(&club.group_id, "club budget after").await;
    assert_eq!(found(&carol, "club").await, ["club budget before"]);

    // Pages: one hit each, each going on from the last.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .chat()
            .search(pb::SearchRequest {
                query: "budget".into(),
                limit: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.extend(page.hits.into_iter().map(|h| h.message.unwrap().text));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, found(&alice, "budget").await);
    assert_eq!(pages.len(), 2);

    // A topic: each contact finds their own copy, the owner every copy.
    for contact in [&bob, &dave] {
        alice.add_contact(contact).await;
        contact.add_contact(&alice).await;
    }
    let topic = alice
        .topic_with_broadcast("Notes", &[&bob, &dave], "quarterly memo")
        .await;
    let own_thread = |user: &User| format!("t:{}:{}", topic.topic_id, user.id);
    for contact in [&bob, &dave] {
        let hits = search(contact, "memo", "").await.unwrap().hits;
        let convs: Vec<String> = hits
            .into_iter()
            .map(|h| h.message.unwrap().conversation_id)
            .collect();
        assert_eq!(convs, [own_thread(contact)], "{}", contact.id);
    }
    assert_eq!(found(&alice, "memo").await.len(), 2);
    assert!(found(&carol, "memo").await.is_empty());
}

both_modes!(bad_searches_are_refused_with_a_reason, bad_searches);
async fn bad_searches(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    alice
        .send(To::UserId(bob.id.clone()), "hello there", "")
        .await
        .unwrap();
    for (query, token, says) in [
        ("", "", "at least one word"),
        ("?!", "", "at least one word"),
        ("a b c d e f g h i", "", "at most 8 words"),
        ("hello", "forged", "page_token"),
    ] {
        let refused = alice
            .chat()
            .search(pb::SearchRequest {
                query: query.into(),
                page_token: token.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{query:?}");
        assert!(refused.message().contains(says), "{query:?}: {refused:?}");
    }
    let nobody = search(&alice, "hello", "g:gnosuchgroup1")
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound, "{nobody:?}");
    // Nothing changed: the message is still found.
    assert_eq!(found(&alice, "hel").await, ["hello there"]);
}
