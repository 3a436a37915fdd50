//! Logging: human-readable by default, JSON lines with `TESSERA_LOG_FORMAT=json`;
//! the filter comes from `TESSERA_LOG` (tracing's `EnvFilter` syntax).
//!
//! A request is not a tracing span. A span per request (created, its fields
//! formatted into a string, entered and left on every poll, closed) cost about
//! half of the ≈ 4–5 µs that access logging took from a ≈ 38 µs token request
//! (docs/PERFORMANCE.md). Instead the request's id and method sit in a task-local
//! [`RequestScope`] for as long as the request runs, and the formatters below add
//! them to every line logged inside it, so a warning from deep in a handler still
//! names its request. The formatters write each line straight into the
//! subscriber's buffer: no colour codes, no per-field allocation, the timestamp's
//! date and time formatted once a second.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::future::Future;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,actix_server=warn";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr);
    // A second init (tests starting several servers) is harmless; ignore it.
    let _ = match format {
        LogFormat::Human => builder.event_format(Human).try_init(),
        LogFormat::Json => builder.event_format(Json).try_init(),
    };
}

/// What every line logged while a request runs says about it.
pub struct RequestScope {
    /// As the response's `X-Request-Id` carries it: a plain visible-ASCII value
    /// (the middleware accepts no other), shared rather than copied.
    pub request_id: actix_web::http::header::HeaderValue,
    pub method: actix_web::http::Method,
}

tokio::task_local! {
    static REQUEST: RequestScope;
}

/// Runs `f` as the request `scope`: every line it logs names the request.
pub async fn within<F: Future>(scope: RequestScope, f: F) -> F::Output {
    REQUEST.scope(scope, f).await
}

/// Calls `f` with the request being answered, if any.
fn with_request(f: impl FnOnce(&RequestScope) -> fmt::Result) -> fmt::Result {
    let mut f = Some(f);
    REQUEST
        .try_with(|scope| f.take().map_or(Ok(()), |f| f(scope)))
        .unwrap_or(Ok(()))
}

/// `2026-12-06T12:00:00.123456Z`; the part to the second is formatted once per
/// second per thread.
fn write_timestamp(w: &mut Writer<'_>) -> fmt::Result {
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    let secs = now.timestamp();
    SECOND.with_borrow_mut(|(at, text)| {
        if *at != secs {
            text.clear();
            let _ = write!(text, "{}", now.format("%Y-%m-%dT%H:%M:%S"));
            *at = secs;
        }
        write!(
            w,
            "{text}.{:06}Z",
            now.timestamp_subsec_micros().min(999_999)
        )
    })
}

/// The human format: `time LEVEL [spans: ]target: message key=value …`, then
/// the request's id and method when logged inside one.
pub struct Human;

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write_timestamp(&mut w)?;
        write!(w, " {:>5} ", meta.level().as_str())?;
        // Our own code opens no spans; a library's are shown as tracing would.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                w.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(w, "{{{fields}}}")?;
                }
                w.write_str(": ")?;
            }
        }
        w.write_str(meta.target())?;
        w.write_char(':')?;
        write_fields(&mut w, event, false)?;
        w.write_char('\n')
    }
}

/// The event's fields, then the request's `request_id` and `method` when it
/// was logged inside one: ` key=value` each (`message` bare) in the human
/// format, `,"key":value` in JSON.
fn write_fields(w: &mut Writer<'_>, event: &Event<'_>, json: bool) -> fmt::Result {
    let mut fields = Fields {
        w,
        json,
        result: Ok(()),
    };
    event.record(&mut fields);
    with_request(|r| {
        fields.text("request_id", r.request_id.to_str().unwrap_or_default());
        fields.text("method", r.method.as_str());
        Ok(())
    })?;
    fields.result
}

struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    json: bool,
    /// The first error stops the writing (`Visit` methods return nothing).
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, name: &str, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let (w, json) = (&mut *self.w, self.json);
        self.result = (|| {
            if json {
                w.write_char(',')?;
                json_string(w, name)?;
                w.write_char(':')?;
            } else {
                w.write_char(' ')?;
                if name != "message" {
                    w.write_str(name)?;
                    w.write_char('=')?;
                }
            }
            value(w)
        })();
    }

    fn text(&mut self, name: &str, value: &str) {
        let json = self.json;
        self.field(name, |w| match (json, name) {
            (true, _) => json_string(w, value),
            (false, "message") => without_controls(w, value),
            (false, _) => plain_or_quoted(w, value),
        });
    }

    fn number(&mut self, name: &str, value: impl fmt::Display) {
        self.field(name, |w| write!(w, "{value}"));
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.json && !value.is_finite() {
            // JSON has no NaN or infinity.
            self.field(field.name(), |w| write!(w, "\"{value}\""));
        } else {
            self.number(field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `message` and `%value` fields arrive here, formatted through a filter
        // that keeps them on one line (and inside their JSON string).
        let json = self.json;
        self.field(field.name(), |w| {
            if json {
                w.write_char('"')?;
            }
            write!(
                Escaping {
                    inner: &mut *w,
                    json
                },
                "{value:?}"
            )?;
            if json {
                w.write_char('"')?;
            }
            Ok(())
        });
    }
}

/// A value that cannot be confused with the line's structure is written as it
/// is; any other is quoted and escaped, so no value can forge a line.
fn plain_or_quoted(w: &mut Writer<'_>, value: &str) -> fmt::Result {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\');
    if plain {
        w.write_str(value)
    } else {
        write!(w, "{value:?}")
    }
}

fn without_controls(w: &mut Writer<'_>, value: &str) -> fmt::Result {
    Escaping {
        inner: w,
        json: false,
    }
    .write_str(value)
}

/// Escapes what would end or corrupt a line: control characters always, and
/// for JSON strings the quote and backslash (RFC 8259 §7).
struct Escaping<'a, W: fmt::Write> {
    inner: &'a mut W,
    json: bool,
}

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = b < 0x20 || b == 0x7f || (self.json && (b == b'"' || b == b'\\'));
            if !escape {
                continue;
            }
            self.inner.write_str(&s[start..i])?;
            match b {
                b'\n' => self.inner.write_str("\\n")?,
                b'\r' => self.inner.write_str("\\r")?,
                b'\t' => self.inner.write_str("\\t")?,
                b'"' => self.inner.write_str("\\\"")?,
                b'\\' => self.inner.write_str("\\\\")?,
                _ => write!(self.inner, "\\u{b:04x}")?,
            }
            start = i + 1;
        }
        self.inner.write_str(&s[start..])
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, the event's fields
/// (`message` among them), the request's `request_id` and `method` when logged
/// inside one, and the names of a library's open spans in `spans`.
pub struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut w)?;
        write!(w, "\",\"level\":\"{}\",\"target\":", meta.level().as_str())?;
        json_string(&mut w, meta.target())?;
        write_fields(&mut w, event, true)?;
        if let Some(scope) = ctx.event_scope() {
            w.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                json_string(&mut w, span.name())?;
            }
            w.write_char(']')?;
        }
        w.write_str("}\n")
    }
}

fn json_string(w: &mut Writer<'_>, value: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaping {
        inner: w,
        json: true,
    }
    .write_str(value)?;
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str, json: bool) -> String {
        let mut out = String::new();
        Escaping {
            inner: &mut out,
            json,
        }
        .write_str(s)
        .unwrap();
        out
    }

    #[test]
    fn no_value_can_break_a_line_or_a_json_string() {
        assert_eq!(
            escaped("a\nb\r\tc\u{1b}[31m", false),
            "a\\nb\\r\\tc\\u001b[31m"
        );
        assert_eq!(escaped("say \"hi\" \\", false), "say \"hi\" \\");
        assert_eq!(escaped("say \"hi\" \\", true), "say \\\"hi\\\" \\\\");
        let json = format!("\"{}\"", escaped("é \"x\"\n\u{7f}", true));
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, "é \"x\"\n\u{7f}");
    }

    /// Logs one event inside a request scope through `format` and returns the text.
    fn logged(json: bool) -> String {
        use std::sync::{Arc, Mutex};
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let make_writer = move || SinkWriter(sink.clone());
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(make_writer);
        let dispatch = if json {
            tracing::Dispatch::new(builder.event_format(Json).finish())
        } else {
            tracing::Dispatch::new(builder.event_format(Human).finish())
        };
        let scope = RequestScope {
            request_id: actix_web::http::header::HeaderValue::from_static("req-1"),
            method: actix_web::http::Method::POST,
        };
        tracing::dispatcher::with_default(&dispatch, || {
            REQUEST.sync_scope(scope, || {
                tracing::warn!(
                    status = 503u64,
                    ratio = 0.5,
                    who = "a \"quoted\"\nname",
                    "lost\nline"
                );
            })
        });
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct SinkWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SinkWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_logged_inside_a_request_names_it_and_stays_one_line() {
        let human = logged(false);
        assert_eq!(human.lines().count(), 1, "{human}");
        assert!(
            human.contains(" WARN tessera::telemetry::tests: lost\\nline status=503 ratio=0.5 who=\"a \\\"quoted\\\"\\nname\" request_id=req-1 method=POST"),
            "{human}"
        );
        let json = logged(true);
        assert_eq!(json.lines().count(), 1, "{json}");
        let line: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "lost\nline");
        assert_eq!(line["status"], 503);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["who"], "a \"quoted\"\nname");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["method"], "POST");
    }
}
