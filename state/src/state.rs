//! The consensus state machine: accounts, registry, scheduler. Deterministic: no clocks, no
//! floats, sorted maps; the state root is the root of the tree of its entries
//! ([`crate::tree`]), maintained block by block from the entries the block changed.
//!
//! Owns the rules (nonces, fees, stake claims, registration checks, elections); never does I/O.

use crate::address::Address;
use crate::chain_time::Epoch;
use crate::crypto::{self, MultiSigned, PublicKey, Signed};
use crate::encoding::{hash_of, Hash};
use crate::genesis::Genesis;
use crate::roothash::{Event as RoothashEvent, ExecutorCommit, RuntimeChain};
use crate::runtime_id::RuntimeId;
use imbl::OrdMap;
use paratime_sdk::Version;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A node's roles (oasis `node.RolesMask`): its bits in CBOR (what is signed and hashed), its
/// role names joined by `,` in JSON and YAML (oasis's `MarshalText`: `"compute,validator"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleMask(pub u32);

/// oasis's role names by bit, in its fixed order (bit 4 is reserved).
const ROLE_NAMES: [(u32, &str); 5] = [
    (1, "compute"),
    (2, "observer"),
    (4, "key-manager"),
    (8, "validator"),
    (32, "storage-rpc"),
];

impl RoleMask {
    /// oasis's text form: names joined by `,`; `""` for none; `[invalid roles]` with reserved bits.
    pub fn to_text(self) -> String {
        let known: u32 = ROLE_NAMES.iter().map(|(b, _)| b).sum();
        if self.0 & !known != 0 {
            return "[invalid roles]".into();
        }
        ROLE_NAMES
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the text form (oasis's `UnmarshalText`: unknown or repeated names are refused).
    pub fn from_text(s: &str) -> Result<Self, String> {
        let mut m = 0u32;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some((bit, _)) = ROLE_NAMES.iter().find(|(_, n)| *n == name) else {
                return Err(format!("unknown role '{name}'"));
            };
            if m & bit != 0 {
                return Err(format!("role '{name}' is listed twice"));
            }
            m |= bit;
        }
        Ok(Self(m))
    }
}

impl Serialize for RoleMask {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_text())
        } else {
            s.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for RoleMask {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Bits(u32),
            Text(String),
        }
        if d.is_human_readable() {
            match Form::deserialize(d)? {
                Form::Bits(b) => Ok(Self(b)),
                Form::Text(t) => Self::from_text(&t).map_err(serde::de::Error::custom),
            }
        } else {
            u32::deserialize(d).map(Self)
        }
    }
}

impl RoleMask {
    /// No role.
    pub const NONE: Self = Self(0);
    /// A compute node.
    pub const COMPUTE: Self = Self(1);
    /// A validator.
    pub const VALIDATOR: Self = Self(8);

    /// Whether every role of `other` is in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether no role is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether roles other than the known ones are set.
    pub fn has_unknown(self) -> bool {
        self.0 & !(Self::COMPUTE.0 | Self::VALIDATOR.0) != 0
    }
}

impl std::ops::BitOr for RoleMask {
    type Output = Self;
    fn bitor(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for RoleMask {
    fn bitor_assign(&mut self, o: Self) {
        self.0 |= o.0;
    }
}

impl std::fmt::Display for RoleMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A node's role in an executor committee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Executes every round.
    #[serde(rename = "worker")]
    Worker,
    /// Executes during discrepancy resolution.
    #[serde(rename = "backup-worker")]
    BackupWorker,
}

/// A committee's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CommitteeKind {
    /// The executor committee of a runtime.
    #[serde(rename = "executor")]
    Executor,
}

/// A reclaimed escrow on its way back to the general balance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debonding {
    /// Amount.
    pub amount: u64,
    /// Epoch at which it returns to the balance.
    pub end_epoch: Epoch,
}

/// A staking account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// General balance.
    pub balance: u64,
    /// Next transaction nonce.
    pub nonce: u64,
    /// Active escrow (stake) held by this account.
    pub escrow: u64,
    /// Delegations this account made: escrow account → amount.
    pub delegations: BTreeMap<Address, u64>,
    /// Debonding amounts owed to this account.
    pub debonding: Vec<Debonding>,
    /// Allowances this account granted: beneficiary → amount it may still withdraw
    /// (`staking.Allow`, `staking.Withdraw`). Absent from the encoding while empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allowances: BTreeMap<Address, u64>,
}

/// Most allowances one account may grant (oasis's `max_allowances` parameter).
pub const MAX_ALLOWANCES: usize = 16;

/// An entity descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// Descriptor version (2).
    pub v: u16,
    /// Entity public key.
    pub id: PublicKey,
    /// Node IDs the entity vouches for.
    #[serde(default)]
    pub nodes: Vec<PublicKey>,
}

/// The node's p2p identity and addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct P2pInfo {
    /// p2p public key.
    pub id: PublicKey,
    /// `IP:port` addresses.
    pub addresses: Vec<String>,
}

/// The node's consensus identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusInfo {
    /// Consensus public key.
    pub id: PublicKey,
    /// Addresses (validators only).
    pub addresses: Vec<String>,
}

/// A runtime a node serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRuntime {
    /// Runtime ID.
    pub id: RuntimeId,
    /// Version hosted.
    pub version: Version,
}

/// A node descriptor (oasis v3 shape, with the keys this node has).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDescriptor {
    /// Version (3).
    pub v: u16,
    /// Node ID.
    pub id: PublicKey,
    /// Owning entity.
    pub entity_id: PublicKey,
    /// Last epoch the registration is valid for.
    pub expiration: Epoch,
    /// libp2p.
    pub p2p: P2pInfo,
    /// Consensus.
    pub consensus: ConsensusInfo,
    /// Runtimes served.
    pub runtimes: Vec<NodeRuntime>,
    /// Role bits.
    pub roles: RoleMask,
    /// Software version.
    pub software_version: String,
}

/// A committee member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeMember {
    /// Worker or backup worker.
    pub role: Role,
    /// Node ID.
    pub public_key: PublicKey,
}

/// An executor committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committee {
    /// Always executor.
    pub kind: CommitteeKind,
    /// Workers first, then backups.
    pub members: Vec<CommitteeMember>,
    /// Runtime.
    pub runtime_id: RuntimeId,
    /// Epoch it serves.
    pub valid_for: Epoch,
}

/// A consensus transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Signer's account nonce.
    pub nonce: u64,
    /// Fee.
    pub fee: Fee,
    /// Method (`staking.Transfer`, `registry.RegisterNode`, …).
    pub method: String,
    /// Method body.
    pub body: ciborium::Value,
}

/// A transaction fee.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fee {
    /// Amount paid.
    pub amount: u64,
    /// Gas limit.
    pub gas: u64,
}

/// `staking.Transfer` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Recipient.
    pub to: Address,
    /// Amount.
    pub amount: u64,
}

/// `staking.Allow` body: change the allowance the signer grants `beneficiary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allow {
    /// Who may withdraw from the signer's account.
    pub beneficiary: Address,
    /// Lower the allowance by `amount_change` (down to 0) instead of raising it.
    #[serde(default)]
    pub negative: bool,
    /// The change.
    pub amount_change: u64,
}

/// `staking.Withdraw` body: move `amount` from `from`'s balance to the signer's, within the
/// allowance `from` granted the signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdraw {
    /// The account that granted the allowance.
    pub from: Address,
    /// Amount.
    pub amount: u64,
}

/// `staking.AddEscrow` / `staking.ReclaimEscrow` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escrow {
    /// The escrow account (e.g. the entity).
    pub account: Address,
    /// Amount.
    pub amount: u64,
}

/// Why a transaction was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{module}: {message}")]
pub struct TxError {
    /// Module (`staking`, `registry`, `consensus`).
    pub module: String,
    /// Code.
    pub code: u32,
    /// Message.
    pub message: String,
}

fn err(module: &str, code: u32, message: impl Into<String>) -> TxError {
    TxError {
        module: module.into(),
        code,
        message: message.into(),
    }
}

/// The whole consensus state. Its large maps are persistent (cloning shares them), so a copy
/// for a proposal, a verification or a transaction's rollback costs little whatever the size.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Last applied block height (0 = genesis).
    pub height: crate::Height,
    /// Current epoch.
    pub epoch: Epoch,
    /// Hash of the last applied block (zero at genesis).
    pub last_block_hash: Hash,
    /// Accounts.
    pub accounts: OrdMap<Address, Account>,
    /// Registered entities.
    pub entities: OrdMap<PublicKey, Entity>,
    /// Registered nodes.
    pub nodes: OrdMap<PublicKey, NodeDescriptor>,
    /// Executor committees of the current epoch.
    pub committees: BTreeMap<RuntimeId, Committee>,
    /// Validators of the current epoch (they vote on the next block).
    pub validators: crate::validators::ValidatorSet,
    /// Parameters.
    pub genesis: Arc<Genesis>,
    /// Chain context (hex).
    pub chain_context: String,
    /// Each ParaTime's runtime block chain and open round.
    pub roothash: BTreeMap<RuntimeId, RuntimeChain>,
    /// What the roothash did in the block being applied (not part of the state root).
    pub events: Vec<RoothashEvent>,
    /// The tree of the entries as of the last block (its root is the state root).
    pub tree: crate::tree::StateTree,
    /// The entries the last block changed (what a store writes).
    pub changes: Arc<Vec<crate::tree::Entry>>,
}

impl State {
    /// The state at genesis.
    pub fn from_genesis(genesis: &Genesis) -> Self {
        let mut accounts: OrdMap<Address, Account> = OrdMap::new();
        for (a, b) in &genesis.staking.accounts {
            accounts.entry(*a).or_default().balance = *b;
        }
        for (a, e) in &genesis.staking.escrow {
            let acct = accounts.entry(*a).or_default();
            acct.escrow = *e;
            acct.delegations.insert(*a, *e);
        }
        let entities = genesis
            .registry
            .entities
            .iter()
            .filter_map(|s| s.open::<Entity>(crypto::CONTEXT_REGISTER_ENTITY).ok())
            .map(|e| (e.id, e))
            .collect();
        let mut s = Self {
            accounts,
            entities,
            chain_context: genesis.chain_context(),
            roothash: genesis
                .registry
                .runtimes
                .iter()
                .map(|r| (r.id, RuntimeChain::genesis(r.id)))
                .collect(),
            ..Self::empty(genesis)
        };
        s.tree
            .apply(0, &crate::tree::entries(&s))
            .expect("a genesis state has valid keys and values");
        s
    }

    /// A state with `genesis`'s parameters and validators and nothing else (no entries, no
    /// tree): what a stored state's entries are loaded into.
    pub(crate) fn empty(genesis: &Genesis) -> Self {
        Self {
            height: crate::Height(0),
            epoch: Epoch(0),
            last_block_hash: [0u8; 32],
            accounts: OrdMap::new(),
            entities: OrdMap::new(),
            nodes: OrdMap::new(),
            committees: BTreeMap::new(),
            validators: crate::validators::ValidatorSet::from_genesis(genesis),
            chain_context: String::new(),
            genesis: Arc::new(genesis.clone()),
            roothash: BTreeMap::new(),
            events: Vec::new(),
            tree: crate::tree::StateTree::default(),
            changes: Arc::default(),
        }
    }

    /// The root of the state's tree as of the last block.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// Ends a block that started from `before`: the entries it changed go into the tree (only
    /// their paths are rehashed) and are kept for the store.
    pub fn commit_changes(&mut self, before: &Self) {
        let changes = crate::tree::changes(before, self);
        self.tree
            .apply(self.height.0, &changes)
            .expect("state entries have bounded keys and values");
        self.changes = Arc::new(changes);
    }

    /// An account (default when absent).
    pub fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).cloned().unwrap_or_default()
    }

    /// The stake an entity must hold for its registrations, with `extra` as one more node.
    pub fn required_stake(&self, entity: &PublicKey, extra: Option<&NodeDescriptor>) -> u64 {
        // Saturating: a requirement that does not fit in a u64 cannot be met, which is the
        // right answer.
        let t = &self.genesis.staking.thresholds;
        let mut total = t.entity;
        let nodes = self
            .nodes
            .values()
            .filter(|n| &n.entity_id == entity && extra.is_none_or(|e| e.id != n.id))
            .chain(extra);
        for n in nodes {
            if n.roles.contains(RoleMask::VALIDATOR) {
                total = total.saturating_add(t.node_validator);
            }
            if n.roles.contains(RoleMask::COMPUTE) {
                for rt in &n.runtimes {
                    let extra = self
                        .genesis
                        .registry
                        .runtimes
                        .iter()
                        .find(|r| r.id == rt.id)
                        .map_or(0, |r| r.staking_thresholds.node_compute);
                    total = total.saturating_add(t.node_compute).saturating_add(extra);
                }
            }
        }
        total
    }

    /// Stake held by an entity (its escrow account).
    pub fn stake_of(&self, entity: &PublicKey) -> u64 {
        self.account(&Address::from_public_key(entity)).escrow
    }

    /// Checks and applies one signed transaction. The nonce and fee are consumed even when the
    /// body fails; the body's own changes are all-or-nothing.
    pub fn apply_tx(&mut self, signed: &Signed) -> Result<(), TxError> {
        let ctx = crypto::context(crypto::CONTEXT_TX, Some(&self.chain_context));
        let tx: Transaction = signed
            .open(&ctx)
            .map_err(|e| err("consensus", 1, e.to_string()))?;
        let signer = signed.signature.public_key;
        let addr = Address::from_public_key(&signer);
        let acct = self.account(&addr);
        if tx.nonce != acct.nonce {
            return Err(err(
                "consensus",
                2,
                format!(
                    "invalid nonce (expected: {}, got: {})",
                    acct.nonce, tx.nonce
                ),
            ));
        }
        if acct.balance < tx.fee.amount {
            return Err(err(
                "staking",
                5,
                format!(
                    "insufficient balance to pay the fee of {} (balance: {})",
                    tx.fee.amount, acct.balance
                ),
            ));
        }
        let Some(next_nonce) = acct.nonce.checked_add(1) else {
            return Err(err("consensus", 2, "nonce exhausted"));
        };
        {
            let a = self.accounts.entry(addr).or_default();
            a.nonce = next_nonce;
            a.balance = acct.balance - tx.fee.amount; // checked above
        }
        let before = self.clone();
        let result = self.apply_body(&signer, &addr, &tx);
        if result.is_err() {
            *self = before;
        }
        result
    }

    fn body<T: serde::de::DeserializeOwned>(tx: &Transaction) -> Result<T, TxError> {
        tx.body.deserialized().map_err(|e| {
            err(
                "consensus",
                3,
                format!("malformed body of {}: {e}", tx.method),
            )
        })
    }

    /// Takes `amount` from `addr`'s general balance, or refuses with both figures.
    fn debit(&mut self, addr: &Address, amount: u64) -> Result<(), TxError> {
        let from = self.accounts.entry(*addr).or_default();
        if from.balance < amount {
            return Err(err(
                "staking",
                5,
                format!(
                    "insufficient balance (balance: {}, amount: {amount})",
                    from.balance
                ),
            ));
        }
        from.balance -= amount; // checked above
        Ok(())
    }

    /// Adds `amount` to a counter; overflow is a transaction error, never a wrap or a panic.
    fn credit(to: &mut u64, amount: u64, what: &str) -> Result<(), TxError> {
        *to = to
            .checked_add(amount)
            .ok_or_else(|| err("staking", 7, format!("{what} would overflow")))?;
        Ok(())
    }

    /// Takes `amount` from a counter that must hold it.
    fn take(from: &mut u64, amount: u64, what: &str) -> Result<(), TxError> {
        *from = from
            .checked_sub(amount)
            .ok_or_else(|| err("staking", 6, format!("{what} is smaller than {amount}")))?;
        Ok(())
    }

    fn apply_body(
        &mut self,
        signer: &PublicKey,
        addr: &Address,
        tx: &Transaction,
    ) -> Result<(), TxError> {
        match tx.method.as_str() {
            "staking.Transfer" => {
                let t: Transfer = Self::body(tx)?;
                self.debit(addr, t.amount)?;
                Self::credit(
                    &mut self.accounts.entry(t.to).or_default().balance,
                    t.amount,
                    "recipient balance",
                )?;
                Ok(())
            }
            "staking.Allow" => {
                let a: Allow = Self::body(tx)?;
                if a.beneficiary == *addr {
                    return Err(err(
                        "staking",
                        1,
                        "invalid argument: an account cannot grant itself an allowance",
                    ));
                }
                let acct = self.accounts.entry(*addr).or_default();
                let current = acct.allowances.get(&a.beneficiary).copied().unwrap_or(0);
                let next = if a.negative {
                    current.saturating_sub(a.amount_change)
                } else {
                    current
                        .checked_add(a.amount_change)
                        .ok_or_else(|| err("staking", 7, "allowance would overflow"))?
                };
                if next == 0 {
                    acct.allowances.remove(&a.beneficiary);
                } else {
                    if current == 0 && acct.allowances.len() >= MAX_ALLOWANCES {
                        return Err(err(
                            "staking",
                            13,
                            format!("too many allowances (at most {MAX_ALLOWANCES})"),
                        ));
                    }
                    acct.allowances.insert(a.beneficiary, next);
                }
                Ok(())
            }
            "staking.Withdraw" => {
                let w: Withdraw = Self::body(tx)?;
                if w.from == *addr {
                    return Err(err(
                        "staking",
                        1,
                        "invalid argument: withdrawing from the signer's own account",
                    ));
                }
                let allowed = self
                    .account(&w.from)
                    .allowances
                    .get(addr)
                    .copied()
                    .unwrap_or(0);
                if allowed < w.amount {
                    return Err(err(
                        "staking",
                        8,
                        format!(
                            "forbidden: insufficient allowance (allowance: {allowed}, amount: {})",
                            w.amount
                        ),
                    ));
                }
                self.debit(&w.from, w.amount)?;
                let from = self.accounts.entry(w.from).or_default();
                if allowed == w.amount {
                    from.allowances.remove(addr);
                } else {
                    from.allowances.insert(*addr, allowed - w.amount); // checked above
                }
                Self::credit(
                    &mut self.accounts.entry(*addr).or_default().balance,
                    w.amount,
                    "balance",
                )?;
                Ok(())
            }
            "staking.AddEscrow" => {
                let e: Escrow = Self::body(tx)?;
                self.debit(addr, e.amount)?;
                let from = self.accounts.entry(*addr).or_default();
                Self::credit(
                    from.delegations.entry(e.account).or_default(),
                    e.amount,
                    "delegation",
                )?;
                Self::credit(
                    &mut self.accounts.entry(e.account).or_default().escrow,
                    e.amount,
                    "escrow",
                )?;
                Ok(())
            }
            "staking.ReclaimEscrow" => {
                let e: Escrow = Self::body(tx)?;
                let delegated = self
                    .account(addr)
                    .delegations
                    .get(&e.account)
                    .copied()
                    .unwrap_or(0);
                if delegated < e.amount {
                    return Err(err(
                        "staking",
                        6,
                        format!(
                            "insufficient delegation (delegated: {delegated}, amount: {})",
                            e.amount
                        ),
                    ));
                }
                let end_epoch = self
                    .epoch
                    .saturating_add(self.genesis.staking.debonding_interval);
                let from = self.accounts.entry(*addr).or_default();
                Self::take(
                    from.delegations.entry(e.account).or_default(),
                    e.amount,
                    "delegation",
                )?;
                if from.delegations.get(&e.account) == Some(&0) {
                    from.delegations.remove(&e.account);
                }
                from.debonding.push(crate::state::Debonding {
                    amount: e.amount,
                    end_epoch,
                });
                let target = self.accounts.entry(e.account).or_default();
                Self::take(&mut target.escrow, e.amount, "escrow")?;
                // Reclaiming must not leave registered nodes without stake.
                if let Some(entity) = self
                    .entities
                    .values()
                    .find(|en| Address::from_public_key(&en.id) == e.account)
                    .map(|en| en.id)
                {
                    let required = self.required_stake(&entity, None);
                    let have = self.stake_of(&entity);
                    if have < required {
                        return Err(err("staking", 4, format!("insufficient stake: reclaiming would leave {have} of the required {required}")));
                    }
                }
                Ok(())
            }
            "registry.RegisterEntity" => {
                let s: Signed = Self::body(tx)?;
                let entity: Entity = s
                    .open(crypto::CONTEXT_REGISTER_ENTITY)
                    .map_err(|e| err("registry", 1, e.to_string()))?;
                if s.signature.public_key != entity.id || &entity.id != signer {
                    return Err(err(
                        "registry",
                        2,
                        "entity descriptor must be signed by the entity and submitted by it",
                    ));
                }
                let required = self.required_stake(&entity.id, None);
                let have = self.stake_of(&entity.id);
                if have < required {
                    return Err(err(
                        "staking",
                        4,
                        format!("insufficient stake (required: {required}, available: {have})"),
                    ));
                }
                self.entities.insert(entity.id, entity);
                Ok(())
            }
            "registry.RegisterNode" => {
                let m: MultiSigned = Self::body(tx)?;
                let node = self.check_node(&m, signer)?;
                self.nodes.insert(node.id, node);
                Ok(())
            }
            "roothash.ExecutorCommit" => {
                let c: ExecutorCommit = Self::body(tx)?;
                self.executor_commit(&c)
            }
            "registry.DeregisterNode" => match self.nodes.remove(signer) {
                Some(_) => Ok(()),
                None => Err(err("registry", 9, "node not registered")),
            },
            other => Err(err("consensus", 4, format!("unknown method '{other}'"))),
        }
    }

    fn check_node(&self, m: &MultiSigned, signer: &PublicKey) -> Result<NodeDescriptor, TxError> {
        let (node, signers): (NodeDescriptor, Vec<PublicKey>) = m
            .open(crypto::CONTEXT_REGISTER_NODE)
            .map_err(|e| err("registry", 1, e.to_string()))?;
        let mut want = vec![node.id, node.p2p.id, node.consensus.id];
        want.sort();
        let mut got = signers.clone();
        got.sort();
        want.dedup();
        if want.len() != 3 {
            return Err(err(
                "registry",
                3,
                "node, P2P and consensus keys must differ",
            ));
        }
        if got != want {
            return Err(err(
                "registry",
                1,
                "node descriptor must be signed by exactly its node, P2P and consensus keys",
            ));
        }
        if &node.id != signer {
            return Err(err(
                "registry",
                2,
                "a node registers itself: the transaction must be signed by the node key",
            ));
        }
        let entity = self.entities.get(&node.entity_id).ok_or_else(|| {
            err(
                "registry",
                5,
                format!("entity {} does not exist", node.entity_id),
            )
        })?;
        if !entity.nodes.contains(&node.id) {
            return Err(err(
                "registry",
                6,
                format!("entity {} does not list node {}", node.entity_id, node.id),
            ));
        }
        if node.expiration <= self.epoch
            || node.expiration
                > self
                    .epoch
                    .saturating_add(self.genesis.registry.max_node_expiration)
        {
            return Err(err(
                "registry",
                7,
                format!(
                    "invalid expiration {} (current epoch {}, at most {} ahead)",
                    node.expiration, self.epoch, self.genesis.registry.max_node_expiration
                ),
            ));
        }
        if node.roles.is_empty() || node.roles.has_unknown() {
            return Err(err("registry", 8, format!("invalid roles {}", node.roles)));
        }
        if node.roles.contains(RoleMask::VALIDATOR) && node.consensus.addresses.is_empty() {
            return Err(err(
                "registry",
                8,
                "a validator must have a consensus address",
            ));
        }
        if node.roles.contains(RoleMask::COMPUTE) {
            if node.runtimes.is_empty() {
                return Err(err(
                    "registry",
                    8,
                    "a compute node must list at least one runtime",
                ));
            }
            if node.p2p.addresses.is_empty() {
                return Err(err("registry", 8, "a compute node must have a P2P address"));
            }
        }
        for rt in &node.runtimes {
            if !self.genesis.registry.runtimes.iter().any(|r| r.id == rt.id) {
                return Err(err(
                    "registry",
                    8,
                    format!("runtime {} is not registered", rt.id),
                ));
            }
        }
        let clash = self.nodes.values().any(|n| {
            n.id != node.id && (n.p2p.id == node.p2p.id || n.consensus.id == node.consensus.id)
        });
        if clash {
            return Err(err(
                "registry",
                3,
                "P2P or consensus key already used by another node",
            ));
        }
        let required = self.required_stake(&node.entity_id, Some(&node));
        let have = self.stake_of(&node.entity_id);
        if have < required {
            return Err(err(
                "staking",
                4,
                format!("insufficient stake (required: {required}, available: {have})"),
            ));
        }
        Ok(node)
    }

    /// Starts block `height`: at epoch boundaries expires nodes, returns matured debonding and
    /// elects committees.
    pub fn begin_block(&mut self, height: crate::Height) {
        self.events.clear();
        self.roothash_timeouts(height);
        let interval = self.genesis.epoch_interval;
        let h = height.0;
        if h == 0 || !h.is_multiple_of(interval) {
            return;
        }
        self.epoch = Epoch(h / interval);
        let epoch = self.epoch;
        let expired: Vec<PublicKey> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.expiration < epoch)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.nodes.remove(&id);
        }
        // Only the accounts with matured debonding are changed (a change copies its path).
        let matured: Vec<Address> = self
            .accounts
            .iter()
            .filter(|(_, a)| a.debonding.iter().any(|d| d.end_epoch <= epoch))
            .map(|(a, _)| *a)
            .collect();
        for addr in matured {
            let Some(acct) = self.accounts.get_mut(&addr) else {
                continue;
            };
            // Saturating is exact here: every amount is part of the total supply, which fits in
            // a u64 (checked at genesis).
            let matured = acct
                .debonding
                .iter()
                .filter(|d| d.end_epoch <= epoch)
                .fold(0u64, |sum, d| sum.saturating_add(d.amount));
            acct.debonding.retain(|d| d.end_epoch > epoch);
            acct.balance = acct.balance.saturating_add(matured);
        }
        let previous = std::mem::take(&mut self.committees);
        if let Some(set) = crate::validators::ValidatorSet::elect(self) {
            self.validators = set;
        }
        self.elect();
        self.roothash_epoch(height, &previous);
    }

    /// Deterministic executor committee election for the current epoch.
    fn elect(&mut self) {
        self.committees.clear();
        for rt in self.genesis.registry.runtimes.clone() {
            let mut eligible: Vec<(Hash, PublicKey)> = self
                .nodes
                .values()
                .filter(|n| {
                    n.roles.contains(RoleMask::COMPUTE) && n.runtimes.iter().any(|r| r.id == rt.id)
                })
                .filter(|n| self.stake_of(&n.entity_id) >= self.required_stake(&n.entity_id, None))
                .map(|n| {
                    (
                        hash_of(&(self.last_block_hash, self.epoch, rt.id.0, n.id)),
                        n.id,
                    )
                })
                .collect();
            let size = usize::from(rt.executor.group_size);
            if eligible.len() < size {
                continue;
            }
            eligible.sort();
            let mut members: Vec<CommitteeMember> = eligible
                .iter()
                .take(size)
                .map(|(_, id)| CommitteeMember {
                    role: Role::Worker,
                    public_key: *id,
                })
                .collect();
            // Backups come from their own shuffle of all eligible nodes: a node may be both a
            // worker and a backup worker (oasis `Backup-Worker` context).
            let backups = usize::from(rt.executor.group_backup_size);
            let mut backup_order: Vec<(Hash, PublicKey)> = eligible
                .iter()
                .map(|(_, id)| {
                    (
                        hash_of(&(self.last_block_hash, self.epoch, rt.id.0, *id, "backup")),
                        *id,
                    )
                })
                .collect();
            backup_order.sort();
            members.extend(
                backup_order
                    .iter()
                    .take(backups)
                    .map(|(_, id)| CommitteeMember {
                        role: Role::BackupWorker,
                        public_key: *id,
                    }),
            );
            self.committees.insert(
                rt.id,
                Committee {
                    kind: CommitteeKind::Executor,
                    members,
                    runtime_id: rt.id,
                    valid_for: self.epoch,
                },
            );
        }
    }

    /// Roles of `node` in `runtime`'s committee, and its scheduler rank for `round`.
    pub fn committee_roles(
        &self,
        runtime: &RuntimeId,
        node: &PublicKey,
    ) -> (Vec<Role>, Option<u64>) {
        let Some(c) = self.committees.get(runtime) else {
            return (Vec::new(), None);
        };
        let roles: Vec<Role> = c
            .members
            .iter()
            .filter(|m| &m.public_key == node)
            .map(|m| m.role)
            .collect();
        let workers = crate::roothash::workers(c);
        let round = self
            .roothash
            .get(runtime)
            .map_or(crate::Round(1), |r| r.block.round.next());
        let rank = workers
            .iter()
            .position(|m| m == node)
            .map(|i| crate::roothash::rank_of(i, workers.len(), round));
        (roles, rank)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::genesis::{
        ExecutorParams, RegistryGenesis, RuntimeDescriptor, StakingGenesis, TxnSchedulerParams,
    };

    /// A genesis with runtime `…01` and the given committee sizes.
    pub(crate) fn genesis(group_size: u16, group_backup_size: u16) -> Genesis {
        Genesis {
            chain_id: "test".into(),
            genesis_time: "2026-01-01T00:00:00Z".into(),
            epoch_interval: 5,
            block_interval_ms: 100,
            validators: vec![crate::genesis::GenesisValidator {
                consensus_id: PublicKey([9; 32]),
                entity_id: PublicKey([9; 32]),
            }],
            staking: StakingGenesis {
                thresholds: Default::default(),
                debonding_interval: 1,
                accounts: BTreeMap::new(),
                escrow: BTreeMap::new(),
            },
            registry: RegistryGenesis {
                max_node_expiration: 2,
                runtimes: vec![RuntimeDescriptor {
                    id: "0000000000000000000000000000000000000000000000000000000000000001"
                        .parse()
                        .expect("rid"),
                    kind: "compute".into(),
                    executor: ExecutorParams {
                        group_size,
                        group_backup_size,
                        allowed_stragglers: 0,
                        round_timeout: 5,
                    },
                    txn_scheduler: TxnSchedulerParams {
                        max_batch_size: 10,
                        batch_flush_timeout_ms: 100,
                        propose_batch_timeout_ms: 2000,
                    },
                    staking_thresholds: Default::default(),
                    deployments: Vec::new(),
                }],
                entities: Vec::new(),
            },
            consensus_pubsub: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_names_in_json_and_bits_in_cbor_as_in_oasis() {
        let m = RoleMask::COMPUTE | RoleMask::VALIDATOR;
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#""compute,validator""#
        );
        assert_eq!(
            serde_json::to_string(&RoleMask::NONE).expect("json"),
            r#""""#
        );
        assert_eq!(RoleMask(16).to_text(), "[invalid roles]");
        assert_eq!(
            RoleMask(1 | 2 | 4 | 8 | 32).to_text(),
            "compute,observer,key-manager,validator,storage-rpc"
        );
        assert_eq!(crate::encoding::canonical_cbor(&m), vec![0x09]);
        let back: RoleMask = crate::encoding::from_cbor(&[0x09]).expect("cbor");
        assert_eq!(back, m);
        let j: RoleMask = serde_json::from_str(r#""validator,compute""#).expect("text");
        assert_eq!(j, m);
        let j: RoleMask = serde_json::from_str("9").expect("bits");
        assert_eq!(j, m);
        for bad in [r#""compute,compute""#, r#""storage""#] {
            assert!(serde_json::from_str::<RoleMask>(bad).is_err(), "{bad}");
        }
    }
    use ed25519_dalek::SigningKey;

    pub(crate) fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn rid() -> RuntimeId {
        "0000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("rid")
    }

    fn genesis(entity_escrow: u64) -> Genesis {
        let ea = Address::from_public_key(&PublicKey::of(&key(1)));
        let mut g = super::tests_support::genesis(1, 0);
        g.validators[0].consensus_id = PublicKey::of(&key(9));
        g.staking.thresholds = crate::genesis::Thresholds {
            entity: 100,
            node_compute: 100,
            node_validator: 0,
        };
        g.staking.accounts = [(ea, 1000)].into_iter().collect();
        g.staking.escrow = [(ea, entity_escrow)].into_iter().collect();
        g
    }

    fn tx(s: &State, k: &SigningKey, nonce: u64, method: &str, body: impl Serialize) -> Signed {
        let t = Transaction {
            nonce,
            fee: Fee::default(),
            method: method.into(),
            body: ciborium::Value::serialized(&body).expect("body"),
        };
        Signed::sign(
            k,
            &crypto::context(crypto::CONTEXT_TX, Some(&s.chain_context)),
            &t,
        )
    }

    fn node_desc(expiration: u64) -> NodeDescriptor {
        NodeDescriptor {
            v: 3,
            id: PublicKey::of(&key(2)),
            entity_id: PublicKey::of(&key(1)),
            expiration: Epoch(expiration),
            p2p: P2pInfo {
                id: PublicKey::of(&key(3)),
                addresses: vec!["127.0.0.1:9200".into()],
            },
            consensus: ConsensusInfo {
                id: PublicKey::of(&key(4)),
                addresses: vec![],
            },
            runtimes: vec![NodeRuntime {
                id: rid(),
                version: Version::new(0, 1, 0),
            }],
            roles: RoleMask::COMPUTE,
            software_version: "test".into(),
        }
    }

    fn register(s: &mut State, escrow_ok: bool) -> Result<(), TxError> {
        let entity = Entity {
            v: 2,
            id: PublicKey::of(&key(1)),
            nodes: vec![PublicKey::of(&key(2))],
        };
        let signed_entity = Signed::sign(&key(1), crypto::CONTEXT_REGISTER_ENTITY, &entity);
        s.apply_tx(&tx(
            s,
            &key(1),
            0,
            "registry.RegisterEntity",
            &signed_entity,
        ))?;
        let _ = escrow_ok;
        let m = MultiSigned::sign(
            &[&key(2), &key(3), &key(4)],
            crypto::CONTEXT_REGISTER_NODE,
            &node_desc(2),
        );
        s.apply_tx(&tx(s, &key(2), 0, "registry.RegisterNode", &m))
    }

    #[test]
    fn registered_staked_node_is_elected() {
        let mut s = State::from_genesis(&genesis(200));
        register(&mut s, true).expect("register");
        s.begin_block(crate::Height(5));
        let (roles, rank) = s.committee_roles(&rid(), &PublicKey::of(&key(2)));
        assert_eq!(roles, vec![Role::Worker]);
        assert_eq!(rank, Some(0));
    }

    #[test]
    fn a_registered_validator_is_elected_into_the_next_epochs_set() {
        let mut s = State::from_genesis(&genesis(200));
        let genesis_set = s.validators.clone();
        register(&mut s, true).expect("entity and compute node");
        let mut desc = node_desc(2);
        desc.roles = RoleMask::VALIDATOR;
        desc.runtimes.clear();
        // A validator without a consensus address cannot be dialled: refused.
        let m = MultiSigned::sign(
            &[&key(2), &key(3), &key(4)],
            crypto::CONTEXT_REGISTER_NODE,
            &desc,
        );
        let e = s
            .apply_tx(&tx(&s, &key(2), 1, "registry.RegisterNode", &m))
            .expect_err("no address");
        assert!(e.message.contains("consensus address"), "{e}");
        desc.consensus.addresses = vec!["AAAA@127.0.0.1:26656".into()];
        let m = MultiSigned::sign(
            &[&key(2), &key(3), &key(4)],
            crypto::CONTEXT_REGISTER_NODE,
            &desc,
        );
        s.apply_tx(&tx(&s, &key(2), 2, "registry.RegisterNode", &m))
            .expect("validator registration");
        // Until the epoch ends the genesis set stays; then the set is elected from the
        // registrations, with power from the entity's escrow.
        assert_eq!(s.validators, genesis_set);
        s.begin_block(crate::Height(5));
        assert_eq!(s.validators.validators.len(), 1);
        let v = &s.validators.validators[0];
        assert_eq!(v.consensus_id, PublicKey::of(&key(4)));
        assert_eq!(v.node_id, Some(PublicKey::of(&key(2))));
        assert!(v.voting_power > 0);
        // Its registration expires (epoch 2 is the last): the set stays as it was rather
        // than becoming empty.
        s.begin_block(crate::Height(15));
        assert!(!s.nodes.contains_key(&PublicKey::of(&key(2))));
        assert_eq!(s.validators.validators.len(), 1);
        // Why a node is not (or no longer) elected, in one line.
        let why = crate::validators::ValidatorSet::why_not_elected(&s, &PublicKey::of(&key(4)));
        assert!(
            why.contains("registration expired") && why.contains("2 epochs"),
            "{why}"
        );
    }

    #[test]
    fn why_a_node_is_not_elected_names_the_rule_it_fails() {
        use crate::validators::ValidatorSet;
        let mut s = State::from_genesis(&genesis(200));
        register(&mut s, true).expect("entity and compute node");
        let why = ValidatorSet::why_not_elected(&s, &PublicKey::of(&key(4)));
        assert!(why.contains("without the validator role"), "{why}");
        let mut desc = node_desc(2);
        desc.roles = RoleMask::VALIDATOR;
        desc.runtimes.clear();
        desc.consensus.addresses = vec!["AAAA@127.0.0.1:26656".into()];
        let m = MultiSigned::sign(
            &[&key(2), &key(3), &key(4)],
            crypto::CONTEXT_REGISTER_NODE,
            &desc,
        );
        s.apply_tx(&tx(&s, &key(2), 1, "registry.RegisterNode", &m))
            .expect("validator registration");
        let why = ValidatorSet::why_not_elected(&s, &PublicKey::of(&key(4)));
        assert!(why.contains("qualifies"), "{why}");
        // The entity's escrow falls below what its nodes require.
        let ea = Address::from_public_key(&PublicKey::of(&key(1)));
        let mut a = s.account(&ea);
        a.escrow = 50;
        s.accounts.insert(ea, a);
        let why = ValidatorSet::why_not_elected(&s, &PublicKey::of(&key(4)));
        assert!(why.contains("50 in escrow, below the 100"), "{why}");
        let why = ValidatorSet::why_not_elected(&s, &PublicKey::of(&key(7)));
        assert!(why.contains("no registered node"), "{why}");
    }

    #[test]
    fn insufficient_stake_names_amounts() {
        let mut s = State::from_genesis(&genesis(150));
        let e = register(&mut s, false).expect_err("under-staked");
        assert_eq!(
            e.to_string(),
            "staking: insufficient stake (required: 200, available: 150)"
        );
        s.begin_block(crate::Height(5));
        assert!(s.committees.is_empty());
    }

    #[test]
    fn nonces_transfers_and_forgeries() {
        let mut s = State::from_genesis(&genesis(200));
        let to = Address::from_public_key(&PublicKey::of(&key(7)));
        let t = tx(
            &s,
            &key(1),
            0,
            "staking.Transfer",
            Transfer { to, amount: 10 },
        );
        s.apply_tx(&t).expect("transfer");
        assert_eq!(s.account(&to).balance, 10);
        assert!(s
            .apply_tx(&t)
            .expect_err("replay")
            .message
            .contains("invalid nonce"));
        let mut forged = tx(
            &s,
            &key(1),
            1,
            "staking.Transfer",
            Transfer { to, amount: 10 },
        );
        forged.signature.public_key = PublicKey::of(&key(7));
        assert_eq!(s.apply_tx(&forged).expect_err("forged").module, "consensus");
        // A transaction for another chain is refused.
        let other = Signed::sign(
            &key(1),
            &crypto::context(crypto::CONTEXT_TX, Some("other")),
            &Transaction {
                nonce: 1,
                fee: Fee::default(),
                method: "staking.Transfer".into(),
                body: ciborium::Value::serialized(&Transfer { to, amount: 1 }).expect("body"),
            },
        );
        assert!(s.apply_tx(&other).is_err());
    }

    #[test]
    fn withdrawals_stay_within_the_allowance_and_move_only_what_is_allowed() {
        let mut s = State::from_genesis(&genesis(200));
        let owner = Address::from_public_key(&PublicKey::of(&key(1)));
        let me = Address::from_public_key(&PublicKey::of(&key(7)));
        let before = s.account(&owner).balance;
        let root = s.root();
        // The owner (key 1) changes the allowance of `beneficiary`; key 7 withdraws.
        let allow = |s: &State, n, beneficiary, negative, amount_change| {
            let body = Allow {
                beneficiary,
                negative,
                amount_change,
            };
            tx(s, &key(1), n, "staking.Allow", body)
        };
        let w = |s: &State, n, amount| {
            let body = Withdraw {
                from: owner,
                amount,
            };
            tx(s, &key(7), n, "staking.Withdraw", body)
        };
        let start = s.clone();
        s.apply_tx(&allow(&s, 0, me, false, 30)).expect("allow");
        assert_eq!(s.account(&owner).allowances.get(&me), Some(&30));
        // The allowance is part of the state (its root changes with it).
        let mut ended = s.clone();
        ended.commit_changes(&start);
        assert_ne!(ended.root(), root);
        s.apply_tx(&w(&s, 0, 20)).expect("withdraw");
        assert_eq!(s.account(&me).balance, 20);
        assert_eq!(s.account(&owner).balance, before - 20);
        assert_eq!(s.account(&owner).allowances.get(&me), Some(&10));
        let e = s.apply_tx(&w(&s, 1, 11)).expect_err("over the allowance");
        assert!(
            e.message
                .contains("insufficient allowance (allowance: 10, amount: 11)"),
            "{e:?}"
        );
        assert_eq!(
            s.account(&me).balance,
            20,
            "a failed withdrawal moves nothing"
        );
        s.apply_tx(&w(&s, 2, 10)).expect("the rest");
        assert!(
            s.account(&owner).allowances.is_empty(),
            "a used-up allowance is removed"
        );
        // Lowering below zero removes it; granting oneself is refused.
        s.apply_tx(&allow(&s, 1, me, false, 5)).expect("allow");
        s.apply_tx(&allow(&s, 2, me, true, 50)).expect("lower");
        assert!(s.account(&owner).allowances.is_empty());
        let e = s
            .apply_tx(&allow(&s, 3, owner, false, 5))
            .expect_err("self");
        assert!(e.message.contains("cannot grant itself"), "{e:?}");
        // At most MAX_ALLOWANCES beneficiaries.
        for i in 0..MAX_ALLOWANCES {
            let b = PublicKey([u8::try_from(i).expect("small") + 100; 32]);
            let t = allow(&s, 4 + i as u64, Address::from_public_key(&b), false, 1);
            s.apply_tx(&t).expect("allow");
        }
        let t = allow(&s, 4 + MAX_ALLOWANCES as u64, me, false, 1);
        let e = s.apply_tx(&t).expect_err("too many");
        assert!(e.message.contains("too many allowances"), "{e:?}");
    }

    #[test]
    fn node_signed_by_wrong_keys_is_refused() {
        let mut s = State::from_genesis(&genesis(200));
        let entity = Entity {
            v: 2,
            id: PublicKey::of(&key(1)),
            nodes: vec![PublicKey::of(&key(2))],
        };
        let se = Signed::sign(&key(1), crypto::CONTEXT_REGISTER_ENTITY, &entity);
        s.apply_tx(&tx(&s, &key(1), 0, "registry.RegisterEntity", &se))
            .expect("entity");
        let m = MultiSigned::sign(
            &[&key(2), &key(3)],
            crypto::CONTEXT_REGISTER_NODE,
            &node_desc(2),
        );
        let e = s
            .apply_tx(&tx(&s, &key(2), 0, "registry.RegisterNode", &m))
            .expect_err("missing signature");
        assert!(e.message.contains("signed by exactly"), "{e}");
        // The failed body still consumed the nonce, not the state.
        assert_eq!(
            s.account(&Address::from_public_key(&PublicKey::of(&key(2))))
                .nonce,
            1
        );
        assert!(s.nodes.is_empty());
    }

    #[test]
    fn state_root_is_deterministic() {
        let a = State::from_genesis(&genesis(200));
        let b = State::from_genesis(&genesis(200));
        assert_eq!(a.root(), b.root());
        let mut c = a.clone();
        crate::block::execute(&mut c, crate::Height(5), &[]);
        assert_ne!(a.root(), c.root());
    }

    #[test]
    fn a_block_writes_only_the_entries_it_changed_whatever_the_state_size() {
        let mut g = genesis(200);
        for i in 0..5000u32 {
            let mut a = [7u8; 21];
            a[..4].copy_from_slice(&i.to_be_bytes());
            g.staking.accounts.insert(Address(a), 10);
        }
        let mut s = State::from_genesis(&g);
        let from = Address::from_public_key(&PublicKey::of(&key(1)));
        let to = Address([7; 21]);
        let t = tx(
            &s,
            &key(1),
            0,
            "staking.Transfer",
            Transfer { to, amount: 5 },
        );
        let before = s.clone();
        let out = crate::block::execute(&mut s, crate::Height(1), &[t]);
        assert!(out[0].error.is_none(), "{out:?}");
        // The chain's scalars and the two accounts; nothing else.
        let keys: Vec<Vec<u8>> = s.changes.iter().map(|(k, _)| k.clone()).collect();
        let mut want = vec![
            vec![crate::tree::META],
            [&[crate::tree::ACCOUNT][..], &from.0].concat(),
            [&[crate::tree::ACCOUNT][..], &to.0].concat(),
        ];
        want.sort();
        assert_eq!(keys, want);
        // The root is the one of the tree built whole from the new entries.
        let items = crate::tree::entries(&s)
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)));
        let rebuilt = crate::tree::from_entries(&g, items, 1).expect("rebuild");
        assert_eq!(rebuilt.root(), s.root());
        assert_ne!(before.root(), s.root());
        // The state before is unchanged by the block (the maps are shared, not aliased).
        assert_eq!(before.account(&to).balance, 0);
        assert_eq!(s.account(&to).balance, 5);
    }
}
