//! Similarity search against a REAL Qdrant server (the build from
//! ../shared/qdrant that scripts/setup.sh unpacks to .cache/qdrant/qdrant,
//! or QDRANT_BIN), started here on free loopback ports with temporary
//! storage and an API key. A missing binary fails the test: there is no
//! fake Qdrant and no skip.
//!
//! Needs the Qdrant binary: not in the Nix sandbox's nextest profile.

mod common;

use common::{call, ml_services, photo, score, scoring_args, Qdrant, Redis};
use scoring_service::{app, qdrant::point_id, AppState};
use serde_json::Value;

const KEY: &str = "aurum-qdrant-test-key-5f3a";

async fn get(router: &axum::Router, uri: &str) -> (u16, Value) {
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    call(router, request).await
}

fn users(body: &Value) -> Vec<(String, f64)> {
    body["similar"]
        .as_array()
        .unwrap_or_else(|| panic!("no similar list in {body}"))
        .iter()
        .map(|s| {
            (
                s["userId"].as_str().unwrap().to_owned(),
                s["similarity"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Faces of `image` as the detection service finds them: (box, landmarks).
async fn detect(det: &str, image: &[u8]) -> Vec<Value> {
    let r: Value = reqwest::Client::new()
        .post(format!("{det}/api/v1/detect?score_threshold=0.7"))
        .header("content-type", "image/jpeg")
        .body(image.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["faces"].as_array().unwrap().clone()
}

/// The embedding service's embedding of the face at `landmarks` in `image`.
async fn embed(emb: &str, image: &[u8], landmarks: &Value) -> Vec<f32> {
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(image.to_vec()).file_name("i.jpg"),
        )
        .text("landmarks", landmarks.to_string());
    let r: Value = reqwest::Client::new()
        .post(format!("{emb}/api/v1/embed"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// A JPEG of the region around `bbox` (the box plus 60% of its size on each side).
fn crop(photo: &image::RgbImage, bbox: &Value) -> Vec<u8> {
    let b: Vec<f64> = bbox
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let x0 = (b[0] - 0.6 * w).max(0.0) as u32;
    let y0 = (b[1] - 0.6 * h).max(0.0) as u32;
    let x1 = ((b[2] + 0.6 * w) as u32).min(photo.width());
    let y1 = ((b[3] + 0.6 * h) as u32).min(photo.height());
    let region = image::imageops::crop_imm(photo, x0, y0, x1 - x0, y1 - y0).to_image();
    let mut out = Vec::new();
    region
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_index_into_a_real_qdrant_that_survives_a_restart_and_checks_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut qdrant = Qdrant::start(dir.path(), KEY).await;
    let redis = Redis::start(None);
    let (det, emb) = ml_services().await;
    let key_file = dir.path().join("qdrant-api-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let args = scoring_args(
        &det,
        &emb,
        &redis.url(),
        &[
            "--qdrant-url",
            &qdrant.url(),
            "--qdrant-api-key-file",
            key_file.to_str().unwrap(),
        ],
    );
    let router = app(AppState::new(&args).unwrap());

    // Each face of players.jpg becomes a user, scored from a crop around it.
    let players_bytes = photo("players.jpg");
    let players = image::load_from_memory(&players_bytes).unwrap().to_rgb8();
    let faces = detect(&det, &players_bytes).await;
    assert!(faces.len() >= 14, "{} faces", faces.len());
    let mut indexed = Vec::new();
    for (i, face) in faces.iter().enumerate() {
        let user = format!("player-{i}");
        let (status, body) = score(&router, &crop(&players, &face["box"]), Some(&user)).await;
        if status == 200 {
            assert_eq!(body["indexed"], true, "{user}: {body}");
            indexed.push(i);
        }
    }
    assert!(indexed.len() >= 12, "only {indexed:?} indexed");

    // yaoming.jpg as user "yao": upserted on score, visible in Qdrant itself.
    let yao = photo("yaoming.jpg");
    let (status, body) = score(&router, &yao, Some("yao")).await;
    assert_eq!(
        (status, &body["indexed"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    let http = reqwest::Client::new();
    let stored: Value = http
        .post(format!(
            "{}/collections/face_embeddings/points",
            qdrant.url()
        ))
        .header("api-key", KEY)
        .json(&serde_json::json!({"ids": [point_id("yao")], "with_payload": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["result"][0]["payload"]["userId"], "yao", "{stored}");

    // Ground truth, computed without Qdrant: the players face nearest to
    // yaoming's by the embedding service's cosine.
    let yao_face = &detect(&det, &yao).await[0];
    let e_yao = embed(&emb, &yao, &yao_face["landmarks"]).await;
    let mut truth: Vec<(usize, f32)> = Vec::new();
    for &i in &indexed {
        let e = embed(&emb, &players_bytes, &faces[i]["landmarks"]).await;
        truth.push((i, e.iter().zip(&e_yao).map(|(a, b)| a * b).sum()));
    }
    truth.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (best, best_cos) = truth[0];
    assert!(best_cos - truth[1].1 > 0.2, "no clear match: {truth:?}");

    let (status, body) = get(&router, "/api/similar/yao?limit=5").await;
    assert_eq!(status, 200, "{body}");
    let ranked = users(&body);
    assert_eq!(ranked.len(), 5, "{body}");
    assert_eq!(ranked[0].0, format!("player-{best}"), "{body} vs {truth:?}");
    assert!(
        (ranked[0].1 - f64::from(best_cos)).abs() < 0.05,
        "similarity {} vs direct cosine {best_cos}",
        ranked[0].1
    );
    assert!(ranked.iter().all(|(u, _)| u != "yao"));

    let (status, body) = get(&router, "/api/similar/nobody").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );

    // Killed and restarted on the same storage: the points are still there.
    qdrant.restart().await;
    let (status, body) = get(&router, "/api/similar/yao?limit=5").await;
    assert_eq!(status, 200, "after restart: {body}");
    let after = users(&body);
    assert_eq!(
        after.iter().map(|u| &u.0).collect::<Vec<_>>(),
        ranked.iter().map(|u| &u.0).collect::<Vec<_>>()
    );

    // A wrong key: scoring still scores, says it did not index, and reports
    // Qdrant's refusal clearly (without echoing the key).
    let wrong = scoring_args(
        &det,
        &emb,
        &redis.url(),
        &[
            "--qdrant-url",
            &qdrant.url(),
            "--qdrant-api-key",
            "wrong-key-0000",
        ],
    );
    let router = app(AppState::new(&wrong).unwrap());
    let (status, body) = score(&router, &yao, Some("yao-2")).await;
    assert_eq!(
        (status, &body["indexed"]),
        (200, &Value::Bool(false)),
        "{body}"
    );
    let (status, body) = get(&router, "/api/similar/yao").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_unauthorized")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("qdrant"),
        "{body}"
    );
    let (status, body) = get(&router, "/api/ready").await;
    assert_eq!(status, 200, "{body}");
    let detail = body["checks"]["qdrant"]["detail"].as_str().unwrap();
    assert_eq!(body["checks"]["qdrant"]["ok"], false, "{body}");
    assert!(
        detail.contains("401") && detail.contains("API key"),
        "{detail}"
    );
    assert!(!body.to_string().contains("wrong-key-0000"), "{body}");
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
    let (status, body) = get(&router, "/api/similar/yao").await;
    assert_eq!(status, 501);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("QDRANT_URL"));
    // A malformed query string gets the JSON 400 like every other error.
    let (status, body) = get(&router, "/api/similar/yao?limit=many").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
}
