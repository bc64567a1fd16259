//! What a push sends, read through the packer's one layout reader
//! (`ocipack::layout`: regular files only, sizes checked before reading,
//! digests verified, bounded depth, entries and counts, each distinct
//! manifest once). This module only chooses the manifests by tag and maps
//! errors.

use std::collections::HashMap;
use std::path::Path;

use ocipack::layout::{Descriptor, Layout, Limits, Symlinks, REF_NAME};

use crate::error::{Error, Result};

/// The limits push reads layouts with: the packer's defaults (documented in
/// docs/security.md), symlinked blobs followed (Nix layouts link into the
/// store) and verified like any other.
pub(crate) fn open(dir: &Path) -> Result<Layout> {
    Layout::open_with(dir, Limits::default(), Symlinks::Follow).map_err(|e| from_layout(dir, e))
}

/// Maps the layout reader's errors to this crate's.
pub(crate) fn from_layout(dir: &Path, e: ocipack::Error) -> Error {
    match e {
        ocipack::Error::Blob { layout, mismatch } => {
            let path = ocipack::digest::hex_of(&mismatch.expected_digest)
                .map(|h| layout.join("blobs/sha256").join(h))
                .unwrap_or(layout);
            match mismatch.actual_digest.clone() {
                Some(actual)
                    if mismatch
                        .expected_size
                        .is_none_or(|s| s == mismatch.actual_size) =>
                {
                    Error::DigestMismatch {
                        path,
                        expected: mismatch.expected_digest,
                        actual,
                    }
                }
                _ => Error::Layout {
                    path,
                    reason: mismatch.to_string(),
                },
            }
        }
        ocipack::Error::Layout { layout, message } => Error::Layout {
            path: layout,
            reason: message,
        },
        ocipack::Error::Limit {
            layout,
            limit,
            message,
        } => Error::Layout {
            path: layout,
            reason: format!("{message} (limit {limit})"),
        },
        ocipack::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Layout {
            path: dir.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// Chooses the manifests to push and the tags for each.
///
/// With a tag: the index entry whose ref name is that tag, or the only
/// entry when the index has exactly one. Without: every entry with a ref
/// name, pushed under it. Linear in the number of entries.
///
/// # Errors
/// [`Error::Layout`] when nothing matches, naming the tags that exist.
pub(crate) fn select(
    dir: &Path,
    index: &[Descriptor],
    tag: Option<&str>,
) -> Result<Vec<(Descriptor, Vec<String>)>> {
    let index_path = dir.join("index.json");
    if index.is_empty() {
        return Err(Error::Layout {
            path: index_path,
            reason: "the index lists no manifests".into(),
        });
    }
    let mut out: Vec<(Descriptor, Vec<String>)> = Vec::new();
    match tag {
        Some(tag) => {
            let d = match (index.iter().find(|d| d.tag() == Some(tag)), index) {
                (Some(d), _) => d,
                (None, [only]) => only,
                (None, _) => {
                    let names: Vec<&str> = index.iter().filter_map(Descriptor::tag).collect();
                    return Err(Error::Layout {
                        path: index_path,
                        reason: format!(
                            "no manifest is named {tag:?}; the layout has {names:?}, pick one of those tags"
                        ),
                    });
                }
            };
            out.push((d.clone(), vec![tag.to_string()]));
        }
        None => {
            let mut at: HashMap<&str, usize> = HashMap::new();
            for d in index {
                let Some(name) = d.tag() else { continue };
                match at.get(d.digest.as_str()) {
                    Some(&i) => out[i].1.push(name.to_string()),
                    None => {
                        at.insert(&d.digest, out.len());
                        out.push((d.clone(), vec![name.to_string()]));
                    }
                }
            }
            if out.is_empty() {
                return Err(Error::Layout {
                    path: index_path,
                    reason: format!(
                        "no manifest carries a {REF_NAME} annotation; give the tag explicitly (REPO:TAG)"
                    ),
                });
            }
        }
    }
    Ok(out)
}
