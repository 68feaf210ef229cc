//! The load generator's smoke run against a real cluster: every kind of
//! traffic, every delivery checked (no loss, gap, duplicate). Speed is not
//! judged here; BENCHMARKS.md is where it is measured.

use clap::Parser as _;
use switchboard_loadgen::{Cli, run};

use crate::harness::{Cluster, Mode};

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
