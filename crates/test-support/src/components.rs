//! The union-find behind both oracles (`expected_groups`, `expected_customers`): values that
//! one request or order brought together are one component.

use std::collections::{BTreeSet, HashMap};

/// Values (identifiers written `email:…` or `phone:…`) grouped into connected components.
#[derive(Debug, Default)]
pub(crate) struct Components {
    index: HashMap<String, usize>,
    parent: Vec<usize>,
}

impl Components {
    /// Adds `values`, each once, and puts them all in one component.
    pub(crate) fn join(&mut self, values: &[String]) {
        let nodes: Vec<usize> = values.iter().map(|v| self.node(v)).collect();
        for pair in nodes.windows(2) {
            let (a, b) = (self.find(pair[0]), self.find(pair[1]));
            self.parent[a] = b;
        }
    }

    /// The component of `value`, a number shared by every value in it; `None` for a value
    /// never joined.
    pub(crate) fn of(&mut self, value: &str) -> Option<usize> {
        let node = *self.index.get(value)?;
        Some(self.find(node))
    }

    /// The values of each component.
    pub(crate) fn groups(mut self) -> Vec<BTreeSet<String>> {
        let mut groups: HashMap<usize, BTreeSet<String>> = HashMap::new();
        for (value, node) in std::mem::take(&mut self.index) {
            groups.entry(self.find(node)).or_default().insert(value);
        }
        groups.into_values().collect()
    }

    fn node(&mut self, value: &str) -> usize {
        let next = self.parent.len();
        let node = *self.index.entry(value.to_owned()).or_insert(next);
        if node == next {
            self.parent.push(next);
        }
        node
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
}
