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

use service_kit::testdata::{jpeg_forged_size, png_header, png_header_with};

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

    // Within the pixel limits, but 16-bit RGBA: 437 MB to decode. Refused
    // from the header (the fake pixel data would otherwise be a 422).
    let (s, b) = post(&router, "image/png", png_header_with(6300, 6300, 16, 6)).await;
    assert_eq!((s, code(&b)), (413, "image_too_large"), "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAX_DECODED_BYTES"),
        "{b}"
    );

    // A ~1 KB JPEG with its end marker declaring 8000x5000: not grey padding.
    let (s, b) = post(&router, "image/jpeg", jpeg_forged_size(8000, 5000)).await;
    assert_eq!((s, code(&b)), (422, "invalid_image"), "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("8000x5000"),
        "{b}"
    );

    // A malformed query string: the JSON 400, not axum's text/plain.
    let request = Request::post("/api/v1/detect?score_threshold=high")
        .header("content-type", "image/jpeg")
        .body(Body::from(yao.clone()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let b: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code(&b), "invalid_query", "{b}");

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
        text.contains("face_detection_errors_total{code=\"image_too_large\"} 2"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_beyond_the_queue_get_503_with_retry_after() {
    let router = router(&["--max-concurrent-decodes", "1", "--max-queued-decodes", "0"]);
    let players = std::fs::read(assets::require("photos/players.jpg")).unwrap();
    let calls = (0..4).map(|_| {
        let router = router.clone();
        let body = players.clone();
        tokio::spawn(async move {
            let request = Request::post("/api/v1/detect")
                .header("content-type", "image/jpeg")
                .body(Body::from(body))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), retry)
        })
    });
    let mut answers = Vec::new();
    for c in calls.collect::<Vec<_>>() {
        answers.push(c.await.unwrap());
    }
    assert!(answers.contains(&(200, None)), "{answers:?}");
    assert!(
        answers.contains(&(503, Some("1".to_owned()))),
        "one decode at a time and no queue: {answers:?}"
    );
}

#[tokio::test]
async fn service_token_guards_every_route_but_health_and_ready() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "  det-token-7c1e\n").unwrap();
    let router = router(&["--service-token-file", token_file.to_str().unwrap()]);
    let yao = std::fs::read(assets::require("photos/yaoming.jpg")).unwrap();
    let send = |uri: &str, auth: Option<&str>, body: Option<Vec<u8>>| {
        let mut b = match &body {
            Some(_) => Request::post(uri).header("content-type", "image/jpeg"),
            None => Request::get(uri),
        };
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let request = b.body(Body::from(body.unwrap_or_default())).unwrap();
        let router = router.clone();
        async move { router.oneshot(request).await.unwrap() }
    };
    assert_eq!(send("/api/health", None, None).await.status(), 200);
    assert_eq!(send("/api/ready", None, None).await.status(), 200);
    for auth in [None, Some("Bearer wrong"), Some("det-token-7c1e")] {
        let response = send("/api/v1/detect", auth, Some(yao.clone())).await;
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let b: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(code(&b), "unauthorized");
        assert!(!b.to_string().contains("det-token-7c1e"));
    }
    assert_eq!(send("/metrics", None, None).await.status(), 401);
    let ok = send("/api/v1/detect", Some("Bearer det-token-7c1e"), Some(yao)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        send("/metrics", Some("Bearer det-token-7c1e"), None)
            .await
            .status(),
        200
    );

    // An empty token file is a startup error naming the variable.
    std::fs::write(&token_file, "\n").unwrap();
    let model = assets::detection_model();
    let args = Args::parse_from([
        "t",
        "--model-path",
        model.to_str().unwrap(),
        "--service-token-file",
        token_file.to_str().unwrap(),
    ]);
    let err = AppState::load(&args).unwrap_err().to_string();
    assert!(
        err.contains("SERVICE_TOKEN_FILE") && err.contains("empty"),
        "{err}"
    );
}
