//! `build`: a plan in, an OCI image layout out, atomically.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::cache::{self, Cache, CacheCounts};
use crate::compress::default_threads;
use crate::digest::{hex_of, sha256_reader};
use crate::error::{Error, IoContext, Result};
use crate::layer::{store_blob, write_layer, LayerDescriptor, LayerOptions, Progress, Quiet};
use crate::layout::{self, CONFIG_MEDIA_TYPE, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::output::{OutputKind, Staging};
use crate::plan::{BaseLayer, Compression, Layer, LayerSpec, Plan, User, PLAN_VERSION};
use crate::tree::Tree;

/// mtime of model and base layers: fixed, so they are shared across images
/// whatever their `SOURCE_DATE_EPOCH`.
pub const SHARED_LAYER_MTIME: u64 = 1;

/// How to build.
pub struct BuildOptions<'a> {
    /// Symlink prebuilt blobs into the layout instead of copying them.
    pub link_blobs: bool,
    /// Compression threads.
    pub threads: usize,
    /// Progress sink.
    pub progress: &'a dyn Progress,
    /// The layer cache to take unchanged layers from and add new ones to;
    /// `None` packs every layer. Never changes a byte of the output.
    pub cache: Option<&'a Cache>,
}

impl Default for BuildOptions<'_> {
    fn default() -> Self {
        BuildOptions {
            link_blobs: false,
            threads: default_threads(),
            progress: &Quiet,
            cache: None,
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    /// The layout directory.
    pub layout: PathBuf,
    /// Image name.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Manifest digest (what a registry will call the image).
    pub manifest_digest: String,
    /// Manifest size.
    pub manifest_size: u64,
    /// Config digest.
    pub config_digest: String,
    /// Layers, base layer first.
    pub layers: Vec<LayerDescriptor>,
    /// Sum of layer blob sizes.
    pub compressed_size: u64,
    /// How the layer cache served the packed layers.
    pub cache: CacheCounts,
}

/// Everything a packed layer's bytes depend on, decided once per layer for
/// both `build` and `build_layer` (and keyed by the layer cache).
#[derive(Debug)]
pub struct LayerRecipe {
    /// The entries, parents included.
    pub tree: Tree,
    /// mtime of every entry.
    pub mtime: u64,
    /// Blob compression.
    pub compression: Compression,
    /// History comment (not part of the blob).
    pub comment: String,
}

impl LayerRecipe {
    /// The recipe of a `files`, `model` or `base` layer; `None` for a
    /// prebuilt one, whose bytes are already made. `files_mtime` is the
    /// plan's (or spec's) mtime rule, [`Plan::mtime`]; model and base layers
    /// use [`SHARED_LAYER_MTIME`].
    ///
    /// # Errors
    /// Missing or special sources and every other input error of [`Tree`].
    pub fn of(
        layer: &Layer,
        location: &str,
        allow_root: bool,
        files_mtime: u64,
    ) -> Result<Option<LayerRecipe>> {
        Ok(Some(match layer {
            Layer::Files(f) => LayerRecipe {
                tree: Tree::from_files(f, location, allow_root)?,
                mtime: files_mtime,
                compression: f.compression,
                comment: f.comment.clone(),
            },
            Layer::Model(m) => LayerRecipe {
                tree: model_tree(m, location)?,
                mtime: SHARED_LAYER_MTIME,
                compression: Compression::None,
                comment: format!("model {}", m.name),
            },
            Layer::Base(b) => LayerRecipe {
                tree: base_tree(&b.user)?,
                mtime: SHARED_LAYER_MTIME,
                compression: Compression::Gzip,
                comment: BASE_COMMENT.into(),
            },
            Layer::Prebuilt(_) => return Ok(None),
        }))
    }

    /// The recipe of the base layer a plan generates for `user`.
    ///
    /// # Errors
    /// A `user.home` that collides with the base layer's own paths.
    pub fn base(user: &User) -> Result<LayerRecipe> {
        let base = Layer::Base(BaseLayer {
            user: user.clone(),
            allow_root: true,
        });
        Ok(
            LayerRecipe::of(&base, "base layer", true, SHARED_LAYER_MTIME)?
                .expect("a base layer has a recipe"),
        )
    }

    fn options<'a>(
        &self,
        threads: usize,
        progress: &'a dyn Progress,
        expect_content: Option<&'a std::collections::BTreeMap<String, String>>,
    ) -> LayerOptions<'a> {
        LayerOptions {
            mtime: self.mtime,
            compression: self.compression,
            threads,
            comment: self.comment.clone(),
            progress,
            expect_content,
        }
    }
}

/// Builds `plan` into an OCI layout at `out`. `origin` names the plan in errors.
///
/// The layout is written into a temporary sibling of `out` and renamed into
/// place only when complete: a failed build leaves nothing behind and a
/// previous good `out` untouched.
///
/// # Errors
/// Any bad input of the plan, or I/O errors.
pub fn build(
    plan: &Plan,
    origin: &str,
    out: &Path,
    opts: &BuildOptions<'_>,
) -> Result<BuildReport> {
    // The one place a plan's rules are checked (a base layer inside a plan
    // included), also for plans made in code rather than parsed.
    plan.validate(origin)?;
    crate::output::check_replaceable(out, OutputKind::Layout)?;
    crate::output::check_not_overlapping(out, &plan_sources(plan))?;
    let staging = Staging::new(out, OutputKind::Layout)?;
    let blobs = staging.path.join("blobs/sha256");
    fs::create_dir_all(&blobs).at(&blobs)?;
    let mtime = plan.mtime()?;
    // Blobs of the layout being replaced are as good as the cache's own.
    let previous = out.join("blobs/sha256");
    let packer = Packer {
        blobs: &blobs,
        previous: Some(&previous),
        opts,
    };
    let mut counts = CacheCounts::default();

    // Every layer's recipe first: every bad input is found before a byte
    // is packed, and the cache is asked about all layers at once.
    let mut planned: Vec<(usize, Planned<'_>)> = Vec::with_capacity(plan.layers.len() + 1);
    if plan.generate_base {
        planned.push((0, Planned::Recipe(LayerRecipe::base(&plan.user)?)));
    }
    for (i, layer) in plan.layers.iter().enumerate() {
        let loc = format!("{origin}: layer {}", i + 1);
        planned.push((
            i + 1,
            match (LayerRecipe::of(layer, &loc, plan.allow_root, mtime)?, layer) {
                (Some(recipe), _) => Planned::Recipe(recipe),
                (None, Layer::Prebuilt(p)) => Planned::Prebuilt(&p.path, loc),
                (None, _) => unreachable!("only prebuilt layers have no recipe"),
            },
        ));
    }
    let recipes: Vec<(usize, &LayerRecipe)> = planned
        .iter()
        .filter_map(|(i, p)| match p {
            Planned::Recipe(r) => Some((*i, r)),
            Planned::Prebuilt(..) => None,
        })
        .collect();
    let mut found = packer.look_up(&recipes)?.into_iter();
    let mut layers = Vec::with_capacity(planned.len());
    for (i, p) in &planned {
        layers.push(match p {
            Planned::Recipe(r) => {
                let f = found.next().expect("one lookup per recipe");
                packer.pack(r, *i, f, &mut counts)?
            }
            Planned::Prebuilt(path, loc) => import_prebuilt(path, &blobs, opts.link_blobs, loc)?,
        });
    }

    let created = plan.created_time()?;
    let config = config_json(plan, &created, &layers);
    let (config_digest, config_size) =
        layout::write_blob(&blobs, &crate::json::canonical(&config))?;
    let manifest = manifest_json(plan, &config_digest, config_size, &layers);
    let manifest_bytes = crate::json::canonical(&manifest);
    let (manifest_digest, manifest_size) = layout::write_blob(&blobs, &manifest_bytes)?;
    let index = index_json(plan, &manifest_digest, manifest_size);
    layout::write_top(&staging.path, &index)?;
    staging.commit()?;

    Ok(BuildReport {
        layout: out.to_owned(),
        name: plan.name.clone(),
        tags: plan.tags.clone(),
        manifest_digest,
        manifest_size,
        config_digest,
        compressed_size: layers.iter().map(|l| l.size).sum(),
        layers,
        cache: counts,
    })
}

/// Builds a single layer from a spec into `out/blob` and `out/descriptor.json`, atomically,
/// through `opts.cache` when there is one (`opts.link_blobs` does not apply).
/// Returns the descriptor and whether the cache had the layer.
///
/// # Errors
/// Bad input, or I/O errors.
pub fn build_layer(
    spec: &LayerSpec,
    origin: &str,
    out: &Path,
    opts: &BuildOptions<'_>,
) -> Result<(LayerDescriptor, CacheCounts)> {
    if spec.version != PLAN_VERSION {
        return Err(Error::Plan {
            origin: origin.to_owned(),
            message: format!(
                "layer spec version {} is not supported; use {PLAN_VERSION}",
                spec.version
            ),
        });
    }
    crate::plan::validate_layer(&spec.layer, false).map_err(|message| Error::Plan {
        origin: origin.to_owned(),
        message,
    })?;
    crate::output::check_replaceable(out, OutputKind::Layer)?;
    crate::output::check_not_overlapping(out, &layer_sources(&spec.layer))?;
    let Some(recipe) = LayerRecipe::of(&spec.layer, origin, false, spec.mtime()?)? else {
        return Err(Error::Plan {
            origin: origin.to_owned(),
            message: "a layer spec cannot be prebuilt; give a files, model or base layer".into(),
        });
    };
    let staging = Staging::new(out, OutputKind::Layer)?;
    // Packed (or taken from the cache) as `<hex>` in the staging directory,
    // then named `blob`. The previous `out/blob` is not named by its digest,
    // so only the cache is asked.
    let packer = Packer {
        blobs: &staging.path,
        previous: None,
        opts,
    };
    let mut counts = CacheCounts::default();
    let found = packer.look_up(&[(0, &recipe)])?.pop().expect("one lookup");
    let desc = packer.pack(&recipe, 0, found, &mut counts)?;
    let hex = hex_of(&desc.digest).expect("we computed it");
    let blob = staging.path.join("blob");
    fs::rename(staging.path.join(hex), &blob).at(&blob)?;
    let text = serde_json::to_value(&desc).expect("descriptor serialises");
    layout::write_file(
        &staging.path.join("descriptor.json"),
        &crate::json::canonical(&text),
    )?;
    staging.commit()?;
    Ok((desc, counts))
}

/// Every path on disk a plan reads.
fn plan_sources(plan: &Plan) -> Vec<&Path> {
    plan.layers.iter().flat_map(layer_sources).collect()
}

fn layer_sources(layer: &Layer) -> Vec<&Path> {
    match layer {
        Layer::Files(f) => f
            .entries
            .iter()
            .filter_map(|e| e.source.as_deref())
            .collect(),
        Layer::Model(m) => vec![m.source.as_path()],
        Layer::Prebuilt(p) => vec![p.path.as_path()],
        Layer::Base(_) => Vec::new(),
    }
}

/// Packs recipes into a staging layout's blobs, through the cache when there is one.
struct Packer<'a> {
    blobs: &'a Path,
    /// The blobs of the layout this build replaces, if any.
    previous: Option<&'a Path>,
    opts: &'a BuildOptions<'a>,
}

/// A layer of a plan, in order: packed from a recipe, or imported.
enum Planned<'a> {
    Recipe(LayerRecipe),
    Prebuilt(&'a Path, String),
}

/// The cache's answer for one recipe: its key, and the blob if it had it.
type Found = Option<(cache::LayerKey, cache::Lookup)>;

impl Packer<'_> {
    fn partial(&self, index: usize) -> PathBuf {
        self.blobs.join(format!(".partial-{index}"))
    }

    /// Asks the cache about every recipe at once: all their files hashed
    /// by one pool of threads, then up to `threads` blobs put in place and
    /// re-hashed at the same time. `None` for each without a cache.
    fn look_up(&self, recipes: &[(usize, &LayerRecipe)]) -> Result<Vec<Found>> {
        let Some(cache) = self.opts.cache else {
            return Ok(recipes.iter().map(|_| None).collect());
        };
        let only: Vec<&LayerRecipe> = recipes.iter().map(|(_, r)| *r).collect();
        let keys = cache::LayerKey::of_all(&only)
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let lookups = crate::par::map(
            &crate::par::in_order(keys.len()),
            self.opts.threads,
            || (),
            |(), i| {
                let replaced: Vec<&Path> = self.previous.into_iter().collect();
                cache.fetch(&keys[i], &self.partial(recipes[i].0), &replaced)
            },
        );
        keys.into_iter()
            .zip(lookups)
            .map(|(key, lookup)| Ok(Some((key, lookup?))))
            .collect()
    }

    /// Puts the layer of `recipe` into the blobs: the cache's blob `found`
    /// put in place by [`Packer::look_up`], else packed (and added to the cache).
    fn pack(
        &self,
        recipe: &LayerRecipe,
        index: usize,
        found: Found,
        counts: &mut CacheCounts,
    ) -> Result<LayerDescriptor> {
        let opts = self.opts;
        let tmp = self.partial(index);
        let key = match (opts.cache, found) {
            (Some(cache), Some((key, lookup))) => {
                for w in &lookup.warnings {
                    opts.progress.warning(w);
                }
                if let Some(entry) = lookup.hit {
                    let desc = entry.descriptor(&recipe.comment);
                    store_blob(&tmp, self.blobs, &desc.digest)?;
                    counts.hits += 1;
                    opts.progress.layer_reused(index, &desc);
                    return Ok(desc);
                }
                counts.misses += 1;
                Some((cache, key))
            }
            _ => None,
        };
        opts.progress
            .layer_started(index, &recipe.comment, recipe.tree.content_bytes());
        let expect = key.as_ref().map(|(_, k)| k.content());
        let desc = write_layer(
            &recipe.tree,
            &tmp,
            &recipe.options(opts.threads, opts.progress, expect),
        )?;
        if let Some((cache, key)) = &key {
            // A cache that cannot be written to costs speed, never the build.
            if let Err(e) = cache.store(key, &desc, &tmp) {
                opts.progress
                    .warning(&format!("layer {index} was not added to the cache: {e}"));
            }
        }
        store_blob(&tmp, self.blobs, &desc.digest)?;
        opts.progress.layer_done(index, &desc);
        Ok(desc)
    }
}

fn model_tree(m: &crate::plan::ModelLayer, loc: &str) -> Result<Tree> {
    let meta = fs::metadata(&m.source).map_err(|e| Error::Input {
        location: loc.to_owned(),
        message: format!(
            "model {} source {} cannot be read: {e}; fetch the model first",
            m.name,
            m.source.display()
        ),
    })?;
    if !meta.is_file() {
        return Err(Error::Input {
            location: loc.to_owned(),
            message: format!(
                "model {} source {} is not a regular file",
                m.name,
                m.source.display()
            ),
        });
    }
    Ok(Tree::single_file(&m.target, &m.source, meta.len()))
}

/// The base layer's history comment, the same whether generated or prebuilt.
const BASE_COMMENT: &str = "base: users, groups, /tmp, home";

/// The generated base layer: who the image's user is, and where it may write.
/// Its bytes depend only on `user`.
fn base_tree(user: &User) -> Result<Tree> {
    const LOC: &str = "base layer";
    if ["/etc", "/etc/passwd", "/etc/group", "/tmp"].contains(&user.home.as_str()) {
        return Err(Error::Input {
            location: LOC.into(),
            message: format!(
                "user.home {} is a path the base layer itself provides; pick another home",
                user.home
            ),
        });
    }
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\n{n}:x:{u}:{g}:{n}:{h}:/sbin/nologin\n",
        n = user.name,
        u = user.uid,
        g = user.gid,
        h = user.home
    );
    let group = format!("root:x:0:\n{n}:x:{g}:\n", n = user.name, g = user.gid);
    let mut tree = Tree::default();
    tree.add_dir("/etc", 0, 0, 0o755, LOC)?;
    tree.add_data("/etc/passwd", passwd.into_bytes(), 0o644, LOC)?;
    tree.add_data("/etc/group", group.into_bytes(), 0o644, LOC)?;
    tree.add_dir("/tmp", 0, 0, 0o1777, LOC)?;
    tree.add_dir(&user.home, user.uid, user.gid, 0o755, LOC)?;
    tree.finish(LOC)
}

fn import_prebuilt(dir: &Path, blobs: &Path, link: bool, loc: &str) -> Result<LayerDescriptor> {
    let desc_path = dir.join("descriptor.json");
    let text = fs::read_to_string(&desc_path).map_err(|e| Error::Input {
        location: loc.to_owned(),
        message: format!(
            "{} cannot be read: {e}; build the layer with `ocipack layer`",
            desc_path.display()
        ),
    })?;
    let desc: LayerDescriptor = crate::plan::parse_json(&text, &desc_path.display().to_string())?;
    let blob = dir.join("blob");
    let f = fs::File::open(&blob).at(&blob)?;
    let (digest, size) = sha256_reader(f).at(&blob)?;
    if digest != desc.digest || size != desc.size {
        return Err(Error::Input {
            location: loc.to_owned(),
            message: format!(
                "{} is {size} bytes with digest {digest}, but its descriptor says {} bytes, {}; rebuild the layer",
                blob.display(), desc.size, desc.digest
            ),
        });
    }
    let dest = blobs.join(hex_of(&desc.digest).ok_or_else(|| Error::Input {
        location: loc.to_owned(),
        message: format!("descriptor digest {:?} is not sha256:<64 hex>", desc.digest),
    })?);
    if !dest.exists() {
        if link {
            let abs = fs::canonicalize(&blob).at(&blob)?;
            std::os::unix::fs::symlink(abs, &dest).at(&dest)?;
        } else {
            fs::copy(&blob, &dest).at(&dest)?;
        }
    }
    Ok(desc)
}

fn config_json(plan: &Plan, created: &str, layers: &[LayerDescriptor]) -> Value {
    let c = &plan.config;
    let mut cfg = Map::new();
    let user = c
        .user
        .clone()
        .unwrap_or_else(|| format!("{}:{}", plan.user.uid, plan.user.gid));
    cfg.insert("User".into(), json!(user));
    if !c.env.is_empty() {
        cfg.insert("Env".into(), json!(c.env));
    }
    if !c.entrypoint.is_empty() {
        cfg.insert("Entrypoint".into(), json!(c.entrypoint));
    }
    if !c.cmd.is_empty() {
        cfg.insert("Cmd".into(), json!(c.cmd));
    }
    cfg.insert(
        "WorkingDir".into(),
        json!(c
            .working_dir
            .clone()
            .unwrap_or_else(|| plan.user.home.clone())),
    );
    let set = |v: &[String]| Value::Object(v.iter().map(|k| (k.clone(), json!({}))).collect());
    if !c.exposed_ports.is_empty() {
        cfg.insert("ExposedPorts".into(), set(&c.exposed_ports));
    }
    if !c.volumes.is_empty() {
        cfg.insert("Volumes".into(), set(&c.volumes));
    }
    if !c.labels.is_empty() {
        cfg.insert("Labels".into(), json!(c.labels));
    }
    if let Some(s) = &c.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
    if let Some(h) = &c.healthcheck {
        let mut hc = Map::new();
        hc.insert("Test".into(), json!(h.test));
        let ns = |s: u64| json!(s * 1_000_000_000);
        if let Some(s) = h.interval_seconds {
            hc.insert("Interval".into(), ns(s));
        }
        if let Some(s) = h.timeout_seconds {
            hc.insert("Timeout".into(), ns(s));
        }
        if let Some(s) = h.start_period_seconds {
            hc.insert("StartPeriod".into(), ns(s));
        }
        if let Some(r) = h.retries {
            hc.insert("Retries".into(), json!(r));
        }
        cfg.insert("Healthcheck".into(), Value::Object(hc));
    }
    let history: Vec<Value> = layers
        .iter()
        .map(|l| json!({"created": created, "created_by": "ocipack", "comment": l.comment}))
        .collect();
    json!({
        "architecture": plan.architecture,
        "os": plan.os,
        "created": created,
        "config": Value::Object(cfg),
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        "history": history,
    })
}

fn manifest_json(
    plan: &Plan,
    config_digest: &str,
    config_size: u64,
    layers: &[LayerDescriptor],
) -> Value {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
        "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
    });
    if !plan.annotations.is_empty() {
        m["annotations"] = json!(plan.annotations);
    }
    m
}

fn index_json(plan: &Plan, digest: &str, size: u64) -> Value {
    let mut seen = std::collections::BTreeSet::new();
    let manifests: Vec<Value> = plan
        .tags
        .iter()
        .filter(|t| seen.insert(t.as_str()))
        .map(|t| {
            json!({
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": size,
                "platform": {"architecture": plan.architecture, "os": plan.os},
                "annotations": {"org.opencontainers.image.ref.name": t},
            })
        })
        .collect();
    json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests})
}
