//! `paratime-dev bench-state`: the cost of a round on a large state. Fills a state tree with N
//! keys (in rounds of `--fill-batch` keys), then applies `--rounds` rounds of `--writes`
//! random updates and inserts, and prints per-round apply time, RSS and the store's size next
//! to the same figures on a small state: the goal is a round cost within 2x of the small
//! state's, with memory bounded by the cache.

use anyhow::Context as _;
use paratime_node::host::state::RuntimeState;
use paratime_sdk::protocol::WriteLogEntry;
use serde_bytes::ByteBuf;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `bench-state` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Keys in the large state.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Keys in the small state it is compared with.
    #[arg(long, default_value_t = 10_000)]
    small: u64,
    /// Keys written per round while filling (at least 1: none would never fill).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    fill_batch: u64,
    /// Measured rounds (at least 1: the figures are their percentiles).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Writes per measured round (half updates of existing keys, half new keys).
    #[arg(long, default_value_t = 500)]
    writes: u64,
    /// Prune every this many rounds (at least 1), keeping only the latest version: a node prunes
    /// on `runtime.prune.interval`, not after every round, and removes several rounds'
    /// replaced nodes at once. The round figures are then the mean over the measured rounds
    /// (pruning included), besides the percentiles.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    prune_every: u64,
    /// State tree cache (bytes).
    #[arg(long, default_value_t = 64 << 20)]
    cache: usize,
    /// Where the trees are written (a temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep a copy of each filled state in `--dir` and start later runs with the same key
    /// count and `--fill-batch` from it, so that one filled state can be measured under
    /// several settings (a 10M-key fill takes ~36 minutes).
    #[arg(long, requires = "dir")]
    reuse: bool,
}

/// A deterministic pseudo-random sequence (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(i: u64) -> Vec<u8> {
    // Keys shaped like a ParaTime's: a module prefix and a hashed account.
    let mut k = b"accounts/".to_vec();
    k.extend_from_slice(&paratime_sdk::state::hash(&i.to_be_bytes())[..20]);
    k
}

fn log_of(mut entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<WriteLogEntry> {
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    entries
        .into_iter()
        .map(|(k, v)| WriteLogEntry {
            key: ByteBuf::from(k),
            value: Some(ByteBuf::from(v)),
        })
        .collect()
}

/// A size field of this process's `/proc/self/status` in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// This process's resident set size in MB.
pub(crate) fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// This process's peak resident set size so far in MB (the kernel's high-water mark).
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

fn dir_mb(p: &std::path::Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// Fills the state at `path` with `n` keys in rounds of `--fill-batch`.
fn fill(a: &Args, path: &std::path::Path, n: u64, label: &str) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let state = RuntimeState::open(path, a.cache)?;
    let mut round = 0u64;
    let mut filled = 0u64;
    let t = Instant::now();
    // A large fill takes many minutes: progress every 30 s, with the cost of the batches since
    // the last line and the file's size (redb grows it in steps).
    let mut shown = (Instant::now(), 0u64, Duration::ZERO);
    while filled < n {
        let batch = Instant::now();
        let end = (filled + a.fill_batch).min(n);
        let log = log_of(
            (filled..end)
                .map(|i| (key(i), i.to_le_bytes().to_vec()))
                .collect(),
        );
        let prev = state.root();
        round += 1;
        let next = state.compute(&prev, &log)?;
        state.apply(round, &prev, &log, &next)?;
        state.prune(round, 64)?;
        filled = end;
        shown.2 += batch.elapsed();
        if shown.0.elapsed() >= Duration::from_secs(30) && filled < n {
            let keys = filled - shown.1;
            eprintln!(
                "{label}: {filled} of {n} keys after {:.0}s: {:.1} µs per key since the last line, store {:.0} MB, RSS {:.0} MB",
                t.elapsed().as_secs_f64(),
                shown.2.as_secs_f64() * 1e6 / keys.max(1) as f64,
                dir_mb(path),
                rss_mb()
            );
            shown = (Instant::now(), filled, Duration::ZERO);
        }
    }
    eprintln!(
        "{label}: filled {n} keys in {:.1}s, store {:.0} MB, RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        dir_mb(path),
        rss_mb()
    );
    Ok(())
}

/// Fills a state with `n` keys (or, with `--reuse`, copies the one an earlier run filled),
/// then measures `rounds` rounds; returns the median and mean round time and the nodes written
/// per round.
fn measure(
    a: &Args,
    dir: &std::path::Path,
    n: u64,
    label: &str,
) -> anyhow::Result<(f64, f64, f64)> {
    let path = dir.join(format!("{label}.redb"));
    let kept = dir.join(format!("{label}-{n}-keys-by-{}.filled.redb", a.fill_batch));
    if a.reuse && kept.exists() {
        let t = Instant::now();
        std::fs::copy(&kept, &path)
            .and_then(|_| std::fs::File::open(&path)?.sync_all())
            .with_context(|| format!("copying {} to {}", kept.display(), path.display()))?;
        // Written back before the rounds start: a copy of several GB still being written
        // back made one run's reads cost 4x (stop 38).
        eprintln!(
            "{label}: reusing the filled state {} ({:.0} MB, copied and synced in {:.1}s)",
            kept.display(),
            dir_mb(&path),
            t.elapsed().as_secs_f64()
        );
    } else {
        fill(a, &path, n, label)?;
        if a.reuse {
            // Under another name until complete: an interrupted copy is never reused.
            let partial = kept.with_extension("partial");
            std::fs::copy(&path, &partial)
                .and_then(|_| std::fs::rename(&partial, &kept))
                .with_context(|| format!("keeping the filled state as {}", kept.display()))?;
        }
    }
    // Opened afresh either way: the rounds start from the same state and an empty cache.
    let state = RuntimeState::open(&path, a.cache)?;
    let (mut round, _) = state.resume_latest()?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut times = Vec::new();
    let mut phases: [Vec<Duration>; 3] = Default::default();
    let mut next_new = n;
    let reads_before = state.reads();
    let written_before = state.nodes_written();
    for _ in 0..a.rounds {
        let mut entries = Vec::new();
        for w in 0..a.writes {
            let i = if w % 2 == 0 {
                rng.next() % n.max(1)
            } else {
                next_new += 1;
                next_new
            };
            entries.push((key(i), rng.next().to_le_bytes().to_vec()));
        }
        let log = log_of(entries);
        let prev = state.root();
        round += 1;
        let t = Instant::now();
        // What a compute node pays per round: the executor's root, then the finalized apply.
        let next = state.compute(&prev, &log)?;
        let computed = t.elapsed();
        state.apply(round, &prev, &log, &next)?;
        let applied = t.elapsed();
        if round.is_multiple_of(a.prune_every) {
            state.prune(round, usize::MAX)?;
        }
        times.push(t.elapsed());
        phases[0].push(computed);
        phases[1].push(applied - computed);
        phases[2].push(t.elapsed() - applied);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[(v.len() - 1) / 2].as_secs_f64() * 1e3
    };
    let mean_ms = |v: &[Duration]| {
        v.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / v.len().max(1) as f64
    };
    let reads_after = state.reads();
    let written = (state.nodes_written() - written_before) as f64 / a.rounds as f64;
    let reads = reads_after.records - reads_before.records;
    let read_us = (reads_after.nanos - reads_before.nanos) as f64 / 1e3;
    let mean = mean_ms(&times);
    let mean_prune = mean_ms(&phases[2]);
    let [c, w, p] = phases.each_mut().map(median);
    times.sort();
    let pick = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    let (p50, p90) = (pick(0.5), pick(0.9));
    println!(
        "{label:>6}: {n:>10} keys  round p50 {:>7.2} ms  p90 {:>7.2} ms  mean {mean:>7.2} ms  (p50 compute {c:.2}, store {w:.2}, prune {p:.2}; prune mean {mean_prune:.2})  nodes written per round {written:.0} ({:.2} µs each at p50)  records read from disk per round {:.0} at {:.1} µs  store {:>7.0} MB  RSS {:>5.0} MB",
        p50.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e6 / written.max(1.0),
        reads as f64 / a.rounds as f64,
        read_us / reads.max(1) as f64,
        dir_mb(&path),
        rss_mb()
    );
    Ok((p50.as_secs_f64() * 1e3, mean, written))
}

/// Runs the benchmark; exit code 1 on error.
pub(crate) fn run(a: Args) -> i32 {
    let (dir, remove) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => match nix::unistd::mkdtemp(&std::env::temp_dir().join("paratime-bench-XXXXXX")) {
            Ok(d) => (d, true),
            Err(e) => {
                eprintln!("error: temporary directory: {e}");
                return 1;
            }
        },
    };
    println!(
        "state-size benchmark: {} writes per round, cache {} MiB (each round: root computed, applied, oldest version pruned)",
        a.writes,
        a.cache >> 20
    );
    let run = || -> anyhow::Result<()> {
        let (small, small_mean, small_nodes) = measure(&a, &dir, a.small, "small")?;
        let (large, large_mean, large_nodes) = measure(&a, &dir, a.keys, "large")?;
        let ratio = large / small.max(1e-9);
        let mean_ratio = large_mean / small_mean.max(1e-9);
        // A round's writes share the top of the tree; below it each write rewrites its own path,
        // which is longer in a larger tree: the nodes a round writes grow with the state, and
        // the round time per node written shows what the size costs beyond that.
        let nodes_ratio = large_nodes / small_nodes.max(1e-9);
        println!(
            "large/small round time: p50 {ratio:.2}x, mean {mean_ratio:.2}x (floor: 1x; goal within 2x); nodes written per round {nodes_ratio:.2}x, p50 time per node written {:.2}x  peak RSS {:.0} MB over the whole run, filling included (cache {} MiB)",
            ratio / nodes_ratio.max(1e-9),
            peak_rss_mb(),
            a.cache >> 20
        );
        Ok(())
    };
    let result = run();
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
