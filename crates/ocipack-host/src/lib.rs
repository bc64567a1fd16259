//! Builds image plans for `ocipack build` on a machine without Nix.
//!
//! An image definition (`images/<name>.toml`, see docs/image-definitions.md)
//! names a program (a workspace crate's release binary, or host programs),
//! models, runtime libraries and configuration. [`plan_for`] turns it into a
//! typed [`ocipack::plan::Plan`] (docs/plan-format.md) holding exactly what
//! the program loads: the ELF shared-library closure resolved from the host
//! as its dynamic loader would ([`elf_closure`], no `ldd`), the loader itself
//! at its `PT_INTERP` path, symlinks kept, CA certificates, the verified
//! models and runtimes. No shell, no package manager. The output is
//! deterministic: everything is sorted.
//!
//! ```no_run
//! use std::path::Path;
//! use ocipack_host::{load_definition, plan_for, HostContext};
//!
//! let def = load_definition(Path::new("images/scoring.toml"))?;
//! let ctx = HostContext::new(Path::new("."), Path::new("target/release"))?;
//! let plan = plan_for(&def, &ctx)?;
//! println!("{}", serde_json::to_string_pretty(&plan).unwrap());
//! # Ok::<(), ocipack_host::Error>(())
//! ```

mod assets;
mod definition;
mod elf;
mod error;
mod plan;
mod tree;

pub use definition::{
    definition_paths, load_definition, load_manifest, Config, Definition, Directories, Healthcheck,
    Layers, Manifest, ModelAsset, Program, RuntimeAsset, Source,
};
pub use elf::{
    default_dirs, dirs_for, elf_closure, elf_closure_for, FoundVia, Lib, Root, SearchPath, Target,
};
pub use error::{Error, Result};
pub use plan::{plan_for, HostContext, PROBE_TARGET};
pub use tree::Tree;
