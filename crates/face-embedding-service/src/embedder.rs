//! The ArcFace embedder: aligned 112x112 RGB crop in, unit 512-d vector out.

use std::path::Path;
use std::time::{Duration, Instant};

use image::RgbImage;
use ndarray::Array4;
use service_kit::onnx::ort::value::TensorRef;
use service_kit::onnx::{ort, Model, Threads};

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
    let (w, h) = (face.width() as usize, face.height() as usize);
    let mut data = vec![0.0; 3 * w * h];
    fill(face, &mut data);
    Array4::from_shape_vec((1, 3, h, w), data).expect("buffer length is 3 * width * height")
}

/// Writes [`tensor`]'s values into `out` (`3 * width * height` long), plane
/// by plane in one pass over the pixels.
///
/// # Panics
///
/// When `out` has another length.
pub fn fill(face: &RgbImage, out: &mut [f32]) {
    let plane = face.width() as usize * face.height() as usize;
    assert_eq!(out.len(), 3 * plane, "input buffer length");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, p) in face.as_raw().chunks_exact(3).enumerate() {
        r[i] = (f32::from(p[0]) - 127.5) / 127.5;
        g[i] = (f32::from(p[1]) - 127.5) / 127.5;
        b[i] = (f32::from(p[2]) - 127.5) / 127.5;
    }
}

impl Embedder {
    /// Loads the model at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Kit`] when the runtime or model cannot be loaded.
    pub fn load(path: &Path, threads: Threads) -> Result<Self> {
        Ok(Self {
            model: Model::load(path, threads)?,
        })
    }

    /// The session pool (for the raw-inference benchmark).
    pub fn model(&self) -> &Model {
        &self.model
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
        let side = ALIGNED_SIDE as usize;
        let ((v, took), _) = self.model.with_session(|slot| {
            slot.input.resize(3 * side * side, 0.0);
            fill(face, &mut slot.input);
            let started = Instant::now();
            let outputs = slot.session.run(ort::inputs![TensorRef::from_array_view((
                [1usize, 3, side, side],
                &slot.input[..]
            ))?])?;
            let took = started.elapsed();
            let (_, data) = outputs[0].try_extract_tensor::<f32>()?;
            Ok((data.to_vec(), took))
        })?;
        Ok((v, took))
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

    #[test]
    fn tensor_is_planar_and_normalised() {
        let face = RgbImage::from_fn(4, 2, |x, y| image::Rgb([x as u8 * 60, y as u8 * 255, 255]));
        let t = tensor(&face);
        for (x, y, p) in face.enumerate_pixels() {
            for c in 0..3 {
                let want = (f32::from(p[c]) - 127.5) / 127.5;
                assert_eq!(t[[0, c, y as usize, x as usize]], want);
            }
        }
    }
}
