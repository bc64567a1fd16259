//! The entries of one `files` layer, keyed by image path, plus the mirroring
//! of host paths with their symlinks.
//!
//! Debian is merged-/usr: `/lib64 -> usr/lib64`, and
//! `/usr/lib64/ld-linux-x86-64.so.2` is an absolute symlink into
//! `/lib/x86_64-linux-gnu`. Copying only the final files would break the
//! `PT_INTERP` path baked into every binary, so [`Tree::mirror`] walks a host
//! path component by component and records every symlink it crosses; the
//! real file then lands at its canonical path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ocipack::plan::Entry as PlanEntry;

use crate::error::{io, Error, Result};

/// One entry of a files layer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File { source: PathBuf },
    Symlink { dest: String },
    Dir { uid: u32, gid: u32 },
}

impl Entry {
    fn describe(&self) -> String {
        match self {
            Entry::File { source } => format!("file {}", source.display()),
            Entry::Symlink { dest } => format!("symlink to {dest}"),
            Entry::Dir { uid, gid } => format!("directory owned by {uid}:{gid}"),
        }
    }
}

/// The entries of one files layer.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

/// Most symlinks followed while mirroring one path, as Linux's MAXSYMLINKS.
const MAX_HOPS: u32 = 40;

impl Tree {
    /// True if the tree holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, target: &Path, entry: Entry) -> Result<()> {
        let key = target.to_string_lossy().into_owned();
        match self.entries.get(&key) {
            Some(old) if *old != entry => Err(Error::Conflict {
                target: key,
                first: old.describe(),
                second: entry.describe(),
            }),
            Some(_) => Ok(()),
            None => {
                self.entries.insert(key, entry);
                Ok(())
            }
        }
    }

    /// Adds a regular file (or a directory taken recursively) at `target`.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] if `target` already holds something else.
    pub fn file(&mut self, source: &Path, target: &Path) -> Result<()> {
        self.insert(
            target,
            Entry::File {
                source: source.to_owned(),
            },
        )
    }

    /// Adds a symlink.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] if `target` already holds something else.
    pub fn symlink(&mut self, target: &Path, dest: &str) -> Result<()> {
        self.insert(
            target,
            Entry::Symlink {
                dest: dest.to_owned(),
            },
        )
    }

    /// Adds an empty directory owned by `uid:gid`.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] if `target` already holds something else.
    pub fn dir(&mut self, target: &Path, uid: u32, gid: u32) -> Result<()> {
        self.insert(target, Entry::Dir { uid, gid })
    }

    /// Adds the host file at absolute `path` under the same path, with every
    /// symlink crossed on the way (directory links like `/lib -> usr/lib`,
    /// soname links, absolute links) and the real file at its canonical path.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a component cannot be inspected,
    /// [`Error::SymlinkLoop`] past 40 links, [`Error::Conflict`].
    pub fn mirror(&mut self, path: &Path) -> Result<()> {
        self.mirror_in(Path::new("/"), path)
    }

    /// As [`Tree::mirror`], with the files read under `sysroot` (another
    /// machine's root): image path `/a/b` is read from `SYSROOT/a/b`, and
    /// absolute links resolve inside the sysroot.
    ///
    /// # Errors
    ///
    /// As [`Tree::mirror`].
    pub fn mirror_in(&mut self, sysroot: &Path, path: &Path) -> Result<()> {
        let mut todo: Vec<PathBuf> = components_rev(path);
        let mut resolved = PathBuf::from("/");
        let mut hops = 0;
        while let Some(component) = todo.pop() {
            if component.as_os_str() == ".." {
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&component);
            let on_disk = sysroot.join(candidate.strip_prefix("/").unwrap_or(&candidate));
            let meta = std::fs::symlink_metadata(&on_disk).map_err(io(&on_disk))?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Error::SymlinkLoop {
                        path: path.to_owned(),
                    });
                }
                let dest = std::fs::read_link(&on_disk).map_err(io(&on_disk))?;
                self.symlink(&candidate, &dest.to_string_lossy())?;
                if dest.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                todo.extend(components_rev(&dest));
            } else if todo.is_empty() {
                self.file(&on_disk, &candidate)?;
            } else {
                resolved = candidate;
            }
        }
        Ok(())
    }

    /// The layer's entries for the plan, sorted by target.
    pub fn to_entries(&self) -> Vec<PlanEntry> {
        self.entries
            .iter()
            .map(|(target, entry)| {
                let target = target.clone();
                match entry {
                    Entry::File { source } => PlanEntry {
                        source: Some(source.clone()),
                        target,
                        ..PlanEntry::default()
                    },
                    Entry::Symlink { dest } => PlanEntry {
                        symlink: Some(dest.clone()),
                        target,
                        ..PlanEntry::default()
                    },
                    Entry::Dir { uid, gid } => PlanEntry {
                        directory: true,
                        uid: Some(*uid),
                        gid: Some(*gid),
                        target,
                        ..PlanEntry::default()
                    },
                }
            })
            .collect()
    }

    /// The image paths of all entries, sorted.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// The normal components of `path` (and `..`), last first, for use as a stack.
fn components_rev(path: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    let mut out: Vec<PathBuf> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_in_reads_under_the_sysroot_and_keeps_image_paths() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libx.so.1"), "x").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        // An absolute link resolves inside the sysroot, not on the host.
        std::os::unix::fs::symlink("/lib/libx.so.1", root.join("usr/lib/libx.so")).unwrap();
        let mut tree = Tree::default();
        tree.mirror_in(root, Path::new("/usr/lib/libx.so")).unwrap();
        let entries = tree.to_entries();
        let get = |t: &str| entries.iter().find(|e| e.target == t).unwrap();
        assert_eq!(
            get("/usr/lib/libx.so").symlink.as_deref(),
            Some("/lib/libx.so.1")
        );
        assert_eq!(get("/lib").symlink.as_deref(), Some("usr/lib"));
        assert_eq!(
            get("/usr/lib/libx.so.1").source.as_deref(),
            Some(root.join("usr/lib/libx.so.1").as_path())
        );
        assert_eq!(entries.len(), 3);
    }
}
