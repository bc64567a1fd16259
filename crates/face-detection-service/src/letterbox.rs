//! Pre-processing: fit the image into the square network input.
//!
//! As in InsightFace's reference code, the image is scaled to fit keeping
//! its aspect ratio and placed at the top-left corner, the rest is black;
//! so mapping back is a single division by the scale, no offset.

use image::RgbImage;
use ndarray::Array4;

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
        let pixels = image.as_raw();
        // One source row interpolated along x, planar (w reds, w greens, w
        // blues): the `top` and `bottom` of the bilinear formula. Output rows
        // walk the source rows in order, so two cached rows suffice and each
        // source row is interpolated once, not once per output row using it.
        let horizontal = |sy: usize, buf: &mut [f32]| {
            let row = &pixels[sy * src_w * 3..(sy + 1) * src_w * 3];
            let (r, rest) = buf.split_at_mut(w);
            let (g, b) = rest.split_at_mut(w);
            for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
                let (p0, p1) = (&row[x0 * 3..x0 * 3 + 3], &row[x1 * 3..x1 * 3 + 3]);
                let lerp = |c: usize| {
                    let a = f32::from(p0[c]);
                    a + (f32::from(p1[c]) - a) * fx
                };
                r[x] = lerp(0);
                g[x] = lerp(1);
                b[x] = lerp(2);
            }
        };
        let mut top = (usize::MAX, vec![0.0f32; 3 * w]);
        let mut bottom = (usize::MAX, vec![0.0f32; 3 * w]);
        for plane_out in out.chunks_exact_mut(plane) {
            // padding right of the image, and the rows below it
            for y in 0..h {
                plane_out[y * side + w..(y + 1) * side].fill(pad);
            }
            plane_out[h * side..].fill(pad);
        }
        for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
            if top.0 != y0 {
                if bottom.0 == y0 {
                    std::mem::swap(&mut top, &mut bottom);
                } else {
                    horizontal(y0, &mut top.1);
                    top.0 = y0;
                }
            }
            if bottom.0 != y1 {
                horizontal(y1, &mut bottom.1);
                bottom.0 = y1;
            }
            for c in 0..3 {
                let dst = &mut out[c * plane + y * side..c * plane + y * side + w];
                let t = &top.1[c * w..(c + 1) * w];
                let b = &bottom.1[c * w..(c + 1) * w];
                for ((o, &t), &b) in dst.iter_mut().zip(t).zip(b) {
                    *o = (t + (b - t) * fy - 127.5) / 128.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (sw, sh) in [(233, 287), (300, 200), (1000, 700), (64, 64), (1, 5)] {
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
