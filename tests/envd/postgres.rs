//! PostgreSQL fixtures, for real: `envd sample postgres://…`, `envd fixture check` against
//! a database, and a `service` dependency loaded with a fixture before the service under
//! test starts. One server serves the whole test run (initdb in a temporary directory, as
//! `nobody` when the tests run as root, listening on a Unix socket in that directory
//! only), with a database per test. `scripts/test` installs PostgreSQL where it is
//! missing (scripts/provision-postgres).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use crate::environments::Home;
use crate::harness::{eventually, run, Workdir};

/// Fixtures sampled from files, loaded by the same server's databases.
mod files;

/// Debian's `nobody`: PostgreSQL refuses to run as root.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Where initdb, postgres and psql are: on PATH, else Debian's versioned directory.
fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
    });
    let debian = || {
        let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .collect();
        found.sort();
        found.pop()
    };
    on_path.or_else(debian).unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run the tests through scripts/test, which installs it (scripts/provision-postgres)")
    })
}

fn program(name: &str) -> String {
    let bin = bin_dir();
    let path = bin.join(name);
    // psql may live beside initdb or only on PATH (Debian's wrapper).
    if path.exists() {
        path.display().to_string()
    } else {
        name.to_owned()
    }
}

/// A command that runs as `nobody` when the tests run as root.
fn unprivileged(program: &str) -> Command {
    let mut command = Command::new(program);
    if is_root() {
        use std::os::unix::process::CommandExt;
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

/// A test server. It stops, and its directory goes, when it is dropped or the test binary
/// exits: the shell that started it waits on a pipe only this process holds.
struct Server {
    dir: PathBuf,
    /// Its TCP port on 127.0.0.1 when it listens there (the Unix socket is named by it too).
    port: Option<u16>,
    _watchdog: Child,
    _stdin: Mutex<ChildStdin>,
}

/// The test run's server: Unix socket only.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start("envd-pg", None, |_| Vec::new()))
}

/// A server in a directory named after `name`, listening on `port` of 127.0.0.1 too when
/// given; `prepare` gets the directory (the data directory is `data` in it) before it
/// starts, and what it writes there goes to the server's user.
fn start(name: &str, port: Option<u16>, prepare: impl FnOnce(&Path) -> Vec<String>) -> Server {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    chown_nobody(&dir);
    let initdb = unprivileged(&program("initdb"))
        .args(["-D", &data.display().to_string()])
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .output()
        .expect("initdb");
    assert!(
        initdb.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    let mut options = prepare(&dir);
    for entry in fs::read_dir(&dir).unwrap() {
        chown_nobody(&entry.unwrap().path());
    }
    match port {
        Some(port) => options.push(format!("-c listen_addresses=127.0.0.1 -p {port}")),
        None => options.push("-c listen_addresses=".into()),
    }
    let script = format!(
        "{} -D data -k {dir} -c fsync=off {} >log 2>&1 & pid=$!; read _; kill -INT $pid; wait $pid; cd /; rm -rf {dir}",
        program("postgres"),
        options.join(" "),
        dir = dir.display()
    );
    let mut watchdog = unprivileged("sh")
        .args(["-c", &script])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start postgres");
    let stdin = watchdog.stdin.take().unwrap();
    let server = Server {
        dir,
        port,
        _watchdog: watchdog,
        _stdin: Mutex::new(stdin),
    };
    eventually(
        || postgres::Client::connect(&server.url("postgres"), postgres::NoTls).ok(),
        "the test PostgreSQL server to accept connections",
    );
    server
}

/// Hands `path` to the server's user when the tests run as root.
fn chown_nobody(path: &Path) {
    if is_root() {
        // SAFETY: a valid C string path; chown has no other preconditions.
        let path = std::ffi::CString::new(path.display().to_string()).unwrap();
        assert_eq!(unsafe { libc::chown(path.as_ptr(), NOBODY, NOBODY) }, 0);
    }
}

impl Server {
    /// A URL for database `name` on the Unix socket.
    fn url(&self, name: &str) -> String {
        let host = self.dir.display().to_string().replace('/', "%2F");
        match self.port {
            Some(port) => format!("postgres://postgres@{host}:{port}/{name}"),
            None => format!("postgres://postgres@{host}/{name}"),
        }
    }

    /// A new database `name` holding `sql`; its URL.
    fn database(&self, name: &str, sql: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = self.url(name);
        self.execute(&url, sql);
        url
    }

    fn execute(&self, url: &str, sql: &str) {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client.batch_execute(sql).unwrap();
    }

    fn query(&self, url: &str, sql: &str) -> Vec<postgres::Row> {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client.query(sql, &[]).unwrap()
    }
}

/// Customers who refer each other (a self-reference), orders that refer to customers by
/// email (a unique key, masked), two tables that refer to each other (a cycle), and
/// parcels that refer to shipments by a composite key.
const SHOP: &str = "
CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL UNIQUE,
    referred_by integer REFERENCES customers (id), tier text);
CREATE TABLE orders (id integer PRIMARY KEY,
    customer_email text NOT NULL REFERENCES customers (email),
    amount numeric(10,2), placed date, note text);
CREATE TABLE teams (id integer PRIMARY KEY, lead integer);
CREATE TABLE members (id integer PRIMARY KEY, team integer REFERENCES teams (id));
ALTER TABLE teams ADD FOREIGN KEY (lead) REFERENCES members (id) DEFERRABLE INITIALLY DEFERRED;
INSERT INTO customers SELECT i, 'user' || i || '@example.com',
    CASE WHEN i % 10 <> 1 THEN i - 1 END, (ARRAY['new', 'gold', 'gone'])[i % 3 + 1]
    FROM generate_series(1, 400) i;
INSERT INTO orders SELECT i, 'user' || (i * 7 % 400 + 1) || '@example.com',
    (i % 1000) / 8.0, date '2024-01-01' + i % 365,
    CASE WHEN i % 50 = 0 THEN NULL WHEN i = 7 THEN '\\N' WHEN i = 8 THEN '' ELSE 'ok' END
    FROM generate_series(1, 2000) i;
CREATE TABLE shipments (order_id integer, region text, PRIMARY KEY (order_id, region));
CREATE TABLE parcels (id integer PRIMARY KEY, order_id integer, region text,
    FOREIGN KEY (order_id, region) REFERENCES shipments (order_id, region));
INSERT INTO shipments SELECT i, r FROM generate_series(1, 300) i, (VALUES ('eu'), ('us')) v (r);
INSERT INTO parcels SELECT i, i % 300 + 1, CASE WHEN i % 3 = 0 THEN 'eu' ELSE 'us' END
    FROM generate_series(1, 900) i;
BEGIN;
INSERT INTO teams SELECT i, i FROM generate_series(1, 60) i;
INSERT INTO members SELECT i, i % 60 + 1 FROM generate_series(1, 60) i;
COMMIT;
";

fn sample(args: &[&str]) -> String {
    let (code, stdout, stderr) = run(&[&["sample"], args].concat());
    assert_eq!(code, Some(0), "envd sample {args:?}: {stderr}");
    stdout
}

fn fixture(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("fixture.json")).unwrap()).unwrap()
}

/// Runs `DIR/load.sql` with psql into the database at `url`, which must succeed.
fn load_script(url: &str, dir: &Path) {
    let psql = Command::new(program("psql"))
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-f", "load.sql"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
}

/// The item of a JSON list whose `field` is `name`.
fn named<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|item| item[field] == name)
        .unwrap_or_else(|| panic!("no {field} {name} in {list}"))
}

/// `field` of every item of a JSON list.
fn each<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

#[test]
fn a_schema_samples_with_every_foreign_key_resolving() {
    let server = server();
    let url = server.database("sample_schema", SHOP);
    let work = Workdir::new();
    let out = |name: &str| work.path(name).display().to_string();
    let args = |dir: &str, seed: &str| {
        [
            url.clone(),
            "--out".into(),
            out(dir),
            "--rows".into(),
            "10".into(),
            "--seed".into(),
            seed.into(),
            "--mask".into(),
            "email".into(),
            "--mask".into(),
            "orders.customer_email".into(),
        ]
    };
    let stdout = sample(&args("a", "7").each_ref().map(String::as_str));
    assert!(stdout.contains("envd: orders: kept"), "{stdout}");
    sample(&args("b", "7").each_ref().map(String::as_str));
    sample(&args("c", "8").each_ref().map(String::as_str));
    let (a, b, c) = (work.path("a"), work.path("b"), work.path("c"));
    for file in [
        "customers.csv",
        "orders.csv",
        "teams.csv",
        "members.csv",
        "load.sql",
        "fixture.json",
    ] {
        assert_eq!(
            fs::read(a.join(file)).unwrap(),
            fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_ne!(
        fs::read(a.join("orders.csv")).unwrap(),
        fs::read(c.join("orders.csv")).unwrap()
    );

    let manifest = fixture(&a);
    let catalog = &manifest["postgres"];
    assert_eq!(catalog["schema"], "public");
    let order = each(&catalog["tables"], "name");
    let position = |name: &str| order.iter().position(|t| *t == name).unwrap();
    assert!(position("customers") < position("orders"), "{order:?}");
    assert!(position("shipments") < position("parcels"), "{order:?}");
    for relation in manifest["relations"].as_array().unwrap() {
        assert_eq!(relation["unresolved"], 0, "{relation}");
    }
    let orders = named(&manifest["tables"], "name", "orders");
    assert_eq!(orders["stats"]["rows"], 2000);
    assert_eq!(orders["schema"][2]["sqlType"], "numeric(10,2)");

    // The masked emails are not the source's, and hold `\N` and the empty string apart
    // from null.
    let written = fs::read_to_string(a.join("orders.csv")).unwrap();
    assert!(!written.contains("@example.com"), "{written}");
    assert!(written.contains(",\"\\N\"\n"), "{written}");

    // Loading the fixture adds every foreign key after the rows: each one is checked, the
    // masked email key included.
    let copy = loaded_by_script(server, "sample_schema_copy", &a);
    let joined = server.query(
        &copy,
        "SELECT count(*) FROM orders JOIN customers ON customers.email = orders.customer_email",
    );
    assert_eq!(
        joined[0].get::<_, i64>(0),
        orders["kept"]["total"].as_i64().unwrap()
    );
    let nulls = server.query(&copy, "SELECT count(*) FILTER (WHERE note IS NULL), count(*) FILTER (WHERE note = '\\N'), count(*) FILTER (WHERE note = '') FROM orders");
    assert!(nulls[0].get::<_, i64>(0) >= 1);
    assert_eq!(nulls[0].get::<_, i64>(1), 1);
    assert_eq!(nulls[0].get::<_, i64>(2), 1);
}

#[test]
fn bad_sources_and_masks_are_named() {
    let server = server();
    let url = server.database("bad_sources", SHOP);
    let missing = server.url("no_such_database");
    let row_type = server.database(
        "bad_sources_row_type",
        "CREATE SCHEMA other; CREATE TABLE other.point (x integer);
         CREATE TABLE uses (id integer PRIMARY KEY, at other.point);",
    );
    let work = Workdir::new();
    let out = work.path("out").display().to_string();
    let csv = work.write("orders.csv", "id\n1\n").display().to_string();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &[&url, "--table", "ghosts"],
            2,
            "--table ghosts: no table ghosts in schema public; its tables are customers, members, orders, parcels, shipments, teams",
        ),
        (
            &[&url, "--mask", "amount"],
            2,
            "--mask orders.amount: a column of type numeric(10,2)",
        ),
        (
            &[&url, "--mask", "email"],
            2,
            "--mask: customers.email is masked but orders.customer_email is not, which breaks foreign key orders_customer_email_fkey",
        ),
        (&[&url, &csv], 2, "a PostgreSQL source is sampled on its own"),
        (&[&csv, "--table", "orders"], 2, "--table: only for a PostgreSQL source"),
        (&[&missing], 2, "database \"no_such_database\" does not exist"),
        // What the fixture cannot create is named with the table that needs it.
        (
            &[&row_type],
            0,
            "type other.point (the row type of a table), which table uses uses, is not carried: create it in the target before loading",
        ),
        // A table whose parent is left out: the key is named, not silently broken.
        (
            &[&url, "--table", "orders"],
            0,
            "foreign key orders_customer_email_fkey of orders (customer_email) references public.customers (email), which is not sampled",
        ),
    ];
    for (args, code, expected) in cases {
        let (status, _, stderr) = run(&[&["sample", "--out", &out], *args].concat());
        assert_eq!(status, Some(*code), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn drift_in_an_altered_table_exits_1() {
    let server = server();
    let url = server.database("drift", SHOP);
    let work = Workdir::new();
    let out = work.path("fixture").display().to_string();
    sample(&[&url, "--out", &out, "--rows", "50"]);
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("envd: no drift"), "{stdout}");

    server.execute(
        &url,
        "ALTER TABLE orders ADD COLUMN coupon text; ALTER TABLE orders ALTER COLUMN amount TYPE double precision",
    );
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("envd: drift in table orders:"), "{stdout}");
    assert!(stdout.contains("coupon"), "{stdout}");
    assert!(
        stdout.contains("declared type changed  numeric(10,2) -> double precision"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["fixture", "check", &url, "--against", &out, "--json"]);
    assert_eq!(code, Some(1));
    let reports: Value = serde_json::from_str(&stdout).unwrap();
    let orders = named(&reports, "table", "orders");
    assert_eq!(
        each(&orders["changes"], "change"),
        ["declared-type-changed", "column-added"]
    );
}

/// The objects a fixture carries drift too: an enum label added in the source, an index
/// dropped and another created. Before the change, the same fixture has no drift.
#[test]
fn drift_in_enum_labels_and_indexes_exits_1() {
    let server = server();
    let url = server.database("object_drift", CATALOGUE);
    let work = Workdir::new();
    let out = work.path("fixture").display().to_string();
    sample(&[&url, "--out", &out, "--rows", "3"]);
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("drift in"), "{stdout}");

    // Its own statement: a label added is not usable in the transaction that adds it.
    server.execute(&url, "ALTER TYPE mood ADD VALUE 'ecstatic'");
    server.execute(
        &url,
        "DROP INDEX items_price; CREATE INDEX items_note ON items (note)",
    );
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("envd: drift in the extensions, types and functions of schema public:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mood    enum labels changed  added ecstatic"),
        "{stdout}"
    );
    assert!(stdout.contains("envd: drift in table items:"), "{stdout}");
    assert!(stdout.contains("items_price  index removed"), "{stdout}");
    assert!(
        stdout.contains("items_note   index added    CREATE INDEX items_note ON public.items USING btree (note)"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&["fixture", "check", &url, "--against", &out, "--json"]);
    assert_eq!(code, Some(1));
    let reports: Value = serde_json::from_str(&stdout).unwrap();
    let objects = named(&reports, "table", "public");
    assert_eq!(objects["schemaObjects"], true);
    assert_eq!(each(&objects["changes"], "change"), ["enum-labels-changed"]);
    assert_eq!(objects["changes"][0]["object"], "mood");
    assert_eq!(
        objects["changes"][0]["added"],
        serde_json::json!(["ecstatic"])
    );
    let items = named(&reports, "table", "items");
    let indexes: Vec<&str> = items["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "index")
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(indexes, ["object-removed", "object-added"]);
}

/// The query the shop's service under test runs at its start.
const COUNT_ORDERS: &str =
    "SELECT count(*) FROM orders JOIN customers ON customers.email = orders.customer_email";

/// A manifest whose `db` dependency is a real PostgreSQL that envd starts (as `nobody`
/// when root), holding `schema` (if any) before it is loaded with `fixture`; the service
/// under test runs `query` at its start, printing each row after `orders: `, then serves.
fn shop_manifest(home: &Home, fixture: &Path, query: &str, schema: Option<&str>) -> String {
    let user = if is_root() { "user = \"nobody\"\n" } else { "" };
    let service = format!(
        "name = \"orders\"\ncommand = [\"sh\", \"-c\", \"{psql} \\\"$DATABASE_URL\\\" -Atqf query.sql | sed 's/^/orders: /' && exec python3 -m http.server {{port}} --bind 127.0.0.1\"]\nhealth = \"/\"",
        psql = program("psql")
    );
    // Single-user mode runs the schema before the server listens, so envd finds its
    // tables when it loads the fixture.
    let create = match schema {
        Some(_) => format!(
            "{} --single -j -D data postgres < schema.sql >/dev/null && ",
            program("postgres")
        ),
        None => String::new(),
    };
    let deps = format!(
        "[deps.db]\nmode = \"service\"\n{user}cwd = \"db\"\n\
         command = [\"sh\", \"-c\", \"{initdb} -D data -U postgres -A trust --no-sync >/dev/null && {create}exec {postgres} -D data -p {{port}} -k . -c listen_addresses=127.0.0.1 -c fsync=off\"]\n\
         health = {{ log = \"ready to accept connections\" }}\nstart_timeout = \"60s\"\n\
         url = \"postgres://postgres@127.0.0.1:{{port}}/postgres\"\nfixture = \"{fixture}\"\nurl_env = \"DATABASE_URL\"",
        initdb = program("initdb"),
        postgres = program("postgres"),
        fixture = fixture.display(),
    );
    let manifest = home.manifest(&service, &deps);
    // The server's directory must be its user's.
    let dir = Path::new(&manifest).parent().unwrap().to_owned();
    fs::write(dir.join("query.sql"), query).unwrap();
    let db = dir.join("db");
    fs::create_dir_all(&db).unwrap();
    if let Some(schema) = schema {
        // Single-user mode ends an entry at a semicolon and an empty line.
        fs::write(db.join("schema.sql"), format!("{schema}\n\n")).unwrap();
    }
    if is_root() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    chown_nobody(&db);
    manifest
}

#[test]
fn a_service_dependency_gets_its_fixture_before_the_service_under_test_starts() {
    let server = server();
    let url = server.database("load_fixture", SHOP);
    let work = Workdir::new();
    let fixture_dir = work.path("shop");
    sample(&[
        &url,
        "--out",
        fixture_dir.to_str().unwrap(),
        "--rows",
        "20",
        "--mask",
        "email",
        "--mask",
        "customer_email",
    ]);
    let kept = named(&fixture(&fixture_dir)["tables"], "name", "orders")["kept"]["total"]
        .as_u64()
        .unwrap();

    let home = Home::new();
    let manifest = shop_manifest(&home, &fixture_dir, COUNT_ORDERS, None);
    let id = home.up(&manifest)["id"].as_str().unwrap().to_owned();
    let logs = home.envd(&["logs", &id, "orders"]);
    assert!(
        logs.stdout.contains(&format!("orders: {kept}\n")),
        "{}",
        logs.stdout
    );
    assert_eq!(home.envd(&["down", &id]).code, Some(0));

    // A fixture that does not load fails the start, names why, and leaves nothing behind.
    let broken = work.path("broken");
    fs::create_dir_all(&broken).unwrap();
    for entry in fs::read_dir(&fixture_dir).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
    }
    let mut orders = fs::OpenOptions::new()
        .append(true)
        .open(broken.join("orders.csv"))
        .unwrap();
    orders
        .write_all(b"1,someone,not a number,2024-01-01,x\n")
        .unwrap();
    let home = Home::new();
    let manifest = shop_manifest(&home, &broken, COUNT_ORDERS, None);
    let stderr = load_fails(&home, &manifest);
    assert!(
        stderr.contains("loading") && stderr.contains("into table orders"),
        "{stderr}"
    );
}

/// `envd up` of `manifest`, whose `db` dependency's fixture must fail to load, leaving no
/// environment: what it printed on stderr.
fn load_fails(home: &Home, manifest: &str) -> String {
    let output = home.envd(&["up", "--detach", "-f", manifest]);
    assert_eq!(output.code, Some(3), "{}", output.stderr);
    assert!(
        output.stderr.contains("db did not start: loading fixture"),
        "{}",
        output.stderr
    );
    assert!(home.ps().is_empty(), "a failed load left an environment");
    output.stderr
}

/// Plans and accounts as an application makes them: keys from an identity and a `serial`,
/// a second identity, defaults, a generated column, checks; and notes, one of whose
/// values is larger than a file's field cap; invoices in a schema of their own.
const ACCOUNTS: &str = "
CREATE TABLE plans (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE, price numeric(8,2) NOT NULL CHECK (price >= 0));
CREATE TABLE accounts (id serial PRIMARY KEY, plan integer REFERENCES plans (id),
    ticket bigint GENERATED BY DEFAULT AS IDENTITY,
    status text NOT NULL DEFAULT 'trial', opened date DEFAULT current_date, email text,
    domain text GENERATED ALWAYS AS (split_part(email, '@', 2)) STORED,
    CONSTRAINT known_status CHECK (status IN ('trial', 'paid', 'gone')));
INSERT INTO plans (name, price) SELECT 'plan' || i, i * 5 FROM generate_series(1, 20) i;
INSERT INTO accounts (plan, status, email) SELECT i % 20 + 1,
    (ARRAY['trial', 'paid', 'gone'])[i % 3 + 1], 'a' || i || '@d' || i % 7 || '.example'
    FROM generate_series(1, 500) i;
CREATE TABLE notes (id integer PRIMARY KEY, body text);
INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 50) i;
INSERT INTO notes VALUES (51, repeat('ünïcode, \"quoted\"', 20000));
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id serial PRIMARY KEY, total integer NOT NULL DEFAULT 0);
INSERT INTO billing.invoices (total) SELECT i FROM generate_series(1, 300) i;
";

/// A new database `name` into which the fixture in `dir` was loaded by its load.sql
/// (`psql -v ON_ERROR_STOP=1 -f load.sql` in `dir`); its URL.
fn loaded_by_script(server: &Server, name: &str, dir: &Path) -> String {
    let copy = server.database(name, "");
    load_script(&copy, dir);
    copy
}

/// `SQL`'s single value, as text.
fn value(server: &Server, url: &str, sql: &str) -> String {
    server.query(url, sql)[0].get(0)
}

/// A fixture loaded by its load.sql into a database without its tables: the next INSERT
/// gets a fresh key, defaults and generated columns are filled in, checks refuse, and no
/// value was cut.
#[test]
fn a_loaded_fixture_inserts_and_refuses_like_its_source() {
    let server = server();
    let url = server.database("accounts", ACCOUNTS);
    let work = Workdir::new();
    let dir = work.path("accounts");
    sample(&[&url, "--out", dir.to_str().unwrap(), "--rows", "10"]);
    let csv = fs::read_to_string(dir.join("accounts.csv")).unwrap();
    assert!(!csv.lines().next().unwrap().contains("domain"), "{csv}");

    let copy = loaded_by_script(server, "accounts_copy", &dir);
    let top = |sql: &str| value(server, &copy, sql);
    let next = |sql: &str| (top(sql).parse::<i64>().unwrap() + 1).to_string();
    let (id, ticket, plan) = (
        next("SELECT max(id)::text FROM accounts"),
        next("SELECT max(ticket)::text FROM accounts"),
        next("SELECT max(id)::text FROM plans"),
    );
    let inserted = server.query(
        &copy,
        "INSERT INTO accounts (email) VALUES ('new@x.example') \
         RETURNING id::text, ticket::text, status, opened = current_date, domain",
    );
    let row = &inserted[0];
    assert_eq!(row.get::<_, String>(0), id);
    assert_eq!(row.get::<_, String>(1), ticket);
    assert_eq!(row.get::<_, String>(2), "trial");
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, String>(4), "x.example");
    assert_eq!(
        top("INSERT INTO plans (name, price) VALUES ('new', 1) RETURNING id::text"),
        plan
    );
    assert_eq!(
        top("SELECT count(*)::text FROM accounts WHERE domain IS DISTINCT FROM split_part(email, '@', 2)"),
        "0"
    );
    let mut client = postgres::Client::connect(&copy, postgres::NoTls).unwrap();
    for (bad, refused) in [
        (
            "INSERT INTO accounts (status) VALUES ('bogus')",
            "known_status",
        ),
        (
            "INSERT INTO plans (name, price) VALUES ('cheap', -1)",
            "plans_price_check",
        ),
        (
            "INSERT INTO plans (id, name, price) VALUES (1000, 'forced', 1)",
            "GENERATED ALWAYS",
        ),
    ] {
        let error = client.batch_execute(bad).unwrap_err();
        assert!(format!("{error:?}").contains(refused), "{bad}: {error:?}");
    }
    // The long value is the source's, whole.
    let body = "SELECT md5(body) || length(body) FROM notes WHERE id = 51";
    assert_eq!(top(body), value(server, &url, body));

    // Outside `public`, a default still names its own schema's sequence.
    let billing = work.path("billing");
    sample(&[
        &url,
        "--schema",
        "billing",
        "--out",
        billing.to_str().unwrap(),
        "--rows",
        "10",
    ]);
    let copy = loaded_by_script(server, "billing_copy", &billing);
    let next = value(
        server,
        &copy,
        "SELECT (max(id) + 1)::text FROM billing.invoices",
    );
    assert_eq!(
        value(
            server,
            &copy,
            "INSERT INTO billing.invoices DEFAULT VALUES RETURNING id::text || ',' || total"
        ),
        format!("{next},0")
    );
}

/// A `service` dependency whose database already has the fixture's tables (and a sequence
/// further on than the fixture's keys): envd's load moves the other sequences past the
/// loaded keys, leaves that one alone, and the service under test inserts without a clash.
#[test]
fn a_service_dependency_with_its_own_tables_inserts_after_the_fixture() {
    let server = server();
    let url = server.database("accounts_service", ACCOUNTS);
    let work = Workdir::new();
    let fixture_dir = work.path("accounts");
    sample(&[&url, "--out", fixture_dir.to_str().unwrap(), "--rows", "10"]);
    let schema = ACCOUNTS.split("INSERT").next().unwrap().to_owned()
        + "CREATE TABLE notes (id integer PRIMARY KEY, body text);\n\
           SELECT setval('accounts_id_seq', 100000);";
    // Each subquery sees the rows as loaded, before its INSERT.
    let query = "INSERT INTO accounts (email) VALUES ('new@x.example') \
        RETURNING id, ticket = (SELECT max(ticket) + 1 FROM accounts), status, domain;\n\
        INSERT INTO plans (name, price) VALUES ('new', 1) \
        RETURNING id = (SELECT max(id) + 1 FROM plans);\n\
        SELECT length(body) FROM notes WHERE id = 51;\n";
    let home = Home::new();
    let manifest = shop_manifest(&home, &fixture_dir, query, Some(&schema));
    let id = home.up(&manifest)["id"].as_str().unwrap().to_owned();
    let logs = home.envd(&["logs", &id, "orders"]).stdout;
    let length = value(
        server,
        &url,
        "SELECT length(body)::text FROM notes WHERE id = 51",
    );
    for line in [
        "orders: 100001|t|trial|x.example\n",
        "orders: t\n",
        &format!("orders: {length}\n"),
    ] {
        assert!(logs.contains(line), "{line}: {logs}");
    }
    assert_eq!(home.envd(&["down", &id]).code, Some(0));
}

/// A free port on 127.0.0.1 for a server that cannot be handed a bound socket.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA, and a certificate it signs for `localhost` with its key (PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "envd test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), certificate.pem(), key.serialize_pem())
}

/// A server that takes TCP connections over TLS only, with a certificate for `localhost`:
/// sampled with `verify-full` and its CA; refused with another CA, another host name or
/// no TLS, each failure named.
#[test]
fn a_source_over_tls_is_trusted_only_as_sslmode_says() {
    let (ca, certificate, key) = certificates();
    let (other_ca, _, _) = certificates();
    let port = free_port();
    let server = start("envd-pg-tls", Some(port), |dir| {
        fs::write(dir.join("server.crt"), &certificate).unwrap();
        fs::write(dir.join("server.key"), &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("server.key"), fs::Permissions::from_mode(0o600)).unwrap();
        // TLS or nothing over TCP: a sample that works went over TLS.
        fs::write(
            dir.join("data/pg_hba.conf"),
            "local all all trust\nhostssl all binder 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let file = |name: &str| dir.join(name).display().to_string();
        vec![format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            file("server.crt"),
            file("server.key")
        )]
    });
    let admin = server.database("tls_shop", SHOP);
    server.execute(
        &admin,
        "CREATE ROLE binder LOGIN PASSWORD 'pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO binder",
    );
    let work = Workdir::new();
    let ca = work.write("ca.pem", &ca).display().to_string();
    let other_ca = work.write("other-ca.pem", &other_ca).display().to_string();
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/tls_shop?{query}");
    let out = work.path("fixture").display().to_string();

    let trusted = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    sample(&[
        &trusted,
        "--out",
        &out,
        "--table",
        "customers",
        "--rows",
        "5",
    ]);
    assert!(work.path("fixture/customers.csv").exists());
    let (code, stdout, stderr) = run(&["fixture", "check", &trusted, "--against", &out]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, _, stderr) = run(&[
        "sample",
        &url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        "--out",
        &work.path("by-ip").display().to_string(),
        "--table",
        "customers",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    // SCRAM bound to the TLS session: the server proves it holds the certificate it showed.
    let bound = format!(
        "postgres://binder:pw@localhost:{port}/tls_shop?sslmode=require&channel_binding=require"
    );
    let (code, _, stderr) = run(&[
        "sample",
        &bound,
        "--out",
        &work.path("bound").display().to_string(),
        "--table",
        "customers",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    for query in ["sslmode=require", "sslmode=allow", ""] {
        let (code, _, stderr) = run(&[
            "sample",
            &url("localhost", query),
            "--out",
            &work.path("unchecked").display().to_string(),
            "--table",
            "customers",
        ]);
        assert_eq!(code, Some(0), "{query}: {stderr}");
    }

    let refused: &[(String, String)] = &[
        (
            url("localhost", &format!("sslmode=verify-full&sslrootcert={other_ca}")),
            format!("TLS with localhost (sslmode=verify-full, sslrootcert {other_ca}): the server's certificate is not signed by a CA of sslrootcert {other_ca}"),
        ),
        (
            url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")),
            "TLS with 127.0.0.1 (sslmode=verify-full, sslrootcert".to_owned()
                + &format!(" {ca}): the server's certificate is not issued for host 127.0.0.1"),
        ),
        (url("localhost", "sslmode=disable"), "no encryption".to_owned()),
        (url("localhost", "sslmode=verify-full"), "sslmode=verify-full: needs sslrootcert=FILE".to_owned()),
        (url("localhost", "sslmode=verify"), "sslmode=verify: expected one of disable, allow, prefer, require, verify-ca, verify-full".to_owned()),
    ];
    for (source, expected) in refused {
        let (code, _, stderr) = run(&[
            "sample",
            source,
            "--out",
            &work.path("refused").display().to_string(),
        ]);
        assert_eq!(code, Some(2), "{source}: {stderr}");
        assert!(stderr.contains(expected.as_str()), "{source}: {stderr}");
    }
}

/// A production-like schema: an extension's type under a domain, enums (one in a schema of
/// its own, in a composite type), a range type, domains with defaults and checks that call
/// a function, an array of an enum; an identity counting by 10 from 100 from a sequence
/// named `item_numbers`, an owned sequence
/// counting down, a sequence no column owns counting by 3; a partial expression index, a
/// unique index, an exclusion constraint, a named unique key whose nulls are not distinct;
/// a column collated as "C"; a trigger that stamps each new row with what a function only
/// its own function calls returns, and a disabled one that would refuse it.
const CATALOGUE: &str = "
CREATE EXTENSION citext;
CREATE SCHEMA kinds;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE kinds.size AS ENUM ('s', 'm', 'l');
CREATE FUNCTION is_sku(text) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS $$ SELECT $1 ~ '^[A-Z]{3}-[0-9]+$' $$;
CREATE DOMAIN sku AS text NOT NULL CHECK (is_sku(VALUE));
CREATE DOMAIN email AS citext CHECK (VALUE LIKE '%@%');
CREATE DOMAIN positive AS numeric(10,2) DEFAULT 1 CHECK (VALUE > 0);
CREATE TYPE address AS (street text, size kinds.size);
CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE FUNCTION suffix() RETURNS text LANGUAGE sql AS $$ SELECT ' stamped' $$;
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.note := coalesce(NEW.note, '') || Suffix (); RETURN NEW; END $$;
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
CREATE SEQUENCE shared START WITH 1000 INCREMENT BY 3;
CREATE TABLE items (
    id integer GENERATED BY DEFAULT AS IDENTITY
        (SEQUENCE NAME item_numbers START WITH 100 INCREMENT BY 10 CACHE 5) PRIMARY KEY,
    code sku, buyer email, moods mood[], feeling mood NOT NULL DEFAULT 'ok', ship address,
    price positive, down serial, note text COLLATE \"C\", during tsrange, ref bigint DEFAULT nextval('shared'),
    span floatrange DEFAULT '[0.5,1.5)',
    EXCLUDE USING gist (during WITH &&),
    CONSTRAINT one_buyer_per_price UNIQUE NULLS NOT DISTINCT (buyer, price));
ALTER SEQUENCE items_down_seq INCREMENT BY -2 MINVALUE -100000 MAXVALUE -1 START WITH -1 RESTART;
CREATE INDEX items_lower_note ON items (lower(note)) WHERE feeling <> 'sad';
CREATE UNIQUE INDEX items_code ON items (code);
CREATE INDEX items_price ON items (price DESC NULLS LAST);
CREATE TRIGGER items_stamp BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION stamp();
CREATE TRIGGER items_refuse BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION refuse();
ALTER TABLE items DISABLE TRIGGER items_refuse;
INSERT INTO items (code, buyer, moods, feeling, ship, price, note, during)
    SELECT 'ABC-' || i, 'u' || i || '@x.example', ARRAY['sad', 'happy']::mood[],
    (ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::mood, ROW('street ' || i, 'm')::address, i, 'n',
    tsrange(timestamp '2024-01-01' + i * interval '1 day', timestamp '2024-01-02' + i * interval '1 day')
    FROM generate_series(1, 60) i;
";

/// What the catalog says of `items` and its sequences, for comparing two databases.
const ITEMS_CATALOG: &str = "
SELECT string_agg(definition, E'\\n' ORDER BY definition) FROM (
    SELECT pg_get_indexdef(indexrelid) AS definition FROM pg_index WHERE indrelid = 'items'::regclass
    UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'items'::regclass OR contypid <> 0
    UNION ALL SELECT pg_get_triggerdef(oid) || ' ' || tgenabled::text FROM pg_trigger
        WHERE tgrelid = 'items'::regclass AND NOT tgisinternal
    UNION ALL SELECT format('%s %s %s %s %s %s %s %s', seqrelid::regclass, seqtypid::regtype, seqstart, seqincrement,
        seqmin, seqmax, seqcache, seqcycle) FROM pg_sequence
        WHERE seqrelid IN (pg_get_serial_sequence('items', 'id')::regclass,
            pg_get_serial_sequence('items', 'down')::regclass, 'shared'::regclass)
    UNION ALL SELECT format_type(oid, NULL) || ' ' || enum_range(NULL::mood)::text
        FROM pg_type WHERE typname = 'mood'
    UNION ALL SELECT format('%s %s %s', rngtypid::regtype, rngsubtype::regtype, rngsubdiff)
        FROM pg_range WHERE rngtypid = 'floatrange'::regtype
    UNION ALL SELECT concat_ws(' ', attname, format_type(atttypid, atttypmod), attcollation::regcollation)
        FROM pg_attribute
        WHERE attrelid = 'items'::regclass AND attnum > 0
) d";

/// The types, domains, functions, indexes, exclusion constraint, sequence options and
/// triggers of a source come with its fixture: load.sql recreates them as they were, the
/// loaded rows are not stamped again, and the database then refuses and numbers as the
/// source does.
#[test]
fn a_fixture_carries_the_types_indexes_sequences_and_triggers_its_tables_use() {
    let server = server();
    let url = server.database("catalogue", CATALOGUE);
    let work = Workdir::new();
    let dir = work.path("catalogue");
    // An enum column keeps every label as a category, even at three rows; a domain over
    // citext masks as text does.
    sample(&[
        &url,
        "--out",
        dir.to_str().unwrap(),
        "--rows",
        "3",
        "--mask",
        "buyer",
    ]);
    let (code, _, stderr) = run(&[
        "sample",
        &url,
        "--out",
        &work.path("refused").display().to_string(),
        "--mask",
        "feeling",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--mask items.feeling: a column of type mood"),
        "{stderr}"
    );

    let manifest = fixture(&dir);
    let catalog = &manifest["postgres"];
    assert_eq!(catalog["extensions"][0]["name"], "citext", "{catalog}");
    let objects = each(&catalog["objects"], "sqlName");
    let position = |name: &str| {
        objects
            .iter()
            .position(|o| *o == name)
            .unwrap_or_else(|| panic!("no {name} in {objects:?}"))
    };
    assert!(position("kinds.size") < position("address"), "{objects:?}");
    assert!(
        position("public.is_sku(text)") < position("sku"),
        "{objects:?}"
    );
    assert!(
        position("public.suffix()") < position("public.stamp()"),
        "{objects:?}"
    );
    for name in ["mood", "email", "positive", "public.refuse()"] {
        position(name);
    }
    assert_eq!(
        named(&catalog["objects"], "sqlName", "mood")["labels"],
        serde_json::json!(["sad", "ok", "happy"])
    );
    let items = named(&manifest["tables"], "name", "items");
    let feeling = named(&items["stats"]["columns"], "name", "feeling");
    assert_eq!(feeling["sqlType"], "mood", "{feeling}");
    assert_eq!(
        feeling["categories"].as_array().unwrap().len(),
        3,
        "{feeling}"
    );
    let buyer = named(&items["stats"]["columns"], "name", "buyer");
    assert_eq!(
        (&buyer["sqlType"], &buyer["masked"]),
        (&"email".into(), &true.into())
    );

    let copy = loaded_by_script(server, "catalogue_copy", &dir);
    assert_eq!(
        value(server, &copy, ITEMS_CATALOG),
        value(server, &url, ITEMS_CATALOG)
    );
    let top = |sql: &str| value(server, &copy, sql);
    assert_eq!(top("SELECT count(DISTINCT feeling)::text FROM items"), "3");
    assert_eq!(
        top("SELECT count(*)::text FROM items WHERE note <> 'n stamped' OR (ship).size <> 'm' OR buyer NOT LIKE '%@%'"),
        "0"
    );
    let (id, down, shared) = (
        top("SELECT (max(id) + 10)::text FROM items"),
        top("SELECT (min(down) - 2)::text FROM items"),
        top("SELECT (max(ref) + 3)::text FROM items"),
    );
    assert_eq!(
        top("INSERT INTO items (code) VALUES ('NEW-1') RETURNING concat_ws(',', id, down, ref, note, price, feeling, span)"),
        format!("{id},{down},{shared}, stamped,1.00,ok,[0.5,1.5)")
    );
    let mut client = postgres::Client::connect(&copy, postgres::NoTls).unwrap();
    for (bad, refused) in [
        (
            "INSERT INTO items (code, feeling) VALUES ('NEW-2', 'furious')",
            "invalid input value for enum mood",
        ),
        ("INSERT INTO items (code) VALUES ('new')", "sku_check"),
        (
            "INSERT INTO items (code, price) VALUES ('NEW-3', 0)",
            "positive_check",
        ),
        (
            "INSERT INTO items (code, buyer) VALUES ('NEW-4', 'nobody')",
            "email_check",
        ),
        (
            "INSERT INTO items (code, price) VALUES ('NEW-1', 9)",
            "items_code",
        ),
        (
            "INSERT INTO items (code, price, during) SELECT 'NEW-5', 7, during FROM items LIMIT 1",
            "items_during_excl",
        ),
        (
            "INSERT INTO items (code) VALUES ('NEW-6')",
            "one_buyer_per_price",
        ),
    ] {
        let error = client.batch_execute(bad).unwrap_err();
        assert!(format!("{error:?}").contains(refused), "{bad}: {error:?}");
    }

    // The same source has not drifted from its fixture.
    let (code, stdout, stderr) =
        run(&["fixture", "check", &url, "--against", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

/// envd's own load into a database that has some of the fixture's types: an enum with a
/// label more serves and is left alone, the rest is created, and the service under test's
/// first INSERT is stamped and numbered by the identity's increment. An enum that lacks a
/// label the fixture may hold stops the start, naming the type and the labels.
#[test]
fn a_service_dependency_keeps_its_own_types_when_they_serve() {
    let server = server();
    let url = server.database("catalogue_service", CATALOGUE);
    let work = Workdir::new();
    let dir = work.path("catalogue");
    sample(&[&url, "--out", dir.to_str().unwrap(), "--rows", "10"]);
    let query = "INSERT INTO items (code, feeling) VALUES ('NEW-1', 'ecstatic') \
        RETURNING note, id = (SELECT max(id) + 10 FROM items);\n";
    let home = Home::new();
    let manifest = shop_manifest(
        &home,
        &dir,
        query,
        Some("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic');"),
    );
    let id = home.up(&manifest)["id"].as_str().unwrap().to_owned();
    let logs = home.envd(&["logs", &id, "orders"]).stdout;
    assert!(logs.contains("orders:  stamped|t\n"), "{logs}");
    assert_eq!(home.envd(&["down", &id]).code, Some(0));

    let home = Home::new();
    let manifest = shop_manifest(
        &home,
        &dir,
        query,
        Some("CREATE TYPE mood AS ENUM ('sad', 'glad');"),
    );
    let stderr = load_fails(&home, &manifest);
    assert!(
        stderr.contains(
            "type \"public\".\"mood\" exists in the target without the labels ok, happy the fixture's rows may hold (its labels: sad, glad)"
        ),
        "{stderr}"
    );
}

/// Customers, one inherited by a table of old ones; events partitioned by range of day: a year partitioned again by hash of id, another
/// with an index of its own, a default partition with a check of its own; an index and a
/// trigger on the partitioned table, a foreign key to it (by its composite key) and from it.
const PARTITIONED: &str = "
CREATE TABLE customers (id integer PRIMARY KEY, region text NOT NULL);
CREATE TABLE events (id bigint, at date NOT NULL, kind text NOT NULL,
    customer integer REFERENCES customers (id), PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
    PARTITION BY HASH (id);
CREATE TABLE events_2024_even PARTITION OF events_2024 FOR VALUES WITH (modulus 2, remainder 0);
CREATE TABLE events_2024_odd PARTITION OF events_2024 FOR VALUES WITH (modulus 2, remainder 1);
CREATE TABLE events_later PARTITION OF events DEFAULT;
ALTER TABLE events_later ADD CONSTRAINT not_before_2025 CHECK (at >= '2025-01-01');
CREATE INDEX events_kind ON events (kind);
CREATE INDEX events_2023_customer ON events_2023 (customer);
CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.kind := upper(NEW.kind); RETURN NEW; END $$;
CREATE TRIGGER events_shout BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION shout();
CREATE TABLE tags (id integer PRIMARY KEY, event bigint NOT NULL, at date NOT NULL, tag text,
    FOREIGN KEY (event, at) REFERENCES events (id, at));
CREATE TABLE reviews (id integer PRIMARY KEY, event bigint, at date,
    CONSTRAINT reviews_old_event FOREIGN KEY (event, at) REFERENCES events_2023 (id, at));
INSERT INTO customers SELECT i, (ARRAY['eu', 'us'])[i % 2 + 1] FROM generate_series(1, 50) i;
CREATE TABLE old_customers () INHERITS (customers);
INSERT INTO old_customers VALUES (1000, 'gone');
ALTER TABLE events DISABLE TRIGGER events_shout;
INSERT INTO events SELECT i, date '2023-01-01' + i * 2, (ARRAY['click', 'view', 'buy'])[i % 3 + 1],
    i % 50 + 1 FROM generate_series(1, 600) i;
ALTER TABLE events ENABLE TRIGGER events_shout;
INSERT INTO tags SELECT i, i * 2, date '2023-01-01' + i * 4, 'tag' || i FROM generate_series(100, 300) i;
";

/// What the catalog says of the partitioned tables, for comparing two databases (the
/// names PostgreSQL makes for a cloned foreign key left out).
const PARTITIONS_CATALOG: &str = "
SELECT string_agg(d, E'\\n' ORDER BY d) FROM (
    SELECT concat_ws(' ', c.relname, c.relkind, pg_get_expr(c.relpartbound, c.oid),
        pg_get_partkeydef(c.oid), (SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = c.oid)) AS d
        FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
    UNION ALL SELECT pg_get_indexdef(indexrelid) || ' ' || indisvalid FROM pg_index
        WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
    UNION ALL SELECT tgrelid::regclass || ' ' || pg_get_triggerdef(oid) || ' ' || tgenabled::text FROM pg_trigger
        WHERE NOT tgisinternal
    UNION ALL SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace AND conparentid = 0
) x";

/// Each event (id and day) in the partition that holds it: `events_2023:7:2023-01-15,…`.
const PLACEMENT: &str = "SELECT string_agg(tableoid::regclass || ':' || id || ':' || at, ',' ORDER BY id, at) FROM events";

/// Where the source keeps the events `placed` lists (as [`PLACEMENT`] writes them).
fn placed_in_source(url: &str, placed: &str) -> String {
    let keys: Vec<String> = placed
        .split(',')
        .map(|event| event.split_once(':').unwrap().1.to_owned())
        .collect();
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query_one(
            &format!("{PLACEMENT} WHERE id || ':' || at = ANY($1)"),
            &[&keys],
        )
        .unwrap()
        .get(0)
}

/// A partitioned table samples through its parent, with the partitions in fixture.json;
/// load.sql creates the same partitions with their bounds, so every row lands where it
/// was, the indexes reach every partition and no trigger fires on the loaded rows. A
/// partition is not sampled on its own. Partitions added and removed in the source drift.
#[test]
fn a_partitioned_table_loads_with_its_partitions() {
    let server = server();
    let url = server.database("partitioned", PARTITIONED);
    let work = Workdir::new();
    let dir = work.path("events");
    let (code, _, stderr) = run(&[
        "sample",
        &url,
        "--out",
        dir.to_str().unwrap(),
        "--rows",
        "40",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    // The keys to the partitions PostgreSQL adds for a foreign key to a partitioned table
    // are not the source's keys; one the source declares to a partition is named.
    assert!(!stderr.contains("not sampled"), "{stderr}");
    assert!(
        stderr.contains("foreign key reviews_old_event of reviews (event, at) references public.events_2023 (id, at), a partition of public.events: a key to one partition is not followed and the fixture leaves it out"),
        "{stderr}"
    );
    assert!(
        stderr.contains("partition events_later of events has its own constraint not_before_2025, which the fixture does not carry"),
        "{stderr}"
    );
    let manifest = fixture(&dir);
    let events = named(&manifest["postgres"]["tables"], "name", "events");
    assert_eq!(events["partitionBy"], "RANGE (at)");
    assert_eq!(
        each(&events["partitions"], "name"),
        [
            "events_2023",
            "events_2024",
            "events_2024_even",
            "events_2024_odd",
            "events_later"
        ]
    );
    assert_eq!(each(&manifest["tables"], "name").len(), 5, "{manifest}");
    // A table inherited from holds its own rows only.
    let customers = fs::read_to_string(dir.join("customers.csv")).unwrap();
    assert!(!customers.contains("gone"), "{customers}");
    let tags = named(&manifest["postgres"]["tables"], "name", "tags");
    assert_eq!(tags["foreignKeys"].as_array().unwrap().len(), 1, "{tags}");

    let copy = loaded_by_script(server, "partitioned_copy", &dir);
    // Not carried: the partition's own check, the key to a partition, the inheritance.
    let catalog = |url: &str| {
        value(server, url, PARTITIONS_CATALOG)
            .lines()
            .filter(|l| {
                !l.contains("not_before_2025")
                    && !l.contains("reviews_old_event")
                    && !l.starts_with("old_customers r")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(catalog(&copy), catalog(&url));
    let placed = value(server, &copy, PLACEMENT);
    assert_eq!(placed, placed_in_source(&url, &placed));
    for partition in [
        "events_2023",
        "events_2024_even",
        "events_2024_odd",
        "events_later",
    ] {
        assert!(
            placed.contains(&format!("{partition}:")),
            "{partition}: {placed}"
        );
    }
    assert_eq!(
        value(
            server,
            &copy,
            "SELECT count(*)::text FROM events WHERE kind <> lower(kind)"
        ),
        "0"
    );
    assert_eq!(
        value(server, &copy, "INSERT INTO events VALUES (1000, '2024-06-01', 'new') RETURNING tableoid::regclass || ' ' || kind"),
        "events_2024_even NEW"
    );

    let (code, _, stderr) = run(&[
        "sample",
        &url,
        "--out",
        &work.path("one").display().to_string(),
        "--table",
        "events_2024_odd",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--table events_2024_odd: a partition of events; sample that table, whose partitions come with it"),
        "{stderr}"
    );

    let (code, stdout, stderr) =
        run(&["fixture", "check", &url, "--against", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    server.execute(
        &url,
        "ALTER TABLE events DETACH PARTITION events_2023; \
         CREATE TABLE events_2022 PARTITION OF events FOR VALUES FROM ('2022-01-01') TO ('2023-01-01')",
    );
    let (code, stdout, stderr) =
        run(&["fixture", "check", &url, "--against", dir.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("envd: drift in table events:"), "{stdout}");
    for line in [
        "events_2023 partition removed",
        "events_2022 partition added CREATE TABLE \"public\".\"events_2022\" PARTITION OF \"public\".\"events\" FOR VALUES FROM ('2022-01-01') TO ('2023-01-01')",
        // Its own index went with it.
        "events_2023_customer index removed",
    ] {
        assert!(drift_lines(&stdout).contains(&line.to_owned()), "{line}: {stdout}");
    }
}

/// The lines of `envd fixture check`'s output, each with its runs of spaces as one.
fn drift_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// envd's own load of a partitioned fixture into a `service` dependency: the rows the
/// service under test finds are in the partitions the source keeps them in.
#[test]
fn a_service_dependency_gets_partitions_as_the_source_has_them() {
    let server = server();
    let url = server.database("partitioned_service", PARTITIONED);
    let work = Workdir::new();
    let dir = work.path("events");
    sample(&[&url, "--out", dir.to_str().unwrap(), "--rows", "30"]);
    let home = Home::new();
    let manifest = shop_manifest(&home, &dir, &format!("{PLACEMENT};\n"), None);
    let id = home.up(&manifest)["id"].as_str().unwrap().to_owned();
    let logs = home.envd(&["logs", &id, "orders"]).stdout;
    let placed = logs
        .lines()
        .find_map(|line| line.strip_prefix("orders: "))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(placed.contains("events_2024_odd:"), "{placed}");
    assert_eq!(placed, placed_in_source(&url, placed));
    assert_eq!(home.envd(&["down", &id]).code, Some(0));
}

/// People with an email of `citext` (an older version than the server's default) and
/// attributes of `hstore`; four triggers, one in each state.
const STATES: &str = "
CREATE EXTENSION citext VERSION '1.5';
CREATE EXTENSION hstore;
CREATE TABLE people (id integer PRIMARY KEY, email citext, attrs hstore);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER people_a BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER people_b BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER people_c BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER people_d BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE people DISABLE TRIGGER people_b;
ALTER TABLE people ENABLE REPLICA TRIGGER people_c;
ALTER TABLE people ENABLE ALWAYS TRIGGER people_d;
INSERT INTO people SELECT i, 'P' || i || '@x.example', hstore('n', i::text) FROM generate_series(1, 30) i;
";

const TRIGGER_STATES: &str =
    "SELECT string_agg(tgname || ' ' || tgenabled::text, ', ' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal";

/// Every trigger comes back in its state (disabled, replica, always); the extensions the
/// tables use and the triggers' states drift: a version updated, one no longer used, one
/// newly used, a trigger disabled and another enabled.
#[test]
fn drift_in_extensions_and_trigger_states_exits_1() {
    let server = server();
    let url = server.database("states", STATES);
    let work = Workdir::new();
    let dir = work.path("people");
    let out = dir.display().to_string();
    sample(&[&url, "--out", &out, "--rows", "5"]);
    let manifest = fixture(&dir);
    assert_eq!(
        named(&manifest["postgres"]["extensions"], "name", "citext")["version"],
        "1.5"
    );
    let copy = loaded_by_script(server, "states_copy", &dir);
    assert_eq!(
        value(server, &copy, TRIGGER_STATES),
        "people_a O, people_b D, people_c R, people_d A"
    );
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    server.execute(
        &url,
        "ALTER EXTENSION citext UPDATE TO '1.6'; ALTER TABLE people DROP COLUMN attrs; \
         CREATE EXTENSION pg_trgm; \
         CREATE INDEX people_trgm ON people USING gin ((email::text) gin_trgm_ops); \
         ALTER TABLE people DISABLE TRIGGER people_a; ALTER TABLE people ENABLE TRIGGER people_b",
    );
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let lines = drift_lines(&stdout);
    for line in [
        "citext extension changed version 1.5, schema public -> version 1.6, schema public",
        "hstore extension removed",
        "pg_trgm extension added version 1.6, schema public",
        "people_a trigger state changed ENABLE -> DISABLE",
        "people_b trigger state changed DISABLE -> ENABLE",
    ] {
        assert!(lines.contains(&line.to_owned()), "{line}: {stdout}");
    }
    let (_, stdout, _) = run(&["fixture", "check", &url, "--against", &out, "--json"]);
    let reports: Value = serde_json::from_str(&stdout).unwrap();
    let extensions = &named(&reports, "table", "public")["changes"];
    assert_eq!(
        each(extensions, "change"),
        ["definition-changed", "object-removed", "object-added"]
    );
}

/// Notes with comments on the table and a column, row-level security enabled and forced,
/// and three policies: one for everyone, one for a role, one restrictive.
const SECURED: &str = "
CREATE ROLE secured_reader LOGIN;
CREATE ROLE secured_writer;
CREATE TABLE notes (id integer PRIMARY KEY, owner text NOT NULL DEFAULT current_user, body text);
COMMENT ON TABLE notes IS 'What people wrote';
COMMENT ON COLUMN notes.body IS 'Markdown, it''s free text';
INSERT INTO notes SELECT i, 'user' || i % 3, 'note ' || i FROM generate_series(1, 40) i;
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON notes USING (owner = current_user) WITH CHECK (owner = current_user);
CREATE POLICY readers ON notes FOR SELECT TO secured_reader, pg_monitor USING (true);
CREATE POLICY no_drafts ON notes AS RESTRICTIVE FOR SELECT USING (body <> 'draft');
GRANT SELECT ON notes TO secured_reader;
";

/// What the catalog says of `notes`' security and comments.
const SECURITY_CATALOG: &str = "
SELECT concat_ws(E'\\n', (SELECT relrowsecurity || ' ' || relforcerowsecurity || ' ' || obj_description(oid, 'pg_class')
    FROM pg_class WHERE oid = 'notes'::regclass), col_description('notes'::regclass, 3),
    (SELECT string_agg(concat_ws(' ', policyname, permissive, roles::text, cmd, qual, with_check), E'\\n' ORDER BY policyname)
        FROM pg_policies WHERE tablename = 'notes'))";

/// Row-level security, policies and comments come back as the source has them, the
/// policies applying to the loaded rows; each kind drifts.
#[test]
fn row_level_security_and_comments_load_and_drift() {
    let server = server();
    let url = server.database("secured", SECURED);
    let work = Workdir::new();
    let dir = work.path("notes");
    let out = dir.display().to_string();
    let (code, _, stderr) = run(&["sample", &url, "--out", &out, "--rows", "10"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("row-level security"), "{stderr}");
    // A role the policies apply to samples what they show it, and is told so.
    let (code, _, stderr) = run(&[
        "sample",
        &url.replace("postgres@", "secured_reader@"),
        "--out",
        &work.path("as-reader").display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("table notes has row-level security that applies to the connecting role: the sample holds only the rows its policies show it"),
        "{stderr}"
    );
    let copy = loaded_by_script(server, "secured_copy", &dir);
    assert_eq!(
        value(server, &copy, SECURITY_CATALOG),
        value(server, &url, SECURITY_CATALOG)
    );
    // Grants are not carried; the policies apply to the loaded rows: the reader's policy
    // shows every row, the writer has none of their own.
    server.execute(
        &copy,
        "GRANT SELECT ON notes TO secured_reader, secured_writer",
    );
    let seen = |role: &str| -> i64 {
        let mut client = postgres::Client::connect(&copy, postgres::NoTls).unwrap();
        client.batch_execute(&format!("SET ROLE {role}")).unwrap();
        client
            .query_one("SELECT count(*) FROM notes", &[])
            .unwrap()
            .get(0)
    };
    let loaded: i64 = server.query(&copy, "SELECT count(*) FROM notes")[0].get(0);
    assert!(loaded > 0);
    assert_eq!(
        (seen("secured_reader"), seen("secured_writer")),
        (loaded, 0)
    );
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    server.execute(
        &url,
        "ALTER TABLE notes NO FORCE ROW LEVEL SECURITY; DROP POLICY readers ON notes; \
         CREATE POLICY writers ON notes FOR INSERT WITH CHECK (true); \
         COMMENT ON TABLE notes IS NULL; COMMENT ON COLUMN notes.body IS 'Plain text'; \
         COMMENT ON COLUMN notes.owner IS 'Who wrote it'",
    );
    let (code, stdout, stderr) = run(&["fixture", "check", &url, "--against", &out]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let lines = drift_lines(&stdout);
    for line in [
        "notes row level security changed on, forced -> on",
        "readers policy removed",
        "writers policy added CREATE POLICY writers ON public.notes AS PERMISSIVE FOR INSERT TO PUBLIC WITH CHECK (true)",
        "notes comment removed",
        "body column comment changed Markdown, it's free text -> Plain text",
        "owner column comment added Who wrote it",
    ] {
        assert!(lines.contains(&line.to_owned()), "{line}: {stdout}");
    }
}

/// A `service` dependency whose database has the fixture's table without one of its
/// indexes and its triggers: envd adds them after the rows (the disabled one disabled),
/// so the loaded rows are not stamped again and the service's insert is. An index of the
/// same name and another definition stops the start, naming both.
#[test]
fn a_service_dependency_gets_the_indexes_and_triggers_its_tables_lack() {
    let server = server();
    let url = server.database("catalogue_lacking", CATALOGUE);
    let work = Workdir::new();
    let dir = work.path("catalogue");
    sample(&[&url, "--out", dir.to_str().unwrap(), "--rows", "10"]);
    let lacking = CATALOGUE
        .split("INSERT INTO items")
        .next()
        .unwrap()
        .replace("CREATE INDEX items_price ON items (price DESC NULLS LAST);\n", "")
        .replace(
            "CREATE TRIGGER items_stamp BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION stamp();\n",
            "",
        )
        .replace(
            "CREATE TRIGGER items_refuse BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION refuse();\n",
            "",
        )
        .replace("ALTER TABLE items DISABLE TRIGGER items_refuse;\n", "");
    assert!(
        !lacking.contains("items_price") && !lacking.contains("TRIGGER"),
        "{lacking}"
    );
    let query = "SELECT count(*) FROM items WHERE note LIKE '%stamped stamped';\n\
        INSERT INTO items (code) VALUES ('NEW-1') RETURNING note;\n\
        SELECT indexdef FROM pg_indexes WHERE indexname = 'items_price';\n\
        SELECT string_agg(tgname || ' ' || tgenabled::text, ', ' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal;\n";
    let home = Home::new();
    let manifest = shop_manifest(&home, &dir, query, Some(&lacking));
    let id = home.up(&manifest)["id"].as_str().unwrap().to_owned();
    let logs = home.envd(&["logs", &id, "orders"]).stdout;
    for line in [
        "orders: 0\n",
        "orders:  stamped\n",
        "orders: CREATE INDEX items_price ON public.items USING btree (price DESC NULLS LAST)\n",
        "orders: items_refuse D, items_stamp O\n",
    ] {
        assert!(logs.contains(line), "{line}: {logs}");
    }
    assert_eq!(home.envd(&["down", &id]).code, Some(0));

    let home = Home::new();
    let other = lacking + "CREATE INDEX items_price ON items (price);\n";
    let manifest = shop_manifest(&home, &dir, query, Some(&other));
    let stderr = load_fails(&home, &manifest);
    assert!(
        stderr.contains(
            "index \"public\".\"items_price\" exists in the target as CREATE INDEX items_price ON public.items USING btree (price); the fixture has CREATE INDEX items_price ON public.items USING btree (price DESC NULLS LAST)"
        ),
        "{stderr}"
    );
}

/// A source whose foreign key was added `NOT VALID` over a row whose parent is gone: the
/// fixture keeps that row (no parent can be sampled for it) and carries the key as
/// `NOT VALID`, so loading it does not fail on rows the source itself holds, and new rows
/// are still checked.
#[test]
fn a_not_valid_foreign_key_loads_not_valid_over_its_orphans() {
    let server = server();
    let url = server.database(
        "orphans_source",
        "CREATE TABLE teams (id integer PRIMARY KEY);
         CREATE TABLE players (id integer PRIMARY KEY, team integer);
         INSERT INTO teams VALUES (1), (2);
         INSERT INTO players VALUES (1, 1), (2, 2), (3, 9);
         ALTER TABLE players ADD CONSTRAINT players_team
             FOREIGN KEY (team) REFERENCES teams (id) NOT VALID;",
    );
    let work = Workdir::new();
    let dir = work.path("orphans");
    sample(&[&url, "--out", dir.to_str().unwrap(), "--rows", "10"]);
    let written = fixture(&dir);
    let players = named(&written["postgres"]["tables"], "name", "players");
    assert_eq!(
        named(&players["foreignKeys"], "name", "players_team")["notValid"],
        true
    );
    let copy = loaded_by_script(server, "orphans_copy", &dir);
    assert_eq!(
        value(
            server,
            &copy,
            "SELECT string_agg(id || ':' || team, ',' ORDER BY id) FROM players"
        ),
        "1:1,2:2,3:9"
    );
    assert_eq!(
        value(
            server,
            &copy,
            "SELECT convalidated::text FROM pg_constraint WHERE conname = 'players_team'"
        ),
        "false"
    );
    let mut client = postgres::Client::connect(&copy, postgres::NoTls).unwrap();
    let refused = client
        .batch_execute("INSERT INTO players VALUES (4, 7)")
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("players_team"),
        "{refused:?}"
    );
}

/// A `service` dependency whose database has the partitioned table with some partitions
/// of its own: envd adds the fixture's partitions it lacks (the default one here), leaves
/// out those its own overlap (a year, and the partitions under it), and every row lands
/// in a partition.
#[test]
fn a_service_dependency_gets_the_partitions_its_table_lacks() {
    let server = server();
    let url = server.database("partitioned_lacking", PARTITIONED);
    let work = Workdir::new();
    let dir = work.path("events");
    sample(&[&url, "--out", dir.to_str().unwrap(), "--rows", "30"]);
    let schema = "CREATE TABLE events (id bigint, at date NOT NULL, kind text NOT NULL, \
        customer integer, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);\n\
        CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');\n\
        CREATE TABLE events_y2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');";
    let query = format!(
        "{PLACEMENT};\nSELECT count(*) FROM pg_indexes WHERE tablename = 'events_later';\n"
    );
    let home = Home::new();
    let manifest = shop_manifest(&home, &dir, &query, Some(schema));
    let id = home.up(&manifest)["id"].as_str().unwrap().to_owned();
    let logs = home.envd(&["logs", &id, "orders"]).stdout;
    let placed = logs
        .lines()
        .filter_map(|line| line.strip_prefix("orders: "))
        .find(|line| line.starts_with("events"))
        .unwrap_or_else(|| panic!("{logs}"));
    for partition in ["events_2023:", "events_y2024:", "events_later:"] {
        assert!(placed.contains(partition), "{partition}: {placed}");
    }
    assert!(!placed.contains("events_2024"), "{placed}");
    // The added default partition has the table's key and the fixture's index on it.
    assert!(logs.contains("orders: 2\n"), "{logs}");
    assert_eq!(home.envd(&["down", &id]).code, Some(0));
}
