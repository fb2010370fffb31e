//! The command line. The only module that prints for the operator; everything else logs.

mod datadir;
mod doctor;
pub mod exec;
pub mod network;
pub mod paratime;

use crate::bundle::{self, BuildOptions, Bundle, RuntimeId};
use crate::config;
use crate::identity::{self, Identity, KeyKind};
use crate::logging;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// paratime-node: a hardened ParaTime compute node (oasis-node compatible configuration).
#[derive(Parser, Debug)]
#[command(name = "paratime-node", version, about, long_about = None)]
pub struct Cli {
    /// Run the node with this config.yml (oasis-node format).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// UNSAFE, development only: allow running as root and the unconfined provisioner.
    #[arg(long = "unsafe-debug", alias = "debug.dont_blame_oasis", global = true)]
    unsafe_debug: bool,
    /// Use the sandbox launcher listening on this socket (the paratime-node-sandbox unit)
    /// instead of starting one as a child.
    #[arg(long)]
    sandbox_socket: Option<PathBuf>,
    /// Give the exploded-bundles directory to this group (setgid, group-readable): the group of
    /// the sandbox launcher's user when it runs as its own user (the shipped units use
    /// `paratime-sandbox`, the node's primary group there).
    #[arg(long)]
    bundles_group: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The command line's definition (for man pages, completions and the commands reference).
pub fn definition() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a config file.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Node keys.
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// ParaTime bundles (.orc).
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// Talk to a running node.
    #[command(subcommand)]
    Control(ControlCmd),
    /// Run a bundle in the real sandbox, outside any network.
    #[command(subcommand)]
    Runtime(RuntimeCmd),
    /// The sandbox launcher (started by the node or by systemd).
    SandboxLauncher(LauncherArgs),
    /// Trial program run inside the sandbox at start-up.
    #[command(hide = true)]
    SandboxProbe,
    /// Applies the node's self-confinement for --config, then tries to write each PATH and to
    /// execute a program; prints what happened as JSON (used by the Landlock test).
    #[command(hide = true)]
    ConfinementProbe {
        /// Files to try to create.
        #[arg(long = "try-write")]
        writes: Vec<PathBuf>,
        /// A program to try to execute.
        #[arg(long = "try-exec")]
        exec: Option<PathBuf>,
    },
    /// Check this host and config for everything the node needs; one line per check.
    Doctor,
    /// Genesis documents.
    #[command(subcommand)]
    Genesis(network::GenesisCmd),
    /// The operator's entity (kept off the node host).
    #[command(subcommand)]
    Entity(network::EntityCmd),
    /// Staking accounts.
    #[command(subcommand)]
    Account(network::AccountCmd),
    /// UNSAFE: remove the node's consensus state and runtime history (keys, bundles and logs
    /// stay; the runtimes' state trees too unless --preserve.mkvs_database=false). The node must
    /// be stopped; it syncs again at its next start.
    UnsafeReset(datadir::ResetArgs),
    /// The network's parameters (stake requirements).
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// ParaTime transactions.
    #[command(subcommand)]
    Tx(paratime::TxCmd),
    /// Query a ParaTime's finalized state, e.g. `query --method kv.Get --body '{"key":"k"}'`.
    Query(paratime::CallArgs),
    /// Read a key of a ParaTime's finalized state with a proof, or verify such a proof.
    #[command(subcommand)]
    State(paratime::StateCmd),
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// List every problem of a config file, including the node's start-up checks of the bundles
    /// it names; exit 1 if any is an error.
    Check {
        /// A `runtime.paths` entry not to open (a stand-in for a file that exists only on the
        /// host, as in a Nix build); the node verifies it at start. Repeatable.
        #[arg(long = "unchecked-file")]
        unchecked: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum IdentityCmd {
    /// Create the node's keys in DATADIR (0700); never overwrites.
    Init {
        /// The node's data directory.
        #[arg(long)]
        datadir: PathBuf,
    },
    /// Show the node's public keys.
    Show {
        /// The node's data directory.
        #[arg(long)]
        datadir: PathBuf,
    },
    /// Print the running node's staking address (`oasis1…`), from its control status.
    ShowAddress(Addr),
}

#[derive(Subcommand, Debug)]
enum BundleCmd {
    /// Build an .orc bundle from an ELF executable.
    Build {
        /// The ParaTime executable.
        #[arg(long)]
        executable: PathBuf,
        /// ParaTime name.
        #[arg(long)]
        name: String,
        /// Runtime ID, 64 hex characters.
        #[arg(long)]
        runtime_id: String,
        /// Version, MAJOR.MINOR.PATCH (must equal what the runtime reports).
        #[arg(long)]
        version: String,
        /// Output file.
        #[arg(long)]
        output: PathBuf,
    },
    /// Print a bundle's manifest as JSON (after verifying it).
    Inspect {
        /// The bundle.
        bundle: PathBuf,
        /// Size limit.
        #[arg(long, default_value = "20mb")]
        max_bundle_size: String,
    },
    /// Verify a bundle: structure and every digest.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// Size limit.
        #[arg(long, default_value = "20mb")]
        max_bundle_size: String,
    },
}

#[derive(Subcommand, Debug)]
enum ControlCmd {
    /// Print the node's status as JSON.
    Status(Addr),
    /// Exit 0 when the node completed initial syncing, 1 otherwise.
    IsSynced(Addr),
    /// Wait (without a time limit) until the node completed initial syncing; silent, exit 0.
    WaitSync(Addr),
    /// Ask the node to deregister and shut down (it stops once the registry no longer lists it).
    Shutdown(ShutdownArgs),
    /// A runtime's rounds and each committee member's participation in the current epoch.
    RuntimeStats {
        #[command(flatten)]
        addr: Addr,
        /// The runtime (64 hex digits; default: the node's only runtime).
        runtime_id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget a deregistration that `control shutdown` asked for and that did not complete (the
    /// node then registers again at its next start). Offline: the node must be stopped.
    ClearDeregister {
        /// The node's data directory.
        #[arg(long)]
        datadir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct ShutdownArgs {
    #[command(flatten)]
    addr: Addr,
    /// Return only once the node has stopped.
    #[arg(short = 'w', long)]
    wait: bool,
}

#[derive(clap::Args, Debug)]
struct Addr {
    /// Control socket address.
    #[arg(short = 'a', long = "address", default_value = "unix:internal.sock")]
    address: String,
}

#[derive(Subcommand, Debug)]
enum RuntimeCmd {
    /// Execute transactions and queries through a bundle in the sandbox.
    Exec(exec::ExecArgs),
}

#[derive(clap::Args, Debug)]
struct LauncherArgs {
    /// Directory of exploded bundles (the only place bundles are taken from).
    #[arg(long)]
    bundles_dir: PathBuf,
    /// bubblewrap binary.
    #[arg(long, default_value = "/usr/bin/bwrap")]
    sandbox_binary: PathBuf,
    /// Serve on an inherited listening socket (without this and --listen: the socket passed by
    /// systemd, FileDescriptorName=sandbox).
    #[arg(long, conflicts_with = "listen")]
    listen_fd: Option<i32>,
    /// Bind and serve on this path.
    #[arg(long)]
    listen: Option<PathBuf>,
    /// UNSAFE: start runtimes without a sandbox.
    #[arg(long)]
    unconfined: bool,
    /// Log format: logfmt, JSON or text.
    #[arg(long, default_value = "logfmt")]
    log_format: String,
    /// Default log level.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("error: {msg}");
    1
}

/// Logs of command-line tools: logfmt on stderr at `$PARATIME_LOG` (default `warn`).
pub fn init_cli_logging() {
    let levels = [(
        "default".to_string(),
        std::env::var("PARATIME_LOG").unwrap_or_else(|_| "warn".into()),
    )]
    .into_iter()
    .collect();
    let _ = logging::init(logging::Format::Logfmt, &levels, None);
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// `config check`: the config's own checks, then every start-up check that depends only on the
/// config and the files it names, through the node's own functions (host checks are `doctor`'s).
fn config_check(file: &std::path::Path, unsafe_debug: bool, unchecked: &[String]) -> i32 {
    match config::load(file) {
        Ok(l) => {
            for w in &l.warnings {
                println!("{}", w.display_in(file));
            }
            let mut errors: Vec<String> = Vec::new();
            if let Err(e) = crate::node::check_config_start(&l.config, unsafe_debug) {
                errors.push(e.to_string());
            }
            let mut cfg = l.config.clone();
            cfg.runtime.paths.retain(|p| {
                let skip = unchecked.contains(p);
                if skip {
                    println!(
                        "{}: note: runtime.paths: {p} not opened (--unchecked-file): the node \
                         verifies it at start",
                        file.display()
                    );
                }
                !skip
            });
            match crate::node::verify_bundles(&cfg, l.settings.max_bundle_size, |_, _, _| Ok(())) {
                Ok((hosted, refused)) => {
                    let genesis = match &l.settings.genesis {
                        config::GenesisFile::Empty => None,
                        config::GenesisFile::Document(g) => Some(&**g),
                    };
                    // The node plans at its latest block's epoch; without a data dir, at 0.
                    match crate::node::hotload::plan(
                        &cfg,
                        genesis,
                        (&hosted, !refused.is_empty()),
                        0,
                    ) {
                        // The runtime's bundle may be one of the files not opened.
                        Err(crate::node::NodeError::NoBundle { .. }) if !unchecked.is_empty() => {}
                        Err(e) => errors.push(e.to_string()),
                        Ok(downloads) => {
                            for d in downloads {
                                println!(
                                    "{}: note: runtime {}: bundle {} (version {}) is downloaded at start from {}",
                                    file.display(),
                                    d.id,
                                    d.active.bundle_checksum,
                                    d.active.version,
                                    d.registries.join(", ")
                                );
                            }
                        }
                    }
                    errors.extend(refused.into_iter().map(|r| {
                        format!("bundle refused (the node starts without it): {}", r.error)
                    }))
                }
                Err(e) => errors.push(e.to_string()),
            }
            for e in &errors {
                println!("{}: error: {e}", file.display());
            }
            if errors.is_empty() {
                println!("{}: ok", file.display());
                0
            } else {
                println!("{}: {} error(s)", file.display(), errors.len());
                1
            }
        }
        Err(e) => {
            for p in &e.problems {
                println!("{}", p.display_in(file));
            }
            let n = e
                .problems
                .iter()
                .filter(|p| p.severity == config::Severity::Error)
                .count();
            println!("{}: {n} error(s)", file.display());
            1
        }
    }
}

fn identity_cmd(cmd: IdentityCmd) -> i32 {
    match cmd {
        IdentityCmd::Init { datadir } => {
            if let Err(e) = identity::ensure_dir(&datadir) {
                return fail(e);
            }
            match Identity::init(&datadir) {
                Ok(id) => {
                    println!("node identity created in {}", datadir.display());
                    println!("node: {}", id.public_b64(KeyKind::Node));
                    0
                }
                Err(e) => fail(e),
            }
        }
        IdentityCmd::ShowAddress(a) => {
            match block_on(crate::control::client::Client::new(a.address).status()) {
                Ok(v) => {
                    let node = v["identity"]["node"].as_str().unwrap_or_default();
                    match node.parse::<crate::consensus::crypto::PublicKey>() {
                        Ok(k) => {
                            println!("{}", paratime_state::address::Address::from_public_key(&k));
                            0
                        }
                        Err(e) => fail(format!(
                            "the node's status has no usable identity.node: {e}"
                        )),
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    // oasis-node exits 128 when the status cannot be fetched.
                    128
                }
            }
        }
        IdentityCmd::Show { datadir } => match Identity::load(&datadir, false) {
            Ok(id) => {
                let v = serde_json::json!({
                    "node": id.public_b64(KeyKind::Node),
                    "p2p": id.public_b64(KeyKind::P2p),
                    "consensus": id.public_b64(KeyKind::Consensus),
                });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                0
            }
            Err(e) => fail(e),
        },
    }
}

fn bundle_cmd(cmd: BundleCmd) -> i32 {
    match cmd {
        BundleCmd::Build {
            executable,
            name,
            runtime_id,
            version,
            output,
        } => {
            let runtime_id: RuntimeId = match runtime_id.parse() {
                Ok(r) => r,
                Err(e) => return fail(format!("--runtime-id: {e}")),
            };
            let version = match paratime_sdk::Version::parse(&version) {
                Ok(v) => v,
                Err(e) => return fail(format!("--version: {e}")),
            };
            match bundle::build(
                &BuildOptions {
                    executable: &executable,
                    name: &name,
                    runtime_id,
                    version,
                },
                &output,
            ) {
                Ok(m) => {
                    println!(
                        "wrote {} (runtime {}, version {version}, manifest hash {})",
                        output.display(),
                        m.id,
                        m.hash_hex()
                    );
                    0
                }
                Err(e) => fail(format!("{}: {e}", output.display())),
            }
        }
        BundleCmd::Inspect {
            bundle,
            max_bundle_size,
        }
        | BundleCmd::Verify {
            bundle,
            max_bundle_size,
        } if config::parse_size(&max_bundle_size).is_err() => fail(
            format!(
                "--max-bundle-size: {}",
                config::parse_size(&max_bundle_size)
                    .err()
                    .unwrap_or_default()
            ) + &format!(" ({})", bundle.display()),
        ),
        BundleCmd::Inspect {
            bundle,
            max_bundle_size,
        } => match Bundle::open(&bundle, config::parse_size(&max_bundle_size).unwrap_or(0)) {
            Ok(b) => {
                let mut v = serde_json::to_value(&b.manifest).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("manifest_hash".into(), b.manifest.hash_hex().into());
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                0
            }
            Err(e) => fail(format!("{}: {e}", bundle.display())),
        },
        BundleCmd::Verify {
            bundle,
            max_bundle_size,
        } => match Bundle::open(&bundle, config::parse_size(&max_bundle_size).unwrap_or(0)) {
            Ok(b) => {
                println!(
                    "{}: ok (runtime {}, version {}, manifest hash {})",
                    bundle.display(),
                    b.manifest.id,
                    b.ronl.version,
                    b.manifest.hash_hex()
                );
                0
            }
            Err(e) => fail(format!("{}: {e}", bundle.display())),
        },
    }
}

fn control_cmd(cmd: ControlCmd) -> i32 {
    use crate::control::client::{Client, ClientError};
    let report = |e: ClientError| {
        eprintln!("error: failed to query the node: {e}");
        128
    };
    match cmd {
        ControlCmd::Status(a) => match block_on(Client::new(a.address).status()) {
            Ok(v) => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                0
            }
            Err(e) => report(e),
        },
        ControlCmd::IsSynced(a) => match block_on(Client::new(a.address).is_synced()) {
            Ok(s) if s.synced => {
                println!("node completed initial syncing");
                0
            }
            Ok(_) => {
                println!("node has not completed initial syncing");
                1
            }
            Err(e) => report(e),
        },
        ControlCmd::WaitSync(a) => block_on(async {
            let c = Client::new(a.address);
            loop {
                match c.is_synced().await {
                    Ok(s) if s.synced => return 0,
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
                    Err(e) => return report(e),
                }
            }
        }),
        ControlCmd::Shutdown(a) => {
            let address = a.addr.address.clone();
            match block_on(Client::new(a.addr.address).shutdown()) {
                Ok(_) if a.wait => block_on(async {
                    // The node answers until its control API stops, after the deregistration.
                    let c = Client::new(address);
                    while c.is_synced().await.is_ok() {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    println!("node stopped");
                    0
                }),
                Ok(_) => {
                    println!("shutdown requested");
                    0
                }
                Err(e) => report(e),
            }
        }
        ControlCmd::ClearDeregister { datadir } => datadir::clear_deregister(&datadir),
        ControlCmd::RuntimeStats {
            addr,
            runtime_id,
            json,
        } => block_on(async {
            let c = Client::new(addr.address);
            let id = match runtime_id {
                Some(id) => id,
                None => match c.status().await {
                    Ok(st) => {
                        let ids: Vec<String> = st["runtimes"]
                            .as_object()
                            .map(|m| m.keys().cloned().collect())
                            .unwrap_or_default();
                        match ids.as_slice() {
                            [one] => one.clone(),
                            _ => {
                                return fail(format!(
                                    "give the runtime ID: the node hosts {} runtimes ({})",
                                    ids.len(),
                                    ids.join(", ")
                                ))
                            }
                        }
                    }
                    Err(e) => return report(e),
                },
            };
            match c.runtime_stats(&id).await {
                Ok(s) if json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                    0
                }
                Ok(s) => {
                    print!("{}", runtime_stats_text(&s));
                    0
                }
                Err(e) => report(e),
            }
        }),
    }
}

/// `control runtime-stats` as a table.
fn runtime_stats_text(s: &crate::control::api::RuntimeStats) -> String {
    let mut out = format!(
        "runtime {} at height {} (epoch {})\n  rounds: latest {}, finalized {}, failed {}, discrepancies {}\n  committee of epoch {} ({} nodes): rounds as worker / live, proposals finalized / missed\n",
        s.runtime_id,
        s.height,
        s.epoch,
        s.latest_round,
        s.rounds_finalized,
        s.rounds_failed,
        s.discrepancies,
        s.epoch,
        s.members.len()
    );
    for m in &s.members {
        let roles: Vec<&str> = m
            .roles
            .iter()
            .map(|r| match r {
                crate::consensus::state::Role::Worker => "worker",
                crate::consensus::state::Role::BackupWorker => "backup-worker",
            })
            .collect();
        out.push_str(&format!(
            "    {}  {:<22} {:>6} / {:<6} {:>6} / {}\n",
            m.node_id,
            roles.join(","),
            m.liveness.total_rounds,
            m.liveness.live_rounds,
            m.liveness.finalized_proposals,
            m.liveness.missed_proposals
        ));
    }
    out
}

fn launcher_cmd(a: LauncherArgs) -> i32 {
    use std::os::fd::FromRawFd;
    let Some(format) = logging::Format::parse(&a.log_format) else {
        return fail(format!(
            "--log-format: unknown format '{}' (use logfmt, JSON or text)",
            a.log_format
        ));
    };
    let levels = [("default".to_string(), a.log_level.clone())]
        .into_iter()
        .collect();
    if let Err(e) = logging::init(format, &levels, None) {
        return fail(e);
    }
    let listener = match (a.listen_fd, &a.listen) {
        // SAFETY: the parent passed a listening socket at this descriptor number for us to own.
        (Some(fd), _) if fd > 2 => unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        (None, Some(path)) => match crate::host::launcher::bind(path) {
            Ok(l) => l,
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        _ => match crate::system::listen::take("sandbox") {
            Some(fd) => fd,
            None => return fail(
                "give --listen PATH or --listen-fd N (N > 2), or start it through its socket unit",
            ),
        },
    };
    let cfg =
        crate::host::launcher::LauncherConfig::new(a.bundles_dir, a.sandbox_binary, a.unconfined);
    match crate::host::launcher::serve(listener, cfg) {
        Ok(()) => 0,
        Err(e) => fail(format!("sandbox launcher: {e}")),
    }
}

fn run_node(file: PathBuf, opts: crate::node::Options) -> i32 {
    let loaded = match config::load(&file) {
        Ok(l) => l,
        Err(e) => {
            for p in &e.problems {
                eprintln!("{}", p.display_in(&file));
            }
            return fail(format!("failed to load config file '{}'", file.display()));
        }
    };
    let log_cfg = &loaded.config.common.log;
    let format = logging::Format::parse(&log_cfg.format).unwrap_or(logging::Format::Logfmt);
    let log_file = (!log_cfg.file.is_empty()).then(|| {
        let p = PathBuf::from(&log_cfg.file);
        if p.is_relative() {
            PathBuf::from(&loaded.config.common.data_dir).join(p)
        } else {
            p
        }
    });
    if let Err(e) = logging::init(format, &log_cfg.level, log_file.as_deref()) {
        return fail(format!("common.log.file: {e}"));
    }
    // Everything up to self-confinement happens before the first thread exists.
    let result = crate::node::prepare(loaded, &opts).and_then(|p| block_on(crate::node::serve(p)));
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!(target: "cmd/node", "{e}");
            fail(e)
        }
    }
}

fn confinement_probe(
    file: &std::path::Path,
    writes: &[PathBuf],
    exec: Option<&std::path::Path>,
) -> i32 {
    let loaded = match config::load(file) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let cfg = &loaded.config;
    let data_dir = PathBuf::from(&cfg.common.data_dir);
    let paths =
        crate::node::confinement_paths(cfg, file, &data_dir, &data_dir.join("internal.sock"));
    let report = match crate::system::confine::confine(&paths, true) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => serde_json::json!({ "ok": true }),
        Err(e) => serde_json::json!({ "ok": false, "error": e.to_string() }),
    };
    let mut results = serde_json::Map::new();
    for w in writes {
        results.insert(
            w.display().to_string(),
            outcome(std::fs::write(w, b"probe")),
        );
    }
    let exec_result = exec.map(|p| outcome(std::process::Command::new(p).status().map(|_| ())));
    let out = serde_json::json!({ "confinement": report, "writes": results, "exec": exec_result });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    0
}

/// Set (to anything) in the node's environment, it keeps the descriptors it inherited open
/// instead of closing them at start: for a profiler that writes through one (heaptrack).
pub const KEEP_INHERITED_FDS: &str = "PARATIME_NODE_KEEP_INHERITED_FDS";

/// Parses the command line and runs; returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    // The node and the launcher own only what they open themselves (and systemd's sockets).
    // For diagnostics the node may keep what it inherited: a heap profiler's output pipe
    // (`heaptrack` opens it before main); the launcher still closes everything it inherits, so
    // none of it reaches a ParaTime.
    match &cli.command {
        None | Some(Command::Runtime(_)) if std::env::var_os(KEEP_INHERITED_FDS).is_some() => {
            eprintln!(
                "{KEEP_INHERITED_FDS} is set: descriptors inherited from the parent stay open (for a profiler; not for production)"
            );
        }
        None | Some(Command::Runtime(_)) => {
            crate::system::fds::close_inherited(&crate::system::fds::systemd_listen_fds())
        }
        Some(Command::SandboxLauncher(a)) => {
            let mut keep = crate::system::fds::systemd_listen_fds();
            keep.extend(a.listen_fd);
            crate::system::fds::close_inherited(&keep)
        }
        _ => {}
    }
    match cli.command {
        None => match cli.config {
            Some(f) => run_node(
                f,
                crate::node::Options {
                    unsafe_debug: cli.unsafe_debug,
                    sandbox_socket: cli.sandbox_socket,
                    bundles_group: cli.bundles_group,
                },
            ),
            None => fail(
                "nothing to do: pass --config FILE to run the node, or a subcommand (see --help)",
            ),
        },
        Some(Command::Config(ConfigCmd::Check { unchecked })) => match cli.config {
            Some(f) => config_check(&f, cli.unsafe_debug, &unchecked),
            None => fail("config check needs --config FILE"),
        },
        Some(Command::Identity(c)) => identity_cmd(c),
        Some(Command::Bundle(c)) => bundle_cmd(c),
        Some(Command::Control(c)) => control_cmd(c),
        Some(Command::Runtime(RuntimeCmd::Exec(a))) => {
            init_cli_logging();
            exec::exec(a, cli.unsafe_debug)
        }
        Some(Command::SandboxLauncher(a)) => launcher_cmd(a),
        Some(Command::SandboxProbe) => {
            // Inside the sandbox: the host socket is inherited and there is no /proc.
            let ok = std::env::var(paratime_sdk::HOST_FD_ENV).is_ok()
                && !std::path::Path::new("/proc/self").exists();
            if ok {
                0
            } else {
                eprintln!(
                    "sandbox-probe: not in the expected sandbox (host fd missing or /proc visible)"
                );
                2
            }
        }
        Some(Command::ConfinementProbe { writes, exec }) => match cli.config {
            Some(f) => confinement_probe(&f, &writes, exec.as_deref()),
            None => fail("confinement-probe needs --config FILE"),
        },
        Some(Command::Genesis(c)) => network::genesis(c),
        Some(Command::Entity(c)) => network::entity(c),
        Some(Command::Account(c)) => network::account(c),
        Some(Command::Network(c)) => network::network(c),
        Some(Command::UnsafeReset(a)) => datadir::unsafe_reset(&a),
        Some(Command::Tx(c)) => paratime::tx(c),
        Some(Command::Query(c)) => paratime::query(c),
        Some(Command::State(c)) => paratime::state(c),
        Some(Command::Doctor) => match cli.config {
            Some(f) => doctor::doctor(&f),
            None => fail("doctor needs --config FILE"),
        },
    }
}
