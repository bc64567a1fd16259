//! Post-processing: SCRFD's per-stride outputs to faces, then NMS.
//!
//! For each stride s in 8/16/32 the model gives, per anchor, a score, four
//! distances (left, top, right, bottom) and five (dx, dy) landmark offsets,
//! all in units of s from the anchor centre. Anchors lie on an
//! (input/s) x (input/s) grid, row-major, each centre repeated A times; A is
//! read off the output length rather than assumed.

pub use service_kit::face::Face;

/// The raw outputs of one stride, flattened.
#[derive(Clone, Copy, Debug)]
pub struct StrideOutput<'a> {
    /// Stride in input pixels.
    pub stride: u32,
    /// `k` scores.
    pub scores: &'a [f32],
    /// `k * 4` distances.
    pub boxes: &'a [f32],
    /// `k * 10` landmark offsets.
    pub kps: &'a [f32],
}

/// Decodes one stride's anchors with score >= `threshold`, in input pixels.
///
/// Returns `None` when the lengths do not fit an anchor grid of `input`.
pub fn decode_stride(out: StrideOutput<'_>, input: u32, threshold: f32) -> Option<Vec<Face>> {
    let cells = ((input / out.stride) * (input / out.stride)) as usize;
    let k = out.scores.len();
    if cells == 0 || !k.is_multiple_of(cells) || out.boxes.len() != k * 4 || out.kps.len() != k * 10
    {
        return None;
    }
    let anchors = k / cells;
    let per_row = (input / out.stride) as usize;
    let s = out.stride as f32;
    let mut faces = Vec::new();
    for (i, &score) in out.scores.iter().enumerate() {
        if score < threshold {
            continue;
        }
        let cell = i / anchors;
        let cx = (cell % per_row) as f32 * s;
        let cy = (cell / per_row) as f32 * s;
        let d = &out.boxes[i * 4..i * 4 + 4];
        let p = &out.kps[i * 10..i * 10 + 10];
        let mut landmarks = [[0.0; 2]; 5];
        for (j, l) in landmarks.iter_mut().enumerate() {
            *l = [cx + p[2 * j] * s, cy + p[2 * j + 1] * s];
        }
        faces.push(Face {
            bbox: [cx - d[0] * s, cy - d[1] * s, cx + d[2] * s, cy + d[3] * s],
            score,
            landmarks,
        });
    }
    Some(faces)
}

/// Intersection over union, with InsightFace's inclusive (+1) pixel areas.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0);
    inter / (area(a) + area(b) - inter)
}

/// Greedy non-maximum suppression: highest score first, dropping faces
/// overlapping a kept one by more than `threshold`.
pub fn nms(mut faces: Vec<Face>, threshold: f32) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::with_capacity(faces.len());
    for f in faces {
        if kept.iter().all(|k| iou(&k.bbox, &f.bbox) <= threshold) {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(bbox: [f32; 4], score: f32) -> Face {
        Face {
            bbox,
            score,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn nms_keeps_best_of_overlapping_and_disjoint_ones() {
        let faces = vec![
            face([0.0, 0.0, 10.0, 10.0], 0.8),
            face([1.0, 1.0, 11.0, 11.0], 0.9),
            face([50.0, 50.0, 60.0, 60.0], 0.7),
        ];
        let kept = nms(faces, 0.4);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].score, 0.7);
    }

    #[test]
    fn iou_of_identical_is_one_and_disjoint_zero() {
        let a = [0.0, 0.0, 9.0, 9.0];
        assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
    }

    #[test]
    fn decodes_anchor_centres_and_offsets() {
        // input 32, stride 16: a 2x2 grid, 2 anchors per cell -> k = 8
        let mut scores = vec![0.0; 8];
        scores[7] = 0.9; // cell 3 = (x 16, y 16), second anchor
        let mut boxes = vec![0.0; 32];
        boxes[28..32].copy_from_slice(&[0.5, 0.25, 1.0, 0.5]);
        let mut kps = vec![0.0; 80];
        kps[70] = 0.5;
        kps[71] = -0.5;
        let out = StrideOutput {
            stride: 16,
            scores: &scores,
            boxes: &boxes,
            kps: &kps,
        };
        let faces = decode_stride(out, 32, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].bbox, [8.0, 12.0, 32.0, 24.0]);
        assert_eq!(faces[0].landmarks[0], [24.0, 8.0]);
        assert!(decode_stride(
            StrideOutput {
                scores: &scores[..7],
                ..out
            },
            32,
            0.5
        )
        .is_none());
    }
}
