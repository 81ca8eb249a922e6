//! `envd up`, `down`, `ps`, `logs`, `journal` and `run`: the daemon's client, and what they
//! print.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::daemon::api::{EnvironmentInfo, Event, JournalEntry, UpRequest};
use crate::daemon::client::Client;
use crate::error::{Error, EXIT_INTERRUPTED, EXIT_OK};
use crate::manifest;

pub const UP_HELP: &str = "\
Reads the manifest (envd.toml), asks the daemon to start its dependencies (each stub or
proxy on its own allocated port) and then the service under test, with PORT and each
dependency's url_env set, and waits for its health check. The daemon is started in the
background when none answers ($ENVD_HOME, else $XDG_RUNTIME_DIR/envd, else ~/.envd).

Without --detach, envd up then follows the service's output until Ctrl-C, and tears the
environment down. With --detach it returns once everything is ready; `envd down` ends it.
A part that fails to start is named with its last log lines, and nothing is left running.

Examples:
  envd up -f examples/checkout/envd.toml
  envd up --detach --ttl 30m && envd ps

Exit codes:
  0  up (and, when attached, torn down on Ctrl-C)
  2  the manifest does not load (named with file:line:column and key)
  3  a part did not start, or the daemon cannot be reached";

pub const RUN_HELP: &str = "\
CMD runs with the caller's environment plus each dependency's url_env and
ENVD_SERVICE_URL. The environment is torn down when CMD ends, or on Ctrl-C / SIGTERM
(forwarded to CMD first). Two `envd run` of one manifest at once do not clash: each gets
its own environment and ports.

Examples:
  envd run -f examples/checkout/envd.toml -- python3 examples/checkout/place_order.py
  envd run -- cargo test

Exit codes:
  CMD's exit status (128+N when a signal N ended it)
  2  the manifest does not load
  3  a part did not start, or CMD cannot be started";

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    manifest: ManifestArgs,

    /// Return once everything is ready, leaving the environment running
    #[arg(long, short = 'd')]
    detach: bool,

    /// Print the environment as JSON on stdout (progress goes to stderr)
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ManifestArgs {
    /// The manifest
    #[arg(
        long = "file",
        short = 'f',
        value_name = "FILE",
        default_value = "envd.toml"
    )]
    file: PathBuf,

    /// Tear the environment down after this long (overrides the manifest's ttl)
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    ttl: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Environment id or name [default: the only environment]
    env: Option<String>,

    /// Print what was torn down as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Print the environments as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Environment id or name [default: the only environment]
    env: Option<String>,

    /// The part [default: the service under test]
    part: Option<String>,

    /// Keep printing what is appended until the environment ends
    #[arg(long, short = 'f')]
    follow: bool,

    /// One JSON object a line: {"environment", "part", "line"}
    #[arg(long)]
    json: bool,
}

pub const JOURNAL_HELP: &str = "\
Each stub and proxy of an environment keeps a journal of the requests it saw (the last
1000 each): what answered, or for a miss the closest interactions and why they did not
match, with timing and the W3C trace id. An answered request keeps its headers and bodies
(bodies up to 64 KiB); secret headers (Authorization, Cookie, X-Api-Key, …) are kept by
name only, never their values.

--dep NAME --pact FILE writes the exchanges the dependency NAME answered as a consumer
Pact V4 file (misses and injected faults are left out; identical exchanges are written
once, in the order first seen). The consumer is the service under test, the provider the
dependency, unless --consumer/--provider say otherwise. With --infer, exchanges are
grouped by method, path shape and status: a value that varied gets a type matcher, an id
in the path a regex matcher, a timestamp a datetime matcher.

Examples:
  envd journal
  envd journal checkout-3fa2c1 payments --unmatched
  envd journal --follow --json
  envd journal --dep payments --pact pacts/checkout-payments.json --infer

Exit codes:
  0  printed, or the contract written
  2  no such environment or part
  3  the daemon cannot be reached, the dependency answered nothing yet, or FILE cannot be
     written";

#[derive(Debug, Args)]
pub struct JournalArgs {
    /// Environment id or name [default: the only environment]
    env: Option<String>,

    /// A stub or proxy of it [default: all of them]
    #[arg(conflicts_with = "dep")]
    part: Option<String>,

    /// Only requests that no interaction matched
    #[arg(long, conflicts_with = "pact")]
    unmatched: bool,

    /// Keep printing new entries until the environment ends
    #[arg(long, short = 'f', conflicts_with = "pact")]
    follow: bool,

    /// One JSON object a line, with the exchanged headers and bodies
    #[arg(long)]
    json: bool,

    /// The dependency whose exchanges --pact writes
    #[arg(long, value_name = "NAME", requires = "pact")]
    dep: Option<String>,

    /// Write what --dep answered as a consumer Pact V4 file (replaced whole)
    #[arg(long, value_name = "FILE", requires = "dep")]
    pact: Option<PathBuf>,

    /// With --pact: matchers where the observed values varied, instead of literal values
    #[arg(long, requires = "pact")]
    infer: bool,

    /// With --pact: the consumer's name [default: the service under test's]
    #[arg(long, value_name = "NAME", requires = "pact")]
    consumer: Option<String>,

    /// With --pact: the provider's name [default: the dependency's]
    #[arg(long, value_name = "NAME", requires = "pact")]
    provider: Option<String>,
}

/// How often a followed journal is asked for new entries.
const JOURNAL_FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    manifest: ManifestArgs,

    /// Print the environment as JSON on stderr before CMD runs
    #[arg(long)]
    json: bool,

    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

impl ManifestArgs {
    fn request(&self) -> Result<UpRequest, Error> {
        let plan = manifest::load(&self.file, &|name| std::env::var(name).ok())?;
        Ok(UpRequest {
            plan,
            ttl_secs: self.ttl.map(|ttl| ttl.as_secs().max(1)),
        })
    }
}

pub fn up(args: UpArgs, runtime: tokio::runtime::Runtime) -> Result<u8, Error> {
    let request = args.manifest.request()?;
    let stop = super::stop_signal(&runtime);
    runtime.block_on(async move {
        let mut stop = std::pin::pin!(stop);
        let Some((client, info)) = connect_and_start(&request, &mut stop).await? else {
            return Ok(EXIT_INTERRUPTED);
        };
        if args.json {
            print_json(&info);
        } else {
            print_table(std::slice::from_ref(&info));
        }
        if args.detach {
            return Ok(EXIT_OK);
        }
        let service = service_part(&info);
        eprintln!(
            "envd: {} is up; following {service}'s output; Ctrl-C tears it down",
            info.id
        );
        tokio::select! {
            _ = client.logs(&info.id, &service, true, |bytes| {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(bytes);
                let _ = stdout.flush();
            }) => {}
            () = &mut stop => {}
        }
        client.down(&info.id).await?;
        eprintln!("envd: {} torn down", info.id);
        Ok(EXIT_OK)
    })
}

pub fn run(args: RunArgs, runtime: tokio::runtime::Runtime) -> Result<u8, Error> {
    let request = args.manifest.request()?;
    let stop = super::stop_signal(&runtime);
    runtime.block_on(async move {
        let mut stop = std::pin::pin!(stop);
        let Some((client, info)) = connect_and_start(&request, &mut stop).await? else {
            return Ok(EXIT_INTERRUPTED);
        };
        if args.json {
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&info).unwrap_or_default()
            );
        }
        let spawned = tokio::process::Command::new(&args.command[0])
            .args(&args.command[1..])
            .envs(&info.vars)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                client.down(&info.id).await?;
                return Err(Error::Command {
                    program: args.command[0].clone(),
                    source,
                });
            }
        };
        let status = tokio::select! {
            status = child.wait() => status,
            () = &mut stop => {
                // A Ctrl-C at a terminal reached CMD already; a SIGTERM to envd did not.
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) on the child's pid; no memory is involved.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                }
                child.wait().await
            }
        };
        client.down(&info.id).await?;
        let code = match status {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                status
                    .code()
                    .map(|code| code as u8)
                    .or_else(|| status.signal().map(|signal| 128 + signal as u8))
                    .unwrap_or(1)
            }
            Err(_) => 1,
        };
        Ok(code)
    })
}

pub fn down(args: DownArgs, runtime: tokio::runtime::Runtime) -> Result<u8, Error> {
    runtime.block_on(async move {
        let client = Client::connect(&crate::daemon::local::home()).await?;
        let env = pick(&client, args.env).await?;
        let info = client.down(&env).await?;
        if args.json {
            print_json(&info);
        } else {
            println!(
                "envd: {} torn down ({} parts stopped)",
                info.id,
                info.parts.len()
            );
        }
        Ok(EXIT_OK)
    })
}

pub fn ps(args: PsArgs, runtime: tokio::runtime::Runtime) -> Result<u8, Error> {
    runtime.block_on(async move {
        let client = Client::connect(&crate::daemon::local::home()).await?;
        let environments = client.list().await?;
        if args.json {
            print_json(&environments);
        } else if environments.is_empty() {
            println!("envd: no environments");
        } else {
            print_table(&environments);
        }
        Ok(EXIT_OK)
    })
}

pub fn logs(args: LogsArgs, runtime: tokio::runtime::Runtime) -> Result<u8, Error> {
    let stop = super::stop_signal(&runtime);
    runtime.block_on(async move {
        let client = Client::connect(&crate::daemon::local::home()).await?;
        let env = pick(&client, args.env).await?;
        let part = match args.part {
            Some(part) => part,
            None => service_part(&client.get(&env).await?),
        };
        // Output arrives in chunks; JSON lines are cut at newlines, a partial line waits.
        let mut pending: Vec<u8> = Vec::new();
        let mut print = |bytes: &[u8]| {
            let mut stdout = std::io::stdout().lock();
            if !args.json {
                let _ = stdout.write_all(bytes);
            } else {
                pending.extend_from_slice(bytes);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]);
                    let record =
                        serde_json::json!({"environment": env, "part": part, "line": line});
                    let _ = writeln!(stdout, "{record}");
                }
            }
            let _ = stdout.flush();
        };
        tokio::select! {
            result = client.logs(&env, &part, args.follow, &mut print) => result?,
            () = stop => {}
        }
        Ok(EXIT_OK)
    })
}

pub fn journal(args: JournalArgs, runtime: tokio::runtime::Runtime) -> Result<u8, Error> {
    let stop = super::stop_signal(&runtime);
    runtime.block_on(async move {
        let client = Client::connect(&crate::daemon::local::home()).await?;
        let env = pick(&client, args.env.clone()).await?;
        if let (Some(dep), Some(path)) = (&args.dep, &args.pact) {
            return write_pact(&client, &env, dep, path, &args).await;
        }
        let mut stop = std::pin::pin!(stop);
        let mut since = std::collections::BTreeMap::new();
        let mut first = true;
        loop {
            let entries = match client
                .journal(&env, args.part.as_deref(), args.unmatched, &since)
                .await
            {
                Ok(entries) => entries,
                // A followed environment that ends ends the following.
                Err(crate::daemon::client::ClientError::Refused { status: 404, .. }) if !first => {
                    return Ok(EXIT_OK)
                }
                Err(error) => return Err(error.into()),
            };
            first = false;
            let mut stdout = std::io::stdout().lock();
            for entry in &entries {
                since.insert(entry.part.clone(), entry.entry.seq);
                let _ = if args.json {
                    let mut record = serde_json::to_value(entry).unwrap_or_default();
                    record["environment"] = serde_json::json!(env);
                    writeln!(stdout, "{record}")
                } else {
                    write!(stdout, "{}", journal_line(entry))
                };
            }
            let _ = stdout.flush();
            drop(stdout);
            if !args.follow {
                return Ok(EXIT_OK);
            }
            tokio::select! {
                () = tokio::time::sleep(JOURNAL_FOLLOW_POLL) => {}
                () = &mut stop => return Ok(EXIT_OK),
            }
        }
    })
}

/// `envd journal --dep NAME --pact FILE`: what NAME answered, as a consumer contract.
async fn write_pact(
    client: &Client,
    env: &str,
    dep: &str,
    path: &std::path::Path,
    args: &JournalArgs,
) -> Result<u8, Error> {
    let entries: Vec<crate::journal::Entry> = client
        .journal(env, Some(dep), false, &Default::default())
        .await?
        .into_iter()
        .map(|entry| entry.entry)
        .collect();
    let consumer = match &args.consumer {
        Some(consumer) => consumer.clone(),
        None => service_part(&client.get(env).await?),
    };
    let provider = args.provider.as_deref().unwrap_or(dep);
    let contract = crate::journal::contract(&entries, &consumer, provider, args.infer);
    let recording = &contract.recording;
    if recording.is_empty() {
        let why = match (entries.len(), contract.truncated) {
            (0, _) => String::new(),
            (_, 0) => format!(
                " (of its {} journaled requests, none was answered by it: misses, injected faults and streamed pass-through keep no exchange)",
                entries.len()
            ),
            (_, cut) => format!(" ({cut} answered, each with a body over 64 KiB)"),
        };
        return Err(crate::journal::JournalError::NothingAnswered {
            dependency: dep.to_owned(),
            why,
        }
        .into());
    }
    // Pacts usually go to a directory of their own (pacts/), made here when missing.
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    parent
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| recording.write(path))
        .map_err(|source| crate::journal::JournalError::Write {
            path: path.to_owned(),
            source,
        })?;
    if args.json {
        print_json(&serde_json::json!({
            "pact": path,
            "consumer": consumer,
            "provider": provider,
            "interactions": recording.len(),
            "left_out_truncated": contract.truncated,
        }));
    } else {
        let cut = match contract.truncated {
            0 => String::new(),
            cut => format!("; {cut} left out: a body over 64 KiB"),
        };
        let count = match recording.len() {
            1 => "1 interaction".to_owned(),
            n => format!("{n} interactions"),
        };
        println!(
            "envd: wrote {count} ({consumer} → {provider}) to {}{cut}",
            path.display()
        );
    }
    Ok(EXIT_OK)
}

/// One journal entry for people: time, part, request, status, what answered and how long
/// it took; a miss adds its closest interactions, one a line.
fn journal_line(journaled: &JournalEntry) -> String {
    let entry = &journaled.entry;
    let day_ms = entry.at_ms % 86_400_000;
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    );
    let outcome = match (&entry.matched, entry.miss) {
        (Some(description), _) => format!("matched {description:?}"),
        (None, true) => "MISS".to_owned(),
        (None, false) => String::new(),
    };
    let note = entry
        .note
        .as_deref()
        .map(|note| format!(" ({note})"))
        .unwrap_or_default();
    let trace = entry
        .trace_id
        .as_deref()
        .map(|trace| format!(" trace {trace}"))
        .unwrap_or_default();
    let mut line = format!(
        "{time}  {}  {} {}  {}  {outcome}{note}  {:.1} ms{trace}\n",
        journaled.part,
        entry.method,
        entry.target,
        entry.status,
        entry.duration_us as f64 / 1000.0
    );
    for closest in &entry.closest {
        line.push_str(&format!(
            "    closest {:?}: {}\n",
            closest.description,
            closest.mismatches.join("; ")
        ));
    }
    line
}

/// Reaches the daemon (starting it when needed) and starts the environment on it.
async fn connect_and_start(
    request: &UpRequest,
    stop: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Result<Option<(Client, EnvironmentInfo)>, Error> {
    let client = Client::connect(&crate::daemon::local::home()).await?;
    Ok(start(&client, request, stop)
        .await?
        .map(|info| (client, info)))
}

/// Starts the environment, showing progress on stderr; a failure names the part. `None`:
/// `stop` came first, and what had started is torn down.
async fn start(
    client: &Client,
    request: &UpRequest,
    stop: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Result<Option<EnvironmentInfo>, Error> {
    let terminal = std::io::stderr().is_terminal();
    let created = std::cell::RefCell::new(None);
    let up = client.up(request, |event| {
        if let Event::Created { id } = event {
            *created.borrow_mut() = Some(id.clone());
        }
        let mut stderr = std::io::stderr().lock();
        let _ = match event {
            Event::Starting { part, mode } if terminal => {
                write!(stderr, "  … {part} ({mode}) starting\r")
            }
            Event::Starting { part, mode } => {
                writeln!(stderr, "envd: starting {part} ({mode})")
            }
            Event::Ready {
                part,
                url,
                elapsed_ms,
            } => writeln!(
                stderr,
                "{}{part} ready at {} ({elapsed_ms} ms)",
                if terminal { "\x1b[2K  ✓ " } else { "envd: " },
                url.as_deref().unwrap_or("-")
            ),
            Event::Failed { part, .. } if terminal => {
                writeln!(stderr, "\x1b[2K  ✗ {part} failed")
            }
            _ => Ok(()),
        };
        let _ = stderr.flush();
    });
    let last = tokio::select! {
        last = up => last?,
        () = stop => {
            let id = created.borrow().clone();
            if let Some(id) = id {
                eprintln!("envd: interrupted; tearing {id} down");
                client.down(&id).await?;
            }
            return Ok(None);
        }
    };
    match last {
        Event::Up { environment } => Ok(Some(environment)),
        Event::Failed { part, error, logs } => Err(Error::Start {
            part,
            reason: error,
            logs,
        }),
        other => Err(Error::Client(crate::daemon::client::ClientError::Protocol(
            format!("the start ended with {other:?}"),
        ))),
    }
}

/// The environment `env` names, or the only one there is.
async fn pick(client: &Client, env: Option<String>) -> Result<String, Error> {
    if let Some(env) = env {
        return Ok(env);
    }
    let environments = client.list().await?;
    match environments.as_slice() {
        [only] => Ok(only.id.clone()),
        [] => Err(Error::Client(crate::daemon::client::ClientError::Refused {
            status: 404,
            title: "no environments".into(),
            detail: "nothing is up; `envd up` starts one".into(),
        })),
        several => Err(Error::Client(crate::daemon::client::ClientError::Refused {
            status: 400,
            title: "several environments".into(),
            detail: format!(
                "name one: {}",
                several
                    .iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })),
    }
}

/// The service under test: the part that runs as `process`.
fn service_part(info: &EnvironmentInfo) -> String {
    info.parts
        .iter()
        .rev()
        .find(|part| part.mode == "process")
        .map(|part| part.name.clone())
        .unwrap_or_default()
}

fn print_json<T: serde::Serialize>(value: &T) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn print_table(environments: &[EnvironmentInfo]) {
    let now = crate::journal::now_ms();
    let mut rows = vec![[
        "ENVIRONMENT".to_owned(),
        "PART".into(),
        "MODE".into(),
        "URL".into(),
        "STATE".into(),
        "TIME LEFT".into(),
    ]];
    for environment in environments {
        let left = match environment.expires_ms {
            Some(expires) => format_left(expires.saturating_sub(now)),
            None => "-".into(),
        };
        for part in &environment.parts {
            rows.push([
                environment.id.clone(),
                part.name.clone(),
                part.mode.clone(),
                part.url.clone().unwrap_or_else(|| "-".into()),
                part.state.to_string(),
                left.clone(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut stdout = std::io::stdout().lock();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(stdout, "{}", line.join("  ").trim_end());
    }
}

fn format_left(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// `envd verify -f FILE`: the manifest's environment up, its service under test verified
/// as the provider (against `options.contracts`, else the manifest's `[verify]`), down.
pub async fn verify_in_environment(
    file: &std::path::Path,
    mut options: crate::verify::Options,
    stop: impl std::future::Future<Output = ()>,
) -> Result<crate::verify::Report, Error> {
    let plan = manifest::load(file, &|name| std::env::var(name).ok())?;
    let base = plan
        .manifest
        .parent()
        .map(std::path::Path::to_owned)
        .unwrap_or_default();
    let verify = plan.verify.clone();
    if options.contracts.is_empty() {
        options.contracts = verify
            .as_ref()
            .map(|v| v.contracts.clone())
            .unwrap_or_default();
    }
    if options.contracts.is_empty() {
        return Err(Error::Manifest(manifest::ManifestError::Invalid {
            path: plan.manifest.clone(),
            line: 1,
            column: 1,
            message: "no contracts to verify: expected a [verify] table with `contracts = [\"…\"]`, or --contract".into(),
        }));
    }
    let request = UpRequest {
        plan,
        ttl_secs: None,
    };
    let mut stop = std::pin::pin!(stop);
    let Some((client, info)) = connect_and_start(&request, &mut stop).await? else {
        return Err(Error::Interrupted);
    };
    let service = info
        .vars
        .get("ENVD_SERVICE_URL")
        .cloned()
        .unwrap_or_default();
    options.provider = service.clone();
    if options.state_change.is_none() {
        options.state_change = match verify {
            Some(manifest::Verify {
                state_change: Some(path),
                ..
            }) => Some(crate::verify::StateChange::Url(format!("{service}{path}"))),
            Some(manifest::Verify {
                state_change_cmd: Some(command),
                ..
            }) => Some(crate::verify::StateChange::Command(format!(
                "cd '{}' && {command}",
                base.display()
            ))),
            _ => None,
        };
    }
    let result = tokio::select! {
        result = crate::verify::run(&options) => result.map_err(Error::from),
        () = &mut stop => Err(Error::Interrupted),
    };
    client.down(&info.id).await?;
    result
}
