//! Logging set-up: `LOG_LEVEL` and `LOG_FORMAT` (text or JSON lines). Database driver chatter is kept at warn.
//!
//! When standard output is not a terminal (a file, a pipe, a container log), lines are collected in memory and
//! written by a background thread, `log-flush`: every 100 ms, or as soon as 64 KiB are pending. A request only
//! appends its line; it never makes a write system call, which would hold the core for tens of microseconds per
//! 64 KiB while other requests wait. If standard output stops taking lines (a stuck pipe), at most 8 MiB wait and
//! later lines are dropped and counted, so requests never block on the log. [`flush`] writes what is pending;
//! `main` calls it on exit. With `LOG_DIR` the same lines also go to daily files ([`crate::log_files`]), written by
//! the same thread.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogFormat, LogLevel};
use crate::log_line::LineLayer;

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const WAKE_AT_BYTES: usize = 64 * 1024;
const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;
/// A buffer that grew past this while output was stuck is given back after it is written.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Lines not yet handed to the writer.
struct Pending {
    buf: Vec<u8>,
    /// The flusher was woken for this buffer already.
    woken: bool,
    /// Lines dropped since the last flush because `MAX_PENDING_BYTES` were waiting.
    dropped: u64,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    buf: Vec::new(),
    woken: false,
    dropped: 0,
});
static WAKE: Condvar = Condvar::new();
/// The buffer being written (swapped with `PENDING.buf`, so both keep their capacity). Held while writing, which
/// keeps lines in order between the flusher and [`flush`].
static WRITING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// The flusher thread is running; without it a line that fills the buffer writes it.
static FLUSHER: AtomicBool = AtomicBool::new(false);
/// The day's log file (`LOG_DIR`), written after standard output.
static FILE: Mutex<Option<crate::log_files::DailyFile>> = Mutex::new(None);

fn pending() -> MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes pending log lines to standard output. Returns how many lines were dropped since the last flush.
pub fn flush() -> u64 {
    let mut out = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
    let dropped = {
        let mut p = pending();
        std::mem::swap(&mut p.buf, &mut *out);
        p.woken = false;
        std::mem::take(&mut p.dropped)
    };
    if !out.is_empty() {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&out);
        let _ = stdout.flush();
        drop(stdout);
        let mut file = FILE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write(&out, crate::log_files::today()) {
                eprintln!(
                    "log file in {} could not be written: {e}",
                    f.dir().display()
                );
            }
        }
    }
    out.clear();
    if out.capacity() > KEEP_CAPACITY {
        out.shrink_to(WAKE_AT_BYTES);
    }
    dropped
}

fn flusher_loop() {
    loop {
        {
            let p = pending();
            let _ = WAKE
                .wait_timeout_while(p, FLUSH_EVERY, |p| !p.woken)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let dropped = flush();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "log lines dropped: standard output did not take them"
            );
        }
    }
}

#[derive(Clone, Copy)]
struct BufferedStdout;

impl Write for BufferedStdout {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut p = pending();
        if !FLUSHER.load(Ordering::Relaxed) {
            p.buf.extend_from_slice(data);
            if p.buf.len() >= WAKE_AT_BYTES {
                drop(p);
                flush();
            }
        } else if p.buf.len() + data.len() > MAX_PENDING_BYTES {
            p.dropped += 1;
        } else {
            p.buf.extend_from_slice(data);
            if p.buf.len() >= WAKE_AT_BYTES && !p.woken {
                p.woken = true;
                WAKE.notify_one();
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStdout {
    type Writer = BufferedStdout;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Either plain standard output (a terminal) or the buffered writer.
#[derive(Clone, Copy)]
enum Output {
    Terminal,
    Buffered,
}

enum OutputWriter {
    Terminal(std::io::Stdout),
    Buffered(BufferedStdout),
}

impl Write for OutputWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            OutputWriter::Terminal(w) => w.write(data),
            OutputWriter::Buffered(w) => w.write(data),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            OutputWriter::Terminal(w) => w.flush(),
            OutputWriter::Buffered(w) => w.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = OutputWriter;
    fn make_writer(&'a self) -> Self::Writer {
        match self {
            Output::Terminal => OutputWriter::Terminal(std::io::stdout()),
            Output::Buffered => OutputWriter::Buffered(BufferedStdout),
        }
    }
}

/// Sets up logging; `files` adds the daily log files (an unusable `LOG_DIR` is an error).
pub fn init(
    level: LogLevel,
    format: LogFormat,
    files: Option<crate::log_files::LogFiles>,
) -> Result<(), String> {
    let with_files = files.is_some();
    if let Some(config) = files {
        let dir = config.dir.display().to_string();
        let file =
            crate::log_files::DailyFile::new(config).map_err(|e| format!("LOG_DIR {dir}: {e}"))?;
        *FILE.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
    }
    let level = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Fatal => LevelFilter::ERROR,
    };
    let filter = Targets::new()
        .with_default(level)
        .with_target("sqlx", LevelFilter::WARN.min(level))
        .with_target("hyper", LevelFilter::WARN.min(level))
        .with_target("reqwest", LevelFilter::WARN.min(level));
    // Lines for a file go through the buffer and its thread, terminal or not.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout()) && !with_files;
    let output = if terminal {
        Output::Terminal
    } else {
        Output::Buffered
    };
    if !terminal {
        match std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(flusher_loop)
        {
            Ok(_) => FLUSHER.store(true, Ordering::Relaxed),
            Err(_) => eprintln!("could not start the log flusher; logs are written when 64 KiB accumulate and on exit"),
        }
    }
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry.with(LineLayer::new(true, output)).try_init(),
        LogFormat::Text if !terminal => registry.with(LineLayer::new(false, output)).try_init(),
        // A person watching: tracing's own format, in colour.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(terminal)
                    .with_writer(output),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging was already initialised: {e}");
    }
    Ok(())
}
