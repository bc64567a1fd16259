//! One meaning for images/*.toml (issue 12): every definition goes through
//! the host builder (`plan_for`) and through the Nix function
//! (`nix/imageFromDefinition.nix`, evaluated by `nix-instantiate` with
//! stand-in packages and `buildImage` replaced by the identity, so nothing is
//! built), and the two results are compared field by field: the image
//! config (user, env, entrypoint, cmd, exposed ports, working directory,
//! volumes, stop signal, healthcheck, labels), the annotations, the model
//! layers and the entries of the application layer, and the layer limit.
//! A definition with an unknown field, in every table, is refused by both
//! with the same field and the same list of allowed fields.
//!
//! Differences that are by design, and what the test checks instead:
//! - the library-path variable (models.toml `library_env`) holds each
//!   builder's own path of the runtime library;
//! - the CA bundle sits in the host builder's system layer and in the Nix
//!   image's top layer (same path);
//! - closure layers: the host builder has one system and one runtime layer,
//!   Nix as many as `[layers] max` leaves after the models.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ocipack::plan::{Layer, Plan};
use ocipack_host::{definition_paths, load_definition, plan_for, HostContext, Program};
use serde_json::Value;

#[path = "common/plannable_repo.rs"]
mod plannable;
use plannable::plannable_repo;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The stand-in store path of package `name`.
fn store(name: &str) -> String {
    format!("/nix/store/00000000000000000000000000000000-{name}")
}

/// `nix-instantiate --eval --strict --json` of `expr`: the value, or the
/// error text.
fn nix_eval(expr: &str) -> Result<Value, String> {
    let out = Command::new("nix-instantiate")
        .args([
            "--eval",
            "--strict",
            "--json",
            "--option",
            "build-users-group",
            "",
        ])
        .args(["--option", "allow-import-from-derivation", "false"])
        .args(["--expr", expr])
        .output()
        .expect("nix-instantiate runs (Debian's nix-bin, scripts/setup.sh)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// What imageFromDefinition hands to buildImage for the definition at
/// `path`, with the stand-in resolve: packages are store paths, a runtime's
/// env is built from models.toml's `library_env` as nix/project.nix does,
/// [files] sources stay repository-relative (`/repo/<path>`).
fn nix_image(path: &Path) -> Result<Value, String> {
    let repo = repo();
    let expr = format!(
        r#"
let
  repo = {repo};
  manifest = builtins.fromTOML (builtins.readFile (repo + "/models.toml"));
  pkg = name: {{ outPath = "{store}" + name; }};
  resolve = {{
    crate = pkg;
    nixpkgs = pkg;
    model = name: {{ model = pkg "model-${{name}}"; file = manifest.models.${{name}}.file; }};
    runtime = name: let r = manifest.runtimes.${{name}}; in {{
      package = pkg name;
      env = if r ? library_env then {{ ${{r.library_env}} = "{store}${{name}}/lib/${{r.soname}}"; }} else {{ }};
    }};
    probe = pkg "http-probe";
    cacert = pkg "cacert";
    root = "/repo";
    file = p: "/repo/" + p;
  }};
  image = import (repo + "/nix/imageFromDefinition.nix") {{ buildImage = args: args; }} {{
    definition = builtins.fromTOML (builtins.readFile {file});
    file = "{file}";
    inherit resolve;
  }};
in {{
  inherit (image) name tags config annotations entries maxLayers;
  models = map (m: {{ inherit (m) name file; }}) image.models;
}}
"#,
        repo = repo.display(),
        store = store(""),
        file = path.display(),
    );
    nix_eval(&expr)
}

/// Stand-in release binaries and a context to plan every definition.
struct Host {
    _bin: tempfile::TempDir,
    root: tempfile::TempDir,
    ctx: HostContext,
}

fn host() -> Host {
    let bin = tempfile::tempdir().unwrap();
    for path in definition_paths(&repo().join("images")).unwrap() {
        let def = load_definition(&path).unwrap();
        if let Some(Program::Crate { binary, .. }) = def.program() {
            std::fs::copy("/usr/bin/true", bin.path().join(binary)).unwrap();
        }
        for b in &def.source.workspace_binaries {
            std::fs::copy("/usr/bin/true", bin.path().join(b)).unwrap();
        }
    }
    std::fs::copy("/usr/bin/true", bin.path().join("http-probe")).unwrap();
    let root = plannable_repo();
    let mut ctx = HostContext::new(root.path(), bin.path()).unwrap();
    ctx.assets_dir = repo().join(".cache/assets");
    Host {
        _bin: bin,
        root,
        ctx,
    }
}

/// `config.<key>` of the Nix side as a list (absent: empty).
fn list(config: &Value, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .unwrap_or_default()
}

fn compare_config(name: &str, plan: &Plan, nix: &Value, library_envs: &BTreeSet<String>) {
    let c = &plan.config;
    let n = &nix["config"];
    let at = |field: &str| format!("{name}: config.{field}");
    assert_eq!(c.entrypoint, list(n, "entrypoint"), "{}", at("entrypoint"));
    assert_eq!(c.cmd, list(n, "cmd"), "{}", at("cmd"));
    assert_eq!(
        c.exposed_ports,
        list(n, "exposedPorts"),
        "{}",
        at("exposedPorts")
    );
    assert_eq!(c.volumes, list(n, "volumes"), "{}", at("volumes"));
    assert_eq!(
        c.working_dir.as_deref(),
        n.get("workingDir").and_then(Value::as_str),
        "{}",
        at("workingDir")
    );
    assert_eq!(
        c.stop_signal.as_deref(),
        n.get("stopSignal").and_then(Value::as_str),
        "{}",
        at("stopSignal")
    );
    // Neither sets User: both images run as the plan's default user.
    assert_eq!(c.user, None, "{}", at("user"));
    assert!(n.get("user").is_none(), "{}", at("user"));
    assert_eq!(
        serde_json::to_value(&c.healthcheck).unwrap(),
        n.get("healthcheck").cloned().unwrap_or(Value::Null),
        "{}",
        at("healthcheck")
    );
    let labels: BTreeMap<String, String> =
        serde_json::from_value(n.get("labels").cloned().unwrap_or_default()).unwrap_or_default();
    assert_eq!(c.labels, labels, "{}", at("labels"));
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(nix["annotations"].clone()).unwrap();
    assert_eq!(plan.annotations, annotations, "{name}: annotations");

    let split = |env: Vec<String>| -> BTreeMap<String, String> {
        env.into_iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    };
    let rust = split(c.env.clone());
    let nix_env = split(list(n, "env"));
    assert_eq!(
        rust.keys().collect::<Vec<_>>(),
        nix_env.keys().collect::<Vec<_>>(),
        "{}",
        at("env")
    );
    for (k, v) in &rust {
        if library_envs.contains(k) {
            assert!(v.starts_with("/usr/lib/"), "{}: {k}={v}", at("env"));
            assert!(nix_env[k].starts_with("/nix/store/"), "{}: {k}", at("env"));
        } else {
            assert_eq!(v, &nix_env[k], "{}: {k}", at("env"));
        }
    }
}

fn compare_layers(name: &str, def_max: u32, plan: &Plan, nix: &Value, h: &Host) {
    // Models: same names, same targets, same order, below the application.
    let rust_models: Vec<String> = plan
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Model(m) => Some(format!("{} {}", m.name, m.target)),
            _ => None,
        })
        .collect();
    let nix_models: Vec<String> = nix["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let (n, f) = (m["name"].as_str().unwrap(), m["file"].as_str().unwrap());
            format!("{n} /models/{n}/{f}")
        })
        .collect();
    assert_eq!(rust_models, nix_models, "{name}: model layers");

    // [layers] max: total layers without the base, in both.
    let max = nix["maxLayers"].as_u64().unwrap() + nix_models.len() as u64;
    assert_eq!(max, u64::from(def_max), "{name}: [layers] max");
    assert!(plan.layers.len() as u64 <= max, "{name}: layer count");

    // The application layer: every Nix entry is there, the same kind of
    // thing at the same path (the CA bundle: in the system layer).
    let Some(Layer::Files(app)) = plan.layers.last() else {
        panic!("{name}: the top layer is not a files layer")
    };
    let Some(Layer::Files(system)) = plan.layers.first() else {
        panic!("{name}: the bottom layer is not a files layer")
    };
    let find = |target: &str| {
        app.entries
            .iter()
            .chain(&system.entries)
            .find(|e| e.target == target)
    };
    let mut declared = BTreeSet::new();
    for e in nix["entries"].as_array().unwrap() {
        let target = e["target"].as_str().unwrap();
        declared.insert(target.to_owned());
        let r = find(target).unwrap_or_else(|| panic!("{name}: {target} only in the Nix image"));
        if e.get("directory").is_some() {
            assert!(r.directory, "{name}: {target} is a directory in Nix only");
            assert_eq!(
                (r.uid, r.gid),
                (
                    e["uid"].as_u64().map(|v| v as u32),
                    e["gid"].as_u64().map(|v| v as u32)
                ),
                "{name}: owner of {target}"
            );
        } else if let Some(src) = e.get("source").and_then(Value::as_str) {
            let rel = src.strip_prefix("/repo/").unwrap();
            assert_eq!(
                r.source.as_deref(),
                Some(h.root.path().join(rel).as_path()),
                "{name}: source of {target}"
            );
        } else {
            // A link into a package: the host builder has the program there.
            assert!(
                r.source.is_some() || r.symlink.is_some(),
                "{name}: {target}"
            );
        }
    }
    // And the other way: everything the definition puts in the application
    // layer (program, probe, [files], [directories]) is in the Nix image.
    for e in &app.entries {
        let from_definition = e.directory
            || e.source
                .as_ref()
                .is_some_and(|s| s.starts_with(h.root.path()) || s.starts_with(&h.ctx.bin_dir));
        if from_definition {
            assert!(
                declared.contains(&e.target),
                "{name}: {} only in the host image",
                e.target
            );
        }
    }
}

#[test]
fn every_definition_means_the_same_to_both_builders() {
    let h = host();
    let manifest = ocipack_host::load_manifest(&repo().join("models.toml")).unwrap();
    let library_envs: BTreeSet<String> = manifest
        .runtimes
        .values()
        .filter_map(|r| r.library_env.clone())
        .collect();
    let mut n = 0;
    for path in definition_paths(&h.root.path().join("images")).unwrap() {
        let def = load_definition(&path).unwrap();
        let plan = plan_for(&def, &h.ctx).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let nix = nix_image(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(nix["name"], def.name.as_str());
        assert_eq!(
            serde_json::to_value(&plan.tags).unwrap(),
            nix["tags"],
            "{}: tags",
            def.name
        );
        compare_config(&def.name, &plan, &nix, &library_envs);
        compare_layers(&def.name, def.layers.max, &plan, &nix, &h);
        n += 1;
    }
    assert!(n >= 7, "{n} definitions");
}

/// The backticked names after "expected" in an unknown-field message.
fn expected_fields(message: &str) -> BTreeSet<String> {
    let tail = &message[message.find("expected").expect(message)..];
    let tail = tail.split(';').next().unwrap();
    tail.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_unknown_field_is_refused_by_both_alike() {
    let t = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo().join("images/scoring.toml")).unwrap();
    for table in [
        "",
        "source",
        "config",
        "healthcheck",
        "directories",
        "layers",
    ] {
        let text = if table.is_empty() {
            format!("colour = \"red\"\n{base}")
        } else {
            let header = format!("[{table}]\n");
            assert!(base.contains(&header), "{table}");
            base.replacen(&header, &format!("{header}colour = \"red\"\n"), 1)
        };
        let path = t.path().join("scoring.toml");
        std::fs::write(&path, text).unwrap();
        let rust = load_definition(&path).unwrap_err().to_string();
        let nix = nix_image(&path).unwrap_err();
        let field = if table.is_empty() {
            "`colour`".to_owned()
        } else {
            format!("`{table}.colour`")
        };
        for (who, msg) in [("host builder", &rust), ("Nix", &nix)] {
            assert!(
                msg.contains("scoring.toml") && msg.contains("unknown field `"),
                "{who}, [{table}]: {msg}"
            );
            assert!(
                msg.contains("docs/image-definitions.md"),
                "{who}, [{table}]: {msg}"
            );
        }
        assert!(nix.contains(&field), "Nix, [{table}]: {nix}");
        assert!(rust.contains("unknown field `colour`"), "{rust}");
        assert_eq!(
            expected_fields(&rust),
            expected_fields(&nix),
            "[{table}]: the allowed fields differ\nhost: {rust}\nnix: {nix}"
        );
    }
}

/// The unprivileged uid has one home per language: `ocipack::plan::DEFAULT_ID`
/// in Rust, `appId` in nix/imageFromDefinition.nix (compared above through
/// the owners of `[directories]`), and `E2E_UID` in tests/e2e/lib.sh, which
/// the end-to-end scripts use for runc and tmpfs owners.
#[test]
fn the_e2e_scripts_run_as_the_plan_default_user() {
    let lib = std::fs::read_to_string(repo().join("tests/e2e/lib.sh")).unwrap();
    let uid: u32 = lib
        .lines()
        .find_map(|l| l.strip_prefix("E2E_UID="))
        .expect("tests/e2e/lib.sh sets E2E_UID")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(uid, ocipack::plan::DEFAULT_ID);
    let nix = std::fs::read_to_string(repo().join("nix/imageFromDefinition.nix")).unwrap();
    assert!(
        nix.contains(&format!("appId = {};", ocipack::plan::DEFAULT_ID)),
        "nix/imageFromDefinition.nix: appId"
    );
}
