//! `ocipack deploy`: the deployment files are pinned to the digests of the
//! layouts just built; images without a layout keep their earlier pin.

mod common;
use common::*;

#[test]
fn pins_built_images_by_digest_and_keeps_or_names_the_rest() {
    let t = tempfile::tempdir().unwrap();
    let images = t.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for name in ["redis", "qdrant", "scoring"] {
        std::fs::copy(
            repo().join(format!("images/{name}.toml")),
            images.join(format!("{name}.toml")),
        )
        .unwrap();
    }
    let layouts = t.path().join("layouts");
    build(&plan("minimal.json"), &layouts.join("redis"), &[]);
    let deploy = t.path().join("deploy");
    std::fs::create_dir(&deploy).unwrap();
    std::fs::write(deploy.join("images.env"), "SCORING_IMAGE=r.example/aurum/scoring@sha256:1111111111111111111111111111111111111111111111111111111111111111\n").unwrap();

    let o = run(
        ocipack()
            .args(["deploy", "--registry", "127.0.0.1:5000/aurum"])
            .arg("--images")
            .arg(&images)
            .arg("--layouts")
            .arg(&layouts)
            .arg("--deploy-dir")
            .arg(&deploy),
        true,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("missing qdrant") && err.contains("QDRANT_IMAGE"),
        "{err}"
    );
    let env = std::fs::read_to_string(deploy.join("images.env")).unwrap();
    let digest = manifest_digest(&layouts.join("redis"));
    assert!(
        env.contains(&format!(
            "REDIS_IMAGE=127.0.0.1:5000/aurum/redis@{digest}\n"
        )),
        "{env}"
    );
    assert!(
        env.contains("SCORING_IMAGE=r.example/aurum/scoring@sha256:1111"),
        "earlier pin kept: {env}"
    );
    assert!(!env.contains("QDRANT_IMAGE"), "{env}");
    let kust = std::fs::read_to_string(deploy.join("k8s/images/kustomization.yaml")).unwrap();
    assert!(
        kust.contains(&format!(
            "  - name: redis\n    newName: 127.0.0.1:5000/aurum/redis\n    digest: {digest}\n"
        )),
        "{kust}"
    );
    assert!(kust.contains("  - name: scoring-service\n"), "{kust}");

    // Nothing built at all is an error, and so is a registry with a tag.
    let empty = t.path().join("none");
    std::fs::create_dir(&empty).unwrap();
    let o = ocipack()
        .args(["deploy", "--registry", "r/aurum"])
        .arg("--images")
        .arg(&images)
        .arg("--layouts")
        .arg(&empty)
        .arg("--deploy-dir")
        .arg(&deploy)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no built layout"));
    let o = ocipack()
        .args(["deploy", "--registry", "r/aurum@sha256:00"])
        .arg("--images")
        .arg(&images)
        .arg("--layouts")
        .arg(&layouts)
        .arg("--deploy-dir")
        .arg(&deploy)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}
