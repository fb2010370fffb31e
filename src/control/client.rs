//! A minimal client for the control API (used by `paratime-node control …`).

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::path::PathBuf;

/// Parses `unix:PATH` (or a bare path) into the socket path.
pub fn socket_path(address: &str) -> Result<PathBuf, String> {
    match address.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        Some(_) => Err("empty socket path in address 'unix:'".into()),
        None if address.contains("://") => {
            Err(format!("unsupported address '{address}': use unix:PATH"))
        }
        None => Ok(PathBuf::from(address)),
    }
}

/// Sends `method path` and returns the HTTP status and body.
pub async fn request(address: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    request_with(address, method, path, None).await
}

/// Sends `method path` with an optional JSON body.
pub async fn request_with(
    address: &str,
    method: &str,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<(u16, String), String> {
    let sock = socket_path(address)?;
    let stream = tokio::net::UnixStream::connect(&sock)
        .await
        .map_err(|e| format!("failed to connect to {}: {e}", sock.display()))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
