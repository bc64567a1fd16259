//! The shared-library closure of ELF objects, resolved the way the host's
//! dynamic loader would resolve it (see ld.so(8)), without running anything.
//!
//! Search order for a `DT_NEEDED` name without a slash: `DT_RPATH` of the
//! requesting object and of the executable (only when the requester has no
//! `DT_RUNPATH`), then `DT_RUNPATH` of the requester, then the directories of
//! `/etc/ld.so.conf` (what `ld.so.cache` is built from), then the loader's
//! built-in directories. `LD_LIBRARY_PATH` is ignored on purpose: the image
//! must not depend on the builder's environment. Like glibc, a name resolved
//! once is reused for every later request of the same name.
//!
//! Every object carries two paths: where it is on the host, and where it
//! goes in the image. They differ only for objects found through `$ORIGIN`
//! of an object that moves (the application binary goes to `/app/bin`), so
//! `$ORIGIN`-relative libraries land next to it in the image as well.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

use crate::error::{io, Error, Result};

/// How a library was found, which decides where its directory must be
/// known to the loader inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FoundVia {
    /// The `PT_INTERP` program interpreter.
    Interpreter,
    /// A `DT_RPATH` or `DT_RUNPATH` directory, recorded in the object itself.
    EmbeddedPath,
    /// A directory from `/etc/ld.so.conf`; the image has no `ld.so.cache`,
    /// so a directory outside the loader's built-in list needs `LD_LIBRARY_PATH`.
    Configured,
    /// One of the loader's built-in directories.
    Default,
}

/// One library of a closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lib {
    /// The `DT_NEEDED` name, or the interpreter path.
    pub name: String,
    /// Where it was found on the host (not symlink-resolved: soname links matter).
    pub host: PathBuf,
    /// Where it must be in the image.
    pub target: PathBuf,
    /// The first object that needed it (host path), for messages.
    pub needed_by: PathBuf,
    /// How it was found.
    pub found_via: FoundVia,
}

/// An object to resolve: its host path and its path in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Path on the host.
    pub host: PathBuf,
    /// Path in the image.
    pub target: PathBuf,
}

impl Root {
    /// An object that keeps its host path in the image.
    pub fn same(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self {
            host: path.clone(),
            target: path,
        }
    }
}

/// The directories the loader searches after an object's own paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    /// Directories from ld.so.conf, in file order.
    pub configured: Vec<PathBuf>,
    /// The loader's built-in directories, in order.
    pub defaults: Vec<PathBuf>,
}

impl SearchPath {
    /// The host's search path: `/etc/ld.so.conf` (with its includes) and
    /// Debian's built-in directories for this architecture.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if an existing configuration file cannot be read.
    pub fn from_host() -> Result<Self> {
        Self::from_conf(Path::new("/etc/ld.so.conf"))
    }

    /// The directories of an ld.so.conf-style file (following `include`
    /// lines; a missing file gives none) and Debian's built-in directories.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if an existing configuration file cannot be read.
    pub fn from_conf(conf: &Path) -> Result<Self> {
        let mut configured = Vec::new();
        if conf.exists() {
            read_ld_so_conf(conf, &mut configured, 0)?;
        }
        Ok(Self {
            configured,
            defaults: default_dirs(),
        })
    }

    /// A search path of exactly these directories (for tests and cross builds).
    pub fn new(configured: Vec<PathBuf>, defaults: Vec<PathBuf>) -> Self {
        Self {
            configured,
            defaults,
        }
    }
}

/// The directories Debian's glibc searches without any ld.so.cache (what
/// `ld.so --help` lists as "system search path").
pub fn default_dirs() -> Vec<PathBuf> {
    let triplet = match std::env::consts::ARCH {
        "aarch64" => "aarch64-linux-gnu",
        "x86" => "i386-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    vec![
        PathBuf::from(format!("/lib/{triplet}")),
        PathBuf::from(format!("/usr/lib/{triplet}")),
        PathBuf::from("/lib"),
        PathBuf::from("/usr/lib"),
    ]
}

fn read_ld_so_conf(path: &Path, out: &mut Vec<PathBuf>, depth: u32) -> Result<()> {
    // Includes can name each other; glibc has no limit, but a loop must not hang us.
    if depth > 8 {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let base = path.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let include = line
            .strip_prefix("include")
            .filter(|rest| rest.starts_with([' ', '\t']));
        if let Some(pattern) = include {
            for pattern in pattern.split_whitespace() {
                for file in glob_files(&base.join(pattern))? {
                    read_ld_so_conf(&file, out, depth + 1)?;
                }
            }
        } else if line.starts_with("hwcap") {
            continue;
        } else {
            for dir in line
                .split([':', ',', ' ', '\t'])
                .filter(|d| d.starts_with('/'))
            {
                let dir = PathBuf::from(dir.trim_end_matches('/'));
                if !out.contains(&dir) {
                    out.push(dir);
                }
            }
        }
    }
    Ok(())
}

/// Files matching a pattern whose last component may hold `*`, sorted like glob(3).
fn glob_files(pattern: &Path) -> Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Ok(Vec::new());
    };
    let name = name.to_string_lossy();
    if !name.contains('*') {
        return Ok(if pattern.is_file() {
            vec![pattern.to_owned()]
        } else {
            Vec::new()
        });
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        if wildcard_match(&name, &entry.file_name().to_string_lossy()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn wildcard_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && wildcard_match(rest, &tail[i..]))
        }
    }
}

/// What we need from one parsed object.
struct Parsed {
    interp: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    soname: Option<String>,
    ident: ElfIdent,
}

/// Class, byte order and machine: a library must match its requester in all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ElfIdent {
    class: u8,
    data: u8,
    machine: u16,
}

fn read_ident(bytes: &[u8]) -> Option<ElfIdent> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let m = [bytes[18], bytes[19]];
    let machine = if bytes[5] == 2 {
        u16::from_be_bytes(m)
    } else {
        u16::from_le_bytes(m)
    };
    Some(ElfIdent {
        class: bytes[4],
        data: bytes[5],
        machine,
    })
}

fn parse(path: &Path) -> Result<Parsed> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let not_elf = |reason: String| Error::NotElf {
        path: path.to_owned(),
        reason,
    };
    let ident = read_ident(&bytes).ok_or_else(|| not_elf("no ELF magic".to_owned()))?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| not_elf(e.to_string()))?;
    let split = |v: &[&str]| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(Parsed {
        interp: elf.interpreter.map(str::to_owned),
        needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        soname: elf.soname.map(str::to_owned),
        ident,
    })
}

/// True if `path` is an ELF file of the same class, byte order and machine.
fn compatible(path: &Path, want: ElfIdent) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && read_ident(&head) == Some(want)
}

/// Lexically normalises an absolute path (`..` pops a component).
pub(crate) fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` in one RPATH/RUNPATH entry,
/// giving the directory on the host and in the image.
fn expand(entry: &str, object: &Root) -> (PathBuf, PathBuf) {
    let lib = match std::env::consts::ARCH {
        "aarch64" => "lib/aarch64-linux-gnu",
        _ => "lib/x86_64-linux-gnu",
    };
    let subst = |origin: &Path| {
        let origin = origin.to_string_lossy();
        let s = entry
            .replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin)
            .replace("${LIB}", lib)
            .replace("$LIB", lib)
            .replace("${PLATFORM}", std::env::consts::ARCH)
            .replace("$PLATFORM", std::env::consts::ARCH);
        normalise(Path::new(&s))
    };
    let dir = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    (subst(&dir(&object.host)), subst(&dir(&object.target)))
}

/// Resolves the shared-library closure of `roots`: every library they load,
/// transitively, plus the program interpreter. The roots themselves are not
/// in the result. Sorted by image path.
///
/// # Errors
///
/// [`Error::NotElf`] if a root is not ELF, [`Error::MissingLibrary`] naming
/// the library, who needs it and where it was searched for, [`Error::Io`].
pub fn elf_closure(roots: &[Root], search: &SearchPath) -> Result<Vec<Lib>> {
    let mut by_name: BTreeMap<String, Lib> = BTreeMap::new();
    let mut interps: BTreeMap<PathBuf, Lib> = BTreeMap::new();
    let mut visited: BTreeSet<PathBuf> = BTreeSet::new();
    // The loader satisfies a DT_NEEDED by the SONAME of any object already
    // loaded before searching (libc.so.6 needs ld-linux-x86-64.so.2, which
    // is the interpreter itself).
    let mut sonames: BTreeSet<String> = BTreeSet::new();
    for root in roots {
        let exe = parse(&root.host)?;
        let exe_rpath = if exe.runpath.is_empty() {
            exe.rpath.clone()
        } else {
            Vec::new()
        };
        let mut queue = VecDeque::from([(root.clone(), exe)]);
        while let Some((object, parsed)) = queue.pop_front() {
            let canonical = object.host.canonicalize().map_err(io(&object.host))?;
            if !visited.insert(canonical) {
                continue;
            }
            if let Some(soname) = &parsed.soname {
                sonames.insert(soname.clone());
            }
            if let Some(interp) = &parsed.interp {
                let path = PathBuf::from(interp);
                if !interps.contains_key(&path) {
                    if let Some(soname) = parse(&path)?.soname {
                        sonames.insert(soname);
                    }
                }
                interps.entry(path.clone()).or_insert_with(|| Lib {
                    name: interp.clone(),
                    host: path.clone(),
                    target: path,
                    needed_by: object.host.clone(),
                    found_via: FoundVia::Interpreter,
                });
            }
            for name in &parsed.needed {
                if by_name.contains_key(name) || sonames.contains(name) {
                    continue;
                }
                let lib = find(name, &object, &parsed, root, &exe_rpath, search)?;
                let next = parse(&lib.host)?;
                queue.push_back((
                    Root {
                        host: lib.host.clone(),
                        target: lib.target.clone(),
                    },
                    next,
                ));
                by_name.insert(name.clone(), lib);
            }
        }
    }
    let mut out: Vec<Lib> = interps.into_values().chain(by_name.into_values()).collect();
    out.sort_by(|a, b| a.target.cmp(&b.target).then(a.name.cmp(&b.name)));
    Ok(out)
}

fn find(
    name: &str,
    object: &Root,
    parsed: &Parsed,
    root: &Root,
    exe_rpath: &[String],
    search: &SearchPath,
) -> Result<Lib> {
    let lib = |host: PathBuf, target: PathBuf, found_via| Lib {
        name: name.to_owned(),
        host,
        target,
        needed_by: object.host.clone(),
        found_via,
    };
    if name.contains('/') {
        // A DT_NEEDED with a slash is opened as given, relative to nothing we can know.
        let path = PathBuf::from(name);
        if compatible(&path, parsed.ident) {
            return Ok(lib(path.clone(), path, FoundVia::EmbeddedPath));
        }
    }
    let mut candidates: Vec<(PathBuf, PathBuf, FoundVia)> = Vec::new();
    if parsed.runpath.is_empty() {
        for entry in &parsed.rpath {
            let (h, t) = expand(entry, object);
            candidates.push((h, t, FoundVia::EmbeddedPath));
        }
        for entry in exe_rpath {
            let (h, t) = expand(entry, root);
            candidates.push((h, t, FoundVia::EmbeddedPath));
        }
    }
    for entry in &parsed.runpath {
        let (h, t) = expand(entry, object);
        candidates.push((h, t, FoundVia::EmbeddedPath));
    }
    for dir in &search.configured {
        let via = if search.defaults.contains(dir) {
            FoundVia::Default
        } else {
            FoundVia::Configured
        };
        candidates.push((dir.clone(), dir.clone(), via));
    }
    for dir in &search.defaults {
        candidates.push((dir.clone(), dir.clone(), FoundVia::Default));
    }
    for (host_dir, target_dir, via) in &candidates {
        let host = host_dir.join(name);
        if compatible(&host, parsed.ident) {
            return Ok(lib(host, target_dir.join(name), *via));
        }
    }
    let mut searched: Vec<String> = Vec::new();
    for (dir, _, _) in &candidates {
        let dir = dir.display().to_string();
        if !searched.contains(&dir) {
            searched.push(dir);
        }
    }
    Err(Error::MissingLibrary {
        name: name.to_owned(),
        needed_by: object.host.clone(),
        searched: searched.join(":"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_glob() {
        assert!(wildcard_match("*.conf", "libc.conf"));
        assert!(wildcard_match("x86_64-*.conf", "x86_64-linux-gnu.conf"));
        assert!(!wildcard_match("*.conf", "libc.conf.dpkg-old"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b", "ac"));
    }

    #[test]
    fn ld_so_conf_includes_comments_and_loops() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            tmp.path().join("ld.so.conf"),
            "# comment\n/opt/a/lib  # trailing\ninclude conf.d/*.conf\nhwcap 0 nosegneg\n",
        )
        .unwrap();
        std::fs::write(d.join("b.conf"), "/opt/b/lib:/opt/c/lib/\n/opt/a/lib\n").unwrap();
        // An include loop must end, not hang.
        let back = format!(
            "include {}\n/opt/d/lib\n",
            tmp.path().join("ld.so.conf").display()
        );
        std::fs::write(d.join("c.conf"), back).unwrap();
        std::fs::write(d.join("ignored.txt"), "/opt/nope\n").unwrap();
        let search = SearchPath::from_conf(&tmp.path().join("ld.so.conf")).unwrap();
        let dirs: Vec<&str> = search
            .configured
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect();
        assert_eq!(
            dirs,
            ["/opt/a/lib", "/opt/b/lib", "/opt/c/lib", "/opt/d/lib"]
        );
        assert_eq!(search.defaults, default_dirs());
    }

    #[test]
    fn origin_expands_on_both_sides() {
        let object = Root {
            host: PathBuf::from("/work/target/release/svc"),
            target: PathBuf::from("/app/bin/svc"),
        };
        let (host, target) = expand("$ORIGIN/../lib", &object);
        assert_eq!(host, PathBuf::from("/work/target/lib"));
        assert_eq!(target, PathBuf::from("/app/lib"));
        let (host, _) = expand("${ORIGIN}/x/../y", &object);
        assert_eq!(host, PathBuf::from("/work/target/release/y"));
    }
}
