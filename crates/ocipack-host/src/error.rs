//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while turning an image definition into a plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or inspected.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An image definition or models.toml is not valid TOML or has unknown fields.
    #[error("{path}: {message}")]
    Toml {
        /// The file that failed to parse.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },

    /// An image definition parsed but says something inconsistent.
    #[error("{path}: {message}")]
    Definition {
        /// The definition file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },

    /// A definition names a model or runtime that models.toml does not list.
    #[error("{definition}: unknown {kind} `{name}`; models.toml at {manifest} lists: {known}")]
    UnknownAsset {
        /// The definition file.
        definition: PathBuf,
        /// `model` or `runtime`.
        kind: &'static str,
        /// The name that was not found.
        name: String,
        /// The models.toml that was searched.
        manifest: PathBuf,
        /// The names that do exist, comma separated.
        known: String,
    },

    /// An asset file is missing or does not match the size and sha256 of models.toml.
    #[error("{path}: {message}; run scripts/fetch-assets.sh to fetch and verify the assets")]
    Asset {
        /// The asset file.
        path: PathBuf,
        /// What does not match.
        message: String,
    },

    /// A binary the image needs has not been built.
    #[error("{path}: binary not found; build it first with `cargo build --release -p {package}` (or pass --bin-dir)")]
    MissingBinary {
        /// Where the binary was expected.
        path: PathBuf,
        /// The cargo package that produces it.
        package: String,
    },

    /// A file that must be an ELF object is not one.
    #[error("{path}: not an ELF file ({reason}); only Linux ELF binaries can be packed by the host builder")]
    NotElf {
        /// The offending file.
        path: PathBuf,
        /// The parser's explanation.
        reason: String,
    },

    /// A shared library could not be found in any directory the loader would search.
    #[error("{name} (needed by {needed_by}) not found in {searched}; install the package that provides it on this host")]
    MissingLibrary {
        /// The DT_NEEDED name.
        name: String,
        /// The object that needs it.
        needed_by: PathBuf,
        /// The directories searched, in order, colon separated.
        searched: String,
    },

    /// A symlink chain on the host loops or is too long to follow.
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The path being resolved.
        path: PathBuf,
    },

    /// Two sources want the same path in one layer with different content.
    #[error("{target}: claimed by both {first} and {second}; remove one from the definition")]
    Conflict {
        /// The image path.
        target: String,
        /// The first claim.
        first: String,
        /// The second claim.
        second: String,
    },

    /// The image needs more layers than the definition's `[layers] max` allows.
    #[error("image `{name}` needs {needed} layers but [layers] max is {max}; raise max or ship fewer models")]
    TooManyLayers {
        /// The image name.
        name: String,
        /// Layers the plan holds.
        needed: usize,
        /// The definition's limit.
        max: u32,
    },

    /// The image cannot be built without Nix.
    #[error(
        "image `{name}` cannot be built by the host builder: {reason}; build it with Nix instead"
    )]
    HostUnsupported {
        /// The image name.
        name: String,
        /// The definition's `host_unsupported` text.
        reason: String,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches the path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
