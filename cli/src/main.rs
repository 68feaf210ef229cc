//! `sb`, the Switchboard command-line client.

mod args;
mod client;
mod commands;
mod output;
mod profile;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let args = args::Args::parse();
    let out = output::Output::new(args.json);
    match commands::run(args, &out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::FAILURE
        }
    }
}
