//! http-probe (being written)
fn main() {}
