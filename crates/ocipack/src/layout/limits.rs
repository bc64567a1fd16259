//! Bounds on the work reading one untrusted layout may cost.

/// Limits applied while reading a layout (documented in docs/security.md).
/// Each exceeded limit is an [`crate::Error::Limit`] naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `oci-layout`, `index.json`, manifest, index or config read
    /// into memory: 4 MiB (what registries commonly accept for a manifest).
    pub max_json_bytes: u64,
    /// How deep indexes may nest below `index.json`: 4.
    pub max_index_depth: usize,
    /// Entries of one index (`index.json` included): 1024.
    pub max_index_entries: usize,
    /// Distinct manifests and indexes reachable in one walk: 1024.
    pub max_manifests: usize,
    /// Layers of one manifest: 1024 (the packer itself writes at most 127).
    pub max_layers: usize,
    /// Files in `blobs/sha256` that `verify` lists and re-hashes: 65,536.
    pub max_blob_files: usize,
    /// Tar entries of one layer read by `verify`, `inspect` and `export`: 1,048,576.
    pub max_tar_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: 4 << 20,
            max_index_depth: 4,
            max_index_entries: 1024,
            max_manifests: 1024,
            max_layers: 1024,
            max_blob_files: 1 << 16,
            max_tar_entries: 1 << 20,
        }
    }
}
