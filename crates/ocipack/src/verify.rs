//! `verify`: re-hash every blob, check every cross-reference, check the image policy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::digest::hex_of;
use crate::error::Result;
use crate::layout::{Layout, CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::scan::scan_layer;

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
    /// Blobs re-hashed.
    pub blobs: usize,
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
    let images = match layout.images() {
        Ok(i) => i,
        Err(e) => {
            r.problems.push(e.to_string());
            return Ok(r);
        }
    };
    if images.is_empty() {
        r.problems.push("index.json lists no image".into());
    }
    // Hash every blob once; the image checks below look sizes up here.
    let sizes = rehash_all(&layout, &mut r);
    let mut seen = BTreeSet::new();
    for image in &images {
        if image.tag.is_none() {
            r.problems.push(format!(
                "index entry {} has no org.opencontainers.image.ref.name",
                image.digest
            ));
        }
        if seen.insert(image.digest.clone()) {
            r.images += 1;
            if let Err(e) = verify_image(&layout, image, policy, &sizes, &mut r.problems) {
                r.problems.push(e.to_string());
            }
        }
    }
    Ok(r)
}

fn verify_image(
    layout: &Layout,
    image: &crate::layout::ImageRef,
    policy: Policy,
    sizes: &BTreeMap<String, u64>,
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
        let lat = |m: String| at(format!("layer {} ({digest}): {m}", i + 1));
        match sizes.get(&digest) {
            Some(&size) if size != l.size() => {
                problems.push(lat(format!(
                    "blob is {size} bytes, descriptor says {}",
                    l.size()
                )));
            }
            Some(_) => {}
            None => {
                problems.push(lat("blob is missing or does not hash to its name".into()));
                continue;
            }
        }
        let scan = match scan_layer(layout, &digest, l.media_type().as_ref()) {
            Ok(s) => s,
            Err(e) => {
                problems.push(lat(e.to_string()));
                continue;
            }
        };
        if diff_ids.get(i).map(String::as_str) != Some(scan.diff_id.as_str()) {
            problems.push(lat(format!(
                "uncompressed content hashes to {}, config diff_id is {:?}",
                scan.diff_id,
                diff_ids.get(i)
            )));
        }
        for e in &scan.entries {
            has_passwd |= e.path == "/etc/passwd";
            if e.path == "/tmp" {
                tmp_ok = e.mode & 0o1777 == 0o1777;
            }
            if policy.allow_root {
                continue;
            }
            let special = e.mode & 0o6000;
            if special != 0 && e.kind != tar::EntryType::Symlink {
                problems.push(lat(format!(
                    "{} is setuid/setgid (mode {:04o})",
                    e.path, e.mode
                )));
            }
            let in_tmp = e.path == "/tmp" || e.path.starts_with("/tmp/");
            if e.mode & 0o002 != 0 && e.kind != tar::EntryType::Symlink && !in_tmp {
                problems.push(lat(format!(
                    "{} is world-writable (mode {:04o}) outside /tmp",
                    e.path, e.mode
                )));
            }
            if !policy.allow_shell && SHELLS.contains(&e.path.as_str()) {
                problems.push(lat(format!(
                    "{} is a shell; images carry none (use --allow-shell for a debug image)",
                    e.path
                )));
            }
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

/// Every file under blobs/sha256 must hash to its name; returns the sizes of the good ones.
fn rehash_all(layout: &Layout, r: &mut VerifyReport) -> BTreeMap<String, u64> {
    let mut good = BTreeMap::new();
    let dir = layout.dir.join("blobs/sha256");
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            r.problems
                .push(format!("blobs/sha256 cannot be listed: {e}"));
            return good;
        }
    };
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
