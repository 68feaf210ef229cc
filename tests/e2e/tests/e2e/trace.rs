//! One group message is one trace, exported by the real binaries over OTLP
//! to a real OTLP/gRPC receiver the test runs: the sender's gateway (the gRPC
//! call), the router (its store calls, its delivery), every delivering
//! gateway, and each write to a client stream, linked by the W3C trace
//! context carried in bus headers. Tracing is turned on the documented way
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`), so a role that cannot start with it on
//! fails here.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use parking_lot::Mutex;
use switchboard_proto::pb;
use switchboard_testkit::{eventually, free_port};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use crate::harness::{Cluster, Mode, Options, WAIT, test_ca};
use switchboard_testkit::tls::Issued;

/// A span as received, with the process (service and pid) that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    pid: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )
        })
        .collect()
}

/// An OTLP/gRPC trace receiver: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock();
        for resource_spans in request.into_inner().resource_spans {
            let resource = attributes(
                resource_spans
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default(),
            );
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: resource.get("service.name").cloned().unwrap_or_default(),
                        pid: resource.get("process.pid").cloned().unwrap_or_default(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes: attributes(&span.attributes),
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the receiver; returns it and the endpoint to export to.
async fn start_receiver() -> (Receiver, String) {
    start_receiver_on(None).await
}

/// The receiver, over TLS with `identity` (certificate, key) if given, as
/// a collector behind https:// is.
async fn start_receiver_on(identity: Option<Issued>) -> (Receiver, String) {
    let receiver = Receiver::default();
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let service = TraceServiceServer::new(receiver.clone());
    let mut server = tonic::transport::Server::builder();
    let scheme = match identity {
        Some(issued) => {
            let identity = tonic::transport::Identity::from_pem(issued.cert, issued.key);
            server = server
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .unwrap();
            "https"
        }
        None => "http",
    };
    tokio::spawn(
        server
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (receiver, format!("{scheme}://127.0.0.1:{port}"))
}

fn traced(endpoint: &str) -> Options {
    Options {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.into()),
            // Export within a fraction of a second rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        ..Options::default()
    }
}

mod one_group_message_is_one_trace_across_every_hop {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_redis() {
        one_trace(Mode::distributed()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        one_trace(Mode::Standalone).await;
    }
}

/// An https:// collector is exported to over TLS, trusting the CA named by
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`, as the OpenTelemetry specification says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_collector_over_tls() {
    let (receiver, endpoint) = start_receiver_on(Some(test_ca().issue("collector"))).await;
    assert!(endpoint.starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, test_ca().pem()).unwrap();
    let mut options = traced(&endpoint);
    options.env.push((
        "OTEL_EXPORTER_OTLP_CERTIFICATE".into(),
        ca.display().to_string(),
    ));
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let alice = cluster.user("alice", 0).await;
    cluster.user("bob", 0).await;
    alice
        .send(
            pb::send_request::To::UserId("bob".into()),
            "traced over tls",
            "tls-trace",
        )
        .await
        .unwrap();
    eventually(WAIT, "the Send call's span at the collector", || {
        let spans = receiver.spans.lock().clone();
        async move {
            spans
                .iter()
                .any(|s| {
                    s.name == "grpc.request"
                        && s.attributes
                            .get("rpc.method")
                            .is_some_and(|m| m.ends_with("ChatService/Send"))
                })
                .then_some(())
        }
    })
    .await;
}

/// Every role starts with tracing on (the cluster waits for each to report
/// ready), and the message's trace reaches the receiver whole.
async fn one_trace(mode: Mode) {
    let (receiver, endpoint) = start_receiver().await;
    let cluster = Cluster::start_with(mode, traced(&endpoint)).await;

    // alice and carol on gateway 0, bob on gateway 1; all in one group.
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let carol = cluster.user("carol", 0).await;
    let group = alice.create_group("Traced", pb::JoinPolicy::Open).await;
    bob.join(&group.group_id).await;
    carol.join(&group.group_id).await;
    let mut streams = vec![
        alice.subscribe().await,
        bob.subscribe().await,
        carol.subscribe().await,
    ];
    alice
        .send(
            pb::send_request::To::GroupId(group.group_id.clone()),
            "follow me",
            "traced-1",
        )
        .await
        .unwrap();
    for stream in &mut streams {
        stream.messages_until("follow me").await;
    }

    // Every span of the Send call's trace, once each process has exported
    // its part (each exports in its own batches, in no order between them).
    let expected_gateways = if cluster.is_distributed() { 2 } else { 1 };
    let spans = eventually(WAIT, "the whole trace to be exported", || {
        let spans = receiver.spans.lock().clone();
        async move {
            let send = spans.iter().find(|s| {
                s.name == "grpc.request"
                    && s.attributes
                        .get("rpc.method")
                        .is_some_and(|m| m.ends_with("ChatService/Send"))
            })?;
            let trace: Vec<Received> = spans
                .iter()
                .filter(|s| s.trace_id == send.trace_id)
                .cloned()
                .collect();
            let count = |name: &str| trace.iter().filter(|s| s.name == name).count();
            let sent = trace.iter().any(|s| {
                s.name == "router.rpc" && s.attributes.get("op").map(String::as_str) == Some("send")
            });
            let stored = trace.iter().any(|s| {
                s.name == "store"
                    && s.attributes.get("operation").map(String::as_str) == Some("append")
            });
            let whole = sent
                && stored
                && count("router.deliver") >= 1
                && count("gateway.deliver") >= expected_gateways
                && count("stream.write") >= 3;
            whole.then_some(trace)
        }
    })
    .await;

    let by_id: HashMap<&[u8], &Received> =
        spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let parent = |span: &Received| by_id.get(span.parent_span_id.as_slice()).copied();
    let parent_name = |span: &Received| parent(span).map(|p| p.name.clone());
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let distributed = cluster.is_distributed();
    let service = |role: &str| {
        if distributed {
            format!("switchboard-{role}")
        } else {
            "switchboard".to_owned()
        }
    };

    // Gateway 0 receives the call and asks a router...
    let call = named("grpc.request");
    assert_eq!(call.len(), 1, "{spans:#?}");
    assert_eq!(call[0].service, service("gateway"));
    // (A gateway that fills a hole from history, when deliveries of two
    // routers overtake each other, asks a router within the same trace too.)
    let rpc: Vec<&Received> = named("router.rpc")
        .into_iter()
        .filter(|s| s.attributes.get("op").map(String::as_str) == Some("send"))
        .collect();
    assert_eq!(rpc.len(), 1, "{spans:#?}");
    assert_eq!(parent_name(rpc[0]).as_deref(), Some("grpc.request"));
    assert_eq!(rpc[0].service, service("router"));
    // ...which stores it (its store calls are in the trace) and delivers it...
    let stores: Vec<&str> = named("store")
        .iter()
        .filter_map(|s| s.attributes.get("operation").map(String::as_str))
        .collect();
    assert!(stores.contains(&"append"), "{stores:?}");
    let deliver = named("router.deliver");
    assert_eq!(deliver.len(), 1);
    assert_eq!(parent_name(deliver[0]).as_deref(), Some("router.rpc"));
    // ...to each gateway holding a member, once...
    let gateways = named("gateway.deliver");
    assert_eq!(gateways.len(), expected_gateways, "{gateways:#?}");
    assert!(
        gateways
            .iter()
            .all(|g| parent_name(g).as_deref() == Some("router.deliver")
                && g.service == service("gateway"))
    );
    if distributed {
        assert_ne!(
            gateways[0].pid, gateways[1].pid,
            "the two deliveries come from the two gateway processes"
        );
    }
    // ...which writes it to each member's stream.
    let writes = named("stream.write");
    assert_eq!(writes.len(), 3);
    assert!(
        writes
            .iter()
            .all(|w| parent_name(w).as_deref() == Some("gateway.deliver"))
    );
}
