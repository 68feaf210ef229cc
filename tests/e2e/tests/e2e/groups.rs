//! Groups: fan-out across gateways, one subscription for every group,
//! joining by policy, leaving, removal.

use switchboard_proto::pb::{self, event::Kind, send_request::To, system_event};
use tonic::Code;

use crate::both_modes;
use crate::harness::Cluster;
use crate::harness::client::{system_of, texts};

both_modes!(
    a_group_message_reaches_every_member_across_gateways,
    group_fan_out
);
async fn group_fan_out(cluster: Cluster) {
    let owner = cluster.user("owner", 0).await;
    let ann = cluster.user("ann", 1).await;
    let ben = cluster.user("ben", 0).await;
    let outsider = cluster.user("outsider", 1).await;
    let group = owner.create_group("Climbing", pb::JoinPolicy::Open).await;
    ann.join(&group.group_id).await;
    ben.join(&group.group_id).await;

    let mut streams = vec![
        owner.subscribe().await,
        ann.subscribe().await,
        ben.subscribe().await,
    ];
    let mut outsider_events = outsider.subscribe().await;
    let first = ann.post(&group.group_id, "from ann").await;
    let second = owner.post(&group.group_id, "from owner").await;
    assert_eq!(second.seq, first.seq + 1);
    for stream in &mut streams {
        let got = stream.messages(2).await;
        assert_eq!(texts(&got), ["from ann", "from owner"], "{}", stream.user);
        assert_eq!(got[0].conversation_id, group.conversation_id);
    }
    // The outsider got none of it: the next thing they see is a message to them.
    owner.dm(&outsider, "just for you").await;
    assert_eq!(outsider_events.message().await.text, "just for you");
}

both_modes!(
    one_subscription_covers_every_group_including_later_ones,
    one_subscription_for_all_groups
);
async fn one_subscription_for_all_groups(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let first = bob.create_group("First", pb::JoinPolicy::Open).await;
    let second = bob.create_group("Second", pb::JoinPolicy::Open).await;
    let third = bob.create_group("Third", pb::JoinPolicy::Open).await;
    alice.join(&first.group_id).await;
    alice.join(&second.group_id).await;

    // One stream, no per-group subscribe call.
    let mut stream = alice.subscribe().await;
    bob.post(&second.group_id, "in second").await;
    bob.post(&first.group_id, "in first").await;
    assert_eq!(texts(&stream.messages(2).await), ["in second", "in first"]);

    // A group joined later streams on the same subscription.
    let joined = alice.join(&third.group_id).await;
    let (added, _) = stream
        .until(|e| match &e.kind {
            Some(Kind::Conversation(c)) => c.conversation.clone(),
            _ => None,
        })
        .await;
    assert_eq!(added.conversation_id, third.conversation_id);
    let join_message = stream.message().await;
    assert_eq!(join_message.seq, joined.joined_at_seq);
    assert_eq!(
        join_message.system.as_ref().map(|s| s.kind()),
        Some(system_event::Kind::MemberJoined)
    );
    bob.post(&third.group_id, "in third").await;
    assert_eq!(stream.message().await.text, "in third");
}

both_modes!(joining_follows_the_group_policy, join_policy);
async fn join_policy(cluster: Cluster) {
    let owner = cluster.user("owner", 0).await;
    let guest = cluster.user("guest", 1).await;
    let private = owner
        .create_group("Private", pb::JoinPolicy::InviteOnly)
        .await;
    let refused = guest
        .groups()
        .join_group(pb::JoinGroupRequest {
            group_id: private.group_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("invite-only"),
        "{}",
        refused.message()
    );

    let mut guest_events = guest.subscribe().await;
    owner
        .groups()
        .invite_member(pb::InviteMemberRequest {
            group_id: private.group_id.clone(),
            user_id: "guest".into(),
        })
        .await
        .unwrap();
    let invited = guest_events
        .until_changed(pb::conversation_changed::Change::Invited)
        .await;
    assert_eq!(invited.group_id, private.group_id);
    let listed = guest
        .groups()
        .list_my_groups(pb::ListMyGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.invitations.len(), 1);
    guest.join(&private.group_id).await;
    let again = guest
        .groups()
        .join_group(pb::JoinGroupRequest {
            group_id: private.group_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);

    let members = owner
        .groups()
        .list_members(pb::ListMembersRequest {
            group_id: private.group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    let roles: Vec<(&str, pb::Role)> = members
        .iter()
        .map(|m| (m.user_id.as_str(), m.role()))
        .collect();
    assert_eq!(
        roles,
        [("guest", pb::Role::Member), ("owner", pb::Role::Owner)]
    );
}

both_modes!(
    members_who_leave_or_are_removed_stop_receiving,
    leaving_and_removal
);
async fn leaving_and_removal(cluster: Cluster) {
    let owner = cluster.user("owner", 0).await;
    let admin = cluster.user("admin", 1).await;
    let leaver = cluster.user("leaver", 1).await;
    let kicked = cluster.user("kicked", 0).await;
    let group = owner.create_group("Book club", pb::JoinPolicy::Open).await;
    for user in [&admin, &leaver, &kicked] {
        user.join(&group.group_id).await;
    }
    owner
        .groups()
        .set_member_role(pb::SetMemberRoleRequest {
            group_id: group.group_id.clone(),
            user_id: "admin".into(),
            role: pb::Role::Admin as i32,
        })
        .await
        .unwrap();
    let mut leaver_events = leaver.subscribe().await;
    let mut kicked_events = kicked.subscribe().await;

    leaver
        .groups()
        .leave_group(pb::LeaveGroupRequest {
            group_id: group.group_id.clone(),
        })
        .await
        .unwrap();
    // An admin cannot remove the owner; they can remove a member.
    let refused = admin
        .groups()
        .remove_member(pb::RemoveMemberRequest {
            group_id: group.group_id.clone(),
            user_id: "owner".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    admin
        .groups()
        .remove_member(pb::RemoveMemberRequest {
            group_id: group.group_id.clone(),
            user_id: "kicked".into(),
        })
        .await
        .unwrap();
    owner.post(&group.group_id, "after they went").await;

    // Each sees their own exit, and then nothing more from the group: the
    // next message they get is one sent to them after the group message.
    for (events, kind, user) in [
        (&mut leaver_events, system_event::Kind::MemberLeft, &leaver),
        (
            &mut kicked_events,
            system_event::Kind::MemberRemoved,
            &kicked,
        ),
    ] {
        let (exit, _) = events
            .until(|e| match &e.kind {
                Some(Kind::Message(m)) => m.system.as_ref().filter(|s| s.kind() == kind).cloned(),
                _ => None,
            })
            .await;
        assert_eq!(exit.user_id, user.id);
        owner.dm(user, "marker").await;
        assert_eq!(
            events.message().await.text,
            "marker",
            "{} got a group message after leaving",
            user.id
        );
        let denied = user
            .send(To::GroupId(group.group_id.clone()), "still here?", "")
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        // What came before their exit stays theirs to read; nothing after.
        let page = user
            .chat()
            .history(pb::HistoryRequest {
                conversation_id: group.conversation_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let last = page.messages.last().unwrap();
        assert_eq!(last.system.as_ref().unwrap().kind(), kind);
        assert_eq!(page.head_seq, last.seq, "the head they see is their exit");
        assert!(!texts(&page.messages).contains(&"after they went"));
    }
    // Someone who never was a member reads nothing.
    let stranger = cluster.user("stranger", 0).await;
    let unreadable = stranger
        .chat()
        .history(pb::HistoryRequest {
            conversation_id: group.conversation_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unreadable.code(), Code::PermissionDenied);
}

both_modes!(
    a_member_removed_while_offline_gets_everything_up_to_the_removal,
    removed_while_offline
);
async fn removed_while_offline(cluster: Cluster) {
    let owner = cluster.user("owner", 0).await;
    let carol = cluster.user("carol", 1).await;
    let group = owner.create_group("Choir", pb::JoinPolicy::Open).await;
    carol.join(&group.group_id).await;
    // carol's one device reads up to seq 3, then goes offline.
    let mut events = carol.subscribe().await;
    owner.post(&group.group_id, "seen").await;
    events.messages_until("seen").await;
    let (cursors, epoch) = (events.cursors(), events.epoch.clone());
    assert_eq!(cursors[0].seq, 3);
    drop(events);

    owner.post(&group.group_id, "X").await; // seq 4
    owner
        .groups()
        .remove_member(pb::RemoveMemberRequest {
            group_id: group.group_id.clone(),
            user_id: "carol".into(),
        })
        .await
        .unwrap(); // seq 5
    owner.post(&group.group_id, "after").await; // seq 6

    // Back with her cursors: X and her removal, in order, then the group goes.
    let mut resumed = carol.subscribe_from(&cursors, &epoch).await;
    let replayed: Vec<(u64, String)> = resumed
        .replayed
        .iter()
        .map(|m| (m.seq, m.text.clone()))
        .collect();
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert_eq!(replayed[0], (4, "X".to_owned()));
    assert_eq!(replayed[1].0, 5);
    assert_eq!(
        resumed.replayed[1].system.as_ref().unwrap().kind(),
        system_event::Kind::MemberRemoved
    );
    assert!(
        resumed.before_sync.iter().any(|e| matches!(&e.kind,
            Some(Kind::Conversation(c)) if c.change() == pb::conversation_changed::Change::Removed
                && c.conversation.as_ref().unwrap().conversation_id == group.conversation_id)),
        "{:?}",
        resumed.before_sync
    );
    // History agrees, and stops at the removal.
    let history = carol.history(&group.conversation_id).await;
    assert_eq!(history.last().unwrap().seq, 5);
    assert!(!texts(&history).contains(&"after"));
    owner.dm(&carol, "marker").await;
    assert_eq!(
        resumed.message().await.text,
        "marker",
        "nothing after the removal"
    );
}

both_modes!(
    a_member_who_left_from_another_device_gets_everything_up_to_leaving,
    left_from_another_device
);
async fn left_from_another_device(cluster: Cluster) {
    let owner = cluster.user("owner", 0).await;
    let carol = cluster.user("carol", 1).await;
    let phone = carol.another_device(&cluster, 0, "phone").await;
    let group = owner.create_group("Choir", pb::JoinPolicy::Open).await;
    carol.join(&group.group_id).await;
    let mut events = carol.subscribe().await;
    owner.post(&group.group_id, "seen").await;
    events.messages_until("seen").await;
    let (cursors, epoch) = (events.cursors(), events.epoch.clone());
    drop(events);
    owner.post(&group.group_id, "before she left").await;
    phone
        .groups()
        .leave_group(pb::LeaveGroupRequest {
            group_id: group.group_id.clone(),
        })
        .await
        .unwrap();
    owner.post(&group.group_id, "after she left").await;
    let resumed = carol.subscribe_from(&cursors, &epoch).await;
    let texts_replayed = texts(&resumed.replayed);
    assert_eq!(texts_replayed.len(), 2, "{texts_replayed:?}");
    assert_eq!(texts_replayed[0], "before she left");
    assert_eq!(
        resumed.replayed[1].system.as_ref().unwrap().kind(),
        system_event::Kind::MemberLeft
    );
}

both_modes!(
    new_members_read_history_as_the_group_says,
    history_visibility
);
async fn history_visibility(cluster: Cluster) {
    let owner = cluster.user("owner", 0).await;
    let newcomer = cluster.user("newcomer", 1).await;
    // (policy, history asked for, what a newcomer should read of the past)
    let cases = [
        (
            pb::JoinPolicy::Open,
            pb::HistoryVisibility::Unspecified,
            true,
        ),
        (
            pb::JoinPolicy::InviteOnly,
            pb::HistoryVisibility::Unspecified,
            false,
        ),
        (pb::JoinPolicy::Open, pb::HistoryVisibility::FromJoin, false),
        (pb::JoinPolicy::InviteOnly, pb::HistoryVisibility::All, true),
    ];
    for (policy, history, sees_the_past) in cases {
        let group = owner
            .groups()
            .create_group(pb::CreateGroupRequest {
                name: "Planning".into(),
                policy: policy as i32,
                history: history as i32,
                invite: vec![],
            })
            .await
            .unwrap()
            .into_inner()
            .group
            .unwrap();
        let expected = if sees_the_past {
            pb::HistoryVisibility::All
        } else {
            pb::HistoryVisibility::FromJoin
        };
        assert_eq!(group.history(), expected, "{policy:?} {history:?}");
        owner.post(&group.group_id, "before the newcomer").await;
        if policy == pb::JoinPolicy::InviteOnly {
            owner
                .groups()
                .invite_member(pb::InviteMemberRequest {
                    group_id: group.group_id.clone(),
                    user_id: "newcomer".into(),
                })
                .await
                .unwrap();
        }
        let joined = newcomer.join(&group.group_id).await;
        owner.post(&group.group_id, "after the newcomer").await;
        let read = newcomer.history(&group.conversation_id).await;
        assert_eq!(
            texts(&read).contains(&"before the newcomer"),
            sees_the_past,
            "{policy:?} {history:?}: {:?}",
            texts(&read)
        );
        assert!(texts(&read).contains(&"after the newcomer"));
        if !sees_the_past {
            assert_eq!(
                read[0].seq, joined.joined_at_seq,
                "history starts at the join"
            );
            // Paging backwards from the join finds nothing more.
            let before = newcomer
                .chat()
                .history(pb::HistoryRequest {
                    conversation_id: group.conversation_id.clone(),
                    before_seq: joined.joined_at_seq,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(before.messages.is_empty() && !before.has_more);
        }
    }
}

both_modes!(
    the_owner_hands_a_group_over_then_leaves_and_the_new_owner_deletes_it,
    owner_transfers_and_deletes
);
async fn owner_transfers_and_deletes(cluster: Cluster) {
    let ann = cluster.user("ann", 0).await;
    let ben = cluster.user("ben", 1).await;
    let cyd = cluster.user("cyd", 0).await;
    let group = ann.create_group("Book club", pb::JoinPolicy::Open).await;
    ben.join(&group.group_id).await;
    cyd.join(&group.group_id).await;
    let transfer = |by: &crate::harness::User, to: &str| {
        let (groups, request) = (
            by.groups(),
            pb::TransferOwnershipRequest {
                group_id: group.group_id.clone(),
                new_owner_id: to.into(),
            },
        );
        async move {
            let mut groups = groups;
            groups.transfer_ownership(request).await
        }
    };
    let disband = |by: &crate::harness::User| {
        let (groups, request) = (
            by.groups(),
            pb::DisbandGroupRequest {
                group_id: group.group_id.clone(),
            },
        );
        async move {
            let mut groups = groups;
            groups.disband_group(request).await
        }
    };

    // Only the owner hands it over or deletes it, and only to a member.
    let not_owner = transfer(&ben, "cyd").await.unwrap_err();
    assert_eq!(not_owner.code(), Code::PermissionDenied, "{not_owner:?}");
    let not_member = transfer(&ann, "dan").await.unwrap_err();
    assert_eq!(
        not_member.code(),
        Code::FailedPrecondition,
        "{not_member:?}"
    );
    let not_theirs = disband(&ben).await.unwrap_err();
    assert_eq!(not_theirs.code(), Code::PermissionDenied, "{not_theirs:?}");

    // Ann hands it to ben; she is an admin now, and may leave.
    transfer(&ann, "ben").await.unwrap();
    let members = cyd
        .groups()
        .list_members(pb::ListMembersRequest {
            group_id: group.group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    let role = |who: &str| members.iter().find(|m| m.user_id == who).map(|m| m.role());
    assert_eq!(
        (role("ben"), role("ann")),
        (Some(pb::Role::Owner), Some(pb::Role::Admin))
    );
    ann.groups()
        .leave_group(pb::LeaveGroupRequest {
            group_id: group.group_id.clone(),
        })
        .await
        .unwrap();

    // Ben deletes it: cyd's stream is told at once; it is gone for all.
    let mut cyd_events = cyd.subscribe().await;
    disband(&ben).await.unwrap();
    cyd_events.until_removed(&group.conversation_id).await;
    for user in [&ben, &cyd] {
        let groups = user
            .groups()
            .list_my_groups(pb::ListMyGroupsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .groups;
        assert!(groups.is_empty(), "{groups:?}");
    }
    let gone = cyd
        .send(To::GroupId(group.group_id.clone()), "anyone?", "")
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
}

both_modes!(a_group_message_names_the_members_it_mentions, mentions);
async fn mentions(cluster: Cluster) {
    let ann = cluster.user("ann", 0).await;
    let ben = cluster.user("ben", 1).await;
    let cyd = cluster.user("cyd", 0).await;
    let group = ann.create_group("Crew", pb::JoinPolicy::Open).await;
    ben.join(&group.group_id).await;
    cyd.join(&group.group_id).await;
    let mut ben_events = ben.subscribe().await;
    ann.post(
        &group.group_id,
        "@Cyd and @ben: bring the map. Not @dan (no member), mail ann@ben.example, again @ben.",
    )
    .await;
    let live = ben_events.message().await;
    assert_eq!(live.mentions, ["ben", "cyd"]);
    let stored = ben.history(&group.conversation_id).await;
    assert_eq!(stored.last().unwrap().mentions, ["ben", "cyd"]);
    // A direct message names nobody; neither does a text without `@`.
    let dm = ann.dm(&ben, "hi @ben").await;
    let direct = ben.history(&dm.conversation_id).await;
    assert!(direct[0].mentions.is_empty(), "{direct:?}");
    ann.post(&group.group_id, "plain").await;
    assert!(
        ben.history(&group.conversation_id)
            .await
            .last()
            .unwrap()
            .mentions
            .is_empty()
    );
}

both_modes!(
    owners_and_admins_rename_a_group_and_describe_it,
    rename_and_describe
);
async fn rename_and_describe(cluster: Cluster) {
    let ann = cluster.user("ann", 0).await;
    let ben = cluster.user("ben", 1).await;
    let group = ann.create_group("Old name", pb::JoinPolicy::Open).await;
    ben.join(&group.group_id).await;
    let mut ben_events = ben.subscribe().await;
    let update = |user: &crate::harness::User, name: Option<&str>, description: Option<&str>| {
        let mut groups = user.groups();
        let request = pb::UpdateGroupRequest {
            group_id: group.group_id.clone(),
            name: name.map(str::to_owned),
            description: description.map(str::to_owned),
        };
        async move { groups.update_group(request).await.map(|r| r.into_inner()) }
    };

    // A member cannot; bad names and descriptions are refused with why.
    let member = update(&ben, Some("Mine"), None).await.unwrap_err();
    assert_eq!(member.code(), Code::PermissionDenied, "{member:?}");
    for (name, description) in [
        (Some("  "), None),
        (None, Some("x".repeat(501))),
        (None, Some("bell\u{7}".to_owned())),
        (None, None),
    ] {
        let refused = update(&ann, name, description.as_deref())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }

    let renamed = update(&ann, Some("Hikers"), Some("Sundays, 9 am\nbring water"))
        .await
        .unwrap()
        .group
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("Hikers", "Sundays, 9 am\nbring water")
    );
    // Members hear of it in the group's order, and their lists say so.
    let (notice, _) = ben_events
        .until(system_of(system_event::Kind::GroupUpdated))
        .await;
    assert!(notice.text.contains("Hikers"), "{notice:?}");
    let listed = ben
        .groups()
        .list_my_groups(pb::ListMyGroupsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(listed[0].name, "Hikers");
    assert_eq!(listed[0].description, "Sundays, 9 am\nbring water");
    // An admin may too; an empty description clears it.
    ann.groups()
        .set_member_role(pb::SetMemberRoleRequest {
            group_id: group.group_id.clone(),
            user_id: "ben".into(),
            role: pb::Role::Admin as i32,
        })
        .await
        .unwrap();
    let cleared = update(&ben, None, Some("")).await.unwrap().group.unwrap();
    assert_eq!(
        (cleared.name.as_str(), cleared.description.as_str()),
        ("Hikers", "")
    );
}
