//! gRPC health (`grpc.health.v1`). The empty service name is readiness,
//! `liveness` is liveness: Kubernetes' grpc probes ask for each.

use std::net::SocketAddr;

use switchboard_proto::pb;
use switchboard_proto::pb::admin_service_server::AdminServiceServer;
use switchboard_shared::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::admin::AdminApi;

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
/// routers and presence the store. Starts not ready; says ready once every
/// dependency answers, and logs each change naming the dependency and its
/// address. Checks every 200 ms while not ready, every 2 s once ready.
pub async fn watch_readiness(
    reporter: HealthReporter,
    bus: switchboard_shared::bus::SharedBus,
    redis: Option<switchboard_shared::redis_pool::Pool>,
    shutdown: Shutdown,
) {
    let mut was_ready = false;
    loop {
        let redis_ok = match &redis {
            Some(pool) => switchboard_shared::redis_pool::ping(pool).await,
            None => true,
        };
        let bus_ok = bus.is_connected();
        let is_ready = bus_ok && redis_ok;
        if is_ready != was_ready {
            let redis_name = redis.as_ref().map(|pool| pool.name().to_owned());
            if is_ready {
                tracing::info!(bus = bus.name(), redis = ?redis_name, "ready: every dependency answers");
            } else {
                tracing::warn!(
                    bus = bus.name(),
                    bus_up = bus_ok,
                    redis = ?redis_name,
                    redis_up = redis_ok,
                    "not ready: a dependency does not answer"
                );
            }
            ready(&reporter, is_ready).await;
            was_ready = is_ready;
        }
        let every = if is_ready {
            std::time::Duration::from_secs(2)
        } else {
            std::time::Duration::from_millis(200)
        };
        tokio::select! {
            () = shutdown.token.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Adds gRPC reflection to `routes`, in both protocol versions clients use
/// (`grpc.reflection.v1` and the older `v1alpha`, which grpcurl and many
/// others still ask for), describing exactly `services` (the descriptor sets
/// hold more than a given port serves).
fn with_reflection(
    routes: tonic::service::Routes,
    descriptor_sets: &[&'static [u8]],
    services: &[&str],
) -> anyhow::Result<tonic::service::Routes> {
    // Each version lists itself too (naming services replaces the default
    // of listing everything, reflection included).
    let builder = |reflection: &str| {
        let described = descriptor_sets
            .iter()
            .fold(tonic_reflection::server::Builder::configure(), |b, set| {
                b.register_encoded_file_descriptor_set(set)
            });
        services
            .iter()
            .chain([&reflection])
            .fold(described, |b, name| b.with_service_name(*name))
    };
    use tonic_reflection::pb::{v1, v1alpha};
    Ok(routes
        .add_service(builder(v1::server_reflection_server::SERVICE_NAME).build_v1()?)
        .add_service(builder(v1alpha::server_reflection_server::SERVICE_NAME).build_v1alpha()?))
}

const HEALTH: &str = <HealthServer<HealthService> as NamedService>::NAME;
const ADMIN: &str = pb::admin_service_server::SERVICE_NAME;

/// Reflection on a gateway: every Switchboard client service and health
/// (and the admin API where the standalone mode serves it), so grpcurl or
/// `buf curl` can list and call them.
pub fn with_gateway_reflection(
    routes: tonic::service::Routes,
    admin: bool,
) -> anyhow::Result<tonic::service::Routes> {
    let mut services = vec![
        pb::account_service_server::SERVICE_NAME,
        pb::chat_service_server::SERVICE_NAME,
        pb::contact_service_server::SERVICE_NAME,
        pb::group_service_server::SERVICE_NAME,
        pb::topic_service_server::SERVICE_NAME,
        HEALTH,
    ];
    if admin {
        services.push(ADMIN);
    }
    with_reflection(
        routes,
        &[
            switchboard_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ],
        &services,
    )
}

/// Serves health on its own port (routers and presence have no other),
/// with the admin API beside it on a router.
pub async fn serve_alone(
    health: Health,
    addr: SocketAddr,
    admin: Option<AdminServiceServer<AdminApi>>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, admin = admin.is_some(), "health listening");
    let mut routes = tonic::service::Routes::new(health.service);
    let mut described = vec![tonic_health::pb::FILE_DESCRIPTOR_SET];
    let mut services = vec![HEALTH];
    if let Some(admin) = admin {
        routes = routes.add_service(admin);
        described.push(switchboard_proto::FILE_DESCRIPTOR_SET);
        services.push(ADMIN);
    }
    let routes = with_reflection(routes, &described, &services)?;
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            shutdown.token.cancelled_owned(),
        )
        .await?;
    Ok(())
}
