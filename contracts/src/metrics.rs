//! Metrics: one Prometheus registry per runtime (a `prometheus-client` [`Registry`]) with
//! labelled counters, fixed-bucket histograms and gauges read at scrape time, rendered in the
//! Prometheus text exposition format (0.0.4).
//!
//! The kernel makes one [`Metrics`] per runtime and offers it to capabilities as the
//! `kernel.metrics` service, so a capability records without depending on the kernel or on the
//! exporter: when it starts, it asks the registry for a handle by name ([`Metrics::counter`],
//! [`Metrics::histogram`]) and keeps it, or registers a gauge read at scrape time
//! ([`Metrics::gauge`]). Nothing is process-global: two runtimes in one process (as in tests)
//! have two registries.
//!
//! Recording through a handle does not allocate once a label set has been seen: a series is keyed
//! by its label values ([`LabelValue`]: static text or a number), looked up under the family's
//! shared read lock, then a counter is one atomic add and a histogram observation one short lock
//! of that series alone. The registry's own lock is taken only to register and to scrape.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
    LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter as Count;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram as Distribution;
use prometheus_client::registry::Registry;

/// The `Content-Type` of a scrape: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Bucket bounds for latencies in seconds: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds for sizes (records per batch and the like).
pub const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// One label's value: static text (an operation ID, an outcome) or a number (a status code), so
/// that naming a series allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelValue {
    /// Text known at compile time.
    Text(&'static str),
    /// A number, written in decimal.
    Number(u64),
}

impl From<&'static str> for LabelValue {
    fn from(text: &'static str) -> Self {
        Self::Text(text)
    }
}

impl From<u16> for LabelValue {
    fn from(number: u16) -> Self {
        Self::Number(u64::from(number))
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => EncodeLabelValue::encode(text, encoder),
            Self::Number(number) => EncodeLabelValue::encode(number, encoder),
        }
    }
}

/// A series' key: the family's label names and this series' values. Equality and hashing look at
/// the values only (the names are the family's).
#[derive(Debug, Clone, Copy)]
struct Series<const N: usize> {
    names: [&'static str; N],
    values: [LabelValue; N],
}

impl<const N: usize> PartialEq for Series<N> {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl<const N: usize> Eq for Series<N> {}

impl<const N: usize> Hash for Series<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

impl<const N: usize> EncodeLabelSet for Series<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        for (name, value) in self.names.iter().zip(&self.values) {
            EncodeLabel::encode(&(*name, *value), encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A monotonically increasing count per label set, with `N` labels. Cloning shares the series.
#[derive(Debug, Clone)]
pub struct Counter<const N: usize> {
    names: [&'static str; N],
    family: Family<Series<N>, Count>,
}

impl<const N: usize> Counter<N> {
    fn new(names: [&'static str; N]) -> Self {
        Self {
            names,
            family: Family::default(),
        }
    }

    /// Adds one to the series with these label values (in the family's label order).
    pub fn inc(&self, values: [LabelValue; N]) {
        self.inc_by(values, 1);
    }

    /// Adds `n`.
    pub fn inc_by(&self, values: [LabelValue; N], n: u64) {
        let series = Series {
            names: self.names,
            values,
        };
        self.family.get_or_create(&series).inc_by(n);
    }

    /// The current count of one series (0 when never recorded).
    pub fn get(&self, values: [LabelValue; N]) -> u64 {
        let series = Series {
            names: self.names,
            values,
        };
        self.family.get(&series).map_or(0, |count| count.get())
    }
}

/// Makes each new series of a histogram family with the family's bucket bounds.
#[derive(Debug, Clone, Copy)]
struct Bounds(&'static [f64]);

impl MetricConstructor<Distribution> for Bounds {
    fn new_metric(&self) -> Distribution {
        Distribution::new(self.0.iter().copied())
    }
}

/// A distribution per label set, with `N` labels and fixed bucket bounds. Cloning shares the
/// series.
#[derive(Debug, Clone)]
pub struct Histogram<const N: usize> {
    names: [&'static str; N],
    family: Family<Series<N>, Distribution, Bounds>,
}

impl<const N: usize> Histogram<N> {
    fn new(names: [&'static str; N], bounds: &'static [f64]) -> Self {
        Self {
            names,
            family: Family::new_with_constructor(Bounds(bounds)),
        }
    }

    /// Records one observation in the series with these label values.
    pub fn observe(&self, values: [LabelValue; N], value: f64) {
        let series = Series {
            names: self.names,
            values,
        };
        self.family.get_or_create(&series).observe(value);
    }
}

/// Reads a gauge's series at scrape time: label values (in the family's order) and the value.
pub type GaugeFn = dyn Fn() -> Vec<(Vec<String>, i64)> + Send + Sync;

/// A gauge family: its readers, each called at every scrape.
struct Gauges {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    readers: Mutex<Vec<Arc<GaugeFn>>>,
}

impl fmt::Debug for Gauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauges").field("name", &self.name).finish()
    }
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let readers = self
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut family =
            encoder.encode_descriptor(self.name, self.help, None, MetricType::Gauge)?;
        for read in readers {
            for (values, value) in read() {
                let labels: Vec<(&str, &str)> = self
                    .labels
                    .iter()
                    .copied()
                    .zip(values.iter().map(String::as_str))
                    .collect();
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The registry and the handle of each family registered in it, by name.
#[derive(Default)]
struct Registered {
    registry: Registry,
    families: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

/// One runtime's metrics. Families are keyed by name; asking twice for the same name (and kind
/// and number of labels) gives the same series.
#[derive(Default)]
pub struct Metrics {
    registered: Mutex<Registered>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&str> = registered.families.keys().copied().collect();
        names.sort_unstable();
        f.debug_struct("Metrics").field("families", &names).finish()
    }
}

/// `help` as the registry takes it: it adds the closing full stop itself.
fn sentence(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter named `name` (registered on first use), labelled `labels`. Counter names end
    /// in `_total`, as exported. A name already taken by another kind, or by a counter with
    /// another number of labels, gives a handle that records into nothing exported.
    pub fn counter<const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> Counter<N> {
        let mut registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = registered.families.get(name) {
            return existing
                .downcast_ref::<Counter<N>>()
                .cloned()
                .unwrap_or_else(|| Counter::new(labels));
        }
        let counter = Counter::new(labels);
        // The encoder appends `_total` to a counter's name.
        let base = name.strip_suffix("_total").unwrap_or(name);
        registered
            .registry
            .register(base, sentence(help), counter.family.clone());
        registered.families.insert(name, Box::new(counter.clone()));
        counter
    }

    /// The histogram named `name` with `bounds` (registered on first use), labelled `labels`.
    pub fn histogram<const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
        bounds: &'static [f64],
    ) -> Histogram<N> {
        let mut registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = registered.families.get(name) {
            return existing
                .downcast_ref::<Histogram<N>>()
                .cloned()
                .unwrap_or_else(|| Histogram::new(labels, bounds));
        }
        let histogram = Histogram::new(labels, bounds);
        registered
            .registry
            .register(name, sentence(help), histogram.family.clone());
        registered
            .families
            .insert(name, Box::new(histogram.clone()));
        histogram
    }

    /// Registers a gauge read by `read` at every scrape. Registering the same name again adds
    /// the new reader's series to the family (for example, one per writer); a name taken by
    /// another kind is ignored.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        read: Arc<GaugeFn>,
    ) {
        let mut registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = registered.families.get(name) {
            if let Some(gauges) = existing.downcast_ref::<Arc<Gauges>>() {
                gauges
                    .readers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(read);
            }
            return;
        }
        let gauges = Arc::new(Gauges {
            name,
            help,
            labels,
            readers: Mutex::new(vec![read]),
        });
        registered
            .registry
            .register_collector(Box::new(gauges.clone()));
        registered.families.insert(name, Box::new(gauges));
    }

    /// Every family in the Prometheus text format (0.0.4; see [`CONTENT_TYPE`]), in the order
    /// registered. A counter or histogram family with no series yet is left out.
    pub fn render(&self) -> String {
        let registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        // Writing to a String cannot fail, and no family's encoding fails otherwise.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registered.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_render_in_the_text_format() {
        let metrics = Metrics::new();
        let requests = metrics.counter("t_requests_total", "Requests.", ["op", "status"]);
        requests.inc(["getX".into(), 200.into()]);
        requests.inc(["getX".into(), 200.into()]);
        // The same name gives the same series.
        metrics
            .counter("t_requests_total", "Requests.", ["op", "status"])
            .inc(["getX".into(), 200.into()]);
        let latency = metrics.histogram("t_seconds", "Latency.", [], &[0.1, 1.0]);
        latency.observe([], 0.05);
        latency.observe([], 0.5);
        latency.observe([], 5.0);
        metrics.gauge(
            "t_depth",
            "Depth.",
            &["queue"],
            Arc::new(|| vec![(vec!["a\"b".to_owned()], 3)]),
        );
        let text = metrics.render();
        let expected = "\
# HELP t_requests_total Requests.
# TYPE t_requests_total counter
t_requests_total{op=\"getX\",status=\"200\"} 3
# HELP t_seconds Latency.
# TYPE t_seconds histogram
t_seconds_bucket{le=\"0.1\"} 1
t_seconds_bucket{le=\"1\"} 2
t_seconds_bucket{le=\"+Inf\"} 3
t_seconds_sum 5.55
t_seconds_count 3
# HELP t_depth Depth.
# TYPE t_depth gauge
t_depth{queue=\"a\\\"b\"} 3
";
        assert_eq!(text, expected);
        assert_eq!(requests.get(["getX".into(), 200.into()]), 3);
        assert_eq!(requests.get(["getY".into(), 200.into()]), 0);
    }

    #[test]
    fn a_name_taken_by_another_kind_records_into_nothing_exported() {
        let metrics = Metrics::new();
        metrics
            .counter("t_total", "A counter.", ["a"])
            .inc(["x".into()]);
        let other = metrics.histogram("t_total", "A histogram.", ["a"], &[1.0]);
        other.observe(["x".into()], 0.5);
        let fewer = metrics.counter("t_total", "Fewer labels.", []);
        fewer.inc([]);
        assert_eq!(fewer.get([]), 1);
        assert_eq!(
            metrics.render(),
            "# HELP t_total A counter.\n# TYPE t_total counter\nt_total{a=\"x\"} 1\n"
        );
    }

    #[test]
    fn gauges_of_one_name_share_one_family() {
        let metrics = Metrics::new();
        let writer = |name: &'static str, depth| -> Arc<GaugeFn> {
            Arc::new(move || vec![(vec![name.to_owned()], depth)])
        };
        metrics.gauge("t_depth", "Depth.", &["writer"], writer("a", 1));
        metrics.gauge("t_depth", "Depth.", &["writer"], writer("b", 0));
        assert_eq!(
            metrics.render(),
            "# HELP t_depth Depth.\n# TYPE t_depth gauge\nt_depth{writer=\"a\"} 1\nt_depth{writer=\"b\"} 0\n"
        );
    }
}
