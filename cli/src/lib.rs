//! `sb`, the Switchboard command-line client. The binary is `main.rs`; all of
//! it lives here so tests can run the same entry point.

mod args;
mod client;
mod commands;
mod output;
mod profile;

use std::process::ExitCode;

use clap::Parser as _;

pub fn main() -> ExitCode {
    let args = args::Args::parse();
    let out = output::Output::new(args.json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            out.error(&err.into());
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(args, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::FAILURE
        }
    }
}
