//! Cross-program checks (unknown dependencies, cycles, duplicate listen
//! addresses) and the start order: every program after its dependencies, ties
//! broken by position in the file.

use std::collections::{BTreeSet, HashMap};

use super::model::Program;
use super::read::{key_text, Reader, Spans};

/// Validates the dependency graph and returns the programs in start order, or
/// `None` when a problem was reported.
pub fn order(r: &mut Reader, programs: Vec<(Program, Spans)>) -> Option<Vec<Program>> {
    let index: HashMap<&str, usize> = programs
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.name.as_str(), i))
        .collect();
    let mut ok = true;
    for (p, spans) in &programs {
        for (dep, span) in p.depends_on.iter().zip(&spans.deps) {
            if !index.contains_key(dep.name.as_str()) {
                let known: Vec<&str> = programs.iter().map(|(p, _)| p.name.as_str()).collect();
                r.diags.error(
                    span.clone(),
                    &format!(
                        "programs.{}.depends_on.{}",
                        key_text(&p.name),
                        key_text(&dep.name)
                    ),
                    format!(
                        "unknown program {:?} (programs: {})",
                        dep.name,
                        known.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    for (p, spans) in &programs {
        for (up, span) in p.upstreams.iter().zip(&spans.upstreams) {
            if !index.contains_key(up.as_str()) {
                let known: Vec<&str> = programs.iter().map(|(p, _)| p.name.as_str()).collect();
                r.diags.error(
                    span.clone(),
                    &format!("programs.{}.upstreams", key_text(&p.name)),
                    format!("unknown program {up:?} (programs: {})", known.join(", ")),
                );
                ok = false;
            }
        }
    }
    let mut seen = HashMap::new();
    for (p, spans) in &programs {
        for (addr, span) in p.listen.iter().zip(&spans.listen) {
            if let Some(first) = seen.insert(*addr, p.name.clone()) {
                r.diags.error(
                    span.clone(),
                    &format!("programs.{}.listen", key_text(&p.name)),
                    format!("duplicate listen address {addr} (already used by program {first:?})"),
                );
                ok = false;
            }
        }
    }
    // Kahn's algorithm (unknown dependencies, already reported, are left out so
    // that cycles among the rest are reported too); among ready programs the
    // earliest in the file goes first. O(n log n + edges), so a thousand
    // programs cost no more to order than to read.
    let n = programs.len();
    let mut pending = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, (p, _)) in programs.iter().enumerate() {
        for dep in &p.depends_on {
            if let Some(&j) = index.get(dep.name.as_str()) {
                dependents[j].push(i);
                pending[i] += 1;
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some(next) = ready.pop_first() {
        placed[next] = true;
        order.push(next);
        for &i in &dependents[next] {
            pending[i] -= 1;
            if pending[i] == 0 {
                ready.insert(i);
            }
        }
    }
    if order.len() < n {
        for (i, (p, spans)) in programs.iter().enumerate() {
            if !placed[i] {
                let cycle = cycle_from(&programs, &index, &placed, i);
                r.diags.error(
                    spans.deps.first().cloned().unwrap_or(spans.key.clone()),
                    &format!("programs.{}.depends_on", key_text(&p.name)),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                );
            }
        }
        return None;
    }
    if !ok {
        return None;
    }
    let mut slots: Vec<Option<Program>> = programs.into_iter().map(|(p, _)| Some(p)).collect();
    Some(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// Follows unplaced dependencies from `start` until a program repeats; returns that loop.
fn cycle_from(
    programs: &[(Program, Spans)],
    index: &HashMap<&str, usize>,
    placed: &[bool],
    start: usize,
) -> Vec<String> {
    let mut path = vec![start];
    let mut current = start;
    while let Some(next) = programs[current]
        .0
        .depends_on
        .iter()
        .filter_map(|d| index.get(d.name.as_str()).copied())
        .find(|&j| !placed[j])
    {
        if let Some(pos) = path.iter().position(|&i| i == next) {
            let mut names: Vec<String> = path[pos..]
                .iter()
                .map(|&i| programs[i].0.name.clone())
                .collect();
            names.push(programs[next].0.name.clone());
            return names;
        }
        path.push(next);
        current = next;
    }
    path.iter().map(|&i| programs[i].0.name.clone()).collect()
}
