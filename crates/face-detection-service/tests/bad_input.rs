//! Bad requests get a 4xx JSON error, never a crash or a 500.

use axum::body::Body;
use axum::http::Request;
use clap::Parser;
use face_detection_service::{app, AppState, Args};
use service_kit::assets;
use tower::ServiceExt;

fn router(extra: &[&str]) -> axum::Router {
    let model = assets::detection_model();
    let mut argv = vec!["t", "--model-path", model.to_str().unwrap()];
    argv.extend_from_slice(extra);
    app(AppState::load(&Args::parse_from(argv)).unwrap())
}

async fn post(
    router: &axum::Router,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let request = Request::post("/api/v1/detect")
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not json: {bytes:?}")),
    )
}

use service_kit::testdata::png_header;

fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn each_bad_input_gets_its_4xx() {
    let router = router(&["--max-body-bytes", "200000"]);
    let yao = std::fs::read(assets::require("photos/yaoming.jpg")).unwrap();

    let (s, b) = post(&router, "image/jpeg", Vec::new()).await;
    assert_eq!((s, code(&b)), (400, "missing_image"), "empty body");

    let (s, b) = post(&router, "text/plain", b"hello".to_vec()).await;
    assert_eq!(
        (s, code(&b)),
        (415, "unsupported_content_type"),
        "wrong content type"
    );

    let (s, b) = post(&router, "image/jpeg", yao[..yao.len() / 3].to_vec()).await;
    assert_eq!((s, code(&b)), (422, "invalid_image"), "truncated jpeg: {b}");

    let (s, b) = post(&router, "image/jpeg", b"not an image at all".to_vec()).await;
    assert_eq!((s, code(&b)), (422, "invalid_image"));

    let (s, b) = post(&router, "image/png", png_header(60000, 60000)).await;
    assert_eq!((s, code(&b)), (413, "image_too_large"), "{b}");

    let players = std::fs::read(assets::require("photos/players.jpg")).unwrap();
    assert!(players.len() > 200_000);
    let (s, b) = post(&router, "image/jpeg", players).await;
    assert_eq!((s, code(&b)), (413, "payload_too_large"), "{b}");

    let (s, b) = post(
        &router,
        "multipart/form-data; boundary=x",
        b"garbage".to_vec(),
    )
    .await;
    assert!((400..500).contains(&s), "broken multipart: {s} {b}");

    let (s, b) = post(
        &router,
        "multipart/form-data; boundary=x",
        b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n".to_vec(),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (400, "missing_image"),
        "multipart without image"
    );

    // no face: a clear empty result, not an error
    let grey = image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
    let mut png = Vec::new();
    grey.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (s, b) = post(&router, "image/png", png).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["face_count"], 0);

    let (s, b) = post(&router, "image/jpeg", yao).await;
    assert_eq!(
        (s, b["face_count"].as_u64()),
        (200, Some(1)),
        "still serving after all that"
    );

    let request = Request::get("/nope").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 404);

    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("face_detection_errors_total{code=\"image_too_large\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "face_detection_http_requests_total{route=\"/api/v1/detect\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains("face_detection_inference_duration_seconds_count 2"),
        "{text}"
    );
}
