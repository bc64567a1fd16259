//! face-embedding-service (being written)
fn main() {}
