//! One group message is one trace: the sender's gateway (the gRPC call),
//! the router (its store calls, its delivery), every delivering gateway, and
//! each write to a client stream, linked by the W3C trace context carried in
//! bus headers. Collected in process by an in-memory exporter, with two
//! gateways, a router and presence on the in-process bus.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use switchboard_gateway::{Gateway, GatewayConfig};
use switchboard_presence::memory::MemoryPresence;
use switchboard_presence::service::PresenceService;
use switchboard_proto::pb::{
    self, account_service_client::AccountServiceClient, chat_service_client::ChatServiceClient,
    group_service_client::GroupServiceClient, send_request::To,
};
use switchboard_router::config::PasswordHashing;
use switchboard_router::store::embedded::EmbeddedStore;
use switchboard_router::{Router, RouterConfig};
use switchboard_shared::bus::SharedBus;
use switchboard_shared::bus::local::LocalBus;
use switchboard_shared::shutdown::Shutdown;
use switchboard_shared::telemetry;
use switchboard_shared::token::TokenKey;
use tokio::net::TcpListener;
use tonic::Request;
use tonic::transport::Channel;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const WAIT: Duration = Duration::from_secs(15);

async fn start_gateway(name: &str, key: &TokenKey, bus: &SharedBus, shutdown: &Shutdown) -> String {
    let gateway = Gateway::start(
        GatewayConfig::new(name, key.clone()),
        bus.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let routes = gateway.routes();
    tokio::spawn(gateway.serve_routes(listener, routes));
    url
}

async fn login(url: &str, user: &str) -> (Channel, String) {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut accounts = AccountServiceClient::new(channel.clone());
    accounts
        .register(pb::RegisterRequest {
            user_id: user.into(),
            password: "a long enough password".into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    let token = accounts
        .login(pb::LoginRequest {
            user_id: user.into(),
            password: "a long enough password".into(),
            device_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    (channel, format!("Bearer {token}"))
}

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.parse().unwrap());
    request
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_message_is_one_trace_across_every_hop() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(telemetry::otel_layer(&provider, "trace-test"))
        .init();

    let shutdown = Shutdown::new();
    let bus: SharedBus = Arc::new(LocalBus::new());
    let key = TokenKey::random();
    let dir = tempfile::tempdir().unwrap();
    let presence = Arc::new(MemoryPresence::new());
    PresenceService::new(presence.clone(), bus.clone())
        .start(shutdown.clone())
        .await
        .unwrap();
    let mut config = RouterConfig::new(key.clone());
    config.password_hashing = PasswordHashing::FAST_INSECURE;
    let router = Router::new(
        config,
        EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
        presence,
        bus.clone(),
        shutdown.clone(),
    );
    switchboard_router::service::start(router, shutdown.clone())
        .await
        .unwrap();
    let gw_a = start_gateway("gwa", &key, &bus, &shutdown).await;
    let gw_b = start_gateway("gwb", &key, &bus, &shutdown).await;

    // alice on gateway A; bob and carol on gateway B; all in one group.
    let (a_channel, alice) = login(&gw_a, "alice").await;
    let mut members = Vec::new();
    for user in ["bob", "carol"] {
        members.push(login(&gw_b, user).await);
    }
    let group = GroupServiceClient::new(a_channel.clone())
        .create_group(authed(
            pb::CreateGroupRequest {
                name: "Traced".into(),
                policy: pb::JoinPolicy::Open as i32,
                invite: vec![],
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    let mut streams = Vec::new();
    for (channel, token) in &members {
        let mut groups = GroupServiceClient::new(channel.clone());
        groups
            .join_group(authed(
                pb::JoinGroupRequest {
                    group_id: group.group_id.clone(),
                },
                token,
            ))
            .await
            .unwrap();
        let mut chat = ChatServiceClient::new(channel.clone());
        let mut stream = chat
            .subscribe(authed(pb::SubscribeRequest::default(), token))
            .await
            .unwrap()
            .into_inner();
        while !matches!(
            stream.message().await.unwrap().unwrap().kind,
            Some(pb::event::Kind::Synced(_))
        ) {}
        streams.push(stream);
    }
    let mut alice_chat = ChatServiceClient::new(a_channel);
    let mut alice_stream = alice_chat
        .subscribe(authed(pb::SubscribeRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    while !matches!(
        alice_stream.message().await.unwrap().unwrap().kind,
        Some(pb::event::Kind::Synced(_))
    ) {}
    streams.push(alice_stream);

    alice_chat
        .send(authed(
            pb::SendRequest {
                to: Some(To::GroupId(group.group_id.clone())),
                client_msg_id: "traced-1".into(),
                text: "follow me".into(),
            },
            &alice,
        ))
        .await
        .unwrap();
    for stream in &mut streams {
        loop {
            let event = tokio::time::timeout(WAIT, stream.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if matches!(&event.kind, Some(pb::event::Kind::Message(m)) if m.text == "follow me") {
                break;
            }
        }
    }

    // Every span of the Send call's trace, once all have ended.
    let spans = switchboard_testkit::eventually(WAIT, "the whole trace to be exported", || {
        let exporter = exporter.clone();
        let provider = provider.clone();
        async move {
            let _ = provider.force_flush();
            let spans = exporter.get_finished_spans().ok()?;
            let send = spans.iter().find(|s| {
                s.name == "grpc.request"
                    && attribute(s, "rpc.method").is_some_and(|m| m.ends_with("ChatService/Send"))
            })?;
            let trace: Vec<SpanData> = spans
                .iter()
                .filter(|s| s.span_context.trace_id() == send.span_context.trace_id())
                .cloned()
                .collect();
            let writes = trace.iter().filter(|s| s.name == "stream.write").count();
            (writes == 3).then_some(trace)
        }
    })
    .await;

    let by_id: HashMap<SpanId, &SpanData> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    let parent_name = |span: &SpanData| by_id.get(&span.parent_span_id).map(|p| p.name.to_string());
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let trace_id: TraceId = spans[0].span_context.trace_id();
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace_id));

    // gateway A receives the call and asks a router...
    let rpc = named("router.rpc");
    assert_eq!(rpc.len(), 1);
    assert_eq!(attribute(rpc[0], "op").as_deref(), Some("send"));
    assert_eq!(parent_name(rpc[0]).as_deref(), Some("grpc.request"));
    // ...which stores it (its store calls are in the trace) and delivers it...
    let stores: Vec<String> = named("store")
        .iter()
        .filter_map(|s| attribute(s, "operation"))
        .collect();
    assert!(stores.contains(&"append".to_owned()), "{stores:?}");
    let deliver = named("router.deliver");
    assert_eq!(deliver.len(), 1);
    assert_eq!(parent_name(deliver[0]).as_deref(), Some("router.rpc"));
    // ...to each gateway holding a member, once...
    let gateways = named("gateway.deliver");
    assert_eq!(gateways.len(), 2, "gateways A and B each get one delivery");
    assert!(
        gateways
            .iter()
            .all(|g| parent_name(g).as_deref() == Some("router.deliver"))
    );
    // ...which writes it to each member's stream.
    let writes = named("stream.write");
    assert_eq!(writes.len(), 3);
    assert!(
        writes
            .iter()
            .all(|w| parent_name(w).as_deref() == Some("gateway.deliver"))
    );
    shutdown.token.cancel();
}
