//! Face detection service: `POST /api/v1/detect` finds faces with SCRFD-500M
//! (boxes, scores, five landmarks) on ONNX Runtime.
//!
//! Pre-processing ([`letterbox`]) and post-processing ([`decode`]) are done
//! here in Rust; only the network runs in ONNX Runtime.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use clap::Parser;
//! let args = face_detection_service::Args::parse_from(["face-detection-service"]);
//! let state = face_detection_service::AppState::load(&args)?;
//! let router = face_detection_service::app(state);
//! # let _ = router; Ok(()) }
//! ```

pub mod decode;
pub mod detector;
pub mod helpers;
pub mod letterbox;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use service_kit::config::ServerArgs;
use service_kit::metrics::Metrics;
use service_kit::ready::{Check, Readiness};
use service_kit::{imaging, upload, AppError};

pub use decode::Face;
pub use detector::{Detector, DetectorConfig};

/// Errors of the detection library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shared plumbing failed (runtime, model, image).
    #[error(transparent)]
    Kit(#[from] service_kit::Error),
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The model's outputs are not laid out as SCRFD's.
    #[error("model output layout: {0}")]
    Layout(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Settings, from flags or the environment.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "face-detection-service",
    version,
    about = "SCRFD face detection over HTTP"
)]
pub struct Args {
    /// Address to listen on (set it explicitly in containers: Docker sets HOSTNAME to the container id)
    #[arg(long, env = "HOSTNAME", default_value = "0.0.0.0")]
    pub hostname: String,
    /// Port to listen on
    #[arg(long, env = "PORT", default_value_t = 8001)]
    pub port: u16,
    /// SCRFD model file (ONNX, with keypoints)
    #[arg(
        long,
        env = "DETECTION_MODEL_PATH",
        default_value = "/models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx"
    )]
    pub model_path: PathBuf,
    /// Minimum face score (0..1); a request may override it with ?score_threshold=
    #[arg(long, env = "DETECTION_SCORE_THRESHOLD", default_value_t = 0.5)]
    pub score_threshold: f32,
    /// IoU above which overlapping boxes are merged
    #[arg(long, env = "DETECTION_NMS_THRESHOLD", default_value_t = 0.4)]
    pub nms_threshold: f32,
    /// Square network input side in pixels, a multiple of 32
    #[arg(long, env = "DETECTION_INPUT_SIZE", default_value_t = 640)]
    pub input_size: u32,
    #[command(flatten)]
    pub ort: service_kit::config::OrtArgs,
    /// Do not serve: time N raw model runs (session run only, on the
    /// letterboxed --bench-image) and print JSON
    #[arg(long, value_name = "N")]
    pub bench_inference: Option<usize>,
    /// Do not serve: time N whole detections of --bench-image stage by stage
    /// (decode, letterbox, run, post-processing, JSON) and print JSON
    #[arg(long, value_name = "N", conflicts_with = "bench_inference")]
    pub bench_stages: Option<usize>,
    /// Do not serve: N pairs of one raw model run (as --bench-inference) and
    /// one POST of --bench-image to the service at --bench-url, alternated
    /// one by one, and print JSON (one client; `scripts/bench-services.sh`)
    #[arg(long, value_name = "N", conflicts_with_all = ["bench_inference", "bench_stages"], requires_all = ["bench_url", "bench_image"])]
    pub bench_paired: Option<usize>,
    /// The running service's detect URL for --bench-paired, e.g.
    /// http://127.0.0.1:8001/api/v1/detect
    #[arg(long, value_name = "URL")]
    pub bench_url: Option<String>,
    /// Concurrent clients for --bench-inference
    #[arg(long, default_value_t = 1)]
    pub bench_clients: usize,
    /// Image for --bench-inference, --bench-stages and --bench-paired
    #[arg(long)]
    pub bench_image: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Shared state: the detector and the metrics.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The loaded model.
    pub detector: Arc<Detector>,
    /// Prometheus registry.
    pub metrics: Metrics,
    /// Limits, token, decode gate, shutdown (from [`ServerArgs`]).
    pub kit: service_kit::config::Settings,
}

impl AppState {
    /// Loads the model named by `args`.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be loaded.
    pub fn load(args: &Args) -> Result<Self> {
        let config = DetectorConfig {
            input_size: args.input_size,
            score_threshold: args.score_threshold,
            nms_threshold: args.nms_threshold,
            threads: args.ort.threads(),
        };
        Ok(Self {
            detector: Arc::new(Detector::load(&args.model_path, config)?),
            metrics: Metrics::new("face_detection"),
            kit: args.server.settings()?,
        })
    }
}

/// The service's router, with the shared routes and layers.
pub fn app(state: AppState) -> Router {
    let model = state.detector.clone();
    let readiness = Readiness::new(move || {
        let model = model.clone();
        async move {
            vec![Check::new(
                "model",
                true,
                Ok(format!("loaded, input {}", model.config().input_size)),
            )]
        }
    });
    let routes = Router::new()
        .route("/api/v1/detect", post(detect))
        .with_state(state.clone());
    service_kit::http::wrap(routes, state.kit.http, state.metrics, readiness)
}

/// Optional query parameters of `/api/v1/detect`.
#[derive(Debug, Deserialize)]
pub struct DetectQuery {
    /// Overrides the configured minimum score.
    pub score_threshold: Option<f32>,
}

/// Response of `/api/v1/detect`.
#[derive(Debug, Deserialize, Serialize)]
pub struct DetectResponse {
    /// Faces, best score first; empty when there is none.
    pub faces: Vec<Face>,
    /// Number of faces.
    pub face_count: usize,
    /// Decoded image width.
    pub width: u32,
    /// Decoded image height.
    pub height: u32,
    /// Model run time in milliseconds.
    pub inference_ms: f64,
}

async fn detect(
    State(state): State<AppState>,
    query: std::result::Result<Query<DetectQuery>, QueryRejection>,
    request: Request,
) -> std::result::Result<Json<DetectResponse>, AppError> {
    let Query(query) = query.map_err(service_kit::http::query_error)?;
    if let Some(t) = query.score_threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(AppError::bad_request(
                "invalid_threshold",
                format!("score_threshold {t} is not within 0..1"),
            ));
        }
    }
    let upload = upload::read_upload(request).await?;
    let detector = state.detector.clone();
    let limits = state.kit.image;
    let (image, faces, took) = state
        .kit
        .gate
        .run(move || {
            let (image, faces, stages) = detector.detect_encoded(
                || imaging::decode(&upload.image, limits),
                query.score_threshold,
            )?;
            Ok::<_, Error>((image, faces, stages.run))
        })
        .await?
        .map_err(into_app_error)?;
    state.metrics.record_inference(took);
    Ok(Json(DetectResponse {
        face_count: faces.len(),
        faces,
        width: image.width(),
        height: image.height(),
        inference_ms: took.as_secs_f64() * 1e3,
    }))
}

fn into_app_error(e: Error) -> AppError {
    match e {
        Error::Kit(k) => k.into(),
        other => AppError::internal(other),
    }
}
