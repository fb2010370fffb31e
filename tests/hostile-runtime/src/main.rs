//! A test-only ParaTime that attacks its host once the handshake is done. The attack is chosen by
//! the operator's local config (`runtime.runtimes[].config.attack`), so the node's tests can run
//! each one against the real host:
//! - `long_line`: 1 GiB on stderr without a newline, then a normal line;
//! - `flood`: log lines as fast as the pipe takes them, forever;
//! - `inject`: lines whose fields try to replace the node's (`ts`, `caller`, `message_id`,
//!   `MODULE`, `PRIORITY`, `runtime_id`) and whose text carries newlines and ESC sequences;
//! - `memory`: allocates and touches memory until stopped;
//! - `fork_bomb`: every process forks forever;
//! - `tmp_fill`: fills /tmp with files;
//! - none: a harmless runtime whose `hostile.Fds` query lists its open descriptors.
//!
//! Never part of the product: faults live outside the node and the SDK (STYLE.md).

use ciborium::Value;
use paratime_sdk::dispatcher::{self, CallError, Runtime, TxContext};
use paratime_sdk::Version;
use std::io::Write;

#[derive(Default)]
struct Hostile;

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

fn long_line() {
    let chunk = vec![b'A'; 1 << 20];
    let mut err = std::io::stderr().lock();
    for _ in 0..1024 {
        if err.write_all(&chunk).is_err() {
            return;
        }
    }
    let _ = err.write_all(
        b"\n{\"level\":\"INFO\",\"module\":\"hostile\",\"msg\":\"after the long line\"}\n",
    );
}

fn flood() {
    let mut err = std::io::stderr().lock();
    let line = b"{\"level\":\"INFO\",\"module\":\"hostile\",\"msg\":\"flood flood flood flood flood flood flood flood\"}\n";
    let mut buf = Vec::with_capacity(line.len() * 1000);
    for _ in 0..1000 {
        buf.extend_from_slice(line);
    }
    while err.write_all(&buf).is_ok() {}
}

fn inject() {
    let lines = [
        "{\"level\":\"ERROR\",\"module\":\"../../consensus\",\"msg\":\"forged\\nts=2000-01-01 level=info module=cmd/node msg=\\\"node stopped\\\"\\u001b[2J\",\"ts\":\"2000-01-01T00:00:00Z\",\"caller\":\"node.rs:1\",\"message_id\":\"5c3e6b0e2c9a4d53a8d1f0e3b7a2c402\",\"MODULE\":\"cmd/node\",\"PRIORITY\":\"0\",\"runtime_id\":\"forged\"}",
        "plain text\u{1b}[31m with ESC and a\rcarriage return",
    ];
    let mut err = std::io::stderr().lock();
    for l in lines {
        let _ = err.write_all(l.as_bytes());
        let _ = err.write_all(b"\n");
    }
}

fn memory() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::new();
        if block.try_reserve_exact(16 << 20).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        block.resize(16 << 20, 1u8);
        hoard.push(block);
    }
}

fn fork_bomb() -> ! {
    loop {
        // SAFETY: test-only attack; the child only forks again or sleeps.
        unsafe {
            libc::fork();
        }
    }
}

fn tmp_fill() {
    let chunk = vec![7u8; 1 << 20];
    for i in 0u64.. {
        let Ok(mut f) = std::fs::File::create(format!("/tmp/fill-{i}")) else {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        };
        for _ in 0..16 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
    }
}

fn open_fds() -> Vec<Value> {
    (0..4096)
        // SAFETY: F_GETFD only inspects the descriptor table.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0)
        .map(|fd| Value::Integer(fd.into()))
        .collect()
}

impl Runtime for Hostile {
    fn version(&self) -> Version {
        Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_default()
    }

    fn configure(&mut self, local_config: Option<&Value>) -> Result<(), CallError> {
        let attack = local_config
            .and_then(|c| field(c, "attack"))
            .and_then(Value::as_text)
            .unwrap_or("")
            .to_string();
        let run: Option<fn()> = match attack.as_str() {
            "long_line" => Some(long_line),
            "flood" => Some(flood),
            "inject" => Some(inject),
            "memory" => Some(memory),
            "fork_bomb" => Some(|| fork_bomb()),
            "tmp_fill" => Some(tmp_fill),
            _ => None,
        };
        if let Some(f) = run {
            std::thread::spawn(f);
        }
        Ok(())
    }

    fn execute(
        &self,
        _ctx: &mut TxContext<'_>,
        method: &str,
        _body: &Value,
    ) -> Result<Value, CallError> {
        Err(CallError::new("hostile", 1, format!("no method {method}")))
    }

    fn query(
        &self,
        _ctx: &mut TxContext<'_>,
        method: &str,
        _args: &Value,
    ) -> Result<Value, CallError> {
        match method {
            "hostile.Fds" => Ok(Value::Array(open_fds())),
            _ => Err(CallError::new("hostile", 2, format!("no query {method}"))),
        }
    }
}

fn main() {
    dispatcher::run(Hostile)
}
