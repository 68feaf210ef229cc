//! The load generator's smoke run against a real cluster: every kind of
//! traffic, every delivery checked (no loss, gap, duplicate). Speed is not
//! judged here; BENCHMARKS.md is where it is measured.

use clap::Parser as _;
use switchboard_loadgen::{Cli, run};

use crate::harness::{Cluster, Mode, Options, test_ca};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_smoke_run_is_clean() {
    let cluster = Cluster::start(Mode::distributed()).await;
    let gateways = format!("{},{}", cluster.gateway_url(0), cluster.gateway_url(1));
    let cli = Cli::parse_from([
        "switchboard-loadgen",
        "--gateways",
        &gateways,
        "--sources",
        "1",
        "smoke",
    ]);
    assert!(
        run(cli).await.unwrap(),
        "the smoke run saw a correctness problem (see its report above)"
    );
}

/// The same run against gateways that speak TLS, trusting their CA by `--ca`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_speaks_tls() {
    let options = Options {
        tls: true,
        ..Options::default()
    };
    let cluster = Cluster::start_with(Mode::Standalone, options).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, test_ca().pem()).unwrap();
    let gateway = cluster.gateway_url(0);
    assert!(gateway.starts_with("https://"));
    let cli = Cli::parse_from([
        "switchboard-loadgen",
        "--gateways",
        &gateway,
        "--ca",
        &ca.display().to_string(),
        "--sources",
        "1",
        "smoke",
    ]);
    assert!(
        run(cli).await.unwrap(),
        "the smoke run saw a correctness problem (see its report above)"
    );
}
