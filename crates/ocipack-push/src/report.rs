//! The summary a push returns, serialisable for `--json` output and CI logs.

use serde::Serialize;

pub use crate::progress::BlobOutcome;

/// A count of blobs and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Number of blobs.
    pub blobs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.blobs += 1;
        self.bytes += bytes;
    }
}

/// One blob's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobReport {
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// What happened.
    pub outcome: BlobOutcome,
    /// The repository it was mounted from, for [`BlobOutcome::Mounted`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_from: Option<String>,
}

/// One manifest an image index lists, pushed by digest before the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildReport {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its platform from the index entry (`os`, `architecture`, `variant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<ocipack::layout::Platform>,
    /// `host/repo@sha256:...`.
    pub reference: String,
}

/// The result of pushing one manifest (image or index) to one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    /// Registry host.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Digest of the top-level manifest.
    pub manifest_digest: String,
    /// Full references stored: `host/repo@sha256:...` and `host/repo:tag`.
    pub references: Vec<String>,
    /// Blobs whose bytes were sent.
    pub uploaded: Tally,
    /// Blobs the repository already had.
    pub skipped: Tally,
    /// Blobs mounted from another repository.
    pub mounted: Tally,
    /// Every blob, in push order.
    pub blobs: Vec<BlobReport>,
    /// For an image index: the manifests it lists, in index order (absent
    /// for a plain image).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildReport>,
    /// The attestations attached to it (absent when none were pushed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached: Option<crate::attach::AttachReport>,
}

impl ImageReport {
    pub(crate) fn record(&mut self, blob: BlobReport) {
        match blob.outcome {
            BlobOutcome::Uploaded => self.uploaded.add(blob.size),
            BlobOutcome::Skipped => self.skipped.add(blob.size),
            BlobOutcome::Mounted => self.mounted.add(blob.size),
        }
        self.blobs.push(blob);
    }
}

/// The result of a push session (one or several images).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// One entry per manifest pushed.
    pub images: Vec<ImageReport>,
    /// Sum of the images' `uploaded`.
    pub uploaded: Tally,
    /// Sum of the images' `skipped`.
    pub skipped: Tally,
    /// Sum of the images' `mounted`.
    pub mounted: Tally,
    /// Request body bytes actually sent (blobs, manifests, including retried
    /// attempts): what the network carried from us.
    pub bytes_sent: u64,
    /// Blobs pushed at once ([`crate::PushOptions::jobs`] after clamping).
    pub jobs: usize,
}

impl PushReport {
    pub(crate) fn add(&mut self, image: ImageReport) {
        for (sum, part) in [
            (&mut self.uploaded, image.uploaded),
            (&mut self.skipped, image.skipped),
            (&mut self.mounted, image.mounted),
        ] {
            sum.blobs += part.blobs;
            sum.bytes += part.bytes;
        }
        self.images.push(image);
    }
}
