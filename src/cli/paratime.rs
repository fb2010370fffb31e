//! `tx submit` and `query`: ParaTime calls through a node's control socket. The body is JSON on
//! the command line, CBOR in the call envelope (`paratime_sdk::dispatcher::Call`), and the
//! result is printed back as JSON.

use super::network::block_on;
use crate::control::api;
use crate::control::client::{Client, ClientError};
use base64::Engine;
use paratime_sdk::dispatcher::Call;
use std::time::Duration;

/// The sample ParaTime's runtime ID (the one `paratime-dev localnet` hosts).
pub const SAMPLE_RUNTIME_ID: &str =
    "0000000000000000000000000000000000000000000000000000000000000001";

/// Where and what to call.
#[derive(clap::Args, Debug, Clone)]
pub struct CallArgs {
    /// A client or compute node's control socket (default: $PARATIME_NODE_ADDRESS, else
    /// ./internal.sock, else /run/paratime-node/internal.sock).
    #[arg(short = 'a', long = "address")]
    pub address: Option<String>,
    /// Runtime ID (hex).
    #[arg(long, default_value = SAMPLE_RUNTIME_ID)]
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
        /// How long to wait for finalization (with --no-wait: for check-tx).
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
        /// Return once check-tx accepted the transaction and it was sent to the committee;
        /// prints `{hash}` (oasis's SubmitTxNoWait).
        #[arg(long)]
        no_wait: bool,
    },
}

/// A state key on the command line: text, or hex with `--hex`.
#[derive(clap::Args, Debug, Clone)]
pub struct KeyArg {
    /// The key (text, e.g. a kvstore key, or hex with --hex).
    #[arg(long)]
    pub key: String,
    /// The key is hex.
    #[arg(long)]
    pub hex: bool,
}

impl KeyArg {
    fn bytes(&self) -> Result<Vec<u8>, CallError> {
        if self.hex {
            hex::decode(&self.key).map_err(|e| CallError::Input(format!("--key: not hex: {e}")))
        } else {
            Ok(self.key.as_bytes().to_vec())
        }
    }
}

/// `state` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum StateCmd {
    /// Read a key of the finalized state with a proof; the proof is checked against the state
    /// root the node reports and, with --root, against a root you trust.
    Get {
        /// Control socket (default as for `query`).
        #[arg(short = 'a', long = "address")]
        address: Option<String>,
        /// Runtime ID (hex).
        #[arg(long, default_value = SAMPLE_RUNTIME_ID)]
        runtime: String,
        /// The key.
        #[command(flatten)]
        key: KeyArg,
        /// A state root (hex) obtained elsewhere, e.g. from another node's `control status`.
        #[arg(long)]
        root: Option<String>,
    },
    /// Verify a proof offline: prints the proven value; exit 1 if the proof does not hold.
    Verify {
        /// The state root (hex) the proof must lead to.
        #[arg(long)]
        root: String,
        /// The key.
        #[command(flatten)]
        key: KeyArg,
        /// The proof (base64), as `state get` prints it.
        #[arg(long)]
        proof: String,
    },
}

fn parse_root(s: &str) -> Result<[u8; 32], CallError> {
    let b = hex::decode(s).map_err(|e| CallError::Input(format!("--root: not hex: {e}")))?;
    b.try_into()
        .map_err(|_| CallError::Input("--root: not 32 bytes".into()))
}

/// Checks `proof` (base64) for `key` against `root`: the proven value, or why not.
fn verify_proof(root: &[u8; 32], key: &[u8], proof: &str) -> Result<Option<Vec<u8>>, CallError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(proof.trim())
        .map_err(|e| CallError::Input(format!("proof: not base64: {e}")))?;
    let proof = paratime_mkvs::Proof::decode(&bytes)
        .map_err(|e| CallError::Input(format!("proof: {e}")))?;
    proof
        .verify(root, key)
        .map_err(|e| CallError::Output(format!("the proof does not hold: {e}")))
}

/// The value for display: text when it is UTF-8, and always base64.
fn value_json(v: &Option<Vec<u8>>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(v) => serde_json::json!({
            "text": std::str::from_utf8(v).ok(),
            "base64": b64(v),
        }),
    }
}

/// `state …`.
pub fn state(cmd: StateCmd) -> i32 {
    let result = match cmd {
        StateCmd::Get {
            address: a,
            runtime,
            key,
            root,
        } => block_on(async {
            let key = key.bytes()?;
            let trusted = root.as_deref().map(parse_root).transpose()?;
            let addr = address(&a)?;
            let req = api::RuntimeStateGet { key: b64(&key) };
            let r = Client::new(&addr).runtime_state(&runtime, &req).await?;
            let reported = parse_root(&r.state_root)
                .map_err(|_| CallError::Output("the node sent a malformed state root".into()))?;
            let value = verify_proof(&reported, &key, &r.proof)?;
            if let Some(t) = trusted {
                if t != reported {
                    return Err(CallError::Output(format!(
                        "the node answered from state root {}, not the trusted {}",
                        r.state_root,
                        hex::encode(t)
                    )));
                }
            }
            Ok(serde_json::json!({
                "round": r.round,
                "state_root": r.state_root,
                "key": hex::encode(&key),
                "value": value_json(&value),
                "proof": r.proof,
                "verified": if trusted.is_some() { "against the trusted root" } else { "against the root the node reported" },
            }))
        }),
        StateCmd::Verify { root, key, proof } => (|| {
            let key = key.bytes()?;
            let value = verify_proof(&parse_root(&root)?, &key, &proof)?;
            Ok(
                serde_json::json!({ "key": hex::encode(&key), "value": value_json(&value), "verified": true }),
            )
        })(),
    };
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("error: state: {e}");
            e.exit_code()
        }
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Why a ParaTime call has no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The command line is wrong.
    #[error("{0}")]
    Input(String),
    /// The node cannot be reached or refused the call.
    #[error(transparent)]
    Node(#[from] ClientError),
    /// The node's answer cannot be shown.
    #[error("{0}")]
    Output(String),
}

impl CallError {
    /// 128 when the node cannot be reached (as oasis-node), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Node(e) if e.is_unreachable() => 128,
            _ => 1,
        }
    }

    fn not_ready(&self) -> bool {
        matches!(self, Self::Node(e) if e.is_not_ready())
    }
}

fn cbor_to_json(b64_cbor: &str) -> Result<serde_json::Value, CallError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64_cbor)
        .map_err(|e| CallError::Output(format!("node sent invalid base64: {e}")))?;
    let v: ciborium::Value =
        crate::encoding::from_cbor(&bytes).map_err(|e| CallError::Output(e.to_string()))?;
    serde_json::to_value(&v)
        .map_err(|e| CallError::Output(format!("result is not representable as JSON: {e}")))
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

/// Encodes a call from a JSON body signed by `key` as its transaction number `nonce` (the
/// SDK's signed envelope, [`paratime_sdk::auth`]).
pub fn encode_signed_call(
    key: &ed25519_dalek::SigningKey,
    domain: &[u8; 32],
    method: &str,
    body_json: &str,
    nonce: u64,
) -> Result<Vec<u8>, String> {
    let call = Call::decode(&encode_call(method, body_json)?).map_err(|e| e.message)?;
    Ok(paratime_sdk::auth::sign(key, domain, call, nonce))
}

/// The signature domain of `runtime` on the network of the node at `address` (its chain
/// context from `control status`; empty for a node without consensus).
pub async fn signature_domain(address: &str, runtime: &str) -> Result<[u8; 32], CallError> {
    let id: crate::bundle::RuntimeId = runtime
        .parse()
        .map_err(|e| CallError::Input(format!("--runtime: {e}")))?;
    let st = Client::new(address).status().await?;
    let chain = st["consensus"]["chain_context"]
        .as_str()
        .unwrap_or_default();
    Ok(paratime_sdk::auth::domain(chain, &id.0))
}

/// The nonce `signer`'s next transaction must carry (the SDK's `auth.Nonce` query).
pub async fn next_nonce(
    client: &Client,
    runtime: &str,
    signer: &[u8; 32],
) -> Result<u64, CallError> {
    let args = ciborium::Value::Map(vec![(
        ciborium::Value::Text("signer".into()),
        ciborium::Value::Bytes(signer.to_vec()),
    )]);
    let mut cbor = Vec::new();
    ciborium::into_writer(&args, &mut cbor).map_err(|e| CallError::Input(e.to_string()))?;
    let req = api::RuntimeQuery {
        method: paratime_sdk::dispatcher::NONCE_QUERY.into(),
        args: b64(&cbor),
    };
    let r = client.runtime_query(runtime, &req).await?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&r.data)
        .map_err(|e| CallError::Output(format!("nonce: {e}")))?;
    let v: ciborium::Value = ciborium::from_reader(bytes.as_slice())
        .map_err(|e| CallError::Output(format!("nonce: {e}")))?;
    v.as_integer()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| CallError::Output(format!("nonce: not an integer: {v:?}")))
}

/// Submits an encoded call and waits; returns the node's JSON answer with `output` decoded.
pub async fn submit(
    client: &Client,
    runtime: &str,
    call: &[u8],
    timeout: Duration,
) -> Result<serde_json::Value, CallError> {
    let req = api::RuntimeSubmit {
        tx: b64(call),
        timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
    };
    let answer = client.runtime_submit(runtime, &req).await?;
    let output = answer
        .result
        .output
        .as_deref()
        .map(cbor_to_json)
        .transpose()?;
    let mut v = serde_json::to_value(&answer).map_err(|e| CallError::Output(e.to_string()))?;
    if let Some(out) = output {
        v["result"]["output"] = out;
    }
    Ok(v)
}

/// Submits an encoded call and returns its hash once check-tx accepted it.
pub async fn submit_no_wait(
    client: &Client,
    runtime: &str,
    call: &[u8],
    timeout: Duration,
) -> Result<String, CallError> {
    let req = api::RuntimeSubmit {
        tx: b64(call),
        timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
    };
    Ok(client.runtime_submit_no_wait(runtime, &req).await?.hash)
}

/// Retries `f` while the node is not ready, until `deadline`; says once what it waits for.
async fn when_ready<T, F, Fut>(deadline: std::time::Instant, mut f: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut said = false;
    loop {
        match f().await {
            Err(e) if e.not_ready() && std::time::Instant::now() < deadline => {
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

fn address(a: &Option<String>) -> Result<String, CallError> {
    match a {
        Some(a) => Ok(a.clone()),
        None => super::network::default_address().map_err(|e| CallError::Input(e.to_string())),
    }
}

/// `tx submit`: prints `{hash, round, index, result: {output | error}}`; exit 1 when the
/// transaction failed (check-tx or execution), 128 when the node cannot be reached.
pub fn tx(cmd: TxCmd) -> i32 {
    let TxCmd::Submit {
        call,
        timeout,
        no_wait,
    } = cmd;
    let run = async {
        let client = Client::new(address(&call.address)?);
        let raw = encode_call(&call.method, &call.body).map_err(CallError::Input)?;
        let timeout: Duration = timeout.into();
        let deadline = std::time::Instant::now() + timeout;
        if no_wait {
            let hash = when_ready(deadline, || {
                submit_no_wait(&client, &call.runtime, &raw, timeout)
            })
            .await?;
            return Ok(serde_json::json!({ "hash": hash }));
        }
        when_ready(deadline, || submit(&client, &call.runtime, &raw, timeout)).await
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
            e.exit_code()
        }
    }
}

async fn query_once(addr: &str, call: &CallArgs) -> Result<serde_json::Value, CallError> {
    let json: serde_json::Value = serde_json::from_str(&call.body)
        .map_err(|e| CallError::Input(format!("--body is not JSON ({e}): {}", call.body)))?;
    let req = api::RuntimeQuery {
        method: call.method.clone(),
        args: b64(&crate::encoding::canonical_cbor(&json)),
    };
    let answer = Client::new(addr).runtime_query(&call.runtime, &req).await?;
    cbor_to_json(&answer.data)
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
            e.exit_code()
        }
    }
}
