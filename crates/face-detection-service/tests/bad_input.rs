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

/// A PNG whose IHDR claims `w`x`h`, followed by a tiny IDAT and IEND: a
/// few dozen bytes that would decode to `w * h * 3` bytes of pixels.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut crc = 0xffff_ffffu32;
        for &b in &body {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&(!crc).to_be_bytes());
    }
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut v, b"IHDR", &ihdr);
    chunk(
        &mut v,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut v, b"IEND", &[]);
    v
}

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
