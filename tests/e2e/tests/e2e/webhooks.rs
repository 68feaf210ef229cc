//! Webhooks to an app's backend: a new message for a user with no device
//! online is POSTed, signed, to a receiver the test runs; retried when the
//! receiver fails or hangs, given up when it refuses, bounded when it
//! cannot keep up, and never in the way of a send.

use switchboard_proto::pb::{self, send_request::To};
use switchboard_testkit::eventually;

use crate::harness::raw::sample;
use crate::harness::webhook_receiver::{Receiver, secret, with_header};
use crate::harness::{Cluster, Mode, Options, User, WAIT};

const KEY: &[u8] = b"switchboard e2e webhook key, 32b";

fn options(receiver: &Receiver, extra: &[&str]) -> Options {
    let mut router_args: Vec<String> = [
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-secret",
        &secret(KEY),
        "--webhook-retry-ms",
        "50",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    router_args.extend(extra.iter().map(|a| (*a).to_owned()));
    Options {
        router_args,
        metrics: true,
        ..Options::default()
    }
}

/// (user, reason, text) of each webhook taken, sorted.
fn told(receiver: &Receiver) -> Vec<(String, String, String)> {
    let mut told: Vec<_> = receiver
        .taken()
        .into_iter()
        .map(|t| {
            let data = &t.body["data"];
            let field = |name: &str| data[name].as_str().unwrap_or_default().to_owned();
            (field("user_id"), field("reason"), field("text"))
        })
        .collect();
    told.sort();
    told
}

fn row(user: &str, reason: &str, text: &str) -> (String, String, String) {
    (user.into(), reason.into(), text.into())
}

mod offline_users_are_told_by_webhook {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_redis() {
        let receiver = Receiver::start(KEY).await;
        let cluster = Cluster::start_with(Mode::distributed(), options(&receiver, &[])).await;
        super::waking(cluster, receiver).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        let receiver = Receiver::start(KEY).await;
        let cluster = Cluster::start_with(Mode::Standalone, options(&receiver, &[])).await;
        super::waking(cluster, receiver).await;
    }
}

async fn mute(user: &User, conversation: &str) {
    user.chat()
        .mute_conversation(pb::MuteConversationRequest {
            conversation_id: conversation.into(),
            muted: true,
        })
        .await
        .unwrap_or_else(|s| panic!("{} mutes {conversation}: {s}", user.id));
}

async fn waking(cluster: Cluster, receiver: Receiver) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let carol = cluster.user("carol", 0).await;
    let dave = cluster.user("dave", 1).await;
    // Contacts both ways: a topic binds only mutual contacts.
    alice.add_contact(&bob).await;
    bob.add_contact(&alice).await;
    bob.add_contact(&carol).await;
    carol.add_contact(&alice).await;
    let mut alice_events = alice.subscribe().await;

    // bob has no device online: alice's message is POSTed, signed, with
    // the message as stored.
    let sent = alice.dm(&bob, "are you there").await;
    let taken = receiver.until_taken("are you there").await;
    assert_eq!(taken.id, format!("{}:bob", sent.message_id));
    assert_eq!(taken.body["type"], "message.offline");
    let data = &taken.body["data"];
    assert_eq!(data["user_id"], "bob");
    assert_eq!(data["reason"], "direct");
    assert_eq!(data["sender"], "alice");
    assert_eq!(data["conversation_id"], sent.conversation_id);
    assert_eq!(data["seq"], sent.seq);
    assert_eq!(data["sent_at_ms"], sent.sent_at_ms);

    // A stranger's message is a request: nobody is woken for it. A muted
    // conversation wakes nobody either.
    dave.dm(&bob, "cheap watches").await;
    let carol_dm = carol.dm(&bob, "first").await;
    mute(&bob, &carol_dm.conversation_id).await;
    carol.dm(&bob, "muted chatter").await;

    // In a group only a mention wakes, even in a muted group.
    let group = alice.create_group("Crew", pb::JoinPolicy::Open).await;
    bob.join(&group.group_id).await;
    carol.join(&group.group_id).await;
    alice.post(&group.group_id, "plain news").await;
    mute(&bob, &format!("g:{}", group.group_id)).await;
    alice.post(&group.group_id, "@bob urgent").await;

    // A topic's broadcast wakes its offline contact; a reply to an owner
    // who is online wakes nobody.
    let topic = alice
        .topic_with_broadcast("Launch", &[&bob], "launch at noon")
        .await;
    let launch = receiver.until_taken("launch at noon").await;
    assert_eq!(launch.body["data"]["reason"], "topic");
    assert_eq!(launch.body["data"]["topic_name"], "Launch");
    assert_eq!(launch.body["data"]["topic_id"], topic.topic_id);
    bob.send(
        To::ConversationId(format!("t:{}:bob", topic.topic_id)),
        "see you then",
        "",
    )
    .await
    .unwrap();
    alice_events.messages_until("see you then").await;

    // Online now: bob gets it on his stream, not by webhook.
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "now you are here").await;
    bob_events.messages_until("now you are here").await;

    // carol is offline: her webhook comes after all of the above were
    // decided, and nothing else was told.
    alice.dm(&carol, "marker").await;
    receiver.until_taken("marker").await;
    assert_eq!(
        told(&receiver),
        vec![
            row("bob", "direct", "are you there"),
            row("bob", "direct", "first"),
            row("bob", "mention", "@bob urgent"),
            row("bob", "topic", "launch at noon"),
            row("carol", "direct", "marker"),
        ]
    );
    assert!(
        receiver.attempts().iter().all(|a| a.status == 200),
        "every request verified: {:?}",
        receiver
            .attempts()
            .iter()
            .map(|a| (&a.id, a.status))
            .collect::<Vec<_>>()
    );
}

/// The router's webhook counter for `outcome`.
async fn counted(cluster: &Cluster, outcome: &str) -> f64 {
    let port = cluster.routers[0].metrics_port.unwrap();
    let metrics = crate::harness::raw::http_get(port, "/metrics").await;
    sample(
        &metrics,
        &format!(
            "switchboard_router_notifications_total{{channel=\"webhook\",outcome=\"{outcome}\"}}"
        ),
    )
    .unwrap_or(0.0)
}

async fn until_counted(cluster: &Cluster, outcome: &str, count: f64) {
    eventually(WAIT, &format!("{count} webhooks {outcome}"), || async {
        (counted(cluster, outcome).await == count).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_retried_refused_and_bounded() {
    let receiver = Receiver::start(KEY).await;
    let one_router = Mode::Distributed {
        gateways: 1,
        routers: 1,
    };
    let options = options(
        &receiver,
        &[
            "--webhook-queue",
            "3",
            "--webhook-concurrency",
            "1",
            "--webhook-timeout-ms",
            "300",
        ],
    );
    let cluster = Cluster::start_with(one_router, options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    bob.add_contact(&alice).await;

    // A failing receiver: the same webhook again, signed anew each time,
    // until it is taken.
    receiver.fail_next(2, 503);
    let sent = alice.dm(&bob, "flaky").await;
    let taken = receiver.until_taken("flaky").await;
    assert_eq!(receiver.attempts_of(&taken.id), [503, 503, 200]);
    assert_eq!(taken.id, format!("{}:bob", sent.message_id));

    // A receiver that hangs: the send is answered all the same, the POST
    // times out and is tried again.
    receiver.hold();
    alice.dm(&bob, "slow").await;
    eventually(WAIT, "a second attempt after a timeout", || async {
        (counted(&cluster, "retried").await >= 3.0).then_some(())
    })
    .await;
    receiver.release();
    let slow = receiver.until_taken("slow").await;
    // Its router may still be between attempts: wait for its answer.
    until_counted(&cluster, "delivered", 2.0).await;
    assert_eq!(
        receiver.taken().iter().filter(|t| t.id == slow.id).count(),
        1,
        "taken once however often it came"
    );

    // A receiver that refuses the signature (it expects another key): given
    // up at once, never retried.
    receiver.expect_key(b"another key that is not the one!");
    let refused = alice.dm(&bob, "forged?").await;
    until_counted(&cluster, "refused", 1.0).await;
    assert_eq!(
        receiver.attempts_of(&format!("{}:bob", refused.message_id)),
        [401]
    );
    receiver.expect_key(KEY);

    // A captured request replayed: taken once only; with a new timestamp
    // or another body, its signature no longer holds.
    let captured = receiver
        .attempts()
        .into_iter()
        .find(|a| a.id == taken.id && a.status == 200)
        .unwrap();
    assert_eq!(receiver.replay(&captured.raw).await, 200);
    assert_eq!(
        receiver.taken().iter().filter(|t| t.id == taken.id).count(),
        1
    );
    let now = switchboard_shared::clock::now_ms() / 1000 + 1;
    let restamped = with_header(&captured.raw, "webhook-timestamp", &now.to_string());
    assert_eq!(receiver.replay(&restamped).await, 401);
    let text = String::from_utf8(captured.raw.clone()).unwrap();
    let altered = text.replace("flaky", "FLAKY").into_bytes();
    assert_eq!(receiver.replay(&altered).await, 401);

    // A receiver that cannot keep up: three webhooks wait, the rest are
    // dropped and counted, and every send is answered meanwhile.
    receiver.hold();
    for i in 0..8 {
        alice.dm(&bob, &format!("burst {i}")).await;
    }
    until_counted(&cluster, "dropped", 5.0).await;
    receiver.release();
    eventually(WAIT, "the three queued webhooks taken", || async {
        let burst = told(&receiver)
            .into_iter()
            .filter(|(_, _, text)| text.starts_with("burst"))
            .count();
        (burst == 3).then_some(())
    })
    .await;
    until_counted(&cluster, "delivered", 5.0).await;
    assert_eq!(counted(&cluster, "dropped").await, 5.0);
}
