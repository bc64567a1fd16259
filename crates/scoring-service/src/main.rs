//! scoring-service binary: parse settings, then serve, healthcheck or bench.

use anyhow::Context;
use clap::Parser;
use scoring_service::{app, AppState, Args};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let (healthcheck, port) = (args.server.healthcheck, args.port);
    service_kit::entry::main("scoring-service", healthcheck, port, || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let state = AppState::new(&args).context("cannot start scoring")?;
    let serve = state.kit.serve.clone();
    service_kit::entry::serve_blocking(&args.hostname, args.port, app(state), serve)?;
    Ok(())
}
