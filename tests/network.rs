//! Real local networks: `paratime-dev localnet` starts BFT validators, compute nodes and a
//! client as separate processes talking Malachite (consensus port) and libp2p on loopback.

mod common;
use base64::Engine;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Localnet {
    child: Child,
    dir: tempfile::TempDir,
}

impl Localnet {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let net = dir.path().join("net");
        let log = std::fs::File::create(dir.path().join("localnet.log")).expect("log");
        // These tests are about committees and followers: one validator keeps the two cores
        // for them, unless a test asks for more (the BFT test runs four).
        let validators: &[&str] = if extra.contains(&"--validators") {
            &[]
        } else {
            &["--validators", "1"]
        };
        let child = Command::new(dev_bin())
            .args(["localnet", "--dir", net.to_str().expect("utf8")])
            .args(validators)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("localnet");
        Self { child, dir }
    }

    fn net(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    fn status(&self, node: &str) -> Option<serde_json::Value> {
        let sock = format!(
            "unix:{}",
            self.net().join(node).join("data/internal.sock").display()
        );
        let o = run(&["control", "status", "-a", &sock]);
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).ok())
            .flatten()
    }

    /// One line per node from its status (what a failed wait needs first: CI output keeps the
    /// head of a long message), then the localnet output and each node's warnings, errors
    /// and last lines.
    fn log(&self) -> String {
        const NODES: [&str; 8] = [
            "validator-0",
            "validator-1",
            "validator-2",
            "validator-3",
            "compute-0",
            "compute-1",
            "compute-2",
            "client-0",
        ];
        let mut s = String::from("node summaries:\n");
        for n in NODES {
            if !self.net().join(n).exists() {
                continue;
            }
            match self.status(n) {
                Some(st) => {
                    let c = &st["consensus"];
                    let r = &st["runtimes"][RUNTIME_ID];
                    s.push_str(&format!(
                        "  {n}: height {} epoch {} step {} peers {} | registered {} ({}) | round {} finalized {} failed {} roles {}\n",
                        c["latest_height"],
                        c["latest_epoch"],
                        c["current_step"],
                        st["p2p"]["num_peers"],
                        st["registration"]["last_attempt_successful"],
                        st["registration"]["last_attempt_error_message"],
                        r["latest_round"],
                        r["roothash"]["rounds_finalized"],
                        r["roothash"]["rounds_failed"],
                        r["committee"]["executor_roles"],
                    ));
                }
                None => s.push_str(&format!("  {n}: no status\n")),
            }
        }
        s.push_str("\n--- localnet ---\n");
        s.push_str(
            &std::fs::read_to_string(self.dir.path().join("localnet.log")).unwrap_or_default(),
        );
        for n in NODES {
            let p = self.net().join(n).join("data/node.log");
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let mut problems: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("\"level\":\"warn") || l.contains("\"level\":\"error"))
                .collect();
            let dropped = problems.len().saturating_sub(10);
            problems.drain(..dropped);
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            s.push_str(&format!(
                "\n--- {n}: last warnings and errors ({dropped} earlier not shown) ---\n{}\n--- {n}: last lines ---\n{}",
                problems.join("\n"),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        s
    }

    fn wait(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!(
                    "localnet exited ({s}) while waiting for {what}:\n{}",
                    self.log()
                );
            }
            if pred(self) {
                // Shown when a test fails or times out: which wait took the time.
                eprintln!("waited {:.1} s for {what}", start.elapsed().as_secs_f64());
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("timed out waiting for {what}:\n{}", self.log());
    }

    fn height(&self, node: &str) -> u64 {
        self.status(node)
            .and_then(|s| s["consensus"]["latest_height"].as_u64())
            .unwrap_or(0)
    }

    /// Sends SIGTERM and waits for localnet to exit 0.
    fn terminate(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id().cast_signed()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(s)) = self.child.try_wait() {
                assert!(s.success(), "localnet exit status {s}:\n{}", self.log());
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("localnet did not stop:\n{}", self.log());
    }

    /// Stops localnet like [`Localnet::stop`] and keeps its directory (the nodes' stores).
    fn stop_keeping_files(mut self) -> tempfile::TempDir {
        self.terminate();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// Stops localnet with SIGTERM (exit 0 expected) and returns its output.
    fn stop(mut self) -> String {
        self.terminate();
        std::fs::read_to_string(self.dir.path().join("localnet.log")).unwrap_or_default()
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The nodes die with localnet (PDEATHSIG); give them a moment.
        std::thread::sleep(Duration::from_millis(200));
        // A failed test keeps the network's directory (stores, logs) outside CI.
        if std::thread::panicking() && std::env::var_os("CI").is_none() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            eprintln!(
                "kept the failed network's directory: {}",
                dir.keep().display()
            );
        }
    }
}

/// `paratime-node account <cmd> --signer PEM --to TO --amount N -a SOCK`.
fn account_tx(cmd: &str, pem: &Path, to: &str, amount: &str, sock: &str) -> std::process::Output {
    run(&[
        "account",
        cmd,
        "--signer",
        pem.to_str().expect("utf8"),
        "--to",
        to,
        "--amount",
        amount,
        "-a",
        sock,
    ])
}

fn compute_nodes() -> [&'static str; 3] {
    ["compute-0", "compute-1", "compute-2"]
}

/// The compute node that schedules the open round. The scheduler rotates every round and the
/// statuses are read one after another, so a single pass can miss it (the round moves on
/// between two reads): look until one says so.
fn open_round_scheduler(net: &mut Localnet) -> &'static str {
    let found = std::cell::Cell::new(None);
    net.wait(
        "a node that schedules the open round",
        Duration::from_secs(60),
        |n| {
            found.set(compute_nodes().into_iter().find(|c| {
                n.status(c)
                    .is_some_and(|s| rt(&s)["committee"]["scheduler_rank"] == 0)
            }));
            found.get().is_some()
        },
    );
    found.get().expect("a scheduler")
}

fn roles(st: &serde_json::Value) -> Vec<String> {
    st["runtimes"][RUNTIME_ID]["committee"]["executor_roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn node_pid(net: &Path, node: &str) -> Option<i32> {
    // The node's pid is the owner of its data dir lock; find it through /proc.
    let lock = net.join(node).join("data/node.lock");
    let target = std::fs::canonicalize(&lock).ok()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).ok().as_deref() == Some(target.as_path()) {
                let cmd = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
                if cmd.contains("--config") {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[test]
fn localnet_syncs_registers_elects_and_survives_a_killed_follower() {
    let mut net = Localnet::start(&["--load", "0"]);
    net.wait(
        "every compute node elected",
        Duration::from_secs(120),
        |n| {
            compute_nodes().iter().all(|c| {
                n.status(c).is_some_and(|s| {
                    roles(&s) == vec!["worker", "backup-worker"]
                        && s["registration"]["last_attempt_successful"] == true
                })
            })
        },
    );
    net.wait("a common height", Duration::from_secs(60), |n| {
        let v = n.height("validator-0");
        v >= 12
            && ["compute-0", "compute-1", "compute-2", "client-0"]
                .iter()
                .all(|c| n.height(c) + 2 >= v)
    });
    let st = net.status("compute-0").expect("status");
    let c = &st["consensus"];
    assert_eq!(c["status"], "ready", "{c}");
    assert_eq!(c["is_validator"], false);
    assert_eq!(c["chain_context"].as_str().map(str::len), Some(64));
    assert!(st["p2p"]["num_peers"].as_u64() >= Some(1), "{}", st["p2p"]);
    // oasis's shape: IP:port, with the multiaddrs beside.
    assert!(
        st["p2p"]["addresses"][0]
            .as_str()
            .is_some_and(|a| a.parse::<std::net::SocketAddr>().is_ok()),
        "{}",
        st["p2p"]
    );
    assert!(st["p2p"]["multiaddrs"][0].is_string(), "{}", st["p2p"]);
    assert!(
        st["p2p"]["peer_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("12D3")),
        "{}",
        st["p2p"]
    );
    let v = net.status("validator-0").expect("validator status");
    assert_eq!(v["consensus"]["is_validator"], true);
    // The validator hosts no runtime: it is on the consensus transaction topic only, and does
    // not relay the ParaTime's gossip. The nodes hosting it found each other in the registry
    // (the client, unregistered, dials the registered ones): each sees the other three on the
    // runtime's topics.
    let topics = v["p2p"]["topics"].as_object().cloned().unwrap_or_default();
    assert!(
        !topics.is_empty() && topics.keys().all(|t| t.contains("/consensus/tx/")),
        "{topics:?}"
    );
    net.wait(
        "the runtime's nodes on its topics",
        Duration::from_secs(60),
        |n| {
            ["compute-0", "compute-1", "compute-2", "client-0"]
                .iter()
                .all(|c| {
                    n.status(c).is_some_and(|s| {
                        let t = &s["p2p"]["topics"];
                        let on = |kind: &str| {
                            t[format!(
                                "oasis/{}/runtime/{RUNTIME_ID}/{kind}/1.0.0",
                                s["consensus"]["chain_context"].as_str().unwrap_or("")
                            )]
                            .as_u64()
                        };
                        on("tx") == Some(3) && on("committee") == Some(3)
                    })
                })
        },
    );
    let o = run(&[
        "control",
        "is-synced",
        "-a",
        &format!(
            "unix:{}",
            net.net().join("client-0/data/internal.sock").display()
        ),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["control", "wait-sync", "-a", &sock(&net, "client-0")]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", text(&o));
    // The node's staking address, from its status (oasis's `identity show-address`).
    let o = run(&["identity", "show-address", "-a", &sock(&net, "compute-0")]);
    let node_id = st["identity"]["node"].as_str().expect("identity.node");
    let want = paratime_state::address::Address::from_public_key(&node_id.parse().expect("key"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        want.to_string(),
        "{}",
        text(&o)
    );

    // The network's stake requirements, from a node (`network show`).
    let n = network_show(&net, "client-0");
    assert_eq!(n["runtimes"][0]["id"], RUNTIME_ID, "{n}");
    assert!(n["thresholds"]["node-compute"].is_u64(), "{n}");
    assert_eq!(n["consensus_pubsub"], "gossipsub", "{n}");
    let o = run(&["network", "show", "-a", &sock(&net, "client-0")]);
    assert!(
        text(&o).contains("per compute node and ParaTime it serves")
            && text(&o).contains("Proposals and votes: gossipsub (relayed"),
        "{}",
        text(&o)
    );

    // The entity's account shows its escrow above the node-compute threshold.
    let entity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.net().join("entity/entity.json")).expect("entity"),
    )
    .expect("json");
    let show = run(&[
        "entity",
        "show",
        "--dir",
        net.net().join("entity").to_str().expect("utf8"),
    ]);
    let addr = serde_json::from_slice::<serde_json::Value>(&show.stdout).expect("entity show")
        ["address"]
        .as_str()
        .expect("address")
        .to_string();
    assert!(addr.starts_with("oasis1"));
    let o = run(&[
        "account",
        "show",
        &addr,
        "-a",
        &format!(
            "unix:{}",
            net.net().join("client-0/data/internal.sock").display()
        ),
    ]);
    let out = text(&o);
    assert!(out.contains("Active: 10000 base units"), "{out}");
    assert!(
        out.contains("Required by its registrations: 400 base units"),
        "{out}"
    );
    // One validator and three compute nodes, all registered under the one entity.
    assert_eq!(
        entity["nodes"].as_array().map(Vec::len),
        Some(4),
        "{entity}"
    );

    // Entity and account transactions through the client node.
    let client = format!(
        "unix:{}",
        net.net().join("client-0/data/internal.sock").display()
    );
    let edir = net.net().join("entity");
    let o = run(&[
        "entity",
        "register",
        "--dir",
        edir.to_str().expect("utf8"),
        "-a",
        &client,
    ]);
    assert!(
        o.status.success() && text(&o).contains("transaction included at height"),
        "{}",
        text(&o)
    );
    let pem = edir.join("entity.pem");
    let to = "oasis1qpupfu7e2n6pkezeaw0yhj8mcem8anj64ytrayne";
    let o = account_tx("transfer", &pem, to, "5", &client);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["account", "show", to, "-a", &client]);
    assert!(text(&o).contains("Available: 5 base units"), "{}", text(&o));
    // Allowances: the entity lets a second account withdraw up to 7; it withdraws 5.
    let other = tempfile::tempdir().expect("tempdir");
    let odir = other.path().join("e2");
    let o = run(&["entity", "init", "--dir", odir.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", text(&o));
    let other_addr = text(&o)
        .split("(address ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("address")
        .to_string();
    let o = account_tx("allow", &pem, &other_addr, "7", &client);
    assert!(o.status.success(), "{}", text(&o));
    let o = account_tx("withdraw", &odir.join("entity.pem"), &addr, "5", &client);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["account", "show", &other_addr, "-a", &client]);
    assert!(text(&o).contains("Available: 5 base units"), "{}", text(&o));
    let o = run(&["account", "show", &addr, "-a", &client]);
    assert!(
        text(&o).contains(&format!(
            "- Beneficiary: {other_addr}\n      Amount:      2 base units"
        )),
        "{}",
        text(&o)
    );
    let o = account_tx("withdraw", &odir.join("entity.pem"), &addr, "3", &client);
    assert!(
        o.status.code() == Some(1)
            && text(&o).contains("insufficient allowance (allowance: 2, amount: 3)"),
        "{}",
        text(&o)
    );
    let o = account_tx("reclaim", &pem, &addr, "100", &client);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["account", "show", &addr, "-a", &client]);
    assert!(
        text(&o).contains("Active: 9900 base units")
            && !text(&o).contains("Active Delegations from this Account"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "account",
        "show",
        &addr,
        "--show-delegations",
        "-a",
        &client,
    ]);
    // (The reclaimed 100 debonds for one epoch: it may be back in the balance already.)
    assert!(
        text(&o).contains("Active Delegations from this Account")
            && text(&o).contains("Amount: 9900 base units"),
        "{}",
        text(&o)
    );
    // Reclaiming below what the registrations need is refused by the state machine.
    let o = account_tx("reclaim", &pem, &addr, "9800", &client);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("failed in the block at height")
            && text(&o).contains("staking: insufficient stake: reclaiming would leave"),
        "the CLI names why the included transaction failed: {}",
        text(&o)
    );
    let o = run(&["account", "show", &addr, "-a", &client]);
    assert!(text(&o).contains("Active: 9900 base units"), "{}", text(&o));

    // SIGKILL a follower: localnet restarts it, and it catches up block by block.
    let pid = node_pid(&net.net(), "compute-1").expect("compute-1 pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let killed_at = net.height("validator-0");
    net.wait(
        "compute-1 back and caught up",
        Duration::from_secs(90),
        |n| {
            node_pid(&n.net(), "compute-1").is_some_and(|p| p != pid)
                && n.height("compute-1") >= killed_at + 3
                && n.height("compute-1") + 2 >= n.height("validator-0")
        },
    );

    // oasis's status shapes where a hosting node's runtime is: a compute node is ready, with
    // its executor and storage; a client node has storage but no executor.
    let st = net.status("compute-0").expect("status");
    assert_eq!(rt(&st)["committee"]["status"], "ready", "{}", rt(&st));
    assert_eq!(rt(&st)["executor"]["status"], "ready", "{}", rt(&st));
    assert_eq!(
        rt(&st)["storage"]["status"],
        "syncing rounds",
        "{}",
        rt(&st)
    );
    assert!(rt(&st)["storage"]["last_finalized_round"].is_u64());
    let d = &rt(&st)["descriptor"];
    assert_eq!(d["id"], RUNTIME_ID, "{d}");
    assert_eq!(d["kind"], 1, "oasis: 1 = compute: {d}");
    let st = net.status("client-0").expect("status");
    assert!(rt(&st)["executor"].is_null(), "{}", rt(&st));
    // oasis's shapes (tests/fixtures/oasis-status-shapes.json) on a compute node in the
    // committee and on the client.
    for node in ["compute-0", "client-0"] {
        let st = net.status(node).expect("status");
        let problems = status_shape_problems(&st);
        assert!(
            problems.is_empty(),
            "{node}: {}\n{st:#}",
            problems.join("\n")
        );
        if node == "compute-0" {
            status_shape_checker_catches_the_old_shapes(&st);
            assert!(
                rt(&st)["committee"]["peers"]
                    .as_array()
                    .is_some_and(|p| !p.is_empty()),
                "{}",
                rt(&st)["committee"]
            );
            assert_eq!(st["registration"]["descriptor"]["roles"], "compute");
        }
    }

    // With the validator frozen, a client node restarted more than 10 s later cannot sync:
    // its committee status says so (not "ready"), and its log says why at info level.
    // (This network has one validator.)
    let validators = ["validator-0"];
    for v in validators {
        signal(&net.net(), v, nix::sys::signal::Signal::SIGSTOP);
    }
    std::thread::sleep(Duration::from_secs(11));
    let pid = signal(&net.net(), "client-0", nix::sys::signal::Signal::SIGKILL);
    net.wait(
        "the restarted client waits for consensus sync",
        Duration::from_secs(60),
        |n| {
            node_pid(&n.net(), "client-0").is_some_and(|p| p != pid)
                && n.status("client-0").is_some_and(|s| {
                    rt(&s)["committee"]["status"] == "waiting for consensus sync"
                        && s["consensus"]["status"] == "syncing"
                })
        },
    );
    // A syncing node's status has oasis's shapes too.
    let st = net.status("client-0").expect("status");
    let problems = status_shape_problems(&st);
    assert!(
        problems.is_empty(),
        "syncing client-0: {}\n{st:#}",
        problems.join("\n")
    );
    let log = std::fs::read_to_string(net.net().join("client-0/data/node.log")).unwrap_or_default();
    assert!(
        // (At its first start it said "no block decided since genesis yet".)
        log.contains("committee status: waiting for consensus sync: consensus at height"),
        "no info line on why the restarted node waits"
    );
    for v in validators {
        signal(&net.net(), v, nix::sys::signal::Signal::SIGCONT);
    }
    net.wait(
        "the client is ready once blocks are decided again",
        Duration::from_secs(90),
        |n| {
            n.status("client-0")
                .is_some_and(|s| rt(&s)["committee"]["status"] == "ready")
        },
    );

    // A node its operator stopped stays stopped: localnet restarts crashed nodes only.
    let o = run(&["control", "shutdown", "-a", &sock(&net, "compute-2")]);
    assert!(o.status.success(), "{}", text(&o));
    net.wait("compute-2 stopped", Duration::from_secs(60), |n| {
        node_pid(&n.net(), "compute-2").is_none()
    });
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        node_pid(&net.net(), "compute-2").is_none(),
        "localnet restarted a node stopped by control shutdown"
    );
    let out = net.stop();
    assert!(out.contains("node compute-2 stopped"), "{out}");
}

#[test]
fn under_staked_entity_is_not_elected_and_its_nodes_say_why() {
    let mut net = Localnet::start(&["--entity-escrow", "150", "--load", "0"]);
    net.wait(
        "registration refused for stake",
        Duration::from_secs(120),
        |n| {
            compute_nodes().iter().all(|c| {
                n.status(c).is_some_and(|s| {
                    s["registration"]["last_attempt_error_message"]
                        .as_str()
                        .is_some_and(|m| {
                            m.contains("insufficient stake (required: 200, available: 150)")
                        })
                })
            })
        },
    );
    net.wait("an epoch without election", Duration::from_secs(60), |n| {
        n.status("validator-0")
            .is_some_and(|s| s["consensus"]["latest_epoch"].as_u64() >= Some(3))
    });
    for c in compute_nodes() {
        let st = net.status(c).expect("status");
        assert!(
            roles(&st).is_empty(),
            "{c} must not be elected: {}",
            st["runtimes"]
        );
        assert_eq!(st["registration"]["last_attempt_successful"], false);
    }
    let _ = net.stop();
}

/// `network show --json` through `node`.
fn network_show(net: &Localnet, node: &str) -> serde_json::Value {
    let o = run(&["network", "show", "--json", "-a", &sock(net, node)]);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("network show --json: {e}: {}", text(&o)))
}

fn sock(net: &Localnet, node: &str) -> String {
    format!(
        "unix:{}",
        net.net().join(node).join("data/internal.sock").display()
    )
}

fn rt(st: &serde_json::Value) -> &serde_json::Value {
    &st["runtimes"][RUNTIME_ID]
}

/// `query kv.Get {key}` on `node`.
fn kv_get(net: &Localnet, node: &str, key: &str) -> serde_json::Value {
    let body = serde_json::json!({ "key": key }).to_string();
    let o = run(&[
        "query",
        "-a",
        &sock(net, node),
        "--runtime",
        RUNTIME_ID,
        "--method",
        "kv.Get",
        "--body",
        &body,
    ]);
    assert!(o.status.success(), "{node}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{node}: {}", text(&o)))
}

/// `tx submit kv.Put {key, value}` through `node`.
fn kv_put(net: &Localnet, node: &str, key: &str, value: &str) -> std::process::Output {
    let body = serde_json::json!({ "key": key, "value": value }).to_string();
    run(&[
        "tx",
        "submit",
        "-a",
        &sock(net, node),
        "--runtime",
        RUNTIME_ID,
        "--method",
        "kv.Put",
        "--body",
        &body,
    ])
}

fn counter(net: &Localnet, node: &str, key: &str) -> u64 {
    net.status(node)
        .and_then(|s| rt(&s)["roothash"][key].as_u64())
        .unwrap_or(0)
}

/// Every node log line that reports a transaction the state machine refused for equivocation.
fn equivocations(net: &Localnet) -> Vec<String> {
    let mut out = Vec::new();
    for n in ["validator-0", "compute-0", "compute-1", "compute-2"] {
        let text =
            std::fs::read_to_string(net.net().join(n).join("data/node.log")).unwrap_or_default();
        out.extend(
            text.lines()
                .filter(|l| l.contains("already committed a different result"))
                .map(str::to_string),
        );
    }
    out
}

#[test]
fn committee_finalizes_rounds_clients_read_them_and_a_killed_scheduler_does_not_equivocate() {
    // 16 probes waiting for their rounds and one bulk account with 48 in flight (no-wait).
    let mut net = Localnet::start(&["--load", "64", "--json"]);
    net.wait(
        "rounds finalized under load",
        Duration::from_secs(180),
        |n| counter(n, "client-0", "rounds_finalized") >= 5,
    );
    // A transaction through the client node waits until finalized; the result is readable
    // from the client and from every compute node.
    let client = sock(&net, "client-0");
    let o = kv_put(&net, "client-0", "hello", "world");
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("tx submit JSON");
    assert!(v["round"].as_u64() >= Some(1), "{v}");
    assert!(v["result"]["error"].is_null(), "{v}");
    // The client has it at once; a compute node has it once it has committed the same block
    // (each node commits decided blocks on its own, a moment apart).
    assert_eq!(kv_get(&net, "client-0", "hello")["value"], "world");
    for node in ["compute-0", "compute-2"] {
        net.wait(
            &format!("{node} to read the finalized value"),
            Duration::from_secs(20),
            |n| kv_get(n, node, "hello")["value"] == "world",
        );
    }
    // Without waiting: the hash once check-tx passed; the value is readable a little later.
    let o = run(&[
        "tx",
        "submit",
        "-a",
        &client,
        "--runtime",
        RUNTIME_ID,
        "--method",
        "kv.Put",
        "--body",
        r#"{"key":"later","value":"yes"}"#,
        "--no-wait",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("tx submit JSON");
    assert_eq!(v["hash"].as_str().map(str::len), Some(64), "{v}");
    assert!(v.get("round").is_none(), "{v}");
    net.wait(
        "the no-wait transaction finalized",
        Duration::from_secs(30),
        |n| kv_get(n, "client-0", "later")["value"] == "yes",
    );
    // A call the runtime refuses fails at check-tx, with the runtime's message, waiting or not.
    for no_wait in [None, Some("--no-wait")] {
        let mut args = vec![
            "tx",
            "submit",
            "-a",
            &client,
            "--runtime",
            RUNTIME_ID,
            "--method",
            "kv.Nope",
        ];
        args.extend(no_wait);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains("unknown method 'kv.Nope'"),
            "{}",
            text(&o)
        );
    }

    // runtime-stats: the runtime's rounds and every member's participation this epoch.
    let o = run(&[
        "control",
        "runtime-stats",
        "--json",
        "-a",
        &sock(&net, "compute-0"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(stats["rounds_finalized"].as_u64() >= Some(1), "{stats}");
    let members = stats["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 3, "{stats}");
    assert!(
        members
            .iter()
            .any(|m| m["liveness"]["finalized_proposals"].as_u64() >= Some(1)),
        "{stats}"
    );
    let o = run(&[
        "control",
        "runtime-stats",
        RUNTIME_ID,
        "-a",
        &sock(&net, "compute-0"),
    ]);
    assert!(
        text(&o).contains(&format!("runtime {RUNTIME_ID} at height"))
            && text(&o).contains("worker"),
        "{}",
        text(&o)
    );

    // Status: the runtime's chain and this node's committee view.
    let st = net.status("compute-0").expect("status");
    let r = rt(&st);
    assert!(r["latest_round"].as_u64() >= Some(5), "{r}");
    assert_eq!(r["latest_hash"].as_str().map(str::len), Some(64), "{r}");
    assert!(r["committee"]["scheduler_rank"].as_u64().is_some(), "{r}");
    assert!(
        r["committee"]["liveness"]["live_rounds"].as_u64() >= Some(1),
        "{r}"
    );

    // SIGKILL the scheduler of the open round while the load runs: localnet restarts it; it
    // catches up and rounds keep finalizing, and no node ever signs two commitments for a round.
    let sched = open_round_scheduler(&mut net);
    let pid = node_pid(&net.net(), sched).expect("scheduler pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let finalized = counter(&net, "client-0", "rounds_finalized");
    net.wait(
        "the killed node back, caught up, and rounds finalizing again",
        Duration::from_secs(120),
        |n| {
            let back = node_pid(&n.net(), sched).is_some_and(|p| p != pid);
            let caught_up = n.status(sched).is_some_and(|s| {
                let r = rt(&s);
                r["worker"]["waiting"].is_null()
                    && r["worker"]["latest_round"].as_u64().is_some()
                    && r["worker"]["latest_round"] == r["latest_round"]
            });
            back && caught_up && counter(n, "client-0", "rounds_finalized") >= finalized + 5
        },
    );
    assert_eq!(equivocations(&net), Vec::<String>::new());
    // The load generator's summary is the last line of the output.
    let out = net.stop();
    let last = out.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {out}"));
    for k in ["rounds_finalized", "txs_finalized", "bulk_finalized"] {
        assert!(v[k].as_u64() > Some(0), "{k}: {v}");
    }
    for k in [
        &v["tx_per_s"],
        &v["latency_ms"]["p50"],
        &v["latency_ms"]["p99"],
    ] {
        assert!(k.as_f64() > Some(0.0), "{v}");
    }
}

#[test]
fn a_runtime_with_a_wrong_state_root_is_outvoted_and_the_honest_result_is_finalized() {
    let mut net = Localnet::start(&["--load", "8", "--debug-fault", "compute-1=wrong_state_root"]);
    net.wait(
        "discrepancies resolved and rounds finalized",
        Duration::from_secs(180),
        |n| {
            counter(n, "client-0", "discrepancies") >= 2
                && counter(n, "client-0", "rounds_finalized") >= 4
        },
    );
    let o = kv_put(&net, "client-0", "probe", "honest");
    assert!(o.status.success(), "{}", text(&o));
    // Every node, the faulty one included, holds the honest value: the faulty runtime's
    // result was outvoted and its node applied the finalized batch of the majority. The client
    // has it at once; each other node once it has committed the same block (a moment apart).
    let v = kv_get(&net, "client-0", "probe");
    assert_eq!(v["value"], "honest", "client-0: {v}");
    for node in ["compute-0", "compute-1", "compute-2"] {
        net.wait(
            &format!("{node} to read the finalized value"),
            Duration::from_secs(20),
            |n| kv_get(n, node, "probe")["value"] == "honest",
        );
    }
    let faulty = net.status("compute-1").expect("status");
    let l = &rt(&faulty)["committee"]["liveness"];
    assert!(
        l["live_rounds"].as_u64() < l["total_rounds"].as_u64(),
        "the faulty node is not live in the rounds it was outvoted in: {l}"
    );
    let honest = net.status("compute-0").expect("status");
    let l = &rt(&honest)["committee"]["liveness"];
    assert!(l["live_rounds"].as_u64() >= Some(3), "{l}");
    let _ = net.stop();
}

/// The runtime state is a tree: a finalized value reads back with a proof that verifies, online
/// and offline, against the finalized state root; another root or a changed proof is refused.
/// With `runtime.prune` keeping 5 rounds and `consensus.prune` 30 blocks, old history, state
/// versions and blocks go while the network keeps finalizing and serving the latest state; the
/// validator, which hosts no runtime, prunes the runtime's block headers with its blocks.
#[test]
fn state_values_come_with_proofs_and_pruning_keeps_a_window() {
    let mut net = Localnet::start(&[
        "--load",
        "8",
        "--prune-kept",
        "5",
        "--consensus-prune-kept",
        "30",
        // A node run under a wrapper command (how a profiler is attached); this one only
        // sets the variable that keeps a profiler's descriptors open.
        "--wrap",
        "compute-2=env PARATIME_NODE_KEEP_INHERITED_FDS=1",
    ]);
    net.wait(
        "rounds finalized and history pruned",
        Duration::from_secs(180),
        |n| {
            counter(n, "client-0", "rounds_finalized") >= 12
                && n.status("compute-0")
                    .and_then(|s| rt(&s)["last_retained_round"].as_u64())
                    .is_some_and(|r| r >= 4)
        },
    );
    let o = kv_put(&net, "client-0", "probe", "proven");
    assert!(o.status.success(), "{}", text(&o));
    let get = |extra: &[&str]| {
        let mut args = vec![
            "state",
            "get",
            "-a",
            &sock(&net, "client-0"),
            "--runtime",
            RUNTIME_ID,
            "--key",
            "probe",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs)
    };
    let o = get(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["value"]["text"], "proven", "{v}");
    let root = v["state_root"].as_str().expect("root").to_string();
    let proof = v["proof"].as_str().expect("proof").to_string();
    // Offline, against the root.
    let o = run(&[
        "state", "verify", "--root", &root, "--key", "probe", "--proof", &proof,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["value"]["text"], "proven", "{v}");
    // Another root, a changed proof, or a trusted root the node's answer does not match.
    let other = "00".repeat(32);
    let o = run(&[
        "state", "verify", "--root", &other, "--key", "probe", "--proof", &proof,
    ]);
    assert!(!o.status.success(), "another root accepted: {}", text(&o));
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(&proof)
        .expect("base64");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let o = run(&[
        "state", "verify", "--root", &root, "--key", "probe", "--proof", &forged,
    ]);
    assert!(
        !o.status.success(),
        "a changed proof accepted: {}",
        text(&o)
    );
    let o = get(&["--root", &other]);
    assert!(
        !o.status.success(),
        "an untrusted root accepted: {}",
        text(&o)
    );
    // Every hosting node keeps a window: its tree's oldest version moves up.
    for node in ["compute-0", "compute-1", "compute-2", "client-0"] {
        let log =
            std::fs::read_to_string(net.net().join(node).join("data/node.log")).unwrap_or_default();
        assert!(
            log.contains("pruned runtime history"),
            "{node} never pruned"
        );
    }
    // Consensus blocks: the validator keeps the last 30, and rounds keep being finalized.
    let retained = |n: &Localnet| {
        n.status("validator-0")
            .and_then(|s| s["consensus"]["last_retained_height"].as_u64())
            .unwrap_or(0)
    };
    net.wait("blocks pruned", Duration::from_secs(60), |n| {
        retained(n) >= 10
    });
    let st = net.status("validator-0").expect("status");
    let latest = st["consensus"]["latest_height"].as_u64().unwrap_or(0);
    assert!(
        latest.saturating_sub(retained(&net)) <= 30 + 10,
        "more than the window kept: {}",
        st["consensus"]
    );
    let before = counter(&net, "client-0", "rounds_finalized");
    net.wait("rounds after pruning", Duration::from_secs(60), |n| {
        counter(n, "client-0", "rounds_finalized") >= before + 5
    });
    // The wrapped node ran through its wrapper, and took part like the others.
    let stderr =
        std::fs::read_to_string(net.net().join("compute-2/stderr.log")).unwrap_or_default();
    assert!(
        stderr.contains("PARATIME_NODE_KEEP_INHERITED_FDS is set"),
        "compute-2 did not run under its wrapper: {stderr}"
    );
    // What the stores' caches hold is in the status, within their bounds, and not nothing.
    let st = net.status("compute-2").expect("status");
    let m = &rt(&st)["state_memory"];
    let limit = m["cache_limit_bytes"].as_u64().unwrap_or(0);
    let nodes = m["node_cache_bytes"].as_u64().unwrap_or(0);
    let pages = m["page_cache_bytes"].as_u64().unwrap_or(0);
    // redb's page budget is soft by a page or a write in flight: 1 MiB of slack.
    assert!(
        nodes > 0 && pages > 0 && nodes + pages <= limit + (1 << 20),
        "{m}"
    );
    let consensus = st["consensus"]["store_cache_bytes"].as_u64().unwrap_or(0);
    assert!(
        consensus > 0 && consensus <= (32 << 20) + (1 << 20),
        "{}",
        st["consensus"]
    );
    // The validator hosts no runtime: the runtime's block headers, stored with every block,
    // go with the blocks (the latest 30 rounds stay), where they used to pile up for ever.
    let log_of = |n: &Localnet| {
        std::fs::read_to_string(n.net().join("validator-0/data/node.log")).unwrap_or_default()
    };
    net.wait("runtime headers pruned", Duration::from_secs(90), |n| {
        log_of(n).contains("pruned the block headers of a runtime this node does not host")
    });
    let seen = net
        .status("client-0")
        .and_then(|s| rt(&s)["latest_round"].as_u64())
        .expect("latest round");
    let kept = net.stop_keeping_files();
    let rid: paratime_node::bundle::RuntimeId = RUNTIME_ID.parse().expect("runtime id");
    let open = |node: &str| {
        paratime_node::storage::Store::open(
            &kept
                .path()
                .join("net")
                .join(node)
                .join("data/consensus.redb"),
        )
        .expect("store")
    };
    let v = open("validator-0");
    let header = |s: &paratime_node::storage::Store, r: u64| {
        s.runtime_block(&rid, paratime_state::Round(r))
            .expect("read")
            .is_some()
    };
    assert!(!header(&v, 1), "the validator kept round 1's header");
    assert!(header(&v, seen), "the validator lost round {seen}'s header");
    let stored = (1..=seen + 100).filter(|r| header(&v, *r)).count();
    assert!(stored <= 30 + 20, "{stored} headers kept, not about 30");
    // Nor does it tell peers it pruned a history it never had.
    assert_eq!(
        v.runtime_retained_from(&rid).expect("read"),
        paratime_state::Round(0)
    );
}

#[test]
fn a_node_that_joins_after_the_others_pruned_syncs_the_state_and_follows() {
    // A window of 50 rounds is pruned past round 10 by round 60: about 40 s into a CI run
    // (1.6 rounds/s there), well before the late node starts at 75 s. (A window of 100 needed
    // round 120 by 70 s, which a slow CI run missed.)
    let mut net = Localnet::start(&["--load", "8", "--prune-kept", "50", "--late-client", "75s"]);
    net.wait(
        "history pruned before the late node starts",
        Duration::from_secs(72),
        |n| {
            ["compute-0", "client-0"].iter().all(|c| {
                n.status(c)
                    .and_then(|s| rt(&s)["last_retained_round"].as_u64())
                    .is_some_and(|r| r >= 10)
            })
        },
    );
    let o = kv_put(&net, "client-0", "early", "before the late node");
    assert!(o.status.success(), "{}", text(&o));
    let head = |n: &Localnet| {
        n.status("client-0")
            .and_then(|s| rt(&s)["latest_round"].as_u64())
            .unwrap_or(0)
    };
    net.wait(
        "the late node synced the state and follows the rounds",
        Duration::from_secs(240),
        |n| {
            let h = head(n);
            h > 0
                && n.status("client-1")
                    .and_then(|s| rt(&s)["worker"]["latest_round"].as_u64())
                    .is_some_and(|r| r + 1 >= h)
        },
    );
    let log = std::fs::read_to_string(net.net().join("client-1/data/node.log")).unwrap_or_default();
    assert!(
        log.contains("peers pruned the rounds this node needs")
            && log.contains("runtime state synced"),
        "the late node did not state-sync:\n{}",
        log.lines()
            .filter(|l| l.contains("worker/compute"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    if let Some(l) = log.lines().find(|l| l.contains("runtime state synced")) {
        eprintln!("late node: {l}");
    }
    assert!(
        !log.contains(r#""msg":"runtime round finalized","round":"1","#),
        "the late node replayed round 1"
    );
    // The value written before it joined came with the synced state, and a value written
    // after it joined arrives by following the rounds.
    assert_eq!(
        kv_get(&net, "client-1", "early")["value"],
        "before the late node"
    );
    let o = kv_put(&net, "client-0", "late", "after the sync");
    assert!(o.status.success(), "{}", text(&o));
    net.wait(
        "the late node applies new rounds",
        Duration::from_secs(60),
        |n| kv_get(n, "client-1", "late")["value"] == "after the sync",
    );
    // Its own history starts after the synced round.
    let st = net.status("client-1").expect("status");
    assert!(
        rt(&st)["last_retained_round"].as_u64() > Some(1),
        "{}",
        rt(&st)
    );
    let _ = net.stop();
}

/// A network namespace joined to the host by a veth pair; removed on drop.
struct Netns {
    name: String,
    host_ip: String,
    ip: String,
    veth_ns: String,
}

fn sh(cmd: &str) -> std::process::Output {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(o.status.success(), "{cmd}: {}", text(&o));
    o
}

impl Netns {
    /// `None` when this test cannot make namespaces (not root, no iproute2).
    fn create() -> Option<Self> {
        let ok = nix::unistd::geteuid().is_root()
            && Command::new("ip")
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success());
        if !ok {
            return None;
        }
        let id = std::process::id() % 200 + 20;
        let ns = Self {
            name: format!("ptn-test-{id}"),
            host_ip: format!("10.231.{id}.1"),
            ip: format!("10.231.{id}.2"),
            veth_ns: format!("ptn{id}n"),
        };
        let _ = Command::new("ip").args(["netns", "del", &ns.name]).output();
        sh(&format!(
            "ip netns add {n} && ip link add ptn{id}h type veth peer name {vn} netns {n} \
             && ip addr add {h}/30 dev ptn{id}h && ip link set ptn{id}h up \
             && ip -n {n} addr add {ip}/30 dev {vn} && ip -n {n} link set {vn} up \
             && ip -n {n} link set lo up",
            n = ns.name,
            vn = ns.veth_ns,
            h = ns.host_ip,
            ip = ns.ip,
        ));
        Some(ns)
    }

    fn link(&self, up: bool) {
        sh(&format!(
            "ip -n {} link set {} {}",
            self.name,
            self.veth_ns,
            if up { "up" } else { "down" }
        ));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes both ends of the veth pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
fn a_node_cut_off_in_its_own_network_namespace_catches_up() {
    // No skip: a machine that cannot run it fails it, naming what is missing.
    let Some(ns) = Netns::create() else {
        panic!("this test needs root and iproute2 (ip netns, veth) to create a network namespace");
    };
    let flag = format!("compute-3={},{},{}", ns.name, ns.host_ip, ns.ip);
    let mut net = Localnet::start(&[
        "--compute",
        "4",
        "--committee-size",
        "3",
        "--load",
        "8",
        "--debug-netns",
        &flag,
    ]);
    net.wait(
        "the namespaced node following the rounds",
        Duration::from_secs(180),
        |n| {
            let r = counter(n, "client-0", "rounds_finalized");
            r >= 3
                && n.status("compute-3")
                    .is_some_and(|s| rt(&s)["worker"]["latest_round"].as_u64() >= Some(3))
        },
    );
    // Cut it off: the others go on without it (its registration expires, the committee is
    // elected from the rest) and finalize a transaction it never sees.
    ns.link(false);
    let before = counter(&net, "client-0", "rounds_finalized");
    let o = kv_put(&net, "client-0", "while-cut", "yes");
    assert!(o.status.success(), "{}", text(&o));
    net.wait("rounds without it", Duration::from_secs(120), |n| {
        counter(n, "client-0", "rounds_finalized") >= before + 5
    });
    let behind = net
        .status("compute-3")
        .and_then(|s| rt(&s)["worker"]["latest_round"].as_u64())
        .unwrap_or(0);
    let head = net
        .status("client-0")
        .and_then(|s| rt(&s)["latest_round"].as_u64())
        .unwrap_or(0);
    assert!(behind < head, "cut off, it fell behind ({behind} < {head})");
    // Reconnect: it syncs the blocks and fetches the executed batches it missed.
    ns.link(true);
    net.wait(
        "the namespaced node caught up",
        Duration::from_secs(180),
        |n| {
            n.status("compute-3")
                .is_some_and(|s| rt(&s)["worker"]["latest_round"].as_u64() >= Some(head))
        },
    );
    assert_eq!(kv_get(&net, "compute-3", "while-cut")["value"], "yes");
    let _ = net.stop();
}

#[test]
fn a_frozen_scheduler_is_replaced_by_a_backup_scheduler() {
    // Long epochs: the frozen node stays registered (and in the committee) for the whole test.
    let mut net = Localnet::start(&["--epoch-interval", "100", "--load", "8"]);
    let nodes = compute_nodes();
    net.wait("rounds finalized", Duration::from_secs(180), |n| {
        counter(n, "client-0", "rounds_finalized") >= 3
    });
    // Freeze the open round's scheduler (SIGSTOP: not restarted, not deregistered). Its rounds
    // as a worker time out and the backups finalize them; its rounds as the scheduler get a
    // batch from the rank-1 worker after `propose_batch_timeout_ms`.
    let sched = open_round_scheduler(&mut net);
    let pid = node_pid(&net.net(), sched).expect("pid");
    let stop = |sig| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    };
    stop(nix::sys::signal::Signal::SIGSTOP);
    let before = counter(&net, "client-0", "rounds_finalized");
    let backup_proposed = |n: &Localnet| {
        nodes.iter().any(|c| {
            std::fs::read_to_string(n.net().join(c).join("data/node.log"))
                .unwrap_or_default()
                .contains("proposing as backup scheduler")
        })
    };
    net.wait(
        "a backup scheduler's batch finalized",
        Duration::from_secs(120),
        |n| backup_proposed(n) && counter(n, "client-0", "rounds_finalized") >= before + 2,
    );
    stop(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(equivocations(&net), Vec::<String>::new());
    let _ = net.stop();
}

fn signal(net: &Path, node: &str, sig: nix::sys::signal::Signal) -> i32 {
    let pid = node_pid(net, node).unwrap_or_else(|| panic!("{node} pid"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("signal");
    pid
}

fn client_round(n: &Localnet) -> u64 {
    n.status("client-0")
        .and_then(|s| s["runtimes"][RUNTIME_ID]["latest_round"].as_u64())
        .unwrap_or(0)
}

/// Four BFT validators (Malachite) with a compute node and a client: blocks and ParaTime rounds
/// continue with one validator down; with two down nothing is decided; with one back the chain
/// resumes; a validator SIGKILLed again and again restarts from its WAL and store and catches up.
/// Afterwards every node's store holds the same block and state root at every height.
#[test]
fn bft_validators_one_down_continue_two_down_halt_and_all_agree() {
    use nix::sys::signal::Signal;
    // Epochs of 40 blocks (8 s at full speed): a validator whose registration lapses (two
    // epochs without re-registering) leaves the next epoch's set, and with 10-block epochs
    // the frozen validator-3 lapsed within seconds on a slow machine — then the set was
    // three, and stopping validator-2 halted the chain for good.
    let mut net = Localnet::start(&[
        "--validators",
        "4",
        "--compute",
        "1",
        "--load",
        "8",
        "--epoch-interval",
        "40",
    ]);
    let validators = ["validator-0", "validator-1", "validator-2", "validator-3"];
    net.wait(
        "blocks and ParaTime rounds",
        Duration::from_secs(180),
        |n| n.height("validator-0") >= 8 && client_round(n) >= 3,
    );
    let st = net.status("validator-0").expect("status");
    let c = &st["consensus"];
    assert_eq!(c["backend"], "malachite", "{c}");
    assert_eq!(c["is_validator"], true, "{c}");
    assert_eq!(c["validators"].as_array().map(Vec::len), Some(4), "{c}");
    // Where the engine is, and its peers on the consensus port (polled every 2 s): the three
    // other validators at least (full nodes connect too).
    assert!(
        c["current_height"].as_u64() >= c["latest_height"].as_u64(),
        "{c}"
    );
    assert!(c["current_round"].as_i64() >= Some(0), "{c}");
    assert!(
        ["propose", "prevote", "precommit", "commit"]
            .contains(&c["current_step"].as_str().unwrap_or("")),
        "{c}"
    );
    net.wait("consensus peers in status", Duration::from_secs(30), |n| {
        n.status("validator-0")
            .is_some_and(|s| s["consensus"]["p2p"]["num_peers"].as_u64() >= Some(3))
    });
    assert!(
        c["last_commit"]["signers"].as_array().map(Vec::len) >= Some(3),
        "a commit certificate holds more than two thirds: {c}"
    );
    // The validators register with the validator role and their consensus address, and the
    // next epoch's set is elected from those registrations (node_id set) — still all four.
    net.wait(
        "every validator registered and elected from its registration",
        Duration::from_secs(60),
        |n| {
            validators.iter().all(|v| {
                n.status(v)
                    .is_some_and(|s| s["registration"]["last_attempt_successful"] == true)
            }) && n.status("validator-0").is_some_and(|s| {
                let set = s["consensus"]["validators"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                set.len() == 4 && set.iter().all(|v| v["node_id"].is_string())
            })
        },
    );
    // Its peers on the consensus port include the other three validators, known by the P2P
    // keys they registered.
    net.wait("validator peers in status", Duration::from_secs(30), |n| {
        n.status("validator-0")
            .is_some_and(|s| s["consensus"]["p2p"]["num_validator_peers"].as_u64() == Some(3))
    });
    let st = net.status("validator-1").expect("status");
    let d = &st["registration"]["descriptor"];
    assert_eq!(d["roles"], "validator", "validator role only: {d}");
    assert!(
        d["consensus"]["addresses"][0]
            .as_str()
            .is_some_and(|a| a.contains("@127.0.0.1:")),
        "{d}"
    );
    let st = net.status("client-0").expect("status");
    assert_eq!(st["consensus"]["is_validator"], false);

    // One of four down (frozen, so localnet does not restart it): blocks and rounds go on.
    signal(&net.net(), "validator-3", Signal::SIGSTOP);
    let (h, r) = (net.height("validator-0"), client_round(&net));
    net.wait(
        "progress with one validator down",
        Duration::from_secs(120),
        |n| n.height("validator-0") >= h + 5 && client_round(n) >= r + 2,
    );
    // The frozen validator is still in the set (its registration has not lapsed), or what
    // follows would test a three-validator network.
    let set = net.status("validator-0").expect("status")["consensus"]["validators"].clone();
    assert_eq!(
        set.as_array().map(Vec::len),
        Some(4),
        "validator-3 left the set while frozen: {set}"
    );

    // Two of four down: no quorum, nothing is decided.
    signal(&net.net(), "validator-2", Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    let halted = net.height("validator-0").max(net.height("validator-1"));
    std::thread::sleep(Duration::from_secs(6));
    let after = net.height("validator-0").max(net.height("validator-1"));
    assert!(
        after <= halted + 1,
        "decided without a quorum: {halted} -> {after}"
    );

    // One returns: the chain resumes.
    signal(&net.net(), "validator-3", Signal::SIGCONT);
    net.wait(
        "progress after one validator returned",
        Duration::from_secs(120),
        |n| n.height("validator-0") >= after + 5,
    );
    signal(&net.net(), "validator-2", Signal::SIGCONT);

    // kill -9 a validator at whatever step it is in, three times; it restarts from its WAL.
    for _ in 0..3 {
        let pid = signal(&net.net(), "validator-1", Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(700));
        let at = net.height("validator-0");
        net.wait(
            "validator-1 back and caught up",
            Duration::from_secs(120),
            |n| {
                node_pid(&n.net(), "validator-1").is_some_and(|p| p != pid)
                    && n.height("validator-1") >= at + 2
            },
        );
    }
    let top = common_height_without_evidence(&mut net);
    let kept = net.stop_keeping_files();
    let checked = all_stores_agree(&kept.path().join("net"), top);
    assert!(checked >= 20, "only {checked} heights");
}

/// Waits until every node of a 4-validator network has validator-0's height, checks that no
/// validator reports evidence (all are honest), and returns that height.
fn common_height_without_evidence(net: &mut Localnet) -> u64 {
    let top = net.height("validator-0");
    net.wait(
        "everyone at a common height",
        Duration::from_secs(120),
        |n| BFT_NODES.iter().all(|v| n.height(v) >= top),
    );
    assert_no_evidence(net);
    top
}

/// No validator of a 4-validator network reports evidence: all of them are honest.
fn assert_no_evidence(net: &Localnet) {
    for v in &BFT_NODES[..4] {
        let st = net.status(v).expect("status");
        assert_eq!(
            st["consensus"]["evidence"].as_array().map(Vec::len),
            Some(0),
            "an honest validator was reported: {}",
            st["consensus"]
        );
    }
}

/// The nodes of a `--validators 4 --compute 1` network.
const BFT_NODES: [&str; 6] = [
    "validator-0",
    "validator-1",
    "validator-2",
    "validator-3",
    "compute-0",
    "client-0",
];

/// Every node's store (four validators, compute-0, client-0) holds the same block hash and
/// state root at every height up to `top`; returns the number of heights checked.
fn all_stores_agree(dir: &Path, top: u64) -> u64 {
    let stores: Vec<paratime_node::storage::Store> = BFT_NODES
        .iter()
        .map(|n| {
            paratime_node::storage::Store::open(&dir.join(n).join("data/consensus.redb"))
                .expect("store")
        })
        .collect();
    for h in 1..=top {
        let blocks: Vec<_> = stores
            .iter()
            .map(|s| s.block(h).expect("read").expect("block"))
            .collect();
        let (hash, root) = (blocks[0].0.hash(), blocks[0].0.header.state_root);
        for (n, (b, _)) in BFT_NODES.iter().zip(&blocks) {
            assert_eq!(b.hash(), hash, "height {h}: {n}'s block differs");
            assert_eq!(
                b.header.state_root, root,
                "height {h}: {n}'s state root differs"
            );
        }
    }
    top
}

/// kill -9 at every step that matters, with real processes: each validator SIGKILLs itself
/// (a test-only crash point of debug builds) right after signing a prevote, right after
/// signing a precommit, with a decided block not yet stored, and with it stored but not yet
/// acknowledged — eight crashes over the four validators; localnet restarts each from its WAL
/// and store. The chain goes on, nobody equivocates, and all stores agree at every height.
/// The network sends proposals and votes by broadcast (genesis `consensus_pubsub`), so each
/// restarted validator must be reconnected to every other one directly: nothing is relayed.
/// (The test above runs the default, gossipsub.)
#[test]
fn bft_validators_killed_at_every_step_restart_and_all_agree() {
    let crashes = [
        ("validator-1", "prevote", 6),
        ("validator-2", "precommit", 14),
        ("validator-3", "decided", 22),
        ("validator-0", "stored", 30),
        ("validator-1", "precommit", 38),
        ("validator-2", "decided", 46),
        ("validator-3", "stored", 54),
        ("validator-0", "prevote", 62),
    ];
    let specs: Vec<String> = crashes
        .iter()
        .map(|(n, step, h)| format!("{n}={step}@{h}"))
        .collect();
    let mut args = vec![
        "--validators",
        "4",
        "--compute",
        "1",
        "--load",
        "8",
        "--consensus-pubsub",
        "broadcast",
    ];
    for s in &specs {
        args.extend(["--debug-crash", s.as_str()]);
    }
    let mut net = Localnet::start(&args);
    let marker = |n: &Localnet, (node, step, h): &(&str, &str, u64)| {
        n.net()
            .join(node)
            .join(format!("data/test-crash-{step}-{h}"))
            .exists()
    };
    net.wait(
        "every crash point reached and the chain 10 blocks past the last",
        Duration::from_secs(240),
        |n| crashes.iter().all(|c| marker(n, c)) && n.height("validator-0") >= 72,
    );
    // Each crash was a SIGKILL and a restart.
    let out = std::fs::read_to_string(net.dir.path().join("localnet.log")).unwrap_or_default();
    let restarts = out.matches("signal: 9 (SIGKILL)").count();
    assert!(
        restarts >= crashes.len(),
        "{restarts} SIGKILL restarts:\n{out}"
    );
    let n = network_show(&net, "validator-0");
    assert_eq!(n["consensus_pubsub"], "broadcast", "{n}");
    let top = common_height_without_evidence(&mut net);
    assert!(client_round(&net) >= 3, "ParaTime rounds went on");
    let kept = net.stop_keeping_files();
    assert!(all_stores_agree(&kept.path().join("net"), top) >= 72);
}

/// A bundle registry on loopback serving localnet's `<net>/registry/` (set once localnet made
/// it); while `tampered` is set, bundles are served repackaged: the executable one byte longer,
/// as valid ZIP with valid CRCs, the manifest untouched.
struct Registry {
    url: String,
    tampered: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dir: std::sync::Arc<std::sync::OnceLock<PathBuf>>,
    _rt: tokio::runtime::Runtime,
}

impl Registry {
    fn start() -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let tampered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let dir = std::sync::Arc::new(std::sync::OnceLock::<PathBuf>::new());
        let (t2, d2) = (tampered.clone(), dir.clone());
        let app = axum::Router::new().route(
            "/{file}",
            axum::routing::get(
                move |axum::extract::Path(file): axum::extract::Path<String>| {
                    let (tampered, dir) = (t2.clone(), d2.clone());
                    async move {
                        let not_found = || {
                            axum::response::Response::builder()
                                .status(404)
                                .body(axum::body::Body::empty())
                                .expect("404")
                        };
                        let Some(bytes) = dir
                            .get()
                            .filter(|_| !file.contains('/') && !file.starts_with('.'))
                            .and_then(|d| std::fs::read(d.join(&file)).ok())
                        else {
                            return not_found();
                        };
                        if !file.ends_with(".orc") || !tampered.load(Ordering::SeqCst) {
                            return axum::response::Response::new(axum::body::Body::from(bytes));
                        }
                        let mut a = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
                        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
                        for i in 0..a.len() {
                            let mut f = a.by_index(i).expect("entry");
                            let name = f.name().expect("name").to_string();
                            let mut data = Vec::new();
                            f.read_to_end(&mut data).expect("read");
                            if name == "runtime.elf" {
                                data.push(0);
                            }
                            out.start_file(name, zip::write::SimpleFileOptions::default())
                                .expect("start");
                            out.write_all(&data).expect("write");
                        }
                        let bad = out.finish().expect("finish").into_inner();
                        axum::response::Response::new(axum::body::Body::from(bad))
                    }
                },
            ),
        );
        rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(l).expect("listener");
            let _ = axum::serve(l, app).await;
        });
        Self {
            url,
            tampered,
            dir,
            _rt: rt,
        }
    }
}

#[test]
fn nodes_configured_by_id_refuse_a_tampered_bundle_then_download_and_host_the_genuine_one() {
    let reg = Registry::start();
    let mut net = Localnet::start(&["--load", "8", "--registry", &reg.url]);
    reg.dir
        .set(net.net().join("registry"))
        .expect("registry dir");
    net.wait(
        "localnet writes the configs",
        Duration::from_secs(30),
        |n| n.net().join("client-0/etc/config.yml").exists(),
    );
    // No runtime.paths anywhere: every runtime node follows the ParaTime by id.
    let cfg = std::fs::read_to_string(net.net().join("compute-0/etc/config.yml")).expect("cfg");
    assert!(!cfg.contains("paths:") && cfg.contains(&reg.url), "{cfg}");
    let error_of = |n: &Localnet, node: &str| {
        n.status(node)
            .and_then(|s| rt(&s)["sandbox"]["last_error"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    net.wait(
        "every runtime node refuses the repackaged bundle, naming the file",
        Duration::from_secs(60),
        |n| {
            ["compute-0", "compute-1", "compute-2", "client-0"]
                .iter()
                .all(|c| error_of(n, c).contains("invalid digest: 'runtime.elf'"))
                && n.status("compute-0").is_some_and(|s| {
                    rt(&s)["committee"]["status"] == "waiting for hosted runtime provision"
                })
        },
    );
    let st = net.status("compute-0").expect("status");
    assert_eq!(
        rt(&st)["committee"]["status"],
        "waiting for hosted runtime provision",
        "{}",
        rt(&st)
    );
    assert!(rt(&st)["sandbox"]["pid"].is_null(), "{}", rt(&st));
    let bundles = net.net().join("compute-0/data/runtimes/bundles");
    let installed = std::fs::read_dir(&bundles)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(installed, 0, "nothing installed from a tampered download");

    // The registry is fixed: the nodes' next attempt installs and hosts the genuine bundle.
    reg.tampered
        .store(false, std::sync::atomic::Ordering::SeqCst);
    net.wait(
        "the committee finalizes rounds with the downloaded bundle",
        Duration::from_secs(120),
        |n| {
            n.status("client-0")
                .and_then(|s| rt(&s)["latest_round"].as_u64())
                .is_some_and(|r| r >= 3)
        },
    );
    let o = kv_put(&net, "client-0", "hot", "loaded");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(kv_get(&net, "client-0", "hot")["value"], "loaded");
    let st = net.status("compute-0").expect("status");
    assert!(rt(&st)["sandbox"]["last_error"].is_null(), "{}", rt(&st));
    let log =
        std::fs::read_to_string(net.net().join("compute-0/data/node.log")).unwrap_or_default();
    for want in [
        "failed to download bundle",
        "bundle downloaded",
        "bundle exploded",
    ] {
        assert!(log.contains(want), "compute-0 never logged '{want}'");
    }
    let _ = net.stop();
}

#[test]
fn every_node_halts_for_an_upgrade_before_the_halt_height_and_exits_cleanly() {
    const HALT: u64 = 40;
    let mut net = Localnet::start(&["--load", "4", "--halt-height", &HALT.to_string()]);
    let nodes = [
        "validator-0",
        "compute-0",
        "compute-1",
        "compute-2",
        "client-0",
    ];
    // localnet restarts nodes that fail; a halted node exits 0 and stays down.
    net.wait(
        "every node exits 0 after the halt",
        Duration::from_secs(120),
        |n| {
            let out =
                std::fs::read_to_string(n.dir.path().join("localnet.log")).unwrap_or_default();
            nodes.iter().all(|node| {
                out.contains(&format!(
                    "node {node} stopped (exit status: 0); not restarting it"
                ))
            })
        },
    );
    for node in nodes {
        let log =
            std::fs::read_to_string(net.net().join(node).join("data/node.log")).unwrap_or_default();
        let halted = log
            .lines()
            .find(|l| l.contains("upgrade halt: consensus.halt_height is 40"))
            .unwrap_or_else(|| panic!("{node} did not log the halt"));
        assert!(
            halted.contains(&format!("the last committed block is {}", HALT - 1))
                && halted.contains("2b1e7a5c0d6f4e8a9c3b1d2e4f6a8c25"),
            "{node}: {halted}"
        );
        assert!(
            log.contains(r#""reason":"upgrade halt""#),
            "{node} stopped for another reason"
        );
        let times = log
            .matches("upgrade halt: consensus.halt_height is 40")
            .count();
        assert_eq!(times, 1, "{node} logged the halt {times} times");
    }
    let _ = net.stop();
}

#[test]
fn control_shutdown_deregisters_first_and_an_unfinished_deregistration_is_remembered() {
    let mut net = Localnet::start(&[]);
    let registered = |n: &Localnet, node: &str| {
        n.status(node).is_some_and(|s| {
            s["registration"]["last_attempt_successful"] == true
                && s["registration"]["node_status"]["election_eligible_after"].as_u64() > Some(0)
        })
    };
    net.wait(
        "compute-1 and compute-2 registered",
        Duration::from_secs(60),
        |n| registered(n, "compute-1") && registered(n, "compute-2"),
    );
    // `control shutdown --wait` returns once the node has deregistered and stopped.
    let o = run(&[
        "control",
        "shutdown",
        "--wait",
        "-a",
        &sock(&net, "compute-2"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("node stopped"), "{}", text(&o));
    let log =
        std::fs::read_to_string(net.net().join("compute-2/data/node.log")).unwrap_or_default();
    assert!(
        log.contains(r#""deregistered":"true","#) || log.contains(r#""deregistered":true"#),
        "compute-2 did not deregister: {}",
        log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    let netdir = net.net();
    let flag = |node: &str| netdir.join(node).join("data/deregistration-requested");
    assert!(
        !flag("compute-2").exists(),
        "a completed deregistration is forgotten"
    );
    // A deregistration that never completed (the node was killed) is remembered: the node's
    // next start deregisters and stops again.
    std::fs::write(
        flag("compute-1"),
        "deregistration requested by control shutdown\n",
    )
    .expect("flag");
    signal(&net.net(), "compute-1", nix::sys::signal::Signal::SIGKILL);
    net.wait(
        "compute-1 restarted, deregistered and stopped",
        Duration::from_secs(90),
        |n| {
            let out =
                std::fs::read_to_string(n.dir.path().join("localnet.log")).unwrap_or_default();
            out.contains("node compute-1 stopped (exit status: 0); not restarting it")
        },
    );
    let log =
        std::fs::read_to_string(net.net().join("compute-1/data/node.log")).unwrap_or_default();
    assert!(
        log.contains("a deregistration requested by control shutdown did not complete"),
        "compute-1 did not say why it stopped"
    );
    assert!(
        !flag("compute-1").exists(),
        "its deregistration completed this time"
    );
    // Offline, `control clear-deregister` forgets a pending request.
    std::fs::write(
        flag("compute-2"),
        "deregistration requested by control shutdown\n",
    )
    .expect("flag");
    let dd = net.net().join("compute-2/data");
    let o = run(&[
        "control",
        "clear-deregister",
        "--datadir",
        dd.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("cleared persisted forced-deregister"),
        "{}",
        text(&o)
    );
    assert!(!flag("compute-2").exists());
    let _ = net.stop();
}

/// A node's `metrics.address` from the config localnet wrote for it.
fn metrics_address(net: &Localnet, node: &str) -> String {
    let cfg = std::fs::read_to_string(net.net().join(node).join("etc/config.yml")).expect("config");
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cfg).expect("yaml");
    assert_eq!(v["metrics"]["mode"].as_str(), Some("pull"), "{cfg}");
    v["metrics"]["address"]
        .as_str()
        .expect("metrics.address")
        .to_string()
}

/// The metric names of docs/metrics.md's tables (first column, in backticks).
fn documented_metrics() -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .expect("docs/metrics.md");
    let names: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    assert!(
        names.len() > 40,
        "docs/metrics.md lists {} metrics",
        names.len()
    );
    names
}

/// One value of an instant Prometheus query (the first series), if the query has a result.
fn prometheus_value(api: &str, query: &str) -> Option<f64> {
    let (status, body) = http_get(api, &format!("/api/v1/query?query={query}"))?;
    if !status.contains(" 200") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Stops Prometheus with the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_a_compute_node_and_sees_its_rounds_advance() {
    let prometheus = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("no prometheus binary: apt-get install prometheus (scripts/test.sh installs it)");
    let mut net = Localnet::start(&["--load", "8"]);
    net.wait("compute-0 applies rounds", Duration::from_secs(120), |n| {
        n.status("compute-0")
            .is_some_and(|s| rt(&s)["worker"]["latest_round"].as_u64() >= Some(2))
    });
    let addr = metrics_address(&net, "compute-0");

    // Every documented family is served by a compute node (histograms of events that did not
    // happen yet still have their TYPE line), on every path as oasis-node serves them.
    let (status, body) = http_get(&addr, "/metrics").expect("GET /metrics");
    assert!(status.contains(" 200"), "{status}");
    let missing: Vec<String> = documented_metrics()
        .into_iter()
        .filter(|n| {
            // An OpenMetrics counter's TYPE line names it without `_total`.
            let ty = match n.strip_suffix("_total") {
                Some(base) => format!("# TYPE {base} counter"),
                None => format!("# TYPE {n} "),
            };
            !body.lines().any(|l| l.starts_with(&ty))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "documented but not served: {missing:?}\n{body}"
    );
    assert!(
        body.contains(&format!(
            "oasis_worker_executor_is_worker{{runtime=\"{RUNTIME_ID}\"}}"
        )),
        "{body}"
    );
    let (status, other) = http_get(&addr, "/anything").expect("GET /anything");
    assert!(
        status.contains(" 200") && other.contains("# TYPE oasis_finalized_rounds"),
        "{status}"
    );

    // A real Prometheus server scrapes it every second.
    let dir = tempfile::tempdir().expect("tempdir");
    let api = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").to_string()
    };
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: paratime-node\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let _prom = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={api}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let start = Instant::now();
    while prometheus_value(&api, "up") != Some(1.0) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus never saw the target up (up = {:?}):\n{}",
            prometheus_value(&api, "up"),
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let query = "max%28oasis_worker_storage_full_round%29";
    let first = loop {
        if let Some(v) = prometheus_value(&api, query) {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no round in Prometheus:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    net.wait(
        "Prometheus sees the round advance",
        Duration::from_secs(60),
        |_| prometheus_value(&api, query).is_some_and(|v| v > first),
    );
    let finalized =
        prometheus_value(&api, "oasis_finalized_rounds").expect("oasis_finalized_rounds");
    assert!(finalized >= first, "finalized {finalized}, round {first}");
    // Every query of the shipped Grafana dashboard is valid PromQL for this Prometheus and has
    // a result for a compute node under load.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana/paratime-node.json"),
        )
        .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut empty = Vec::new();
    for t in dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets"))
    {
        let expr = t["expr"].as_str().expect("expr").replace("$runtime", ".*");
        let encoded: String = expr
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, body) =
            http_get(&api, &format!("/api/v1/query?query={encoded}")).expect("query");
        assert!(
            status.contains(" 200"),
            "the dashboard query {expr} is refused: {status} {body}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if v["data"]["result"].as_array().is_none_or(Vec::is_empty) {
            empty.push(expr);
        }
    }
    // rate() needs two samples in its window; everything else has a value by now, except the
    // series of events that need a fault (timeouts, limit kills, dropped lines still have a
    // zero series, so only queries on families without series can be empty).
    let allowed_empty = ["oasis_rhp_failures"];
    let unexpected: Vec<&String> = empty
        .iter()
        .filter(|e| !allowed_empty.iter().any(|a| e.contains(a)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "dashboard queries without a result: {unexpected:?}"
    );
    let _ = net.stop();
}
