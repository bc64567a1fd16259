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

/// `e_machine` of x86-64 objects.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of AArch64 objects.
pub const EM_AARCH64: u16 = 183;

/// The machine an image is built for, and where its libraries come from.
///
/// For the host's own architecture there is no sysroot: libraries are the
/// host's. For another architecture (`linux/arm64` on this amd64 builder)
/// every library, the interpreter and every host program is looked up inside
/// `sysroot` (an unpacked set of that architecture's Debian packages) under
/// its image path: `/lib/ld-linux-aarch64.so.1` is read from
/// `SYSROOT/lib/ld-linux-aarch64.so.1`, never from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// OCI architecture: `amd64`, `arm64`.
    pub architecture: String,
    /// The ELF `e_machine` every object of the closure must have.
    pub machine: u16,
    /// Debian's multiarch triplet (`aarch64-linux-gnu`).
    pub triplet: String,
    /// Where the target's files are, for a cross build.
    pub sysroot: Option<PathBuf>,
}

impl Target {
    /// This machine's architecture, libraries from the host.
    pub fn host() -> Target {
        let (architecture, machine, triplet) = match std::env::consts::ARCH {
            "aarch64" => ("arm64", EM_AARCH64, "aarch64-linux-gnu"),
            _ => ("amd64", EM_X86_64, "x86_64-linux-gnu"),
        };
        Target {
            architecture: architecture.into(),
            machine,
            triplet: triplet.into(),
            sysroot: None,
        }
    }

    /// The target for OCI architecture `architecture` (`amd64` or `arm64`):
    /// the host itself when it is the host's, else a cross target whose
    /// files come from `sysroot`.
    ///
    /// # Errors
    ///
    /// An architecture other than amd64 and arm64, or a cross target whose
    /// sysroot has no loader (with what to run to make one).
    pub fn for_architecture(architecture: &str, sysroot: &Path) -> Result<Target> {
        let host = Target::host();
        if architecture == host.architecture {
            return Ok(host);
        }
        let (machine, triplet, loader) = match architecture {
            "arm64" => (EM_AARCH64, "aarch64-linux-gnu", "lib/ld-linux-aarch64.so.1"),
            "amd64" => (EM_X86_64, "x86_64-linux-gnu", "lib64/ld-linux-x86-64.so.2"),
            other => {
                return Err(Error::Io {
                    path: sysroot.to_owned(),
                    source: std::io::Error::other(format!(
                        "architecture {other:?} is not supported by the host builder (amd64, arm64)"
                    )),
                })
            }
        };
        if !sysroot.join(loader).exists() {
            return Err(Error::Io {
                path: sysroot.join(loader),
                source: std::io::Error::other(format!(
                    "the {architecture} sysroot has no loader; run scripts/setup-cross.sh (or pass --sysroot)"
                )),
            });
        }
        Ok(Target {
            architecture: architecture.into(),
            machine,
            triplet: triplet.into(),
            sysroot: Some(sysroot.to_owned()),
        })
    }

    /// The loader's search path for this target: the host's for the host,
    /// else Debian's built-in directories of the target's triplet (the
    /// image has no ld.so.cache; Debian's arm64 ld.so.conf.d names the same).
    ///
    /// # Errors
    ///
    /// As [`SearchPath::from_host`].
    pub fn search_path(&self) -> Result<SearchPath> {
        match self.sysroot {
            None => SearchPath::from_host(),
            Some(_) => Ok(SearchPath::new(Vec::new(), dirs_for(&self.triplet))),
        }
    }

    /// Where image path `path` is read from: itself, or inside the sysroot.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        match &self.sysroot {
            None => path.to_owned(),
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        }
    }

    fn machine_name(machine: u16) -> String {
        match machine {
            EM_X86_64 => "x86-64".into(),
            EM_AARCH64 => "AArch64".into(),
            3 => "i386".into(),
            40 => "ARM (32-bit)".into(),
            m => format!("machine {m}"),
        }
    }

    /// What the ELF file at `path` is built for ("x86-64 (64-bit)") when that
    /// is not this target's machine; `None` for an object of the target's
    /// machine and for anything that is not ELF. For files packed as they are
    /// (`[files]`), where a native addon of the build machine must not slip
    /// into another platform's image.
    pub fn foreign_elf(&self, path: &Path) -> Option<String> {
        let ident = ident_of(path)?;
        (ident.machine != self.machine || ident.class != 2).then(|| {
            format!(
                "{} ({}-bit)",
                Target::machine_name(ident.machine),
                if ident.class == 2 { 64 } else { 32 }
            )
        })
    }

    /// The target's machine by name ("AArch64").
    pub fn machine_label(&self) -> String {
        Target::machine_name(self.machine)
    }

    /// Refuses an object of another machine than the target's, naming both.
    fn check_machine(&self, path: &Path, ident: ElfIdent) -> Result<()> {
        if ident.machine == self.machine && ident.class == 2 {
            return Ok(());
        }
        Err(Error::Io {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "is an ELF object for {} ({}-bit), but the image is for linux/{} ({}); build it for that machine (e.g. cargo build --release --target {}) or take it from the {} sysroot",
                    Target::machine_name(ident.machine),
                    if ident.class == 2 { 64 } else { 32 },
                    self.architecture,
                    Target::machine_name(self.machine),
                    self.triplet.replace("-linux-gnu", "-unknown-linux-gnu"),
                    self.architecture
                ),
            ),
        })
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
    dirs_for(&Target::host().triplet)
}

/// Debian's built-in loader directories for multiarch triplet `triplet`.
pub fn dirs_for(triplet: &str) -> Vec<PathBuf> {
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
    let not_elf = |reason: String| Error::NotElf {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let len = usize::try_from(len).map_err(|_| not_elf(format!("{len} bytes is too big")))?;
    // Only what the loader reads to link the object is read (the headers,
    // PT_INTERP, PT_DYNAMIC and the dynamic string table), each at its own
    // offset in a zeroed buffer of the file's length, so a 100 MB program
    // costs a few pages, not 100 MB read into fresh memory.
    let mut bytes = vec![0u8; len];
    fill(&file, &mut bytes, 0, 64.min(len as u64)).map_err(not_elf)?;
    let ident = read_ident(&bytes).ok_or_else(|| not_elf("no ELF magic".to_owned()))?;
    let header = goblin::elf::Elf::parse_header(&bytes).map_err(|e| not_elf(e.to_string()))?;
    let ctx = goblin::container::Ctx::new(
        if header.e_ident[goblin::elf::header::EI_CLASS] == goblin::elf::header::ELFCLASS64 {
            goblin::container::Container::Big
        } else {
            goblin::container::Container::Little
        },
        goblin::container::Endian::from(
            header.e_ident[goblin::elf::header::EI_DATA] == goblin::elf::header::ELFDATA2LSB,
        ),
    );
    let phentsize = goblin::elf::ProgramHeader::size(ctx) as u64;
    fill(
        &file,
        &mut bytes,
        header.e_phoff,
        phentsize * u64::from(header.e_phnum),
    )
    .map_err(not_elf)?;
    let phdrs = goblin::elf::ProgramHeader::parse(
        &bytes,
        header.e_phoff as usize,
        usize::from(header.e_phnum),
        ctx,
    )
    .map_err(|e| not_elf(e.to_string()))?;
    let mut interp = None;
    for ph in &phdrs {
        use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP};
        if ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC {
            fill(&file, &mut bytes, ph.p_offset, ph.p_filesz).map_err(not_elf)?;
        }
        if ph.p_type == PT_INTERP && ph.p_filesz != 0 {
            // NUL-terminated; in range, filled just above.
            let at = &bytes[ph.p_offset as usize..(ph.p_offset + ph.p_filesz - 1) as usize];
            interp = std::str::from_utf8(at).ok().map(str::to_owned);
        }
    }
    let dynamic = goblin::elf::dynamic::Dynamic::parse(&bytes, &phdrs, ctx)
        .map_err(|e| not_elf(e.to_string()))?;
    let (mut needed, mut rpath, mut runpath, mut soname) =
        (Vec::new(), Vec::new(), Vec::new(), None);
    if let Some(dynamic) = &dynamic {
        let info = &dynamic.info;
        fill(&file, &mut bytes, info.strtab as u64, info.strsz as u64).map_err(not_elf)?;
        let strtab = goblin::strtab::Strtab::parse(&bytes, info.strtab, info.strsz, 0)
            .map_err(|e| not_elf(e.to_string()))?;
        if info.soname != 0 {
            soname = strtab.get_at(info.soname).map(str::to_owned);
        }
        if info.needed_count > 0 {
            needed = dynamic
                .get_libraries(&strtab)
                .into_iter()
                .map(str::to_owned)
                .collect();
        }
        for d in &dynamic.dyns {
            let list = match d.d_tag {
                goblin::elf::dynamic::DT_RPATH => &mut rpath,
                goblin::elf::dynamic::DT_RUNPATH => &mut runpath,
                _ => continue,
            };
            list.extend(strtab.get_at(d.d_val as usize));
        }
    }
    let split = |v: Vec<&str>| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(Parsed {
        interp,
        needed,
        rpath: split(rpath),
        runpath: split(runpath),
        soname,
        ident,
    })
}

/// Reads `n` bytes at offset `off` of `file` into the same place of `bytes`
/// (the file's length).
fn fill(
    file: &std::fs::File,
    bytes: &mut [u8],
    off: u64,
    n: u64,
) -> std::result::Result<(), String> {
    use std::os::unix::fs::FileExt;
    let len = bytes.len();
    let end = off
        .checked_add(n)
        .filter(|e| *e <= len as u64)
        .ok_or_else(|| {
            format!("{n} bytes at offset {off} lie beyond its end ({len} bytes); truncated?")
        })?;
    // Both fit in usize: `end <= len`.
    file.read_exact_at(&mut bytes[off as usize..end as usize], off)
        .map_err(|e| format!("cannot read {n} bytes at offset {off}: {e}"))
}

/// True if `path` is an ELF file of the same class, byte order and machine.
fn compatible(path: &Path, want: ElfIdent) -> bool {
    ident_of(path) == Some(want)
}

/// Class, byte order and machine of the ELF file at `path`, if it is one.
fn ident_of(path: &Path) -> Option<ElfIdent> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()?;
    read_ident(&head)
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
fn expand(entry: &str, object: &Root, target: &Target) -> (PathBuf, PathBuf) {
    let lib = format!("lib/{}", target.triplet);
    let lib = lib.as_str();
    let platform = match target.machine {
        EM_AARCH64 => "aarch64",
        _ => "x86_64",
    };
    let subst = |origin: &Path| {
        let origin = origin.to_string_lossy();
        let s = entry
            .replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin)
            .replace("${LIB}", lib)
            .replace("$LIB", lib)
            .replace("${PLATFORM}", platform)
            .replace("$PLATFORM", platform);
        normalise(Path::new(&s))
    };
    let dir = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    if !entry.contains("ORIGIN") {
        // An absolute directory: the image's, read from the sysroot.
        let t = subst(Path::new("/"));
        return (target.host_path(&t), t);
    }
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
    elf_closure_for(roots, search, &Target::host())
}

/// [`elf_closure`] for `target`: every root must be an ELF object of the
/// target's machine (else a clear error naming both machines), and for a
/// cross target the interpreter and every search directory are read inside
/// its sysroot (a library's `host` is the sysroot path, its `target` the
/// image path); the host's own libraries are never looked at.
///
/// # Errors
///
/// As [`elf_closure`], and [`Error::Io`] for a root of another machine.
pub fn elf_closure_for(roots: &[Root], search: &SearchPath, target: &Target) -> Result<Vec<Lib>> {
    let mut by_name: BTreeMap<String, Lib> = BTreeMap::new();
    let mut interps: BTreeMap<PathBuf, Lib> = BTreeMap::new();
    let mut visited: BTreeSet<PathBuf> = BTreeSet::new();
    // The loader satisfies a DT_NEEDED by the SONAME of any object already
    // loaded before searching (libc.so.6 needs ld-linux-x86-64.so.2, which
    // is the interpreter itself).
    let mut sonames: BTreeSet<String> = BTreeSet::new();
    for root in roots {
        let exe = parse(&root.host)?;
        target.check_machine(&root.host, exe.ident)?;
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
                let on_disk = target.host_path(&path);
                if !interps.contains_key(&path) {
                    let p = parse(&on_disk)?;
                    target.check_machine(&on_disk, p.ident)?;
                    if let Some(soname) = p.soname {
                        sonames.insert(soname);
                    }
                }
                interps.entry(path.clone()).or_insert_with(|| Lib {
                    name: interp.clone(),
                    host: on_disk,
                    target: path,
                    needed_by: object.host.clone(),
                    found_via: FoundVia::Interpreter,
                });
            }
            for name in &parsed.needed {
                if by_name.contains_key(name) || sonames.contains(name) {
                    continue;
                }
                let lib = find(name, &object, &parsed, root, &exe_rpath, search, target)?;
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
    target: &Target,
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
        if compatible(&target.host_path(&path), parsed.ident) {
            return Ok(lib(target.host_path(&path), path, FoundVia::EmbeddedPath));
        }
    }
    let mut candidates: Vec<(PathBuf, PathBuf, FoundVia)> = Vec::new();
    if parsed.runpath.is_empty() {
        for entry in &parsed.rpath {
            let (h, t) = expand(entry, object, target);
            candidates.push((h, t, FoundVia::EmbeddedPath));
        }
        for entry in exe_rpath {
            let (h, t) = expand(entry, root, target);
            candidates.push((h, t, FoundVia::EmbeddedPath));
        }
    }
    for entry in &parsed.runpath {
        let (h, t) = expand(entry, object, target);
        candidates.push((h, t, FoundVia::EmbeddedPath));
    }
    for dir in &search.configured {
        let via = if search.defaults.contains(dir) {
            FoundVia::Default
        } else {
            FoundVia::Configured
        };
        candidates.push((target.host_path(dir), dir.clone(), via));
    }
    for dir in &search.defaults {
        candidates.push((target.host_path(dir), dir.clone(), FoundVia::Default));
    }
    let mut skipped: Vec<String> = Vec::new();
    for (host_dir, target_dir, via) in &candidates {
        let host = host_dir.join(name);
        if compatible(&host, parsed.ident) {
            return Ok(lib(host, target_dir.join(name), *via));
        }
        // Like ld.so, an object of another machine is passed over; the
        // error says so, since it is the likely mistake.
        if let Some(other) = ident_of(&host).filter(|i| *i != parsed.ident) {
            skipped.push(format!(
                "{} is for {}, not {}",
                host.display(),
                Target::machine_name(other.machine),
                Target::machine_name(parsed.ident.machine)
            ));
        }
    }
    let mut searched: Vec<String> = Vec::new();
    for (dir, _, _) in &candidates {
        let dir = dir.display().to_string();
        if !searched.contains(&dir) {
            searched.push(dir);
        }
    }
    let note = if skipped.is_empty() {
        String::new()
    } else {
        format!(" (passed over, wrong machine: {})", skipped.join("; "))
    };
    Err(Error::MissingLibrary {
        name: name.to_owned(),
        needed_by: object.host.clone(),
        searched: format!("{}{note}", searched.join(":")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` reads only the linking parts; it must see what goblin's
    /// full parse of the whole file sees, for every object of a real closure.
    #[test]
    fn the_partial_read_parses_like_the_whole_file() {
        let exe = std::env::current_exe().unwrap();
        // The test binary's closure from this machine; in a Nix sandbox
        // (no /etc/ld.so.conf) what does not resolve leaves the binary alone.
        let libs = elf_closure(&[Root::same(&exe)], &SearchPath::from_host().unwrap())
            .unwrap_or_else(|e| {
                assert!(!Path::new("/etc/ld.so.conf").exists(), "{e}");
                Vec::new()
            });
        for path in std::iter::once(exe).chain(libs.into_iter().map(|l| l.host)) {
            let bytes = std::fs::read(&path).unwrap();
            let full = goblin::elf::Elf::parse(&bytes).unwrap();
            let split = |v: &[&str]| -> Vec<String> {
                v.iter()
                    .flat_map(|s| s.split(':'))
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            let p = parse(&path).unwrap();
            let d = path.display();
            assert_eq!(p.interp.as_deref(), full.interpreter, "{d}");
            assert_eq!(p.needed, full.libraries, "{d}");
            assert_eq!(p.soname.as_deref(), full.soname, "{d}");
            assert_eq!(p.rpath, split(&full.rpaths), "{d}");
            assert_eq!(p.runpath, split(&full.runpaths), "{d}");
        }
        // Cut short inside its program headers: refused, not read as zeros.
        let t = tempfile::tempdir().unwrap();
        let cut = t.path().join("cut");
        std::fs::write(
            &cut,
            &std::fs::read(std::env::current_exe().unwrap()).unwrap()[..100],
        )
        .unwrap();
        let e = parse(&cut).err().expect("a truncated object is refused");
        assert!(e.to_string().contains("beyond its end"), "{e}");
    }

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
        let (host, target) = expand("$ORIGIN/../lib", &object, &Target::host());
        assert_eq!(host, PathBuf::from("/work/target/lib"));
        assert_eq!(target, PathBuf::from("/app/lib"));
        let (host, _) = expand("${ORIGIN}/x/../y", &object, &Target::host());
        assert_eq!(host, PathBuf::from("/work/target/release/y"));
    }

    /// A minimal little-endian ELF64 header for `machine` (no sections, no
    /// program headers): enough for the parser and the machine check.
    fn fake_elf(path: &Path, machine: u16) {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // 64-bit
        h[5] = 1; // little endian
        h[6] = 1; // version
        h[16] = 3; // ET_DYN
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[20] = 1;
        h[52] = 64; // e_ehsize
        std::fs::write(path, h).unwrap();
    }

    #[test]
    fn a_root_of_another_machine_is_refused_naming_both() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("service");
        fake_elf(&bin, EM_AARCH64);
        let mut host = Target::host();
        host.machine = EM_X86_64;
        host.architecture = "amd64".into();
        host.triplet = "x86_64-linux-gnu".into();
        let e = elf_closure_for(&[Root::same(&bin)], &SearchPath::new(vec![], vec![]), &host)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("for AArch64") && e.contains("linux/amd64 (x86-64)"),
            "{e}"
        );
        assert!(e.contains(&bin.display().to_string()), "{e}");

        // And an x86-64 binary in an arm64 image.
        fake_elf(&bin, EM_X86_64);
        let arm = Target {
            architecture: "arm64".into(),
            machine: EM_AARCH64,
            triplet: "aarch64-linux-gnu".into(),
            sysroot: Some(t.path().to_owned()),
        };
        let e = elf_closure_for(&[Root::same(&bin)], &arm.search_path().unwrap(), &arm)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("for x86-64") && e.contains("linux/arm64 (AArch64)"),
            "{e}"
        );
        assert!(e.contains("--target aarch64-unknown-linux-gnu"), "{e}");
    }

    #[test]
    fn a_cross_target_needs_its_sysroot() {
        let t = tempfile::tempdir().unwrap();
        let foreign = if Target::host().architecture == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        let e = Target::for_architecture(foreign, t.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("setup-cross.sh"), "{e}");
        let e = Target::for_architecture("riscv64", t.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
        // The host's own architecture needs none.
        let host = Target::for_architecture(&Target::host().architecture, t.path()).unwrap();
        assert!(host.sysroot.is_none());
    }

    #[test]
    fn libraries_resolve_inside_the_sysroot_never_on_the_host() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("lib/aarch64-linux-gnu")).unwrap();
        // A library named like the host's libc, but only in the sysroot.
        fake_elf(&r.join("lib/aarch64-linux-gnu/libc.so.6"), EM_AARCH64);
        std::os::unix::fs::symlink("aarch64-linux-gnu/libc.so.6", r.join("lib/libc-link.so"))
            .unwrap();
        let arm = Target {
            architecture: "arm64".into(),
            machine: EM_AARCH64,
            triplet: "aarch64-linux-gnu".into(),
            sysroot: Some(r.to_owned()),
        };
        assert_eq!(
            arm.host_path(Path::new("/lib/aarch64-linux-gnu/libc.so.6")),
            r.join("lib/aarch64-linux-gnu/libc.so.6")
        );
        let search = arm.search_path().unwrap();
        assert_eq!(search.defaults[0], PathBuf::from("/lib/aarch64-linux-gnu"));
        let obj = Root::same("/app/bin/x");
        let parsed = Parsed {
            interp: None,
            needed: vec!["libc.so.6".into()],
            rpath: vec![],
            runpath: vec![],
            soname: None,
            ident: ElfIdent {
                class: 2,
                data: 1,
                machine: EM_AARCH64,
            },
        };
        let lib = find("libc.so.6", &obj, &parsed, &obj, &[], &search, &arm).unwrap();
        assert_eq!(lib.host, r.join("lib/aarch64-linux-gnu/libc.so.6"));
        assert_eq!(
            lib.target,
            PathBuf::from("/lib/aarch64-linux-gnu/libc.so.6")
        );
        // An object of another machine where the library should be is passed
        // over, and the error says so.
        fake_elf(&r.join("lib/aarch64-linux-gnu/libm.so.6"), EM_X86_64);
        let e = find("libm.so.6", &obj, &parsed, &obj, &[], &search, &arm)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("wrong machine") && e.contains("is for x86-64, not AArch64"),
            "{e}"
        );
        // Tree::mirror_in follows the sysroot's own symlinks.
        let mut tree = crate::tree::Tree::default();
        tree.mirror_in(r, Path::new("/lib/libc-link.so")).unwrap();
        let targets: Vec<&str> = tree.targets().collect();
        assert!(targets.contains(&"/lib/libc-link.so"), "{targets:?}");
        assert!(
            targets.contains(&"/lib/aarch64-linux-gnu/libc.so.6"),
            "{targets:?}"
        );
    }
}
