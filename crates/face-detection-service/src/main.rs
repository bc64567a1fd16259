//! face-detection-service binary: parse settings, then serve, healthcheck or bench.

use anyhow::Context;
use clap::Parser;
use face_detection_service::{app, AppState, Args};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let (healthcheck, port) = (args.server.healthcheck, args.port);
    service_kit::entry::main("face-detection-service", healthcheck, port, || run(args))
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
    let serve = state.kit.serve.clone();
    service_kit::entry::serve_blocking(&args.hostname, args.port, app(state), serve)?;
    Ok(())
}
