//! Fixtures sampled from files (CSV, JSON Lines, Parquet) loaded into PostgreSQL by
//! `envd up`: a `service` dependency whose `url` is a database of the test server, so the
//! test reads what the load left there (and that a failed load left nothing).

use std::fs;
use std::path::Path;

use super::{load_fails, loaded_by_script, sample, server, Server};
use crate::environments::{Home, HTTP_SERVICE};
use crate::harness::Workdir;

/// A manifest whose `db` dependency stands for a database (a process that only says it is
/// ready) at `url`, loaded with `fixture` before the service under test starts.
fn manifest(home: &Home, fixture: &Path, url: &str) -> String {
    let deps = format!(
        "[deps.db]\nmode = \"service\"\n\
         command = [\"sh\", \"-c\", \"echo ready && exec sleep 600\"]\n\
         health = {{ log = \"ready\" }}\nurl = \"{url}\"\nfixture = \"{}\"\nurl_env = \"DATABASE_URL\"",
        fixture.display()
    );
    home.manifest(HTTP_SERVICE, &deps)
}

/// `envd up` with `fixture` loaded into `url`, which must succeed, then `envd down`: what
/// the daemon logged.
fn load(fixture: &Path, url: &str) -> String {
    let home = Home::new();
    let id = home.up(&manifest(&home, fixture, url))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(home.envd(&["down", &id]).code, Some(0));
    home.daemon_log()
}

/// Each row of `sql` (one text column) in order.
fn rows(server: &Server, url: &str, sql: &str) -> Vec<String> {
    server
        .query(url, sql)
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect()
}

/// `table`'s columns and their types, in order.
fn columns(server: &Server, url: &str, table: &str) -> Vec<String> {
    rows(
        server,
        url,
        &format!(
            "SELECT column_name || ' ' || data_type || CASE is_nullable WHEN 'NO' THEN ' not null' ELSE '' END \
             FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"
        ),
    )
}

/// Every row of `table` as `a|b|c` (`~` for null), sorted.
fn table_rows(server: &Server, url: &str, table: &str, columns: &[&str]) -> Vec<String> {
    let fields: Vec<String> = columns
        .iter()
        .map(|c| format!("coalesce({c}::text, '~')"))
        .collect();
    let mut found = rows(
        server,
        url,
        &format!("SELECT concat_ws('|', {}) FROM {table}", fields.join(", ")),
    );
    found.sort();
    found
}

/// The shop's sources, messy: a date that is no day, a name in Latin-1, an amount
/// `N/A`, a customer key `x7` and one no customer has (99), a row with a field too many
/// and one with a field too few; and order lines whose keys all resolve. Returns what each
/// table must hold once loaded (sorted), as `table_rows` shows it.
fn shop(work: &Workdir) -> [Vec<String>; 3] {
    let mut customers = b"id,name,signup,vip\n".to_vec();
    let mut customer_rows = Vec::new();
    for i in 1..=30 {
        let signup = match i {
            2 => "2024-02-30".to_owned(),
            _ => format!("2024-01-{:02}", i % 28 + 1),
        };
        let vip = if i % 2 == 0 { "true" } else { "false" };
        // Latin-1, which PostgreSQL's text cannot hold as it is.
        let (name, shown): (Vec<u8>, String) = match i {
            3 => (b"Caf\xe9".to_vec(), "Caf\u{fffd}".to_owned()),
            _ => (format!("name{i}").into_bytes(), format!("name{i}")),
        };
        customers.extend_from_slice(format!("{i},").as_bytes());
        customers.extend_from_slice(&name);
        customers.extend_from_slice(format!(",{signup},{vip}\n").as_bytes());
        customer_rows.push(format!("{i}|{shown}|{signup}|{vip}"));
    }
    fs::write(work.path("customers.csv"), customers).unwrap();

    let mut orders = String::from("id,customer_id,amount,placed,note\n");
    let mut order_rows = Vec::new();
    for i in 0..60 {
        let id = 100 + i;
        let customer = match i {
            5 => "x7".to_owned(),
            6 => String::new(),
            7 => "99".to_owned(),
            _ => (i % 30 + 1).to_string(),
        };
        let amount = match i {
            3 => "N/A".to_owned(),
            _ => format!("{i}.50"),
        };
        let placed = format!("2024-03-{:02}", i % 28 + 1);
        let (written, note) = match i {
            2 => ("\"has, comma\"".to_owned(), "has, comma".to_owned()),
            8 => ("ok,extra".to_owned(), "ok".to_owned()),
            _ => ("ok".to_owned(), "ok".to_owned()),
        };
        match i {
            9 => orders.push_str(&format!("{id},{customer},{amount},{placed}\n")),
            _ => orders.push_str(&format!("{id},{customer},{amount},{placed},{written}\n")),
        }
        let shown_customer = if customer.is_empty() { "~" } else { &customer };
        let shown_note = if i == 9 { "~" } else { &note };
        order_rows.push(format!(
            "{id}|{shown_customer}|{amount}|{placed}|{shown_note}"
        ));
    }
    fs::write(work.path("orders.csv"), orders).unwrap();

    let mut lines = String::from("id,order_id,qty\n");
    let mut line_rows = Vec::new();
    for i in 1..=40 {
        lines.push_str(&format!("{i},{},{i}\n", 100 + i % 60));
        line_rows.push(format!("{i}|{}|{i}", 100 + i % 60));
    }
    fs::write(work.path("lines.csv"), lines).unwrap();
    for rows in [&mut customer_rows, &mut order_rows, &mut line_rows] {
        rows.sort();
    }
    [customer_rows, order_rows, line_rows]
}

/// Samples the shop's sources (every row kept) into `out`.
fn sample_shop(work: &Workdir, out: &Path, format: Option<&str>) {
    let path = |name: &str| work.path(name).display().to_string();
    let (customers, orders, lines, out) = (
        path("customers.csv"),
        path("orders.csv"),
        path("lines.csv"),
        out.display().to_string(),
    );
    let mut args = vec![
        customers.as_str(),
        orders.as_str(),
        lines.as_str(),
        "--relation",
        "orders.customer_id=customers.id",
        "--relation",
        "lines.order_id=orders.id",
        "--rows",
        "1000",
        "--out",
        &out,
    ];
    if let Some(format) = format {
        args.extend(["--format", format]);
    }
    sample(&args);
}

const CUSTOMERS: &[&str] = &["id", "name", "signup", "vip"];
const ORDERS: &[&str] = &["id", "customer_id", "amount", "placed", "note"];
const LINES: &[&str] = &["id", "order_id", "qty"];

#[test]
fn a_csv_fixture_with_messy_rows_loads_every_row_with_its_keys() {
    let server = server();
    let work = Workdir::new();
    let expected = shop(&work);
    let dir = work.path("shop");
    sample_shop(&work, &dir, None);

    let url = server.database("files_csv", "");
    let log = load(&dir, &url);
    // What the load changed is in the daemon's log.
    assert!(
        log.contains("column amount of table orders is created as text"),
        "{log}"
    );

    // A misfit makes its column text; a relation's two sides share a type.
    assert_eq!(
        columns(server, &url, "customers"),
        [
            "id text not null",
            "name text not null",
            "signup text not null",
            "vip boolean not null",
        ]
    );
    assert_eq!(
        columns(server, &url, "orders"),
        [
            "id bigint not null",
            "customer_id text",
            "amount text not null",
            "placed date not null",
            "note text",
        ]
    );
    assert_eq!(
        columns(server, &url, "lines"),
        [
            "id bigint not null",
            "order_id bigint not null",
            "qty bigint not null"
        ]
    );
    for (table, columns, rows) in [
        ("customers", CUSTOMERS, &expected[0]),
        ("orders", ORDERS, &expected[1]),
        ("lines", LINES, &expected[2]),
    ] {
        assert_eq!(&table_rows(server, &url, table, columns), rows, "{table}");
    }

    // Keys: checked where every child resolves, NOT VALID where the fixture holds orphans;
    // both check new rows.
    assert_eq!(
        rows(
            server,
            &url,
            "SELECT conname || ' ' || convalidated FROM pg_constraint WHERE contype = 'f' ORDER BY conname"
        ),
        ["lines_order_id_fkey true", "orders_customer_id_fkey false"]
    );
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let refused = client
        .execute("INSERT INTO lines VALUES (1000, 12345, 1)", &[])
        .unwrap_err();
    assert!(
        refused.to_string().contains("lines_order_id_fkey")
            || format!("{:?}", refused.as_db_error()).contains("lines_order_id_fkey"),
        "{refused:?}"
    );
    assert!(client
        .execute(
            "INSERT INTO orders VALUES (1000, '12345', '1', '2024-01-01', 'x')",
            &[]
        )
        .is_err());

    // load.sql does the same with psql, and names each misfit.
    let script = fs::read_to_string(dir.join("load.sql")).unwrap();
    for warning in [
        "-- warning: ",
        "column amount of table orders is created as text: 1 value is not numeric (line 5 (\"N/A\"))",
        "column signup of table customers is created as text: 1 value is not date (line 3 (\"2024-02-30\"))",
        "column id of table customers is created as text to match column customer_id of table orders",
        "relation orders.customer_id=customers.id: 2 rows of orders refer to no row of customers (line 7 (\"x7\"), line 9 (\"99\"))",
        "orders.csv: 1 row has more fields than the header",
        "column name of table customers: 1 value is not UTF-8",
    ] {
        assert!(script.contains(warning), "{warning}\n{script}");
    }
    let copy = loaded_by_script(server, "files_csv_psql", &dir);
    for (table, columns, rows) in [
        ("customers", CUSTOMERS, &expected[0]),
        ("orders", ORDERS, &expected[1]),
        ("lines", LINES, &expected[2]),
    ] {
        assert_eq!(&table_rows(server, &copy, table, columns), rows, "{table}");
    }
}

#[test]
fn json_lines_and_parquet_fixtures_load() {
    let server = server();
    let work = Workdir::new();
    let expected = shop(&work);

    // The shop as typed Parquet (--format parquet): its declared types make the columns.
    let parquet = work.path("parquet");
    sample_shop(&work, &parquet, Some("parquet"));
    let url = server.database("files_parquet", "");
    load(&parquet, &url);
    assert_eq!(
        columns(server, &url, "lines"),
        [
            "id bigint not null",
            "order_id bigint not null",
            "qty bigint not null"
        ]
    );
    assert_eq!(
        table_rows(server, &url, "lines", LINES),
        expected[2],
        "lines from Parquet"
    );
    assert_eq!(
        rows(server, &url, "SELECT count(*)::text FROM orders"),
        ["60"]
    );

    // The shop as JSON Lines: a long row's extra fields are a column of their own.
    let jsonl = work.path("jsonl");
    sample_shop(&work, &jsonl, Some("jsonl"));
    let url = server.database("files_shop_jsonl", "");
    load(&jsonl, &url);
    assert_eq!(
        rows(server, &url, "SELECT count(*)::text FROM orders"),
        ["60"]
    );
    assert_eq!(
        rows(
            server,
            &url,
            "SELECT id || ' ' || _extra FROM orders WHERE _extra IS NOT NULL"
        ),
        [r#"108 ["extra"]"#]
    );

    // Events as JSON Lines: a line that is not JSON is left out, with a warning.
    let events = work.path("events.jsonl");
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!(
            "{{\"id\": {i}, \"kind\": \"click\", \"at\": \"2024-01-31T13:{:02}:00Z\", \"score\": {i}.5}}\n",
            i % 60
        ));
        if i == 4 {
            text.push_str("not json\n");
        }
    }
    fs::write(&events, text).unwrap();
    let out = work.path("events");
    sample(&[
        events.to_str().unwrap(),
        "--rows",
        "1000",
        "--out",
        out.to_str().unwrap(),
    ]);
    let url = server.database("files_jsonl", "");
    load(&out, &url);
    assert_eq!(
        columns(server, &url, "events"),
        // In the order the JSON Lines reader finds keys (by name).
        [
            "at timestamp with time zone not null",
            "id bigint not null",
            "kind text not null",
            "score numeric not null",
        ]
    );
    assert_eq!(
        rows(
            server,
            &url,
            "SELECT count(*) || ' ' || sum(score) FROM events"
        ),
        ["20 200.0"]
    );
    let script = fs::read_to_string(out.join("load.sql")).unwrap();
    assert!(
        script.contains("1 line is not a JSON object, so not a row of table events (line 6)"),
        "{script}"
    );
}

#[test]
fn a_bad_fixture_or_target_is_named_and_leaves_the_target_untouched() {
    let server = server();
    let work = Workdir::new();
    shop(&work);
    let good = work.path("shop");
    sample_shop(&work, &good, None);
    let copy = |name: &str| {
        let dir = work.path(name);
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(&good).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        dir
    };
    let tables = |url: &str| {
        rows(
            server,
            url,
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
    };
    let fails = |fixture: &Path, url: &str, message: &str| {
        let home = Home::new();
        let stderr = load_fails(&home, &manifest(&home, fixture, url));
        assert!(stderr.contains(message), "{message}\n{stderr}");
    };

    // A row with a field too many where the source had none.
    let ragged = copy("ragged");
    let mut customers = fs::read(ragged.join("customers.csv")).unwrap();
    customers.extend_from_slice(b"31,Eve,2024-01-01,true,extra\n");
    fs::write(ragged.join("customers.csv"), customers).unwrap();
    let url = server.database("files_ragged", "");
    fails(
        &ragged,
        &url,
        "customers.csv:32: 5 fields where the header has 4",
    );
    assert!(tables(&url).is_empty(), "{:?}", tables(&url));

    // A relation naming a table the fixture does not have.
    let unknown = copy("unknown");
    let text = fs::read_to_string(unknown.join("fixture.json"))
        .unwrap()
        .replace("=customers.id", "=clients.id");
    fs::write(unknown.join("fixture.json"), text).unwrap();
    let url = server.database("files_unknown", "");
    fails(
        &unknown,
        &url,
        "relation orders.customer_id=clients.id: no table clients; its tables are customers, orders, lines",
    );
    assert!(tables(&url).is_empty());

    // A target whose orders table lacks a column: nothing loads, its table is as it was.
    let url = server.database(
        "files_existing",
        "CREATE TABLE orders (id bigint, customer_id text, amount text);",
    );
    fails(
        &good,
        &url,
        "table \"public\".\"orders\" exists in the target without column placed",
    );
    assert_eq!(tables(&url), ["orders"]);
    assert_eq!(
        rows(server, &url, "SELECT count(*)::text FROM orders"),
        ["0"]
    );

    // One whose column is of a kind the fixture's values are not.
    let url = server.database(
        "files_other_type",
        "CREATE TABLE orders (id bigint, customer_id text, amount numeric, placed date, note text);",
    );
    fails(
        &good,
        &url,
        "table \"public\".\"orders\" exists in the target with column amount of type numeric, where the fixture's is text",
    );
    assert_eq!(tables(&url), ["orders"]);

    // A value its existing column refuses: PostgreSQL's reason, with the fixture's line.
    let url = server.database(
        "files_refused",
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id text, amount text, placed date, note varchar(3));",
    );
    fails(
        &good,
        &url,
        "orders.csv into table orders (line 4, column note): value too long for type character varying(3)",
    );
    assert_eq!(tables(&url), ["orders"]);
    assert_eq!(
        rows(server, &url, "SELECT count(*)::text FROM orders"),
        ["0"]
    );

    // One whose orders table serves: the fixture's rows go into it.
    let url = server.database(
        "files_serving",
        "CREATE TABLE orders (id integer PRIMARY KEY, customer_id text, amount text, placed date, note varchar(20), extra text);",
    );
    load(&good, &url);
    assert_eq!(
        rows(server, &url, "SELECT count(*)::text FROM orders"),
        ["60"]
    );
}

#[test]
fn a_parquet_fixture_gets_the_types_its_file_declares() {
    let server = server();
    let work = Workdir::new();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envd/data");
    let out = work.path("duckdb");
    sample(&[
        data.join("duckdb_types.parquet").to_str().unwrap(),
        data.join("duckdb_nested.parquet").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let url = server.database("files_parquet_types", "");
    load(&out, &url);
    assert_eq!(
        columns(server, &url, "duckdb_types"),
        [
            "id bigint",
            "amount numeric",
            "day date",
            "at timestamp without time zone",
            "at_utc timestamp with time zone",
            "status text",
            "even boolean",
            "ratio double precision",
            "ref uuid",
            // Binary, as the fixture's rows show it: base64.
            "raw text not null",
            "small bigint",
        ]
    );
    assert_eq!(
        rows(
            server,
            &url,
            "SELECT concat_ws('|', amount, day, at, at_utc AT TIME ZONE 'UTC', even, ratio, ref, raw, small) \
             FROM duckdb_types WHERE id = 1"
        ),
        ["1.25|2024-01-02|2024-01-01 13:30:00|2024-01-01 12:00:01|f|0.25|00000000-0000-0000-0000-000000000001|AP8=|1"]
    );
    // A nested field is JSON.
    assert_eq!(
        columns(server, &url, "duckdb_nested"),
        [
            "id bigint",
            "tags jsonb",
            "attrs jsonb",
            "person jsonb",
            "grid jsonb",
            "lines jsonb",
            "names jsonb",
        ]
    );
    assert_eq!(
        rows(
            server,
            &url,
            "SELECT concat_ws('|', tags, person ->> 'name', lines -> 0 ->> 'price') FROM duckdb_nested WHERE id = 1"
        ),
        [r#"["a", "b"]|ann|2.50"#]
    );

    // Converted to CSV, the same declarations make the same columns.
    let csv = work.path("duckdb_csv");
    sample(&[
        data.join("duckdb_types.parquet").to_str().unwrap(),
        "--format",
        "csv",
        "--out",
        csv.to_str().unwrap(),
    ]);
    let converted = server.database("files_parquet_csv", "");
    load(&csv, &converted);
    assert_eq!(
        columns(server, &converted, "duckdb_types"),
        columns(server, &url, "duckdb_types")
    );

    // A CSV fixture of `;`-separated values reads back with its own delimiter.
    let semi = work.path("semi.csv");
    fs::write(&semi, "id;name\n1;a,b\n2;c\n").unwrap();
    let out = work.path("semi");
    sample(&[
        semi.to_str().unwrap(),
        "--delimiter",
        ";",
        "--out",
        out.to_str().unwrap(),
    ]);
    load(&out, &url);
    assert_eq!(
        table_rows(server, &url, "semi", &["id", "name"]),
        ["1|a,b", "2|c"]
    );
}

#[test]
fn cycles_and_self_references_load_and_a_repeated_parent_key_is_no_key() {
    let server = server();
    let work = Workdir::new();
    let write = |name: &str, text: &str| {
        let path = work.path(name);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let teams = write("teams.csv", "id,lead\n1,10\n2,11\n");
    let members = write("members.csv", "id,team,mentor\n10,1,\n11,2,10\n12,2,11\n");
    let people = write("people.csv", "id,boss\n1,\n2,1\n3,1\n3,2\n");
    let out = work.path("org");
    sample(&[
        &teams,
        &members,
        &people,
        "--relation",
        "teams.lead=members.id",
        "--relation",
        "members.team=teams.id",
        "--relation",
        "members.mentor=members.id",
        "--relation",
        "people.boss=people.id",
        "--out",
        out.to_str().unwrap(),
    ]);
    let url = server.database("files_cycles", "");
    load(&out, &url);
    assert_eq!(
        rows(
            server,
            &url,
            "SELECT concat_ws(' ', conrelid::regclass, contype, convalidated) FROM pg_constraint \
             WHERE connamespace = 'public'::regnamespace ORDER BY 1"
        ),
        // A foreign key each (checked), a unique key on each referenced column; none on
        // people, whose ids repeat.
        [
            "members f t",
            "members f t",
            "members u t",
            "teams f t",
            "teams u t",
        ]
    );
    assert_eq!(
        rows(server, &url, "SELECT count(*)::text FROM people"),
        ["4"]
    );
    let script = fs::read_to_string(out.join("load.sql")).unwrap();
    assert!(
        script.contains(
            r#"relation people.boss=people.id: the fixture's people rows repeat the key (line 5 ("3"))"#
        ),
        "{script}"
    );
}
