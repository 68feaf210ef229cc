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
