//! Logging set-up: `LOG_LEVEL` and `LOG_FORMAT` (text or JSON lines). Database driver chatter is kept at warn.
//!
//! When standard output is not a terminal (a file, a pipe, a container log), lines are collected in memory and
//! written by a background thread every 100 ms (or at once past 256 KiB), so a request costs no write system call
//! of its own. [`flush`] writes what is pending; `main` calls it on exit.

use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogFormat, LogLevel};
use crate::log_line::LineFormat;

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_AT_BYTES: usize = 256 * 1024;

static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn buffer() -> &'static Mutex<Vec<u8>> {
    BUFFER.get_or_init(|| Mutex::new(Vec::with_capacity(FLUSH_AT_BYTES)))
}

/// Writes pending log lines to standard output.
pub fn flush() {
    let pending = {
        let mut buf = buffer().lock().unwrap_or_else(PoisonError::into_inner);
        if buf.is_empty() {
            return;
        }
        std::mem::replace(&mut *buf, Vec::with_capacity(FLUSH_AT_BYTES))
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&pending);
    let _ = out.flush();
}

#[derive(Clone, Copy)]
struct BufferedStdout;

impl Write for BufferedStdout {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut buf = buffer().lock().unwrap_or_else(PoisonError::into_inner);
            buf.extend_from_slice(data);
            buf.len() >= FLUSH_AT_BYTES
        };
        if full {
            flush();
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

pub fn init(level: LogLevel, format: LogFormat) {
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
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let output = if terminal {
        Output::Terminal
    } else {
        Output::Buffered
    };
    if !terminal {
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            });
        if spawned.is_err() {
            eprintln!("could not start the log flusher; logs are written when 256 KiB accumulate and on exit");
        }
    }
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(LineFormat { json: true })
                    .with_writer(output),
            )
            .try_init(),
        LogFormat::Text if !terminal => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(LineFormat { json: false })
                    .with_writer(output),
            )
            .try_init(),
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
}
