//! Output safety: where `build` and `build_layer` may write, and how they
//! replace what is there.
//!
//! The packer replaces an output path only when it can tell the path holds
//! nothing or holds its own earlier output:
//!
//! - absent, or an empty directory: written;
//! - a directory holding the [`MARKER`] file `.ocipack-output` (with the
//!   exact bytes ocipack writes) and nothing at its top level but the names
//!   ocipack writes there (`oci-layout`, `index.json`, `blobs` for a layout;
//!   `blob`, `descriptor.json` for a layer): replaced;
//! - anything else (a regular file, a symlink, a directory with other
//!   content, the directory that holds the plan): refused, naming the path
//!   and what to do.
//!
//! An output inside one of the plan's sources (or a source inside the
//! output) is refused too: the build would pack its own staging directory.
//!
//! The new output is staged in a hidden sibling `.NAME.ocipack-tmp-PID` and
//! renamed into place; the old one is moved aside to `.NAME.ocipack-old-PID`
//! and removed only after the rename.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// The file that marks a directory as written by ocipack.
pub const MARKER: &str = ".ocipack-output";

/// What an output directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// An OCI image layout (`ocipack build`).
    Layout,
    /// A layer blob and its descriptor (`ocipack layer`).
    Layer,
}

impl OutputKind {
    /// The exact bytes of the marker file.
    pub fn marker(self) -> &'static [u8] {
        match self {
            OutputKind::Layout => b"ocipack layout\n",
            OutputKind::Layer => b"ocipack layer\n",
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            OutputKind::Layout => &["oci-layout", "index.json", "blobs", MARKER],
            OutputKind::Layer => &["blob", "descriptor.json", MARKER],
        }
    }

    fn command(self) -> &'static str {
        match self {
            OutputKind::Layout => "ocipack build",
            OutputKind::Layer => "ocipack layer",
        }
    }
}

fn refuse(out: &Path, why: String) -> Error {
    Error::Output {
        path: out.to_owned(),
        message: why,
    }
}

/// Checks that `out` may be written as `kind`: absent, an empty directory, or
/// an earlier output of ocipack of the same kind.
///
/// # Errors
/// [`Error::Output`] naming what is there and what to do.
pub fn check_replaceable(out: &Path, kind: OutputKind) -> Result<()> {
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(out),
    };
    let how = "give a new path, or remove it yourself if it should go";
    if meta.file_type().is_symlink() {
        return Err(refuse(
            out,
            format!("is a symlink; ocipack only replaces its own output directories; {how}"),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse(
            out,
            format!("exists and is not a directory; ocipack will not replace it; {how}"),
        ));
    }
    let mut names = Vec::new();
    for e in fs::read_dir(out).at(out)? {
        names.push(e.at(out)?.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(());
    }
    let marker = out.join(MARKER);
    let ours = fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file())
        && fs::read(&marker).is_ok_and(|b| b == kind.marker());
    if !ours {
        return Err(refuse(
            out,
            format!(
                "is a non-empty directory that {} did not write (no {MARKER} file); ocipack replaces only its own outputs; {how}",
                kind.command()
            ),
        ));
    }
    names.sort();
    if let Some(extra) = names.iter().find(|n| !kind.names().contains(&n.as_str())) {
        return Err(refuse(
            out,
            format!(
                "holds {extra:?}, which {} did not write; move it out first, or give a new path",
                kind.command()
            ),
        ));
    }
    Ok(())
}

/// Refuses an output inside one of `sources` or a source inside the output.
///
/// # Errors
/// [`Error::Output`] naming the source.
pub fn check_not_overlapping(out: &Path, sources: &[&Path]) -> Result<()> {
    let out_abs = absolute(out)?;
    for s in sources {
        // A source that does not exist is reported by the build itself.
        let Ok(src) = fs::canonicalize(s) else {
            continue;
        };
        if out_abs.starts_with(&src) {
            return Err(refuse(
                out,
                format!(
                    "is inside the source {}; the build would pack its own output; write it outside the plan's sources",
                    s.display()
                ),
            ));
        }
        if src.starts_with(&out_abs) {
            return Err(refuse(
                out,
                format!(
                    "holds the source {}; replacing it would delete an input; write it elsewhere",
                    s.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `path` made absolute with symlinks resolved as far as it exists.
fn absolute(path: &Path) -> Result<PathBuf> {
    let mut existing = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().at(path)?.join(path)
    };
    let mut rest = Vec::new();
    loop {
        match fs::canonicalize(&existing) {
            Ok(c) => {
                let mut p = c;
                for r in rest.iter().rev() {
                    p.push(r);
                }
                return Ok(p);
            }
            Err(_) => match (existing.file_name(), existing.parent()) {
                (Some(n), Some(p)) => {
                    rest.push(n.to_owned());
                    existing = p.to_owned();
                }
                _ => return Ok(path.to_owned()),
            },
        }
    }
}

/// A temporary sibling of the output, removed on drop unless committed.
pub(crate) struct Staging {
    pub(crate) path: PathBuf,
    out: PathBuf,
    kind: OutputKind,
    done: bool,
}

impl Staging {
    /// Checks `out` may be replaced (see [`check_replaceable`]) and creates
    /// the staging directory beside it.
    pub(crate) fn new(out: &Path, kind: OutputKind) -> Result<Staging> {
        let name = out
            .file_name()
            .ok_or_else(|| refuse(out, "has no file name; name the output directory".into()))?;
        check_replaceable(out, kind)?;
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).at(parent)?;
        let path = parent.join(format!(
            ".{}.ocipack-tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if path.exists() {
            fs::remove_dir_all(&path).at(&path)?;
        }
        fs::create_dir(&path).at(&path)?;
        Ok(Staging {
            path,
            out: out.to_owned(),
            kind,
            done: false,
        })
    }

    /// Swaps the staged output into place; an older output is removed only after.
    pub(crate) fn commit(mut self) -> Result<()> {
        crate::layout::write_file(&self.path.join(MARKER), self.kind.marker())?;
        // Checked again: something may have appeared since the build began.
        check_replaceable(&self.out, self.kind)?;
        let name = self.out.file_name().expect("checked in new");
        let old = self.path.with_file_name(format!(
            ".{}.ocipack-old-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        // Only a leftover of this very process id (a crash) can be there.
        if fs::symlink_metadata(&old).is_ok() {
            fs::remove_dir_all(&old).at(&old)?;
        }
        let had_old = fs::symlink_metadata(&self.out).is_ok();
        if had_old {
            fs::rename(&self.out, &old).at(&self.out)?;
        }
        if let Err(e) = fs::rename(&self.path, &self.out) {
            if had_old {
                let _ = fs::rename(&old, &self.out);
            }
            return Err(Error::Io {
                path: self.out.clone(),
                source: e,
            });
        }
        self.done = true;
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
