//! The control API: HTTP/JSON on the node's `internal.sock` (usable with
//! `curl --unix-socket data/internal.sock http://localhost/api/v1/status`).
//!
//! Endpoints: `GET /api/v1/status`, `GET /api/v1/is-synced`, `POST /api/v1/shutdown`. The server
//! only reads status snapshots published by their owners and sends the shutdown request; it
//! changes nothing else.

pub mod client;

use crate::host::launcher::Info as SandboxInfo;
use crate::host::supervisor::RuntimeStatus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
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
    pub runtimes: BTreeMap<String, RuntimeStatus>,
    /// The sandbox launcher's report.
    pub sandbox: Option<SandboxInfo>,
    /// Self-confinement in force (null when disabled).
    pub confinement: Option<crate::system::confine::Report>,
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
    pub shutdown: watch::Sender<bool>,
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

fn consensus_json(v: &crate::consensus::engine::View) -> serde_json::Value {
    serde_json::json!({
        "status": if v.synced { "ready" } else { "syncing" },
        "backend": "paratime-node/single-validator",
        "latest_height": v.state.height,
        "latest_hash": hex::encode(v.latest_hash),
        "latest_time": rfc3339_ms(v.latest_time_ms),
        "latest_epoch": v.state.epoch,
        "latest_state_root": hex::encode(v.state.root()),
        "genesis_height": 0,
        "chain_context": v.state.chain_context,
        "is_validator": v.is_validator,
    })
}

async fn status(State(s): State<ControlState>) -> Json<serde_json::Value> {
    use crate::consensus::engine::Backend;
    let mut st = s.base.clone();
    for (id, rx) in &s.runtimes {
        st.runtimes.insert(id.clone(), rx.borrow().clone());
    }
    let mut v = serde_json::to_value(&st).unwrap_or_default();
    if let Some(c) = &s.network.consensus {
        let view = c.view().borrow().clone();
        v["consensus"] = consensus_json(&view);
        if let Some(runtimes) = v["runtimes"].as_object_mut() {
            for (id, rt) in runtimes.iter_mut() {
                let Ok(rid) = id.parse::<crate::bundle::RuntimeId>() else {
                    continue;
                };
                let (roles, rank) = view.state.committee_roles(&rid, &s.node_id);
                rt["committee"]["executor_roles"] = serde_json::json!(roles);
                rt["committee"]["scheduler_rank"] = serde_json::json!(rank);
                rt["committee"]["latest_height"] = serde_json::json!(view.state.height);
                rt["committee"]["epoch"] = serde_json::json!(view.state.epoch);
                if let Some(c) = view.state.committees.get(&rid) {
                    rt["committee"]["members"] =
                        serde_json::to_value(&c.members).unwrap_or_default();
                }
                if let Some(chain) = view.state.roothash.get(&rid) {
                    rt["latest_round"] = serde_json::json!(chain.block.round);
                    rt["latest_hash"] = serde_json::json!(hex::encode(chain.block.hash()));
                    rt["latest_state_root"] =
                        serde_json::json!(hex::encode(chain.block.state_root));
                    rt["roothash"] = serde_json::json!({
                        "rounds_finalized": chain.rounds_finalized,
                        "rounds_failed": chain.rounds_failed,
                        "discrepancies": chain.discrepancies,
                        "pool": {
                            "round": chain.block.round + 1,
                            "commitments": chain.pool.commits.len(),
                            "discrepancy": chain.pool.discrepancy,
                            "timeout_at": chain.pool.timeout_at,
                        },
                    });
                    rt["committee"]["liveness"] = serde_json::to_value(
                        chain.liveness.get(&s.node_id).cloned().unwrap_or_default(),
                    )
                    .unwrap_or_default();
                }
                if let Some(w) = s.network.workers.get(&rid) {
                    let ws = w.status.borrow().clone();
                    rt["committee"]["latest_round"] = serde_json::json!(ws.latest_round);
                    rt["worker"] = serde_json::to_value(&ws).unwrap_or_default();
                }
            }
        }
    }
    if let Some(p) = &s.network.p2p {
        v["p2p"] = serde_json::to_value(&*p.borrow()).unwrap_or_default();
    }
    if let Some(r) = &s.network.registration {
        v["registration"] = serde_json::to_value(&*r.borrow()).unwrap_or_default();
    }
    Json(v)
}

/// A JSON reply with its HTTP status.
type Reply = (StatusCode, Json<serde_json::Value>);

fn ok(v: serde_json::Value) -> Reply {
    (StatusCode::OK, Json(v))
}

fn fail(code: StatusCode, message: impl std::fmt::Display) -> Reply {
    (
        code,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
}

fn decode_b64(v: &serde_json::Value, what: &str) -> Result<Vec<u8>, Reply> {
    use base64::Engine;
    v.as_str()
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                format!("expected \"{what}\": base64 CBOR"),
            )
        })
}

async fn submit(State(s): State<ControlState>, Json(req): Json<serde_json::Value>) -> Reply {
    use crate::consensus::engine::Backend;
    let Some(c) = &s.network.consensus else {
        return fail(
            StatusCode::BAD_REQUEST,
            "this node runs no consensus (empty genesis)",
        );
    };
    let bytes = match decode_b64(&req["tx"], "tx") {
        Ok(b) => b,
        Err(e) => return e,
    };
    let tx: crate::consensus::crypto::Signed = match crate::encoding::from_cbor(&bytes) {
        Ok(t) => t,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let hash = hex::encode(crate::encoding::hash_of(&tx));
    match c.submit(tx) {
        Ok(()) => ok(serde_json::json!({ "hash": hash })),
        Err(e) => fail(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn account(
    State(s): State<ControlState>,
    axum::extract::Path(addr): axum::extract::Path<String>,
) -> Reply {
    use crate::consensus::engine::Backend;
    let Some(c) = &s.network.consensus else {
        return fail(StatusCode::BAD_REQUEST, "this node runs no consensus");
    };
    let a: crate::consensus::address::Address = match addr.parse() {
        Ok(a) => a,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let view = c.view().borrow().clone();
    let acct = view.state.account(&a);
    let entity = view
        .state
        .entities
        .values()
        .find(|e| crate::consensus::address::Address::from_public_key(&e.id) == a);
    ok(serde_json::json!({
        "address": a.to_string(),
        "account": acct,
        "height": view.state.height,
        "epoch": view.state.epoch,
        "chain_id": view.state.genesis.chain_id,
        "chain_context": view.state.chain_context,
        "entity": entity,
        "required_stake": entity.map(|e| view.state.required_stake(&e.id, None)),
    }))
}

fn worker(s: &ControlState, rid: &str) -> Result<crate::worker::compute::Handle, Reply> {
    let id: crate::bundle::RuntimeId = rid
        .parse()
        .map_err(|e: crate::bundle::RuntimeIdError| fail(StatusCode::BAD_REQUEST, e))?;
    s.network.workers.get(&id).cloned().ok_or_else(|| {
        fail(
            StatusCode::NOT_FOUND,
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

/// `POST /api/v1/runtime/{id}/submit {"tx": b64 call, "timeout_ms"?}`: checks, gossips and
/// waits until the transaction is finalized.
async fn runtime_submit(
    State(s): State<ControlState>,
    axum::extract::Path(rid): axum::extract::Path<String>,
    Json(req): Json<serde_json::Value>,
) -> Reply {
    let (w, tx) = match worker(&s, &rid).and_then(|w| Ok((w, decode_b64(&req["tx"], "tx")?))) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let timeout = std::time::Duration::from_millis(req["timeout_ms"].as_u64().unwrap_or(60_000));
    match w.submit(tx, timeout).await {
        Ok(o) => ok(serde_json::json!({
            "hash": o.hash,
            "round": o.round,
            "index": o.index,
            "result": {
                "error": o.result.error,
                "output": o.result.output.as_ref().map(cbor_b64),
            },
        })),
        Err(e) => fail(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// `POST /api/v1/runtime/{id}/query {"method", "args": b64 CBOR}` on the finalized state.
async fn runtime_query(
    State(s): State<ControlState>,
    axum::extract::Path(rid): axum::extract::Path<String>,
    Json(req): Json<serde_json::Value>,
) -> Reply {
    let (w, args) = match worker(&s, &rid).and_then(|w| Ok((w, decode_b64(&req["args"], "args")?)))
    {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Some(method) = req["method"].as_str() else {
        return fail(StatusCode::BAD_REQUEST, "expected \"method\"");
    };
    let args: ciborium::Value = match crate::encoding::from_cbor(&args) {
        Ok(a) => a,
        Err(e) => return fail(StatusCode::BAD_REQUEST, format!("args: {e}")),
    };
    match w.query(method, args).await {
        Ok((round, data)) => ok(serde_json::json!({ "round": round, "data": cbor_b64(&data) })),
        Err(e) => fail(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn is_synced(State(s): State<ControlState>) -> Json<serde_json::Value> {
    use crate::consensus::engine::Backend;
    let synced = match &s.network.consensus {
        Some(c) => c.view().borrow().synced,
        None => *s.synced.borrow(),
    };
    Json(serde_json::json!({ "synced": synced }))
}

async fn shutdown(State(s): State<ControlState>) -> Json<serde_json::Value> {
    log::info!(target: "control", "shutdown requested through the control API");
    s.shutdown.send_replace(true);
    Json(serde_json::json!({ "shutdown": "requested" }))
}

/// Serves the API on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: ControlState,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/is-synced", get(is_synced))
        .route("/api/v1/shutdown", post(shutdown))
        .route("/api/v1/consensus/submit", post(submit))
        .route("/api/v1/consensus/account/{addr}", get(account))
        .route("/api/v1/runtime/{id}/submit", post(runtime_submit))
        .route("/api/v1/runtime/{id}/query", post(runtime_query))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
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
