//! Runtime Host Protocol: message types and framing shared by the host and the runtime.
//!
//! Framing: a 4-byte big-endian length followed by that many bytes of CBOR. Both sides refuse a
//! frame longer than [`MAX_FRAME_SIZE`] before reading its body, so a peer cannot make the other
//! allocate without bound. The envelope is `{id, message_type, body}` where `body` is a CBOR map
//! with exactly one key naming the variant (oasis-core's shape).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::fmt;
use std::io::{self, Read, Write};

/// The protocol version this crate speaks. Peers are compatible when the major versions match.
pub const PROTOCOL_VERSION: Version = Version::new(1, 0, 0);

/// Largest frame either side accepts (16 MiB).
pub const MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// `message_type` of a request.
pub const MESSAGE_REQUEST: u8 = 1;
/// `message_type` of a response.
pub const MESSAGE_RESPONSE: u8 = 2;

/// A 32-byte hash (SHA-512/256).
pub type Hash = [u8; 32];

/// A semantic version `{major, minor, patch}`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Incompatible changes.
    #[serde(default)]
    pub major: u16,
    /// Compatible additions.
    #[serde(default)]
    pub minor: u16,
    /// Fixes.
    #[serde(default)]
    pub patch: u16,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `MAJOR.MINOR.PATCH` (missing trailing parts are zero; a `-pre` suffix is ignored).
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let core = s.trim().split(['-', '+']).next().unwrap_or_default();
        let mut parts = [0u16; 3];
        let mut n = 0;
        for (i, p) in core.split('.').enumerate() {
            if i >= 3 {
                return Err(VersionError::TooManyParts(s.to_string()));
            }
            parts[i] = p.parse().map_err(|_| VersionError::NotANumber {
                version: s.to_string(),
                part: p.to_string(),
            })?;
            n += 1;
        }
        if n == 0 || core.is_empty() {
            return Err(VersionError::Empty(s.to_string()));
        }
        Ok(Self::new(parts[0], parts[1], parts[2]))
    }
}

/// A version string that is not `MAJOR.MINOR.PATCH`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// More than three dot-separated parts.
    #[error("invalid version '{0}': more than three parts")]
    TooManyParts(String),
    /// A part that is not a number in 0..65535.
    #[error("invalid version '{version}': '{part}' is not a number 0..65535")]
    NotANumber {
        /// The whole string.
        version: String,
        /// The part.
        part: String,
    },
    /// Nothing before a `-pre` suffix.
    #[error("invalid version '{0}': expected MAJOR.MINOR.PATCH")]
    Empty(String),
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Each side numbers its own requests; a response carries the id of its request.
    pub id: u64,
    /// [`MESSAGE_REQUEST`] or [`MESSAGE_RESPONSE`].
    pub message_type: u8,
    /// The payload.
    pub body: Body,
}

/// An error carried in a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// The module that failed.
    pub module: String,
    /// A module-specific code.
    pub code: u32,
    /// A human-readable message.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (module: {}, code: {})",
            self.message, self.module, self.code
        )
    }
}

/// An empty payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Handshake request from the host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfoRequest {
    /// The runtime ID the host expects this runtime to be.
    pub runtime_id: ByteBuf,
    /// The host's protocol version.
    pub host_protocol_version: Version,
    /// Operator-supplied local configuration (`runtime.runtimes[].config`), as CBOR.
    #[serde(default)]
    pub local_config: Option<ciborium::Value>,
    /// The chain context of the network (hex; empty on a node without consensus): with the
    /// runtime ID it is the signature domain of transactions ([`crate::auth::domain`]).
    #[serde(default)]
    pub chain_context: String,
}

/// Handshake response from the runtime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfoResponse {
    /// The runtime's protocol version; its major must equal the host's.
    pub protocol_version: Version,
    /// The runtime's own version; must equal the bundle's.
    pub runtime_version: Version,
}

/// Result of checking or executing one transaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TxResult {
    /// Set when the transaction failed.
    #[serde(default)]
    pub error: Option<Error>,
    /// CBOR output of a successful call.
    #[serde(default)]
    pub output: Option<ciborium::Value>,
    /// Check-tx of a signed transaction: its signer and sequence number (nonce), so a node's
    /// pool proposes one signer's transactions in order (oasis's `sender`/`sender_seq`).
    /// Never set by execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<TxSender>,
}

/// Who sent a checked transaction, and its place in the sender's sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSender {
    /// The sender (e.g. a public key); the node keeps at most [`MAX_SENDER_LEN`] bytes of it
    /// and ignores longer ones.
    pub id: ByteBuf,
    /// The sequence number: transactions of one sender are proposed in increasing order.
    pub seq: u64,
    /// The sender's next sequence number in the state the check ran on: a transaction with
    /// `seq == state_seq` is next in line.
    pub state_seq: u64,
}

/// Longest [`TxSender::id`] a node orders by.
pub const MAX_SENDER_LEN: usize = 64;

/// Check a batch of transactions without changing state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeCheckTxBatchRequest {
    /// The state root to check against.
    pub state_root: ByteBuf,
    /// Raw transactions (CBOR-encoded calls).
    pub inputs: Vec<ByteBuf>,
}

/// One result per input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeCheckTxBatchResponse {
    /// Results in input order.
    pub results: Vec<TxResult>,
}

/// Execute a batch of transactions on top of `state_root`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeExecuteTxBatchRequest {
    /// The round being executed.
    pub round: u64,
    /// The state root the batch starts from.
    pub state_root: ByteBuf,
    /// Raw transactions (CBOR-encoded calls).
    pub inputs: Vec<ByteBuf>,
}

/// One entry of a write log: `value: None` deletes the key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WriteLogEntry {
    /// The key written.
    pub key: ByteBuf,
    /// The new value, or `None` for a deletion.
    pub value: Option<ByteBuf>,
}

/// The outcome of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeExecuteTxBatchResponse {
    /// Results in input order.
    pub results: Vec<TxResult>,
    /// State changes of the whole batch, sorted by key, one entry per key.
    pub write_log: Vec<WriteLogEntry>,
    /// Unused: the host computes the state root from `write_log` with its tree. Runtimes send
    /// it empty; hosts ignore it.
    pub state_root: ByteBuf,
    /// Commitment to the batch's inputs and outputs (see [`crate::state::io_root`]).
    pub io_root: ByteBuf,
}

/// A read-only query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeQueryRequest {
    /// The state root to query.
    pub state_root: ByteBuf,
    /// Method name, e.g. `kv.Get`.
    pub method: String,
    /// CBOR arguments.
    pub args: ciborium::Value,
}

/// The reply to a query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeQueryResponse {
    /// CBOR result.
    pub data: ciborium::Value,
}

/// Runtime → host: read one key of the ParaTime's state at the request's state root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostStorageGetRequest {
    /// The key to read.
    pub key: ByteBuf,
}

/// The value of a key, or `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostStorageGetResponse {
    /// The stored value.
    pub value: Option<ByteBuf>,
}

/// Keys in one [`HostStorageGetManyRequest`] at most.
pub const MAX_GET_MANY_KEYS: usize = 1024;

/// Runtime → host: read several keys at once (a batch's signers' nonces: one round trip instead
/// of one per transaction). At most [`MAX_GET_MANY_KEYS`] keys; a host that does not know the
/// request, or whose answer would not fit in a frame, answers an error, and the runtime reads
/// the keys one at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostStorageGetManyRequest {
    /// The keys to read.
    pub keys: Vec<ByteBuf>,
}

/// The values of the keys asked for, in their order (`None` for absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostStorageGetManyResponse {
    /// One per key.
    pub values: Vec<Option<ByteBuf>>,
}

/// Message payloads. Serialized as a map with one key naming the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Body {
    /// Error response.
    Error(Error),
    /// Host → runtime handshake.
    RuntimeInfoRequest(RuntimeInfoRequest),
    /// Handshake reply.
    RuntimeInfoResponse(RuntimeInfoResponse),
    /// Liveness probe.
    RuntimePingRequest(Empty),
    /// Generic empty response (ping, abort).
    Empty(Empty),
    /// Check transactions.
    RuntimeCheckTxBatchRequest(RuntimeCheckTxBatchRequest),
    /// Check results.
    RuntimeCheckTxBatchResponse(RuntimeCheckTxBatchResponse),
    /// Execute transactions.
    RuntimeExecuteTxBatchRequest(RuntimeExecuteTxBatchRequest),
    /// Execution results.
    RuntimeExecuteTxBatchResponse(RuntimeExecuteTxBatchResponse),
    /// Query.
    RuntimeQueryRequest(RuntimeQueryRequest),
    /// Query result.
    RuntimeQueryResponse(RuntimeQueryResponse),
    /// Abort the batch in progress.
    RuntimeAbortRequest(Empty),
    /// Abort acknowledged.
    RuntimeAbortResponse(Empty),
    /// Exit cleanly; no response is sent.
    RuntimeShutdownRequest(Empty),
    /// Runtime → host state read.
    HostStorageGetRequest(HostStorageGetRequest),
    /// State read result.
    HostStorageGetResponse(HostStorageGetResponse),
    /// Runtime → host read of several keys.
    HostStorageGetManyRequest(HostStorageGetManyRequest),
    /// Their values.
    HostStorageGetManyResponse(HostStorageGetManyResponse),
}

impl Body {
    /// The variant's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Error(_) => "Error",
            Self::RuntimeInfoRequest(_) => "RuntimeInfoRequest",
            Self::RuntimeInfoResponse(_) => "RuntimeInfoResponse",
            Self::RuntimePingRequest(_) => "RuntimePingRequest",
            Self::Empty(_) => "Empty",
            Self::RuntimeCheckTxBatchRequest(_) => "RuntimeCheckTxBatchRequest",
            Self::RuntimeCheckTxBatchResponse(_) => "RuntimeCheckTxBatchResponse",
            Self::RuntimeExecuteTxBatchRequest(_) => "RuntimeExecuteTxBatchRequest",
            Self::RuntimeExecuteTxBatchResponse(_) => "RuntimeExecuteTxBatchResponse",
            Self::RuntimeQueryRequest(_) => "RuntimeQueryRequest",
            Self::RuntimeQueryResponse(_) => "RuntimeQueryResponse",
            Self::RuntimeAbortRequest(_) => "RuntimeAbortRequest",
            Self::RuntimeAbortResponse(_) => "RuntimeAbortResponse",
            Self::RuntimeShutdownRequest(_) => "RuntimeShutdownRequest",
            Self::HostStorageGetRequest(_) => "HostStorageGetRequest",
            Self::HostStorageGetResponse(_) => "HostStorageGetResponse",
            Self::HostStorageGetManyRequest(_) => "HostStorageGetManyRequest",
            Self::HostStorageGetManyResponse(_) => "HostStorageGetManyResponse",
        }
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The announced length is over the limit; nothing of the body was read.
    #[error("frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message type is neither request nor response.
    #[error("invalid message type {0} (expected 1 = request or 2 = response)")]
    InvalidType(u8),
    /// I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Encodes a message as one frame (length prefix included).
pub fn encode_frame(msg: &Message) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; 4];
    ciborium::into_writer(msg, &mut buf).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME_SIZE {
        return Err(FrameError::TooLarge {
            size: len,
            max: MAX_FRAME_SIZE,
        });
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Checks a frame's length prefix against the limit.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let size = u32::from_be_bytes(prefix) as usize;
    if size > MAX_FRAME_SIZE {
        return Err(FrameError::TooLarge {
            size,
            max: MAX_FRAME_SIZE,
        });
    }
    Ok(size)
}

/// Decodes a frame body (without the length prefix).
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    let msg: Message =
        ciborium::from_reader(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if msg.message_type != MESSAGE_REQUEST && msg.message_type != MESSAGE_RESPONSE {
        return Err(FrameError::InvalidType(msg.message_type));
    }
    Ok(msg)
}

/// Reads one frame from a blocking reader.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Message, FrameError> {
    let mut prefix = [0u8; 4];
    if let Err(e) = r.read_exact(&mut prefix) {
        return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            e.into()
        });
    }
    let len = frame_len(prefix)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    decode_body(&body)
}

/// Writes one frame to a blocking writer.
pub fn write_frame<W: Write>(w: &mut W, msg: &Message) -> Result<(), FrameError> {
    let frame = encode_frame(msg)?;
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(msg: &Message) -> Message {
        let frame = encode_frame(msg).expect("encode");
        read_frame(&mut &frame[..]).expect("decode")
    }

    #[test]
    fn body_is_a_single_key_map() {
        let msg = Message {
            id: 7,
            message_type: MESSAGE_REQUEST,
            body: Body::RuntimePingRequest(Empty {}),
        };
        let frame = encode_frame(&msg).expect("encode");
        let v: ciborium::Value = ciborium::from_reader(&frame[4..]).expect("cbor");
        let map = v.as_map().expect("map");
        let body = &map
            .iter()
            .find(|(k, _)| k.as_text() == Some("body"))
            .expect("body")
            .1;
        let body = body.as_map().expect("body map");
        assert_eq!(body.len(), 1);
        assert_eq!(body[0].0.as_text(), Some("RuntimePingRequest"));
    }

    #[test]
    fn oversized_prefix_is_refused_before_reading() {
        let mut frame = ((MAX_FRAME_SIZE + 1) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(b"short");
        assert!(matches!(
            read_frame(&mut &frame[..]),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let mut frame = 3u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0xff, 0x00, 0x13]);
        assert!(matches!(
            read_frame(&mut &frame[..]),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn version_parse() {
        assert_eq!(Version::parse("1.2.3").expect("v"), Version::new(1, 2, 3));
        assert_eq!(Version::parse("0.1").expect("v"), Version::new(0, 1, 0));
        assert!(Version::parse("1.x").is_err());
        assert!(Version::parse("").is_err());
    }

    proptest! {
        #[test]
        fn execute_roundtrip(id in any::<u64>(), round in any::<u64>(),
                             inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let msg = Message {
                id,
                message_type: MESSAGE_REQUEST,
                body: Body::RuntimeExecuteTxBatchRequest(RuntimeExecuteTxBatchRequest {
                    round,
                    state_root: ByteBuf::from(vec![1u8; 32]),
                    inputs: inputs.into_iter().map(ByteBuf::from).collect(),
                }),
            };
            prop_assert_eq!(roundtrip(&msg), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read_frame(&mut &bytes[..]);
        }
    }
}
