//! Node registration (oasis-facts §4): once per epoch the node signs its descriptor with its node,
//! P2P and consensus keys (expiration = epoch + 2) and submits `registry.RegisterNode` signed by
//! its node key, both through the node's signer. A compute node registers the compute role with
//! its runtimes; a validator (`mode: validator` or `consensus.validator: true`) registers the
//! validator role with its consensus address, and the validator set of each epoch is elected
//! from these registrations. It waits, with oasis's deferral messages, while its entity does not
//! exist or does not list it, and (compute role) while its runtimes are not ready. On shutdown it
//! deregisters first.
//!
//! Owns the registration status; never touches consensus state except by transactions.

use crate::consensus::crypto::{PublicKey, Signed};
use crate::consensus::engine::{Backend, View};
use crate::consensus::state::{ConsensusInfo, NodeDescriptor, NodeRuntime, P2pInfo, RoleMask};
use crate::encoding::{hash_of, Hash};
use crate::signer::Signer;
use paratime_state::signing::{KeyRole, SlotSigner};
use paratime_state::Epoch;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `registration` in `control status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// The last attempt succeeded.
    pub last_attempt_successful: bool,
    /// Why it did not.
    pub last_attempt_error_message: String,
    /// When it was made (RFC 3339; oasis's zero time before the first).
    #[serde(serialize_with = "time_or_zero")]
    pub last_attempt: Option<String>,
    /// When the node was last registered (RFC 3339; oasis's zero time if never).
    #[serde(serialize_with = "time_or_zero")]
    pub last_registration: Option<String>,
    /// The descriptor last submitted.
    pub descriptor: Option<NodeDescriptor>,
    /// The registry's view of this node (filled by the control API from the consensus state).
    pub node_status: Option<NodeStatus>,
}

/// Go's zero `time.Time`, as oasis prints a time that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn time_or_zero<S: serde::Serializer>(t: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_deref().unwrap_or(ZERO_TIME))
}

/// `registration.node_status` (oasis `registry/api.NodeStatus`), from the consensus state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeStatus {
    /// Whether the node's expiration was processed (it expired and was removed).
    pub expiration_processed: bool,
    /// Epoch until which the node is frozen (0: not frozen; this network never freezes).
    pub freeze_end_time: u64,
    /// The epoch of the node's registration: it is elected from the next one on (0: not
    /// registered, so ineligible).
    pub election_eligible_after: u64,
}

/// What the worker needs.
pub struct Worker {
    /// The node's signer (descriptor and transactions).
    pub signer: Arc<Signer>,
    /// Owning entity.
    pub entity: PublicKey,
    /// Roles registered.
    pub roles: RoleMask,
    /// Runtimes this node serves (compute role).
    pub runtimes: Vec<NodeRuntime>,
    /// Advertised `IP:port` addresses.
    pub p2p_addresses: Vec<String>,
    /// Advertised consensus addresses, `<P2P key>@IP:port` (validator role).
    pub consensus_addresses: Vec<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Worker {
    fn tx<T: Serialize>(
        &self,
        view: &View,
        method: &str,
        body: &T,
    ) -> Result<Signed, crate::signer::EncodeError> {
        self.signer.transaction(&view.state, method, body)
    }

    fn descriptor(&self, epoch: Epoch) -> NodeDescriptor {
        let compute = self.roles.contains(RoleMask::COMPUTE);
        NodeDescriptor {
            v: 3,
            id: self.signer.public_key(KeyRole::Node),
            entity_id: self.entity,
            expiration: epoch.saturating_add(2),
            p2p: P2pInfo {
                id: self.signer.p2p_public_key(),
                addresses: self.p2p_addresses.clone(),
            },
            consensus: ConsensusInfo {
                id: self.signer.public_key(KeyRole::Consensus),
                addresses: self.consensus_addresses.clone(),
            },
            runtimes: if compute {
                self.runtimes.clone()
            } else {
                Vec::new()
            },
            roles: self.roles,
            software_version: crate::SOFTWARE_VERSION.to_string(),
        }
    }

    /// Why registration must wait, if it must (oasis's messages).
    fn deferral(&self, view: &View) -> Option<String> {
        let me = self.signer.public_key(KeyRole::Node);
        match view.state.entities.get(&self.entity) {
            None => Some("deferring registration as the owning entity does not exist".into()),
            Some(e) if !e.nodes.contains(&me) => Some(
                "deferring registration as the owning entity does not have us in its node list"
                    .into(),
            ),
            Some(_) => None,
        }
    }

    /// Why not to sign now although it is time to: a node whose latest block is more than an
    /// epoch old would sign an expiration the chain has passed by the time the transaction
    /// lands (a follower catching up, or a chain that has stopped: then nothing lands anyway).
    fn behind(view: &View, now_ms: u64) -> Option<String> {
        let g = &view.state.genesis;
        let epoch_ms = g.epoch_interval.saturating_mul(g.block_interval_ms);
        let lag = now_ms.saturating_sub(view.latest_time_ms);
        (view.latest_time_ms != 0 && lag > epoch_ms).then(|| {
            format!(
                "not registering: the latest block (height {}) is {:.1} s old, more than an epoch ({:.1} s); waiting to catch up",
                view.state.height,
                lag as f64 / 1000.0,
                epoch_ms as f64 / 1000.0
            )
        })
    }

    /// Runs until `shutdown`; then deregisters (bounded wait) and returns whether the node is
    /// known to be out of the registry.
    pub async fn run(
        self,
        backend: impl Backend,
        status: watch::Sender<Status>,
        mut runtimes_ready: watch::Receiver<bool>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> bool {
        let module = "worker/registration";
        let me = self.signer.public_key(KeyRole::Node);
        let mut views = backend.view();
        let mut attempted_epoch: Option<Epoch> = None;
        let mut pending: Option<(Hash, u64)> = None;
        let mut ready_open = true;
        loop {
            // A node without runtimes (a validator) has no readiness to follow: its sender is
            // gone, and the last value stands.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = views.changed() => if r.is_err() { return false },
                r = runtimes_ready.changed(), if ready_open => if r.is_err() { ready_open = false },
            }
            let view = views.borrow().clone();
            if !view.synced {
                continue;
            }
            // Outcome of a pending registration.
            if let Some((h, height)) = pending {
                if let Some(o) = view.last_outcomes.iter().find(|o| o.hash == h) {
                    pending = None;
                    match &o.error {
                        None => {
                            log::info!(target: module, epoch = view.state.epoch.0; "node registered with the registry");
                            status.send_modify(|s| {
                                s.last_attempt_successful = true;
                                s.last_attempt_error_message.clear();
                                s.last_registration = Some(now());
                            });
                        }
                        Some(e) => {
                            log::error!(target: module, err:% = e; "failed to (re-)register node");
                            status.send_modify(|s| {
                                s.last_attempt_successful = false;
                                s.last_attempt_error_message = e.to_string();
                            });
                        }
                    }
                } else if view.state.height.0 > height + 10 {
                    pending = None;
                    attempted_epoch = None;
                }
                continue;
            }
            if attempted_epoch == Some(view.state.epoch) {
                continue;
            }
            if self.roles.contains(RoleMask::COMPUTE) && !*runtimes_ready.borrow() {
                status.send_modify(|s| {
                    s.last_attempt_error_message =
                        "not registering: waiting for hosted runtime provision".into()
                });
                continue;
            }
            if let Some(why) = Self::behind(&view, now_ms()) {
                status.send_modify(|s| s.last_attempt_error_message = why);
                continue;
            }
            if let Some(why) = self.deferral(&view) {
                log::warn!(target: module, node_id:% = me; "{why}");
                status.send_modify(|s| {
                    s.last_attempt_successful = false;
                    s.last_attempt_error_message = why.clone();
                    s.last_attempt = Some(now());
                });
                attempted_epoch = Some(view.state.epoch);
                continue;
            }
            let desc = self.descriptor(view.state.epoch);
            let signed = self.signer.descriptor(&desc);
            let tx = match self.tx(&view, "registry.RegisterNode", &signed) {
                Ok(tx) => tx,
                Err(e) => {
                    log::error!(target: module, "failed to (re-)register node: {e}");
                    attempted_epoch = Some(view.state.epoch);
                    continue;
                }
            };
            log::info!(target: module, epoch = view.state.epoch.0, node_id:% = me; "performing node (re-)registration");
            pending = Some((hash_of(&tx), view.state.height.0));
            attempted_epoch = Some(view.state.epoch);
            status.send_modify(|s| {
                s.last_attempt = Some(now());
                s.descriptor = Some(desc.clone());
            });
            if let Err(e) = backend.submit(tx) {
                log::error!(target: module, "failed to (re-)register node: {e}");
                pending = None;
            }
        }
        // Deregister before stopping (control shutdown / SIGTERM).
        // Whether the node is registered is known once the view is synced (a node told to stop
        // right after its start has not synced yet): wait a little for that.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !views.borrow().synced {
                if views.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        let view = views.borrow().clone();
        let mut gone = view.synced && !view.state.nodes.contains_key(&me);
        if view.state.nodes.contains_key(&me) {
            log::info!(target: module, "waiting for node to deregister");
            if let Ok(tx) = self.tx(&view, "registry.DeregisterNode", &()) {
                let _ = backend.submit(tx);
            }
            let wait = async {
                loop {
                    if views.changed().await.is_err() {
                        return false;
                    }
                    if !views.borrow().state.nodes.contains_key(&me) {
                        return true;
                    }
                }
            };
            gone = tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .unwrap_or(false);
        }
        log::info!(target: module, deregistered = gone; "registration stopped, shutting down");
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::state::State;

    fn view(latest_time_ms: u64) -> View {
        let g = crate::cli::network::empty_genesis("registration-test");
        View {
            state: Arc::new(State::from_genesis(&g)),
            latest_hash: [0; 32],
            latest_time_ms,
            synced: true,
            is_validator: false,
            last_outcomes: Vec::new(),
            last_commit_round: 0,
            last_commit_signers: Vec::new(),
            evidence: Vec::new(),
            finality_ms: (0, 0),
            block_interval_ms: 200,
            last_retained_height: 1,
        }
    }

    #[test]
    fn a_node_more_than_an_epoch_behind_does_not_sign_a_registration() {
        // One epoch is 10 blocks of 200 ms.
        let t = 1_000_000;
        assert_eq!(Worker::behind(&view(t), t + 1_999), None);
        assert_eq!(Worker::behind(&view(t), t + 2_000), None);
        let why = Worker::behind(&view(t), t + 2_001).expect("behind");
        assert!(
            why.contains("2.0 s old, more than an epoch (2.0 s)"),
            "{why}"
        );
        // A clock behind the block's time is not "behind".
        assert_eq!(Worker::behind(&view(t), t - 5_000), None);
    }
}
