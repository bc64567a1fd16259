//! face-detection-service binary: parse settings, then serve, healthcheck or bench.

use anyhow::Context;
use clap::Parser;
use std::time::{Duration, Instant};

use face_detection_service::letterbox::Letterbox;
use face_detection_service::{app, AppState, Args, DetectResponse};
use service_kit::onnx;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let (healthcheck, port) = (args.server.healthcheck, args.port);
    service_kit::entry::main("face-detection-service", healthcheck, port, || run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let state = AppState::load(&args).context("cannot start face detection")?;
    if args.bench_inference.is_some() || args.bench_stages.is_some() || args.bench_paired.is_some()
    {
        return bench(&args, &state);
    }
    let serve = state.kit.serve.clone();
    service_kit::entry::serve_blocking(&args.hostname, args.port, app(state), serve)?;
    Ok(())
}

/// `--bench-inference`: raw model runs at `--bench-clients`;
/// `--bench-stages`: whole detections, timed stage by stage;
/// `--bench-paired`: raw runs alternated with requests to a running service.
fn bench(args: &Args, state: &AppState) -> anyhow::Result<()> {
    let path = args.bench_image.as_ref().context(
        "--bench-inference, --bench-stages and --bench-paired need --bench-image <file>",
    )?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let limits = args.server.image_limits();
    let image = service_kit::imaging::decode(&bytes, limits)
        .with_context(|| format!("cannot decode {}", path.display()))?;
    let detector = &state.detector;
    let side = detector.config().input_size;
    // The letterboxed tensor, the raw runs' input in all three benchmarks.
    let ready = Letterbox::new(image.width(), image.height(), side).tensor(&image);
    let ready_shape = ready.shape().to_vec();
    let ready = ready.as_slice().context("tensor is contiguous")?;
    if let Some(n) = args.bench_inference {
        let (mut times, wall) =
            onnx::bench_raw(detector.model(), &ready_shape, ready, n, args.bench_clients)?;
        let summary = service_kit::metrics::summary_json("face-detection", &mut times);
        println!("{}", with_rate(&summary, times.len(), wall, args));
        return Ok(());
    }
    if let (Some(n), Some(url)) = (args.bench_paired, &args.bench_url) {
        let model = detector.model();
        let summary = service_kit::bench::run_paired(
            "face-detection",
            model,
            &ready_shape,
            ready,
            url,
            &bytes,
            n,
        )?;
        println!("{summary}");
        return Ok(());
    }
    let n = args.bench_stages.unwrap_or(1).max(1);
    // Raw runs on the ready tensor, interleaved with the detections (one
    // each per round, same process and sessions): the run stage's baseline.
    let names = [
        "decode",
        "letterbox",
        "run",
        "post",
        "json",
        "total",
        "raw_run",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(n); names.len()];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for _ in 0..n {
        let raw_run = onnx::time_raw_run(detector.model(), &ready_shape, ready)?;
        let started = Instant::now();
        let (image, faces, stages) =
            detector.detect_encoded(|| service_kit::imaging::decode(&bytes, limits), None)?;
        let json_started = Instant::now();
        let body = serde_json::to_vec(&DetectResponse {
            face_count: faces.len(),
            faces,
            width: image.width(),
            height: image.height(),
            inference_ms: ms(stages.run),
        })?;
        std::hint::black_box(body);
        let json = json_started.elapsed();
        for (t, d) in times.iter_mut().zip([
            stages.decode,
            stages.letterbox,
            stages.run,
            stages.post,
            json,
            started.elapsed(),
            raw_run,
        ]) {
            t.push(ms(d));
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let mut out = serde_json::Map::new();
    out.insert("runs".into(), n.into());
    for (name, t) in names.iter().zip(times.iter_mut()) {
        out.insert(format!("{name}_p50_ms"), median(t).into());
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// Adds clients, sessions, threads and runs per second to a summary line.
fn with_rate(summary: &str, runs: usize, wall: Duration, args: &Args) -> String {
    let mut v: serde_json::Value = serde_json::from_str(summary).expect("summary is JSON");
    let threads = args.ort.threads();
    v["clients"] = args.bench_clients.into();
    v["sessions"] = threads.sessions.into();
    v["intra_threads"] = threads.intra.into();
    v["runs_per_s"] = (runs as f64 / wall.as_secs_f64()).into();
    v.to_string()
}
