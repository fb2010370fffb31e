//! Roothash: the consensus layer's record of each ParaTime's chain of runtime blocks
//! (oasis-facts §12). Executor commitments of the elected committee arrive as
//! `roothash.ExecutorCommit` transactions; the pool of the current round finalizes the round when
//! the workers agree, resolves a discrepancy with the backup workers when they do not, and fails
//! the round when the votes are insufficient or the round times out.
//!
//! Deterministic and I/O-free like the rest of the state machine. Only the latest runtime block
//! and the open round live in the consensus state; the node's store keeps the history.

use crate::chain_time::Round;
use crate::crypto::{PublicKey, Signed};
use crate::encoding::{hash_of, Hash};
use crate::runtime_id::RuntimeId;
use crate::state::{Committee, Role, State, TxError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Signature context of executor commitments (chain-separated).
pub const CONTEXT_EXECUTOR_COMMITMENT: &str = "oasis-core/roothash: executor commitment";
/// Signature context of batch proposals (chain-separated).
pub const CONTEXT_PROPOSAL: &str = "oasis-core/roothash: proposal";

/// An enum encoded as its number (oasis encodes these as integers): serde as `u8`, and a
/// number outside the enum is a decoding error naming `what`.
macro_rules! u8_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($(#[$vm:meta])* $v:ident = $n:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vm])* $v = $n,)+
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> Self {
                v as Self
            }
        }

        impl TryFrom<u8> for $name {
            type Error = String;
            fn try_from(n: u8) -> Result<Self, String> {
                match n {
                    $($n => Ok(Self::$v),)+
                    _ => Err(format!(concat!("unknown ", $what, " {}"), n)),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u8(u8::from(*self))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::try_from(u8::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

u8_enum!(
    /// A runtime block header's type (oasis `block.HeaderType`).
    HeaderType, "header type", {
        /// A round whose batch was executed and agreed on.
        Normal = 1,
        /// A round that failed (insufficient or disagreeing votes, timeout).
        RoundFailed = 2,
        /// The committee changed at an epoch transition; the open round was abandoned.
        EpochTransition = 3,
    }
);

u8_enum!(
    /// A commitment's failure indication (oasis `commitment.ExecutorCommitmentFailure`).
    Failure, "failure indication", {
        /// No failure.
        None = 0,
        /// The node could not execute the batch.
        Unknown = 1,
        /// The node does not have the state the batch starts from.
        StateUnavailable = 2,
    }
);

/// A finalized runtime block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Header version (0).
    pub version: u16,
    /// The runtime.
    pub namespace: RuntimeId,
    /// Round number (0 = genesis block).
    pub round: Round,
    /// Consensus height at which the block was finalized.
    pub height: crate::Height,
    /// Normal, failed round, epoch transition.
    pub header_type: HeaderType,
    /// Hash of the previous runtime block header (zero for round 0).
    pub previous_hash: Hash,
    /// Commitment to the batch's inputs and outputs.
    pub io_root: Hash,
    /// State root after the round.
    pub state_root: Hash,
}

impl BlockHeader {
    /// The genesis block of `runtime`: round 0, empty state.
    pub fn genesis(runtime: RuntimeId) -> Self {
        Self {
            version: 0,
            namespace: runtime,
            round: Round(0),
            height: crate::Height(0),
            header_type: HeaderType::Normal,
            previous_hash: [0; 32],
            io_root: [0; 32],
            state_root: paratime_sdk::state::EMPTY_STATE_ROOT,
        }
    }

    /// SHA-512/256 of the header's canonical CBOR.
    pub fn hash(&self) -> Hash {
        hash_of(self)
    }
}

/// What the executors computed for a round.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ComputeResultsHeader {
    /// Round executed.
    pub round: Round,
    /// Hash of the runtime block the batch executed on.
    pub previous_hash: Hash,
    /// Commitment to inputs and outputs.
    pub io_root: Hash,
    /// State root after the batch.
    pub state_root: Hash,
}

/// The signed part of an executor commitment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommitmentHeader {
    /// The scheduler whose proposal was executed.
    pub scheduler_id: PublicKey,
    /// Results.
    pub header: ComputeResultsHeader,
    /// Whether (and why) the node could not execute the batch.
    pub failure: Failure,
}

/// `roothash.ExecutorCommit` body: commitments, each signed by its executor's node key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorCommit {
    /// Runtime.
    pub id: RuntimeId,
    /// Signed [`CommitmentHeader`]s.
    pub commits: Vec<Signed>,
}

/// A batch proposal, signed by the round's scheduler and gossiped to the committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Runtime.
    pub runtime: RuntimeId,
    /// Round proposed.
    pub round: Round,
    /// Hash of the runtime block it builds on.
    pub previous_hash: Hash,
    /// SHA-512/256 of the CBOR of `batch`.
    pub batch_hash: Hash,
    /// Raw transactions.
    pub batch: Vec<serde_bytes::ByteBuf>,
}

/// What an executor computed for a round, gossiped to every node of the runtime so that nodes
/// that did not execute (clients, outvoted or restarted members) can apply the finalized round.
/// Trusted only after [`ExecutedBatch::verify`] against the finalized header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutedBatch {
    /// Runtime.
    pub runtime: RuntimeId,
    /// Round.
    pub round: Round,
    /// State root the batch executed on.
    pub previous_state_root: Hash,
    /// State root after it.
    pub state_root: Hash,
    /// Commitment to inputs and results.
    pub io_root: Hash,
    /// Raw transactions, in order.
    pub inputs: Vec<serde_bytes::ByteBuf>,
    /// One result per input.
    pub results: Vec<paratime_sdk::protocol::TxResult>,
    /// State changes.
    pub write_log: Vec<paratime_sdk::protocol::WriteLogEntry>,
}

impl ExecutedBatch {
    /// Checks the batch against a finalized header and the state it starts from: same round
    /// and runtime, executed on `prev_root`, a write log sorted with one entry per key, and
    /// inputs and results that hash to the header's io root. That the write log leads to the
    /// header's state root is checked by whoever holds the state tree (it applies the log).
    pub fn verify(&self, header: &BlockHeader, prev_root: &Hash) -> Result<(), String> {
        if self.round != header.round || self.runtime != header.namespace {
            return Err(format!(
                "batch is for round {}, header for round {}",
                self.round, header.round
            ));
        }
        if &self.previous_state_root != prev_root {
            return Err(format!(
                "round {}: batch executed on state {}, local state is {}",
                self.round,
                hex::encode(self.previous_state_root),
                hex::encode(prev_root)
            ));
        }
        if !self.write_log.windows(2).all(|w| w[0].key < w[1].key) {
            return Err(format!(
                "round {}: write log is not sorted with one entry per key",
                self.round
            ));
        }
        if self.state_root != header.state_root {
            return Err(format!(
                "round {}: batch claims another state root than the finalized one",
                self.round
            ));
        }
        if self.inputs.len() != self.results.len()
            || paratime_sdk::state::io_root(self.round.0, &self.inputs, &self.results)
                != header.io_root
        {
            return Err(format!(
                "round {}: inputs and results do not match the finalized io root",
                self.round
            ));
        }
        Ok(())
    }
}

/// The last commitment this node signed for a runtime, persisted before it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSigned {
    /// Round.
    pub round: Round,
    /// Hash of the runtime block the round builds on.
    pub previous_hash: Hash,
    /// The scheduler whose proposal it executed.
    #[serde(default)]
    pub scheduler: Option<PublicKey>,
    /// The signed commitment.
    pub commit: Signed,
}

/// Per-node liveness in a runtime's committee (oasis `LivenessStatistics`, per node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    /// Rounds the node was a worker in.
    pub total_rounds: u64,
    /// Of those, rounds where its commitment matched the finalized result.
    pub live_rounds: u64,
    /// Rounds it scheduled that were finalized.
    pub finalized_proposals: u64,
    /// Rounds it scheduled that failed.
    pub missed_proposals: u64,
}

/// The open round's commitments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The scheduler whose proposal the round executes: fixed by the first commitment
    /// accepted (the rank-0 scheduler's, or a backup scheduler's when it did not propose).
    #[serde(default)]
    pub scheduler: Option<PublicKey>,
    /// Verified commitments by node.
    pub commits: BTreeMap<PublicKey, CommitmentHeader>,
    /// Discrepancy resolution with the backup workers is in progress.
    pub discrepancy: bool,
    /// Consensus height at which the round times out (armed by the first commitment).
    pub timeout_at: Option<crate::Height>,
}

/// A runtime's roothash state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeChain {
    /// Latest runtime block.
    pub block: BlockHeader,
    /// The open round (`block.round + 1`).
    pub pool: Pool,
    /// Liveness by node.
    pub liveness: BTreeMap<PublicKey, Liveness>,
    /// Rounds finalized with a batch.
    pub rounds_finalized: u64,
    /// Rounds failed.
    pub rounds_failed: u64,
    /// Discrepancies detected.
    pub discrepancies: u64,
}

impl RuntimeChain {
    /// A chain at its genesis block.
    pub fn genesis(runtime: RuntimeId) -> Self {
        Self {
            block: BlockHeader::genesis(runtime),
            pool: Pool::default(),
            liveness: BTreeMap::new(),
            rounds_finalized: 0,
            rounds_failed: 0,
            discrepancies: 0,
        }
    }
}

/// Something the roothash did in the current block (not part of the state root).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A runtime block was finalized (normal, failed or epoch transition).
    Block(BlockHeader),
    /// Workers disagreed in `round`; backups resolve it.
    Discrepancy {
        /// Runtime.
        runtime: RuntimeId,
        /// Round.
        round: Round,
    },
}

fn err(code: u32, message: impl Into<String>) -> TxError {
    TxError {
        module: "roothash".into(),
        code,
        message: message.into(),
    }
}

/// Members of `c` with `role`, sorted by node ID.
fn with_role(c: &Committee, role: Role) -> Vec<PublicKey> {
    let mut v: Vec<PublicKey> = c
        .members
        .iter()
        .filter(|m| m.role == role)
        .map(|m| m.public_key)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Workers of `c`, in scheduler rotation order (sorted by node ID, so the rotation does not
/// depend on the election's shuffle).
pub fn workers(c: &Committee) -> Vec<PublicKey> {
    with_role(c, Role::Worker)
}

/// Backup workers of `c`.
pub fn backups(c: &Committee) -> Vec<PublicKey> {
    with_role(c, Role::BackupWorker)
}

/// Scheduler rank of the worker at `index` of `n` workers in `round` (0 = the scheduler):
/// the worker at index (rank + n − round mod n) mod n has rank `rank`.
pub fn rank_of(index: usize, n: usize, round: Round) -> u64 {
    let n64 = n as u64;
    if n64 == 0 {
        return 0;
    }
    (index as u64 % n64 + round.0 % n64) % n64
}

/// The scheduler (rank 0) of `round`.
pub fn scheduler(c: &Committee, round: Round) -> Option<PublicKey> {
    let w = workers(c);
    if w.is_empty() {
        return None;
    }
    let n = w.len() as u64;
    let idx = (n - round.0 % n) % n;
    w.get(idx as usize).copied()
}

/// Verifies one signed commitment against the chain (signature, membership, round, previous
/// hash, scheduler). Used by the state machine and by the worker for gossiped data.
pub fn verify_commitment(
    s: &Signed,
    chain_context: &str,
    committee: &Committee,
    chain: &RuntimeChain,
) -> Result<(PublicKey, CommitmentHeader), TxError> {
    let ctx = crate::crypto::context(CONTEXT_EXECUTOR_COMMITMENT, Some(chain_context));
    let h: CommitmentHeader = s
        .open(&ctx)
        .map_err(|e| err(2, format!("invalid executor commitment: {e}")))?;
    let node = s.signature.public_key;
    if !committee.members.iter().any(|m| m.public_key == node) {
        return Err(err(
            3,
            format!(
                "node {node} is not a member of the executor committee of runtime {}",
                committee.runtime_id
            ),
        ));
    }
    let round = chain.block.round.saturating_add(1);
    if h.header.round != round {
        return Err(err(
            4,
            format!(
                "commitment for round {}, but round {round} is open",
                h.header.round
            ),
        ));
    }
    if h.header.previous_hash != chain.block.hash() {
        return Err(err(
            5,
            format!("commitment for round {round} does not build on the latest runtime block"),
        ));
    }
    if !workers(committee).contains(&h.scheduler_id) {
        return Err(err(
            6,
            format!(
                "commitment names scheduler {}, which is not a worker of round {round}",
                h.scheduler_id
            ),
        ));
    }
    if let Some(s) = chain.pool.scheduler.filter(|s| *s != h.scheduler_id) {
        return Err(err(
            6,
            format!(
                "round {round} executes the proposal of scheduler {s}, not of {}",
                h.scheduler_id
            ),
        ));
    }
    Ok((node, h))
}

impl State {
    /// Applies `roothash.ExecutorCommit` at the current block.
    pub fn executor_commit(&mut self, body: &ExecutorCommit) -> Result<(), TxError> {
        let id = body.id;
        let committee = self.committees.get(&id).cloned().ok_or_else(|| {
            err(
                1,
                format!("runtime {id} has no executor committee this epoch"),
            )
        })?;
        let height = self.height.saturating_add(1);
        let chain_context = self.chain_context.clone();
        let timeout = self
            .genesis
            .registry
            .runtimes
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.executor.round_timeout)
            .unwrap_or(5)
            .max(1);
        let chain = self
            .roothash
            .get_mut(&id)
            .ok_or_else(|| err(1, format!("runtime {id} is not registered")))?;
        let backup_set = backups(&committee);
        for s in &body.commits {
            let (node, h) = verify_commitment(s, &chain_context, &committee, chain)?;
            if chain.pool.discrepancy && !backup_set.contains(&node) {
                return Err(err(
                    8,
                    format!(
                        "round {} is in discrepancy resolution: only backup workers may commit",
                        h.header.round
                    ),
                ));
            }
            match chain.pool.commits.get(&node) {
                Some(prev) if prev == &h => {}
                Some(_) => {
                    return Err(err(
                        7,
                        format!(
                            "node {node} already committed a different result for round {}",
                            h.header.round
                        ),
                    ))
                }
                None => {
                    chain.pool.scheduler.get_or_insert(h.scheduler_id);
                    chain.pool.commits.insert(node, h);
                }
            }
        }
        if chain.pool.timeout_at.is_none() {
            chain.pool.timeout_at = Some(height.saturating_add(timeout));
        }
        self.process_pool(&id, height, false);
        Ok(())
    }

    /// Checks round timeouts at the start of block `height`.
    pub(crate) fn roothash_timeouts(&mut self, height: crate::Height) {
        let due: Vec<RuntimeId> = self
            .roothash
            .iter()
            .filter(|(_, c)| c.pool.timeout_at.is_some_and(|t| t <= height))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.process_pool(&id, height, true);
        }
    }

    /// At an epoch transition: a runtime whose committee changed abandons its open round with
    /// an epoch-transition block.
    pub(crate) fn roothash_epoch(
        &mut self,
        height: crate::Height,
        previous: &BTreeMap<RuntimeId, Committee>,
    ) {
        for rt in &self.genesis.registry.runtimes {
            self.roothash
                .entry(rt.id)
                .or_insert_with(|| RuntimeChain::genesis(rt.id));
        }
        let ids: Vec<RuntimeId> = self.roothash.keys().copied().collect();
        for id in ids {
            let key = |c: Option<&Committee>| {
                c.map(|c| {
                    let mut m: Vec<(Role, PublicKey)> =
                        c.members.iter().map(|m| (m.role, m.public_key)).collect();
                    m.sort();
                    m
                })
            };
            if key(previous.get(&id)) == key(self.committees.get(&id)) {
                continue;
            }
            self.close_round(&id, height, HeaderType::EpochTransition, None);
        }
    }

    fn process_pool(&mut self, id: &RuntimeId, height: crate::Height, timed_out: bool) {
        let Some(committee) = self.committees.get(id).cloned() else {
            return;
        };
        let Some(params) = self
            .genesis
            .registry
            .runtimes
            .iter()
            .find(|r| r.id == *id)
            .map(|r| r.executor.clone())
        else {
            return;
        };
        let Some(chain) = self.roothash.get(id) else {
            return;
        };
        let round = chain.block.round.saturating_add(1);
        let Some(sched) = chain
            .pool
            .scheduler
            .or_else(|| scheduler(&committee, round))
        else {
            return;
        };
        let pool = &chain.pool;
        let workers = workers(&committee);
        let backups = backups(&committee);
        let sched_commit = pool
            .commits
            .get(&sched)
            .filter(|c| c.failure == Failure::None)
            .cloned();
        if pool.discrepancy {
            self.resolve(id, height, &workers, &backups, sched_commit, timed_out);
            return;
        }
        let votes: Vec<&CommitmentHeader> =
            workers.iter().filter_map(|w| pool.commits.get(w)).collect();
        let failures = votes.iter().filter(|v| v.failure != Failure::None).count();
        let mut distinct: Vec<&ComputeResultsHeader> = votes
            .iter()
            .filter(|v| v.failure == Failure::None)
            .map(|v| &v.header)
            .collect();
        distinct.sort();
        distinct.dedup();
        let missing = workers.len().saturating_sub(votes.len());
        let stragglers = usize::from(params.allowed_stragglers);
        let disagree = distinct.len() > 1 || failures > stragglers;
        if !disagree {
            if missing == 0 || (timed_out && missing <= stragglers) {
                if let Some(c) = sched_commit.as_ref().filter(|_| distinct.len() == 1) {
                    let c = c.clone();
                    self.finalize(id, height, &workers, &c);
                    return;
                }
            } else if !timed_out {
                return;
            }
        }
        // Discrepancy detected: the backups decide, with a longer timeout.
        let chain = self.roothash.get_mut(id).expect("checked above");
        chain.pool.discrepancy = true;
        chain.discrepancies = chain.discrepancies.saturating_add(1);
        chain.pool.timeout_at =
            Some(height.saturating_add((params.round_timeout.saturating_mul(3) / 2).max(1)));
        self.events.push(Event::Discrepancy {
            runtime: *id,
            round,
        });
        if backups.is_empty() {
            self.close_round(id, height, HeaderType::RoundFailed, Some(&workers));
            return;
        }
        // Backups that are also workers have already voted: evaluate now, not timed out.
        self.resolve(id, height, &workers, &backups, sched_commit, false);
    }

    fn resolve(
        &mut self,
        id: &RuntimeId,
        height: crate::Height,
        workers: &[PublicKey],
        backups: &[PublicKey],
        sched_commit: Option<CommitmentHeader>,
        timed_out: bool,
    ) {
        let Some(pool) = self.roothash.get(id).map(|c| c.pool.clone()) else {
            return;
        };
        let needed = backups.len() / 2 + 1;
        let committed = backups
            .iter()
            .filter(|b| pool.commits.contains_key(b))
            .count();
        let Some(sc) = sched_commit else {
            // Without the scheduler's commitment nothing can be finalized.
            if timed_out || committed == backups.len() {
                self.close_round(id, height, HeaderType::RoundFailed, Some(workers));
            }
            return;
        };
        let matching = backups
            .iter()
            .filter(|b| {
                pool.commits
                    .get(b)
                    .is_some_and(|c| c.failure == Failure::None && c.header == sc.header)
            })
            .count();
        if matching >= needed {
            self.finalize(id, height, workers, &sc);
        } else if backups.len().saturating_sub(committed) + matching < needed || timed_out {
            self.close_round(id, height, HeaderType::RoundFailed, Some(workers));
        }
    }

    fn finalize(
        &mut self,
        id: &RuntimeId,
        height: crate::Height,
        workers: &[PublicKey],
        c: &CommitmentHeader,
    ) {
        let chain = self.roothash.get_mut(id).expect("runtime exists");
        let header = BlockHeader {
            version: 0,
            namespace: *id,
            round: c.header.round,
            height,
            header_type: HeaderType::Normal,
            previous_hash: chain.block.hash(),
            io_root: c.header.io_root,
            state_root: c.header.state_root,
        };
        for w in workers {
            let live = chain
                .pool
                .commits
                .get(w)
                .is_some_and(|v| v.failure == Failure::None && v.header == c.header);
            let l = chain.liveness.entry(*w).or_default();
            l.total_rounds = l.total_rounds.saturating_add(1);
            if live {
                l.live_rounds = l.live_rounds.saturating_add(1);
            }
        }
        let l = chain.liveness.entry(c.scheduler_id).or_default();
        l.finalized_proposals = l.finalized_proposals.saturating_add(1);
        chain.rounds_finalized = chain.rounds_finalized.saturating_add(1);
        chain.block = header.clone();
        chain.pool = Pool::default();
        self.events.push(Event::Block(header));
    }

    fn close_round(
        &mut self,
        id: &RuntimeId,
        height: crate::Height,
        kind: HeaderType,
        workers: Option<&[PublicKey]>,
    ) {
        let committee = self.committees.get(id).cloned();
        let chain = self.roothash.get_mut(id).expect("runtime exists");
        let round = chain.block.round.saturating_add(1);
        if let Some(workers) = workers {
            for w in workers {
                let l = chain.liveness.entry(*w).or_default();
                l.total_rounds = l.total_rounds.saturating_add(1);
            }
            let sched = chain
                .pool
                .scheduler
                .or_else(|| committee.as_ref().and_then(|c| scheduler(c, round)));
            if let Some(s) = sched {
                let l = chain.liveness.entry(s).or_default();
                l.missed_proposals = l.missed_proposals.saturating_add(1);
            }
        }
        if kind == HeaderType::RoundFailed {
            chain.rounds_failed = chain.rounds_failed.saturating_add(1);
        }
        let header = BlockHeader {
            version: 0,
            namespace: *id,
            round,
            height,
            header_type: kind,
            previous_hash: chain.block.hash(),
            io_root: chain.block.io_root,
            state_root: chain.block.state_root,
        };
        chain.block = header.clone();
        chain.pool = Pool::default();
        self.events.push(Event::Block(header));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto;
    use crate::state::CommitteeMember;
    use ed25519_dalek::SigningKey;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn rid() -> RuntimeId {
        "0000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("rid")
    }

    /// A state whose committee is nodes 11, 12, 13 as workers and backups.
    fn state(backups: bool) -> State {
        let mut s = State::from_genesis(&crate::state::tests_support::genesis(3, 3));
        let mut members: Vec<CommitteeMember> = (11..14)
            .map(|b| CommitteeMember {
                role: Role::Worker,
                public_key: PublicKey::of(&key(b)),
            })
            .collect();
        if backups {
            members.extend((11..14).map(|b| CommitteeMember {
                role: Role::BackupWorker,
                public_key: PublicKey::of(&key(b)),
            }));
        }
        s.committees.insert(
            rid(),
            Committee {
                kind: crate::state::CommitteeKind::Executor,
                members,
                runtime_id: rid(),
                valid_for: crate::Epoch(0),
            },
        );
        s
    }

    /// `node`'s commitment to `state_root` for the open round, naming the rank-0 scheduler.
    fn commit(s: &State, node: u8, state_root: u8) -> Signed {
        let round = s.roothash[&rid()].block.round.next();
        let sched = scheduler(&s.committees[&rid()], round).expect("scheduler");
        commit_for(s, node, state_root, sched)
    }

    /// `node`'s commitment to `state_root` for the open round, naming `sched`.
    fn commit_for(s: &State, node: u8, state_root: u8, sched: PublicKey) -> Signed {
        let chain = &s.roothash[&rid()];
        let round = chain.block.round.saturating_add(1);
        let h = CommitmentHeader {
            scheduler_id: sched,
            header: ComputeResultsHeader {
                round,
                previous_hash: chain.block.hash(),
                io_root: [1; 32],
                state_root: [state_root; 32],
            },
            failure: Failure::None,
        };
        Signed::sign(
            &key(node),
            &crypto::context(CONTEXT_EXECUTOR_COMMITMENT, Some(&s.chain_context)),
            &h,
        )
    }

    fn submit(s: &mut State, c: Signed) -> Result<(), TxError> {
        s.executor_commit(&ExecutorCommit {
            id: rid(),
            commits: vec![c],
        })
    }

    fn sched_byte(s: &State) -> u8 {
        let round = s.roothash[&rid()].block.round.next();
        let sched = scheduler(&s.committees[&rid()], round).expect("scheduler");
        (11..14)
            .find(|b| PublicKey::of(&key(*b)) == sched)
            .expect("member")
    }

    #[test]
    fn agreeing_workers_finalize_the_round() {
        let mut s = state(true);
        for n in 11..14 {
            assert_eq!(s.roothash[&rid()].block.round, crate::Round(0));
            {
                let c = commit(&s, n, 7);
                submit(&mut s, c)
            }
            .expect("commit");
        }
        let c = &s.roothash[&rid()];
        assert_eq!(c.block.round, crate::Round(1));
        assert_eq!(c.block.header_type, HeaderType::Normal);
        assert_eq!(c.block.state_root, [7; 32]);
        assert_eq!(c.block.previous_hash, BlockHeader::genesis(rid()).hash());
        assert_eq!(c.rounds_finalized, 1);
        assert!(c.liveness.values().all(|l| l.live_rounds == 1));
    }

    #[test]
    fn a_wrong_worker_is_outvoted_by_the_backups() {
        let mut s = state(true);
        let sched = sched_byte(&s);
        let liar = (11..14).find(|b| *b != sched).expect("non-scheduler");
        for n in 11..14 {
            let root = if n == liar { 66 } else { 7 };
            {
                let c = commit(&s, n, root);
                submit(&mut s, c)
            }
            .expect("commit");
        }
        let c = &s.roothash[&rid()];
        assert_eq!(c.discrepancies, 1);
        assert_eq!(c.block.round, crate::Round(1));
        assert_eq!(c.block.header_type, HeaderType::Normal);
        assert_eq!(
            c.block.state_root, [7; 32],
            "the honest result is finalized"
        );
        assert_eq!(c.liveness[&PublicKey::of(&key(liar))].live_rounds, 0);
    }

    #[test]
    fn a_lying_scheduler_fails_the_round_and_without_backups_too() {
        let mut s = state(true);
        let sched = sched_byte(&s);
        for n in 11..14 {
            let root = if n == sched { 66 } else { 7 };
            {
                let c = commit(&s, n, root);
                submit(&mut s, c)
            }
            .expect("commit");
        }
        let c = &s.roothash[&rid()];
        assert_eq!(c.block.header_type, HeaderType::RoundFailed);
        assert_eq!(c.block.state_root, paratime_sdk::state::EMPTY_STATE_ROOT);
        assert_eq!(c.liveness[&PublicKey::of(&key(sched))].missed_proposals, 1);

        let mut s = state(false);
        let sched = sched_byte(&s);
        let liar = (11..14).find(|b| *b != sched).expect("non-scheduler");
        {
            let c = commit(&s, sched, 7);
            submit(&mut s, c)
        }
        .expect("commit");
        {
            let c = commit(&s, liar, 66);
            submit(&mut s, c)
        }
        .expect("commit");
        assert_eq!(
            s.roothash[&rid()].block.header_type,
            HeaderType::RoundFailed
        );
    }

    #[test]
    fn a_missing_worker_times_the_round_out() {
        let mut s = state(false);
        let sched = sched_byte(&s);
        {
            let c = commit(&s, sched, 7);
            submit(&mut s, c)
        }
        .expect("commit");
        let t = s.roothash[&rid()].pool.timeout_at.expect("armed");
        s.roothash_timeouts(t.saturating_sub(1));
        assert_eq!(s.roothash[&rid()].block.round, crate::Round(0), "not yet");
        s.roothash_timeouts(t);
        // Discrepancy without backups: the round fails.
        assert_eq!(s.roothash[&rid()].block.round, crate::Round(1));
        assert_eq!(
            s.roothash[&rid()].block.header_type,
            HeaderType::RoundFailed
        );
    }

    #[test]
    fn forged_and_equivocating_commitments_are_rejected() {
        let mut s = state(true);
        // Not a committee member.
        let e = {
            let c = commit(&s, 99, 7);
            submit(&mut s, c)
        }
        .expect_err("outsider");
        assert!(e.message.contains("not a member"), "{e}");
        // Signature over other bytes.
        let mut forged = commit(&s, 11, 7);
        forged.untrusted_raw_value = commit(&s, 11, 8).untrusted_raw_value;
        forged.signature = commit(&s, 12, 8).signature;
        forged.signature.public_key = PublicKey::of(&key(11));
        let e = submit(&mut s, forged).expect_err("forged");
        assert!(e.message.contains("invalid executor commitment"), "{e}");
        // Another chain's context.
        let chain = &s.roothash[&rid()];
        let other = Signed::sign(
            &key(11),
            &crypto::context(CONTEXT_EXECUTOR_COMMITMENT, Some("other-chain")),
            &CommitmentHeader {
                scheduler_id: scheduler(&s.committees[&rid()], crate::Round(1)).expect("sched"),
                header: ComputeResultsHeader {
                    round: crate::Round(1),
                    previous_hash: chain.block.hash(),
                    io_root: [0; 32],
                    state_root: [0; 32],
                },
                failure: Failure::None,
            },
        );
        assert!(submit(&mut s, other).is_err());
        // The same commitment twice is fine; a different one for the same round is not.
        let n = sched_byte(&s);
        {
            let c = commit(&s, n, 7);
            submit(&mut s, c)
        }
        .expect("commit");
        {
            let c = commit(&s, n, 7);
            submit(&mut s, c)
        }
        .expect("same again");
        let e = {
            let c = commit(&s, n, 8);
            submit(&mut s, c)
        }
        .expect_err("equivocation");
        assert!(
            e.message.contains("already committed a different result"),
            "{e}"
        );
        // Wrong round.
        let mut h: CommitmentHeader = commit(&s, 12, 7)
            .open(&crypto::context(
                CONTEXT_EXECUTOR_COMMITMENT,
                Some(&s.chain_context),
            ))
            .expect("open");
        h.header.round = crate::Round(5);
        let wrong = Signed::sign(
            &key(12),
            &crypto::context(CONTEXT_EXECUTOR_COMMITMENT, Some(&s.chain_context)),
            &h,
        );
        let e = submit(&mut s, wrong).expect_err("round");
        assert!(e.message.contains("round 1 is open"), "{e}");
    }

    #[test]
    fn a_backup_schedulers_proposal_fixes_the_round() {
        let mut s = state(true);
        let c = s.committees[&rid()].clone();
        let w = workers(&c);
        let round = Round(1);
        let rank1 = w
            .iter()
            .enumerate()
            .find(|(i, _)| rank_of(*i, w.len(), round) == 1)
            .map(|(_, k)| *k)
            .expect("rank 1");
        let c1 = commit_for(&s, 11, 7, rank1);
        submit(&mut s, c1).expect("a backup scheduler's batch is accepted first");
        let rank0 = scheduler(&c, round).expect("rank 0");
        let late = commit_for(&s, 12, 7, rank0);
        let e = submit(&mut s, late).expect_err("the round is fixed");
        assert!(
            e.message.contains("executes the proposal of scheduler"),
            "{e}"
        );
        let outsider = commit_for(&s, 12, 7, PublicKey::of(&key(99)));
        assert!(submit(&mut s, outsider)
            .expect_err("not a worker")
            .message
            .contains("not a worker"));
        for n in [12, 13] {
            let c = commit_for(&s, n, 7, rank1);
            submit(&mut s, c).expect("commit");
        }
        let chain = &s.roothash[&rid()];
        assert_eq!(chain.block.round, crate::Round(1));
        assert_eq!(chain.block.header_type, HeaderType::Normal);
        assert_eq!(chain.liveness[&rank1].finalized_proposals, 1);
    }

    #[test]
    fn scheduler_rotates_through_the_workers() {
        let s = state(false);
        let c = &s.committees[&rid()];
        let w = workers(c);
        let scheds: Vec<PublicKey> = (1..=3)
            .map(|r| scheduler(c, Round(r)).expect("s"))
            .collect();
        let mut sorted = scheds.clone();
        sorted.sort();
        assert_eq!(sorted, w, "each worker schedules once in three rounds");
        for r in 1..=3u64 {
            let s = scheduler(c, Round(r)).expect("s");
            let idx = w.iter().position(|x| *x == s).expect("in");
            assert_eq!(rank_of(idx, w.len(), Round(r)), 0);
        }
    }

    #[test]
    fn typed_codes_keep_their_wire_encoding_and_unknown_ones_are_refused() {
        use crate::encoding::canonical_cbor;
        use crate::state::{CommitteeKind, Role, RoleMask};
        assert_eq!(
            canonical_cbor(&HeaderType::RoundFailed),
            canonical_cbor(&2u8)
        );
        assert_eq!(
            canonical_cbor(&Failure::StateUnavailable),
            canonical_cbor(&2u8)
        );
        assert_eq!(
            canonical_cbor(&Role::BackupWorker),
            canonical_cbor(&"backup-worker")
        );
        assert_eq!(canonical_cbor(&Role::Worker), canonical_cbor(&"worker"));
        assert_eq!(
            canonical_cbor(&CommitteeKind::Executor),
            canonical_cbor(&"executor")
        );
        assert_eq!(canonical_cbor(&RoleMask::VALIDATOR), canonical_cbor(&8u32));
        let bad: Result<Failure, _> = crate::encoding::from_cbor(&canonical_cbor(&7u8));
        assert!(bad
            .expect_err("failure 7 decoded")
            .to_string()
            .contains("unknown failure indication 7"));
        let bad: Result<HeaderType, _> = crate::encoding::from_cbor(&canonical_cbor(&0u8));
        assert!(bad
            .expect_err("header type 0 decoded")
            .to_string()
            .contains("unknown header type 0"));
        assert!((RoleMask::COMPUTE | RoleMask::VALIDATOR).contains(RoleMask::VALIDATOR));
        assert!(!RoleMask::COMPUTE.contains(RoleMask::NONE));
        assert!(RoleMask(2).has_unknown());
    }
}
