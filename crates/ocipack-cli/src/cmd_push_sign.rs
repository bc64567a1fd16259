//! The attestations `ocipack push` sends with each layout: `LAYOUT.attest/oci`
//! as `ocipack host`/`sign`/`attest` left it, or, with `--sign`, a staged copy
//! of it (in a temporary directory, removed after the push) to which a
//! fresh cosign signature of each pushed manifest is added, and, for each
//! image manifest the copy has no provenance (`sha256-<hex>.att`) of, the
//! provenance `ocipack attest` would write (the same function,
//! [`crate::cmd_attest::signed_provenance`]), signed with the same key. The
//! layout's own `LAYOUT.attest` is never changed by a push.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ocipack_attest::artifact::{self, AttestLayout};
use ocipack_attest::cache::SbomCache;
use ocipack_attest::sign::{self, SigningKey};
use ocipack_push::Target;

use crate::cmd_attest;

/// Temporary directories made for signing, removed when dropped.
#[derive(Default)]
pub struct Staging(RefCell<Vec<PathBuf>>);

impl Staging {
    /// A new directory of its own: `create_dir` fails on anything already
    /// there (another run's directory, a planted symlink), which is then
    /// left alone and the next name tried; only directories made here are
    /// removed.
    fn make(&self) -> Result<PathBuf> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let dir = base.join(format!("ocipack-push-sign-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    self.0.borrow_mut().push(dir.clone());
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", dir.display()))
                }
            }
        }
        anyhow::bail!("cannot create a temporary directory in {}", base.display())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for d in self.0.borrow().iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The attestation layout to push with `dir` (`None`: nothing to attach).
/// With `key` and without `no_attest`, a missing provenance is made with
/// `repo_root` (or the nearest ancestor of the current directory, else of
/// `dir`, holding models.toml) as the repository root, its SBOM model from
/// `cache` where it has it.
///
/// # Errors
/// Reading the layout or the attestation layout; making the provenance (no
/// repository root found, unreadable Cargo.lock or models.toml); writing
/// the staged copy.
pub fn attest_for(
    dir: &Path,
    target: &Target,
    no_attest: bool,
    key: Option<&SigningKey>,
    repo_root: Option<&Path>,
    cache: Option<&SbomCache>,
    staging: &Staging,
) -> Result<Option<PathBuf>> {
    let existing = artifact::attest_dir(dir).join(artifact::LAYOUT_DIR);
    let existing = (!no_attest && existing.join("index.json").is_file()).then_some(existing);
    let Some(key) = key else {
        return Ok(existing);
    };
    let root = staging.make()?;
    artifact::prepare(&root)?;
    if let Some(src) = &existing {
        copy_layout(src, &root.join(artifact::LAYOUT_DIR))?;
    }
    let mut l = AttestLayout::open(&root)?;
    let identity = format!("{}/{}", target.registry, target.repository);
    for m in ocipack_push::manifests_to_push(dir, target)? {
        let tag = m.tag().map(str::to_owned);
        let subject = ocipack::layout::Descriptor {
            annotations: Default::default(),
            ..m
        };
        let payload = sign::simple_signing_payload(&identity, &subject.digest);
        let sig = sign::sign(key, &payload);
        l.cosign_signature(&subject, &payload, &sig)?;
        // `--no-attest --sign`: the signature only, as before.
        let hex = subject.digest.replace(':', "-");
        if no_attest || subject.is_index() || l.find(&format!("{hex}.att")).is_some() {
            continue;
        }
        let repo = repo_for(dir, repo_root)?;
        let p = cmd_attest::signed_provenance(
            dir,
            &cmd_attest::ProvenanceSources {
                tag: tag.as_deref(),
                definition: None,
                repo: &repo,
            },
            key,
            cache,
        )
        .with_context(|| {
            format!(
                "cannot make the provenance of {} ({}) for --sign",
                dir.display(),
                subject.digest
            )
        })?;
        anyhow::ensure!(
            p.subject.digest == subject.digest,
            "{} tag {tag:?} is {}, not the pushed manifest {}",
            dir.display(),
            p.subject.digest,
            subject.digest
        );
        cmd_attest::attach(&mut l, &p)?;
    }
    l.finish()?;
    Ok(Some(root.join(artifact::LAYOUT_DIR)))
}

/// The repository root the provenance names: `repo_root`, else the nearest
/// ancestor of the current directory holding models.toml (as `ocipack
/// attest`), else the nearest ancestor of the layout holding one.
fn repo_for(dir: &Path, repo_root: Option<&Path>) -> Result<PathBuf> {
    if let Some(r) = repo_root {
        return Ok(r.to_owned());
    }
    if let Ok(r) = crate::cmd_sbom::find_repo() {
        return Ok(r);
    }
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    abs.ancestors()
        .find(|d| d.join("models.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "push --sign adds the provenance of {} and needs the repository it was built \
                 from: no models.toml in the current directory, {} or any parent; pass \
                 --repo-root, run `ocipack attest` first, or push with --no-attest",
                dir.display(),
                dir.display()
            )
        })
}

/// Copies an OCI layout's `oci-layout`, `index.json` and regular blob files
/// (the push reads the copy through the layout reader, which checks them).
fn copy_layout(src: &Path, dst: &Path) -> Result<()> {
    let blobs = dst.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)
        .with_context(|| format!("cannot create {}", blobs.display()))?;
    for f in ["oci-layout", "index.json"] {
        std::fs::copy(src.join(f), dst.join(f))
            .with_context(|| format!("cannot copy {}", src.join(f).display()))?;
    }
    let from = src.join("blobs/sha256");
    for e in std::fs::read_dir(&from).with_context(|| format!("cannot list {}", from.display()))? {
        let e = e.with_context(|| format!("cannot list {}", from.display()))?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), blobs.join(e.file_name()))
                .with_context(|| format!("cannot copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Review of issue 15: staging removed whatever was at its predictable
    // path (ocipack-push-sign-PID-0) before using it: a directory it did not
    // make, or one swapped in between the removal and the writes.
    #[test]
    fn staging_leaves_what_it_did_not_make_and_removes_what_it_made() {
        let theirs =
            std::env::temp_dir().join(format!("ocipack-push-sign-{}-0", std::process::id()));
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::write(theirs.join("keep"), b"x").unwrap();
        let made = {
            let s = Staging::default();
            let d = s.make().unwrap();
            assert_ne!(d, theirs);
            assert!(d.is_dir());
            d
        };
        assert!(!made.exists(), "the staged directory is removed on drop");
        assert!(
            theirs.join("keep").is_file(),
            "a directory not made here is kept"
        );
        std::fs::remove_dir_all(&theirs).unwrap();
    }
}
