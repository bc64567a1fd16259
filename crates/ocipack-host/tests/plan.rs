//! plan_for on a fixture repository: gcc-built program and runtime library,
//! a small model, extra files and directories; plus every bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use ocipack_host::{load_definition, plan_for, Error, HostContext};
use serde_json::Value;

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    ctx: HostContext,
}

fn sha256_hex(bytes: &[u8]) -> String {
    ocipack::digest::sha256(bytes)["sha256:".len()..].to_owned()
}

fn gcc(args: &[&str], dir: &Path) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run gcc");
    assert!(out.status.success(), "gcc {args:?}: {out:?}");
}

const DEFINITION: &str = r#"
name = "svc"
description = "a fixture service"
models = ["tiny"]
runtimes = ["onnxruntime"]
probe = true

[source]
crate = "svc-crate"
binary = "svc"

[config]
entrypoint = ["/app/bin/svc"]
env = { PORT = "3000", A_FIRST = "1" }
exposed_ports = ["3000/tcp"]
stop_signal = "SIGTERM"

[healthcheck]
test = ["CMD", "/usr/local/bin/http-probe", "http://127.0.0.1:3000/api/health"]
interval_seconds = 10
retries = 3

[files]
"/etc/svc/app.conf" = "conf/app.conf"

[directories]
paths = ["/data"]

[labels]
"org.opencontainers.image.licenses" = "MIT AND LicenseRef-test"
"#;

/// A repository with models.toml, fetched assets, a release binary and a definition.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let assets = repo.join(".cache/assets");
    let bin = repo.join("target/release");
    for d in [
        repo.join("images"),
        repo.join("conf"),
        assets.join("models/tiny"),
        assets.join("runtimes/onnxruntime"),
        bin.clone(),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    let model: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(assets.join("models/tiny/tiny.onnx"), &model).unwrap();

    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("rt.c"),
        "#include <math.h>\ndouble rt(double x) { return cos(x); }\n",
    )
    .unwrap();
    std::fs::write(src.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let rt = assets.join("runtimes/onnxruntime/libonnxruntime.so.1.31.1");
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libonnxruntime.so.1",
            "-o",
            rt.to_str().unwrap(),
            "rt.c",
            "-lm",
        ],
        &src,
    );
    gcc(&["-o", bin.join("svc").to_str().unwrap(), "main.c"], &src);
    std::fs::copy(bin.join("svc"), bin.join("http-probe")).unwrap();
    let rt_bytes = std::fs::read(&rt).unwrap();

    std::fs::write(
        repo.join("models.toml"),
        format!(
            r#"
[models.tiny]
file = "tiny.onnx"
sha256 = "{}"
size = {}
license = "LicenseRef-test"
task = "fields the host builder does not read are fine here"

[models.other]
file = "other.onnx"
sha256 = "00"
size = 1
license = "MIT"

[runtimes.onnxruntime]
file = "libonnxruntime.so.1.31.1"
soname = "libonnxruntime.so.1"
library_env = "ORT_DYLIB_PATH"
sha256 = "{}"
size = {}
license = "MIT"
"#,
            sha256_hex(&model),
            model.len(),
            sha256_hex(&rt_bytes),
            rt_bytes.len()
        ),
    )
    .unwrap();
    std::fs::write(repo.join("conf/app.conf"), "key = value\n").unwrap();
    std::fs::write(repo.join("images/svc.toml"), DEFINITION).unwrap();
    let ctx = HostContext::new(&repo, &bin).unwrap();
    Fixture {
        _tmp: tmp,
        repo,
        ctx,
    }
}

impl Fixture {
    /// The plan as the JSON a plan file holds.
    fn plan(&self) -> Value {
        let def = load_definition(&self.repo.join("images/svc.toml")).unwrap();
        serde_json::to_value(plan_for(&def, &self.ctx).unwrap()).unwrap()
    }

    /// Writes `text` as images/<name>.toml and builds its plan.
    fn try_plan(&self, name: &str, text: &str) -> Result<Value, Error> {
        let path = self.repo.join(format!("images/{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let plan = plan_for(&load_definition(&path)?, &self.ctx)?;
        Ok(serde_json::to_value(plan).unwrap())
    }
}

fn entry<'a>(layer: &'a Value, target: &str) -> Option<&'a Value> {
    layer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == target)
}

#[test]
fn layers_go_from_system_to_application() {
    let f = fixture();
    let plan = f.plan();
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["name"], "svc");
    assert_eq!(plan["tags"], serde_json::json!(["latest"]));
    let layers = plan["layers"].as_array().unwrap();
    let comments: Vec<&str> = layers
        .iter()
        .map(|l| l["comment"].as_str().unwrap_or("model"))
        .collect();
    assert_eq!(
        comments,
        [
            "system libraries",
            "runtime libraries: onnxruntime",
            "model",
            "application: svc"
        ]
    );

    let system = &layers[0];
    assert_eq!(entry(system, "/lib64").unwrap()["symlink"], "usr/lib64");
    assert!(entry(system, "/usr/lib/x86_64-linux-gnu/libc.so.6").is_some());
    assert!(entry(system, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").is_some());
    // libm comes from the runtime library's closure only.
    assert!(entry(system, "/usr/lib/x86_64-linux-gnu/libm.so.6").is_some());
    assert!(entry(system, "/etc/ssl/certs/ca-certificates.crt").is_some());

    let runtime = &layers[1];
    assert_eq!(
        entry(runtime, "/usr/lib/onnxruntime/libonnxruntime.so.1").unwrap()["symlink"],
        "libonnxruntime.so.1.31.1"
    );
    assert!(entry(runtime, "/usr/lib/onnxruntime/libonnxruntime.so.1.31.1").is_some());

    assert_eq!(layers[2]["kind"], "model");
    assert_eq!(layers[2]["name"], "tiny");
    assert_eq!(layers[2]["target"], "/models/tiny/tiny.onnx");

    let app = &layers[3];
    assert!(entry(app, "/app/bin/svc").is_some());
    assert!(entry(app, "/usr/local/bin/http-probe").is_some());
    assert!(entry(app, "/etc/svc/app.conf").is_some());
    let data = entry(app, "/data").unwrap();
    assert_eq!(
        (&data["directory"], &data["uid"], &data["gid"]),
        (
            &Value::Bool(true),
            &serde_json::json!(65532),
            &serde_json::json!(65532)
        )
    );

    let config = &plan["config"];
    assert_eq!(
        config["env"],
        serde_json::json!([
            "A_FIRST=1",
            "ORT_DYLIB_PATH=/usr/lib/onnxruntime/libonnxruntime.so.1",
            "PORT=3000"
        ])
    );
    assert_eq!(config["healthcheck"]["intervalSeconds"], 10);
    assert!(config["healthcheck"].get("timeoutSeconds").is_none());
    assert_eq!(config["labels"]["org.opencontainers.image.title"], "svc");
    assert_eq!(
        plan["annotations"]["org.opencontainers.image.description"],
        "a fixture service"
    );
}

#[test]
fn entries_are_sorted_and_sources_absolute() {
    let plan = fixture().plan();
    for layer in plan["layers"].as_array().unwrap() {
        if layer["kind"] != "files" {
            assert!(Path::new(layer["source"].as_str().unwrap()).is_absolute());
            continue;
        }
        let targets: Vec<&str> = layer["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["target"].as_str().unwrap())
            .collect();
        let mut sorted = targets.clone();
        sorted.sort();
        assert_eq!(targets, sorted);
        for e in layer["entries"].as_array().unwrap() {
            if let Some(src) = e.get("source") {
                assert!(Path::new(src.as_str().unwrap()).is_absolute(), "{e}");
            }
        }
    }
}

#[test]
fn two_plans_are_byte_identical() {
    let f = fixture();
    let a = serde_json::to_string(&f.plan()).unwrap();
    let b = serde_json::to_string(&f.plan()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn unknown_field_is_refused() {
    let f = fixture();
    let err = f
        .try_plan("svc", &format!("colour = \"red\"\n{DEFINITION}"))
        .unwrap_err();
    assert!(matches!(err, Error::Toml { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("svc.toml") && msg.contains("unknown field"),
        "{msg}"
    );
}

#[test]
fn unknown_model_and_runtime_are_named() {
    let f = fixture();
    let err = f
        .try_plan("svc", &DEFINITION.replace(r#"["tiny"]"#, r#"["huge"]"#))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::UnknownAsset { kind: "model", .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("`huge`") && msg.contains("other, tiny"),
        "{msg}"
    );

    let err = f
        .try_plan(
            "svc",
            &DEFINITION.replace(r#"["onnxruntime"]"#, r#"["tvm"]"#),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownAsset {
                kind: "runtime",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn missing_binary_says_how_to_build_it() {
    let f = fixture();
    std::fs::remove_file(f.ctx.bin_dir.join("svc")).unwrap();
    let def = load_definition(&f.repo.join("images/svc.toml")).unwrap();
    let msg = plan_for(&def, &f.ctx).unwrap_err().to_string();
    assert!(msg.contains("cargo build --release -p svc-crate"), "{msg}");
}

#[test]
fn a_binary_that_is_not_elf_is_refused() {
    let f = fixture();
    std::fs::write(f.ctx.bin_dir.join("svc"), "#!/bin/sh\n").unwrap();
    let def = load_definition(&f.repo.join("images/svc.toml")).unwrap();
    let err = plan_for(&def, &f.ctx).unwrap_err();
    assert!(matches!(err, Error::NotElf { .. }), "{err:?}");
}

#[test]
fn a_corrupt_asset_is_refused() {
    let f = fixture();
    std::fs::write(
        f.ctx.assets_dir.join("models/tiny/tiny.onnx"),
        vec![0u8; 4096],
    )
    .unwrap();
    let def = load_definition(&f.repo.join("images/svc.toml")).unwrap();
    let msg = plan_for(&def, &f.ctx).unwrap_err().to_string();
    assert!(
        msg.contains("sha256") && msg.contains("fetch-assets"),
        "{msg}"
    );
}

#[test]
fn model_licence_must_be_in_the_labels() {
    let f = fixture();
    let text = DEFINITION.replace("MIT AND LicenseRef-test", "MIT");
    let msg = f.try_plan("svc", &text).unwrap_err().to_string();
    assert!(msg.contains("LicenseRef-test"), "{msg}");
}

#[test]
fn inconsistent_definitions_are_refused() {
    let f = fixture();
    let cases = [
        ("other", DEFINITION.to_owned(), "differs from the file name"),
        (
            "svc",
            DEFINITION.replace("binary = \"svc\"", "nixpkgs = \"svc\""),
            "[source]",
        ),
        (
            "svc",
            DEFINITION.replace("\"/data\"", "\"data/\""),
            "not a normalised absolute path",
        ),
        (
            "svc",
            DEFINITION.replace("3000/tcp", "3000/sctp"),
            "exposed port",
        ),
        (
            "svc",
            DEFINITION.replace("conf/app.conf", "../outside"),
            "stay inside",
        ),
        (
            "svc",
            DEFINITION.replace("conf/app.conf", "conf/missing.conf"),
            "does not exist",
        ),
        (
            "svc",
            DEFINITION.replace(
                "PORT = \"3000\"",
                "ORT_DYLIB_PATH = \"/elsewhere.so\", PORT = \"3000\"",
            ),
            "contradicts",
        ),
        (
            "svc",
            format!("{DEFINITION}\n[layers]\nmax = 3\n"),
            "needs 4 layers",
        ),
    ];
    for (name, text, expected) in cases {
        let msg = f.try_plan(name, &text).unwrap_err().to_string();
        assert!(msg.contains(expected), "{expected}: {msg}");
    }
}

#[test]
fn nix_only_images_are_refused_with_the_reason() {
    let f = fixture();
    let text = r#"
name = "qdrant"
[source]
nixpkgs = "qdrant"
host_unsupported = "Debian has no qdrant package"
[config]
entrypoint = ["/bin/qdrant"]
"#;
    let err = f.try_plan("qdrant", text).unwrap_err();
    assert!(matches!(err, Error::HostUnsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("Debian has no qdrant package"));
}

#[test]
fn host_binaries_keep_their_paths_and_symlinks() {
    let f = fixture();
    let text = r#"
name = "redis"
[source]
nixpkgs = "redis"
host_binaries = ["/usr/bin/redis-server", "/usr/bin/redis-cli"]
[config]
entrypoint = ["/usr/bin/redis-server"]
[directories]
paths = ["/data"]
"#;
    let plan = f.try_plan("redis", text).unwrap();
    let layers = plan["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "no runtime, no models");
    let app = &layers[1];
    // Debian ships redis-server as a link to redis-check-rdb (argv[0] picks the mode).
    assert_eq!(
        entry(app, "/usr/bin/redis-server").unwrap()["symlink"],
        "redis-check-rdb"
    );
    assert!(entry(app, "/usr/bin/redis-check-rdb")
        .unwrap()
        .get("source")
        .is_some());
    assert!(entry(app, "/usr/bin/redis-cli").is_some());
    assert!(entry(&layers[0], "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2").is_some());
    assert!(plan["config"]["env"].as_array().unwrap().is_empty());
}

#[test]
fn fixture_plan_is_accepted_by_the_schema_and_ocipack() {
    let plan = fixture().plan();
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plan.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&plan)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let text = serde_json::to_string(&plan).unwrap();
    ocipack::plan::Plan::from_json(&text, "fixture", None).unwrap();
}

#[test]
fn libraries_from_ld_so_conf_only_dirs_get_ld_library_path() {
    // The image has no ld.so.cache: a library the host finds only through a
    // directory of ld.so.conf (like /usr/local/lib) needs LD_LIBRARY_PATH.
    let mut f = fixture();
    let src = f.repo.join("../src");
    let libdir = f.repo.join("../locallib");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::write(src.join("fix.c"), "int fix(void) { return 42; }\n").unwrap();
    std::fs::write(
        src.join("usefix.c"),
        "int fix(void);\nint main(void) { return fix() == 42 ? 0 : 1; }\n",
    )
    .unwrap();
    let lib = libdir.join("libfix.so.1");
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libfix.so.1",
            "-o",
            lib.to_str().unwrap(),
            "fix.c",
        ],
        &src,
    );
    std::os::unix::fs::symlink("libfix.so.1", libdir.join("libfix.so")).unwrap();
    let svc = f.ctx.bin_dir.join("svc");
    gcc(
        &[
            "-o",
            svc.to_str().unwrap(),
            "usefix.c",
            "-L",
            libdir.to_str().unwrap(),
            "-lfix",
        ],
        &src,
    );
    let libdir = libdir.canonicalize().unwrap();
    f.ctx.search.configured.insert(0, libdir.clone());
    let plan = f.plan();
    let env: Vec<&str> = plan["config"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected = format!("LD_LIBRARY_PATH={}", libdir.display());
    assert!(env.contains(&expected.as_str()), "{env:?}");
    let system = &plan["layers"][0];
    assert!(entry(system, libdir.join("libfix.so.1").to_str().unwrap()).is_some());
}
