//! The command line: arguments, logging, signals, and everything envd prints.
//!
//! Arguments are parsed and validated into each domain's options with no side effects;
//! only then does anything start. This is the only module that writes to stdout or
//! stderr (logs go through `tracing`, to stderr).

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, EXIT_OK};
use crate::stub::{self, server};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a check ran and found problems
  2  bad input: usage, or a contract that does not load
  3  envd could not run: a port in use, a file system error";

#[derive(Debug, Parser)]
#[command(
    name = "envd",
    version,
    about = "Ephemeral test environments: the service under test runs for real, its dependencies as fast Pact stubs",
    after_help = EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Pact contracts (V1.1 to V4) or recordings as an HTTP stub, in the foreground
    #[command(after_help = STUB_HELP)]
    Stub(StubArgs),
}

const STUB_HELP: &str = "\
Once it accepts connections, envd prints `envd: listening on http://HOST:PORT` on stdout.
A request no interaction matches gets 404 with `x-envd-unmatched: true` and a problem+json
body naming the closest interactions and each mismatch.

Admin API (under /__envd/):
  GET  health                 status and the number of interactions
  GET  interactions           what is served, with the file and JSON pointer of each
  GET  journal[?unmatched=true&limit=N]   recent requests and their outcome
  POST state  {\"states\":[{\"name\":\"…\",\"params\":{…}}]}   set the active provider states
  POST reset                  restart sequences, clear the journal, restore --state

Examples:
  envd stub --contract contracts/ --port 8080
  envd stub --contract orders-payments.json --state 'payment exists' --watch

Exit codes:
  0  stopped by SIGINT or SIGTERM after draining connections
  2  a contract does not load (the message names the file and JSON pointer)
  3  cannot listen on the address";

#[derive(Debug, Args)]
struct StubArgs {
    /// A Pact file, or a directory of them (every *.json below it); repeatable
    #[arg(long = "contract", value_name = "PATH", num_args = 1.., required_unless_present = "recordings")]
    contracts: Vec<PathBuf>,

    /// A recording to serve (a recording is a Pact V4 file); repeatable
    #[arg(long = "recording", value_name = "PATH", num_args = 1..)]
    recordings: Vec<PathBuf>,

    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Port to listen on; 0 picks a free one (printed in the listening line)
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// A provider state active from the start (repeatable); its interactions win ties
    #[arg(long = "state", value_name = "NAME")]
    states: Vec<String>,

    /// Reload the contracts when their files change; a broken edit keeps the previous set
    /// serving
    #[arg(long)]
    watch: bool,

    /// Largest request body accepted, in bytes; larger ones get 413
    #[arg(long, value_name = "BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,
}

impl StubArgs {
    fn options(self) -> stub::Options {
        let mut contracts = self.contracts;
        contracts.extend(self.recordings);
        stub::Options {
            contracts,
            address: SocketAddr::new(self.host, self.port),
            states: self
                .states
                .into_iter()
                .map(|name| stub::ActiveState {
                    name,
                    params: Default::default(),
                })
                .collect(),
            watch: self.watch,
            limits: server::Limits {
                max_body_bytes: self.max_body,
                ..server::Limits::default()
            },
        }
    }
}

/// Runs envd with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => {
            eprintln!("{}", error.render());
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    match cli.command {
        Command::Stub(args) => {
            runtime.block_on(stub::run(args.options(), announce, stop_signal()))?
        }
    }
    Ok(())
}

/// The line scripts and test harnesses wait for.
fn announce(address: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "envd: listening on http://{address}");
    let _ = stdout.flush();
}

/// Completes on the first SIGINT or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Logs to stderr, filtered by `ENVD_LOG` (for example `ENVD_LOG=debug`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENVD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
