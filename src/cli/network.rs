//! Network commands: `genesis`, `entity`, `account`.

use crate::consensus::address::Address;
use crate::consensus::crypto::{self, PublicKey, Signed};
use crate::consensus::genesis::Genesis;
use crate::consensus::state::{Allow, Entity, Escrow, Fee, Transaction, Transfer, Withdraw};
use crate::control::api;
use crate::control::client::Client;
use crate::identity::{self, load_key_files};
use base64::Engine;
use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `genesis` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum GenesisCmd {
    /// Create a genesis document: the validators, funded and staked entities, one ParaTime.
    Init {
        /// Output file (genesis.json).
        #[arg(long)]
        output: PathBuf,
        /// Chain name.
        #[arg(long, default_value = "paratime-testnet")]
        chain_id: String,
        /// A validator node's data dir (its consensus_pub.pem is the validator key); repeat for
        /// each validator (BFT: 4 tolerate one failure). The first entity's escrow backs them,
        /// split evenly.
        #[arg(long = "validator-datadir", required = true)]
        validator_datadirs: Vec<PathBuf>,
        /// An entity directory (entity.pem, entity.json) to register at genesis; repeatable.
        #[arg(long = "entity-dir")]
        entity_dirs: Vec<PathBuf>,
        /// General balance of each entity.
        #[arg(long, default_value_t = 1_000_000)]
        balance: u64,
        /// Escrow (stake) of each entity.
        #[arg(long, default_value_t = 10_000)]
        escrow: u64,
        /// The ParaTime's bundle: its runtime ID is registered, with its version and manifest
        /// hash as the deployment valid from epoch 0 (what nodes configured by id download).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Executor committee size.
        #[arg(long, default_value_t = 1)]
        group_size: u16,
        /// Blocks per epoch.
        #[arg(long, default_value_t = 10)]
        epoch_interval: u64,
        /// Milliseconds between blocks, at least (a proposer waits up to one more interval for
        /// the commitments of a ParaTime round in progress).
        #[arg(long, default_value_t = 1000)]
        block_interval_ms: u64,
        /// How validators spread proposals and votes: `gossipsub` (relayed; sentry nodes work)
        /// or `broadcast` (sent directly to every connected peer, never relayed: every
        /// validator must list every other one in `consensus.p2p.persistent_peers`; less CPU
        /// per block). Network-wide.
        #[arg(long, default_value = "gossipsub")]
        consensus_pubsub: crate::consensus::genesis::ConsensusPubSub,
    },
    /// Check a genesis document and print its chain context.
    Check {
        /// The genesis file.
        file: PathBuf,
    },
}

/// `entity` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum EntityCmd {
    /// Create an entity key (entity.pem, 0600) and entity.json in DIR; never overwrites.
    Init {
        /// Entity directory (kept off the node host).
        #[arg(long)]
        dir: PathBuf,
    },
    /// List a node in the entity's `nodes` (by ID, or from a node's data dir).
    AddNode {
        /// Entity directory.
        #[arg(long)]
        dir: PathBuf,
        /// The node ID (base64).
        #[arg(long, conflicts_with = "node_datadir")]
        node_id: Option<String>,
        /// Read the node ID from this node data dir (identity_pub.pem).
        #[arg(long)]
        node_datadir: Option<PathBuf>,
    },
    /// Show the entity's ID and staking address.
    Show {
        /// Entity directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Register (or update) the entity through a node.
    Register {
        /// Entity directory.
        #[arg(long)]
        dir: PathBuf,
        /// A node's control socket.
        #[arg(short = 'a', long = "address")]
        address: String,
    },
}

/// `network` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum NetworkCmd {
    /// Show the network's parameters: stake thresholds, epochs, ParaTimes and their committees.
    Show {
        /// A node's control socket (default: $PARATIME_NODE_ADDRESS, else ./internal.sock, else
        /// /run/paratime-node/internal.sock).
        #[arg(short = 'a', long = "address")]
        address: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `network show` as text: what an entity must hold to run each kind of node.
fn show_network(n: &api::NetworkParameters) -> String {
    let t = &n.thresholds;
    let mut out = format!(
        "Network: {} (chain context {})\n\
         Height: {}, epoch {} ({} blocks of {} ms each)\n\
         Proposals and votes: {}\n\n\
         Stake an entity must hold (escrow, base units):\n\
         \x20 entity itself:                            {}\n\
         \x20 per validator node:                       {}\n\
         \x20 per compute node and ParaTime it serves:  {}\n\
         Node registrations last at most {} epochs; reclaimed stake debonds for {} epochs.\n",
        n.chain_id,
        n.chain_context,
        n.height,
        n.epoch,
        n.epoch_interval,
        n.block_interval_ms,
        match n.consensus_pubsub {
            crate::consensus::genesis::ConsensusPubSub::Gossipsub =>
                "gossipsub (relayed between validators)",
            crate::consensus::genesis::ConsensusPubSub::Broadcast =>
                "broadcast (sent directly; every validator connects to every other one)",
        },
        t.entity,
        t.node_validator,
        t.node_compute,
        n.max_node_expiration,
        n.debonding_interval,
    );
    for r in &n.runtimes {
        out.push_str(&format!(
            "\nParaTime {} ({}):\n\
             \x20 executor committee: {} workers, {} backups\n\
             \x20 extra stake per compute node: {} (in all per node: {})\n",
            r.id,
            r.kind,
            r.executor.group_size,
            r.executor.group_backup_size,
            r.staking_thresholds.node_compute,
            t.node_compute
                .saturating_add(r.staking_thresholds.node_compute),
        ));
    }
    out
}

/// `network …`.
pub fn network(cmd: NetworkCmd) -> i32 {
    let NetworkCmd::Show { address, json } = cmd;
    let result = (|| {
        let address = match address {
            Some(a) => a,
            None => default_address()?,
        };
        let n = block_on(Client::new(address).network())?;
        anyhow::Ok(if json {
            serde_json::to_string_pretty(&n).unwrap_or_default()
        } else {
            show_network(&n)
        })
    })();
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            0
        }
        Err(e) => fail(e),
    }
}

/// `account` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AccountCmd {
    /// Show an account's balance, nonce and escrow (its delegations with --show-delegations).
    Show {
        /// `oasis1…` address.
        addr: String,
        /// List the account's active and debonding delegations (as the Oasis CLI).
        #[arg(long)]
        show_delegations: bool,
        /// A node's control socket (default: $PARATIME_NODE_ADDRESS, else ./internal.sock, else
        /// /run/paratime-node/internal.sock).
        #[arg(short = 'a', long = "address")]
        address: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Transfer tokens.
    Transfer(TxArgs),
    /// Delegate tokens to an escrow account (stake).
    Escrow(TxArgs),
    /// Reclaim escrowed tokens (they debond).
    Reclaim(TxArgs),
    /// Let --to withdraw up to --amount more from the signer's account (with --negative: that
    /// much less, down to nothing).
    Allow {
        /// Signer, beneficiary, amount, node.
        #[command(flatten)]
        tx: TxArgs,
        /// Lower the allowance instead of raising it.
        #[arg(long)]
        negative: bool,
    },
    /// Withdraw --amount from the account --to, within the allowance it granted the signer.
    Withdraw(TxArgs),
}

/// Common options of account transactions.
#[derive(clap::Args, Debug)]
pub struct TxArgs {
    /// The signer's private key PEM (e.g. entity/entity.pem), exactly 0600.
    #[arg(long)]
    signer: PathBuf,
    /// Counterparty: recipient (transfer), escrow account (escrow, reclaim), beneficiary
    /// (allow), or the account that granted the allowance (withdraw).
    #[arg(long)]
    to: String,
    /// Amount in base units.
    #[arg(long)]
    amount: u64,
    /// A node's control socket.
    #[arg(short = 'a', long = "address")]
    address: String,
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("error: {msg}");
    1
}

/// Runs `f` on a single-threaded runtime (one-shot CLI requests).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// The entity key of an entity dir.
pub fn entity_key(dir: &Path, create: bool) -> anyhow::Result<SigningKey> {
    Ok(load_key_files(&dir.join("entity.pem"), &dir.join("entity_pub.pem"), create)?.0)
}

fn signer_key(pem: &Path) -> anyhow::Result<SigningKey> {
    let stem = pem
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow::anyhow!("--signer: not a .pem file"))?;
    let public = pem.with_file_name(format!("{stem}_pub.pem"));
    Ok(load_key_files(pem, &public, false)?.0)
}

/// Reads entity.json.
pub fn read_entity(dir: &Path) -> anyhow::Result<Entity> {
    let p = dir.join("entity.json");
    let text =
        crate::system::files::read_bounded_to_string(&p, crate::system::files::ENTITY_LIMIT)?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

/// Writes entity.json (0600, 2-space JSON).
pub fn write_entity(dir: &Path, e: &Entity) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join("entity.json");
    let tmp = dir.join(".entity.json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(e)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

/// The account of `who` as the node reports it (JSON with sorted keys, for display).
async fn account_json(address: &str, who: &Address) -> anyhow::Result<serde_json::Value> {
    let info = Client::new(address).account(&who.to_string()).await?;
    Ok(serde_json::to_value(&info)?)
}

/// Signs a transaction with the signer's current nonce, submits it through the node and waits
/// until it is in a block.
async fn submit(
    address: &str,
    key: &SigningKey,
    method: &str,
    body: ciborium::Value,
) -> anyhow::Result<String> {
    let client = Client::new(address);
    let me = Address::from_public_key(&PublicKey::of(key));
    let acct = client.account(&me.to_string()).await?;
    let nonce = acct.account.nonce;
    let tx = Transaction {
        nonce,
        fee: Fee::default(),
        method: method.into(),
        body,
    };
    let ctx = crypto::context(crypto::CONTEXT_TX, Some(&acct.chain_context));
    let signed = Signed::sign(key, &ctx, &tx);
    let req = api::ConsensusSubmit {
        tx: base64::engine::general_purpose::STANDARD
            .encode(crate::encoding::canonical_cbor(&signed)),
    };
    let submitted = client
        .submit(&req)
        .await
        .map_err(|e| anyhow::anyhow!("node refused the transaction: {e}"))?;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let s = client.tx_status(&submitted.hash).await?;
        match (s.included, s.height, s.error) {
            (true, Some(h), Some(e)) => {
                return Err(anyhow::anyhow!(
                    "transaction {} failed in the block at height {h}: {e}",
                    submitted.hash
                ))
            }
            (true, Some(h), None) => return Ok(format!("transaction included at height {h}")),
            _ => {
                // Committed before this node remembered it (it just restarted): the nonce says.
                let a = client.account(&me.to_string()).await?;
                if a.account.nonce > nonce && !s.included {
                    let again = client.tx_status(&submitted.hash).await?;
                    if !again.included {
                        return Ok(format!(
                            "transaction included by height {} (its outcome is not known to this node)",
                            a.height
                        ));
                    }
                }
            }
        }
    }
    Err(anyhow::anyhow!("transaction not included within 15s"))
}

/// The control socket of the systemd unit (`paratime-node.socket`).
pub const SYSTEMD_SOCKET: &str = "/run/paratime-node/internal.sock";

/// The node to ask when `-a` is not given: `$PARATIME_NODE_ADDRESS`, else oasis-node's default
/// (`internal.sock` in the working directory, i.e. run from the data dir), else the systemd
/// unit's socket. Never a node remembered from elsewhere: on a shared machine that could be
/// another person's network.
pub(crate) fn default_address() -> anyhow::Result<String> {
    if let Ok(a) = std::env::var("PARATIME_NODE_ADDRESS") {
        return Ok(a);
    }
    for path in ["internal.sock", SYSTEMD_SOCKET] {
        if std::path::Path::new(path).exists() {
            return Ok(format!("unix:{path}"));
        }
    }
    Err(anyhow::anyhow!(
        "no node to ask: neither ./internal.sock nor {SYSTEMD_SOCKET} exists; give -a \
         unix:PATH (a node's control socket, <data_dir>/internal.sock), run from the node's \
         data dir, or set PARATIME_NODE_ADDRESS"
    ))
}

/// What a genesis document is made of.
pub struct GenesisParams {
    /// Chain name.
    pub chain_id: String,
    /// Blocks per epoch.
    pub epoch_interval: u64,
    /// Milliseconds between blocks.
    pub block_interval_ms: u64,
    /// The validators' consensus keys and the entity whose stake backs each.
    pub validators: Vec<(PublicKey, PublicKey)>,
    /// Entities registered at genesis, with their keys.
    pub entities: Vec<(SigningKey, Entity)>,
    /// Balance of each entity.
    pub balance: u64,
    /// Escrow of each entity.
    pub escrow: u64,
    /// The ParaTime and its committee size.
    pub runtime: Option<(crate::bundle::RuntimeId, u16)>,
    /// Backup workers of the ParaTime's committee.
    pub group_backup_size: u16,
    /// Transactions per ParaTime batch (one batch per round).
    pub max_batch_size: u64,
    /// The ParaTime's versions and their bundles (what nodes configured by id download).
    pub deployments: Vec<crate::consensus::genesis::Deployment>,
    /// How validators spread proposals and votes.
    pub consensus_pubsub: crate::consensus::genesis::ConsensusPubSub,
}

/// A genesis without validators, entities or ParaTimes (10-block epochs of 200 ms), for unit
/// tests.
#[cfg(test)]
pub(crate) fn empty_genesis(chain_id: &str) -> Genesis {
    make_genesis(&GenesisParams {
        chain_id: chain_id.into(),
        epoch_interval: 10,
        block_interval_ms: 200,
        validators: Vec::new(),
        entities: Vec::new(),
        balance: 0,
        escrow: 0,
        runtime: None,
        group_backup_size: 0,
        max_batch_size: 500,
        deployments: Vec::new(),
        consensus_pubsub: Default::default(),
    })
}

/// Builds a genesis document (thresholds: entity 100, node-compute 100, node-validator 0).
pub fn make_genesis(p: &GenesisParams) -> Genesis {
    use crate::consensus::genesis::{
        ExecutorParams, GenesisValidator, RegistryGenesis, RuntimeDescriptor, StakingGenesis,
        Thresholds, TxnSchedulerParams,
    };
    let addrs: Vec<Address> = p
        .entities
        .iter()
        .map(|(_, e)| Address::from_public_key(&e.id))
        .collect();
    Genesis {
        chain_id: p.chain_id.clone(),
        genesis_time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        epoch_interval: p.epoch_interval,
        block_interval_ms: p.block_interval_ms,
        validators: p
            .validators
            .iter()
            .map(|(consensus_id, entity_id)| GenesisValidator {
                consensus_id: *consensus_id,
                entity_id: *entity_id,
            })
            .collect(),
        staking: StakingGenesis {
            thresholds: Thresholds {
                entity: 100,
                node_compute: 100,
                node_validator: 0,
            },
            debonding_interval: 1,
            accounts: addrs.iter().map(|a| (*a, p.balance)).collect(),
            escrow: addrs.iter().map(|a| (*a, p.escrow)).collect(),
        },
        registry: RegistryGenesis {
            max_node_expiration: 2,
            runtimes: p
                .runtime
                .iter()
                .map(|(id, size)| RuntimeDescriptor {
                    id: *id,
                    kind: "compute".into(),
                    executor: ExecutorParams {
                        group_size: (*size).max(1),
                        group_backup_size: p.group_backup_size,
                        allowed_stragglers: 0,
                        round_timeout: 10,
                    },
                    txn_scheduler: TxnSchedulerParams {
                        max_batch_size: p.max_batch_size.max(1),
                        batch_flush_timeout_ms: 100,
                        propose_batch_timeout_ms: 2000,
                    },
                    staking_thresholds: Default::default(),
                    deployments: p.deployments.clone(),
                })
                .collect(),
            entities: p
                .entities
                .iter()
                .map(|(k, e)| Signed::sign(k, crypto::CONTEXT_REGISTER_ENTITY, e))
                .collect(),
        },
        consensus_pubsub: p.consensus_pubsub,
    }
}

fn genesis_init(cmd: GenesisCmd) -> anyhow::Result<String> {
    let GenesisCmd::Init {
        output,
        chain_id,
        validator_datadirs,
        entity_dirs,
        balance,
        escrow,
        bundle,
        group_size,
        epoch_interval,
        block_interval_ms,
        consensus_pubsub,
    } = cmd
    else {
        return Err(anyhow::anyhow!("not an init command"));
    };
    let mut validators = Vec::new();
    for d in &validator_datadirs {
        let id = crate::identity::Identity::load(d, false)
            .map_err(|e| anyhow::anyhow!("--validator-datadir {}: {e}", d.display()))?;
        validators.push(PublicKey::of(id.key(crate::identity::KeyKind::Consensus)));
    }
    let mut entities = Vec::new();
    for d in &entity_dirs {
        let key = entity_key(d, false)?;
        let e = read_entity(d)?;
        if e.id != PublicKey::of(&key) {
            return Err(anyhow::anyhow!(
                "{}: entity.json does not belong to entity.pem",
                d.display()
            ));
        }
        entities.push((key, e));
    }
    // The bundle's version, valid from the first epoch: nodes that configure the runtime by id
    // download exactly this bundle from their registries.
    let (runtime, deployments) = match &bundle {
        Some(b) => {
            let b = crate::bundle::Bundle::open(b, u64::MAX)
                .map_err(|e| anyhow::anyhow!("{}: {e}", b.display()))?;
            (
                Some((b.manifest.id, group_size)),
                vec![crate::consensus::genesis::Deployment {
                    version: b.ronl.version,
                    valid_from: 0,
                    bundle_checksum: crate::consensus::genesis::BundleChecksum(b.manifest.hash()),
                }],
            )
        }
        None => (None, Vec::new()),
    };
    // The validator's voting power comes from the first entity's escrow.
    let validator_entity = entities.first().map(|(_, e)| e.id).ok_or_else(|| {
        anyhow::anyhow!(
            "--entity-dir: give at least one entity; the first one's escrow backs the validator"
        )
    })?;
    let g = make_genesis(&GenesisParams {
        chain_id,
        epoch_interval,
        block_interval_ms,
        validators: validators.iter().map(|v| (*v, validator_entity)).collect(),
        entities,
        balance,
        escrow,
        runtime,
        group_backup_size: group_size,
        max_batch_size: 500,
        deployments,
        consensus_pubsub,
    });
    g.check().map_err(anyhow::Error::msg)?;
    std::fs::write(&output, serde_json::to_vec_pretty(&g)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
    Ok(format!(
        "wrote {} (chain context {})",
        output.display(),
        g.chain_context()
    ))
}

/// `genesis …`.
pub fn genesis(cmd: GenesisCmd) -> i32 {
    match cmd {
        c @ GenesisCmd::Init { .. } => match genesis_init(c) {
            Ok(m) => {
                println!("{m}");
                0
            }
            Err(e) => fail(e),
        },
        GenesisCmd::Check { file } => match crate::consensus::genesis::load(&file) {
            Ok(g) => {
                println!(
                    "{}: ok (chain {}, chain context {})",
                    file.display(),
                    g.chain_id,
                    g.chain_context()
                );
                0
            }
            Err(e) => fail(e),
        },
    }
}

/// `entity …`.
pub fn entity(cmd: EntityCmd) -> i32 {
    let result = match cmd {
        EntityCmd::Init { dir } => (|| {
            identity::ensure_dir(&dir)?;
            if dir.join("entity.json").exists() || dir.join("entity.pem").exists() {
                return Err(anyhow::anyhow!("key already exists: {} (entities are never overwritten)", dir.display()));
            }
            let key = entity_key(&dir, true)?;
            let e = Entity { v: 2, id: PublicKey::of(&key), nodes: Vec::new() };
            write_entity(&dir, &e)?;
            Ok(format!("entity {} (address {})", e.id, Address::from_public_key(&e.id)))
        })(),
        EntityCmd::AddNode { dir, node_id, node_datadir } => (|| {
            let id: PublicKey = match (node_id, node_datadir) {
                (Some(s), _) => s.parse().map_err(anyhow::Error::msg)?,
                (None, Some(d)) => {
                    let id = crate::identity::Identity::load(&d, false)?;
                    id.public_b64(crate::identity::KeyKind::Node)
                        .parse()
                        .map_err(anyhow::Error::msg)?
                }
                (None, None) => return Err(anyhow::anyhow!("give --node-id or --node-datadir")),
            };
            let mut e = read_entity(&dir)?;
            if !e.nodes.contains(&id) {
                e.nodes.push(id);
            }
            write_entity(&dir, &e)?;
            Ok(format!("entity lists node {id}; register it again (`entity register`) for the network to see it"))
        })(),
        EntityCmd::Show { dir } => read_entity(&dir).map(|e| {
            serde_json::to_string_pretty(&serde_json::json!({ "id": e.id, "address": Address::from_public_key(&e.id).to_string(), "nodes": e.nodes })).unwrap_or_default()
        }),
        EntityCmd::Register { dir, address } => (|| {
            let key = entity_key(&dir, false)?;
            let e = read_entity(&dir)?;
            if e.id != PublicKey::of(&key) {
                return Err(anyhow::anyhow!("entity.json does not belong to entity.pem"));
            }
            let signed = Signed::sign(&key, crypto::CONTEXT_REGISTER_ENTITY, &e);
            let body = ciborium::Value::serialized(&signed)?;
            block_on(submit(&address, &key, "registry.RegisterEntity", body))
        })(),
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(e) => fail(e),
    }
}

fn show(v: &serde_json::Value, delegations: bool) -> String {
    let a = &v["account"];
    let balance = a["balance"].as_u64().unwrap_or(0);
    let escrow = a["escrow"].as_u64().unwrap_or(0);
    let delegated: u64 = a["delegations"]
        .as_object()
        .map(|d| d.values().filter_map(|x| x.as_u64()).sum())
        .unwrap_or(0);
    let debonding: u64 = a["debonding"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["amount"].as_u64()).sum())
        .unwrap_or(0);
    let mut out = format!(
        "Address: {}\nNonce: {}\n\n=== CONSENSUS LAYER ({}) ===\n  Total: {} base units\n  Available: {balance} base units\n",
        v["address"].as_str().unwrap_or(""),
        a["nonce"],
        v["chain_id"].as_str().unwrap_or(""),
        balance + delegated + debonding,
    );
    if let Some(d) = a["delegations"]
        .as_object()
        .filter(|d| delegations && !d.is_empty())
    {
        out.push_str("\n  Active Delegations from this Account:\n");
        for (to, amount) in d {
            out.push_str(&format!(
                "    - To:     {to}\n      Amount: {amount} base units\n"
            ));
        }
    }
    if let Some(d) = a["debonding"]
        .as_array()
        .filter(|d| delegations && !d.is_empty())
    {
        out.push_str("\n  Debonding Delegations from this Account:\n");
        for x in d {
            out.push_str(&format!(
                "    - Amount:   {} base units\n      End Time: epoch {}\n",
                x["amount"], x["end_epoch"]
            ));
        }
    }
    if let Some(al) = a["allowances"].as_object().filter(|d| !d.is_empty()) {
        out.push_str("\n  Allowances for this Account:\n");
        for (to, amount) in al {
            out.push_str(&format!(
                "    - Beneficiary: {to}\n      Amount:      {amount} base units\n"
            ));
        }
    }
    out.push_str(&format!(
        "\n  Escrow (stake held by this account):\n    Active: {escrow} base units\n"
    ));
    if let Some(req) = v["required_stake"].as_u64() {
        out.push_str(&format!(
            "    Required by its registrations: {req} base units\n"
        ));
    }
    out
}

/// Signs and submits one account transaction whose body is built from `--to` and `--amount`.
fn account_tx<E: std::fmt::Display>(
    t: &TxArgs,
    method: &str,
    body: impl FnOnce(Address, u64) -> Result<ciborium::Value, E>,
) -> anyhow::Result<String> {
    let to: Address = t.to.parse().map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let key = signer_key(&t.signer)?;
    let body = body(to, t.amount).map_err(|e| anyhow::anyhow!("{e}"))?;
    block_on(submit(&t.address, &key, method, body))
}

/// `account …`.
pub fn account(cmd: AccountCmd) -> i32 {
    let result = match cmd {
        AccountCmd::Show {
            addr,
            show_delegations,
            address,
            json,
        } => (|| {
            let a: Address = addr.parse().map_err(anyhow::Error::msg)?;
            let address = match address {
                Some(x) => x,
                None => default_address()?,
            };
            let v = block_on(account_json(&address, &a))?;
            Ok(if json {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            } else {
                show(&v, show_delegations)
            })
        })(),
        AccountCmd::Transfer(t) => account_tx(&t, "staking.Transfer", |to, amount| {
            ciborium::Value::serialized(&Transfer { to, amount })
        }),
        AccountCmd::Escrow(t) => account_tx(&t, "staking.AddEscrow", |account, amount| {
            ciborium::Value::serialized(&Escrow { account, amount })
        }),
        AccountCmd::Reclaim(t) => account_tx(&t, "staking.ReclaimEscrow", |account, amount| {
            ciborium::Value::serialized(&Escrow { account, amount })
        }),
        AccountCmd::Allow { tx, negative } => {
            account_tx(&tx, "staking.Allow", |beneficiary, amount_change| {
                ciborium::Value::serialized(&Allow {
                    beneficiary,
                    negative,
                    amount_change,
                })
            })
        }
        AccountCmd::Withdraw(t) => account_tx(&t, "staking.Withdraw", |from, amount| {
            ciborium::Value::serialized(&Withdraw { from, amount })
        }),
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(e) => fail(e),
    }
}
