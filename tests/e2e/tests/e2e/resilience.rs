//! Crashes: a router, a gateway, Redis, the standalone process. An
//! acknowledged message is never lost and never delivered twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use switchboard_proto::pb::{self, event::Kind, send_request::To};
use switchboard_testkit::eventually;
use tonic::Code;

use crate::harness::client::{seqs, texts};
use crate::harness::{Cluster, Mode, Options, User, WAIT, figure};

/// Sends `text` until the server acknowledges it, retrying with the same
/// client message id as a client does after an error.
async fn send_until_acked(user: &User, to: &str, text: &str) -> pb::SendResponse {
    let id = format!("id-{}", text.replace(' ', "-"));
    for _ in 0..20 {
        match user.send(To::UserId(to.into()), text, &id).await {
            Ok(ack) => return ack,
            Err(status) => assert!(
                matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Unknown
                ),
                "unexpected refusal: {status}"
            ),
        }
    }
    panic!("{text} was never acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_stream_loses_no_acknowledged_message() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;

    let total = 120;
    let sender = {
        let alice = alice.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..total {
                acked.push(send_until_acked(&alice, "bob", &format!("m{i:03}")).await);
            }
            acked
        })
    };
    // Kill a router once the stream is well under way.
    let mut received = bob_events.messages_until("m030").await;
    cluster.routers[0].kill();
    let acked = sender.await.unwrap();

    assert_acked_once_and_kept(&alice, &acked, total).await;
    // The live stream delivered every acknowledged message exactly once, in order.
    received.extend(
        bob_events
            .messages_until(&format!("m{:03}", total - 1))
            .await,
    );
    assert_eq!(seqs(&received), (1..=total as u64).collect::<Vec<_>>());
}

/// The history store SIGKILLed (postmaster and backends) while a sender
/// keeps sending, then restarted: a send meanwhile is answered UNAVAILABLE,
/// a client that retries (same client message id, a short pause between
/// tries, as a client does) gets each message acknowledged, and every
/// acknowledged message is in history once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_store_killed_mid_stream_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    cluster.user("bob", 1).await;
    let total = 60;
    let (sender, acked_so_far, _) = keep_sending(&alice, total);
    eventually(WAIT, "the stream to be under way", || {
        let acked_so_far = acked_so_far.clone();
        async move { (acked_so_far.load(Ordering::SeqCst) >= 15).then_some(()) }
    })
    .await;
    cluster.history().kill();
    let refused = alice
        .send(To::UserId("bob".into()), "while it is down", "probe")
        .await
        .expect_err("a send with the history store down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused}");
    cluster.history().restart();
    let acked = sender.await.unwrap().acked;

    // The refused probe is nowhere either.
    assert_acked_once_and_kept(&alice, &acked, total).await;
}

/// Sends `m000`, `m001`, … `total` of them from `alice` to bob (fewer if
/// told to stop by the flag it answers), one after the other, each until
/// acknowledged: a refusal must be UNAVAILABLE (or a
/// deadline), and the client tries again with the same client message id
/// after a short pause, as a client does. Answers what it saw, and a count
/// of the acks so far to wait on.
fn keep_sending(
    alice: &User,
    total: usize,
) -> (
    tokio::task::JoinHandle<Sent>,
    Arc<AtomicUsize>,
    Arc<AtomicBool>,
) {
    let acked_so_far = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (alice, counter, stopped) = (alice.clone(), acked_so_far.clone(), stop.clone());
    let sender = tokio::spawn(async move {
        let mut sent = Sent::default();
        for i in 0..total {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let text = format!("m{i:03}");
            let started = std::time::Instant::now();
            let deadline = started + WAIT;
            let ack = loop {
                match alice.send(To::UserId("bob".into()), &text, &text).await {
                    Ok(ack) => break ack,
                    Err(status) => {
                        assert!(
                            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
                            "unexpected refusal: {status}"
                        );
                        sent.refusals += 1;
                        assert!(std::time::Instant::now() < deadline, "{text} never acked");
                        // A client's pause before it tries again.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            };
            sent.acked.push(ack);
            sent.longest_wait = sent.longest_wait.max(started.elapsed());
            counter.fetch_add(1, Ordering::SeqCst);
        }
        sent
    });
    (sender, acked_so_far, stop)
}

/// What [`keep_sending`] saw.
#[derive(Default)]
struct Sent {
    acked: Vec<pb::SendResponse>,
    /// Sends refused (and tried again).
    refusals: usize,
    /// The longest a message took from its first try to its ack.
    longest_wait: std::time::Duration,
}

/// On a Redis Cluster, the primary holding the sender's keys is SIGKILLed
/// while she sends: its replica takes its slots over (the cluster notices
/// within its node timeout), sends meanwhile are refused UNAVAILABLE and
/// succeed when retried, and every acknowledged message is kept once, in
/// order, and reaches the recipient's live stream once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_primary_killed_mid_stream_loses_and_doubles_nothing() {
    let options = Options {
        redis_cluster: true,
        ..Options::default()
    };
    let mut cluster = Cluster::start_with(Mode::distributed(), options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    let total = 80;
    let (sender, acked_so_far, _) = keep_sending(&alice, total);
    eventually(WAIT, "the stream to be under way", || {
        let acked_so_far = acked_so_far.clone();
        async move { (acked_so_far.load(Ordering::SeqCst) >= 20).then_some(()) }
    })
    .await;
    let victim = cluster
        .redis_cluster()
        .primary_for(&switchboard_shared::keys::user(
            &switchboard_shared::ids::UserId::parse(&alice.id).unwrap(),
        ));
    cluster.redis_cluster().kill(victim);
    let sent = sender.await.unwrap();
    figure("sends refused during the failover", sent.refusals);
    figure("longest wait for an ack", sent.longest_wait);
    assert!(sent.refusals > 0, "the kill hit sends in flight");
    let acked = sent.acked;
    let primaries = cluster.redis_cluster().primary_ports();
    assert!(
        !primaries.contains(&victim) && primaries.len() == 3,
        "a replica took the killed primary's slots: {primaries:?}"
    );

    assert_acked_once_and_kept(&alice, &acked, total).await;
    let received = bob_events
        .messages_until(&format!("m{:03}", total - 1))
        .await;
    assert_eq!(seqs(&received), (1..=total as u64).collect::<Vec<_>>());
}

/// On a Redis Cluster, every slot of the primary holding the sender's keys
/// moves to another primary (`redis-cli --cluster reshard`) while she sends:
/// the clients follow MOVED/ASK, a call refused meanwhile succeeds when
/// retried, and every acknowledged message is kept once, in order, and
/// reaches the recipient's live stream once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_moved_between_redis_primaries_under_traffic_lose_nothing() {
    let options = Options {
        redis_cluster: true,
        ..Options::default()
    };
    let mut cluster = Cluster::start_with(Mode::distributed(), options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    let (sender, acked_so_far, stop) = keep_sending(&alice, 5_000);
    eventually(WAIT, "the stream to be under way", || {
        let acked_so_far = acked_so_far.clone();
        async move { (acked_so_far.load(Ordering::SeqCst) >= 20).then_some(()) }
    })
    .await;
    let alice_key =
        switchboard_shared::keys::user(&switchboard_shared::ids::UserId::parse(&alice.id).unwrap());
    let from = cluster.redis_cluster().primary_for(&alice_key);
    let to = cluster
        .redis_cluster()
        .primary_ports()
        .into_iter()
        .find(|p| *p != from)
        .unwrap();
    let slots = cluster
        .redis_cluster()
        .view()
        .iter()
        .find(|n| n.port == from)
        .unwrap()
        .slots;
    let moved_while = acked_so_far.load(Ordering::SeqCst);
    let redis_cluster = cluster.redis_cluster.take().unwrap();
    let redis_cluster = tokio::task::spawn_blocking(move || {
        redis_cluster.reshard(from, to, slots);
        redis_cluster
    })
    .await
    .unwrap();
    let moved_by = acked_so_far.load(Ordering::SeqCst);
    assert_eq!(
        redis_cluster.primary_for(&alice_key),
        to,
        "alice's keys moved"
    );
    cluster.redis_cluster = Some(redis_cluster);
    // A few more on the slots' new primary, then stop.
    eventually(WAIT, "sends after the move", || {
        let acked_so_far = acked_so_far.clone();
        async move { (acked_so_far.load(Ordering::SeqCst) >= moved_by + 10).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let sent = sender.await.unwrap();
    let total = sent.acked.len();
    figure("sends acked while the slots moved", moved_by - moved_while);
    figure("sends refused while the slots moved", sent.refusals);

    assert_acked_once_and_kept(&alice, &sent.acked, total).await;
    let received = bob_events
        .messages_until(&format!("m{:03}", total - 1))
        .await;
    assert_eq!(seqs(&received), (1..=total as u64).collect::<Vec<_>>());
}

/// `total` sends `m000`, `m001`, … were each acknowledged once, with seqs
/// 1, 2, 3, … and no holes, and history holds each once, in order, and
/// nothing else.
async fn assert_acked_once_and_kept(alice: &User, acked: &[pb::SendResponse], total: usize) {
    assert_eq!(
        seqs_of(acked),
        (1..=total as u64).collect::<Vec<_>>(),
        "each acked once, no holes"
    );
    let history = alice.history("dm:alice:bob").await;
    let expected: Vec<String> = (0..total).map(|i| format!("m{i:03}")).collect();
    assert_eq!(
        texts(&history),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

fn seqs_of(acks: &[pb::SendResponse]) -> Vec<u64> {
    acks.iter().map(|a| a.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_gateway_resume_on_another() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "before").await;
    assert_eq!(bob_events.message().await.text, "before");
    let cursors = bob_events.cursors();
    let epoch = bob_events.epoch.clone();

    cluster.gateways[1].kill();
    // The stream breaks; the client notices.
    bob_events.wait_closed().await;
    for text in ["while", "the gateway", "was down"] {
        alice.dm(&bob, text).await;
    }
    let bob_on_gw0 = bob.via(&cluster.gateway_url(0)).await;
    let mut resumed = bob_on_gw0.subscribe_from(&cursors, &epoch).await;
    assert_eq!(
        texts(&resumed.replayed),
        ["while", "the gateway", "was down"]
    );
    alice.dm(&bob, "live again").await;
    assert_eq!(resumed.message().await.text, "live again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_keeps_every_acknowledged_message() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    for i in 0..25 {
        alice.dm(&bob, &format!("kept {i}")).await;
    }
    cluster.redis().kill();
    cluster.redis().restart();
    // Routers reconnect on their own; the client retries until they have.
    let after = send_until_acked(&alice, "bob", "after the restart").await;
    assert_eq!(
        after.seq, 26,
        "nothing acknowledged was lost, so the sequence goes on"
    );
    let history = bob.history("dm:alice:bob").await;
    assert_eq!(history.len(), 26);
    assert_eq!(history[0].text, "kept 0");
}

/// Redis losing its data loses no history: messages live in the history
/// store, so a client resuming from its cursors under the epoch it knew is
/// not told of a gap (there is none), and the conversation goes on from its
/// last seq. (Accounts and sessions were in Redis: they must be made again.)
/// This test used to assert the opposite (a `Gap`, and seqs from 1 again),
/// from when the messages were in Redis too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_redis_loses_no_history_and_reports_no_gap() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "kept on disk").await;
    bob_events.message().await;
    let (cursors, epoch) = (bob_events.cursors(), bob_events.epoch.clone());
    drop(bob_events);

    cluster.redis().restart_empty();
    // Accounts went with Redis's data: register again.
    let alice = loop {
        let url = cluster.gateway_url(0);
        let registered = switchboard_proto::pb::account_service_client::AccountServiceClient::new(
            crate::harness::client::channel(&url).await,
        )
        .register(pb::RegisterRequest {
            user_id: "alice".into(),
            password: crate::harness::client::PASSWORD.into(),
            display_name: String::new(),
        })
        .await;
        if registered.is_ok() {
            break User::login(&url, "alice", "laptop").await;
        }
    };
    let bob = cluster.user("bob", 1).await;
    let mut resumed = bob.subscribe_from(&cursors, &epoch).await;
    assert!(
        !resumed
            .before_sync
            .iter()
            .any(|e| matches!(e.kind, Some(Kind::Gap(_)))),
        "no gap: {:?}",
        resumed.before_sync
    );
    assert_eq!(resumed.epoch, epoch, "the history's epoch did not change");
    alice.dm(&bob, "and on").await;
    let message = resumed.message().await;
    assert_eq!(
        (message.text.as_str(), message.seq),
        ("and on", 2),
        "delivered once, after what was already seen, not replayed"
    );
    let history = bob.history("dm:alice:bob").await;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["kept on disk", "and on"]);
}

/// Sessions and users a router learnt from the store die with the store's
/// data: right after Redis comes back empty, an old session sends nothing,
/// even to a user it recently wrote to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_sessions_do_not_outlive_lost_server_data() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    // Every router has seen alice's session and bob's account.
    for i in 0..8 {
        alice.dm(&bob, &format!("before {i}")).await;
    }
    cluster.redis().restart_empty();
    let refused = eventually(WAIT, "a send to be answered", || {
        let alice = alice.clone();
        async move {
            match alice.send(To::UserId("bob".into()), "after", "").await {
                Err(status) if status.code() == Code::Unavailable => None,
                other => Some(other),
            }
        }
    })
    .await
    .expect_err("an old session cannot send into the new store");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // Nor read, on any router, within the epoch check interval (1 s) rather
    // than the session cache's 10 s.
    eventually(
        std::time::Duration::from_secs(3),
        "every router to refuse the old session",
        || {
            let alice = alice.clone();
            async move {
                for _ in 0..6 {
                    let listed = alice
                        .chat()
                        .list_conversations(pb::ListConversationsRequest {})
                        .await;
                    if !matches!(&listed, Err(s) if s.code() == Code::Unauthenticated) {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_store_survives_a_crash() {
    let mut cluster = Cluster::start(Mode::Standalone).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    let mut acked = HashSet::new();
    for i in 0..30 {
        acked.insert(alice.dm(&bob, &format!("durable {i}")).await.seq);
    }
    cluster.gateways[0].kill();
    cluster.gateways[0].restart().await;
    // Sessions survive too: the same token works after the restart.
    let bob = bob.via(&cluster.gateway_url(0)).await;
    let history = bob.history("dm:alice:bob").await;
    let stored: HashSet<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(stored, acked);
    let alice = alice.via(&cluster.gateway_url(0)).await;
    assert_eq!(alice.dm(&bob, "after").await.seq, 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_gateway_drains_and_its_clients_resume_elsewhere() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "before the drain").await;
    assert_eq!(bob_events.message().await.text, "before the drain");
    // A native client's open send stream on the same gateway.
    let (bob_sends, outgoing) = futures::channel::mpsc::unbounded::<pb::SendRequest>();
    let mut bob_results = bob.chat().send_stream(outgoing).await.unwrap().into_inner();

    let mut draining = cluster.gateways.remove(1);
    let exited =
        tokio::task::spawn_blocking(move || draining.terminate(std::time::Duration::from_secs(8)));
    // The client is told to go elsewhere, then the stream ends UNAVAILABLE.
    let (reconnect, _) = bob_events
        .until(|e| match &e.kind {
            Some(Kind::Reconnect(r)) => Some(r.clone()),
            _ => None,
        })
        .await;
    assert!(
        reconnect.reason.contains("shutting down"),
        "{}",
        reconnect.reason
    );
    let status = bob_events.wait_closed().await.expect("a final status");
    assert_eq!(status.code(), Code::Unavailable);
    // The send stream ends too, rather than holding the gateway open.
    let ended = bob_results.message().await.expect_err("ends with a status");
    assert_eq!(ended.code(), Code::Unavailable, "{ended}");
    assert!(
        exited.await.unwrap(),
        "the gateway exited within its grace period, our side of the call still open"
    );
    drop(bob_sends);

    alice.dm(&bob, "during the move").await;
    let moved = bob.via(&cluster.gateway_url(0)).await;
    let resumed = moved
        .subscribe_from(&bob_events.cursors(), &bob_events.epoch)
        .await;
    assert_eq!(texts(&resumed.replayed), ["during the move"]);
}
