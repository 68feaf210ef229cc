//! Web Push: a user with no device online is pushed their new messages,
//! encrypted for each browser they subscribed (RFC 8291) and signed with the
//! deployment's VAPID key (RFC 8292), through a push service the test runs
//! that decrypts and checks each push as a browser and a push service would.

use switchboard_proto::pb;
use switchboard_testkit::eventually;
use tonic::Code;

use crate::harness::push_service::{PushService, Subscription, vapid_key_pem};
use crate::harness::{Cluster, Mode, Options, User, WAIT};

fn options(dir: &std::path::Path, service: &PushService) -> Options {
    let pem = dir.join("vapid.pem");
    std::fs::write(&pem, vapid_key_pem()).unwrap();
    Options {
        router_args: vec![
            "--vapid-private-key".into(),
            pem.display().to_string(),
            "--vapid-subject".into(),
            "mailto:ops@switchboard.test".into(),
            "--push-services".into(),
            service.address.clone(),
        ],
        ..Options::default()
    }
}

mod offline_users_are_pushed_their_messages {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_redis() {
        let dir = tempfile::tempdir().unwrap();
        let service = PushService::start().await;
        let cluster = Cluster::start_with(Mode::distributed(), options(dir.path(), &service)).await;
        super::pushing(cluster, service).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        let dir = tempfile::tempdir().unwrap();
        let service = PushService::start().await;
        let cluster = Cluster::start_with(Mode::Standalone, options(dir.path(), &service)).await;
        super::pushing(cluster, service).await;
    }
}

async fn subscribe(
    user: &User,
    subscription: &Subscription,
    previews: bool,
) -> Result<(), tonic::Status> {
    user.accounts()
        .set_push_subscription(pb::SetPushSubscriptionRequest {
            endpoint: subscription.endpoint.clone(),
            p256dh: subscription.p256dh.clone(),
            auth: subscription.auth.clone(),
            previews,
            remove: false,
        })
        .await
        .map(|_| ())
}

async fn until_pushed(service: &PushService, device: &str, count: usize) -> Vec<serde_json::Value> {
    eventually(WAIT, &format!("{count} pushes to {device}"), || async {
        let pushes = service.pushes_to(device);
        (pushes.len() >= count).then(|| pushes.into_iter().map(|p| p.notice).collect())
    })
    .await
}

async fn pushing(cluster: Cluster, service: PushService) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let bob_phone = bob.another_device(&cluster, 0, "phone").await;
    let carol = cluster.user("carol", 0).await;
    bob.add_contact(&alice).await;
    carol.add_contact(&alice).await;
    let _alice_online = alice.subscribe().await;

    let key = bob
        .accounts()
        .get_push_key(pb::GetPushKeyRequest {})
        .await
        .unwrap()
        .into_inner()
        .vapid_public_key;
    service.expect_vapid_key(&key);

    // Bad subscriptions are refused with the reason and kept nowhere.
    let laptop = service.subscribe("bob-laptop");
    for (bad, why) in [
        (
            Subscription {
                endpoint: "https://intranet.example/admin".into(),
                ..service.subscribe("stray")
            },
            "not a push service",
        ),
        (
            Subscription {
                p256dh: "bm90IGEga2V5".into(),
                ..service.subscribe("stray")
            },
            "p256dh",
        ),
        (
            Subscription {
                auth: "c2hvcnQ".into(),
                ..service.subscribe("stray")
            },
            "16 bytes",
        ),
    ] {
        let status = subscribe(&bob, &bad, true).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(why), "{status:?}");
    }

    // Two browsers: the laptop without previews, the phone with them.
    subscribe(&bob, &laptop, false).await.unwrap();
    let phone = service.subscribe("bob-phone");
    subscribe(&bob_phone, &phone, true).await.unwrap();
    let carol_browser = service.subscribe("carol");
    subscribe(&carol, &carol_browser, false).await.unwrap();

    let sent = alice.dm(&bob, "lunch at one?").await;
    let on_laptop = until_pushed(&service, "bob-laptop", 1).await;
    let on_phone = until_pushed(&service, "bob-phone", 1).await;
    assert_eq!(on_laptop[0]["conversation_id"], sent.conversation_id);
    assert_eq!(on_laptop[0]["message_id"], sent.message_id);
    assert_eq!(on_laptop[0]["sender"], "alice");
    assert_eq!(on_laptop[0]["reason"], "direct");
    assert!(
        on_laptop[0].get("text").is_none(),
        "no preview: {}",
        on_laptop[0]
    );
    assert_eq!(on_phone[0]["text"], "lunch at one?");
    assert!(
        service
            .pushes()
            .iter()
            .all(|p| p.status == 201 && p.ttl == "86400"),
        "every push signed, encrypted and taken: {:?}",
        service.pushes()
    );
    assert!(service.pushes_to("stray").is_empty());

    // The phone logs out: its subscription ends with its session.
    bob_phone
        .accounts()
        .logout(pb::LogoutRequest {})
        .await
        .unwrap();
    alice.dm(&bob, "second").await;
    until_pushed(&service, "bob-laptop", 2).await;

    // The push service forgets the laptop (410): so does Switchboard.
    service.forget("bob-laptop");
    alice.dm(&bob, "third").await;
    until_pushed(&service, "bob-laptop", 3).await;
    alice.dm(&bob, "fourth").await;

    // Online now: nothing is pushed.
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "you are here").await;
    bob_events.messages_until("you are here").await;

    // carol's push comes after all of the above were decided.
    alice.dm(&carol, "marker").await;
    until_pushed(&service, "carol", 1).await;
    assert_eq!(
        service.pushes_to("bob-phone").len(),
        1,
        "none after the logout"
    );
    let laptop_statuses: Vec<u16> = service
        .pushes_to("bob-laptop")
        .iter()
        .map(|p| p.status)
        .collect();
    assert_eq!(laptop_statuses, [201, 201, 410], "none after the 410");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_vapid_key_web_push_is_off() {
    let cluster = Cluster::start(Mode::Standalone).await;
    let alice = cluster.user("alice", 0).await;
    let status = alice
        .accounts()
        .get_push_key(pb::GetPushKeyRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("SB_VAPID_PRIVATE_KEY"),
        "{status:?}"
    );
}
