//! Runs Malachite in the node's tokio runtime and answers its messages from a [`ChainApp`].
//!
//! The value consensus decides on is a block hash; the proposer streams the block itself as
//! proposal parts (Init, Data chunks, Fin). A receiver reassembles the stream (bounded in size
//! and number), checks that it comes from the round's proposer, re-executes it and tells the
//! engine whether it is valid. The engine matches it with the proposer's signed proposal by hash.

use crate::chain::{ChainApp, CommitCert};
use crate::codec::{encode_cert, CborCodec};
use crate::context::{
    round_from_wire, round_to_wire, Address, BlockHash, Ctx, Height, ProposalPart, ValidatorSet,
    Value,
};
use crate::signing::{EngineSigner, EngineVerifier};
use bytes::Bytes;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, DiscoveryConfig, NodeConfig, P2pConfig, PubSubProtocol, ValueSyncConfig,
};
use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
pub use malachitebft_app_channel::app::net::Multiaddr;
use malachitebft_app_channel::app::streaming::StreamContent;
use malachitebft_app_channel::app::types::core::{
    Context as _, ExtendedCommitCertificate, ExtendedCommitSignature, HeightParams, LinearTimeouts,
    Round, Validity,
};
use malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{Keypair, LocallyProposedValue, PeerId, ProposedValue};
use malachitebft_app_channel::{
    AppMsg, Channels, ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, NetworkMsg,
    RequestContext, SyncContext, WalContext,
};
use paratime_state::block::Proposed;
use paratime_state::crypto::PublicKey;
use paratime_state::genesis::ConsensusPubSub;
use paratime_state::signing::{KeyRole, SlotSigner};
use paratime_state::Height as ChainHeight;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The certificate format tag stored with committed blocks.
pub const CERT_ENGINE: &str = "malachite-0.8";
/// A block larger than this is refused (encoded), so a stream cannot grow without bound.
pub const MAX_BLOCK_BYTES: u64 = 8 << 20;
/// Size of a proposal part's data.
const CHUNK: usize = 256 << 10;
/// At most this many partial streams are kept (the oldest is dropped).
const MAX_STREAMS: usize = 64;
/// At most this many bytes are buffered across all partial streams (the oldest are dropped).
const MAX_BUFFERED: u64 = 32 << 20;
/// Blocks of future heights kept until their height starts: heights, and blocks per height.
const MAX_FUTURE_HEIGHTS: usize = 2;
const MAX_FUTURE_BLOCKS: usize = 4;
/// Values served per sync request.
const MAX_SYNC_BATCH: u64 = 64;

/// How to run the engine.
#[derive(Clone, Debug)]
pub struct Options {
    /// Name in logs and metrics.
    pub moniker: String,
    /// Consensus listen address (`/ip4/127.0.0.1/tcp/26656`).
    pub listen: Multiaddr,
    /// Peers to keep connected to.
    pub peers: Vec<Multiaddr>,
    /// The engine's write-ahead log (a file).
    pub wal: PathBuf,
    /// Secret of the consensus-network identity (the node's P2P key, as oasis does).
    pub network_secret: [u8; 32],
    /// Least time between blocks.
    pub block_interval: Duration,
    /// Proposal timeout of round 0.
    pub propose_timeout: Duration,
    /// How proposals and votes travel (the genesis's `consensus_pubsub`).
    pub pubsub: ConsensusPubSub,
}

#[derive(Clone, Debug)]
struct Config {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for Config {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// A running engine.
pub struct Running {
    /// The engine's actors.
    pub engine: EngineHandle,
    /// The task answering the engine.
    pub app: tokio::task::JoinHandle<()>,
    /// Where the engine is (height, round, step) and its peers on the consensus port.
    pub progress: watch::Receiver<Progress>,
    /// The task that follows the engine's events and polls its peers.
    watcher: tokio::task::JoinHandle<()>,
    /// Set by [`Running::stop`]: the app task's end is then expected, not a failure.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Running {
    /// Stops the engine and the app task.
    pub async fn stop(self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.watcher.abort();
        self.engine.actor.stop(Some("node stopping".into()));
        let _ = self.engine.handle.await;
        self.app.abort();
        let _ = self.app.await;
    }

    /// Kills the engine without letting it flush anything (tests: a crash in process).
    pub async fn kill(self) {
        self.watcher.abort();
        self.engine.actor.kill();
        let _ = self.engine.handle.await;
        self.app.abort();
        let _ = self.app.await;
    }
}

/// The step of the current round, as far as this node has gone in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Step {
    /// The engine has not started a height yet (starting, replaying its WAL).
    #[default]
    Starting,
    /// Waiting for the round's proposal.
    Propose,
    /// This node sent its prevote.
    Prevote,
    /// This node sent its precommit.
    Precommit,
    /// The height is decided; its block is being committed.
    Commit,
}

impl Step {
    /// The name in `control status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Propose => "propose",
            Self::Prevote => "prevote",
            Self::Precommit => "precommit",
            Self::Commit => "commit",
        }
    }

    /// The later of two steps of one round (an event may arrive twice, or late).
    fn max_with(self, other: Self) -> Self {
        if (other as u8) > (self as u8) {
            other
        } else {
            self
        }
    }
}

/// A peer on the consensus port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// libp2p peer ID.
    pub peer_id: String,
    /// Its address (multiaddr). (Whether it is a validator is the node's to say: Malachite
    /// knows only through validator proofs, which this network does not send; a validator's
    /// peer ID is its registered P2P key.)
    pub address: String,
    /// "inbound" or "outbound".
    pub direction: Option<String>,
}

/// Where the engine is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Height being decided.
    pub height: u64,
    /// Round of that height.
    pub round: i64,
    /// Step of that round.
    pub step: Step,
    /// The round's proposer.
    pub proposer: Option<PublicKey>,
    /// Connected peers on the consensus port, sorted by peer ID.
    pub peers: Vec<Peer>,
}

/// How often the watcher asks the network actor for its peers.
const PEERS_EVERY: Duration = Duration::from_secs(2);

/// Follows the engine's events (round started, own votes sent, decided) and, every
/// [`PEERS_EVERY`], its peers, into `tx`. Ends when the engine's event channel closes.
async fn watch_engine(
    mut events: malachitebft_app_channel::app::events::RxEvent<Ctx>,
    net: tokio::sync::mpsc::Sender<malachitebft_app_channel::NetworkRequest>,
    me: Address,
    tx: watch::Sender<Progress>,
) {
    use malachitebft_app_channel::app::consensus::SignedConsensusMsg;
    use malachitebft_app_channel::app::engine::util::events::Event;
    use malachitebft_app_channel::app::types::core::{Vote as _, VoteType};
    use tokio::sync::broadcast::error::RecvError;
    let mut tick = tokio::time::interval(PEERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(Event::StartedRound(h, r, proposer, _)) => tx.send_modify(|p| {
                    p.height = h.0;
                    p.round = r.as_i64();
                    p.step = Step::Propose;
                    p.proposer = Some(proposer.0);
                }),
                Ok(Event::Published(SignedConsensusMsg::Vote(v))) => {
                    let v = &v.message;
                    if v.validator_address() == &me {
                        tx.send_modify(|p| {
                            if p.height == v.height.0 && p.round == v.round.as_i64() {
                                let s = match v.vote_type() {
                                    VoteType::Prevote => Step::Prevote,
                                    VoteType::Precommit => Step::Precommit,
                                };
                                p.step = p.step.max_with(s);
                            }
                        });
                    }
                }
                Ok(Event::Decided { commit_certificate }) => tx.send_modify(|p| {
                    if p.height == commit_certificate.height.0 {
                        p.step = Step::Commit;
                    }
                }),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let Ok(Some(dump)) =
                    malachitebft_app_channel::NetworkRequest::dump_state(&net).await
                else {
                    continue;
                };
                let mut peers: Vec<Peer> = dump
                    .peers
                    .iter()
                    .map(|(id, info)| Peer {
                        peer_id: id.to_string(),
                        address: info.address.to_string(),
                        direction: info.connection_direction.map(|d| d.as_str().to_string()),
                    })
                    .collect();
                peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
                tx.send_if_modified(|p| {
                    let changed = p.peers != peers;
                    p.peers = std::mem::take(&mut peers);
                    changed
                });
            }
        }
    }
}

fn config(opts: &Options) -> Config {
    let consensus = ConsensusConfig {
        p2p: P2pConfig {
            listen_addr: opts.listen.clone(),
            persistent_peers: opts.peers.clone(),
            // Malachite's defaults (5 connections per IP, 30 s before an IP may reconnect)
            // refuse a network whose nodes share an address (a localnet, nodes behind one NAT)
            // and keep a restarted node out for half a minute.
            discovery: DiscoveryConfig {
                max_connections_per_ip: 128,
                ip_throttle_duration: Duration::from_secs(2),
                ..DiscoveryConfig::default()
            },
            protocol: match opts.pubsub {
                ConsensusPubSub::Gossipsub => P2pConfig::default().protocol,
                ConsensusPubSub::Broadcast => PubSubProtocol::Broadcast,
            },
            ..P2pConfig::default()
        },
        ..ConsensusConfig::default()
    };
    Config {
        moniker: opts.moniker.clone(),
        consensus,
        // Malachite's defaults suit blocks of seconds: peers exchange their heights every 10 s,
        // so a node that fell behind a chain of 200 ms blocks learns of it only 50 blocks
        // later, and catches up in 10 s steps. Status every five blocks (1 to 10 s).
        value_sync: ValueSyncConfig {
            status_update_interval: (opts.block_interval * 5)
                .clamp(Duration::from_secs(1), Duration::from_secs(10)),
            ..ValueSyncConfig::default()
        },
    }
}

/// Why the consensus engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The network secret is not an ed25519 key.
    #[error("consensus network key: {0}")]
    NetworkKey(String),
    /// Malachite refused to start (WAL, network, actors).
    #[error("starting the consensus engine: {0}")]
    Engine(String),
    /// The test-only Byzantine network could not start.
    #[error("starting the Byzantine network: {0}")]
    Byzantine(String),
}

fn identity(opts: &Options, me: &Address) -> Result<NetworkIdentity, StartError> {
    let keypair = Keypair::ed25519_from_bytes(opts.network_secret)
        .map_err(|e| StartError::NetworkKey(e.to_string()))?;
    Ok(NetworkIdentity::new(
        opts.moniker.clone(),
        keypair,
        Some(me.to_string()),
    ))
}

fn spawn_app(
    app: Arc<dyn ChainApp>,
    me: Address,
    opts: &Options,
    channels: Channels<Ctx>,
    engine: EngineHandle,
) -> Running {
    let timeouts = LinearTimeouts {
        propose: opts.propose_timeout,
        ..LinearTimeouts::default()
    };
    let mut state = AppState {
        app,
        me,
        timeouts,
        block_interval: opts.block_interval,
        current: Height(0),
        streams: HashMap::new(),
        stream_order: Vec::new(),
        buffered: 0,
        pending: BTreeMap::new(),
        stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let stopping = state.stopping.clone();
    let (progress_tx, progress) = watch::channel(Progress::default());
    let watcher = tokio::spawn(watch_engine(
        channels.events.subscribe(),
        channels.net_requests.clone(),
        me,
        progress_tx,
    ));
    let task = tokio::spawn(async move { state.run(channels).await });
    Running {
        engine,
        app: task,
        progress,
        watcher,
        stopping,
    }
}

/// Starts Malachite and the task that answers it.
pub async fn start(
    app: Arc<dyn ChainApp>,
    signer: Arc<dyn SlotSigner>,
    opts: Options,
) -> Result<Running, StartError> {
    let chain = app.chain_context();
    let me = Address(signer.public_key(KeyRole::Consensus));
    let (channels, engine) = malachitebft_app_channel::start_engine(
        Ctx,
        config(&opts),
        WalContext::new(opts.wal.clone(), CborCodec),
        NetworkContext::new(identity(&opts, &me)?, CborCodec),
        ConsensusContext::new_validator(
            me,
            Box::new(EngineVerifier::new(chain.clone())),
            Box::new(EngineSigner::new(signer, chain)),
        ),
        SyncContext::new(CborCodec),
        RequestContext::new(100),
    )
    .await
    .map_err(|e| StartError::Engine(format!("{e:#}")))?;
    Ok(spawn_app(app, me, &opts, channels, engine))
}

/// Test-only: starts a validator whose network layer equivocates as `attack` says (conflicting
/// proposals name a block nobody has; conflicting votes go to nil). `double_signer` signs the
/// conflicting messages — it must not be the node's guarded signer, which would refuse them.
#[cfg(feature = "byzantine")]
pub async fn start_byzantine(
    app: Arc<dyn ChainApp>,
    signer: Arc<dyn SlotSigner>,
    double_signer: Arc<dyn SlotSigner>,
    attack: malachitebft_engine_byzantine::ByzantineConfig,
    opts: Options,
) -> Result<Running, StartError> {
    use malachitebft_app_channel::{ByzantineContext, EngineBuilder};
    let chain = app.chain_context();
    let me = Address(signer.public_key(KeyRole::Consensus));
    let flip: malachitebft_engine_byzantine::ConflictingValueFn<Ctx> = Box::new(|v: &Value| {
        let mut h = v.0 .0;
        h[31] ^= 0xff;
        Value(BlockHash(h))
    });
    let (channels, engine) = EngineBuilder::new(Ctx, config(&opts))
        .with_default_wal(WalContext::new(opts.wal.clone(), CborCodec))
        .with_byzantine_network(ByzantineContext {
            identity: identity(&opts, &me)?,
            codec: CborCodec,
            config: attack,
            signer: Box::new(EngineSigner::new(double_signer, chain.clone())),
            address: me,
            conflicting_value_fn: Some(flip),
            conflicting_vote_value_fn: None,
        })
        .await
        .map_err(|e| StartError::Byzantine(format!("{e:#}")))?
        .with_default_sync(SyncContext::new(CborCodec))
        .with_default_consensus(ConsensusContext::new_validator(
            me,
            Box::new(EngineVerifier::new(chain.clone())),
            Box::new(EngineSigner::new(signer, chain)),
        ))
        .with_default_request(RequestContext::new(100))
        .build()
        .await
        .map_err(|e| StartError::Engine(format!("{e:#}")))?;
    Ok(spawn_app(app, me, &opts, channels, engine))
}

struct Partial {
    init: Option<(u64, i64, i64, PublicKey, u64)>,
    data: BTreeMap<u64, Vec<u8>>,
    fin: Option<u64>,
    bytes: u64,
}

struct AppState {
    app: Arc<dyn ChainApp>,
    me: Address,
    timeouts: LinearTimeouts,
    block_interval: Duration,
    current: Height,
    streams: HashMap<(PeerId, StreamId), Partial>,
    stream_order: Vec<(PeerId, StreamId)>,
    /// Bytes buffered in `streams`.
    buffered: u64,
    /// Blocks that arrived for a future height: (height, round, proposer, block).
    pending: BTreeMap<u64, Vec<(i64, PublicKey, Proposed)>>,
    /// The node is stopping the engine (see [`Running::stop`]).
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// How often a proposer waiting for [`ChainApp::ready_to_propose`] asks again.
const READY_POLL: Duration = Duration::from_millis(5);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn stream_id(height: u64, round: i64, tag: u8) -> StreamId {
    let mut b = height.to_be_bytes().to_vec();
    b.extend_from_slice(&round.to_be_bytes());
    b.push(tag);
    StreamId::new(Bytes::from(b))
}

impl AppState {
    fn params(&self, height: u64) -> HeightParams<Ctx> {
        let set = self
            .app
            .validator_set(ChainHeight(height))
            .or_else(|| {
                self.app
                    .validator_set(self.app.last_committed().saturating_add(1))
            })
            .unwrap_or_default();
        HeightParams::new(
            ValidatorSet::from_state(&set),
            self.timeouts,
            Some(self.block_interval),
        )
    }

    fn expected_proposer(&self, height: u64, round: Round) -> Option<PublicKey> {
        let set = ValidatorSet::from_state(&self.app.validator_set(ChainHeight(height))?);
        if set.validators.is_empty() {
            return None;
        }
        Some(Ctx.select_proposer(&set, Height(height), round).public_key)
    }

    fn parts(
        block: &Proposed,
        round: Round,
        pol: Round,
        proposer: PublicKey,
    ) -> Vec<StreamMessage<ProposalPart>> {
        let bytes = paratime_state::encoding::canonical_cbor(block);
        let h = block.header.height.0;
        let id = stream_id(h, round_to_wire(round), u8::from(pol.is_defined()));
        let mut out = vec![StreamMessage::new(
            id.clone(),
            0,
            StreamContent::Data(ProposalPart::Init {
                height: h,
                round: round_to_wire(round),
                pol_round: round_to_wire(pol),
                proposer,
                len: bytes.len() as u64,
            }),
        )];
        let mut seq = 1u64;
        for c in bytes.chunks(CHUNK) {
            out.push(StreamMessage::new(
                id.clone(),
                seq,
                StreamContent::Data(ProposalPart::Data(c.to_vec())),
            ));
            seq += 1;
        }
        out.push(StreamMessage::new(id, seq, StreamContent::Fin));
        out
    }

    async fn publish(
        network: &tokio::sync::mpsc::Sender<NetworkMsg<Ctx>>,
        parts: Vec<StreamMessage<ProposalPart>>,
    ) {
        for p in parts {
            if network
                .send(NetworkMsg::PublishProposalPart(p))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Checks a reassembled block and turns it into the engine's verdict.
    fn judge(
        &self,
        round: i64,
        pol: i64,
        proposer: PublicKey,
        block: &Proposed,
    ) -> ProposedValue<Ctx> {
        let height = block.header.height;
        let validity = match self.app.verify_block(height, block) {
            Ok(()) => {
                self.app.remember_proposal(
                    height,
                    u32::try_from(round).unwrap_or(0),
                    proposer,
                    block,
                );
                Validity::Valid
            }
            Err(e) => {
                log::warn!(target: "consensus", height = height.0, proposer:% = proposer; "invalid block proposed: {e}");
                Validity::Invalid
            }
        };
        ProposedValue {
            height: Height(height.0),
            round: round_from_wire(round),
            valid_round: round_from_wire(pol),
            proposer: Address(proposer),
            value: Value(BlockHash(block.hash())),
            validity,
        }
    }

    fn on_part(
        &mut self,
        from: PeerId,
        part: StreamMessage<ProposalPart>,
    ) -> Option<ProposedValue<Ctx>> {
        let key = (from, part.stream_id.clone());
        if !self.streams.contains_key(&key) {
            if self.stream_order.len() >= MAX_STREAMS {
                let old = self.stream_order[0].clone();
                self.forget(&old);
            }
            self.stream_order.push(key.clone());
            self.streams.insert(
                key.clone(),
                Partial {
                    init: None,
                    data: BTreeMap::new(),
                    fin: None,
                    bytes: 0,
                },
            );
        }
        let s = self.streams.get_mut(&key)?;
        match part.content {
            StreamContent::Fin => s.fin = Some(part.sequence),
            StreamContent::Data(ProposalPart::Init {
                height,
                round,
                pol_round,
                proposer,
                len,
            }) if part.sequence == 0 => {
                if len > MAX_BLOCK_BYTES {
                    log::warn!(target: "consensus", height = height; "refusing a proposed block of {len} bytes (limit {MAX_BLOCK_BYTES})");
                    self.forget(&key);
                    return None;
                }
                s.init = Some((height, round, pol_round, proposer, len));
            }
            StreamContent::Data(ProposalPart::Data(d)) if part.sequence > 0 => {
                if s.data.contains_key(&part.sequence) {
                    return None;
                }
                let n = d.len() as u64;
                s.bytes = s.bytes.saturating_add(n);
                if s.bytes > MAX_BLOCK_BYTES {
                    self.forget(&key);
                    return None;
                }
                s.data.insert(part.sequence, d);
                self.buffered = self.buffered.saturating_add(n);
                while self.buffered > MAX_BUFFERED && self.stream_order.len() > 1 {
                    let old = self.stream_order[0].clone();
                    self.forget(&old);
                }
                if !self.streams.contains_key(&key) {
                    return None;
                }
            }
            _ => {
                self.forget(&key);
                return None;
            }
        }
        let s = self.streams.get(&key)?;
        let (height, round, pol, proposer, len) = s.init?;
        let fin = s.fin?;
        if s.data.len() as u64 != fin.saturating_sub(1) {
            return None;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        for d in s.data.values() {
            bytes.extend_from_slice(d);
        }
        self.forget(&key);
        if bytes.len() as u64 != len {
            return None;
        }
        let block: Proposed = match paratime_state::encoding::from_cbor(&bytes) {
            Ok(b) => b,
            Err(e) => {
                log::warn!(target: "consensus", height = height; "undecodable proposed block: {e}");
                return None;
            }
        };
        if block.header.height.0 != height || block.header.proposer != proposer {
            return None;
        }
        if height > self.current.0 {
            // The validator set of a future height may not be known yet: judge it when the
            // height starts.
            self.defer(height, round, proposer, block);
            return None;
        }
        if self.expected_proposer(height, round_from_wire(round)) != Some(proposer) {
            log::warn!(target: "consensus", height = height, round = round, proposer:% = proposer; "block streamed by a validator that is not the round's proposer");
            return None;
        }
        if height < self.current.0 {
            return None;
        }
        Some(self.judge(round, pol, proposer, &block))
    }

    /// Keeps a block of a future height (bounded: see [`MAX_FUTURE_HEIGHTS`]).
    fn defer(&mut self, height: u64, round: i64, proposer: PublicKey, block: Proposed) {
        if !self.pending.contains_key(&height) && self.pending.len() >= MAX_FUTURE_HEIGHTS {
            return;
        }
        let list = self.pending.entry(height).or_default();
        if list.len() < MAX_FUTURE_BLOCKS {
            list.push((round, proposer, block));
        }
    }

    fn forget(&mut self, key: &(PeerId, StreamId)) {
        if let Some(s) = self.streams.remove(key) {
            let held: u64 = s.data.values().map(|d| d.len() as u64).sum();
            self.buffered = self.buffered.saturating_sub(held);
        }
        self.stream_order.retain(|k| k != key);
    }

    async fn run(&mut self, mut channels: Channels<Ctx>) {
        while let Some(msg) = channels.consensus.recv().await {
            match msg {
                AppMsg::ConsensusReady { reply } => {
                    let h = self.app.last_committed().saturating_add(1).0;
                    self.current = Height(h);
                    log::info!(target: "consensus", height = h; "consensus engine ready");
                    let _ = reply.send((Height(h), self.params(h)));
                }
                AppMsg::StartedRound {
                    height,
                    round,
                    reply_value,
                    ..
                } => {
                    self.current = height;
                    self.pending.retain(|h, _| *h >= height.0);
                    let mut values = Vec::new();
                    if let Some(list) = self.pending.remove(&height.0) {
                        for (r, p, b) in list {
                            if self.expected_proposer(height.0, round_from_wire(r)) == Some(p) {
                                values.push(self.judge(r, -1, p, &b));
                            }
                        }
                    }
                    let r = round.as_u32().unwrap_or(0);
                    for (pr, proposer, block) in self.app.proposals_seen(ChainHeight(height.0)) {
                        if pr == r {
                            values.push(ProposedValue {
                                height,
                                round,
                                valid_round: Round::Nil,
                                proposer: Address(proposer),
                                value: Value(BlockHash(block.hash())),
                                validity: Validity::Valid,
                            });
                        }
                    }
                    let _ = reply_value.send(values);
                }
                AppMsg::GetValue {
                    height,
                    round,
                    reply,
                    ..
                } => {
                    let (app, me, net) = (self.app.clone(), self.me, channels.network.clone());
                    let wait = self.block_interval;
                    // Off the loop: while the proposer waits, proposal parts and decisions of
                    // other heights keep flowing.
                    tokio::spawn(async move {
                        let r = round.as_u32().unwrap_or(0);
                        // After a restart, the block already proposed for this round, never
                        // another.
                        let existing = app
                            .proposals_seen(ChainHeight(height.0))
                            .into_iter()
                            .find(|(pr, p, _)| *pr == r && *p == me.0)
                            .map(|(_, _, b)| b);
                        let block = match existing {
                            Some(b) => b,
                            None => {
                                // The first round of a height waits (bounded) for what the
                                // chain says is on its way; a later round, after a timeout,
                                // proposes at once.
                                if r == 0 {
                                    let until = tokio::time::Instant::now() + wait;
                                    while !app.ready_to_propose()
                                        && tokio::time::Instant::now() < until
                                    {
                                        tokio::time::sleep(READY_POLL).await;
                                    }
                                }
                                match app.build_block(ChainHeight(height.0), me.0, now_ms()) {
                                    Ok(b) => {
                                        app.remember_proposal(ChainHeight(height.0), r, me.0, &b);
                                        b
                                    }
                                    Err(e) => {
                                        log::error!(target: "consensus", height = height.0; "cannot build a block: {e}");
                                        return;
                                    }
                                }
                            }
                        };
                        let _ = reply.send(LocallyProposedValue::new(
                            height,
                            round,
                            Value(BlockHash(block.hash())),
                        ));
                        Self::publish(&net, Self::parts(&block, round, Round::Nil, me.0)).await;
                    });
                }
                AppMsg::ReceivedProposalPart {
                    from,
                    published_by,
                    part,
                    reply,
                } => {
                    let _ = reply.send(self.on_part(published_by.unwrap_or(from), part));
                }
                AppMsg::RestreamProposal {
                    height,
                    round,
                    valid_round,
                    address,
                    value_id,
                } => {
                    if let Some(b) = self
                        .app
                        .proposal_by_hash(ChainHeight(height.0), &value_id.0)
                    {
                        Self::publish(
                            &channels.network,
                            Self::parts(&b, round, valid_round, address.0),
                        )
                        .await;
                    }
                }
                AppMsg::GetHistoryMinHeight { reply } => {
                    let _ = reply.send(Height(self.app.earliest_height().0));
                }
                AppMsg::Decided {
                    certificate, reply, ..
                } => {
                    let h = certificate.height.0;
                    match self
                        .app
                        .proposal_by_hash(ChainHeight(h), &certificate.value_id.0)
                    {
                        Some(block) => {
                            let cert = CommitCert {
                                engine: CERT_ENGINE.into(),
                                bytes: encode_cert(&certificate),
                            };
                            if let Err(e) = self.app.commit(&block, &cert) {
                                log::error!(target: "consensus", height = h; "cannot commit the decided block: {e}");
                            }
                        }
                        None => {
                            log::warn!(target: "consensus", height = h; "decided a block this node has not received; fetching it from peers");
                        }
                    }
                    let _ = reply.send(());
                }
                AppMsg::Finalized {
                    certificate,
                    evidence,
                    reply,
                    ..
                } => {
                    let h = certificate.height.0;
                    for (addr, list) in evidence.proposals.iter() {
                        self.app.record_evidence(
                            ChainHeight(h),
                            addr.0,
                            &format!("{} conflicting proposals", list.len()),
                        );
                    }
                    for (addr, list) in evidence.votes.iter() {
                        self.app.record_evidence(
                            ChainHeight(h),
                            addr.0,
                            &format!("{} conflicting votes", list.len()),
                        );
                    }
                    let next = if self.app.last_committed() >= ChainHeight(h) {
                        let n = h.saturating_add(1);
                        self.current = Height(n);
                        Next::Start(Height(n), self.params(n))
                    } else {
                        Next::Restart(Height(h), self.params(h))
                    };
                    let _ = reply.send(next);
                }
                AppMsg::GetDecidedValues { range, reply } => {
                    let (a, b) = (range.start().0, range.end().0);
                    let b = b.min(a.saturating_add(MAX_SYNC_BATCH - 1));
                    let mut out = Vec::new();
                    for h in a..=b {
                        let Some((block, cert)) = self.app.committed(ChainHeight(h)) else {
                            break;
                        };
                        let Ok(c) = crate::codec::decode_cert(&cert.bytes) else {
                            break;
                        };
                        let ext = ExtendedCommitCertificate {
                            height: c.height,
                            round: c.round,
                            value_id: c.value_id,
                            commit_signatures: c
                                .commit_signatures
                                .into_iter()
                                .map(|s| ExtendedCommitSignature::new(s.address, s.signature, None))
                                .collect(),
                        };
                        out.push(RawDecidedValue::new(
                            Bytes::from(paratime_state::encoding::canonical_cbor(&block)),
                            ext,
                        ));
                    }
                    let _ = reply.send(out);
                }
                AppMsg::ProcessSyncedValue {
                    height,
                    round,
                    proposer,
                    value_bytes,
                    reply,
                } => {
                    let outcome =
                        match paratime_state::encoding::from_cbor::<Proposed>(&value_bytes) {
                            Ok(b)
                                if b.header.height.0 == height.0
                                    && value_bytes.len() as u64 <= MAX_BLOCK_BYTES =>
                            {
                                SyncedValueOutcome::Verdict(self.judge(
                                    round_to_wire(round),
                                    -1,
                                    proposer.0,
                                    &b,
                                ))
                            }
                            _ => SyncedValueOutcome::PeerFault,
                        };
                    let _ = reply.send(outcome);
                }
                AppMsg::ExtendVote { reply, .. } => {
                    let _ = reply.send(None);
                }
                AppMsg::VerifyVoteExtensions {
                    extensions, reply, ..
                } => {
                    let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
                }
            }
        }
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            log::info!(target: "consensus", "the consensus engine stopped");
        } else {
            log::error!(target: "consensus", "the consensus engine stopped unexpectedly: this node no longer follows the chain; restart it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainError;
    use paratime_state::validators::ValidatorSet as StateSet;

    /// A chain that knows nothing: every block is refused, no validator set is known.
    struct Empty;

    impl ChainApp for Empty {
        fn chain_context(&self) -> String {
            "test".into()
        }
        fn last_committed(&self) -> ChainHeight {
            ChainHeight(0)
        }
        fn validator_set(&self, _height: ChainHeight) -> Option<StateSet> {
            None
        }
        fn build_block(
            &self,
            _: ChainHeight,
            _: PublicKey,
            _: u64,
        ) -> Result<Proposed, ChainError> {
            Err(ChainError::Storage("no".into()))
        }
        fn verify_block(&self, _: ChainHeight, _: &Proposed) -> Result<(), ChainError> {
            Err(ChainError::Storage("no".into()))
        }
        fn commit(&self, _: &Proposed, _: &CommitCert) -> Result<(), ChainError> {
            Err(ChainError::Storage("no".into()))
        }
        fn committed(&self, _: ChainHeight) -> Option<(Proposed, CommitCert)> {
            None
        }
        fn earliest_height(&self) -> ChainHeight {
            ChainHeight(1)
        }
        fn remember_proposal(&self, _: ChainHeight, _: u32, _: PublicKey, _: &Proposed) {}
        fn proposals_seen(&self, _: ChainHeight) -> Vec<(u32, PublicKey, Proposed)> {
            Vec::new()
        }
        fn record_evidence(&self, _: ChainHeight, _: PublicKey, _: &str) {}
    }

    fn app() -> AppState {
        AppState {
            app: Arc::new(Empty),
            me: Address(PublicKey([1; 32])),
            timeouts: LinearTimeouts::default(),
            block_interval: Duration::from_millis(100),
            current: Height(1),
            streams: HashMap::new(),
            stream_order: Vec::new(),
            buffered: 0,
            pending: BTreeMap::new(),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    fn peer(i: u8) -> PeerId {
        let kp = Keypair::ed25519_from_bytes([i; 32]).expect("key");
        PeerId::from_bytes(&kp.public().to_peer_id().to_bytes()).expect("peer id")
    }

    fn data(id: u64, seq: u64, len: usize) -> StreamMessage<ProposalPart> {
        StreamMessage::new(
            StreamId::new(Bytes::from(id.to_be_bytes().to_vec())),
            seq,
            StreamContent::Data(ProposalPart::Data(vec![7; len])),
        )
    }

    /// A peer that streams without end, or claims a huge block, or repeats parts, cannot make
    /// the node buffer more than the bounds.
    #[test]
    fn hostile_streams_are_bounded() {
        let mut a = app();
        let huge = StreamMessage::new(
            StreamId::new(Bytes::from_static(b"huge")),
            0,
            StreamContent::Data(ProposalPart::Init {
                height: 1,
                round: 0,
                pol_round: -1,
                proposer: PublicKey([2; 32]),
                len: MAX_BLOCK_BYTES + 1,
            }),
        );
        assert!(a.on_part(peer(1), huge).is_none());
        assert!(a.streams.is_empty());

        // Parts that never finish, from many streams and peers.
        for s in 0..300u64 {
            for seq in 1..4 {
                assert!(a
                    .on_part(peer((s % 5) as u8), data(s, seq, 512 << 10))
                    .is_none());
            }
            assert!(a.buffered <= MAX_BUFFERED, "{} buffered", a.buffered);
            assert!(a.streams.len() <= MAX_STREAMS);
            assert_eq!(a.streams.len(), a.stream_order.len());
        }
        // The same part again is not counted twice.
        let before = a.buffered;
        let last = a.stream_order.last().cloned().expect("a stream");
        let id = u64::from_be_bytes(last.1.to_bytes()[..8].try_into().expect("8 bytes"));
        a.on_part(last.0, data(id, 1, 512 << 10));
        assert_eq!(a.buffered, before);

        // One stream past the block bound is dropped.
        let mut b = app();
        for seq in 1..=17 {
            b.on_part(peer(9), data(1, seq, 512 << 10));
        }
        assert!(
            b.streams.is_empty(),
            "a stream over {MAX_BLOCK_BYTES} bytes is dropped"
        );
        assert_eq!(b.buffered, 0);
    }
}
