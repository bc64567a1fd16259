//! face-detection-service (being written)
fn main() {}
