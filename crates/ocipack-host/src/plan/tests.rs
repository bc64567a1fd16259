//! Each step of `plan_for` on its own, with files under a temporary
//! directory and this test binary as the ELF program (these unit tests also
//! run in Nix's sandbox, which has no /usr/bin and no Debian libraries).

use std::path::{Path, PathBuf};

use ocipack::plan::Entry;

use super::*;

/// A definition parsed from TOML as `images/<name>.toml` under `repo`.
fn definition(repo: &Path, text: &str) -> Definition {
    let mut def: Definition = toml::from_str(text).unwrap();
    def.path = repo.join("images").join(format!("{}.toml", def.name));
    def
}

const CRATE: &str = r#"
name = "svc"
description = "a service"
probe = true
[source]
crate = "svc-crate"
binary = "svc"
[config]
entrypoint = ["/app/bin/svc"]
env = { PORT = "3000" }
working_dir = "/home/app"
exposed_ports = ["3000/tcp"]
stop_signal = "SIGTERM"
[healthcheck]
test = ["CMD", "/app/bin/svc", "--healthcheck"]
retries = 3
[files]
"/etc/svc.conf" = "conf/svc.conf"
[directories]
paths = ["/data"]
[labels]
"org.opencontainers.image.title" = "the service"
"#;

/// This test binary: an ELF program wherever the tests run.
fn elf() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// A repository with `svc` and `http-probe` (copies of [`elf`]) in its bin
/// dir and `conf/svc.conf`; no CA bundle.
struct Repo {
    _tmp: tempfile::TempDir,
    ctx: HostContext,
}

fn repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("conf")).unwrap();
    std::fs::write(root.join("conf/svc.conf"), "x = 1\n").unwrap();
    for b in ["svc", "http-probe"] {
        std::fs::copy(elf(), bin.join(b)).unwrap();
    }
    let mut ctx = HostContext::new(&root, &bin).unwrap();
    ctx.ca_bundle = None;
    Repo { _tmp: tmp, ctx }
}

impl Repo {
    fn definition(&self, text: &str) -> Definition {
        definition(&self.ctx.repo_root, text)
    }

    fn planning<'a>(&'a self, def: &'a Definition) -> Planning<'a> {
        Planning {
            def,
            host: &self.ctx,
        }
    }
}

fn targets(tree: &Tree) -> Vec<&str> {
    tree.targets().collect()
}

fn entry<'a>(entries: &'a [Entry], target: &str) -> &'a Entry {
    entries.iter().find(|e| e.target == target).unwrap()
}

#[test]
fn program_puts_the_binary_and_the_probe_in_the_application() {
    let r = repo();
    let def = r.definition(CRATE);
    let p = r.planning(&def);
    let mut parts = Parts::default();
    program(&p, &mut parts).unwrap();
    assert_eq!(targets(&parts.app), ["/app/bin/svc", PROBE_TARGET]);
    let roots: Vec<_> = parts.roots.iter().map(|r| r.target.clone()).collect();
    assert_eq!(roots, [PathBuf::from("/app/bin/svc"), PROBE_TARGET.into()]);
    assert!(parts.system.is_empty() && parts.env.is_empty());
}

#[test]
fn workspace_binaries_go_to_usr_local_bin() {
    let r = repo();
    let text = CRATE.replace("probe = true", "probe = false").replace(
        "binary = \"svc\"",
        "binary = \"svc\"\nworkspace_binaries = [\"http-probe\"]",
    );
    let def = r.definition(&text);
    let p = r.planning(&def);
    let mut parts = Parts::default();
    program(&p, &mut parts).unwrap();
    assert_eq!(
        targets(&parts.app),
        ["/app/bin/svc", "/usr/local/bin/http-probe"]
    );
}

#[test]
fn program_refuses_a_missing_binary_and_nix_only_images() {
    let r = repo();
    std::fs::remove_file(r.ctx.bin_dir.join("http-probe")).unwrap();
    let def = r.definition(CRATE);
    let p = r.planning(&def);
    let err = program(&p, &mut Parts::default()).unwrap_err();
    assert!(err.to_string().contains("-p http-probe"), "{err}");

    let def = definition(
        &r.ctx.repo_root,
        "name = \"q\"\n[source]\nnixpkgs = \"q\"\nhost_unsupported = \"no package\"\n[config]\ncmd = [\"q\"]\n",
    );
    let p = r.planning(&def);
    let err = program(&p, &mut Parts::default()).unwrap_err();
    assert!(matches!(err, Error::HostUnsupported { .. }), "{err:?}");
}

#[test]
fn program_mirrors_host_binaries_at_their_paths() {
    let r = repo();
    let exe = elf().canonicalize().unwrap();
    let exe = exe.to_str().unwrap();
    let def = definition(
        &r.ctx.repo_root,
        &format!("name = \"t\"\n[source]\nnixpkgs = \"t\"\nhost_binaries = [\"{exe}\"]\n[config]\nentrypoint = [\"{exe}\"]\n"),
    );
    let p = r.planning(&def);
    let mut parts = Parts::default();
    program(&p, &mut parts).unwrap();
    assert!(targets(&parts.app).contains(&exe));
    assert_eq!(parts.roots[0].host, PathBuf::from(exe));
}

#[test]
fn runtimes_add_the_library_its_soname_link_and_ort_dylib_path() {
    let r = repo();
    let def = r.definition(CRATE);
    let p = r.planning(&def);
    let rt = CheckedAsset {
        name: "onnxruntime".into(),
        file: "libonnxruntime.so.1.2.3".into(),
        soname: "libonnxruntime.so.1".into(),
        library_env: Some("ORT_DYLIB_PATH".into()),
        source: "/assets/libonnxruntime.so.1.2.3".into(),
    };
    let mut parts = Parts::default();
    runtimes(&p, &[rt], &mut parts).unwrap();
    assert_eq!(
        targets(&parts.runtime),
        [
            "/usr/lib/onnxruntime/libonnxruntime.so.1",
            "/usr/lib/onnxruntime/libonnxruntime.so.1.2.3"
        ]
    );
    assert_eq!(
        parts.env,
        [(
            "ORT_DYLIB_PATH".to_owned(),
            "/usr/lib/onnxruntime/libonnxruntime.so.1".to_owned()
        )]
    );
    assert_eq!(parts.roots.len(), 1);
}

#[test]
fn elf_libraries_put_the_closure_in_the_system_layer() {
    let r = repo();
    let def = r.definition(CRATE);
    let p = r.planning(&def);
    let mut parts = Parts::default();
    parts.roots.push(Root::same(elf()));
    elf_libraries(&p, &mut parts).unwrap();
    let system = targets(&parts.system);
    for name in ["/libc.so.6", "/ld-linux-x86-64.so.2"] {
        assert!(
            system.iter().any(|t| t.ends_with(name)),
            "{name}: {system:?}"
        );
    }
    assert!(parts.app.is_empty(), "nothing moved with $ORIGIN");
}

#[test]
fn files_take_the_ca_bundle_files_and_directories() {
    let mut r = repo();
    let ca = r.ctx.repo_root.join("ca.crt");
    std::fs::write(&ca, "cert\n").unwrap();
    r.ctx.ca_bundle = Some(ca.clone());
    let def = r.definition(CRATE);
    let p = r.planning(&def);
    let mut parts = Parts::default();
    files(&p, &mut parts).unwrap();
    assert!(targets(&parts.system).contains(&ca.to_str().unwrap()));
    let app = parts.app.to_entries();
    assert_eq!(
        entry(&app, "/etc/svc.conf").source,
        Some(r.ctx.repo_root.join("conf/svc.conf"))
    );
    let data = entry(&app, "/data");
    assert!(data.directory);
    assert_eq!((data.uid, data.gid), (Some(65532), Some(65532)));

    std::fs::remove_file(r.ctx.repo_root.join("conf/svc.conf")).unwrap();
    let msg = files(&p, &mut Parts::default()).unwrap_err().to_string();
    assert!(msg.contains("does not exist"), "{msg}");
}

/// Issue 16: the frontend's `[files]` (a Next.js build) are packed as they
/// are; a native addon of this machine in them would reach the arm64 image
/// unnoticed. An ELF object of another machine is refused, naming the file
/// and both machines; this machine's own objects and other files pass.
#[test]
fn files_refuse_an_elf_object_of_another_machine() {
    let r = repo();
    let addon_dir = r.ctx.repo_root.join("conf/node_modules/addon");
    std::fs::create_dir_all(&addon_dir).unwrap();
    std::fs::copy(elf(), addon_dir.join("addon.node")).unwrap();
    let def = r.definition(&CRATE.replace(
        r#""/etc/svc.conf" = "conf/svc.conf""#,
        r#""/etc/svc.conf" = "conf/svc.conf"
"/app" = "conf""#,
    ));
    // This machine's build: packed.
    files(&r.planning(&def), &mut Parts::default()).unwrap();
    // The same tree for the other architecture: refused.
    let mut other = r.ctx.clone();
    let host = crate::elf::Target::host();
    other.target = crate::elf::Target {
        architecture: if host.architecture == "arm64" {
            "amd64"
        } else {
            "arm64"
        }
        .into(),
        machine: if host.machine == crate::elf::EM_AARCH64 {
            crate::elf::EM_X86_64
        } else {
            crate::elf::EM_AARCH64
        },
        triplet: "other-linux-gnu".into(),
        sysroot: Some(r.ctx.repo_root.clone()),
    };
    let p = Planning {
        def: &def,
        host: &other,
    };
    let msg = files(&p, &mut Parts::default()).unwrap_err().to_string();
    assert!(msg.contains("addon.node"), "{msg}");
    assert!(
        msg.contains(&format!("linux/{}", other.target.architecture)),
        "{msg}"
    );
    assert!(msg.contains("native addon"), "{msg}");
}

#[test]
fn env_merges_sorted_and_refuses_contradictions() {
    let r = repo();
    let def = r.definition(CRATE);
    let p = r.planning(&def);
    let builder = [
        ("A".to_owned(), "1".to_owned()),
        ("PORT".to_owned(), "3000".to_owned()),
    ];
    assert_eq!(env(&p, &builder).unwrap(), ["A=1", "PORT=3000"]);
    let msg = env(&p, &[("PORT".to_owned(), "1".to_owned())])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("env PORT=3000 contradicts the builder's PORT=1"),
        "{msg}"
    );
}

#[test]
fn layers_go_from_system_to_application_within_max() {
    let r = repo();
    let mut def = r.definition(CRATE);
    let mut parts = Parts::default();
    parts
        .runtime
        .symlink(Path::new("/usr/lib/rt/librt.so.1"), "librt.so.1.0")
        .unwrap();
    let assets = Assets {
        models: vec![CheckedAsset {
            name: "m".into(),
            file: "m.onnx".into(),
            soname: String::new(),
            library_env: None,
            source: "/assets/m.onnx".into(),
        }],
        runtimes: vec![CheckedAsset {
            name: "rt".into(),
            file: "librt.so.1.0".into(),
            soname: "librt.so.1".into(),
            library_env: None,
            source: "/assets/librt.so.1.0".into(),
        }],
    };
    let p = r.planning(&def);
    let got = layers(&p, &assets, &parts).unwrap();
    let kinds: Vec<String> = got
        .iter()
        .map(|l| match l {
            Layer::Files(f) => f.comment.clone(),
            Layer::Model(m) => format!("model {}", m.target),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "system libraries",
            "runtime libraries: rt",
            "model /models/m/m.onnx",
            "application: svc"
        ]
    );

    def.layers.max = 3;
    let p = r.planning(&def);
    let err = layers(&p, &assets, &parts).unwrap_err();
    assert!(err.to_string().contains("needs 4 layers"), "{err}");
}

#[test]
fn config_carries_the_definition_and_default_labels() {
    let r = repo();
    let def = r.definition(CRATE);
    let p = r.planning(&def);
    let labels = labels(&def);
    // A label the definition sets wins; the description fills the gap.
    assert_eq!(labels["org.opencontainers.image.title"], "the service");
    assert_eq!(labels["org.opencontainers.image.description"], "a service");
    let c = config(&p, vec!["PORT=3000".into()], labels.clone());
    assert_eq!(c.entrypoint, ["/app/bin/svc"]);
    assert_eq!(c.env, ["PORT=3000"]);
    assert_eq!(c.working_dir.as_deref(), Some("/home/app"));
    assert_eq!(c.exposed_ports, ["3000/tcp"]);
    assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
    assert_eq!(c.user, None);
    assert_eq!(c.labels, labels);
    let hc = c.healthcheck.unwrap();
    assert_eq!((hc.retries, hc.interval_seconds), (Some(3), None));
}
