//! Bundle registries (oasis ADR 0025, oasis-facts §15.2): a registry is a base URL under which
//! a file named by a bundle's manifest hash (lowercase hex) holds, on one line, the URL the
//! bundle itself is downloaded from.
//!
//! Owns: both HTTP GETs, their limits (time, size, redirects) and the temporary file the bundle
//! is streamed into. Verifying what arrives is [`super::Bundle::open`]'s job: nothing here trusts
//! the registry, the server or the bytes.

use http_body_util::BodyExt;
use hyper::body::Bytes;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// Largest metadata file (oasis reads at most 2,048 bytes of it).
pub const MAX_METADATA: u64 = 2048;
/// Redirects followed per request (as Go's HTTP client).
pub const MAX_REDIRECTS: usize = 10;

/// Why one registry did not yield a bundle.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A URL this node cannot fetch.
    #[error("'{url}': {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Name resolution or TCP connect failed.
    #[error("connecting to {authority}: {source}")]
    Connect {
        /// host:port.
        authority: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("{url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Not 200.
    #[error("{url}: invalid status code {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The whole request (connect, redirects, body) took longer than the limit.
    #[error("{url}: no complete response within {limit:?} (runtime.download_timeout)")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        limit: Duration,
    },
    /// The body is larger than allowed.
    #[error("{url}: {what} exceeds the size limit of {limit} bytes{hint}")]
    TooLarge {
        /// The URL.
        url: String,
        /// `bundle` or `metadata`.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// Which setting raises it.
        hint: &'static str,
    },
    /// The body ended before its announced length.
    #[error("{url}: the connection ended after {got} of {expected} bytes (truncated download)")]
    Truncated {
        /// The URL.
        url: String,
        /// Bytes received.
        got: u64,
        /// `Content-Length`.
        expected: u64,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    Redirects {
        /// The first URL.
        url: String,
    },
    /// The metadata is not one URL.
    #[error("metadata {url}: {reason}")]
    Metadata {
        /// The metadata URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The temporary file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// How downloads are bounded, and whom `https://` servers must be certified by.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Each request (connect, redirects and the whole body) ends within this.
    pub timeout: Duration,
    /// Largest bundle (`runtime.max_bundle_size`).
    pub max_bundle_size: u64,
    /// TLS for `https://` URLs (the host's CA roots, loaded before the node confines itself);
    /// `None`: https URLs fail, naming why.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// The host's CA certificates (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), as a TLS
/// client configuration; with how many roots were loaded and the errors met.
pub fn host_tls() -> (std::sync::Arc<rustls::ClientConfig>, usize, Vec<String>) {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    let errors = found.errors.iter().map(ToString::to_string).collect();
    (tls_with(roots), added, errors)
}

/// A TLS client configuration trusting `roots` (ring's primitives, TLS 1.2 and 1.3).
pub fn tls_with(roots: rustls::RootCertStore) -> std::sync::Arc<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| {
            // ring supports the default versions: not reached.
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
    std::sync::Arc::new(config)
}

/// A connection, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Checks that `url` is one this node can fetch (config check and start).
pub fn check_url(url: &str) -> Result<(), String> {
    let u: hyper::Uri = url.trim().parse().map_err(|e| format!("not a URL: {e}"))?;
    match u.scheme_str() {
        Some("http" | "https") => {}
        Some(s) => {
            return Err(format!(
                "scheme '{s}' is not supported (use https:// or http://)"
            ))
        }
        None => return Err("not an absolute URL (https://host[:port]/path)".into()),
    }
    if u.host().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(())
}

/// The metadata URL of `hash` under `base` (Go's `url.JoinPath(base, hash)`).
pub fn metadata_url(base: &str, hash: &str) -> String {
    format!("{}/{hash}", base.trim().trim_end_matches('/'))
}

/// A downloaded bundle in the temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempBundle {
    path: PathBuf,
    /// Where it was downloaded from.
    pub url: String,
    /// Its size.
    pub size: u64,
}

impl TempBundle {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Fetches the bundle with manifest hash `hash` (lowercase hex) through the registry at
/// `base`: its metadata, then the bundle into `tmp_dir`. The caller verifies it.
pub async fn fetch(
    base: &str,
    hash: &str,
    limits: &Limits,
    tmp_dir: &Path,
) -> Result<TempBundle, FetchError> {
    let module = "runtime/bundle/manager";
    let meta_url = metadata_url(base, hash);
    log::info!(target: module, url = meta_url.as_str(), manifest_hash = hash; "downloading metadata");
    let mut meta = Vec::new();
    get(
        &meta_url,
        limits,
        (MAX_METADATA, "metadata", ""),
        &mut Sink::Memory(&mut meta),
    )
    .await?;
    let text = std::str::from_utf8(&meta).map_err(|_| FetchError::Metadata {
        url: meta_url.clone(),
        reason: "not UTF-8 text".into(),
    })?;
    let bundle_url = text.trim();
    if bundle_url.is_empty() || bundle_url.contains(char::is_whitespace) {
        return Err(FetchError::Metadata {
            url: meta_url,
            reason: "expected one line holding the bundle's URL".into(),
        });
    }
    check_url(bundle_url).map_err(|reason| FetchError::Metadata {
        url: meta_url.clone(),
        reason: format!("bundle URL '{bundle_url}': {reason}"),
    })?;
    log::info!(target: module, url = meta_url.as_str(), bundle_url = bundle_url; "metadata downloaded");

    let mut name = [0u8; 8];
    getrandom::fill(&mut name).map_err(|e| FetchError::Io {
        path: tmp_dir.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let path = tmp_dir.join(format!("oasis-bundle-{}.orc", hex::encode(name)));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await
        .map_err(|source| FetchError::Io {
            path: path.clone(),
            source,
        })?;
    // From here the file is removed on any error.
    let mut tmp = TempBundle {
        path,
        url: bundle_url.to_string(),
        size: 0,
    };
    log::info!(target: module, url = bundle_url; "downloading bundle");
    let mut sink = Sink::File(file, tmp.path.clone());
    tmp.size = get(
        bundle_url,
        limits,
        (
            limits.max_bundle_size,
            "bundle",
            " (runtime.max_bundle_size)",
        ),
        &mut sink,
    )
    .await?;
    if let Sink::File(f, p) = &mut sink {
        f.flush().await.map_err(|source| FetchError::Io {
            path: p.clone(),
            source,
        })?;
    }
    log::info!(target: module, url = bundle_url, size = tmp.size; "bundle downloaded");
    Ok(tmp)
}

enum Sink<'a> {
    Memory(&'a mut Vec<u8>),
    File(tokio::fs::File, PathBuf),
}

impl Sink<'_> {
    async fn write(&mut self, b: &[u8]) -> Result<(), FetchError> {
        match self {
            Self::Memory(v) => {
                v.extend_from_slice(b);
                Ok(())
            }
            Self::File(f, p) => f.write_all(b).await.map_err(|source| FetchError::Io {
                path: p.clone(),
                source,
            }),
        }
    }
}

/// GETs `url` into `sink`, following redirects, the whole exchange within `timeout`; a body of
/// more than `limit.0` bytes is refused (as soon as it is announced or exceeded).
async fn get(
    url: &str,
    limits: &Limits,
    limit: (u64, &'static str, &'static str),
    sink: &mut Sink<'_>,
) -> Result<u64, FetchError> {
    let timeout = limits.timeout;
    let deadline = Instant::now() + timeout;
    let inner = get_inner(url, limits.tls.as_ref(), limit, sink);
    match tokio::time::timeout_at(deadline, inner).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout {
            url: url.to_string(),
            limit: timeout,
        }),
    }
}

/// Aborts the connection task when the request is done or abandoned.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn get_inner(
    first: &str,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    (limit, what, hint): (u64, &'static str, &'static str),
    sink: &mut Sink<'_>,
) -> Result<u64, FetchError> {
    let mut url = first.trim().to_string();
    for _ in 0..=MAX_REDIRECTS {
        check_url(&url).map_err(|reason| FetchError::Url {
            url: url.clone(),
            reason,
        })?;
        let uri: hyper::Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| FetchError::Url {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        let host = uri.host().unwrap_or_default();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((connect_host, port))
            .await
            .map_err(|source| FetchError::Connect {
                authority: authority.clone(),
                source,
            })?;
        let http_err = |e: hyper::Error| FetchError::Http {
            url: url.clone(),
            reason: e.to_string(),
        };
        let stream: Box<dyn Stream> =
            if https {
                let Some(tls) = tls else {
                    return Err(FetchError::Http {
                        url,
                        reason:
                            "no CA certificates were loaded for https (see the node's start-up log)"
                                .into(),
                    });
                };
                let name = rustls::pki_types::ServerName::try_from(connect_host.to_string())
                    .map_err(|e| FetchError::Url {
                        url: url.clone(),
                        reason: format!("host '{connect_host}': {e}"),
                    })?;
                let s = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|e| FetchError::Http {
                        url: url.clone(),
                        reason: format!("TLS: {e}"),
                    })?;
                Box::new(s)
            } else {
                Box::new(stream)
            };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(http_err)?;
        let _conn = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let path = uri
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, authority.as_str())
            .header(
                hyper::header::USER_AGENT,
                concat!("paratime-node/", env!("CARGO_PKG_VERSION")),
            )
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| FetchError::Url {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let mut res = sender.send_request(req).await.map_err(http_err)?;
        let status = res.status();
        if status.is_redirection() {
            let Some(loc) = res
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Err(FetchError::Status {
                    url,
                    status: status.as_u16(),
                });
            };
            url = if loc.starts_with('/') {
                format!(
                    "{}://{authority}{loc}",
                    if https { "https" } else { "http" }
                )
            } else {
                loc.to_string()
            };
            continue;
        }
        if status != hyper::StatusCode::OK {
            return Err(FetchError::Status {
                url,
                status: status.as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge {
            url: url.clone(),
            what,
            limit,
            hint,
        };
        let expected = res
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if expected.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut got: u64 = 0;
        let body = res.body_mut();
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        got = got.saturating_add(data.len() as u64);
                        if got > limit {
                            return Err(too_large());
                        }
                        sink.write(data).await?;
                    }
                }
                Some(Err(e)) => {
                    return Err(match expected {
                        Some(expected) if got < expected => {
                            FetchError::Truncated { url, got, expected }
                        }
                        _ => http_err(e),
                    })
                }
            }
        }
        if let Some(expected) = expected.filter(|e| got < *e) {
            return Err(FetchError::Truncated { url, got, expected });
        }
        return Ok(got);
    }
    Err(FetchError::Redirects {
        url: first.to_string(),
    })
}
