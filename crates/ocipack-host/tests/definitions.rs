//! Every images/*.toml of the repository parses, and every host-buildable one
//! plans against this host and the fetched assets (scripts/fetch-assets.sh).

use std::path::{Path, PathBuf};

use ocipack_host::{definition_paths, load_definition, plan_for, Error, HostContext, Program};

#[path = "common/plannable_repo.rs"]
mod plannable;
use plannable::plannable_repo;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Checks a generated plan the two ways its consumers do: the JSON Schema of
/// docs/plan.schema.json and ocipack's own parser (unknown fields are errors).
fn assert_valid_plan(plan: &serde_json::Value, name: &str) {
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("docs/plan.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(plan).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{name}: {errors:?}");
    let text = serde_json::to_string(plan).unwrap();
    ocipack::plan::Plan::from_json(&text, name, None).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_definition_parses() {
    let paths = definition_paths(&repo().join("images")).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| load_definition(p).unwrap_or_else(|e| panic!("{e}")).name)
        .collect();
    for expected in ["scoring", "face-detection", "face-embedding"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
}

#[test]
fn every_host_buildable_definition_plans() {
    let repo = repo();
    let assets = repo.join(".cache/assets");
    assert!(
        assets.join("runtimes/onnxruntime").is_dir(),
        "{} is missing; run scripts/fetch-assets.sh first",
        assets.display()
    );
    // Stand-ins for the release binaries: any ELF program has the shape the
    // builder needs, and the real services may not be built yet.
    let bin = tempfile::tempdir().unwrap();
    for path in definition_paths(&repo.join("images")).unwrap() {
        let def = load_definition(&path).unwrap();
        if let Some(Program::Crate { binary, .. }) = def.program() {
            std::fs::copy("/usr/bin/true", bin.path().join(binary)).unwrap();
        }
    }
    std::fs::copy("/usr/bin/true", bin.path().join("http-probe")).unwrap();
    let root = plannable_repo();
    let ctx = HostContext::new(root.path(), bin.path()).unwrap();
    for path in definition_paths(&root.path().join("images")).unwrap() {
        let def = load_definition(&path).unwrap();
        match plan_for(&def, &ctx) {
            Ok(plan) => {
                let plan = serde_json::to_value(&plan).unwrap();
                assert_eq!(plan["name"], def.name.as_str());
                assert_valid_plan(&plan, &def.name);
                let models = plan["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|l| l["kind"] == "model")
                    .count();
                assert_eq!(models, def.models.len(), "{}", def.name);
            }
            Err(Error::HostUnsupported { .. }) => {
                assert!(matches!(def.program(), Some(Program::Unsupported(_))));
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}
