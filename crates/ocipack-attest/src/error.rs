//! The one error type of the crate.

use std::path::PathBuf;

/// What can go wrong while gathering evidence, signing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An input is malformed: names the input and what to do.
    #[error("{input}: {message}")]
    Input {
        /// Which input (a file, a variable, an argument).
        input: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// An external tool (cargo) failed.
    #[error("{command}: {message}")]
    Tool {
        /// The command line.
        command: String,
        /// What it said.
        message: String,
    },
    /// A signature or envelope does not verify.
    #[error("verification failed: {0}")]
    Verify(String),
    /// The layout reader refused something.
    #[error(transparent)]
    Layout(#[from] ocipack::Error),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

pub(crate) fn input(input: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Input {
        input: input.into(),
        message: message.into(),
    }
}
