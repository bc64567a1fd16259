//! ELF closure resolution against real host binaries and gcc-built fixtures.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ocipack_host::{elf_closure, Error, FoundVia, Root, SearchPath, Tree};

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// What `ldd` says: (name, resolved path) pairs. Only tests use ldd, as an
/// independent check of the Rust resolver.
fn ldd(path: &str) -> BTreeSet<(String, PathBuf)> {
    let out = Command::new("ldd").arg(path).output().expect("run ldd");
    assert!(out.status.success(), "ldd {path}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some((name, rest)) = line.split_once(" => ") {
                let path = rest.split(" (").next().unwrap();
                Some((name.to_owned(), PathBuf::from(path)))
            } else if line.starts_with('/') {
                let path = line.split(" (").next().unwrap();
                Some((path.to_owned(), PathBuf::from(path)))
            } else {
                None // linux-vdso.so.1 lives in the kernel
            }
        })
        .collect()
}

#[test]
fn redis_server_closure_matches_ldd() {
    let search = SearchPath::from_host().unwrap();
    let libs = elf_closure(&[Root::same("/usr/bin/redis-server")], &search).unwrap();
    let ours: BTreeSet<(String, PathBuf)> = libs
        .iter()
        .map(|l| (l.name.clone(), l.host.clone()))
        .collect();
    assert_eq!(ours, ldd("/usr/bin/redis-server"));
    let names: Vec<&str> = libs.iter().map(|l| l.name.as_str()).collect();
    assert!(names.contains(&"libc.so.6"), "{names:?}");
    assert!(names.contains(&LOADER), "{names:?}");
    let loader = libs.iter().find(|l| l.name == LOADER).unwrap();
    assert_eq!(loader.found_via, FoundVia::Interpreter);
}

#[test]
fn several_roots_share_one_closure() {
    let search = SearchPath::from_host().unwrap();
    let roots = [
        Root::same("/usr/bin/redis-server"),
        Root::same("/usr/bin/redis-cli"),
    ];
    let libs = elf_closure(&roots, &search).unwrap();
    let mut expected = ldd("/usr/bin/redis-server");
    expected.extend(ldd("/usr/bin/redis-cli"));
    let ours: BTreeSet<(String, PathBuf)> = libs
        .iter()
        .map(|l| (l.name.clone(), l.host.clone()))
        .collect();
    assert_eq!(ours, expected);
    let targets: Vec<&PathBuf> = libs.iter().map(|l| &l.target).collect();
    let mut sorted = targets.clone();
    sorted.sort();
    assert_eq!(targets, sorted, "closure must come out sorted");
}

#[test]
fn host_search_path_reads_ld_so_conf_includes() {
    let search = SearchPath::from_host().unwrap();
    // Debian's /etc/ld.so.conf only includes /etc/ld.so.conf.d/*.conf.
    assert!(search
        .configured
        .contains(&PathBuf::from("/usr/lib/x86_64-linux-gnu")));
    assert!(search.configured.contains(&PathBuf::from("/usr/local/lib")));
}

#[test]
fn loader_path_is_mirrored_with_merged_usr_symlinks() {
    let mut tree = Tree::default();
    tree.mirror(Path::new(LOADER)).unwrap();
    let entries = serde_json::to_value(tree.to_entries()).unwrap();
    let has = |target: &str, key: &str| {
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == target && e.get(key).is_some())
    };
    // Debian 12: /lib64 -> usr/lib64, /usr/lib64/ld-linux-x86-64.so.2 is an
    // absolute link into /lib/x86_64-linux-gnu, and /lib -> usr/lib.
    assert!(has("/lib64", "symlink"), "{entries:#}");
    assert!(has("/lib", "symlink"), "{entries:#}");
    assert!(
        has("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "source"),
        "{entries:#}"
    );
    let real = std::fs::canonicalize(LOADER).unwrap();
    assert!(has(real.to_str().unwrap(), "source"));
}

fn gcc(args: &[&str], dir: &Path) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run gcc");
    assert!(out.status.success(), "gcc {args:?}: {out:?}");
}

/// A program in `bin/` that needs `libfix.so.1` from `lib/` through
/// RUNPATH `$ORIGIN/../lib`, with the usual soname symlink.
fn origin_fixture(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("fix.c"), "int fix(void) { return 42; }\n").unwrap();
    std::fs::write(
        dir.join("main.c"),
        "int fix(void);\nint main(void) { return fix() == 42 ? 0 : 1; }\n",
    )
    .unwrap();
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libfix.so.1",
            "-o",
            "lib/libfix.so.1.0.0",
            "fix.c",
        ],
        dir,
    );
    std::os::unix::fs::symlink("libfix.so.1.0.0", dir.join("lib/libfix.so.1")).unwrap();
    std::os::unix::fs::symlink("libfix.so.1", dir.join("lib/libfix.so")).unwrap();
    gcc(
        &[
            "-o",
            "bin/prog",
            "main.c",
            "-Llib",
            "-lfix",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
        dir,
    );
}

#[test]
fn origin_runpath_is_resolved_and_moves_with_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    origin_fixture(tmp.path());
    let prog = tmp.path().join("bin/prog");
    // The fixture really runs, so RUNPATH is what the loader uses.
    assert!(Command::new(&prog).status().unwrap().success());

    let search = SearchPath::from_host().unwrap();
    let root = Root {
        host: prog.clone(),
        target: PathBuf::from("/app/bin/prog"),
    };
    let libs = elf_closure(&[root], &search).unwrap();
    let fix = libs
        .iter()
        .find(|l| l.name == "libfix.so.1")
        .expect("libfix");
    assert_eq!(fix.host, tmp.path().join("lib/libfix.so.1"));
    assert_eq!(fix.target, PathBuf::from("/app/lib/libfix.so.1"));
    assert_eq!(fix.found_via, FoundVia::EmbeddedPath);
    assert!(libs.iter().any(|l| l.name == "libc.so.6"));

    // Independent check: ldd agrees on where libfix comes from (it prints
    // the unnormalised bin/../lib path, so compare real files).
    let seen = ldd(prog.to_str().unwrap());
    let (_, ldd_path) = seen.iter().find(|(n, _)| n == "libfix.so.1").unwrap();
    assert_eq!(
        std::fs::canonicalize(ldd_path).unwrap(),
        std::fs::canonicalize(&fix.host).unwrap()
    );
}

#[test]
fn missing_library_names_it_and_who_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    origin_fixture(tmp.path());
    std::fs::remove_file(tmp.path().join("lib/libfix.so.1")).unwrap();
    let prog = tmp.path().join("bin/prog");
    let err = elf_closure(&[Root::same(&prog)], &SearchPath::from_host().unwrap()).unwrap_err();
    assert!(matches!(err, Error::MissingLibrary { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("libfix.so.1"), "{msg}");
    assert!(msg.contains(prog.to_str().unwrap()), "{msg}");
    assert!(msg.contains("/usr/lib/x86_64-linux-gnu"), "{msg}");
}

#[test]
fn a_text_file_is_not_elf() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let err = elf_closure(&[Root::same(&script)], &SearchPath::from_host().unwrap()).unwrap_err();
    assert!(matches!(err, Error::NotElf { .. }), "{err:?}");
    assert!(err.to_string().contains("run.sh: not an ELF file"), "{err}");
}

#[test]
fn wrong_class_libraries_are_skipped() {
    // A 32-bit libc.so.6 first in the search path must not satisfy a 64-bit binary.
    let tmp = tempfile::tempdir().unwrap();
    let mut fake = vec![0u8; 64];
    fake[..4].copy_from_slice(b"\x7fELF");
    fake[4] = 1; // ELFCLASS32
    fake[5] = 1;
    std::fs::write(tmp.path().join("libc.so.6"), &fake).unwrap();
    let mut search = SearchPath::from_host().unwrap();
    search.configured.insert(0, tmp.path().to_owned());
    let libs = elf_closure(&[Root::same("/usr/bin/redis-cli")], &search).unwrap();
    let libc = libs.iter().find(|l| l.name == "libc.so.6").unwrap();
    assert_ne!(libc.host, tmp.path().join("libc.so.6"));
}
