//! gRPC health (`grpc.health.v1`). The empty service name is readiness,
//! `liveness` is liveness: Kubernetes' grpc probes ask for each.

use std::net::SocketAddr;

use switchboard_shared::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

pub const READINESS: &str = "";
pub const LIVENESS: &str = "liveness";

pub struct Health {
    pub reporter: HealthReporter,
    pub service: HealthServer<HealthService>,
}

/// Live, not yet ready.
pub async fn new() -> Health {
    let reporter = HealthReporter::new();
    let service = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    reporter
        .set_service_status(READINESS, ServingStatus::NotServing)
        .await;
    Health { reporter, service }
}

pub async fn ready(reporter: &HealthReporter, ready: bool) {
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status(READINESS, status).await;
}

/// Keeps readiness in step with what the process needs: the bus, and for
/// routers and presence the store.
pub async fn watch_readiness(
    reporter: HealthReporter,
    bus: switchboard_shared::bus::SharedBus,
    redis: Option<switchboard_shared::redis_pool::Pool>,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut was_ready = true;
    loop {
        tokio::select! {
            () = shutdown.token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let redis_ok = match &redis {
            Some(pool) => switchboard_shared::redis_pool::ping(pool).await,
            None => true,
        };
        let is_ready = bus.is_connected() && redis_ok;
        if is_ready != was_ready {
            tracing::warn!(
                ready = is_ready,
                nats = bus.is_connected(),
                redis = redis_ok,
                "readiness changed"
            );
            ready(&reporter, is_ready).await;
            was_ready = is_ready;
        }
    }
}

/// gRPC reflection for every Switchboard service, so grpcurl or `buf curl`
/// can list and call them.
pub fn reflection() -> anyhow::Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?)
}

/// Serves health alone on its own port (routers and presence have no other).
pub async fn serve_alone(
    health: Health,
    addr: SocketAddr,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "health listening");
    tonic::transport::Server::builder()
        .add_service(health.service)
        .add_service(reflection()?)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            shutdown.token.cancelled_owned(),
        )
        .await?;
    Ok(())
}
