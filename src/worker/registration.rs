//! Node registration (oasis-facts §4): once per epoch the node signs its descriptor with its node,
//! P2P and consensus keys (expiration = epoch + 2) and submits `registry.RegisterNode` signed by
//! its node key. It waits, with oasis's deferral messages, while its entity does not exist or
//! does not list it, and while its runtimes are not ready. On shutdown it deregisters first.
//!
//! Owns the registration status; never touches consensus state except by transactions.

use crate::consensus::crypto::{self, MultiSigned, PublicKey, Signed};
use crate::consensus::engine::{Backend, View};
use crate::consensus::state::{ConsensusInfo, NodeDescriptor, NodeRuntime, P2pInfo, ROLE_COMPUTE};
use crate::encoding::{hash_of, Hash};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::watch;

/// `registration` in `control status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// The last attempt succeeded.
    pub last_attempt_successful: bool,
    /// Why it did not.
    pub last_attempt_error_message: String,
    /// When it was made (RFC 3339).
    pub last_attempt: Option<String>,
    /// When the node was last registered (RFC 3339).
    pub last_registration: Option<String>,
    /// The descriptor last submitted.
    pub descriptor: Option<NodeDescriptor>,
}

/// What the worker needs.
pub struct Worker {
    /// Node identity key.
    pub node: SigningKey,
    /// P2P key.
    pub p2p: SigningKey,
    /// Consensus key.
    pub consensus: SigningKey,
    /// Owning entity.
    pub entity: PublicKey,
    /// Runtimes this node serves.
    pub runtimes: Vec<NodeRuntime>,
    /// Advertised `IP:port` addresses.
    pub p2p_addresses: Vec<String>,
    /// Node-key nonces, shared with the runtime workers.
    pub nonces: super::Nonces,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Worker {
    fn tx<T: Serialize>(&self, view: &View, method: &str, body: &T) -> Signed {
        self.nonces.sign(&self.node, view, method, body)
    }

    fn descriptor(&self, epoch: u64) -> NodeDescriptor {
        NodeDescriptor {
            v: 3,
            id: PublicKey::of(&self.node),
            entity_id: self.entity,
            expiration: epoch + 2,
            p2p: P2pInfo {
                id: PublicKey::of(&self.p2p),
                addresses: self.p2p_addresses.clone(),
            },
            consensus: ConsensusInfo {
                id: PublicKey::of(&self.consensus),
                addresses: Vec::new(),
            },
            runtimes: self.runtimes.clone(),
            roles: ROLE_COMPUTE,
            software_version: crate::SOFTWARE_VERSION.to_string(),
        }
    }

    /// Why registration must wait, if it must (oasis's messages).
    fn deferral(&self, view: &View) -> Option<String> {
        let me = PublicKey::of(&self.node);
        match view.state.entities.get(&self.entity) {
            None => Some("deferring registration as the owning entity does not exist".into()),
            Some(e) if !e.nodes.contains(&me) => Some(
                "deferring registration as the owning entity does not have us in its node list"
                    .into(),
            ),
            Some(_) => None,
        }
    }

    /// Runs until `shutdown`; then deregisters (bounded wait) and returns.
    pub async fn run(
        self,
        backend: impl Backend,
        status: watch::Sender<Status>,
        mut runtimes_ready: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let module = "worker/registration";
        let me = PublicKey::of(&self.node);
        let mut views = backend.view();
        let mut attempted_epoch: Option<u64> = None;
        let mut pending: Option<(Hash, u64)> = None;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                r = views.changed() => if r.is_err() { return },
                r = runtimes_ready.changed() => if r.is_err() { return },
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
                            log::info!(target: module, epoch = view.state.epoch; "node registered with the registry");
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
                } else if view.state.height > height + 10 {
                    pending = None;
                    attempted_epoch = None;
                }
                continue;
            }
            if attempted_epoch == Some(view.state.epoch) {
                continue;
            }
            if !*runtimes_ready.borrow() {
                status.send_modify(|s| {
                    s.last_attempt_error_message =
                        "not registering: waiting for hosted runtime provision".into()
                });
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
            let signed = MultiSigned::sign(
                &[&self.node, &self.p2p, &self.consensus],
                crypto::CONTEXT_REGISTER_NODE,
                &desc,
            );
            let tx = self.tx(&view, "registry.RegisterNode", &signed);
            log::info!(target: module, epoch = view.state.epoch, node_id:% = me; "performing node (re-)registration");
            pending = Some((hash_of(&tx), view.state.height));
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
        let view = views.borrow().clone();
        if view.state.nodes.contains_key(&me) {
            log::info!(target: module, "waiting for node to deregister");
            let _ = backend.submit(self.tx(&view, "registry.DeregisterNode", &()));
            let wait = async {
                loop {
                    if views.changed().await.is_err()
                        || !views.borrow().state.nodes.contains_key(&me)
                    {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        }
        log::info!(target: module, "registration stopped, shutting down");
    }
}
