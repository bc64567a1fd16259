//! `ocipack verify --remote REF --key PUB`: checks, in the registry, what
//! `ocipack push` attached to an image (docs/supply-chain.md, "Verifying an
//! image in a registry"):
//!
//! 1. the cosign signature (tag `sha256-<hex>.sig`): some layer's
//!    simple-signing payload names the manifest digest the registry served
//!    for REF (`docker-manifest-digest`), and its signature verifies with the
//!    key (and names `--identity`, when given);
//! 2. every referrer (API or fallback tag) exists and has this manifest as
//!    `subject`; the signature referrer verifies as in 1;
//! 3. the provenance referrer: the DSSE envelope verifies with the key, its
//!    payload type is in-toto, and the statement's subject is this digest;
//! 4. the SPDX referrer: names this digest, and every file it lists has the
//!    sha256 the image's layers hold, and no file of the image is missing
//!    (the layers are downloaded into a temporary layout, digest-checked,
//!    and read back with the SBOM's own reader); the CycloneDX referrer, when
//!    present, names this digest.
//!
//! Exit 0: all checks passed; 3: a check failed (each printed as `FAIL ...`);
//! 1: bad input or an unreachable registry or image; 4: credentials refused.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use ocipack::layout::Descriptor;
use ocipack_attest::artifact;
use ocipack_attest::sign::{self, VerifyingKey};
use ocipack_push::{Fetched, Remote, RemoteRef};
use serde_json::{json, Value};

use crate::cmd_referrers::{connect, registry_error, resolve};

/// The `--remote` part of `ocipack verify`.
#[derive(Args)]
pub struct RemoteArgs {
    /// Verify an image in a registry instead of a layout: REGISTRY/REPO:TAG or
    /// REGISTRY/REPO@sha256:HEX (its signature, provenance and SBOM; needs --key).
    #[arg(long, value_name = "REF", requires = "key")]
    pub remote: Option<String>,
    /// With --remote: the public key (PEM) the signature and provenance must verify with.
    #[arg(long, value_name = "PUB", requires = "remote")]
    pub key: Option<PathBuf>,
    /// With --remote: the docker reference the signature must name (default: not checked).
    #[arg(long, requires = "remote")]
    pub identity: Option<String>,
    /// With --remote: allow plain HTTP to the registry.
    #[arg(long, requires = "remote", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "HOSTS")]
    pub insecure: Option<String>,
}

/// Largest signature payload or provenance envelope read.
const MAX_SMALL: u64 = 4 * 1024 * 1024;
/// Largest SBOM read.
const MAX_SBOM: u64 = 256 * 1024 * 1024;

struct Ctx<'a> {
    r: &'a RemoteRef,
    remote: &'a Remote,
    key: &'a VerifyingKey,
    digest: &'a str,
    identity: Option<&'a str>,
}

pub fn run(a: &RemoteArgs, json: bool) -> Result<()> {
    let reference = a.remote.as_deref().context("--remote is required")?;
    let pub_path = a
        .key
        .as_deref()
        .context("--key is required with --remote")?;
    let pem = std::fs::read_to_string(pub_path)
        .with_context(|| format!("cannot read the public key {}", pub_path.display()))?;
    let key = sign::verifying_key(&pem, &format!("public key {}", pub_path.display()))?;
    let (r, remote) = connect(reference, a.insecure.as_deref())?;
    let image = resolve(&r, &remote)?;
    let cx = Ctx {
        r: &r,
        remote: &remote,
        key: &key,
        digest: &image.digest,
        identity: a.identity.as_deref(),
    };
    let mut problems: Vec<String> = Vec::new();
    let mut checked: Vec<String> = Vec::new();
    let note = |res: Result<String>,
                what: &str,
                checked: &mut Vec<String>,
                problems: &mut Vec<String>| match res {
        Ok(s) => checked.push(s),
        Err(e) => problems.push(format!("{what}: {e:#}")),
    };
    note(cosign_tag(&cx), "signature", &mut checked, &mut problems);
    let refs = remote
        .referrers(&r.repository, &image.digest)
        .map_err(|e| {
            registry_error(e, &format!("cannot list the referrers of {}", image.digest))
        })?;
    let seen = |t: &str| refs.manifests.iter().any(|m| m.artifact_type == t);
    for (t, what) in [
        (artifact::PROVENANCE_ARTIFACT_TYPE, "provenance"),
        (artifact::SPDX_MEDIA_TYPE, "sbom (spdx)"),
    ] {
        if !seen(t) {
            problems.push(format!(
                "{what}: no referrer of artifactType {t} (is it pushed? `ocipack referrers {reference}`)"
            ));
        }
    }
    for m in &refs.manifests {
        let what = format!("referrer {} ({})", m.digest, m.artifact_type);
        note(referrer(&cx, &image, m), &what, &mut checked, &mut problems);
    }
    if json {
        crate::exit::print_json(
            &json!({"reference": format!("{}@{}", r.name(), image.digest),
            "via": refs.via, "verified": checked, "problems": problems}),
        )?;
    } else {
        for c in &checked {
            eprintln!("ok   {c}");
        }
        for p in &problems {
            eprintln!("FAIL {p}");
        }
        if problems.is_empty() {
            eprintln!("verified {}@{}", r.name(), image.digest);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::exit::Exit(3).into())
    }
}

fn fetch_manifest(cx: &Ctx, reference: &str) -> Result<Option<(Fetched, Value)>> {
    let Some(f) = cx
        .remote
        .manifest(&cx.r.repository, reference)
        .map_err(|e| registry_error(e, &format!("cannot read {reference}")))?
    else {
        return Ok(None);
    };
    let v = f.json(cx.remote.registry())?;
    Ok(Some((f, v)))
}

fn layer_desc(l: &Value) -> Result<Descriptor> {
    Ok(Descriptor {
        media_type: l["mediaType"].as_str().unwrap_or_default().to_owned(),
        digest: l["digest"]
            .as_str()
            .context("a layer without digest")?
            .to_owned(),
        size: l["size"].as_u64().context("a layer without size")?,
        annotations: Default::default(),
    })
}

/// Whether some simple-signing layer of manifest `m` signs this digest with the key.
fn check_signature_layers(cx: &Ctx, m: &Value) -> Result<()> {
    let mut why = Vec::new();
    let layers = m["layers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for l in layers
        .iter()
        .filter(|l| l["mediaType"] == sign::SIMPLESIGNING_MEDIA_TYPE)
    {
        let r = (|| -> Result<()> {
            let d = layer_desc(l)?;
            let payload = cx.remote.blob(&cx.r.repository, &d, MAX_SMALL)?;
            let b64 = l["annotations"][sign::SIGNATURE_ANNOTATION]
                .as_str()
                .context("no dev.cosignproject.cosign/signature annotation")?;
            let sig = sign::unb64(b64, "the signature annotation")?;
            sign::verify(cx.key, &payload, &sig)?;
            let p: Value = serde_json::from_slice(&payload).context("the payload is not JSON")?;
            let named = p["critical"]["image"]["docker-manifest-digest"].as_str();
            if named != Some(cx.digest) {
                bail!(
                    "the payload signs {}, not the manifest the registry serves ({}): the tag was moved to another manifest after signing",
                    named.unwrap_or("nothing"),
                    cx.digest
                );
            }
            if let Some(id) = cx.identity {
                let got = p["critical"]["identity"]["docker-reference"].as_str();
                if got != Some(id) {
                    bail!(
                        "the payload names identity {}, not {id}",
                        got.unwrap_or("none")
                    );
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => return Ok(()),
            Err(e) => why.push(format!("{e:#}")),
        }
    }
    if why.is_empty() {
        bail!("no simple-signing layer");
    }
    bail!("{}", why.join("; "))
}

fn cosign_tag(cx: &Ctx) -> Result<String> {
    let tag = format!("{}.sig", ocipack_push::fallback_tag(cx.digest));
    let (_, m) = fetch_manifest(cx, &tag)?.with_context(|| {
        format!("no cosign signature: the registry has no tag {tag} (sign with `ocipack push --sign KEY`)")
    })?;
    check_signature_layers(cx, &m)?;
    Ok(format!("cosign signature {}:{tag}", cx.r.name()))
}

fn referrer(cx: &Ctx, image: &Fetched, m: &ocipack_push::Referrer) -> Result<String> {
    let (_, v) = fetch_manifest(cx, &m.digest)?.with_context(|| {
        format!(
            "listed as a referrer but not in the registry ({})",
            m.digest
        )
    })?;
    let subject = v["subject"]["digest"].as_str();
    if subject != Some(cx.digest) {
        bail!(
            "its subject is {}, not {}",
            subject.unwrap_or("missing"),
            cx.digest
        );
    }
    let layer = || -> Result<Descriptor> { layer_desc(&v["layers"][0]) };
    match m.artifact_type.as_str() {
        artifact::SIG_ARTIFACT_TYPE => {
            check_signature_layers(cx, &v)?;
            Ok(format!("signature referrer {}", m.digest))
        }
        artifact::PROVENANCE_ARTIFACT_TYPE => {
            let env: Value =
                serde_json::from_slice(&cx.remote.blob(&cx.r.repository, &layer()?, MAX_SMALL)?)
                    .context("the provenance layer is not JSON")?;
            let (ptype, payload) = sign::dsse_verify(cx.key, &env)?;
            if ptype != sign::INTOTO_PAYLOAD_TYPE {
                bail!(
                    "DSSE payload type {ptype}, not {}",
                    sign::INTOTO_PAYLOAD_TYPE
                );
            }
            let st: Value =
                serde_json::from_slice(&payload).context("the statement is not JSON")?;
            let hex = cx.digest.trim_start_matches("sha256:");
            let subjects = st["subject"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if !subjects.iter().any(|s| s["digest"]["sha256"] == hex) {
                bail!("the provenance statement's subject is not {}", cx.digest);
            }
            Ok(format!("provenance {} (DSSE signature, subject)", m.digest))
        }
        artifact::SPDX_MEDIA_TYPE => {
            let doc: Value =
                serde_json::from_slice(&cx.remote.blob(&cx.r.repository, &layer()?, MAX_SBOM)?)
                    .context("the SPDX layer is not JSON")?;
            let n = check_spdx_files(cx, image, &doc)?;
            Ok(format!(
                "sbom (spdx) {}: {n} files match the image's layers",
                m.digest
            ))
        }
        artifact::CYCLONEDX_MEDIA_TYPE => {
            let doc: Value =
                serde_json::from_slice(&cx.remote.blob(&cx.r.repository, &layer()?, MAX_SBOM)?)
                    .context("the CycloneDX layer is not JSON")?;
            let v = doc["metadata"]["component"]["version"].as_str();
            if v != Some(cx.digest) {
                bail!(
                    "the CycloneDX document describes {}, not {}",
                    v.unwrap_or("nothing"),
                    cx.digest
                );
            }
            Ok(format!("sbom (cyclonedx) {}: names the image", m.digest))
        }
        other => Ok(format!(
            "referrer {} of artifactType {other:?}: subject only",
            m.digest
        )),
    }
}

/// Downloads the image into a temporary layout and compares every file the
/// SPDX document lists (sha256) with what the layers hold.
fn check_spdx_files(cx: &Ctx, image: &Fetched, doc: &Value) -> Result<usize> {
    let m = image.json(cx.remote.registry())?;
    if m.get("manifests").is_some() {
        bail!("{} is an image index; the file check needs an image manifest (verify each platform's digest)", cx.digest);
    }
    let tmp = TempDir::new()?;
    let dir = tmp.0.as_path();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let config = std::iter::once(&m["config"]);
    let layers = m["layers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for l in config.chain(layers) {
        let d = layer_desc(l)?;
        let hex = ocipack::digest::hex_of(&d.digest).context("a non-sha256 blob")?;
        let path = blobs.join(hex);
        let mut f = std::fs::File::create(&path)?;
        cx.remote
            .blob_to(&cx.r.repository, &d, &mut f)
            .map_err(|e| registry_error(e, &format!("cannot download {}", d.digest)))?;
    }
    std::fs::write(
        blobs.join(image.digest.trim_start_matches("sha256:")),
        &image.bytes,
    )?;
    let index = json!({"schemaVersion": 2, "mediaType": ocipack::layout::INDEX_MEDIA_TYPE,
        "manifests": [{"mediaType": image.media_type, "digest": image.digest,
                       "size": image.bytes.len(), "annotations": {ocipack::layout::REF_NAME: "verify"}}]});
    std::fs::write(dir.join("index.json"), ocipack::json::canonical(&index))?;
    let layout = ocipack::layout::Layout::open(dir)?;
    let files = ocipack_attest::inputs::read_image(&layout, Some("verify"))
        .context("reading the image's layers back")?
        .files;
    let mut listed = 0;
    for f in doc["files"].as_array().into_iter().flatten() {
        let name = f["fileName"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('.');
        let sha = f["checksums"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["algorithm"] == "SHA256")
            .and_then(|c| c["checksumValue"].as_str());
        let real = files.get(name).map(|x| x.sha256.as_str());
        if sha.is_none() || sha != real {
            bail!(
                "{name}: the SBOM says sha256 {}, the image's layers hold {}",
                sha.unwrap_or("none"),
                real.unwrap_or("no such file")
            );
        }
        listed += 1;
    }
    if listed != files.len() {
        bail!(
            "the SBOM lists {listed} files, the image holds {}",
            files.len()
        );
    }
    Ok(listed)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let p = base.join(format!("ocipack-verify-{}-{n}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(TempDir(p));
            }
        }
        bail!("cannot create a temporary directory in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.0));
    }
}
