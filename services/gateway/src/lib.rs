//! The gateway: holds client connections and nothing else.
//!
//! It authenticates each call, forwards actions to the routers over the bus,
//! registers connections with presence, and pushes the deliveries routers
//! send it down each client's one stream ([`connection`]). Browsers reach the
//! same services over gRPC-Web.

pub mod admission;
pub mod api;
pub mod auth;
pub mod config;
pub mod connection;
pub mod cors;
pub mod delivered;
pub mod dispatch;
pub mod error;
pub mod limits;
pub mod listener;
pub mod presence;
pub mod registry;
pub mod sequencer;
pub mod tls;
pub mod upstream;
pub mod web;

use std::sync::Arc;

use switchboard_proto::bus::GatewayState;
use switchboard_proto::pb;
use switchboard_shared::bus::SharedBus;
use switchboard_shared::ids::GatewayId;
use switchboard_shared::shutdown::Shutdown;
use tokio::net::TcpListener;
use tonic::Status;

pub use config::GatewayConfig;

use presence::PresenceClient;
use registry::Registry;
use upstream::RouterClient;

/// What every handler and connection of one gateway shares.
pub struct Shared {
    pub config: GatewayConfig,
    /// Verifies the session tokens clients call with.
    pub token_key: switchboard_shared::token::TokenKey,
    pub id: GatewayId,
    pub bus: SharedBus,
    pub router: RouterClient,
    pub presence: PresenceClient,
    pub registry: Registry,
    pub delivered: delivered::DeliveredReporter,
    pub send_limiter: limits::RateLimiter,
    /// Every call's cost, per user.
    pub call_limiter: limits::RateLimiter,
    /// Registrations and logins, per client address.
    pub anonymous_limiter: limits::RateLimiter<std::net::IpAddr>,
    /// Open SendStream calls per user.
    pub send_streams: Arc<limits::PerUserCap>,
    /// Typing notices passed on, per user and conversation (one per 2 s).
    pub typing: limits::Recently,
    /// Cancelled when the gateway starts draining: new subscriptions go
    /// elsewhere and open send streams end.
    pub draining: switchboard_shared::shutdown::CancellationToken,
}

/// Sends presence everything this gateway holds.
pub async fn resync(shared: &Shared) -> error::GatewayResult<()> {
    let (connections, groups) = shared.registry.snapshot();
    shared
        .presence
        .resync(GatewayState {
            gateway_id: shared.id.to_string(),
            connections,
            groups: groups.iter().map(ToString::to_string).collect(),
            ttl_ms: shared.presence.ttl_ms(),
        })
        .await
}

pub fn spawn_resync(shared: Arc<Shared>) {
    tokio::spawn(async move {
        if let Err(err) = resync(&shared).await {
            tracing::warn!(%err, "presence resync failed; the next heartbeat retries");
        }
    });
}

pub struct Gateway {
    shared: Arc<Shared>,
    shutdown: Shutdown,
    /// The certificate clients see, when the port speaks TLS.
    tls: Option<Arc<tls::Certificates>>,
}

impl Gateway {
    /// Registers with presence and starts receiving deliveries.
    pub async fn start(
        config: GatewayConfig,
        token_key: switchboard_shared::token::TokenKey,
        bus: SharedBus,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let tls = config
            .tls
            .files()?
            .map(tls::Certificates::load)
            .transpose()?;
        let id = GatewayId::for_boot(&config.name)?;
        let presence = PresenceClient::start(bus.clone(), id.clone(), config.presence_ttl);
        let shared = Arc::new(Shared {
            router: RouterClient::new(bus.clone(), config.router_timeout),
            registry: Registry::new(presence.clone()),
            delivered: delivered::DeliveredReporter::start(bus.clone()),
            draining: switchboard_shared::shutdown::CancellationToken::new(),
            send_limiter: limits::RateLimiter::new(
                config.limits.send_rate_per_second,
                config.limits.send_burst,
            ),
            call_limiter: limits::RateLimiter::new(
                config.limits.call_rate_per_second,
                config.limits.call_burst,
            ),
            typing: limits::Recently::new(std::time::Duration::from_secs(2)),
            anonymous_limiter: limits::RateLimiter::new(
                config.limits.anonymous_rate_per_second,
                config.limits.anonymous_burst,
            ),
            send_streams: limits::PerUserCap::new(config.limits.max_send_streams_per_user),
            presence,
            config,
            token_key,
            id,
            bus,
        });
        dispatch::start(shared.clone(), shutdown.clone()).await?;
        if let Err(err) = resync(&shared).await {
            tracing::warn!(%err, "presence registration failed; retrying on heartbeat");
        }
        shutdown
            .tracker
            .spawn(heartbeat(shared.clone(), shutdown.clone()));
        tracing::info!(gateway = %shared.id, "gateway started");
        Ok(Self {
            shared,
            shutdown,
            tls,
        })
    }

    pub fn id(&self) -> &GatewayId {
        &self.shared.id
    }

    /// Whether clients reach this gateway over TLS.
    pub fn speaks_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The client-facing gRPC services (each also reachable over gRPC-Web),
    /// and the web page for every other path.
    pub fn routes(&self) -> tonic::service::Routes {
        let grpc = self.grpc_routes().into_axum_router();
        tonic::service::Routes::from(grpc.fallback(web::serve))
    }

    fn grpc_routes(&self) -> tonic::service::Routes {
        use tower::Layer as _;
        let api = api::Api::new(self.shared.clone());
        let max = self.shared.config.max_frame_bytes();
        let web = tonic_web::GrpcWebLayer::new();
        tonic::service::Routes::new(
            web.layer(
                pb::account_service_server::AccountServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            ),
        )
        .add_service(
            web.layer(
                pb::contact_service_server::ContactServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            ),
        )
        .add_service(
            web.layer(
                pb::chat_service_server::ChatServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            ),
        )
        .add_service(
            web.layer(
                pb::group_service_server::GroupServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            ),
        )
        .add_service(web.layer(
            pb::topic_service_server::TopicServiceServer::new(api).max_decoding_message_size(max),
        ))
    }

    /// Serves `routes` (usually [`Gateway::routes`] plus health) on
    /// `listener` until shutdown, then ends every stream with a reconnect
    /// notice and tells presence this gateway is gone.
    pub async fn serve_routes(
        self,
        listener: TcpListener,
        routes: tonic::service::Routes,
    ) -> anyhow::Result<()> {
        let token = self.shutdown.token.clone();
        let shared = self.shared.clone();
        let stop = async move {
            token.cancelled().await;
            drain(&shared).await;
        };
        let limits = &self.shared.config.limits;
        let connections = listener::Connections::new(limits.connections.clone());
        self.shutdown
            .tracker
            .spawn(connections.clone().sweep(self.shutdown.token.clone()));
        let tls = match &self.tls {
            Some(certificates) => {
                self.shutdown
                    .tracker
                    .spawn(certificates.clone().watch(self.shutdown.token.clone()));
                Some(tokio_rustls::TlsAcceptor::from(
                    certificates.server_config()?,
                ))
            }
            None => None,
        };
        let incoming =
            listener::incoming(listener, connections, tls, self.shutdown.tracker.clone());
        tonic::transport::Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .http2_max_header_list_size(limits.max_header_list_bytes)
            .http2_max_pending_accept_reset_streams(Some(limits.max_pending_reset_streams))
            .http2_max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
            .trace_fn(request_span)
            .layer(tower::util::option_layer(
                self.shared.config.allowed_origins.layer(),
            ))
            .layer(limits::OversizeLayer)
            .layer(admission::AdmissionLayer::new(
                self.shared.token_key.clone(),
                limits.request_body_timeout,
            ))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, stop)
            .await?;
        Ok(())
    }
}

/// One span per client call, continuing the client's trace if it sent one.
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc.request",
        rpc.method = request.uri().path(),
        trace_id = tracing::field::Empty
    );
    if switchboard_shared::telemetry::tracing_enabled() {
        let headers: Vec<(String, String)> = ["traceparent", "tracestate"]
            .into_iter()
            .filter_map(|name| {
                let value = request.headers().get(name)?.to_str().ok()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect();
        switchboard_shared::telemetry::continue_from(&span, &headers);
    }
    span
}

/// Tells every client to reconnect elsewhere and presence to forget us.
async fn drain(shared: &Shared) {
    shared.draining.cancel();
    let connections = shared.registry.all();
    tracing::info!(connections = connections.len(), "draining");
    for entry in connections {
        entry.ending.end(
            Some(pb::Event {
                kind: Some(pb::event::Kind::Reconnect(pb::Reconnect {
                    reason: "this gateway is shutting down".into(),
                    retry_after_ms: 0,
                })),
            }),
            Status::unavailable("the gateway is shutting down; reconnect"),
            switchboard_shared::metrics::reason::DRAIN,
        );
    }
    if let Err(err) = shared.presence.stopping().await {
        tracing::warn!(%err, "cannot tell presence this gateway stops; it will reap us");
    }
}

/// Keeps this gateway alive in presence, resyncing when presence lost us.
async fn heartbeat(shared: Arc<Shared>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(shared.config.presence_heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.token.cancelled() => return,
            _ = tick.tick() => {}
        }
        match shared.presence.heartbeat().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("presence does not know this gateway; resyncing");
                if let Err(err) = resync(&shared).await {
                    tracing::warn!(%err, "presence resync failed");
                }
            }
            Err(err) => tracing::warn!(%err, "presence heartbeat failed"),
        }
    }
}
