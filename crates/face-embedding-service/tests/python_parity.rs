//! Rust `ort` vs Python onnxruntime 1.31.1 on the same aligned face.
//!
//! Tolerance: 1e-3 absolute on the raw (unnormalised) 512 values, whose
//! magnitudes are O(1..10), and cosine > 0.99999 between the two vectors.

use clap::Parser;
use face_detection_service::{Detector, DetectorConfig};
use face_embedding_service::embedder::tensor;
use face_embedding_service::{align, cosine, AppState, Args};
use service_kit::{assets, imaging, parity};

#[test]
fn arcface_output_matches_python_onnxruntime() {
    let model = assets::embedding_model();
    let state = AppState::load(&Args::parse_from([
        "t",
        "--model-path",
        model.to_str().unwrap(),
    ]))
    .unwrap();
    let config = DetectorConfig {
        input_size: 640,
        score_threshold: 0.5,
        nms_threshold: 0.4,
        threads: service_kit::onnx::Threads::for_cpus(2, Some(1), Some(2)),
    };
    let detector = Detector::load(&assets::detection_model(), config).unwrap();
    let bytes = std::fs::read(assets::require("photos/yaoming.jpg")).unwrap();
    let image = imaging::decode(&bytes, imaging::ImageLimits::default()).unwrap();
    let (faces, _) = detector.detect(&image, None).unwrap();
    let crop = align::align(&image, &faces[0].landmarks).unwrap();
    let (rust, _) = state.embedder.raw(&crop).unwrap();
    let python =
        parity::python_outputs(&model, tensor(&crop).as_slice().unwrap(), &[1, 3, 112, 112]);
    let d = parity::max_abs_diff(&rust, &python[0]);
    let c = cosine(&rust, &python[0]);
    eprintln!("w600k_mbf: max |rust - python| = {d:e}, cosine {c}");
    assert!(d < 1e-3 && c > 0.99999, "diff {d}, cosine {c}");
}
