//! A test-only ParaTime that attacks its host once the handshake is done. The attack is chosen by
//! the operator's local config (`runtime.runtimes[].config.attack`), so the node's tests can run
//! each one against the real host:
//! - `long_line`: 1 GiB on stderr without a newline, then a normal line;
//! - `flood`: log lines as fast as the pipe takes them, forever;
//! - `inject`: lines whose fields try to replace the node's (`ts`, `caller`, `message_id`,
//!   `MODULE`, `PRIORITY`, `runtime_id`) and whose text carries newlines and ESC sequences;
//! - `memory`: allocates and touches memory until stopped;
//! - `fork_bomb`: two seconds after configure, every process forks forever;
//! - `tmp_fill`: fills /tmp with files;
//! - `cpu_burn`: four threads spin forever;
//! - `cgroup_escape`: tries to reach the files that set its own limits (a cgroup2 mount, /sys,
//!   its cgroup namespace root) and to raise `memory.max`, `pids.max` and `cpu.max`; logs each
//!   outcome as `cgroup_escape <step>: <result>`;
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
    // A running ParaTime that turns hostile: the host has finished starting it (under CPU
    // emulation a bomb that starts during configure starves the handshake, and the node then
    // gives up on the start before any limit is reached).
    std::thread::sleep(std::time::Duration::from_secs(2));
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

fn cpu_burn() {
    for _ in 0..4 {
        std::thread::spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
}

fn cgroup_escape() {
    let mut err = std::io::stderr().lock();
    let mut say = |step: &str, result: String| {
        let _ = writeln!(err, "cgroup_escape {step}: {}", result.replace('\n', " "));
    };
    let _ = std::fs::create_dir_all("/tmp/cg");
    let target = std::ffi::CString::new("/tmp/cg").unwrap_or_default();
    let fstype = std::ffi::CString::new("cgroup2").unwrap_or_default();
    // SAFETY: valid NUL-terminated strings; a null data pointer is allowed.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    say(
        "mount",
        if r == 0 {
            "mounted".into()
        } else {
            format!("refused: {}", std::io::Error::last_os_error())
        },
    );
    say(
        "own cgroup",
        std::fs::read_to_string("/proc/self/cgroup").unwrap_or_else(|e| e.to_string()),
    );
    for dir in ["/tmp/cg", "/sys/fs/cgroup"] {
        for (file, value) in [
            ("memory.max", "max"),
            ("pids.max", "max"),
            ("cpu.max", "max"),
        ] {
            let path = format!("{dir}/{file}");
            let result = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|mut f| f.write_all(value.as_bytes()));
            say(
                &format!("write {path}"),
                match result {
                    Ok(()) => "WRITTEN".into(),
                    Err(e) => format!("refused: {e}"),
                },
            );
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
            "cpu_burn" => Some(cpu_burn),
            "cgroup_escape" => Some(cgroup_escape),
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
