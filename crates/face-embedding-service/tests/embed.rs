//! The real ArcFace model on faces found by the real SCRFD model.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use face_detection_service::{Detector, DetectorConfig};
use face_embedding_service::{align, app, cosine, AppState, Args, EmbedResponse};
use image::RgbImage;
use service_kit::{assets, imaging};
use tower::ServiceExt;

fn detector() -> Detector {
    let config = DetectorConfig {
        input_size: 640,
        score_threshold: 0.5,
        nms_threshold: 0.4,
        threads: service_kit::onnx::Threads::for_cpus(2, Some(1), Some(2)),
    };
    Detector::load(&assets::detection_model(), config).unwrap()
}

fn state() -> AppState {
    let model = assets::embedding_model();
    AppState::load(&Args::parse_from([
        "t",
        "--model-path",
        model.to_str().unwrap(),
    ]))
    .unwrap()
}

fn photo(name: &str) -> (Vec<u8>, RgbImage) {
    let bytes = std::fs::read(assets::require(&format!("photos/{name}"))).unwrap();
    let image = imaging::decode(&bytes, imaging::ImageLimits::default()).unwrap();
    (bytes, image)
}

fn embed_faces(
    state: &AppState,
    det: &Detector,
    image: &RgbImage,
    threshold: f32,
) -> Vec<Vec<f32>> {
    let (faces, _) = det.detect(image, Some(threshold)).unwrap();
    faces
        .iter()
        .map(|f| {
            state
                .embedder
                .embed(&align::align(image, &f.landmarks).unwrap())
                .unwrap()
                .0
        })
        .collect()
}

#[test]
fn same_person_is_nearest_and_flip_is_close() {
    let (state, det) = (state(), detector());
    let (_, yao) = photo("yaoming.jpg");
    let (faces, _) = det.detect(&yao, None).unwrap();
    let crop = align::align(&yao, &faces[0].landmarks).unwrap();
    let (e, _) = state.embedder.embed(&crop).unwrap();
    assert_eq!(e.len(), 512);
    assert!((e.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);

    let (flipped, _) = state
        .embedder
        .embed(&image::imageops::flip_horizontal(&crop))
        .unwrap();
    let flip = cosine(&e, &flipped);
    assert!(flip > 0.9, "face vs its mirror: cosine {flip}");

    let (_, players) = photo("players.jpg");
    let others = embed_faces(&state, &det, &players, 0.7);
    assert!(others.len() >= 14);
    let mut sims: Vec<f32> = others.iter().map(|o| cosine(&e, o)).collect();
    sims.sort_by(|a, b| b.total_cmp(a));
    eprintln!(
        "yaoming vs players: best {:.3}, runner-up {:.3}",
        sims[0], sims[1]
    );
    assert!(
        sims[0] > 0.45 && sims[0] - sims[1] > 0.25,
        "no clear match: {sims:?}"
    );
}

fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "b0undary42";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if *name == "image" {
            body.extend_from_slice(b"; filename=\"f\"\r\nContent-Type: application/octet-stream");
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post(
    router: &axum::Router,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let request = Request::post("/api/v1/embed")
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn http_with_landmarks_equals_prealigned_crop() {
    let state = state();
    let router = app(state.clone());
    let (bytes, yao) = photo("yaoming.jpg");
    let (faces, _) = detector().detect(&yao, None).unwrap();
    let landmarks = serde_json::to_vec(&faces[0].landmarks).unwrap();
    let (ct, body) = multipart(&[("image", &bytes), ("landmarks", &landmarks)]);
    let (status, json) = post(&router, &ct, body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let from_landmarks: EmbedResponse = serde_json::from_value(json).unwrap();
    assert!(from_landmarks.aligned);
    assert_eq!(from_landmarks.dim, 512);

    let crop = align::align(&yao, &faces[0].landmarks).unwrap();
    let mut png = Vec::new();
    crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (status, json) = post(&router, "image/png", png).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let from_crop: EmbedResponse = serde_json::from_value(json).unwrap();
    assert!(!from_crop.aligned);
    assert!(cosine(&from_landmarks.embedding, &from_crop.embedding) > 0.999);

    // a whole photo without landmarks cannot be embedded
    let (status, json) = post(&router, "image/jpeg", bytes.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["error"]["code"], "landmarks_required");
    // landmarks of the wrong shape
    for bad in [
        &b"[[1,2],[3,4]]"[..],
        b"[[1,2,3],[1,2],[1,2],[1,2],[1,2]]",
        b"{\"x\":1}",
        b"nonsense",
        // degenerate: all five points coincide (docs/services.md: 400, like
        // every other unusable landmarks value; it was a 422)
        b"[[5,5],[5,5],[5,5],[5,5],[5,5]]",
    ] {
        let (ct, body) = multipart(&[("image", &bytes), ("landmarks", bad)]);
        let (status, json) = post(&router, &ct, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert_eq!(json["error"]["code"], "invalid_landmarks");
    }
}
