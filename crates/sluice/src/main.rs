//! `sluice`: the gateway and its admin CLI in one binary.
//!
//! - `sluice gateway`: runs the gateway ([`sluice_gateway::run`]).
//! - every other command talks to a gateway's REST API ([`cli`]).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
