//! Sample ParaTime: a key-value store.
//!
//! Transactions: `kv.Put {key, value}`, `kv.Delete {key}`. Queries: `kv.Get {key}` →
//! `{key, value}` (value `null` when absent). Keys and values are UTF-8 strings.
//!
//! Test-only behaviour is selected through the runtime's local configuration
//! (`runtime.runtimes[].config` in the node's config.yml), never by default:
//! - `debug_fault`: `crash` (exit after the handshake), `hang` (stop answering after the
//!   handshake), `garbage` (answer the handshake with bytes that are not a frame), `oversized`
//!   (announce a frame over the limit), `wrong_version` (report another version),
//!   `wrong_state_root` (execute `kv.Put` wrongly — the value gets a suffix — so the write log
//!   and the state root it reports are consistent but differ from every honest node's; only
//!   the committee vote can catch it), `inconsistent_state_root` (report a state root that
//!   does not follow from its own write log; the host catches it);
//! - `debug_probe: true` enables `debug.*` queries that try to escape the sandbox (read a host
//!   file, open a network connection, write outside /tmp) and report what happened.

use paratime_sdk::cbor::Value;
use paratime_sdk::{dispatcher, log, CallError, Runtime, TxContext, Version};
use std::io::Write;

const MODULE: &str = "kvstore";

#[derive(Default)]
struct KvStore {
    fault: Option<String>,
    probe: bool,
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

fn text_field(body: &Value, name: &str) -> Result<String, CallError> {
    match field(body, name) {
        Some(Value::Text(s)) => Ok(s.clone()),
        Some(_) => Err(CallError::new(
            MODULE,
            2,
            format!("field '{name}' must be a string"),
        )),
        None => Err(CallError::new(MODULE, 1, format!("missing field '{name}'"))),
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.into()), v))
            .collect(),
    )
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

impl KvStore {
    fn probe(&self, method: &str, args: &Value) -> Result<Value, CallError> {
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
}

impl Runtime for KvStore {
    fn version(&self) -> Version {
        let v = Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_default();
        if self.fault.as_deref() == Some("wrong_version") {
            return Version::new(v.major.wrapping_add(1), v.minor, v.patch);
        }
        v
    }

    fn configure(&mut self, local_config: Option<&Value>) -> Result<(), CallError> {
        if let Some(cfg) = local_config {
            if let Some(Value::Text(f)) = field(cfg, "debug_fault") {
                self.fault = Some(f.clone());
            }
            if let Some(Value::Bool(p)) = field(cfg, "debug_probe") {
                self.probe = *p;
            }
        }
        match self.fault.as_deref() {
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
            _ => {}
        }
        if self.fault.as_deref() == Some("hang") {
            log::warn(
                MODULE,
                "debug_fault=hang: no longer answering after the handshake",
            );
        }
        log::info(MODULE, "kvstore configured");
        Ok(())
    }

    fn check(&self, _ctx: &mut TxContext<'_>, method: &str, body: &Value) -> Result<(), CallError> {
        match method {
            "kv.Put" => text_field(body, "key")
                .and(text_field(body, "value"))
                .map(|_| ()),
            "kv.Delete" => text_field(body, "key").map(|_| ()),
            _ => Err(CallError::new(
                MODULE,
                3,
                format!("unknown method '{method}'"),
            )),
        }
    }

    fn execute(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        self.check(ctx, method, body)?;
        let key = text_field(body, "key")?;
        match method {
            "kv.Put" => {
                let mut value = text_field(body, "value")?;
                if self.fault.as_deref() == Some("wrong_state_root") {
                    value.push_str(" (faulty)");
                }
                ctx.insert(key.as_bytes(), value.as_bytes());
                Ok(Value::Null)
            }
            _ => {
                let existed = ctx.get(key.as_bytes())?.is_some();
                ctx.remove(key.as_bytes());
                Ok(map(vec![("existed", Value::Bool(existed))]))
            }
        }
    }

    fn ping(&self) -> Result<(), CallError> {
        if self.fault.as_deref() == Some("hang") {
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
            return self.probe(method, args);
        }
        if method != "kv.Get" {
            return Err(CallError::new(
                MODULE,
                3,
                format!("unknown query method '{method}'"),
            ));
        }
        let key = text_field(args, "key")?;
        let value = ctx
            .get(key.as_bytes())?
            .map(|v| Value::Text(String::from_utf8_lossy(&v).into_owned()))
            .unwrap_or(Value::Null);
        Ok(map(vec![("key", Value::Text(key)), ("value", value)]))
    }

    fn state_root_hook(&self, mut root: [u8; 32]) -> [u8; 32] {
        if self.fault.as_deref() == Some("inconsistent_state_root") {
            root[0] ^= 0xff;
        }
        root
    }
}

fn hang() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn write_raw(bytes: &[u8]) {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var(paratime_sdk::HOST_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    if fd > 2 {
        // SAFETY: test-only fault injection; the descriptor stays owned by the dispatcher, so the
        // File is leaked with `forget` instead of closing it.
        let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
        let _ = f.write_all(bytes);
        std::mem::forget(f);
    }
    hang();
}

fn main() {
    dispatcher::run(KvStore::default())
}
