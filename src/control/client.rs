//! The control API's client: [`Client`] speaks the typed API of [`super::api`]; errors carry the
//! server's code, so callers decide on codes and HTTP status, never on message text.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::path::PathBuf;

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

/// One request on a connected stream: the HTTP status and the body.
async fn exchange(
    stream: tokio::net::UnixStream,
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<(u16, String), ClientError> {
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        // One request per connection: the server frees its slot as soon as it has answered,
        // instead of when this side's connection task gets round to closing.
        .header("connection", "close")
        .header("content-type", "application/json")
        .body(match json {
            Some(v) => {
                http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(v.to_string())))
            }
            None => http_body_util::Either::Right(Empty::<Bytes>::new()),
        })
        .map_err(|e| ClientError::Request(e.to_string()))?;
    let resp = sender.send_request(req).await?;
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

/// A typed client of one node's control socket.
#[derive(Clone, Debug)]
pub struct Client {
    address: String,
    reply_timeout: std::time::Duration,
}

impl Client {
    /// A client of the node at `address` (`unix:PATH` or a path).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            reply_timeout: REPLY_TIMEOUT,
        }
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
            let stream = tokio::net::UnixStream::connect(&sock)
                .await
                .map_err(|source| ClientError::Connect {
                    path: sock.clone(),
                    source,
                })?;
            exchange(stream, method, path, body.as_ref()).await
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
