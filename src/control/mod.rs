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
}

async fn status(State(s): State<ControlState>) -> Json<Status> {
    let mut st = s.base.clone();
    for (id, rx) in &s.runtimes {
        st.runtimes.insert(id.clone(), rx.borrow().clone());
    }
    Json(st)
}

async fn is_synced(State(s): State<ControlState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "synced": *s.synced.borrow() }))
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
