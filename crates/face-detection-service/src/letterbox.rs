//! Pre-processing: fit the image into the square network input.
//!
//! As in InsightFace's reference code, the image is scaled to fit keeping
//! its aspect ratio and placed at the top-left corner, the rest is black;
//! so mapping back is a single division by the scale, no offset.

use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use ndarray::Array4;

use crate::helpers::Helpers;

/// How an image was fitted into the input square.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Network input side.
    pub input: u32,
    /// Resized width and height (<= input).
    pub resized: (u32, u32),
    /// Resized size over original size.
    pub scale: f32,
}

impl Letterbox {
    /// The fitting of a `width` x `height` image into `input` x `input`.
    pub fn new(width: u32, height: u32, input: u32) -> Self {
        let aspect = height as f32 / width as f32;
        let (w, h) = if aspect > 1.0 {
            (((input as f32 / aspect) as u32).max(1), input)
        } else {
            (input, ((input as f32 * aspect) as u32).max(1))
        };
        Self {
            input,
            resized: (w, h),
            scale: h as f32 / height as f32,
        }
    }

    /// Maps a point in network input coordinates back to the original image.
    pub fn to_image(&self, x: f32, y: f32) -> (f32, f32) {
        (x / self.scale, y / self.scale)
    }

    /// The NCHW float tensor: RGB, (x - 127.5) / 128, black padding.
    pub fn tensor(&self, image: &RgbImage) -> Array4<f32> {
        let side = self.input as usize;
        let mut data = vec![0.0; 3 * side * side];
        self.fill(image, &mut data);
        Array4::from_shape_vec((1, 3, side, side), data).expect("buffer length is 3 * side * side")
    }

    /// Writes the NCHW tensor into `out` (`3 * input * input` values), every
    /// value overwritten, so a buffer can be reused from request to request.
    ///
    /// Resizing and normalising are fused into one pass writing the planar
    /// buffer directly: bilinear with half-pixel centres and no antialiasing,
    /// which is OpenCV's `INTER_LINEAR`, the reference pipeline's resize.
    /// (`image::imageops::resize` plus a copy cost several times more.) Done
    /// separably: each source row is interpolated along x once (not once per
    /// output row that uses it), then output rows blend two such rows, a
    /// loop the compiler vectorises; padding is written only where the image
    /// is not. Each value is computed with exactly the per-pixel formula's
    /// operations in the same order, so the floats are unchanged (a test
    /// compares bit for bit).
    ///
    /// # Panics
    ///
    /// When `out` is not `3 * input * input` long.
    pub fn fill(&self, image: &RgbImage, out: &mut [f32]) {
        self.fill_rows(image, out, None, true);
    }

    /// [`Letterbox::fill`] shared with `helpers`: the calling thread and the
    /// helpers take chunks of [`CHUNK_ROWS`] output rows from one queue
    /// until it is empty, so a helper that starts late only takes fewer.
    /// Every value is computed exactly as by [`Letterbox::fill`] (a chunk
    /// taken out of turn re-interpolates the source rows it starts with), so
    /// the output is bit-identical whoever wrote which rows. Images with
    /// fewer than [`MIN_SHARED_ROWS`] resized rows stay on the calling
    /// thread.
    ///
    /// # Panics
    ///
    /// When `out` is not `3 * input * input` long.
    pub fn fill_shared(&self, image: &RgbImage, out: &mut [f32], helpers: &Helpers) {
        self.fill_rows(image, out, Some(helpers), true);
    }

    /// [`Letterbox::fill_shared`] writing only the image's values, not the
    /// padding: for a buffer last filled by a letterbox of the same
    /// geometry (`input` and `resized`), whose padding is already right.
    /// The result is then the same as [`Letterbox::fill_shared`]'s.
    ///
    /// # Panics
    ///
    /// When `out` is not `3 * input * input` long.
    pub fn fill_image_shared(&self, image: &RgbImage, out: &mut [f32], helpers: &Helpers) {
        self.fill_rows(image, out, Some(helpers), false);
    }

    fn fill_rows(
        &self,
        image: &RgbImage,
        out: &mut [f32],
        helpers: Option<&Helpers>,
        padding: bool,
    ) {
        let (w, h) = (self.resized.0 as usize, self.resized.1 as usize);
        let side = self.input as usize;
        let plane = side * side;
        assert_eq!(out.len(), 3 * plane, "input buffer length");
        let (src_w, src_h) = (image.width() as usize, image.height() as usize);
        let pad = -127.5 / 128.0;
        let taps = |dst: usize, src: usize| -> Vec<(usize, usize, f32)> {
            let scale = src as f32 / dst as f32;
            (0..dst)
                .map(|i| {
                    let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                    let i0 = (s as usize).min(src - 1);
                    let i1 = (i0 + 1).min(src - 1);
                    (i0, i1, s - i0 as f32)
                })
                .collect()
        };
        let (xs, ys) = (taps(w, src_w), taps(h, src_h));
        // Along x only the left tap's index and the weight are needed: the
        // right tap is always min(x0 + 1, src_w - 1), whose difference from
        // the left one `horizontal` keeps at the left one's index.
        let (x0s, fxs): (Vec<u32>, Vec<f32>) =
            xs.iter().map(|&(x0, _, fx)| (x0 as u32, fx)).unzip();
        let pixels = image.as_raw();
        // Spreading a row costs about half an output column per source
        // pixel and saves about two thirds of each output column's work, so
        // it pays unless the image is shrunk by more than about 1.5.
        let spreading = 2 * src_w <= 3 * w;
        // One source row interpolated along x, planar (w reds, w greens, w
        // blues): the `top` and `bottom` of the bilinear formula,
        // `a + (b - a) * fx` per value with a, b the two taps' values.
        //
        // When `spreading`, the row is first spread into one [red, red
        // step, green, green step, blue, blue step] per source pixel, a step
        // being the next pixel's value minus this one's (0 for the last
        // pixel), so each value is one lookup, multiply and add on the same
        // floats as the formula (so the same bits), with one conversion per
        // source pixel instead of two per output value.
        let horizontal = |sy: usize, buf: &mut [f32], spread: &mut [[f32; 6]]| {
            let row = &pixels[sy * src_w * 3..(sy + 1) * src_w * 3];
            let (r, rest) = buf.split_at_mut(w);
            let (g, b) = rest.split_at_mut(w);
            let outputs = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
            if !spreading {
                for (((r, g), b), &(x0, x1, fx)) in outputs.zip(&xs) {
                    let (p0, p1) = (&row[x0 * 3..x0 * 3 + 3], &row[x1 * 3..x1 * 3 + 3]);
                    let lerp = |c: usize| {
                        let a = f32::from(p0[c]);
                        a + (f32::from(p1[c]) - a) * fx
                    };
                    *r = lerp(0);
                    *g = lerp(1);
                    *b = lerp(2);
                }
                return;
            }
            let mut next = [0.0f32; 3];
            for (p, px) in spread.iter_mut().zip(row.chunks_exact(3)).rev() {
                let v = [f32::from(px[0]), f32::from(px[1]), f32::from(px[2])];
                *p = [
                    v[0],
                    next[0] - v[0],
                    v[1],
                    next[1] - v[1],
                    v[2],
                    next[2] - v[2],
                ];
                next = v;
            }
            // the last pixel has no right neighbour
            if let Some(last) = spread.last_mut() {
                last[1] = 0.0;
                last[3] = 0.0;
                last[5] = 0.0;
            }
            for (((r, g), b), (&x0, &fx)) in outputs.zip(x0s.iter().zip(&fxs)) {
                let p = &spread[x0 as usize];
                *r = p[0] + p[1] * fx;
                *g = p[2] + p[3] * fx;
                *b = p[4] + p[5] * fx;
            }
        };
        // Output rows `first..first + rows` of the three planes, with a
        // thread's scratch rows. Output rows walk the source rows in order,
        // so two cached rows suffice and each source row is interpolated
        // once per run of consecutive chunks, not once per output row.
        let band = |first: usize, planes: [&mut [f32]; 3], scratch: &mut Scratch| {
            let rows = planes[0].len() / side;
            let Scratch {
                top,
                bottom,
                spread,
            } = scratch;
            let [pr, pg, pb] = planes;
            let mut planes = [pr, pg, pb];
            for local in 0..rows {
                let y = first + local;
                let at = local * side;
                if y >= h {
                    // below the image: padding only
                    if padding {
                        for p in &mut planes {
                            p[at..at + side].fill(pad);
                        }
                    }
                    continue;
                }
                // padding right of the image
                if padding {
                    for p in &mut planes {
                        p[at + w..at + side].fill(pad);
                    }
                }
                let (y0, y1, fy) = ys[y];
                if top.0 != y0 {
                    if bottom.0 == y0 {
                        std::mem::swap(top, bottom);
                    } else {
                        horizontal(y0, &mut top.1, spread);
                        top.0 = y0;
                    }
                }
                if bottom.0 != y1 {
                    horizontal(y1, &mut bottom.1, spread);
                    bottom.0 = y1;
                }
                for (c, p) in planes.iter_mut().enumerate() {
                    let dst = &mut p[at..at + w];
                    let t = &top.1[c * w..(c + 1) * w];
                    let b = &bottom.1[c * w..(c + 1) * w];
                    for ((o, &t), &b) in dst.iter_mut().zip(t).zip(b) {
                        *o = (t + (b - t) * fy - 127.5) / 128.0;
                    }
                }
            }
        };
        // Chunks of CHUNK_ROWS output rows, handed out in order to whichever
        // thread asks next: over the whole plane when the padding below the
        // image is written, else over the image rows (the last chunk still
        // spans the rest of the plane, which it leaves alone).
        let chunks = if padding { side } else { h }.div_ceil(CHUNK_ROWS).max(1);
        let ends: Vec<usize> = (1..=chunks)
            .map(|k| if k == chunks { side } else { k * CHUNK_ROWS })
            .collect();
        let mut per_plane: Vec<std::vec::IntoIter<&mut [f32]>> = out
            .chunks_exact_mut(plane)
            .map(|mut rest| {
                let mut parts = Vec::with_capacity(chunks);
                let mut start = 0;
                for &end in &ends {
                    let (this, tail) = std::mem::take(&mut rest).split_at_mut((end - start) * side);
                    parts.push(this);
                    rest = tail;
                    start = end;
                }
                parts.into_iter()
            })
            .collect();
        let mut jobs = Vec::with_capacity(chunks);
        for k in 0..chunks {
            let mut chunk_of =
                |c: usize| -> &mut [f32] { per_plane[c].next().expect("one chunk per plane") };
            let planes = [chunk_of(0), chunk_of(1), chunk_of(2)];
            jobs.push((k * CHUNK_ROWS, planes));
        }
        let jobs = std::sync::Mutex::new(jobs.into_iter());
        let work = || {
            // allocated at the first chunk: a helper that finds the queue
            // empty costs nothing
            let mut scratch: Option<Scratch> = None;
            loop {
                let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((first, planes)) = next else { break };
                let scratch = scratch.get_or_insert_with(|| Scratch {
                    top: (usize::MAX, vec![0.0f32; 3 * w]),
                    bottom: (usize::MAX, vec![0.0f32; 3 * w]),
                    spread: vec![[0.0f32; 6]; src_w],
                });
                band(first, planes, scratch);
            }
        };
        match helpers {
            Some(helpers) if h >= MIN_SHARED_ROWS => helpers.run(work),
            _ => work(),
        }
    }
}

/// Reads the values of `buffer` (a `3 * side * side` input tensor) that a
/// letterbox of `resized` width and height writes, one per cache line, so
/// that a letterbox of that geometry finds them cached: between two
/// requests a model run evicts the 4 MB or so of a 640 input, and the
/// letterbox's writes then wait on memory for each line. Helpers call it
/// while the caller decodes ([`crate::helpers::Helpers::run_beside`]); rows
/// are taken from the shared counter `next`, so several helpers split them,
/// and it stops as soon as `stop` says so (checked before each few rows).
/// Only reads: any buffer, whatever its contents.
pub fn warm(
    buffer: &[f32],
    side: usize,
    resized: (usize, usize),
    next: &AtomicUsize,
    stop: impl Fn() -> bool,
) {
    /// Values in a 64-byte cache line.
    const LINE: usize = 16;
    let (w, h) = (resized.0.min(side), resized.1.min(side));
    if buffer.len() != 3 * side * side || w == 0 || h == 0 {
        return;
    }
    let mut sum = 0.0f32;
    loop {
        let first = next.fetch_add(WARM_ROWS, Ordering::Relaxed);
        if first >= 3 * h || stop() {
            break;
        }
        for row in first..(first + WARM_ROWS).min(3 * h) {
            let start = (row / h) * side * side + (row % h) * side;
            let values = &buffer[start..start + w];
            // the row need not start on a line: its last value may sit on
            // a line the stride steps over
            sum += values.iter().step_by(LINE).sum::<f32>() + values[w - 1];
        }
    }
    std::hint::black_box(sum);
}

/// Rows [`warm`] takes at a time.
const WARM_ROWS: usize = 16;

/// A fill thread's scratch: the two cached source rows interpolated along x
/// (with the source row each holds) and the spread of the row being
/// interpolated.
struct Scratch {
    top: (usize, Vec<f32>),
    bottom: (usize, Vec<f32>),
    spread: Vec<[f32; 6]>,
}

/// Output rows a thread of [`Letterbox::fill_shared`] takes at a time.
pub const CHUNK_ROWS: usize = 32;

/// Resized images shorter than this many rows are letterboxed on the
/// calling thread alone: helpers would cost more than they save.
pub const MIN_SHARED_ROWS: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_takes_every_row_unless_finished_and_refuses_odd_buffers() {
        let side = 64;
        let buffer = vec![0.5f32; 3 * side * side];
        let rows = AtomicUsize::new(0);
        warm(&buffer, side, (40, 50), &rows, || false);
        // every one of the 3 x 50 rows taken, in WARM_ROWS steps
        assert!(rows.load(Ordering::Relaxed) >= 3 * 50);
        // a geometry larger than the square is clipped to it, not a panic
        let rows = AtomicUsize::new(0);
        warm(&buffer, side, (1000, 1000), &rows, || false);
        assert!(rows.load(Ordering::Relaxed) >= 3 * side);
        // once told to stop, one look and no more
        let rows = AtomicUsize::new(0);
        warm(&buffer, side, (40, 50), &rows, || true);
        assert_eq!(rows.load(Ordering::Relaxed), WARM_ROWS);
        // a buffer of another length, or an empty geometry: nothing read
        for (len, resized) in [(3 * side * side - 1, (40, 50)), (3 * side * side, (0, 50))] {
            let rows = AtomicUsize::new(0);
            warm(&buffer[..len], side, resized, &rows, || false);
            assert_eq!(rows.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn landscape_fills_width_and_maps_back() {
        let lb = Letterbox::new(1280, 720, 640);
        assert_eq!(lb.resized, (640, 360));
        assert!((lb.scale - 0.5).abs() < 1e-6);
        assert_eq!(lb.to_image(320.0, 180.0), (640.0, 360.0));
    }

    #[test]
    fn portrait_fills_height() {
        let lb = Letterbox::new(300, 600, 640);
        assert_eq!(lb.resized, (320, 640));
        let (x, y) = lb.to_image(320.0, 640.0);
        assert!((x - 300.0).abs() < 1e-3 && (y - 600.0).abs() < 1e-3);
    }

    /// The per-pixel formula the letterbox had before it was made separable.
    fn reference(lb: &Letterbox, image: &RgbImage) -> Vec<f32> {
        let (w, h) = (lb.resized.0 as usize, lb.resized.1 as usize);
        let side = lb.input as usize;
        let (src_w, src_h) = (image.width() as usize, image.height() as usize);
        let mut data = vec![-127.5 / 128.0; 3 * side * side];
        let taps = |dst: usize, src: usize| -> Vec<(usize, usize, f32)> {
            let scale = src as f32 / dst as f32;
            (0..dst)
                .map(|i| {
                    let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                    let i0 = (s as usize).min(src - 1);
                    (i0, (i0 + 1).min(src - 1), s - i0 as f32)
                })
                .collect()
        };
        let (xs, ys) = (taps(w, src_w), taps(h, src_h));
        let px = image.as_raw();
        for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
            for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
                for c in 0..3 {
                    let p = |yy: usize, xx: usize| f32::from(px[(yy * src_w + xx) * 3 + c]);
                    let top = p(y0, x0) + (p(y0, x1) - p(y0, x0)) * fx;
                    let bottom = p(y1, x0) + (p(y1, x1) - p(y1, x0)) * fx;
                    let v = top + (bottom - top) * fy;
                    data[c * side * side + y * side + x] = (v - 127.5) / 128.0;
                }
            }
        }
        data
    }

    #[test]
    fn separable_fill_is_bit_identical_to_the_per_pixel_formula() {
        let noise = |x: u32, y: u32, c: u32| ((x * 7919 + y * 104_729 + c * 31) % 251) as u8;
        // shrunk by more than 1.5 (taps read from the row) and less or
        // enlarged (the row spread first); a single-pixel-wide source
        for (sw, sh) in [
            (233, 287),
            (300, 200),
            (1000, 700),
            (64, 64),
            (150, 90),
            (1, 5),
        ] {
            let img = RgbImage::from_fn(sw, sh, |x, y| {
                image::Rgb([noise(x, y, 0), noise(x, y, 1), noise(x, y, 2)])
            });
            let lb = Letterbox::new(sw, sh, 128);
            let got = lb.tensor(&img);
            let want = reference(&lb, &img);
            let same = got
                .as_slice()
                .unwrap()
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{sw}x{sh}: values differ from the per-pixel formula");
        }
    }

    #[test]
    fn fill_on_several_threads_is_bit_identical_to_one() {
        let noise = |x: u32, y: u32, c: u32| ((x * 7919 + y * 104_729 + c * 31) % 251) as u8;
        // fitted heights 640 and 448 (whole chunks), 213 and 134 (a partial
        // last image chunk, then padding), 90 (under MIN_SHARED_ROWS)
        for (sw, sh) in [
            (233, 287),
            (1000, 700),
            (700, 1000),
            (640, 640),
            (1000, 333),
            (2000, 420),
            (64, 9),
        ] {
            let img = RgbImage::from_fn(sw, sh, |x, y| {
                image::Rgb([noise(x, y, 0), noise(x, y, 1), noise(x, y, 2)])
            });
            let lb = Letterbox::new(sw, sh, 640);
            let want = lb.tensor(&img);
            let want = want.as_slice().unwrap();
            for helpers in [1, 2, 3, 6] {
                let mut got = vec![f32::NAN; 3 * 640 * 640];
                lb.fill_shared(&img, &mut got, &Helpers::new(helpers));
                let same = got
                    .iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{sw}x{sh} with {helpers} helpers: values differ from one thread"
                );
            }
        }
    }

    #[test]
    fn image_only_fill_over_the_same_geometry_equals_a_whole_fill() {
        for (sw, sh) in [(233, 287), (300, 200)] {
            let first = RgbImage::from_fn(sw, sh, |x, y| image::Rgb([x as u8, y as u8, 7]));
            let second = RgbImage::from_fn(sw, sh, |x, y| image::Rgb([y as u8, 200, x as u8]));
            let lb = Letterbox::new(sw, sh, 128);
            let mut buf = vec![f32::NAN; 3 * 128 * 128];
            lb.fill_shared(&first, &mut buf, &Helpers::new(1));
            for helpers in [0, 1] {
                lb.fill_image_shared(&second, &mut buf, &Helpers::new(helpers));
                assert_eq!(
                    lb.tensor(&second).as_slice().unwrap(),
                    &buf[..],
                    "{sw}x{sh}"
                );
            }
        }
    }

    #[test]
    fn fill_overwrites_every_value_of_a_reused_buffer() {
        let img = RgbImage::from_fn(50, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 8, 200]));
        let lb = Letterbox::new(50, 30, 64);
        let fresh = lb.tensor(&img);
        let mut dirty = vec![f32::NAN; 3 * 64 * 64];
        lb.fill(&img, &mut dirty);
        assert_eq!(fresh.as_slice().unwrap(), &dirty[..]);
        // a buffer last used for a portrait image: all of it rewritten
        let tall = RgbImage::from_pixel(10, 40, image::Rgb([9, 9, 9]));
        Letterbox::new(10, 40, 64).fill(&tall, &mut dirty);
        lb.fill(&img, &mut dirty);
        assert_eq!(fresh.as_slice().unwrap(), &dirty[..]);
    }

    #[test]
    fn tensor_is_normalised_and_padded() {
        let img = RgbImage::from_pixel(64, 32, image::Rgb([255, 127, 0]));
        let lb = Letterbox::new(64, 32, 64);
        let t = lb.tensor(&img);
        assert_eq!(t.shape(), &[1, 3, 64, 64]);
        assert!((t[[0, 0, 0, 0]] - 127.5 / 128.0).abs() < 1e-6);
        assert!((t[[0, 2, 0, 0]] + 127.5 / 128.0).abs() < 1e-6);
        // below the resized image: padding
        assert!((t[[0, 0, 40, 0]] + 127.5 / 128.0).abs() < 1e-6);
    }

    #[test]
    fn upscaling_interpolates_like_opencv() {
        // 2x1 image [0, 255] upscaled to 4 wide: half-pixel centres give
        // 0, 63.75, 191.25, 255 (cv2.resize INTER_LINEAR gives the same)
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([if x == 0 { 0 } else { 255 }; 3]));
        let lb = Letterbox {
            input: 4,
            resized: (4, 1),
            scale: 2.0,
        };
        let t = lb.tensor(&img);
        let got: Vec<f32> = (0..4).map(|x| t[[0, 0, 0, x]] * 128.0 + 127.5).collect();
        for (g, want) in got.iter().zip([0.0, 63.75, 191.25, 255.0]) {
            assert!((g - want).abs() < 1e-3, "{got:?}");
        }
    }
}
