//! The control API's client: [`Client`] speaks the typed API of [`super::api`]; errors carry the
//! server's code, so callers decide on codes and HTTP status, never on message text.

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Parses `unix:PATH` (or a bare path) into the socket path.
pub fn socket_path(address: &str) -> Result<PathBuf, AddressError> {
    match address.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        Some(_) => Err(AddressError::Empty),
        None if address.contains("://") => Err(AddressError::Unsupported(address.to_string())),
        None => Ok(PathBuf::from(address)),
    }
}

/// A control address that is not `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// `unix:` with no path.
    #[error("empty socket path in address 'unix:'")]
    Empty,
    /// Another scheme (`tcp://…`).
    #[error("unsupported address '{0}': use unix:PATH")]
    Unsupported(String),
}

/// Sends `method path` and returns the HTTP status and body (tests of the server's raw replies).
#[cfg(test)]
pub(crate) async fn request(
    address: &str,
    method: &str,
    path: &str,
) -> Result<(u16, String), ClientError> {
    request_with(address, method, path, None).await
}

/// Sends `method path` with an optional JSON body (tests of the server's raw replies).
#[cfg(test)]
pub(crate) async fn request_with(
    address: &str,
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<(u16, String), ClientError> {
    let sock = socket_path(address)?;
    let stream = tokio::net::UnixStream::connect(&sock)
        .await
        .map_err(|source| ClientError::Connect { path: sock, source })?;
    exchange(stream, method, path, json).await
}

/// A request's body.
type Body = http_body_util::Either<Full<Bytes>, Empty<Bytes>>;

/// One request on a connected stream, the connection closed after it: the HTTP status and the
/// body.
#[cfg(test)]
async fn exchange(
    stream: tokio::net::UnixStream,
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<(u16, String), ClientError> {
    let mut sender = handshake(stream).await?;
    let resp = sender
        .send_request(request_of(method, path, json, true)?)
        .await?;
    read_reply(resp).await
}

/// An HTTP/1 connection on `stream`, driven by a task of its own.
async fn handshake(stream: tokio::net::UnixStream) -> Result<SendRequest<Body>, ClientError> {
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// `method path` with a JSON body or none; `close` asks the server to close the connection
/// after answering (it frees its slot at once instead of when this side's connection task
/// gets round to closing).
fn request_of(
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
    close: bool,
) -> Result<hyper::Request<Body>, ClientError> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json");
    if close {
        req = req.header("connection", "close");
    }
    req.body(match json {
        Some(v) => http_body_util::Either::Left(Full::new(Bytes::from(v.to_string()))),
        None => http_body_util::Either::Right(Empty::<Bytes>::new()),
    })
    .map_err(|e| ClientError::Request(e.to_string()))
}

/// The status and body of a reply.
async fn read_reply(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<(u16, String), ClientError> {
    let status = resp.status().as_u16();
    // A reply is read whole, but never past this: whatever listens on the socket cannot make
    // the client take all memory.
    let body = http_body_util::Limited::new(resp.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => ClientError::Http(*e),
            Err(e) => ClientError::Malformed {
                status,
                detail: if e.is::<http_body_util::LengthLimitError>() {
                    format!("the reply is larger than {MAX_REPLY} bytes: not read")
                } else {
                    e.to_string()
                },
            },
        })?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Largest reply read (a status with many runtimes is well under 1 MiB; a state value under
/// the runtime's limits).
pub const MAX_REPLY: usize = 64 << 20;

/// Why a control API call has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not `unix:PATH`.
    #[error("{0}")]
    Address(#[from] AddressError),
    /// The socket cannot be reached (the node is not running, or not yet).
    #[error("failed to connect to {}: {source}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The socket accepted the connection but nothing answered in time.
    #[error(
        "no reply from {} within {}: the node is running but not answering (stopped, \
         swapping or overloaded); check its process state and log",
        path.display(),
        humantime::format_duration(*after)
    )]
    NoReply {
        /// The socket.
        path: PathBuf,
        /// How long the client waited.
        after: std::time::Duration,
    },
    /// The request could not be built (a method or path that is not HTTP).
    #[error("{0}")]
    Request(String),
    /// The connection broke.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The node answered with an error.
    #[error("{}", body.error)]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: super::api::ErrorBody,
    },
    /// The node's answer is not what the API says (an older or newer node, or not a node).
    #[error("node answered {status}: {detail}")]
    Malformed {
        /// HTTP status.
        status: u16,
        /// What was wrong, with the body.
        detail: String,
    },
}

impl ClientError {
    /// The node cannot be reached at all (exit status 128 in the CLI, as oasis-node).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Address(_) | Self::Connect { .. } | Self::NoReply { .. } | Self::Http(_)
        )
    }

    /// The node is not up yet: its socket is missing or its runtime is still starting. Worth
    /// retrying for a node that was just started.
    pub fn is_not_ready(&self) -> bool {
        matches!(self, Self::Connect { .. }) || self.code() == Some(super::api::ErrorCode::NotReady)
    }

    /// The server's error code.
    pub fn code(&self) -> Option<super::api::ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }
}

/// How long a node may take to answer a call, beyond the time a submit asks it to wait for its
/// transaction. A node that is stopped (`SIGSTOP`, a debugger), swapping or wedged still
/// accepts connections on its socket (the kernel queues them), so without a limit a client —
/// `control status` in a monitoring script — would wait for ever.
pub const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the node may wait on a submit before it answers (what the request asks, within the
/// server's bounds; a request out of bounds is refused at once).
fn submit_wait(req: &super::api::RuntimeSubmit) -> std::time::Duration {
    req.timeout_ms
        .map_or(
            super::DEFAULT_SUBMIT_TIMEOUT,
            std::time::Duration::from_millis,
        )
        .min(super::MAX_SUBMIT_TIMEOUT)
}

/// Connections a [`Client`] (and its clones) keeps open between calls, unless
/// [`Client::keeping`] says otherwise.
pub const MAX_IDLE: usize = 16;

/// How long a kept connection may wait for its next call: well under the server's idle
/// timeout (10 s), so that the server seldom closes one just as it is used again.
pub const IDLE_FOR: Duration = Duration::from_secs(5);

/// The connections a client keeps between calls (HTTP keep-alive), newest last: a client
/// making many calls — the load generator — pays a connection, an accept and a handshake once
/// per connection instead of once per call.
#[derive(Clone)]
struct Kept(Arc<Mutex<Vec<Idle>>>, usize);

/// A kept connection and since when it waits.
type Idle = (Instant, SendRequest<Body>);

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept")
    }
}

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest kept connection still open and not idle too long.
    fn take(&self) -> Option<SendRequest<Body>> {
        let mut kept = self.lock();
        while let Some((since, s)) = kept.pop() {
            if since.elapsed() < IDLE_FOR && !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Keeps `s` for a next call, unless the client's limit are kept already.
    fn put(&self, s: SendRequest<Body>) {
        if s.is_closed() {
            return;
        }
        let mut kept = self.lock();
        kept.retain(|(since, _)| since.elapsed() < IDLE_FOR);
        if kept.len() < self.1 {
            kept.push((Instant::now(), s));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A typed client of one node's control socket. Clones share the connections kept between
/// calls (at most [`MAX_IDLE`], none idle longer than [`IDLE_FOR`]).
#[derive(Clone, Debug)]
pub struct Client {
    address: String,
    reply_timeout: std::time::Duration,
    kept: Kept,
}

impl Client {
    /// A client of the node at `address` (`unix:PATH` or a path).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            reply_timeout: REPLY_TIMEOUT,
            kept: Kept(Arc::default(), MAX_IDLE),
        }
    }

    /// The same client, keeping up to `max` connections between calls instead of
    /// [`MAX_IDLE`]: a caller with more calls in flight at once keeps as many, so that
    /// connections are not closed and opened again (a closed one holds its slot on the node
    /// until the node notices). Each kept connection holds one of the node's 128 slots.
    #[must_use]
    pub fn keeping(mut self, max: usize) -> Self {
        self.kept = Kept(Arc::default(), max);
        self
    }

    /// Connections kept for the next calls.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.kept.len()
    }

    /// The same client, giving up on a reply after `timeout` (plus a submit's own wait)
    /// instead of [`REPLY_TIMEOUT`].
    #[must_use]
    pub fn with_reply_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ClientError> {
        self.call_waiting(method, path, body, std::time::Duration::ZERO)
            .await
    }

    /// A call the node may spend `wait` on before it answers (a submit waiting for its round),
    /// on top of the reply timeout.
    async fn call_waiting<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        wait: std::time::Duration,
    ) -> Result<T, ClientError> {
        let sock = socket_path(&self.address)?;
        let within = self.reply_timeout.saturating_add(wait);
        let reply = tokio::time::timeout(within, async {
            let mut kept = self.kept.take();
            loop {
                let reused = kept.is_some();
                let mut sender = match kept.take() {
                    Some(s) => s,
                    None => {
                        let stream =
                            tokio::net::UnixStream::connect(&sock)
                                .await
                                .map_err(|source| ClientError::Connect {
                                    path: sock.clone(),
                                    source,
                                })?;
                        handshake(stream).await?
                    }
                };
                // A kept connection is ready once its task has finished the previous exchange,
                // or closed (the server's idle timeout): then a new one.
                if reused && sender.ready().await.is_err() {
                    continue;
                }
                let req = request_of(method, path, body.as_ref(), false)?;
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        let closing = resp
                            .headers()
                            .get(hyper::header::CONNECTION)
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                        let reply = read_reply(resp).await?;
                        if !closing {
                            self.kept.put(sender);
                        }
                        return Ok(reply);
                    }
                    // A kept connection the server had closed (its idle timeout): the request
                    // did not go out, so it goes out on a new connection.
                    Err(mut e) => {
                        if reused && e.take_message().is_some() {
                            continue;
                        }
                        return Err(ClientError::Http(e.into_error()));
                    }
                }
            }
        });
        let (status, text) = reply.await.map_err(|_| ClientError::NoReply {
            path: sock.clone(),
            after: within,
        })??;
        if status != 200 {
            return Err(match serde_json::from_str::<super::api::ErrorBody>(&text) {
                Ok(body) => ClientError::Api { status, body },
                Err(_) => ClientError::Malformed {
                    status,
                    detail: text,
                },
            });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Malformed {
            status,
            detail: format!("{e}: {text}"),
        })
    }

    fn json(v: &impl serde::Serialize) -> Option<serde_json::Value> {
        serde_json::to_value(v).ok()
    }

    /// The status document, as the node sent it.
    pub async fn status(&self) -> Result<serde_json::Value, ClientError> {
        self.call("GET", super::api::STATUS, None).await
    }

    /// Whether the node completed its initial sync.
    pub async fn is_synced(&self) -> Result<super::api::IsSynced, ClientError> {
        self.call("GET", super::api::IS_SYNCED, None).await
    }

    /// Asks the node to shut down.
    pub async fn shutdown(&self) -> Result<super::api::Shutdown, ClientError> {
        self.call("POST", super::api::SHUTDOWN, None).await
    }

    /// The network's parameters (stake thresholds, epochs, ParaTimes).
    pub async fn network(&self) -> Result<super::api::NetworkParameters, ClientError> {
        self.call("GET", super::api::NETWORK, None).await
    }

    /// What became of a submitted consensus transaction.
    pub async fn tx_status(&self, hash: &str) -> Result<super::api::TxStatus, ClientError> {
        self.call("GET", &super::api::tx_status(hash), None).await
    }

    /// A runtime's rounds and its committee's participation in the epoch.
    pub async fn runtime_stats(&self, id: &str) -> Result<super::api::RuntimeStats, ClientError> {
        self.call("GET", &super::api::runtime_stats(id), None).await
    }

    /// An account, with the chain context transactions are signed for.
    pub async fn account(&self, address: &str) -> Result<super::api::AccountInfo, ClientError> {
        self.call("GET", &super::api::account(address), None).await
    }

    /// Puts a signed consensus transaction in the node's mempool.
    pub async fn submit(
        &self,
        req: &super::api::ConsensusSubmit,
    ) -> Result<super::api::Submitted, ClientError> {
        self.call("POST", super::api::CONSENSUS_SUBMIT, Self::json(req))
            .await
    }

    /// Submits a ParaTime transaction and waits until its round is finalized.
    pub async fn runtime_submit(
        &self,
        runtime: &str,
        req: &super::api::RuntimeSubmit,
    ) -> Result<super::api::RuntimeSubmitted, ClientError> {
        self.call_waiting(
            "POST",
            &super::api::runtime_submit(runtime),
            Self::json(req),
            submit_wait(req),
        )
        .await
    }

    /// Submits a ParaTime transaction and returns once check-tx accepted it.
    pub async fn runtime_submit_no_wait(
        &self,
        runtime: &str,
        req: &super::api::RuntimeSubmit,
    ) -> Result<super::api::RuntimeAccepted, ClientError> {
        self.call_waiting(
            "POST",
            &super::api::runtime_submit_no_wait(runtime),
            Self::json(req),
            submit_wait(req),
        )
        .await
    }

    /// Queries a ParaTime's finalized state.
    pub async fn runtime_query(
        &self,
        runtime: &str,
        req: &super::api::RuntimeQuery,
    ) -> Result<super::api::RuntimeQueryResult, ClientError> {
        self.call("POST", &super::api::runtime_query(runtime), Self::json(req))
            .await
    }

    /// `POST /api/v1/runtime/{id}/state`.
    pub async fn runtime_state(
        &self,
        runtime: &str,
        req: &super::api::RuntimeStateGet,
    ) -> Result<super::api::RuntimeStateValue, ClientError> {
        self.call("POST", &super::api::runtime_state(runtime), Self::json(req))
            .await
    }
}
