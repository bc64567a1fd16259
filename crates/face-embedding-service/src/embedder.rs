//! The ArcFace embedder: aligned 112x112 RGB crop in, unit 512-d vector out.

use std::path::Path;
use std::time::Duration;

use image::RgbImage;
use ndarray::Array4;
use service_kit::onnx::ort::value::TensorRef;
use service_kit::onnx::{ort, Model};

use crate::align::ALIGNED_SIDE;
use crate::{Error, Result};

/// A loaded ArcFace model.
#[derive(Debug)]
pub struct Embedder {
    model: Model,
}

/// Scales `v` to unit length (left as is when all zero).
pub fn l2_normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(f32::EPSILON)
}

/// The NCHW tensor of an aligned crop: RGB, (x - 127.5) / 127.5.
pub fn tensor(face: &RgbImage) -> Array4<f32> {
    let side = face.width() as usize;
    let mut t = Array4::<f32>::zeros((1, 3, side, side));
    for (x, y, p) in face.enumerate_pixels() {
        for c in 0..3 {
            t[[0, c, y as usize, x as usize]] = (f32::from(p[c]) - 127.5) / 127.5;
        }
    }
    t
}

impl Embedder {
    /// Loads the model at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Kit`] when the runtime or model cannot be loaded.
    pub fn load(path: &Path, intra_threads: usize) -> Result<Self> {
        Ok(Self {
            model: Model::load(path, intra_threads)?,
        })
    }

    /// The raw (unnormalised) output for an aligned crop.
    ///
    /// # Errors
    ///
    /// [`Error::NotAligned`] when `face` is not 112x112, [`Error::Kit`] when the run fails.
    pub fn raw(&self, face: &RgbImage) -> Result<(Vec<f32>, Duration)> {
        if face.dimensions() != (ALIGNED_SIDE, ALIGNED_SIDE) {
            return Err(Error::NotAligned(face.width(), face.height()));
        }
        let input = tensor(face);
        Ok(self.model.with_session(|session| {
            let outputs = session.run(ort::inputs![TensorRef::from_array_view(&input)?])?;
            let (_, data) = outputs[0].try_extract_tensor::<f32>()?;
            Ok(data.to_vec())
        })?)
    }

    /// The L2-normalised embedding of an aligned crop and the model run time.
    ///
    /// # Errors
    ///
    /// As [`Embedder::raw`].
    pub fn embed(&self, face: &RgbImage) -> Result<(Vec<f32>, Duration)> {
        let (mut v, took) = self.raw(face)?;
        l2_normalise(&mut v);
        Ok((v, took))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_unit_length() {
        let mut v = vec![3.0, 4.0];
        l2_normalise(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        l2_normalise(&mut zero);
        assert_eq!(zero, vec![0.0; 3]);
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 5.0]).abs() < 1e-6);
    }
}
