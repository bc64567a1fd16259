//! The SBOM of a Nix-built image: the image's files (as for host images,
//! [`crate::sbom::build`]) plus its Nix closure graph, so that every store
//! path of the closure is a `pkg:nix` component even when the image holds no
//! regular file of it (a path of symlinks only), with its references as
//! dependencies and, where the builder passed nixpkgs' `meta`, its licence
//! and home page.
//!
//! The graph is what `exportReferencesGraph` writes into a derivation's
//! structured attrs: a list of `{path, references, narHash, narSize, ...}`.
//! Name and version come from the store path's name (Nix's
//! `builtins.parseDrvName` rule, [`crate::sbom::nix_store_path`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::dpkg::pct;
use crate::sbom::{nix_store_path, Component, Kind, Sbom};
use crate::{Error, Result};

/// Licences nixpkgs names without an SPDX id become
/// `LicenseRef-nixpkgs-<shortName>`.
pub const LICENSE_REF_PREFIX: &str = "LicenseRef-nixpkgs-";

/// One store path of an `exportReferencesGraph` closure.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GraphEntry {
    /// The store path.
    pub path: String,
    /// Store paths it references (itself included, as Nix writes it).
    #[serde(default)]
    pub references: Vec<String>,
    /// `sha256:<nix base32>` (Nix 2.8) or SRI `sha256-<base64>` (newer).
    #[serde(default, rename = "narHash")]
    pub nar_hash: Option<String>,
}

/// What nixpkgs' `meta` says about one package, as `nix/sbom.nix` passes
/// it (licence already an SPDX expression or `LicenseRef-nixpkgs-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PackageMeta {
    /// The package's output path.
    pub path: String,
    /// SPDX licence expression.
    #[serde(default)]
    pub license: Option<String>,
    /// Home page URL.
    #[serde(default)]
    pub homepage: Option<String>,
}

/// The purl of a store path, as [`crate::sbom::build`] writes it.
pub fn purl(store_path: &str, name: &str, version: &str) -> String {
    format!("pkg:nix/{name}@{version}?store_path={}", pct(store_path))
}

/// Parses an `exportReferencesGraph` value; `origin` names it in errors.
///
/// # Errors
/// Not a list of objects with a `path`, or a path outside `/nix/store`.
pub fn parse_graph(v: &serde_json::Value, origin: &str) -> Result<Vec<GraphEntry>> {
    let input = |message: String| Error::Input {
        input: origin.to_owned(),
        message,
    };
    let g: Vec<GraphEntry> = serde_json::from_value(v.clone()).map_err(|e| {
        input(format!(
            "not an exportReferencesGraph closure (a list of {{path, references}}): {e}"
        ))
    })?;
    for e in &g {
        if nix_store_path(&format!("{}/", e.path)).is_none() {
            return Err(input(format!(
                "{:?} is not a store path (/nix/store/HASH-NAME)",
                e.path
            )));
        }
    }
    Ok(g)
}

/// A licence from `meta` only when it reads as an SPDX expression (ids,
/// `AND`/`OR`/`WITH`, parentheses); anything else is left out (NOASSERTION).
fn clean_license(l: &str) -> Option<String> {
    let ok = !l.trim().is_empty()
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.+() ".contains(c));
    ok.then(|| l.trim().to_owned())
}

fn clean_homepage(h: &str) -> Option<String> {
    let ok = (h.starts_with("https://") || h.starts_with("http://"))
        && !h.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| h.to_owned())
}

/// Adds the closure to `sbom`: a component for every store path of
/// `graph` (those the image's files already gave are kept), its references
/// as `depends_on`, and `meta`'s licence and home page.
///
/// # Errors
/// A `meta` entry naming a path outside the closure (the builder passed a
/// package that is not in the image).
pub fn add_closure(sbom: &mut Sbom, graph: &[GraphEntry], meta: &[PackageMeta]) -> Result<()> {
    let mut purls: BTreeMap<&str, String> = BTreeMap::new();
    for e in graph {
        let with_slash = format!("{}/", e.path);
        let Some((sp, name, version)) = nix_store_path(&with_slash) else {
            continue;
        };
        let p = purl(sp, name, version);
        sbom.components
            .entry(p.clone())
            .or_insert_with(|| Component {
                kind: Kind::Nix,
                name: name.to_owned(),
                version: version.to_owned(),
                purl: p.clone(),
                license: None,
                supplier: "Organization: Nix store".into(),
                checksums: BTreeMap::new(),
                files: BTreeSet::new(),
                depends_on: BTreeSet::new(),
                comment: format!("Nix store path {sp}"),
                homepage: None,
            });
        purls.insert(e.path.as_str(), p);
    }
    for e in graph {
        let Some(p) = purls.get(e.path.as_str()) else {
            continue;
        };
        let deps: BTreeSet<String> = e
            .references
            .iter()
            .filter(|r| **r != e.path)
            .filter_map(|r| purls.get(r.as_str()).cloned())
            .collect();
        let c = sbom.components.get_mut(p).expect("inserted above");
        c.depends_on.extend(deps);
        if let Some(h) = &e.nar_hash {
            c.comment = format!("Nix store path {} (NAR hash {h})", e.path);
        }
    }
    for m in meta {
        let p = purls.get(m.path.as_str()).ok_or_else(|| Error::Input {
            input: m.path.clone(),
            message: "package metadata given for a path that is not in the image's closure; \
                      pass only packages of the image's contents"
                .into(),
        })?;
        let c = sbom.components.get_mut(p).expect("inserted above");
        c.license = m.license.as_deref().and_then(clean_license);
        c.homepage = m.homepage.as_deref().and_then(clean_homepage);
        c.supplier = "Organization: nixpkgs".into();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdfghijklmnpqrsvwxyz";

    fn sp(n: &str) -> String {
        format!("/nix/store/{H}-{n}")
    }

    #[test]
    fn graph_parses_and_refuses_non_store_paths() {
        let v = serde_json::json!([{"path": sp("libfoo-1.2"), "references": [sp("libfoo-1.2")],
            "narHash": "sha256:00", "narSize": 3, "closureSize": 3}]);
        let g = parse_graph(&v, "attrs").unwrap();
        assert_eq!(g[0].path, sp("libfoo-1.2"));
        let bad = serde_json::json!([{"path": "/usr/lib/x", "references": []}]);
        let e = parse_graph(&bad, "attrs").unwrap_err().to_string();
        assert!(
            e.contains("/usr/lib/x") && e.contains("not a store path"),
            "{e}"
        );
        let e = parse_graph(&serde_json::json!({"a": 1}), "attrs")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exportReferencesGraph"), "{e}");
    }

    fn empty_sbom() -> Sbom {
        Sbom {
            name: "app".into(),
            image: crate::inputs::Image {
                manifest: ocipack::layout::Descriptor {
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    digest: format!("sha256:{}", "0".repeat(64)),
                    size: 1,
                    annotations: BTreeMap::new(),
                },
                architecture: "amd64".into(),
                files: BTreeMap::new(),
                other_entries: 0,
                created: None,
            },
            created: "1970-01-01T00:00:01Z".into(),
            components: BTreeMap::new(),
            unclaimed: BTreeSet::new(),
        }
    }

    #[test]
    fn every_store_path_of_the_graph_is_a_component_with_its_references() {
        let (app, lib, links) = (sp("app-1.2.3"), sp("libfoo-0.9-lib"), sp("links"));
        let graph = parse_graph(
            &serde_json::json!([
                {"path": app, "references": [app, lib, links], "narHash": "sha256:abc"},
                {"path": lib, "references": [lib]},
                {"path": links, "references": []},
            ]),
            "attrs",
        )
        .unwrap();
        let meta = [PackageMeta {
            path: app.clone(),
            license: Some("(MIT OR Apache-2.0)".into()),
            homepage: Some("https://example.org".into()),
        }];
        let mut s = empty_sbom();
        add_closure(&mut s, &graph, &meta).unwrap();
        assert_eq!(s.components.len(), 3);
        let by_name: BTreeMap<&str, &Component> = s
            .components
            .values()
            .map(|c| (c.name.as_str(), c))
            .collect();
        let a = by_name["app"];
        assert_eq!(a.version, "1.2.3");
        assert_eq!(a.license.as_deref(), Some("(MIT OR Apache-2.0)"));
        assert_eq!(a.homepage.as_deref(), Some("https://example.org"));
        assert!(a.comment.contains("sha256:abc"), "{}", a.comment);
        let want: BTreeSet<String> = [&by_name["libfoo"].purl, &by_name["links"].purl]
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(a.depends_on, want);
        assert_eq!(by_name["libfoo"].version, "0.9-lib");
        assert!(by_name["libfoo"].depends_on.is_empty());
        assert_eq!(
            (
                by_name["links"].version.as_str(),
                by_name["links"].license.as_deref()
            ),
            ("", None)
        );
        // Meta for a path outside the closure: refused, naming it.
        let stray = [PackageMeta {
            path: sp("other-1"),
            ..PackageMeta::default()
        }];
        let e = add_closure(&mut empty_sbom(), &graph, &stray)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("other-1") && e.contains("not in the image's closure"),
            "{e}"
        );
    }

    #[test]
    fn licences_and_homepages_are_checked() {
        assert_eq!(clean_license("MIT"), Some("MIT".into()));
        assert_eq!(
            clean_license("(MIT AND Apache-2.0)"),
            Some("(MIT AND Apache-2.0)".into())
        );
        assert_eq!(clean_license("see COPYING; GPL"), None);
        assert_eq!(
            clean_homepage("https://redis.io"),
            Some("https://redis.io".into())
        );
        assert_eq!(clean_homepage("redis.io"), None);
    }
}
