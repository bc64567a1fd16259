//! Scoring against the real ML services (real models) and a real redis-server.

mod common;

use std::time::{Duration, Instant};

use common::{call, free_port, ml_services, photo, score, scoring_args, Redis};
use redis::Commands;
use scoring_service::{app, store, AppState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_caches_with_ttl_and_counts_percentiles() {
    let redis = Redis::start(None);
    let (det, emb) = ml_services().await;
    let router = app(AppState::new(&scoring_args(&det, &emb, &redis.url(), &[])).unwrap());

    let yao = photo("yaoming.jpg");
    let (status, first) = score(&router, &yao, Some("yao")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["cached"], false);
    let s = first["score"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&s), "{first}");
    for c in ["detection", "size", "frontality", "symmetry", "sharpness"] {
        let v = first["components"][c].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{c} = {v}");
    }
    assert_eq!(first["faces_detected"], 1);
    assert_eq!(first["percentile"], 50.0, "a lone score is the median");
    assert!(first.get("indexed").is_none(), "qdrant is not configured");

    let (status, second) = score(&router, &yao, None).await;
    assert_eq!(status, 200);
    assert_eq!(second["cached"], true);
    assert_eq!(second["score"], first["score"]);

    // cached under the image's sha256 with a 24 h TTL
    let key = store::cache_key(first["image_sha256"].as_str().unwrap());
    let ttl: i64 = redis.client().ttl(&key).unwrap();
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");

    // players.jpg: main face picked among many; the histogram now holds 2
    let (status, players) = score(&router, &photo("players.jpg"), None).await;
    assert_eq!(status, 200, "{players}");
    assert!(players["faces_detected"].as_u64().unwrap() >= 14);
    let total: u64 = redis
        .client()
        .hvals::<_, Vec<u64>>(store::HISTOGRAM_KEY)
        .unwrap()
        .iter()
        .sum();
    assert_eq!(total, 2, "a cached answer must not count twice");
    let p = players["percentile"].as_f64().unwrap();
    assert!(p == 25.0 || p == 50.0 || p == 75.0, "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_ttl_expires() {
    let redis = Redis::start(None);
    let (det, emb) = ml_services().await;
    let router = app(AppState::new(&scoring_args(
        &det,
        &emb,
        &redis.url(),
        &["--cache-ttl-secs", "1"],
    ))
    .unwrap());
    let yao = photo("yaoming.jpg");
    assert_eq!(score(&router, &yao, None).await.1["cached"], false);
    assert_eq!(score(&router, &yao, None).await.1["cached"], true);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        score(&router, &yao, None).await.1["cached"],
        false,
        "entry should have expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_survives_a_redis_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (det, emb) = ml_services().await;
    let url = format!("redis://127.0.0.1:{port}");
    {
        let _redis = Redis::start_on(port, Some(dir.path()));
        let router = app(AppState::new(&scoring_args(&det, &emb, &url, &[])).unwrap());
        assert_eq!(score(&router, &photo("yaoming.jpg"), None).await.0, 200);
        assert_eq!(score(&router, &photo("gdp.jpg"), None).await.0, 200);
    } // redis-server killed (SIGKILL): only the fsynced append-only file remains
    let redis = Redis::start_on(port, Some(dir.path()));
    let total: u64 = redis
        .client()
        .hvals::<_, Vec<u64>>(store::HISTOGRAM_KEY)
        .unwrap()
        .iter()
        .sum();
    assert_eq!(total, 2);
    // a fresh service instance (as after a deploy) sees the old distribution
    let router = app(AppState::new(&scoring_args(&det, &emb, &url, &[])).unwrap());
    let (status, body) = score(&router, &photo("players.jpg"), None).await;
    assert_eq!(status, 200, "{body}");
    let p = body["percentile"].as_f64().unwrap();
    assert!(
        [100.0 / 6.0, 50.0, 500.0 / 6.0]
            .iter()
            .any(|x| (x - p).abs() < 1e-9),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_still_answers_and_ready_is_degraded() {
    let (det, emb) = ml_services().await;
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let router = app(AppState::new(&scoring_args(&det, &emb, &dead, &[])).unwrap());
    let started = Instant::now();
    let (status, body) = score(&router, &photo("yaoming.jpg"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cached"], false);
    assert!(body["percentile"].is_null());
    assert!(started.elapsed() < Duration::from_secs(15));
    let ready = axum::http::Request::get("/api/ready")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = call(&router, ready).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"]["ok"], false);
    assert_eq!(body["checks"]["face_detection"]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ml_service_down_is_a_quick_503() {
    let redis = Redis::start(None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let router = app(AppState::new(&scoring_args(&dead, &dead, &redis.url(), &[])).unwrap());
    let started = Instant::now();
    let (status, body) = score(&router, &photo("yaoming.jpg"), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("face-detection"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Scoring's readiness is its own: the ML services are reported, not
    // required, so one bad ML rollout does not empty scoring's Service.
    let ready = axum::http::Request::get("/api/ready")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, body) = call(&router, ready).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["face_detection"]["ok"], false);
    assert_eq!(body["checks"]["face_detection"]["required"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_4xx_without_reaching_the_ml_services() {
    let redis = Redis::start(None);
    let (det, emb) = ml_services().await;
    let router = app(AppState::new(&scoring_args(
        &det,
        &emb,
        &redis.url(),
        &["--max-body-bytes", "200000"],
    ))
    .unwrap());
    let code = |b: &serde_json::Value| b["error"]["code"].as_str().unwrap_or("").to_owned();

    let grey = image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
    let mut png = Vec::new();
    grey.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (s, b) = score(&router, &png, None).await;
    assert_eq!((s, code(&b).as_str()), (422, "no_face"), "{b}");

    let yao = photo("yaoming.jpg");
    let (s, b) = score(&router, &yao[..yao.len() / 2], None).await;
    assert_eq!((s, code(&b).as_str()), (422, "invalid_image"), "{b}");
    let (s, b) = score(&router, &[], None).await;
    assert_eq!((s, code(&b).as_str()), (400, "missing_image"), "{b}");
    let (s, b) = score(&router, &photo("players.jpg"), None).await;
    assert_eq!((s, code(&b).as_str()), (413, "payload_too_large"), "{b}");
    let (ct, body) = common::form(&yao, Some(&"x".repeat(500)));
    let request = axum::http::Request::post("/api/score")
        .header("content-type", ct)
        .body(axum::body::Body::from(body))
        .unwrap();
    let (s, b) = call(&router, request).await;
    assert_eq!((s, code(&b).as_str()), (400, "invalid_user_id"), "{b}");
    let request = axum::http::Request::post("/api/score")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let (s, b) = call(&router, request).await;
    assert_eq!(
        (s, code(&b).as_str()),
        (415, "unsupported_content_type"),
        "{b}"
    );
}

/// Issue 17 item 5: a restarted Redis answers `LOADING` while it replays its
/// append-only file; the harness must wait for PONG, not for an open port
/// (this failed with BusyLoading on a loaded CI machine).
#[test]
fn a_restarted_redis_is_used_only_after_it_answers_pong() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    {
        let redis = Redis::start_on(port, Some(dir.path()));
        let mut c = redis.client();
        redis::cmd("DEBUG")
            .arg("POPULATE")
            .arg(1_000_000)
            .query::<()>(&mut c)
            .unwrap();
        let _: () = c.hset(store::HISTOGRAM_KEY, "50", 7).unwrap();
        redis::cmd("BGREWRITEAOF").query::<()>(&mut c).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
            if info.contains("aof_rewrite_in_progress:0")
                && info.contains("aof_rewrite_scheduled:0")
            {
                break;
            }
            assert!(Instant::now() < deadline, "AOF rewrite did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
    } // SIGKILL
    let redis = Redis::start_on(port, Some(dir.path()));
    // Straight after start: the first command must not meet LOADING.
    let total: u64 = redis
        .client()
        .hvals::<_, Vec<u64>>(store::HISTOGRAM_KEY)
        .unwrap()
        .iter()
        .sum();
    assert_eq!(total, 7);
}
