//! TLS on the client port, from the outside: gateways started with a
//! certificate of the tests' own CA (rcgen), reached by real clients that
//! trust that CA and by ones that do not.
//!
//! - gRPC (across two gateways and a router), the page over HTTP/1.1 and
//!   gRPC-Web all on the one TLS port; a plaintext client gets nothing.
//! - A renewed certificate serves new connections while an open stream
//!   keeps flowing.
//! - `sb` with `--ca`, saved with the login; without it, a clear refusal;
//!   and an `https://` URL is never spoken to in plaintext.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use switchboard_proto::pb;
use switchboard_testkit::eventually;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cli::Sb;
use crate::harness::raw::sample;
use crate::harness::{Cluster, Mode, Options, WAIT, test_ca};

fn tls_options() -> Options {
    Options {
        tls: true,
        ..Options::default()
    }
}

/// A TLS connection to `port` trusting the tests' CA, offering `alpn`.
async fn connect_tls(port: u16, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(test_ca().pem().as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("a TLS handshake with the gateway")
}

/// The leaf certificate a new connection to `port` is shown.
async fn served_certificate(port: u16) -> Vec<u8> {
    let stream = connect_tls(port, b"h2").await;
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/1.1 exchange over TLS; returns the whole response as text.
async fn https_1_1(port: u16, request: &str) -> String {
    let mut stream = connect_tls(port, b"http/1.1").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the response in time")
        .ok();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_grpc_web_and_the_page_share_one_tls_port() {
    let cluster = Cluster::start_with(Mode::distributed(), tls_options()).await;
    assert!(cluster.gateway_url(0).starts_with("https://"));

    // gRPC over TLS, through both gateways and a router.
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mut stream = bob.subscribe().await;
    alice
        .send(
            pb::send_request::To::UserId("bob".into()),
            "over tls",
            "tls-1",
        )
        .await
        .unwrap();
    stream.messages_until("over tls").await;

    let port = cluster.gateways[0].port;
    // The page, over HTTP/1.1.
    let page = https_1_1(
        port,
        "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>Switchboard</title>"), "{page}");
    // gRPC-Web over HTTP/1.1: a Login with no user is refused in words.
    let call = https_1_1(
        port,
        "POST /switchboard.v1.AccountService/Login HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: 5\r\nconnection: close\r\n\r\n\0\0\0\0\0",
    )
    .await;
    assert!(call.starts_with("HTTP/1.1 200"), "{call}");
    assert!(call.contains("grpc-status: 16"), "{call}");
    assert!(call.contains("grpc-message: wrong%20user%20id"), "{call}");

    // A plaintext client gets no answer from the TLS port.
    let plaintext = format!("http://127.0.0.1:{port}");
    let refused = tokio::time::timeout(WAIT, async {
        let channel = tonic::transport::Channel::from_shared(plaintext)
            .unwrap()
            .connect()
            .await?;
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map_err(Into::into)
            .map(|_| ())
    })
    .await
    .expect("refused in time");
    let refused: Result<(), Box<dyn std::error::Error + Send + Sync>> = refused;
    assert!(refused.is_err(), "plaintext was served on the TLS port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_serves_new_connections_and_drops_no_one() {
    let options = Options {
        metrics: true,
        ..tls_options()
    };
    let mut cluster = Cluster::start_with(Mode::Standalone, options).await;
    let port = cluster.gateways[0].port;
    let metrics = cluster.gateways[0].metrics_port.unwrap();
    let (cert, key) = cluster.gateways[0].tls.clone().expect("TLS files");
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 0).await;
    let mut stream = bob.subscribe().await;
    let before = served_certificate(port).await;

    // A half-written renewal (the new certificate, the old key) is not taken up.
    let renewed = test_ca().issue("renewed");
    std::fs::write(&cert, &renewed.cert).unwrap();
    eventually(WAIT, "the mismatched pair to be looked at", || async {
        let text = crate::harness::raw::http_get(metrics, "/metrics").await;
        let failures = sample(
            &text,
            "switchboard_gateway_tls_certificate_reload_failures_total ",
        )?;
        (failures >= 1.0).then_some(())
    })
    .await;
    assert_eq!(served_certificate(port).await, before, "the old pair stays");
    let renewed_der = CertificateDer::from_pem_slice(renewed.cert.as_bytes())
        .unwrap()
        .to_vec();
    // Then the key: new handshakes get the new certificate.
    std::fs::write(&key, &renewed.key).unwrap();
    eventually(WAIT, "the renewed certificate in service", || async {
        (served_certificate(port).await == renewed_der).then_some(())
    })
    .await;
    assert_ne!(before, renewed_der);

    // Bob's stream, opened under the old certificate, still delivers.
    alice
        .send(
            pb::send_request::To::UserId("bob".into()),
            "after the renewal",
            "tls-2",
        )
        .await
        .unwrap();
    stream.messages_until("after the renewal").await;
    // And a client connecting now works end to end.
    let carol = cluster.user("carol", 0).await;
    carol
        .send(pb::send_request::To::UserId("bob".into()), "new", "tls-3")
        .await
        .unwrap();
    stream.messages_until("new").await;

    // SIGTERM with a TLS stream open: the drain ends it and the process
    // exits well inside its 10 s grace. (The accept loop must not end before
    // the server's shutdown signal does: tonic would then skip the signal,
    // and with it the drain that ends the streams it waits for.)
    assert!(
        cluster.gateways[0].terminate(std::time::Duration::from_secs(5)),
        "the TLS gateway did not stop within 5 s of SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sb_trusts_the_ca_it_is_given_and_keeps_it_with_the_login() {
    let cluster = Cluster::start_with(Mode::Standalone, tls_options()).await;
    let home = tempfile::tempdir().unwrap();
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, test_ca().pem()).unwrap();
    let sb = Sb {
        server: cluster.gateway_url(0),
        home,
    };
    let ca = ca.display().to_string();
    tokio::task::spawn_blocking(move || {
        // Without the CA: refused, in words, before any password is sent.
        let untrusted = sb.run("dora", &["register", "dora"]);
        assert!(!untrusted.status.success());
        let stderr = String::from_utf8_lossy(&untrusted.stderr);
        assert!(stderr.contains("certificate"), "{stderr}");

        sb.json("dora", &["--ca", &ca, "register", "dora"]);
        sb.json("dora", &["--ca", &ca, "login", "dora"]);
        sb.json("eli", &["--ca", &ca, "register", "eli"]);
        // The saved login carries the CA: no flag needed any more.
        let sent = sb.run_at(None, "dora", &["send", "eli", "hello over tls"]);
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_address_is_never_spoken_to_in_plaintext() {
    // Not a gateway: a socket that records what a client says first.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sb = Sb {
        server: format!("https://127.0.0.1:{port}"),
        home: tempfile::tempdir().unwrap(),
    };
    let cli = tokio::task::spawn_blocking(move || sb.run("fay", &["register", "fay"]));
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut first = [0u8; 3];
    socket.read_exact(&mut first).await.unwrap();
    // A TLS handshake record (0x16, version 3.x), not "PRI * HTTP/2.0".
    assert_eq!(first[0], 0x16, "{first:?}");
    assert_eq!(first[1], 0x03, "{first:?}");
    drop(socket);
    drop(listener);
    let output = cli.await.unwrap();
    assert!(!output.status.success());
}
