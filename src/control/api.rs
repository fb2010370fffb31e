//! The control API's types, shared by the server ([`super`]) and the client ([`super::client`]):
//! paths, request and response bodies, and the error body with its code. Clients act on the
//! code and the HTTP status, never on an error's message text (which is for the operator).

use crate::consensus::state::{Account, CommitteeMember, Entity};
use serde::{Deserialize, Serialize};

/// `GET`: the node's status document.
pub const STATUS: &str = "/api/v1/status";
/// `GET`: [`IsSynced`].
pub const IS_SYNCED: &str = "/api/v1/is-synced";
/// `POST`: [`Shutdown`].
pub const SHUTDOWN: &str = "/api/v1/shutdown";
/// `POST` [`ConsensusSubmit`]: [`Submitted`].
pub const CONSENSUS_SUBMIT: &str = "/api/v1/consensus/submit";
/// `GET`: [`NetworkParameters`].
pub const NETWORK: &str = "/api/v1/consensus/network";

/// `GET /api/v1/consensus/network`: the network's parameters from its genesis, as this node's
/// consensus state holds them — what an operator needs to know before staking a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkParameters {
    /// Chain name.
    pub chain_id: String,
    /// Chain context (hex).
    pub chain_context: String,
    /// Latest height and epoch.
    pub height: paratime_state::Height,
    /// Current epoch.
    pub epoch: paratime_state::Epoch,
    /// Blocks per epoch.
    pub epoch_interval: u64,
    /// Target time between blocks.
    pub block_interval_ms: u64,
    /// How validators spread proposals and votes (absent from older nodes: gossipsub).
    #[serde(default)]
    pub consensus_pubsub: paratime_state::genesis::ConsensusPubSub,
    /// Epochs a node registration lasts at most.
    pub max_node_expiration: u64,
    /// Epochs reclaimed stake takes to debond.
    pub debonding_interval: u64,
    /// Stake an entity holds for itself and per node role.
    pub thresholds: paratime_state::genesis::Thresholds,
    /// The ParaTimes, with their committee parameters and extra stake per compute node.
    pub runtimes: Vec<paratime_state::genesis::RuntimeDescriptor>,
}

/// `GET`: [`AccountInfo`] of an address (`oasis1…`).
pub fn account(address: &str) -> String {
    format!("/api/v1/consensus/account/{address}")
}

/// `POST` [`RuntimeSubmit`]: [`RuntimeSubmitted`].
pub fn runtime_submit(runtime: &str) -> String {
    format!("/api/v1/runtime/{runtime}/submit")
}

/// `POST` [`RuntimeSubmit`]: [`RuntimeAccepted`] once check-tx passed (oasis's
/// `SubmitTxNoWait`); `timeout_ms` bounds the wait for the check.
pub fn runtime_submit_no_wait(runtime: &str) -> String {
    format!("/api/v1/runtime/{runtime}/submit-no-wait")
}

/// `POST` [`RuntimeQuery`]: [`RuntimeQueryResult`].
pub fn runtime_query(runtime: &str) -> String {
    format!("/api/v1/runtime/{runtime}/query")
}

/// `POST` [`RuntimeStateGet`]: [`RuntimeStateValue`].
pub fn runtime_state(runtime: &str) -> String {
    format!("/api/v1/runtime/{runtime}/state")
}

/// What went wrong, for programs. Each code has one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (JSON, base64, CBOR, an address or runtime ID). 400.
    #[error("bad request")]
    BadRequest,
    /// The node runs no consensus (its genesis is empty). 400.
    #[error("no consensus")]
    NoConsensus,
    /// The runtime is not served by this node. 404.
    #[error("unknown runtime")]
    UnknownRuntime,
    /// The request body is too large. 413.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The request body did not arrive in time. 408.
    #[error("request timeout")]
    RequestTimeout,
    /// The runtime refused the transaction (check-tx) or the query. 422.
    #[error("rejected")]
    Rejected,
    /// Not ready yet (the runtime is starting): retry later. 503.
    #[error("not ready")]
    NotReady,
    /// Refused for now (mempool full, runtime not answering, too many connections): retry. 503.
    #[error("unavailable")]
    Unavailable,
    /// The node is shutting down. 503.
    #[error("shutting down")]
    ShuttingDown,
    /// The transaction was not finalized within the caller's timeout (it may still be). 504.
    #[error("timeout")]
    Timeout,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::NoConsensus => 400,
            Self::UnknownRuntime => 404,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::Rejected => 422,
            Self::NotReady | Self::Unavailable | Self::ShuttingDown => 503,
            Self::Timeout => 504,
        }
    }
}

/// The body of every error reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// For the operator.
    pub error: String,
    /// For programs.
    pub code: ErrorCode,
}

/// `GET /api/v1/is-synced`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IsSynced {
    /// Whether the node completed its initial sync (start-up without consensus).
    pub synced: bool,
}

/// `POST /api/v1/shutdown`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shutdown {
    /// Always `requested`.
    pub shutdown: String,
}

/// `POST /api/v1/consensus/submit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsensusSubmit {
    /// The signed transaction: base64 of its CBOR.
    pub tx: String,
}

/// The answer to [`ConsensusSubmit`]: the transaction is in the mempool.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Submitted {
    /// Hash of the signed transaction (hex).
    pub hash: String,
}

/// `GET /api/v1/consensus/tx/{hash}`: what became of a submitted consensus transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxStatus {
    /// The transaction's hash (hex).
    pub hash: String,
    /// Committed in a block (else pending, unknown, or committed too long ago to remember).
    pub included: bool,
    /// The block's height.
    pub height: Option<u64>,
    /// Why it failed (an included transaction that failed still used its nonce).
    pub error: Option<String>,
}

/// Path of [`TxStatus`].
pub fn tx_status(hash: &str) -> String {
    format!("/api/v1/consensus/tx/{hash}")
}

/// `GET /api/v1/consensus/account/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The address (`oasis1…`).
    pub address: String,
    /// Balance, nonce, escrow, debonding.
    pub account: Account,
    /// Latest height.
    pub height: paratime_state::Height,
    /// Current epoch.
    pub epoch: paratime_state::Epoch,
    /// The chain's ID.
    pub chain_id: String,
    /// The chain context transactions are signed for.
    pub chain_context: String,
    /// The entity registered at this address, if any.
    pub entity: Option<Entity>,
    /// The stake the entity needs for itself and its nodes.
    pub required_stake: Option<u64>,
}

/// `POST /api/v1/runtime/{id}/submit`: checks, gossips and waits until the transaction is
/// finalized.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeSubmit {
    /// The call: base64 of its CBOR.
    pub tx: String,
    /// How long to wait for finalization (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A transaction's result as sent to clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxResultBody {
    /// Set when the transaction failed.
    pub error: Option<paratime_sdk::protocol::Error>,
    /// The output: base64 of its CBOR.
    pub output: Option<String>,
}

/// The answer to [`RuntimeSubmit`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeSubmitted {
    /// Hash of the transaction (hex).
    pub hash: String,
    /// Round it was finalized in.
    pub round: paratime_state::Round,
    /// Position in the round's batch.
    pub index: u32,
    /// The runtime's result.
    pub result: TxResultBody,
}

/// The answer to a submission that does not wait: the transaction passed check-tx here and
/// was sent to the committee; whether and when it is finalized is not known yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeAccepted {
    /// Hash of the transaction (hex).
    pub hash: String,
}

/// `POST /api/v1/runtime/{id}/query` on the finalized state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeQuery {
    /// Method, e.g. `kv.Get`.
    pub method: String,
    /// Arguments: base64 of their CBOR.
    pub args: String,
}

/// The answer to [`RuntimeQuery`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeQueryResult {
    /// The round whose state was queried.
    pub round: paratime_state::Round,
    /// The result: base64 of its CBOR.
    pub data: String,
}

/// `POST /api/v1/runtime/{id}/state`: one key of the finalized state, with its proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeStateGet {
    /// The key: base64.
    pub key: String,
}

/// The answer to [`RuntimeStateGet`]: the value (or its absence) in the state of `round`,
/// provable against `state_root` with `proof`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeStateValue {
    /// The finalized round whose state was read.
    pub round: paratime_state::Round,
    /// Its state root (hex): the root the proof is checked against.
    pub state_root: String,
    /// The value (base64), or null when the key is absent.
    pub value: Option<String>,
    /// The proof (base64 of `paratime_mkvs::Proof::encode`).
    pub proof: String,
}

pub use crate::host::supervisor::CommitteeState;

/// `runtimes.<id>.executor` (compute nodes; oasis's `go/worker/compute/executor/api`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecutorStatus {
    /// `ready`, or `waiting for runtime readiness` while the committee status is not ready.
    pub status: String,
}

/// `runtimes.<id>.storage` (oasis's `go/worker/storage/api`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StorageStatus {
    /// `syncing checkpoints` during a state sync, else `syncing rounds` (oasis has no "ready").
    pub status: String,
    /// The last round whose state this node applied.
    pub last_finalized_round: paratime_state::Round,
}

/// Whether the consensus layer is synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Synced with the network.
    Ready,
    /// Catching up.
    Syncing,
}

/// `consensus` in the status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// `ready` or `syncing`.
    pub status: Readiness,
    /// Always `malachite`.
    pub backend: String,
    /// Latest height.
    pub latest_height: paratime_state::Height,
    /// Hash of the latest block header (hex).
    pub latest_hash: String,
    /// Time of the latest block (RFC 3339).
    pub latest_time: String,
    /// Epoch at the latest height.
    pub latest_epoch: paratime_state::Epoch,
    /// State root at the latest height, as oasis's `{ns, version, root_type, hash}` (`ns` all
    /// zeros: the consensus layer's).
    pub latest_state_root: StateRoot,
    /// Always 0.
    pub genesis_height: u64,
    /// The lowest height whose block this node keeps (`consensus.prune`).
    pub last_retained_height: u64,
    /// Hash of that block (hex; empty if it is not kept yet, before the first block).
    pub last_retained_hash: String,
    /// The chain context.
    pub chain_context: String,
    /// Whether this node's consensus key is in the validator set.
    pub is_validator: bool,
    /// The height being decided (oasis shows none of the `current_*` fields; CometBFT's RPC does).
    pub current_height: u64,
    /// Its round.
    pub current_round: i64,
    /// How far this node has gone in it.
    pub current_step: String,
    /// The round's proposer.
    pub current_proposer: Option<String>,
    /// Peers on the consensus port.
    pub p2p: ConsensusPeers,
    /// The validator set.
    pub validators: Vec<ValidatorStatus>,
    /// Its total voting power.
    pub total_voting_power: u64,
    /// The latest block's commit certificate.
    pub last_commit: LastCommit,
    /// Finality over the last blocks (ms).
    pub finality_ms: Percentiles,
    /// Time between consecutive blocks, p50 (ms).
    pub block_interval_ms: u64,
    /// Equivocations the engine reported.
    pub evidence: Vec<Evidence>,
    /// Bytes of the consensus store's page cache now (bounded: 32 MiB).
    pub store_cache_bytes: usize,
}

/// `consensus.p2p`: as oasis, peers are `<peer ID>@<address>` strings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsensusPeers {
    /// Peers connected.
    pub num_peers: usize,
    /// Of which current validators.
    pub num_validator_peers: usize,
    /// `<peer ID>@<address>`.
    pub peers: Vec<String>,
}

/// One validator in `consensus.validators`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidatorStatus {
    /// Consensus key (base64).
    pub id: String,
    /// Entity (base64).
    pub entity_id: String,
    /// Its registered node, once registered.
    pub node_id: Option<String>,
    /// Voting power.
    pub voting_power: u64,
}

/// `consensus.last_commit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LastCommit {
    /// Round the latest block was decided in.
    pub round: i64,
    /// Validators whose precommits are in its certificate.
    pub signers: Vec<String>,
}

/// p50 and p99.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// One equivocation in `consensus.evidence`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evidence {
    /// Height.
    pub height: u64,
    /// The validator's consensus key.
    pub offender: String,
    /// What it did.
    pub what: String,
}

/// What the consensus layer says of a hosted runtime's committee, merged into
/// `runtimes.<id>.committee` next to the host's fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitteeChain {
    /// This node's roles in the executor committee (`worker`, `backup-worker`); `null` when it
    /// has none (as oasis).
    pub executor_roles: Option<Vec<crate::consensus::state::Role>>,
    /// Its scheduler rank for the open round (0 = scheduler); 18446744073709551615 when it is
    /// not ranked (oasis's `math.MaxUint64`).
    pub scheduler_rank: u64,
    /// libp2p peer IDs of the committee's other members.
    pub peers: Vec<String>,
    /// Latest consensus height.
    pub latest_height: paratime_state::Height,
    /// Current epoch.
    pub epoch: paratime_state::Epoch,
    /// The committee, once elected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<CommitteeMember>>,
    /// This node's liveness statistics in the epoch (committee members only, as oasis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<crate::consensus::roothash::Liveness>,
    /// The last round this node applied (0 before the first).
    pub latest_round: paratime_state::Round,
}

/// `GET /api/v1/runtime/{id}/stats`: a runtime's rounds and its committee's participation in
/// the current epoch (`control runtime-stats`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeStats {
    /// The runtime.
    pub runtime_id: String,
    /// Consensus height of the figures.
    pub height: paratime_state::Height,
    /// Its epoch.
    pub epoch: paratime_state::Epoch,
    /// Latest finalized round.
    pub latest_round: paratime_state::Round,
    /// Rounds finalized with a batch since genesis.
    pub rounds_finalized: u64,
    /// Rounds failed since genesis.
    pub rounds_failed: u64,
    /// Discrepancies detected since genesis.
    pub discrepancies: u64,
    /// The epoch's committee, one entry per node.
    pub members: Vec<MemberStats>,
}

/// One committee member in [`RuntimeStats`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberStats {
    /// Node ID.
    pub node_id: String,
    /// Its entity, if the node is registered.
    pub entity_id: Option<String>,
    /// `worker`, `backup-worker` or both.
    pub roles: Vec<crate::consensus::state::Role>,
    /// Rounds, live rounds and proposals in the epoch (oasis's liveness statistics).
    pub liveness: crate::consensus::roothash::Liveness,
}

/// Path of [`RuntimeStats`].
pub fn runtime_stats(id: &str) -> String {
    format!("/api/v1/runtime/{id}/stats")
}

/// A state root as oasis shows it (`mkvs/node.Root`): `root_type` 1 is a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRoot {
    /// The runtime ID (hex).
    pub ns: String,
    /// The round it is the state after.
    pub version: u64,
    /// 1: state (oasis: 2 is an I/O root).
    pub root_type: u8,
    /// The root hash (hex).
    pub hash: String,
}

/// `runtimes.<id>.roothash`: the runtime's rounds in the consensus state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoothashStatus {
    /// Rounds finalized.
    pub rounds_finalized: u64,
    /// Rounds failed.
    pub rounds_failed: u64,
    /// Discrepancies detected.
    pub discrepancies: u64,
    /// The open round's commitment pool.
    pub pool: PoolStatus,
}

/// `runtimes.<id>.roothash.pool`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolStatus {
    /// The open round.
    pub round: paratime_state::Round,
    /// Commitments received.
    pub commitments: usize,
    /// In discrepancy resolution.
    pub discrepancy: bool,
    /// Height at which the round times out.
    pub timeout_at: Option<paratime_state::Height>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_status_and_a_snake_case_name() {
        let all = [
            (ErrorCode::BadRequest, 400, "bad_request"),
            (ErrorCode::NoConsensus, 400, "no_consensus"),
            (ErrorCode::UnknownRuntime, 404, "unknown_runtime"),
            (ErrorCode::RequestTimeout, 408, "request_timeout"),
            (ErrorCode::PayloadTooLarge, 413, "payload_too_large"),
            (ErrorCode::Rejected, 422, "rejected"),
            (ErrorCode::NotReady, 503, "not_ready"),
            (ErrorCode::Unavailable, 503, "unavailable"),
            (ErrorCode::ShuttingDown, 503, "shutting_down"),
            (ErrorCode::Timeout, 504, "timeout"),
        ];
        for (code, status, name) in all {
            assert_eq!(code.http_status(), status, "{code:?}");
            assert_eq!(serde_json::to_value(code).expect("json"), name);
        }
    }
}
