//! `tx submit` and `query`: ParaTime calls through a node's control socket. The body is JSON on
//! the command line, CBOR in the call envelope (`paratime_sdk::dispatcher::Call`), and the
//! result is printed back as JSON.

use super::network::block_on;
use crate::control::client::request_with;
use base64::Engine;
use paratime_sdk::dispatcher::Call;
use std::time::Duration;

/// Where and what to call.
#[derive(clap::Args, Debug, Clone)]
pub struct CallArgs {
    /// A client or compute node's control socket (default: $PARATIME_NODE_ADDRESS, else the
    /// client node of the last `localnet` started by this user).
    #[arg(short = 'a', long = "address")]
    pub address: Option<String>,
    /// Runtime ID (hex).
    #[arg(long, default_value = super::localnet::RUNTIME_ID)]
    pub runtime: String,
    /// Method, e.g. `kv.Put`.
    #[arg(long)]
    pub method: String,
    /// Arguments as JSON, e.g. '{"key":"hello","value":"world"}'.
    #[arg(long, default_value = "{}")]
    pub body: String,
}

/// `tx` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TxCmd {
    /// Submit a ParaTime transaction and wait until its round is finalized; prints the result.
    Submit {
        /// The call.
        #[command(flatten)]
        call: CallArgs,
        /// How long to wait for finalization.
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
    },
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn cbor_to_json(b64_cbor: &str) -> Result<serde_json::Value, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64_cbor)
        .map_err(|e| format!("node sent invalid base64: {e}"))?;
    let v: ciborium::Value = crate::encoding::from_cbor(&bytes)?;
    serde_json::to_value(&v).map_err(|e| format!("result is not representable as JSON: {e}"))
}

/// Encodes a call from a JSON body.
pub fn encode_call(method: &str, body_json: &str) -> Result<Vec<u8>, String> {
    let json: serde_json::Value = serde_json::from_str(body_json)
        .map_err(|e| format!("--body is not JSON ({e}): {body_json}"))?;
    let body = ciborium::Value::serialized(&json).map_err(|e| format!("--body: {e}"))?;
    Ok(Call {
        method: method.to_string(),
        body,
    }
    .encode())
}

/// Submits an encoded call and waits; returns the node's JSON answer with `output` decoded.
pub async fn submit(
    address: &str,
    runtime: &str,
    call: &[u8],
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let req = serde_json::json!({ "tx": b64(call), "timeout_ms": timeout.as_millis() as u64 });
    let (code, body) = request_with(
        address,
        "POST",
        &format!("/api/v1/runtime/{runtime}/submit"),
        Some(&req),
    )
    .await?;
    let mut v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("node answered {code}: {e}: {body}"))?;
    if code != 200 {
        return Err(v["error"].as_str().unwrap_or(&body).to_string());
    }
    if let Some(out) = v["result"]["output"].as_str().map(str::to_string) {
        v["result"]["output"] = cbor_to_json(&out)?;
    }
    Ok(v)
}

/// Whether `e` says the node is not up yet (socket missing, runtime still starting): worth
/// waiting for when the node was just started.
fn not_ready(e: &str) -> bool {
    e.starts_with("failed to connect") || e.contains(crate::host::supervisor::WAITING)
}

/// Retries `f` while the node is not ready, until `deadline`; says once what it waits for.
async fn when_ready<T, F, Fut>(deadline: std::time::Instant, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut said = false;
    loop {
        match f().await {
            Err(e) if not_ready(&e) && std::time::Instant::now() < deadline => {
                if !said {
                    eprintln!("waiting for the node: {e}");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

fn address(a: &Option<String>) -> Result<String, String> {
    match a {
        Some(a) => Ok(a.clone()),
        None => super::network::default_address(),
    }
}

/// `tx submit`: prints `{hash, round, index, result: {output | error}}`; exit 1 when the
/// transaction failed (check-tx or execution), 128 when the node cannot be reached.
pub fn tx(cmd: TxCmd) -> i32 {
    let TxCmd::Submit { call, timeout } = cmd;
    let run = async {
        let addr = address(&call.address)?;
        let raw = encode_call(&call.method, &call.body)?;
        let timeout: Duration = timeout.into();
        let deadline = std::time::Instant::now() + timeout;
        when_ready(deadline, || submit(&addr, &call.runtime, &raw, timeout)).await
    };
    match block_on(run) {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            if v["result"]["error"].is_null() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("error: tx submit: {e}");
            if e.starts_with("failed to connect") {
                128
            } else {
                1
            }
        }
    }
}

async fn query_once(addr: &str, call: &CallArgs) -> Result<serde_json::Value, String> {
    let json: serde_json::Value = serde_json::from_str(&call.body)
        .map_err(|e| format!("--body is not JSON ({e}): {}", call.body))?;
    let args = crate::encoding::canonical_cbor(&json);
    let req = serde_json::json!({ "method": call.method, "args": b64(&args) });
    let (code, body) = request_with(
        addr,
        "POST",
        &format!("/api/v1/runtime/{}/query", call.runtime),
        Some(&req),
    )
    .await?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("node answered {code}: {e}: {body}"))?;
    if code != 200 {
        return Err(v["error"].as_str().unwrap_or(&body).to_string());
    }
    cbor_to_json(v["data"].as_str().unwrap_or_default())
}

/// `query`: prints the result as JSON (waits up to 30 s for a node that is still starting).
pub fn query(call: CallArgs) -> i32 {
    let run = async {
        let addr = address(&call.address)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        when_ready(deadline, || query_once(&addr, &call)).await
    };
    match block_on(run) {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("error: query: {e}");
            if e.starts_with("failed to connect") {
                128
            } else {
                1
            }
        }
    }
}
