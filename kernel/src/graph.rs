//! The dependency graph: a deterministic boot order, or an error naming every capability on a cycle.

use std::collections::BTreeMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use plystra_contracts::CapabilityKind;
use plystra_contracts::registration::Registration;

/// The graph cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Capabilities that depend on each other in a ring.
    #[error("dependency cycle among: {}", members.join(" -> "))]
    Cycle {
        /// Every capability on the cycle, sorted.
        members: Vec<String>,
    },
    /// A dependency that is not linked, naming both ends.
    #[error("{from} requires {to}, which is not linked")]
    Missing {
        /// The capability with the dependency.
        from: String,
        /// The missing dependency.
        to: String,
    },
}

/// Orders registrations so every capability comes after its dependencies. Ties are broken by
/// system capabilities first, then ID, so the order is the same on every run. Returns every error.
pub fn boot_order(
    registrations: &[&'static Registration],
) -> Result<Vec<&'static Registration>, Vec<GraphError>> {
    let mut graph = DiGraph::<&'static Registration, ()>::new();
    let mut index: BTreeMap<&str, NodeIndex> = BTreeMap::new();
    for reg in registrations {
        index.insert(reg.manifest.id(), graph.add_node(reg));
    }
    let mut errors = Vec::new();
    for reg in registrations {
        let to = index[reg.manifest.id()];
        for dep in reg.manifest.requires().capabilities {
            match index.get(dep) {
                Some(&from) => {
                    graph.add_edge(from, to, ());
                }
                None => errors.push(GraphError::Missing {
                    from: reg.manifest.id().to_owned(),
                    to: (*dep).to_owned(),
                }),
            }
        }
    }
    for scc in tarjan_scc(&graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() > 1 || self_loop {
            let mut members: Vec<String> = scc
                .iter()
                .map(|n| graph[*n].manifest.id().to_owned())
                .collect();
            members.sort();
            errors.push(GraphError::Cycle { members });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.to_string());
        return Err(errors);
    }
    // Kahn's algorithm with a sorted ready set: deterministic, and system capabilities first.
    let key = |n: NodeIndex| {
        let m = graph[n].manifest;
        (m.kind() != CapabilityKind::SystemCapability, m.id())
    };
    let mut indegree: BTreeMap<NodeIndex, usize> = graph
        .node_indices()
        .map(|n| {
            (
                n,
                graph
                    .neighbors_directed(n, petgraph::Direction::Incoming)
                    .count(),
            )
        })
        .collect();
    let mut ready: std::collections::BTreeSet<(bool, &str, NodeIndex)> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| {
            let (k, id) = key(*n);
            (k, id, *n)
        })
        .collect();
    let mut order = Vec::with_capacity(registrations.len());
    while let Some(next) = ready.pop_first() {
        let node = next.2;
        order.push(graph[node]);
        for succ in graph.neighbors_directed(node, petgraph::Direction::Outgoing) {
            let d = indegree.get_mut(&succ).expect("every node has an indegree");
            *d -= 1;
            if *d == 0 {
                let (k, id) = key(succ);
                ready.insert((k, id, succ));
            }
        }
    }
    Ok(order)
}
