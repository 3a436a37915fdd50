//! The one middleware every request passes through: request id, tracing span,
//! metrics and security headers. Keeping them in one place means no route can be
//! added without them.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError as _, web};

use super::error::ApiError;
use crate::error::ErrorCode;
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's request id is echoed only when it is short and plain, so it cannot
/// inject anything into logs or headers.
fn acceptable_request_id(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!s.is_empty() && s.len() <= 128 && s.chars().all(plain)).then_some(s)
}

/// A UUIDv7 (RFC 9562 §5.7): unique, and sorts by time in logs.
fn new_request_id() -> HeaderValue {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    request_id_at(millis, next_request_id_tail())
}

/// The 80 bits after the timestamp: a random start per thread, then a counter
/// (RFC 9562 §6.2, method 2 without the random increment). Unique without the
/// shared context and fresh random draw of `Uuid::now_v7` (≈ 560 of a JWKS
/// request's 24k instructions); a request id labels log lines and is no secret,
/// so nothing needs it unguessable.
fn next_request_id_tail() -> u128 {
    thread_local! {
        static NEXT: std::cell::Cell<u128> = std::cell::Cell::new(uuid::Uuid::new_v4().as_u128());
    }
    NEXT.with(|next| {
        let tail = next.get();
        next.set(tail.wrapping_add(1));
        tail
    })
}

fn request_id_at(millis: u64, tail: u128) -> HeaderValue {
    let mut random = [0; 10];
    random.copy_from_slice(&tail.to_be_bytes()[6..]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut text = uuid::Uuid::encode_buffer();
    // Hex digits and hyphens are always a valid header value.
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
        .unwrap_or(HeaderValue::from_static("-"))
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    // The caller's id shares the request's buffer; a new one is one allocation.
    let request_id = match req.headers().get(&REQUEST_ID) {
        Some(id) if acceptable_request_id(id).is_some() => id.clone(),
        _ => new_request_id(),
    };
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    let quiet = is_quiet(req.path());
    // Every line logged while the request runs names it (telemetry::RequestScope).
    let scope = crate::telemetry::RequestScope {
        request_id: request_id.clone(),
        method: method.clone(),
    };

    // Holding a clone of the request across `next.call` would break actix's routing
    // (it needs sole ownership to record the match), so an `Err` here is passed on;
    // handlers' errors have already become responses by this point.
    let mut response = match oversized_head(&req) {
        Some(refusal) => req.into_response(refusal.error_response()),
        // The quiet routes change nothing, so they record no audit event.
        None if quiet => crate::telemetry::within(scope, next.call(req))
            .await?
            .map_into_boxed_body(),
        None => {
            // Where the request came from, for the audit events it records.
            let context = super::client::audit_context(req.request(), None);
            crate::telemetry::within(scope, crate::audit::within(context, next.call(req)))
                .await?
                .map_into_boxed_body()
        }
    };

    let status = response.status().as_u16();
    // The route pattern (`/invitations/{token}`), never the raw path, which can
    // carry a secret.
    let route = response
        .request()
        .app_data::<super::RoutePattern>()
        .map_or("unmatched", |pattern| pattern.0);
    let elapsed = started.elapsed();
    let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    // One line, at `debug` for the quiet routes (tracing needs the level as a
    // constant, hence the macro).
    macro_rules! answered {
        ($level:expr) => {
            tracing::event!(
                $level,
                request_id = request_id.to_str().unwrap_or_default(),
                method = method.as_str(),
                route,
                status,
                elapsed_us,
                "answered"
            )
        };
    }
    if quiet {
        answered!(tracing::Level::DEBUG);
    } else {
        answered!(tracing::Level::INFO);
    }

    if let Some(state) = &state {
        state
            .metrics
            .observe(method.as_str(), route, status, elapsed.as_secs_f64());
    }
    let https = state.as_ref().is_some_and(|s| s.settings.issuer_is_https());
    let headers = response.headers_mut();
    only(headers, REQUEST_ID, request_id);
    add_security_headers(headers, https);
    Ok(response)
}

/// Endpoints that answer every caller the same, are fetched often (verifiers'
/// JWKS, discovery, health checks) and change nothing: their access lines are
/// `debug`, not `info`. At `info` the line cost ≈ 30 % of a JWKS request
/// (76–88k/s with it, 111–124k/s without, one worker; docs/PERFORMANCE.md).
fn is_quiet(path: &str) -> bool {
    use super::paths;
    matches!(
        path,
        paths::JWKS
            | paths::OPENID_CONFIGURATION
            | paths::OAUTH_AUTHORIZATION_SERVER
            | paths::HEALTHZ
            | paths::READYZ
    )
}

/// The longest request target served (nginx's default request-line buffer is 8 KiB).
const MAX_URI: usize = 16 * 1024;
/// The most header bytes served, names and values together (nginx's default is
/// 4 × 8 KiB). actix-http only bounds a head that arrives in pieces.
const MAX_HEADER_BYTES: usize = 32 * 1024;

fn oversized_head(req: &ServiceRequest) -> Option<ApiError> {
    let refuse = |status, description: &str| ApiError::Refused {
        status,
        code: ErrorCode::InvalidRequest,
        description: description.to_owned(),
    };
    let target = req.uri().path().len() + req.uri().query().map_or(0, str::len);
    if target > MAX_URI {
        return Some(refuse(
            StatusCode::URI_TOO_LONG,
            "the request target is longer than 16 KiB",
        ));
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (header_bytes > MAX_HEADER_BYTES).then(|| {
        refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request headers are larger than 32 KiB",
        )
    })
}

// Made at compile time: `from_static` checks its bytes, which at run time cost
// a loop per header per response.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
const DENY: HeaderValue = HeaderValue::from_static("DENY");
const NOTHING_LOADS: HeaderValue =
    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");
const HSTS: HeaderValue = HeaderValue::from_static("max-age=63072000; includeSubDomains");

fn set_default(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    if !headers.contains_key(&name) {
        headers.append(name, value);
    }
}

/// Headers every response carries. A page that needs a wider CSP sets its own,
/// and a cacheable document its own `Cache-Control`; the default allows nothing
/// to load and nothing to frame the response.
fn add_security_headers(headers: &mut HeaderMap, https: bool) {
    // Nothing is cached unless its handler says so (static assets, discovery,
    // JWKS): tokens, pages with CSRF tokens and errors alike (RFC 6749 §5.1).
    set_default(headers, header::CACHE_CONTROL, NO_STORE);
    set_default(headers, header::CONTENT_SECURITY_POLICY, NOTHING_LOADS);
    // No handler sets these, so they are added without a look-up (`insert`
    // would look up and hand back a replaced value; ≈ 75 instructions a
    // header). A handler that needs its own must move its header to
    // `set_default` above; debug builds — every test — check that none did.
    only(headers, header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    only(headers, header::REFERRER_POLICY, NO_REFERRER);
    only(headers, header::X_FRAME_OPTIONS, DENY);
    if https {
        only(headers, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
}

/// Adds a header that only this middleware sets: two of a security header
/// leave a browser to guess which one holds.
fn only(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    debug_assert!(
        !headers.contains_key(&name),
        "a handler set {name}, which the middleware sets for every response"
    );
    headers.append(name, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_that_could_smuggle_content_are_replaced() {
        let ok = HeaderValue::from_static("abc-123_4.5:6");
        assert_eq!(acceptable_request_id(&ok), Some("abc-123_4.5:6"));
        for bad in ["", "a b", "a;b", "<script>", &"x".repeat(129)] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert_eq!(acceptable_request_id(&v), None, "{bad:?}");
        }
    }

    #[test]
    fn generated_request_ids_are_distinct_version_7_uuids_in_time_order() {
        let parse = |v: HeaderValue| uuid::Uuid::parse_str(v.to_str().unwrap()).unwrap();
        let ids: Vec<_> = (0..1000).map(|_| parse(new_request_id())).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7), "{}", ids[0]);
        assert!(
            ids.iter()
                .all(|id| id.get_variant() == uuid::Variant::RFC4122)
        );
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // The timestamp leads, so a later millisecond sorts later whatever the tail.
        let (earlier, later) = (
            parse(request_id_at(1_000, u128::MAX)),
            parse(request_id_at(1_001, 0)),
        );
        assert!(earlier < later, "{earlier} !< {later}");
        let unix = later.get_timestamp().unwrap().to_unix();
        assert_eq!(unix, (1, 1_000_000), "1,001 ms after the epoch");
        // Within one millisecond the counter keeps a thread's ids apart, and in order.
        let (a, b) = (parse(request_id_at(5, 41)), parse(request_id_at(5, 42)));
        assert!(a < b, "{a} !< {b}");
    }

    #[test]
    fn each_thread_counts_from_its_own_random_start() {
        let here = next_request_id_tail();
        let there = std::thread::spawn(next_request_id_tail).join().unwrap();
        assert_eq!(next_request_id_tail(), here.wrapping_add(1));
        // 2^-80 of a chance to be wrong: two threads starting at the same place.
        assert_ne!(here, there);
    }

    #[test]
    fn every_security_header_is_sent_once() {
        let mut headers = HeaderMap::new();
        add_security_headers(&mut headers, true);
        for name in [
            header::CACHE_CONTROL,
            header::CONTENT_SECURITY_POLICY,
            header::X_CONTENT_TYPE_OPTIONS,
            header::REFERRER_POLICY,
            header::X_FRAME_OPTIONS,
            header::STRICT_TRANSPORT_SECURITY,
        ] {
            assert_eq!(headers.get_all(&name).count(), 1, "{name}");
        }
    }

    /// The headers the middleware adds without looking are checked in debug
    /// builds, so a handler that starts setting one fails its tests instead of
    /// sending two.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "a handler set x-frame-options")]
    fn a_handler_setting_a_header_only_the_middleware_sets_fails_in_tests() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        add_security_headers(&mut headers, false);
    }

    #[test]
    fn responses_are_not_cached_unless_their_handler_says_so() {
        let mut plain = HeaderMap::new();
        add_security_headers(&mut plain, true);
        assert_eq!(plain.get(header::CACHE_CONTROL).unwrap(), "no-store");
        let mut asset = HeaderMap::new();
        asset.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        add_security_headers(&mut asset, true);
        assert_eq!(
            asset.get(header::CACHE_CONTROL).unwrap(),
            "public, max-age=31536000, immutable"
        );
    }
}
