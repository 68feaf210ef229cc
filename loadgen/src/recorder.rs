//! Every delivery is checked: per client and conversation the seqs must
//! follow each other with no gap and no repeat, and by the end each client
//! must hold everything acknowledged. Latency is measured from the send's
//! *scheduled* time (carried in the text), so a slow server cannot hide
//! behind a slow sender (no coordinated omission).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use switchboard_proto::pb;

const SHARDS: usize = 64;

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The text of a load message scheduled at `scheduled_ns`, about `size` bytes.
pub fn payload(scheduled_ns: u64, size: usize) -> String {
    let head = format!("lg {scheduled_ns} ");
    let pad = size.saturating_sub(head.len());
    format!("{head}{}", "x".repeat(pad))
}

fn scheduled_of(text: &str) -> Option<u64> {
    text.strip_prefix("lg ")?.split(' ').next()?.parse().ok()
}

struct Shard {
    cursors: HashMap<(usize, String), u64>,
    latency: Histogram<u64>,
}

pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
    delivered: AtomicU64,
    replayed: AtomicU64,
    gaps: AtomicU64,
    gap_notices: AtomicU64,
    duplicates: AtomicU64,
    stream_errors: AtomicU64,
    first_problems: Mutex<Vec<String>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        cursors: HashMap::new(),
                        // 1 µs .. 60 s, 3 significant digits.
                        latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(
                            |_| {
                                Histogram::new(3)
                                    .unwrap_or_else(|_| unreachable!("3 digits is valid"))
                            },
                        ),
                    })
                })
                .collect(),
            delivered: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            gap_notices: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            stream_errors: AtomicU64::new(0),
            first_problems: Mutex::new(Vec::new()),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Totals {
    pub delivered: u64,
    pub replayed: u64,
    /// Messages skipped without a word: a broken delivery contract.
    pub gaps: u64,
    /// Holes the server announced with a `Gap` event (allowed by the
    /// contract, e.g. when history could not be fetched under overload).
    pub gap_notices: u64,
    pub duplicates: u64,
    pub stream_errors: u64,
    pub problems: Vec<String>,
    pub latency_ms: Percentiles,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// The percentiles, in ms, of a histogram of µs.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: histogram.max() as f64 / 1000.0,
        }
    }
}

impl Recorder {
    fn shard(&self, client: usize) -> &Mutex<Shard> {
        &self.shards[client % SHARDS]
    }

    fn problem(&self, what: String) {
        let mut first = self.first_problems.lock();
        if first.len() < 20 {
            first.push(what);
        }
    }

    /// The client is caught up to `seq` in the conversation.
    pub fn start_at(&self, client: usize, conversation: &str, seq: u64) {
        let mut shard = self.shard(client).lock();
        let cursor = shard
            .cursors
            .entry((client, conversation.to_owned()))
            .or_insert(0);
        *cursor = (*cursor).max(seq);
    }

    pub fn cursor(&self, client: usize, conversation: &str) -> u64 {
        self.shard(client)
            .lock()
            .cursors
            .get(&(client, conversation.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn check(&self, client: usize, message: &pb::Message, latency: bool) {
        let mut shard = self.shard(client).lock();
        let cursor = shard
            .cursors
            .entry((client, message.conversation_id.clone()))
            .or_insert(0);
        let expected = *cursor + 1;
        if message.seq < expected {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            drop(shard);
            self.problem(format!(
                "client {client}: {} #{} again (had #{})",
                message.conversation_id,
                message.seq,
                expected - 1
            ));
            return;
        }
        if message.seq > expected {
            self.gaps.fetch_add(1, Ordering::Relaxed);
            let had = *cursor;
            *cursor = message.seq;
            drop(shard);
            self.problem(format!(
                "client {client}: {} jumped from #{had} to #{}",
                message.conversation_id, message.seq
            ));
            return;
        }
        *cursor = message.seq;
        if latency && let Some(scheduled) = scheduled_of(&message.text) {
            let micros = unix_nanos().saturating_sub(scheduled) / 1_000;
            let _ = shard.latency.record(micros.max(1));
        }
    }

    /// A live delivery to `user`; its latency counts unless it is the
    /// sender's own copy.
    pub fn delivered(&self, client: usize, user: &str, message: &pb::Message) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.check(client, message, message.sender != user);
    }

    pub fn replayed(&self, client: usize, message: &pb::Message) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
        self.check(client, message, false);
    }

    /// The server announced that `gap.from_seq..=gap.to_seq` will not come
    /// on the stream (a real client would page them with History).
    pub fn gap_notice(&self, client: usize, gap: &pb::Gap) {
        self.gap_notices.fetch_add(1, Ordering::Relaxed);
        self.start_at(client, &gap.conversation_id, gap.to_seq);
        self.problem(format!(
            "client {client}: told {} #{}..=#{} will not come ({})",
            gap.conversation_id,
            gap.from_seq,
            gap.to_seq,
            gap.reason().as_str_name()
        ));
    }

    pub fn stream_error(&self, status: &tonic::Status) {
        self.stream_errors.fetch_add(1, Ordering::Relaxed);
        self.problem(format!("stream ended: {status}"));
    }

    pub fn delivered_count(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Forgets latencies so far (after a warm-up).
    pub fn reset_latency(&self) {
        for shard in &self.shards {
            shard.lock().latency.reset();
        }
    }

    pub fn totals(&self) -> Totals {
        let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| unreachable!("valid bounds"));
        for shard in &self.shards {
            let _ = merged.add(&shard.lock().latency);
        }
        Totals {
            delivered: self.delivered.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
            gap_notices: self.gap_notices.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            stream_errors: self.stream_errors.load(Ordering::Relaxed),
            problems: self.first_problems.lock().clone(),
            latency_ms: Percentiles::of(&merged),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(conv: &str, seq: u64) -> pb::Message {
        pb::Message {
            conversation_id: conv.into(),
            seq,
            text: payload(unix_nanos(), 50),
            ..Default::default()
        }
    }

    #[test]
    fn gaps_and_repeats_are_counted() {
        let recorder = Recorder::default();
        recorder.start_at(1, "dm:a:b", 3);
        recorder.delivered(1, "b", &message("dm:a:b", 4));
        recorder.delivered(1, "b", &message("dm:a:b", 4));
        recorder.delivered(1, "b", &message("dm:a:b", 6));
        let totals = recorder.totals();
        assert_eq!(
            (totals.delivered, totals.duplicates, totals.gaps),
            (3, 1, 1)
        );
        assert_eq!(recorder.cursor(1, "dm:a:b"), 6);
        assert_eq!(totals.latency_ms.count, 1);
    }

    #[test]
    fn an_announced_hole_is_not_a_silent_gap() {
        let recorder = Recorder::default();
        recorder.delivered(1, "b", &message("dm:a:b", 1));
        recorder.gap_notice(
            1,
            &pb::Gap {
                conversation_id: "dm:a:b".into(),
                from_seq: 2,
                to_seq: 3,
                ..Default::default()
            },
        );
        recorder.delivered(1, "b", &message("dm:a:b", 4));
        let totals = recorder.totals();
        assert_eq!((totals.gaps, totals.gap_notices), (0, 1));
        assert_eq!(totals.problems.len(), 1, "{:?}", totals.problems);
    }

    #[test]
    fn payloads_carry_their_schedule() {
        let text = payload(42, 200);
        assert_eq!(text.len(), 200);
        assert_eq!(scheduled_of(&text), Some(42));
    }
}
