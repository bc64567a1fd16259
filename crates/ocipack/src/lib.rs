//! `ocipack`: a deterministic OCI image packer.
//!
//! A [`Plan`](plan::Plan) (JSON, `docs/plan-format.md`) names the layers of an
//! image: sets of files, single model files, or blobs built earlier. [`build()`]
//! turns it into an OCI image layout whose every byte depends only on the plan
//! and the bytes of the files it names: not on time, locale, umask, file
//! system order, inode numbers or thread scheduling.
//!
//! ```no_run
//! use std::path::Path;
//! let plan = ocipack::plan::Plan::load(Path::new("plan.json"))?;
//! let report = ocipack::build(&plan, "plan.json", Path::new("out/image"), &Default::default())?;
//! println!("{}", report.manifest_digest);
//! # Ok::<(), ocipack::Error>(())
//! ```
//!
//! The crate also reads layouts back: [`verify`](verify::verify) re-hashes and
//! checks the non-root policy, [`inspect`](inspect::inspect) describes,
//! [`export`] writes a docker-archive, and [`closure`] splits a Nix closure into
//! layers.

pub mod build;
pub mod cache;
pub mod closure;
pub mod compress;
pub mod digest;
mod error;
pub mod export;
pub mod index;
pub mod inspect;
pub mod json;
pub mod layer;
pub mod layout;
pub mod output;
pub mod par;
pub mod plan;
mod rules;
pub mod scan;
pub mod tree;
pub mod verify;

pub use build::{build, build_layer, BuildOptions, BuildReport};
pub use error::{Error, Result};
