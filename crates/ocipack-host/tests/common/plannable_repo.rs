//! Shared by ocipack-host's and ocipack-cli's host tests (`#[path]` include).

use std::path::Path;

/// A repository root to plan every definition from without the frontend's
/// npm build: the repository's own entries linked in, and `web/` replaced by
/// a stand-in with what images/frontend.toml packs. `next build` output is a
/// build product (tests/e2e and the demo make it), not something cargo has.
pub fn plannable_repo() -> tempfile::TempDir {
    // Both including crates sit at crates/<name>.
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let t = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&real).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "web" {
            std::os::unix::fs::symlink(e.path(), t.path().join(e.file_name())).unwrap();
        }
    }
    let web = t.path().join("web");
    for d in [".next/standalone", ".next/static", "public"] {
        std::fs::create_dir_all(web.join(d)).unwrap();
    }
    std::fs::write(web.join(".next/standalone/server.js"), "// stand-in\n").unwrap();
    std::fs::copy(real.join("web/healthcheck.js"), web.join("healthcheck.js")).unwrap();
    t
}
