//! Progress reporting: the library prints nothing, the caller draws.

use std::time::Duration;

use serde::Serialize;

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobOutcome {
    /// Its bytes were sent.
    Uploaded,
    /// The repository already had it.
    Skipped,
    /// The registry linked it from another repository; no bytes were sent.
    Mounted,
}

/// Receives progress events; every method has an empty default so a caller
/// implements only what it draws (e.g. indicatif bars in the CLI).
///
/// Methods are called from the upload threads (up to `PushOptions::jobs`
/// at once, so events of different blobs interleave), between requests; a
/// slow implementation slows the push. Events of one blob come from one
/// thread, in order: started, progress..., finished.
pub trait Progress: Sync {
    /// Work on a blob starts; `size` is its full length.
    fn blob_started(&self, _digest: &str, _size: u64) {}
    /// `sent` bytes of the blob have been accepted by the registry so far.
    fn blob_progress(&self, _digest: &str, _sent: u64, _size: u64) {}
    /// The blob is in the repository.
    fn blob_finished(&self, _digest: &str, _outcome: BlobOutcome) {}
    /// A manifest was stored under `reference` (a tag or a digest).
    fn manifest_pushed(&self, _repository: &str, _reference: &str) {}
    /// A request failed in a way worth retrying; the next try follows `delay`.
    fn retrying(&self, _what: &str, _attempt: u32, _delay: Duration, _reason: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
