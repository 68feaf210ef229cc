//! The end-to-end harness: a cluster builder (real processes, cleaned up on
//! drop) and gRPC test clients.

pub mod client;
pub mod cluster;
pub mod push_service;
pub mod raw;
pub mod webhook_receiver;

pub use client::{Events, User};
pub use cluster::{Cluster, Mode, Options};

use std::time::Duration;

/// The tests' certificate authority: every gateway started with TLS has a
/// certificate it issued, and every test client trusts it.
pub fn test_ca() -> &'static switchboard_testkit::tls::TestCa {
    static CA: std::sync::OnceLock<switchboard_testkit::tls::TestCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| switchboard_testkit::tls::TestCa::new("Switchboard test CA"))
}

/// How long any single expected thing may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Prints what a test measured, for the notes that quote it
/// (`cargo nextest run … --no-capture | grep figure:`). Tests assert bounds;
/// this says where in the bound a run landed.
pub fn figure(what: &str, value: impl std::fmt::Debug) {
    eprintln!("figure: {what}: {value:?}");
}

/// Runs a scenario against the distributed deployment (NATS + Redis, two
/// gateways, two routers, presence), against the same on a Redis Cluster
/// (three primaries, a replica each), and against the standalone mode.
#[macro_export]
macro_rules! both_modes {
    ($(#[$meta:meta])* $name:ident, $scenario:ident) => {
        $(#[$meta])*
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats_redis() {
                let cluster = $crate::harness::Cluster::start($crate::harness::Mode::distributed()).await;
                super::$scenario(cluster).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() {
                let options = $crate::harness::Options {
                    redis_cluster: true,
                    ..$crate::harness::Options::default()
                };
                let cluster = $crate::harness::Cluster::start_with(
                    $crate::harness::Mode::distributed(),
                    options,
                )
                .await;
                super::$scenario(cluster).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                let cluster = $crate::harness::Cluster::start($crate::harness::Mode::Standalone).await;
                super::$scenario(cluster).await;
            }
        }
    };
}
