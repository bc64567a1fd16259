//! The attestations `ocipack push` sends with each layout: `LAYOUT.attest/oci`
//! as `ocipack host`/`sign`/`attest` left it, or, with `--sign`, a staged copy
//! of it (in a temporary directory, removed after the push) to which a
//! fresh cosign signature of each pushed manifest is added. The layout's own
//! `LAYOUT.attest` is never changed by a push.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ocipack_attest::artifact::{self, AttestLayout};
use ocipack_attest::sign::{self, SigningKey};
use ocipack_push::Target;

/// Temporary directories made for signing, removed when dropped.
#[derive(Default)]
pub struct Staging(RefCell<Vec<PathBuf>>);

impl Staging {
    fn make(&self) -> Result<PathBuf> {
        let n = self.0.borrow().len();
        let dir =
            std::env::temp_dir().join(format!("ocipack-push-sign-{}-{n}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        self.0.borrow_mut().push(dir.clone());
        Ok(dir)
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
///
/// # Errors
/// Reading the layout or the attestation layout; writing the staged copy.
pub fn attest_for(
    dir: &Path,
    target: &Target,
    no_attest: bool,
    key: Option<&SigningKey>,
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
        let subject = ocipack::layout::Descriptor {
            annotations: Default::default(),
            ..m
        };
        let payload = sign::simple_signing_payload(&identity, &subject.digest);
        let sig = sign::sign(key, &payload);
        l.cosign_signature(&subject, &payload, &sig)?;
    }
    l.finish()?;
    Ok(Some(root.join(artifact::LAYOUT_DIR)))
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
