//! Face embedding service: `POST /api/v1/embed` returns the L2-normalised
//! 512-d ArcFace (w600k_mbf) embedding of a face.
//!
//! Input: multipart `image` + `landmarks` (JSON `[[x, y] x 5]`: eyes, nose,
//! mouth corners, as the detection service returns them), aligned here in
//! Rust ([`align`]); or an already aligned 112x112 face as `image` alone
//! (multipart or raw body).
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! use clap::Parser;
//! let args = face_embedding_service::Args::parse_from(["face-embedding-service"]);
//! let router = face_embedding_service::app(face_embedding_service::AppState::load(&args)?);
//! # let _ = router; Ok(()) }
//! ```

pub mod align;
pub mod embedder;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use service_kit::config::ServerArgs;
use service_kit::metrics::Metrics;
use service_kit::ready::{Check, Readiness};
use service_kit::{imaging, upload, AppError};

pub use embedder::{cosine, l2_normalise, tensor, Embedder};

/// Errors of the embedding library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shared plumbing failed (runtime, model, image).
    #[error(transparent)]
    Kit(#[from] service_kit::Error),
    /// An image without landmarks is not a 112x112 aligned face.
    #[error("image is {0}x{1}; send `landmarks` with it, or an aligned 112x112 face")]
    NotAligned(u32, u32),
    /// The landmarks cannot define an alignment.
    #[error("landmarks are degenerate (all points coincide); send the five detected points")]
    DegenerateLandmarks,
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Settings, from flags or the environment.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "face-embedding-service",
    version,
    about = "ArcFace face embeddings over HTTP"
)]
pub struct Args {
    /// Address to listen on (set it explicitly in containers: Docker sets HOSTNAME to the container id)
    #[arg(long, env = "HOSTNAME", default_value = "0.0.0.0")]
    pub hostname: String,
    /// Port to listen on
    #[arg(long, env = "PORT", default_value_t = 8002)]
    pub port: u16,
    /// ArcFace model file (ONNX, 112x112 input, 512-d output)
    #[arg(
        long,
        env = "EMBEDDING_MODEL_PATH",
        default_value = "/models/w600k_mbf/w600k_mbf.onnx"
    )]
    pub model_path: PathBuf,
    #[command(flatten)]
    pub ort: service_kit::config::OrtArgs,
    /// Do not serve: time N raw model runs (session run only) on a 112x112
    /// crop and print JSON
    #[arg(long, value_name = "N")]
    pub bench_inference: Option<usize>,
    /// Concurrent clients for --bench-inference
    #[arg(long, default_value_t = 1)]
    pub bench_clients: usize,
    /// Do not serve: N pairs of one raw model run on --bench-image's tensor
    /// and one POST of --bench-image to the service at --bench-url,
    /// alternated one by one, and print JSON (one client;
    /// `scripts/bench-services.sh`)
    #[arg(long, value_name = "N", conflicts_with = "bench_inference", requires_all = ["bench_url", "bench_image"])]
    pub bench_paired: Option<usize>,
    /// The running service's embed URL for --bench-paired, e.g.
    /// http://127.0.0.1:8002/api/v1/embed
    #[arg(long, value_name = "URL")]
    pub bench_url: Option<String>,
    /// An aligned 112x112 crop (PNG or JPEG) for --bench-paired
    #[arg(long)]
    pub bench_image: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Shared state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The loaded model.
    pub embedder: Arc<Embedder>,
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
        Ok(Self {
            embedder: Arc::new(Embedder::load(&args.model_path, args.ort.threads())?),
            metrics: Metrics::new("face_embedding"),
            kit: args.server.settings()?,
        })
    }
}

/// The service's router, with the shared routes and layers.
pub fn app(state: AppState) -> Router {
    let readiness =
        Readiness::new(|| async { vec![Check::new("model", true, Ok("loaded".into()))] });
    let routes = Router::new()
        .route("/api/v1/embed", post(embed))
        .with_state(state.clone());
    service_kit::http::wrap(routes, state.kit.http, state.metrics, readiness)
}

/// Response of `/api/v1/embed`.
#[derive(Debug, Deserialize, Serialize)]
pub struct EmbedResponse {
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
    /// Its length (512).
    pub dim: usize,
    /// True when aligned here from landmarks, false for a pre-aligned crop.
    pub aligned: bool,
    /// Model run time in milliseconds.
    pub inference_ms: f64,
}

/// Parses `landmarks`: exactly five [x, y] pairs of finite numbers.
///
/// # Errors
///
/// 400 `invalid_landmarks` naming what is wrong.
pub fn parse_landmarks(text: &str) -> std::result::Result<[[f32; 2]; 5], AppError> {
    let bad = |why: String| {
        AppError::bad_request(
            "invalid_landmarks",
            format!("landmarks {why}; send JSON [[x,y],[x,y],[x,y],[x,y],[x,y]] (eyes, nose, mouth corners)"),
        )
    };
    let points: Vec<Vec<f32>> = serde_json::from_str(text)
        .map_err(|e| bad(format!("are not a list of number pairs ({e})")))?;
    if points.len() != 5 {
        return Err(bad(format!("have {} points, not 5", points.len())));
    }
    let mut out = [[0.0; 2]; 5];
    for (i, p) in points.iter().enumerate() {
        match p.as_slice() {
            [x, y] if x.is_finite() && y.is_finite() => out[i] = [*x, *y],
            _ => return Err(bad(format!("point {i} is {p:?}, not [x, y]"))),
        }
    }
    Ok(out)
}

async fn embed(
    State(state): State<AppState>,
    request: Request,
) -> std::result::Result<Json<EmbedResponse>, AppError> {
    let upload = upload::read_upload(request).await?;
    let landmarks = upload
        .fields
        .get("landmarks")
        .map(|t| parse_landmarks(t))
        .transpose()?;
    let embedder = state.embedder.clone();
    let limits = state.kit.image;
    let (embedding, took) = state
        .kit
        .gate
        .run(move || {
            let image = imaging::decode(&upload.image, limits)?;
            let face = match &landmarks {
                Some(points) => align::align(&image, points).ok_or(Error::DegenerateLandmarks)?,
                None => image,
            };
            embedder.embed(&face)
        })
        .await?
        .map_err(|e| match e {
            Error::Kit(k) => AppError::from(k),
            e @ Error::NotAligned(..) => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "landmarks_required",
                e.to_string(),
            ),
            // Bad landmarks are a malformed request like any other: 400, as
            // the malformed-JSON case and docs/services.md say.
            e @ Error::DegenerateLandmarks => {
                AppError::bad_request("invalid_landmarks", e.to_string())
            }
        })?;
    state.metrics.record_inference(took);
    Ok(Json(EmbedResponse {
        dim: embedding.len(),
        embedding,
        aligned: landmarks.is_some(),
        inference_ms: took.as_secs_f64() * 1e3,
    }))
}
