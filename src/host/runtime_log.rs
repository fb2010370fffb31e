//! A runtime's output stream (its stdout and stderr, one pipe): read with a bounded line buffer,
//! rate-limited, teed to a size-capped file, and re-logged by [`crate::logging::runtime_line`].
//!
//! Every byte here comes from the ParaTime and is hostile: a line is never buffered beyond
//! [`MAX_LINE`] (the rest of an over-long line is discarded while reading), lines beyond the rate
//! are counted and dropped with one warning per burst, and the tee file never grows past
//! `runtime.log.max_log_size` (one rotated copy is kept).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest line re-logged, in bytes (oasis-node's limit); the rest of a longer line is dropped.
pub const MAX_LINE: usize = 10_000;

/// How a runtime's output is bounded.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Lines per second re-logged on average.
    pub lines_per_second: u32,
    /// Lines that may be re-logged at once before the rate applies.
    pub burst: u32,
    /// The tee file (`<data_dir>/runtimes/logs/<runtime id>.log`), if any.
    pub file: Option<PathBuf>,
    /// Largest size of the tee file before it is rotated to `.1`.
    pub max_file_size: u64,
}

/// Counters shown in `control status` (`runtimes.<id>.sandbox.log`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines re-logged.
    pub lines: AtomicU64,
    /// Lines dropped by the rate limit.
    pub dropped: AtomicU64,
    /// Lines cut at [`MAX_LINE`].
    pub truncated: AtomicU64,
}

/// Token bucket over lines; time is a parameter so the rule is testable.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(lines_per_second: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(lines_per_second),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether one more line may pass at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Splits a byte stream into lines of at most `max` bytes without ever holding more.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    line: Vec<u8>,
    cut: bool,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            cut: false,
        }
    }

    /// Feeds `data`; calls `emit(line, was_cut)` for every complete line.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            let nl = data.iter().position(|b| *b == b'\n');
            let part = &data[..nl.unwrap_or(data.len())];
            let room = self.max - self.line.len();
            if part.len() > room {
                self.line.extend_from_slice(&part[..room]);
                self.cut = true;
            } else {
                self.line.extend_from_slice(part);
            }
            match nl {
                Some(i) => {
                    emit(&self.line, self.cut);
                    self.line.clear();
                    self.cut = false;
                    data = &data[i + 1..];
                }
                None => data = &[],
            }
        }
    }

    /// Emits what is left at the end of the stream.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.line.is_empty() {
            emit(&self.line, self.cut);
            self.line.clear();
        }
    }
}

struct Tee {
    path: PathBuf,
    max: u64,
    file: Option<std::fs::File>,
    size: u64,
}

impl Tee {
    fn open(path: PathBuf, max: u64) -> Self {
        let mut t = Self {
            path,
            max,
            file: None,
            size: 0,
        };
        t.reopen(false);
        t
    }

    fn reopen(&mut self, rotate: bool) {
        use std::os::unix::fs::OpenOptionsExt;
        if rotate {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
            .ok();
        self.size = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
    }

    fn write(&mut self, line: &[u8]) {
        let len = line.len() as u64 + 1;
        if self.size + len > self.max {
            self.reopen(true);
        }
        if let Some(f) = &mut self.file {
            if f.write_all(line).and_then(|_| f.write_all(b"\n")).is_ok() {
                self.size += len;
            }
        }
    }
}

/// Reads `read` until the runtime closes it, on its own thread.
pub fn forward(
    read: OwnedFd,
    tags: Vec<(&'static str, String)>,
    settings: Settings,
    stats: Arc<Stats>,
) {
    std::thread::spawn(move || {
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut input = std::fs::File::from(read);
        let mut tee = settings
            .file
            .clone()
            .map(|p| Tee::open(p, settings.max_file_size.max(1024)));
        let mut limit = RateLimit::new(settings.lines_per_second, settings.burst, Instant::now());
        // The current burst of dropped lines: when it began, how many, the last drop.
        let mut burst_since: Option<Instant> = None;
        let mut dropped: u64 = 0;
        let mut last_drop = Instant::now();
        let mut split = LineSplitter::new(MAX_LINE);
        let mut buf = vec![0u8; 64 * 1024];
        let mut emit = |line: &[u8], cut: bool| {
            if let Some(t) = &mut tee {
                t.write(line);
            }
            if cut {
                stats.truncated.fetch_add(1, Ordering::Relaxed);
            }
            let now = Instant::now();
            let allowed = limit.allow(now);
            if !allowed {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                dropped += 1;
                last_drop = now;
                if burst_since.is_none() {
                    burst_since = Some(now);
                    crate::logging::node_note_for_runtime(
                        log::Level::Warn,
                        &tags,
                        crate::system::notify::message_id::RUNTIME_LOG_DROPPED,
                        &format!(
                            "runtime log rate limit exceeded ({} lines/s, burst {}): dropping lines",
                            settings.lines_per_second, settings.burst
                        ),
                    );
                }
            }
            // A burst ends after a quiet second; a long one is summed up every ten seconds.
            if let Some(since) = burst_since {
                let ended = allowed && now.duration_since(last_drop) >= Duration::from_secs(1);
                if dropped > 0 && (ended || now.duration_since(since) >= Duration::from_secs(10)) {
                    crate::logging::node_note_for_runtime(
                        log::Level::Warn,
                        &tags,
                        crate::system::notify::message_id::RUNTIME_LOG_DROPPED,
                        &format!("runtime log rate limit: {dropped} lines were dropped"),
                    );
                    dropped = 0;
                    burst_since = (!ended).then_some(now);
                }
                if ended && dropped == 0 {
                    burst_since = None;
                }
            }
            if !allowed {
                return;
            }
            stats.lines.fetch_add(1, Ordering::Relaxed);
            let text = String::from_utf8_lossy(line);
            crate::logging::runtime_line(text.trim_end(), cut, &tags);
        };
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => split.feed(&buf[..n], &mut emit),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        split.finish(&mut emit);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_while_reading_and_never_buffered_beyond_the_cap() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        s.feed(b"ab\ncdefgh", |l, c| out.push((l.to_vec(), c)));
        assert!(s.line.capacity() < 64);
        // A huge line without a newline: the buffer stays at the cap.
        for _ in 0..1000 {
            s.feed(&[b'x'; 4096], |l, c| out.push((l.to_vec(), c)));
            assert!(s.line.len() <= 4);
        }
        s.feed(b"\nz", |l, c| out.push((l.to_vec(), c)));
        s.finish(|l, c| out.push((l.to_vec(), c)));
        assert_eq!(
            out,
            vec![
                (b"ab".to_vec(), false),
                (b"cdef".to_vec(), true),
                (b"z".to_vec(), false)
            ]
        );
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10, 5, t0);
        let passed = (0..100).filter(|_| r.allow(t0)).count();
        assert_eq!(passed, 5);
        // One second later: ten more (capped by the burst of five).
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| r.allow(t1)).count(), 5);
        let t2 = t1 + Duration::from_millis(200);
        assert_eq!((0..100).filter(|_| r.allow(t2)).count(), 2);
    }

    #[test]
    fn the_tee_file_is_rotated_at_its_cap() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("rt.log");
        let mut t = Tee::open(p.clone(), 1024);
        for _ in 0..100 {
            t.write(&[b'a'; 99]);
        }
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&p) <= 1024);
        assert!(size(&p.with_extension("log.1")) <= 1024);
        assert!(size(&p.with_extension("log.1")) > 0);
    }
}
