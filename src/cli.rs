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

use crate::daemon;
use crate::error::{Error, EXIT_FAILED, EXIT_OK};
use crate::fixtures;
use crate::proxy;
use crate::recording::import::{self, ImportError};
use crate::server;
use crate::stub;

mod environment;
use environment::{
    DownArgs, JournalArgs, LogsArgs, PsArgs, RunArgs, UpArgs, JOURNAL_HELP, RUN_HELP, UP_HELP,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a check ran and found problems
  2  bad input: usage, or a file, flag or setting that does not load (named, with the
     place in it)
  3  envd could not run: a port in use, a file that cannot be written";

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
    /// Forward to a staging service in the foreground; record what crosses; with --spy,
    /// answer what the recording matches and forward the rest
    #[command(after_help = PROXY_HELP)]
    Proxy(ProxyArgs),
    /// Start an environment from envd.toml: dependencies as stubs, proxies or services,
    /// then the service under test; stays attached unless --detach
    #[command(after_help = UP_HELP)]
    Up(UpArgs),
    /// Tear an environment down, leaving nothing running
    Down(DownArgs),
    /// List environments, their parts, states and time left
    Ps(PsArgs),
    /// Show a part's output (the service under test by default)
    Logs(LogsArgs),
    /// Show what an environment's stubs and proxies saw; with --dep NAME --pact FILE, write
    /// what a dependency answered as a consumer contract
    #[command(after_help = JOURNAL_HELP)]
    Journal(JournalArgs),
    /// Start an environment, run a command in it, tear it down; exit with its status
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Run the daemon: without --listen, the environments of this user on a Unix socket;
    /// with --listen, a staging gateway (allowlisted staging services at /routes/NAME/…)
    #[command(after_help = DAEMON_HELP)]
    Daemon(DaemonArgs),
    /// Turn WireMock mappings or a HAR capture into a recording (a Pact V4 file)
    #[command(subcommand, after_help = IMPORT_HELP)]
    Import(ImportCommand),
    /// Sample CSV, JSON Lines or Parquet files, or PostgreSQL tables, into a fixture: a seeded random
    /// sample plus the edge rows (nulls, extremes, every category, rows that break the
    /// schema), in one pass
    #[command(after_help = SAMPLE_HELP)]
    Sample(SampleArgs),
    /// Work with fixtures: `envd fixture check` reports a source's drift from a fixture
    #[command(subcommand)]
    Fixture(FixtureCommand),
    /// Replay contracts against a running provider and check its responses (Pact
    /// response matching)
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Work with contracts: `envd contract diff OLD NEW`
    #[command(subcommand)]
    Contract(ContractCommand),
}

#[derive(Debug, Subcommand)]
enum ContractCommand {
    /// List what changed between two versions of a contract, each change breaking or not
    #[command(after_help = DIFF_HELP)]
    Diff(DiffArgs),
}

const DIFF_HELP: &str = "\
Interactions are paired by description and provider states. Breaking: an interaction
removed, a response status changed, a response field or header removed, a response field
retyped, a request field, header or query parameter newly required, a matching rule
removed or changed (matching made stricter). Not breaking: additions, a rule added or
loosened to a type match.

Examples:
  envd contract diff contracts/web-orders.v1.json contracts/web-orders.json
  git show main:pacts/web-orders.json > /tmp/old.json && envd contract diff /tmp/old.json pacts/web-orders.json --json

Exit codes:
  0  nothing breaks
  1  something breaks
  2  a contract does not load";

#[derive(Debug, Args)]
struct DiffArgs {
    /// The contract as it was (a Pact file or a directory of them)
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The contract as it is now
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Print the changes as JSON
    #[arg(long)]
    json: bool,
}

impl DiffArgs {
    fn run(self) -> Result<bool, Error> {
        use crate::verify::{diff, VerifyError};
        let changes = diff::files(&self.old, &self.new).map_err(VerifyError::from)?;
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(stdout, "{:#}", diff::json(&changes));
        } else {
            let _ = write!(stdout, "{}", diff::text(&changes));
        }
        let _ = stdout.flush();
        Ok(!changes.iter().any(|change| change.breaking))
    }
}

const VERIFY_HELP: &str = "\
Each interaction's request (generators applied) is sent to the provider, one at a time;
the response's status, headers and body are checked by the Pact specification's response
matching, with the interaction's matching rules (V2 to V4). Each interaction is listed
with its consumer, description and provider states; each mismatch in words, with the
expected and actual values beneath.

Provider states: --state-change URL receives POST {\"state\":…,\"params\":{…},
\"action\":\"setup\"} before an interaction and \"teardown\" after, per state; any answer
but 2xx fails the interaction. --state-change-cmd CMD runs `sh -c CMD` instead, with
ENVD_STATE, ENVD_STATE_PARAMS (JSON) and ENVD_STATE_ACTION in its environment; a non-zero
exit fails the interaction.

Examples:
  envd verify --provider http://127.0.0.1:8080 --contract contracts/
  envd verify --provider http://127.0.0.1:8080 --contract web-orders.json \\
      --state-change http://127.0.0.1:8080/__states --junit reports/pact.xml

Exit codes:
  0  every interaction verified
  1  an interaction did not verify
  2  bad input: a contract that does not load, a bad URL or pattern, nothing selected
  3  cannot write the JUnit report";

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The running provider: http:// or https:// URL, optionally with a base path
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    provider: Option<String>,

    /// Start the manifest's environment and verify its service under test as the
    /// provider, against the contracts under [verify] (or --contract); then tear down
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,

    /// A Pact file, or a directory of them (every *.json below it); repeatable
    #[arg(long = "contract", value_name = "PATH", num_args = 1.., required_unless_present = "file")]
    contracts: Vec<PathBuf>,

    /// URL that sets up and tears down provider states (Pact's state-change POST)
    #[arg(long, value_name = "URL", conflicts_with = "state_change_cmd")]
    state_change: Option<String>,

    /// Command that sets up and tears down provider states, run by `sh -c`
    #[arg(long, value_name = "CMD")]
    state_change_cmd: Option<String>,

    /// Verify only the pacts of this consumer (its name, exactly)
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,

    /// Verify only interactions whose description matches this regular expression
    #[arg(long, value_name = "REGEX")]
    description: Option<String>,

    /// Verify only interactions with a provider state matching this regular expression
    #[arg(long, value_name = "REGEX")]
    state: Option<String>,

    /// Also write a JUnit XML report here (replaced whole)
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,

    /// Print the report as JSON
    #[arg(long)]
    json: bool,

    /// How long the provider may take to answer each request
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: std::time::Duration,
}

impl VerifyArgs {
    fn run(self, runtime: tokio::runtime::Runtime) -> Result<bool, Error> {
        use crate::verify;
        let state_change = match (self.state_change, self.state_change_cmd) {
            (Some(url), _) => Some(verify::StateChange::Url(url)),
            (None, Some(command)) => Some(verify::StateChange::Command(command)),
            (None, None) => None,
        };
        let options = verify::Options {
            provider: self.provider.unwrap_or_default(),
            contracts: self.contracts,
            state_change,
            consumer: self.consumer,
            description: self.description,
            state: self.state,
            timeout: self.timeout,
        };
        let report = match &self.file {
            None => runtime.block_on(verify::run(&options))?,
            Some(file) => {
                let stop = stop_signal(&runtime);
                runtime.block_on(environment::verify_in_environment(file, options, stop))?
            }
        };

        if let Some(path) = &self.junit {
            verify::write_atomically(path, &verify::report::junit(&report))?;
        }
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(stdout, "{:#}", verify::report::json(&report));
        } else {
            let _ = write!(stdout, "{}", verify::report::text(&report));
        }
        let _ = stdout.flush();
        Ok(report.failed() == 0)
    }
}

const SAMPLE_HELP: &str = "\
Each SOURCE is a table named after its file (orders.csv is table orders). The format comes
from the extension: .csv, .tsv, .jsonl, .ndjson or .parquet. CSV has a header row; an unquoted empty
field and \\N are null, a quoted empty field (\"\") is the empty string. Bytes are kept as
they are: invalid UTF-8 is data (and an edge row), not an error.

Kept on top of the random rows, per column: the first null and the first empty value, the
minimum and maximum, the longest and shortest value, every value of a column with at most
--max-categories distinct values, and up to --edge-rows rows per kind of misfit (a value
outside the column's inferred type, invalid UTF-8, a ragged row, broken quoting, a field
over 64 KiB, a JSON line that does not parse). DIR/fixture.json lists every edge row with
its line and why it was kept, the source's statistics and its schema. DIR/TABLE.csv (or
.jsonl, .parquet) holds the kept rows in source order. The same seed and input give
byte-identical files.

A Parquet source is read a row group at a time; its types come from its schema, and its
fixture is Parquet with the same schema (snappy). Values are shown (statistics, CSV or
JSON output) as a CSV export holds them: 12.50, 2024-01-31, 2024-01-31T13:45:00.000000Z,
binary as base64. Its line numbers are row numbers. A nested column (LIST, MAP, STRUCT,
a repeated field) is one column whose value is JSON: text in statistics and CSV, a JSON
value in JSON Lines, its levels and values kept as they were in the Parquet fixture; it
cannot be masked. Encrypted files and the LZO codec are refused. --format parquet writes a CSV or
JSON Lines source as Parquet: INT64, DOUBLE, BOOLEAN or DATE where every kept value fits,
else STRING.

A PostgreSQL source (postgres://USER@HOST:PORT/DB) is every table of --schema (public),
or each --table. Each table is read once with COPY inside one read-only snapshot, in
primary-key order; its foreign keys are the relations. DIR/TABLE.csv is in COPY's CSV
format, DIR/load.sql loads the fixture with psql, and DIR/fixture.json holds the catalog
(declared types, keys) that a manifest's `fixture = \"DIR\"` loads from. Only text
columns can be masked.

Examples:
  envd sample orders.csv --out fixtures/orders --rows 1000 --seed 7
  envd sample customers.csv orders.csv --out fixtures/shop \\
      --relation orders.customer_id=customers.id --mask email
  envd fixture check orders.csv --against fixtures/orders
  envd sample postgres://app@127.0.0.1:5432/shop --out fixtures/shop --mask email

Exit codes:
  0  the fixture is written (warnings, such as unresolved relations, on stderr)
  2  bad input: an unreadable or empty source, a bad flag (named, with the file and line)
  3  cannot write DIR";

#[derive(Debug, Args)]
struct SampleArgs {
    /// CSV or JSON Lines files, one table each; or one PostgreSQL URL (postgres://…)
    #[arg(value_name = "SOURCE", required = true)]
    sources: Vec<String>,

    /// Directory to write the fixture into (created; its files are replaced)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Random rows per table, beyond the edge rows
    #[arg(long, value_name = "N", default_value_t = fixtures::DEFAULT_ROWS, conflicts_with = "fraction")]
    rows: usize,

    /// Share of rows to sample instead of a count (0 to 1); memory grows with the sample
    #[arg(long, value_name = "F")]
    fraction: Option<f64>,

    /// Seed for the random sample: the same seed and input give the same fixture
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,

    /// CHILD.COLUMN=PARENT.COLUMN: kept rows of both tables keep their references; repeatable
    #[arg(long = "relation", value_name = "CHILD.COL=PARENT.COL")]
    relations: Vec<String>,

    /// A column to mask (COLUMN in every table, or TABLE.COLUMN), keeping its shape; repeatable
    #[arg(long = "mask", value_name = "COL")]
    mask: Vec<String>,

    /// Key for masking; without it a built-in key is used (masking is then reversible by
    /// anyone guessing a value)
    #[arg(
        long,
        value_name = "KEY",
        env = "ENVD_MASK_KEY",
        hide_env_values = true
    )]
    mask_key: Option<String>,

    /// Columns with at most this many distinct values keep every value at least once
    #[arg(long, value_name = "K", default_value_t = fixtures::DEFAULT_MAX_CATEGORIES)]
    max_categories: usize,

    /// Edge rows kept per reason (per column for column reasons)
    #[arg(long, value_name = "N", default_value_t = fixtures::DEFAULT_EDGE_ROWS)]
    edge_rows: usize,

    /// Children kept per sampled parent row, for each --relation
    #[arg(long, value_name = "N", default_value_t = fixtures::DEFAULT_PER_PARENT)]
    per_parent: usize,

    /// Format of the fixture's files: csv, jsonl or parquet [default: each source's own]
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Option<fixtures::Format>,

    #[command(flatten)]
    csv: CsvArgs,

    #[command(flatten)]
    postgres: PostgresArgs,
}

/// Which tables of a PostgreSQL source.
#[derive(Debug, Args)]
struct PostgresArgs {
    /// A table of a PostgreSQL source (T or SCHEMA.T); repeatable [default: every table of
    /// the schema; for `fixture check`, of the fixture]
    #[arg(long = "table", value_name = "T")]
    tables: Vec<String>,

    /// The schema of a PostgreSQL source [default: public; for `fixture check`, the
    /// fixture's]
    #[arg(long, value_name = "S")]
    schema: Option<String>,
}

impl PostgresArgs {
    /// Refuses the flags for a file source.
    fn only_for(&self, url: bool) -> Result<(), fixtures::FixtureError> {
        if url {
            return Ok(());
        }
        let flag = match (self.tables.is_empty(), &self.schema) {
            (false, _) => "--table",
            (true, Some(_)) => "--schema",
            (true, None) => return Ok(()),
        };
        Err(fixtures::FixtureError::PostgresOnly { flag })
    }
}

/// How CSV sources are read.
#[derive(Debug, Args)]
struct CsvArgs {
    /// CSV field delimiter (one byte; `\\t` for tab) [default: `,`, tab for .tsv]
    #[arg(long, value_name = "CHAR", value_parser = parse_byte)]
    delimiter: Option<u8>,

    /// CSV quote character (one byte)
    #[arg(long, value_name = "CHAR", default_value = "\"", value_parser = parse_byte)]
    quote: u8,

    /// Encoding of CSV and JSON Lines sources, decoded to UTF-8: utf-8, latin1, utf-16 (byte
    /// order mark, else little-endian), utf-16le or utf-16be
    #[arg(long, value_name = "NAME", default_value = "utf-8", value_parser = parse_encoding)]
    encoding: fixtures::encoding::Encoding,
}

impl CsvArgs {
    fn source(&self, path: &str) -> Result<fixtures::Source, fixtures::FixtureError> {
        Ok(
            fixtures::Source::new(path, None, self.delimiter, self.quote)?
                .with_encoding(self.encoding),
        )
    }
}

fn parse_format(text: &str) -> Result<fixtures::Format, String> {
    fixtures::Format::parse(text)
        .ok_or_else(|| format!("expected csv, jsonl or parquet, found {text:?}"))
}

fn parse_encoding(text: &str) -> Result<fixtures::encoding::Encoding, String> {
    fixtures::encoding::Encoding::parse(text).ok_or_else(|| {
        format!(
            "expected {}, found {text:?}",
            fixtures::encoding::Encoding::NAMES
        )
    })
}

fn parse_byte(text: &str) -> Result<u8, String> {
    match text.as_bytes() {
        [byte] => Ok(*byte),
        b"\\t" => Ok(b'\t'),
        _ => Err(format!("expected one ASCII character, found {text:?}")),
    }
}

impl SampleArgs {
    fn options(mut self) -> Result<fixtures::Options, fixtures::FixtureError> {
        let url = match self.sources.as_slice() {
            [url] if fixtures::postgres::is_url(url) => Some(url.clone()),
            _ => None,
        };
        self.postgres.only_for(url.is_some())?;
        let (sources, catalog) = match &url {
            Some(url) => {
                let found = fixtures::postgres::sources(
                    url,
                    self.postgres.schema.as_deref(),
                    &self.postgres.tables,
                )?;
                self.relations.extend(found.relations);
                (found.sources, Some(found.catalog))
            }
            None => (
                self.sources
                    .iter()
                    .map(|path| self.csv.source(path))
                    .collect::<Result<Vec<_>, _>>()?,
                None,
            ),
        };
        if let (Some(format), Some(_)) = (self.format, &catalog) {
            if format != fixtures::Format::Csv {
                // load.sql copies the tables' CSV files.
                return Err(fixtures::FixtureError::Conversion {
                    format: format.name().to_owned(),
                    source_format: fixtures::Format::Csv.name(),
                });
            }
        }
        Ok(fixtures::Options {
            sources,
            out: self.out,
            size: match self.fraction {
                Some(fraction) => fixtures::Size::Fraction(fraction),
                None => fixtures::Size::Rows(self.rows),
            },
            seed: self.seed,
            relations: self.relations,
            mask: self.mask,
            mask_key: self
                .mask_key
                .map(String::into_bytes)
                .unwrap_or_else(|| fixtures::mask::DEFAULT_KEY.to_vec()),
            max_categories: self.max_categories,
            edge_rows: self.edge_rows,
            per_parent: self.per_parent,
            format: self.format,
            postgres: catalog,
        })
    }
}

#[derive(Debug, Subcommand)]
enum FixtureCommand {
    /// Compare a source with the snapshot in a fixture: columns added or removed, types,
    /// nullability, new categories, ranges and null rates moved
    #[command(after_help = FIXTURE_CHECK_HELP)]
    Check(FixtureCheckArgs),
}

const FIXTURE_CHECK_HELP: &str = "\
The source is profiled in one pass, as `envd sample` did, and compared with the table of
the same name in DIR/fixture.json (or its only table). A null rate counts as moved when it
changes by more than --threshold; a numeric range when a bound moves by more than
--threshold times the old range. Masked columns are checked for type and nulls only.

Examples:
  envd fixture check exports/orders.csv --against fixtures/orders
  envd fixture check exports/orders.csv --against fixtures/orders --json
  envd fixture check postgres://app@127.0.0.1:5432/shop --against fixtures/shop

A PostgreSQL source is checked table by table (the fixture's tables, or each --table) and
also for declared types that changed (integer to bigint), enum labels added, removed or
reordered, types and functions gone or defined otherwise, and keys, checks, indexes and
triggers added, removed or changed; --json then prints a list of reports, one per table
and one for the schema's types and functions (\"schemaObjects\": true).

Exit codes:
  0  no drift
  1  drift: the changes are listed (a table, or JSON with --json)
  2  bad input: an unreadable source, or DIR has no fixture.json";

#[derive(Debug, Args)]
struct FixtureCheckArgs {
    /// The CSV, JSON Lines or Parquet file to check, or a PostgreSQL URL (every table of the fixture)
    #[arg(value_name = "SOURCE")]
    source: String,

    /// The fixture directory (holding fixture.json)
    #[arg(long, value_name = "DIR")]
    against: PathBuf,

    /// How far a null rate or a range may move before it is drift
    #[arg(long, value_name = "SHARE", default_value_t = fixtures::drift::DEFAULT_THRESHOLD)]
    threshold: f64,

    /// Print the changes as JSON on stdout
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    csv: CsvArgs,

    #[command(flatten)]
    postgres: PostgresArgs,
}

impl FixtureCommand {
    fn run(self) -> Result<(), Error> {
        let FixtureCommand::Check(args) = self;
        let url = fixtures::postgres::is_url(&args.source);
        args.postgres.only_for(url)?;
        let reports = if url {
            fixtures::postgres::check(
                &args.source,
                &args.against,
                args.postgres.schema.as_deref(),
                &args.postgres.tables,
                args.threshold,
                &mut *progress(),
            )?
        } else {
            let source = args.csv.source(&args.source)?;
            vec![fixtures::check(
                &source,
                &args.against,
                args.threshold,
                &mut *progress(),
            )?]
        };
        let mut stdout = std::io::stdout().lock();
        if args.json {
            // A file is one table; a database, a list of them.
            let json = match url {
                true => serde_json::to_value(&reports),
                false => serde_json::to_value(&reports[0]),
            };
            let _ = writeln!(stdout, "{:#}", json.unwrap_or_default());
        } else {
            for report in &reports {
                print_drift(&mut stdout, report, url);
            }
        }
        let changes: usize = reports.iter().map(|r| r.changes.len()).sum();
        if changes == 0 {
            Ok(())
        } else {
            Err(fixtures::FixtureError::Drift {
                changes,
                fixture: args.against,
            }
            .into())
        }
    }
}

/// One table's drift, as a table for people; `heading` names the table first (a database
/// has several).
fn print_drift(stdout: &mut impl Write, report: &fixtures::DriftReport, heading: bool) {
    if report.changes.is_empty() {
        let _ = writeln!(
            stdout,
            "envd: no drift: {} matches table {} of {}",
            report.source, report.table, report.fixture
        );
    } else {
        let rows: Vec<(String, String, String)> = report
            .changes
            .iter()
            .map(|change| {
                let (what, detail) = change.describe();
                (change.name().to_owned(), what, detail)
            })
            .collect();
        let width = |f: &dyn Fn(&(String, String, String)) -> usize, title: usize| {
            rows.iter().map(f).max().unwrap_or(0).max(title)
        };
        let w0 = width(&|r| r.0.chars().count(), 6);
        let w1 = width(&|r| r.1.len(), 6);
        if report.schema_objects {
            let _ = writeln!(
                stdout,
                "envd: drift in the extensions, types and functions of schema {}:",
                report.table
            );
        } else if heading {
            let _ = writeln!(stdout, "envd: drift in table {}:", report.table);
        }
        let first = match report.changes.iter().all(|c| c.of_column()) {
            true => "COLUMN",
            false => "NAME",
        };
        let _ = writeln!(stdout, "{first:w0$}  {:w1$}  DETAIL", "CHANGE");
        for (column, what, detail) in &rows {
            let _ = writeln!(stdout, "{column:w0$}  {what:w1$}  {detail}");
        }
    }
}

fn run_sample(args: SampleArgs) -> Result<(), Error> {
    let options = args.options()?;
    let report = fixtures::sample(&options, &mut *progress())?;
    let mut stderr = std::io::stderr().lock();
    for warning in &report.manifest.warnings {
        let _ = writeln!(stderr, "envd: warning: {warning}");
    }
    let mut stdout = std::io::stdout().lock();
    for table in &report.manifest.tables {
        let _ = writeln!(
            stdout,
            "envd: {}: kept {} of {} rows ({} sampled, {} edge rows) in {}",
            table.name,
            table.kept.total,
            table.stats.rows,
            table.kept.sampled,
            table.kept.edge,
            options.out.join(&table.file).display()
        );
    }
    let _ = writeln!(
        stdout,
        "envd: wrote {}",
        options.out.join(fixtures::FIXTURE_FILE).display()
    );
    Ok(())
}

/// A progress bar on stderr when it is a terminal; nothing otherwise (logs and pipes stay
/// clean).
fn progress() -> Box<dyn fixtures::Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(ProgressBar::default())
    } else {
        Box::new(fixtures::Quiet)
    }
}

#[derive(Default)]
struct ProgressBar {
    name: String,
    total: Option<u64>,
    started: Option<std::time::Instant>,
}

impl fixtures::Progress for ProgressBar {
    fn start(&mut self, source: &std::path::Path, total: Option<u64>) {
        self.name = source.display().to_string();
        self.total = total;
        self.started = Some(std::time::Instant::now());
    }

    fn advance(&mut self, bytes: u64) {
        const MIB: f64 = 1024.0 * 1024.0;
        let elapsed = self
            .started
            .map_or(0.0, |s| s.elapsed().as_secs_f64())
            .max(1e-3);
        let rate = bytes as f64 / elapsed;
        let mut line = format!(
            "\r{}: {:.0} MiB, {:.0} MiB/s",
            self.name,
            bytes as f64 / MIB,
            rate / MIB
        );
        if let Some(total) = self.total.filter(|&t| t > 0) {
            let left = total.saturating_sub(bytes) as f64 / rate.max(1.0);
            line = format!(
                "\r{}: {:.0} of {:.0} MiB ({:.0} %), {:.0} MiB/s, {:.0} s left",
                self.name,
                bytes as f64 / MIB,
                total as f64 / MIB,
                100.0 * bytes as f64 / total as f64,
                rate / MIB,
                left
            );
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{line}\x1b[K");
        let _ = stderr.flush();
    }

    fn finish(&mut self) {
        let _ = writeln!(std::io::stderr().lock());
    }
}

const DAEMON_HELP: &str = "\
Every request needs `Authorization: Bearer <token>` with the token in --token-file
(compared in constant time); otherwise 401. The token is removed before forwarding.
GET /__envd/health answers without a token. An unknown route gets 404. Absolute-form
targets (GET http://elsewhere/) and CONNECT get 400: the gateway is never an open proxy.
A listener off loopback needs --tls-cert and --tls-key, or --insecure.

Laptops reach a route with `envd proxy --target envd://HOST:PORT/NAME --token-file F`.

Examples:
  envd daemon --listen 0.0.0.0:7700 --token-file /etc/envd/token \\
      --tls-cert /etc/envd/cert.pem --tls-key /etc/envd/key.pem \\
      --route users=https://users.staging.internal --route payments=http://10.0.3.7:8080
  envd daemon --listen 127.0.0.1:7700 --token-file token --config routes.toml
  STAGING_TOKEN=… envd daemon --listen 127.0.0.1:7700 --token-file token \\
      --route users=https://users.staging.internal \\
      --route-header 'users=Authorization: Bearer ${STAGING_TOKEN}'

Exit codes:
  0  stopped by SIGINT or SIGTERM
  2  bad arguments: a route, the token file, TLS files, or plain HTTP off loopback
  3  cannot listen";

#[derive(Debug, Args)]
struct DaemonArgs {
    /// Serve as a staging gateway on HOST:PORT (port 0 picks a free one); without it, the
    /// daemon serves environments on $ENVD_HOME/daemon.sock
    #[arg(long, value_name = "ADDR", requires = "token_file")]
    listen: Option<SocketAddr>,

    /// File holding the bearer token clients must present
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// PEM certificate chain for TLS
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for TLS
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Accept plain HTTP on a listener off loopback (tokens then cross the network in clear)
    #[arg(long)]
    insecure: bool,

    /// A staging service exposed at /routes/NAME/…, as NAME=URL; repeatable
    #[arg(long = "route", value_name = "NAME=URL")]
    routes: Vec<String>,

    /// A header the gateway adds to every request of route ROUTE, `ROUTE=NAME: VALUE`:
    /// staging credentials that stay on the gateway. `${VAR}` takes VAR from the gateway's
    /// environment; values never reach a log; repeatable
    #[arg(long = "route-header", value_name = "ROUTE=NAME: VALUE")]
    route_headers: Vec<String>,

    /// Routes from a TOML (*.toml) or JSON file: `[routes]` with `NAME = "URL"`, or
    /// `NAME = { url = "URL", headers = { NAME = "VALUE" } }`
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Also serve environments (`envd up` with ENVD_HOST=URL and ENVD_TOKEN) at /v1/, behind
    /// the same token: a shared CI host
    #[arg(long, requires = "listen")]
    environments: bool,

    /// How long a staging service may take to answer before the client gets 504
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: std::time::Duration,
}

impl DaemonArgs {
    fn options(
        self,
        listen: SocketAddr,
        token_file: &std::path::Path,
    ) -> Result<daemon::gateway::Options, daemon::DaemonError> {
        let mut routes = std::collections::BTreeMap::new();
        if let Some(config) = &self.config {
            routes.extend(daemon::gateway::routes_from_file(config, |name| {
                std::env::var(name).ok()
            })?);
        }
        for spec in &self.routes {
            let (name, route) = daemon::gateway::route(spec)?;
            routes.insert(name, route);
        }
        for spec in &self.route_headers {
            daemon::gateway::add_route_header(&mut routes, spec, |name| std::env::var(name).ok())?;
        }
        Ok(daemon::gateway::Options {
            listen,
            token: daemon::Token::read(token_file)?,
            tls: self.tls_cert.zip(self.tls_key),
            insecure: self.insecure,
            routes,
            timeout: self.timeout,
            limits: server::Limits::default(),
            environments: self
                .environments
                .then(|| daemon::local::home().join("remote")),
        })
    }
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// WireMock stub mappings (and their __files bodies) into a recording
    #[command(after_help = WIREMOCK_HELP)]
    Wiremock(WiremockArgs),
    /// A HAR 1.2 capture (a browser's "save all as HAR") into a redacted recording
    #[command(after_help = HAR_HELP)]
    Har(HarArgs),
}

const IMPORT_HELP: &str = "\
What a Pact interaction cannot express is listed per mapping or entry on stderr (and
under \"skipped\" with --json); the recording is still written. `envd import wiremock
--help` and `envd import har --help` show what maps to what.

Examples:
  envd import wiremock wiremock/ --out stubs/orders.json --provider orders
  envd import har session.har --out stubs/users.json --host users.staging.example.com
  envd stub --recording stubs/orders.json

Exit codes:
  0  imported; anything left out is listed
  2  unreadable or invalid input (named with file and JSON pointer)
  3  cannot write the recording";

const WIREMOCK_HELP: &str = "\
Reads a mappings directory (every *.json below it, in name order), a WireMock root holding
mappings/ and __files/, or one mapping file. A file holds one mapping or
{\"mappings\": [...]}. bodyFileName is read from the __files directory beside mappings/.

What maps to what:
  method                      the method; ANY becomes GET (reported)
  url / urlPath               the path (and query), exactly
  urlPathPattern / urlPattern a path regex rule with an example path
  headers, queryParameters    equalTo: literal (caseInsensitive: regex); matches: regex
                              rule; contains: regex rule .*TEXT.*
  bodyPatterns                equalToJson: the JSON body; matchesJsonPath $.a.b: a field
                              with a type (or equalTo / matches) rule; equalTo: text body
  response                    status, headers, body / jsonBody / base64Body / bodyFileName
  fixedDelayMilliseconds      metadata.envd.latencyMs
  scenarios                   identical requests in state order from \"Started\": the stub
                              answers them in turn, the last repeating
  priority                    interactions are written by priority; envd prefers the
                              match with fewest rules, so a conflict is reported
  secret headers              Authorization, Cookie, Set-Cookie, … are redacted (any
                              value matches), as in recordings

Everything that cannot be expressed (ignoreExtraElements, contains on a body, absent,
cookies, faults, proxying, templates, a transition made by another request, …) is listed on
stderr per mapping (file#/pointer and name) and under \"skipped\" in --json output. The
recording is still written; such mappings are imported in part or, when marked \"not
imported\", left out.

Differences that always hold: a request with query parameters the mapping does not list
does not match (WireMock ignores them with urlPath, urlPathPattern and queryParameters); a
JSON request body must not carry fields beyond the matched ones.

FILE is replaced whole, atomically: an import is a re-generation.

Examples:
  envd import wiremock wiremock/mappings --out stubs/payments.json --provider payments
  envd import wiremock wiremock/ --out stubs/payments.json --json
  envd stub --recording stubs/payments.json

Exit codes:
  0  imported; anything left out is listed (on stderr, and in --json)
  2  unreadable or invalid input (the message names the file and JSON pointer)
  3  cannot write FILE";

const HAR_HELP: &str = "\
Each entry (log.entries[]) becomes an interaction: method, decoded path, query, the body of
postData, the response's status, headers and content (base64 decoded), and entry.time as
metadata.envd.latencyMs. Identical exchanges are kept once. Like `envd proxy`, only the
request headers Accept, Content-Type and the secret ones are kept; Authorization,
Proxy-Authorization, Cookie, Set-Cookie and X-Api-Key (and every --redact-header /
--redact-json) are replaced by placeholders with any-value rules. Content-Encoding is
dropped: a HAR holds bodies decoded.

Entries that are not http(s) (data:, blob:, ws:, …), that got no response (status 0), or
whose body the HAR did not save are listed on stderr and under \"skipped\" in --json
output. Without --host, every host is imported and the hosts are listed.

FILE is replaced whole, atomically: an import is a re-generation.

Examples:
  envd import har session.har --out stubs/users.json --host users.staging.example.com
  envd import har session.har --out stubs/all.json --redact-json '$.password' --json

Exit codes:
  0  imported; anything left out is listed (on stderr, and in --json)
  2  unreadable or invalid input (the message names the file and JSON pointer), or a
     --host with no entries
  3  cannot write FILE";

#[derive(Debug, Args)]
struct WiremockArgs {
    /// A mappings directory, a WireMock root (mappings/ and __files/), or a mapping file
    #[arg(value_name = "DIR|FILE")]
    input: PathBuf,

    #[command(flatten)]
    output: ImportOutput,

    /// Provider name written in the recording [default: `wiremock`]
    #[arg(long)]
    provider: Option<String>,
}

#[derive(Debug, Args)]
struct HarArgs {
    /// A HAR 1.2 file
    #[arg(value_name = "FILE")]
    input: PathBuf,

    #[command(flatten)]
    output: ImportOutput,

    /// Provider name written in the recording [default: the host, when there is one]
    #[arg(long)]
    provider: Option<String>,

    /// Keep only requests to this host (`name` or `name:port`)
    #[arg(long)]
    host: Option<String>,

    /// Another header to redact; repeatable
    #[arg(long = "redact-header", value_name = "NAME")]
    redact_headers: Vec<String>,

    /// A JSON field to redact in bodies, such as `$.password` or `$.cards[*].number`;
    /// repeatable
    #[arg(long = "redact-json", value_name = "PATH")]
    redact_json: Vec<String>,
}

/// Where an import goes and how it is reported: shared by every importer.
#[derive(Debug, Args)]
struct ImportOutput {
    /// The recording to write (a Pact V4 file), replaced whole
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Consumer name written in the recording
    #[arg(long, default_value = crate::recording::DEFAULT_CONSUMER)]
    consumer: String,

    /// Print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

/// Provider name of a WireMock import when none is given.
const WIREMOCK_PROVIDER: &str = "wiremock";

impl ImportCommand {
    fn run(self) -> Result<(), Error> {
        let (imported, output, input) = match self {
            ImportCommand::Wiremock(args) => {
                let provider = args.provider.as_deref().unwrap_or(WIREMOCK_PROVIDER);
                let imported =
                    import::wiremock::import(&args.input, &args.output.consumer, provider)?;
                (imported, args.output, args.input)
            }
            ImportCommand::Har(args) => {
                let options = import::har::Options {
                    redaction: crate::recording::Redaction::new(
                        &args.redact_headers,
                        &args.redact_json,
                    )
                    .map_err(ImportError::from)?,
                    consumer: args.output.consumer.clone(),
                    provider: args.provider,
                    host: args.host,
                };
                (
                    import::har::import(&args.input, &options)?,
                    args.output,
                    args.input,
                )
            }
        };
        import::write(&imported, &output.out)?;
        let report = &imported.report;
        let mut stderr = std::io::stderr().lock();
        for skipped in &report.skipped {
            let _ = writeln!(
                stderr,
                "envd: warning: {}: {}",
                skipped.source, skipped.reason
            );
        }
        let mut stdout = std::io::stdout().lock();
        if output.json {
            let mut json = serde_json::to_value(report).unwrap_or_default();
            json["out"] = serde_json::json!(output.out.display().to_string());
            let _ = writeln!(stdout, "{json:#}");
        } else {
            let hosts = match report.hosts.as_slice() {
                [] | [_] => String::new(),
                several => format!(" (hosts: {})", several.join(", ")),
            };
            let _ = writeln!(
                stdout,
                "envd: imported {} interactions from {} into {}{hosts}; {} warnings",
                report.interactions,
                input.display(),
                output.out.display(),
                report.skipped.len()
            );
        }
        Ok(())
    }
}

const PROXY_HELP: &str = "\
Once it accepts connections, envd prints `envd: listening on http://HOST:PORT` on stdout.

Recording: every finished exchange is appended to FILE.journal and synced before its
response is released; FILE (a Pact V4 file) is replaced whole at a clean stop, or at the
next start if a crash left a journal. An existing FILE is added to, never truncated.
Authorization, Proxy-Authorization, Cookie, Set-Cookie and X-Api-Key (and every
--redact-header / --redact-json) are replaced by placeholders with any-value matching rules
before anything reaches disk. Request headers recorded: Accept, Content-Type and the
redacted ones; all response headers but hop-by-hop ones.

An upstream that is down, resets or is slower than --timeout gets the client a 502 or 504
with a problem+json body naming the upstream; the proxy keeps serving.

Faults: --latency, --error-rate, --error-status, --reset-rate and --seed as for `envd stub`;
GET/POST/DELETE /__envd/faults at run time. Injected errors and resets are not forwarded.

Examples:
  envd proxy --target https://users.staging.example.com --record stubs/users.json
  STAGING_TOKEN=… envd proxy --target https://users.staging.example.com \\
      --header 'Authorization: Bearer ${STAGING_TOKEN}' --record stubs/users.json --spy

Exit codes:
  0  stopped by SIGINT or SIGTERM; the recording is written
  2  bad arguments, or a recording that is not a Pact file
  3  cannot listen, or cannot write the recording";

#[derive(Debug, Args)]
struct ProxyArgs {
    /// The staging service: http:// or https:// URL, optionally with a base path
    #[arg(long, value_name = "URL")]
    target: String,

    /// Record exchanges to this Pact V4 file (added to if it exists)
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// Answer from the recording when it matches; forward and record the rest
    #[arg(long, requires = "record")]
    spy: bool,

    /// A header added to every upstream request, `NAME: VALUE`; `${VAR}` takes VAR from
    /// the environment. Injected values never reach a recording or a log; repeatable
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,

    /// Another header to redact in recordings; repeatable
    #[arg(long = "redact-header", value_name = "NAME")]
    redact_headers: Vec<String>,

    /// A JSON field to redact in recorded bodies, such as `$.password` or
    /// `$.cards[*].number`; repeatable
    #[arg(long = "redact-json", value_name = "PATH")]
    redact_json: Vec<String>,

    /// Consumer name written in the recording
    #[arg(long, default_value = crate::recording::DEFAULT_CONSUMER)]
    consumer: String,

    /// Provider name written in the recording [default: the target's host]
    #[arg(long)]
    provider: Option<String>,

    /// Extra PEM certificate(s) to trust for an https target (a private CA)
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// The gateway's token, for a target `envd://HOST:PORT/NAME` (a route of a staging
    /// gateway; `envd+http://` for a plain-HTTP gateway on loopback)
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// How long the upstream may take to answer before the client gets 504
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: std::time::Duration,

    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Port to listen on; 0 picks a free one (printed in the listening line)
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Largest request or recorded response body, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,

    #[command(flatten)]
    faults: FaultArgs,
}

impl ProxyArgs {
    fn options(self) -> Result<proxy::Options, Error> {
        let upstream = proxy::Upstream::new(&self.target, self.ca_cert.as_deref())
            .map_err(proxy::ProxyError::from)?;
        let mut inject: Vec<_> = self
            .headers
            .iter()
            .map(|spec| proxy::injected_header(spec, |name| std::env::var(name).ok()))
            .collect::<Result<_, proxy::ProxyError>>()?;
        if proxy::gateway_route(&self.target).is_some() {
            let path = self.token_file.as_deref().ok_or_else(|| {
                proxy::ProxyError::Upstream(proxy::UpstreamError::GatewayToken {
                    target: self.target.clone(),
                })
            })?;
            let token =
                crate::daemon::Token::read(path).map_err(|error| proxy::ProxyError::Header {
                    spec: "--token-file".into(),
                    reason: error.to_string(),
                })?;
            inject.retain(|(name, _)| name != hyper::header::AUTHORIZATION);
            inject.push((hyper::header::AUTHORIZATION, token.bearer()));
        }
        let redaction = crate::recording::Redaction::new(&self.redact_headers, &self.redact_json)
            .map_err(|error| proxy::ProxyError::Header {
            spec: "--redact-json".into(),
            reason: error.to_string(),
        })?;
        let faults = self.faults.faults()?;
        let provider = self.provider.unwrap_or_else(|| upstream.host().to_owned());
        Ok(proxy::Options {
            upstream,
            address: SocketAddr::new(self.host, self.port),
            record: self.record,
            spy: self.spy,
            inject,
            redaction,
            consumer: self.consumer,
            provider,
            timeout: self.timeout,
            limits: server::Limits {
                max_body_bytes: self.max_body,
                ..server::Limits::default()
            },
            faults,
            seed: self.faults.seed,
        })
    }
}

/// Faults and latency injected into answers; the same flags on `stub` and `proxy`.
#[derive(Debug, Args)]
struct FaultArgs {
    /// Delay before each answer: `200ms`, `lognormal:median=80ms,sigma=0.4`, or `recorded`
    /// (the latency recorded with each interaction)
    #[arg(long, value_name = "SPEC")]
    latency: Option<String>,

    /// Share of answers replaced by an injected error (0 to 1)
    #[arg(long, value_name = "RATE")]
    error_rate: Option<f64>,

    /// Status of an injected error
    #[arg(long, value_name = "STATUS", default_value_t = crate::faults::DEFAULT_ERROR_STATUS)]
    error_status: u16,

    /// Share of requests whose connection is reset without an answer (0 to 1)
    #[arg(long, value_name = "RATE")]
    reset_rate: Option<f64>,

    /// Seed for fault decisions: the same requests get the same faults [default: random,
    /// shown by GET /__envd/faults]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

impl FaultArgs {
    fn faults(&self) -> Result<crate::faults::Faults, crate::faults::FaultError> {
        crate::faults::Faults::from_flags(
            self.latency.as_deref(),
            self.error_rate,
            Some(self.error_status),
            self.reset_rate,
        )
    }
}

/// `200ms`, `30s`, `2m`: a number and a unit.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::faults::duration(text)
        .ok_or_else(|| format!("expected a duration such as 200ms, 30s or 2m, found {text:?}"))
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
  POST reset                  restart sequences, clear the journal, restore --state,
                              clear run-time faults
  GET|POST|DELETE faults      faults in force; POST {\"latency\":\"200ms\",\"errorRate\":0.05,
                              \"errorStatus\":503,\"resetRate\":0.01,\"interaction\":\"…\"}
                              sets them (for all, or one interaction); DELETE restores
                              the command line's. Answers with a fault carry
                              x-envd-fault: latency=200ms, error=503

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

    #[command(flatten)]
    faults: FaultArgs,
}

impl StubArgs {
    fn options(self) -> Result<stub::Options, Error> {
        let faults = self.faults.faults()?;
        let mut contracts = self.contracts;
        contracts.extend(self.recordings);
        Ok(stub::Options {
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
            faults,
            seed: self.faults.seed,
        })
    }
}

/// Runs envd with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("{}", error.render());
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<u8, Error> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)
    };
    match cli.command {
        Command::Stub(args) => {
            let options = args.options()?;
            let runtime = runtime()?;
            runtime.block_on(stub::run(
                options,
                |address, _journal| announce(address),
                stop_signal(&runtime),
            ))?
        }
        Command::Proxy(args) => {
            let options = args.options()?;
            let runtime = runtime()?;
            runtime.block_on(proxy::run(
                options,
                |address, _journal| announce(address),
                stop_signal(&runtime),
            ))?
        }
        Command::Daemon(args) => {
            let (Some(listen), Some(token_file)) = (args.listen, args.token_file.clone()) else {
                let runtime = runtime()?;
                let home = daemon::local::home();
                runtime.block_on(daemon::local::run(
                    &home,
                    |socket| {
                        let mut stdout = std::io::stdout().lock();
                        let _ = writeln!(stdout, "envd: listening on unix:{}", socket.display());
                        let _ = stdout.flush();
                    },
                    stop_signal(&runtime),
                ))?;
                return Ok(EXIT_OK);
            };
            let options = args.options(listen, &token_file)?;
            let scheme = if options.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let announce = |address| announce_url(&format!("{scheme}://{address}"));
            let runtime = runtime()?;
            runtime.block_on(daemon::gateway::run(
                options,
                announce,
                stop_signal(&runtime),
            ))?
        }
        Command::Import(command) => command.run()?,
        Command::Up(args) => return environment::up(args, runtime()?),
        Command::Down(args) => return environment::down(args, runtime()?),
        Command::Ps(args) => return environment::ps(args, runtime()?),
        Command::Logs(args) => return environment::logs(args, runtime()?),
        Command::Journal(args) => return environment::journal(args, runtime()?),
        Command::Run(args) => return environment::run(args, runtime()?),
        Command::Sample(args) => run_sample(args)?,
        Command::Fixture(command) => command.run()?,
        Command::Verify(args) => {
            return Ok(if args.run(runtime()?)? {
                EXIT_OK
            } else {
                EXIT_FAILED
            })
        }
        Command::Contract(ContractCommand::Diff(args)) => {
            return Ok(if args.run()? { EXIT_OK } else { EXIT_FAILED })
        }
    }
    Ok(EXIT_OK)
}

/// The line scripts and test harnesses wait for.
fn announce(address: SocketAddr) {
    announce_url(&format!("http://{address}"));
}

fn announce_url(url: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "envd: listening on {url}");
    let _ = stdout.flush();
}

/// A future that completes on the first SIGINT or SIGTERM. The handlers are installed
/// now, not when the future is first polled: a server announces itself before it polls its
/// stop signal, and a SIGTERM in between must stop it gracefully, not kill it.
pub(crate) fn stop_signal(
    runtime: &tokio::runtime::Runtime,
) -> impl std::future::Future<Output = ()> {
    let _inside = runtime.enter();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
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
