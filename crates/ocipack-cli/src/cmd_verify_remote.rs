//! `ocipack verify --remote REF --key PUB`: checks, in the registry, what
//! `ocipack push` attached to an image (docs/supply-chain.md, "Pushing,
//! referrers and `verify --remote`"):
//!
//! 1. the cosign signature (tag `sha256-<hex>.sig`): some layer's
//!    simple-signing payload is a cosign container image signature naming
//!    the manifest digest the registry served for REF
//!    (`docker-manifest-digest`), and its signature verifies with the key
//!    (and names `--identity`, when given); other keys' layers are passed
//!    over;
//! 2. every referrer (API or fallback tag) exists, has this manifest as
//!    `subject` and the artifactType its list entry names; a signature
//!    referrer verifies as in 1 (one wholly of another key is listed, not
//!    failed);
//! 3. the provenance referrer: the DSSE envelope verifies with the key, its
//!    payload type is in-toto, and the statement's subject is this digest;
//! 4. the SPDX referrer: every file it lists has the sha256 the image's
//!    layers hold, and no file of the image is missing (the layers are
//!    downloaded into a temporary layout, digest-checked, and read back with
//!    the SBOM's own reader); the CycloneDX referrer, when present, names
//!    this digest.
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

use crate::cmd_referrers::{connect, printable, registry_error, resolve};

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
/// Most simple-signing layers tried in one signature manifest, and most
/// referrers checked: each costs downloads, and a hostile registry could
/// list thousands (cosign caps its attachments for the same reason).
const MAX_SIGNATURES: usize = 64;
const MAX_REFERRERS: usize = 256;

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
    // A check that failed is a problem (exit 3); credentials refused on the
    // way (registry_error's exit 4) ends the command with that code.
    let note = |res: Result<String>,
                what: &str,
                checked: &mut Vec<String>,
                problems: &mut Vec<String>|
     -> Result<()> {
        match res {
            Ok(s) => checked.push(s),
            Err(e) if e.is::<crate::exit::Exit>() => return Err(e),
            Err(e) => problems.push(format!("{what}: {e:#}")),
        }
        Ok(())
    };
    note(cosign_tag(&cx), "signature", &mut checked, &mut problems)?;
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
    if refs.manifests.len() > MAX_REFERRERS {
        problems.push(format!(
            "referrers: the registry lists {} referrers of {}, more than the {MAX_REFERRERS} \
             checked here; none was checked (remove stray artifacts)",
            refs.manifests.len(),
            image.digest
        ));
    } else {
        for m in &refs.manifests {
            let what = format!("referrer {} ({})", m.digest, m.artifact_type);
            note(referrer(&cx, &image, m), &what, &mut checked, &mut problems)?;
        }
    }
    if json {
        crate::exit::print_json(
            &json!({"reference": format!("{}@{}", r.name(), image.digest),
            "via": refs.via, "verified": checked, "problems": problems}),
        )?;
    } else {
        // Messages quote what the registry served (artifact types, payload
        // fields): escaped, so it cannot forge lines or drive the terminal.
        for c in &checked {
            eprintln!("ok   {}", printable(c));
        }
        for p in &problems {
            eprintln!("FAIL {}", printable(p));
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
    let layers: Vec<&Value> = m["layers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|l| l["mediaType"] == sign::SIMPLESIGNING_MEDIA_TYPE)
        .collect();
    if layers.len() > MAX_SIGNATURES {
        bail!(
            "the signature manifest has {} simple-signing layers, more than the \
             {MAX_SIGNATURES} tried here; none was downloaded",
            layers.len()
        );
    }
    // Whether every layer was read whole and only its signature did not
    // verify with this key (another signer's).
    let mut others_only = !layers.is_empty();
    for l in layers {
        let mut at_verify = false;
        let r = (|| -> Result<()> {
            let d = layer_desc(l)?;
            let payload = cx.remote.blob(&cx.r.repository, &d, MAX_SMALL)?;
            let b64 = l["annotations"][sign::SIGNATURE_ANNOTATION]
                .as_str()
                .context("no dev.cosignproject.cosign/signature annotation")?;
            let sig = sign::unb64(b64, "the signature annotation")?;
            at_verify = true;
            sign::verify(cx.key, &payload, &sig)?;
            at_verify = false;
            check_payload(&payload, cx.digest, cx.identity)
        })();
        match r {
            Ok(()) => return Ok(()),
            Err(e) => {
                others_only &= at_verify;
                why.push(format!("{e:#}"));
            }
        }
    }
    if why.is_empty() {
        bail!("no simple-signing layer");
    }
    let e = anyhow::anyhow!("{}", why.join("; "));
    if others_only {
        return Err(e.context(OtherSigner));
    }
    Err(e)
}

/// Context of a signature check whose every signature was read and is of
/// another key: another signer's, not a fault (cosign, too, accepts an
/// image when one of its signatures verifies).
#[derive(Debug)]
struct OtherSigner;

impl std::fmt::Display for OtherSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not signed with this key")
    }
}

/// What a verified simple-signing payload must say: it is a cosign container
/// image signature (not some other document signed with the same key), of
/// `digest`, and with `identity` when one is asked for.
fn check_payload(payload: &[u8], digest: &str, identity: Option<&str>) -> Result<()> {
    let p: Value = serde_json::from_slice(payload).context("the payload is not JSON")?;
    let kind = p["critical"]["type"].as_str();
    if kind != Some(sign::COSIGN_TYPE) {
        bail!(
            "the signed payload is of type {}, not {:?}",
            kind.map_or("none".to_owned(), |k| format!("{k:?}")),
            sign::COSIGN_TYPE
        );
    }
    let named = p["critical"]["image"]["docker-manifest-digest"].as_str();
    if named != Some(digest) {
        bail!(
            "the payload signs {}, not the manifest the registry serves ({digest}): the tag was \
             moved to another manifest after signing",
            named.unwrap_or("nothing"),
        );
    }
    if let Some(id) = identity {
        let got = p["critical"]["identity"]["docker-reference"].as_str();
        if got != Some(id) {
            bail!(
                "the payload names identity {}, not {id}",
                got.unwrap_or("none")
            );
        }
    }
    Ok(())
}

/// What a verified provenance statement must say: it is SLSA provenance
/// (not another in-toto statement signed with the same key, such as a
/// vulnerability scan) about `digest`.
fn check_statement(st: &Value, digest: &str) -> Result<()> {
    let pt = st["predicateType"].as_str();
    if pt != Some(ocipack_attest::provenance::PREDICATE_TYPE) {
        bail!(
            "the statement's predicateType is {}, not {}",
            pt.unwrap_or("missing"),
            ocipack_attest::provenance::PREDICATE_TYPE
        );
    }
    let hex = digest.trim_start_matches("sha256:");
    let subjects = st["subject"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !subjects.iter().any(|s| s["digest"]["sha256"] == hex) {
        bail!("the provenance statement's subject is not {digest}");
    }
    Ok(())
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
    let (f, v) = fetch_manifest(cx, &m.digest)?.with_context(|| {
        format!(
            "listed as a referrer but not in the registry ({})",
            m.digest
        )
    })?;
    // A descriptor names size and digest; the digest was checked on fetch.
    if f.bytes.len() as u64 != m.size {
        bail!(
            "the referrers list gives it {} bytes, the manifest has {}",
            m.size,
            f.bytes.len()
        );
    }
    let subject = v["subject"]["digest"].as_str();
    if subject != Some(cx.digest) {
        bail!(
            "its subject is {}, not {}",
            subject.unwrap_or("missing"),
            cx.digest
        );
    }
    // The check below is chosen by the index entry's artifactType, which
    // the registry (or whoever wrote the fallback tag) controls: it must be
    // the manifest's own.
    let own = artifact_type_of(&v);
    if own != m.artifact_type {
        bail!(
            "the referrers list names artifactType {:?}, the manifest itself {own:?}",
            m.artifact_type
        );
    }
    let layer = || -> Result<Descriptor> { layer_desc(&v["layers"][0]) };
    match m.artifact_type.as_str() {
        artifact::SIG_ARTIFACT_TYPE => match check_signature_layers(cx, &v) {
            Ok(()) => Ok(format!("signature referrer {}", m.digest)),
            // Another signer's signature proves nothing about this key and
            // takes nothing away: listed, not a failure.
            Err(e) if e.downcast_ref::<OtherSigner>().is_some() => Ok(format!(
                "signature referrer {} is another key's (not counted)",
                m.digest
            )),
            Err(e) => Err(e),
        },
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
            check_statement(&st, cx.digest)?;
            Ok(format!(
                "provenance {} (DSSE signature, SLSA predicate, subject)",
                m.digest
            ))
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
    spdx_matches(doc, &files)
}

/// The manifest's artifactType (else its config's media type, as the
/// distribution spec has registries fill the referrers entry).
fn artifact_type_of(m: &Value) -> &str {
    m["artifactType"]
        .as_str()
        .or(m["config"]["mediaType"].as_str())
        .unwrap_or_default()
}

/// Compares the files an SPDX document lists with the image's: each listed
/// file has the image's sha256, and every file of the image is listed (a
/// name listed twice counts once). Also `ocipack attest --verify`'s check.
pub(crate) fn spdx_matches(
    doc: &Value,
    files: &std::collections::BTreeMap<String, ocipack_attest::inputs::ImageFile>,
) -> Result<usize> {
    let mut listed = std::collections::BTreeSet::new();
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
        listed.insert(name);
    }
    if let Some(missing) = files.keys().find(|k| !listed.contains(k.as_str())) {
        bail!(
            "the SBOM lists {} files, the image holds {}; {missing} is not listed",
            listed.len(),
            files.len()
        );
    }
    Ok(listed.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn file(sha: &str) -> ocipack_attest::inputs::ImageFile {
        ocipack_attest::inputs::ImageFile {
            path: String::new(),
            sha1: String::new(),
            sha256: sha.to_owned(),
            size: 1,
            elf: false,
            package_json: None,
        }
    }

    fn spdx(entries: &[(&str, &str)]) -> Value {
        let files: Vec<Value> = entries
            .iter()
            .map(|(n, sha)| {
                json!({"fileName": format!(".{n}"),
                       "checksums": [{"algorithm": "SHA256", "checksumValue": sha}]})
            })
            .collect();
        json!({ "files": files })
    }

    // Review of issue 15: the completeness check counted entries, so an SBOM
    // listing one file twice and leaving another out passed.
    #[test]
    fn an_sbom_listing_a_file_twice_and_omitting_another_is_refused() {
        let files: BTreeMap<String, _> = [("/a", "aa"), ("/b", "bb")]
            .into_iter()
            .map(|(n, s)| (n.to_owned(), file(s)))
            .collect();
        assert_eq!(
            spdx_matches(&spdx(&[("/a", "aa"), ("/b", "bb")]), &files).unwrap(),
            2
        );
        let err = spdx_matches(&spdx(&[("/a", "aa"), ("/a", "aa")]), &files).unwrap_err();
        assert!(err.to_string().contains("/b is not listed"), "{err}");
        assert!(spdx_matches(&spdx(&[("/a", "aa"), ("/b", "xx")]), &files).is_err());
    }

    // Review of issue 15: a payload signed with the key but of another type
    // (any JSON naming the digest under critical.image) was accepted.
    #[test]
    fn only_a_cosign_container_image_signature_payload_is_accepted() {
        let d = format!("sha256:{}", "a".repeat(64));
        let good = sign::simple_signing_payload("h/r", &d);
        check_payload(&good, &d, None).unwrap();
        check_payload(&good, &d, Some("h/r")).unwrap();
        assert!(check_payload(&good, &d, Some("h/other")).is_err());
        assert!(check_payload(&good, "sha256:00", None).is_err());
        let mut other: Value = serde_json::from_slice(&good).unwrap();
        other["critical"]["type"] = json!("something else");
        let other = serde_json::to_vec(&other).unwrap();
        let err = check_payload(&other, &d, None).unwrap_err();
        assert!(err.to_string().contains("of type"), "{err}");
    }

    // Review of issue 15: any in-toto statement signed with the key about
    // the image (a scan result, a test report) passed as its provenance.
    #[test]
    fn only_slsa_provenance_about_the_image_is_provenance() {
        let d = format!("sha256:{}", "a".repeat(64));
        let st = |pt: &str, hex: &str| {
            json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": pt,
                   "subject": [{"name": "x", "digest": {"sha256": hex}}]})
        };
        let slsa = ocipack_attest::provenance::PREDICATE_TYPE;
        check_statement(&st(slsa, &"a".repeat(64)), &d).unwrap();
        assert!(check_statement(&st(slsa, &"b".repeat(64)), &d).is_err());
        let err = check_statement(
            &st(
                "https://cosign.sigstore.dev/attestation/vuln/v1",
                &"a".repeat(64),
            ),
            &d,
        )
        .unwrap_err();
        assert!(err.to_string().contains("predicateType"), "{err}");
    }

    #[test]
    fn the_artifact_type_is_the_manifests_own_or_its_configs() {
        assert_eq!(
            artifact_type_of(&json!({"artifactType": "a/b", "config": {"mediaType": "c/d"}})),
            "a/b"
        );
        assert_eq!(
            artifact_type_of(&json!({"config": {"mediaType": "c/d"}})),
            "c/d"
        );
    }

    // Review of issue 15 (cosign's CVE-2023-46737 is the same shape): a
    // signature manifest listing thousands of layers made verify download
    // each. Nothing listens on the registry here: the old code tried every
    // layer (with retries); the cap refuses before any request.
    #[test]
    fn a_signature_manifest_with_too_many_layers_is_refused_before_any_download() {
        let r = RemoteRef::parse("127.0.0.1:9/x:1").unwrap();
        let opts = ocipack_push::PushOptions {
            insecure: true,
            ..Default::default()
        };
        let remote = Remote::new(&r, opts).unwrap();
        let key = sign::generate();
        let d = format!("sha256:{}", "a".repeat(64));
        let cx = Ctx {
            r: &r,
            remote: &remote,
            key: key.verifying_key(),
            digest: &d,
            identity: None,
        };
        let layer = json!({"mediaType": sign::SIMPLESIGNING_MEDIA_TYPE,
                           "digest": d, "size": 10});
        let m = json!({"layers": vec![layer; MAX_SIGNATURES + 1]});
        let started = Instant::now();
        let err = check_signature_layers(&cx, &m).unwrap_err();
        assert!(err.to_string().contains("none was downloaded"), "{err}");
        assert!(started.elapsed().as_secs() < 2);
    }
}
