//! scoring-service (being written)
fn main() {}
