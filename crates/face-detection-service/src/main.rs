//! face-detection-service binary: parse settings, then serve, healthcheck or bench.

use anyhow::Context;
use clap::Parser;
use face_detection_service::{app, AppState, Args};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.server.healthcheck {
        return std::process::ExitCode::from(service_kit::healthcheck::run(args.port) as u8);
    }
    service_kit::logging::init();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "face-detection-service failed");
            eprintln!("face-detection-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let state = AppState::load(&args).context("cannot start face detection")?;
    if let Some(n) = args.bench_inference {
        let path = args
            .bench_image
            .context("--bench-inference needs --bench-image <file>")?;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let image = service_kit::imaging::decode(&bytes, args.server.image_limits())
            .with_context(|| format!("cannot decode {}", path.display()))?;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let (_, took) = state.detector.detect(&image, None)?;
            times.push(took.as_secs_f64() * 1e3);
        }
        println!(
            "{}",
            service_kit::metrics::summary_json("face-detection", &mut times)
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
