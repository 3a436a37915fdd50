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
//!
//! When stderr is not a terminal, lines below `WARN` are written in batches
//! ([`Lines`]): a `write` per access line was ≈ 4 % of a token request, and to
//! a pipe it also wakes the log collector once per request. A warning or an
//! error is written at once, after the lines before it.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::io::{self, IsTerminal as _};
use std::sync::Mutex;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,actix_server=warn";

/// Sets up logging; keep the returned guard for the life of the process: its
/// drop writes the lines still waiting.
#[must_use = "dropping the guard writes the waiting lines at once and no more later"]
pub fn init(format: LogFormat) -> Flush {
    let filter =
        EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Someone watching a terminal sees each line as it happens.
    let batched = !io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Stderr { batched });
    // A second init (tests starting several servers) is harmless; ignore it.
    let installed = match format {
        LogFormat::Human => builder.event_format(Human).try_init(),
        LogFormat::Json => builder.event_format(Json).try_init(),
    };
    if batched && installed.is_ok() {
        // Lines wait at most FLUSH_EVERY; a burst wakes the thread sooner.
        if let Ok(writer) = std::thread::Builder::new()
            .name("tessera-log".into())
            .spawn(|| {
                loop {
                    std::thread::park_timeout(FLUSH_EVERY);
                    flush();
                }
            })
        {
            let _ = LINES.writer.set(writer.thread().clone());
        }
    }
    Flush(())
}

/// How long a line below `WARN` may wait in memory before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Past this many bytes waiting (a few hundred lines), the writing thread is
/// woken rather than left to its next turn.
const FLUSH_AT: usize = 64 * 1024;
/// Past this many, the writing thread is not keeping up (a full pipe, a slow
/// disk): the thread that logs writes the lines itself and waits as an
/// unbuffered writer would, so memory stays bounded.
const WRITE_INLINE_AT: usize = 16 * FLUSH_AT;

static LINES: Lines<io::Stderr> = Lines::new(io::stderr);

/// Writes the lines still waiting to stderr: before the process ends, and
/// before anything is written to stderr other than through the log.
pub fn flush() {
    LINES.flush();
}

/// Writes the waiting lines when dropped (the end of `main`, or unwinding
/// out of it).
pub struct Flush(());

impl Drop for Flush {
    fn drop(&mut self) {
        flush();
    }
}

/// Log lines waiting to be written together, in the order they were logged.
/// A thread that logs only copies its line in; the `write` happens on the
/// writing thread, except for a warning or an error (written at once, after
/// the lines before it) and when the writer falls far behind.
struct Lines<W> {
    pending: Mutex<Vec<u8>>,
    /// The output and a spare buffer. Whoever writes takes this lock before
    /// letting go of `pending` and swaps the spare in, so lines keep arriving
    /// while a batch is written and batches reach the output in order.
    out: Mutex<(Option<W>, Vec<u8>)>,
    open: fn() -> W,
    /// The writing thread, woken when a burst reaches [`FLUSH_AT`].
    writer: std::sync::OnceLock<std::thread::Thread>,
    #[cfg(test)]
    wakes: std::sync::atomic::AtomicUsize,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<W: io::Write> Lines<W> {
    const fn new(open: fn() -> W) -> Self {
        Self {
            pending: Mutex::new(Vec::new()),
            out: Mutex::new((None, Vec::new())),
            open,
            writer: std::sync::OnceLock::new(),
            #[cfg(test)]
            wakes: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Adds `line`; writes everything waiting when the line is `urgent` (a
    /// warning or an error), wakes the writing thread when a burst has gathered.
    fn push(&self, line: &[u8], urgent: bool) {
        let mut pending = locked(&self.pending);
        pending.extend_from_slice(line);
        if urgent || pending.len() >= WRITE_INLINE_AT {
            self.write_out(pending);
        } else if pending.len() >= FLUSH_AT {
            drop(pending);
            #[cfg(test)]
            self.wakes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
        }
    }

    fn flush(&self) {
        let pending = locked(&self.pending);
        if !pending.is_empty() {
            self.write_out(pending);
        }
    }

    fn write_out(&self, mut pending: std::sync::MutexGuard<'_, Vec<u8>>) {
        let mut out = locked(&self.out);
        let (writer, batch) = &mut *out;
        std::mem::swap(&mut *pending, batch);
        drop(pending);
        let writer = writer.get_or_insert_with(self.open);
        // As with an unbuffered writer, a log that cannot be written is not a
        // reason to fail a request: the lines are dropped.
        let _ = writer.write_all(batch).and_then(|()| writer.flush());
        batch.clear();
        // A burst leaves no large buffer behind for good.
        batch.shrink_to(FLUSH_AT);
    }
}

/// The subscriber's writer: stderr, through [`LINES`] when batched.
#[derive(Clone, Copy)]
struct Stderr {
    batched: bool,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            batched: self.batched,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            batched: self.batched,
            // `Level` orders by verbosity: ERROR < WARN < INFO.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// One formatted line (the subscriber writes each with one `write_all`).
struct Line {
    batched: bool,
    urgent: bool,
}

impl io::Write for Line {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if self.batched {
            LINES.push(line, self.urgent);
        } else {
            io::stderr().lock().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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

    /// An output the test reads while a subscriber or `Lines` owns the writer.
    #[derive(Clone, Default)]
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

    thread_local! {
        static OUT: SinkWriter = SinkWriter::default();
    }

    fn lines() -> (Lines<SinkWriter>, SinkWriter) {
        (
            Lines::new(|| OUT.with(SinkWriter::clone)),
            OUT.with(SinkWriter::clone),
        )
    }

    fn written(out: &SinkWriter) -> Vec<u8> {
        out.0.lock().unwrap().clone()
    }

    #[test]
    fn lines_wait_until_a_warning_or_a_flush_and_keep_their_order() {
        let (lines, out) = lines();
        lines.push(b"1 INFO answered\n", false);
        lines.push(b"2 INFO answered\n", false);
        assert!(
            written(&out).is_empty(),
            "access lines wait to be written together"
        );
        lines.push(b"3 WARN slow\n", true);
        assert_eq!(
            written(&out),
            b"1 INFO answered\n2 INFO answered\n3 WARN slow\n",
            "a warning is written at once, after the lines logged before it"
        );
        lines.push(b"4 INFO answered\n", false);
        lines.flush();
        assert!(written(&out).ends_with(b"3 WARN slow\n4 INFO answered\n"));
        let before = written(&out).len();
        lines.flush();
        assert_eq!(written(&out).len(), before, "nothing is written twice");
    }

    #[test]
    fn a_burst_wakes_the_writer_and_a_writer_far_behind_is_not_waited_for_in_memory() {
        let (lines, out) = lines();
        let line = [b'x'; 200];
        for _ in 0..FLUSH_AT / line.len() {
            lines.push(&line, false);
        }
        let woken = |l: &Lines<SinkWriter>| l.wakes.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            woken(&lines),
            0,
            "below the burst size the writer keeps its pace"
        );
        lines.push(&line, false);
        assert_eq!(woken(&lines), 1, "a burst wakes the writing thread");
        assert!(
            written(&out).is_empty(),
            "the thread that logs does not write it"
        );
        // The writer never comes: the lines are written before they grow
        // past the bound.
        while written(&out).is_empty() {
            lines.push(&line, false);
            assert!(locked(&lines.pending).len() <= WRITE_INLINE_AT);
        }
        assert!(written(&out).len() >= WRITE_INLINE_AT);
        assert!(locked(&lines.pending).is_empty());
    }

    #[test]
    fn lines_logged_while_a_batch_is_written_follow_it() {
        // Written from the logging threads: an output not tied to one thread.
        static THREADED: std::sync::OnceLock<SinkWriter> = std::sync::OnceLock::new();
        let lines = std::sync::Arc::new(Lines::new(|| {
            THREADED.get_or_init(SinkWriter::default).clone()
        }));
        let out = THREADED.get_or_init(SinkWriter::default).clone();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        lines.push(format!("{t} {i:04}\n").as_bytes(), i % 500 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        lines.flush();
        let text = String::from_utf8(written(&out)).unwrap();
        assert_eq!(text.lines().count(), 8000);
        for t in 0..4 {
            let own: Vec<_> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{t} ")))
                .collect();
            assert!(
                own.windows(2).all(|w| w[0] < w[1]),
                "thread {t} out of order"
            );
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
