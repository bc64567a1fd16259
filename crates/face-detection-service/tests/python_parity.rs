//! Rust `ort` vs Python onnxruntime 1.31.1 on the same SCRFD input tensor.
//!
//! Tolerance: 1e-4 absolute on every output value (scores, distances and
//! landmark offsets are O(1)); both run the same CPU kernels, so the
//! differences seen are float reordering noise, well below that.

use clap::Parser;
use face_detection_service::letterbox::Letterbox;
use face_detection_service::{AppState, Args};
use service_kit::{assets, imaging, parity};

#[test]
fn scrfd_outputs_match_python_onnxruntime() {
    let model = assets::detection_model();
    let state = AppState::load(&Args::parse_from([
        "t",
        "--model-path",
        model.to_str().unwrap(),
    ]))
    .unwrap();
    let bytes = std::fs::read(assets::require("photos/gdp.jpg")).unwrap();
    let image = imaging::decode(&bytes, imaging::ImageLimits::default()).unwrap();
    let (rust, _) = state.detector.raw_outputs(&image).unwrap();
    let tensor = Letterbox::new(image.width(), image.height(), 640).tensor(&image);
    let python = parity::python_outputs(&model, tensor.as_slice().unwrap(), &[1, 3, 640, 640]);
    assert_eq!(python.len(), 9, "scrfd has 9 outputs");
    for (i, ((shape, r), p)) in rust.iter().zip(&python).enumerate() {
        let d = parity::max_abs_diff(r, p);
        eprintln!("output {i} {shape:?}: max |rust - python| = {d:e}");
        assert!(d < 1e-4, "output {i}: max abs diff {d}");
    }
}
