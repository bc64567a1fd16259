//! Scoring service: `POST /api/score` rates the main face of a photo.
//!
//! It sends the image to the detection service, picks the main face
//! (largest area x score), gets its embedding from the embedding service,
//! computes quality components ([`quality`]) and the score's percentile
//! among all scores seen ([`percentile`], kept in Redis). Results are cached
//! in Redis by the image's sha256 for 24 h. With `QDRANT_URL` set, the
//! embedding of a request carrying `userId` is stored in Qdrant and
//! `GET /api/similar/{userId}` lists the nearest users.
//!
//! Redis is optional at run time (answers are then uncached, readiness
//! `degraded`); the ML services are needed to score (503
//! `upstream_unavailable`) but do not decide scoring's readiness.
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! use clap::Parser;
//! let args = scoring_service::Args::parse_from(["scoring-service"]);
//! let router = scoring_service::app(scoring_service::AppState::new(&args)?);
//! # let _ = router; Ok(()) }
//! ```

mod api;
pub mod percentile;
pub mod qdrant;
pub mod quality;
pub mod store;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use service_kit::config::ServerArgs;
use service_kit::metrics::Metrics;
use service_kit::ready::{Check, Readiness};

pub use api::{ScoreResponse, SimilarResponse};

/// Errors of the scoring library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is malformed.
    #[error("{0}")]
    Config(String),
    /// Redis is unreachable or failed.
    #[error("redis: {0}")]
    Redis(String),
    /// A downstream service could not be reached in time.
    #[error("{service} service: {detail}")]
    Upstream {
        /// Which service.
        service: &'static str,
        /// What happened.
        detail: String,
    },
    /// A downstream service refused scoring's credentials (401/403).
    #[error("{service} refused scoring's credentials ({status}); {fix}")]
    Unauthorized {
        /// Which service.
        service: &'static str,
        /// Its status.
        status: u16,
        /// Which setting to fix.
        fix: &'static str,
    },
    /// A downstream service answered with an error status.
    #[error("{service} service answered {status}: {body}")]
    UpstreamRejected {
        /// Which service.
        service: &'static str,
        /// Its status.
        status: u16,
        /// Its body.
        body: String,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Settings, from flags or the environment.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "scoring-service", version, about = "Face scoring API")]
pub struct Args {
    /// Address to listen on (set it explicitly in containers: Docker sets HOSTNAME to the container id)
    #[arg(long, env = "HOSTNAME", default_value = "0.0.0.0")]
    pub hostname: String,
    /// Port to listen on
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Base URL of the face detection service
    #[arg(
        long,
        env = "FACE_DETECTION_SERVICE",
        default_value = "http://face-detection:8001",
        hide_env_values = true
    )]
    pub face_detection_service: String,
    /// Base URL of the face embedding service
    #[arg(
        long,
        env = "FACE_EMBEDDING_SERVICE",
        default_value = "http://face-embedding:8002",
        hide_env_values = true
    )]
    pub face_embedding_service: String,
    /// Time budget of each call to an ML service, in milliseconds
    #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = 10_000)]
    pub upstream_timeout_ms: u64,
    /// Redis URL for the cache and the score distribution (redis://host:port/db)
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://redis:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Redis password, if not in REDIS_URL (prefer REDIS_PASSWORD_FILE)
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// File holding the Redis password (a mounted secret); conflicts with REDIS_PASSWORD
    #[arg(long, env = "REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<std::path::PathBuf>,
    /// Time budget of each Redis command, in milliseconds
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,
    /// How long a result stays cached, in seconds
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 86_400)]
    pub cache_ttl_secs: u64,
    /// Qdrant base URL (e.g. http://qdrant:6333); similarity search is off when unset
    #[arg(long, env = "QDRANT_URL", hide_env_values = true)]
    pub qdrant_url: Option<String>,
    /// Qdrant API key (prefer QDRANT_API_KEY_FILE)
    #[arg(long, env = "QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// File holding the Qdrant API key (a mounted secret); conflicts with QDRANT_API_KEY
    #[arg(long, env = "QDRANT_API_KEY_FILE")]
    pub qdrant_api_key_file: Option<std::path::PathBuf>,
    /// Qdrant collection of user embeddings
    #[arg(long, env = "QDRANT_COLLECTION", default_value = "face_embeddings")]
    pub qdrant_collection: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Shared state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The ML services.
    pub upstream: upstream::Upstream,
    /// Redis.
    pub store: Arc<store::Store>,
    /// Qdrant, when configured.
    pub qdrant: Option<Arc<qdrant::Qdrant>>,
    /// Prometheus registry.
    pub metrics: Metrics,
    /// Limits, token, decode gate, shutdown (from [`ServerArgs`]).
    pub kit: service_kit::config::Settings,
}

impl AppState {
    /// State for `args`; nothing is contacted yet.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for malformed URLs, unreadable secret files, or a
    /// secret given both as a variable and as a file.
    pub fn new(args: &Args) -> Result<Self> {
        let config = |e: service_kit::Error| Error::Config(e.to_string());
        let kit = args.server.settings().map_err(config)?;
        let redis_password = service_kit::secrets::either(
            "REDIS_PASSWORD",
            args.redis_password.as_deref(),
            "REDIS_PASSWORD_FILE",
            args.redis_password_file.as_deref(),
        )
        .map_err(config)?;
        let qdrant_api_key = service_kit::secrets::either(
            "QDRANT_API_KEY",
            args.qdrant_api_key.as_deref(),
            "QDRANT_API_KEY_FILE",
            args.qdrant_api_key_file.as_deref(),
        )
        .map_err(config)?;
        let timeout = Duration::from_millis(args.upstream_timeout_ms);
        let upstream = upstream::Upstream::new(
            &args.face_detection_service,
            &args.face_embedding_service,
            timeout,
            kit.http.token.clone(),
        )?;
        let store = store::Store::new(
            &args.redis_url,
            redis_password.as_deref(),
            Duration::from_millis(args.redis_timeout_ms),
            Duration::from_secs(args.cache_ttl_secs),
        )?;
        let qdrant = match &args.qdrant_url {
            Some(url) if !url.is_empty() => {
                let http = reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(|e| Error::Config(format!("http client: {e}")))?;
                Some(Arc::new(qdrant::Qdrant::new(
                    http,
                    url,
                    qdrant_api_key,
                    &args.qdrant_collection,
                )))
            }
            _ => None,
        };
        Ok(Self {
            upstream,
            store: Arc::new(store),
            qdrant,
            metrics: Metrics::new("scoring"),
            kit,
        })
    }
}

/// The service's router, with the shared routes and layers.
///
/// Readiness reports the ML services, Redis and Qdrant as checks, but none
/// is required: scoring's own state alone decides 200 or 503 (it is 503
/// only while stopping), so one bad ML rollout does not take every scoring
/// replica out of its load balancer.
pub fn app(state: AppState) -> Router {
    let probe = state.clone();
    let readiness = Readiness::new(move || {
        let s = probe.clone();
        async move {
            let ((detection, embedding), redis) = tokio::join!(s.upstream.ready(), s.store.ping());
            let mut checks = vec![
                Check::new("face_detection", false, detection),
                Check::new("face_embedding", false, embedding),
                Check::new(
                    "redis",
                    false,
                    redis
                        .map(|()| "reachable".to_owned())
                        .map_err(|e| e.to_string()),
                ),
            ];
            if let Some(q) = &s.qdrant {
                checks.push(Check::new("qdrant", false, q.ping().await));
            }
            checks
        }
    });
    let routes = Router::new()
        .route("/api/score", post(api::score))
        .route("/api/similar/{user_id}", get(api::similar))
        .with_state(state.clone());
    service_kit::http::wrap(routes, state.kit.http, state.metrics, readiness)
}
