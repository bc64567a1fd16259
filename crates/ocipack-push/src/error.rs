//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while pushing a layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the layout could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The directory is not a usable OCI image layout.
    #[error("{path} is not a usable OCI image layout: {reason}")]
    Layout {
        /// The layout directory or one of its files.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A blob file's bytes do not hash to the digest it is named after.
    #[error(
        "blob {path} is corrupt: its content hashes to {actual}, not {expected}; \
         rebuild the layout (nothing was committed for this blob)"
    )]
    DigestMismatch {
        /// The blob file.
        path: PathBuf,
        /// The digest the layout claims.
        expected: String,
        /// The digest of the bytes on disk.
        actual: String,
    },

    /// The image reference given on the command line cannot be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Plain HTTP was requested without the explicit `insecure` option.
    #[error(
        "refusing plain http to {registry}; pass the insecure option (--insecure) \
         if this registry really has no TLS"
    )]
    InsecureRefused {
        /// The registry host.
        registry: String,
    },

    /// The credentials configuration (env or Docker config file) is unusable.
    #[error("bad credentials configuration in {source_name}: {reason}")]
    Credentials {
        /// Where the credentials came from (a file path or env var names).
        source_name: String,
        /// What is wrong with them.
        reason: String,
    },

    /// The registry requires authentication and no credentials were found.
    #[error(
        "registry {registry} requires authentication ({detail}); set \
         OCIPACK_REGISTRY_USER and OCIPACK_REGISTRY_PASSWORD or add an `auths` \
         entry for {registry} to the Docker config file"
    )]
    AuthRequired {
        /// The registry host.
        registry: String,
        /// The registry's answer.
        detail: String,
    },

    /// The registry (or its token server) rejected the credentials.
    #[error(
        "registry {registry} rejected the credentials for user {user}: {status} {detail}; \
         check the user name and password (OCIPACK_REGISTRY_USER / \
         OCIPACK_REGISTRY_PASSWORD or the Docker config file)"
    )]
    AuthRejected {
        /// The registry host.
        registry: String,
        /// The user name that was tried.
        user: String,
        /// The HTTP status of the rejection.
        status: u16,
        /// The registry's answer.
        detail: String,
    },

    /// The credentials were accepted but do not allow pushing to this repository.
    #[error(
        "registry {registry} denied {user} access to {repository}: {status} {detail}; \
         ask for push rights on {repository} or push elsewhere"
    )]
    Denied {
        /// The registry host.
        registry: String,
        /// The user name, or "anonymous".
        user: String,
        /// The repository.
        repository: String,
        /// The HTTP status of the denial.
        status: u16,
        /// The registry's answer.
        detail: String,
    },

    /// The registry answered with an unexpected status.
    #[error("{method} {url} failed: {status} {detail}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error body, condensed.
        detail: String,
    },

    /// The registry could not be reached (after retries, where retrying made sense).
    #[error("{method} {url} failed after {tries} tries: {source}")]
    Http {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// How many attempts were made.
        tries: u32,
        /// The last transport error.
        source: Box<ureq::Error>,
    },

    /// The registry sent nothing for the idle timeout, on every try.
    #[error(
        "{method} {url}: no answer for {idle:?} ({tries} tries); check that the registry \
         is up and reachable, or raise --idle-timeout"
    )]
    NoAnswer {
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// How many attempts were made.
        tries: u32,
        /// The idle timeout that expired.
        idle: std::time::Duration,
    },

    /// The push did not finish within its total deadline.
    #[error(
        "the push did not finish within its {limit:?} deadline (at {method} {url}); \
         raise --timeout or check the registry; what was committed stays, a rerun sends the rest"
    )]
    Deadline {
        /// The deadline (`--timeout`).
        limit: std::time::Duration,
        /// The request in flight or about to start.
        method: &'static str,
        /// Its URL.
        url: String,
    },

    /// A token realm on plain HTTP and another host than the registry would
    /// receive the password in clear.
    #[error(
        "registry {registry} sends its token requests to {realm}, plain HTTP on another \
         host; refusing to send the password there in clear; if {host} is trusted, \
         name it: --insecure={host}"
    )]
    InsecureRealm {
        /// The registry host.
        registry: String,
        /// The token realm URL.
        realm: String,
        /// The realm's `host[:port]`.
        host: String,
    },

    /// The attestation layout beside an image cannot be pushed with it
    /// (found before any request: nothing was sent).
    #[error("cannot attach the attestations in {path}: {reason}")]
    Attest {
        /// The attestation layout (`OUT.attest/oci`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The registry refused an attestation artifact (a manifest with a
    /// `subject`), the referrers fallback tag or the signature tag.
    #[error(
        "registry {registry} refused {what} of image {image} in {repository}: {status} {detail}; \
         the image was pushed by digest but none of its tags was moved, and no referrers \
         tag lists a partial set (push to a registry that accepts OCI 1.1 artifacts, or \
         pass --no-attest to push the image alone)"
    )]
    ReferrerRefused {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The image manifest's digest.
        image: String,
        /// What was refused (`artifact sha256:... (application/spdx+json)`, `the fallback tag ...`).
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry's answer.
        detail: String,
    },

    /// A manifest asked for is not in the registry.
    #[error(
        "{reference}: no such manifest in the registry (404); check the repository, tag or digest"
    )]
    NotFound {
        /// `host/repo:tag` or `host/repo@digest`.
        reference: String,
    },

    /// The registry broke the protocol (missing Location, digest disagreement...).
    #[error("registry {registry} misbehaved: {reason}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What happened.
        reason: String,
    },
}

impl Error {
    /// Whether this error is about authentication or authorisation, so that a
    /// CLI can map it to its own exit code.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::AuthRequired { .. } | Error::AuthRejected { .. } | Error::Denied { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result alias.
pub type Result<T> = std::result::Result<T, Error>;
