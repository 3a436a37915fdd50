//! Prometheus metrics: request counts and latency by route pattern, method and status.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The matched route pattern, never the raw path, so label cardinality stays bounded.
    pub route: String,
    pub status: u16,
}

type LatencyHistogram = fn() -> Histogram;

pub struct Metrics {
    /// Tells this instance's series from another's in a thread's cache (tests
    /// run several servers in one process).
    id: u64,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, LatencyHistogram>,
}

fn latency_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram, LatencyHistogram>::new_with_constructor(
            latency_buckets,
        );
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            latency.clone(),
        );
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            requests,
            latency,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A series as a worker thread finds it again: the instance, method, route
/// pattern and status — all copied, nothing allocated per request.
type SeriesKey = (u64, &'static str, &'static str, u16);

thread_local! {
    /// Each worker's handles on the series it has answered. Looking a series up
    /// in the families hashes its labels with SipHash under a lock, twice per
    /// request; here it is one foldhash lookup with no lock. Bounded like the
    /// families: routes × methods × statuses.
    static SERIES: RefCell<HashMap<SeriesKey, (Counter, Histogram), foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

impl Metrics {
    /// Counts one answered request and its duration. `route` is the matched
    /// pattern, never the raw path.
    pub fn observe(&self, method: &str, route: &'static str, status: u16, seconds: f64) {
        // A caller may send any token as its method; counting each under its own
        // name would let it grow the series without bound.
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            _ => "OTHER",
        };
        SERIES.with_borrow_mut(|series| {
            let key = (self.id, method, route, status);
            if let Some((requests, latency)) = series.get(&key) {
                requests.inc();
                latency.observe(seconds);
                return;
            }
            let labels = RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            };
            let requests = self.requests.get_or_create(&labels).clone();
            let latency = self.latency.get_or_create(&labels).clone();
            requests.inc();
            latency.observe(seconds);
            series.insert(key, (requests, latency));
        });
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(metrics: &Metrics, line_start: &str) -> Option<String> {
        let text = metrics.render().unwrap();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    }

    #[test]
    fn each_server_counts_its_own_requests_through_the_per_thread_handles() {
        // Two instances on one thread (as tests run several servers in one
        // process): the thread's handles must not mix their series.
        let a = Metrics::default();
        let b = Metrics::default();
        for _ in 0..3 {
            a.observe("GET", "/healthz", 200, 0.001);
        }
        a.observe("POST", "/token", 400, 0.002);
        b.observe("GET", "/healthz", 200, 0.001);
        let series = r#"tessera_http_requests_total{method="GET",route="/healthz",status="200"}"#;
        assert_eq!(count(&a, series).as_deref(), Some("3"));
        assert_eq!(count(&b, series).as_deref(), Some("1"));
        let token = r#"tessera_http_requests_total{method="POST",route="/token",status="400"}"#;
        assert_eq!(count(&a, token).as_deref(), Some("1"));
        assert_eq!(count(&b, token), None);
        let latency = r#"tessera_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}"#;
        assert_eq!(count(&a, latency).as_deref(), Some("3"));
    }

    #[test]
    fn methods_nobody_registered_share_one_series() {
        let metrics = Metrics::default();
        for method in ["BREW", "WHEN", "X-ANYTHING"] {
            metrics.observe(method, "unmatched", 404, 0.001);
        }
        let other = r#"tessera_http_requests_total{method="OTHER",route="unmatched",status="404"}"#;
        assert_eq!(count(&metrics, other).as_deref(), Some("3"));
        assert_eq!(
            count(&metrics, r#"tessera_http_requests_total{method="BREW""#),
            None
        );
    }
}
