//! Helpers shared by the layout-reading tests: hand-written layouts.

use std::path::Path;

use ocipack::digest::sha256;
use ocipack::layout::Descriptor;

pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Writes `bytes` as a blob of the layout at `dir`; its descriptor.
pub fn put(dir: &Path, media_type: &str, bytes: &[u8]) -> Descriptor {
    let d = sha256(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
    Descriptor {
        media_type: media_type.into(),
        digest: d,
        size: bytes.len() as u64,
        annotations: Default::default(),
    }
}
