//! face-embedding-service binary: parse settings, then serve, healthcheck or bench.

use anyhow::Context;
use clap::Parser;
use face_embedding_service::{app, AppState, Args};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.server.healthcheck {
        return std::process::ExitCode::from(service_kit::healthcheck::run(args.port) as u8);
    }
    service_kit::logging::init();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "face-embedding-service failed");
            eprintln!("face-embedding-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let state = AppState::load(&args).context("cannot start face embedding")?;
    if let Some(n) = args.bench_inference {
        // A mid-grey crop: run time does not depend on pixel values.
        let face = image::RgbImage::from_pixel(112, 112, image::Rgb([128, 128, 128]));
        let mut times = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let (_, took) = state.embedder.embed(&face)?;
            times.push(took.as_secs_f64() * 1e3);
        }
        println!(
            "{}",
            service_kit::metrics::summary_json("face-embedding", &mut times)
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start tokio")?;
    runtime.block_on(async {
        let listener = service_kit::shutdown::bind(&args.hostname, args.port).await?;
        service_kit::shutdown::serve(listener, app(state), args.server.drain()).await?;
        Ok(())
    })
}
