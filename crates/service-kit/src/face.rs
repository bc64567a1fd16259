//! The face record on the wire between the detection service (which writes
//! it) and the scoring service (which reads it): one type, so the two cannot
//! drift apart.

use serde::{Deserialize, Serialize};

/// One detected face, in original image pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// [x1, y1, x2, y2].
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Detection confidence in 0..1.
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corners, as [x, y].
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// Box area in pixels.
    pub fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).max(0.0) * (self.bbox[3] - self.bbox[1]).max(0.0)
    }
}
