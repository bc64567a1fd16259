//! The HTTP handlers.

use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use service_kit::gate::run_blocking;
use service_kit::{imaging, upload, AppError};
use sha2::{Digest, Sha256};

use crate::percentile::percentile;
use crate::qdrant::Similar;
use crate::quality::{self, Components};
use crate::store::cache_key;
use crate::upstream::Face;
use crate::{AppState, Error};

/// What is cached per image (the embedding too, so a cached answer can
/// still index a user in Qdrant).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Scored {
    score: f32,
    components: Components,
    face: Face,
    faces_detected: usize,
    embedding: Vec<f32>,
}

/// Response of `POST /api/score`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ScoreResponse {
    /// Overall score, 0..100.
    pub score: f32,
    /// Its components, each 0..1.
    pub components: Components,
    /// Percentile of `score` among all scores seen (0..100); null when Redis is down.
    pub percentile: Option<f64>,
    /// Whether this answer came from the cache.
    pub cached: bool,
    /// The main face.
    pub face: Face,
    /// How many faces the photo has.
    pub faces_detected: usize,
    /// sha256 of the image bytes (the cache key).
    pub image_sha256: String,
    /// The user id sent, if any.
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Whether the embedding was stored in Qdrant (absent when not asked or not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexed: Option<bool>,
}

/// Response of `GET /api/similar/{userId}`.
#[derive(Debug, Deserialize, Serialize)]
pub struct SimilarResponse {
    /// The user asked about.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// Nearest users, most similar first.
    pub similar: Vec<Similar>,
}

fn app_error(e: Error) -> AppError {
    match &e {
        Error::Upstream { service, .. } => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            format!("the {service} service is unavailable; retry later"),
        )
        .with_detail(e),
        Error::Unauthorized { service, .. } => AppError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unauthorized",
            format!("the {service} service refused scoring's credentials; the operator must fix scoring's settings"),
        )
        .with_detail(e),
        Error::UpstreamRejected { service, .. } => AppError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("the {service} service failed on this image"),
        )
        .with_detail(e),
        Error::Config(_) | Error::Redis(_) => AppError::internal(e),
    }
}

fn user_id(
    fields: &std::collections::BTreeMap<String, String>,
) -> Result<Option<String>, AppError> {
    match fields.get("userId").map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(id) if id.len() <= 128 && !id.chars().any(char::is_control) => Ok(Some(id.to_owned())),
        Some(_) => Err(AppError::bad_request(
            "invalid_user_id",
            "userId must be 1 to 128 printable characters",
        )),
    }
}

/// `POST /api/score`: multipart `image` (and optional `userId`), or a raw image body.
pub async fn score(
    State(s): State<AppState>,
    request: Request,
) -> Result<Json<ScoreResponse>, AppError> {
    let upload = upload::read_upload(request).await?;
    let user = user_id(&upload.fields)?;
    let sha: String = Sha256::digest(&upload.image)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = cache_key(&sha);

    let mut redis_up = true;
    let cached = match s.store.get(&key).await {
        Ok(hit) => hit.and_then(|json| serde_json::from_str::<Scored>(&json).ok()),
        Err(e) => {
            tracing::warn!(error = %e, "redis unavailable, answering uncached");
            redis_up = false;
            None
        }
    };
    let (scored, was_cached) = match cached {
        Some(hit) => (hit, true),
        None => (compute(&s, upload.image.clone()).await?, false),
    };

    let percentile = if !redis_up {
        None
    } else if was_cached {
        s.store
            .histogram()
            .await
            .ok()
            .and_then(|h| percentile(&h, scored.score))
    } else {
        match s.store.record(scored.score).await {
            Ok(h) => percentile(&h, scored.score),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record score");
                None
            }
        }
    };
    if redis_up && !was_cached {
        if let Err(e) = s
            .store
            .put(
                &key,
                &serde_json::to_string(&scored).map_err(AppError::internal)?,
            )
            .await
        {
            tracing::warn!(error = %e, "cannot cache result");
        }
    }
    let indexed = match (&s.qdrant, &user) {
        (Some(q), Some(id)) => Some(match q.upsert(id, &scored.embedding).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, user = id, "cannot index embedding in qdrant");
                false
            }
        }),
        _ => None,
    };
    Ok(Json(ScoreResponse {
        score: scored.score,
        components: scored.components,
        percentile,
        cached: was_cached,
        face: scored.face,
        faces_detected: scored.faces_detected,
        image_sha256: sha,
        user_id: user,
        indexed,
    }))
}

async fn compute(s: &AppState, bytes: axum::body::Bytes) -> Result<Scored, AppError> {
    // Decode here first: a bad image is the client's fault (4xx) and should
    // not cost two network calls; the pixels are needed for sharpness anyway.
    let limits = s.kit.image;
    let local = bytes.clone();
    let image = s
        .kit
        .gate
        .run(move || imaging::decode(&local, limits))
        .await??;
    let started = Instant::now();
    let faces = s.upstream.detect(bytes.to_vec()).await.map_err(app_error)?;
    let Some(face) = faces
        .iter()
        .max_by(|a, b| (a.area() * a.score).total_cmp(&(b.area() * b.score)))
        .cloned()
    else {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_face",
            "no face found in the image; send a photo with a clearly visible face",
        ));
    };
    let embedding = s
        .upstream
        .embed(bytes.to_vec(), &face.landmarks)
        .await
        .map_err(app_error)?;
    s.metrics.record_inference(started.elapsed());
    let f = face.clone();
    let components =
        run_blocking(move || quality::assess(&image, f.bbox, f.score, &f.landmarks)).await?;
    Ok(Scored {
        score: components.score(),
        components,
        face,
        faces_detected: faces.len(),
        embedding,
    })
}

/// Query of `GET /api/similar/{userId}`.
#[derive(Debug, Deserialize)]
pub struct SimilarQuery {
    /// How many users, 1..100 (default 10).
    pub limit: Option<usize>,
}

/// `GET /api/similar/{userId}`: nearest users by face embedding.
pub async fn similar(
    State(s): State<AppState>,
    Path(user): Path<String>,
    q: Result<Query<SimilarQuery>, QueryRejection>,
) -> Result<Json<SimilarResponse>, AppError> {
    let Query(q) = q.map_err(service_kit::http::query_error)?;
    let Some(qdrant) = &s.qdrant else {
        return Err(AppError::new(
            StatusCode::NOT_IMPLEMENTED,
            "similarity_disabled",
            "similarity search is off; set QDRANT_URL to enable it",
        ));
    };
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    match qdrant.similar(&user, limit).await.map_err(app_error)? {
        Some(similar) => Ok(Json(SimilarResponse {
            user_id: user,
            similar,
        })),
        None => Err(AppError::new(
            StatusCode::NOT_FOUND,
            "unknown_user",
            format!("no embedding stored for user {user:?}; score a photo with this userId first"),
        )),
    }
}
