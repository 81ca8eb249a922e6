//! The daemon's API on the wire: every type the CLI and the daemon exchange, in one place.
//!
//! HTTP+JSON over the Unix socket (or TCP for a remote daemon):
//! - `GET /v1/health`
//! - `POST /v1/environments` with an [`UpRequest`]: answers `application/x-ndjson`, one
//!   [`Event`] a line as parts start, ending with `up` or `failed`
//! - `GET /v1/environments`: `[EnvironmentInfo]`
//! - `GET /v1/environments/{ENV}`, `DELETE /v1/environments/{ENV}`: one environment
//!   (by id, or by name when one environment has it); DELETE tears it down first
//! - `GET /v1/environments/{ENV}/logs/{PART}[?follow=true]`: the part's output
//! - `GET /v1/environments/{ENV}/journal[?part=P][&unmatched=true][&since=PART:SEQ…]`:
//!   `[JournalEntry]`, what the stubs and proxies saw, oldest first; `since` (repeatable)
//!   skips what a follower already has
//!
//! Errors are `application/problem+json` with `title` and `detail`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::Plan;

pub const API_PREFIX: &str = "/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpRequest {
    pub plan: Plan,
    /// Overrides the manifest's TTL (`--ttl`).
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvironmentInfo {
    pub id: String,
    pub name: String,
    pub manifest: PathBuf,
    pub created_ms: u64,
    /// When the daemon tears it down; `None`: at `envd down`.
    pub expires_ms: Option<u64>,
    pub parts: Vec<PartInfo>,
    /// What a command run in the environment gets: each dependency's `url_env` and
    /// `ENVD_SERVICE_URL`.
    pub vars: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartInfo {
    pub name: String,
    /// `contract`, `replay`, `proxy`, `spy`, `service`, or `process` for the service
    /// under test.
    pub mode: String,
    pub url: Option<String>,
    pub state: PartState,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PartState {
    Starting,
    Ready,
    Failed,
    Exited,
    Stopped,
}

impl std::fmt::Display for PartState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PartState::Starting => "starting",
            PartState::Ready => "ready",
            PartState::Failed => "failed",
            PartState::Exited => "exited",
            PartState::Stopped => "stopped",
        })
    }
}

/// Progress of `POST /v1/environments`, one a line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// First: the id, so a client interrupted during the start can tear it down.
    Created {
        id: String,
    },
    Starting {
        part: String,
        mode: String,
    },
    Ready {
        part: String,
        url: Option<String>,
        elapsed_ms: u64,
    },
    Failed {
        part: String,
        error: String,
        /// The part's last log lines.
        logs: Vec<String>,
    },
    Up {
        environment: EnvironmentInfo,
    },
}

/// One entry of a part's journal (`envd journal`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    pub part: String,
    #[serde(flatten)]
    pub entry: crate::journal::Entry,
}
