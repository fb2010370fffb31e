//! `paratime-node localnet`: a network on this machine — BFT validators (default 4), compute
//! nodes and a client node, each a separate `paratime-node` process with its own data dir, keys, ports and
//! config.yml in the oasis format — running until SIGINT/SIGTERM.

use paratime_node::bundle::{self, RuntimeId};
use paratime_node::cli::network::{entity_key, write_entity};
use paratime_node::consensus::address::Address;
use paratime_node::consensus::crypto::PublicKey;
use paratime_node::consensus::state::Entity;
use paratime_node::identity::{Identity, KeyKind};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::watch;

/// The sample ParaTime's runtime ID in the local network.
pub(crate) const RUNTIME_ID: &str = paratime_node::cli::paratime::SAMPLE_RUNTIME_ID;

/// Options of `localnet`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Directory for the network (created; must be empty or absent).
    #[arg(long)]
    dir: PathBuf,
    /// Number of validators (BFT: with 4, one may fail).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Number of compute nodes.
    #[arg(long, default_value_t = 3)]
    compute: usize,
    /// Executor committee size (workers); default: every compute node. Every compute node is
    /// also a backup worker.
    #[arg(long)]
    committee_size: Option<u16>,
    /// Blocks per epoch.
    #[arg(long, default_value_t = 10)]
    epoch_interval: u64,
    /// Milliseconds between blocks, at least (a proposer waits up to one more interval for the
    /// commitments of a ParaTime round in progress).
    #[arg(long, default_value_t = 200)]
    block_interval_ms: u64,
    /// Transactions per ParaTime batch (the genesis's `max_batch_size`; one batch per round,
    /// at most one round per block: with 200 ms blocks, 500 caps the network at 2,500 tx/s).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    max_batch_size: u64,
    /// How validators spread proposals and votes (the genesis's `consensus_pubsub`):
    /// `gossipsub`, or `broadcast` (every node here is connected to every validator).
    #[arg(long, default_value = "gossipsub")]
    consensus_pubsub: paratime_node::consensus::genesis::ConsensusPubSub,
    /// Escrow of the compute entity (the node-compute threshold is 100 per node, entity 100).
    #[arg(long, default_value_t = 10_000)]
    entity_escrow: u64,
    /// Stop after this long (e.g. 60s); default: until SIGINT/SIGTERM.
    #[arg(long)]
    duration: Option<humantime::Duration>,
    /// Transactions the load generator keeps in flight (signed kv.Put through the client node:
    /// 16 waiting for their rounds, the rest 48 per account through submit-no-wait; at most
    /// 4,624); 0 runs the network without load.
    #[arg(long, default_value_t = 96, value_parser = load_in_flight)]
    load: usize,
    /// The load writes at most this many distinct keys (`load-0` … `load-<N-1>`, overwritten
    /// round after round), so the ParaTime's state stops growing and, with --prune-kept, the
    /// data dirs reach a steady size; by default every transaction writes a new key.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    load_keys: Option<u64>,
    /// Print the summary as one JSON line at the end (last line of stdout).
    #[arg(long)]
    json: bool,
    /// Test-only fault injection: NODE=FAULT hosts the faulty key-value store
    /// (`paratime-faulty-kvstore`, built by the workspace) on that node with `debug_fault` FAULT
    /// (e.g. compute-1=wrong_state_root); the other nodes host the sample ParaTime.
    #[arg(long = "debug-fault", hide = true)]
    debug_fault: Vec<String>,
    /// Test-only (debug builds): NODE=STEP@HEIGHT makes that node SIGKILL itself once at a
    /// consensus step (prevote, precommit, decided, stored) at HEIGHT or above; localnet
    /// restarts it. Repeatable.
    #[arg(long = "debug-crash", hide = true)]
    debug_crash: Vec<String>,
    /// Test-only: NODE=NETNS,HOST_IP,NODE_IP runs that node in the network namespace NETNS
    /// (/run/netns/NETNS), reaching the others through HOST_IP and reached at NODE_IP.
    #[arg(long = "debug-netns", hide = true)]
    debug_netns: Vec<String>,
    /// NODE=COMMAND runs that node under COMMAND (split at spaces; the node's own command line
    /// is appended), e.g. `--wrap 'compute-0=heaptrack -o /tmp/compute-0'` or
    /// `--wrap 'compute-0=perf record -g -o /tmp/perf.data --'`; the node runs as it would
    /// otherwise (as `nobody` when started as root: COMMAND's output must be writable by it).
    /// The growth report's "node alone" RSS for that node is then COMMAND's. Repeatable.
    #[arg(long = "wrap", value_name = "NODE=COMMAND")]
    wrap: Vec<String>,
    /// Every this long, sample transactions, ParaTime rounds and consensus blocks finalized, and
    /// RSS, CPU and data dir size per node; the growth report is printed at the end (and is
    /// `growth` in --json).
    #[arg(long, default_value = "60s")]
    growth_every: humantime::Duration,
    /// Prune runtime history and state on every node: keep this many rounds
    /// (`runtime.prune.strategy: keep_last`, checked every `--prune-interval`).
    #[arg(long)]
    prune_kept: Option<u64>,
    /// `runtime.prune.interval` with `--prune-kept`.
    #[arg(long, default_value = "1s", requires = "prune_kept")]
    prune_interval: humantime::Duration,
    /// Prune consensus blocks on every node: keep this many (`consensus.prune.strategy:
    /// keep_n`, checked every second).
    #[arg(long)]
    consensus_prune_kept: Option<u64>,
    /// Also run `client-1`, a client node started this long after the others: a late joiner
    /// (with --prune-kept it finds the early rounds pruned and syncs the state instead).
    #[arg(long)]
    late_client: Option<humantime::Duration>,
    /// Nodes follow the ParaTime by id and download its bundle from the registry at this base
    /// URL (`runtime.runtimes: [{id, registries: [URL]}]`, no `runtime.paths`). localnet writes
    /// the registry's files to `<dir>/registry/` (the metadata file named by the manifest hash,
    /// pointing at `URL/kvstore.orc`, and the bundle): serve that directory at URL.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// Every node halts for an upgrade before this height (`consensus.halt_height`, with a 2 s
    /// `upgrade_stop_delay`): the network stops after block HEIGHT−1 and every node exits 0.
    #[arg(long, value_name = "HEIGHT")]
    halt_height: Option<u64>,
}

fn netns_of(a: &Args, node: &str) -> anyhow::Result<Option<Netns>> {
    for f in &a.debug_netns {
        let Some(rest) = f.strip_prefix(&format!("{node}=")) else {
            continue;
        };
        let parts: Vec<&str> = rest.split(',').collect();
        let [name, host_ip, ip] = parts[..] else {
            return Err(anyhow::anyhow!(
                "--debug-netns '{f}': expected NODE=NETNS,HOST_IP,NODE_IP"
            ));
        };
        for addr in [host_ip, ip] {
            addr.parse::<std::net::Ipv4Addr>()
                .map_err(|e| anyhow::anyhow!("--debug-netns '{f}': '{addr}': {e}"))?;
        }
        if !Path::new("/run/netns").join(name).exists() {
            return Err(anyhow::anyhow!(
                "--debug-netns '{f}': no network namespace /run/netns/{name} (ip netns add {name})"
            ));
        }
        return Ok(Some(Netns {
            name: name.into(),
            host_ip: host_ip.into(),
            ip: ip.into(),
        }));
    }
    Ok(None)
}

/// Most transactions the load generator keeps in flight: each of its accounts holds at most one
/// control connection of the client node at a time (16 probes, then one per
/// [`crate::load::ACCOUNT_WINDOW`] transactions), and the node serves
/// `control::MAX_CONNECTIONS` at once; 16 are left for `control status` and the operator.
const MAX_LOAD: usize =
    16 + (paratime_node::control::MAX_CONNECTIONS - 32) * crate::load::ACCOUNT_WINDOW;

fn load_in_flight(s: &str) -> anyhow::Result<usize> {
    let n: usize = s
        .parse()
        .map_err(|e| anyhow::anyhow!("'{s}' is not a number of transactions: {e}"))?;
    if n > MAX_LOAD {
        return Err(anyhow::anyhow!(
            "{n} in flight needs more accounts than the client node's {} control connections serve at once: at most {MAX_LOAD}",
            paratime_node::control::MAX_CONNECTIONS
        ));
    }
    Ok(n)
}

/// A port free for TCP and UDP, below the kernel's ephemeral range (32768 and up on Linux), so
/// that no outgoing connection or DNS query of another node can take it between now and the
/// node's start.
fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::SeqCst) == 0 {
        // Different localnets (and test runs) start at different places.
        let seed = u16::try_from(std::process::id() % 10_000).unwrap_or(0);
        let _ = NEXT.compare_exchange(0, 20_000 + seed, Ordering::SeqCst, Ordering::SeqCst);
    }
    for _ in 0..12_000 {
        let mut port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= 32_000 {
            NEXT.store(20_000, Ordering::SeqCst);
            port = 20_000;
        }
        let tcp = std::net::TcpListener::bind(("0.0.0.0", port));
        let udp = std::net::UdpSocket::bind(("0.0.0.0", port));
        if tcp.is_ok() && udp.is_ok() {
            return Ok(port);
        }
    }
    Err(anyhow::anyhow!("no free port between 20000 and 32000"))
}

struct NodeSpec {
    name: String,
    mode: &'static str,
    port: u16,
    consensus_port: u16,
    /// Test-only: the node runs in this network namespace.
    netns: Option<Netns>,
}

/// A network namespace a node runs in, reached through a veth pair.
#[derive(Clone, Debug)]
struct Netns {
    /// Name under /run/netns.
    name: String,
    /// The host side's address (the node reaches the others through it).
    host_ip: String,
    /// The node's address in the namespace (the others reach it there).
    ip: String,
}

impl NodeSpec {
    fn ip(&self) -> &str {
        self.netns.as_ref().map_or("127.0.0.1", |n| n.ip.as_str())
    }
}

/// `runtime.prune` of every node: rounds kept and the interval.
type RuntimePrune = (u64, humantime::Duration);

fn config_yaml(
    dir: &Path,
    n: &NodeSpec,
    (peers, seed): (&[String], &str),
    (bundle, registry): (&Path, Option<&str>),
    entity: Option<&Path>,
    runtime: bool,
    (fault, prune_kept, consensus_kept, halt_height): (
        Option<&str>,
        Option<RuntimePrune>,
        Option<u64>,
        Option<u64>,
    ),
) -> String {
    let node_dir = dir.join(&n.name);
    let mut s = format!(
        "mode: {mode}\ncommon:\n  data_dir: {data}\n  log:\n    file: node.log\n    format: JSON\n    level:\n      default: info\ngenesis:\n  file: {genesis}\nconsensus:\n  listen_address: tcp://0.0.0.0:{cport}\n{halt}{peers}{cprune}p2p:\n  port: {port}\n  registration:\n    addresses:\n      - {ip}:{port}\n",
        mode = n.mode,
        data = node_dir.join("data").display(),
        genesis = dir.join("genesis.json").display(),
        cport = n.consensus_port,
        peers = if peers.is_empty() {
            String::new()
        } else {
            format!(
                "  p2p:\n    persistent_peers:\n{}",
                peers
                    .iter()
                    .map(|p| format!("      - \"{p}\"\n"))
                    .collect::<String>()
            )
        },
        port = n.port,
        ip = n.ip(),
        halt = halt_height.map_or(String::new(), |h| format!(
            "  halt_height: {h}\n  upgrade_stop_delay: 2s\n"
        )),
        cprune = consensus_kept.map_or(String::new(), |k| format!(
            "  prune:\n    strategy: keep_n\n    num_kept: {k}\n    interval: 1s\n"
        )),
    );
    if !seed.is_empty() {
        s.push_str(&format!("  seeds:\n    - \"{seed}\"\n"));
    }
    if let Some(e) = entity {
        s.push_str(&format!("registration:\n  entity: {}\n", e.display()));
    }
    if runtime {
        match (fault, registry) {
            (Some(f), _) => s.push_str(&format!(
                "runtime:\n  paths:\n    - {}\n  runtimes:\n    - id: {RUNTIME_ID}\n      config:\n        debug_fault: {f}\n",
                bundle.display()
            )),
            (None, Some(url)) => s.push_str(&format!(
                "runtime:\n  download_timeout: 10s\n  runtimes:\n    - id: {RUNTIME_ID}\n      registries:\n        - \"{url}\"\n"
            )),
            (None, None) => {
                s.push_str(&format!("runtime:\n  paths:\n    - {}\n", bundle.display()))
            }
        }
        if let Some((n, every)) = prune_kept {
            s.push_str(&format!(
                "  prune:\n    strategy: keep_last\n    num_kept: {n}\n    interval: {every}\n"
            ));
        }
    }
    s
}

/// One sample of the growth report.
#[derive(Debug, serde::Serialize)]
struct GrowthRow {
    /// Sample number (1 = the end of the first interval).
    sample: usize,
    /// Transactions finalized per second over the interval.
    tx_per_s: f64,
    /// ParaTime rounds finalized and consensus blocks over the interval, as client-0 saw them
    /// (0 for an interval at whose start or end no node answered, e.g. the first, when the
    /// nodes were still starting): which of the two moved when throughput did — transactions
    /// per round (the batches) or rounds per block (the pacing).
    rounds: u64,
    blocks: u64,
    /// Per node: RSS of the node and its launcher and sandboxes (MB), and its data dir (MB).
    nodes: std::collections::BTreeMap<String, (f64, f64)>,
    /// Per node: RSS of the node process alone (MB), and what its stores' caches hold of that
    /// (MB): the consensus store's pages (bounded: 32 MiB) and the state tree's decoded nodes
    /// and pages (bounded by `storage.max_cache_size`).
    node_caches: std::collections::BTreeMap<String, (f64, f64)>,
    /// Per node: CPU used over the interval by the node, its launcher and sandboxes (% of one
    /// core).
    cpu_percent: std::collections::BTreeMap<String, f64>,
    /// Per node hosting the ParaTime: state tree nodes read from its store per finalized round
    /// over the interval (the node cache's misses): rises as the state outgrows the cache.
    tree_misses_per_round: std::collections::BTreeMap<String, f64>,
    /// CPU of all nodes, their launchers and sandboxes per finalized transaction (ms) over the
    /// interval: the work a transaction costs, whatever the throughput.
    cpu_ms_per_tx: Option<f64>,
    /// The host's speed over the interval: the median CPU time (ms) a fixed piece of work took
    /// ([`HostProbe`]). When the nodes' CPU per transaction moves with it, the host changed
    /// speed, not the nodes' work.
    host_probe_ms: Option<f64>,
}

impl GrowthRow {
    fn line(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(n, (rss, disk))| format!("{n} {rss:.0}/{disk:.0}"))
            .collect();
        let own: Vec<String> = self
            .node_caches
            .iter()
            .map(|(n, (own, caches))| format!("{n} {own:.0}/{caches:.0}"))
            .collect();
        let cpu: Vec<String> = self
            .cpu_percent
            .iter()
            .map(|(n, c)| format!("{n} {c:.0}"))
            .collect();
        let misses: Vec<String> = self
            .tree_misses_per_round
            .iter()
            .map(|(n, m)| format!("{n} {m:.0}"))
            .collect();
        let shown = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3} ms"));
        format!(
            "#{:<3} {:>7.1} tx/s  {} rounds / {} blocks  CPU per tx {}  host probe {}  RSS/disk MB: {}  node alone/its caches MB: {}  CPU %: {}  tree reads/round: {}",
            self.sample,
            self.tx_per_s,
            self.rounds,
            self.blocks,
            shown(self.cpu_ms_per_tx),
            shown(self.host_probe_ms),
            nodes.join("  "),
            own.join("  "),
            cpu.join("  "),
            misses.join("  ")
        )
    }
}

/// How fast this host runs code now, whatever else runs on it: the CPU time (this thread's
/// own, not wall time, so waiting for a core does not count) that one fixed piece of work takes,
/// sampled every half second. The work hashes 8 MiB, more than the caches hold, so memory speed
/// counts as it does in the nodes' work. On a shared virtual machine the same instructions take
/// more or less CPU time from minute to minute (other guests on the host's cores, frequency):
/// a long run's throughput moves with that, and this separates it from the nodes' own growth.
/// Costs ~2–3 % of one core (~15 ms of CPU every half second on a loaded 2-core machine).
struct HostProbe {
    samples: std::sync::Arc<std::sync::Mutex<Vec<f64>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HostProbe {
    fn start() -> Self {
        let samples: std::sync::Arc<std::sync::Mutex<Vec<f64>>> = std::sync::Arc::default();
        let stop: std::sync::Arc<std::sync::atomic::AtomicBool> = std::sync::Arc::default();
        let (out, stopped) = (samples.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("host-probe".into())
            .spawn(move || {
                let data = vec![0x5au8; 8 << 20];
                let cpu = || {
                    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
                        .map(|u| {
                            let t = |v: nix::sys::time::TimeVal| {
                                v.tv_sec() as f64 * 1e3 + v.tv_usec() as f64 / 1e3
                            };
                            t(u.user_time()) + t(u.system_time())
                        })
                        .ok()
                };
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(before) = cpu() {
                        std::hint::black_box(paratime_sdk::state::hash(std::hint::black_box(
                            &data,
                        )));
                        if let Some(after) = cpu() {
                            out.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(after - before);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        if let Err(e) = spawned {
            eprintln!("host probe not started ({e}): growth rows show no host speed");
        }
        Self { samples, stop }
    }

    /// The median of the samples since the last call (ms), if any.
    fn take(&self) -> Option<f64> {
        let mut v = std::mem::take(
            &mut *self
                .samples
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some((crate::load::percentile(&v, 0.5) * 1000.0).round() / 1000.0)
    }
}

impl Drop for HostProbe {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How flat a run's throughput was from its second interval on (the first holds the start):
/// as measured, and at the run's mean host speed (each interval's tx/s times its host probe
/// over the probes' mean: what the nodes would have done had the host kept one speed).
#[derive(Debug, serde::Serialize)]
struct Flatness {
    /// Intervals counted.
    intervals: usize,
    /// Mean, standard deviation (% of the mean), lowest and highest (% off the mean), and
    /// intervals within ±10 % of the mean: as measured.
    measured: Spread,
    /// The same at the run's mean host speed (none without probes in every interval).
    at_mean_host_speed: Option<Spread>,
}

#[derive(Debug, serde::Serialize)]
struct Spread {
    mean: f64,
    sd_percent: f64,
    low_percent: f64,
    high_percent: f64,
    within_10_percent: usize,
}

impl Spread {
    fn of(v: &[f64]) -> Option<Self> {
        if v.is_empty() {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        if mean.is_nan() || mean <= 0.0 {
            return None;
        }
        let off = |x: f64| (x / mean - 1.0) * 100.0;
        let round = |x: f64| (x * 10.0).round() / 10.0;
        Some(Self {
            mean: round(mean),
            sd_percent: round(
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt() / mean * 100.0,
            ),
            low_percent: round(v.iter().copied().map(off).fold(f64::INFINITY, f64::min)),
            high_percent: round(v.iter().copied().map(off).fold(f64::NEG_INFINITY, f64::max)),
            within_10_percent: v.iter().filter(|x| off(**x).abs() <= 10.0).count(),
        })
    }

    fn line(&self, n: usize) -> String {
        format!(
            "mean {:.1} tx/s, sd {:.1} %, {:+.1} % / {:+.1} %, {} of {n} within ±10 %",
            self.mean, self.sd_percent, self.low_percent, self.high_percent, self.within_10_percent
        )
    }
}

impl Flatness {
    fn of(growth: &[GrowthRow]) -> Option<Self> {
        Self::of_intervals(
            &growth
                .iter()
                .skip(1)
                .map(|r| (r.tx_per_s, r.host_probe_ms))
                .collect::<Vec<_>>(),
        )
    }

    /// From each interval's tx/s and host probe.
    fn of_intervals(rows: &[(f64, Option<f64>)]) -> Option<Self> {
        let tx: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let probes: Option<Vec<f64>> = rows.iter().map(|r| r.1).collect();
        let at_mean_host_speed = probes.and_then(|p| {
            let mean = p.iter().sum::<f64>() / p.len() as f64;
            let v: Vec<f64> = tx.iter().zip(&p).map(|(t, p)| t * p / mean).collect();
            Spread::of(&v)
        });
        Some(Self {
            intervals: rows.len(),
            measured: Spread::of(&tx)?,
            at_mean_host_speed,
        })
    }

    fn line(&self) -> String {
        let n = self.intervals;
        let mut s = format!(
            "flatness from the second interval: {}",
            self.measured.line(n)
        );
        if let Some(h) = &self.at_mean_host_speed {
            s.push_str(&format!("; at the run's mean host speed: {}", h.line(n)));
        }
        s
    }
}

/// `pid` and all its descendants (launcher, sandboxes).
fn tree_pids(pid: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // The fields after the command name (which may hold spaces) start after ") ".
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent.push((p, pp));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let at = tree[i];
        tree.extend(parent.iter().filter(|(_, pp)| *pp == at).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// RSS (MB) of `pid` and all its descendants (launcher, sandboxes).
fn tree_rss_mb(pid: u32) -> f64 {
    tree_pids(pid).iter().map(|p| rss_mb(*p)).sum()
}

/// CPU time (ms) used so far by `pid` and its live descendants.
fn tree_cpu_ms(pid: u32) -> u64 {
    tree_pids(pid).iter().filter_map(|p| cpu_ms(*p)).sum()
}

/// RSS (MB) of `pid` alone.
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// What the first node that answers (client-0 first) has seen so far: its consensus height and
/// the ParaTime rounds finalized.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    height: u64,
    rounds: u64,
}

/// What a node's status says of its stores.
#[derive(Clone, Copy, Debug)]
struct Stores {
    /// What the consensus store's and state trees' caches hold now (MB).
    caches_mb: f64,
    /// State tree nodes read from the store since the node started (hosting nodes only).
    tree_misses: Option<u64>,
}

/// Per node: what its stores hold and have read, from its status; and the progress the first
/// node that answers has seen.
async fn state_caches(
    dir: &Path,
    children: &[(String, Child)],
) -> (BTreeMap<String, Stores>, Option<Progress>) {
    let mut out = BTreeMap::new();
    let mut progress = None;
    // client-0 first: it follows every round and every block.
    let order = children
        .iter()
        .filter(|(n, _)| n == "client-0")
        .chain(children.iter().filter(|(n, _)| n != "client-0"));
    for (name, _) in order {
        let sock = format!(
            "unix:{}",
            dir.join(name).join("data/internal.sock").display()
        );
        let Ok(st) = paratime_node::control::client::Client::new(sock)
            .status()
            .await
        else {
            continue;
        };
        if progress.is_none() {
            progress = st["consensus"]["latest_height"]
                .as_u64()
                .map(|height| Progress {
                    height,
                    rounds: st["runtimes"]
                        .as_object()
                        .into_iter()
                        .flat_map(|rts| rts.values())
                        .filter_map(|rt| rt["roothash"]["rounds_finalized"].as_u64())
                        .sum(),
                });
        }
        let consensus = st["consensus"]["store_cache_bytes"].as_u64().unwrap_or(0);
        let trees: Vec<&serde_json::Value> = st["runtimes"]
            .as_object()
            .into_iter()
            .flat_map(|rts| rts.values())
            .map(|rt| &rt["state_memory"])
            .filter(|m| m.is_object())
            .collect();
        let state: u64 = trees
            .iter()
            .map(|m| {
                m["node_cache_bytes"].as_u64().unwrap_or(0)
                    + m["page_cache_bytes"].as_u64().unwrap_or(0)
            })
            .sum();
        let misses = (!trees.is_empty()).then(|| {
            trees
                .iter()
                .map(|m| m["node_cache_misses"].as_u64().unwrap_or(0))
                .sum()
        });
        out.insert(
            name.clone(),
            Stores {
                caches_mb: ((consensus + state) as f64 / 1e5).round() / 10.0,
                tree_misses: misses,
            },
        );
    }
    (out, progress)
}

/// Bytes under `dir` (apparent sizes), in MB.
fn dir_mb(dir: &Path) -> f64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total as f64 / 1e6
}

#[allow(clippy::too_many_arguments)]
fn growth_row(
    dir: &Path,
    children: &[(String, Child)],
    stores: &BTreeMap<String, Stores>,
    cpu: &mut BTreeMap<String, (std::time::Instant, u64)>,
    misses: &mut BTreeMap<String, u64>,
    sample: usize,
    tx_per_s: f64,
    (rounds, blocks): (u64, u64),
    host_probe_ms: Option<f64>,
) -> GrowthRow {
    let now = std::time::Instant::now();
    let cpu_percent: BTreeMap<String, f64> = children
        .iter()
        .filter_map(|(name, c)| {
            let used = tree_cpu_ms(c.id());
            let (then, before) = cpu.insert(name.clone(), (now, used))?;
            let ms = now.duration_since(then).as_millis().max(1) as f64;
            Some((
                name.clone(),
                (used.saturating_sub(before) as f64 / ms * 1000.0).round() / 10.0,
            ))
        })
        .collect();
    // CPU % of one core summed over the nodes is their CPU ms per second.
    let cpu_ms_per_tx = (tx_per_s >= 1.0 && !cpu_percent.is_empty()).then(|| {
        let ms_per_s: f64 = cpu_percent.values().sum::<f64>() * 10.0;
        (ms_per_s / tx_per_s * 1000.0).round() / 1000.0
    });
    GrowthRow {
        cpu_ms_per_tx,
        host_probe_ms,
        tree_misses_per_round: {
            // Only nodes that answered at both ends of this interval: a node that did not
            // answer loses its baseline (its next delta would span two intervals), and a
            // restarted node's counter starts again from zero (no figure for that interval).
            misses.retain(|name, _| stores.get(name).is_some_and(|s| s.tree_misses.is_some()));
            stores
                .iter()
                .filter_map(|(name, s)| {
                    let total = s.tree_misses?;
                    let before = misses.insert(name.clone(), total)?;
                    (rounds > 0 && total >= before).then(|| {
                        let per_round = (total - before) as f64 / rounds as f64;
                        (name.clone(), (per_round * 10.0).round() / 10.0)
                    })
                })
                .collect()
        },
        rounds,
        blocks,
        cpu_percent,
        node_caches: children
            .iter()
            .filter_map(|(name, c)| {
                let own = (rss_mb(c.id()) * 10.0).round() / 10.0;
                Some((name.clone(), (own, stores.get(name)?.caches_mb)))
            })
            .collect(),
        sample,
        tx_per_s: (tx_per_s * 10.0).round() / 10.0,
        nodes: children
            .iter()
            .map(|(name, c)| {
                let rss = (tree_rss_mb(c.id()) * 10.0).round() / 10.0;
                let disk = (dir_mb(&dir.join(name).join("data")) * 10.0).round() / 10.0;
                (name.clone(), (rss, disk))
            })
            .collect(),
    }
}

/// A node to start: name, config file, network namespace.
type Planned = (String, PathBuf, Option<String>);

fn setup(a: &Args) -> anyhow::Result<Vec<Planned>> {
    let dir = &a.dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(anyhow::anyhow!(
            "{} exists and is not empty: give a new directory",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    if a.validators == 0 || a.validators > 16 {
        return Err(anyhow::anyhow!(
            "--validators {}: give 1 to 16 validators",
            a.validators
        ));
    }
    let mut specs = Vec::new();
    for i in 0..a.validators {
        specs.push(NodeSpec {
            name: format!("validator-{i}"),
            mode: "validator",
            port: free_port()?,
            consensus_port: free_port()?,
            netns: None,
        });
    }
    for i in 0..a.compute {
        let name = format!("compute-{i}");
        specs.push(NodeSpec {
            netns: netns_of(a, &name)?,
            name,
            mode: "compute",
            port: free_port()?,
            consensus_port: free_port()?,
        });
    }
    specs.push(NodeSpec {
        name: "client-0".into(),
        mode: "client",
        port: free_port()?,
        consensus_port: free_port()?,
        netns: netns_of(a, "client-0")?,
    });
    if a.late_client.is_some() {
        specs.push(NodeSpec {
            name: "client-1".into(),
            mode: "client",
            port: free_port()?,
            consensus_port: free_port()?,
            netns: None,
        });
    }

    for f in &a.debug_fault {
        let name = f.split('=').next().unwrap_or_default();
        if !f.contains('=')
            || !specs
                .iter()
                .any(|s| s.name == name && s.mode != "validator")
        {
            return Err(anyhow::anyhow!(
                "--debug-fault '{f}': expected NODE=FAULT with NODE one of compute-0..compute-{} or client-0",
                a.compute.saturating_sub(1)
            ));
        }
    }
    for w in &a.wrap {
        match w.split_once('=') {
            Some((name, cmd)) if specs.iter().any(|s| s.name == name) && !cmd.trim().is_empty() => {}
            _ => {
                return Err(anyhow::anyhow!(
                    "--wrap '{w}': expected NODE=COMMAND with NODE one of this network's nodes and a command"
                ))
            }
        }
    }
    for c in &a.debug_crash {
        let name = c.split('=').next().unwrap_or_default();
        if !c.contains('=') || !specs.iter().any(|s| s.name == name) {
            return Err(anyhow::anyhow!(
                "--debug-crash '{c}': expected NODE=STEP@HEIGHT with NODE one of this network's nodes"
            ));
        }
    }
    let mut ids = Vec::new();
    for n in &specs {
        let data = dir.join(&n.name).join("data");
        std::fs::create_dir_all(dir.join(&n.name).join("etc"))?;
        paratime_node::identity::ensure_dir(&data)?;
        ids.push(Identity::init(&data)?);
    }

    // One entity owns the validators and the compute nodes, lists them all (they register
    // under it: validators with the validator role, compute nodes with the compute role) and is
    // registered at genesis; its escrow backs the validators' voting power.
    let entity_dir = dir.join("entity");
    paratime_node::identity::ensure_dir(&entity_dir)?;
    let ekey = entity_key(&entity_dir, true)?;
    let node_ids: Vec<PublicKey> = specs
        .iter()
        .zip(&ids)
        .filter(|(s, _)| s.mode == "compute" || s.mode == "validator")
        .map(|(_, id)| PublicKey::of(id.key(KeyKind::Node)))
        .collect();
    let entity = Entity {
        v: 2,
        id: PublicKey::of(&ekey),
        nodes: node_ids,
    };
    write_entity(&entity_dir, &entity)?;
    let entity_addr = Address::from_public_key(&entity.id);

    let exe = std::env::current_exe()?;
    let kv = exe.with_file_name("paratime-kvstore");
    let bundle_path = dir.join("kvstore.orc");
    let runtime_id: RuntimeId = RUNTIME_ID.parse()?;
    let version = paratime_sdk::Version::parse(paratime_node::SOFTWARE_VERSION)?;
    let manifest = bundle::build(&bundle::BuildOptions { executable: &kv, name: "kvstore", runtime_id, version }, &bundle_path)
        .map_err(|e| anyhow::anyhow!("building the sample bundle from {}: {e} (build the workspace: cargo build --release --workspace)", kv.display()))?;
    if let Some(url) = &a.registry {
        let reg = dir.join("registry");
        std::fs::create_dir_all(&reg)?;
        std::fs::copy(&bundle_path, reg.join("kvstore.orc"))?;
        std::fs::write(
            reg.join(manifest.hash_hex()),
            format!("{}/kvstore.orc\n", url.trim_end_matches('/')),
        )?;
    }
    // Nodes with a fault host the test-only faulty store under the same runtime ID and version.
    let faulty_path = dir.join("kvstore-faulty.orc");
    if !a.debug_fault.is_empty() {
        let faulty = exe.with_file_name("paratime-faulty-kvstore");
        bundle::build(&bundle::BuildOptions { executable: &faulty, name: "kvstore", runtime_id, version: paratime_sdk::Version::parse(paratime_node::SOFTWARE_VERSION)? }, &faulty_path)
            .map_err(|e| anyhow::anyhow!("building the faulty bundle from {}: {e} (build the workspace: cargo build --workspace)", faulty.display()))?;
    }

    let genesis =
        paratime_node::cli::network::make_genesis(&paratime_node::cli::network::GenesisParams {
            chain_id: "paratime-localnet".into(),
            epoch_interval: a.epoch_interval,
            block_interval_ms: a.block_interval_ms,
            validators: specs
                .iter()
                .zip(&ids)
                .filter(|(s, _)| s.mode == "validator")
                .map(|(_, id)| (PublicKey::of(id.key(KeyKind::Consensus)), entity.id))
                .collect(),
            entities: vec![(ekey, entity.clone())],
            balance: 1_000_000,
            escrow: a.entity_escrow,
            runtime: Some((
                runtime_id,
                a.committee_size
                    .unwrap_or_else(|| u16::try_from(a.compute.max(1)).unwrap_or(u16::MAX)),
            )),
            // Every compute node is also a backup worker: discrepancies are resolved by a majority
            // of the whole committee.
            group_backup_size: u16::try_from(a.compute).unwrap_or(u16::MAX),
            max_batch_size: a.max_batch_size,
            consensus_pubsub: a.consensus_pubsub,
            deployments: vec![paratime_node::consensus::genesis::Deployment {
                version,
                valid_from: 0,
                bundle_checksum: paratime_node::consensus::genesis::BundleChecksum(manifest.hash()),
            }],
        });
    std::fs::write(
        dir.join("genesis.json"),
        serde_json::to_vec_pretty(&genesis)?,
    )?;

    let seed = format!(
        "{}@127.0.0.1:{}",
        ids[0].public_b64(KeyKind::P2p),
        specs[0].port
    );
    let mut out = Vec::new();
    let mut metrics_lines = Vec::new();
    for n in &specs {
        let entity = (n.mode != "client").then_some(entity_dir.join("entity.json"));
        let runtime = n.mode != "validator";
        let seed = match &n.netns {
            _ if n.name == "validator-0" => String::new(),
            Some(ns) => seed.replace("@127.0.0.1:", &format!("@{}:", ns.host_ip)),
            None => seed.clone(),
        };
        let fault = a
            .debug_fault
            .iter()
            .find_map(|f| f.strip_prefix(&format!("{}=", n.name)));
        // Every node keeps connections to the validators' consensus ports.
        let host = n
            .netns
            .as_ref()
            .map_or("127.0.0.1", |ns| ns.host_ip.as_str());
        let peers: Vec<String> = specs
            .iter()
            .zip(&ids)
            .filter(|(v, _)| v.mode == "validator" && v.name != n.name)
            .map(|(v, id)| {
                format!(
                    "{}@{host}:{}",
                    id.public_b64(KeyKind::Consensus),
                    v.consensus_port
                )
            })
            .collect();
        let cfg = config_yaml(
            dir,
            n,
            (&peers, &seed),
            (
                if fault.is_some() {
                    &faulty_path
                } else {
                    &bundle_path
                },
                a.registry.as_deref(),
            ),
            entity.as_deref(),
            runtime,
            (
                fault,
                a.prune_kept.map(|n| (n, a.prune_interval)),
                a.consensus_prune_kept,
                a.halt_height,
            ),
        );
        // Every node serves Prometheus metrics on a port of its own (in its network namespace
        // when it runs in one).
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let cfg = format!("{cfg}metrics:\n  mode: pull\n  address: {metrics}\n");
        metrics_lines.push(format!("{} http://{metrics}/metrics", n.name));
        let path = dir.join(&n.name).join("etc/config.yml");
        std::fs::write(&path, cfg)?;
        out.push((
            n.name.clone(),
            path,
            n.netns.as_ref().map(|ns| ns.name.clone()),
        ));
    }
    println!(
        "localnet in {}: chain context {}",
        dir.display(),
        genesis.chain_context()
    );
    println!(
        "  entity {} (address {entity_addr}), escrow {}",
        entity.id, a.entity_escrow
    );
    println!("  metrics: {}", metrics_lines.join(", "));
    Ok(out)
}

/// Whether every ancestor of `dir` lets other users through (o+x).
fn reachable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(abs) = std::fs::canonicalize(dir) else {
        return false;
    };
    abs.ancestors().skip(1).all(|p| {
        std::fs::metadata(p)
            .map(|m| m.mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// The `--wrap` command of node `name`, split at spaces.
fn wrapper<'a>(a: &'a Args, name: &str) -> Vec<&'a str> {
    a.wrap
        .iter()
        .filter_map(|w| w.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, cmd)| cmd.split_whitespace().collect())
        .unwrap_or_default()
}

/// The `--debug-crash` entries of node `name`, as the node's crash-point variable.
fn crash_points(a: &Args, name: &str) -> Option<String> {
    let steps: Vec<&str> = a
        .debug_crash
        .iter()
        .filter_map(|c| c.split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, step)| step)
        .collect();
    (!steps.is_empty()).then(|| steps.join(","))
}

fn spawn_node(
    config: &Path,
    unprivileged: bool,
    log: &Path,
    netns: Option<&str>,
    crash: Option<&str>,
    wrap: &[&str],
) -> anyhow::Result<Child> {
    // The node binary sits next to this one (both are built by `cargo build --workspace`).
    let exe = std::env::current_exe()?.with_file_name("paratime-node");
    let mut cmd = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg("--config").arg(config).stdin(Stdio::null());
    match crash {
        Some(c) => cmd.env(paratime_node::crashpoint::ENV, c),
        None => cmd.env_remove(paratime_node::crashpoint::ENV),
    };
    if !unprivileged && nix::unistd::geteuid().is_root() {
        cmd.arg("--unsafe-debug");
    }
    let f = std::fs::File::create(log)?;
    cmd.stdout(f.try_clone()?).stderr(f);
    // The namespace is entered before dropping root, so the uid change happens after it.
    let ns_fd = match netns {
        Some(name) => Some(
            std::fs::File::open(Path::new("/run/netns").join(name))
                .map_err(|e| anyhow::anyhow!("network namespace {name}: {e}"))?,
        ),
        None => None,
    };
    let raw_ns = ns_fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    if unprivileged && raw_ns.is_none() {
        cmd.uid(65534).gid(65534);
    }
    // SAFETY: prctl, setpgid, setns, setgroups, setgid and setuid between fork and exec are
    // async-signal-safe system calls; the node dies with localnet.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // A process group of its own: a `--wrap` command that runs the node as its child
            // (a profiler's script) is stopped together with it (see `signal_node`).
            if libc::setpgid(0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = raw_ns {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if unprivileged
                    && (libc::setgroups(0, std::ptr::null()) < 0
                        || libc::setgid(65534) < 0
                        || libc::setuid(65534) < 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting node {}: {e}", config.display()));
    drop(ns_fd);
    child
}

/// Sends `sig` to a node's process group: the node, or its `--wrap` command and the node under it.
fn signal_node(c: &Child, sig: nix::sys::signal::Signal) {
    let group = nix::unistd::Pid::from_raw(c.id().cast_signed());
    let _ = nix::sys::signal::killpg(group, sig);
}

/// CPU time (user + system) a process has used, in milliseconds (`/proc/PID/stat` counts in
/// USER_HZ = 100 ticks per second on Linux).
fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}

/// What the consensus did between two moments of a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
struct ConsensusFigures {
    validators: usize,
    blocks: u64,
    seconds: f64,
    /// Achieved: seconds / blocks.
    block_interval_ms: f64,
    /// From validator-0's status: proposer built → committed, over its last 1024 live blocks.
    finality_ms: serde_json::Value,
    /// CPU used per block by each validator that ran the whole measured span.
    cpu_ms_per_block: std::collections::BTreeMap<String, f64>,
}

/// A point of a run: time, validator-0's height, each validator's (pid, CPU ms).
struct Snapshot {
    at: std::time::Instant,
    height: u64,
    cpu: Vec<(String, u32, u64)>,
}

async fn validator_status(dir: &Path) -> Option<serde_json::Value> {
    let sock = format!(
        "unix:{}",
        dir.join("validator-0/data/internal.sock").display()
    );
    paratime_node::control::client::Client::new(sock)
        .status()
        .await
        .ok()
}

async fn snapshot(dir: &Path, children: &[(String, Child)]) -> Option<Snapshot> {
    let st = validator_status(dir).await?;
    let height = st["consensus"]["latest_height"].as_u64()?;
    let cpu = children
        .iter()
        .filter(|(n, _)| n.starts_with("validator"))
        .filter_map(|(n, c)| Some((n.clone(), c.id(), cpu_ms(c.id())?)))
        .collect();
    Some(Snapshot {
        at: std::time::Instant::now(),
        height,
        cpu,
    })
}

fn figures(
    start: &Snapshot,
    end: &Snapshot,
    validators: usize,
    st: Option<serde_json::Value>,
) -> ConsensusFigures {
    let blocks = end.height.saturating_sub(start.height);
    let seconds = end.at.duration_since(start.at).as_secs_f64();
    let per_block = |ms: u64| {
        if blocks == 0 {
            0.0
        } else {
            ms as f64 / blocks as f64
        }
    };
    ConsensusFigures {
        validators,
        blocks,
        seconds,
        block_interval_ms: if blocks == 0 {
            0.0
        } else {
            seconds * 1000.0 / blocks as f64
        },
        finality_ms: st
            .map(|s| s["consensus"]["finality_ms"].clone())
            .unwrap_or_default(),
        cpu_ms_per_block: end
            .cpu
            .iter()
            .filter_map(|(n, pid, ms)| {
                let (_, p0, ms0) = start.cpu.iter().find(|(m, _, _)| m == n)?;
                (p0 == pid).then(|| (n.clone(), per_block(ms.saturating_sub(*ms0))))
            })
            .collect(),
    }
}

/// `localnet`.
pub(crate) fn run(a: Args) -> i32 {
    let nodes = match setup(&a) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: localnet: {e}");
            return 1;
        }
    };
    // paratime-node refuses root: as root, the nodes run as `nobody` — if `nobody` can reach the
    // directory; otherwise as root with the explicit unsafe flag, said loudly.
    let root = nix::unistd::geteuid().is_root();
    let unprivileged = root && reachable_by_others(&a.dir);
    if unprivileged {
        let _ = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&a.dir)
            .status();
    } else if root {
        eprintln!("warning: a parent of {} is not reachable by the unprivileged user `nobody`: the nodes run as root with --unsafe-debug (use a directory such as /tmp/NAME to run them unprivileged)", a.dir.display());
    }
    let mut children = Vec::new();
    let mut late = a
        .late_client
        .map(|d| std::time::Instant::now() + Duration::from(d));
    for (name, cfg, netns) in &nodes {
        if late.is_some() && name == "client-1" {
            println!(
                "  {name:<12} starts in {}",
                humantime::format_duration(a.late_client.map(Duration::from).unwrap_or_default())
            );
            continue;
        }
        match spawn_node(
            cfg,
            unprivileged,
            &a.dir.join(name).join("stderr.log"),
            netns.as_deref(),
            crash_points(&a, name).as_deref(),
            &wrapper(&a, name),
        ) {
            Ok(c) => {
                println!(
                    "  {name:<12} pid {:<7} control unix:{}",
                    c.id(),
                    a.dir.join(name).join("data/internal.sock").display()
                );
                children.push((name.clone(), c));
            }
            Err(e) => {
                eprintln!("error: {e}");
                for (_, c) in &mut children {
                    signal_node(c, nix::sys::signal::Signal::SIGKILL);
                    let _ = c.wait();
                }
                return 1;
            }
        }
    }
    let client = format!(
        "unix:{}",
        a.dir.join("client-0/data/internal.sock").display()
    );
    println!(
        "running; Ctrl-C stops the network (commands ask it with -a {client}, or after \
         `export PARATIME_NODE_ADDRESS={client}`)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (load_stop_tx, load_stop_rx) = watch::channel(false);
    let finalized = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load_task = (a.load > 0).then(|| {
        let (client, stop, n) = (client.clone(), load_stop_rx.clone(), a.load);
        let finalized = finalized.clone();
        let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let keys = a.load_keys;
        rt.spawn(async move {
            let size = crate::load::wait_for_committee(&client, RUNTIME_ID, stop.clone()).await?;
            eprintln!(
                "committee of {size} elected: load generator started ({n} transactions in flight)"
            );
            Some(
                crate::load::run(
                    client,
                    RUNTIME_ID.to_string(),
                    (n, keys),
                    size,
                    stop,
                    progress,
                    finalized,
                )
                .await,
            )
        })
    });
    let mut growth: Vec<GrowthRow> = Vec::new();
    let (code, report) = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else { return (1, (None, None)) };
        let until = async {
            match a.duration {
                Some(d) => tokio::time::sleep(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let growth_every: Duration = a.growth_every.into();
        let mut growth_tick = tokio::time::interval_at(tokio::time::Instant::now() + growth_every, growth_every);
        let probe = HostProbe::start();
        let mut last_sample = (std::time::Instant::now(), 0u64);
        let (first_stores, mut last_progress) = state_caches(&a.dir, &children).await;
        let mut misses_seen: BTreeMap<String, u64> = first_stores
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.tree_misses?)))
            .collect();
        let mut cpu_seen: BTreeMap<String, (std::time::Instant, u64)> = children
            .iter()
            .map(|(n, c)| (n.clone(), (std::time::Instant::now(), tree_cpu_ms(c.id()))))
            .collect();
        let mut restarts = 0u32;
        let mut stopped = std::collections::BTreeSet::<String>::new();
        // Consensus figures are measured from 5 s after the first block to the end.
        let mut first_block: Option<std::time::Instant> = None;
        let mut start_snapshot: Option<Snapshot> = None;
        tokio::pin!(until);
        let code = loop {
            tokio::select! {
                _ = term.recv() => break 0,
                _ = int.recv() => break 0,
                _ = &mut until => break 0,
                _ = growth_tick.tick() => {
                    let now = std::time::Instant::now();
                    let n = finalized.load(std::sync::atomic::Ordering::Relaxed);
                    let secs = now.duration_since(last_sample.0).as_secs_f64().max(0.001);
                    let tx_per_s = (n - last_sample.1) as f64 / secs;
                    last_sample = (now, n);
                    let (caches, progress) = state_caches(&a.dir, &children).await;
                    let moved = match (progress, last_progress) {
                        (Some(p), Some(l)) => (p.rounds.saturating_sub(l.rounds), p.height.saturating_sub(l.height)),
                        _ => (0, 0),
                    };
                    last_progress = progress.or(last_progress);
                    let row = growth_row(&a.dir, &children, &caches, &mut cpu_seen, &mut misses_seen, growth.len() + 1, tx_per_s, moved, probe.take());
                    eprintln!("growth: {}", row.line());
                    growth.push(row);
                }
                _ = check.tick() => {
                    if late.is_some_and(|t| std::time::Instant::now() >= t) {
                        late = None;
                        let name = "client-1".to_string();
                        let dir = a.dir.join(&name);
                        match spawn_node(&dir.join("etc/config.yml"), unprivileged, &dir.join("stderr.log"), None, None, &wrapper(&a, &name)) {
                            Ok(c) => {
                                eprintln!("late client started: {name} pid {} control unix:{}", c.id(), dir.join("data/internal.sock").display());
                                children.push((name, c));
                            }
                            Err(e) => {
                                eprintln!("error: {e}");
                                return (1, (None, None));
                            }
                        }
                    }
                    if start_snapshot.is_none() {
                        match first_block {
                            None => {
                                if validator_status(&a.dir).await.is_some_and(|s| s["consensus"]["latest_height"].as_u64() >= Some(1)) {
                                    first_block = Some(std::time::Instant::now());
                                }
                            }
                            Some(t) if t.elapsed() >= Duration::from_secs(5) => {
                                start_snapshot = snapshot(&a.dir, &children).await;
                            }
                            Some(_) => {}
                        }
                    }
                    for (name, c) in &mut children {
                        if stopped.contains(name.as_str()) {
                            continue;
                        }
                        if let Ok(Some(status)) = c.try_wait() {
                            // Exit 0 is a node that was told to stop (`control shutdown`, a
                            // signal to it alone): the operator's decision, not a crash.
                            if status.success() {
                                eprintln!("node {name} stopped ({status}); not restarting it");
                                stopped.insert(name.to_string());
                                continue;
                            }
                            restarts += 1;
                            let log = a.dir.join(name.as_str()).join("data/node.log");
                            if restarts > 20 {
                                eprintln!("error: node {name} exited ({status}) and the restart budget is spent; see {}", log.display());
                                return (1, (None, None));
                            }
                            eprintln!("node {name} exited ({status}); restarting it (see {})", log.display());
                            let cfg = a.dir.join(name.as_str()).join("etc/config.yml");
                            let netns = nodes.iter().find(|(n, _, _)| n == name).and_then(|(_, _, ns)| ns.as_deref());
                            match spawn_node(&cfg, unprivileged, &a.dir.join(name.as_str()).join("stderr.log"), netns, crash_points(&a, name).as_deref(), &wrapper(&a, name)) {
                                Ok(n) => *c = n,
                                Err(e) => {
                                    eprintln!("error: {e}");
                                    return (1, (None, None));
                                }
                            }
                        }
                    }
                }
            }
        };
        load_stop_tx.send_replace(true);
        let end_snapshot = snapshot(&a.dir, &children).await;
        let consensus = match (&start_snapshot, &end_snapshot) {
            (Some(s), Some(e)) => Some(figures(s, e, a.validators, validator_status(&a.dir).await)),
            _ => None,
        };
        // The summary reads the client's status: collect it while the nodes still run.
        let report = match load_task {
            Some(t) => t.await.ok().flatten(),
            None => None,
        };
        let report = (report, consensus);
        // Stop the other nodes first so they can deregister while the validator still runs.
        let stop = |c: &Child| signal_node(c, nix::sys::signal::Signal::SIGTERM);
        for group in [false, true] {
            for (name, c) in &children {
                if name.starts_with("validator") == group {
                    stop(c);
                }
            }
            for (name, c) in &mut children {
                if name.starts_with("validator") != group {
                    continue;
                }
                for _ in 0..200 {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                signal_node(c, nix::sys::signal::Signal::SIGKILL);
                let _ = c.wait();
            }
        }
        (code, report)
    });
    println!("localnet stopped");
    let (report, consensus) = report;
    if let Some(c) = &consensus {
        println!(
            "consensus: {} validators, {} blocks in {:.1} s: one every {:.0} ms; finality p50 {} ms, p99 {} ms (validator-0); CPU per block {}",
            c.validators,
            c.blocks,
            c.seconds,
            c.block_interval_ms,
            c.finality_ms["p50"],
            c.finality_ms["p99"],
            c.cpu_ms_per_block
                .iter()
                .map(|(n, ms)| format!("{n} {ms:.1} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(r) = &report {
        println!(
            "load: {} transactions finalized in {} rounds over {:.1} s: {:.1} tx/s, latency p50 {:.0} ms, p99 {:.0} ms (committee of {}, {} in flight; {} failed rounds, {} discrepancies, {} errors{})",
            r.txs_finalized, r.rounds_finalized, r.seconds, r.tx_per_s, r.latency_ms.p50, r.latency_ms.p99, r.committee_size, r.concurrency, r.rounds_failed, r.discrepancies, r.errors,
            if r.errors > 0 { format!(", the last: {}", r.last_error) } else { String::new() }
        );
    } else if a.load > 0 {
        println!("load: no committee was elected before the network stopped");
    }
    if !growth.is_empty() {
        println!("growth (per {}):", a.growth_every);
        for r in &growth {
            println!("  {}", r.line());
        }
    }
    let flatness = Flatness::of(&growth);
    if let Some(f) = &flatness {
        println!("{}", f.line());
    }
    if a.json {
        let mut v = match &report {
            Some(r) => serde_json::to_value(r).unwrap_or_default(),
            None => {
                serde_json::json!({ "rounds_finalized": 0, "txs_finalized": 0, "tx_per_s": 0.0, "latency_ms": { "p50": 0.0, "p99": 0.0 } })
            }
        };
        v["consensus"] = serde_json::to_value(&consensus).unwrap_or_default();
        v["growth"] = serde_json::to_value(&growth).unwrap_or_default();
        v["flatness"] = serde_json::to_value(&flatness).unwrap_or_default();
        println!("{v}");
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose host slowed down and sped up again: throughput that follows the host's
    /// speed exactly is far from flat as measured and flat at the run's mean host speed.
    #[test]
    fn flatness_is_measured_and_at_the_mean_host_speed() {
        // The host probe at 10, 12.5 and 8 ms; the throughput 10,000 / probe.
        let rows = [
            (1000.0, Some(10.0)),
            (800.0, Some(12.5)),
            (1250.0, Some(8.0)),
        ];
        let f = Flatness::of_intervals(&rows).expect("intervals");
        assert_eq!(f.intervals, 3);
        let near = |a: f64, b: f64| (a - b).abs() < 0.11;
        let m = &f.measured;
        assert!(
            near(m.mean, 1016.7)
                && near(m.sd_percent, 18.1)
                && near(m.low_percent, -21.3)
                && near(m.high_percent, 23.0)
                && m.within_10_percent == 1,
            "{m:?}"
        );
        let h = f
            .at_mean_host_speed
            .as_ref()
            .expect("probes in every interval");
        assert!(
            near(h.mean, 983.6) && h.sd_percent == 0.0 && h.within_10_percent == 3,
            "{h:?}"
        );
        assert!(f.line().contains("1 of 3 within ±10 %"), "{}", f.line());
        // An interval without a probe: no normalised figure; no intervals: nothing.
        let f = Flatness::of_intervals(&[(1000.0, Some(10.0)), (900.0, None)]).expect("two");
        assert!(f.at_mean_host_speed.is_none());
        assert!(Flatness::of_intervals(&[]).is_none());
    }
}
