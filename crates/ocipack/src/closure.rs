//! `layers`: split a store-path closure into at most N layers.
//!
//! The strategy, and why:
//! 1. The roots (the application's own paths) form the **top** layer alone,
//!    so a change to the application changes exactly one layer.
//! 2. Every other path gets a *popularity*: how many paths of the closure
//!    depend on it, directly or not. glibc is needed by nearly everything and
//!    is the most popular; a path only the application needs has popularity 1.
//! 3. Paths at or above the size threshold get a layer of their own (a big
//!    runtime or model never shares a blob with small churn).
//! 4. The most popular remaining paths get a layer each, as long as the budget
//!    allows; what is left shares one layer. Layers are ordered by popularity,
//!    most popular at the bottom, so base runtime layers are shared across
//!    images and rarely move.
//!
//! Every path lands in exactly one layer; ties are broken by path so the
//! assignment depends only on the graph.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::plan::MAX_LAYERS;

/// Default layer budget.
pub const DEFAULT_MAX: usize = 100;
/// Default size at which a path gets its own layer.
pub const DEFAULT_LARGE: u64 = 32 << 20;

/// One node of the reference graph (what Nix's `exportReferencesGraph` writes).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphNode {
    /// Store path.
    pub path: String,
    /// Size of its NAR serialisation.
    #[serde(default)]
    pub nar_size: u64,
    /// Store paths it references (may include itself).
    #[serde(default)]
    pub references: Vec<String>,
}

/// One layer of the assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Store paths, sorted.
    pub paths: Vec<String>,
    /// Their total NAR size.
    pub nar_size: u64,
    /// `large`, `popular`, `rest` or `top`.
    pub reason: String,
}

/// The assignment, bottom layer first.
#[derive(Debug, Clone, Serialize)]
pub struct Assignment {
    /// Format version.
    pub version: u32,
    /// The groups.
    pub layers: Vec<Group>,
}

/// Parses a graph: an array of nodes, or an object holding one under `key`
/// (or under its only array-valued key).
///
/// # Errors
/// Malformed JSON or no array of nodes.
pub fn parse_graph(text: &str, origin: &str, key: Option<&str>) -> Result<Vec<GraphNode>> {
    let err = |m: String| Error::Graph {
        origin: origin.to_owned(),
        message: m,
    };
    let v: Value = serde_json::from_str(text).map_err(|e| err(format!("not JSON: {e}")))?;
    let arr = match (&v, key) {
        (Value::Array(_), _) => v,
        (Value::Object(m), Some(k)) => m
            .get(k)
            .cloned()
            .ok_or_else(|| err(format!("no key {k:?}")))?,
        (Value::Object(m), None) => {
            let arrays: Vec<&Value> = m.values().filter(|x| x.is_array()).collect();
            match arrays.as_slice() {
                [one] => (*one).clone(),
                _ => {
                    return Err(err(
                        "an object with several arrays; name the graph's key".into()
                    ))
                }
            }
        }
        _ => {
            return Err(err(
                "expected an array of {path, narSize, references}".into()
            ))
        }
    };
    serde_json::from_value(arr).map_err(|e| err(format!("not a reference graph: {e}")))
}

/// Splits `graph` into at most `max` layers.
///
/// # Errors
/// `max` out of 1..=127, an empty graph, duplicate paths, dangling references, unknown roots.
pub fn assign(graph: &[GraphNode], roots: &[String], max: usize, large: u64) -> Result<Assignment> {
    let err = |m: String| Error::Graph {
        origin: "closure".into(),
        message: m,
    };
    if max == 0 || max > MAX_LAYERS {
        return Err(err(format!(
            "--max {max} must be between 1 and {MAX_LAYERS}"
        )));
    }
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in graph.iter().enumerate() {
        if index.insert(n.path.as_str(), i).is_some() {
            return Err(err(format!("path {} appears twice", n.path)));
        }
    }
    if graph.is_empty() {
        return Err(err("the graph is empty".into()));
    }
    // Reverse edges: who refers to me.
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); graph.len()];
    for (i, n) in graph.iter().enumerate() {
        for r in &n.references {
            let &j = index.get(r.as_str()).ok_or_else(|| {
                err(format!(
                    "{} references {r}, which is not in the graph",
                    n.path
                ))
            })?;
            if j != i {
                parents[j].push(i);
            }
        }
    }
    let roots: BTreeSet<usize> = if roots.is_empty() {
        (0..graph.len())
            .filter(|&i| parents[i].is_empty())
            .collect()
    } else {
        roots
            .iter()
            .map(|r| {
                index
                    .get(r.as_str())
                    .copied()
                    .ok_or_else(|| err(format!("root {r} is not in the graph")))
            })
            .collect::<Result<_>>()?
    };
    let popularity: Vec<usize> = (0..graph.len()).map(|i| ancestors(i, &parents)).collect();

    let mut rest: Vec<usize> = (0..graph.len()).filter(|i| !roots.contains(i)).collect();
    rest.sort_by(|&a, &b| {
        popularity[b]
            .cmp(&popularity[a])
            .then_with(|| graph[a].path.cmp(&graph[b].path))
    });

    let group = |ids: &[usize], reason: &str| {
        let mut paths: Vec<String> = ids.iter().map(|&i| graph[i].path.clone()).collect();
        paths.sort();
        Group {
            paths,
            nar_size: ids.iter().map(|&i| graph[i].nar_size).sum(),
            reason: reason.to_owned(),
        }
    };
    let top = group(&roots.iter().copied().collect::<Vec<_>>(), "top");
    if max == 1 {
        let all: Vec<usize> = (0..graph.len()).collect();
        return Ok(Assignment {
            version: 1,
            layers: vec![group(&all, "top")],
        });
    }
    // Budget for everything below the top layer.
    let budget = max - 1;
    let mut singles: Vec<(usize, &str)> = Vec::new();
    let mut leftover: Vec<usize> = Vec::new();
    let large_ids: Vec<usize> = rest
        .iter()
        .copied()
        .filter(|&i| graph[i].nar_size >= large)
        .collect();
    let mut slots = budget;
    let needs_rest_slot = rest.len() > budget;
    if needs_rest_slot {
        slots -= 1;
    }
    for &i in &large_ids {
        if singles.len() < slots {
            singles.push((i, "large"));
        }
    }
    for &i in &rest {
        if singles.iter().any(|&(s, _)| s == i) {
            continue;
        }
        if singles.len() < slots {
            singles.push((i, "popular"));
        } else {
            leftover.push(i);
        }
    }
    singles.sort_by(|&(a, _), &(b, _)| {
        popularity[b]
            .cmp(&popularity[a])
            .then_with(|| graph[a].path.cmp(&graph[b].path))
    });
    let mut layers: Vec<Group> = singles.iter().map(|&(i, why)| group(&[i], why)).collect();
    if !leftover.is_empty() {
        layers.push(group(&leftover, "rest"));
    }
    layers.push(top);
    Ok(Assignment { version: 1, layers })
}

/// How many nodes depend on `i`, directly or transitively.
fn ancestors(i: usize, parents: &[Vec<usize>]) -> usize {
    let mut seen = vec![false; parents.len()];
    let mut stack = vec![i];
    let mut n = 0;
    while let Some(x) = stack.pop() {
        for &p in &parents[x] {
            if !seen[p] {
                seen[p] = true;
                n += 1;
                stack.push(p);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(p: &str, size: u64, refs: &[&str]) -> GraphNode {
        GraphNode {
            path: p.into(),
            nar_size: size,
            references: refs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn graph() -> Vec<GraphNode> {
        vec![
            node("/s/app", 10, &["/s/app", "/s/libfoo", "/s/glibc"]),
            node("/s/libfoo", 20, &["/s/glibc"]),
            node("/s/glibc", 30, &["/s/glibc"]),
            node("/s/big", 100 << 20, &["/s/glibc"]),
            node("/s/tool", 5, &["/s/big", "/s/glibc"]),
        ]
    }

    #[test]
    fn every_path_once_roots_on_top() {
        let g = graph();
        for max in 1..=6 {
            let a = assign(&g, &[], max, DEFAULT_LARGE).unwrap();
            assert!(a.layers.len() <= max, "max {max}");
            let mut all: Vec<String> = a.layers.iter().flat_map(|l| l.paths.clone()).collect();
            all.sort();
            assert_eq!(all.len(), g.len());
            all.dedup();
            assert_eq!(all.len(), g.len());
            if max > 1 {
                assert_eq!(
                    a.layers.last().unwrap().paths,
                    vec!["/s/app".to_string(), "/s/tool".to_string()]
                );
            }
            if max >= 4 {
                // Enough room for every path alone: the most popular sits lowest.
                assert_eq!(a.layers[0].paths, vec!["/s/glibc".to_string()]);
            }
        }
    }

    #[test]
    fn dangling_reference_is_an_error() {
        let g = vec![node("/s/a", 1, &["/s/missing"])];
        assert!(assign(&g, &[], 10, DEFAULT_LARGE)
            .unwrap_err()
            .to_string()
            .contains("/s/missing"));
    }
}
