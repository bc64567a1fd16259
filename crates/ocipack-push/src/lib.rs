//! ocipack-push (being written)
