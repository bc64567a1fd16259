//! The Debian package database, read directly: `/var/lib/dpkg/status` for
//! name, version, architecture and maintainer, `/var/lib/dpkg/info/*.list`
//! for which package owns which path, and `/usr/share/doc/PKG/copyright`
//! (only when machine-readable, DEP-5) for the licence.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{io, Result};

/// One installed Debian package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    /// Package name.
    pub name: String,
    /// Full Debian version (epoch included).
    pub version: String,
    /// Debian architecture (`amd64`, `all`).
    pub architecture: String,
    /// The `Maintainer` field.
    pub maintainer: String,
    /// The source package, when it differs.
    pub source: Option<String>,
}

impl DebPackage {
    /// The package URL: `pkg:deb/debian/NAME@VERSION?arch=ARCH`.
    pub fn purl(&self) -> String {
        format!(
            "pkg:deb/debian/{}@{}?arch={}",
            pct(&self.name),
            pct(&self.version),
            pct(&self.architecture)
        )
    }
}

/// Percent-encodes what a purl component may not hold (`:` of epochs, `+`).
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The database of one root file system.
#[derive(Debug, Default)]
pub struct Dpkg {
    root: PathBuf,
    /// Installed packages by `name:arch`.
    pub packages: BTreeMap<String, DebPackage>,
    owners: HashMap<String, String>,
}

impl Dpkg {
    /// Reads the database under `root` (`/` on a host). A root without a
    /// dpkg database gives an empty one (no file is then claimed by Debian).
    ///
    /// # Errors
    /// An unreadable status file or list file.
    pub fn load(root: &Path) -> Result<Dpkg> {
        let mut db = Dpkg {
            root: root.to_owned(),
            ..Dpkg::default()
        };
        let status = root.join("var/lib/dpkg/status");
        if !status.exists() {
            return Ok(db);
        }
        let text = std::fs::read_to_string(&status).map_err(io(&status))?;
        for para in text.split("\n\n") {
            let mut f: HashMap<&str, String> = HashMap::new();
            let mut last: Option<&str> = None;
            for line in para.lines() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    if let Some(k) = last {
                        f.entry(k).or_default().push_str(line);
                    }
                    continue;
                }
                if let Some((k, v)) = line.split_once(':') {
                    f.insert(k, v.trim().to_owned());
                    last = Some(k);
                }
            }
            let installed = f.get("Status").is_some_and(|s| s.ends_with(" installed"));
            let (Some(name), Some(version), true) = (f.get("Package"), f.get("Version"), installed)
            else {
                continue;
            };
            let arch = f.get("Architecture").cloned().unwrap_or_default();
            let source = f
                .get("Source")
                .map(|s| s.split_whitespace().next().unwrap_or_default().to_owned())
                .filter(|s| s != name);
            db.packages.insert(
                format!("{name}:{arch}"),
                DebPackage {
                    name: name.clone(),
                    version: version.clone(),
                    architecture: arch,
                    maintainer: f.get("Maintainer").cloned().unwrap_or_default(),
                    source,
                },
            );
        }
        // name:arch keys by bare name, for list files named without an arch.
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for (k, p) in &db.packages {
            by_name.entry(p.name.clone()).or_default().push(k.clone());
        }
        let info = root.join("var/lib/dpkg/info");
        let mut lists: Vec<PathBuf> = std::fs::read_dir(&info)
            .map_err(io(&info))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "list"))
            .collect();
        lists.sort();
        for list in lists {
            let stem = list
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let key = if stem.contains(':') {
                stem.clone()
            } else {
                match by_name.get(&stem).map(Vec::as_slice) {
                    Some([one]) => one.clone(),
                    _ => continue,
                }
            };
            if !db.packages.contains_key(&key) {
                continue;
            }
            let text = std::fs::read_to_string(&list).map_err(io(&list))?;
            for path in text.lines().filter(|l| !l.is_empty() && *l != "/.") {
                // Sorted list files: the first owner (by name) wins for a
                // shared directory; files have one owner.
                db.owners
                    .entry(path.to_owned())
                    .or_insert_with(|| key.clone());
            }
        }
        Ok(db)
    }

    /// The package owning the host path `path` (absolute, or under this
    /// database's root), trying the merged-/usr aliases (`/lib/x` and
    /// `/usr/lib/x` are one file on Debian 12).
    pub fn owner(&self, path: &str) -> Option<&DebPackage> {
        // A path inside another root (a sysroot) is looked up relative to it.
        let inside = (self.root != Path::new("/"))
            .then(|| Path::new(path).strip_prefix(&self.root).ok())
            .flatten()
            .map(|r| format!("/{}", r.to_string_lossy()));
        let path = inside.as_deref().unwrap_or(path);
        let mut candidates = vec![path.to_owned()];
        if let Some(rest) = path.strip_prefix("/usr") {
            candidates.push(rest.to_owned());
        } else {
            candidates.push(format!("/usr{path}"));
        }
        if let Ok(c) = std::fs::canonicalize(self.root.join(path.trim_start_matches('/'))) {
            if let Ok(rel) = c.strip_prefix(&self.root) {
                let c = format!("/{}", rel.to_string_lossy());
                if let Some(rest) = c.strip_prefix("/usr") {
                    candidates.push(rest.to_owned());
                }
                candidates.push(c);
            }
        }
        candidates
            .iter()
            .find_map(|c| self.owners.get(c))
            .and_then(|k| self.packages.get(k))
    }

    /// The licence of `pkg` as an SPDX expression, when its copyright file
    /// is machine-readable (DEP-5) and the `Files: *` paragraph names
    /// licences that have SPDX ids; otherwise `None` (NOASSERTION).
    pub fn license(&self, pkg: &DebPackage) -> Option<String> {
        let path = self
            .root
            .join("usr/share/doc")
            .join(&pkg.name)
            .join("copyright");
        let text = std::fs::read_to_string(path).ok()?;
        license_from_dep5(&text)
    }
}

/// The licence of the `Files: *` paragraph of a DEP-5 copyright file.
pub fn license_from_dep5(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    if !first.starts_with("Format:") || !first.contains("copyright-format/1.0") {
        return None;
    }
    for para in text.split("\n\n") {
        let mut files = None;
        let mut license = None;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Files:") {
                files = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("License:") {
                license = Some(v.trim().to_owned());
            }
        }
        if files.as_deref() == Some("*") {
            return license.and_then(|l| spdx_expression(&l));
        }
    }
    None
}

/// Debian short licence names (DEP-5 expression with `or`/`and`) to SPDX;
/// `None` when any part has no known SPDX id.
pub fn spdx_expression(deb: &str) -> Option<String> {
    let mut out = Vec::new();
    for tok in deb.split_whitespace() {
        match tok.to_ascii_lowercase().as_str() {
            "or" | "|" => out.push("OR".to_owned()),
            "and" | "&" => out.push("AND".to_owned()),
            "," => {}
            t => out.push(spdx_id(t.trim_end_matches(','))?.to_owned()),
        }
    }
    if out.is_empty() || out.first().is_some_and(|t| t == "OR" || t == "AND") {
        return None;
    }
    Some(out.join(" "))
}

fn spdx_id(t: &str) -> Option<&'static str> {
    Some(match t {
        "expat" | "mit" => "MIT",
        "bsd-2-clause" => "BSD-2-Clause",
        "bsd-3-clause" => "BSD-3-Clause",
        "bsd-4-clause" => "BSD-4-Clause",
        "isc" => "ISC",
        "zlib" => "Zlib",
        "apache-2.0" => "Apache-2.0",
        "gpl-2" | "gpl-2.0" | "gpl-2.0-only" => "GPL-2.0-only",
        "gpl-2+" | "gpl-2.0+" | "gpl-2.0-or-later" => "GPL-2.0-or-later",
        "gpl-3" | "gpl-3.0" | "gpl-3.0-only" => "GPL-3.0-only",
        "gpl-3+" | "gpl-3.0+" | "gpl-3.0-or-later" => "GPL-3.0-or-later",
        "lgpl-2.1" | "lgpl-2.1-only" => "LGPL-2.1-only",
        "lgpl-2.1+" | "lgpl-2.1-or-later" => "LGPL-2.1-or-later",
        "lgpl-3" | "lgpl-3.0" => "LGPL-3.0-only",
        "lgpl-3+" | "lgpl-3.0+" => "LGPL-3.0-or-later",
        "mpl-2.0" => "MPL-2.0",
        "curl" => "curl",
        "openssl" => "OpenSSL",
        "unicode-dfs-2016" => "Unicode-DFS-2016",
        "cc0-1.0" => "CC0-1.0",
        "bsl-1.0" | "boost-1.0" => "BSL-1.0",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep5_files_star_licence() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\nFiles: *\nCopyright: 2020 A\nLicense: BSD-3-clause\n\nFiles: debian/*\nLicense: GPL-2+\n";
        assert_eq!(license_from_dep5(text).as_deref(), Some("BSD-3-Clause"));
        assert_eq!(license_from_dep5("This is free software\n"), None);
        assert_eq!(
            spdx_expression("GPL-2+ or Expat").as_deref(),
            Some("GPL-2.0-or-later OR MIT")
        );
        assert_eq!(spdx_expression("public-domain"), None);
    }

    #[test]
    fn database_from_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("var/lib/dpkg/info")).unwrap();
        std::fs::create_dir_all(d.join("usr/lib")).unwrap();
        std::fs::write(
            d.join("var/lib/dpkg/status"),
            "Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nMaintainer: A <a@b>\nVersion: 1:2.0-1+b1\n\nPackage: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n",
        )
        .unwrap();
        std::fs::write(
            d.join("var/lib/dpkg/info/libfoo1:amd64.list"),
            "/.\n/usr\n/usr/lib\n/usr/lib/libfoo.so.1\n",
        )
        .unwrap();
        let db = Dpkg::load(d).unwrap();
        assert_eq!(db.packages.len(), 1);
        let p = db.owner("/lib/libfoo.so.1").expect("merged-/usr alias");
        assert_eq!(p.purl(), "pkg:deb/debian/libfoo1@1%3A2.0-1%2Bb1?arch=amd64");
        assert!(db.owner("/usr/lib/other.so").is_none());
    }

    /// Issue 16: a cross build's sysroot, unpacked with `dpkg -x`, had no
    /// database, so its libraries were unclaimed files in arm64 SBOMs.
    /// scripts/setup-cross.sh now records one the way it does (control
    /// fields with a Status line, `<pkg>:<arch>.list` from the .deb's
    /// paths); plan sources are sysroot paths, looked up relative to it.
    #[test]
    fn a_sysroot_database_as_setup_cross_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sysroot-arm64");
        std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
        std::fs::create_dir_all(root.join("lib/aarch64-linux-gnu")).unwrap();
        std::fs::write(root.join("lib/aarch64-linux-gnu/libc.so.6"), "x").unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9+deb12u14\nArchitecture: arm64\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nMulti-Arch: same\nDescription: GNU C Library: Shared libraries\n Contains the standard libraries.\n\n",
        )
        .unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/info/libc6:arm64.list"),
            "/.\n/lib\n/lib/aarch64-linux-gnu\n/lib/aarch64-linux-gnu/libc.so.6\n",
        )
        .unwrap();
        let db = Dpkg::load(&root).unwrap();
        let source = root.join("lib/aarch64-linux-gnu/libc.so.6");
        let p = db
            .owner(&source.to_string_lossy())
            .expect("owned in the sysroot");
        assert_eq!(
            p.purl(),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=arm64"
        );
        assert_eq!(p.source.as_deref(), Some("glibc"));
    }
}
