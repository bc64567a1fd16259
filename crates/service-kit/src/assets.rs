//! Where the fetched assets are, for tests and local runs.
//!
//! `scripts/fetch-assets.sh` puts models, the runtime and test photos under
//! `ASSETS_DIR` (default `<repo>/.cache/assets`). Tests call [`require`] and
//! fail loudly when they are missing: a skipped model test proves nothing.

use std::path::PathBuf;

/// The assets directory: `ASSETS_DIR` or `<repo>/.cache/assets`.
pub fn dir() -> PathBuf {
    std::env::var_os("ASSETS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets"),
        PathBuf::from,
    )
}

/// The path of an asset relative to [`dir`], e.g. `photos/yaoming.jpg`.
///
/// Also makes the fetched runtime the one loaded when `ORT_DYLIB_PATH` is unset.
///
/// # Panics
///
/// When the file is missing, with the command that fetches it.
pub fn require(relative: &str) -> PathBuf {
    let root = dir();
    let path = root.join(relative);
    assert!(
        path.exists(),
        "asset {} is missing: run scripts/fetch-assets.sh --dest {} (or set ASSETS_DIR)",
        path.display(),
        root.display()
    );
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        let lib = root.join("runtimes/onnxruntime/libonnxruntime.so.1");
        assert!(
            lib.exists(),
            "onnx runtime {} is missing: run scripts/fetch-assets.sh",
            lib.display()
        );
        // Tests are the only callers; they set it before any runtime use.
        std::env::set_var("ORT_DYLIB_PATH", lib);
    }
    path
}

/// Paths of the two models under [`dir`].
pub fn detection_model() -> PathBuf {
    require("models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx")
}

/// Path of the embedding model under [`dir`].
pub fn embedding_model() -> PathBuf {
    require("models/w600k_mbf/w600k_mbf.onnx")
}

/// Path of the fetched ONNX Runtime library under [`dir`] (for child processes).
pub fn runtime_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH").map_or_else(
        || require("runtimes/onnxruntime/libonnxruntime.so.1"),
        PathBuf::from,
    )
}
