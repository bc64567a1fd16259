//! Contracts 1 and 2 of the services: the shared service token (required by
//! the ML services and scoring, forwarded by scoring) and secrets as files.

mod common;

use common::{call, free_port, ml_services_with, photo, score, scoring_args, Redis};
use scoring_service::{app, AppState};

fn form_request(image: &[u8], auth: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let (ct, body) = common::form(image, None);
    let mut b = axum::http::Request::post("/api/score").header("content-type", ct);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(axum::body::Body::from(body)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_needs_the_token_and_forwards_it_to_the_ml_services() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("service-token");
    std::fs::write(&token_file, "svc-token-93ab41\n").unwrap();
    let token_arg = token_file.to_str().unwrap();
    let (det, emb) = ml_services_with(&["--service-token-file", token_arg]).await;
    let redis = Redis::start(None);
    let yao = photo("yaoming.jpg");

    let with = app(AppState::new(&scoring_args(
        &det,
        &emb,
        &redis.url(),
        &["--service-token-file", token_arg],
    ))
    .unwrap());
    let (status, body) = call(&with, form_request(&yao, None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, body) = call(&with, form_request(&yao, Some("Bearer svc-token-93ab41"))).await;
    assert_eq!(status, 200, "token forwarded to both ML services: {body}");

    // Without the token, scoring is open but the ML services refuse it: a
    // clear 502 naming the setting, not a generic failure.
    let without = app(AppState::new(&scoring_args(&det, &emb, &redis.url(), &[])).unwrap());
    let (status, body) = score(&without, &photo("gdp.jpg"), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_unauthorized")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_password_from_a_file_and_conflicts_named() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start_with(free_port(), None, Some("redis-pw-51c7"));
    let pw_file = dir.path().join("redis-password");
    std::fs::write(&pw_file, "redis-pw-51c7\n").unwrap();
    let plain_url = format!("redis://127.0.0.1:{}", redis.port);
    let dead = format!("http://127.0.0.1:{}", free_port());

    let args = scoring_args(
        &dead,
        &dead,
        &plain_url,
        &["--redis-password-file", pw_file.to_str().unwrap()],
    );
    let router = app(AppState::new(&args).unwrap());
    let ready = axum::http::Request::get("/api/ready")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = call(&router, ready).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"]["redis"]["ok"], true,
        "password from the file: {body}"
    );

    let both = scoring_args(
        &dead,
        &dead,
        &plain_url,
        &[
            "--redis-password",
            "x-pw-1",
            "--redis-password-file",
            pw_file.to_str().unwrap(),
        ],
    );
    let err = AppState::new(&both).unwrap_err().to_string();
    assert!(
        err.contains("REDIS_PASSWORD and REDIS_PASSWORD_FILE"),
        "{err}"
    );
    let missing = scoring_args(
        &dead,
        &dead,
        &plain_url,
        &["--qdrant-api-key-file", "/nonexistent/qdrant-key"],
    );
    let err = AppState::new(&missing).unwrap_err().to_string();
    assert!(
        err.contains("QDRANT_API_KEY_FILE=/nonexistent/qdrant-key"),
        "{err}"
    );
}
