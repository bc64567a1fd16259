//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while planning, packing, reading or checking an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan (or a layer spec) is not valid JSON or does not match the format.
    #[error("{origin}: {message}")]
    Plan {
        /// Which document, and where in it.
        origin: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A layer's input is unusable (missing, special file, collision, loop...).
    #[error("{location}: {message}")]
    Input {
        /// `layer N` or `layer N entry M`.
        location: String,
        /// What is wrong, naming the path.
        message: String,
    },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation touched.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An OCI layout on disk is malformed or inconsistent.
    #[error("{layout}: {message}")]
    Layout {
        /// The layout directory.
        layout: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An output path the packer refuses to write or replace.
    #[error("output {path}: {message}")]
    Output {
        /// The output path.
        path: PathBuf,
        /// What is there and what to do.
        message: String,
    },
    /// A blob of a layout does not match its descriptor (digest or size).
    #[error("{layout}: {mismatch}")]
    Blob {
        /// The layout directory.
        layout: PathBuf,
        /// Expected and actual digest and size.
        mismatch: crate::layout::BlobMismatch,
    },
    /// Reading an untrusted layout would exceed one of [`crate::layout::Limits`].
    #[error("{layout}: {message} (limit {limit})")]
    Limit {
        /// The layout directory.
        layout: PathBuf,
        /// The field of `Limits` that was exceeded.
        limit: &'static str,
        /// What was found.
        message: String,
    },
    /// A closure graph given to the layer splitter is unusable.
    #[error("graph {origin}: {message}")]
    Graph {
        /// The graph file.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
