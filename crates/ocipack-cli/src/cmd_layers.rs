//! `ocipack layers`: split a closure graph into layers.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ocipack::closure::{assign, parse_graph, DEFAULT_LARGE, DEFAULT_MAX};

use crate::nix_attrs::Attrs;

/// Arguments of `ocipack layers`.
#[derive(Args)]
#[command(after_help = "Example:
  ocipack layers closure-graph.json --max 20 --json")]
pub struct LayersArgs {
    /// The reference graph: Nix's exportReferencesGraph JSON.
    #[arg(required_unless_present = "nix_attrs")]
    graph: Option<PathBuf>,
    /// Key of the graph when the file is an object (a structured-attrs file).
    #[arg(long)]
    key: Option<String>,
    /// At most this many layers (hard cap 127).
    #[arg(long, default_value_t = DEFAULT_MAX)]
    max: usize,
    /// Paths at or above this many NAR bytes get a layer of their own.
    #[arg(long, default_value_t = DEFAULT_LARGE)]
    large: u64,
    /// The application's own paths (the top layer); default: paths nothing references.
    #[arg(long = "roots", num_args = 1..)]
    roots: Vec<String>,
    /// Read `graph`, `roots` and `maxLayers` from the Nix structured attrs; write to `outputs.out`.
    #[arg(long, conflicts_with = "graph")]
    nix_attrs: bool,
}

pub fn run(a: LayersArgs, json: bool) -> Result<()> {
    let (graph, roots, max, out) = if a.nix_attrs {
        let attrs = Attrs::load()?;
        let graph = parse_graph(
            &serde_json::to_string(attrs.get("graph")?)?,
            &attrs.origin,
            None,
        )?;
        let roots: Vec<String> = match attrs.value.get("roots") {
            Some(v) => serde_json::from_value(v.clone())
                .context("attribute roots must be a list of paths")?,
            None => a.roots.clone(),
        };
        let max = match attrs.value.get("maxLayers") {
            Some(v) => v.as_u64().context("attribute maxLayers must be a number")? as usize,
            None => a.max,
        };
        (graph, roots, max, Some(attrs.out()?))
    } else {
        let path = a.graph.expect("clap requires it");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read the graph", path.display()))?;
        (
            parse_graph(&text, &path.display().to_string(), a.key.as_deref())?,
            a.roots.clone(),
            a.max,
            None,
        )
    };
    let assignment = assign(&graph, &roots, max, a.large)?;
    let text = String::from_utf8(ocipack::json::canonical(&serde_json::to_value(
        &assignment,
    )?))?;
    match out {
        Some(out) => std::fs::write(&out, format!("{text}\n"))
            .with_context(|| format!("{}: cannot write", out.display()))?,
        None if json => println!("{text}"),
        None => {
            for (i, l) in assignment.layers.iter().enumerate() {
                println!(
                    "layer {:>3} {:>12} {:<7} {}",
                    i + 1,
                    l.nar_size,
                    l.reason,
                    l.paths.join(" ")
                );
            }
        }
    }
    Ok(())
}
