//! Abuse from outside: idle and slow connections, connection floods, file
//! descriptors running out, login guessing, call floods, a stalled Redis,
//! a missing NATS, a router started before Redis. Each test drives the real
//! binaries over loopback and bounds what it waits for.

use std::time::{Duration, Instant};

use switchboard_proto::pb::{self, send_request::To};
use switchboard_testkit::{RedisServer, eventually, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt as _;

use crate::harness::client::{PASSWORD, channel};
use crate::harness::{Cluster, Mode, Options, WAIT, figure};

/// True once the server closed (or reset) the connection.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // Whatever the server says first (HTTP/2 SETTINGS); keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

async fn health(port: u16) -> Result<ServingStatus, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status())
}

fn retry_ms(status: &tonic::Status) -> Option<u128> {
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map(|d| d.as_millis())
}

/// A connection that sends nothing, an HTTP/2 connection that only answers
/// PINGs, and a gRPC-Web body that trickles in are all closed within their
/// bounds; an authenticated subscription is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed() {
    let options = Options::gateway_args(&[
        "--idle-connection-timeout-ms",
        "1000",
        "--request-body-timeout-ms",
        "1000",
        "--keepalive-interval-ms",
        "200",
    ]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let port = cluster.gateways[0].port;
    let alice = cluster.user("alice", 0).await;
    let mut events = alice.subscribe().await;

    // Nothing at all.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // An HTTP/2 client that never calls anything (it answers PINGs itself).
    let (client, pings_only) =
        h2::client::handshake(TcpStream::connect(("127.0.0.1", port)).await.unwrap())
            .await
            .unwrap();
    let pings_only = tokio::spawn(pings_only);
    // A gRPC-Web request whose body comes a byte at a time.
    let mut trickle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    trickle
        .write_all(
            format!(
                "POST /switchboard.v1.AccountService/Login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                 Content-Type: application/grpc-web+proto\r\nContent-Length: 100\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let trickling = tokio::spawn(async move {
        let started = Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        while started.elapsed() < Duration::from_secs(8) {
            if trickle.write_all(&[0]).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(200), trickle.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });

    let opened = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(4)).await,
        "a silent connection is closed"
    );
    figure("a silent connection closed after", opened.elapsed());
    let ended = tokio::time::timeout(Duration::from_secs(4), pings_only).await;
    assert!(
        ended.is_ok(),
        "an HTTP/2 connection that only answers PINGs is closed"
    );
    figure(
        "a PING-only HTTP/2 connection closed after",
        opened.elapsed(),
    );
    drop(client);
    let (took, answer) = trickling.await.unwrap();
    figure("a trickling gRPC-Web body cut off after", took);
    assert!(
        took < Duration::from_secs(4),
        "a trickling body is cut off ({took:?})"
    );
    // Either closed, or answered with a status that says why.
    assert!(
        answer.is_empty() || answer.contains("did%20not%20arrive%20within"),
        "{answer}"
    );

    // Meanwhile alice's subscription lived on, idle for longer than the
    // timeout, and still delivers.
    let bob = cluster.user("bob", 0).await;
    bob.dm(&alice, "still here").await;
    assert_eq!(events.message().await.text, "still here");
}

/// A channel from `source` (a loopback address of the test's choosing).
async fn channel_from(port: u16, source: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .local_address(Some(source.parse().unwrap()))
        .connect()
        .await
        .unwrap()
}

async fn raw_from(port: u16, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap()
}

/// A login attempt over `channel`: the refusal's status.
async fn login_refusal(channel: tonic::transport::Channel) -> tonic::Status {
    pb::account_service_client::AccountServiceClient::new(channel)
        .login(pb::LoginRequest {
            user_id: "alice".into(),
            password: PASSWORD.into(),
            device_id: String::new(),
        })
        .await
        .expect_err("refused")
}

async fn client_connections(port: u16) -> Option<f64> {
    let text = crate::harness::raw::http_get(port, "/metrics").await;
    crate::harness::raw::sample(&text, "switchboard_gateway_client_connections ")
}

/// Past the connection cap (or an address's share) a few connections serve
/// health checks only; past those, connections are closed at once. One user
/// holds at most a few send streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_gateway_and_per_address() {
    let options = Options {
        gateway_args: [
            "--max-client-connections",
            "3",
            "--max-connections-per-address",
            "2",
            "--max-send-streams-per-user",
            "2",
        ]
        .map(String::from)
        .to_vec(),
        metrics: true,
        ..Options::default()
    };
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let port = cluster.gateways[0].port;
    let metrics_port = cluster.gateways[0].metrics_port.unwrap();
    // The start-up health checks' connections count until the gateway sees
    // them close (under load, a few may still be open).
    eventually(WAIT, "no client connection", || async move {
        (client_connections(metrics_port).await? == 0.0).then_some(())
    })
    .await;
    let alice = cluster.user("alice", 0).await;
    // Two send streams are fine, a third is refused.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let (requests, outgoing) = futures::channel::mpsc::unbounded::<pb::SendRequest>();
        let results = alice
            .chat()
            .send_stream(outgoing)
            .await
            .unwrap()
            .into_inner();
        streams.push((requests, results));
    }
    let (_third, outgoing) = futures::channel::mpsc::unbounded::<pb::SendRequest>();
    let refused = alice.chat().send_stream(outgoing).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("send streams"), "{refused:?}");
    drop(streams);
    // Only alice's own connection is left (the one she registered on went).
    eventually(WAIT, "one client connection", || async move {
        (client_connections(metrics_port).await? == 1.0).then_some(())
    })
    .await;

    // From 127.0.0.3: two connections are its share; a third serves health only.
    let mut held = vec![
        raw_from(port, "127.0.0.3").await,
        raw_from(port, "127.0.0.3").await,
    ];
    let status = login_refusal(channel_from(port, "127.0.0.3").await).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("full"), "{status:?}");
    let mut probe = HealthClient::new(channel_from(port, "127.0.0.3").await);
    let answer = probe
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status(), ServingStatus::Serving);
    drop(probe);
    // Now the gateway holds its cap of 3: another address gets health only too.
    let status = login_refusal(channel_from(port, "127.0.0.4").await).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Past the 8 reserve slots, connections are closed as soon as accepted.
    for _ in 0..12 {
        held.push(raw_from(port, "127.0.0.5").await);
    }
    let mut closed = 0;
    for stream in &mut held[2..] {
        if closed_within(stream, Duration::from_millis(500)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 4,
        "connections past the reserve are closed at once ({closed} of 12)"
    );
    // And alice, within the cap, is served as before.
    assert!(
        alice
            .chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .is_ok()
    );
}

/// CPU seconds a process used so far (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Under `ulimit -n 64` with 100 connections held open, the gateway does not
/// spin, says so once, still answers health checks, and takes clients again
/// once the idle ones are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_gateway_backs_off_and_health_answers() {
    let options = Options {
        gateway_args: vec!["--idle-connection-timeout-ms".into(), "2000".into()],
        fd_limit: Some(64),
        ..Options::default()
    };
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let port = cluster.gateways[0].port;
    let pid = cluster.gateways[0].pid().unwrap();
    let mut idle = Vec::new();
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await {
            idle.push(stream);
        }
    }
    // A window of CPU measured while the connections are held.
    let before = cpu_seconds(pid);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = (cpu_seconds(pid) - before) / window.elapsed().as_secs_f64();
    figure(
        "gateway CPU, share of a core, holding 100 connections at ulimit -n 64",
        used,
    );
    assert!(
        used < 0.25,
        "the gateway used {:.0} % of a core",
        used * 100.0
    );
    // Health still answers (a reserve slot, or one freed by the idle sweep).
    eventually(WAIT, "a health check to answer", || async move {
        (health(port).await.ok()? == ServingStatus::Serving).then_some(())
    })
    .await;
    let log = cluster.gateways[0].log();
    let warnings = log.matches("client connection cap reached").count()
        + log.matches("out of resources").count();
    assert!(
        (1..=3).contains(&warnings),
        "logged once per episode, not per attempt: {warnings}\n{log}"
    );
    assert!(
        log.contains("file-descriptor limit"),
        "the limit is named at start"
    );
    // The idle connections are closed; a real client gets in.
    drop(idle);
    let url = cluster.gateway_url(0);
    eventually(WAIT, "a client to log in again", || {
        let url = url.clone();
        async move {
            let mut accounts = pb::account_service_client::AccountServiceClient::new(
                tonic::transport::Channel::from_shared(url)
                    .ok()?
                    .connect()
                    .await
                    .ok()?,
            );
            accounts
                .register(pb::RegisterRequest {
                    user_id: "late".into(),
                    password: PASSWORD.into(),
                    display_name: String::new(),
                })
                .await
                .ok()
        }
    })
    .await;
}

mod login_guessing_is_throttled {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_redis() {
        super::login_guessing(super::Mode::distributed()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        super::login_guessing(super::Mode::Standalone).await;
    }
}

/// Failed logins are limited per account and per address, before any
/// password is checked, with a retry hint.
async fn login_guessing(mode: Mode) {
    let options = Options {
        router_args: [
            "--login-failures-per-account",
            "3",
            "--login-failures-per-address",
            "5",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    };
    let cluster = Cluster::start_with(mode, options).await;
    cluster.user("alice", 0).await;
    cluster.user("bob", 1).await;
    let anonymous = pb::account_service_client::AccountServiceClient::new(
        channel(&cluster.gateway_url(0)).await,
    );
    let login = |user: &str, password: &str| {
        let request = pb::LoginRequest {
            user_id: user.into(),
            password: password.into(),
            device_id: String::new(),
        };
        let mut client = anonymous.clone();
        async move { client.login(request).await }
    };
    for _ in 0..3 {
        let status = login("alice", "wrong guess!").await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // Refused before any password check, even the right one, with a hint.
    let status = login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("this account"), "{status:?}");
    assert!(retry_ms(&status).is_some_and(|ms| ms > 1_000), "{status:?}");
    // Two more failures from this address, on another account, and the
    // address is refused too.
    for _ in 0..2 {
        let status = login("bob", "wrong guess!").await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let status = login("bob", PASSWORD).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("your address"), "{status:?}");
}

/// Busy loops at normal priority, killed when dropped.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn one_per_core() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self(
            (0..cores)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// Password hashes run at a low priority, but they do run: on a router
/// whose cores are all busy, logins with production hashing still finish
/// within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_finish_on_a_router_whose_cores_are_busy() {
    let options = Options {
        owasp_hashing: true,
        ..Options::default()
    };
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    cluster.user("alice", 0).await;
    let accounts = pb::account_service_client::AccountServiceClient::new(
        channel(&cluster.gateway_url(0)).await,
    );
    let _hogs = Hogs::one_per_core();
    for attempt in 0..3 {
        let started = Instant::now();
        let answer = accounts
            .clone()
            .login(pb::LoginRequest {
                user_id: "alice".into(),
                password: PASSWORD.into(),
                device_id: format!("busy-{attempt}"),
            })
            .await;
        assert!(
            answer.is_ok(),
            "login {attempt} on busy cores: {answer:?} after {:?}",
            started.elapsed()
        );
    }
}

/// Logins and registrations are limited per client address at the gateway,
/// and a refusal is held for its retry delay before it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_from_one_address_are_rate_limited_and_held() {
    let options = Options::gateway_args(&["--anonymous-rate", "0.5", "--anonymous-burst", "3"]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let mut anonymous = pb::account_service_client::AccountServiceClient::new(
        channel(&cluster.gateway_url(0)).await,
    );
    let mut refused = None;
    for i in 0..5 {
        let attempt = anonymous
            .login(pb::LoginRequest {
                user_id: "nobody".into(),
                password: "a guess of enough length".into(),
                device_id: String::new(),
            })
            .await;
        let status = attempt.unwrap_err();
        if status.code() == Code::ResourceExhausted {
            refused = Some((i, status));
            break;
        }
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let (after, status) = refused.expect("the address is limited");
    assert_eq!(after, 3, "three in the burst");
    assert!(status.message().contains("your address"), "{status:?}");
    assert!(
        retry_ms(&status).is_some_and(|ms| ms >= 1_000),
        "{status:?}"
    );
    // The next refusal is held for its retry delay (at most a second)
    // before it is answered. The delay is what is left of the token's
    // period: the refusal before it was held too, so it is under a second.
    let started = Instant::now();
    let held = anonymous
        .login(pb::LoginRequest {
            user_id: "nobody".into(),
            password: "a guess of enough length".into(),
            device_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(held.code(), Code::ResourceExhausted);
    let delay = retry_ms(&held).expect("a retry hint");
    let expected = Duration::from_millis(u64::try_from(delay).unwrap()).min(Duration::from_secs(1));
    assert!(delay > 0, "{held:?}");
    assert!(
        started.elapsed() + Duration::from_millis(2) >= expected,
        "held {:?}, retry hint {expected:?}",
        started.elapsed()
    );
}

/// Every call is limited: a History flood from one user is refused with a
/// retry hint, and other users are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_rate_limited_by_its_cost() {
    let options = Options::gateway_args(&["--call-rate", "5", "--call-burst", "20"]);
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    alice.dm(&bob, "hi").await;
    let mut refused = None;
    for i in 0..30 {
        let page = alice
            .chat()
            .history(pb::HistoryRequest {
                conversation_id: "dm:alice:bob".into(),
                limit: 500,
                ..Default::default()
            })
            .await;
        if let Err(status) = page {
            refused = Some((i, status));
            break;
        }
    }
    let (after, status) = refused.expect("the flood is refused");
    assert!(
        after <= 2,
        "a 500-message page costs 11 of the 20 units: refused after {after}"
    );
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(retry_ms(&status).is_some_and(|ms| ms > 0), "{status:?}");
    assert!(
        bob.chat()
            .list_conversations(pb::ListConversationsRequest {})
            .await
            .is_ok(),
        "others are not limited by alice"
    );
}

/// Limits are per gateway (as docs/DEPLOY.md says): a user connected to two
/// gateways has each gateway's budget, so at most twice one gateway's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_limits_hold_per_gateway_and_total_at_most_one_per_gateway() {
    let options = Options::gateway_args(&["--send-rate", "0.5", "--send-burst", "3"]);
    let cluster = Cluster::start_with(Mode::distributed(), options).await;
    let alice = cluster.user("alice", 0).await;
    cluster.user("bob", 1).await;
    let on_second = alice.via(&cluster.gateway_url(1)).await;
    let mut sent = 0;
    for user in [&alice, &on_second] {
        for i in 0..5 {
            match user
                .send(To::UserId("bob".into()), &format!("m{i}"), "")
                .await
            {
                Ok(_) => sent += 1,
                Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
            }
        }
    }
    assert_eq!(sent, 6, "three per gateway, two gateways");
}

/// A stalled Redis and a missing NATS are answered UNAVAILABLE within the
/// gateway's router deadline (2 s), with a retry hint, and nothing is
/// half-written: the retry after recovery stores one copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_dependencies_are_answered_within_the_deadline() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    alice.dm(&bob, "before").await;

    cluster.redis().pause();
    let started = Instant::now();
    let status = alice
        .send(To::UserId("bob".into()), "during the stall", "stall-1")
        .await
        .unwrap_err();
    let took = started.elapsed();
    figure("a send with Redis stalled answered after", took);
    cluster.redis().resume();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        took < Duration::from_millis(2_600),
        "answered after {took:?}"
    );
    assert!(retry_ms(&status).is_some(), "{status:?}");
    let retried = eventually(WAIT, "the retry to be stored", || {
        let alice = alice.clone();
        async move {
            alice
                .send(To::UserId("bob".into()), "during the stall", "stall-1")
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(
        bob.history("dm:alice:bob")
            .await
            .iter()
            .filter(|m| m.text == "during the stall")
            .count(),
        1,
        "stored once ({retried:?})"
    );

    cluster.nats.as_mut().unwrap().kill();
    let started = Instant::now();
    let status = alice
        .send(To::UserId("bob".into()), "no bus", "nats-1")
        .await
        .unwrap_err();
    let took = started.elapsed();
    figure("a send with NATS gone answered after", took);
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        took < Duration::from_millis(2_600),
        "answered after {took:?}"
    );
    assert!(retry_ms(&status).is_some(), "{status:?}");
}

/// A router has nowhere to keep messages without its history store: it
/// refuses to start, saying which setting is missing, rather than serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_without_a_history_store_refuses_to_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard-node"))
        .args([
            "router",
            "--nats-url",
            "nats://127.0.0.1:1",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--token-secret",
            crate::harness::cluster::SECRET,
            "--health-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env_remove("SB_HISTORY_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("SB_HISTORY_URL"), "{said}");
}

/// A router and presence started before Redis wait for it (not ready
/// meanwhile, naming Redis and its address in their logs, still running),
/// and serve once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_and_presence_wait_for_redis_at_start() {
    let nats = switchboard_testkit::NatsServer::start();
    let postgres = switchboard_testkit::PostgresServer::start();
    let redis_port = free_port();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let dir = tempfile::tempdir().unwrap();
    let start = |role: &str, extra: &[&str]| {
        let health_port = free_port();
        let log = dir.path().join(format!("{role}.log"));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard-node"));
        command
            .args([role, "--nats-url", &nats.url(), "--redis-url", &redis_url])
            .args(extra)
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .args(["--log-format", "text"]);
        let mut process = switchboard_testkit::ChildProcess::spawn(role, command, &log);
        process.wait_for_port(health_port, WAIT);
        (process, health_port, log)
    };
    let mut roles = [
        start(
            "router",
            &[
                "--history-url",
                &postgres.url(),
                "--token-secret",
                crate::harness::cluster::SECRET,
            ],
        ),
        start("presence", &[]),
    ];
    let named = format!("redis at 127.0.0.1:{redis_port}");
    for (process, health_port, log) in &mut roles {
        let log = &*log;
        eventually(WAIT, "the role to log that redis does not answer", || {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let named = named.clone();
            async move { log.contains(&named).then_some(()) }
        })
        .await;
        assert!(process.is_running(), "it waits rather than exit");
        assert_eq!(
            health(*health_port).await.unwrap(),
            ServingStatus::NotServing
        );
    }
    let redis_started = Instant::now();
    let _redis = RedisServer::start_on(redis_port);
    for (_, health_port, _) in &roles {
        let health_port = *health_port;
        eventually(WAIT, "the role to become ready", || async move {
            (health(health_port).await.ok()? == ServingStatus::Serving).then_some(())
        })
        .await;
    }
    figure(
        "router and presence ready after Redis started",
        redis_started.elapsed(),
    );
}
