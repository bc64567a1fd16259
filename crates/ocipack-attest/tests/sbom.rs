//! An image built by the real packer from a small plan, with a stand-in dpkg
//! database and models.toml: every file is accounted for, components come
//! from the exact inputs, and the documents are byte-identical across builds.

use std::collections::BTreeMap;
use std::path::Path;

use ocipack::layout::Layout;
use ocipack_attest::dpkg::Dpkg;
use ocipack_attest::inputs::{read_image, Models, SourceMap};
use ocipack_attest::sbom::{self, Kind};

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn sha256_hex(b: &[u8]) -> String {
    ocipack::digest::sha256(b)
        .trim_start_matches("sha256:")
        .to_owned()
}

/// Builds the image into `out` and returns the SPDX and CycloneDX bytes.
fn sbom_of(root: &Path, out: &Path) -> (Vec<u8>, Vec<u8>, sbom::Sbom) {
    let plan_text = std::fs::read_to_string(root.join("plan.json")).unwrap();
    let plan = ocipack::plan::Plan::from_json(&plan_text, "plan.json", Some(root)).unwrap();
    ocipack::build(&plan, "plan.json", out, &ocipack::BuildOptions::default()).unwrap();
    let layout = Layout::open(out).unwrap();
    let image = read_image(&layout, None).unwrap();
    let sources = SourceMap::from_plan_file(&root.join("plan.json")).unwrap();
    let dpkg = Dpkg::load(&root.join("sysroot")).unwrap();
    let models = Models::load(&root.join("models.toml")).unwrap();
    let s = sbom::build(sbom::Inputs {
        name: "tiny",
        image,
        created: "2026-01-01T00:00:00Z".into(),
        sources: &sources,
        dpkg: &dpkg,
        models: &models,
        binaries: &BTreeMap::new(),
        npm_lock: None,
    });
    (
        ocipack_attest::canonical_json(&s.spdx()),
        ocipack_attest::canonical_json(&s.cyclonedx()),
        s,
    )
}

#[test]
fn every_file_accounted_for_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // A Debian package owning a library, in a stand-in root file system.
    let sys = root.join("sysroot");
    write(
        &sys.join("usr/lib/x86_64-linux-gnu/libfoo.so.1"),
        b"\x7fELF libfoo",
    );
    write(
        &sys.join("var/lib/dpkg/status"),
        b"Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nMaintainer: Foo Team <foo@example.org>\nVersion: 1.2-3+deb12u1\nSource: foo\n",
    );
    write(
        &sys.join("var/lib/dpkg/info/libfoo1:amd64.list"),
        b"/.\n/usr\n/usr/lib/x86_64-linux-gnu/libfoo.so.1\n",
    );
    write(
        &sys.join("usr/share/doc/libfoo1/copyright"),
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Expat\n",
    );
    let model = b"not really onnx".to_vec();
    write(&root.join("assets/m.onnx"), &model);
    write(&root.join("app/config.txt"), b"hello");
    write(
        &root.join("models.toml"),
        format!(
            "[models.m]\nfile = \"m.onnx\"\nsha256 = \"{}\"\nsize = {}\nlicense = \"LicenseRef-Test-model\"\n[models.m.source]\npypi = \"Some_Wheel\"\nversion = \"1.0\"\nwheel_url = \"https://example.invalid/w.whl\"\nwheel_sha256 = \"{}\"\nmember = \"w/m.onnx\"\n",
            sha256_hex(&model),
            model.len(),
            "0".repeat(64)
        )
        .as_bytes(),
    );
    let lib = sys.join("usr/lib/x86_64-linux-gnu/libfoo.so.1");
    let plan = serde_json::json!({
        "version": 1, "name": "tiny", "sourceDateEpoch": 1,
        "layers": [
            {"kind": "files", "entries": [
                {"source": lib, "target": "/usr/lib/x86_64-linux-gnu/libfoo.so.1"},
                {"source": root.join("app/config.txt"), "target": "/app/config.txt"},
            ]},
            {"kind": "model", "name": "m", "source": root.join("assets/m.onnx"), "target": "/models/m.onnx"},
        ],
    });
    write(&root.join("plan.json"), plan.to_string().as_bytes());

    let (spdx1, cdx1, s) = sbom_of(root, &root.join("out1"));
    let (spdx2, cdx2, _) = sbom_of(root, &root.join("out2"));
    assert_eq!(spdx1, spdx2, "SPDX bytes differ between two builds");
    assert_eq!(cdx1, cdx2, "CycloneDX bytes differ between two builds");

    let deb = &s.components["pkg:deb/debian/libfoo1@1.2-3%2Bdeb12u1?arch=amd64"];
    assert_eq!(deb.kind, Kind::Deb);
    assert_eq!(deb.license.as_deref(), Some("MIT"));
    assert!(deb.files.contains("/usr/lib/x86_64-linux-gnu/libfoo.so.1"));
    let m = &s.components["pkg:pypi/some-wheel@1.0#w/m.onnx"];
    assert_eq!(m.license.as_deref(), Some("LicenseRef-Test-model"));
    assert!(m.files.contains("/models/m.onnx"));
    // Files of no package: ours and the generated base layer, never dropped.
    for f in ["/app/config.txt", "/etc/passwd", "/etc/group"] {
        assert!(s.unclaimed.contains(f), "{f} not listed: {:?}", s.unclaimed);
    }
    // Every file of the image is in the SPDX document with its sha256.
    let doc: serde_json::Value = serde_json::from_slice(&spdx1).unwrap();
    let listed: BTreeMap<String, String> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fileName"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('.')
                    .to_owned(),
                f["checksums"][1]["checksumValue"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(listed.len(), s.image.files.len());
    assert_eq!(listed["/app/config.txt"], sha256_hex(b"hello"));
    assert!(doc["hasExtractedLicensingInfos"][0]["licenseId"] == "LicenseRef-Test-model");
    let cdx: serde_json::Value = serde_json::from_slice(&cdx1).unwrap();
    assert_eq!(cdx["specVersion"], "1.6");
    assert_eq!(cdx["metadata"]["timestamp"], "2026-01-01T00:00:00Z");
}
