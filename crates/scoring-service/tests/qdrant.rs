//! Similarity search against a REAL Qdrant server.
//!
//! Qdrant cannot run on the CI machines of this project, so this test runs
//! only when QDRANT_TEST_URL (e.g. http://127.0.0.1:6333) is set, and
//! otherwise says loudly that it did not run. This is the only test in the
//! workspace allowed to return early; there is deliberately no fake Qdrant.

mod common;

use common::{call, ml_services, photo, score, scoring_args, Redis};
use scoring_service::{app, AppState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_users_and_finds_the_nearest() {
    let Ok(qdrant) = std::env::var("QDRANT_TEST_URL") else {
        eprintln!("NOT RUN: qdrant similarity test needs a real Qdrant; set QDRANT_TEST_URL=http://host:6333 to run it");
        return;
    };
    let redis = Redis::start(None);
    let (det, emb) = ml_services().await;
    let collection = format!("aurum_test_{}", std::process::id());
    let args = scoring_args(
        &det,
        &emb,
        &redis.url(),
        &["--qdrant-url", &qdrant, "--qdrant-collection", &collection],
    );
    let router = app(AppState::new(&args).unwrap());
    for (user, file) in [
        ("yao", "yaoming.jpg"),
        ("gdp", "gdp.jpg"),
        ("players", "players.jpg"),
    ] {
        let (status, body) = score(&router, &photo(file), Some(user)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["indexed"], true, "{body}");
    }
    let request = axum::http::Request::get("/api/similar/yao?limit=5")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = call(&router, request).await;
    assert_eq!(status, 200, "{body}");
    let users: Vec<&str> = body["similar"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["userId"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 2, "{body}");
    assert!(!users.contains(&"yao"));
    let request = axum::http::Request::get("/api/similar/nobody")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = call(&router, request).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
}

#[tokio::test]
async fn similar_without_qdrant_says_how_to_enable_it() {
    let args = scoring_args(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "redis://127.0.0.1:9",
        &[],
    );
    let router = app(AppState::new(&args).unwrap());
    let request = axum::http::Request::get("/api/similar/yao")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = call(&router, request).await;
    assert_eq!(status, 501);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("QDRANT_URL"));
}
