//! The load generator's smoke run against a real cluster: every kind of
//! traffic, every delivery checked (no loss, gap, duplicate). Speed is not
//! judged here; BENCHMARKS.md is where it is measured.

use clap::Parser as _;
use switchboard_loadgen::{Cli, run};

use crate::harness::{Cluster, Mode, Options, test_ca};

/// The smoke scenario against `gateways`, with `extra` flags; passes only
/// if it saw no correctness problem.
async fn smoke(gateways: &str, extra: &[&str]) {
    let mut args = vec![
        "switchboard-loadgen",
        "--gateways",
        gateways,
        "--sources",
        "1",
    ];
    args.extend_from_slice(extra);
    args.push("smoke");
    assert!(
        run(Cli::parse_from(args)).await.unwrap(),
        "the smoke run saw a correctness problem (see its report above)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_smoke_run_is_clean() {
    let cluster = Cluster::start(Mode::distributed()).await;
    let gateways = format!("{},{}", cluster.gateway_url(0), cluster.gateway_url(1));
    smoke(&gateways, &[]).await;
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
    smoke(&gateway, &["--ca", ca.to_str().unwrap()]).await;
}
