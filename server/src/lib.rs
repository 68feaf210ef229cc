//! The `switchboard` binary: parse flags, set up logging, run one role.

/// jemalloc, not glibc malloc: same CPU per message, but glibc kept what a
/// burst of logins freed (routers stayed at 110-340 MiB after the load
/// generator's logins; 21 MiB with jemalloc). mimalloc was tried too: it
/// cost gateways more memory per idle stream. Figures in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod admin;
pub mod cli;
pub mod config_file;
pub mod health;
pub mod metrics;
pub mod roles;

use std::process::ExitCode;

use clap::FromArgMatches as _;
use switchboard_shared::telemetry;

use cli::{Cli, GentokenArgs, Mode};

#[allow(clippy::print_stderr)]
fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("switchboard: {err:#}");
    ExitCode::FAILURE
}

/// The command line read with the config file's values as defaults (see
/// [`config_file`]); help, version and usage errors exit here as clap's do.
fn parse() -> anyhow::Result<Cli> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = crate::cli::command();
    if let Some(path) = config_file::path_in(&args, std::env::var_os("SB_CONFIG")) {
        command = config_file::apply_file(command, &path)?;
    }
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).map_err(|err| err.exit())
}

fn gentoken(args: &GentokenArgs) -> anyhow::Result<String> {
    let pem = std::fs::read(&args.jwt_private_key)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.jwt_private_key.display()))?;
    let ttl = i64::try_from(args.ttl_secs).unwrap_or(i64::MAX / 2);
    let request = switchboard_router::app_tokens::AppTokenRequest {
        issuer: &args.jwt_issuer,
        audience: &args.jwt_audience,
        sub: &args.user,
        name: args.name.as_deref(),
        expires_at_secs: switchboard_shared::clock::now_ms() / 1000 + ttl,
    };
    switchboard_router::app_tokens::sign(&pem, &request).map_err(anyhow::Error::msg)
}

/// The commands that print something and end: no runtime, no logging.
#[allow(clippy::print_stdout)]
fn print(mode: &Mode) -> Option<anyhow::Result<()>> {
    let text = match mode {
        Mode::Genconfig(args) => Ok(config_file::generate(&crate::cli::command(), args.role)),
        Mode::Gentoken(args) => gentoken(args),
        _ => return None,
    };
    Some(text.map(|text| println!("{}", text.trim_end())))
}

pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(err) => return fail(&err),
    };
    if let Some(printed) = cli.mode.as_ref().and_then(print) {
        return printed.map_or_else(|err| fail(&err), |()| ExitCode::SUCCESS);
    }
    let service = match &cli.mode {
        Some(Mode::Gateway(_)) => "switchboard-gateway",
        Some(Mode::Router(_)) => "switchboard-router",
        Some(Mode::Presence(_)) => "switchboard-presence",
        Some(Mode::Standalone(_) | Mode::Genconfig(_) | Mode::Gentoken(_)) | None => "switchboard",
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
        match cli.mode {
            Some(Mode::Gateway(role)) => roles::gateway(role).await,
            Some(Mode::Router(role)) => roles::router(role).await,
            Some(Mode::Presence(role)) => roles::presence(role).await,
            Some(Mode::Standalone(args)) => roles::standalone(args).await,
            Some(Mode::Genconfig(_) | Mode::Gentoken(_)) => Ok(()),
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
