//! The SCRFD detector: letterbox, run, decode, NMS.

use std::path::Path;
use std::time::Duration;

use image::RgbImage;
use service_kit::onnx::ort::value::TensorRef;
use service_kit::onnx::{ort, Model};

use crate::decode::{decode_stride, nms, Face, StrideOutput};
use crate::letterbox::Letterbox;
use crate::{Error, Result};

/// Detector settings.
#[derive(Clone, Copy, Debug)]
pub struct DetectorConfig {
    /// Square input side, a multiple of 32.
    pub input_size: u32,
    /// Default minimum face score.
    pub score_threshold: f32,
    /// IoU above which the weaker of two boxes is dropped.
    pub nms_threshold: f32,
    /// ONNX Runtime intra-op threads.
    pub intra_threads: usize,
}

/// One output tensor as (shape, values).
pub type RawOutput = (Vec<i64>, Vec<f32>);

/// A loaded SCRFD model.
#[derive(Debug)]
pub struct Detector {
    model: Model,
    config: DetectorConfig,
}

/// One output tensor, copied out of the session.
struct Raw {
    shape: Vec<i64>,
    data: Vec<f32>,
}

impl Detector {
    /// Loads the model at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an input size not a multiple of 32,
    /// [`Error::Kit`] when the runtime or model cannot be loaded.
    pub fn load(path: &Path, config: DetectorConfig) -> Result<Self> {
        if config.input_size == 0 || !config.input_size.is_multiple_of(32) {
            return Err(Error::Config(format!(
                "detection input size {} is not a positive multiple of 32; use e.g. 640",
                config.input_size
            )));
        }
        let model = Model::load(path, config.intra_threads)?;
        Ok(Self { model, config })
    }

    /// The settings in use.
    pub fn config(&self) -> DetectorConfig {
        self.config
    }

    /// Raw output tensors for `image` (for comparisons with Python).
    ///
    /// # Errors
    ///
    /// [`Error::Kit`] when the run fails.
    pub fn raw_outputs(&self, image: &RgbImage) -> Result<(Vec<RawOutput>, Duration)> {
        let lb = Letterbox::new(image.width(), image.height(), self.config.input_size);
        let (raw, took) = self.run(&lb, image)?;
        Ok((raw.into_iter().map(|r| (r.shape, r.data)).collect(), took))
    }

    fn run(&self, lb: &Letterbox, image: &RgbImage) -> Result<(Vec<Raw>, Duration)> {
        let tensor = lb.tensor(image);
        Ok(self.model.with_session(|session| {
            let outputs = session.run(ort::inputs![TensorRef::from_array_view(&tensor)?])?;
            let mut raw = Vec::with_capacity(outputs.len());
            for (_, value) in outputs.iter() {
                let (shape, data) = value.try_extract_tensor::<f32>()?;
                raw.push(Raw {
                    shape: shape.to_vec(),
                    data: data.to_vec(),
                });
            }
            Ok(raw)
        })?)
    }

    /// Faces in `image` with score >= `threshold` (the configured one when
    /// `None`), best first, and the model's run time.
    ///
    /// # Errors
    ///
    /// [`Error::Kit`] when the run fails, [`Error::Layout`] when the outputs
    /// are not SCRFD's 3 strides x (score, box, landmarks).
    pub fn detect(
        &self,
        image: &RgbImage,
        threshold: Option<f32>,
    ) -> Result<(Vec<Face>, Duration)> {
        let input = self.config.input_size;
        let lb = Letterbox::new(image.width(), image.height(), input);
        let (raw, took) = self.run(&lb, image)?;
        // Group by last dimension (1 score, 4 box, 10 landmarks); within a
        // group more anchors means a finer stride.
        let group = |last: i64| {
            let mut g: Vec<&Raw> = raw
                .iter()
                .filter(|r| r.shape.last() == Some(&last))
                .collect();
            g.sort_by_key(|r| std::cmp::Reverse(r.data.len()));
            g
        };
        let (scores, boxes, kps) = (group(1), group(4), group(10));
        if scores.len() != 3 || boxes.len() != 3 || kps.len() != 3 {
            let shapes: Vec<_> = raw.iter().map(|r| r.shape.clone()).collect();
            return Err(Error::Layout(format!(
                "expected 3 strides x (score [.,k,1], box [.,k,4], landmarks [.,k,10]), got shapes {shapes:?}; is this a SCRFD model with keypoints?"
            )));
        }
        let threshold = threshold.unwrap_or(self.config.score_threshold);
        let mut faces = Vec::new();
        for (i, stride) in [8u32, 16, 32].into_iter().enumerate() {
            let out = StrideOutput {
                stride,
                scores: &scores[i].data,
                boxes: &boxes[i].data,
                kps: &kps[i].data,
            };
            let decoded = decode_stride(out, input, threshold).ok_or_else(|| {
                let cells = input / stride;
                Error::Layout(format!(
                    "stride {stride}: {} scores do not fit a {cells}x{cells} anchor grid",
                    scores[i].data.len()
                ))
            })?;
            faces.extend(decoded);
        }
        for f in &mut faces {
            let (x1, y1) = lb.to_image(f.bbox[0], f.bbox[1]);
            let (x2, y2) = lb.to_image(f.bbox[2], f.bbox[3]);
            f.bbox = [x1, y1, x2, y2];
            for l in &mut f.landmarks {
                let (x, y) = lb.to_image(l[0], l[1]);
                *l = [x, y];
            }
        }
        Ok((nms(faces, self.config.nms_threshold), took))
    }
}
