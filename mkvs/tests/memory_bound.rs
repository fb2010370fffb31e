//! The store's memory is bounded by its cache setting whatever the tree's size: measured by this
//! test binary's own allocator (every live allocation, rounded as glibc's malloc rounds it),
//! not by the cache's own accounting.

use paratime_mkvs::{NodeDb, EMPTY};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The tests measure one process-wide counter: one at a time (`cargo test` runs them on
/// threads of one process).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// What an allocation of `size` bytes takes from glibc: a size word, 16-byte chunks, 32 at least.
fn chunk(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

// SAFETY: every call is passed to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract is forwarded as is.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(chunk(l.size()), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(chunk(l.size()), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn key(i: u32) -> Vec<u8> {
    // Spread over the key space as hashed keys are.
    let h = i.wrapping_mul(0x9e37_79b9).rotate_left(13);
    format!("account/{h:08x}/{i}").into_bytes()
}

#[test]
fn a_tree_many_times_its_cache_reads_within_the_cache_bound() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = tempfile::tempdir().expect("tmp");
    // Half for decoded nodes, half for redb's pages.
    let cache = 4 << 20;
    let keys = 60_000u32;
    let before = LIVE.load(Ordering::Relaxed);
    let db = NodeDb::open(&d.path().join("state.redb"), cache).expect("open");
    let mut root = EMPTY;
    let mut version = 0;
    for start in (0..keys).step_by(10_000) {
        version += 1;
        let kvs: Vec<_> = (start..start + 10_000)
            .map(|i| (key(i), i.to_le_bytes().to_vec()))
            .collect();
        root = db
            .apply(
                version,
                &root,
                kvs.iter().map(|(k, v)| (&k[..], Some(&v[..]))),
                None,
            )
            .expect("apply");
        db.prune(version, 64).expect("prune");
    }
    // A small last round: the change the store keeps staged is one round's nodes, which the
    // cache setting does not bound (a round's write log does).
    version += 1;
    let (k, v) = (key(7), b"updated".to_vec());
    root = db
        .apply(version, &root, [(&k[..], Some(&v[..]))], None)
        .expect("apply");
    db.prune(version, 64).expect("prune");
    // Every key read, twice: each node of the tree (about 2 x 60,000, ~25 MB decoded) passes
    // through the caches.
    for _ in 0..2 {
        for i in (0..keys).rev() {
            assert!(db.get(&root, &key(i)).expect("get").is_some(), "key {i}");
        }
    }
    let used = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    // The bound, plus 1 MiB for redb's fixed structures and the last round's staged change.
    let bound = cache + (1 << 20);
    println!("store memory after reading the whole tree: {used} bytes (cache setting {cache})");
    assert!(used <= bound, "{used} bytes live, bound {bound}");
}

#[test]
fn a_value_larger_than_the_cache_is_read_without_being_kept() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = tempfile::tempdir().expect("tmp");
    let cache = 4 << 20;
    let before = LIVE.load(Ordering::Relaxed);
    let db = NodeDb::open(&d.path().join("state.redb"), cache).expect("open");
    // The largest value a key may hold, 16 times the cache, among ordinary keys.
    let big = vec![0x5a_u8; paratime_mkvs::node::MAX_VALUE_LEN];
    let mut kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..1_000u32)
        .map(|i| (key(i), i.to_le_bytes().to_vec()))
        .collect();
    kvs.push((b"big".to_vec(), big.clone()));
    let mut root = db
        .apply(
            1,
            &EMPTY,
            kvs.iter().map(|(k, v)| (&k[..], Some(&v[..]))),
            None,
        )
        .expect("apply");
    drop(kvs);
    // A later small round: the staged change is that round's, not the one holding the value.
    let (k, v) = (key(7), b"updated".to_vec());
    root = db
        .apply(2, &root, [(&k[..], Some(&v[..]))], None)
        .expect("apply");
    for _ in 0..3 {
        let got = db
            .get(&root, b"big")
            .expect("get")
            .expect("the value is there");
        assert!(got == big, "the value reads back whole");
        for i in 0..1_000u32 {
            assert!(db.get(&root, &key(i)).expect("get").is_some(), "key {i}");
        }
    }
    drop(big);
    let used = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let bound = cache + (1 << 20);
    println!("store memory after reading a 64 MiB value three times: {used} bytes (cache setting {cache})");
    assert!(used <= bound, "{used} bytes live, bound {bound}");
}
