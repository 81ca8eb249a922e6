//! The one place where errors become what a user reads, and exit codes.
//!
//! Each domain has its own error enum; [`Error`] gathers them, maps each to a documented
//! exit code (README, "Exit codes") and adds a hint where one helps.

use crate::contract::ContractError;
use crate::daemon::client::ClientError;
use crate::daemon::DaemonError;
use crate::faults::FaultError;
use crate::fixtures::FixtureError;
use crate::journal::JournalError;
use crate::manifest::ManifestError;
use crate::proxy::ProxyError;
use crate::recording::import::ImportError;
use crate::recording::recorder::RecordError;
use crate::stub::StubError;
use crate::verify::VerifyError;

/// Everything worked.
pub const EXIT_OK: u8 = 0;
/// A check ran and found problems (reserved for verification and drift checks).
pub const EXIT_FAILED: u8 = 1;
/// Bad input: a usage error, or a contract file that does not load.
pub const EXIT_BAD_INPUT: u8 = 2;
/// envd could not do its job for reasons outside the input: a port in use, a file system
/// error.
pub const EXIT_CANNOT_RUN: u8 = 3;
/// Stopped by SIGINT or SIGTERM before the work was done (the shells' convention for
/// SIGINT); what had started is torn down.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Stub(#[from] StubError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Faults(#[from] FaultError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An environment that did not start: which part, why, and its last log lines.
    #[error("{part} did not start: {reason}{}", logs.iter().map(|l| format!("\n  | {l}")).collect::<String>())]
    Start {
        part: String,
        reason: String,
        logs: Vec<String>,
    },
    #[error("interrupted; what had started is torn down")]
    Interrupted,
    #[error("cannot run {program}: {source}")]
    Command {
        program: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Stub(StubError::Contract(_)) => EXIT_BAD_INPUT,
            Error::Stub(StubError::Bind { .. }) | Error::Runtime(_) => EXIT_CANNOT_RUN,
            Error::Proxy(
                ProxyError::Bind { .. }
                | ProxyError::Record(RecordError::Io { .. } | RecordError::Stopped),
            ) => EXIT_CANNOT_RUN,
            Error::Proxy(_) | Error::Faults(_) => EXIT_BAD_INPUT,
            Error::Daemon(
                DaemonError::Bind { .. }
                | DaemonError::Socket { .. }
                | DaemonError::AlreadyRunning { .. },
            ) => EXIT_CANNOT_RUN,
            Error::Manifest(ManifestError::Invalid { .. }) => EXIT_BAD_INPUT,
            Error::Manifest(ManifestError::Read { .. }) => EXIT_BAD_INPUT,
            Error::Client(ClientError::Refused {
                status: 400..=499, ..
            }) => EXIT_BAD_INPUT,
            Error::Client(_) | Error::Start { .. } | Error::Command { .. } => EXIT_CANNOT_RUN,
            Error::Interrupted => EXIT_INTERRUPTED,
            Error::Daemon(_) => EXIT_BAD_INPUT,
            Error::Import(ImportError::Write { .. }) => EXIT_CANNOT_RUN,
            Error::Import(_) => EXIT_BAD_INPUT,
            Error::Fixture(FixtureError::Drift { .. }) => EXIT_FAILED,
            Error::Fixture(FixtureError::Write { .. }) => EXIT_CANNOT_RUN,
            Error::Fixture(_) => EXIT_BAD_INPUT,
            Error::Verify(VerifyError::Junit { .. }) => EXIT_CANNOT_RUN,
            Error::Verify(_) => EXIT_BAD_INPUT,
            Error::Journal(_) => EXIT_CANNOT_RUN,
        }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Stub(StubError::Bind { source, .. })
            | Error::Proxy(ProxyError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                Some("another process listens there; `--port 0` picks a free port")
            }
            Error::Stub(StubError::Contract(ContractError::UnknownVersion { .. })) => {
                Some("set metadata.pactSpecification.version to the version the file is written in")
            }
            Error::Stub(StubError::Contract(ContractError::Duplicate { .. })) => {
                Some("is the same file given twice, or a directory and a file inside it?")
            }
            Error::Import(ImportError::NoSuchHost { .. }) => {
                Some("leave out --host to import every host, or name one of the hosts listed")
            }
            Error::Import(ImportError::BodyFile { .. }) => Some(
                "bodyFileName is read from the __files directory beside the mappings directory",
            ),
            Error::Daemon(DaemonError::AlreadyRunning { .. }) => {
                Some("`envd ps` talks to it; stop it first to start another on the same ENVD_HOME")
            }
            Error::Client(ClientError::Start { .. }) => {
                Some("run `envd daemon` in a terminal to see why it does not start")
            }
            Error::Journal(JournalError::NothingAnswered { .. }) => Some(
                "send the requests through the environment first; `envd journal` shows what each part saw",
            ),
            Error::Verify(VerifyError::NothingSelected) => {
                Some("--consumer matches a pact's consumer name exactly; --description and --state are regular expressions")
            }
            _ => None,
        }
    }

    /// The text printed on stderr: the error, then the hint.
    pub fn render(&self) -> String {
        match self.hint() {
            Some(hint) => format!("envd: error: {self}\n  hint: {hint}"),
            None => format!("envd: error: {self}"),
        }
    }
}
