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
        let input = face_embedding_service::tensor(&face);
        let shape = input.shape().to_vec();
        let input = input.as_slice().context("tensor is contiguous")?;
        let (mut times, wall) = service_kit::onnx::bench_raw(
            state.embedder.model(),
            &shape,
            input,
            n,
            args.bench_clients,
        )?;
        let mut v: serde_json::Value = serde_json::from_str(&service_kit::metrics::summary_json(
            "face-embedding",
            &mut times,
        ))?;
        let threads = args.ort.threads();
        v["clients"] = args.bench_clients.into();
        v["sessions"] = threads.sessions.into();
        v["intra_threads"] = threads.intra.into();
        v["runs_per_s"] = (times.len() as f64 / wall.as_secs_f64()).into();
        println!("{v}");
        return Ok(());
    }
    if let (Some(n), Some(url), Some(path)) =
        (args.bench_paired, &args.bench_url, &args.bench_image)
    {
        return paired(&state, &args, n, url, path);
    }
    let serve = state.kit.serve.clone();
    service_kit::entry::serve_blocking(&args.hostname, args.port, app(state), serve)?;
    Ok(())
}

/// `--bench-paired`: raw runs on the crop's tensor alternated with POSTs of
/// the crop to a running service (`service_kit::bench`).
fn paired(
    state: &AppState,
    args: &Args,
    n: usize,
    url: &str,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let face = service_kit::imaging::decode(&bytes, args.server.image_limits())
        .with_context(|| format!("cannot decode {}", path.display()))?;
    let input = face_embedding_service::tensor(&face);
    let shape = input.shape().to_vec();
    let input = input.as_slice().context("tensor is contiguous")?;
    let summary = service_kit::bench::run_paired(
        "face-embedding",
        state.embedder.model(),
        &shape,
        input,
        url,
        &bytes,
        n,
    )?;
    println!("{summary}");
    Ok(())
}
