//! The log line layer: one JSON object per line (`LOG_FORMAT=json`) or a `key=value` text line, for output that
//! is not a terminal. Every request writes a line, so this is on the request path. Each line is built in a
//! per-thread `String` that is reused, with direct pushes: no `fmt` machinery for strings and integers (the values
//! of the request line), no allocation, and the timestamp's date part formatted once per second. The finished line
//! goes to the writer in one call. (`tracing-subscriber`'s JSON format turns each field into a `serde_json::Value`
//! first; a formatter behind its `fmt` layer still pays a dynamic call per piece and a second copy of the line.)
//!
//! JSON lines: `{"timestamp":"2026-11-24T11:41:13.567050Z","level":"INFO","message":…,<fields>…,"target":…}`.
//! Text lines: `2026-11-24T11:41:13.567050Z  INFO message key=value key="value with spaces"`.
//! Fields appear in the order the event declares them; `tracing`'s macros put the message first.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

/// A line longer than this gives its buffer back after it is written.
const KEEP_CAPACITY: usize = 16 * 1024;

/// The layer (see the module comment). `writer` receives each finished line in one `write_all`.
#[derive(Debug, Clone)]
pub struct LineLayer<W> {
    json: bool,
    writer: W,
}

impl<W> LineLayer<W> {
    pub fn new(json: bool, writer: W) -> Self {
        Self { json, writer }
    }
}

impl<S, W> Layer<S> for LineLayer<W>
where
    S: Subscriber,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let write = |line: &mut String| {
            format_line(line, self.json, event);
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(line.as_bytes());
        };
        // A value whose `Debug` logs re-enters here while the buffer is borrowed: that line gets its own.
        let reused = LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                write(&mut line);
                if line.capacity() > KEEP_CAPACITY {
                    *line = String::new();
                }
                true
            }
            Err(_) => false,
        });
        if !reused {
            write(&mut String::new());
        }
    }
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// Text lines format `Debug` values here first, to know whether they need quotes.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
    /// The last whole second formatted, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends the whole line for `event`, newline included.
pub fn format_line(out: &mut String, json: bool, event: &Event<'_>) {
    let meta = event.metadata();
    let level = meta.level().as_str();
    if json {
        out.push_str("{\"timestamp\":\"");
        push_timestamp(out);
        out.push_str("\",\"level\":\"");
        out.push_str(level);
        out.push('"');
        event.record(&mut JsonFields { out });
        out.push_str(",\"target\":\"");
        push_json_escaped(out, meta.target());
        out.push_str("\"}\n");
    } else {
        push_timestamp(out);
        out.push(' ');
        // Right-aligned in five columns, as `tracing` prints levels.
        for _ in level.len()..5 {
            out.push(' ');
        }
        out.push_str(level);
        event.record(&mut TextFields { out });
        out.push('\n');
    }
}

/// `2026-11-24T11:41:13.567050Z` (UTC, microseconds).
fn push_timestamp(out: &mut String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
            let of_day = secs % 86_400;
            cached.1.clear();
            let _ = write!(
                cached.1,
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            );
            cached.0 = secs;
        }
        out.push_str(&cached.1);
    });
    out.push('.');
    let micros = now.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut n = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // Six ASCII digits.
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
    out.push('Z');
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn needs_json_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// Appends `s` as the inside of a JSON string: runs that need no escape are copied whole.
fn push_json_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_json_escape(b) {
            continue;
        }
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// `fmt::Write` into a JSON string's inside, for `Debug` and `Display` values.
struct JsonEscaper<'a>(&'a mut String);

impl fmt::Write for JsonEscaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_json_escaped(self.0, s);
        Ok(())
    }
}

fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

fn push_i64(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

struct JsonFields<'a> {
    out: &'a mut String,
}

impl JsonFields<'_> {
    /// `,"name":`
    fn key(&mut self, field: &Field) {
        self.out.push_str(",\"");
        push_json_escaped(self.out, field.name());
        self.out.push_str("\":");
    }

    fn quoted_fmt(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.key(field);
        self.out.push('"');
        let _ = JsonEscaper(self.out).write_fmt(value);
        self.out.push('"');
    }
}

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.quoted_fmt(field, format_args!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        self.out.push('"');
        push_json_escaped(self.out, value);
        self.out.push('"');
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.quoted_fmt(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        push_i64(self.out, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        push_u64(self.out, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            self.out.push_str("null");
        }
    }
}

/// Text lines: the message, then ` name=value` per field; a value with spaces, quotes or `=` is quoted.
struct TextFields<'a> {
    out: &'a mut String,
}

impl TextFields<'_> {
    fn text(&mut self, field: &Field, value: &str) {
        self.out.push(' ');
        if field.name() == "message" {
            self.out.push_str(value);
            return;
        }
        self.out.push_str(field.name());
        self.out.push('=');
        if value.is_empty()
            || value
                .bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f)
        {
            self.out.push('"');
            push_json_escaped(self.out, value);
            self.out.push('"');
        } else {
            self.out.push_str(value);
        }
    }

    fn raw(&mut self, field: &Field, value: &str) {
        self.out.push(' ');
        self.out.push_str(field.name());
        self.out.push('=');
        self.out.push_str(value);
    }
}

impl Visit for TextFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let done = SCRATCH.with(|cell| {
            let Ok(mut scratch) = cell.try_borrow_mut() else {
                return false;
            };
            scratch.clear();
            let _ = write!(scratch, "{value:?}");
            self.text(field, &scratch);
            if scratch.capacity() > KEEP_CAPACITY {
                *scratch = String::new();
            }
            true
        });
        if !done {
            self.text(field, &format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, if value { "true" } else { "false" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    fn capture(json: bool, emit: impl FnOnce()) -> String {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::registry().with(LineLayer::new(json, sink.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn emit_request_line() {
        let id: std::sync::Arc<str> = "00ff".into();
        tracing::info!(
            target: "freellmapi::request",
            req_id = %id,
            user = "ad\"min",
            latency_ms = 12u64,
            delta = -3i64,
            stream = true,
            ratio = f64::NAN,
            error_class = Option::<&str>::None,
            note = ?"tab\there",
            "request finished"
        );
    }

    /// A value whose `Debug` logs: its line must not corrupt the outer one.
    struct Chatty;

    impl fmt::Debug for Chatty {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            tracing::warn!(inner = 1u64, "inside");
            f.write_str("chatty")
        }
    }

    #[test]
    fn json_lines_are_objects_with_every_field() {
        let out = capture(true, emit_request_line);
        assert!(out.ends_with("}\n") && out.lines().count() == 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request finished");
        assert_eq!(line["target"], "freellmapi::request");
        assert_eq!(line["req_id"], "00ff");
        assert_eq!(line["user"], "ad\"min");
        assert_eq!(line["latency_ms"], 12);
        assert_eq!(line["delta"], -3);
        assert_eq!(line["stream"], true);
        assert!(line["ratio"].is_null());
        assert!(line.get("error_class").is_none());
        assert_eq!(line["note"], "\"tab\\there\"");
        let ts = line["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-24T11:41:13.567050Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T');
        // The message comes first, after timestamp and level.
        assert!(out.starts_with(r#"{"timestamp":""#));
        assert!(out.contains(r#""level":"INFO","message":"request finished","req_id""#));
    }

    #[test]
    fn text_lines_quote_only_what_needs_it() {
        let out = capture(false, emit_request_line);
        let line = out.trim_end();
        assert!(
            line.contains("  INFO request finished req_id=00ff user=\"ad\\\"min\" latency_ms=12 delta=-3 stream=true"),
            "{line}"
        );
        assert!(line.contains(r#"note="\"tab\\there\"""#), "{line}");
    }

    #[test]
    fn a_value_that_logs_while_formatted_leaves_the_line_whole() {
        // `tracing` itself drops an event raised while another is being dispatched; whatever happens to it, the
        // outer line must come out whole.
        for json in [true, false] {
            let out = capture(json, || tracing::info!(value = ?Chatty, "outer"));
            let outer: Vec<&str> = out.lines().filter(|l| l.contains("outer")).collect();
            assert_eq!(outer.len(), 1, "{out}");
            assert!(outer[0].contains("chatty"), "{out}");
            if json {
                for line in out.lines() {
                    serde_json::from_str::<serde_json::Value>(line).unwrap();
                }
            }
        }
    }

    #[test]
    fn json_escaping() {
        let mut out = String::new();
        push_json_escaped(&mut out, "a\"b\\c\nd\u{1}\u{7f}é\t\r");
        assert_eq!(out, r#"a\"b\\c\nd\u0001\u007fé\t\r"#);
    }
}
