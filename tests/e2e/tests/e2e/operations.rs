//! Running it: least-privilege credentials, metrics, and the server limits.
//! Each limit test shows the limit holds and that other clients are not
//! affected by whoever hit it.

use std::time::Duration;

use switchboard_proto::pb::{self, send_request::To};
use switchboard_testkit::eventually;
use switchboard_testkit::process::all_threads_stopped;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::cli::Sb;
use crate::harness::client::texts;
use crate::harness::raw::sample;
use crate::harness::{Cluster, Mode, Options, WAIT};

async fn scrape(port: u16) -> String {
    crate::harness::raw::http_get(port, "/metrics").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_runs_with_least_privilege_credentials() {
    let options = Options {
        credentials: true,
        ..Options::default()
    };
    let cluster = Cluster::start_with(Mode::distributed(), options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    alice.add_contact(&bob).await;
    bob.add_contact(&alice).await;
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "through the locked-down bus").await;
    assert_eq!(
        bob_events.message().await.text,
        "through the locked-down bus"
    );

    // Groups, topics (with delivery reports) and presence all fit the permissions.
    let group = alice.create_group("Locked", pb::JoinPolicy::Open).await;
    bob.join(&group.group_id).await;
    alice.post(&group.group_id, "group too").await;
    let got = bob_events.messages_until("group too").await;
    assert_eq!(got.last().unwrap().text, "group too");
    let topic = alice
        .topics()
        .create_topic(pb::CreateTopicRequest {
            name: "Locked topic".into(),
            contacts: vec!["bob".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    let sent = alice
        .topics()
        .send_to_topic(pb::SendToTopicRequest {
            topic_id: topic.topic_id.clone(),
            text: "topic too".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bob_events.message().await.text, "topic too");
    eventually(WAIT, "the delivery report to reach the router", || {
        let alice = alice.clone();
        let (topic_id, broadcast_id) = (topic.topic_id.clone(), sent.broadcast_id.clone());
        async move {
            let status = alice
                .topics()
                .broadcast_status(pb::BroadcastStatusRequest {
                    topic_id,
                    broadcast_id,
                })
                .await
                .ok()?
                .into_inner();
            status.contacts.first().filter(|c| c.delivered).map(|_| ())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_the_traffic() {
    let options = Options {
        metrics: true,
        ..Options::default()
    };
    let cluster = Cluster::start_with(Mode::distributed(), options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut bob_events = bob.subscribe().await;
    alice.dm(&bob, "counted").await;
    bob_events.message().await;

    let gw1 = scrape(cluster.gateways[1].metrics_port.unwrap()).await;
    assert!(
        sample(&gw1, "switchboard_gateway_deliveries_total").unwrap() >= 1.0,
        "{gw1}"
    );
    assert_eq!(
        sample(&gw1, "switchboard_gateway_connections{transport=\"grpc\"}"),
        Some(1.0)
    );
    assert!(sample(&gw1, "switchboard_delivery_latency_seconds_count").unwrap() >= 1.0);
    let gw0 = scrape(cluster.gateways[0].metrics_port.unwrap()).await;
    assert!(
        gw0.contains("switchboard_rpc_requests_total{method=\"ChatService/Send\",code=\"OK\"} 1"),
        "{gw0}"
    );
    assert!(
        gw0.contains("switchboard_rpc_requests_total{method=\"AccountService/Login\",code=\"OK\"}"),
        "{gw0}"
    );
    // Which build and role each process is, and what it costs the machine.
    assert!(gw0.contains("role=\"gateway\"} 1"), "{gw0}");
    assert!(
        sample(&gw0, "process_cpu_seconds_total").unwrap() > 0.0,
        "{gw0}"
    );
    assert!(
        sample(&gw0, "process_resident_memory_bytes").unwrap() > 1e6,
        "{gw0}"
    );
    assert!(sample(&gw0, "process_open_fds").unwrap() >= 1.0, "{gw0}");
    let mut stored = 0.0;
    for router in &cluster.routers {
        let text = scrape(router.metrics_port.unwrap()).await;
        stored += sample(&text, "switchboard_router_messages_stored_total").unwrap_or(0.0);
        assert!(!text.contains("user="), "no per-user labels");
    }
    assert_eq!(stored, 1.0);
    let presence_port = cluster.presence.as_ref().unwrap().metrics_port.unwrap();
    eventually(WAIT, "presence to count bob online", || async move {
        let text = scrape(presence_port).await;
        (sample(&text, "switchboard_presence_online_users") == Some(1.0)).then_some(())
    })
    .await;
}

/// A clean first connection is not a reconnect; a NATS restart is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_reconnects_are_counted_once_each() {
    let options = Options {
        metrics: true,
        ..Options::default()
    };
    let mut cluster = Cluster::start_with(Mode::distributed(), options).await;
    let ports: Vec<u16> = cluster
        .gateways
        .iter()
        .chain(cluster.routers.iter())
        .filter_map(|node| node.metrics_port)
        .collect();
    for port in &ports {
        let text = scrape(*port).await;
        assert_eq!(
            sample(&text, "switchboard_nats_reconnects_total"),
            Some(0.0),
            "{text}"
        );
    }
    cluster.nats.as_mut().unwrap().restart();
    for port in ports {
        eventually(WAIT, "the reconnect to be counted", || async move {
            let text = scrape(port).await;
            (sample(&text, "switchboard_nats_reconnects_total") == Some(1.0)).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_rate_limit_answers_with_a_retry_hint() {
    let options = Options::gateway_args(&["--send-rate", "2", "--send-burst", "3"]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    for i in 0..3 {
        alice.dm(&bob, &format!("within the burst {i}")).await;
    }
    let refused = alice
        .send(To::UserId("bob".into()), "too fast", "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("too fast"),
        "{}",
        refused.message()
    );
    // The standard hint: google.rpc.RetryInfo in the status details, never
    // zero, and the same wait the message names.
    let hint = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("RetryInfo in the status details");
    let hint_ms = u64::try_from(hint.as_millis()).unwrap();
    assert!(hint_ms > 0 && hint_ms <= 500, "{hint:?}");
    assert!(
        refused
            .message()
            .contains(&format!("try again in {hint_ms} ms")),
        "{} vs {hint_ms}",
        refused.message()
    );
    // Nothing was stored for the refused send; bob is not limited by alice.
    assert_eq!(bob.history("dm:alice:bob").await.len(), 3);
    bob.dm(&alice, "bob is fine").await;
    // After the hinted wait, alice may send again.
    eventually(WAIT, "alice's bucket to refill", || {
        let alice = alice.clone();
        async move { alice.send(To::UserId("bob".into()), "later", "").await.ok() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_user_and_per_gateway_are_capped() {
    let options =
        Options::gateway_args(&["--max-connections", "3", "--max-connections-per-user", "2"]);
    let cluster = Cluster::start_with(Mode::distributed(), options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    let first = alice.subscribe().await;
    let _second = alice.subscribe().await;
    let third = alice
        .try_subscribe_from(&[], "")
        .await
        .err()
        .expect("a third stream is refused");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(
        third.message().contains("too many open streams"),
        "{}",
        third.message()
    );
    // The gateway's own cap: bob gets one, then it is full.
    let _bob_stream = bob.subscribe().await;
    let full = bob
        .try_subscribe_from(&[], "")
        .await
        .err()
        .expect("the gateway is full");
    assert!(full.message().contains("full"), "{}", full.message());
    // The other gateway is not affected.
    let bob_elsewhere = bob.via(&cluster.gateway_url(1)).await;
    let _ok = bob_elsewhere.subscribe().await;
    // Closing a stream frees its place.
    drop(first);
    eventually(WAIT, "a freed place", || {
        let alice = alice.clone();
        async move { alice.try_subscribe_from(&[], "").await.ok() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_per_connection_are_capped() {
    let options = Options::gateway_args(&["--max-concurrent-streams", "2"]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    let first = alice.subscribe().await;
    let _second = alice.subscribe().await;
    // A third stream on the same connection waits for a free slot.
    let waiting = tokio::spawn({
        let alice = alice.clone();
        async move { alice.try_subscribe_from(&[], "").await.map(|_| ()) }
    });
    let bob_events = bob.subscribe().await;
    bob.dm(&alice, "bob is not held up").await;
    drop(bob_events);
    assert!(
        !waiting.is_finished(),
        "the third stream must wait while two are open"
    );
    drop(first);
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the third stream opens once a slot is free")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let options = Options::gateway_args(&["--max-header-list-bytes", "4096"]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    let mut request = tonic::Request::new(pb::ListConversationsRequest {});
    request
        .metadata_mut()
        .insert("x-padding", "p".repeat(8 * 1024).parse().unwrap());
    assert!(alice.chat().list_conversations(request).await.is_err());
    assert!(
        bob.chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .is_ok()
    );
}

/// HTTP/2 frames a peer sent, as (type, payload), until it closed the
/// connection; and whether it ended in a reset rather than a clean close.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<(u8, Vec<u8>)>, bool) {
    let mut frames = Vec::new();
    let mut header = [0u8; 9];
    loop {
        if let Err(err) = stream.read_exact(&mut header).await {
            return (frames, err.kind() == std::io::ErrorKind::ConnectionReset);
        }
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0u8; length];
        if let Err(err) = stream.read_exact(&mut payload).await {
            return (frames, err.kind() == std::io::ErrorKind::ConnectionReset);
        }
        frames.push((header[3], payload));
    }
}

/// One HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A header block of literal fields, not indexed, without Huffman coding
/// (RFC 7541 §6.2.2); every name and value shorter than 127 bytes.
fn literal_headers(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        for text in [name, value] {
            block.push(u8::try_from(text.len()).ok().filter(|n| *n < 127).unwrap());
            block.extend_from_slice(text.as_bytes());
        }
    }
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresponsive_connection_is_dropped_by_keepalive() {
    let options = Options::gateway_args(&[
        "--keepalive-interval-ms",
        "200",
        "--keepalive-timeout-ms",
        "200",
    ]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let bob = cluster.user("bob", 0).await;
    let port = cluster.gateways[0].port;
    // An HTTP/2 peer that completes the handshake, then never answers a PING.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    silent
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap(); // SETTINGS
    silent
        .write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0])
        .await
        .unwrap(); // SETTINGS ack
    let (frames, _) = tokio::time::timeout(WAIT, read_until_closed(&mut silent))
        .await
        .expect("the server drops the connection");
    let types: Vec<u8> = frames.iter().map(|(kind, _)| *kind).collect();
    assert!(
        types.contains(&6),
        "the server sent a PING first: {types:?}"
    );
    // Meanwhile a live client is served as usual.
    assert!(
        bob.chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_resets_end_the_connection() {
    let options = Options::gateway_args(&["--max-pending-reset-streams", "10"]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let bob = cluster.user("bob", 0).await;
    let port = cluster.gateways[0].port;
    // Written as raw frames, so each stream's HEADERS and its RST_STREAM
    // reach the server together, as an attacker sends them (a client
    // library may flush them apart and let the server keep up).
    let mut attack = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend(frame(4, 0, 0, &[])); // SETTINGS
    opening.extend(frame(4, 1, 0, &[])); // SETTINGS ack
    attack.write_all(&opening).await.unwrap();
    let authority = format!("127.0.0.1:{port}");
    let headers = literal_headers(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/switchboard.v1.ChatService/ListConversations"),
        (":authority", &authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    // Open streams and cancel each at once, as in the "rapid reset" attack.
    let mut burst = Vec::new();
    for stream in (1..4_000).step_by(2) {
        burst.extend(frame(1, 4, stream, &headers)); // HEADERS, END_HEADERS
        burst.extend(frame(3, 0, stream, &8u32.to_be_bytes())); // RST_STREAM(CANCEL)
    }
    // The server may close while this is still being written.
    let _ = attack.write_all(&burst).await;
    let (frames, reset) = tokio::time::timeout(WAIT, read_until_closed(&mut attack))
        .await
        .expect("the server ends the connection");
    // GOAWAY(ENHANCE_YOUR_CALM), or the reset of the socket right behind it
    // (which can discard the GOAWAY before it is read).
    let goaways: Vec<u32> = frames
        .iter()
        .filter(|(kind, payload)| *kind == 7 && payload.len() >= 8)
        .map(|(_, payload)| u32::from_be_bytes(payload[4..8].try_into().unwrap()))
        .collect();
    assert!(
        goaways == [0xb] || (goaways.is_empty() && reset),
        "GOAWAY codes {goaways:?}, reset {reset}"
    );
    assert!(
        bob.chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .is_ok()
    );
}

/// SIGSTOP or SIGCONT for a process. A STOP returns once every thread of
/// it has stopped: one thread takes the signal and then stops the others,
/// and on a busy machine the others run on meanwhile (a router so took up
/// a request after `kill -STOP` had returned, and CI failed).
async fn signal(pid: u32, which: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{which}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{which} {pid}");
    if which == "STOP" {
        eventually(WAIT, "every thread of the process stopped", || async {
            all_threads_stopped(pid).then_some(())
        })
        .await;
    }
}

/// One gateway (its router calls given up after `router_timeout_ms`) and
/// one router, with metrics: a router to freeze with SIGSTOP.
async fn one_router(router_timeout_ms: u32) -> Cluster {
    let options = Options {
        metrics: true,
        ..Options::gateway_args(&["--router-timeout-ms", &router_timeout_ms.to_string()])
    };
    let mode = Mode::Distributed {
        gateways: 1,
        routers: 1,
    };
    Cluster::start_with(mode, options).await
}

/// A send its router only takes up after the gateway stopped waiting (here
/// the router is frozen; under overload it queues) is dropped unworked: the
/// client was told UNAVAILABLE, nothing appears behind its back, and its
/// retry with the same id is what is stored. An overloaded router so spends
/// nothing on answers nobody reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_waits_for_any_more_is_not_worked() {
    let cluster = one_router(1500).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    alice.dm(&bob, "before").await;
    let router = cluster.routers[0].pid().unwrap();
    let port = cluster.routers[0].metrics_port.unwrap();
    let expired = |text: String| sample(&text, "switchboard_router_requests_expired_total");
    assert_eq!(expired(scrape(port).await), Some(0.0));

    signal(router, "STOP").await;
    let refused = alice
        .send(To::UserId("bob".into()), "while frozen", "frozen-1")
        .await;
    signal(router, "CONT").await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    alice.dm(&bob, "after").await;
    // The last lines of a log, for a failure to say what each side did.
    let tail = |log: String| {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    assert_eq!(
        texts(&bob.history("dm:alice:bob").await),
        ["before", "after"],
        "the refused send ({refused:?}) was stored later\n\nrouter log:\n{}\n\ngateway log:\n{}",
        tail(cluster.routers[0].log()),
        tail(cluster.gateways[0].log()),
    );
    // Waits for the count; past WAIT, answers what the router did count.
    let deadline = std::time::Instant::now() + WAIT;
    let uncounted = eventually(WAIT * 2, "the router's metrics", || async {
        let text = scrape(port).await;
        if expired(text.clone()).is_some_and(|n| n >= 1.0) {
            Some(None)
        } else {
            (std::time::Instant::now() >= deadline).then_some(Some(text))
        }
    })
    .await;
    if let Some(text) = uncounted {
        let counted: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("switchboard_") && (l.contains("request") || l.contains("nats"))
            })
            .collect();
        panic!(
            "the router did not count the send it got too late (refused with {refused:?}); it counted:\n{}\n\nrouter log:\n{}\n\ngateway log:\n{}",
            counted.join("\n"),
            tail(cluster.routers[0].log()),
            tail(cluster.gateways[0].log()),
        );
    }
    alice
        .send(To::UserId("bob".into()), "while frozen", "frozen-1")
        .await
        .unwrap();
    assert_eq!(
        texts(&bob.history("dm:alice:bob").await),
        ["before", "after", "while frozen"]
    );
}

/// `sb send` sends an unanswered message again with the same client id
/// (here its router is frozen through the first attempt): stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_an_unanswered_message_again_with_its_id() {
    let cluster = one_router(1000).await;
    let sb = Sb {
        server: cluster.gateway_url(0),
        home: tempfile::tempdir().unwrap(),
    };
    let sb = tokio::task::spawn_blocking(move || {
        for who in ["alice", "bob"] {
            sb.json(who, &["register", who]);
            sb.json(who, &["login", who]);
        }
        sb
    })
    .await
    .unwrap();
    let router = cluster.routers[0].pid().unwrap();
    let gateway = cluster.gateways[0].metrics_port.unwrap();

    signal(router, "STOP").await;
    let sending = tokio::task::spawn_blocking(move || {
        let sent = sb.json("alice", &["send", "bob", "through", "--id", "retry-1"]);
        (sb, sent)
    });
    eventually(WAIT, "the first attempt to go unanswered", || async {
        scrape(gateway)
            .await
            .lines()
            .any(|l| {
                l.contains(r#"method="ChatService/Send""#) && l.contains(r#"code="UNAVAILABLE""#)
            })
            .then_some(())
    })
    .await;
    signal(router, "CONT").await;
    let (sb, sent) = sending.await.unwrap();
    assert_eq!(sent[0]["client_msg_id"], "retry-1");
    assert_eq!(sent[0]["seq"], 1);
    let history = tokio::task::spawn_blocking(move || sb.json("bob", &["history", "alice"]))
        .await
        .unwrap();
    let texts: Vec<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["through"], "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_and_others_are_not_slowed() {
    let options = Options {
        metrics: true,
        ..Options::gateway_args(&[
            "--connection-queue",
            "8",
            "--send-rate",
            "100000",
            "--send-burst",
            "100000",
        ])
    };
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let url = cluster.gateway_url(0);
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    let carol = cluster.user("carol", 0).await;
    // Alice's connection has small HTTP/2 windows and she stops reading.
    let narrow = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let alice_narrow = alice.with_channel(narrow);
    let mut stalled = alice_narrow.subscribe().await;
    let mut carol_events = carol.subscribe().await;
    let payload = "x".repeat(4 * 1024);
    for i in 0..120 {
        bob.send(
            To::UserId("alice".into()),
            &format!("{i:03} {payload}"),
            &format!("flood-{i}"),
        )
        .await
        .unwrap();
    }
    bob.dm(&carol, "carol is not held up").await;
    assert_eq!(carol_events.message().await.text, "carol is not held up");
    // Alice, reading at last, finds her stream was cut off...
    let status = stalled.wait_closed().await.expect("a final status");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("fell too far behind"),
        "{}",
        status.message()
    );
    // Cut once: one log line and one count, however many deliveries came
    // for it after the cut (it left the registry at once).
    let log = cluster.gateways[0].log();
    assert_eq!(log.matches("slow consumer cut off").count(), 1, "{log}");
    let metrics = scrape(cluster.gateways[0].metrics_port.unwrap()).await;
    assert_eq!(
        sample(
            &metrics,
            "switchboard_gateway_slow_consumer_disconnects_total"
        ),
        Some(1.0)
    );
    // ...and loses nothing: resuming from her cursors brings the rest.
    let resumed = alice_narrow
        .subscribe_from(&stalled.cursors(), &stalled.epoch)
        .await;
    let got = stalled.cursors().first().map_or(0, |c| c.seq);
    assert_eq!(resumed.replayed.len() as u64, 120 - got);
    assert!(texts(&resumed.replayed).last().unwrap().starts_with("119 "));
}

/// `sb watch` against a gateway that drains and comes back on the same
/// address (a pod replaced behind a Service): it reconnects with backoff and
/// resumes from its cursors, nothing missing, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reconnects_through_a_drain_and_resumes() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let home = tempfile::tempdir().unwrap();
    let sb = |args: &[&str]| {
        let mut command = std::process::Command::new(crate::harness::cluster::CLI);
        command
            .args([
                "--json",
                "--server",
                &cluster.gateway_url(1),
                "--profile",
                "bob",
            ])
            .args(args)
            .env("SB_HOME", home.path())
            .env("SB_PASSWORD", crate::harness::client::PASSWORD);
        command
    };
    assert!(sb(&["login", "bob"]).output().unwrap().status.success());
    assert!(
        sb(&["watch", "--until-synced"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let mut watch = sb(&["watch", "--count", "4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read sb's output as it comes; wait until its stream is up.
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("\"event\":\"synced\""))
    {
        lines.push(
            tokio::time::timeout(WAIT, lines_rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    alice.dm(&bob, "before the drain").await;
    // The gateway bob watches through drains; bob's sb is told to reconnect.
    assert!(cluster.gateways[1].terminate(Duration::from_secs(8)));
    for text in ["while", "it was", "away"] {
        alice.dm(&bob, text).await;
    }
    cluster.gateways[1].restart().await;
    let status = tokio::task::spawn_blocking(move || watch.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    reader.join().unwrap();
    while let Ok(line) = lines_rx.try_recv() {
        lines.push(line);
    }
    let lines = lines.join("\n");
    let texts: Vec<String> = lines
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "message")
        .map(|event| event["message"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["before the drain", "while", "it was", "away"]);
    assert!(lines.contains("\"event\":\"reconnect\""), "{lines}");
}
