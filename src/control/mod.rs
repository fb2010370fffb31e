//! The control API: HTTP/JSON on the node's `internal.sock` (usable with
//! `curl --unix-socket data/internal.sock http://localhost/api/v1/status`).
//!
//! Endpoints: `GET /api/v1/status`, `GET /api/v1/is-synced`, `POST /api/v1/shutdown`. The server
//! only reads status snapshots published by their owners and sends the shutdown request; it
//! changes nothing else.

pub mod api;
pub mod client;
pub mod metrics;

use crate::host::launcher::Info as SandboxInfo;
use crate::host::supervisor::RuntimeStatus;
use api::ErrorCode;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

/// `identity` in the status.
#[derive(Clone, Debug, Serialize)]
pub struct IdentityStatus {
    /// Node ID (base64).
    pub node: String,
    /// P2P key (base64).
    pub p2p: String,
    /// Consensus key (base64).
    pub consensus: String,
}

/// A configured bundle the node refused to host (`bundles_refused[]`).
#[derive(Clone, Debug, Serialize)]
pub struct RefusedBundle {
    /// The `.orc` file.
    pub path: String,
    /// Why.
    pub error: String,
}

/// The whole `control status` document (oasis top-level keys where we have the data).
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// This software's version.
    pub software_version: String,
    /// Node mode.
    pub mode: String,
    /// Node keys.
    pub identity: IdentityStatus,
    /// Hosted runtimes by runtime ID.
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    /// The sandbox launcher's report.
    pub sandbox: Option<SandboxInfo>,
    /// Self-confinement in force (null when disabled).
    pub confinement: Option<crate::system::confine::Report>,
    /// Bundles in `runtime.paths` that were refused at start (not hosted; the node runs on).
    pub bundles_refused: Vec<RefusedBundle>,
    /// The consensus layer (without a genesis document: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consensus: Option<api::ConsensusStatus>,
    /// libp2p.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p2p: Option<crate::p2p::Status>,
    /// Registration (validators and compute nodes with an entity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<crate::worker::registration::Status>,
}

/// What the server reads.
#[derive(Clone)]
pub struct ControlState {
    /// Static part of the status.
    pub base: Status,
    /// Runtime status channels.
    pub runtimes: Vec<(String, watch::Receiver<RuntimeStatus>)>,
    /// Set once start-up completed.
    pub synced: watch::Receiver<bool>,
    /// Shutdown request.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Consensus, p2p and registration (absent without a genesis document).
    pub network: NetworkState,
    /// This node's ID (for committee roles).
    pub node_id: crate::consensus::crypto::PublicKey,
}

/// Read-only views of the network side.
#[derive(Clone, Default)]
pub struct NetworkState {
    /// Consensus engine.
    pub consensus: Option<crate::consensus::engine::Handle>,
    /// libp2p status.
    pub p2p: Option<watch::Receiver<crate::p2p::Status>>,
    /// Registration status.
    pub registration: Option<watch::Receiver<crate::worker::registration::Status>>,
    /// Runtime workers by runtime ID.
    pub workers: BTreeMap<crate::bundle::RuntimeId, crate::worker::compute::Handle>,
}

fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// Peer IDs on the consensus port of the current validators.
fn validator_peer_ids(v: &crate::consensus::engine::View) -> std::collections::BTreeSet<String> {
    crate::consensus::engine::validator_peers(&v.state)
        .map(|(_, _, peer)| peer)
        .collect()
}

fn consensus_status(
    v: &crate::consensus::engine::View,
    p: &paratime_bft::engine::Progress,
    store_cache_bytes: usize,
) -> api::ConsensusStatus {
    let validator_peers = validator_peer_ids(v);
    api::ConsensusStatus {
        status: if v.synced {
            api::Readiness::Ready
        } else {
            api::Readiness::Syncing
        },
        backend: "malachite".into(),
        store_cache_bytes,
        latest_height: v.state.height,
        latest_hash: hex::encode(v.latest_hash),
        latest_time: rfc3339_ms(v.latest_time_ms),
        latest_epoch: v.state.epoch,
        latest_state_root: api::StateRoot {
            ns: hex::encode([0u8; 32]),
            version: v.state.height.0,
            root_type: 1,
            hash: hex::encode(v.state.root()),
        },
        genesis_height: 0,
        last_retained_height: v.last_retained_height,
        last_retained_hash: String::new(),
        chain_context: v.state.chain_context.clone(),
        is_validator: v.is_validator,
        current_height: p.height,
        current_round: p.round,
        current_step: p.step.as_str().into(),
        current_proposer: p.proposer.map(|k| k.to_string()),
        p2p: api::ConsensusPeers {
            num_peers: p.peers.len(),
            num_validator_peers: p
                .peers
                .iter()
                .filter(|x| validator_peers.contains(&x.peer_id))
                .count(),
            peers: p
                .peers
                .iter()
                .map(|x| format!("{}@{}", x.peer_id, x.address))
                .collect(),
        },
        validators: v
            .state
            .validators
            .validators
            .iter()
            .map(|x| api::ValidatorStatus {
                id: x.consensus_id.to_string(),
                entity_id: x.entity_id.to_string(),
                node_id: x.node_id.map(|n| n.to_string()),
                voting_power: x.voting_power,
            })
            .collect(),
        total_voting_power: v.state.validators.total_power(),
        last_commit: api::LastCommit {
            round: v.last_commit_round,
            signers: v
                .last_commit_signers
                .iter()
                .map(|k| k.to_string())
                .collect(),
        },
        finality_ms: api::Percentiles {
            p50: v.finality_ms.0,
            p99: v.finality_ms.1,
        },
        block_interval_ms: v.block_interval_ms,
        evidence: v
            .evidence
            .iter()
            .map(|(h, who, what)| api::Evidence {
                height: *h,
                offender: who.to_string(),
                what: what.clone(),
            })
            .collect(),
    }
}

/// One hosted runtime in the status: the host's view, and the consensus layer's when the node
/// runs one.
#[derive(Clone, Debug, Serialize)]
pub struct RuntimeEntry {
    /// The bundle's runtime descriptor.
    pub descriptor: Option<serde_json::Value>,
    /// Sandbox or unconfined.
    pub provisioner: crate::host::Provisioner,
    /// The bundle's components.
    pub components: Vec<crate::host::supervisor::ComponentStatus>,
    /// Committee readiness and versions, plus roles from the consensus state.
    pub committee: CommitteeEntry,
    /// The sandbox.
    pub sandbox: crate::host::supervisor::SandboxStatus,
    /// State root of the latest round (the consensus layer's, else the host's), as oasis's
    /// `{ns, version, root_type, hash}`.
    pub latest_state_root: api::StateRoot,
    /// Latest round in the consensus state (0 before the first: oasis prints zero values).
    pub latest_round: paratime_state::Round,
    /// Hash of its block (hex).
    pub latest_hash: String,
    /// The runtime's genesis round (always 0).
    pub genesis_round: paratime_state::Round,
    /// Hash of its genesis block (hex).
    pub genesis_hash: String,
    /// The lowest round whose history this node keeps (`runtime.prune`; 0 before any).
    pub last_retained_round: paratime_state::Round,
    /// Hash of its block (hex; empty when this node does not have it).
    pub last_retained_hash: String,
    /// Time of the consensus block that finalized the latest round (RFC 3339, UTC; oasis
    /// renders it in the node's local time zone); the genesis time for round 0; Go's zero time
    /// without a network.
    pub latest_time: String,
    /// The runtime's rounds in the consensus state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roothash: Option<api::RoothashStatus>,
    /// The executor (compute nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<api::ExecutorStatus>,
    /// The runtime's state storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<api::StorageStatus>,
    /// The runtime worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<crate::worker::compute::Status>,
    /// The state tree's caches now, against `storage.max_cache_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_memory: Option<crate::host::state::StateMemory>,
}

/// `runtimes.<id>.committee`.
#[derive(Clone, Debug, Serialize)]
pub struct CommitteeEntry {
    /// oasis's committee status.
    pub status: api::CommitteeState,
    /// The host's part.
    #[serde(flatten)]
    pub host: crate::host::supervisor::CommitteeStatus,
    /// The consensus layer's part.
    #[serde(flatten)]
    pub chain: Option<api::CommitteeChain>,
}

impl RuntimeEntry {
    fn of(id: &str, host: RuntimeStatus) -> Self {
        let RuntimeStatus {
            descriptor,
            provisioner,
            components,
            committee,
            sandbox,
            latest_state_root,
        } = host;
        Self {
            descriptor,
            provisioner,
            components,
            committee: CommitteeEntry {
                status: match committee.status {
                    crate::host::supervisor::Readiness::Ready => api::CommitteeState::Ready,
                    crate::host::supervisor::Readiness::Waiting => {
                        api::CommitteeState::WaitingForProvision
                    }
                },
                host: committee,
                chain: None,
            },
            latest_state_root: api::StateRoot {
                ns: id.to_string(),
                version: 0,
                root_type: 1,
                hash: latest_state_root,
            },
            sandbox,
            latest_round: paratime_state::Round(0),
            latest_hash: hex::encode([0u8; 32]),
            genesis_round: paratime_state::Round(0),
            genesis_hash: id
                .parse::<crate::bundle::RuntimeId>()
                .map(|r| hex::encode(crate::consensus::roothash::BlockHeader::genesis(r).hash()))
                .unwrap_or_default(),
            last_retained_round: paratime_state::Round(0),
            last_retained_hash: String::new(),
            latest_time: crate::worker::registration::ZERO_TIME.into(),
            roothash: None,
            executor: None,
            storage: None,
            worker: None,
            state_memory: None,
        }
    }

    /// Adds what the consensus layer and the runtime worker say of `rid`.
    fn add_chain(
        &mut self,
        rid: &crate::bundle::RuntimeId,
        view: &crate::consensus::engine::View,
        node: &crate::consensus::crypto::PublicKey,
        worker: Option<&crate::worker::compute::Handle>,
    ) {
        let (executor_roles, scheduler_rank) = view.state.committee_roles(rid, node);
        let chain = view.state.roothash.get(rid);
        let ws = worker.map(|w| w.status.borrow().clone());
        let members = view.state.committees.get(rid).map(|c| c.members.clone());
        let peers = members
            .iter()
            .flatten()
            .filter(|m| m.public_key != *node)
            .filter_map(|m| view.state.nodes.get(&m.public_key))
            .filter_map(|n| crate::p2p::peer_id_of(&n.p2p.id))
            .map(|p| p.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.committee.chain = Some(api::CommitteeChain {
            executor_roles: (!executor_roles.is_empty()).then_some(executor_roles),
            scheduler_rank: scheduler_rank.unwrap_or(u64::MAX),
            peers,
            latest_height: view.state.height,
            epoch: view.state.epoch,
            members,
            liveness: chain.and_then(|c| c.liveness.get(node).cloned()),
            latest_round: ws
                .as_ref()
                .map_or(paratime_state::Round(0), |w| w.latest_round),
        });
        if let Some(chain) = chain {
            self.latest_round = chain.block.round;
            self.latest_hash = hex::encode(chain.block.hash());
            self.latest_state_root.version = chain.block.round.0;
            self.latest_state_root.hash = hex::encode(chain.block.state_root);
            self.roothash = Some(api::RoothashStatus {
                rounds_finalized: chain.rounds_finalized,
                rounds_failed: chain.rounds_failed,
                discrepancies: chain.discrepancies,
                pool: api::PoolStatus {
                    round: chain.block.round.next(),
                    commitments: chain.pool.commits.len(),
                    discrepancy: chain.pool.discrepancy,
                    timeout_at: chain.pool.timeout_at,
                },
            });
        }
        // The runtime's descriptor in the network's registry, with oasis's JSON encodings where
        // the concept is the same (`kind` and `tee_hardware` are integers there).
        self.descriptor = view
            .state
            .genesis
            .registry
            .runtimes
            .iter()
            .find(|d| d.id == *rid)
            .and_then(|d| {
                let mut v = serde_json::to_value(d).ok()?;
                let o = v.as_object_mut()?;
                o.insert(
                    "kind".into(),
                    u8::from(d.kind != "compute").saturating_add(1).into(),
                );
                o.insert("tee_hardware".into(), 0.into());
                Some(v)
            });
        // oasis's order: consensus sync, then the registry, then the workers and the runtime.
        self.committee.status = match &ws {
            _ if !view.synced => api::CommitteeState::WaitingForConsensusSync,
            _ if chain.is_none() => api::CommitteeState::WaitingForDescriptor,
            Some(w) => w.committee_status,
            None => self.committee.status,
        };
        if let Some(w) = &ws {
            self.storage = Some(api::StorageStatus {
                status: if w.state_syncing {
                    "syncing checkpoints"
                } else {
                    "syncing rounds"
                }
                .into(),
                last_finalized_round: w.latest_round,
            });
            if w.compute {
                self.executor = Some(api::ExecutorStatus {
                    status: if self.committee.status == api::CommitteeState::Ready {
                        "ready"
                    } else {
                        "waiting for runtime readiness"
                    }
                    .into(),
                });
            }
        }
        if let Some(w) = &ws {
            self.last_retained_round = w.last_retained_round;
        }
        self.worker = ws;
        self.state_memory = worker.map(|w| w.state_memory());
    }
}

/// The status document. It is sent with its keys sorted (through `serde_json::Value`), as it
/// always was.
async fn status(State(s): State<Arc<ControlState>>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(snapshot(&s)).unwrap_or_default())
}

/// The node's status now: what `control status` shows and the metrics endpoint reads.
pub fn snapshot(s: &ControlState) -> Status {
    use crate::consensus::engine::Backend;
    let mut st = s.base.clone();
    for (id, rx) in &s.runtimes {
        st.runtimes
            .insert(id.clone(), RuntimeEntry::of(id, rx.borrow().clone()));
    }
    if let Some(c) = &s.network.consensus {
        let view = c.view().borrow().clone();
        let mut cs = consensus_status(&view, &c.progress(), c.store_cache_bytes());
        if let Some((h, _)) = c.block_summary(cs.last_retained_height) {
            cs.last_retained_hash = hex::encode(h);
        }
        st.consensus = Some(cs);
        for (id, rt) in st.runtimes.iter_mut() {
            if let Ok(rid) = id.parse::<crate::bundle::RuntimeId>() {
                rt.add_chain(&rid, &view, &s.node_id, s.network.workers.get(&rid));
                // The time of the consensus block that finalized the latest round, and the
                // hash of the oldest round kept.
                if let Some(chain) = view.state.roothash.get(&rid) {
                    let h = chain.block.height.0;
                    if h == 0 {
                        rt.latest_time = view.state.genesis.genesis_time.clone();
                    } else if let Some((_, ms)) = c.block_summary(h) {
                        rt.latest_time = rfc3339_ms(ms);
                    }
                }
                rt.last_retained_hash = c
                    .runtime_block_hash(&rid, rt.last_retained_round)
                    .map(hex::encode)
                    .unwrap_or_default();
            }
        }
    }
    st.p2p = s.network.p2p.as_ref().map(|p| p.borrow().clone());
    st.registration = s.network.registration.as_ref().map(|r| r.borrow().clone());
    if let (Some(reg), Some(c)) = (&mut st.registration, &s.network.consensus) {
        let view = c.view().borrow().clone();
        let max = view.state.genesis.registry.max_node_expiration;
        reg.node_status = Some(match view.state.nodes.get(&s.node_id) {
            Some(n) => crate::worker::registration::NodeStatus {
                expiration_processed: false,
                freeze_end_time: 0,
                election_eligible_after: n.expiration.0.saturating_sub(max),
            },
            None => crate::worker::registration::NodeStatus {
                expiration_processed: reg.last_registration.is_some(),
                freeze_end_time: 0,
                election_eligible_after: 0,
            },
        });
    }
    st
}

/// An error reply: the code's HTTP status and an [`api::ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl std::fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = api::ErrorBody {
            error: self.message,
            code: self.code,
        };
        (status, Json(body)).into_response()
    }
}

impl From<crate::worker::compute::SubmitError> for ApiError {
    fn from(e: crate::worker::compute::SubmitError) -> Self {
        use crate::worker::compute::SubmitError as E;
        let code = match &e {
            E::Stopped | E::ShuttingDown => ErrorCode::ShuttingDown,
            E::Timeout(_) => ErrorCode::Timeout,
            E::NotRunning => ErrorCode::NotReady,
            E::CheckFailed(_) => ErrorCode::Unavailable,
            E::Rejected(_) => ErrorCode::Rejected,
        };
        Self::new(code, e)
    }
}

impl From<crate::worker::compute::QueryError> for ApiError {
    fn from(e: crate::worker::compute::QueryError) -> Self {
        use crate::worker::compute::QueryError as E;
        let code = match &e {
            E::NotRunning => ErrorCode::NotReady,
            E::Runtime(_) => ErrorCode::Rejected,
            E::Failed(_) => ErrorCode::Unavailable,
        };
        Self::new(code, e)
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Parses a JSON request body.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("request body: {e}")))
}

fn decode_b64(v: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v)
        .map_err(|_| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("expected \"{what}\": base64 CBOR"),
            )
        })
}

fn consensus(s: &ControlState, what: &str) -> Result<crate::consensus::engine::Handle, ApiError> {
    s.network
        .consensus
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NoConsensus, what))
}

/// Memory the CBOR in one request (a transaction, a query's arguments) may take decoded, at
/// most: a request body of tiny CBOR items would otherwise decode into up to 64× its size, on
/// each of the connections at once.
const MAX_DECODED: usize = 8 << 20;

/// The CBOR a request carries in its field `what`, decoded within [`MAX_DECODED`]; a
/// `BadRequest` naming the field otherwise.
fn request_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    crate::encoding::from_cbor_within(bytes, MAX_DECODED)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{what}: {e}")))
}

async fn submit(
    State(s): State<Arc<ControlState>>,
    body: axum::body::Bytes,
) -> ApiResult<api::Submitted> {
    use crate::consensus::engine::Backend;
    let c = consensus(&s, "this node runs no consensus (empty genesis)")?;
    let req: api::ConsensusSubmit = parse(&body)?;
    let bytes = decode_b64(&req.tx, "tx")?;
    let tx: crate::consensus::crypto::Signed = request_cbor(&bytes, "tx")?;
    let hash = hex::encode(crate::encoding::hash_of(&tx));
    c.submit(tx).map_err(|e| {
        use crate::consensus::engine::SubmitError as E;
        let code = match e {
            E::TooLarge(_) => ErrorCode::BadRequest,
            E::QueueFull => ErrorCode::Unavailable,
            E::Stopped => ErrorCode::ShuttingDown,
        };
        ApiError::new(code, e)
    })?;
    Ok(Json(api::Submitted { hash }))
}

async fn account(
    State(s): State<Arc<ControlState>>,
    axum::extract::Path(addr): axum::extract::Path<String>,
) -> ApiResult<api::AccountInfo> {
    use crate::consensus::engine::Backend;
    let c = consensus(&s, "this node runs no consensus")?;
    let a: crate::consensus::address::Address = addr
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e))?;
    let view = c.view().borrow().clone();
    let entity = view
        .state
        .entities
        .values()
        .find(|e| crate::consensus::address::Address::from_public_key(&e.id) == a)
        .cloned();
    Ok(Json(api::AccountInfo {
        address: a.to_string(),
        account: view.state.account(&a),
        height: view.state.height,
        epoch: view.state.epoch,
        chain_id: view.state.genesis.chain_id.clone(),
        chain_context: view.state.chain_context.clone(),
        required_stake: entity
            .as_ref()
            .map(|e| view.state.required_stake(&e.id, None)),
        entity,
    }))
}

async fn network(State(s): State<Arc<ControlState>>) -> ApiResult<api::NetworkParameters> {
    use crate::consensus::engine::Backend;
    let c = consensus(&s, "this node runs no consensus")?;
    let view = c.view().borrow().clone();
    let g = &view.state.genesis;
    Ok(Json(api::NetworkParameters {
        chain_id: g.chain_id.clone(),
        chain_context: view.state.chain_context.clone(),
        height: view.state.height,
        epoch: view.state.epoch,
        epoch_interval: g.epoch_interval,
        block_interval_ms: g.block_interval_ms,
        consensus_pubsub: g.consensus_pubsub,
        max_node_expiration: g.registry.max_node_expiration,
        debonding_interval: g.staking.debonding_interval,
        thresholds: g.staking.thresholds.clone(),
        runtimes: g.registry.runtimes.clone(),
    }))
}

async fn tx_status(
    State(s): State<Arc<ControlState>>,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> ApiResult<api::TxStatus> {
    let c = consensus(&s, "this node runs no consensus")?;
    let mut h = [0u8; 32];
    hex::decode_to_slice(&hash, &mut h).map_err(|_| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("'{hash}' is not a transaction hash (64 hex digits)"),
        )
    })?;
    let o = c.tx_outcome(&h);
    Ok(Json(api::TxStatus {
        hash: hex::encode(h),
        included: o.is_some(),
        height: o.as_ref().map(|(height, _)| *height),
        error: o.and_then(|(_, e)| e),
    }))
}

async fn runtime_stats(
    State(s): State<Arc<ControlState>>,
    axum::extract::Path(rid): axum::extract::Path<String>,
) -> ApiResult<api::RuntimeStats> {
    use crate::consensus::engine::Backend;
    let c = consensus(&s, "this node runs no consensus")?;
    let id: crate::bundle::RuntimeId = rid
        .parse()
        .map_err(|e: crate::bundle::RuntimeIdError| ApiError::new(ErrorCode::BadRequest, e))?;
    let view = c.view().borrow().clone();
    let Some(chain) = view.state.roothash.get(&id) else {
        return Err(ApiError::new(
            ErrorCode::UnknownRuntime,
            format!("runtime {id} is not registered in this network"),
        ));
    };
    let mut members: Vec<api::MemberStats> = Vec::new();
    for m in view
        .state
        .committees
        .get(&id)
        .map(|c| c.members.as_slice())
        .unwrap_or_default()
    {
        match members
            .iter_mut()
            .find(|x| x.node_id == m.public_key.to_string())
        {
            Some(x) => x.roles.push(m.role),
            None => members.push(api::MemberStats {
                node_id: m.public_key.to_string(),
                entity_id: view
                    .state
                    .nodes
                    .get(&m.public_key)
                    .map(|n| n.entity_id.to_string()),
                roles: vec![m.role],
                liveness: chain
                    .liveness
                    .get(&m.public_key)
                    .cloned()
                    .unwrap_or_default(),
            }),
        }
    }
    Ok(Json(api::RuntimeStats {
        runtime_id: id.to_string(),
        height: view.state.height,
        epoch: view.state.epoch,
        latest_round: chain.block.round,
        rounds_finalized: chain.rounds_finalized,
        rounds_failed: chain.rounds_failed,
        discrepancies: chain.discrepancies,
        members,
    }))
}

fn worker(s: &ControlState, rid: &str) -> Result<crate::worker::compute::Handle, ApiError> {
    let id: crate::bundle::RuntimeId = rid
        .parse()
        .map_err(|e: crate::bundle::RuntimeIdError| ApiError::new(ErrorCode::BadRequest, e))?;
    s.network.workers.get(&id).cloned().ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownRuntime,
            format!("runtime {id} is not served by this node (it must be in runtime.paths and registered in the genesis document)"),
        )
    })
}

fn cbor_b64(v: &ciborium::Value) -> String {
    use base64::Engine;
    let mut b = Vec::new();
    let _ = ciborium::into_writer(v, &mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The longest a submit may wait for finalization: a waiting client holds one of the
/// [`MAX_CONNECTIONS`] connection slots.
pub const MAX_SUBMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// How long a submit waits when it does not say (`timeout_ms`).
pub const DEFAULT_SUBMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A submit's `timeout_ms` (default [`DEFAULT_SUBMIT_TIMEOUT`]), refused above
/// [`MAX_SUBMIT_TIMEOUT`] or at zero.
fn submit_timeout(timeout_ms: Option<u64>) -> Result<std::time::Duration, ApiError> {
    let t = timeout_ms.map_or(DEFAULT_SUBMIT_TIMEOUT, std::time::Duration::from_millis);
    if t.is_zero() || t > MAX_SUBMIT_TIMEOUT {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "timeout_ms: {} is out of range 1..={}",
                t.as_millis(),
                MAX_SUBMIT_TIMEOUT.as_millis()
            ),
        ));
    }
    Ok(t)
}

/// `POST /api/v1/runtime/{id}/submit`: checks, gossips and waits until the transaction is
/// finalized.
async fn runtime_submit(
    State(s): State<Arc<ControlState>>,
    axum::extract::Path(rid): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<api::RuntimeSubmitted> {
    let w = worker(&s, &rid)?;
    let req: api::RuntimeSubmit = parse(&body)?;
    let tx = decode_b64(&req.tx, "tx")?;
    let timeout = submit_timeout(req.timeout_ms)?;
    let o = w.submit(tx, timeout).await?;
    Ok(Json(api::RuntimeSubmitted {
        hash: o.hash,
        round: o.round,
        index: o.index,
        result: api::TxResultBody {
            error: o.result.error,
            output: o.result.output.as_ref().map(cbor_b64),
        },
    }))
}

/// `POST /api/v1/runtime/{id}/submit-no-wait`: answered once check-tx passed.
async fn runtime_submit_no_wait(
    State(s): State<Arc<ControlState>>,
    axum::extract::Path(rid): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<api::RuntimeAccepted> {
    let w = worker(&s, &rid)?;
    let req: api::RuntimeSubmit = parse(&body)?;
    let tx = decode_b64(&req.tx, "tx")?;
    let timeout = submit_timeout(req.timeout_ms)?;
    let h = w.submit_no_wait(tx, timeout).await?;
    Ok(Json(api::RuntimeAccepted {
        hash: hex::encode(h),
    }))
}

/// `POST /api/v1/runtime/{id}/query` on the finalized state.
async fn runtime_query(
    State(s): State<Arc<ControlState>>,
    axum::extract::Path(rid): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<api::RuntimeQueryResult> {
    let w = worker(&s, &rid)?;
    let req: api::RuntimeQuery = parse(&body)?;
    let args = decode_b64(&req.args, "args")?;
    let args: ciborium::Value = request_cbor(&args, "args")?;
    let (round, data) = w.query(&req.method, args).await?;
    Ok(Json(api::RuntimeQueryResult {
        round,
        data: cbor_b64(&data),
    }))
}

/// `POST /api/v1/runtime/{id}/state`: one key of the finalized state with its proof.
async fn runtime_state(
    State(s): State<Arc<ControlState>>,
    axum::extract::Path(rid): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<api::RuntimeStateValue> {
    let w = worker(&s, &rid)?;
    let req: api::RuntimeStateGet = parse(&body)?;
    let key = decode_b64(&req.key, "key")?;
    if key.len() > paratime_mkvs::node::MAX_KEY_LEN {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "key: {} bytes, over the limit of {}",
                key.len(),
                paratime_mkvs::node::MAX_KEY_LEN
            ),
        ));
    }
    use base64::Engine;
    let (round, root, value, proof) = w.state_proof(key).await?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Ok(Json(api::RuntimeStateValue {
        round,
        state_root: hex::encode(root),
        value: value.as_deref().map(b64),
        proof: b64(&proof.encode()),
    }))
}

async fn is_synced(State(s): State<Arc<ControlState>>) -> Json<api::IsSynced> {
    use crate::consensus::engine::Backend;
    let synced = match &s.network.consensus {
        Some(c) => c.view().borrow().synced,
        None => *s.synced.borrow(),
    };
    Json(api::IsSynced { synced })
}

async fn shutdown(State(s): State<Arc<ControlState>>) -> Json<api::Shutdown> {
    log::info!(target: "control", "shutdown requested through the control API");
    s.shutdown.cancel();
    Json(api::Shutdown {
        shutdown: "requested".into(),
    })
}

/// Bounds on the control socket's clients: a local process that opens connections and never
/// sends a request, trickles a body, or opens thousands of connections must not take the node's
/// memory or keep `control status` from answering for longer than the header timeout.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once. Further connections are accepted, answered `503` with a
    /// reason and closed at once: a client learns why instead of hanging in the listen backlog,
    /// and slots held by idle clients free up within `header_read_timeout`.
    pub max_connections: usize,
    /// Time allowed for a request's headers, counted from when the server starts waiting for
    /// them: it is also the idle keep-alive timeout between requests.
    pub header_read_timeout: std::time::Duration,
    /// Time allowed for a request's body once its headers are in.
    pub body_read_timeout: std::time::Duration,
    /// Largest request body (a transaction in base64 JSON).
    pub max_body: usize,
    /// Several requests per connection (the control socket's clients reuse them).
    pub keep_alive: bool,
    /// A connection is closed after this long whatever it does (a client that sends requests
    /// and never reads the replies would otherwise hold its slot forever).
    pub max_connection_time: Option<std::time::Duration>,
}

/// Control connections a node serves at once.
pub const MAX_CONNECTIONS: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(10),
            // axum's default for JSON bodies, which the API always had.
            max_body: 2 << 20,
            keep_alive: true,
            // Submissions wait for their round: a connection may last as long as they do.
            max_connection_time: None,
        }
    }
}

/// The reply to a connection over the limit (the request is not read).
fn overloaded_reply(limit: usize) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"too many control connections (limit {limit}): try again shortly\",\"code\":\"unavailable\"}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Connections over the limit answered at once; more are closed without a reply.
const MAX_REFUSALS: usize = 32;

/// A listener the accept loop serves: the control socket, or the metrics TCP port.
pub(crate) trait Listen: Send + 'static {
    /// A connection.
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn next(&self) -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listen for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn next(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listen for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn next(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Answers a connection over the limit with `reply` once its request headers are in (at most
/// 8 KiB and one second), then closes it.
async fn refuse<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    reply: &[u8],
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wait = std::time::Duration::from_secs(1);
    let read_head = async {
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        while n < buf.len() {
            match stream.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => return,
                Ok(k) => n += k,
            }
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(wait, read_head).await;
    let _ = tokio::time::timeout(wait, stream.write_all(reply)).await;
    let _ = stream.shutdown().await;
}

/// Reads the whole body within the limits before a handler runs, so no handler waits on a slow
/// client and every refusal says why.
async fn bounded_body(
    State(limits): State<Limits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, limits.max_body);
    let bytes = match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let too_large = e
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return if too_large {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request body larger than {} bytes", limits.max_body),
                )
            } else {
                ApiError::new(ErrorCode::BadRequest, "request body could not be read")
            }
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "request body not received within {}",
                    humantime::format_duration(limits.body_read_timeout)
                ),
            )
            .into_response()
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

fn router(state: ControlState, limits: Limits) -> Router {
    Router::new()
        .route(api::STATUS, get(status))
        .route(api::IS_SYNCED, get(is_synced))
        .route(api::SHUTDOWN, post(shutdown))
        .route(api::CONSENSUS_SUBMIT, post(submit))
        .route("/api/v1/consensus/account/{addr}", get(account))
        .route(api::NETWORK, get(network))
        .route("/api/v1/consensus/tx/{hash}", get(tx_status))
        .route("/api/v1/runtime/{id}/submit", post(runtime_submit))
        .route(
            "/api/v1/runtime/{id}/submit-no-wait",
            post(runtime_submit_no_wait),
        )
        .route("/api/v1/runtime/{id}/query", post(runtime_query))
        .route("/api/v1/runtime/{id}/state", post(runtime_state))
        .route("/api/v1/runtime/{id}/stats", get(runtime_stats))
        // Shared: axum clones the state for every request, and the status channels, worker
        // handles and static status are a few dozen allocations (~4 % of a busy client node's
        // CPU when cloned per submission).
        .with_state(Arc::new(state))
        .layer(axum::middleware::from_fn_with_state(limits, bounded_body))
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body))
}

/// Serves the API on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: ControlState,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let limits = Limits::default();
    let overloaded = overloaded_reply(limits.max_connections);
    serve_router(
        "control",
        listener,
        router(state, limits),
        limits,
        overloaded,
        stop,
    )
    .await
}

/// The accept loop: one task per connection, at most `limits.max_connections` of them; on stop,
/// connections finish their request in flight (bounded) and close.
pub(crate) async fn serve_router(
    what: &'static str,
    listener: impl Listen,
    app: Router,
    limits: Limits,
    overloaded: Vec<u8>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::sync::Arc;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(limits.keep_alive);
    let overloaded = std::sync::Arc::new(overloaded);
    let refusals = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            r = listener.next() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors or memory: wait instead of spinning; connections end
                    // within the timeouts and free what is needed.
                    log::warn!(target: "control", err:% = e; "{what}: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        while conns.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            log::debug!(target: "control", "{what}: connection refused: {} connections open", limits.max_connections);
            // The reply waits for the request's headers (an HTTP client takes a reply before its
            // request as an error), briefly and for a bounded number of refusals at once; past
            // that, the connection is just closed.
            if let Ok(slot) = refusals.clone().try_acquire_owned() {
                let reply = overloaded.clone();
                conns.spawn(async move {
                    let _slot = slot;
                    refuse(stream, &reply).await;
                });
            }
            continue;
        };
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(app.clone()),
        );
        let stop = stop.clone();
        let lifetime = limits.max_connection_time;
        conns.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let deadline = async {
                match lifetime {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = deadline => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(6), drain).await;
    Ok(())
}

/// Binds the control socket (a stale socket file is replaced; the file is made 0600).
pub fn bind_std(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if md.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
    }
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn state() -> ControlState {
        let identity = IdentityStatus {
            node: String::new(),
            p2p: String::new(),
            consensus: String::new(),
        };
        ControlState {
            base: Status {
                software_version: crate::SOFTWARE_VERSION.into(),
                mode: "client".into(),
                identity,
                runtimes: BTreeMap::new(),
                sandbox: None,
                confinement: None,
                bundles_refused: Vec::new(),
                consensus: None,
                p2p: None,
                registration: None,
            },
            runtimes: Vec::new(),
            synced: watch::channel(true).1,
            shutdown: tokio_util::sync::CancellationToken::new(),
            network: NetworkState::default(),
            node_id: crate::consensus::crypto::PublicKey([0; 32]),
        }
    }

    /// Reads until the server closes; fails when it stays open past `within`.
    async fn closed_within(s: &mut tokio::net::UnixStream, within: Duration) -> String {
        let mut buf = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut buf))
            .await
            .expect("the server closes the connection")
            .ok();
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_bounded_and_idle_ones_closed_after_the_header_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, listener) = socket(dir.path());
        let limits = Limits {
            max_connections: 8,
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            max_body: 1024,
            keep_alive: true,
            max_connection_time: None,
        };
        let (stop, server) = serve_limited(listener, limits);
        let addr = path.to_str().expect("utf8");
        let (code, body) = client::request(addr, "GET", "/api/v1/status")
            .await
            .expect("status");
        assert_eq!(code, 200, "{body}");

        // Connections that never send a byte, beyond the limit; one that stops mid-headers.
        let mut held = Vec::new();
        for _ in 0..limits.max_connections + 20 {
            held.push(
                tokio::net::UnixStream::connect(&path)
                    .await
                    .expect("connect"),
            );
        }
        held[0]
            .write_all(b"GET /api/v1/status HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;

        // Over the limit: refused at once, with the reason.
        let started = Instant::now();
        let (code, body) = client::request(addr, "GET", "/api/v1/status")
            .await
            .expect("a reply, not a hang");
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("too many control connections (limit 8)"),
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
        // One that sends nothing gets the same reply after a second, then the close.
        let refused = closed_within(
            &mut held[limits.max_connections + 5],
            Duration::from_secs(2),
        )
        .await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

        // The held ones are closed by the header timeout (1 s here), then status answers again.
        let started = Instant::now();
        for s in &mut held {
            closed_within(s, Duration::from_secs(3)).await;
        }
        assert!(started.elapsed() < Duration::from_secs(3));
        let (code, body) = client::request(addr, "GET", "/api/v1/status")
            .await
            .expect("status");
        assert_eq!(code, 200, "{body}");

        // A keep-alive connection idle after its request is closed by the same timeout.
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        s.write_all(b"GET /api/v1/is-synced HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let reply = closed_within(&mut s, Duration::from_secs(3)).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("\"synced\":true"), "{reply}");

        // Bodies: over the size limit, and one that never arrives.
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        let big = "x".repeat(4096);
        let req = format!(
            "POST /api/v1/consensus/submit HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{big}",
            big.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let reply = closed_within(&mut s, Duration::from_secs(3)).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        assert!(
            reply.contains("request body larger than 1024 bytes"),
            "{reply}"
        );
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        s.write_all(b"POST /api/v1/consensus/submit HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .await
            .expect("write");
        let reply = closed_within(&mut s, Duration::from_secs(3)).await;
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");

        stops_cleanly(stop, server).await;
    }

    /// A control socket in `dir`, bound as a node binds it.
    fn socket(dir: &Path) -> (std::path::PathBuf, tokio::net::UnixListener) {
        let path = dir.join("internal.sock");
        let std_listener = bind_std(&path).expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::UnixListener::from_std(std_listener).expect("listener");
        (path, listener)
    }

    /// Serves the test node's control API on `listener` within `limits` until `stop`.
    fn serve_limited(
        listener: impl Listen,
        limits: Limits,
    ) -> (
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(serve_router(
            "control",
            listener,
            router(state(), limits),
            limits,
            overloaded_reply(limits.max_connections),
            stop.clone(),
        ));
        (stop, server)
    }

    /// Stops a test server and waits for it to end without error.
    async fn stops_cleanly(
        stop: tokio_util::sync::CancellationToken,
        server: tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(7), server)
            .await
            .expect("server stops")
            .expect("join")
            .expect("serve");
    }

    /// The control socket, counting the connections it accepts.
    struct Counting(
        tokio::net::UnixListener,
        Arc<std::sync::atomic::AtomicUsize>,
    );

    impl Listen for Counting {
        type Stream = tokio::net::UnixStream;
        async fn next(&self) -> std::io::Result<Self::Stream> {
            let s = self.0.accept().await.map(|(s, _)| s)?;
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(s)
        }
    }

    /// A client keeps its connection between calls (clones too, and concurrent calls open no
    /// more than they need); when the server closed the kept connection (its idle timeout,
    /// 300 ms here), the next call goes out on a new one instead of failing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_keeps_its_connection_and_survives_the_server_closing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, listener) = socket(dir.path());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = Counting(listener, accepted.clone());
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (stop, server) = serve_limited(listener, limits);
        let count = || accepted.load(std::sync::atomic::Ordering::SeqCst);
        let c = client::Client::new(path.to_str().expect("utf8"));
        for _ in 0..20 {
            c.is_synced().await.expect("is-synced");
        }
        c.clone().status().await.expect("status from a clone");
        assert_eq!((count(), c.kept()), (1, 1), "(connections, kept)");
        // Four calls at once: four connections, all kept.
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.status().await.map(|_| ()) })
            })
            .collect();
        for call in calls {
            call.await.expect("join").expect("status");
        }
        assert!(
            count() <= 4 && c.kept() == count(),
            "{} connections, {} kept",
            count(),
            c.kept()
        );
        let before = count();
        // The server closes idle connections after 300 ms.
        tokio::time::sleep(Duration::from_millis(800)).await;
        c.is_synced()
            .await
            .expect("is-synced after the server closed the kept connections");
        assert_eq!(count(), before + 1);
        stops_cleanly(stop, server).await;
    }

    /// A request body holds at most 2 MiB, ~1.5 MiB of CBOR once its base64 is taken off: 1.5
    /// million one-byte items in it would decode into ~60 MiB of `ciborium::Value`s, on each
    /// of the 128 connections at once. Such CBOR is refused before it is decoded, naming the
    /// field; a 1.5 MiB byte string, the largest honest argument, decodes.
    #[test]
    fn request_cbor_is_decoded_within_a_bound_naming_the_field() {
        let carried = (2usize << 20) / 4 * 3 - 16;
        let mut tiny = Vec::new();
        ciborium::into_writer(&vec![0u8; carried], &mut tiny).expect("encode");
        assert!(tiny.len() <= carried + 16);
        assert!(
            crate::encoding::from_cbor::<ciborium::Value>(&tiny).is_ok(),
            "the items are valid CBOR: only the bound refuses them"
        );
        let e = request_cbor::<ciborium::Value>(&tiny, "args").expect_err("refused");
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(
            e.message.starts_with("args: ")
                && e.message
                    .contains(&format!("more than the {MAX_DECODED} allowed")),
            "{}",
            e.message
        );
        let mut large = Vec::new();
        ciborium::into_writer(&serde_bytes::ByteBuf::from(vec![7u8; carried]), &mut large)
            .expect("encode");
        let v: ciborium::Value = request_cbor(&large, "tx").expect("an honest large argument");
        assert_eq!(v, ciborium::Value::Bytes(vec![7u8; carried]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_carry_a_code_and_its_status_and_the_client_acts_on_them() {
        use client::{Client, ClientError};
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, listener) = socket(dir.path());
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(serve(listener, state(), stop.clone()));
        let c = Client::new(path.to_str().expect("utf8"));
        let api_error = |r: Result<_, ClientError>| match r {
            Err(ClientError::Api { status, body }) => (status, body.code),
            Err(e) => panic!("not an API error: {e:?}"),
            Ok::<(), _>(()) => panic!("accepted"),
        };
        // No consensus on this node.
        let r = c.submit(&api::ConsensusSubmit { tx: "AA==".into() }).await;
        assert_eq!(api_error(r.map(|_| ())), (400, ErrorCode::NoConsensus));
        let r = c
            .account("oasis1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq")
            .await;
        assert_eq!(api_error(r.map(|_| ())), (400, ErrorCode::NoConsensus));
        // A runtime this node does not serve, and a runtime ID that is not one.
        let rid = "00".repeat(32);
        let q = api::RuntimeQuery {
            method: "kv.Get".into(),
            args: "oA==".into(),
        };
        let r = c.runtime_query(&rid, &q).await;
        assert_eq!(api_error(r.map(|_| ())), (404, ErrorCode::UnknownRuntime));
        let r = c.runtime_query("not-hex", &q).await;
        assert_eq!(api_error(r.map(|_| ())), (400, ErrorCode::BadRequest));
        // A body that is not the request's type.
        let (code, body) = client::request_with(
            path.to_str().expect("utf8"),
            "POST",
            &api::runtime_submit(&rid),
            Some(&serde_json::json!({ "tx": 5 })),
        )
        .await
        .expect("request");
        let body: api::ErrorBody = serde_json::from_str(&body).expect("error body");
        // The runtime lookup comes first.
        assert_eq!((code, body.code), (404, ErrorCode::UnknownRuntime));
        // The typed answers.
        assert!(c.is_synced().await.expect("is-synced").synced);
        let st = c.status().await.expect("status");
        assert_eq!(st["mode"], "client");
        assert!(
            st.get("consensus").is_none(),
            "consensus shown without one: {st}"
        );
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(7), server).await;
        // A node that is not there: unreachable and worth waiting for; not an API error.
        let e = Client::new(dir.path().join("gone.sock").to_str().expect("utf8"))
            .is_synced()
            .await
            .expect_err("connected to nothing");
        assert!(
            e.is_unreachable() && e.is_not_ready() && e.code().is_none(),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("failed to connect to "), "{e}");
    }

    #[tokio::test]
    async fn a_node_that_accepts_but_never_answers_is_reported_not_waited_on() {
        use client::{Client, ClientError};
        // What a stopped node (SIGSTOP) looks like from outside: the kernel completes the
        // connection, and nothing ever reads the request or writes a reply.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("internal.sock");
        let _listener = bind_std(&path).expect("bind");
        let c = Client::new(path.to_str().expect("utf8"))
            .with_reply_timeout(Duration::from_millis(300));
        let start = std::time::Instant::now();
        let e = c.status().await.expect_err("a reply from nobody");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(e, ClientError::NoReply { .. }), "{e:?}");
        assert!(e.is_unreachable() && !e.is_not_ready(), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("internal.sock") && text.contains("not answering"),
            "{text}"
        );
        // A submit may take as long as it asked the node to wait for, and no longer.
        let req = api::RuntimeSubmit {
            tx: String::new(),
            timeout_ms: Some(200),
        };
        let start = std::time::Instant::now();
        let e = c
            .runtime_submit(&"00".repeat(32), &req)
            .await
            .expect_err("a reply from nobody");
        assert!(
            matches!(e, ClientError::NoReply { after, .. } if after == Duration::from_millis(500)),
            "{e:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn state_reads_refuse_oversized_and_malformed_keys_and_prove_absence() {
        use client::{Client, ClientError};
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, listener) = socket(dir.path());
        let rid: crate::bundle::RuntimeId = "00".repeat(32).parse().expect("rid");
        let tree = crate::host::state::RuntimeState::open(&dir.path().join("tree.redb"), 1 << 20)
            .expect("tree");
        let mut st = state();
        st.network.workers.insert(
            rid,
            crate::worker::compute::Handle::detached(rid, std::sync::Arc::new(tree)),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(serve(listener, st, stop.clone()));
        let c = Client::new(path.to_str().expect("utf8"));
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let get = |key: String| api::RuntimeStateGet { key };
        // Over the tree's key limit: refused before the tree is touched, naming the limit.
        let huge = vec![b'k'; paratime_mkvs::node::MAX_KEY_LEN + 1];
        match c.runtime_state(&rid.to_string(), &get(b64(&huge))).await {
            Err(ClientError::Api { status, body }) => {
                assert_eq!((status, body.code), (400, ErrorCode::BadRequest));
                assert!(body.error.contains("over the limit"), "{}", body.error);
            }
            other => panic!("an oversized key was read: {other:?}"),
        }
        // Not base64.
        match c.runtime_state(&rid.to_string(), &get("%%%".into())).await {
            Err(ClientError::Api { status, .. }) => assert_eq!(status, 400),
            other => panic!("malformed key accepted: {other:?}"),
        }
        // An absent key: no value, and a proof of its absence against the (empty) root.
        let v = c
            .runtime_state(&rid.to_string(), &get(b64(b"nothing")))
            .await
            .expect("state");
        assert_eq!(v.value, None);
        let proof = paratime_mkvs::Proof::decode(
            &base64::engine::general_purpose::STANDARD
                .decode(&v.proof)
                .expect("b64"),
        )
        .expect("proof");
        let root: [u8; 32] = hex::decode(&v.state_root)
            .expect("hex")
            .try_into()
            .expect("32");
        assert_eq!(proof.verify(&root, b"nothing"), Ok(None));
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(7), server).await;
    }

    #[test]
    fn not_ready_is_told_by_code_not_by_message() {
        use client::ClientError;
        let api = |code, error: &str| ClientError::Api {
            status: code_status(code),
            body: api::ErrorBody {
                error: error.into(),
                code,
            },
        };
        fn code_status(c: ErrorCode) -> u16 {
            c.http_status()
        }
        // The message says "waiting" but the code says rejected: not retried.
        let e = api(ErrorCode::Rejected, "waiting for hosted runtime provision");
        assert!(!e.is_not_ready() && !e.is_unreachable());
        let e = api(ErrorCode::NotReady, "anything");
        assert!(e.is_not_ready() && !e.is_unreachable());
    }

    #[test]
    fn a_submit_cannot_hold_a_connection_slot_for_ever() {
        assert_eq!(
            submit_timeout(None).expect("default"),
            std::time::Duration::from_secs(60)
        );
        assert_eq!(
            submit_timeout(Some(600_000)).expect("the maximum"),
            MAX_SUBMIT_TIMEOUT
        );
        for hostile in [0, 600_001, u64::MAX] {
            let e = submit_timeout(Some(hostile)).expect_err("refused");
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(e.message.starts_with("timeout_ms: "), "{}", e.message);
        }
    }

    /// Whatever listens on the socket cannot make the client read without end: a reply that
    /// streams past [`client::MAX_REPLY`] is refused by name.
    #[tokio::test]
    async fn the_client_refuses_an_endless_reply() {
        let dir = std::env::temp_dir().join(format!("pt-endless-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let sock = dir.join("s.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        tokio::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = vec![b'x'; 1 << 20];
            let head = format!("{:x}\r\n", chunk.len());
            loop {
                if s.write_all(head.as_bytes()).await.is_err()
                    || s.write_all(&chunk).await.is_err()
                    || s.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
            }
        });
        let address = format!("unix:{}", sock.display());
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            client::Client::new(&address).status(),
        )
        .await
        .expect("the client stops reading at its limit");
        let _ = std::fs::remove_dir_all(&dir);
        let e = r.expect_err("an endless reply is an error");
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
