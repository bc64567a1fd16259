//! `verify`: re-hash every blob, check every cross-reference, check the image policy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::digest::hex_of;
use crate::error::Result;
use crate::layout::Descriptor;
use crate::layout::{Layout, CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::scan::{link_escapes, normalize_name, NameProblem};

/// What the policy allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Accept root users, setuid/setgid and world-writable paths.
    pub allow_root: bool,
    /// Accept a shell in the image.
    pub allow_shell: bool,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Images (distinct manifests) checked.
    pub images: usize,
    /// Image indexes (multi-platform entries) checked.
    pub indexes: usize,
    /// Blobs re-hashed.
    pub blobs: usize,
    /// Distinct layers scanned (a layer shared by several images counts once).
    pub layers_scanned: usize,
    /// Everything found wrong; empty means the layout is good.
    pub problems: Vec<String>,
}

const SHELLS: [&str; 8] = [
    "/bin/sh",
    "/bin/bash",
    "/bin/dash",
    "/bin/ash",
    "/usr/bin/sh",
    "/usr/bin/bash",
    "/usr/bin/dash",
    "/bin/busybox",
];

/// Verifies the layout at `dir`. Problems are collected, not returned as errors,
/// so one run names all of them.
///
/// # Errors
/// Only when `dir` is not an OCI layout at all.
pub fn verify(dir: &Path, policy: Policy) -> Result<VerifyReport> {
    let layout = Layout::open(dir)?;
    let mut r = VerifyReport::default();
    let entries = match layout.index_descriptors() {
        Ok(i) => i,
        Err(e) => {
            r.problems.push(e.to_string());
            return Ok(r);
        }
    };
    if entries.is_empty() {
        r.problems.push("index.json lists no image".into());
    }
    // Hash every blob once; the image checks below look sizes up here.
    let sizes = rehash_all(&layout, &mut r);
    let mut seen = BTreeSet::new();
    let mut cache = LayerCache::new();
    for entry in &entries {
        if entry.tag().is_none() {
            r.problems.push(format!(
                "index entry {} has no org.opencontainers.image.ref.name",
                entry.digest
            ));
        }
        if !seen.insert(entry.digest.clone()) {
            continue;
        }
        if entry.is_index() {
            r.indexes += 1;
            verify_index(
                &layout, entry, policy, &sizes, &mut cache, &mut seen, &mut r,
            );
            continue;
        }
        let image = crate::layout::ImageRef {
            tag: entry.tag().map(str::to_owned),
            digest: entry.digest.clone(),
            size: entry.size,
        };
        r.images += 1;
        if let Err(e) = verify_image(&layout, &image, policy, &sizes, &mut cache, &mut r.problems) {
            r.problems.push(e.to_string());
        }
    }
    r.layers_scanned = cache.len();
    Ok(r)
}

/// Checks an image index entry: each child is an image manifest with a
/// `platform` that matches its config's `os`/`architecture`/`variant`, no
/// platform twice, and each child passes [`verify_image`].
fn verify_index(
    layout: &Layout,
    entry: &Descriptor,
    policy: Policy,
    sizes: &BTreeMap<String, u64>,
    cache: &mut LayerCache,
    seen: &mut BTreeSet<String>,
    r: &mut VerifyReport,
) {
    let at = |m: String| format!("index {}: {m}", entry.digest);
    let doc = match layout.read_index(entry) {
        Ok(d) => d,
        Err(e) => {
            r.problems.push(e.to_string());
            return;
        }
    };
    if doc.children.is_empty() {
        r.problems.push(at("lists no manifest".into()));
    }
    let mut platforms = BTreeMap::new();
    for c in &doc.children {
        let d = &c.descriptor;
        if d.media_type != MANIFEST_MEDIA_TYPE {
            r.problems.push(at(format!(
                "child {} has mediaType {:?}, expected {MANIFEST_MEDIA_TYPE}",
                d.digest, d.media_type
            )));
            continue;
        }
        let Some(p) = &c.platform else {
            r.problems
                .push(at(format!("child {} has no platform", d.digest)));
            continue;
        };
        if let Some(prev) = platforms.insert(p.to_string(), d.digest.clone()) {
            r.problems.push(at(format!(
                "platform {p} is listed twice ({prev} and {})",
                d.digest
            )));
        }
        let image = crate::layout::ImageRef {
            tag: entry.tag().map(str::to_owned),
            digest: d.digest.clone(),
            size: d.size,
        };
        // The config's platform, checked against the index's claim.
        match layout.manifest(&image).and_then(|(m, _)| layout.config(&m)) {
            Ok((_, cfg, _)) => match crate::layout::Platform::from_config(&cfg) {
                Some(cp) if cp.matches(p) => {}
                Some(cp) => r.problems.push(at(format!(
                    "child {} is listed as {p} but its config says {cp}",
                    d.digest
                ))),
                None => r.problems.push(at(format!(
                    "child {} is listed as {p} but its config has no os/architecture",
                    d.digest
                ))),
            },
            Err(e) => {
                r.problems.push(at(e.to_string()));
                continue;
            }
        }
        if seen.insert(d.digest.clone()) {
            r.images += 1;
            if let Err(e) = verify_image(layout, &image, policy, sizes, cache, &mut r.problems) {
                r.problems.push(e.to_string());
            }
        }
    }
}

fn verify_image(
    layout: &Layout,
    image: &crate::layout::ImageRef,
    policy: Policy,
    sizes: &BTreeMap<String, u64>,
    cache: &mut LayerCache,
    problems: &mut Vec<String>,
) -> Result<()> {
    let at = |m: String| format!("image {}: {m}", image.digest);
    let (manifest, raw) = layout.manifest(image)?;
    let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
    if raw.get("mediaType").and_then(|v| v.as_str()) != Some(MANIFEST_MEDIA_TYPE) {
        problems.push(at(format!(
            "manifest mediaType is {}, expected {MANIFEST_MEDIA_TYPE}",
            raw["mediaType"]
        )));
    }
    if manifest.schema_version() != 2 {
        problems.push(at(format!(
            "manifest schemaVersion is {}, expected 2",
            manifest.schema_version()
        )));
    }
    if manifest.config().media_type().to_string() != CONFIG_MEDIA_TYPE {
        problems.push(at(format!(
            "config mediaType is {}, expected {CONFIG_MEDIA_TYPE}",
            manifest.config().media_type()
        )));
    }
    let (config, raw_config, _) = layout.config(&manifest)?;
    let diff_ids = config.rootfs().diff_ids();
    if config.rootfs().typ() != "layers" {
        problems.push(at(format!(
            "rootfs.type is {:?}, expected \"layers\"",
            config.rootfs().typ()
        )));
    }
    if diff_ids.len() != manifest.layers().len() {
        problems.push(at(format!(
            "{} layers but {} diff_ids in the config",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    if manifest.layers().len() > crate::plan::MAX_LAYERS {
        problems.push(at(format!(
            "{} layers exceed the limit of {}",
            manifest.layers().len(),
            crate::plan::MAX_LAYERS
        )));
    }
    let mut has_passwd = false;
    let mut tmp_ok = false;
    for (i, l) in manifest.layers().iter().enumerate() {
        let digest = l.digest().to_string();
        let lat = |m: &str| at(format!("layer {} ({digest}): {m}", i + 1));
        match sizes.get(&digest) {
            Some(&size) if size != l.size() => {
                problems.push(lat(&format!(
                    "blob is {size} bytes, descriptor says {}",
                    l.size()
                )));
                continue;
            }
            Some(_) => {}
            None => {
                problems.push(lat("blob is missing or does not hash to its name"));
                continue;
            }
        }
        let desc = crate::layout::Descriptor {
            media_type: l.media_type().to_string(),
            digest: digest.clone(),
            size: l.size(),
            annotations: Default::default(),
        };
        // A layer shared by several images is scanned once.
        let check = cache
            .entry((digest.clone(), desc.media_type.clone()))
            .or_insert_with(|| check_layer(layout, &desc, policy).map_err(|e| e.to_string()));
        let check = match check {
            Ok(c) => c,
            Err(e) => {
                problems.push(lat(e));
                continue;
            }
        };
        if diff_ids.get(i).map(String::as_str) != Some(check.diff_id.as_str()) {
            problems.push(lat(&format!(
                "uncompressed content hashes to {}, config diff_id is {:?}",
                check.diff_id,
                diff_ids.get(i)
            )));
        }
        has_passwd |= check.has_passwd;
        if let Some(t) = check.tmp_ok {
            tmp_ok = t;
        }
        for p in &check.problems {
            problems.push(lat(p));
        }
    }
    if !policy.allow_root {
        if !has_passwd {
            problems.push(at(
                "no layer has /etc/passwd; the non-root user is undefined".into(),
            ));
        }
        if !tmp_ok {
            problems.push(at("/tmp is missing or not mode 1777".into()));
        }
        let user = raw_config
            .pointer("/config/User")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let uid = user.split(':').next().unwrap_or("");
        if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(at(format!("config User {user:?} is not a numeric uid[:gid]; runtimes cannot check it is not root")));
        } else if uid.parse::<u64>().ok() == Some(0) {
            problems.push(at(format!("config User {user:?} is root")));
        }
    }
    Ok(())
}

/// Layer checks by (digest, media type), so a shared layer is scanned once.
type LayerCache = BTreeMap<(String, String), std::result::Result<LayerCheck, String>>;

/// What one layer contributes to an image's verdict.
#[derive(Debug)]
struct LayerCheck {
    diff_id: String,
    has_passwd: bool,
    /// The mode check of the last `/tmp` entry, if the layer has one.
    tmp_ok: Option<bool>,
    problems: Vec<String>,
}

/// Scans one layer and applies the entry rules: names inside the root, links
/// not escaping it, and (unless allowed) no setuid/setgid, world-writable or shell.
fn check_layer(layout: &Layout, desc: &Descriptor, policy: Policy) -> Result<LayerCheck> {
    let mut c = LayerCheck {
        diff_id: String::new(),
        has_passwd: false,
        tmp_ok: None,
        problems: Vec::new(),
    };
    // Problems are capped per layer: a hostile layer of millions of bad
    // entries yields a bounded report.
    const MAX_PROBLEMS: usize = 100;
    let mut dropped = 0u64;
    let scan = crate::scan::scan_layer_with(layout, desc, |e| {
        let mut found: Vec<String> = Vec::new();
        match e.name_problem {
            Some(NameProblem::Absolute) => {
                found.push(format!("entry {:?} has an absolute name", e.raw_path))
            }
            Some(NameProblem::Escapes) => {
                found.push(format!("entry {:?} escapes the root", e.raw_path))
            }
            Some(NameProblem::DotDot) => found.push(format!(
                "entry {:?} has a \"..\" component (it is {})",
                e.raw_path, e.path
            )),
            None => {}
        }
        if let Some(target) = &e.link {
            if e.kind == tar::EntryType::Link {
                let (_, p) = normalize_name(target);
                if matches!(p, Some(NameProblem::Absolute | NameProblem::Escapes)) {
                    found.push(format!(
                        "{} is a hard link to {target:?}, outside the layer's root",
                        e.path
                    ));
                }
            } else if e.kind == tar::EntryType::Symlink && link_escapes(&e.path, target) {
                found.push(format!(
                    "{} is a symlink to {target:?}, which climbs above the root",
                    e.path
                ));
            }
        }
        c.has_passwd |= e.path == "/etc/passwd";
        if e.path == "/tmp" {
            c.tmp_ok = Some(e.mode & 0o1777 == 0o1777);
        }
        if !policy.allow_root {
            let special = e.mode & 0o6000;
            if special != 0 && e.kind != tar::EntryType::Symlink {
                found.push(format!("{} is setuid/setgid (mode {:04o})", e.path, e.mode));
            }
            let in_tmp = e.path == "/tmp" || e.path.starts_with("/tmp/");
            if e.mode & 0o002 != 0 && e.kind != tar::EntryType::Symlink && !in_tmp {
                found.push(format!(
                    "{} is world-writable (mode {:04o}) outside /tmp",
                    e.path, e.mode
                ));
            }
            if !policy.allow_shell && SHELLS.contains(&e.path.as_str()) {
                found.push(format!(
                    "{} is a shell; images carry none (use --allow-shell for a debug image)",
                    e.path
                ));
            }
        }
        for f in found {
            if c.problems.len() < MAX_PROBLEMS {
                c.problems.push(f);
            } else {
                dropped += 1;
            }
        }
    })?;
    if dropped > 0 {
        c.problems.push(format!(
            "{dropped} more problem(s) in this layer not listed"
        ));
    }
    c.diff_id = scan.diff_id;
    Ok(c)
}

/// Every file under blobs/sha256 must hash to its name; returns the sizes of the good ones.
fn rehash_all(layout: &Layout, r: &mut VerifyReport) -> BTreeMap<String, u64> {
    let mut good = BTreeMap::new();
    let dir = layout.dir.join("blobs/sha256");
    let max = layout.limits().max_blob_files;
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .take(max + 1)
            .collect(),
        Err(e) => {
            r.problems
                .push(format!("blobs/sha256 cannot be listed: {e}"));
            return good;
        }
    };
    if names.len() > max {
        r.problems.push(format!(
            "blobs/sha256 holds more than {max} files; not re-hashed (limit max_blob_files)"
        ));
        return good;
    }
    names.sort();
    for name in names {
        let digest = format!("sha256:{name}");
        if hex_of(&digest).is_none() {
            r.problems.push(format!(
                "blobs/sha256/{name} is not named by a sha256 digest"
            ));
            continue;
        }
        r.blobs += 1;
        match layout.hash_blob(&digest) {
            Ok((actual, size)) if actual == digest => {
                good.insert(digest, size);
            }
            Ok((actual, _)) => r.problems.push(format!("blob {digest} hashes to {actual}")),
            Err(e) => r.problems.push(e.to_string()),
        }
    }
    good
}
