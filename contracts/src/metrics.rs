//! Metrics: a small registry of labelled counters, histograms and gauges, rendered in the
//! Prometheus text exposition format (0.0.4).
//!
//! The kernel makes one [`Metrics`] per runtime and offers it to capabilities as the
//! `kernel.metrics` service, so a capability records without depending on the kernel: it asks the
//! registry for a handle by name ([`Metrics::counter`], [`Metrics::histogram`]) or registers a
//! gauge read at scrape time ([`Metrics::gauge`]). The request pipeline also makes the serving
//! runtime's registry current for each request ([`with_metrics`]), so a handler can record with
//! one call and no handle ([`record_authz_decision`]). Recording is a short mutex hold on a
//! `BTreeMap`; nothing is exported unless `GET /metrics` asks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};

use crate::services::{Decision, DenyCode};

/// Authorization decisions, by `decision` and `deny_code` (empty for an allow).
pub const AUTHZ_DECISIONS: &str = "plystra_authz_decisions_total";

/// Bucket bounds for latencies in seconds: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds for sizes (records per batch and the like).
pub const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

type Series<T> = Mutex<BTreeMap<Vec<String>, T>>;

/// Label values, owned, in the family's label order; missing values are empty.
fn key(labels: &'static [&'static str], values: &[&str]) -> Vec<String> {
    (0..labels.len())
        .map(|i| values.get(i).copied().unwrap_or("").to_owned())
        .collect()
}

struct CounterInner {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Series<u64>,
}

/// A monotonically increasing count per label set. Cloning shares the series.
#[derive(Clone)]
pub struct Counter(Arc<CounterInner>);

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Counter").field(&self.0.name).finish()
    }
}

impl Counter {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self(Arc::new(CounterInner {
            name,
            help,
            labels,
            values: Mutex::default(),
        }))
    }

    /// Adds one to the series with these label values (in the family's label order).
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }

    /// Adds `n`.
    pub fn inc_by(&self, values: &[&str], n: u64) {
        let mut map = self.0.values.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key(self.0.labels, values)).or_default() += n;
    }

    /// The current count of one series (0 when never recorded).
    pub fn get(&self, values: &[&str]) -> u64 {
        let map = self.0.values.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key(self.0.labels, values)).copied().unwrap_or(0)
    }
}

#[derive(Clone, Default)]
struct Buckets {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

struct HistogramInner {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    values: Series<Buckets>,
}

/// A distribution per label set, with fixed bucket bounds. Cloning shares the series.
#[derive(Clone)]
pub struct Histogram(Arc<HistogramInner>);

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Histogram").field(&self.0.name).finish()
    }
}

impl Histogram {
    fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Self(Arc::new(HistogramInner {
            name,
            help,
            labels,
            bounds,
            values: Mutex::default(),
        }))
    }

    /// Records one observation in the series with these label values.
    pub fn observe(&self, values: &[&str], value: f64) {
        let mut map = self.0.values.lock().unwrap_or_else(|p| p.into_inner());
        let series = map
            .entry(key(self.0.labels, values))
            .or_insert_with(|| Buckets {
                counts: vec![0; self.0.bounds.len()],
                ..Buckets::default()
            });
        for (i, bound) in self.0.bounds.iter().enumerate() {
            if value <= *bound {
                series.counts[i] += 1;
            }
        }
        series.sum += value;
        series.count += 1;
    }

    /// How many observations one series holds.
    pub fn count(&self, values: &[&str]) -> u64 {
        let map = self.0.values.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key(self.0.labels, values)).map_or(0, |b| b.count)
    }
}

/// Reads a gauge's series at scrape time: label values (in the family's order) and the value.
pub type GaugeFn = dyn Fn() -> Vec<(Vec<String>, f64)> + Send + Sync;

struct Gauge {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    read: Arc<GaugeFn>,
}

enum Family {
    Counter(Counter),
    Histogram(Histogram),
    Gauges(Vec<Gauge>),
}

/// One runtime's metrics. Families are keyed by name; asking twice for the same name gives the
/// same series.
#[derive(Default)]
pub struct Metrics {
    families: RwLock<BTreeMap<&'static str, Family>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let families = self.families.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("Metrics")
            .field("families", &families.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter named `name` (registered on first use). A name already taken by another kind
    /// gives a handle that records into nothing exported.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        // Recording paths ask for their handle on every call: a shared lock when it exists.
        if let Some(Family::Counter(counter)) = self
            .families
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return counter.clone();
        }
        let mut families = self.families.write().unwrap_or_else(|p| p.into_inner());
        match families
            .entry(name)
            .or_insert_with(|| Family::Counter(Counter::new(name, help, labels)))
        {
            Family::Counter(counter) => counter.clone(),
            _ => Counter::new(name, help, labels),
        }
    }

    /// The histogram named `name` with `bounds` (registered on first use).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Histogram {
        if let Some(Family::Histogram(histogram)) = self
            .families
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return histogram.clone();
        }
        let mut families = self.families.write().unwrap_or_else(|p| p.into_inner());
        match families
            .entry(name)
            .or_insert_with(|| Family::Histogram(Histogram::new(name, help, labels, bounds)))
        {
            Family::Histogram(histogram) => histogram.clone(),
            _ => Histogram::new(name, help, labels, bounds),
        }
    }

    /// Registers a gauge read by `read` at every scrape. Registering the same name again adds
    /// the new reader's series to the family (for example, one per writer).
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        read: Arc<GaugeFn>,
    ) {
        let gauge = Gauge {
            name,
            help,
            labels,
            read,
        };
        let mut families = self.families.write().unwrap_or_else(|p| p.into_inner());
        if let Family::Gauges(gauges) = families
            .entry(name)
            .or_insert_with(|| Family::Gauges(Vec::new()))
        {
            gauges.push(gauge);
        }
    }

    /// The authorization-decision counter.
    pub fn authz_decisions(&self) -> Counter {
        self.counter(
            AUTHZ_DECISIONS,
            "Authorization decisions (check, explain and batch items), by decision and deny code.",
            &["decision", "deny_code"],
        )
    }

    /// Every family in the Prometheus text format, sorted by name.
    pub fn render(&self) -> String {
        let families = self.families.read().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for family in families.values() {
            match family {
                Family::Counter(c) => {
                    header(&mut out, c.0.name, c.0.help, "counter");
                    let map = c.0.values.lock().unwrap_or_else(|p| p.into_inner());
                    for (values, n) in map.iter() {
                        sample(&mut out, c.0.name, c.0.labels, values, None, *n as f64);
                    }
                }
                Family::Histogram(h) => {
                    header(&mut out, h.0.name, h.0.help, "histogram");
                    let map = h.0.values.lock().unwrap_or_else(|p| p.into_inner());
                    let bucket = format!("{}_bucket", h.0.name);
                    for (values, b) in map.iter() {
                        for (bound, n) in h.0.bounds.iter().zip(&b.counts) {
                            let le = number(*bound);
                            sample(&mut out, &bucket, h.0.labels, values, Some(&le), *n as f64);
                        }
                        let count = b.count as f64;
                        sample(&mut out, &bucket, h.0.labels, values, Some("+Inf"), count);
                        let sum = format!("{}_sum", h.0.name);
                        sample(&mut out, &sum, h.0.labels, values, None, b.sum);
                        let total = format!("{}_count", h.0.name);
                        sample(&mut out, &total, h.0.labels, values, None, count);
                    }
                }
                Family::Gauges(gauges) => {
                    if let Some(first) = gauges.first() {
                        header(&mut out, first.name, first.help, "gauge");
                    }
                    for g in gauges {
                        for (values, v) in (g.read)() {
                            sample(&mut out, g.name, g.labels, &values, None, v);
                        }
                    }
                }
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(
    out: &mut String,
    name: &str,
    labels: &[&str],
    values: &[String],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    let mut pairs: Vec<(&str, &str)> = labels
        .iter()
        .zip(values)
        .map(|(l, v)| (*l, v.as_str()))
        .collect();
    if let Some(le) = le {
        pairs.push(("le", le));
    }
    if !pairs.is_empty() {
        out.push('{');
        for (i, (label, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{label}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{value}")
    }
}

tokio::task_local! {
    static CURRENT: Arc<Metrics>;
}

/// Runs `fut` with `metrics` as the current request's registry. The kernel's pipeline calls this.
pub async fn with_metrics<F: std::future::Future>(metrics: Arc<Metrics>, fut: F) -> F::Output {
    CURRENT.scope(metrics, fut).await
}

/// The registry of the runtime serving the current request, if any.
pub fn current() -> Option<Arc<Metrics>> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Counts one authorization decision in the current request's registry (nothing outside a
/// request).
pub fn record_authz_decision(decision: Decision, deny_code: Option<DenyCode>) {
    if let Some(metrics) = current() {
        let decision = match decision {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        };
        metrics
            .authz_decisions()
            .inc(&[decision, deny_code.map_or("", DenyCode::as_str)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_render_in_the_text_format() {
        let metrics = Metrics::new();
        let requests = metrics.counter("t_requests_total", "Requests.", &["op", "status"]);
        requests.inc(&["getX", "200"]);
        requests.inc(&["getX", "200"]);
        requests.inc(&["get\"Y", "500"]);
        // The same name gives the same series.
        metrics
            .counter("t_requests_total", "Requests.", &["op", "status"])
            .inc(&["getX", "200"]);
        let latency = metrics.histogram("t_seconds", "Latency.", &[], &[0.1, 1.0]);
        latency.observe(&[], 0.05);
        latency.observe(&[], 0.5);
        latency.observe(&[], 5.0);
        metrics.gauge(
            "t_depth",
            "Depth.",
            &["queue"],
            Arc::new(|| vec![(vec!["audit".to_owned()], 3.0)]),
        );
        let text = metrics.render();
        let expected = "\
# HELP t_depth Depth.
# TYPE t_depth gauge
t_depth{queue=\"audit\"} 3
# HELP t_requests_total Requests.
# TYPE t_requests_total counter
t_requests_total{op=\"get\\\"Y\",status=\"500\"} 1
t_requests_total{op=\"getX\",status=\"200\"} 3
# HELP t_seconds Latency.
# TYPE t_seconds histogram
t_seconds_bucket{le=\"0.1\"} 1
t_seconds_bucket{le=\"1\"} 2
t_seconds_bucket{le=\"+Inf\"} 3
t_seconds_sum 5.55
t_seconds_count 3
";
        assert_eq!(text, expected);
        assert_eq!(requests.get(&["getX", "200"]), 3);
        assert_eq!(latency.count(&[]), 3);
    }

    #[tokio::test]
    async fn decisions_count_only_inside_a_request_scope() {
        record_authz_decision(Decision::Allow, None);
        let metrics = Arc::new(Metrics::new());
        with_metrics(metrics.clone(), async {
            record_authz_decision(Decision::Deny, Some(DenyCode::NoMatchingPermission));
            record_authz_decision(Decision::Allow, None);
        })
        .await;
        let counter = metrics.authz_decisions();
        assert_eq!(counter.get(&["deny", "NO_MATCHING_PERMISSION"]), 1);
        assert_eq!(counter.get(&["allow", ""]), 1);
        assert!(
            metrics
                .render()
                .contains("plystra_authz_decisions_total{decision=\"allow\",deny_code=\"\"} 1")
        );
    }
}
