//! Comparing `ort` outputs with Python's onnxruntime on the same tensor.
//!
//! Test support: writes the input as raw float32, runs
//! `scripts/ort_reference.py` (needs `pip install onnxruntime==1.31.1 numpy`)
//! and reads its outputs back. Panics with the fix when Python or its
//! packages are missing: a parity test that skips proves nothing.

use std::path::Path;
use std::process::Command;

/// Python's outputs of `model` on `input` (of `shape`), in output order.
///
/// # Panics
///
/// When python3, onnxruntime or numpy is missing, or the script fails.
pub fn python_outputs(model: &Path, input: &[f32], shape: &[usize]) -> Vec<Vec<f32>> {
    let dir =
        std::env::temp_dir().join(format!("ort-parity-{}-{}", std::process::id(), input.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let input_path = dir.join("input.bin");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_path, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ort_reference.py");
    let shape_arg = shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("python3")
        .arg(&script)
        .arg(model)
        .arg(&input_path)
        .arg(&shape_arg)
        .arg(&dir)
        .output()
        .expect("python3 must be installed for the parity tests");
    assert!(
        out.status.success(),
        "{} failed (pip install onnxruntime==1.31.1 numpy?):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "python reference: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    let mut outputs = Vec::new();
    for i in 0.. {
        let Ok(raw) = std::fs::read(dir.join(format!("{i}.bin"))) else {
            break;
        };
        outputs.push(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    outputs
}

/// Largest absolute difference of two equally long slices.
///
/// # Panics
///
/// When the lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
