//! Runtime-side logging: JSON lines on stderr, which the host re-logs with the runtime's
//! `runtime_id`, `runtime_name`, `component` and `provisioner`.

use std::io::Write;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Writes one log line with the given slog-style level (`DEBG`, `INFO`, `WARN`, `ERRO`).
pub fn emit(level: &str, module: &str, msg: &str) {
    let line = format!(
        "{{\"level\":\"{}\",\"module\":\"{}\",\"msg\":\"{}\"}}\n",
        escape(level),
        escape(module),
        escape(msg)
    );
    // Logging must never take the runtime down; a closed log pipe only loses the line.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Logs at info level.
pub fn info(module: &str, msg: &str) {
    emit("INFO", module, msg)
}

/// Logs at warn level.
pub fn warn(module: &str, msg: &str) {
    emit("WARN", module, msg)
}

/// Logs at error level.
pub fn error(module: &str, msg: &str) {
    emit("ERRO", module, msg)
}
