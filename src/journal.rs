//! The journal: what a stub or proxy saw, newest last, in a bounded ring.
//!
//! It is data for users (`GET /__envd/journal`), not logs: a failing test asks it which
//! request missed and why.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Entries kept per stub: enough to hold a test run's traffic to one dependency, small
/// enough (a few hundred bytes each) that the journal never dominates memory.
pub const DEFAULT_CAPACITY: usize = 1_000;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Position since the stub started (or was reset); gaps show what the ring dropped.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub at_ms: u64,
    pub method: String,
    /// Path and query as received.
    pub target: String,
    pub status: u16,
    /// The description of the interaction that answered, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// For a miss: the closest interactions and why each did not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub closest: Vec<Closest>,
    pub duration_us: u64,
    /// The W3C trace id from `traceparent`, to follow a request across parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What a proxy did with it: forwarded (and recorded), replayed, or why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<std::borrow::Cow<'static, str>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Closest {
    pub description: String,
    pub mismatches: Vec<String>,
}

#[derive(Debug)]
pub struct Journal {
    ring: Mutex<Ring>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Entry>,
    next_seq: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Journal::new(DEFAULT_CAPACITY)
    }
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Journal {
            ring: Mutex::new(Ring::default()),
            capacity,
        }
    }

    /// Records an entry, dropping the oldest when full; `seq` is assigned here.
    pub fn record(&self, mut entry: Entry) {
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entry.seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.entries.len() == self.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry);
    }

    /// The most recent entries, oldest first; only misses when `unmatched`.
    pub fn recent(&self, unmatched: bool, limit: usize) -> Vec<Entry> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut picked: Vec<Entry> = ring
            .entries
            .iter()
            .rev()
            .filter(|entry| !unmatched || entry.matched.is_none())
            .take(limit)
            .cloned()
            .collect();
        picked.reverse();
        picked
    }

    pub fn clear(&self) {
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *ring = Ring::default();
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

/// The trace id of a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id(traceparent: &str) -> Option<String> {
    let mut fields = traceparent.trim().split('-');
    let (_version, trace) = (fields.next()?, fields.next()?);
    (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit())).then(|| trace.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(matched: bool) -> Entry {
        Entry {
            seq: 0,
            at_ms: 0,
            method: "GET".into(),
            target: "/".into(),
            status: if matched { 200 } else { 404 },
            matched: matched.then(|| "hit".to_owned()),
            closest: Vec::new(),
            duration_us: 0,
            trace_id: None,
            note: None,
        }
    }

    #[test]
    fn keeps_the_newest_within_capacity() {
        let journal = Journal::new(3);
        for i in 0..5 {
            journal.record(entry(i % 2 == 0));
        }
        let seqs: Vec<u64> = journal.recent(false, 10).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
        let misses: Vec<u64> = journal.recent(true, 10).iter().map(|e| e.seq).collect();
        assert_eq!(misses, [3]);
        journal.clear();
        assert!(journal.recent(false, 10).is_empty());
    }

    #[test]
    fn reads_trace_ids() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("garbage"), None);
    }
}
