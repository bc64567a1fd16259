//! face-embedding-service binary: parse settings, then serve, healthcheck or bench.

use anyhow::Context;
use clap::Parser;
use face_embedding_service::{app, AppState, Args};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let (healthcheck, port) = (args.server.healthcheck, args.port);
    service_kit::entry::main("face-embedding-service", healthcheck, port, || run(args))
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
    let serve = state.kit.serve.clone();
    service_kit::entry::serve_blocking(&args.hostname, args.port, app(state), serve)?;
    Ok(())
}
