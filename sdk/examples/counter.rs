//! A complete ParaTime in one file: a counter. Transactions `counter.Add {by}` (1 to 1,000) add
//! to it; the query `counter.Get` returns `{value}`. docs/writing-a-paratime.md walks through it;
//! tests/docs.rs builds it into a bundle and runs it in the sandbox.

use paratime_sdk::cbor::Value;
use paratime_sdk::{CallError, Runtime, TxContext, Version};

/// The module name in errors and logs.
const MODULE: &str = "counter";
/// The state key of the counter (the host keeps the state; the runtime keeps nothing).
const KEY: &[u8] = b"counter/value";

/// The runtime: no fields, all state lives in the host's authenticated store.
struct Counter;

/// `body.by`, checked: an unsigned integer from 1 to 1,000.
fn amount(body: &Value) -> Result<u64, CallError> {
    let by = body
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("by")))
        .and_then(|(_, v)| v.as_integer())
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| CallError::new(MODULE, 1, "body.by must be an unsigned integer"))?;
    if !(1..=1000).contains(&by) {
        return Err(CallError::new(
            MODULE,
            2,
            format!("by = {by}: give 1 to 1000"),
        ));
    }
    Ok(by)
}

/// The counter's value in the state (0 before the first Add).
fn value(ctx: &mut TxContext<'_>) -> Result<u64, CallError> {
    Ok(ctx
        .get(KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

impl Runtime for Counter {
    /// Must equal the version in the bundle's manifest (`bundle build --version`).
    fn version(&self) -> Version {
        Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_default()
    }

    /// check-tx: runs before a transaction enters the pool; it must not write.
    fn check(&self, _ctx: &mut TxContext<'_>, method: &str, body: &Value) -> Result<(), CallError> {
        match method {
            "counter.Add" => amount(body).map(|_| ()),
            _ => Err(CallError::new(
                MODULE,
                3,
                format!("unknown method '{method}'"),
            )),
        }
    }

    /// Executes a transaction of a batch: reads and writes go through `ctx`; the writes leave
    /// as the batch's write log and the host computes the new state root from it.
    fn execute(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        self.check(ctx, method, body)?;
        let sum = value(ctx)?
            .checked_add(amount(body)?)
            .ok_or_else(|| CallError::new(MODULE, 4, "the counter would overflow"))?;
        ctx.insert(KEY, &sum.to_be_bytes());
        Ok(Value::Integer(sum.into()))
    }

    /// Read-only queries against the latest finalized state.
    fn query(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        _args: &Value,
    ) -> Result<Value, CallError> {
        match method {
            "counter.Get" => Ok(Value::Map(vec![(
                Value::Text("value".into()),
                Value::Integer(value(ctx)?.into()),
            )])),
            _ => Err(CallError::new(
                MODULE,
                3,
                format!("unknown query method '{method}'"),
            )),
        }
    }
}

/// The program the bundle runs: serves the runtime to the host over the RHP socket.
fn main() {
    paratime_sdk::dispatcher::run(Counter)
}
