//! envd: ephemeral test environments and service virtualization.
//!
//! ARCHITECTURE.md at the repository root is the map: which module owns what, and how a
//! request flows through a stub.

pub mod cli;
pub mod contract;
pub mod daemon;
pub mod error;
pub mod faults;
pub mod fixtures;
pub mod journal;
pub mod manifest;
pub mod matching;
pub mod proxy;
pub mod recording;
pub mod runtime;
pub mod server;
pub mod stub;
pub mod tls;
pub mod vars;
pub mod verify;
