//! The sandbox's seccomp filter: a reviewed policy file (`seccomp-paratime.json`, compiled into
//! the binary) turned into a BPF program for `bwrap --seccomp FD`.
//!
//! Policy: default allow; the listed calls fail with ENOSYS. ENOSYS rather than EPERM because
//! glibc falls back from `clone3` (whose flags live in a struct a filter cannot read) to `clone`
//! only on ENOSYS, and `clone`'s namespace flags are inspected; other callers see the call as
//! absent. Denied: namespaces, mounts, kernel modules and kexec, tracing and cross-process memory,
//! BPF and perf, keyrings, userfaultfd, io_uring, clock and host settings, handle-based opens,
//! personality, and TIOCSTI. A denylist keeps arbitrary ParaTimes working (oasis-core's allowlist
//! admits ~300 calls); bwrap's namespaces, no capabilities and no_new_privs do the rest.

use std::sync::OnceLock;

const POLICY: &str = include_str!("seccomp-paratime.json");

fn target_arch() -> Result<seccompiler::TargetArch, String> {
    std::env::consts::ARCH.try_into().map_err(|_| {
        format!(
            "seccomp filters are not available for {}",
            std::env::consts::ARCH
        )
    })
}

/// The filter as raw `struct sock_filter` bytes in native byte order, compiled once.
pub fn program_bytes() -> Result<&'static [u8], super::launcher::LaunchError> {
    static BYTES: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let arch = target_arch()?;
            let mut map = seccompiler::compile_from_json(POLICY.as_bytes(), arch)
                .map_err(|e| format!("seccomp policy does not compile: {e}"))?;
            let prog = map
                .remove("paratime")
                .ok_or("seccomp policy has no 'paratime' filter")?;
            let mut out = Vec::with_capacity(prog.len() * 8);
            for ins in prog {
                out.extend_from_slice(&ins.code.to_ne_bytes());
                out.push(ins.jt);
                out.push(ins.jf);
                out.extend_from_slice(&ins.k.to_ne_bytes());
            }
            Ok(out)
        })
        .as_deref()
        .map_err(|e| super::launcher::LaunchError::Seccomp(e.clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn policy_compiles() {
        let bytes = super::program_bytes().expect("compiles");
        assert!(!bytes.is_empty() && bytes.len().is_multiple_of(8));
    }
}
