//! Pre-processing: fit the image into the square network input.
//!
//! As in InsightFace's reference code, the image is scaled to fit keeping
//! its aspect ratio and placed at the top-left corner, the rest is black;
//! so mapping back is a single division by the scale, no offset.

use image::imageops::FilterType;
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
        let (w, h) = self.resized;
        let resized = image::imageops::resize(image, w, h, FilterType::Triangle);
        let side = self.input as usize;
        let pad = -127.5 / 128.0;
        let mut t = Array4::<f32>::from_elem((1, 3, side, side), pad);
        for (x, y, p) in resized.enumerate_pixels() {
            for c in 0..3 {
                t[[0, c, y as usize, x as usize]] = (f32::from(p[c]) - 127.5) / 128.0;
            }
        }
        t
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
}
