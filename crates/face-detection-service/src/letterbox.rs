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
    /// (`image::imageops::resize` plus a copy cost several times more.) The
    /// taps are computed once per column and per row, the three planes are
    /// written in the same pass, and padding is written only where the image
    /// is not (the arithmetic per value is unchanged, so are the floats).
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
        let (planes, _) = out.split_at_mut(3 * plane);
        let (r, rest) = planes.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let mut channels = [r, g, b];
        for y in 0..side {
            let rows = channels
                .each_mut()
                .map(|c| &mut c[y * side..(y + 1) * side]);
            let [rr, rg, rb] = rows;
            let Some(&(y0, y1, fy)) = ys.get(y) else {
                rr.fill(pad);
                rg.fill(pad);
                rb.fill(pad);
                continue;
            };
            let row0 = &pixels[y0 * src_w * 3..(y0 + 1) * src_w * 3];
            let row1 = &pixels[y1 * src_w * 3..(y1 + 1) * src_w * 3];
            for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
                let (a0, a1) = (&row0[x0 * 3..x0 * 3 + 3], &row0[x1 * 3..x1 * 3 + 3]);
                let (b0, b1) = (&row1[x0 * 3..x0 * 3 + 3], &row1[x1 * 3..x1 * 3 + 3]);
                let mut v = [0.0f32; 3];
                for c in 0..3 {
                    let p = |s: &[u8]| f32::from(s[c]);
                    let top = p(a0) + (p(a1) - p(a0)) * fx;
                    let bottom = p(b0) + (p(b1) - p(b0)) * fx;
                    v[c] = (top + (bottom - top) * fy - 127.5) / 128.0;
                }
                rr[x] = v[0];
                rg[x] = v[1];
                rb[x] = v[2];
            }
            rr[w..].fill(pad);
            rg[w..].fill(pad);
            rb[w..].fill(pad);
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
