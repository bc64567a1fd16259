//! scoring-service binary: parse settings, then serve, healthcheck or bench.

use anyhow::Context;
use clap::Parser;
use scoring_service::{app, AppState, Args};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.server.healthcheck {
        return std::process::ExitCode::from(service_kit::healthcheck::run(args.port) as u8);
    }
    service_kit::logging::init();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "scoring-service failed");
            eprintln!("scoring-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let state = AppState::new(&args).context("cannot start scoring")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start tokio")?;
    runtime.block_on(async {
        let listener = service_kit::shutdown::bind(&args.hostname, args.port).await?;
        service_kit::shutdown::serve(listener, app(state), args.server.drain()).await?;
        Ok(())
    })
}
