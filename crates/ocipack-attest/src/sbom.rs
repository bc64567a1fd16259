//! The SBOM of one image from its exact inputs, and its two renderings
//! (SPDX 2.3 JSON, CycloneDX 1.6 JSON).
//!
//! Every regular file of the image (read back from its layers) is claimed by
//! exactly one component or listed on its own with its hashes:
//! 1. a model or runtime of models.toml, by sha256 (`pkg:pypi` of the wheel,
//!    the wheel member as purl subpath, licence from models.toml);
//! 2. the Debian package owning the file it was copied from (the plan's
//!    source path, looked up in the dpkg database);
//! 3. the npm package whose `package.json` (with name and version; in
//!    `node_modules/<name>` or the application's own) encloses it;
//! 4. a Nix store path (`/nix/store/HASH-NAME-VERSION`, Nix-built images):
//!    `pkg:nix/NAME@VERSION?store_path=...`;
//! 5. a binary of this workspace (by file name, ELF): the crate, and the
//!    crates linked into it (see [`crate::cargo`]) as its dependencies;
//! 6. otherwise: a file with no package (sha1, sha256), never dropped.
//!
//! The output depends only on these inputs and on `created`, which callers
//! take from `SOURCE_DATE_EPOCH` or the plan, never from the clock.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::cargo::Crate;
use crate::dpkg::pct;
use crate::dpkg::Dpkg;
use crate::inputs::{hex, Image, Models, SourceMap};

/// The tool name written into the documents.
pub const TOOL: &str = concat!("ocipack-", env!("CARGO_PKG_VERSION"));

/// What kind of component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A Debian package.
    Deb,
    /// A Rust crate.
    Cargo,
    /// A model or runtime from a PyPI wheel.
    Pypi,
    /// An npm package.
    Npm,
    /// A Nix store path (images built by the Nix library).
    Nix,
}

/// One package-like component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Package URL.
    pub purl: String,
    /// SPDX licence expression, when known.
    pub license: Option<String>,
    /// The supplier, as SPDX writes it (`Organization: X`).
    pub supplier: String,
    /// Checksums: algorithm (`SHA256`, `SHA512`) -> hex.
    pub checksums: BTreeMap<String, String>,
    /// Image paths of the files it owns.
    pub files: BTreeSet<String>,
    /// Purls of the components it depends on (crates linked into a binary).
    pub depends_on: BTreeSet<String>,
    /// Free text (where it came from).
    pub comment: String,
    /// The project's home page, when its metadata names one (Nix: nixpkgs
    /// `meta.homepage`).
    pub homepage: Option<String>,
}

/// The SBOM model, before rendering.
#[derive(Debug, Clone)]
pub struct Sbom {
    /// Image name.
    pub name: String,
    /// The image.
    pub image: Image,
    /// RFC 3339 creation time.
    pub created: String,
    /// Components by purl (purls are unique here).
    pub components: BTreeMap<String, Component>,
    /// Files no component claims.
    pub unclaimed: BTreeSet<String>,
}

/// Everything the SBOM is made from.
pub struct Inputs<'a> {
    /// Image name.
    pub name: &'a str,
    /// The image, read back from the layout.
    pub image: Image,
    /// RFC 3339 creation time.
    pub created: String,
    /// The plan's target -> source map.
    pub sources: &'a SourceMap,
    /// The dpkg database of the build machine.
    pub dpkg: &'a Dpkg,
    /// models.toml.
    pub models: &'a Models,
    /// Workspace binary name -> crates linked into it (the package first
    /// found with `registry == false` and the binary's package name).
    pub binaries: &'a BTreeMap<String, (String, Vec<Crate>)>,
    /// web/package-lock.json, parsed, when the image may hold npm packages.
    pub npm_lock: Option<&'a Value>,
}

/// Builds the SBOM model.
pub fn build(inp: Inputs<'_>) -> Sbom {
    let mut components: BTreeMap<String, Component> = BTreeMap::new();
    let mut unclaimed = BTreeSet::new();
    let by_sha: BTreeMap<&str, (&str, &String, &crate::inputs::Asset)> = inp
        .models
        .assets()
        .map(|(k, n, a)| (a.sha256.as_str(), (k, n, a)))
        .collect();
    // npm package roots: dir -> (name, version).
    let mut npm_roots: BTreeMap<String, (String, String, Option<String>)> = BTreeMap::new();
    for f in inp.image.files.values() {
        if let Some(bytes) = &f.package_json {
            let dir = f.path.trim_end_matches("/package.json");
            // node_modules/name, node_modules/@scope/name, or an application
            // outside node_modules (its package.json names it).
            if let Some((_, tail)) = dir.rsplit_once("/node_modules/") {
                let depth = tail.split('/').count();
                if !(depth == 1 || (depth == 2 && tail.starts_with('@'))) {
                    continue;
                }
            }
            let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            if let (Some(n), Some(ver)) = (v["name"].as_str(), v["version"].as_str()) {
                // package.json's `license`, when it is a plain SPDX id.
                let lic = v["license"]
                    .as_str()
                    .filter(|l| {
                        !l.is_empty()
                            && l.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-.+".contains(c))
                    })
                    .map(str::to_owned);
                npm_roots.insert(dir.to_owned(), (n.to_owned(), ver.to_owned(), lic));
            }
        }
    }
    for f in inp.image.files.values() {
        // 1. models and runtimes by content.
        if let Some((kind, name, a)) = by_sha.get(f.sha256.as_str()) {
            let purl = format!(
                "pkg:pypi/{}@{}#{}",
                a.source.pypi.to_lowercase().replace('_', "-"),
                a.source.version,
                a.source.member
            );
            let c = components.entry(purl.clone()).or_insert_with(|| Component {
                kind: Kind::Pypi,
                name: (*name).clone(),
                version: a.source.version.clone(),
                purl,
                license: Some(a.license.clone()),
                supplier: format!("Organization: PyPI project {}", a.source.pypi),
                checksums: [("SHA256".to_owned(), a.sha256.clone())].into(),
                files: BTreeSet::new(),
                depends_on: BTreeSet::new(),
                homepage: None,
                comment: format!(
                    "{kind} {name} of models.toml: {} from {} (sha256 {})",
                    a.source.member, a.source.wheel_url, a.source.wheel_sha256
                ),
            });
            c.files.insert(f.path.clone());
            continue;
        }
        // 2. Debian packages by the file the plan copied.
        let source = inp.sources.source(&f.path);
        if let Some(pkg) = source
            .as_ref()
            .and_then(|s| s.to_str())
            .and_then(|s| inp.dpkg.owner(s))
        {
            let purl = pkg.purl();
            let c = components.entry(purl.clone()).or_insert_with(|| Component {
                kind: Kind::Deb,
                name: pkg.name.clone(),
                version: pkg.version.clone(),
                purl,
                license: inp.dpkg.license(pkg),
                supplier: supplier_of(&pkg.maintainer),
                checksums: BTreeMap::new(),
                files: BTreeSet::new(),
                depends_on: BTreeSet::new(),
                homepage: None,
                comment: match &pkg.source {
                    Some(s) => format!("Debian package {} (source {s})", pkg.name),
                    None => format!("Debian package {}", pkg.name),
                },
            });
            c.files.insert(f.path.clone());
            continue;
        }
        // 3. npm packages.
        if let Some((dir, (n, v, lic))) = npm_roots
            .iter()
            .filter(|(d, _)| f.path.starts_with(&format!("{d}/")))
            .max_by_key(|(d, _)| d.len())
        {
            let purl = npm_purl(n, v);
            let c = components.entry(purl.clone()).or_insert_with(|| {
                let mut checksums = BTreeMap::new();
                if let Some(sri) = inp.npm_lock.and_then(|l| lock_integrity(l, n, v)) {
                    checksums.insert(sri.0, sri.1);
                }
                Component {
                    kind: Kind::Npm,
                    name: n.clone(),
                    version: v.clone(),
                    purl,
                    license: lic.clone(),
                    supplier: "Organization: npm registry".into(),
                    checksums,
                    files: BTreeSet::new(),
                    depends_on: BTreeSet::new(),
                    homepage: None,
                    comment: format!("npm package at {dir}"),
                }
            });
            c.files.insert(f.path.clone());
            continue;
        }
        // 4. Nix store paths (Nix-built images): /nix/store/HASH-NAME-VERSION/...
        if let Some((store_path, name, version)) = nix_store_path(&f.path) {
            let purl = format!("pkg:nix/{name}@{version}?store_path={}", pct(store_path));
            let c = components.entry(purl.clone()).or_insert_with(|| Component {
                kind: Kind::Nix,
                name: name.to_owned(),
                version: version.to_owned(),
                purl,
                license: None,
                supplier: "Organization: Nix store".into(),
                checksums: BTreeMap::new(),
                files: BTreeSet::new(),
                depends_on: BTreeSet::new(),
                homepage: None,
                comment: format!("Nix store path {store_path}"),
            });
            c.files.insert(f.path.clone());
            continue;
        }
        // 5. our binaries and the crates in them.
        let base = f.path.rsplit('/').next().unwrap_or_default();
        if let (true, Some((package, crates))) = (f.elf, inp.binaries.get(base)) {
            let mut root = None;
            for c in crates {
                let comp = components.entry(c.purl()).or_insert_with(|| Component {
                    kind: Kind::Cargo,
                    name: c.name.clone(),
                    version: c.version.clone(),
                    purl: c.purl(),
                    license: None,
                    supplier: if c.registry {
                        "Organization: crates.io".into()
                    } else {
                        "Organization: Aurum Circle".into()
                    },
                    checksums: c
                        .checksum
                        .iter()
                        .map(|s| ("SHA256".to_owned(), s.clone()))
                        .collect(),
                    files: BTreeSet::new(),
                    depends_on: BTreeSet::new(),
                    homepage: None,
                    comment: if c.registry {
                        "Rust crate linked into a binary (cargo tree -e normal)".into()
                    } else {
                        "workspace crate".into()
                    },
                });
                if &c.name == package && !c.registry {
                    root = Some(comp.purl.clone());
                }
            }
            if let Some(root) = root {
                let deps: BTreeSet<String> = crates
                    .iter()
                    .map(Crate::purl)
                    .filter(|p| *p != root)
                    .collect();
                let c = components.get_mut(&root).expect("inserted");
                c.files.insert(f.path.clone());
                c.depends_on.extend(deps);
                continue;
            }
        }
        unclaimed.insert(f.path.clone());
    }
    Sbom {
        name: inp.name.to_owned(),
        image: inp.image,
        created: inp.created,
        components,
        unclaimed,
    }
}

/// `/nix/store/HASH-NAME-VERSION/rest` -> (store path, NAME, VERSION); the
/// version is the part after the first `-` that precedes a digit (Nix's own
/// `builtins.parseDrvName` rule), empty when there is none.
pub fn nix_store_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/nix/store/")?;
    let base = rest.split('/').next()?;
    let (hash, name_version) = base.split_once('-')?;
    if hash.len() != 32 || name_version.is_empty() {
        return None;
    }
    let store_path = &path[..("/nix/store/".len() + base.len())];
    let split = name_version
        .char_indices()
        .find(|&(i, c)| c == '-' && name_version[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        .map(|(i, _)| i);
    Some(match split {
        Some(i) => (store_path, &name_version[..i], &name_version[i + 1..]),
        None => (store_path, name_version, ""),
    })
}

fn npm_purl(name: &str, version: &str) -> String {
    match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
        Some((scope, n)) => format!("pkg:npm/%40{scope}/{n}@{version}"),
        None => format!("pkg:npm/{name}@{version}"),
    }
}

/// `(SPDX algorithm, hex)` of the lock entry's `integrity` for `name@version`.
fn lock_integrity(lock: &Value, name: &str, version: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let pkgs = lock["packages"].as_object()?;
    let key = format!("node_modules/{name}");
    let e = pkgs.get(&key).filter(|e| e["version"] == version)?;
    let sri = e["integrity"].as_str()?;
    let (alg, b64) = sri.split_once('-')?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let alg = match alg {
        "sha512" => "SHA512",
        "sha256" => "SHA256",
        "sha1" => "SHA1",
        _ => return None,
    };
    Some((alg.to_owned(), hex(&bytes)))
}

/// `Name <mail>` -> `Organization: Name (mail)`.
fn supplier_of(maintainer: &str) -> String {
    let m = maintainer.trim();
    if m.is_empty() {
        return "Organization: Debian".into();
    }
    match m.split_once('<') {
        Some((n, mail)) => format!(
            "Organization: {} ({})",
            n.trim(),
            mail.trim_end_matches('>').trim()
        ),
        None => format!("Organization: {m}"),
    }
}

fn spdx_id(prefix: &str, s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{prefix}-{clean}")
}

fn short_hash(s: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(s.as_bytes()))[..16].to_owned()
}

impl Sbom {
    fn image_hex(&self) -> &str {
        self.image
            .manifest
            .digest
            .strip_prefix("sha256:")
            .unwrap_or(&self.image.manifest.digest)
    }

    fn image_purl(&self) -> String {
        format!(
            "pkg:oci/{}@sha256%3A{}?arch={}",
            self.name.to_lowercase(),
            self.image_hex(),
            self.image.architecture
        )
    }

    /// Every licence reference (`LicenseRef-*`) the components use.
    fn license_refs(&self) -> BTreeSet<String> {
        let mut refs = BTreeSet::new();
        for c in self.components.values() {
            for tok in c.license.iter().flat_map(|l| l.split_whitespace()) {
                let t = tok.trim_matches(|c| c == '(' || c == ')');
                if t.starts_with("LicenseRef-") {
                    refs.insert(t.to_owned());
                }
            }
        }
        refs
    }

    /// SPDX's package verification code: sha1 of the sorted sha1s of the files.
    fn verification_code<'a>(&self, paths: impl Iterator<Item = &'a String>) -> String {
        use sha1::Digest as _;
        let mut sums: Vec<&str> = paths
            .filter_map(|p| self.image.files.get(p))
            .map(|f| f.sha1.as_str())
            .collect();
        sums.sort_unstable();
        hex(&sha1::Sha1::digest(sums.concat().as_bytes()))
    }

    /// The SPDX 2.3 JSON document.
    pub fn spdx(&self) -> Value {
        let root_id = "SPDXRef-Image".to_owned();
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        let mut used = BTreeSet::new();
        for c in self.components.values() {
            let kind = match c.kind {
                Kind::Deb => "deb",
                Kind::Cargo => "cargo",
                Kind::Pypi => "pypi",
                Kind::Npm => "npm",
                Kind::Nix => "nix",
            };
            let mut id = spdx_id(kind, &format!("{}-{}", c.name, c.version));
            if !used.insert(id.clone()) {
                id = format!("{id}-{}", short_hash(&c.purl));
                used.insert(id.clone());
            }
            ids.insert(c.purl.as_str(), id);
        }
        let file_id = |p: &str| format!("SPDXRef-File-{}", short_hash(p));
        let mut packages = vec![json!({
            "SPDXID": root_id,
            "name": self.name,
            "versionInfo": self.image.manifest.digest,
            "supplier": "Organization: Aurum Circle",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": self.image_hex()}],
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": self.image_purl()}],
        })];
        let mut rels = vec![json!({"spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES", "relatedSpdxElement": root_id})];
        for c in self.components.values() {
            let id = &ids[c.purl.as_str()];
            let checksums: Vec<Value> = c
                .checksums
                .iter()
                .map(|(a, v)| json!({"algorithm": a, "checksumValue": v}))
                .collect();
            let mut p = json!({
                "SPDXID": id,
                "name": c.name,
                "versionInfo": c.version,
                "supplier": c.supplier,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": c.license.clone().unwrap_or_else(|| "NOASSERTION".into()),
                "copyrightText": "NOASSERTION",
                "comment": c.comment,
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": c.purl}],
            });
            if !checksums.is_empty() {
                p["checksums"] = Value::Array(checksums);
            }
            if let Some(h) = &c.homepage {
                p["homepage"] = json!(h);
            }
            // SPDX allows CONTAINS of files only for analysed packages.
            if !c.files.is_empty() {
                p["filesAnalyzed"] = json!(true);
                p["packageVerificationCode"] = json!({"packageVerificationCodeValue":
                    self.verification_code(c.files.iter())});
            }
            packages.push(p);
            rels.push(
                json!({"spdxElementId": root_id, "relationshipType": "CONTAINS",
                             "relatedSpdxElement": id}),
            );
            for f in &c.files {
                rels.push(json!({"spdxElementId": id, "relationshipType": "CONTAINS",
                                 "relatedSpdxElement": file_id(f)}));
            }
            for d in &c.depends_on {
                if let Some(did) = ids.get(d.as_str()) {
                    rels.push(
                        json!({"spdxElementId": id, "relationshipType": "DEPENDS_ON",
                                     "relatedSpdxElement": did}),
                    );
                }
            }
        }
        let files: Vec<Value> = self
            .image
            .files
            .values()
            .map(|f| {
                json!({
                    "SPDXID": file_id(&f.path),
                    "fileName": format!(".{}", f.path),
                    "checksums": [
                        {"algorithm": "SHA1", "checksumValue": f.sha1},
                        {"algorithm": "SHA256", "checksumValue": f.sha256},
                    ],
                    "licenseConcluded": "NOASSERTION",
                    "copyrightText": "NOASSERTION",
                })
            })
            .collect();
        if !self.unclaimed.is_empty() {
            packages[0]["filesAnalyzed"] = json!(true);
            packages[0]["packageVerificationCode"] = json!({"packageVerificationCodeValue":
                self.verification_code(self.unclaimed.iter())});
        }
        for f in &self.unclaimed {
            rels.push(
                json!({"spdxElementId": root_id, "relationshipType": "CONTAINS",
                             "relatedSpdxElement": file_id(f)}),
            );
        }
        let extracted: Vec<Value> = self
            .license_refs()
            .into_iter()
            .map(|r| {
                json!({"licenseId": r, "name": r.trim_start_matches("LicenseRef-"),
                       "extractedText": if r.starts_with(crate::nix::LICENSE_REF_PREFIX) {
                           format!("{r}: a licence nixpkgs names without an SPDX id (meta.license.shortName); see the package's source for its text.")
                       } else {
                           format!("{r}: see models.toml and the component's source for the licence text.")
                       }})
            })
            .collect();
        let mut doc = json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": format!("{}@{}", self.name, self.image.manifest.digest),
            "documentNamespace": format!("https://aurum-circle.invalid/spdx/{}/{}", self.name, self.image_hex()),
            "creationInfo": {
                "created": self.created,
                "creators": [format!("Tool: {TOOL}"), "Organization: Aurum Circle"],
            },
            "documentDescribes": [root_id],
            "packages": packages,
            "files": files,
            "relationships": rels,
        });
        if !extracted.is_empty() {
            doc["hasExtractedLicensingInfos"] = Value::Array(extracted);
        }
        doc
    }

    /// The CycloneDX 1.6 JSON document.
    pub fn cyclonedx(&self) -> Value {
        let root_ref = self.image_purl();
        let mut components = Vec::new();
        let mut deps = Vec::new();
        let mut root_deps = Vec::new();
        for c in self.components.values() {
            let mut v = json!({
                "type": match c.kind { Kind::Pypi => "machine-learning-model", _ => "library" },
                "bom-ref": c.purl,
                "name": c.name,
                "version": c.version,
                "purl": c.purl,
                "supplier": {"name": c.supplier.trim_start_matches("Organization: ")},
                "description": c.comment,
            });
            if c.kind == Kind::Pypi && c.name == "onnxruntime" {
                v["type"] = json!("library");
            }
            if let Some(l) = &c.license {
                v["licenses"] = json!([{"expression": l}]);
            }
            if let Some(h) = &c.homepage {
                v["externalReferences"] = json!([{"type": "website", "url": h}]);
            }
            let hashes: Vec<Value> = c
                .checksums
                .iter()
                .filter_map(|(a, h)| {
                    let alg = match a.as_str() {
                        "SHA256" => "SHA-256",
                        "SHA512" => "SHA-512",
                        "SHA1" => "SHA-1",
                        _ => return None,
                    };
                    Some(json!({"alg": alg, "content": h}))
                })
                .collect();
            if !hashes.is_empty() {
                v["hashes"] = Value::Array(hashes);
            }
            if !c.files.is_empty() {
                v["properties"] = Value::Array(
                    c.files
                        .iter()
                        .map(|f| json!({"name": "aurum:file", "value": f}))
                        .collect(),
                );
            }
            components.push(v);
            root_deps.push(json!(c.purl));
            deps.push(json!({"ref": c.purl, "dependsOn": c.depends_on}));
        }
        for f in &self.unclaimed {
            let file = &self.image.files[f];
            let r = format!("file:{f}");
            components.push(json!({
                "type": "file",
                "bom-ref": r,
                "name": f,
                "hashes": [{"alg": "SHA-1", "content": file.sha1}, {"alg": "SHA-256", "content": file.sha256}],
            }));
            root_deps.push(json!(r));
        }
        deps.push(json!({"ref": root_ref, "dependsOn": root_deps}));
        let h = short_hash(&format!("{}{}", self.name, self.image.manifest.digest))
            + &short_hash(&self.image.manifest.digest);
        let serial = format!(
            "urn:uuid:{}-{}-5{}-8{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        );
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": serial,
            "version": 1,
            "metadata": {
                "timestamp": self.created,
                "tools": {"components": [{"type": "application", "name": "ocipack", "version": env!("CARGO_PKG_VERSION")}]},
                "authors": [{"name": "Aurum Circle"}],
                "supplier": {"name": "Aurum Circle"},
                "component": {
                    "type": "container",
                    "bom-ref": root_ref,
                    "name": self.name,
                    "version": self.image.manifest.digest,
                    "purl": root_ref,
                    "hashes": [{"alg": "SHA-256", "content": self.image_hex()}],
                },
            },
            "components": components,
            "dependencies": deps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_store_paths() {
        let h = "0123456789abcdfghijklmnpqrsvwxyz";
        assert_eq!(
            nix_store_path(&format!("/nix/store/{h}-redis-8.0.2/bin/redis-server")),
            Some((&*format!("/nix/store/{h}-redis-8.0.2"), "redis", "8.0.2"))
        );
        assert_eq!(
            nix_store_path(&format!("/nix/store/{h}-gcc-14.2.0-lib/lib/libgcc_s.so.1"))
                .map(|x| (x.1, x.2)),
            Some(("gcc", "14.2.0-lib"))
        );
        assert_eq!(
            nix_store_path(&format!("/nix/store/{h}-tzdata/share/x")).map(|x| (x.1, x.2)),
            Some(("tzdata", ""))
        );
        assert_eq!(nix_store_path("/usr/lib/libc.so.6"), None);
        assert_eq!(nix_store_path("/nix/store/short-x/y"), None);
    }
}
