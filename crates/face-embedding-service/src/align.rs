//! Five-point face alignment to the ArcFace template.
//!
//! The similarity transform (rotation, uniform scale, translation) mapping
//! the detected landmarks onto the template is the least-squares one of
//! Umeyama (1991). In 2D without reflection it has a closed form: with both
//! point sets centred, `a = Σ(s·d) / Σ|s|²` and `b = Σ(s×d) / Σ|s|²` give
//! the matrix [[a, -b], [b, a]]; this equals scikit-image's
//! `SimilarityTransform.estimate`, which InsightFace uses, whenever the
//! landmarks are not mirrored (a face never is).

use image::{Rgb, RgbImage};

/// ArcFace's landmark template for a 112x112 crop.
pub const ARCFACE_TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// Side of the aligned crop.
pub const ALIGNED_SIDE: u32 = 112;

/// A 2x3 affine matrix: `[x', y'] = [[m0, m1, m2], [m3, m4, m5]] · [x, y, 1]`.
pub type Affine = [f32; 6];

/// The least-squares similarity transform taking `src` onto `dst`.
///
/// Returns `None` when `src` points all coincide.
pub fn similarity(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> Option<Affine> {
    let mean = |p: &[[f32; 2]; 5]| {
        let (x, y) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q[0], y + q[1]));
        (x / 5.0, y / 5.0)
    };
    let (sx, sy) = mean(src);
    let (dx, dy) = mean(dst);
    let (mut dot, mut cross, mut norm) = (0.0f64, 0.0f64, 0.0f64);
    for (s, d) in src.iter().zip(dst) {
        let (ax, ay) = (f64::from(s[0] - sx), f64::from(s[1] - sy));
        let (bx, by) = (f64::from(d[0] - dx), f64::from(d[1] - dy));
        dot += ax * bx + ay * by;
        cross += ax * by - ay * bx;
        norm += ax * ax + ay * ay;
    }
    if norm < 1e-9 {
        return None;
    }
    let (a, b) = ((dot / norm) as f32, (cross / norm) as f32);
    Some([a, -b, dx - (a * sx - b * sy), b, a, dy - (b * sx + a * sy)])
}

/// Applies `m` to a point.
pub fn apply(m: &Affine, p: [f32; 2]) -> [f32; 2] {
    [
        m[0] * p[0] + m[1] * p[1] + m[2],
        m[3] * p[0] + m[4] * p[1] + m[5],
    ]
}

/// The inverse of a similarity/affine matrix (None when singular).
pub fn invert(m: &Affine) -> Option<Affine> {
    let det = m[0] * m[4] - m[1] * m[3];
    if det.abs() < 1e-12 {
        return None;
    }
    let (a, b, c, d) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    Some([a, b, -(a * m[2] + b * m[5]), c, d, -(c * m[2] + d * m[5])])
}

/// Warps `image` by `m` into a `side` x `side` crop, bilinear, black outside
/// (what OpenCV's `warpAffine` does with its defaults).
pub fn warp(image: &RgbImage, m: &Affine, side: u32) -> Option<RgbImage> {
    let inv = invert(m)?;
    let (w, h) = (image.width() as i64, image.height() as i64);
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            [0.0; 3]
        } else {
            let p = image.get_pixel(x as u32, y as u32);
            [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
        }
    };
    Some(RgbImage::from_fn(side, side, |u, v| {
        let [sx, sy] = apply(&inv, [u as f32, v as f32]);
        let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let (p00, p10, p01, p11) = (
            pixel(x0, y0),
            pixel(x0 + 1, y0),
            pixel(x0, y0 + 1),
            pixel(x0 + 1, y0 + 1),
        );
        let mut out = [0u8; 3];
        for c in 0..3 {
            let top = p00[c] * (1.0 - fx) + p10[c] * fx;
            let bottom = p01[c] * (1.0 - fx) + p11[c] * fx;
            out[c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
        Rgb(out)
    }))
}

/// Aligns the face with `landmarks` to the 112x112 ArcFace crop.
pub fn align(image: &RgbImage, landmarks: &[[f32; 2]; 5]) -> Option<RgbImage> {
    let m = similarity(landmarks, &ARCFACE_TEMPLATE)?;
    warp(image, &m, ALIGNED_SIDE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        // rotate 30 degrees, scale 1.7, shift (5, -3)
        let (c, s) = (
            30f32.to_radians().cos() * 1.7,
            30f32.to_radians().sin() * 1.7,
        );
        let truth = [c, -s, 5.0, s, c, -3.0];
        let dst = ARCFACE_TEMPLATE.map(|p| apply(&truth, p));
        let m = similarity(&ARCFACE_TEMPLATE, &dst).unwrap();
        for (a, b) in m.iter().zip(truth) {
            assert!((a - b).abs() < 1e-4, "{m:?} vs {truth:?}");
        }
        let back = invert(&m).unwrap();
        let p = apply(&back, apply(&m, [10.0, 20.0]));
        assert!((p[0] - 10.0).abs() < 1e-3 && (p[1] - 20.0).abs() < 1e-3);
    }

    #[test]
    fn template_maps_to_identity_and_degenerate_points_fail() {
        let m = similarity(&ARCFACE_TEMPLATE, &ARCFACE_TEMPLATE).unwrap();
        assert!((m[0] - 1.0).abs() < 1e-5 && m[1].abs() < 1e-5 && m[2].abs() < 1e-3);
        assert!(similarity(&[[3.0, 3.0]; 5], &ARCFACE_TEMPLATE).is_none());
    }

    #[test]
    fn warp_with_identity_copies_and_pads_black() {
        let img = RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 7]));
        let out = warp(&img, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 6).unwrap();
        assert_eq!(out.get_pixel(2, 3), img.get_pixel(2, 3));
        assert_eq!(out.get_pixel(5, 5), &Rgb([0, 0, 0]));
    }
}
