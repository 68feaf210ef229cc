//! The gateway: holds client connections and nothing else.
//!
//! It authenticates each call, forwards actions to the routers over the bus,
//! registers connections with presence, and pushes the deliveries routers
//! send it down each client's one stream ([`connection`]). Browsers reach the
//! same services over gRPC-Web.

pub mod api;
pub mod auth;
pub mod config;
pub mod connection;
pub mod delivered;
pub mod dispatch;
pub mod error;
pub mod limits;
pub mod presence;
pub mod registry;
pub mod upstream;
pub mod web;

use std::sync::Arc;

use switchboard_proto::bus::GatewayState;
use switchboard_proto::pb;
use switchboard_shared::bus::SharedBus;
use switchboard_shared::ids::GatewayId;
use switchboard_shared::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;

pub use config::GatewayConfig;

use presence::PresenceClient;
use registry::Registry;
use upstream::RouterClient;

/// What every handler and connection of one gateway shares.
pub struct Shared {
    pub config: GatewayConfig,
    pub id: GatewayId,
    pub bus: SharedBus,
    pub router: RouterClient,
    pub presence: PresenceClient,
    pub registry: Registry,
    pub delivered: delivered::DeliveredReporter,
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
}

impl Gateway {
    /// Registers with presence and starts receiving deliveries.
    pub async fn start(
        config: GatewayConfig,
        bus: SharedBus,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let id = GatewayId::for_boot(&config.name)?;
        let presence = PresenceClient::start(bus.clone(), id.clone(), config.presence_ttl);
        let shared = Arc::new(Shared {
            router: RouterClient::new(bus.clone(), config.router_timeout, config.router_attempts),
            registry: Registry::new(presence.clone()),
            delivered: delivered::DeliveredReporter::start(bus.clone()),
            presence,
            config,
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
        Ok(Self { shared, shutdown })
    }

    pub fn id(&self) -> &GatewayId {
        &self.shared.id
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
        let max = self.shared.config.max_request_bytes;
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
        tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(limits::OversizeLayer)
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
            .await?;
        Ok(())
    }
}

/// Tells every client to reconnect elsewhere and presence to forget us.
async fn drain(shared: &Shared) {
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
