//! Logging in oasis-node's shapes: logfmt (default), JSON lines and text, with per-module levels
//! chosen by the longest matching module prefix (`common.log.level`).
//!
//! Modules are slash paths (`host/supervisor`) derived from the Rust module path, or set
//! explicitly with `target:`. Every line carries `ts`, `level`, `module`, `caller` and `msg`, then
//! the call's key-value pairs. Runtime output is re-logged by [`runtime_line`] under `runtime`.

use log::kv::{Key, Value as KvValue, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `key=value` pairs.
    Logfmt,
    /// One JSON object per line, keys sorted.
    Json,
    /// Human-oriented text.
    Text,
}

impl Format {
    /// Parses `common.log.format` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "logfmt" | "" => Some(Self::Logfmt),
            "json" => Some(Self::Json),
            "text" => Some(Self::Text),
            _ => None,
        }
    }
}

/// Parses a level name (`debug`, `info`, `warn`, `error`, case-insensitive).
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "debug" => Some(LevelFilter::Debug),
        "info" => Some(LevelFilter::Info),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "error" => Some(LevelFilter::Error),
        _ => None,
    }
}

/// Modules of the consensus engine's internals (see [`Levels::level_for`]).
const ENGINE_INTERNALS: [&str; 4] = ["arc_malachitebft", "tracing/", "ractor", "informalsystems"];

/// Per-module level filter: the longest configured prefix of a module wins, `default` otherwise.
#[derive(Clone, Debug)]
pub struct Levels {
    default: LevelFilter,
    // Sorted longest first so the first match is the longest prefix.
    modules: Vec<(String, LevelFilter)>,
}

impl Levels {
    /// Builds the filter from `common.log.level`; oasis's fallback is `warn`.
    pub fn new(config: &BTreeMap<String, String>) -> Self {
        let mut default = LevelFilter::Warn;
        let mut modules = Vec::new();
        for (k, v) in config {
            let Some(l) = parse_level(v) else { continue };
            if k == "default" {
                default = l;
            } else {
                modules.push((k.clone(), l));
            }
        }
        modules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Self { default, modules }
    }

    /// The level in force for `module`. The consensus engine's internals (Malachite, its actor
    /// framework, tracing spans) log every vote at info: they get at most `warn` unless a
    /// `common.log.level` key names them.
    pub fn level_for(&self, module: &str) -> LevelFilter {
        self.modules
            .iter()
            .find(|(p, _)| module.starts_with(p.as_str()))
            .map(|(_, l)| *l)
            .unwrap_or_else(|| {
                if ENGINE_INTERNALS.iter().any(|q| module.starts_with(q)) {
                    self.default.min(LevelFilter::Warn)
                } else {
                    self.default
                }
            })
    }

    fn max(&self) -> LevelFilter {
        self.modules
            .iter()
            .map(|(_, l)| *l)
            .chain([self.default])
            .max()
            .unwrap_or(LevelFilter::Warn)
    }
}

/// Maps a log target to an oasis-style module: `paratime_node::host::supervisor` → `host/supervisor`.
pub fn module_of(target: &str) -> String {
    if target.contains("::") {
        let mut parts: Vec<&str> = target.split("::").collect();
        if parts.len() > 1 && parts[0].starts_with("paratime_") {
            parts.remove(0);
        }
        parts.join("/")
    } else {
        target.to_string()
    }
}

/// Where lines go.
enum Sink {
    /// A file or stderr, in the configured format.
    Writer(Mutex<Box<dyn Write + Send>>),
    /// journald's native protocol, with structured fields (stderr is the journal).
    Journal(systemd_journal_logger::JournalLog),
}

struct Logger {
    format: Format,
    levels: Levels,
    sink: Sink,
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    }
}

struct Collect<'a>(&'a mut Vec<(String, String)>);

impl<'kvs> VisitSource<'kvs> for Collect<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push((key.as_str().to_string(), value.to_string()));
        Ok(())
    }
}

fn logfmt_value(v: &str) -> String {
    if !v.is_empty()
        && !v.contains(|c: char| c.is_whitespace() || c.is_control() || c == '"' || c == '=')
    {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// `s` with every control character (newline, ESC, …) escaped, so no input can start a forged
/// line or drive a terminal.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(char::is_control) {
        return s.into();
    }
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect::<String>()
        .into()
}

/// Renders one line in `format`; `fields` are the standard and call-specific pairs in order.
pub fn render(format: Format, fields: &[(String, String)]) -> String {
    match format {
        Format::Json => {
            let map: BTreeMap<&str, &str> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            serde_json::to_string(&map).unwrap_or_default()
        }
        Format::Logfmt => fields
            .iter()
            .map(|(k, v)| format!("{k}={}", logfmt_value(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Format::Text => {
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            };
            let rest: Vec<String> = fields
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "ts" | "level" | "module" | "msg" | "caller")
                })
                .map(|(k, v)| format!("{k}={}", logfmt_value(v)))
                .collect();
            format!(
                "{} {:<5} [{}] {} {}",
                get("ts"),
                get("level").to_uppercase(),
                escape_controls(get("module")),
                escape_controls(get("msg")),
                rest.join(" ")
            )
            .trim_end()
            .to_string()
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Whether a record is a `tracing` span's lifecycle (created, entered, exited: `tracing`'s
/// `log` bridge emits them at the span's level, e.g. an `error` line "network;" for the
/// consensus engine's network span), not an event: never an operator's business.
fn is_span_lifecycle(target: &str) -> bool {
    target == "tracing::span" || target.starts_with("tracing::span::")
}

/// Lines of the consensus engine's network layer that it logs as warnings or errors but that
/// ask nothing of an operator: publishing before any peer subscribed (every start), and peer
/// connections closing (peer churn, and every stop). They are logged at info.
const DEMOTED: [(&str, &str); 6] = [
    ("arc_malachitebft_network", "NoPeersSubscribedToTopic"),
    ("arc_malachitebft_network", "Removing active connection"),
    ("arc_malachitebft_network", "Last connection to peer"),
    ("arc_malachitebft_network", "Inbound connection"),
    ("arc_malachitebft_network", "Outbound connection"),
    ("arc_malachitebft_network", "Connection closed with"),
];

/// The level a record is logged at: its own, or info for a [`DEMOTED`] line.
fn effective_level(module: &str, level: log::Level, msg: &std::fmt::Arguments<'_>) -> log::Level {
    if level > log::Level::Warn || !module.starts_with("arc_malachitebft_network") {
        return level;
    }
    let text = msg.to_string();
    if DEMOTED
        .iter()
        .any(|(m, needle)| module.starts_with(m) && text.contains(needle))
    {
        log::Level::Info
    } else {
        level
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        !is_span_lifecycle(m.target()) && m.level() <= self.levels.level_for(&module_of(m.target()))
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let module = module_of(record.target());
        let level = effective_level(&module, record.level(), record.args());
        if level > self.levels.level_for(&module) {
            return;
        }
        if let Sink::Journal(j) = &self.sink {
            // Fields become MODULE, RUNTIME_ID, MESSAGE_ID, …; CODE_FILE, CODE_LINE and PRIORITY
            // come from the record.
            let mut kv: Vec<(String, String)> = vec![("module".into(), module)];
            let _ = record.key_values().visit(&mut Collect(&mut kv));
            let pairs: Vec<(&str, &str)> =
                kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let _ = j.journal_send(
                &Record::builder()
                    .level(level)
                    .target(record.target())
                    .file(record.file())
                    .line(record.line())
                    .module_path(record.module_path())
                    .args(*record.args())
                    .key_values(&pairs)
                    .build(),
            );
            return;
        }
        let mut fields = vec![
            ("ts".to_string(), now()),
            ("level".to_string(), level_name(level).to_string()),
            ("module".to_string(), module),
        ];
        if let (Some(file), Some(line)) = (record.file(), record.line()) {
            let base = file.rsplit('/').next().unwrap_or(file);
            fields.push(("caller".to_string(), format!("{base}:{line}")));
        }
        fields.push(("msg".to_string(), record.args().to_string()));
        let _ = record.key_values().visit(&mut Collect(&mut fields));
        let mut line = render(self.format, &fields);
        line.push('\n');
        if let Sink::Writer(out) = &self.sink {
            if let Ok(mut out) = out.lock() {
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
        }
    }

    fn flush(&self) {
        if let Sink::Writer(out) = &self.sink {
            if let Ok(mut out) = out.lock() {
                let _ = out.flush();
            }
        }
    }
}

/// Installs the global logger. Without a file, stderr; when stderr is the journal
/// (`JOURNAL_STREAM` matches it), journald's native protocol with structured fields.
pub fn init(
    format: Format,
    levels: &BTreeMap<String, String>,
    file: Option<&std::path::Path>,
) -> std::io::Result<()> {
    let sink = match file {
        None if systemd_journal_logger::connected_to_journal() => Sink::Journal(
            systemd_journal_logger::JournalLog::new()?
                .with_syslog_identifier("paratime-node".to_string()),
        ),
        None => Sink::Writer(Mutex::new(Box::new(std::io::stderr()))),
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            Sink::Writer(Mutex::new(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)?,
            )))
        }
    };
    let levels = Levels::new(levels);
    let max = levels.max();
    // A second init (tests, subcommands) keeps the first logger.
    if log::set_boxed_logger(Box::new(Logger {
        format,
        levels,
        sink,
    }))
    .is_ok()
    {
        log::set_max_level(max);
    }
    Ok(())
}

/// Most fields a runtime line may carry; more are dropped.
const MAX_RUNTIME_FIELDS: usize = 16;
/// Longest runtime field name and value kept.
const MAX_RUNTIME_KEY: usize = 64;
const MAX_RUNTIME_VALUE: usize = 1024;

fn bounded(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    escape_controls(&s[..end]).into_owned()
}

/// A runtime-supplied name as a field name: `rt_` + [a-z0-9_], so it can never be (or shadow)
/// one of the node's fields (`ts`, `caller`, `runtime_id`, `MESSAGE_ID`, `PRIORITY`, …).
fn runtime_key(k: &str) -> String {
    let clean: String = k
        .chars()
        .take(MAX_RUNTIME_KEY)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("rt_{clean}")
}

/// Re-logs one line of a runtime's output (oasis-facts §9): JSON lines keep their `msg`, `level`
/// and `module` (forced under `runtime/`), and their other keys namespaced as `rt_<key>`; anything
/// else is logged as `warn`. Everything the runtime wrote is bounded and control characters are
/// escaped; the node's tags (`runtime_id`, …) come last and cannot be overridden. `cut` marks a
/// line that was longer than the reader's cap.
pub fn runtime_line(line: &str, cut: bool, tags: &[(&str, &str)]) {
    let (level, module, msg, mut extra) =
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
            Ok(mut obj) => {
                let text = |v: Option<serde_json::Value>| match v {
                    Some(serde_json::Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let level = match text(obj.remove("level")).to_ascii_uppercase().as_str() {
                    "DEBG" | "DEBUG" | "TRCE" | "TRACE" => Level::Debug,
                    "WARN" | "WARNING" => Level::Warn,
                    "ERRO" | "ERROR" | "CRIT" => Level::Error,
                    _ => Level::Info,
                };
                let m: String = text(obj.remove("module"))
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
                    .take(MAX_RUNTIME_KEY)
                    .collect();
                let module = if m.is_empty() {
                    "runtime".to_string()
                } else {
                    format!("runtime/{m}")
                };
                let msg = text(obj.remove("msg"));
                let extra: Vec<(String, String)> = obj
                    .into_iter()
                    .take(MAX_RUNTIME_FIELDS)
                    .map(|(k, v)| (runtime_key(&k), bounded(&text(Some(v)), MAX_RUNTIME_VALUE)))
                    .collect();
                (level, module, msg, extra)
            }
            Err(_) => (
                Level::Warn,
                "runtime".to_string(),
                line.to_string(),
                Vec::new(),
            ),
        };
    let msg = escape_controls(&msg).into_owned();
    if cut {
        extra.push(("truncated".into(), "true".into()));
    }
    extra.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let kvs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    log::logger().log(
        &Record::builder()
            .level(level)
            .target(&module)
            .args(format_args!("{msg}"))
            .key_values(&kvs)
            .build(),
    );
}

/// The node's own note about a runtime's output (rate limit, …), with the runtime's tags.
pub fn node_note_for_runtime(level: Level, tags: &[(&str, &str)], message_id: &str, msg: &str) {
    let mut kvs: Vec<(&str, &str)> = tags.to_vec();
    kvs.push(("message_id", message_id));
    log::logger().log(
        &Record::builder()
            .level(level)
            .target("runtime/host/log")
            .args(format_args!("{msg}"))
            .key_values(&kvs)
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_network_s_routine_lines_are_info_and_others_keep_their_level() {
        let m = "arc_malachitebft_network";
        let lvl = |module: &str, l, s: &str| effective_level(module, l, &format_args!("{s}"));
        assert_eq!(
            lvl(
                m,
                log::Level::Error,
                "Error publishing message: NoPeersSubscribedToTopic channel=Consensus"
            ),
            log::Level::Info
        );
        assert_eq!(
            lvl(
                m,
                log::Level::Warn,
                "Removing active connection 4 to peer X"
            ),
            log::Level::Info
        );
        assert_eq!(
            lvl(m, log::Level::Error, "Error dialing peer: refused"),
            log::Level::Error
        );
        assert_eq!(
            lvl("consensus", log::Level::Warn, "NoPeersSubscribedToTopic"),
            log::Level::Warn
        );
    }

    #[test]
    fn span_lifecycle_records_are_never_logged() {
        assert!(is_span_lifecycle("tracing::span"));
        assert!(is_span_lifecycle("tracing::span::active"));
        assert!(!is_span_lifecycle("arc_malachitebft_network"));
        assert!(!is_span_lifecycle("tracing_spanish"));
    }

    #[test]
    fn longest_prefix_wins() {
        let cfg: BTreeMap<String, String> = [
            ("default", "info"),
            ("host", "warn"),
            ("host/supervisor", "debug"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let l = Levels::new(&cfg);
        assert_eq!(l.level_for("host/supervisor"), LevelFilter::Debug);
        assert_eq!(l.level_for("host/launcher"), LevelFilter::Warn);
        assert_eq!(l.level_for("control"), LevelFilter::Info);
        assert_eq!(
            Levels::new(&BTreeMap::new()).level_for("x"),
            LevelFilter::Warn
        );
    }

    #[test]
    fn module_names() {
        assert_eq!(
            module_of("paratime_node::host::supervisor"),
            "host/supervisor"
        );
        assert_eq!(module_of("runtime/kvstore"), "runtime/kvstore");
    }

    #[test]
    fn runtime_fields_are_namespaced_and_control_characters_escaped() {
        assert_eq!(runtime_key("ts"), "rt_ts");
        assert_eq!(runtime_key("MESSAGE_ID"), "rt_message_id");
        assert_eq!(runtime_key("a\nb=c"), "rt_a_b_c");
        assert_eq!(escape_controls("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        let f = vec![("msg".to_string(), "x\ny".to_string())];
        assert_eq!(render(Format::Logfmt, &f), "msg=\"x\\ny\"");
        assert!(!render(Format::Text, &f).contains('\n'));
        assert!(!render(Format::Json, &f).contains('\n'));
        assert_eq!(bounded(&"é".repeat(10), 5), "éé");
    }

    #[test]
    fn formats() {
        let f = vec![
            ("level".to_string(), "info".to_string()),
            ("msg".to_string(), "hello world".to_string()),
        ];
        assert_eq!(render(Format::Logfmt, &f), "level=info msg=\"hello world\"");
        assert_eq!(
            render(Format::Json, &f),
            "{\"level\":\"info\",\"msg\":\"hello world\"}"
        );
    }
}
