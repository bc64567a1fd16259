//! Face quality from the detection result and the pixels.
//!
//! Every component is in 0..1, higher is better; the score is their
//! weighted mean times 100. The mappings are deliberately simple and
//! monotonic so a score can be explained from its components.

use image::{imageops::FilterType, GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// The quality components of one face.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Components {
    /// The detector's confidence.
    pub detection: f32,
    /// Face size relative to the image: sqrt(box area / image area) / 0.4, capped at 1.
    pub size: f32,
    /// How frontal: 1 when the nose sits midway between the eyes and the eyes are level.
    pub frontality: f32,
    /// Left/right balance of eye-nose and mouth-nose distances.
    pub symmetry: f32,
    /// Variance of the Laplacian on the 112-px grey face crop, v / (v + 100).
    pub sharpness: f32,
}

/// Weights of [`Components`], in field order; they sum to 1.
pub const WEIGHTS: [f32; 5] = [0.2, 0.2, 0.25, 0.15, 0.2];

impl Components {
    /// The weighted score in 0..100.
    pub fn score(&self) -> f32 {
        let c = [
            self.detection,
            self.size,
            self.frontality,
            self.symmetry,
            self.sharpness,
        ];
        100.0
            * c.iter()
                .zip(WEIGHTS)
                .map(|(c, w)| c.clamp(0.0, 1.0) * w)
                .sum::<f32>()
    }
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Frontality from landmarks (eyes, nose, mouth corners): yaw from the nose's
/// offset to the eyes' midpoint in eye distances, roll from the eye line's angle.
pub fn frontality(l: &[[f32; 2]; 5]) -> f32 {
    let eye_dist = dist(l[0], l[1]).max(1e-3);
    let mid_x = (l[0][0] + l[1][0]) / 2.0;
    let yaw = ((l[2][0] - mid_x) / eye_dist).abs();
    let roll = (l[1][1] - l[0][1]).atan2(l[1][0] - l[0][0]).abs();
    ((1.0 - 2.0 * yaw).max(0.0) * roll.cos().max(0.0)).clamp(0.0, 1.0)
}

/// Symmetry from landmarks: 1 when left and right eye-nose and mouth-nose
/// distances are equal.
pub fn symmetry(l: &[[f32; 2]; 5]) -> f32 {
    let ratio = |a: f32, b: f32| (a - b).abs() / (a + b).max(1e-3);
    let eyes = ratio(dist(l[0], l[2]), dist(l[1], l[2]));
    let mouth = ratio(dist(l[3], l[2]), dist(l[4], l[2]));
    (1.0 - (eyes + mouth)).clamp(0.0, 1.0)
}

/// Variance of the 4-neighbour Laplacian of a grey image.
pub fn laplacian_variance(g: &GrayImage) -> f32 {
    let (w, h) = g.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let px = |x: u32, y: u32| f64::from(g.get_pixel(x, y)[0]);
    let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let lap = px(x - 1, y) + px(x + 1, y) + px(x, y - 1) + px(x, y + 1) - 4.0 * px(x, y);
            sum += lap;
            sum_sq += lap * lap;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean) as f32
}

/// Sharpness of the face box: the crop is resized to 112x112 first so the
/// value does not depend on how large the face is in the photo.
pub fn sharpness(image: &RgbImage, bbox: [f32; 4]) -> f32 {
    let x1 = bbox[0].max(0.0) as u32;
    let y1 = bbox[1].max(0.0) as u32;
    let x2 = (bbox[2].max(0.0) as u32).min(image.width());
    let y2 = (bbox[3].max(0.0) as u32).min(image.height());
    if x2 <= x1 + 2 || y2 <= y1 + 2 {
        return 0.0;
    }
    let crop = image::imageops::crop_imm(image, x1, y1, x2 - x1, y2 - y1).to_image();
    let grey = image::imageops::grayscale(&crop);
    let grey = image::imageops::resize(&grey, 112, 112, FilterType::Triangle);
    let v = laplacian_variance(&grey);
    v / (v + 100.0)
}

/// All components for a face on `image`.
pub fn assess(
    image: &RgbImage,
    bbox: [f32; 4],
    score: f32,
    landmarks: &[[f32; 2]; 5],
) -> Components {
    let area = (bbox[2] - bbox[0]).max(0.0) * (bbox[3] - bbox[1]).max(0.0);
    let image_area = (image.width() as f32 * image.height() as f32).max(1.0);
    Components {
        detection: score.clamp(0.0, 1.0),
        size: ((area / image_area).sqrt() / 0.4).min(1.0),
        frontality: frontality(landmarks),
        symmetry: symmetry(landmarks),
        sharpness: sharpness(image, bbox),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONTAL: [[f32; 2]; 5] = [
        [40.0, 50.0],
        [72.0, 50.0],
        [56.0, 70.0],
        [44.0, 90.0],
        [68.0, 90.0],
    ];

    #[test]
    fn frontal_symmetric_face_scores_one_and_turned_face_less() {
        assert!((frontality(&FRONTAL) - 1.0).abs() < 1e-6);
        assert!((symmetry(&FRONTAL) - 1.0).abs() < 1e-6);
        let mut turned = FRONTAL;
        turned[2][0] += 10.0;
        assert!(frontality(&turned) < 0.5);
        assert!(symmetry(&turned) < 0.9);
    }

    #[test]
    fn laplacian_variance_is_zero_on_flat_and_high_on_checkerboard() {
        let flat = GrayImage::from_pixel(20, 20, image::Luma([80]));
        assert_eq!(laplacian_variance(&flat), 0.0);
        let checker = GrayImage::from_fn(20, 20, |x, y| {
            image::Luma([if (x + y) % 2 == 0 { 0 } else { 255 }])
        });
        assert!(laplacian_variance(&checker) > 1e5);
    }

    #[test]
    fn score_is_weighted_mean() {
        let all = Components {
            detection: 1.0,
            size: 1.0,
            frontality: 1.0,
            symmetry: 1.0,
            sharpness: 1.0,
        };
        assert!((all.score() - 100.0).abs() < 1e-3);
        assert!((WEIGHTS.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(Components::default().score(), 0.0);
    }
}
