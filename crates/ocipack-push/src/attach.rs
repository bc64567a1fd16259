//! Attaching an image's attestations (SBOMs, signatures, provenance) from
//! the attestation layout `OUT.attest/oci` that `ocipack host`, `sign` and
//! `attest` write (shape: `crates/ocipack-attest/src/artifact.rs`).
//!
//! Each entry of that layout is tagged `sha256-<hex>.<kind>`, `<hex>` being
//! the image manifest's. The OCI 1.1 artifacts (`.spdx`, `.cdx`,
//! `.sig.referrer`, `.att`: manifests with a `subject`) are pushed by digest
//! and made findable through the referrers API or, where the registry has
//! none, the fallback tag `sha256-<hex>` (an image index of their
//! descriptors, read, extended and written back whole). The cosign
//! signature manifest (`.sig`, no subject) is pushed under its tag.
//!
//! Everything is read and checked before the first request ([`plan`]): a
//! layout made for another image (rebuilt since), or an artifact whose
//! `subject` is not the image, is refused with nothing sent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use ocipack::digest::hex_of;
use ocipack::layout::{Descriptor, ImageGraph, Layout, INDEX_MEDIA_TYPE};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::images;
use crate::remote::{fallback_tag, Reader, Via};
use crate::report::ImageReport;
use crate::session::Session;
use crate::upload::{put_manifest, put_small_blob};

/// The annotation holding a cosign signature (base64) on its payload layer.
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// One OCI 1.1 artifact whose subject is an image.
#[derive(Debug, Clone)]
pub(crate) struct Artifact {
    /// Its manifest (media type from the manifest itself).
    pub descriptor: Descriptor,
    /// Its `artifactType` (else its config's media type, as the spec says).
    pub artifact_type: String,
    /// The manifest's annotations (copied into the referrers index entry).
    pub annotations: BTreeMap<String, String>,
    /// Its name in the attestation layout.
    pub tag: String,
}

/// What is attached to one image.
#[derive(Debug, Clone, Default)]
pub(crate) struct ForImage {
    /// Artifacts pushed by digest and listed as referrers, in tag order.
    pub referrers: Vec<Artifact>,
    /// The cosign signature manifest, pushed as the tag `sha256-<hex>.sig`.
    pub signature: Option<Descriptor>,
}

/// A read and checked attestation layout.
pub(crate) struct Attachments {
    pub layout: Layout,
    pub graph: ImageGraph,
    /// By image manifest digest.
    pub by_image: HashMap<String, ForImage>,
}

impl Attachments {
    /// Every config and layer blob of `image`'s artifacts, each once, smallest first.
    pub fn blobs(&self, image: &str) -> Vec<Descriptor> {
        let Some(f) = self.by_image.get(image) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut out: Vec<Descriptor> = f
            .referrers
            .iter()
            .map(|a| &a.descriptor)
            .chain(&f.signature)
            .flat_map(|d| self.graph.blobs(&d.digest))
            .filter(|b| seen.insert(b.digest.clone()))
            .collect();
        out.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.digest.cmp(&b.digest)));
        out
    }

    /// The exact bytes of a manifest of the layout.
    pub fn bytes(&self, digest: &str) -> &[u8] {
        &self
            .graph
            .get(digest)
            .expect("planned manifests are in the graph")
            .bytes
    }
}

/// One artifact attached, as the push report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferrerReport {
    /// The artifact manifest's digest.
    pub digest: String,
    /// Its artifactType.
    pub artifact_type: String,
    /// Its size.
    pub size: u64,
    /// Its name in the attestation layout (`sha256-<hex>.spdx`, ...).
    pub name: String,
}

/// What was attached to one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachReport {
    /// How the referrers are found: the registry's API or the fallback tag.
    pub via: Via,
    /// The artifacts pushed by digest with the image as subject.
    pub referrers: Vec<ReferrerReport>,
    /// `host/repo:sha256-<hex>.sig`, when a cosign signature was pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// `host/repo:sha256-<hex>` when the fallback tag was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_tag: Option<String>,
}

fn bad(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Attest {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

/// `sha256-<hex>.<kind>` -> (`sha256:<hex>`, `kind`).
fn split_tag(tag: &str) -> Option<(String, &str)> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, kind) = rest.split_once('.')?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| (format!("sha256:{hex}"), kind))
}

/// Reads the attestation layout at `dir` and checks it against the images
/// about to be pushed (`images`: their manifest digests), before any request.
///
/// # Errors
/// [`Error::Attest`]: an entry for an image not being pushed (the layout was
/// rebuilt after the attestations were made), an entry not named
/// `sha256-<hex>.<kind>`, an artifact without `subject` or whose subject is
/// not its image; layout errors as for images.
pub(crate) fn plan(dir: &Path, images: &[String]) -> Result<Attachments> {
    let layout = images::open(dir)?;
    let index = layout
        .index_descriptors()
        .map_err(|e| images::from_layout(dir, e))?;
    let graph = layout
        .graph(&index)
        .map_err(|e| images::from_layout(dir, e))?;
    let mut by_image: HashMap<String, ForImage> = HashMap::new();
    for d in &index {
        let tag = d.tag().ok_or_else(|| {
            bad(dir, format!("index.json lists {} without a name (org.opencontainers.image.ref.name); rewrite it with ocipack sign / attest / host", d.digest))
        })?;
        let (image, kind) = split_tag(tag).ok_or_else(|| {
            bad(
                dir,
                format!("entry {tag:?} is not named sha256-<hex>.<kind>"),
            )
        })?;
        if !images.contains(&image) {
            return Err(bad(
                dir,
                format!(
                    "holds {tag} for image {image}, but the layout being pushed has {}: the image \
                     was rebuilt after it was signed or attested; run `ocipack host` (SBOMs), \
                     `ocipack sign` and `ocipack attest` again, or push with --no-attest",
                    images.join(", ")
                ),
            ));
        }
        let bytes = &graph
            .get(&d.digest)
            .expect("the graph holds every root")
            .bytes;
        let m: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(dir, format!("{tag}: manifest is not JSON: {e}")))?;
        let entry = by_image.entry(image.clone()).or_default();
        if kind == "sig" {
            if entry.signature.is_some() {
                return Err(bad(dir, format!("two entries are named {tag}")));
            }
            entry.signature = Some(manifest_descriptor(d, &m));
            continue;
        }
        let subject = m["subject"]["digest"].as_str();
        if subject != Some(image.as_str()) {
            return Err(bad(
                dir,
                format!(
                    "{tag}: the artifact's subject is {}, not the image {image} it is named for; \
                     the registry would list it under a manifest that {}; remake it (ocipack \
                     sign / attest / host) rather than push it",
                    subject.unwrap_or("missing"),
                    if subject.is_some() {
                        "is not this image"
                    } else {
                        "does not exist"
                    }
                ),
            ));
        }
        let artifact_type = m["artifactType"]
            .as_str()
            .or(m["config"]["mediaType"].as_str())
            .unwrap_or_default()
            .to_owned();
        entry.referrers.push(Artifact {
            descriptor: manifest_descriptor(d, &m),
            artifact_type,
            annotations: serde_json::from_value(m["annotations"].clone()).unwrap_or_default(),
            tag: tag.to_owned(),
        });
    }
    for f in by_image.values_mut() {
        f.referrers.sort_by(|a, b| a.tag.cmp(&b.tag));
    }
    Ok(Attachments {
        layout,
        graph,
        by_image,
    })
}

fn manifest_descriptor(d: &Descriptor, m: &Value) -> Descriptor {
    Descriptor {
        media_type: m["mediaType"].as_str().unwrap_or(&d.media_type).to_owned(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: BTreeMap::new(),
    }
}

/// The referrers index entry of an artifact (the spec: mediaType, digest,
/// size, artifactType, and the manifest's annotations).
pub(crate) fn index_entry(a: &Artifact) -> Value {
    let mut v = json!({
        "mediaType": a.descriptor.media_type,
        "digest": a.descriptor.digest,
        "size": a.descriptor.size,
        "artifactType": a.artifact_type,
    });
    if !a.annotations.is_empty() {
        v["annotations"] = json!(a.annotations);
    }
    v
}

/// The fallback tag's new content: the existing index (`None`: no tag yet)
/// with `ours` appended where their digest is not listed yet. Entries other
/// tools put there, and the document's other fields, stay as they were.
/// `Ok(None)` when every entry is already listed (nothing to write).
///
/// # Errors
/// The existing document is not an image index (described in the message).
pub(crate) fn merged_index(
    existing: Option<&[u8]>,
    ours: &[Value],
) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut doc = match existing {
        None => json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}),
        Some(bytes) => {
            crate::remote::parse_referrers_index(bytes)?;
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?
        }
    };
    if doc.get("mediaType").is_none() {
        doc["mediaType"] = json!(INDEX_MEDIA_TYPE);
    }
    let list = doc["manifests"]
        .as_array_mut()
        .ok_or("an image index without a manifests list")?;
    let mut changed = existing.is_none();
    for v in ours {
        let d = &v["digest"];
        // An entry for one of our digests is ours to state: one with another
        // size, media type or artifactType (stale, or planted to hide the
        // artifact from a reader filtering by type) is replaced in place.
        match list.iter_mut().find(|m| &m["digest"] == d) {
            Some(m) if m == v => {}
            Some(m) => {
                *m = v.clone();
                changed = true;
            }
            None => {
                list.push(v.clone());
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(ocipack::json::canonical(&doc)))
}

/// The signature tag's new content.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Merged {
    /// Our signature manifest as it is (no other signatures there).
    Ours,
    /// Every signature of ours is already listed: nothing to write.
    Listed,
    /// The signatures there, then ours: a new manifest and its config.
    New { manifest: Vec<u8>, config: Vec<u8> },
}

/// Merges the cosign signature manifest already under the `.sig` tag with
/// ours, as cosign does when it signs an image signed before: the layers
/// there stay, in their order, and ours not listed yet (same payload digest
/// and same signature) follow; the config names every layer.
///
/// # Errors
/// The tag holds something else than a manifest with layers.
pub(crate) fn merged_signatures(
    existing: &[u8],
    ours: &[u8],
) -> std::result::Result<Merged, String> {
    let there: Value = serde_json::from_slice(existing).map_err(|e| format!("not JSON: {e}"))?;
    let mine: Value = serde_json::from_slice(ours).map_err(|e| format!("not JSON: {e}"))?;
    let layers = |v: &Value| -> Option<Vec<Value>> { v["layers"].as_array().cloned() };
    let (Some(mut all), Some(new)) = (layers(&there), layers(&mine)) else {
        return Err("not an image manifest with layers (a cosign signature manifest)".into());
    };
    let key = |l: &Value| {
        (
            l["digest"].as_str().unwrap_or_default().to_owned(),
            l["annotations"][SIGNATURE_ANNOTATION].clone(),
        )
    };
    if all
        .iter()
        .any(|l| hex_of(l["digest"].as_str().unwrap_or_default()).is_none())
    {
        return Err("a layer without a sha256 digest".into());
    }
    let before = all.len();
    let mut seen: HashSet<_> = all.iter().map(key).collect();
    for l in new {
        if seen.insert(key(&l)) {
            all.push(l);
        }
    }
    if all.len() == before {
        return Ok(Merged::Listed);
    }
    if before == 0 {
        // No signature there: the tag takes ours as the layout has it.
        return Ok(Merged::Ours);
    }
    let config = ocipack::json::canonical(&json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers",
                   "diff_ids": all.iter().map(|l| l["digest"].clone()).collect::<Vec<_>>()},
    }));
    let manifest = ocipack::json::canonical(&json!({
        "schemaVersion": 2,
        "mediaType": ocipack::layout::MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": ocipack::layout::CONFIG_MEDIA_TYPE,
                   "digest": ocipack::digest::sha256(&config), "size": config.len()},
        "layers": all,
    }));
    Ok(Merged::New { manifest, config })
}

/// Turns a registry's refusal of `what` into [`Error::ReferrerRefused`]
/// (a 403 here is a refusal of the artifact: the same credentials have just
/// pushed the image).
fn refused<'a>(
    registry: &'a str,
    repo: &'a str,
    image: &'a str,
    what: String,
) -> impl FnOnce(Error) -> Error + 'a {
    move |e| match e {
        Error::Status { status, detail, .. } | Error::Denied { status, detail, .. } => {
            Error::ReferrerRefused {
                registry: registry.to_owned(),
                repository: repo.to_owned(),
                image: image.to_owned(),
                what,
                status,
                detail,
            }
        }
        // Anonymous pushes see a refusal as "authentication required"; the
        // same anonymous session has just pushed the image, so it is not.
        Error::AuthRequired { detail, .. } => {
            let (status, detail) = detail.split_once(' ').unwrap_or((&detail, ""));
            Error::ReferrerRefused {
                registry: registry.to_owned(),
                repository: repo.to_owned(),
                image: image.to_owned(),
                what,
                status: status.parse().unwrap_or(0),
                detail: detail.to_owned(),
            }
        }
        other => other,
    }
}

impl Session<'_> {
    /// Pushes what `a` holds for `image` (already pushed by digest, not yet
    /// tagged) into `repo`: the artifacts' blobs, the artifact manifests and
    /// the signature manifest by digest, then the referrers fallback tag
    /// (unless the registry indexes referrers itself), then the `.sig` tag.
    pub(crate) fn attach(
        &mut self,
        a: &Attachments,
        image: &Descriptor,
        repo: &str,
        report: &mut ImageReport,
    ) -> Result<AttachReport> {
        let f = &a.by_image[&image.digest];
        let registry = self.client.registry.clone();
        let p = self.progress;
        self.place_and_record(repo, &a.blobs(&image.digest), &a.layout, report)?;
        // The distribution spec (1.1, "Pushing Manifests with Subject"): a
        // registry with the referrers API answers each such PUT with
        // `OCI-Subject: <subject>`; without it the client must write the
        // fallback tag. Only that header counts: a registry answering
        // `GET /referrers/` need not have indexed what was just pushed.
        let mut indexed_by_registry = !f.referrers.is_empty();
        let mut referrers = Vec::new();
        for art in &f.referrers {
            let d = &art.descriptor;
            let subject = put_manifest(
                &self.client,
                repo,
                &d.digest,
                &d.media_type,
                a.bytes(&d.digest),
                &d.digest,
                p,
            )
            .map_err(refused(
                &registry,
                repo,
                &image.digest,
                format!(
                    "the artifact {} ({}, {})",
                    d.digest, art.artifact_type, art.tag
                ),
            ))?;
            indexed_by_registry &= subject.as_deref() == Some(image.digest.as_str());
            referrers.push(ReferrerReport {
                digest: d.digest.clone(),
                artifact_type: art.artifact_type.clone(),
                size: d.size,
                name: art.tag.clone(),
            });
        }
        if let Some(sig) = &f.signature {
            put_manifest(
                &self.client,
                repo,
                &sig.digest,
                &sig.media_type,
                a.bytes(&sig.digest),
                &sig.digest,
                p,
            )
            .map_err(refused(
                &registry,
                repo,
                &image.digest,
                format!("the cosign signature manifest {}", sig.digest),
            ))?;
        }
        let reader = Reader {
            client: &self.client,
        };
        let mut fallback = None;
        let via = if indexed_by_registry {
            Via::Api
        } else {
            if !f.referrers.is_empty() {
                let tag = fallback_tag(&image.digest);
                let existing = reader.manifest(repo, &tag)?;
                let ours: Vec<Value> = f.referrers.iter().map(index_entry).collect();
                let merged = merged_index(existing.as_ref().map(|e| e.bytes.as_slice()), &ours)
                    .map_err(|reason| Error::Protocol {
                        registry: registry.clone(),
                        reason: format!(
                            "the referrers fallback tag {repo}:{tag} holds {}: {reason}; it is \
                             not ocipack's to replace (delete or move that tag if it was pushed \
                             there by mistake); the image was pushed by digest, its tags not moved",
                            existing.as_ref().map_or("", |e| e.media_type.as_str())
                        ),
                    })?;
                if let Some(bytes) = merged {
                    let digest = ocipack::digest::sha256(&bytes);
                    put_manifest(
                        &self.client,
                        repo,
                        &tag,
                        INDEX_MEDIA_TYPE,
                        &bytes,
                        &digest,
                        p,
                    )
                    .map_err(refused(
                        &registry,
                        repo,
                        &image.digest,
                        format!("the referrers fallback tag {tag}"),
                    ))?;
                }
                fallback = Some(format!("{registry}/{repo}:{tag}"));
            }
            Via::Tag
        };
        let mut signature = None;
        if let Some(sig) = &f.signature {
            let tag = format!("{}.sig", fallback_tag(&image.digest));
            // cosign appends to the signatures already under the tag (other
            // signers, earlier keys): they are kept, ours added.
            let existing = reader.manifest(repo, &tag)?;
            let ours = a.bytes(&sig.digest);
            let merged = match &existing {
                None => Merged::Ours,
                Some(e) => merged_signatures(&e.bytes, ours).map_err(|reason| Error::Protocol {
                    registry: registry.clone(),
                    reason: format!(
                        "the signature tag {repo}:{tag} holds {}: {reason}; it is not ocipack's \
                         to replace (delete or move that tag if it was pushed there by \
                         mistake); the image was pushed by digest, its tags not moved",
                        e.media_type
                    ),
                })?,
            };
            let put = |bytes: &[u8], media_type: &str, digest: &str| {
                put_manifest(&self.client, repo, &tag, media_type, bytes, digest, p).map_err(
                    refused(
                        &registry,
                        repo,
                        &image.digest,
                        format!("the signature tag {tag}"),
                    ),
                )
            };
            match merged {
                Merged::Ours => {
                    put(ours, &sig.media_type, &sig.digest)?;
                }
                Merged::Listed => {}
                Merged::New { manifest, config } => {
                    let cd = ocipack::digest::sha256(&config);
                    put_small_blob(&self.client, repo, &cd, &config, p).map_err(refused(
                        &registry,
                        repo,
                        &image.digest,
                        format!("the config of the merged signature manifest {tag}"),
                    ))?;
                    put(
                        &manifest,
                        ocipack::layout::MANIFEST_MEDIA_TYPE,
                        &ocipack::digest::sha256(&manifest),
                    )?;
                }
            }
            signature = Some(format!("{registry}/{repo}:{tag}"));
        }
        Ok(AttachReport {
            via,
            referrers,
            signature,
            fallback_tag: fallback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(d: &str) -> Value {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
               "size": 3, "artifactType": "application/spdx+json"})
    }

    #[test]
    fn a_new_fallback_index_lists_ours() {
        let out = merged_index(
            None,
            &[
                entry("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                entry("sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            ],
        )
        .unwrap()
        .unwrap();
        let l = crate::remote::parse_referrers_index(&out).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].artifact_type, "application/spdx+json");
    }

    #[test]
    fn entries_other_tools_put_there_are_kept_and_ours_not_doubled() {
        let theirs = json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE,
            "annotations": {"by": "oras"},
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
              "digest": "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "size": 1, "artifactType": "application/vnd.example",
              "annotations": {"keep": "me"}}, entry("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]});
        let bytes = serde_json::to_vec(&theirs).unwrap();
        let out = merged_index(
            Some(&bytes),
            &[
                entry("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                entry("sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            ],
        )
        .unwrap()
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let digests: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            [
                "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
                "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            ]
        );
        assert_eq!(v["manifests"][0]["annotations"]["keep"], "me");
        assert_eq!(v["annotations"]["by"], "oras");
        // Review of issue 15: an entry with one of our digests but another
        // artifactType was kept as it was (ours not added), hiding our
        // artifact from readers filtering by type. Ours replaces it.
        let ours_a = entry(&format!("sha256:{}", "a".repeat(64)));
        let mut planted = ours_a.clone();
        planted["artifactType"] = json!("application/vnd.other");
        let doc =
            json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [planted]});
        let fixed = merged_index(Some(&serde_json::to_vec(&doc).unwrap()), &[ours_a])
            .unwrap()
            .unwrap();
        let l = crate::remote::parse_referrers_index(&fixed).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].artifact_type, "application/spdx+json");
        // Everything listed already: nothing to write.
        assert_eq!(
            merged_index(
                Some(&out),
                &[entry(
                    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
                )]
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn a_fallback_tag_holding_an_image_is_not_overwritten() {
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        assert!(merged_index(
            Some(image),
            &[entry(
                "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            )]
        )
        .is_err());
    }

    fn sig_manifest(layers: &[(char, &str)]) -> Vec<u8> {
        let layers: Vec<Value> = layers
            .iter()
            .map(|(c, sig)| {
                json!({"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                       "digest": format!("sha256:{}", c.to_string().repeat(64)), "size": 9,
                       "annotations": {SIGNATURE_ANNOTATION: sig}})
            })
            .collect();
        serde_json::to_vec(&json!({"schemaVersion": 2, "config": {}, "layers": layers})).unwrap()
    }

    // Review of issue 15: the .sig tag was overwritten with ours, so a push
    // --sign of an image another key (another signer, cosign in CI, the
    // previous release key) had signed dropped that signature. cosign
    // appends; so does ocipack now.
    #[test]
    fn signatures_already_under_the_sig_tag_are_kept() {
        let theirs = sig_manifest(&[('a', "c2lnLWE=")]);
        let ours = sig_manifest(&[('b', "c2lnLWI=")]);
        let Merged::New { manifest, config } = merged_signatures(&theirs, &ours).unwrap() else {
            panic!("a new manifest")
        };
        let m: Value = serde_json::from_slice(&manifest).unwrap();
        let sigs: Vec<&str> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap())
            .collect();
        assert_eq!(sigs, ["c2lnLWE=", "c2lnLWI="]);
        assert_eq!(m["config"]["digest"], ocipack::digest::sha256(&config));
        let c: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        // Ours already there: nothing to write; nothing there: ours as is.
        assert_eq!(merged_signatures(&manifest, &ours).unwrap(), Merged::Listed);
        let empty = sig_manifest(&[]);
        assert_eq!(merged_signatures(&empty, &ours).unwrap(), Merged::Ours);
        // The same payload signed again (ECDSA signatures differ) is another signature.
        let again = sig_manifest(&[('b', "b3RoZXI=")]);
        assert!(matches!(
            merged_signatures(&ours, &again).unwrap(),
            Merged::New { .. }
        ));
        // Something else under the tag is not replaced.
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(merged_signatures(index, &ours).is_err());
    }

    #[test]
    fn tags_name_their_image() {
        let hex = "0".repeat(64);
        let tag = format!("sha256-{hex}.sig.referrer");
        let (d, k) = split_tag(&tag).unwrap();
        assert_eq!(
            (d.as_str(), k),
            (format!("sha256:{hex}").as_str(), "sig.referrer")
        );
        assert!(split_tag("latest").is_none());
        assert!(split_tag("sha256-00.sig").is_none());
    }
}
