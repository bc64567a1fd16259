//! The file tree of one layer, collected from the plan before any byte is written.
//!
//! Collecting first means every bad input (missing source, special file,
//! collision, symlink loop) is found before the blob is started, and the tree
//! is a `BTreeMap` keyed by the target path, so the order of entries in the
//! tar never depends on the order a file system lists a directory in.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::plan::{Entry, FilesLayer};
use crate::rules::{check_mode, parse_mode};

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file whose bytes come from `source`.
    File {
        /// Where the bytes are read from.
        source: PathBuf,
        /// Its size when collected.
        size: u64,
    },
    /// A symlink to this target, stored as is.
    Symlink(String),
    /// A regular file generated in memory (the base layer's passwd and group).
    Data(Vec<u8>),
}

/// One path of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits (with sticky/setuid/setgid).
    pub mode: u32,
    /// Named by the plan (or found in a source), rather than added as a parent.
    pub explicit: bool,
}

/// A layer's content: absolute target path to node, parents included.
#[derive(Debug, Default)]
pub struct Tree {
    /// Sorted bytewise, which puts every parent before its children.
    pub nodes: BTreeMap<String, Node>,
}

/// How far a symlink chain is followed before it counts as a loop (Linux's limit).
const MAX_SYMLINK_HOPS: usize = 40;

impl Tree {
    /// Collects a `files` layer. `location` prefixes errors (`plan.json: layer 2`).
    ///
    /// # Errors
    /// Missing or special sources, non-UTF-8 names, collisions, loops, refused modes.
    pub fn from_files(layer: &FilesLayer, location: &str, allow_root: bool) -> Result<Tree> {
        let mut tree = Tree::default();
        for (j, e) in layer.entries.iter().enumerate() {
            let loc = format!("{location} entry {} ({})", j + 1, e.target);
            let uid = e.uid.unwrap_or(layer.uid);
            let gid = e.gid.unwrap_or(layer.gid);
            let mode = e
                .mode
                .as_deref()
                .map(parse_mode)
                .transpose()
                .map_err(|m| input(&loc, m))?;
            tree.add_entry(e, uid, gid, mode, &loc)?;
        }
        tree.add_parents(location)?;
        tree.check_symlink_loops(location)?;
        tree.check_policy(location, allow_root)?;
        Ok(tree)
    }

    /// A tree holding one read-only, root-owned file and its parents.
    pub fn single_file(target: &str, source: &Path, size: u64) -> Tree {
        let mut tree = Tree::default();
        tree.nodes.insert(
            target.to_owned(),
            Node {
                kind: Kind::File {
                    source: source.to_owned(),
                    size,
                },
                uid: 0,
                gid: 0,
                mode: 0o444,
                explicit: true,
            },
        );
        tree.add_parents("model")
            .expect("a single file has no conflicting parents");
        tree
    }

    /// Adds a directory the layer declares itself (a generated layer's).
    ///
    /// # Errors
    /// `target` already holds something else.
    pub fn add_dir(
        &mut self,
        target: &str,
        uid: u32,
        gid: u32,
        mode: u32,
        location: &str,
    ) -> Result<()> {
        self.insert(target, dir_node(uid, gid, mode), location)
    }

    /// Adds a regular file whose bytes are generated in memory.
    ///
    /// # Errors
    /// `target` already holds something else.
    pub fn add_data(
        &mut self,
        target: &str,
        bytes: Vec<u8>,
        mode: u32,
        location: &str,
    ) -> Result<()> {
        let node = Node {
            kind: Kind::Data(bytes),
            uid: 0,
            gid: 0,
            mode,
            explicit: true,
        };
        self.insert(target, node, location)
    }

    /// Adds the missing parent directories (root-owned, 0755) once every
    /// path is in: what makes a tree built by [`Tree::add_dir`] and
    /// [`Tree::add_data`] complete.
    ///
    /// # Errors
    /// A path whose parent is not a directory.
    pub fn finish(mut self, location: &str) -> Result<Tree> {
        self.add_parents(location)?;
        Ok(self)
    }

    /// Total bytes of regular file content.
    pub fn content_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match n.kind {
                Kind::File { size, .. } => size,
                Kind::Data(ref d) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }

    fn add_entry(
        &mut self,
        e: &Entry,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
        loc: &str,
    ) -> Result<()> {
        if e.directory {
            return self.insert(&e.target, dir_node(uid, gid, mode.unwrap_or(0o755)), loc);
        }
        if let Some(link) = &e.symlink {
            return self.insert(&e.target, link_node(link.clone(), uid, gid), loc);
        }
        let source = e
            .source
            .as_ref()
            .expect("validated: one of source/directory/symlink");
        let meta = fs::symlink_metadata(source).map_err(|err| {
            input(
                loc,
                format!(
                    "source {} cannot be read: {err}; check the path",
                    source.display()
                ),
            )
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            if mode.is_some() {
                return Err(input(
                    loc,
                    format!(
                        "mode is not allowed on directory source {}; set modes per file",
                        source.display()
                    ),
                ));
            }
            self.insert(&e.target, dir_node(uid, gid, 0o755), loc)?;
            return self.walk(source, &e.target, uid, gid, loc);
        }
        let node = self.leaf(source, &meta, uid, gid, loc)?;
        let node = match (mode, node) {
            (
                Some(m),
                Node {
                    kind: k @ Kind::File { .. },
                    ..
                },
            ) => Node {
                kind: k,
                uid,
                gid,
                mode: m,
                explicit: true,
            },
            (_, n) => n,
        };
        self.insert(&e.target, node, loc)
    }

    /// A non-directory found on disk: a regular file or a symlink; anything else is refused.
    fn leaf(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        uid: u32,
        gid: u32,
        loc: &str,
    ) -> Result<Node> {
        let ft = meta.file_type();
        if ft.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            return Ok(Node {
                kind: Kind::File {
                    source: path.to_owned(),
                    size: meta.len(),
                },
                uid,
                gid,
                mode: if exec { 0o755 } else { 0o644 },
                explicit: true,
            });
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|err| {
                input(
                    loc,
                    format!("symlink {} cannot be read: {err}", path.display()),
                )
            })?;
            let target = target.into_os_string().into_string().map_err(|t| {
                input(
                    loc,
                    format!(
                        "symlink {} points to a non-UTF-8 path {t:?}; rename it",
                        path.display()
                    ),
                )
            })?;
            return Ok(link_node(target, uid, gid));
        }
        let what = if ft.is_socket() {
            "a socket"
        } else if ft.is_fifo() {
            "a fifo"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else {
            "a special file"
        };
        Err(input(
            loc,
            format!(
                "source {} is {what}; only files, directories and symlinks can be packed",
                path.display()
            ),
        ))
    }

    fn walk(&mut self, dir: &Path, target: &str, uid: u32, gid: u32, loc: &str) -> Result<()> {
        let rd = fs::read_dir(dir).map_err(|err| {
            input(
                loc,
                format!("directory {} cannot be listed: {err}", dir.display()),
            )
        })?;
        // Sorted so that the first error reported is the same on every file system.
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|err| {
                input(
                    loc,
                    format!("directory {} cannot be listed: {err}", dir.display()),
                )
            })?;
            names.push(ent.file_name());
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let name = name.into_string().map_err(|n| {
                input(
                    loc,
                    format!("{} has a non-UTF-8 name {n:?}; rename it", dir.display()),
                )
            })?;
            let t = if target == "/" {
                format!("/{name}")
            } else {
                format!("{target}/{name}")
            };
            let meta = fs::symlink_metadata(&path)
                .map_err(|err| input(loc, format!("{} cannot be read: {err}", path.display())))?;
            if meta.file_type().is_dir() {
                self.insert(&t, dir_node(uid, gid, 0o755), loc)?;
                self.walk(&path, &t, uid, gid, loc)?;
            } else {
                let node = self.leaf(&path, &meta, uid, gid, loc)?;
                self.insert(&t, node, loc)?;
            }
        }
        Ok(())
    }

    fn insert(&mut self, target: &str, node: Node, loc: &str) -> Result<()> {
        if target == "/" {
            return Ok(());
        }
        match self.nodes.get(target) {
            None => {
                self.nodes.insert(target.to_owned(), node);
                Ok(())
            }
            Some(old) if old.kind == Kind::Dir && !old.explicit && node.kind == Kind::Dir => {
                self.nodes.insert(target.to_owned(), node);
                Ok(())
            }
            Some(old) if same_content(old, &node) => Ok(()),
            Some(old) => Err(input(
                loc,
                format!(
                    "target {target} is given twice with different content ({} and {}); keep one",
                    describe(old),
                    describe(&node)
                ),
            )),
        }
    }

    fn add_parents(&mut self, location: &str) -> Result<()> {
        let mut missing = Vec::new();
        for path in self.nodes.keys() {
            let mut p = path.as_str();
            while let Some(i) = p.rfind('/') {
                p = &path[..i];
                if p.is_empty() {
                    break;
                }
                match self.nodes.get(p) {
                    None => missing.push(p.to_owned()),
                    Some(n) if n.kind != Kind::Dir => {
                        return Err(input(
                            location,
                            format!(
                                "{path} needs {p} to be a directory, but the layer has {} there",
                                describe(n)
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        for p in missing {
            self.nodes.entry(p).or_insert(Node {
                kind: Kind::Dir,
                uid: 0,
                gid: 0,
                mode: 0o755,
                explicit: false,
            });
        }
        Ok(())
    }

    /// Follows every symlink inside the layer; a chain that never ends is refused.
    fn check_symlink_loops(&self, location: &str) -> Result<()> {
        for (path, node) in &self.nodes {
            if let Kind::Symlink(_) = node.kind {
                if self.resolves_to_loop(path) {
                    return Err(input(
                        location,
                        format!("symlink {path} is part of a symlink loop; break the loop"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn resolves_to_loop(&self, start: &str) -> bool {
        let mut hops = 0;
        // Components still to resolve, and the resolved prefix.
        let mut todo: Vec<String> = split(start).into_iter().rev().collect();
        let mut done: Vec<String> = Vec::new();
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(c);
            let here = format!("/{}", done.join("/"));
            if let Some(Node {
                kind: Kind::Symlink(t),
                ..
            }) = self.nodes.get(&here)
            {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return true;
                }
                done.pop();
                if t.starts_with('/') {
                    done.clear();
                }
                todo.extend(split(t).into_iter().rev());
            }
        }
        false
    }

    fn check_policy(&self, location: &str, allow_root: bool) -> Result<()> {
        for (path, n) in &self.nodes {
            if !matches!(n.kind, Kind::Symlink(_)) {
                check_mode(n.mode, path, allow_root)
                    .map_err(|m| input(location, format!("{path}: {m}")))?;
            }
        }
        Ok(())
    }
}

fn split(p: &str) -> Vec<String> {
    p.split('/').map(str::to_owned).collect()
}

fn dir_node(uid: u32, gid: u32, mode: u32) -> Node {
    Node {
        kind: Kind::Dir,
        uid,
        gid,
        mode,
        explicit: true,
    }
}

fn link_node(target: String, uid: u32, gid: u32) -> Node {
    Node {
        kind: Kind::Symlink(target),
        uid,
        gid,
        mode: 0o777,
        explicit: true,
    }
}

fn input(location: &str, message: String) -> Error {
    Error::Input {
        location: location.to_owned(),
        message,
    }
}

fn describe(n: &Node) -> String {
    match &n.kind {
        Kind::Dir => "a directory".into(),
        Kind::File { source, .. } => format!("file {}", source.display()),
        Kind::Symlink(t) => format!("a symlink to {t}"),
        Kind::Data(_) => "generated content".into(),
    }
}

/// Two nodes for one target are the same when their metadata and bytes agree.
fn same_content(a: &Node, b: &Node) -> bool {
    if (a.uid, a.gid, a.mode) != (b.uid, b.gid, b.mode) {
        return false;
    }
    match (&a.kind, &b.kind) {
        (Kind::Dir, Kind::Dir) => true,
        (Kind::Symlink(x), Kind::Symlink(y)) => x == y,
        (Kind::Data(x), Kind::Data(y)) => x == y,
        (
            Kind::File {
                source: s1,
                size: n1,
            },
            Kind::File {
                source: s2,
                size: n2,
            },
        ) => n1 == n2 && (s1 == s2 || same_bytes(s1, s2)),
        _ => false,
    }
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let hash = |p: &Path| {
        fs::File::open(p)
            .and_then(crate::digest::sha256_reader)
            .ok()
            .map(|(d, _)| d)
    };
    matches!((hash(a), hash(b)), (Some(x), Some(y)) if x == y)
}
