//! A test-only ParaTime: the sample key-value store with faults, for the node's tests and for
//! `paratime-dev localnet --debug-fault`. Never shipped; the sample ParaTime and the SDK carry no
//! fault injection (STYLE.md: faults live outside the product).
//!
//! Selected through the runtime's local configuration (`runtime.runtimes[].config`):
//! - `debug_fault`: `crash` (exit after the handshake), `hang` (stop answering after the
//!   handshake), `garbage` (answer the handshake with bytes that are not a frame), `oversized`
//!   (announce a frame over the limit), `wrong_version` (report another version),
//!   `wrong_state_root` (execute `kv.Put` wrongly — the value gets a suffix — so the write log
//!   and the state root the host computes from it differ from every honest node's; only the
//!   committee vote can catch it), `inconsistent_io_root` (report an io root that does not follow
//!   from its own results; the host catches it);
//! - `debug_probe: true` enables `debug.*` queries that try to escape the sandbox (read a host
//!   file, open a network connection, write outside /tmp) and report what happened.
//!
//! The store runs behind a proxy on a socket pair: the proxy passes the host's frames through
//! and rewrites the runtime's answers where a fault says so, as a runtime that lies about its
//! results would.

use paratime_kvstore::{field, map, text_field, KvStore};
use paratime_sdk::cbor::Value;
use paratime_sdk::protocol::{read_frame, write_frame, Body};
use paratime_sdk::{dispatcher, log, CallError, Runtime, TxContext, Version};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

const MODULE: &str = "faulty-kvstore";

/// The configured fault (set once, at configure).
static FAULT: OnceLock<String> = OnceLock::new();

fn fault() -> Option<&'static str> {
    FAULT.get().map(String::as_str)
}

#[derive(Default)]
struct Faulty {
    store: KvStore,
    probe: bool,
}

fn result_of<T, E: std::fmt::Display>(r: Result<T, E>) -> Value {
    match r {
        Ok(_) => map(vec![("ok", Value::Bool(true))]),
        Err(e) => map(vec![
            ("ok", Value::Bool(false)),
            ("error", Value::Text(e.to_string())),
        ]),
    }
}

fn probe(method: &str, args: &Value) -> Result<Value, CallError> {
    match method {
        "debug.ReadFile" => Ok(result_of(std::fs::read(text_field(args, "path")?))),
        "debug.WriteFile" => Ok(result_of(std::fs::write(
            text_field(args, "path")?,
            b"probe",
        ))),
        "debug.Connect" => {
            let addr = text_field(args, "address")?;
            Ok(result_of(std::net::TcpStream::connect_timeout(
                &addr
                    .parse()
                    .map_err(|e| CallError::new(MODULE, 2, format!("bad address: {e}")))?,
                std::time::Duration::from_secs(2),
            )))
        }
        _ => Err(CallError::new(
            MODULE,
            3,
            format!("unknown query method '{method}'"),
        )),
    }
}

impl Runtime for Faulty {
    fn version(&self) -> Version {
        let v = self.store.version();
        if fault() == Some("wrong_version") {
            return Version::new(v.major.wrapping_add(1), v.minor, v.patch);
        }
        v
    }

    fn configure(&mut self, local_config: Option<&Value>) -> Result<(), CallError> {
        if let Some(cfg) = local_config {
            if let Some(Value::Text(f)) = field(cfg, "debug_fault") {
                let _ = FAULT.set(f.clone());
            }
            if let Some(Value::Bool(p)) = field(cfg, "debug_probe") {
                self.probe = *p;
            }
        }
        match fault() {
            Some("garbage") => {
                log::warn(
                    MODULE,
                    "debug_fault=garbage: writing a non-frame to the host",
                );
                let _ = std::io::stdout().flush();
                write_raw(&[0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]);
            }
            Some("oversized") => {
                log::warn(MODULE, "debug_fault=oversized: announcing a 1 GiB frame");
                write_raw(&(1u32 << 30).to_be_bytes());
            }
            Some("crash") => {
                log::error(MODULE, "debug_fault=crash: exiting");
                std::process::exit(3);
            }
            Some("hang") => log::warn(
                MODULE,
                "debug_fault=hang: no longer answering after the handshake",
            ),
            _ => {}
        }
        self.store.configure(local_config)
    }

    fn check(&self, ctx: &mut TxContext<'_>, method: &str, body: &Value) -> Result<(), CallError> {
        self.store.check(ctx, method, body)
    }

    fn execute(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        if method == "kv.Put" && fault() == Some("wrong_state_root") {
            let key = text_field(body, "key")?;
            let value = format!("{} (faulty)", text_field(body, "value")?);
            let body = map(vec![
                ("key", Value::Text(key)),
                ("value", Value::Text(value)),
            ]);
            return self.store.execute(ctx, method, &body);
        }
        self.store.execute(ctx, method, body)
    }

    fn ping(&self) -> Result<(), CallError> {
        if fault() == Some("hang") {
            hang();
        }
        Ok(())
    }

    fn query(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        args: &Value,
    ) -> Result<Value, CallError> {
        if method.starts_with("debug.") && self.probe {
            return probe(method, args);
        }
        self.store.query(ctx, method, args)
    }
}

fn hang() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn host_fd() -> i32 {
    std::env::var(paratime_sdk::HOST_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// Writes bytes that are not a frame straight to the host, then hangs.
fn write_raw(bytes: &[u8]) {
    let fd = host_fd();
    if fd > 2 {
        // SAFETY: test-only fault injection; the descriptor stays owned by the proxy, so the File
        // is leaked with `forget` instead of closing it.
        let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
        let _ = f.write_all(bytes);
        std::mem::forget(f);
    }
    hang();
}

/// The runtime's answers on their way to the host, rewritten where the fault says so.
fn lie(body: &mut Body) {
    if let Body::RuntimeExecuteTxBatchResponse(r) = body {
        if fault() == Some("inconsistent_io_root") {
            if let Some(b) = r.io_root.first_mut() {
                *b ^= 0xff;
            }
        }
    }
}

fn main() {
    let fd = host_fd();
    if fd <= 2 {
        log::error(MODULE, "started without a host descriptor");
        std::process::exit(1);
    }
    // SAFETY: the host passes exactly one socket at this descriptor number; this is its only
    // owner (write_raw borrows it and never closes it).
    let host = unsafe { UnixStream::from_raw_fd(fd) };
    let (proxy, runtime) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            log::error(MODULE, &format!("socket pair: {e}"));
            std::process::exit(1);
        }
    };
    let (Ok(mut from_host), Ok(mut to_runtime)) = (host.try_clone(), proxy.try_clone()) else {
        std::process::exit(1);
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_host, &mut to_runtime);
        let _ = to_runtime.shutdown(std::net::Shutdown::Both);
    });
    let (mut from_runtime, mut to_host) = (proxy, host);
    let answers = std::thread::spawn(move || {
        while let Ok(mut m) = read_frame(&mut from_runtime) {
            lie(&mut m.body);
            if write_frame(&mut to_host, &m).is_err() {
                break;
            }
        }
    });
    let code = match dispatcher::serve(Faulty::default(), runtime) {
        Ok(()) => 0,
        Err(e) => {
            log::error(MODULE, &format!("host connection failed: {e}"));
            1
        }
    };
    let _ = answers.join();
    std::process::exit(code)
}
