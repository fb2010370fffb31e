//! Sample ParaTime: a key-value store. Copy this crate to start a ParaTime of your own.
//!
//! Transactions: `kv.Put {key, value}`, `kv.Delete {key}`. Queries: `kv.Get {key}` →
//! `{key, value}` (value `null` when absent). Keys and values are UTF-8 strings.
//!
//! Transactions may be signed (the SDK's [`paratime_sdk::auth`] envelope: Ed25519 signer and
//! nonce, checked by the dispatcher before this code runs; the load generator signs every
//! transaction from its own accounts) or plain calls (`paratime-node tx submit`), which this
//! sample still accepts to keep its examples short: a real ParaTime would refuse them.
//!
//! The runtime is a library (this file) and a two-line `main.rs` that serves it to the host, so
//! tests can wrap it.

use paratime_sdk::cbor::Value;
use paratime_sdk::{log, CallError, Runtime, TxContext, Version};

const MODULE: &str = "kvstore";

/// The key-value store. It keeps no state of its own: everything is in the host's storage,
/// read and written through [`TxContext`].
#[derive(Debug, Default)]
pub struct KvStore;

/// The field `name` of a CBOR map.
pub fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

/// The string field `name` of a call's body.
pub fn text_field(body: &Value, name: &str) -> Result<String, CallError> {
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

/// A CBOR map with text keys.
pub fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.into()), v))
            .collect(),
    )
}

impl Runtime for KvStore {
    fn version(&self) -> Version {
        Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_default()
    }

    fn configure(&mut self, _local_config: Option<&Value>) -> Result<(), CallError> {
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
                let value = text_field(body, "value")?;
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

    fn query(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        args: &Value,
    ) -> Result<Value, CallError> {
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
}
