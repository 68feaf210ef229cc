//! The `switchboard` binary: parse flags, set up logging, run one role.

/// jemalloc, not glibc malloc: same CPU per message, but glibc kept what a
/// burst of logins freed (routers stayed at 110-340 MiB after the load
/// generator's logins; 21 MiB with jemalloc). mimalloc was tried too: it
/// cost gateways more memory per idle stream. Figures in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod cli;
pub mod health;
pub mod metrics;
pub mod roles;

use std::process::ExitCode;

use clap::Parser as _;
use switchboard_shared::telemetry;

use cli::{Cli, Role};

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let service = match &cli.role {
        Some(Role::Gateway(_)) => "switchboard-gateway",
        Some(Role::Router(_)) => "switchboard-router",
        Some(Role::Presence(_)) => "switchboard-presence",
        Some(Role::Standalone(_)) | None => "switchboard",
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("switchboard: cannot start the runtime: {err}");
            }
            return ExitCode::FAILURE;
        }
    };
    // The OTLP exporter's gRPC channel needs the runtime to exist when it is
    // built, so telemetry starts inside it; it is flushed (dropped) before the
    // runtime goes away.
    let telemetry = {
        let _context = runtime.enter();
        telemetry::init(cli.log.log_format, service)
    };
    let result = runtime.block_on(async move {
        match cli.role {
            Some(Role::Gateway(role)) => roles::gateway(role).await,
            Some(Role::Router(role)) => roles::router(role).await,
            Some(Role::Presence(role)) => roles::presence(role).await,
            Some(Role::Standalone(args)) => roles::standalone(args).await,
            None => roles::standalone(cli.standalone).await,
        }
    });
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "switchboard stopped");
            ExitCode::FAILURE
        }
    }
}
