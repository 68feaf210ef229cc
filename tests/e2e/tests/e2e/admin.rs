//! The admin API from outside, as an operator's tool meets it: a gRPC client
//! on a router's internal port (the standalone process's client port),
//! with and without the admin credential, against real users' sessions
//! and streams.

use switchboard_proto::client::{Authed, Bearer};
use switchboard_proto::pb;
use switchboard_proto::pb::admin_service_client::AdminServiceClient;
use tonic::Code;

use crate::both_modes;
use crate::harness::Cluster;
use crate::harness::client::{PASSWORD, User, channel};
use crate::harness::cluster::ADMIN_SECRET;

async fn admin_with(url: &str, secret: &str) -> AdminServiceClient<Authed> {
    AdminServiceClient::with_interceptor(channel(url).await, Bearer::new(secret).unwrap())
}

async fn login(
    url: &str,
    user: &str,
    password: &str,
    device: &str,
) -> Result<pb::LoginResponse, tonic::Status> {
    pb::account_service_client::AccountServiceClient::new(channel(url).await)
        .login(pb::LoginRequest {
            user_id: user.into(),
            password: password.into(),
            device_id: device.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

both_modes!(an_operator_administers_users_and_groups, administration);
async fn administration(cluster: Cluster) {
    let url = cluster.gateway_url(0);
    let admin_url = cluster.admin_url();
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;

    // No credential, a user's session token, a wrong secret: refused, and
    // nothing is listed.
    let bare = AdminServiceClient::new(channel(&admin_url).await)
        .find_users(pb::FindUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated, "{bare:?}");
    for secret in [
        alice.token.as_str(),
        "not-the-admin-secret-but-long-enough-0000",
    ] {
        let refused = admin_with(&admin_url, secret)
            .await
            .find_users(pb::FindUsersRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    let mut admin = admin_with(&admin_url, ADMIN_SECRET).await;

    // Find: by prefix, a page at a time.
    let found = admin
        .find_users(pb::FindUsersRequest {
            prefix: "ali".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.users.len(), 1, "{found:?}");
    assert_eq!(found.users[0].user_id, "alice");
    assert!(!found.users[0].banned && !found.users[0].passwordless);
    let first = admin
        .find_users(pb::FindUsersRequest {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.more, "{first:?}");
    let second = admin
        .find_users(pb::FindUsersRequest {
            after: first.users[0].user_id.clone(),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.users[0].user_id, first.users[0].user_id);

    // Ban: the open stream ends at once, the token stops working, and
    // logging in is refused with a reason.
    let sessions = admin
        .list_sessions(pb::ListSessionsRequest {
            user_id: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].device_id, "laptop");
    let mut stream = alice.subscribe().await;
    let banned = admin
        .ban_user(pb::BanUserRequest {
            user_id: "alice".into(),
            reason: "spam".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(banned.sessions_revoked, 1);
    stream.wait_closed().await;
    let after_ban = alice
        .chat()
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(after_ban.code(), Code::Unauthenticated, "{after_ban:?}");
    let refused = login(&url, "alice", PASSWORD, "phone").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("banned"), "{refused:?}");
    let listed = admin
        .find_users(pb::FindUsersRequest {
            prefix: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.users[0].banned);
    // Bob, not banned, goes on as before.
    bob.chat()
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .unwrap();

    // Unban: she logs in again.
    admin
        .unban_user(pb::UnbanUserRequest {
            user_id: "alice".into(),
            reason: "appeal".into(),
        })
        .await
        .unwrap();
    let alice = User::login(&url, "alice", "laptop").await;

    // Reset a password: a made-up one works, the old one and the old
    // sessions do not.
    let reset = admin
        .reset_password(pb::ResetPasswordRequest {
            user_id: "alice".into(),
            new_password: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.sessions_revoked, 1);
    assert!(reset.generated_password.len() >= 20, "{reset:?}");
    assert_eq!(
        login(&url, "alice", PASSWORD, "laptop")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        alice
            .chat()
            .list_conversations(pb::ListConversationsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let laptop = login(&url, "alice", &reset.generated_password, "laptop")
        .await
        .unwrap();
    let phone = login(&url, "alice", &reset.generated_password, "phone")
        .await
        .unwrap();
    let too_short = admin
        .reset_password(pb::ResetPasswordRequest {
            user_id: "alice".into(),
            new_password: "short".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(too_short.code(), Code::InvalidArgument, "{too_short:?}");

    // Revoke one session by id: that device is out, the other is not.
    admin
        .revoke_sessions(pb::RevokeSessionsRequest {
            user_id: "alice".into(),
            session_ids: vec![phone.session_id.clone()],
        })
        .await
        .unwrap();
    let as_phone = User::from_session(&url, "alice", phone.token).await;
    let as_laptop = User::from_session(&url, "alice", laptop.token).await;
    assert_eq!(
        as_phone
            .chat()
            .list_conversations(pb::ListConversationsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    as_laptop
        .chat()
        .list_conversations(pb::ListConversationsRequest::default())
        .await
        .unwrap();
    let stranger = admin
        .revoke_sessions(pb::RevokeSessionsRequest {
            user_id: "bob".into(),
            session_ids: vec![laptop.session_id.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(
        stranger.code(),
        Code::NotFound,
        "another user's session is not bob's to lose: {stranger:?}"
    );

    // Transfer a group: bob, a member, becomes the owner; alice an admin,
    // and the members read it in the group.
    let group = as_laptop
        .create_group("Climbing", pb::JoinPolicy::Open)
        .await;
    bob.join(&group.group_id).await;
    let moved = admin
        .transfer_group(pb::TransferGroupRequest {
            group_id: group.group_id.clone(),
            new_owner_id: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.previous_owner_id, "alice");
    let members = bob
        .groups()
        .list_members(pb::ListMembersRequest {
            group_id: group.group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    let role = |who: &str| members.iter().find(|m| m.user_id == who).map(|m| m.role());
    assert_eq!(role("bob"), Some(pb::Role::Owner), "{members:?}");
    assert_eq!(role("alice"), Some(pb::Role::Admin), "{members:?}");
    let history = bob.history(&group.conversation_id).await;
    assert!(
        history.iter().any(|m| m
            .system
            .as_ref()
            .is_some_and(|s| s.kind() == pb::system_event::Kind::OwnershipTransferred)),
        "{history:?}"
    );
    let not_member = admin
        .transfer_group(pb::TransferGroupRequest {
            group_id: group.group_id.clone(),
            new_owner_id: "carol".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        not_member.code(),
        Code::FailedPrecondition,
        "{not_member:?}"
    );

    // Bad input: clear statuses, nothing changed.
    let nobody = admin
        .ban_user(pb::BanUserRequest {
            user_id: "nobody".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound, "{nobody:?}");
    let malformed = admin
        .ban_user(pb::BanUserRequest {
            user_id: "Not An Id!".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    let bad_page = admin
        .audit_log(pb::AuditLogRequest {
            before: "yesterday".into(),
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_page.code(), Code::InvalidArgument, "{bad_page:?}");

    // The audit log has every change, newest first, with who made it.
    let log = admin
        .audit_log(pb::AuditLogRequest {
            before: String::new(),
            limit: 3,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions =
        |entries: &[pb::AuditEntry]| entries.iter().map(|e| e.action.clone()).collect::<Vec<_>>();
    assert_eq!(
        actions(&log),
        ["TransferGroup", "RevokeSessions", "ResetPassword"]
    );
    assert!(log.iter().all(|e| e.admin == "e2e"), "{log:?}");
    assert_eq!(log[0].target, group.group_id);
    let older = admin
        .audit_log(pb::AuditLogRequest {
            before: log[2].id.clone(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(actions(&older), ["UnbanUser", "BanUser"]);
    assert!(older[1].detail.contains("spam"), "{older:?}");

    // The same from a terminal: `sb admin`, its JSON, and its refusal.
    let sb = crate::cli::Sb {
        server: admin_url.clone(),
        home: tempfile::tempdir().unwrap(),
    };
    let (found, newest, refused) = tokio::task::spawn_blocking(move || {
        (
            sb.json("ops", &["admin", "--token", ADMIN_SECRET, "find", "bo"]),
            sb.json(
                "ops",
                &["admin", "--token", ADMIN_SECRET, "audit", "--limit", "1"],
            ),
            sb.run(
                "ops",
                &[
                    "admin",
                    "--token",
                    "not-the-admin-secret-but-long-enough-0000",
                    "find",
                ],
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["user_id"], "bob");
    assert_eq!(newest[0]["action"], "TransferGroup", "{newest:?}");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("UNAUTHENTICATED"), "{stderr}");
}

/// The conversation of one side of a message: whose it is, whether its
/// text is still there.
fn said<'a>(history: &'a [pb::Message], sender: &str) -> Vec<&'a pb::Message> {
    history.iter().filter(|m| m.sender == sender).collect()
}

both_modes!(an_operator_deletes_users_and_groups, deletion);
async fn deletion(cluster: Cluster) {
    let url = cluster.gateway_url(0);
    let admin_url = cluster.admin_url();
    let mut admin = admin_with(&admin_url, ADMIN_SECRET).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    let carol = cluster.user("carol", 0).await;
    alice.add_contact(&bob).await;
    bob.add_contact(&alice).await;
    carol.add_contact(&alice).await;

    // Alice writes in a DM, in carol's group and in her own topic; she owns
    // a group with bob in it and one with nobody else.
    let dm = alice.dm(&bob, "alice's secret").await.conversation_id;
    bob.dm(&alice, "bob's answer").await;
    let club = carol.create_group("Book club", pb::JoinPolicy::Open).await;
    alice.join(&club.group_id).await;
    bob.join(&club.group_id).await;
    alice.post(&club.group_id, "alice in the club").await;
    bob.post(&club.group_id, "bob in the club").await;
    let shared = alice.create_group("Alice's", pb::JoinPolicy::Open).await;
    bob.join(&shared.group_id).await;
    let lonely = alice.create_group("Lonely", pb::JoinPolicy::Open).await;
    let topic = alice
        .topic_with_broadcast("News", &[&bob], "topic news")
        .await;

    // While she owns a group others are in, she cannot be deleted: the
    // answer names it, and nothing changed.
    let refused = admin
        .delete_user(pb::DeleteUserRequest {
            user_id: "alice".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains(&shared.group_id), "{refused:?}");
    login(&url, "alice", PASSWORD, "phone").await.unwrap();
    assert_eq!(
        said(&bob.history(&dm).await, "alice")[0].text,
        "alice's secret"
    );

    admin
        .transfer_group(pb::TransferGroupRequest {
            group_id: shared.group_id.clone(),
            new_owner_id: "bob".into(),
        })
        .await
        .unwrap();
    let mut alice_stream = alice.subscribe().await;
    let mut bob_stream = bob.subscribe().await;
    let done = admin
        .delete_user(pb::DeleteUserRequest {
            user_id: "alice".into(),
            reason: "erasure request".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.sessions_revoked, 2, "{done:?}");
    assert_eq!((done.groups_left, done.groups_deleted), (2, 1), "{done:?}");
    assert_eq!((done.topics_deleted, done.topics_left), (1, 0), "{done:?}");
    assert_eq!(done.contacts_removed, 3, "{done:?}");
    // The DM, the club post and the topic copy; system messages are nobody's.
    assert_eq!(done.messages_erased, 3, "{done:?}");
    alice_stream.wait_closed().await;

    // What the others read: her messages are tombstones, theirs untouched.
    for (conversation, theirs) in [
        (dm.as_str(), "bob's answer"),
        (club.conversation_id.as_str(), "bob in the club"),
    ] {
        let history = bob.history(conversation).await;
        let hers: Vec<_> = said(&history, "alice")
            .into_iter()
            .filter(|m| m.system.is_none())
            .collect();
        assert_eq!(hers.len(), 1, "{history:?}");
        assert!(hers[0].deleted && hers[0].text.is_empty(), "{hers:?}");
        assert_eq!(said(&history, "bob")[0].text, theirs);
        assert!(!said(&history, "bob")[0].deleted);
    }
    let club_history = bob.history(&club.conversation_id).await;
    assert!(
        club_history
            .iter()
            .any(|m| m.system.as_ref().is_some_and(|s| {
                s.kind() == pb::system_event::Kind::MemberLeft && s.user_id == "alice"
            })),
        "{club_history:?}"
    );
    let thread = format!("t:{}:bob", topic.topic_id);
    let copy = bob.history(&thread).await;
    assert!(
        copy.iter()
            .any(|m| m.sender == "alice" && m.deleted && m.text.is_empty()),
        "{copy:?}"
    );
    // Her topic is over; she is in none of bob's lists any more.
    bob_stream
        .until(|e| match &e.kind {
            Some(pb::event::Kind::Message(m))
                if m.conversation_id == thread && m.system.is_some() =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    let contacts = bob
        .contacts()
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        contacts
            .contacts
            .iter()
            .chain(&contacts.requests)
            .all(|c| c.user_id != "alice"),
        "{contacts:?}"
    );
    let members = bob
        .groups()
        .list_members(pb::ListMembersRequest {
            group_id: shared.group_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    assert!(members.iter().all(|m| m.user_id != "alice"), "{members:?}");

    // Nobody logs in as her, and her id cannot be registered again.
    let gone = login(&url, "alice", PASSWORD, "laptop").await.unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated, "{gone:?}");
    let taken = pb::account_service_client::AccountServiceClient::new(channel(&url).await)
        .register(pb::RegisterRequest {
            user_id: "alice".into(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    let found = admin
        .find_users(pb::FindUsersRequest {
            prefix: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(
        found[0].deleted && found[0].display_name.is_empty(),
        "{found:?}"
    );
    let unban = admin
        .unban_user(pb::UnbanUserRequest {
            user_id: "alice".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unban.code(), Code::FailedPrecondition, "{unban:?}");
    // Asking again finds nothing left to do.
    let again = admin
        .delete_user(pb::DeleteUserRequest {
            user_id: "alice".into(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, pb::DeleteUserResponse::default());
    let lonely_gone = carol
        .chat()
        .history(pb::HistoryRequest {
            conversation_id: lonely.conversation_id.clone(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_ne!(lonely_gone.code(), Code::Ok);

    // Delete carol's club: bob's open stream hears it is gone, it leaves
    // every list, its history cannot be read and nobody can post there.
    let deleted = admin
        .delete_group(pb::DeleteGroupRequest {
            group_id: club.group_id.clone(),
            reason: "abuse".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.members_removed, 2, "{deleted:?}");
    assert!(deleted.messages_erased >= 5, "{deleted:?}");
    bob_stream.until_removed(&club.conversation_id).await;
    let groups = bob
        .groups()
        .list_my_groups(pb::ListMyGroupsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert!(
        groups.iter().all(|g| g.group_id != club.group_id),
        "{groups:?}"
    );
    let unread = bob
        .chat()
        .history(pb::HistoryRequest {
            conversation_id: club.conversation_id.clone(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_ne!(unread.code(), Code::Ok);
    let post = carol
        .send(
            pb::send_request::To::GroupId(club.group_id.clone()),
            "anyone?",
            "",
        )
        .await
        .unwrap_err();
    assert_ne!(post.code(), Code::Ok);
    // Asking again finds it done; a group that never was is not found.
    let twice = admin
        .delete_group(pb::DeleteGroupRequest {
            group_id: club.group_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(twice, pb::DeleteGroupResponse::default());
    let never = admin
        .delete_group(pb::DeleteGroupRequest {
            group_id: "gnosuchgroup1".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(never.code(), Code::NotFound, "{never:?}");
    let log = admin
        .audit_log(pb::AuditLogRequest {
            before: String::new(),
            limit: 4,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["DeleteGroup", "DeleteGroup", "DeleteUser", "DeleteUser"],
        "{log:?}"
    );
    assert!(log[3].detail.contains("erasure request"), "{log:?}");

    // From a terminal: refused without --yes, done with it.
    let last = bob.create_group("Last", pb::JoinPolicy::Open).await;
    let sb = crate::cli::Sb {
        server: admin_url.clone(),
        home: tempfile::tempdir().unwrap(),
    };
    let id = last.group_id.clone();
    let (unconfirmed, confirmed) = tokio::task::spawn_blocking(move || {
        let base = [
            "admin",
            "--token",
            ADMIN_SECRET,
            "delete-group",
            id.as_str(),
        ];
        let mut yes = base.to_vec();
        yes.push("--yes");
        (sb.run("ops", &base), sb.json("ops", &yes))
    })
    .await
    .unwrap();
    assert!(!unconfirmed.status.success());
    let stderr = String::from_utf8_lossy(&unconfirmed.stderr);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(confirmed[0]["members_removed"], 1, "{confirmed:?}");
}
