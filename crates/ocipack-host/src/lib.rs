//! ocipack-host (being written)
