//! The SCRFD detector: letterbox, run, decode, NMS.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use image::RgbImage;
use service_kit::onnx::ort::value::TensorRef;
use service_kit::onnx::{ort, Model, Slot, Threads};

use crate::decode::{decode_stride, nms, Face, StrideOutput};
use crate::helpers::Helpers;
use crate::letterbox::{self, Letterbox};
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
    /// Model sessions and ONNX Runtime intra-op threads per session.
    pub threads: Threads,
}

/// Where one detection's time went (for `--bench-stages`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stages {
    /// Waiting for a free session.
    pub wait: Duration,
    /// Decoding the image, in [`Detector::detect_encoded`] (with the
    /// helpers' steering and the wait for them when they warm the input
    /// buffer); otherwise only getting at the image at hand.
    pub decode: Duration,
    /// Letterbox and normalisation into the input tensor.
    pub letterbox: Duration,
    /// The model run.
    pub run: Duration,
    /// Anchor decoding, mapping back and NMS.
    pub post: Duration,
}

/// One output tensor as (shape, values).
pub type RawOutput = (Vec<i64>, Vec<f32>);

/// A loaded SCRFD model.
#[derive(Debug)]
pub struct Detector {
    model: Model,
    config: DetectorConfig,
    /// Threads that share the letterbox with the calling one: one fewer than
    /// the CPUs this process may use (all at most [`MAX_LETTERBOX_THREADS`]).
    helpers: Helpers,
    /// Detections in [`Detector::detect_encoded`] now: the helpers warm the
    /// input buffer only for one alone (other work, such as reading
    /// uploads, is not counted).
    in_flight: AtomicUsize,
}

/// The most threads one letterbox is shared by (the calling one included).
pub const MAX_LETTERBOX_THREADS: usize = 4;

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
        let model = Model::load(path, config.threads)?;
        Ok(Self {
            model,
            config,
            helpers: Helpers::new(service_kit::cpu::cpus().clamp(1, MAX_LETTERBOX_THREADS) - 1),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> DetectorConfig {
        self.config
    }

    /// The session pool (for the raw-inference benchmark).
    pub fn model(&self) -> &Model {
        &self.model
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
        let side = self.config.input_size as usize;
        let ((raw, took), _) = self.model.with_session(|slot| {
            let started = self.fill(slot, lb, image, side);
            let outputs = slot.session.run(ort::inputs![TensorRef::from_array_view((
                [1usize, 3, side, side],
                &slot.input[..]
            ))?])?;
            let took = started.elapsed();
            let mut raw = Vec::with_capacity(outputs.len());
            for (_, value) in outputs.iter() {
                let (shape, data) = value.try_extract_tensor::<f32>()?;
                raw.push(Raw {
                    shape: shape.to_vec(),
                    data: data.to_vec(),
                });
            }
            Ok((raw, took))
        })?;
        Ok((raw, took))
    }

    /// Letterboxes `image` into the slot's reused input buffer, shared with
    /// the helper threads (bit-identical to one thread); returns when it
    /// finished.
    /// The padding is written only when the slot's buffer last held another
    /// geometry (its `input_tag`).
    fn fill(&self, slot: &mut Slot, lb: &Letterbox, image: &RgbImage, side: usize) -> Instant {
        let tag = geometry_tag(lb.resized);
        let same = slot.input_tag == Some(tag) && slot.input.len() == 3 * side * side;
        // unknown until this fill has finished (a panic leaves it unknown)
        slot.input_tag = None;
        slot.input.resize(3 * side * side, 0.0);
        if same {
            lb.fill_image_shared(image, &mut slot.input, &self.helpers);
        } else {
            lb.fill_shared(image, &mut slot.input, &self.helpers);
        }
        slot.input_tag = Some(tag);
        Instant::now()
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
        let (faces, stages) = self.detect_staged(image, threshold)?;
        Ok((faces, stages.run))
    }

    /// [`Detector::detect`], with the time of each stage. The outputs are
    /// decoded where ONNX Runtime left them (no copy), and the input tensor
    /// is written into the session's reused buffer.
    ///
    /// # Errors
    ///
    /// As [`Detector::detect`].
    pub fn detect_staged(
        &self,
        image: &RgbImage,
        threshold: Option<f32>,
    ) -> Result<(Vec<Face>, Stages)> {
        let (_, faces, stages) = self.detect_from(|_| Ok(Cow::Borrowed(image)), threshold)?;
        Ok((faces, stages))
    }

    /// Decodes an image with `decode` and detects its faces, as a request
    /// does: returns the image, the faces as [`Detector::detect`] and the
    /// time of each stage, decoding included.
    ///
    /// A detection alone (no other in [`Detector::detect_encoded`]) decodes
    /// on the calling thread once it has a session, while the helpers read
    /// that session's input buffer back into the cache
    /// ([`letterbox::warm`]): the model run of the request before evicted
    /// it, and the letterbox would otherwise wait on memory for every line
    /// it writes. The rows read are those the session's last letterbox
    /// wrote, the likeliest to be written again. The reads stop when the
    /// decode is done or another detection comes in: beside another
    /// request's work they would take CPU time from it. A detection that is
    /// not alone decodes before it asks for a session, so that no session
    /// idles through a decode while another request waits for one.
    ///
    /// # Errors
    ///
    /// [`Error::Kit`] when `decode` fails, else as [`Detector::detect`].
    pub fn detect_encoded(
        &self,
        decode: impl FnOnce() -> service_kit::Result<RgbImage>,
        threshold: Option<f32>,
    ) -> Result<(RgbImage, Vec<Face>, Stages)> {
        let side = self.config.input_size as usize;
        let alone = self.in_flight.fetch_add(1, Ordering::SeqCst) == 0;
        let _counted = InFlight(&self.in_flight);
        if !alone {
            let started = Instant::now();
            let image = decode()?;
            let decoded = started.elapsed();
            let (_, faces, mut stages) =
                self.detect_from(|_| Ok(Cow::Borrowed(&image)), threshold)?;
            stages.decode = decoded;
            return Ok((image, faces, stages));
        }
        let (image, faces, stages) = self.detect_from(
            |slot| {
                // the last geometry written (`fill`'s tag), if any
                let last = slot.input_tag.map(tag_geometry);
                let input = &slot.input[..];
                let next = AtomicUsize::new(0);
                self.helpers
                    .run_beside(decode, |finished| {
                        if let Some(resized) = last {
                            letterbox::warm(input, side, resized, &next, || {
                                finished.load(Ordering::Acquire)
                                    || self.in_flight.load(Ordering::Relaxed) > 1
                            });
                        }
                    })
                    .map(Cow::Owned)
            },
            threshold,
        )?;
        Ok((image.into_owned(), faces, stages))
    }

    /// Detections in [`Detector::detect_encoded`] at this moment.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The detection steps inside one session lease, the image coming from
    /// `image_of` (a decode, or an image at hand).
    fn detect_from<'i>(
        &self,
        image_of: impl FnOnce(&Slot) -> service_kit::Result<Cow<'i, RgbImage>>,
        threshold: Option<f32>,
    ) -> Result<(Cow<'i, RgbImage>, Vec<Face>, Stages)> {
        let input = self.config.input_size;
        let side = input as usize;
        let threshold = threshold.unwrap_or(self.config.score_threshold);
        let asked = Instant::now();
        let ((decoded, mut stages), _) = self.model.with_session(|slot| {
            let entered = Instant::now();
            let image = match image_of(slot) {
                Ok(image) => image,
                Err(e) => return Ok((Err(Error::Kit(e)), Stages::default())),
            };
            let lb = Letterbox::new(image.width(), image.height(), input);
            let ready = Instant::now();
            let filled = self.fill(slot, &lb, &image, side);
            let outputs = slot.session.run(ort::inputs![TensorRef::from_array_view((
                [1usize, 3, side, side],
                &slot.input[..]
            ))?])?;
            let ran = Instant::now();
            let mut raw = Vec::with_capacity(outputs.len());
            for i in 0..outputs.len() {
                let (shape, data) = outputs[i].try_extract_tensor::<f32>()?;
                raw.push((&shape[..], data));
            }
            let decoded = decode_outputs(&raw, input, threshold).map(|faces| (image, lb, faces));
            let stages = Stages {
                wait: entered - asked,
                decode: ready - entered,
                letterbox: filled - ready,
                run: ran - filled,
                post: ran.elapsed(),
            };
            Ok((decoded, stages))
        })?;
        let post = Instant::now();
        let (image, lb, mut faces) = decoded?;
        for f in &mut faces {
            let (x1, y1) = lb.to_image(f.bbox[0], f.bbox[1]);
            let (x2, y2) = lb.to_image(f.bbox[2], f.bbox[3]);
            f.bbox = [x1, y1, x2, y2];
            for l in &mut f.landmarks {
                let (x, y) = lb.to_image(l[0], l[1]);
                *l = [x, y];
            }
        }
        let faces = nms(faces, self.config.nms_threshold);
        stages.post += post.elapsed();
        Ok((image, faces, stages))
    }
}

/// The slot's `input_tag` for a letterbox of `resized` width and height.
fn geometry_tag(resized: (u32, u32)) -> u64 {
    u64::from(resized.0) << 32 | u64::from(resized.1)
}

/// The width and height [`geometry_tag`] made `tag` of.
fn tag_geometry(tag: u64) -> (usize, usize) {
    ((tag >> 32) as usize, (tag & 0xffff_ffff) as usize)
}

/// One detection counted in [`Detector`]'s `in_flight` while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// SCRFD's 9 outputs (shape, values), in any order, to faces above
/// `threshold` in network input coordinates.
fn decode_outputs(raw: &[(&[i64], &[f32])], input: u32, threshold: f32) -> Result<Vec<Face>> {
    // Group by last dimension (1 score, 4 box, 10 landmarks); within a
    // group more anchors means a finer stride.
    let group = |last: i64| {
        let mut g: Vec<&[f32]> = raw
            .iter()
            .filter(|(shape, _)| shape.last() == Some(&last))
            .map(|(_, data)| *data)
            .collect();
        g.sort_by_key(|d| std::cmp::Reverse(d.len()));
        g
    };
    let (scores, boxes, kps) = (group(1), group(4), group(10));
    if scores.len() != 3 || boxes.len() != 3 || kps.len() != 3 {
        let shapes: Vec<_> = raw.iter().map(|(shape, _)| shape.to_vec()).collect();
        return Err(Error::Layout(format!(
            "expected 3 strides x (score [.,k,1], box [.,k,4], landmarks [.,k,10]), got shapes {shapes:?}; is this a SCRFD model with keypoints?"
        )));
    }
    let mut faces = Vec::new();
    for (i, stride) in [8u32, 16, 32].into_iter().enumerate() {
        let out = StrideOutput {
            stride,
            scores: scores[i],
            boxes: boxes[i],
            kps: kps[i],
        };
        let decoded = decode_stride(out, input, threshold).ok_or_else(|| {
            let cells = input / stride;
            Error::Layout(format!(
                "stride {stride}: {} scores do not fit a {cells}x{cells} anchor grid",
                scores[i].len()
            ))
        })?;
        faces.extend(decoded);
    }
    Ok(faces)
}
