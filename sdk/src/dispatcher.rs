//! Runtime-side dispatcher: the loop a ParaTime's `main` hands control to.
//!
//! It answers the host's requests one at a time on the inherited socket. While a call runs, state
//! reads go to the host (`HostStorageGetRequest`) and the loop waits for the matching response;
//! host requests that arrive meanwhile are queued and answered afterwards. Writes stay in the
//! batch's overlay and leave the sandbox as the write log.

use crate::protocol::{
    self, Body, Empty, Error, FrameError, HostStorageGetRequest, Message,
    RuntimeCheckTxBatchResponse, RuntimeExecuteTxBatchResponse, RuntimeInfoResponse,
    RuntimeQueryResponse, TxResult, Version, WriteLogEntry, MESSAGE_REQUEST, MESSAGE_RESPONSE,
    PROTOCOL_VERSION,
};
use crate::state;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;

/// A transaction or query: a method name and a CBOR body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Method name, e.g. `kv.Put`.
    pub method: String,
    /// Method arguments.
    pub body: ciborium::Value,
}

impl Call {
    /// Encodes the call as a raw transaction.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("CBOR encoding of a call cannot fail");
        out
    }

    /// Decodes a raw transaction.
    pub fn decode(raw: &[u8]) -> Result<Self, CallError> {
        ciborium::from_reader(raw)
            .map_err(|e| CallError::new("dispatcher", 1, format!("malformed call: {e}")))
    }
}

/// A failed call, reported to the caller with a module and code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// Module that rejected the call.
    pub module: String,
    /// Module-specific code.
    pub code: u32,
    /// What went wrong.
    pub message: String,
}

impl CallError {
    /// A new error.
    pub fn new(module: impl Into<String>, code: u32, message: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            code,
            message: message.into(),
        }
    }

    fn into_protocol(self) -> Error {
        Error {
            module: self.module,
            code: self.code,
            message: self.message,
        }
    }
}

/// What a ParaTime implements.
pub trait Runtime {
    /// The version reported at the handshake; must equal the bundle's version.
    fn version(&self) -> Version;

    /// Receives the operator's local configuration at the handshake.
    fn configure(&mut self, _local_config: Option<&ciborium::Value>) -> Result<(), CallError> {
        Ok(())
    }

    /// Checks a transaction without changing state. Defaults to "method is known".
    fn check(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        body: &ciborium::Value,
    ) -> Result<(), CallError> {
        let _ = (ctx, method, body);
        Ok(())
    }

    /// Executes a transaction, reading and writing state through `ctx`.
    fn execute(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        body: &ciborium::Value,
    ) -> Result<ciborium::Value, CallError>;

    /// Answers a read-only query.
    fn query(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        args: &ciborium::Value,
    ) -> Result<ciborium::Value, CallError> {
        let _ = (ctx, args);
        Err(CallError::new(
            "dispatcher",
            2,
            format!("unknown query method '{method}'"),
        ))
    }

    /// Health check run on every ping from the host; an error is reported back.
    fn ping(&self) -> Result<(), CallError> {
        Ok(())
    }
}

/// A key's value in a batch's overlay: `None` when the batch deleted it.
type Value = Option<Vec<u8>>;

/// Access to the ParaTime's state for one call or batch.
pub struct TxContext<'a> {
    conn: &'a mut Connection,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Writes of the current transaction, with what the overlay held before (undone when it
    /// fails): a failure costs its own writes, not a copy of the batch's.
    undo: Vec<(Vec<u8>, Option<Value>)>,
    signer: Option<[u8; 32]>,
    /// A write under [`crate::auth::NONCE_PREFIX`] by the runtime's code (refused: the
    /// transaction fails).
    reserved_write: bool,
}

impl<'a> TxContext<'a> {
    fn new(conn: &'a mut Connection) -> Self {
        Self {
            conn,
            overlay: BTreeMap::new(),
            undo: Vec::new(),
            signer: None,
            reserved_write: false,
        }
    }
}

impl TxContext<'_> {
    /// The Ed25519 public key that signed the transaction being checked or executed (`None`
    /// for an unsigned call and for queries).
    pub fn signer(&self) -> Option<[u8; 32]> {
        self.signer
    }

    fn write(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        let before = self.overlay.insert(key.to_vec(), value);
        self.undo.push((key.to_vec(), before));
    }

    /// Undoes the current transaction's writes.
    fn rollback(&mut self) {
        while let Some((k, before)) = self.undo.pop() {
            match before {
                Some(v) => self.overlay.insert(k, v),
                None => self.overlay.remove(&k),
            };
        }
    }
    /// Reads a key: the batch's own writes first, then the host's state (read ahead for the
    /// batch, or asked for now).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, CallError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.conn.read_ahead.get(key) {
            return Ok(v.clone());
        }
        self.conn.host_get(key)
    }

    /// Writes a key. Keys under `auth/nonce/` belong to the dispatcher: writing one fails the
    /// transaction.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        if key.starts_with(crate::auth::NONCE_PREFIX) {
            self.reserved_write = true;
            return;
        }
        self.write(key, Some(value.to_vec()));
    }

    /// Deletes a key (the same reservation as [`Self::insert`]).
    pub fn remove(&mut self, key: &[u8]) {
        if key.starts_with(crate::auth::NONCE_PREFIX) {
            self.reserved_write = true;
            return;
        }
        self.write(key, None);
    }

    fn write_log(self) -> Vec<WriteLogEntry> {
        self.overlay
            .into_iter()
            .map(|(k, v)| WriteLogEntry {
                key: ByteBuf::from(k),
                value: v.map(ByteBuf::from),
            })
            .collect()
    }
}

struct Connection {
    /// The socket, read through a buffer: a frame's length prefix and body in one system call.
    io: std::io::BufReader<UnixStream>,
    next_id: u64,
    queued: VecDeque<Message>,
    /// The signature domain, from the handshake.
    domain: [u8; 32],
    /// Transactions that passed check-tx, so that executing them verifies no signature again.
    checked: crate::auth::Checked,
    /// Signers' keys, decoded once.
    keys: crate::auth::Keys,
    /// Host values read ahead for the request being served (its signers' nonces), dropped when
    /// it is answered: the host's state does not change under one request.
    read_ahead: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Connection {
    fn send(&mut self, msg: &Message) -> Result<(), FrameError> {
        protocol::write_frame(self.io.get_mut(), msg)
    }

    fn respond(&mut self, id: u64, body: Body) -> Result<(), FrameError> {
        self.send(&Message {
            id,
            message_type: MESSAGE_RESPONSE,
            body,
        })
    }

    /// Sends a request to the host and waits for its answer (host requests arriving meanwhile
    /// are queued).
    fn host_call(&mut self, body: Body) -> Result<Body, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let req = Message {
            id,
            message_type: MESSAGE_REQUEST,
            body,
        };
        let io_err =
            |e: FrameError| CallError::new("dispatcher", 3, format!("host call failed: {e}"));
        self.send(&req).map_err(io_err)?;
        loop {
            let msg = protocol::read_frame(&mut self.io).map_err(io_err)?;
            if msg.message_type == MESSAGE_REQUEST {
                self.queued.push_back(msg);
                continue;
            }
            if msg.id == id {
                return Ok(msg.body);
            }
        }
    }

    fn host_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, CallError> {
        match self.host_call(Body::HostStorageGetRequest(HostStorageGetRequest {
            key: ByteBuf::from(key.to_vec()),
        }))? {
            Body::HostStorageGetResponse(r) => Ok(r.value.map(|v| v.into_vec())),
            Body::Error(e) => Err(CallError::new(e.module, e.code, e.message)),
            other => Err(CallError::new(
                "dispatcher",
                3,
                format!("unexpected host reply {}", other.name()),
            )),
        }
    }

    /// Reads the nonces of the signers `inputs` name, in as few host round trips as
    /// [`protocol::MAX_GET_MANY_KEYS`] allows, instead of one per transaction. Nothing is
    /// verified here (a forged signer costs a read); a host that refuses the request leaves the
    /// reads to be made one at a time, as they would have been.
    fn read_ahead_nonces(&mut self, inputs: &[ByteBuf]) {
        let mut keys: Vec<Vec<u8>> = inputs
            .iter()
            .filter_map(|raw| crate::auth::claimed_signer(raw))
            .map(|s| crate::auth::nonce_key(&s))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(protocol::MAX_GET_MANY_KEYS) {
            let asked = Body::HostStorageGetManyRequest(protocol::HostStorageGetManyRequest {
                keys: chunk.iter().cloned().map(ByteBuf::from).collect(),
            });
            match self.host_call(asked) {
                Ok(Body::HostStorageGetManyResponse(r)) if r.values.len() == chunk.len() => {
                    for (k, v) in chunk.iter().zip(r.values) {
                        self.read_ahead.insert(k.clone(), v.map(ByteBuf::into_vec));
                    }
                }
                _ => return,
            }
        }
    }

    fn next_request(&mut self) -> Result<Message, FrameError> {
        if let Some(m) = self.queued.pop_front() {
            return Ok(m);
        }
        loop {
            let msg = protocol::read_frame(&mut self.io)?;
            if msg.message_type == MESSAGE_REQUEST {
                return Ok(msg);
            }
        }
    }
}

/// Checks a signed transaction's nonce against the account's (check-tx: not behind it;
/// execute: exactly it, then moves it on); returns the call and the account's nonce before.
fn authenticate(
    ctx: &mut TxContext<'_>,
    v: crate::auth::Verified,
    execute: bool,
) -> Result<(Call, u64), CallError> {
    let key = crate::auth::nonce_key(&v.signer);
    let current = crate::auth::decode_nonce(ctx.get(&key)?.as_deref())?;
    let ok = if execute {
        v.nonce == current
    } else {
        v.nonce >= current && v.nonce - current <= crate::auth::MAX_NONCE_AHEAD
    };
    if !ok {
        return Err(CallError::new(
            crate::auth::MODULE,
            crate::auth::ERR_NONCE,
            format!("invalid nonce (expected: {current}, got: {})", v.nonce),
        ));
    }
    if execute {
        let next = current.checked_add(1).ok_or_else(|| {
            CallError::new(
                crate::auth::MODULE,
                crate::auth::ERR_NONCE,
                "nonce exhausted",
            )
        })?;
        ctx.write(&key, Some(next.to_be_bytes().to_vec()));
        // The nonce moves on even if the call fails.
        ctx.undo.clear();
    }
    ctx.signer = Some(v.signer);
    Ok((v.call, current))
}

fn run_call<R: Runtime>(rt: &R, ctx: &mut TxContext<'_>, raw: &[u8], execute: bool) -> TxResult {
    ctx.signer = None;
    ctx.undo.clear();
    ctx.reserved_write = false;
    let domain = ctx.conn.domain;
    let mut sender = None;
    let verified = execute && ctx.conn.checked.take(raw);
    let mut signed = false;
    let call = match crate::auth::open_known(raw, &domain, verified, &mut ctx.conn.keys) {
        Ok(Some(v)) => {
            signed = true;
            let (id, seq) = (v.signer, v.nonce);
            authenticate(ctx, v, execute).map(|(call, state_seq)| {
                if !execute {
                    sender = Some(protocol::TxSender {
                        id: serde_bytes::ByteBuf::from(id.to_vec()),
                        seq,
                        state_seq,
                    });
                }
                call
            })
        }
        Ok(None) => Call::decode(raw),
        Err(e) => Err(e),
    };
    let outcome = call.and_then(|call| {
        if execute {
            rt.execute(ctx, &call.method, &call.body)
        } else {
            rt.check(ctx, &call.method, &call.body)
                .map(|()| ciborium::Value::Null)
        }
    });
    let outcome = match outcome {
        Ok(_) if ctx.reserved_write => Err(CallError::new(
            crate::auth::MODULE,
            crate::auth::ERR_RESERVED,
            "the runtime wrote under auth/nonce/, which only the dispatcher may write",
        )),
        o => o,
    };
    if outcome.is_err() {
        // A failed transaction leaves no writes behind (but a signed one's nonce moved on).
        ctx.rollback();
    }
    ctx.undo.clear();
    if signed && !execute && outcome.is_ok() {
        ctx.conn.checked.insert(raw);
    }
    match outcome {
        Ok(output) => TxResult {
            error: None,
            output: Some(output),
            sender,
        },
        Err(e) => TxResult {
            error: Some(e.into_protocol()),
            output: None,
            sender: None,
        },
    }
}

/// The query every SDK runtime answers: `auth.Nonce {signer}` (32 bytes, or 64 hex digits) →
/// the nonce the signer's next transaction must carry.
pub const NONCE_QUERY: &str = "auth.Nonce";

fn nonce_query(
    ctx: &mut TxContext<'_>,
    args: &ciborium::Value,
) -> Result<ciborium::Value, CallError> {
    let bad = || {
        CallError::new(
            crate::auth::MODULE,
            crate::auth::ERR_MALFORMED,
            "auth.Nonce: give {\"signer\": the 32-byte Ed25519 public key, as bytes or 64 hex digits}",
        )
    };
    let signer = args
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("signer")))
        .map(|(_, v)| v)
        .ok_or_else(bad)?;
    let bytes: Vec<u8> = match signer {
        ciborium::Value::Bytes(b) => b.clone(),
        ciborium::Value::Text(t) if t.len() == 64 && t.is_ascii() => (0..32)
            .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let signer: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
    let nonce = crate::auth::decode_nonce(ctx.get(&crate::auth::nonce_key(&signer))?.as_deref())?;
    Ok(ciborium::Value::Integer(nonce.into()))
}

fn handle<R: Runtime>(rt: &mut R, conn: &mut Connection, msg: Message) -> Result<bool, FrameError> {
    let body = match msg.body {
        Body::RuntimeInfoRequest(req) => match rt.configure(req.local_config.as_ref()) {
            Ok(()) if req.runtime_id.len() != 32 => Body::Error(Error {
                module: "dispatcher".into(),
                code: 4,
                message: "runtime ID is not 32 bytes".into(),
            }),
            Ok(()) => {
                let mut id = [0u8; 32];
                id.copy_from_slice(&req.runtime_id);
                conn.domain = crate::auth::domain(&req.chain_context, &id);
                conn.checked.clear();
                Body::RuntimeInfoResponse(RuntimeInfoResponse {
                    protocol_version: PROTOCOL_VERSION,
                    runtime_version: rt.version(),
                })
            }
            Err(e) => Body::Error(e.into_protocol()),
        },
        Body::RuntimePingRequest(_) => match rt.ping() {
            Ok(()) => Body::Empty(Empty {}),
            Err(e) => Body::Error(e.into_protocol()),
        },
        Body::RuntimeAbortRequest(_) => Body::RuntimeAbortResponse(Empty {}),
        Body::RuntimeShutdownRequest(_) => return Ok(false),
        Body::RuntimeCheckTxBatchRequest(req) => {
            conn.read_ahead_nonces(&req.inputs);
            let mut results = Vec::with_capacity(req.inputs.len());
            for input in &req.inputs {
                let mut ctx = TxContext::new(conn);
                results.push(run_call(rt, &mut ctx, input, false));
            }
            conn.read_ahead.clear();
            Body::RuntimeCheckTxBatchResponse(RuntimeCheckTxBatchResponse { results })
        }
        Body::RuntimeExecuteTxBatchRequest(req) => match state::to_hash(&req.state_root) {
            None => Body::Error(Error {
                module: "dispatcher".into(),
                code: 4,
                message: "state root is not 32 bytes".into(),
            }),
            Some(_) => {
                conn.read_ahead_nonces(&req.inputs);
                let mut ctx = TxContext::new(conn);
                let mut results = Vec::with_capacity(req.inputs.len());
                for input in &req.inputs {
                    results.push(run_call(rt, &mut ctx, input, true));
                }
                let write_log = ctx.write_log();
                conn.read_ahead.clear();
                let io = state::io_root(req.round, &req.inputs, &results);
                Body::RuntimeExecuteTxBatchResponse(RuntimeExecuteTxBatchResponse {
                    results,
                    write_log,
                    state_root: ByteBuf::new(),
                    io_root: ByteBuf::from(io.to_vec()),
                })
            }
        },
        Body::RuntimeQueryRequest(req) => {
            let mut ctx = TxContext::new(conn);
            let answer = if req.method == NONCE_QUERY {
                nonce_query(&mut ctx, &req.args)
            } else {
                rt.query(&mut ctx, &req.method, &req.args)
            };
            match answer {
                Ok(data) => Body::RuntimeQueryResponse(RuntimeQueryResponse { data }),
                Err(e) => Body::Error(e.into_protocol()),
            }
        }
        other => Body::Error(Error {
            module: "dispatcher".into(),
            code: 5,
            message: format!("unsupported request {}", other.name()),
        }),
    };
    conn.respond(msg.id, body)?;
    Ok(true)
}

/// Serves the host on an already connected stream until shutdown or disconnect.
pub fn serve<R: Runtime>(mut rt: R, stream: UnixStream) -> Result<(), FrameError> {
    let mut conn = Connection {
        io: std::io::BufReader::with_capacity(64 << 10, stream),
        next_id: 0,
        queued: VecDeque::new(),
        domain: crate::auth::domain("", &[0; 32]),
        checked: crate::auth::Checked::new(crate::auth::Checked::MAX_ENTRIES),
        keys: crate::auth::Keys::new(crate::auth::Keys::MAX_ENTRIES),
        read_ahead: Default::default(),
    };
    loop {
        let msg = match conn.next_request() {
            Ok(m) => m,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !handle(&mut rt, &mut conn, msg)? {
            return Ok(());
        }
    }
}

/// Connects to the host through the inherited descriptor named by `PARATIME_HOST_FD` and serves
/// it. Exits the process: 0 on shutdown, 1 on a protocol or setup error.
pub fn run<R: Runtime>(rt: R) -> ! {
    let fd: i32 = match std::env::var(crate::HOST_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(fd) if fd > 2 => fd,
        _ => {
            crate::log::error("dispatcher", &format!(
                "{} is not set to an inherited file descriptor: this program is a ParaTime and is started by paratime-node",
                crate::HOST_FD_ENV
            ));
            std::process::exit(1);
        }
    };
    // SAFETY: the host passes us exactly one socket at this descriptor number and nothing else in
    // this process owns it, so taking ownership once here is sound.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let code = match serve(rt, stream) {
        Ok(()) => 0,
        Err(e) => {
            crate::log::error("dispatcher", &format!("host connection failed: {e}"));
            1
        }
    };
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}
