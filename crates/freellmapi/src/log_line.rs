//! The log line formatter: one JSON object per line (`LOG_FORMAT=json`) or a `key=value` text line, written straight
//! into the line buffer. Every request writes a line, so this is on the request path: `tracing-subscriber`'s own
//! JSON format turns each field into a `serde_json::Value` in a map first, which cost several microseconds per
//! request; here fields are escaped as they are visited, with no allocation, and the timestamp's date part is
//! formatted once per second.
//!
//! JSON lines: `{"timestamp":"2026-11-24T11:41:13.567050Z","level":"INFO","message":…,<fields>…,"target":…}`.
//! Text lines: `2026-11-24T11:41:13.567050Z  INFO message key=value key="value with spaces"`.

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter (see the module comment).
#[derive(Debug, Clone, Copy)]
pub struct LineFormat {
    pub json: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = meta.level().as_str();
        if self.json {
            writer.write_str("{\"timestamp\":\"")?;
            write_timestamp(&mut writer)?;
            writer.write_str("\",\"level\":\"")?;
            writer.write_str(level)?;
            writer.write_char('"')?;
            let mut message = JsonFields::new(&mut writer, true);
            event.record(&mut message);
            message.result?;
            let mut fields = JsonFields::new(&mut writer, false);
            event.record(&mut fields);
            fields.result?;
            writer.write_str(",\"target\":")?;
            json_string(&mut writer, meta.target())?;
            writer.write_str("}\n")
        } else {
            write_timestamp(&mut writer)?;
            write!(writer, " {level:>5}")?;
            let mut message = TextFields::new(&mut writer, true);
            event.record(&mut message);
            message.result?;
            let mut fields = TextFields::new(&mut writer, false);
            event.record(&mut fields);
            fields.result?;
            writer.write_char('\n')
        }
    }
}

thread_local! {
    /// Text lines format `Debug` values here first.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
    /// The last whole second formatted, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-11-24T11:41:13.567050Z` (UTC, microseconds).
fn write_timestamp(w: &mut impl Write) -> fmt::Result {
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
            write!(
                cached.1,
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            )?;
            cached.0 = secs;
        }
        w.write_str(&cached.1)
    })?;
    write!(w, ".{:06}Z", now.subsec_micros())
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

/// Writes what it is given as the inside of a JSON string.
struct JsonEscaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

fn json_string(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscaped(w).write_str(s)?;
    w.write_char('"')
}

/// One pass over an event's fields: only `message` (`message_pass`) or every other field.
struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    message_pass: bool,
    result: fmt::Result,
}

impl<'a, 'w> JsonFields<'a, 'w> {
    fn new(w: &'a mut Writer<'w>, message_pass: bool) -> Self {
        Self {
            w,
            message_pass,
            result: Ok(()),
        }
    }

    /// Writes `,"name":` if this pass takes the field.
    fn key(&mut self, field: &Field) -> bool {
        if self.result.is_err() || (field.name() == "message") != self.message_pass {
            return false;
        }
        self.result = self
            .w
            .write_char(',')
            .and_then(|()| json_string(self.w, field.name()))
            .and_then(|()| self.w.write_char(':'));
        self.result.is_ok()
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        if self.key(field) {
            self.result = write!(self.w, "{value}");
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.result = self
                .w
                .write_char('"')
                .and_then(|()| write!(JsonEscaped(self.w), "{value:?}"))
                .and_then(|()| self.w.write_char('"'));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.result = json_string(self.w, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            self.result = self
                .w
                .write_char('"')
                .and_then(|()| write!(JsonEscaped(self.w), "{value}"))
                .and_then(|()| self.w.write_char('"'));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, value);
        } else if self.key(field) {
            self.result = self.w.write_str("null");
        }
    }
}

/// Text lines: the message, then ` name=value` per field; a value with spaces, quotes or `=` is quoted.
struct TextFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    message_pass: bool,
    result: fmt::Result,
}

impl<'a, 'w> TextFields<'a, 'w> {
    fn new(w: &'a mut Writer<'w>, message_pass: bool) -> Self {
        Self {
            w,
            message_pass,
            result: Ok(()),
        }
    }

    fn takes(&self, field: &Field) -> bool {
        self.result.is_ok() && (field.name() == "message") == self.message_pass
    }

    fn text(&mut self, field: &Field, value: &str) {
        if !self.takes(field) {
            return;
        }
        self.result = if self.message_pass {
            write!(self.w, " {value}")
        } else if value.is_empty()
            || value
                .bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f)
        {
            write!(self.w, " {}=", field.name()).and_then(|()| json_string(self.w, value))
        } else {
            write!(self.w, " {}={value}", field.name())
        };
    }
}

impl Visit for TextFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.takes(field) {
            // Formatted first (into a reused buffer), to know whether it needs quotes.
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                scratch.clear();
                self.result = write!(scratch, "{value:?}");
                if self.result.is_ok() {
                    self.text(field, &scratch);
                }
                scratch.truncate(1024);
                scratch.shrink_to(1024);
            });
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.takes(field) {
            self.result = write!(self.w, " {}={value}", field.name());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.takes(field) {
            self.result = write!(self.w, " {}={value}", field.name());
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.takes(field) {
            self.result = write!(self.w, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    fn capture(json: bool, emit: impl FnOnce()) -> String {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(LineFormat { json })
            .with_writer(sink.clone())
            .finish();
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
    fn json_escaping() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
