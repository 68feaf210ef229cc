//! What a scenario found, as JSON or text.

use serde::Serialize;

use crate::recorder::{Percentiles, Totals};
use crate::schedule::SendStats;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub scenario: String,
    pub parameters: serde_json::Value,
    pub seconds: f64,
    pub sends: Option<SendStats>,
    /// Messages acknowledged per second.
    pub messages_per_second: f64,
    /// Deliveries checked per second.
    pub deliveries_per_second: f64,
    pub delivered: u64,
    /// Deliveries expected by the end but never seen.
    pub missing: u64,
    /// Holes skipped silently (never expected).
    pub gaps: u64,
    /// Holes the server announced with a `Gap` event.
    pub gap_notices: u64,
    pub duplicates: u64,
    pub stream_errors: u64,
    pub latency_ms: Percentiles,
    /// Scenario-specific figures (memory per stream, resume time, ceilings).
    pub extra: serde_json::Value,
    pub problems: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, parameters: serde_json::Value) -> Self {
        Self {
            scenario: scenario.to_owned(),
            parameters,
            extra: serde_json::Value::Null,
            ..Self::default()
        }
    }

    pub fn with_totals(mut self, totals: Totals) -> Self {
        self.delivered = totals.delivered;
        self.gaps = totals.gaps;
        self.gap_notices = totals.gap_notices;
        self.duplicates = totals.duplicates;
        self.stream_errors = totals.stream_errors;
        self.latency_ms = totals.latency_ms;
        self.problems.extend(totals.problems);
        self
    }

    /// No loss, gap, duplicate or failed send.
    pub fn clean(&self) -> bool {
        let send_errors = self.sends.as_ref().map_or(0, |s| s.errors + s.dropped);
        self.missing == 0
            && self.gaps == 0
            && self.gap_notices == 0
            && self.duplicates == 0
            && send_errors == 0
            && self.problems.is_empty()
    }
}

#[allow(clippy::print_stdout)]
pub fn print(report: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    println!("== {} {}", report.scenario, report.parameters);
    if let Some(sends) = &report.sends {
        println!(
            "   sends: {} scheduled, {} acked, {} errors, {} dropped",
            sends.scheduled, sends.acked, sends.errors, sends.dropped
        );
        if let Some(err) = &sends.first_error {
            println!("   first send error: {err}");
        }
    }
    println!(
        "   {:.0} msgs/s, {:.0} deliveries/s over {:.1}s; delivered {}, missing {}, gaps {} (+{} announced), duplicates {}",
        report.messages_per_second,
        report.deliveries_per_second,
        report.seconds,
        report.delivered,
        report.missing,
        report.gaps,
        report.gap_notices,
        report.duplicates
    );
    let l = &report.latency_ms;
    if l.count > 0 {
        println!(
            "   latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (n={})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.count
        );
    }
    if !report.extra.is_null() {
        println!("   {}", report.extra);
    }
    for problem in &report.problems {
        println!("   PROBLEM: {problem}");
    }
}

#[allow(clippy::print_stderr)]
pub fn fail(message: &str) {
    eprintln!("loadgen: {message}");
}
