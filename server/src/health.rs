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
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            shutdown.token.cancelled_owned(),
        )
        .await?;
    Ok(())
}
