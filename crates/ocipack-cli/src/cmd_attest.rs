//! `ocipack attest`: SLSA v1 provenance of an image as an in-toto statement
//! in a DSSE envelope signed with the signing key, attached in the layout's
//! attestation layout; `ocipack attest --verify` checks the signature, the
//! provenance and the SBOMs of a layout against a public key and the image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;
use ocipack::layout::Layout;
use ocipack_attest::artifact::{self, AttestLayout};
use ocipack_attest::cache::SbomCache;
use ocipack_attest::inputs::Models;
use ocipack_attest::{provenance, sign};
use serde_json::{json, Value};

use crate::cmd_sbom::{self, SbomSources};

/// Arguments of `ocipack attest`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack attest out/images/redis --key keys/release.key --definition images/redis.toml
  ocipack attest out/images/redis --verify --public-key keys/release.pub --identity 127.0.0.1:5000/aurum-circle/redis

Exit codes: 0 verified; 3 a check failed (each failure is printed); 1 bad input.")]
pub struct AttestArgs {
    /// The image's OCI layout.
    layout: PathBuf,
    /// The private key file (PEM) that signs the provenance.
    #[arg(long, conflicts_with_all = ["key_env", "verify"])]
    key: Option<PathBuf>,
    /// The environment variable holding the private key (PEM).
    #[arg(long, value_name = "VAR", conflicts_with = "verify")]
    key_env: Option<String>,
    /// The image definition the image was built from (recorded).
    #[arg(long)]
    definition: Option<String>,
    /// The image's tag in the layout [default: the only image].
    #[arg(long)]
    tag: Option<String>,
    /// Repository root [default: nearest ancestor with models.toml].
    #[arg(long)]
    repo_root: Option<PathBuf>,
    /// Verify instead: the cosign signature, the provenance envelope and the SBOMs.
    #[arg(long, requires = "public_key")]
    verify: bool,
    /// The public key (PEM) to verify with.
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// With --verify: the identity the signature must name.
    #[arg(long)]
    identity: Option<String>,
    #[command(flatten)]
    cache: crate::cmd_cache::SbomCacheFlags,
}

fn sha256_file(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok(ocipack::digest::sha256(&bytes)
        .trim_start_matches("sha256:")
        .to_owned())
}

fn git(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn run(a: AttestArgs, json: bool) -> Result<()> {
    let repo = match &a.repo_root {
        Some(r) => r.clone(),
        None => cmd_sbom::find_repo()?,
    };
    if a.verify {
        return verify(&a, &repo, json);
    }
    let key = crate::cmd_sign::load_key(a.key.as_deref(), a.key_env.as_deref())?;
    let cache = a.cache.open()?;
    let p = signed_provenance(
        &a.layout,
        &ProvenanceSources {
            tag: a.tag.as_deref(),
            definition: a.definition.as_deref(),
            repo: &repo,
        },
        &key,
        cache.as_ref(),
    )?;
    let dir = artifact::attest_dir(&a.layout);
    artifact::prepare(&dir)?;
    let file = dir.join("provenance.dsse.json");
    std::fs::write(&file, &p.envelope)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let mut l = AttestLayout::open(&dir)?;
    let m = attach(&mut l, &p)?;
    l.finish()?;
    let hex = p.subject.digest.replace(':', "-");
    if json {
        crate::exit::print_json(&json!({"image": p.subject.digest, "provenance": file,
                                  "attest": dir, "manifest": m.digest}))?;
    } else {
        eprintln!(
            "provenance of {} -> {} and {} (tag {hex}.att)",
            p.subject.digest,
            file.display(),
            dir.display()
        );
    }
    Ok(())
}

/// What the provenance of an image is made from, besides its layout and
/// the key: the same for `ocipack attest` and `ocipack push --sign`.
pub struct ProvenanceSources<'a> {
    /// The image's tag in the layout (`None`: the only image).
    pub tag: Option<&'a str>,
    /// The image definition recorded [default: `images/<plan name>.toml`].
    pub definition: Option<&'a str>,
    /// The repository root (git revision, Cargo.lock, flake.lock, models.toml).
    pub repo: &'a Path,
}

/// A signed provenance: the image it is about and the DSSE envelope's
/// canonical JSON bytes.
pub struct Provenance {
    /// The image manifest (the statement's subject).
    pub subject: ocipack::layout::Descriptor,
    /// The DSSE envelope (canonical JSON).
    pub envelope: Vec<u8>,
}

/// The SLSA v1 provenance of the image in `layout`, signed with `key`. The
/// SBOM model comes from the layout and its plan (`LAYOUT.plan.json`, the
/// host's dpkg database); the build time from `SOURCE_DATE_EPOCH` or the
/// image config's `created`, never the clock; ECDSA signatures are
/// deterministic (RFC 6979): the same inputs and key give the same bytes.
/// `cache` is the SBOM cache `ocipack host` fills (`None`: `--no-cache`):
/// the layers' file lists and `cargo tree` crate lists come from it when
/// there, as for the SBOMs `ocipack host` writes; the bytes are the same
/// either way.
///
/// # Errors
/// Reading the layout, Cargo.lock, flake.lock or models.toml.
pub fn signed_provenance(
    layout: &Path,
    src: &ProvenanceSources<'_>,
    key: &sign::SigningKey,
    cache: Option<&SbomCache>,
) -> Result<Provenance> {
    let repo = src.repo;
    let sources = SbomSources {
        tag: src.tag.map(str::to_owned),
        plan: None,
        repo: repo.to_owned(),
        dpkg_root: PathBuf::from("/"),
        npm_lock: None,
    };
    let s = cmd_sbom::make_with(layout, &sources, cache)?;
    let rev = git(repo, &["rev-parse", "HEAD"]);
    let dirty = git(repo, &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let lock = sha256_file(&repo.join("Cargo.lock"))?;
    let flake = repo
        .join("flake.lock")
        .exists()
        .then(|| sha256_file(&repo.join("flake.lock")))
        .transpose()?;
    let models = Models::load(&repo.join("models.toml"))?;
    let definition = src
        .definition
        .map_or_else(|| format!("images/{}.toml", s.name), str::to_owned);
    let command = vec!["ocipack".to_owned(), "host".to_owned(), definition.clone()];
    let st = provenance::statement(
        &s,
        &provenance::BuildInfo {
            git_revision: rev.as_deref(),
            git_dirty: dirty,
            cargo_lock_sha256: &lock,
            flake_lock_sha256: flake.as_deref(),
            models: &models,
            definition: &definition,
            command: &command,
        },
    );
    let payload = ocipack::json::canonical(&st);
    let envelope = sign::dsse_sign(key, sign::INTOTO_PAYLOAD_TYPE, &payload);
    Ok(Provenance {
        subject: s.image.manifest.clone(),
        envelope: ocipack::json::canonical(&envelope),
    })
}

/// Adds `p` to an attestation layout as the OCI 1.1 artifact tagged
/// `sha256-<hex>.att` (subject: the image). Returns the artifact manifest.
///
/// # Errors
/// I/O.
pub fn attach(l: &mut AttestLayout, p: &Provenance) -> Result<ocipack::layout::Descriptor> {
    let d = l.blob(artifact::DSSE_MEDIA_TYPE, &p.envelope)?;
    let hex = p.subject.digest.replace(':', "-");
    let ann = BTreeMap::from([(
        "in-toto.io/predicate-type".to_owned(),
        provenance::PREDICATE_TYPE.to_owned(),
    )]);
    Ok(l.artifact(
        &p.subject,
        artifact::PROVENANCE_ARTIFACT_TYPE,
        vec![d],
        ann,
        &format!("{hex}.att"),
    )?)
}

fn verify(a: &AttestArgs, repo: &Path, json: bool) -> Result<()> {
    let pub_path = a
        .public_key
        .as_deref()
        .context("--public-key is required")?;
    let pem = std::fs::read_to_string(pub_path)
        .with_context(|| format!("cannot read the public key {}", pub_path.display()))?;
    let key = sign::verifying_key(&pem, &format!("public key {}", pub_path.display()))?;
    let layout = Layout::open(&a.layout)?;
    let image = layout.find(a.tag.as_deref())?;
    let hex = image.digest.replace(':', "-");
    let dir = artifact::attest_dir(&a.layout);
    if !dir.join(artifact::LAYOUT_DIR).join("index.json").exists() {
        anyhow::bail!(
            "{} does not exist: nothing was signed or attached for {}",
            dir.display(),
            a.layout.display()
        );
    }
    let l = AttestLayout::open(&dir)?;
    let mut problems: Vec<String> = Vec::new();
    let mut checked: Vec<&str> = Vec::new();
    // 1. the cosign signature.
    match l.find(&format!("{hex}.sig")) {
        None => problems.push(format!(
            "no signature (tag {hex}.sig) for image {}",
            image.digest
        )),
        Some(d) => match check_cosign(&l, &d.digest, &key, &image.digest, a.identity.as_deref()) {
            Ok(()) => checked.push("signature"),
            Err(e) => problems.push(format!("signature: {e:#}")),
        },
    }
    // 2. the provenance.
    match l.find(&format!("{hex}.att")) {
        None => problems.push(format!("no provenance (tag {hex}.att)")),
        Some(d) => match check_provenance(&l, &d.digest, &key, &image.digest) {
            Ok(()) => checked.push("provenance"),
            Err(e) => problems.push(format!("provenance: {e:#}")),
        },
    }
    // 3. the SBOMs: subject, and every file's sha256 against the image.
    match check_sboms(&l, &layout, &a.layout, a.tag.as_deref(), &hex, repo) {
        Ok(()) => checked.push("sbom"),
        Err(e) => problems.push(format!("sbom: {e:#}")),
    }
    if json {
        crate::exit::print_json(
            &json!({"image": image.digest, "verified": checked, "problems": problems}),
        )?;
    } else {
        for p in &problems {
            eprintln!("FAIL {p}");
        }
        if problems.is_empty() {
            eprintln!("verified {} ({})", image.digest, checked.join(", "));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::exit::Exit(3).into())
    }
}

fn manifest(l: &AttestLayout, digest: &str) -> Result<Value> {
    Ok(serde_json::from_slice(&l.read(digest)?)?)
}

fn check_cosign(
    l: &AttestLayout,
    digest: &str,
    key: &sign::VerifyingKey,
    image: &str,
    identity: Option<&str>,
) -> Result<()> {
    let m = manifest(l, digest)?;
    let layer = &m["layers"][0];
    let payload = l.read(layer["digest"].as_str().context("no layer")?)?;
    let sig = sign::unb64(
        layer["annotations"][sign::SIGNATURE_ANNOTATION]
            .as_str()
            .context("no signature annotation")?,
        "the signature annotation",
    )?;
    sign::verify(key, &payload, &sig)?;
    let p: Value = serde_json::from_slice(&payload)?;
    let named = p["critical"]["image"]["docker-manifest-digest"].as_str();
    anyhow::ensure!(
        named == Some(image),
        "signs {named:?}, not the image {image}"
    );
    if let Some(id) = identity {
        let got = p["critical"]["identity"]["docker-reference"].as_str();
        anyhow::ensure!(got == Some(id), "names identity {got:?}, not {id}");
    }
    Ok(())
}

fn check_provenance(
    l: &AttestLayout,
    digest: &str,
    key: &sign::VerifyingKey,
    image: &str,
) -> Result<()> {
    let m = manifest(l, digest)?;
    anyhow::ensure!(m["subject"]["digest"] == image, "subject is not the image");
    let env: Value =
        serde_json::from_slice(&l.read(m["layers"][0]["digest"].as_str().context("no layer")?)?)?;
    let (ptype, payload) = sign::dsse_verify(key, &env)?;
    anyhow::ensure!(ptype == sign::INTOTO_PAYLOAD_TYPE, "payload type {ptype}");
    let st: Value = serde_json::from_slice(&payload)?;
    let subj = st["subject"][0]["digest"]["sha256"].as_str();
    anyhow::ensure!(
        subj.map(|h| format!("sha256:{h}")).as_deref() == Some(image),
        "the statement's subject {subj:?} is not the image {image}"
    );
    Ok(())
}

fn check_sboms(
    l: &AttestLayout,
    layout: &Layout,
    layout_dir: &Path,
    tag: Option<&str>,
    hex: &str,
    _repo: &Path,
) -> Result<()> {
    let d = l
        .find(&format!("{hex}.spdx"))
        .with_context(|| format!("no SPDX SBOM (tag {hex}.spdx)"))?;
    let m = manifest(l, &d.digest)?;
    let image_digest = hex.replacen('-', ":", 1);
    anyhow::ensure!(
        m["subject"]["digest"] == image_digest.as_str(),
        "SPDX subject is not the image"
    );
    let doc: Value =
        serde_json::from_slice(&l.read(m["layers"][0]["digest"].as_str().context("no layer")?)?)?;
    let image = ocipack_attest::inputs::read_image(layout, tag)
        .with_context(|| format!("reading {}", layout_dir.display()))?;
    // The same comparison as `verify --remote` (a file listed twice counts
    // once, so it cannot stand in for one the SBOM leaves out).
    crate::cmd_verify_remote::spdx_matches(&doc, &image.files)?;
    Ok(())
}
