//! The host's side of the Runtime Host Protocol over the socketpair.
//!
//! A reader task decodes frames (refusing oversized or malformed ones, which ends the connection
//! and so the runtime), routes responses to their waiting callers and answers the runtime's state
//! reads from the host-owned state. A caller writes its request itself, under the writer's lock
//! (no hop through a writer task: a round trip wakes one task less). Every call has a timeout.

use super::state::RuntimeState;
use paratime_sdk::protocol::{
    self, Body, FrameError, HostStorageGetManyResponse, HostStorageGetResponse, Message,
    MESSAGE_REQUEST, MESSAGE_RESPONSE,
};
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RhpError {
    /// No response in time.
    #[error("rhp: {0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
    /// The connection is gone.
    #[error("rhp: connection closed: {0}")]
    Closed(String),
    /// The runtime answered with an error.
    #[error("rhp: runtime error: {0}")]
    Runtime(protocol::Error),
    /// The runtime answered with the wrong message.
    #[error("rhp: unexpected response {0} to {1}")]
    Unexpected(&'static str, &'static str),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Body>>>>;

/// The write half, shared by callers and the reader (which answers the runtime's reads).
#[derive(Clone)]
struct Writer {
    half: Arc<tokio::sync::Mutex<tokio::net::unix::OwnedWriteHalf>>,
    closed: Arc<watch::Sender<Option<String>>>,
}

impl Writer {
    /// Writes one frame; a failed write closes the connection.
    async fn send(&self, msg: &Message) -> Result<(), RhpError> {
        let frame = match protocol::encode_frame(msg) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("dropping unencodable message: {e}");
                return Err(RhpError::Closed(format!("unencodable message: {e}")));
            }
        };
        let mut half = self.half.lock().await;
        half.write_all(&frame).await.map_err(|e| {
            let reason = format!("write failed: {e}");
            self.closed.send_replace(Some(reason.clone()));
            RhpError::Closed(reason)
        })
    }
}

/// The bytes a [`HostStorageGetManyResponse`] may carry: the values must fit in one frame, with
/// room for the encoding around them.
const GET_MANY_MAX_BYTES: usize = protocol::MAX_FRAME_SIZE / 2;

/// Answers a runtime's read of several keys: refused (an error the runtime falls back from, by
/// reading one key at a time) over [`protocol::MAX_GET_MANY_KEYS`] keys or when the values would
/// not fit in [`GET_MANY_MAX_BYTES`]; a read that fails is an error, never "absent".
fn get_many(state: &RuntimeState, keys: &[ByteBuf]) -> Body {
    let refuse = |code: u32, message: String| {
        Body::Error(protocol::Error {
            module: "rhp/host".into(),
            code,
            message,
        })
    };
    if keys.len() > protocol::MAX_GET_MANY_KEYS {
        return refuse(
            3,
            format!(
                "HostStorageGetManyRequest of {} keys: at most {} at once",
                keys.len(),
                protocol::MAX_GET_MANY_KEYS
            ),
        );
    }
    match state.get_many(keys.iter().map(|k| k.as_slice()), GET_MANY_MAX_BYTES) {
        Ok(Some(values)) => Body::HostStorageGetManyResponse(HostStorageGetManyResponse {
            values: values.into_iter().map(|v| v.map(ByteBuf::from)).collect(),
        }),
        Ok(None) => refuse(
            4,
            format!(
                "the values of the {} keys asked for add up to more than the {GET_MANY_MAX_BYTES} bytes one answer may carry: read them one at a time",
                keys.len()
            ),
        ),
        Err(e) => {
            log::error!(target: "runtime/host", "state read failed: {e}");
            refuse(2, format!("state read failed: {e}"))
        }
    }
}

/// A live connection to a runtime.
#[derive(Clone)]
pub struct Connection {
    writer: Writer,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    closed: watch::Receiver<Option<String>>,
}

async fn read_loop(
    rd: tokio::net::unix::OwnedReadHalf,
    pending: Pending,
    out: Writer,
    state: Arc<RuntimeState>,
) -> FrameError {
    // Buffered: a frame's length prefix and body in one system call, not two.
    let mut rd = tokio::io::BufReader::with_capacity(64 << 10, rd);
    loop {
        let mut prefix = [0u8; 4];
        if let Err(e) = rd.read_exact(&mut prefix).await {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FrameError::Closed
            } else {
                e.into()
            };
        }
        let len = match protocol::frame_len(prefix) {
            Ok(l) => l,
            Err(e) => return e,
        };
        let mut body = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut body).await {
            return e.into();
        }
        let msg = match protocol::decode_body(&body) {
            Ok(m) => m,
            Err(e) => return e,
        };
        if msg.message_type == MESSAGE_RESPONSE {
            let waiter = pending.lock().ok().and_then(|mut p| p.remove(&msg.id));
            if let Some(tx) = waiter {
                let _ = tx.send(msg.body);
            }
            continue;
        }
        let reply = match msg.body {
            // A read that fails is an error, never "absent": the runtime must not execute on a
            // state it did not see.
            Body::HostStorageGetRequest(req) => match state.get(&req.key) {
                Ok(value) => Body::HostStorageGetResponse(HostStorageGetResponse {
                    value: value.map(ByteBuf::from),
                }),
                Err(e) => {
                    log::error!(target: "runtime/host", "state read failed: {e}");
                    Body::Error(protocol::Error {
                        module: "rhp/host".into(),
                        code: 2,
                        message: format!("state read failed: {e}"),
                    })
                }
            },
            Body::HostStorageGetManyRequest(req) => get_many(&state, &req.keys),
            other => Body::Error(protocol::Error {
                module: "rhp/host".into(),
                code: 1,
                message: format!("unsupported host request {}", other.name()),
            }),
        };
        if out
            .send(&Message {
                id: msg.id,
                message_type: MESSAGE_RESPONSE,
                body: reply,
            })
            .await
            .is_err()
        {
            return FrameError::Closed;
        }
    }
}

impl Connection {
    /// Starts the reader and writer tasks on `stream`.
    pub fn start(stream: UnixStream, state: Arc<RuntimeState>) -> Self {
        let (rd, wr) = stream.into_split();
        let pending: Pending = Arc::default();
        let (closed_tx, closed_rx) = watch::channel(None);
        let closed_tx = Arc::new(closed_tx);
        let writer = Writer {
            half: Arc::new(tokio::sync::Mutex::new(wr)),
            closed: closed_tx.clone(),
        };
        let (p2, o2) = (pending.clone(), writer.clone());
        tokio::spawn(async move {
            let err = read_loop(rd, p2.clone(), o2, state).await;
            // Fail every waiting caller at once.
            if let Ok(mut p) = p2.lock() {
                p.clear();
            }
            closed_tx.send_replace(Some(err.to_string()));
        });
        Self {
            writer,
            pending,
            next_id: Arc::new(AtomicU64::new(0)),
            closed: closed_rx,
        }
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.closed.borrow().clone()
    }

    /// Resolves when the connection is closed, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.closed.clone();
        loop {
            if let Some(r) = rx.borrow().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return "connection closed".into();
            }
        }
    }

    /// Sends a request and waits for its response.
    pub async fn call(&self, body: Body, timeout: Duration) -> Result<Body, RhpError> {
        let name = body.name();
        if let Some(r) = self.closed_reason() {
            return Err(RhpError::Closed(r));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let msg = Message {
            id,
            message_type: MESSAGE_REQUEST,
            body,
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, async {
            self.writer.send(&msg).await?;
            rx.await.map_err(|_| {
                RhpError::Closed(
                    self.closed_reason()
                        .unwrap_or_else(|| "connection closed".into()),
                )
            })
        })
        .await;
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
        let result = match result {
            Err(_) => Err(RhpError::Timeout(name, timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Body::Error(e))) => Err(RhpError::Runtime(e)),
            Ok(Ok(b)) => Ok(b),
        };
        crate::metrics::events().rhp_call(
            name,
            started.elapsed(),
            result.is_ok(),
            matches!(result, Err(RhpError::Timeout(..))),
        );
        result
    }

    /// Sends a request without waiting for a response (shutdown).
    pub async fn notify(&self, body: Body) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .writer
            .send(&Message {
                id,
                message_type: MESSAGE_REQUEST,
                body,
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paratime_sdk::protocol::WriteLogEntry;

    /// A runtime names the keys of a read of several: more than the limit, or keys whose values
    /// add up to more than one answer may carry (the same large value 1,000 times), are refused
    /// with an error naming the limit — and the host stops reading at the limit — while a
    /// request within both is answered in order.
    #[test]
    fn a_runtime_reading_many_keys_is_answered_within_the_frame_limit_or_refused() {
        let d = tempfile::tempdir().expect("tmp");
        let state = RuntimeState::open(&d.path().join("state.db"), 1 << 20).expect("open");
        let log = vec![
            WriteLogEntry {
                key: ByteBuf::from(b"big".to_vec()),
                value: Some(ByteBuf::from(vec![7u8; 1 << 20])),
            },
            WriteLogEntry {
                key: ByteBuf::from(b"small".to_vec()),
                value: Some(ByteBuf::from(b"v".to_vec())),
            },
        ];
        let root = state.compute(&paratime_mkvs::EMPTY, &log).expect("compute");
        state
            .apply(1, &paratime_mkvs::EMPTY, &log, &root)
            .expect("apply");
        let keys = |names: &[&str]| -> Vec<ByteBuf> {
            names
                .iter()
                .map(|n| ByteBuf::from(n.as_bytes().to_vec()))
                .collect()
        };
        match get_many(&state, &keys(&["small", "absent", "big", "small"])) {
            Body::HostStorageGetManyResponse(r) => {
                let lens: Vec<Option<usize>> = r
                    .values
                    .iter()
                    .map(|v| v.as_ref().map(|v| v.len()))
                    .collect();
                assert_eq!(lens, vec![Some(1), None, Some(1 << 20), Some(1)]);
            }
            other => panic!("unexpected {}", other.name()),
        }
        let too_many = vec![ByteBuf::from(b"small".to_vec()); protocol::MAX_GET_MANY_KEYS + 1];
        match get_many(&state, &too_many) {
            Body::Error(e) => assert!(e.code == 3 && e.message.contains("at most 1024"), "{e:?}"),
            other => panic!("unexpected {}", other.name()),
        }
        let too_large = vec![ByteBuf::from(b"big".to_vec()); 1000];
        match get_many(&state, &too_large) {
            Body::Error(e) => assert!(e.code == 4 && e.message.contains("one at a time"), "{e:?}"),
            other => panic!("unexpected {}", other.name()),
        }
        // Stopping at the limit: the answer to the largest request within it still fits a frame.
        let within = vec![ByteBuf::from(b"big".to_vec()); GET_MANY_MAX_BYTES >> 20];
        let body = get_many(&state, &within);
        assert!(matches!(body, Body::HostStorageGetManyResponse(_)));
        let frame = protocol::encode_frame(&Message {
            id: 1,
            message_type: MESSAGE_RESPONSE,
            body,
        });
        assert!(frame.is_ok(), "the answer fits in a frame");
    }
}
