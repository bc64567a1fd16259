//! Push OCI image layouts to a registry over the OCI distribution API.
//!
//! The pusher reads an image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`; blob files may be symlinks into `/nix/store`)
//! through the packer's layout reader, `ocipack::layout` (the one reader of
//! untrusted layouts: regular files only, bounded, verified), and, for each
//! manifest chosen by tag:
//!
//! 1. checks every blob file's size against its descriptor (before any request);
//! 2. `HEAD`s each blob in the target repository and skips what is there
//!    (steps 2 to 4 run for up to [`PushOptions::jobs`] blobs at once, each
//!    on its own thread and connection, streaming from the layout);
//! 3. mounts a missing blob from another repository of the same registry when
//!    this session pushed it there earlier or a caller-given candidate has it;
//! 4. uploads the rest from disk, in one `PUT` up to the chunk size and in
//!    `PATCH` chunks above it, hashing the bytes sent and refusing to commit
//!    a blob whose content does not match its name;
//! 5. once every blob is confirmed, puts child manifests, then the
//!    manifest by digest, then by each tag.
//!
//! Authentication is anonymous, Basic, or Bearer tokens obtained through the
//! `WWW-Authenticate` challenge, with credentials from the environment or the
//! Docker config file ([`Credentials::lookup`]). Transient failures (5xx,
//! 429, refused or reset connections) are retried with bounded exponential
//! backoff; a push interrupted midway and run again sends only what is missing.
//!
//! The library prints nothing: progress goes to a [`Progress`] implementation
//! and the outcome is a serialisable [`PushReport`].
//!
//! ```no_run
//! use ocipack_push::{push, Credentials, NoProgress, PushOptions, Target};
//!
//! let target = Target::parse("127.0.0.1:5000/aurum/scoring:1.0")?;
//! let opts = PushOptions {
//!     insecure: true,
//!     credentials: Credentials::lookup(&target.registry)?,
//!     ..PushOptions::default()
//! };
//! let report = push(std::path::Path::new("out/scoring"), &target, opts, &NoProgress)?;
//! println!("{}", report.images[0].manifest_digest);
//! # Ok::<(), ocipack_push::Error>(())
//! ```

mod attach;
mod auth;
mod client;
mod error;
mod images;
mod progress;
mod reference;
mod remote;
mod report;
mod session;
mod upload;

use std::path::{Path, PathBuf};

pub use attach::{AttachReport, ReferrerReport};
pub use auth::{parse_challenge, Challenge, Credentials, ENV_PASSWORD, ENV_USER};
pub use client::RetryPolicy;
pub use error::{Error, Result};
pub use ocipack::layout::REF_NAME;
pub use progress::{BlobOutcome, NoProgress, Progress};
pub use reference::{RemoteRef, Target};
pub use remote::{fallback_tag, parse_referrers_index, Fetched, Referrer, Referrers, Remote, Via};
pub use report::{BlobReport, ChildReport, ImageReport, PushReport, Tally};
pub use session::{
    PushOptions, Session, DEFAULT_CHUNK_SIZE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_JOBS, DEFAULT_TIMEOUT, MAX_JOBS,
};

/// Pushes the layout at `dir` to `target`.
///
/// Without a tag in `target`, every manifest of the layout that carries a
/// `org.opencontainers.image.ref.name` annotation is pushed under that name;
/// with one, the manifest so named (or the layout's only manifest).
///
/// # Errors
/// See [`Error`]; [`Error::is_auth`] tells authentication failures apart.
pub fn push(
    dir: &Path,
    target: &Target,
    opts: PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    push_all(&[(dir.to_path_buf(), target.clone())], opts, progress)
}

/// The manifests a push of `dir` to `target` would send (by tag, as
/// [`push`] chooses them), read through the layout reader: what
/// `ocipack push --sign` signs before pushing.
///
/// # Errors
/// Layout errors, no manifest of that tag.
pub fn manifests_to_push(dir: &Path, target: &Target) -> Result<Vec<ocipack::layout::Descriptor>> {
    let layout = images::open(dir)?;
    let index = layout
        .index_descriptors()
        .map_err(|e| images::from_layout(dir, e))?;
    Ok(images::select(dir, &index, target.tag.as_deref())?
        .into_iter()
        .map(|(d, _)| d)
        .collect())
}

/// [`push_all`] with, for each layout, its attestation layout
/// (`OUT.attest/oci`, or `None`), whose artifacts are attached to the
/// images: see [`Session::push_attested`].
///
/// # Errors
/// See [`Error`]; the first failure stops the session.
pub fn push_all_attested(
    items: &[(PathBuf, Target, Option<PathBuf>)],
    opts: PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let mut report = PushReport::default();
    let Some((_, first, _)) = items.first() else {
        return Ok(report);
    };
    let mut session = Session::new(first, opts, progress)?;
    for (dir, target, attest) in items {
        for image in session.push_attested(dir, target, attest.as_deref())? {
            report.add(image);
        }
    }
    report.bytes_sent = session.bytes_sent();
    report.jobs = session.jobs();
    Ok(report)
}

/// Pushes several layouts in one session: one HTTP agent, one token cache,
/// and every blob shared between them uploaded once, then mounted into the
/// other repositories. All targets must be on the same registry.
///
/// # Errors
/// See [`Error`]; the first failure stops the session.
pub fn push_all(
    items: &[(PathBuf, Target)],
    opts: PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let mut report = PushReport::default();
    let Some((_, first)) = items.first() else {
        return Ok(report);
    };
    let mut session = Session::new(first, opts, progress)?;
    for (dir, target) in items {
        for image in session.push(dir, target)? {
            report.add(image);
        }
    }
    report.bytes_sent = session.bytes_sent();
    report.jobs = session.jobs();
    Ok(report)
}
