//! The journal: what a stub or proxy saw, newest last, in a bounded ring.
//!
//! It is data for users (`GET /__envd/journal`, `envd journal`), not logs: a failing test
//! asks it which request missed and why, and `envd journal --pact` turns the exchanges a
//! dependency answered into a contract.
//!
//! An answered request keeps its [`Exchange`]: shared bytes (a reference count, no copy)
//! taken on the hot path, turned into text only when someone reads the journal. Secret
//! request headers are kept by name only, so no credential is ever held here.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Entries kept per stub: enough to hold a test run's traffic to one dependency, small
/// enough that the journal never dominates memory (bodies are shared with the answers,
/// and cut at [`BODY_CAP`]).
pub const DEFAULT_CAPACITY: usize = 1_000;

/// Bytes of a body kept in the journal: whole for the JSON documents services exchange, a
/// bounded beginning (marked `truncated`) for uploads and downloads.
pub const BODY_CAP: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Position since the stub started (or was reset); gaps show what the ring dropped.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub at_ms: u64,
    pub method: Cow<'static, str>,
    /// Path and query as received.
    pub target: String,
    pub status: u16,
    /// A stub found no interaction for it (and answered 404 with the closest ones).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub miss: bool,
    /// The description of the interaction that answered, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// For a miss: the closest interactions and why each did not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closest: Vec<Closest>,
    pub duration_us: u64,
    /// The W3C trace id from `traceparent`, to follow a request across parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What a proxy did with it: forwarded (and recorded), replayed, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Cow<'static, str>>,
    /// What was exchanged, when the dependency itself answered: a stub's match, a proxy's
    /// recorded exchange. Misses, injected faults and streamed pass-through keep none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Box<Exchange>>,
}

/// The headers and bodies of an answered request (method, target and status are the
/// entry's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    pub request: Message,
    pub response: Message,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Message {
    /// Requests: the headers a recording keeps, secret ones valued `<redacted>`;
    /// responses: as answered (a recording proxy's: as recorded, see
    /// [`Exchange::redacted`]). Shared with the answer, never copied.
    #[serde(default, with = "shared_headers")]
    pub headers: Arc<[(String, String)]>,
    /// UTF-8 text as a string, anything else as `{"base64": …}`; at most [`BODY_CAP`].
    #[serde(
        default,
        skip_serializing_if = "Bytes::is_empty",
        with = "text_or_base64"
    )]
    pub body: Bytes,
    /// The body was longer than [`BODY_CAP`]; `body` is its beginning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Message {
    /// A message sharing a body envd owns (a stub's answer), kept up to [`BODY_CAP`]: the
    /// same bytes when they fit, else a copy of their beginning.
    pub fn new(headers: Arc<[(String, String)]>, body: Bytes) -> Message {
        if body.len() > BODY_CAP {
            return Message::copied(headers, &body);
        }
        Message {
            headers,
            body,
            truncated: false,
        }
    }

    /// A message holding its own copy of (the beginning of) a body read off a connection:
    /// hyper hands out small bodies as slices of the connection's read buffer, and a
    /// thousand journal entries holding slices would keep a thousand buffers alive.
    pub fn copied(headers: Arc<[(String, String)]>, body: &[u8]) -> Message {
        let truncated = body.len() > BODY_CAP;
        Message {
            headers,
            body: Bytes::copy_from_slice(&body[..body.len().min(BODY_CAP)]),
            truncated,
        }
    }
}

impl Exchange {
    /// What a recording proxy's journal shows of an exchange: what the recording holds,
    /// and no more. Headers as recorded (secret ones by name only, valued `<redacted>`),
    /// bodies as [`Redaction::body`](crate::recording::Redaction::body) leaves them. A
    /// journal never holds a secret that the recording redacts.
    pub fn redacted(
        wire: &crate::recording::Wire<'_>,
        redaction: &crate::recording::Redaction,
    ) -> Exchange {
        use hyper::header::{HeaderName, HeaderValue};
        let pair = |(name, value): (&HeaderName, &HeaderValue)| {
            let value = if redaction.is_secret_header(name.as_str()) {
                crate::recording::redact::PLACEHOLDER
            } else {
                value.to_str().ok()?
            };
            Some((name.as_str().to_owned(), value.to_owned()))
        };
        let request: Vec<_> = wire
            .request_headers
            .iter()
            .map(|(name, value)| (name, value))
            .filter_map(pair)
            .collect();
        let response: Vec<_> = wire
            .response_headers
            .iter()
            .filter(|(name, _)| crate::recording::records_response_header(name.as_str()))
            .filter_map(pair)
            .collect();
        Exchange {
            request: Message::copied(request.into(), wire.request_body),
            response: Message::copied(response.into(), wire.response_body),
        }
    }
}

/// The request headers a contract needs, from hyper's lowercase names: the ones that decide
/// an answer, and secret ones by name only.
pub fn contract_request_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Arc<[(String, String)]> {
    let mut kept = Vec::new();
    for (name, value) in headers {
        if crate::recording::redact::SECRET_HEADERS.contains(&name) {
            kept.push((
                name.to_owned(),
                crate::recording::redact::PLACEHOLDER.to_owned(),
            ));
        } else if crate::recording::MATCHED_REQUEST_HEADERS.contains(&name) {
            kept.push((name.to_owned(), value.to_owned()));
        }
    }
    if kept.is_empty() {
        // Shared: an empty `Arc<[_]>` of its own would still allocate its counts.
        static NONE: std::sync::OnceLock<Arc<[(String, String)]>> = std::sync::OnceLock::new();
        return NONE.get_or_init(|| Arc::from([])).clone();
    }
    kept.into()
}

/// Shared header lists on the wire: a plain list of `[name, value]` pairs.
mod shared_headers {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        headers: &Arc<[(String, String)]>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(headers.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<[(String, String)]>, D::Error> {
        Vec::<(String, String)>::deserialize(deserializer).map(Into::into)
    }
}

/// Bodies on the wire: readable when they are text, base64 when they are not.
mod text_or_base64 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Text(String),
        Binary { base64: String },
    }

    pub fn serialize<S: serde::Serializer>(body: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => Wire::Binary {
                base64: base64::engine::general_purpose::STANDARD.encode(body),
            }
            .serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        match Wire::deserialize(deserializer)? {
            Wire::Text(text) => Ok(Bytes::from(text)),
            Wire::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(Bytes::from)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
            .filter(|entry| !unmatched || entry.miss)
            .take(limit)
            .cloned()
            .collect();
        picked.reverse();
        picked
    }

    /// Every entry after `since` (a `seq`; all of them when `None`), oldest first; only
    /// misses when `unmatched`.
    pub fn since(&self, since: Option<u64>, unmatched: bool) -> Vec<Entry> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ring.entries
            .iter()
            .filter(|entry| since.is_none_or(|since| entry.seq > since))
            .filter(|entry| !unmatched || entry.miss)
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *ring = Ring::default();
    }
}

impl Entry {
    /// The exchange as a recording holds it, when the dependency answered and nothing of
    /// it was cut.
    pub fn recorded(&self) -> Option<crate::recording::Exchange> {
        let exchange = self.exchange.as_deref()?;
        if exchange.request.truncated || exchange.response.truncated {
            return None;
        }
        let (path, query) = match self.target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (self.target.as_str(), None),
        };
        Some(crate::recording::Exchange {
            request: crate::recording::RecordedRequest {
                method: self.method.to_string(),
                path: crate::matching::percent_decoded(path),
                query,
                headers: exchange.request.headers.to_vec(),
                body: exchange.request.body.clone(),
            },
            response: crate::recording::RecordedResponse {
                status: self.status,
                headers: exchange.response.headers.to_vec(),
                body: exchange.response.body.clone(),
            },
            latency: None,
        })
    }
}

/// Why `envd journal --pact` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{dependency} has answered no request to make a contract of yet{why}")]
    NothingAnswered { dependency: String, why: String },
    #[error("{path}: cannot write the contract: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A consumer contract made from what a dependency answered.
pub struct Contract {
    pub recording: crate::recording::Recording,
    /// Answered exchanges left out because a body was cut at [`BODY_CAP`].
    pub truncated: usize,
}

/// The consumer contract the answered exchanges among `entries` make (misses and injected
/// faults keep no exchange): literal values, or with `infer` matchers where the
/// observations varied (exchanges with a body that is not JSON stay literal). Identical
/// interactions are written once, in the order first seen.
pub fn contract(entries: &[Entry], consumer: &str, provider: &str, infer: bool) -> Contract {
    use crate::verify::infer::{self, Observed};
    let answered = entries.iter().filter(|entry| entry.exchange.is_some());
    let exchanges: Vec<crate::recording::Exchange> =
        answered.clone().filter_map(Entry::recorded).collect();
    let truncated = answered.count() - exchanges.len();
    let redaction = crate::recording::Redaction::default();
    let mut recording = crate::recording::Recording::new(consumer, provider);
    let mut literal: Vec<&crate::recording::Exchange> = exchanges.iter().collect();
    if infer {
        let (observed, rest): (Vec<_>, Vec<_>) = exchanges
            .iter()
            .map(|exchange| (exchange, Observed::from_exchange(exchange)))
            .partition(|(_, observed)| observed.is_some());
        let observed: Vec<Observed> = observed.into_iter().filter_map(|(_, o)| o).collect();
        for mut interaction in infer::infer(&observed) {
            redaction.apply(&mut interaction);
            recording.push(interaction);
        }
        literal = rest.into_iter().map(|(exchange, _)| exchange).collect();
    }
    for exchange in literal {
        recording.push(exchange.interaction(&redaction));
    }
    Contract {
        recording,
        truncated,
    }
}

/// A request method as an entry keeps it: the standard ones without an allocation.
pub fn method(method: &str) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|standard| **standard == method) {
        Some(standard) => Cow::Borrowed(standard),
        None => Cow::Owned(method.to_owned()),
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
            miss: !matched,
            matched: matched.then(|| "hit".to_owned()),
            closest: Vec::new(),
            duration_us: 0,
            trace_id: None,
            note: None,
            exchange: None,
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
        let after: Vec<u64> = journal
            .since(Some(2), false)
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(after, [3, 4]);
        journal.clear();
        assert!(journal.recent(false, 10).is_empty());
    }

    #[test]
    fn contracts_keep_deciding_headers_and_secret_names_only() {
        let kept = contract_request_headers(
            [
                ("authorization", "Bearer s3cr3t"),
                ("content-type", "application/json"),
                ("user-agent", "curl/8"),
            ]
            .into_iter(),
        );
        assert_eq!(
            &*kept,
            [
                ("authorization".to_owned(), "<redacted>".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned())
            ]
        );
    }

    #[test]
    fn bodies_are_capped_and_travel_as_text_or_base64() {
        let big = Message::new(Arc::from([]), Bytes::from(vec![b'a'; BODY_CAP + 1]));
        assert!(big.truncated);
        assert_eq!(big.body.len(), BODY_CAP);
        for body in [&b"{\"a\":1}"[..], &[0xff, 0x00][..]] {
            let message = Message::new(Arc::from([]), Bytes::copy_from_slice(body));
            let wire = serde_json::to_string(&message).unwrap();
            let back: Message = serde_json::from_str(&wire).unwrap();
            assert_eq!(back.body, body, "{wire}");
        }
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
