//! State sync: a tree copied from peers in chunks of nodes instead of rebuilt by replaying every
//! round. It starts from a root the caller trusts (a finalized round's state root) and accepts a
//! node only when its hash is one that an already accepted node (or the root) names, so every
//! stored node is authentic whoever sent it; anything else in a chunk is ignored.
//!
//! The serving side is [`NodeDb::export`]. Nodes still to fetch are kept on a stack (depth
//! first across chunks, breadth first within one), so memory follows the frontier, not the
//! state's size.

use crate::node::{Hash, Node, Ptr, EMPTY};
use crate::store::{NodeDb, StoreError, SYNC_ROOT};
use std::collections::HashSet;

/// Wanted nodes per request at most (a server ignores the rest).
pub const MAX_WANTS: usize = 64;
/// Nodes per chunk at most (a client ignores the rest).
pub const MAX_CHUNK_NODES: usize = 4096;
/// Bytes of nodes per chunk at most (at least one node is sent, whatever its size).
pub const MAX_CHUNK_BYTES: usize = 4 << 20;

/// What one chunk did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Nodes checked and stored.
    pub nodes: usize,
    /// Entries ignored: undecodable, not wanted (forged, duplicated, or beyond the cap).
    pub ignored: usize,
}

/// A state being restored into a [`NodeDb`] as `version`.
#[derive(Debug)]
pub struct Restore {
    version: u64,
    root: Hash,
    /// Nodes to fetch, top last; some may have arrived since (they are skipped).
    stack: Vec<Ptr>,
    /// The hashes still missing.
    wanted: HashSet<Hash>,
    nodes: u64,
}

impl Restore {
    /// Starts restoring the tree with `root` as `version`: the store's versions are removed
    /// (the old state cannot be extended to the new one).
    pub fn begin(db: &NodeDb, version: u64, root: Hash) -> Result<Self, StoreError> {
        db.clear()?;
        let mut wanted = HashSet::new();
        let mut stack = Vec::new();
        if root != EMPTY {
            wanted.insert(root);
            stack.push(Ptr {
                hash: root,
                version: SYNC_ROOT,
            });
        }
        Ok(Self {
            version,
            root,
            stack,
            wanted,
            nodes: 0,
        })
    }

    /// The version (round) being restored and its root.
    pub fn target(&self) -> (u64, Hash) {
        (self.version, self.root)
    }

    /// Nodes stored so far.
    pub fn nodes(&self) -> u64 {
        self.nodes
    }

    /// Nodes known to be missing now (the frontier).
    pub fn missing(&self) -> usize {
        self.wanted.len()
    }

    /// Whether every node has arrived.
    pub fn is_complete(&self) -> bool {
        self.wanted.is_empty()
    }

    /// The next request: up to [`MAX_WANTS`] missing nodes, the most recently named first,
    /// each with the version the serving peer stores it under.
    pub fn wants(&mut self) -> Vec<Ptr> {
        while self
            .stack
            .last()
            .is_some_and(|p| !self.wanted.contains(&p.hash))
        {
            self.stack.pop();
        }
        self.stack
            .iter()
            .rev()
            .filter(|p| self.wanted.contains(&p.hash))
            .take(MAX_WANTS)
            .copied()
            .collect()
    }

    /// Checks and stores a chunk (stored-form nodes, parents before children). A node is kept
    /// only if it is wanted; its children become wanted.
    pub fn accept(&mut self, db: &NodeDb, chunk: &[Vec<u8>]) -> Result<Accepted, StoreError> {
        let mut got = Accepted::default();
        let mut keep = Vec::new();
        for bytes in chunk.iter().take(MAX_CHUNK_NODES) {
            let Ok(node) = Node::decode(bytes) else {
                got.ignored += 1;
                continue;
            };
            if !self.wanted.remove(&node.hash()) {
                got.ignored += 1;
                continue;
            }
            for c in node.children().into_iter().flatten() {
                if !c.is_none() && self.wanted.insert(c.hash) {
                    self.stack.push(c);
                }
            }
            keep.push(node);
        }
        got.ignored += chunk.len().saturating_sub(MAX_CHUNK_NODES);
        if !keep.is_empty() {
            db.import(self.version, &keep)?;
        }
        got.nodes = keep.len();
        self.nodes += keep.len() as u64;
        Ok(got)
    }

    /// Records the restored version once complete; the tree then reads as the state at `root`.
    pub fn finish(self, db: &NodeDb) -> Result<(), StoreError> {
        if let Some(h) = self.wanted.iter().next() {
            return Err(crate::tree::TreeError::Missing(Ptr {
                hash: *h,
                version: self.version,
            })
            .into());
        }
        db.set_root(self.version, &self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(path: &std::path::Path, keys: u32, rounds: u64) -> (NodeDb, Hash) {
        let db = NodeDb::open(path, 1 << 20).expect("open");
        let mut root = EMPTY;
        for r in 1..=rounds {
            let kv: Vec<(Vec<u8>, Vec<u8>)> = (0..keys)
                .map(|i| {
                    (
                        format!("key {i} {}", i % 7).into_bytes(),
                        format!("value {i} of round {r}").into_bytes(),
                    )
                })
                .filter(|(k, _)| r == 1 || k.len() % 3 == (r % 3) as usize)
                .collect();
            root = db
                .apply(
                    r,
                    &root,
                    kv.iter().map(|(k, v)| (&k[..], Some(&v[..]))),
                    None,
                )
                .expect("apply");
        }
        (db, root)
    }

    /// Syncs `to` from `from` with chunks of `max_nodes`; returns the requests it took.
    fn sync(from: &NodeDb, to: &NodeDb, version: u64, root: Hash, max_nodes: usize) -> usize {
        let mut r = Restore::begin(to, version, root).expect("begin");
        let mut requests = 0;
        while !r.is_complete() {
            requests += 1;
            assert!(requests < 100_000, "no progress");
            let chunk = from
                .export(&r.wants(), max_nodes, MAX_CHUNK_BYTES)
                .expect("export");
            let got = r.accept(to, &chunk).expect("accept");
            assert_eq!(got.ignored, 0);
            assert!(got.nodes > 0, "a chunk from an honest peer adds nodes");
        }
        r.finish(to).expect("finish");
        requests
    }

    #[test]
    fn a_synced_tree_reads_and_grows_like_the_original() {
        let d = tempfile::tempdir().expect("tmp");
        let (src, root) = filled(&d.path().join("a"), 3000, 4);
        let dst = NodeDb::open(&d.path().join("b"), 1 << 20).expect("open");
        // A stale state in the destination is replaced.
        dst.apply(1, &EMPTY, [(&b"old"[..], Some(&b"x"[..]))], None)
            .expect("apply");
        let requests = sync(&src, &dst, 4, root, 500);
        assert!(requests > 6, "small chunks: {requests} requests");
        assert_eq!(dst.versions().expect("versions"), Some((4, 4)));
        assert_eq!(dst.get(&root, b"old").expect("get"), None);
        for i in (0..3000).step_by(97) {
            let k = format!("key {i} {}", i % 7).into_bytes();
            assert_eq!(
                dst.get(&root, &k).expect("get"),
                src.get(&root, &k).expect("get")
            );
        }
        assert_eq!(
            dst.node_count().expect("count"),
            src.export(
                &[Ptr {
                    hash: root,
                    version: SYNC_ROOT
                }],
                usize::MAX,
                usize::MAX
            )
            .expect("all")
            .len() as u64
        );
        // Rounds go on from the synced version, and its nodes are pruned like any others.
        let log = [(&b"key 1 1"[..], None), (&b"new"[..], Some(&b"n"[..]))];
        let a = src.apply(5, &root, log, None).expect("src 5");
        let b = dst.apply(5, &root, log, Some(&a)).expect("dst 5");
        assert_eq!(a, b);
        let before = dst.node_count().expect("count");
        let pruned = dst.prune(5, 10).expect("prune");
        assert_eq!(pruned.versions, 1);
        assert!(pruned.nodes > 0 && dst.node_count().expect("count") < before);
        assert_eq!(dst.get(&b, b"new").expect("get"), Some(b"n".to_vec()));
    }

    #[test]
    fn forged_duplicated_and_garbage_nodes_are_ignored() {
        let d = tempfile::tempdir().expect("tmp");
        let (src, root) = filled(&d.path().join("a"), 200, 1);
        let (other, _) = filled(&d.path().join("c"), 201, 1);
        let dst = NodeDb::open(&d.path().join("b"), 1 << 20).expect("open");
        let mut r = Restore::begin(&dst, 1, root).expect("begin");
        // Another tree's nodes (valid nodes, wrong hashes), garbage and an empty chunk.
        let forged = other
            .export(
                &[Ptr {
                    hash: other.root(1).expect("r").expect("root"),
                    version: SYNC_ROOT,
                }],
                50,
                MAX_CHUNK_BYTES,
            )
            .expect("export");
        let mut chunk = forged.clone();
        chunk.push(vec![0xff; 40]);
        chunk.push(Vec::new());
        let got = r.accept(&dst, &chunk).expect("accept");
        assert_eq!(
            got,
            Accepted {
                nodes: 0,
                ignored: chunk.len()
            }
        );
        assert_eq!(r.accept(&dst, &[]).expect("empty"), Accepted::default());
        assert!(!r.is_complete());
        // The right nodes twice: the second copies are ignored.
        let honest = src.export(&r.wants(), 10, MAX_CHUNK_BYTES).expect("export");
        let twice: Vec<Vec<u8>> = honest.iter().chain(honest.iter()).cloned().collect();
        let got = r.accept(&dst, &twice).expect("accept");
        assert_eq!(
            got,
            Accepted {
                nodes: 10,
                ignored: 10
            }
        );
        // A tree that is not finished is not readable.
        assert!(Restore::begin(&dst, 1, root)
            .expect("again")
            .finish(&dst)
            .is_err());
        assert_eq!(dst.versions().expect("versions"), None);
    }

    #[test]
    fn an_empty_state_syncs_without_requests_and_wanted_counts_are_capped() {
        let d = tempfile::tempdir().expect("tmp");
        let dst = NodeDb::open(&d.path().join("b"), 1 << 20).expect("open");
        let mut r = Restore::begin(&dst, 9, EMPTY).expect("begin");
        assert!(r.is_complete() && r.wants().is_empty());
        r.finish(&dst).expect("finish");
        assert_eq!(dst.root(9).expect("root"), Some(EMPTY));
        // A server reads at most MAX_WANTS wants, and a huge want list costs nothing more.
        let (src, root) = filled(&d.path().join("a"), 100, 1);
        let many = vec![
            Ptr {
                hash: root,
                version: SYNC_ROOT
            };
            10 * MAX_WANTS
        ];
        let out = src.export(&many, usize::MAX, usize::MAX).expect("export");
        let one = src
            .export(&many[..1], usize::MAX, usize::MAX)
            .expect("export");
        // One root per request (a root is searched for among the versions).
        assert_eq!(out.len(), one.len());
        let stored = src.resolve(&root).expect("root");
        let many = vec![stored; 10 * MAX_WANTS];
        let out = src.export(&many, usize::MAX, usize::MAX).expect("export");
        assert_eq!(out.len(), MAX_WANTS * one.len());
        // Unknown nodes and roots are skipped.
        let unknown = [
            Ptr {
                hash: [7; 32],
                version: SYNC_ROOT,
            },
            Ptr {
                hash: [7; 32],
                version: 1,
            },
        ];
        assert!(src.export(&unknown, 10, 10).expect("export").is_empty());
    }
}
