//! `runtime exec`: run transactions through a bundle in the real sandbox.

use crate::bundle::Bundle;
use crate::config;
use crate::host::{self, state::RuntimeState, HostedRuntime};
use crate::node::launcher_child::LauncherChild;
use paratime_sdk::dispatcher::Call;
use paratime_sdk::protocol::{
    Body, Empty, RuntimeCheckTxBatchRequest, RuntimeExecuteTxBatchRequest, RuntimeQueryRequest,
};
use serde_bytes::ByteBuf;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Options of `runtime exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The bundle to run.
    #[arg(long)]
    bundle: PathBuf,
    /// A transaction, JSON: {"method":"kv.Put","body":{...}} (repeatable; one batch, in order).
    #[arg(long = "tx")]
    txs: Vec<String>,
    /// A query, JSON: {"method":"kv.Get","body":{...}} (repeatable; run after the batch).
    #[arg(long = "query")]
    queries: Vec<String>,
    /// State file kept between invocations (created when missing).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Local configuration for the runtime, JSON.
    #[arg(long)]
    runtime_config: Option<String>,
    /// bubblewrap binary.
    #[arg(long, default_value = "/usr/bin/bwrap")]
    sandbox_binary: PathBuf,
    /// Size limit of the bundle.
    #[arg(long, default_value = "20mb")]
    max_bundle_size: String,
}

fn parse_call(kind: &str, s: &str) -> anyhow::Result<Call> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| anyhow::anyhow!("--{kind} '{s}': not JSON: {e}"))?;
    let method = v
        .get("method")
        .and_then(|m| m.as_str())
        .ok_or_else(|| anyhow::anyhow!("--{kind} '{s}': missing \"method\""))?
        .to_string();
    let body = v.get("body").cloned().unwrap_or(serde_json::Value::Null);
    let body =
        ciborium::Value::serialized(&body).map_err(|e| anyhow::anyhow!("--{kind}: body: {e}"))?;
    Ok(Call { method, body })
}

fn to_json(v: &ciborium::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A scratch directory that is removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let base = std::env::temp_dir().join("paratime-exec-XXXXXX");
        let p = nix::unistd::mkdtemp(&base).map_err(|e| {
            anyhow::anyhow!(
                "cannot create a scratch directory in {}: {e} (set TMPDIR to a writable directory)",
                std::env::temp_dir().display()
            )
        })?;
        Ok(Self(p))
    }
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Installs a bundle in a scratch dir and starts a launcher for it (also used by
/// `paratime-dev bench`).
pub fn prepare(
    bundle: &Path,
    max: u64,
    sandbox_binary: &Path,
    unconfined: bool,
) -> anyhow::Result<(Scratch, LauncherChild, HostedRuntime, Bundle)> {
    let b = Bundle::open(bundle, max).map_err(|e| anyhow::anyhow!("{}: {e}", bundle.display()))?;
    let scratch = Scratch::new()?;
    let bundles = scratch.0.join("bundles");
    std::fs::create_dir(&bundles)?;
    b.explode(&bundles)?;
    let launcher = LauncherChild::start(
        &scratch.0.join("sandbox.sock"),
        &bundles,
        sandbox_binary,
        unconfined,
        ("logfmt", "warn"),
    )?;
    let rt = HostedRuntime {
        id: b.manifest.id,
        name: b.manifest.name.clone(),
        bundle: b.manifest.hash_hex(),
        version: b.ronl.version,
        local_config: None,
        chain_context: String::new(),
    };
    Ok((scratch, launcher, rt, b))
}

async fn exec_async(a: ExecArgs) -> anyhow::Result<serde_json::Value> {
    let max = config::parse_size(&a.max_bundle_size)
        .map_err(|e| anyhow::anyhow!("--max-bundle-size: {e}"))?;
    let txs = a
        .txs
        .iter()
        .map(|t| parse_call("tx", t))
        .collect::<Result<Vec<_>, _>>()?;
    let queries = a
        .queries
        .iter()
        .map(|q| parse_call("query", q))
        .collect::<Result<Vec<_>, _>>()?;
    let (scratch, launcher, mut rt, _) = prepare(&a.bundle, max, &a.sandbox_binary, false)?;
    if let Some(c) = &a.runtime_config {
        let v: serde_json::Value = serde_json::from_str(c)
            .map_err(|e| anyhow::anyhow!("--runtime-config: not JSON: {e}"))?;
        rt.local_config = Some(ciborium::Value::serialized(&v)?);
    }
    let state_file = match &a.state {
        Some(p) => p.clone(),
        None => scratch.path().join(crate::host::state::FILE_NAME),
    };
    let state = Arc::new(RuntimeState::open(&state_file, 16 << 20)?);
    state.resume_latest()?;
    let info = launcher.client().info()?;
    if let Some(e) = info.trial_error {
        return Err(anyhow::anyhow!("sandbox unavailable: {e}"));
    }
    let p = host::provision(
        &launcher.client(),
        &rt,
        &host::StartOptions::defaults(info.provisioner),
        state.clone(),
    )
    .await?;
    let mut out = serde_json::json!({ "runtime_id": rt.id.to_string(), "sandbox_pid": p.sandbox.started.pid, "network_namespace": p.sandbox.started.net_ns });
    if !txs.is_empty() {
        let prev = state.root();
        let inputs: Vec<ByteBuf> = txs.iter().map(|c| ByteBuf::from(c.encode())).collect();
        // Check first, as a transaction pool would: rejected transactions are not executed.
        let checked = match p
            .conn
            .call(
                Body::RuntimeCheckTxBatchRequest(RuntimeCheckTxBatchRequest {
                    state_root: ByteBuf::from(prev.to_vec()),
                    inputs: inputs.clone(),
                }),
                Duration::from_secs(15),
            )
            .await?
        {
            Body::RuntimeCheckTxBatchResponse(r) if r.results.len() == txs.len() => r.results,
            other => {
                return Err(anyhow::anyhow!(
                    "unexpected check-tx response {}",
                    other.name()
                ))
            }
        };
        let accepted: Vec<usize> = (0..txs.len())
            .filter(|i| checked[*i].error.is_none())
            .collect();
        let req = RuntimeExecuteTxBatchRequest {
            round: 1,
            state_root: ByteBuf::from(prev.to_vec()),
            inputs: accepted.iter().map(|i| inputs[*i].clone()).collect(),
        };
        let resp = match p
            .conn
            .call(
                Body::RuntimeExecuteTxBatchRequest(req),
                Duration::from_secs(15),
            )
            .await?
        {
            Body::RuntimeExecuteTxBatchResponse(r) if r.results.len() == accepted.len() => r,
            other => {
                return Err(anyhow::anyhow!(
                    "unexpected execute response {}",
                    other.name()
                ))
            }
        };
        let next = state.compute(&prev, &resp.write_log)?;
        let round = state.current().0.saturating_add(1);
        let root = state.apply(round, &prev, &resp.write_log, &next)?;
        let error = |stage: &str, e: &paratime_sdk::protocol::Error| serde_json::json!({ "stage": stage, "module": e.module, "code": e.code, "message": e.message });
        let mut executed = accepted.iter().zip(&resp.results);
        let results: Vec<serde_json::Value> = txs
            .iter()
            .enumerate()
            .map(|(i, c)| match &checked[i].error {
                Some(e) => serde_json::json!({ "method": c.method, "error": error("check", e) }),
                None => match executed.next() {
                    Some((_, r)) => match &r.error {
                        Some(e) => serde_json::json!({ "method": c.method, "error": error("execute", e) }),
                        None => serde_json::json!({ "method": c.method, "ok": r.output.as_ref().map(to_json) }),
                    },
                    None => serde_json::json!({ "method": c.method, "error": "missing result" }),
                },
            })
            .collect();
        out["transactions"] = results.into();
        out["state_root"] = hex::encode(root).into();
        out["io_root"] = hex::encode(&resp.io_root).into();
    }
    let mut qout = Vec::new();
    for q in &queries {
        let req = RuntimeQueryRequest {
            state_root: ByteBuf::from(state.root().to_vec()),
            method: q.method.clone(),
            args: q.body.clone(),
        };
        let r = match p
            .conn
            .call(Body::RuntimeQueryRequest(req), Duration::from_secs(15))
            .await
        {
            Ok(Body::RuntimeQueryResponse(r)) => {
                serde_json::json!({ "method": q.method, "ok": to_json(&r.data) })
            }
            Ok(other) => {
                serde_json::json!({ "method": q.method, "error": format!("unexpected response {}", other.name()) })
            }
            Err(e) => serde_json::json!({ "method": q.method, "error": e.to_string() }),
        };
        qout.push(r);
    }
    if !queries.is_empty() {
        out["queries"] = qout.into();
    }
    p.conn.notify(Body::RuntimeShutdownRequest(Empty {})).await;
    Ok(out)
}

/// `runtime exec`.
pub fn exec(a: ExecArgs, _unsafe_debug: bool) -> i32 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(exec_async(a)) {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            let failed = v
                .get("transactions")
                .and_then(|t| t.as_array())
                .is_some_and(|t| t.iter().any(|r| r.get("error").is_some()));
            i32::from(failed)
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
