//! The libp2p swarm: TCP and QUIC on `p2p.port`, noise, yamux, identify, ping, Kademlia
//! discovery from `p2p.seeds`, gossipsub (consensus blocks and transactions, topics namespaced by
//! the chain context) and request-response block sync served from the store.
//!
//! Owns the swarm; the consensus engine talks to it through a command channel and receives
//! events. It never changes consensus state.

use crate::bundle::RuntimeId;
use crate::encoding::Hash;
use crate::storage::Store;
use libp2p::futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    gossipsub, identify, identity, kad, ping, request_response, Multiaddr, PeerId, StreamProtocol,
    Swarm,
};
use paratime_state::crypto::{PublicKey, Signed};
use paratime_state::roothash::ExecutedBatch;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Sync request: a finalized runtime round's executed batch. (Consensus blocks are synced by
/// the consensus engine on its own port.)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncRequest {
    /// The executed batch of a finalized runtime round.
    Round {
        /// Runtime.
        runtime: RuntimeId,
        /// Round.
        round: paratime_state::Round,
    },
    /// Nodes of a runtime's state tree, for a state sync (see [`paratime_mkvs::sync`]): each
    /// wanted node by hash and the version the peer stores it under, and its descendants.
    StateNodes {
        /// Runtime.
        runtime: RuntimeId,
        /// (hash, version) of wanted nodes; version `u64::MAX` names a root by its hash.
        wants: Vec<(Hash, u64)>,
    },
}

/// Sync response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncReply {
    /// The round's batch, if the responder has it.
    Round(Option<Box<ExecutedBatch>>),
    /// The responder pruned that round: its history starts at `retained_from`.
    Pruned {
        /// Runtime.
        runtime: RuntimeId,
        /// Its lowest retained round.
        retained_from: paratime_state::Round,
    },
    /// State tree nodes (stored form), possibly none.
    StateNodes {
        /// Runtime.
        runtime: RuntimeId,
        /// The nodes.
        nodes: Vec<serde_bytes::ByteBuf>,
    },
}

impl SyncReply {
    /// The reply as it travels: CBOR in a byte string.
    fn encode(&self) -> serde_bytes::ByteBuf {
        let mut bytes = Vec::new();
        ciborium::into_writer(self, &mut bytes).expect("CBOR encoding into memory cannot fail");
        serde_bytes::ByteBuf::from(bytes)
    }
}

/// Serves state sync requests: the nodes a peer wants of a runtime's tree (none when the
/// runtime is not hosted here). Runs off the async threads.
pub type StateServer = Arc<dyn Fn(&RuntimeId, &[(Hash, u64)]) -> Vec<Vec<u8>> + Send + Sync>;

/// State sync requests served at once; more are answered with no nodes (the peer asks again).
const MAX_STATE_SERVING: usize = 4;

/// Which peers' state sync requests are being served: at most [`MAX_STATE_SERVING`] at once and
/// one per peer, so a peer flooding requests has the rest answered empty and cannot keep the
/// other peers' syncs from being served.
#[derive(Debug, Default)]
struct StateServing {
    busy: BTreeSet<PeerId>,
}

impl StateServing {
    /// Whether a request from `peer` may be served now (it then counts until [`Self::done`]).
    fn admit(&mut self, peer: PeerId) -> bool {
        self.busy.len() < MAX_STATE_SERVING && self.busy.insert(peer)
    }

    fn done(&mut self, peer: &PeerId) {
        self.busy.remove(peer);
    }
}

/// A message for a runtime's worker.
#[derive(Debug)]
pub enum RuntimeEvent {
    /// Gossiped runtime transactions (CBOR [`RuntimeTxs`]): not relayed until the worker
    /// judges them ([`Command::Judged`]).
    Tx(RuntimeId, Payload, Gossiped),
    /// A gossiped committee message (CBOR [`CommitteeMessage`]): not relayed until the worker
    /// judges it (a proposal once its signature and signer are checked, an executed batch once
    /// its finalized round was applied with it).
    Committee(RuntimeId, Payload, Gossiped),
    /// A fetched executed batch, and the bound of its memory
    /// ([`crate::encoding::decoded_size_bound`]).
    Round(RuntimeId, Box<ExecutedBatch>, usize),
    /// A peer (named) no longer has the history of a round this node asked it for: it keeps
    /// rounds from this one.
    Pruned(RuntimeId, paratime_state::Round, String),
    /// State tree nodes from a peer (named; unchecked).
    StateNodes(RuntimeId, String, Vec<Vec<u8>>),
}

/// Runtime transactions on the gossip topic, batched by the sender (one message per few
/// milliseconds instead of one per transaction); the salt keeps a resubmission of the same
/// transactions from being dropped as a gossip duplicate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeTxs {
    /// Raw transactions.
    pub txs: Vec<serde_bytes::ByteBuf>,
    /// Random salt.
    pub salt: u64,
}

/// A message of a runtime's topic that gossipsub holds, unrelayed, until the worker sends its
/// [`Verdict`] ([`Command::Judged`]); one never judged is not relayed (it leaves gossipsub's
/// cache within a few heartbeats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossiped {
    id: gossipsub::MessageId,
    source: PeerId,
}

#[cfg(test)]
impl Gossiped {
    /// A made-up message `n` (all from one made-up peer).
    pub(crate) fn for_test(n: u32) -> Self {
        Self {
            id: gossipsub::MessageId::new(&n.to_le_bytes()),
            source: libp2p::identity::Keypair::ed25519_from_bytes([7; 32])
                .expect("a key")
                .public()
                .to_peer_id(),
        }
    }
}

/// The largest gossip message (gossipsub's `max_transmit_size`).
pub const MAX_MESSAGE: usize = 8 << 20;

/// Memory a runtime's gossip message may take once decoded, at most
/// ([`crate::encoding::from_cbor_within`]): 8 MiB of large transactions or of an executed
/// batch decode within it; 8 MiB of empty strings (up to 64× on the wire) do not, and are
/// refused before they are decoded. Also bounds a peer's answer to a round or state request.
pub const MAX_DECODED: usize = 32 << 20;

/// Bytes of one runtime's gossip messages on their way to its worker (queued, not yet taken
/// apart), at most: a peer sending faster than a worker takes messages apart fills this, not
/// the node's memory; a message that does not fit is neither queued nor relayed. Each hosted
/// runtime has its own: a flood on one runtime's topics does not crowd out another's.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// A gossip message's bytes on their way to a worker: they count against
/// [`MAX_QUEUED_BYTES`] until dropped.
pub struct Payload {
    data: Vec<u8>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

impl Payload {
    /// The message, if it fits in the budget (else its bytes back).
    fn admit(data: Vec<u8>, queued: &Arc<std::sync::atomic::AtomicUsize>) -> Result<Self, Vec<u8>> {
        use std::sync::atomic::Ordering;
        let n = data.len();
        let before = queued.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > MAX_QUEUED_BYTES {
            queued.fetch_sub(n, Ordering::Relaxed);
            return Err(data);
        }
        Ok(Self {
            data,
            queued: queued.clone(),
        })
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.queued
            .fetch_sub(self.data.len(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.data.len())
    }
}

/// What a worker found in a gossiped runtime message (transactions, a proposal, an executed
/// batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Worth passing on: transactions new to this node that passed check-tx make at least
    /// half of its bytes; a committee member's proposal; an executed batch its finalized round
    /// was applied with.
    Relay,
    /// Nothing new or nothing proven (transactions this node has, refused by check-tx —
    /// possibly only stale —, or dropped for want of room; a proposal of a key outside the
    /// committee; a batch not used): not relayed, no penalty for the sender.
    Drop,
    /// False or malformed (not a batch of transactions, a badly signed proposal, a batch that
    /// claims the finalized roots and does not lead to them): not relayed, and gossipsub
    /// counts it against the sender.
    Refuse,
}

/// What the committee topic carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CommitteeMessage {
    /// A signed [`paratime_state::roothash::Proposal`].
    Proposal(Signed),
    /// A member's executed batch.
    Executed(Box<ExecutedBatch>),
}

/// What the engine asks of the network.
#[derive(Debug)]
pub enum Command {
    /// Gossip a transaction.
    PublishTx(Signed),
    /// Gossip on a runtime topic (`committee` or the tx topic).
    PublishRuntime {
        /// Runtime.
        runtime: RuntimeId,
        /// The committee topic (else the tx topic).
        committee: bool,
        /// CBOR message.
        data: Vec<u8>,
    },
    /// Ask a peer for a finalized round's executed batch.
    FetchRound(RuntimeId, paratime_state::Round),
    /// Ask a peer for nodes of a runtime's state tree (state sync): the named peer if it is
    /// connected (the versions in the wants are where that peer stores the nodes), else the
    /// next one.
    FetchState(RuntimeId, Vec<(Hash, u64)>, Option<String>),
    /// The registered nodes hosting this node's runtimes ([`runtime_peers`]): dialed while not
    /// connected, every 5 s like the seeds. Replaces the previous set.
    RuntimePeers(BTreeMap<PeerId, Vec<Multiaddr>>),
    /// The worker's verdict on a gossiped message of transactions.
    Judged(Gossiped, Verdict),
}

/// What the network tells the engine.
#[derive(Debug)]
pub enum Event {
    /// A gossiped transaction.
    Tx(Signed),
}

/// `IP:port` of a TCP multiaddr (`/ip4/1.2.3.4/tcp/9200` → `1.2.3.4:9200`), as oasis-node
/// shows its P2P addresses; `None` for any other transport.
fn ip_port(a: &Multiaddr) -> Option<String> {
    use libp2p::multiaddr::Protocol;
    let mut it = a.iter();
    let ip: std::net::IpAddr = match it.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match (it.next()?, it.next()) {
        (Protocol::Tcp(port), None) => Some(std::net::SocketAddr::new(ip, port).to_string()),
        _ => None,
    }
}

/// `p2p` in `control status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// The p2p public key (base64).
    pub pub_key: String,
    /// libp2p peer ID.
    pub peer_id: String,
    /// TCP listen addresses as oasis-node shows them (`IP:port`).
    pub addresses: Vec<String>,
    /// Every listen address as a libp2p multiaddr (TCP and QUIC).
    pub multiaddrs: Vec<String>,
    /// Connected peers.
    pub num_peers: usize,
    /// Topic → subscribed peers.
    pub topics: BTreeMap<String, usize>,
}

/// Network settings.
pub struct Config {
    /// Identity from p2p.pem.
    pub keypair: identity::Keypair,
    /// Port for TCP and QUIC.
    pub port: u16,
    /// Listen IP.
    pub listen_ip: String,
    /// Seeds: peer and address.
    pub seeds: Vec<(PeerId, Multiaddr)>,
    /// Chain context, for topic and protocol names.
    pub chain_context: String,
    /// Runtimes whose topics to join.
    pub runtimes: Vec<RuntimeId>,
    /// Serves peers' state sync requests, if this node hosts runtimes.
    pub state_server: Option<StateServer>,
}

/// Connection limits: how many connections a remote can make this node hold. Limits are checked
/// before any behaviour sees a connection; a connection over a limit is closed at once (the
/// listener logs it at debug level, never per byte of work). Configured seeds bypass them, so a
/// flood cannot lock the node out of its own network.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Incoming connections still in their handshake (noise, yamux).
    pub max_pending_incoming: u32,
    /// Established incoming connections.
    pub max_established_incoming: u32,
    /// Established connections to one peer (both directions; two nodes dialling each other at
    /// once, over TCP and QUIC, make up to four).
    pub max_established_per_peer: u32,
    /// Established connections in total.
    pub max_established: u32,
    /// Inbound streams per connection still negotiating their protocol (libp2p's default: 128).
    pub max_negotiating_inbound_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending_incoming: 64,
            max_established_incoming: 128,
            max_established_per_peer: 4,
            max_established: 256,
            max_negotiating_inbound_streams: 32,
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // First, so a connection over a limit is refused before the others allocate for it.
    limits: libp2p::connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    // Replies travel as CBOR inside a byte string: decoded here, within [`MAX_DECODED`].
    sync: request_response::cbor::Behaviour<SyncRequest, serde_bytes::ByteBuf>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// The libp2p keypair of an Ed25519 signing key (p2p.pem).
pub fn keypair(key: &ed25519_dalek::SigningKey) -> identity::Keypair {
    identity::Keypair::ed25519_from_bytes(key.to_bytes())
        .expect("a 32-byte Ed25519 seed is a valid libp2p key")
}

/// The libp2p peer ID of an Ed25519 P2P key (none for bytes that are not a point).
pub fn peer_id_of(key: &PublicKey) -> Option<PeerId> {
    let ed = identity::ed25519::PublicKey::try_from_bytes(&key.0).ok()?;
    Some(PeerId::from_public_key(&identity::PublicKey::from(ed)))
}

/// A seed that is not `PUBKEY@IP:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("malformed seed '{seed}': {reason} (expected PUBKEY@IP:PORT with the base64 key of the seed's p2p.pem and an IP literal)")]
pub struct SeedError {
    /// The seed as configured.
    pub seed: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a seed, `PUBKEY@IP:PORT` (the base64 key of the peer's p2p.pem), into its peer ID and
/// address.
pub fn parse_seed(s: &str) -> Result<(PeerId, Multiaddr), SeedError> {
    let bad = |reason: String| SeedError {
        seed: s.to_string(),
        reason,
    };
    let (key, addr) = s.split_once('@').ok_or_else(|| bad("no '@'".into()))?;
    let pk: PublicKey = key
        .parse()
        .map_err(|e: paratime_state::crypto::ParseError| bad(e.to_string()))?;
    let ed = identity::ed25519::PublicKey::try_from_bytes(&pk.0).map_err(|e| bad(e.to_string()))?;
    let peer = PeerId::from_public_key(&identity::PublicKey::from(ed));
    let sa: std::net::SocketAddr = addr.parse().map_err(|e| bad(format!("'{addr}': {e}")))?;
    Ok((peer, tcp_multiaddr(sa)))
}

/// The TCP multiaddr of a socket address.
fn tcp_multiaddr(sa: std::net::SocketAddr) -> Multiaddr {
    use libp2p::multiaddr::Protocol;
    Multiaddr::empty()
        .with(match sa.ip() {
            std::net::IpAddr::V4(ip) => Protocol::Ip4(ip),
            std::net::IpAddr::V6(ip) => Protocol::Ip6(ip),
        })
        .with(Protocol::Tcp(sa.port()))
}

/// Registered nodes a node keeps connections to for its runtimes, at most.
pub const MAX_RUNTIME_PEERS: usize = 64;
/// Addresses tried per registered node, at most.
const MAX_PEER_ADDRESSES: usize = 4;

/// The nodes registered as hosting one of `runtimes`, other than `me`, with their TCP
/// addresses (`IP:port` in the descriptor; others are skipped): the peers a node hosting those
/// runtimes dials for their gossip and sync. Validators take no part in a runtime's gossip (they
/// have no worker for it), so the runtime's nodes must find each other; the registry names
/// them. At most [`MAX_RUNTIME_PEERS`]: the runtimes' committee members first, then the others
/// in an order of this node's own (a hash of both peer IDs), so that nodes registered with
/// ground keys cannot take every node's slots.
pub fn runtime_peers(
    state: &paratime_state::state::State,
    runtimes: &BTreeSet<RuntimeId>,
    me: &PeerId,
) -> BTreeMap<PeerId, Vec<Multiaddr>> {
    let members: BTreeSet<&PublicKey> = state
        .committees
        .iter()
        .filter(|(rid, _)| runtimes.contains(*rid))
        .flat_map(|(_, c)| c.members.iter().map(|m| &m.public_key))
        .collect();
    let mut ranked = Vec::new();
    for n in state.nodes.values() {
        if !n.runtimes.iter().any(|r| runtimes.contains(&r.id)) {
            continue;
        }
        let Some(peer) = peer_id_of(&n.p2p.id).filter(|p| p != me) else {
            continue;
        };
        let addrs: Vec<Multiaddr> = n
            .p2p
            .addresses
            .iter()
            .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(tcp_multiaddr)
            .take(MAX_PEER_ADDRESSES)
            .collect();
        if addrs.is_empty() {
            continue;
        }
        let mut key = me.to_bytes();
        key.extend_from_slice(&peer.to_bytes());
        let rank = (!members.contains(&n.id), crate::encoding::hash(&key));
        ranked.push((rank, peer, addrs));
    }
    ranked.sort_unstable_by_key(|a| a.0);
    ranked
        .into_iter()
        .take(MAX_RUNTIME_PEERS)
        .map(|(_, peer, addrs)| (peer, addrs))
        .collect()
}

/// When the registered runtime peers that are not connected are dialed again. Each attempt
/// doubles the wait before the next (5 s, 10 s, … 5 min) until a connection is established:
/// the addresses come from registrations, and a node may register someone else's address, which
/// every node of the runtime would otherwise dial every 5 s for ever.
#[derive(Debug, Default)]
struct Backoff {
    next: std::collections::HashMap<PeerId, (tokio::time::Instant, Duration)>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(300);

    /// Whether `peer` may be dialed at `now`.
    fn due(&self, peer: &PeerId, now: tokio::time::Instant) -> bool {
        self.next.get(peer).is_none_or(|(at, _)| now >= *at)
    }

    /// `peer` is being dialed at `now`: the next attempt waits twice as long as the last.
    fn dialed(&mut self, peer: PeerId, now: tokio::time::Instant) {
        let wait = self
            .next
            .get(&peer)
            .map_or(Self::FIRST, |(_, w)| w.saturating_mul(2).min(Self::MAX));
        self.next.insert(peer, (now + wait, wait));
    }

    /// `peer` is connected: a later disconnection is retried at the first interval.
    fn connected(&mut self, peer: &PeerId) {
        self.next.remove(peer);
    }

    /// Forgets the peers no longer wanted.
    fn retain(&mut self, wanted: &BTreeMap<PeerId, Vec<Multiaddr>>) {
        self.next.retain(|p, _| wanted.contains_key(p));
    }
}

/// A peer to ask for a runtime's history or state: the next, in turn, of the connected peers
/// subscribed to the runtime's topic (the nodes hosting it), else of all connected peers.
fn pick_peer(
    gossipsub: &gossipsub::Behaviour,
    peers: &BTreeSet<PeerId>,
    topic: Option<&gossipsub::TopicHash>,
    turn: usize,
) -> Option<PeerId> {
    let hosting: Vec<PeerId> = match topic {
        Some(t) => gossipsub
            .all_peers()
            .filter(|(p, topics)| peers.contains(*p) && topics.contains(&t))
            .map(|(p, _)| *p)
            .collect(),
        None => Vec::new(),
    };
    if hosting.is_empty() {
        peers.iter().nth(turn % peers.len().max(1)).copied()
    } else {
        hosting.get(turn % hosting.len()).copied()
    }
}

fn tx_topic(chain: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("oasis/{chain}/consensus/tx/1.0.0"))
}

/// A consensus transaction as gossiped. The salt makes a re-gossip of a waiting transaction a
/// new message: message ids are the bytes (no libp2p author or sequence number), and the
/// same bytes again would be dropped as a duplicate for a minute by every peer that saw them.
#[derive(Serialize, Deserialize)]
struct GossipedTx {
    tx: Signed,
    salt: u64,
}

impl GossipedTx {
    fn new(tx: Signed) -> Self {
        let mut salt = [0u8; 8];
        let _ = getrandom::fill(&mut salt);
        Self {
            tx,
            salt: u64::from_le_bytes(salt),
        }
    }

    fn encode(&self) -> Vec<u8> {
        crate::encoding::canonical_cbor(self)
    }
}

/// What becomes of a consensus transaction received by gossip. Gossipsub relays a message only
/// once this node accepts it (`validate_messages`): bytes that are not a transaction or carry
/// a bad signature are rejected, and a transaction relayed within [`Recent::TXS`] is ignored —
/// without this, any peer could have every node relay garbage, or one transaction under a
/// thousand salts a thousand times. The signature is checked as the consensus state checks it
/// (`Signature::verify` under the chain's transaction context), so nothing the chain would take
/// is dropped here.
fn judge_tx(
    data: &[u8],
    context: &str,
    relayed: &mut Recent,
) -> (gossipsub::MessageAcceptance, Option<Signed>) {
    use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
    // A transaction larger than any node's mempool takes is refused before it is hashed,
    // verified or relayed (the engine would drop it, after every node relayed it).
    if data.len() > paratime_state::MAX_TX_BYTES + 1024 {
        return (Reject, None);
    }
    let Ok(g) = crate::encoding::from_cbor::<GossipedTx>(data) else {
        return (Reject, None);
    };
    if g.tx.untrusted_raw_value.len() > paratime_state::MAX_TX_BYTES {
        return (Reject, None);
    }
    // The id covers the signer, the signature and the bytes: a copy with the id of a relayed
    // transaction is that transaction, so re-salted copies are ignored before the (costlier)
    // signature check, and only verified transactions enter the window.
    let id = gossipsub::MessageId::from(
        crate::encoding::hash(
            &[
                &g.tx.signature.public_key.0[..],
                &g.tx.signature.signature.0[..],
                &g.tx.untrusted_raw_value[..],
            ]
            .concat(),
        )
        .to_vec(),
    );
    if relayed.contains(&id) {
        return (Ignore, None);
    }
    if !g.tx.signature.verify(context, &g.tx.untrusted_raw_value) {
        return (Reject, None);
    }
    relayed.insert(id);
    (Accept, Some(g.tx))
}

/// Occurrences of something a peer can cause at will (refused gossip, gossip dropped for a
/// lagging worker), logged at most once a minute so that a peer cannot flood the journal.
#[derive(Default)]
struct Occasional {
    count: u64,
    logged: Option<std::time::Instant>,
}

impl Occasional {
    const EVERY: Duration = Duration::from_secs(60);

    /// Counts one; returns the count to log (this one included) when a line is due.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        let now = std::time::Instant::now();
        if self
            .logged
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            return None;
        }
        self.logged = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// The gossip message id: the topic and the bytes, so the same batch or commitment published
/// by several committee members is one message. The topic's length goes first: gossipsub
/// records the id of a message on a topic this node does not follow before it drops it, so
/// with topic and bytes simply joined a peer knowing a message in advance (an executed batch
/// every committee member computes) could send `(topic ‖ its first byte, the rest)` first and
/// have the real message taken for a duplicate. Hashed in place, without a copy of the bytes.
fn content_id(topic: &gossipsub::TopicHash, data: &[u8]) -> gossipsub::MessageId {
    use sha2::Digest;
    let topic = topic.as_str().as_bytes();
    let mut h = sha2::Sha512_256::new();
    h.update((topic.len() as u64).to_be_bytes());
    h.update(topic);
    h.update(data);
    gossipsub::MessageId::from(h.finalize().to_vec())
}

/// Ids seen within a window ([`Recent::ttl`], at most [`Recent::CAP`] of them).
///
/// - Message ids this node has received or published on runtime topics within gossipsub's
///   duplicate window ([`Recent::MESSAGES`]): publishing one again there is refused by
///   gossipsub (a warning per refusal), so the node skips it — committee members gossip
///   identical executed batches, and the later ones find theirs delivered.
/// - Consensus transactions relayed within [`Recent::TXS`]: the same transaction under another
///   salt is neither relayed nor delivered again (see [`judge_tx`]).
struct Recent {
    ids: std::collections::HashSet<gossipsub::MessageId>,
    order: std::collections::VecDeque<(std::time::Instant, gossipsub::MessageId)>,
    ttl: Duration,
}

impl Default for Recent {
    fn default() -> Self {
        Self::new(Self::MESSAGES)
    }
}

impl Recent {
    const CAP: usize = 8192;
    /// gossipsub's `duplicate_cache_time` (its default, which this node keeps).
    const MESSAGES: Duration = Duration::from_secs(60);
    /// How long a relayed consensus transaction is not relayed again: shorter than the
    /// engine's re-gossip of a waiting transaction (5 blocks, and every 5 block intervals), so
    /// that a re-gossip still travels, while a peer re-salting one transaction gets it relayed
    /// once per window at most.
    const TXS: Duration = Duration::from_secs(2);

    fn new(ttl: Duration) -> Self {
        Self {
            ids: Default::default(),
            order: Default::default(),
            ttl,
        }
    }

    /// Records `id`; false when it was already recorded within the window.
    fn insert(&mut self, id: gossipsub::MessageId) -> bool {
        let now = std::time::Instant::now();
        self.expire(now, Self::CAP);
        if !self.ids.insert(id.clone()) {
            return false;
        }
        self.order.push_back((now, id));
        true
    }

    /// Whether `id` was recorded within the window.
    fn contains(&mut self, id: &gossipsub::MessageId) -> bool {
        self.expire(std::time::Instant::now(), usize::MAX);
        self.ids.contains(id)
    }

    /// Forgets the ids older than the window, and the oldest while `cap` or more are held.
    fn expire(&mut self, now: std::time::Instant, cap: usize) {
        while let Some((t, old)) = self.order.front() {
            if now.duration_since(*t) < self.ttl && self.order.len() < cap {
                break;
            }
            self.ids.remove(old);
            self.order.pop_front();
        }
    }

    /// Forgets `id` (a publication that did not go out).
    fn forget(&mut self, id: &gossipsub::MessageId) {
        if self.ids.remove(id) {
            self.order.retain(|(_, x)| x != id);
        }
    }
}

fn runtime_topics(chain: &str, rt: &RuntimeId) -> (gossipsub::IdentTopic, gossipsub::IdentTopic) {
    (
        gossipsub::IdentTopic::new(format!("oasis/{chain}/runtime/{rt}/tx/1.0.0")),
        gossipsub::IdentTopic::new(format!("oasis/{chain}/runtime/{rt}/committee/1.0.0")),
    )
}

/// Why the libp2p swarm could not start.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The TCP transport (noise, yamux) could not be built.
    #[error("p2p tcp: {0}")]
    Transport(String),
    /// A protocol of the swarm could not be built.
    #[error("p2p behaviour: {0}")]
    Behaviour(String),
    /// A gossip topic could not be subscribed to.
    #[error("p2p: cannot subscribe to {topic}: {source}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// Why.
        source: gossipsub::SubscriptionError,
    },
    /// The listen address is not a multiaddr.
    #[error("p2p listen address: {0}")]
    ListenAddress(#[from] libp2p::multiaddr::Error),
    /// The port cannot be bound.
    #[error("p2p: cannot listen on {protocol} port {port}: {source}")]
    Listen {
        /// TCP or UDP.
        protocol: &'static str,
        /// `p2p.port`.
        port: u16,
        /// Why.
        source: libp2p::TransportError<std::io::Error>,
    },
}

fn build(cfg: &Config, limits: &Limits) -> Result<Swarm<Behaviour>, P2pError> {
    let chain = cfg.chain_context.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| {
            // Messages carry no libp2p author, sequence number or signature (Ethereum's
            // consensus layer gossips the same way, "StrictNoSign"): every payload is
            // authenticated by what it carries — consensus transactions, proposals and
            // commitments are signed by their senders, executed batches are checked against the
            // finalized round, ParaTime transactions by check-tx — and no receiver uses the
            // author. A signed message cost a verification for every copy received (the codec
            // checks before the duplicate filter: up to one per mesh peer), ~4-5 % of a hosting
            // node's CPU under load in a profile. The id of a message is its topic and bytes, so the same
            // batch or commitment published by several committee members is one message.
            let gcfg = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                // Nothing is relayed before this node has looked at it (`judge_tx`).
                .validate_messages()
                .message_id_fn(|m: &gossipsub::Message| content_id(&m.topic, &m.data))
                .max_transmit_size(MAX_MESSAGE)
                .build()?;
            let gossipsub =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gcfg)?;
            // 1.1.0: replies are CBOR in a byte string (1.0.0 sent them bare).
            let proto = StreamProtocol::try_from_owned(format!("/oasis/{chain}/blocksync/1.1.0"))?;
            let sync = request_response::cbor::Behaviour::new(
                [(proto, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            );
            let identify = identify::Behaviour::new(
                identify::Config::new(format!("/oasis/{chain}/1.0.0"), key.public())
                    .with_agent_version(format!("paratime-node/{}", crate::SOFTWARE_VERSION)),
            );
            let peer = key.public().to_peer_id();
            let kad_proto = StreamProtocol::try_from_owned(format!("/oasis/{chain}/kad/1.0.0"))?;
            let mut kad = kad::Behaviour::with_config(
                peer,
                kad::store::MemoryStore::new(peer),
                kad::Config::new(kad_proto),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let mut limits = libp2p::connection_limits::Behaviour::new(
                libp2p::connection_limits::ConnectionLimits::default()
                    .with_max_pending_incoming(Some(limits.max_pending_incoming))
                    .with_max_established_incoming(Some(limits.max_established_incoming))
                    .with_max_established_per_peer(Some(limits.max_established_per_peer))
                    .with_max_established(Some(limits.max_established)),
            );
            for (seed, _) in &cfg.seeds {
                limits.bypass_peer_id(seed);
            }
            Ok(Behaviour {
                limits,
                gossipsub,
                sync,
                identify,
                ping: ping::Behaviour::default(),
                kad,
            })
        })
        .map_err(|e| P2pError::Behaviour(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(60))
                .with_max_negotiating_inbound_streams(limits.max_negotiating_inbound_streams)
        })
        .build();
    let txs = tx_topic(&cfg.chain_context);
    let runtime_topics = cfg.runtimes.iter().flat_map(|rt| {
        let (t, c) = runtime_topics(&cfg.chain_context, rt);
        [t, c]
    });
    for topic in std::iter::once(txs).chain(runtime_topics) {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|source| P2pError::Subscribe {
                topic: topic.to_string(),
                source,
            })?;
    }
    let tcp: Multiaddr = format!("/ip4/{}/tcp/{}", cfg.listen_ip, cfg.port).parse()?;
    let quic: Multiaddr = format!("/ip4/{}/udp/{}/quic-v1", cfg.listen_ip, cfg.port).parse()?;
    swarm.listen_on(tcp).map_err(|source| P2pError::Listen {
        protocol: "TCP",
        port: cfg.port,
        source,
    })?;
    swarm.listen_on(quic).map_err(|source| P2pError::Listen {
        protocol: "UDP",
        port: cfg.port,
        source,
    })?;
    for (peer, addr) in &cfg.seeds {
        swarm.behaviour_mut().kad.add_address(peer, addr.clone());
        if let Err(e) = swarm.dial(addr.clone()) {
            log::warn!(target: "p2p", "cannot dial seed {peer} at {addr}: {e}");
        }
    }
    Ok(swarm)
}

/// The engine's side of the network: commands in, events out, runtime events out, and the
/// status.
pub type Channels = (
    mpsc::Sender<Command>,
    mpsc::Receiver<Event>,
    mpsc::Receiver<RuntimeEvent>,
    watch::Receiver<Status>,
);

/// The answer to a round request: its batch, or that it was pruned here.
fn round_reply(store: &Store, runtime: RuntimeId, round: paratime_state::Round) -> SyncReply {
    if let Some(b) = store.executed_batch(&runtime, round).ok().flatten() {
        return SyncReply::Round(Some(Box::new(b)));
    }
    match store.runtime_retained_from(&runtime) {
        Ok(retained_from) if retained_from > round => SyncReply::Pruned {
            runtime,
            retained_from,
        },
        _ => SyncReply::Round(None),
    }
}

/// Starts the swarm task.
pub fn spawn(
    cfg: Config,
    store: Arc<Store>,
    pub_key: String,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<Channels, P2pError> {
    let mut swarm = build(&cfg, &Limits::default())?;
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(256);
    // Back-pressure: when the engine lags, gossip events wait here (bounded).
    let (ev_tx, ev_rx) = mpsc::channel::<Event>(1024);
    // Runtime messages are dropped rather than stall consensus when the worker lags.
    let (rt_tx, rt_rx) = mpsc::channel::<RuntimeEvent>(16384);
    let mut rt_topics: BTreeMap<gossipsub::TopicHash, (RuntimeId, bool)> = BTreeMap::new();
    let mut rt_publish: BTreeMap<(RuntimeId, bool), gossipsub::IdentTopic> = BTreeMap::new();
    for rt in &cfg.runtimes {
        let (t, c) = runtime_topics(&cfg.chain_context, rt);
        rt_topics.insert(t.hash(), (*rt, false));
        rt_topics.insert(c.hash(), (*rt, true));
        rt_publish.insert((*rt, false), t);
        rt_publish.insert((*rt, true), c);
    }
    let (status_tx, status_rx) = watch::channel(Status {
        pub_key,
        peer_id: swarm.local_peer_id().to_string(),
        ..Default::default()
    });
    let txs_topic = tx_topic(&cfg.chain_context);
    let chain_context = cfg.chain_context.clone();
    let seeds = cfg.seeds.clone();
    let state_server = cfg.state_server.clone();
    let mut serving = StateServing::default();
    let (served_tx, mut served_rx) = mpsc::channel::<(
        PeerId,
        request_response::ResponseChannel<serde_bytes::ByteBuf>,
        SyncReply,
    )>(MAX_STATE_SERVING);
    // One byte budget per hosted runtime (its topics are the only ones queued for workers).
    let queued: BTreeMap<RuntimeId, Arc<std::sync::atomic::AtomicUsize>> = cfg
        .runtimes
        .iter()
        .map(|rt| (*rt, Arc::default()))
        .collect();
    tokio::spawn(async move {
        let mut peers: BTreeSet<PeerId> = BTreeSet::new();
        let mut rt_recent = Recent::default();
        let mut relayed_txs = Recent::new(Recent::TXS);
        let mut refused = Occasional::default();
        let mut dropped = Occasional::default();
        let mut rt_refused = Occasional::default();
        let tx_context = paratime_state::crypto::context(
            paratime_state::crypto::CONTEXT_TX,
            Some(&chain_context),
        );
        // Requests in flight: the runtime, and the round (none for state nodes). An answer
        // counts only for what was asked: a batch or `Pruned` for that round, nodes for that
        // runtime's state.
        let mut asked: std::collections::HashMap<
            request_response::OutboundRequestId,
            (RuntimeId, Option<paratime_state::Round>),
        > = Default::default();
        let mut redial = tokio::time::interval(Duration::from_secs(5));
        let mut rr = 0usize;
        let mut runtime_peers: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
        let mut backoff = Backoff::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = redial.tick() => {
                    for (peer, addr) in &seeds {
                        if !peers.contains(peer) {
                            let _ = swarm.dial(addr.clone());
                        }
                    }
                    let now = tokio::time::Instant::now();
                    for (peer, addrs) in &runtime_peers {
                        if !peers.contains(peer) && backoff.due(peer, now) {
                            backoff.dialed(*peer, now);
                            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(*peer)
                                .addresses(addrs.clone())
                                .build();
                            let _ = swarm.dial(opts);
                        }
                    }
                    if !peers.is_empty() {
                        let _ = swarm.behaviour_mut().kad.bootstrap();
                    }
                }
                cmd = cmd_rx.recv() => match cmd {
                    None => break,
                    Some(Command::PublishTx(tx)) => {
                        if let Err(e) = swarm.behaviour_mut().gossipsub.publish(txs_topic.clone(), GossipedTx::new(tx).encode()) {
                            // Not lost: the engine gossips its own waiting transactions again.
                            log::debug!(target: "p2p", "transaction gossip not sent (sent again while it waits): {e}");
                        }
                    }
                    Some(Command::PublishRuntime { runtime, committee, data }) => {
                        if let Some(topic) = rt_publish.get(&(runtime, committee)) {
                            let id = content_id(&topic.hash(), &data);
                            if !rt_recent.insert(id.clone()) {
                                // Already received from another member, or already sent.
                                continue;
                            }
                            match swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
                                Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
                                Err(e) => {
                                    // Not sent (e.g. no peers yet): the same bytes may be sent again.
                                    rt_recent.forget(&id);
                                    log::debug!(target: "p2p", "runtime gossip not sent: {e}");
                                }
                            }
                        }
                    }
                    Some(Command::FetchRound(runtime, round)) => {
                        rr = rr.wrapping_add(1);
                        let topic = rt_publish.get(&(runtime, false)).map(gossipsub::IdentTopic::hash);
                        // At most 1,024 requests in flight (an answer is taken only for a
                        // request on record): the worker asks again for what it still lacks.
                        let peer = pick_peer(&swarm.behaviour().gossipsub, &peers, topic.as_ref(), rr)
                            .filter(|_| asked.len() < 1024);
                        if let Some(peer) = peer {
                            let id = swarm.behaviour_mut().sync.send_request(&peer, SyncRequest::Round { runtime, round });
                            asked.insert(id, (runtime, Some(round)));
                        }
                    }
                    Some(Command::FetchState(runtime, wants, to)) => {
                        let named = to.and_then(|p| p.parse::<PeerId>().ok()).filter(|p| peers.contains(p));
                        let peer = named.or_else(|| {
                            rr = rr.wrapping_add(1);
                            let topic = rt_publish.get(&(runtime, false)).map(gossipsub::IdentTopic::hash);
                            pick_peer(&swarm.behaviour().gossipsub, &peers, topic.as_ref(), rr)
                        }).filter(|_| asked.len() < 1024);
                        if let Some(peer) = peer {
                            let id = swarm.behaviour_mut().sync.send_request(&peer, SyncRequest::StateNodes { runtime, wants });
                            asked.insert(id, (runtime, None));
                        }
                    }
                    Some(Command::Judged(g, verdict)) => {
                        let acceptance = match verdict {
                            Verdict::Relay => gossipsub::MessageAcceptance::Accept,
                            Verdict::Drop => gossipsub::MessageAcceptance::Ignore,
                            Verdict::Refuse => {
                                if let Some(n) = rt_refused.note() {
                                    log::warn!(target: "p2p", "refused {n} runtime gossip message(s) that are malformed or false (not transactions, a badly signed proposal, a batch that does not lead to its finalized roots) since the last such line (the last from peer {}): not relayed", g.source);
                                }
                                gossipsub::MessageAcceptance::Reject
                            }
                        };
                        swarm.behaviour_mut().gossipsub.report_message_validation_result(&g.id, &g.source, acceptance);
                    }
                    Some(Command::RuntimePeers(set)) => {
                        for (peer, addrs) in &set {
                            if !runtime_peers.contains_key(peer) {
                                for a in addrs {
                                    swarm.behaviour_mut().kad.add_address(peer, a.clone());
                                }
                            }
                        }
                        backoff.retain(&set);
                        runtime_peers = set;
                    }
                },
                Some((peer, channel, reply)) = served_rx.recv() => {
                    serving.done(&peer);
                    let _ = swarm.behaviour_mut().sync.send_response(channel, reply.encode());
                }
                ev = swarm.select_next_some() => match ev {
                    SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                        peers.insert(peer_id);
                        backoff.connected(&peer_id);
                        swarm.behaviour_mut().kad.add_address(&peer_id, endpoint.get_remote_address().clone());
                        log::debug!(target: "p2p", peer:% = peer_id; "peer connected");
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                        peers.remove(&peer_id);
                    }
                    SwarmEvent::IncomingConnectionError { send_back_addr, error: libp2p::swarm::ListenError::Denied { cause }, .. } => {
                        log::debug!(target: "p2p", remote:% = send_back_addr, err:% = cause; "incoming connection refused");
                    }
                    SwarmEvent::NewListenAddr { address, .. } => {
                        status_tx.send_modify(|s| {
                            if let Some(a) = ip_port(&address) {
                                s.addresses.push(a);
                            }
                            s.multiaddrs.push(address.to_string());
                        });
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        for a in info.listen_addrs {
                            swarm.behaviour_mut().kad.add_address(&peer_id, a);
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, message_id, propagation_source })) => {
                        if let Some((rt, committee)) = rt_topics.get(&message.topic) {
                            rt_recent.insert(message_id.clone());
                            let origin = Gossiped { id: message_id.clone(), source: propagation_source };
                            // Relayed only once the worker judged it (`Command::Judged`): a
                            // transaction message when at least half of its bytes are new
                            // transactions that pass check-tx, a proposal once its signature
                            // and signer are checked, an executed
                            // batch once its round was finalized and applied with it. A peer
                            // sending garbage, made-up batches or re-salted transactions gets
                            // nothing relayed.
                            let admitted = match queued.get(rt) {
                                Some(budget) => Payload::admit(message.data, budget),
                                None => Err(message.data),
                            };
                            let sent = match admitted {
                                Ok(data) if *committee => rt_tx.try_send(RuntimeEvent::Committee(*rt, data, origin)).is_ok(),
                                Ok(data) => rt_tx.try_send(RuntimeEvent::Tx(*rt, data, origin)).is_ok(),
                                Err(_) => false,
                            };
                            if !sent {
                                swarm.behaviour_mut().gossipsub.report_message_validation_result(&message_id, &propagation_source, gossipsub::MessageAcceptance::Ignore);
                                if let Some(n) = dropped.note() {
                                    log::warn!(target: "p2p", runtime_id:% = rt; "runtime worker lags (its queue is full, or holds {MAX_QUEUED_BYTES} bytes): dropped {n} gossip message(s) since the last such line, not relayed");
                                }
                            }
                            continue;
                        }
                        let (verdict, tx) = if message.topic == txs_topic.hash() {
                            judge_tx(&message.data, &tx_context, &mut relayed_txs)
                        } else {
                            (gossipsub::MessageAcceptance::Reject, None)
                        };
                        if matches!(verdict, gossipsub::MessageAcceptance::Reject) {
                            if let Some(n) = refused.note() {
                                log::warn!(target: "p2p", "refused {n} gossip message(s) that are not a validly signed consensus transaction of this chain since the last such line (the last from peer {propagation_source}): not relayed");
                            }
                        }
                        swarm.behaviour_mut().gossipsub.report_message_validation_result(&message_id, &propagation_source, verdict);
                        if let Some(tx) = tx {
                            let _ = ev_tx.send(Event::Tx(tx)).await;
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure { request_id, .. })) => {
                        asked.remove(&request_id);
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. })) => match message {
                        request_response::Message::Request { request, channel, .. } => {
                            let reply = match request {
                                SyncRequest::Round { runtime, round } => round_reply(&store, runtime, round),
                                SyncRequest::StateNodes { runtime, wants } => {
                                    let empty = SyncReply::StateNodes { runtime, nodes: Vec::new() };
                                    match state_server.clone() {
                                        Some(serve) if serving.admit(peer) => {
                                            let served = served_tx.clone();
                                            tokio::task::spawn_blocking(move || {
                                                // The slot is given back even if serving panics.
                                                let nodes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(&runtime, &wants)))
                                                    .unwrap_or_default()
                                                    .into_iter()
                                                    .map(serde_bytes::ByteBuf::from)
                                                    .collect();
                                                let _ = served.blocking_send((peer, channel, SyncReply::StateNodes { runtime, nodes }));
                                            });
                                            continue;
                                        }
                                        _ => empty,
                                    }
                                }
                            };
                            let _ = swarm.behaviour_mut().sync.send_response(channel, reply.encode());
                        }
                        request_response::Message::Response { response, request_id } => {
                            let was = asked.remove(&request_id);
                            let response = match crate::encoding::from_cbor_weighed::<SyncReply>(&response, MAX_DECODED) {
                                Ok(r) => r,
                                Err(e) => {
                                    log::debug!(target: "p2p", "dropping an answer from peer {peer}: {e}");
                                    continue;
                                }
                            };
                            let ev = match response {
                                // Only the round asked for: a peer answering with another
                                // runtime's or round's batch gets it nowhere (not even held).
                                (SyncReply::Round(Some(b)), weight) => (was == Some((b.runtime, Some(b.round))))
                                    .then(|| RuntimeEvent::Round(b.runtime, b, weight)),
                                (SyncReply::Round(None), _) => None,
                                // Only as the answer to this node's request for an older round.
                                (SyncReply::Pruned { runtime, retained_from }, _) => was
                                    .filter(|(r, round)| *r == runtime && round.is_some_and(|round| retained_from > round))
                                    .map(|_| RuntimeEvent::Pruned(runtime, retained_from, peer.to_string())),
                                (SyncReply::StateNodes { runtime, nodes }, _) => (was == Some((runtime, None))).then(|| RuntimeEvent::StateNodes(
                                    runtime,
                                    peer.to_string(),
                                    nodes.into_iter().take(paratime_mkvs::sync::MAX_CHUNK_NODES).map(serde_bytes::ByteBuf::into_vec).collect(),
                                )),
                            };
                            if let Some(ev) = ev {
                                let _ = rt_tx.try_send(ev);
                            }
                        }
                    },
                    _ => {}
                },
            }
            let topics: BTreeMap<String, usize> = swarm
                .behaviour()
                .gossipsub
                .topics()
                .map(|t| {
                    (
                        t.to_string(),
                        swarm.behaviour().gossipsub.mesh_peers(t).count(),
                    )
                })
                .collect();
            let n = peers.len();
            status_tx.send_if_modified(|s| {
                let changed = s.num_peers != n || s.topics != topics;
                s.num_peers = n;
                s.topics = topics;
                changed
            });
        }
    });
    Ok((cmd_tx, ev_rx, rt_rx, status_rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};

    #[test]
    fn an_unreachable_runtime_peer_is_dialed_less_and_less_often() {
        let peer = PeerId::random();
        let t0 = tokio::time::Instant::now();
        let mut b = Backoff::default();
        assert!(b.due(&peer, t0));
        // Attempts at 0, 5, 15, 35 s …: the wait doubles, up to five minutes.
        let mut at = t0;
        let mut waits = Vec::new();
        for _ in 0..10 {
            b.dialed(peer, at);
            let (next, wait) = b.next[&peer];
            assert!(!b.due(&peer, next - Duration::from_millis(1)));
            assert!(b.due(&peer, next));
            waits.push(wait.as_secs());
            at = next;
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
        // Connected: a later loss is retried at once, then after 5 s.
        b.connected(&peer);
        assert!(b.due(&peer, at));
        b.dialed(peer, at);
        assert_eq!(b.next[&peer].1, Duration::from_secs(5));
        // A peer no longer registered is forgotten.
        b.retain(&BTreeMap::new());
        assert!(b.next.is_empty());
    }

    #[test]
    fn runtime_peers_are_the_registered_hosts_committee_first_and_capped() {
        use paratime_state::state::{
            Committee, CommitteeKind, CommitteeMember, ConsensusInfo, NodeDescriptor, NodeRuntime,
            P2pInfo, Role, RoleMask,
        };
        let rid = RuntimeId([1; 32]);
        let other = RuntimeId([2; 32]);
        let key = |i: u32| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&seed))
        };
        let node = |i: u32, hosts: RuntimeId, addresses: Vec<String>| NodeDescriptor {
            v: 3,
            id: key(i),
            entity_id: key(0),
            expiration: paratime_state::Epoch(10),
            p2p: P2pInfo {
                id: key(10_000 + i),
                addresses,
            },
            consensus: ConsensusInfo {
                id: key(20_000 + i),
                addresses: Vec::new(),
            },
            runtimes: vec![NodeRuntime {
                id: hosts,
                version: Default::default(),
            }],
            roles: RoleMask(1),
            software_version: String::new(),
        };
        let peer = |i: u32| peer_id_of(&key(10_000 + i)).expect("peer");
        let mut state = paratime_state::state::State::from_genesis(
            &crate::cli::network::empty_genesis("runtime-peers-test"),
        );
        let addr = |i: u32| vec![format!("127.0.0.1:{}", 20_000 + i)];
        // Me, a host of another runtime, a host with no usable address, and 100 hosts.
        for (i, n) in [
            (1, node(1, rid, addr(1))),
            (2, node(2, other, addr(2))),
            (3, node(3, rid, vec!["example.org:1".into(), "::1".into()])),
        ] {
            state.nodes.insert(key(i), n);
        }
        let many: Vec<String> = (0..50).map(|p| format!("10.0.0.1:{}", 1000 + p)).collect();
        state.nodes.insert(key(4), node(4, rid, many));
        for i in 5..104 {
            state.nodes.insert(key(i), node(i, rid, addr(i)));
        }
        // Node 77 serves on the runtime's committee.
        state.committees.insert(
            rid,
            Committee {
                kind: CommitteeKind::Executor,
                members: vec![CommitteeMember {
                    role: Role::Worker,
                    public_key: key(77),
                }],
                runtime_id: rid,
                valid_for: paratime_state::Epoch(1),
            },
        );
        let me = peer(1);
        let got = runtime_peers(&state, &BTreeSet::from([rid]), &me);
        assert_eq!(got.len(), MAX_RUNTIME_PEERS);
        assert!(!got.contains_key(&me), "itself");
        assert!(!got.contains_key(&peer(2)), "a host of another runtime");
        assert!(!got.contains_key(&peer(3)), "no usable address");
        assert!(
            got.contains_key(&peer(77)),
            "the committee member comes first"
        );
        let i = (5..104)
            .find(|i| got.contains_key(&peer(*i)))
            .expect("a host");
        let want: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", 20_000 + i)
            .parse()
            .expect("addr");
        assert_eq!(got[&peer(i)], vec![want]);
        assert!(got.values().all(|a| a.len() <= MAX_PEER_ADDRESSES));
        // Another node picks another subset of the same hosts.
        let theirs = runtime_peers(&state, &BTreeSet::from([rid]), &peer(i));
        assert_ne!(
            got.keys().filter(|p| **p != peer(i)).collect::<Vec<_>>(),
            theirs.keys().filter(|p| **p != me).collect::<Vec<_>>()
        );
        // A node hosting nothing registered dials nobody.
        assert!(runtime_peers(&state, &BTreeSet::from([RuntimeId([9; 32])]), &me).is_empty());
    }

    #[test]
    fn p2p_addresses_are_shown_as_ip_and_port_like_oasis() {
        let p = |s: &str| ip_port(&s.parse().expect("multiaddr"));
        assert_eq!(
            p("/ip4/10.0.0.1/tcp/9200").as_deref(),
            Some("10.0.0.1:9200")
        );
        assert_eq!(p("/ip6/::1/tcp/9200").as_deref(), Some("[::1]:9200"));
        assert_eq!(p("/ip4/10.0.0.1/udp/9200/quic-v1"), None);
        assert_eq!(p("/dns4/example.org/tcp/9200"), None);
    }

    #[test]
    fn a_consensus_transaction_gossiped_again_is_a_new_message_with_the_same_transaction() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let tx = Signed::sign(&key, "test context", &"a transaction");
        let topic = tx_topic("chain").hash();
        let (a, b) = (
            GossipedTx::new(tx.clone()).encode(),
            GossipedTx::new(tx.clone()).encode(),
        );
        // Message ids are the bytes (no author, no sequence number): the salt keeps a
        // re-gossip from being dropped as a duplicate.
        assert_ne!(content_id(&topic, &a), content_id(&topic, &b));
        for bytes in [a, b] {
            let got: GossipedTx = crate::encoding::from_cbor(&bytes).expect("decodes");
            assert_eq!(got.tx, tx);
        }
        // A bare transaction (the old wire form) is not taken for one.
        assert!(
            crate::encoding::from_cbor::<GossipedTx>(&crate::encoding::canonical_cbor(&tx))
                .is_err()
        );
    }

    #[test]
    fn gossiped_consensus_transactions_are_relayed_once_and_garbage_never() {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        let ctx = paratime_state::crypto::context(paratime_state::crypto::CONTEXT_TX, Some("c"));
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let tx = Signed::sign(&key, &ctx, &"a transaction");
        let mut relayed = Recent::new(Recent::TXS);
        let verdict = |data: &[u8], relayed: &mut Recent| {
            let (v, tx) = judge_tx(data, &ctx, relayed);
            (format!("{v:?}"), tx)
        };
        let first = verdict(&GossipedTx::new(tx.clone()).encode(), &mut relayed);
        assert_eq!(first, (format!("{Accept:?}"), Some(tx.clone())));
        // The same transaction under other salts: new messages to gossipsub, not relayed.
        for _ in 0..100 {
            let again = verdict(&GossipedTx::new(tx.clone()).encode(), &mut relayed);
            assert_eq!(again, (format!("{Ignore:?}"), None));
        }
        // Not a transaction, a forged signature, another chain's signature: refused.
        let mut forged = tx.clone();
        forged.untrusted_raw_value = serde_bytes::ByteBuf::from(b"other bytes".to_vec());
        let other_chain = Signed::sign(
            &key,
            &paratime_state::crypto::context(paratime_state::crypto::CONTEXT_TX, Some("d")),
            &"a transaction",
        );
        // Validly signed, but larger than a mempool takes: not relayed (8 MiB of it were).
        let body = "x".repeat(paratime_state::MAX_TX_BYTES);
        let oversized = Signed::sign(&key, &ctx, &body);
        let huge = Signed::sign(&key, &ctx, &"y".repeat(4 << 20));
        for bad in [
            b"garbage".to_vec(),
            Vec::new(),
            crate::encoding::canonical_cbor(&tx),
            GossipedTx::new(forged).encode(),
            GossipedTx::new(other_chain).encode(),
            GossipedTx::new(oversized).encode(),
            GossipedTx::new(huge).encode(),
        ] {
            assert_eq!(
                verdict(&bad, &mut relayed),
                (format!("{Reject:?}"), None),
                "{bad:?}"
            );
        }
        // Another transaction of the same signer goes through.
        let next = Signed::sign(&key, &ctx, &"another transaction");
        assert_eq!(
            verdict(&GossipedTx::new(next.clone()).encode(), &mut relayed),
            (format!("{Accept:?}"), Some(next))
        );
        // After the window the first one may travel again (the engine's re-gossip).
        let mut short = Recent::new(Duration::ZERO);
        assert!(
            judge_tx(&GossipedTx::new(tx.clone()).encode(), &ctx, &mut short)
                .1
                .is_some()
        );
        assert!(
            judge_tx(&GossipedTx::new(tx.clone()).encode(), &ctx, &mut short)
                .1
                .is_some()
        );
    }

    #[test]
    fn what_a_peer_can_cause_at_will_is_logged_once_a_minute_with_a_count() {
        let mut o = Occasional::default();
        assert_eq!(o.note(), Some(1), "the first is logged");
        for _ in 0..1000 {
            assert_eq!(o.note(), None);
        }
        o.logged = o.logged.and_then(|t| t.checked_sub(Occasional::EVERY));
        assert_eq!(
            o.note(),
            Some(1001),
            "the next line counts the 1,000 not logged and itself"
        );
    }

    #[test]
    fn a_message_on_a_topic_extending_another_does_not_take_its_id() {
        // A peer that knows a batch in advance sends it split differently between topic and
        // bytes, on a topic nobody follows: gossipsub records the id before it drops the message.
        let topic = gossipsub::IdentTopic::new("oasis/x/runtime/y/committee/1.0.0").hash();
        let batch = b"an executed batch";
        let longer = gossipsub::IdentTopic::new("oasis/x/runtime/y/committee/1.0.0a").hash();
        assert_ne!(content_id(&longer, &batch[1..]), content_id(&topic, batch));
        let shorter = gossipsub::IdentTopic::new("oasis/x/runtime/y/committee/1.0.").hash();
        let mut shifted = b"0".to_vec();
        shifted.extend_from_slice(batch);
        assert_ne!(content_id(&shorter, &shifted), content_id(&topic, batch));
        // The same topic and bytes are the same message, whoever publishes them.
        assert_eq!(content_id(&topic, batch), content_id(&topic, batch));
    }

    #[test]
    fn a_runtime_message_is_published_once_and_again_only_if_it_did_not_go_out() {
        let topic = gossipsub::IdentTopic::new("oasis/x/runtime/y/committee/1.0.0").hash();
        let mut r = Recent::default();
        let id = content_id(&topic, b"batch");
        assert!(r.insert(id.clone()), "first time");
        assert!(!r.insert(id.clone()), "received or sent already");
        // The id is gossipsub's own for that message: the same bytes on another topic differ.
        let other = gossipsub::IdentTopic::new("oasis/x/runtime/y/tx/1.0.0").hash();
        assert_ne!(content_id(&other, b"batch"), id);
        r.forget(&id);
        assert!(
            r.insert(id.clone()),
            "a publication that failed may be sent again"
        );
        // Bounded: the oldest are forgotten first.
        for i in 0..Recent::CAP as u32 {
            assert!(r.insert(content_id(&topic, &i.to_le_bytes())));
        }
        assert!(r.ids.len() <= Recent::CAP && r.order.len() == r.ids.len());
        assert!(r.insert(id), "the oldest id was forgotten");
    }

    /// A loopback configuration with a fresh key.
    fn config(state_server: Option<StateServer>) -> Config {
        let key = ed25519_dalek::SigningKey::from_bytes(&rand_seed());
        Config {
            keypair: keypair(&key),
            port: 0,
            listen_ip: "127.0.0.1".into(),
            seeds: Vec::new(),
            chain_context: "test".into(),
            runtimes: Vec::new(),
            state_server,
        }
    }

    fn swarm(limits: &Limits) -> Swarm<Behaviour> {
        build(&config(None), limits).expect("swarm")
    }

    fn rand_seed() -> [u8; 32] {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("random");
        seed
    }

    /// Runs a dialling swarm until the test ends.
    fn run(mut s: Swarm<Behaviour>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                s.select_next_some().await;
            }
        })
    }

    #[test]
    fn state_requests_are_served_one_per_peer_and_four_at_once() {
        let mut s = StateServing::default();
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        assert!(s.admit(peers[0]));
        assert!(!s.admit(peers[0]), "a second request of a busy peer");
        for p in &peers[1..MAX_STATE_SERVING] {
            assert!(s.admit(*p));
        }
        assert!(!s.admit(peers[MAX_STATE_SERVING]), "over the total");
        s.done(&peers[0]);
        assert!(s.admit(peers[MAX_STATE_SERVING]));
        assert!(!s.admit(peers[0]), "the freed slot went to another peer");
    }

    /// A peer sending a flood of state sync requests to a node that serves slowly has the
    /// requests beyond its one slot answered empty at once, and another peer is still served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_flooding_state_requests_does_not_starve_another() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(Store::open(&dir.path().join("store")).expect("store"));
        let serve: StateServer = Arc::new(|_, _| {
            std::thread::sleep(Duration::from_millis(300));
            vec![b"node".to_vec()]
        });
        let cfg = config(Some(serve));
        let server_id = cfg.keypair.public().to_peer_id();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (_cmd, _ev, _rt, mut status) =
            spawn(cfg, store, String::new(), shutdown.clone()).expect("spawn");
        let addr = tcp_address(&mut status).await;
        let runtime: RuntimeId = "0000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("runtime id");
        // Sends `n` requests once connected; returns how many answers carried nodes.
        let client = |n: usize| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut c = swarm(&Limits::default());
                c.dial(DialOpts::peer_id(server_id).addresses(vec![addr]).build())
                    .expect("dial");
                let (mut answers, mut with_nodes) = (0, 0);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while answers < n {
                    let ev = tokio::time::timeout_at(deadline, c.select_next_some())
                        .await
                        .expect("answers before the deadline");
                    match ev {
                        SwarmEvent::ConnectionEstablished { .. } => {
                            for _ in 0..n {
                                let wants = vec![([1; 32], 1)];
                                c.behaviour_mut().sync.send_request(
                                    &server_id,
                                    SyncRequest::StateNodes { runtime, wants },
                                );
                            }
                        }
                        SwarmEvent::Behaviour(BehaviourEvent::Sync(
                            request_response::Event::Message {
                                message: request_response::Message::Response { response, .. },
                                ..
                            },
                        )) => {
                            answers += 1;
                            let response: SyncReply =
                                crate::encoding::from_cbor(&response).expect("a reply");
                            if matches!(response, SyncReply::StateNodes { nodes, .. } if !nodes.is_empty())
                            {
                                with_nodes += 1;
                            }
                        }
                        SwarmEvent::Behaviour(BehaviourEvent::Sync(
                            request_response::Event::OutboundFailure { error, .. },
                        )) => panic!("request failed: {error}"),
                        _ => {}
                    }
                }
                with_nodes
            })
        };
        let flood = client(50);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let honest = client(1);
        let (flooded, served) = (flood.await.expect("flood"), honest.await.expect("honest"));
        assert_eq!(served, 1, "the other peer is served");
        // The flood's 50 requests arrive within the first 300 ms serve: one slot for the peer.
        assert!(
            flooded <= 2,
            "{flooded} of the flood's requests were served"
        );
        shutdown.cancel();
    }

    /// The TCP address a spawned node listens on.
    async fn tcp_address(status: &mut watch::Receiver<Status>) -> Multiaddr {
        loop {
            let tcp = status
                .borrow()
                .multiaddrs
                .iter()
                .find(|a| a.contains("/tcp/"))
                .cloned();
            if let Some(a) = tcp {
                return a.parse().expect("address");
            }
            tokio::time::timeout(Duration::from_secs(10), status.changed())
                .await
                .expect("a listen address")
                .expect("status");
        }
    }

    /// Nodes V and W (W dials V) hosting `runtimes`, once W sees V on `topic` and their mesh
    /// had a few heartbeats, and a raw gossipsub peer subscribed to `topic`, connected to V
    /// and aware of V's subscription (it may publish to V).
    async fn meshed_pair_and_a_peer(
        dir: &std::path::Path,
        runtimes: Vec<RuntimeId>,
        topic: &gossipsub::IdentTopic,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> (Channels, Channels, Swarm<Behaviour>) {
        let store = |n: &str| Arc::new(Store::open(&dir.join(n)).expect("store"));
        let mut v_cfg = config(None);
        v_cfg.runtimes = runtimes.clone();
        let v_id = v_cfg.keypair.public().to_peer_id();
        let mut v = spawn(v_cfg, store("v"), String::new(), shutdown.clone()).expect("spawn v");
        let v_addr = tcp_address(&mut v.3).await;
        let mut w_cfg = config(None);
        w_cfg.runtimes = runtimes;
        w_cfg.seeds = vec![(v_id, v_addr.clone())];
        let w = spawn(w_cfg, store("w"), String::new(), shutdown.clone()).expect("spawn w");
        // W joins V's mesh on the topic (a few 500 ms heartbeats).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while w
            .3
            .borrow()
            .topics
            .get(&topic.to_string())
            .copied()
            .unwrap_or(0)
            == 0
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "W never saw V subscribed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut h = swarm(&Limits::default());
        h.behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .expect("subscribe");
        h.dial(DialOpts::peer_id(v_id).addresses(vec![v_addr]).build())
            .expect("dial");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ev = tokio::time::timeout_at(deadline, h.select_next_some())
                .await
                .expect("V's subscription reaches the peer");
            if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                gossipsub::Event::Subscribed { peer_id, .. },
            )) = ev
            {
                if peer_id == v_id {
                    return (v, w, h);
                }
            }
        }
    }

    /// A hostile peer connected to node V publishes one valid consensus transaction under 300
    /// salts, 100 forged and 100 garbage messages: V delivers the transaction to its engine once
    /// and relays it once, so node W (V's only other peer) receives it once — not 300 times —
    /// and none of the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_re_salting_a_transaction_or_sending_garbage_gets_nothing_relayed() {
        let dir = tempfile::tempdir().expect("tmp");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let topic = tx_topic("test");
        let ((_v_cmd, mut v_ev, _v_rt, _), (_w_cmd, mut w_ev, _w_rt, _), mut h) =
            meshed_pair_and_a_peer(dir.path(), Vec::new(), &topic, &shutdown).await;
        let ctx = paratime_state::crypto::context(paratime_state::crypto::CONTEXT_TX, Some("test"));
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let tx = Signed::sign(&key, &ctx, &"one transaction");
        let mut forged = tx.clone();
        forged.untrusted_raw_value = serde_bytes::ByteBuf::from(b"forged".to_vec());
        let mut messages: Vec<Vec<u8>> = (0..300)
            .map(|_| GossipedTx::new(tx.clone()).encode())
            .collect();
        messages.extend((0..100u32).map(|i| {
            GossipedTx::new(Signed {
                untrusted_raw_value: serde_bytes::ByteBuf::from(i.to_le_bytes().to_vec()),
                ..forged.clone()
            })
            .encode()
        }));
        messages.extend((0..100u32).map(|i| format!("garbage {i}").into_bytes()));
        for m in messages {
            h.behaviour_mut()
                .gossipsub
                .publish(topic.clone(), m)
                .expect("publish");
        }
        let hostile = run(h);

        // W receives the transaction once; V delivered it once.
        let got = tokio::time::timeout(Duration::from_secs(20), w_ev.recv())
            .await
            .expect("W receives the transaction")
            .expect("event");
        assert!(matches!(&got, Event::Tx(t) if *t == tx), "{got:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut more = 0;
        while let Ok(ev) = w_ev.try_recv() {
            more += usize::from(matches!(ev, Event::Tx(_)));
        }
        let mut at_v = 0;
        while let Ok(ev) = v_ev.try_recv() {
            at_v += usize::from(matches!(&ev, Event::Tx(t) if *t == tx));
        }
        assert_eq!(
            (more, at_v),
            (0, 1),
            "(further deliveries at W, deliveries at V)"
        );
        hostile.abort();
        shutdown.cancel();
    }

    /// A runtime message's bytes and gossip origin (`None` for other events).
    fn gossiped(ev: RuntimeEvent) -> Option<(Vec<u8>, Gossiped)> {
        match ev {
            RuntimeEvent::Tx(_, data, origin) | RuntimeEvent::Committee(_, data, origin) => {
                Some((data.to_vec(), origin))
            }
            _ => None,
        }
    }

    /// On a runtime's transaction topic, node V relays a message only once its worker judged it
    /// worth relaying: of four messages a peer publishes at V, W (V's other peer) receives the
    /// one judged `Relay` and, later, the one judged `Relay` after a second without a verdict
    /// — never the ones judged `Drop` or `Refuse`, nor the held one before its verdict.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runtime_transaction_message_is_relayed_only_once_its_worker_says_so() {
        relayed_only_once_judged(false).await;
    }

    /// The same on a runtime's committee topic (proposals and executed batches): nothing a
    /// peer publishes there is relayed before V's worker checked it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runtime_committee_message_is_relayed_only_once_its_worker_says_so() {
        relayed_only_once_judged(true).await;
    }

    async fn relayed_only_once_judged(committee: bool) {
        let dir = tempfile::tempdir().expect("tmp");
        let runtime: RuntimeId = "8000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .expect("runtime id");
        let (txs, committee_topic) = runtime_topics("test", &runtime);
        let topic = if committee { committee_topic } else { txs };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let ((v_cmd, _v_ev, mut v_rt, _), (_w_cmd, _w_ev, mut w_rt, _), mut h) =
            meshed_pair_and_a_peer(dir.path(), vec![runtime], &topic, &shutdown).await;
        let message = |name: &str| {
            crate::encoding::canonical_cbor(&RuntimeTxs {
                txs: vec![serde_bytes::ByteBuf::from(name.as_bytes().to_vec())],
                salt: 7,
            })
        };
        let names = ["relay", "drop", "refuse", "held"];
        for name in names {
            h.behaviour_mut()
                .gossipsub
                .publish(topic.clone(), message(name))
                .expect("publish");
        }
        let hostile = run(h);

        // V's worker, played by the test.
        let mut held = None;
        let mut judged = 0;
        while judged < 3 || held.is_none() {
            let ev = tokio::time::timeout(Duration::from_secs(20), v_rt.recv())
                .await
                .expect("V hands the messages to its worker")
                .expect("event");
            let Some((data, origin)) = gossiped(ev) else {
                continue;
            };
            let verdict = if data == message("relay") {
                Verdict::Relay
            } else if data == message("drop") {
                Verdict::Drop
            } else if data == message("refuse") {
                Verdict::Refuse
            } else {
                held = Some(origin);
                continue;
            };
            judged += 1;
            v_cmd
                .send(Command::Judged(origin, verdict))
                .await
                .expect("command");
        }
        // What W receives: only the message judged `Relay`, for a second.
        let mut at_w = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some(ev)) = tokio::time::timeout_at(until, w_rt.recv()).await {
            at_w.extend(gossiped(ev).map(|(data, _)| data));
        }
        assert_eq!(at_w, vec![message("relay")], "W before the held verdict");
        v_cmd
            .send(Command::Judged(held.expect("held"), Verdict::Relay))
            .await
            .expect("command");
        let ev = tokio::time::timeout(Duration::from_secs(10), w_rt.recv())
            .await
            .expect("W receives the held message once judged")
            .expect("event");
        assert_eq!(
            gossiped(ev).map(|(data, _)| data),
            Some(message("held")),
            "W receives the held message"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut more = Vec::new();
        while let Ok(ev) = w_rt.try_recv() {
            more.extend(gossiped(ev).map(|(data, _)| String::from_utf8_lossy(&data).into_owned()));
        }
        assert!(more.is_empty(), "W received more: {more:?}");
        hostile.abort();
        shutdown.cancel();
    }

    /// Two runtime IDs, for a node hosting two runtimes.
    fn two_runtimes() -> (RuntimeId, RuntimeId) {
        let id = |n: u8| {
            let mut b = [0u8; 32];
            b[0] = 0x80;
            b[31] = n;
            RuntimeId(b)
        };
        (id(1), id(2))
    }

    /// A peer publishes 7 MiB messages on a runtime topic faster than V's worker takes them
    /// (here: not at all): V queues at most [`MAX_QUEUED_BYTES`] of them and relays none. The
    /// budget is the runtime's own: a message on another hosted runtime's topic, sent after
    /// the flood, is still queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runtime_messages_queued_for_a_worker_stay_within_a_byte_budget() {
        const SIZE: usize = 7 << 20;
        let dir = tempfile::tempdir().expect("tmp");
        let (runtime, other) = two_runtimes();
        let (_, topic) = runtime_topics("test", &runtime);
        let (_, other_topic) = runtime_topics("test", &other);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let ((_v_cmd, _v_ev, mut v_rt, _), (_w_cmd, _w_ev, mut w_rt, _), mut h) =
            meshed_pair_and_a_peer(dir.path(), vec![runtime, other], &topic, &shutdown).await;
        let big = |n: u8| {
            let mut m = vec![n; SIZE];
            m[0] = 0x5a;
            m
        };
        for n in 0..12u8 {
            h.behaviour_mut()
                .gossipsub
                .publish(topic.clone(), big(n))
                .expect("publish");
        }
        // 2 MiB: more than what the flood leaves of one shared budget (64 - 9 × 7 = 1 MiB).
        let other_message = vec![0x5a; 2 << 20];
        h.behaviour_mut()
            .gossipsub
            .publish(other_topic.clone(), other_message.clone())
            .expect("publish on the other runtime's topic");
        let hostile = run(h);
        // All 13 reach V within a few seconds; V queues what fits.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let mut queued: BTreeMap<RuntimeId, (usize, usize)> = BTreeMap::new();
        while let Ok(ev) = v_rt.try_recv() {
            if let RuntimeEvent::Committee(rt, data, _) = ev {
                let e = queued.entry(rt).or_default();
                e.0 += 1;
                e.1 += data.len();
            }
        }
        assert_eq!(
            queued,
            BTreeMap::from([
                (
                    runtime,
                    (MAX_QUEUED_BYTES / SIZE, MAX_QUEUED_BYTES / SIZE * SIZE)
                ),
                (other, (1, other_message.len())),
            ]),
            "what V queued for its workers (messages, bytes)"
        );
        assert!(w_rt.try_recv().is_err(), "W received nothing");
        hostile.abort();
        shutdown.cancel();
    }

    /// Node V asks a peer for round 5 of a runtime it hosts, four times; the peer answers with
    /// round 6, with another hosted runtime's round 5, with round 5 carrying 600,000 empty
    /// writes (7.8 MB on the wire, ~190 MiB decoded by the scan's weights, far more than
    /// [`MAX_DECODED`]), and finally with round 5 as asked. Then V asks twice for state nodes of
    /// the runtime: the peer answers with nodes of the other runtime, then of the one asked.
    /// Only the answers as asked reach V's workers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_counts_only_for_what_was_asked_and_within_the_decode_bound() {
        let dir = tempfile::tempdir().expect("tmp");
        let (runtime, other) = two_runtimes();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let mut v_cfg = config(None);
        v_cfg.runtimes = vec![runtime, other];
        let v_id = v_cfg.keypair.public().to_peer_id();
        let store = Arc::new(Store::open(&dir.path().join("v")).expect("store"));
        let (v_cmd, _v_ev, mut v_rt, mut v_status) =
            spawn(v_cfg, store, String::new(), shutdown.clone()).expect("spawn v");
        let v_addr = tcp_address(&mut v_status).await;
        let mut h = swarm(&Limits::default());
        h.dial(DialOpts::peer_id(v_id).addresses(vec![v_addr]).build())
            .expect("dial");
        let batch = |rt: RuntimeId, round: u64, writes: usize| ExecutedBatch {
            runtime: rt,
            round: paratime_state::Round(round),
            previous_state_root: [0; 32],
            state_root: [0; 32],
            io_root: [0; 32],
            inputs: Vec::new(),
            results: Vec::new(),
            write_log: vec![
                paratime_sdk::protocol::WriteLogEntry {
                    key: serde_bytes::ByteBuf::new(),
                    value: None,
                };
                writes
            ],
        };
        let answer = |b: ExecutedBatch| SyncReply::Round(Some(Box::new(b))).encode();
        let heavy = answer(batch(runtime, 5, 600_000));
        assert!(
            heavy.len() < 9 << 20,
            "the heavy answer fits the codec: {}",
            heavy.len()
        );
        let nodes = |rt: RuntimeId| {
            SyncReply::StateNodes {
                runtime: rt,
                nodes: vec![serde_bytes::ByteBuf::from(vec![1, 2, 3])],
            }
            .encode()
        };
        let (round, state) = (true, false);
        let answers = [
            (round, answer(batch(runtime, 6, 0))),
            (round, answer(batch(other, 5, 0))),
            (round, heavy),
            (round, answer(batch(runtime, 5, 0))),
            (state, nodes(other)),
            (state, nodes(runtime)),
        ];
        let mut delivered = Vec::new();
        for (asks_round, a) in answers {
            // V asks (again); the peer answers the first request it sees.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let mut ask = tokio::time::interval(Duration::from_millis(500));
            let channel = loop {
                tokio::select! {
                    _ = ask.tick() => {
                        assert!(tokio::time::Instant::now() < deadline, "V never asked the peer");
                        let command = if asks_round {
                            Command::FetchRound(runtime, paratime_state::Round(5))
                        } else {
                            Command::FetchState(runtime, vec![([9; 32], 1)], None)
                        };
                        v_cmd.send(command).await.expect("ask");
                    }
                    ev = h.select_next_some() => {
                        if let SwarmEvent::Behaviour(BehaviourEvent::Sync(
                            request_response::Event::Message {
                                message: request_response::Message::Request { request, channel, .. },
                                ..
                            },
                        )) = ev
                        {
                            let as_asked = match request {
                                SyncRequest::Round { runtime: r, round } => asks_round && r == runtime && round.0 == 5,
                                SyncRequest::StateNodes { runtime: r, .. } => !asks_round && r == runtime,
                            };
                            // An unanswered request of the step before is left to time out.
                            if as_asked {
                                break channel;
                            }
                        }
                    }
                }
            };
            h.behaviour_mut()
                .sync
                .send_response(channel, a)
                .expect("answer");
            // Sent, and taken apart by V.
            let until = tokio::time::Instant::now() + Duration::from_secs(2);
            while let Ok(ev) = tokio::time::timeout_at(until, h.select_next_some()).await {
                drop(ev);
            }
            while let Ok(ev) = v_rt.try_recv() {
                match ev {
                    RuntimeEvent::Round(rt, b, _) => {
                        delivered.push((
                            rt,
                            format!("round {} of {} writes", b.round.0, b.write_log.len()),
                        ));
                    }
                    RuntimeEvent::StateNodes(rt, _, nodes) => {
                        delivered.push((rt, format!("{} state nodes", nodes.len())));
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(
            delivered,
            vec![
                (runtime, "round 5 of 0 writes".to_string()),
                (runtime, "1 state nodes".to_string())
            ],
            "what reached V's workers"
        );
        shutdown.cancel();
    }

    #[test]
    fn queued_payloads_count_until_dropped() {
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let third = MAX_QUEUED_BYTES / 3;
        let a = Payload::admit(vec![0; third], &queued).expect("fits");
        let b = Payload::admit(vec![1; third], &queued).expect("fits");
        let c = Payload::admit(vec![2; third], &queued).expect("fits");
        let refused = Payload::admit(vec![3; third], &queued).expect_err("over the budget");
        assert_eq!(refused.len(), third, "the bytes come back");
        drop(b);
        let d = Payload::admit(vec![4; third], &queued).expect("fits again");
        assert_eq!(&d[..3], &[4, 4, 4]);
        drop((a, c, d));
        assert_eq!(queued.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    /// A server limited to 2 incoming connections and 1 per peer: one client dialling it three
    /// times gets one connection, two more clients get one each, a fourth is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_over_the_limits_are_refused() {
        let limits = Limits {
            max_established_incoming: 3,
            max_established_per_peer: 1,
            ..Limits::default()
        };
        let mut server = swarm(&limits);
        let server_id = *server.local_peer_id();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
                if address
                    .iter()
                    .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
                {
                    break address;
                }
            }
        };
        let mut clients = Vec::new();
        let mut dial = |times: usize| {
            let mut c = swarm(&Limits::default());
            for _ in 0..times {
                c.dial(
                    DialOpts::peer_id(server_id)
                        .addresses(vec![addr.clone()])
                        .condition(PeerCondition::Always)
                        .build(),
                )
                .expect("dial");
            }
            clients.push(run(c));
        };
        dial(3);
        let (mut established, mut per_peer, mut incoming) = (0, 0, 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        // The first client: one connection established, two refused by the per-peer limit.
        while established < 1 || per_peer < 2 {
            match tokio::time::timeout_at(deadline, server.select_next_some())
                .await
                .expect("events before the deadline")
            {
                SwarmEvent::ConnectionEstablished { .. } => established += 1,
                SwarmEvent::IncomingConnectionError {
                    error: libp2p::swarm::ListenError::Denied { cause },
                    ..
                } => {
                    let e = cause
                        .downcast::<libp2p::connection_limits::Exceeded>()
                        .expect("denied by the limits");
                    assert_eq!(e.limit(), 1, "{e}");
                    assert!(e.to_string().contains("per peer"), "{e}");
                    per_peer += 1;
                }
                _ => {}
            }
        }
        assert_eq!(established, 1);
        // Three more clients: two fit under the incoming limit of 3, the third is refused.
        for _ in 0..3 {
            dial(1);
        }
        while established < 3 || incoming < 1 {
            match tokio::time::timeout_at(deadline, server.select_next_some())
                .await
                .expect("events before the deadline")
            {
                SwarmEvent::ConnectionEstablished { .. } => established += 1,
                SwarmEvent::IncomingConnectionError {
                    error: libp2p::swarm::ListenError::Denied { cause },
                    ..
                } => {
                    let e = cause
                        .downcast::<libp2p::connection_limits::Exceeded>()
                        .expect("denied by the limits");
                    assert!(
                        e.to_string().contains("at most 3 established incoming"),
                        "{e}"
                    );
                    incoming += 1;
                }
                _ => {}
            }
        }
        assert_eq!((established, per_peer, incoming), (3, 2, 1));
        assert_eq!(server.connected_peers().count(), 3);
        for c in clients {
            c.abort();
        }
    }
}
