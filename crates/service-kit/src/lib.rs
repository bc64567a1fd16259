//! service-kit (being written)
