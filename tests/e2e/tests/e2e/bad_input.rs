//! Bad input gets a clear status and a human message, and changes nothing.

use switchboard_proto::pb::{self, send_request::To};
use switchboard_shared::clock::now_ms;
use switchboard_shared::ids::{DeviceId, SessionId, UserId};
use switchboard_shared::token::{Claims, TokenKey};
use tonic::{Code, Request};
use tonic_types::StatusExt as _;

use crate::both_modes;
use crate::harness::client::{PASSWORD, channel};
use crate::harness::{Cluster, Mode, User, raw};

fn assert_status(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, words: &str) {
    let status = result.expect_err("the request should be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().to_lowercase().contains(words),
        "message {:?} should mention {words:?}",
        status.message()
    );
}

both_modes!(bad_messages_are_refused_and_change_nothing, bad_messages);
async fn bad_messages(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let group = bob.create_group("Private", pb::JoinPolicy::Open).await;
    let to_bob = || To::UserId("bob".into());

    assert_status(
        alice.send(to_bob(), "", "").await,
        Code::InvalidArgument,
        "empty",
    );
    assert_status(
        alice.send(to_bob(), "   \n", "").await,
        Code::InvalidArgument,
        "empty",
    );
    let oversized = "x".repeat(16 * 1024 + 1);
    assert_status(
        alice.send(to_bob(), &oversized, "").await,
        Code::ResourceExhausted,
        "limit is 16384",
    );
    // Past the gateway's request limit (refused before it reaches a
    // router), and past what the transport reads at all: both too large,
    // neither worth retrying as is (no RetryInfo).
    for size in [200 * 1024, 300 * 1024] {
        let huge = "y".repeat(size);
        let status = alice.send(to_bob(), &huge, "").await.unwrap_err();
        assert!(
            status.get_details_retry_info().is_none(),
            "{size}: {status:?}"
        );
        assert_status(Err::<(), _>(status), Code::ResourceExhausted, "too large");
    }
    assert_status(
        alice.send(To::UserId("nobody".into()), "hi", "").await,
        Code::NotFound,
        "no user nobody",
    );
    assert_status(
        alice.send(To::UserId("alice".into()), "hi", "").await,
        Code::InvalidArgument,
        "yourself",
    );
    assert_status(
        alice.send(To::UserId("Not A User!".into()), "hi", "").await,
        Code::InvalidArgument,
        "not valid",
    );
    assert_status(
        alice
            .send(To::GroupId("gnosuchgroup1".into()), "hi", "")
            .await,
        Code::NotFound,
        "no group",
    );
    assert_status(
        alice
            .send(To::GroupId(group.group_id.clone()), "hi", "")
            .await,
        Code::PermissionDenied,
        "not a member",
    );
    assert_status(
        alice
            .send(To::ConversationId("dm:bob:carol".into()), "hi", "")
            .await,
        Code::PermissionDenied,
        "not your conversation",
    );
    assert_status(
        alice
            .send(To::ConversationId("nonsense".into()), "hi", "")
            .await,
        Code::InvalidArgument,
        "conversation id",
    );
    assert_status(
        alice.chat().send(pb::SendRequest::default()).await,
        Code::InvalidArgument,
        "where to send",
    );
    assert_status(
        alice
            .chat()
            .history(pb::HistoryRequest {
                conversation_id: group.conversation_id.clone(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "not a member",
    );

    // Nothing of that was stored anywhere.
    let listed = bob
        .chat()
        .list_conversations(pb::ListConversationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let heads: Vec<(String, u64)> = listed
        .conversations
        .iter()
        .map(|c| (c.conversation_id.clone(), c.head_seq))
        .collect();
    assert_eq!(
        heads,
        [(group.conversation_id.clone(), 1)],
        "only the group's creation"
    );
}

both_modes!(accounts_refuse_bad_credentials, bad_credentials);
async fn bad_credentials(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let mut anonymous = pb::account_service_client::AccountServiceClient::new(
        channel(&cluster.gateway_url(1)).await,
    );
    assert_status(
        anonymous
            .register(pb::RegisterRequest {
                user_id: "alice".into(),
                password: PASSWORD.into(),
                display_name: String::new(),
            })
            .await,
        Code::AlreadyExists,
        "taken",
    );
    assert_status(
        anonymous
            .register(pb::RegisterRequest {
                user_id: "carol".into(),
                password: "short".into(),
                display_name: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "password",
    );
    for (user, password) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        assert_status(
            anonymous
                .login(pb::LoginRequest {
                    user_id: user.into(),
                    password: password.into(),
                    device_id: String::new(),
                })
                .await,
            Code::Unauthenticated,
            "wrong user id or password",
        );
    }

    // Calls without a token, with a forged one, or a malformed header.
    let mut chat =
        pb::chat_service_client::ChatServiceClient::new(channel(&cluster.gateway_url(0)).await);
    assert_status(
        chat.list_conversations(pb::ListConversationsRequest {})
            .await,
        Code::Unauthenticated,
        "log in",
    );
    let mut parts: Vec<String> = alice.token.split('.').map(str::to_owned).collect();
    parts[2] = "AAAA".into();
    for header in [
        format!("Bearer {}", parts.join(".")),
        "Bearer x.y.z".into(),
        "Basic abc".into(),
    ] {
        let mut request = Request::new(pb::ListConversationsRequest {});
        request
            .metadata_mut()
            .insert("authorization", header.parse().unwrap());
        assert_status(
            chat.list_conversations(request).await,
            Code::Unauthenticated,
            "",
        );
    }
}

both_modes!(expired_tokens_are_refused, expired_token);
async fn expired_token(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    // A correctly signed token whose time is up (the distributed cluster's key;
    // the standalone mode keeps its own, so there the signature is wrong too).
    let key = TokenKey::new(crate::harness::cluster::SECRET.as_bytes().to_vec()).unwrap();
    let claims = key.verify(&alice.token, 0).unwrap_or_else(|_| Claims {
        user: UserId::parse("alice").unwrap(),
        session: SessionId::generate(),
        device: DeviceId::parse("laptop").unwrap(),
        expires_at_ms: 0,
    });
    let expired = key.sign(&Claims {
        expires_at_ms: now_ms() - 1,
        ..claims
    });
    let mut request = Request::new(pb::ListConversationsRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {expired}").parse().unwrap(),
    );
    let words = if cluster.is_distributed() {
        "expired"
    } else {
        ""
    };
    // A bare client: the test user's own client would add its valid token.
    let mut bare = pb::chat_service_client::ChatServiceClient::new(channel(&alice.url).await);
    assert_status(
        bare.list_conversations(request).await,
        Code::Unauthenticated,
        words,
    );
}

both_modes!(
    the_sender_is_who_authenticated_never_the_payload,
    sender_claims
);
async fn sender_claims(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let carol = cluster.user("carol", 1).await;
    // Writing into someone else's conversation is refused...
    assert_status(
        alice
            .send(To::ConversationId("dm:bob:carol".into()), "I am bob", "")
            .await,
        Code::PermissionDenied,
        "not your conversation",
    );
    // ...and a sender smuggled into the request (an unknown field 15 holding
    // "bob"), sent as raw bytes so the server really sees it, is ignored:
    // the message is alice's.
    let mut bytes = prost::Message::encode_to_vec(&pb::SendRequest {
        to: Some(To::UserId("carol".into())),
        client_msg_id: "smuggled".into(),
        text: "really from bob".into(),
        reply_to: String::new(),
    });
    bytes.extend([0x7a, 3, b'b', b'o', b'b']);
    raw::unary(&alice.url, SEND, Some(&alice.token), bytes)
        .await
        .unwrap();
    let stored = carol.history("dm:alice:carol").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].sender, "alice");
    assert_eq!(stored[0].text, "really from bob");
    assert!(bob.history("dm:bob:carol").await.is_empty());
}

const SEND: &str = "/switchboard.v1.ChatService/Send";

both_modes!(
    malformed_request_bodies_are_invalid_argument,
    malformed_bodies
);
async fn malformed_bodies(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let port = cluster.gateways[0].port;
    // A truncated varint, and a text field that is not UTF-8.
    let truncated = vec![0x0a, 0xff, 0xff];
    let not_utf8 = vec![0x2a, 2, 0xc3, 0x28];
    for body in [truncated, not_utf8] {
        let status = raw::unary(&alice.url, SEND, Some(&alice.token), body.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("SendRequest"), "{status:?}");
        let web = raw::grpc_web(port, SEND, Some(&alice.token), &body).await;
        assert_eq!(web.code, Code::InvalidArgument, "{web:?}");
        assert!(web.message.contains("SendRequest"), "{web:?}");
    }
    // Unauthenticated calls are refused for that first, whatever the body.
    let status = raw::unary(&alice.url, SEND, None, vec![0x0a, 0xff])
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::Unauthenticated | Code::InvalidArgument),
        "{status:?}"
    );
    // Nothing was stored.
    assert!(
        alice
            .chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .unwrap()
            .into_inner()
            .conversations
            .is_empty()
    );
}

both_modes!(unknown_methods_are_unimplemented, unknown_methods);
async fn unknown_methods(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let port = cluster.gateways[0].port;
    for path in [
        "/switchboard.v1.NoSuchService/Call",
        "/switchboard.v1.ChatService/NoSuchMethod",
        "/grpc.health.v1.Health/NoSuchMethod",
    ] {
        let status = raw::unary(&alice.url, path, Some(&alice.token), Vec::new())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
        let web = raw::grpc_web(port, path, Some(&alice.token), &[]).await;
        assert_eq!(web.http_status, 200, "{path}: {web:?}");
        assert_eq!(web.code, Code::Unimplemented, "{path}: {web:?}");
    }
    // The page is still served to browsers.
    let page = raw::http_get(port, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
}

/// The services a reflection server lists, asked in one protocol version.
macro_rules! list_services {
    ($version:ident, $url:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new(channel($url).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                names.sort();
                names
            }
            other => panic!("{other:?}"),
        }
    }};
}

/// The services reflection describes besides itself, the same in v1 and
/// v1alpha (clients speak either; each version lists its own service).
async fn listed_services(url: &str) -> Vec<String> {
    let v1 = list_services!(v1, url);
    let v1alpha = list_services!(v1alpha, url);
    assert!(
        v1.contains(&"grpc.reflection.v1.ServerReflection".to_owned()),
        "{v1:?}"
    );
    let served = |listed: Vec<String>| -> Vec<String> {
        listed
            .into_iter()
            .filter(|s| !s.starts_with("grpc.reflection."))
            .collect()
    };
    let (v1, v1alpha) = (served(v1), served(v1alpha));
    assert_eq!(v1, v1alpha, "{url}");
    v1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_in_both_versions_and_only_for_what_is_served() {
    let cluster = Cluster::start(Mode::distributed()).await;
    let gateway = listed_services(&cluster.gateway_url(0)).await;
    for service in [
        "switchboard.v1.AccountService",
        "switchboard.v1.ChatService",
        "switchboard.v1.TopicService",
        "grpc.health.v1.Health",
    ] {
        assert!(gateway.contains(&service.to_owned()), "{gateway:?}");
    }
    assert!(
        !gateway.iter().any(|s| s.contains("internal")),
        "bus messages are not an API: {gateway:?}"
    );
    assert!(
        !gateway.iter().any(|s| s.contains("AdminService")),
        "a gateway does not serve the admin API: {gateway:?}"
    );
    // Presence's health port describes health only; a router's health and,
    // with admin credentials configured (the harness sets some), the admin API.
    let presence = cluster.presence.as_ref().unwrap().port;
    let listed = listed_services(&format!("http://127.0.0.1:{presence}")).await;
    assert_eq!(listed, ["grpc.health.v1.Health"]);
    let router = cluster.routers[0].port;
    let listed = listed_services(&format!("http://127.0.0.1:{router}")).await;
    assert_eq!(
        listed,
        ["grpc.health.v1.Health", "switchboard.v1.AdminService"]
    );
}

both_modes!(errors_do_not_echo_long_input, long_input);
async fn long_input(cluster: Cluster) {
    cluster.user("alice", 0).await;
    let mut anonymous = pb::account_service_client::AccountServiceClient::new(
        channel(&cluster.gateway_url(0)).await,
    );
    let device = "d".repeat(500);
    let status = anonymous
        .login(pb::LoginRequest {
            user_id: "alice".into(),
            password: PASSWORD.into(),
            device_id: device.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("device id"), "{status:?}");
    assert!(status.message().len() < 200, "{status:?}");
    let status = anonymous
        .register(pb::RegisterRequest {
            user_id: "u".repeat(10_000),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().len() < 200, "{status:?}");
}

both_modes!(a_session_acts_only_for_its_own_user, session_binding);
async fn session_binding(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let key = cluster.token_key();
    let real = key.verify(&alice.token, now_ms()).unwrap();
    // Correctly signed tokens that carry alice's live session id, but
    // another user (or another device of hers).
    for (user, device) in [("bob", "laptop"), ("alice", "phone")] {
        let forged = key.sign(&Claims {
            user: UserId::parse(user).unwrap(),
            device: DeviceId::parse(device).unwrap(),
            ..real.clone()
        });
        let status = raw::unary(
            &alice.url,
            "/switchboard.v1.ChatService/ListConversations",
            Some(&forged),
            Vec::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{user}/{device}: {status:?}"
        );
        let send = prost::Message::encode_to_vec(&pb::SendRequest {
            to: Some(To::UserId("carol".into())),
            client_msg_id: format!("forged-{user}-{device}"),
            text: "not mine to send".into(),
            reply_to: String::new(),
        });
        let status = raw::unary(&alice.url, SEND, Some(&forged), send)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{user}/{device}: {status:?}"
        );
    }
    // Nothing was sent in anyone's name; the real sessions still work.
    for user in [&alice, &bob] {
        let listed = user
            .chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(listed.conversations.is_empty(), "{listed:?}");
    }
}

both_modes!(a_stream_ends_when_its_token_expires, stream_expiry);
async fn stream_expiry(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let key = cluster.token_key();
    let real = key.verify(&alice.token, now_ms()).unwrap();
    let short = key.sign(&Claims {
        expires_at_ms: now_ms() + 1_500,
        ..real
    });
    let brief = alice.with_token(short);
    let mut events = brief.subscribe().await;
    // Heartbeats keep coming while it is open: bound the whole wait.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), events.wait_closed())
        .await
        .expect("the stream ends at expiry, not at some later check")
        .expect("the stream ends with a status");
    assert_eq!(closed.code(), Code::Unauthenticated, "{closed:?}");
    assert!(closed.message().contains("expired"), "{closed:?}");
}

both_modes!(a_logged_out_session_is_refused, logout);
async fn logout(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let other_device = alice.another_device(&cluster, 1, "phone").await;
    let mut events = alice.subscribe().await;
    alice.accounts().logout(pb::LogoutRequest {}).await.unwrap();
    let closed = events
        .wait_closed()
        .await
        .expect("the stream ends with a status");
    assert_eq!(closed.code(), Code::Unauthenticated);
    assert_status(
        alice
            .chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await,
        Code::Unauthenticated,
        "log in again",
    );
    // Other devices keep their own sessions.
    assert!(
        other_device
            .chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .is_ok()
    );
    let again = User::login(&cluster.gateway_url(0), "alice", "laptop").await;
    assert!(
        again
            .chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .is_ok()
    );
}
