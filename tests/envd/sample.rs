//! `envd sample` and `envd fixture check` on files the tests generate.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::harness::{run, Workdir};

const STATUSES: [&str; 3] = ["new", "paid", "shipped"];

/// An orders file of `rows` rows with the mess real exports have: one rare status, an
/// "N/A" amount, a ragged row each way, a field with invalid UTF-8, a quoted field with a
/// newline, and a field far longer than what an edge row keeps.
fn orders(rows: usize) -> Vec<u8> {
    let mut csv = b"order_id,customer_id,status,amount,email,note\n".to_vec();
    for i in 1..=rows {
        let status = match i {
            777 => "lost-in-transit",
            _ => STATUSES[i % 3],
        };
        let amount = if i == 1234 {
            "N/A".to_owned()
        } else {
            format!("{}.{:02}", i % 500, i % 100)
        };
        let note: Vec<u8> = match i {
            50 => b"\"two\nlines\"".to_vec(),
            60 => b"caf\xe9".to_vec(),
            70 => vec![b'x'; 200_000],
            _ => b"ok".to_vec(),
        };
        let mut row = format!(
            "{i},{},{status},{amount},user{}@example.com,",
            i % 40,
            i % 40
        )
        .into_bytes();
        row.extend(note);
        match i {
            90 => row.extend_from_slice(b",extra"),
            91 => row.truncate(row.iter().rposition(|&c| c == b',').unwrap()),
            _ => {}
        }
        row.push(b'\n');
        csv.extend(row);
    }
    csv
}

fn write_bytes(work: &Workdir, name: &str, bytes: &[u8]) -> String {
    let path = work.path(name);
    fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// A file of `tests/envd/data`.
fn data_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/envd/data")
        .join(name)
}

fn fixture(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("fixture.json")).unwrap()).unwrap()
}

/// Asserts that the table's edge rows include each (line, reason) pair.
fn assert_edges(table: &Value, expected: &[(u64, &str)]) {
    let found = reasons(table);
    for (line, reason) in expected {
        assert!(
            found.contains(&(*line, reason.to_string())),
            "{:?} not in {found:?}",
            (line, reason)
        );
    }
}

/// Every (line, reason) pair of a table's edge rows.
fn reasons(table: &Value) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    for edge in table["edges"].as_array().unwrap() {
        for reason in edge["reasons"].as_array().unwrap() {
            let mut text = reason["reason"].as_str().unwrap().to_owned();
            if let Some(column) = reason["column"].as_str() {
                text = format!("{text} {column}");
            }
            if let Some(value) = reason["value"].as_str() {
                text = format!("{text}={value}");
            }
            found.push((edge["line"].as_u64().unwrap(), text));
        }
    }
    found
}

#[test]
fn the_same_seed_gives_a_byte_identical_fixture_with_every_edge_row() {
    let work = Workdir::new();
    let source = write_bytes(&work, "orders.csv", &orders(3000));
    let sample = |out: &str, seed: &str| {
        let out = work.path(out);
        let (code, stdout, stderr) = run(&[
            "sample",
            &source,
            "--out",
            out.to_str().unwrap(),
            "--rows",
            "100",
            "--seed",
            seed,
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("kept"), "{stdout}");
        out
    };
    let first = sample("a", "7");
    let again = sample("b", "7");
    let other = sample("c", "8");
    for file in ["orders.csv", "fixture.json"] {
        assert_eq!(
            fs::read(first.join(file)).unwrap(),
            fs::read(again.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_ne!(
        fs::read(first.join("orders.csv")).unwrap(),
        fs::read(other.join("orders.csv")).unwrap()
    );

    let manifest = fixture(&first);
    let table = &manifest["tables"][0];
    assert_eq!(table["stats"]["rows"], 3000);
    assert_eq!(table["kept"]["sampled"], 100);
    // Line numbers count the header and the quoted newline in row 50.
    assert_edges(
        table,
        &[
            (779, "category status=lost-in-transit"),
            (1236, "type-mismatch amount=N/A"),
            (62, "invalid-utf8 note"),
            (72, "oversized-field"),
            (72, "longest note"),
            (92, "ragged"),
            (93, "ragged"),
        ],
    );
    let columns = &table["stats"]["columns"];
    assert_eq!(columns[0]["type"], "integer");
    assert_eq!(columns[0]["min"], "1");
    assert_eq!(columns[0]["max"], "3000");
    assert_eq!(columns[3]["type"], "float");
    // The huge note is cut in the fixture, but its length is the source's.
    assert_eq!(columns[5]["longest"]["length"], 200_000);
    assert_eq!(table["schema"][2]["name"], "status");

    // The fixture is a CSV that keeps the messy rows as they were.
    let written = fs::read(first.join("orders.csv")).unwrap();
    assert!(written.starts_with(b"order_id,customer_id,status,amount,email,note\n"));
    let contains = |needle: &[u8]| written.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"caf\xe9"));
    assert!(contains(b"\"two\nlines\"\n"));
    assert!(contains(b",lost-in-transit,277.77,"));
    assert!(written.len() < 200_000, "the huge field is cut");
}

#[test]
fn json_lines_are_sampled_into_json_lines() {
    let work = Workdir::new();
    let mut lines = String::new();
    for i in 0..500 {
        lines.push_str(&format!(
            "{{\"id\":{i},\"kind\":\"{}\"}}\n",
            ["a", "b"][i % 2]
        ));
    }
    lines.push_str("{not json\n{\"id\":null,\"kind\":\"rare\",\"extra\":1}\n");
    let source = work.write("events.jsonl", &lines);
    let out = work.path("out");
    let (code, _, stderr) = run(&[
        "sample",
        source.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--rows",
        "10",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let written = fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(written.contains("{not json\n"), "{written}");
    assert!(written.contains("\"kind\":\"rare\""), "{written}");
    let manifest = fixture(&out);
    let found = reasons(&manifest["tables"][0]);
    assert!(found.contains(&(501, "invalid-json".into())), "{found:?}");
    assert!(found.contains(&(502, "first-null id".into())), "{found:?}");
    let columns = &manifest["tables"][0]["stats"]["columns"];
    assert_eq!(columns[2]["name"], "extra");
    // The 500 rows before it and the line that does not parse have no value.
    assert_eq!(columns[2]["nulls"], 501);
}

#[test]
fn related_tables_keep_their_references_and_masks_keep_joins() {
    let work = Workdir::new();
    let mut customers = "id,email,referred_by\n".to_owned();
    for i in 0..200 {
        let referrer = if i == 0 {
            String::new()
        } else {
            (i - 1).to_string()
        };
        customers.push_str(&format!("{i},c{i}@example.com,{referrer}\n"));
    }
    let mut orders = "id,customer_id,email\n".to_owned();
    for i in 0..1000 {
        orders.push_str(&format!("{i},{},c{}@example.com\n", i % 200, i % 200));
    }
    orders.push_str("1000,999,ghost@example.com\n");
    let customers = work.write("customers.csv", &customers);
    let orders = work.write("orders.csv", &orders);
    let out = work.path("shop");
    let (code, _, stderr) = run(&[
        "sample",
        customers.to_str().unwrap(),
        orders.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--rows",
        "5",
        "--max-categories",
        "0",
        "--relation",
        "orders.customer_id=customers.id",
        "--relation",
        "customers.referred_by=customers.id",
        "--mask",
        "email",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let read = |file: &str| -> Vec<Vec<String>> {
        fs::read_to_string(out.join(file))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    };
    let customers = read("customers.csv");
    let orders = read("orders.csv");
    let ids: Vec<&str> = customers.iter().map(|c| c[0].as_str()).collect();
    // The referral chain of every kept customer goes back to customer 0.
    assert!(ids.contains(&"0"), "{ids:?}");
    for customer in &customers {
        assert!(customer[2].is_empty() || ids.contains(&customer[2].as_str()));
        assert!(!customer[1].starts_with('c') || !customer[1].ends_with("@example.com"));
        assert!(customer[1].contains('@'));
    }
    let mut orphans = 0;
    for order in &orders {
        if order[1] == "999" {
            orphans += 1;
            continue;
        }
        let customer = customers
            .iter()
            .find(|c| c[0] == order[1])
            .expect("parent kept");
        assert_eq!(customer[1], order[2], "the same email masks the same way");
    }
    let manifest = fixture(&out);
    let relation = &manifest["relations"][0];
    assert!(
        relation["childrenAdded"].as_u64().unwrap() > 0,
        "{relation}"
    );
    if orphans > 0 {
        assert_eq!(relation["unresolved"], 1);
        assert!(stderr.contains("missing from customers"), "{stderr}");
    }
    assert_eq!(manifest["relations"][1]["unresolved"], 0);
    let email = &manifest["tables"][0]["stats"]["columns"][1];
    assert_eq!(email["masked"], true);
    assert!(
        !email["max"].as_str().unwrap().starts_with("c99@"),
        "{email}"
    );
}

#[test]
fn drift_is_reported_per_kind_of_change() {
    let work = Workdir::new();
    let mut before = "id,status,amount,comment\n".to_owned();
    for i in 0..300 {
        before.push_str(&format!("{i},{},{},\n", STATUSES[i % 3], i % 50));
    }
    let source = work.write("orders.csv", &before);
    let out = work.path("fx");
    let (code, _, stderr) = run(&[
        "sample",
        source.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let check = |extra: &[&str]| {
        let mut args = vec![
            "fixture",
            "check",
            source.to_str().unwrap(),
            "--against",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        run(&args)
    };
    let (code, stdout, stderr) = check(&[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("no drift"), "{stdout}");

    let mut after = "id,status,amount,region\n".to_owned();
    for i in 0..300 {
        let status = if i == 5 { "refunded" } else { STATUSES[i % 3] };
        let amount = if i % 4 == 0 {
            String::new()
        } else {
            (i % 90).to_string()
        };
        after.push_str(&format!("x{i},{status},{amount},eu\n"));
    }
    fs::write(&source, after).unwrap();
    let (code, stdout, stderr) = check(&[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.starts_with("COLUMN"), "{stdout}");
    assert!(stderr.contains("drift"), "{stderr}");
    let (code, stdout, _) = check(&["--json"]);
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let changes: Vec<(String, String)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let column = c
                .get("column")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (column, c["change"].as_str().unwrap().to_owned())
        })
        .collect();
    for expected in [
        ("comment", "column-removed"),
        ("region", "column-added"),
        ("id", "type-changed"),
        ("status", "new-categories"),
        ("amount", "nullability-changed"),
        ("amount", "range-moved"),
    ] {
        assert!(
            changes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {changes:?}"
        );
    }
}

#[test]
fn empty_and_header_only_files() {
    let work = Workdir::new();
    let empty = work.write("empty.csv", "");
    let out = work.path("out");
    let (code, _, stderr) = run(&[
        "sample",
        empty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("empty.csv:1: the file is empty"),
        "{stderr}"
    );

    let header = work.write("header.csv", "\u{feff}a,b\n");
    let (code, _, stderr) = run(&[
        "sample",
        header.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("a header and no rows"), "{stderr}");
    assert_eq!(fs::read_to_string(out.join("header.csv")).unwrap(), "a,b\n");
}

/// Runs `envd sample SOURCE --out DIR --rows 1000 ARGS…`, expecting success; returns the
/// output directory and stderr.
fn sample_with(
    work: &Workdir,
    source: &str,
    out: &str,
    args: &[&str],
) -> (std::path::PathBuf, String) {
    let out = work.path(out);
    let mut all = vec![
        "sample",
        source,
        "--out",
        out.to_str().unwrap(),
        "--rows",
        "1000",
    ];
    all.extend_from_slice(args);
    let (code, _, stderr) = run(&all);
    assert_eq!(code, Some(0), "{stderr}");
    (out, stderr)
}

#[test]
fn delimiter_quote_and_encoding_options_read_other_dialects() {
    let work = Workdir::new();
    // Semicolons, single quotes and Latin-1 (0xe9 is é), as spreadsheet exports have them.
    let latin1 = b"id;name;note\n1;caf\xe9;'a;b'\n2;na\xefve;'it''s'\n".to_vec();
    let source = write_bytes(&work, "menu.csv", &latin1);
    let (out, _) = sample_with(
        &work,
        &source,
        "latin1",
        &["--delimiter", ";", "--quote", "'", "--encoding", "latin1"],
    );
    assert_eq!(
        fs::read_to_string(out.join("menu.csv")).unwrap(),
        "id;name;note\n1;café;'a;b'\n2;naïve;'it''s'\n"
    );
    let manifest = fixture(&out);
    let table = &manifest["tables"][0];
    assert_eq!(table["stats"]["columns"][1]["max"], "naïve");
    assert!(!reasons(table)
        .iter()
        .any(|(_, r)| r.starts_with("invalid-utf8")));
    // Read as UTF-8, the same bytes are invalid text: the option is what decodes them.
    let (out, _) = sample_with(
        &work,
        &source,
        "bytes",
        &["--delimiter", ";", "--quote", "'"],
    );
    assert!(reasons(&fixture(&out)["tables"][0]).contains(&(2, "invalid-utf8 name".into())));

    // Tab-separated UTF-16 with a byte order mark.
    let text = "id\tcity\n1\tZürich\n2\t東京\n";
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let source = write_bytes(&work, "cities.csv", &utf16);
    let (out, _) = sample_with(
        &work,
        &source,
        "utf16",
        &["--delimiter", "\\t", "--encoding", "utf-16"],
    );
    // Tab-separated output is named .tsv.
    assert_eq!(fs::read_to_string(out.join("cities.tsv")).unwrap(), text);
    assert_eq!(fixture(&out)["tables"][0]["stats"]["bytes"], utf16.len());

    let (code, _, stderr) = run(&["sample", &source, "--out", "x", "--encoding", "ebcdic"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("latin1"), "{stderr}");
}

#[test]
fn format_converts_csv_to_json_lines_and_back() {
    let work = Workdir::new();
    // Enough plain rows that the columns' types hold despite the misfits.
    let mut csv = "id,amount,paid,note\n1,12.50,true,hi\n2,N/A,false,\n3,7,true,\"\"\n4,1.5\n5,2,true,x,extra\n".to_owned();
    for id in 6..=40 {
        csv.push_str(&format!("{id},0.25,false,n\n"));
    }
    let source = work.write("orders.csv", &csv);
    let (out, _) = sample_with(
        &work,
        source.to_str().unwrap(),
        "json",
        &["--format", "jsonl"],
    );
    let written = fs::read_to_string(out.join("orders.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 40);
    assert!(written.ends_with("{\"id\":40,\"amount\":0.25,\"paid\":false,\"note\":\"n\"}\n"));
    let lines: String = written.split_inclusive('\n').take(5).collect();
    assert_eq!(
        lines,
        concat!(
            r#"{"id":1,"amount":12.5,"paid":true,"note":"hi"}"#,
            "\n",
            r#"{"id":2,"amount":"N/A","paid":false,"note":null}"#,
            "\n",
            r#"{"id":3,"amount":7,"paid":true,"note":""}"#,
            "\n",
            r#"{"id":4,"amount":1.5}"#,
            "\n",
            r#"{"id":5,"amount":2,"paid":true,"note":"x","_extra":["extra"]}"#,
            "\n",
        )
    );
    let manifest = fixture(&out);
    assert_eq!(manifest["tables"][0]["format"], "jsonl");
    assert_eq!(manifest["tables"][0]["file"], "orders.jsonl");

    // And back: every column (in the order the reader met them: a line's keys sorted),
    // null where a line had none; a line that is not an object cannot be a CSV row and is
    // named on stderr.
    let json = format!("{lines}[1,2]\n");
    let source = work.write("again.jsonl", &json);
    let (back, stderr) = sample_with(&work, source.to_str().unwrap(), "csv", &["--format", "csv"]);
    assert_eq!(
        fs::read_to_string(back.join("again.csv")).unwrap(),
        "amount,id,note,paid,_extra\n12.5,1,hi,true,\nN/A,2,,false,\n7,3,\"\",true,\n1.5,4,,,\n2,5,x,true,\"[\"\"extra\"\"]\"\n"
    );
    assert!(
        stderr.contains("again.jsonl:6: not a JSON object"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&[
        "sample",
        source.to_str().unwrap(),
        "--out",
        "x",
        "--format",
        "xml",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("expected csv, jsonl or parquet"),
        "{stderr}"
    );
}

/// Parquet files for the tests, written with the parquet crate: a schema in Parquet's own
/// syntax and each column's values, `None` for a null; a nested column's leaves with
/// their levels.
mod parquet_files {
    use std::fs::File;
    use std::path::Path;
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::column::writer::ColumnWriter;
    use parquet::data_type::{ByteArray, Int96};
    use parquet::file::properties::WriterProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use parquet::schema::types::SchemaDescriptor;

    pub enum Values {
        Int32(Vec<Option<i32>>),
        Int64(Vec<Option<i64>>),
        Bool(Vec<Option<bool>>),
        Double(Vec<Option<f64>>),
        Bytes(Vec<Option<Vec<u8>>>),
        /// Julian day and nanoseconds of the day.
        Int96(Vec<Option<(u32, u64)>>),
    }

    impl Values {
        fn len(&self) -> usize {
            match self {
                Values::Int32(v) => v.len(),
                Values::Int64(v) => v.len(),
                Values::Bool(v) => v.len(),
                Values::Double(v) => v.len(),
                Values::Bytes(v) => v.len(),
                Values::Int96(v) => v.len(),
            }
        }
    }

    /// A leaf column as Parquet stores it: a level pair per value or null or empty list
    /// (no definition levels for a required leaf, no repetition levels outside lists),
    /// and the present values.
    pub struct Leveled {
        pub def: Vec<i16>,
        pub rep: Vec<i16>,
        pub values: Values,
    }

    /// Writes `columns` (one flat column each) in row groups of `group_rows`.
    pub fn write(path: &Path, schema: &str, columns: &[Values], group_rows: usize) {
        write_with(path, schema, columns, group_rows, Compression::SNAPPY);
    }

    /// [`write`], compressed with `codec`.
    pub fn write_with(
        path: &Path,
        schema: &str,
        columns: &[Values],
        group_rows: usize,
        codec: Compression,
    ) {
        let descr = SchemaDescriptor::new(Arc::new(parse_message_type(schema).unwrap()));
        let leaves: Vec<Leveled> = columns
            .iter()
            .enumerate()
            .map(|(index, values)| {
                let optional = descr.column(index).max_def_level() > 0;
                let present = |p: Vec<bool>| {
                    if optional {
                        p.iter().map(|&p| p as i16).collect()
                    } else {
                        Vec::new()
                    }
                };
                let def = present(match values {
                    Values::Int32(v) => v.iter().map(Option::is_some).collect(),
                    Values::Int64(v) => v.iter().map(Option::is_some).collect(),
                    Values::Bool(v) => v.iter().map(Option::is_some).collect(),
                    Values::Double(v) => v.iter().map(Option::is_some).collect(),
                    Values::Bytes(v) => v.iter().map(Option::is_some).collect(),
                    Values::Int96(v) => v.iter().map(Option::is_some).collect(),
                });
                let values = match values {
                    Values::Int32(v) => {
                        Values::Int32(v.iter().filter(|v| v.is_some()).cloned().collect())
                    }
                    Values::Int64(v) => {
                        Values::Int64(v.iter().filter(|v| v.is_some()).cloned().collect())
                    }
                    Values::Bool(v) => {
                        Values::Bool(v.iter().filter(|v| v.is_some()).cloned().collect())
                    }
                    Values::Double(v) => {
                        Values::Double(v.iter().filter(|v| v.is_some()).cloned().collect())
                    }
                    Values::Bytes(v) => {
                        Values::Bytes(v.iter().filter(|v| v.is_some()).cloned().collect())
                    }
                    Values::Int96(v) => {
                        Values::Int96(v.iter().filter(|v| v.is_some()).cloned().collect())
                    }
                };
                Leveled {
                    def,
                    rep: Vec::new(),
                    values,
                }
            })
            .collect();
        write_leveled(path, schema, &leaves, group_rows, codec);
    }

    /// Writes leaf columns with their levels in row groups of `group_rows` rows (a row
    /// starts at repetition level 0).
    pub fn write_leveled(
        path: &Path,
        schema: &str,
        leaves: &[Leveled],
        group_rows: usize,
        codec: Compression,
    ) {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let descr = SchemaDescriptor::new(schema.clone());
        let properties = Arc::new(WriterProperties::builder().set_compression(codec).build());
        let file = File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, properties).unwrap();
        // Each leaf's (level, value) index where every row starts, and at the end.
        let starts: Vec<Vec<(usize, usize)>> = leaves
            .iter()
            .enumerate()
            .map(|(index, leaf)| {
                let max_def = descr.column(index).max_def_level();
                let levels = leaf.def.len().max(leaf.rep.len()).max(
                    if leaf.def.is_empty() && leaf.rep.is_empty() {
                        leaf.values.len()
                    } else {
                        0
                    },
                );
                let mut starts = Vec::new();
                let mut value = 0;
                for level in 0..levels {
                    if leaf.rep.get(level).copied().unwrap_or(0) == 0 {
                        starts.push((level, value));
                    }
                    value +=
                        usize::from(leaf.def.get(level).copied().unwrap_or(max_def) == max_def);
                }
                starts.push((levels, value));
                starts
            })
            .collect();
        let rows = starts.first().map_or(0, |s| s.len() - 1);
        let mut start = 0;
        while start < rows {
            let end = (start + group_rows).min(rows);
            let mut group = writer.next_row_group().unwrap();
            for (leaf, starts) in leaves.iter().zip(&starts) {
                let (from, to) = (starts[start], starts[end]);
                let levels = |l: &Vec<i16>| (!l.is_empty()).then(|| l[from.0..to.0].to_vec());
                let (def, rep) = (levels(&leaf.def), levels(&leaf.rep));
                let (def, rep) = (def.as_deref(), rep.as_deref());
                let range = from.1..to.1;
                let mut column = group.next_column().unwrap().unwrap();
                fn present<T: Clone>(v: &[Option<T>], range: std::ops::Range<usize>) -> Vec<T> {
                    v[range].iter().flatten().cloned().collect()
                }
                match (column.untyped(), &leaf.values) {
                    (ColumnWriter::Int32ColumnWriter(w), Values::Int32(v)) => {
                        w.write_batch(&present(v, range.clone()), def, rep).unwrap();
                    }
                    (ColumnWriter::Int64ColumnWriter(w), Values::Int64(v)) => {
                        w.write_batch(&present(v, range.clone()), def, rep).unwrap();
                    }
                    (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => {
                        w.write_batch(&present(v, range.clone()), def, rep).unwrap();
                    }
                    (ColumnWriter::DoubleColumnWriter(w), Values::Double(v)) => {
                        w.write_batch(&present(v, range.clone()), def, rep).unwrap();
                    }
                    (ColumnWriter::ByteArrayColumnWriter(w), Values::Bytes(v)) => {
                        let v: Vec<ByteArray> = present(v, range.clone())
                            .into_iter()
                            .map(ByteArray::from)
                            .collect();
                        w.write_batch(&v, def, rep).unwrap();
                    }
                    (ColumnWriter::Int96ColumnWriter(w), Values::Int96(v)) => {
                        let v: Vec<Int96> = present(v, range.clone())
                            .into_iter()
                            .map(|(day, nanos)| {
                                let mut value = Int96::new();
                                value.set_data(nanos as u32, (nanos >> 32) as u32, day);
                                value
                            })
                            .collect();
                        w.write_batch(&v, def, rep).unwrap();
                    }
                    _ => panic!("values do not match the column's physical type"),
                }
                column.close().unwrap();
            }
            group.close().unwrap();
            start = end;
        }
        writer.close().unwrap();
    }

    pub fn reader(path: &Path) -> SerializedFileReader<File> {
        SerializedFileReader::new(File::open(path).unwrap()).unwrap()
    }

    /// The schema as Parquet prints it.
    pub fn schema(path: &Path) -> String {
        let reader = reader(path);
        let mut out = Vec::new();
        parquet::schema::printer::print_schema(
            &mut out,
            reader.metadata().file_metadata().schema(),
        );
        String::from_utf8(out).unwrap()
    }

    /// Every row as the parquet crate shows it.
    pub fn rows(path: &Path) -> Vec<String> {
        let reader = reader(path);
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().to_string())
            .collect()
    }
}

const ORDERS_SCHEMA: &str = "
message orders {
  REQUIRED INT64 id;
  OPTIONAL BYTE_ARRAY status (STRING);
  OPTIONAL INT32 amount (DECIMAL(9,2));
  REQUIRED BOOLEAN paid;
  OPTIONAL INT32 day (DATE);
  OPTIONAL INT64 at (TIMESTAMP(MILLIS,true));
  OPTIONAL DOUBLE score;
  OPTIONAL BYTE_ARRAY blob;
  OPTIONAL INT96 legacy;
}";

/// 2000 orders in four row groups, with nulls in every optional column, one rare status
/// (row 777) and one negative amount (row 1500).
fn parquet_orders(path: &Path) {
    use parquet_files::Values;
    let ids: Vec<i64> = (1..=2000).collect();
    let each = |f: &dyn Fn(i64) -> Option<i64>| ids.iter().map(|&i| f(i)).collect::<Vec<_>>();
    let status = ids
        .iter()
        .map(|&i| match i {
            777 => Some(b"lost".to_vec()),
            _ if i % 100 == 0 => None,
            _ => Some(STATUSES[i as usize % 3].as_bytes().to_vec()),
        })
        .collect();
    let amount = each(&|i| match i {
        1500 => Some(-12345),
        _ if i % 7 == 0 => None,
        _ => Some(i * 37 % 100_000),
    });
    let columns = [
        Values::Int64(ids.iter().map(|&i| Some(i)).collect()),
        Values::Bytes(status),
        Values::Int32(amount.iter().map(|a| a.map(|a| a as i32)).collect()),
        Values::Bool(ids.iter().map(|&i| Some(i % 2 == 0)).collect()),
        Values::Int32(
            ids.iter()
                .map(|&i| Some(19_000 + (i % 365) as i32))
                .collect(),
        ),
        Values::Int64(each(&|i| {
            (i % 11 != 0).then_some(1_700_000_000_000 + i * 60_000)
        })),
        Values::Double(ids.iter().map(|&i| Some(i as f64 / 8.0)).collect()),
        Values::Bytes(
            ids.iter()
                .map(|&i| (i % 13 != 0).then(|| vec![i as u8, 0xff]))
                .collect(),
        ),
        Values::Int96(
            ids.iter()
                .map(|&i| Some((2_460_000, i as u64 * 1_000_000_000)))
                .collect(),
        ),
    ];
    parquet_files::write(path, ORDERS_SCHEMA, &columns, 500);
}

#[test]
fn parquet_is_sampled_by_its_schema_into_parquet_of_the_same_schema() {
    let work = Workdir::new();
    let source = work.path("orders.parquet");
    parquet_orders(&source);
    let source = source.to_str().unwrap();
    let sample = |out: &str, args: &[&str]| {
        let out = work.path(out);
        let mut all = vec!["sample", source, "--out", out.to_str().unwrap()];
        all.extend_from_slice(&["--rows", "50", "--seed", "7"]);
        all.extend_from_slice(args);
        let (code, _, stderr) = run(&all);
        assert_eq!(code, Some(0), "{stderr}");
        out
    };
    let first = sample("a", &[]);
    let again = sample("b", &[]);
    for file in ["orders.parquet", "fixture.json"] {
        assert_eq!(
            fs::read(first.join(file)).unwrap(),
            fs::read(again.join(file)).unwrap(),
            "{file}"
        );
    }

    let manifest = fixture(&first);
    let table = &manifest["tables"][0];
    assert_eq!(table["format"], "parquet");
    assert_eq!(table["stats"]["rows"], 2000);
    assert_eq!(table["kept"]["sampled"], 50);
    assert_edges(
        table,
        &[
            (777, "category status=lost"),
            (100, "first-null status"),
            (7, "first-null amount"),
            (1500, "min amount"),
            (13, "first-null blob"),
        ],
    );
    // Types come from the declarations; values read as a CSV export would hold them.
    let columns = &table["stats"]["columns"];
    let column = |name: &str| {
        columns
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    for (name, kind, declared) in [
        ("id", "integer", "REQUIRED INT64"),
        ("amount", "float", "OPTIONAL INT32 (DECIMAL(9,2))"),
        ("day", "date", "OPTIONAL INT32 (DATE)"),
        ("at", "timestamp", "OPTIONAL INT64 (TIMESTAMP(MILLIS,true))"),
        ("blob", "text", "OPTIONAL BYTE_ARRAY"),
        ("legacy", "timestamp", "OPTIONAL INT96"),
    ] {
        assert_eq!(column(name)["type"], kind, "{name}");
        assert_eq!(column(name)["parquetType"], declared, "{name}");
    }
    assert_eq!(column("amount")["min"], "-123.45");
    assert_eq!(column("amount")["max"], "740.00");
    assert_eq!(column("at")["min"], "2023-11-14T22:14:20.000Z");
    let schema = table["schema"].as_array().unwrap();
    assert_eq!(schema[0]["nullable"], false);
    assert_eq!(schema[1]["nullable"], true);

    // The fixture's table has the source's schema and exactly the kept rows.
    let written = first.join("orders.parquet");
    assert_eq!(
        parquet_files::schema(&written),
        parquet_files::schema(Path::new(source))
    );
    let reader = parquet_files::reader(&written);
    let metadata = parquet::file::reader::FileReader::metadata(&reader);
    assert_eq!(
        metadata.file_metadata().num_rows(),
        table["kept"]["total"].as_i64().unwrap()
    );
    assert!(metadata.row_groups()[0]
        .columns()
        .iter()
        .all(|c| c.compression() == parquet::basic::Compression::SNAPPY));
    let source_rows = parquet_files::rows(Path::new(source));
    let kept_rows = parquet_files::rows(&written);
    let lines: Vec<u64> = {
        // The kept rows in source order: each is the source's row of that number.
        let csv = sample("csv", &["--format", "csv"]);
        let text = fs::read_to_string(csv.join("orders.csv")).unwrap();
        assert!(
            text.starts_with("id,status,amount,paid,day,at,score,blob,legacy\n"),
            "{text}"
        );
        assert!(
            text.contains("\n1500,,-123.45,true,2022-02-17,2023-11-15T23:13:20.000Z,187.5,3P8=,2023-02-24T00:25:00.000000000Z\n"),
            "{text}"
        );
        text.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(kept_rows.len(), lines.len());
    for (row, line) in kept_rows.iter().zip(&lines) {
        assert_eq!(row, &source_rows[*line as usize - 1]);
    }
}

#[test]
fn a_parquet_file_from_duckdb_reads_with_its_types_and_round_trips() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envd/data/duckdb_types.parquet");
    let work = Workdir::new();
    let (out, _) = sample_with(&work, source.to_str().unwrap(), "pq", &[]);
    let written = out.join("duckdb_types.parquet");
    assert_eq!(
        parquet_files::schema(&written),
        parquet_files::schema(&source)
    );
    assert_eq!(parquet_files::rows(&written), parquet_files::rows(&source));

    let (out, _) = sample_with(&work, source.to_str().unwrap(), "csv", &["--format", "csv"]);
    let text = fs::read_to_string(out.join("duckdb_types.csv")).unwrap();
    let lines: Vec<&str> = text.lines().take(4).collect();
    assert_eq!(
        lines,
        [
            "id,amount,day,at,at_utc,status,even,ratio,ref,raw,small",
            "1,1.25,2024-01-02,2024-01-01T13:30:00.000000,2024-01-01T12:00:01.000000Z,paid,false,0.25,00000000-0000-0000-0000-000000000001,AP8=,1",
            "2,2.50,2024-01-03,2024-01-01T15:00:00.000000,2024-01-01T12:00:02.000000Z,shipped,true,0.5,00000000-0000-0000-0000-000000000002,AP8=,2",
            "3,3.75,2024-01-04,2024-01-01T16:30:00.000000,2024-01-01T12:00:03.000000Z,,false,0.75,00000000-0000-0000-0000-000000000003,AP8=,3",
        ]
    );
}

#[test]
fn format_parquet_types_csv_columns_whose_kept_values_all_fit() {
    let work = Workdir::new();
    let mut csv =
        "id,amount,paid,day,note,code\n1,12.50,true,2024-01-31,hi,7\n2,,false,2024-02-01,,N/A\n"
            .to_owned();
    for id in 3..=40 {
        csv.push_str(&format!("{id},0.25,false,2024-03-01,n,{id}\n"));
    }
    let source = work.write("orders.csv", &csv);
    let (out, _) = sample_with(
        &work,
        source.to_str().unwrap(),
        "pq",
        &["--format", "parquet"],
    );
    let written = out.join("orders.parquet");
    assert_eq!(
        parquet_files::schema(&written),
        "message schema {\n  OPTIONAL INT64 id;\n  OPTIONAL DOUBLE amount;\n  OPTIONAL BOOLEAN paid;\n  OPTIONAL INT32 day (DATE);\n  OPTIONAL BYTE_ARRAY note (STRING);\n  OPTIONAL BYTE_ARRAY code (STRING);\n}\n"
    );
    let rows = parquet_files::rows(&written);
    assert_eq!(rows.len(), 40);
    assert_eq!(
        rows[0],
        "{id: 1, amount: 12.5, paid: true, day: 2024-01-31, note: \"hi\", code: \"7\"}"
    );
    assert_eq!(
        rows[1],
        "{id: 2, amount: null, paid: false, day: 2024-02-01, note: null, code: \"N/A\"}"
    );
    assert_eq!(fixture(&out)["tables"][0]["file"], "orders.parquet");
}

#[test]
fn parquet_drift_sees_declared_types_and_nullability() {
    use parquet_files::Values;
    let work = Workdir::new();
    let source = work.path("orders.parquet");
    let ids = || (1..=300).map(Some);
    parquet_files::write(
        &source,
        "message orders { REQUIRED INT32 id; REQUIRED INT64 amount; }",
        &[
            Values::Int32(ids().collect()),
            Values::Int64(ids().map(|i| i.map(|i| i as i64 % 50)).collect()),
        ],
        100,
    );
    let out = work.path("fx");
    let (code, _, stderr) = run(&[
        "sample",
        source.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let check = || {
        run(&[
            "fixture",
            "check",
            source.to_str().unwrap(),
            "--against",
            out.to_str().unwrap(),
            "--json",
        ])
    };
    let (code, stdout, stderr) = check();
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    parquet_files::write(
        &source,
        "message orders { REQUIRED INT64 id; OPTIONAL INT64 amount; }",
        &[
            Values::Int64(ids().map(|i| i.map(i64::from)).collect()),
            Values::Int64(
                ids()
                    .map(|i| i.filter(|i| i % 4 != 0).map(|i| i as i64 % 50))
                    .collect(),
            ),
        ],
        100,
    );
    let (code, stdout, stderr) = check();
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let changes: Vec<(String, String, String)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["column"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
                c.get("now").map(Value::to_string).unwrap_or_default(),
            )
        })
        .collect();
    for expected in [
        ("id", "declared-type-changed", "\"REQUIRED INT64\""),
        ("amount", "declared-type-changed", "\"OPTIONAL INT64\""),
        ("amount", "nullability-changed", ""),
    ] {
        assert!(
            changes.contains(&(
                expected.0.to_owned(),
                expected.1.to_owned(),
                expected.2.to_owned()
            )),
            "{expected:?} not in {changes:?}"
        );
    }
}

#[test]
fn bad_parquet_files_are_refused_before_anything_is_written() {
    use parquet_files::Values;
    let work = Workdir::new();
    let good = work.path("good.parquet");
    parquet_files::write(
        &good,
        "message t { REQUIRED INT64 id; }",
        &[Values::Int64((0..100).map(Some).collect())],
        50,
    );
    let bytes = fs::read(&good).unwrap();
    let nested = work.path("nested.parquet");
    parquet_files::write(
        &nested,
        "message t { REQUIRED INT64 id; OPTIONAL group spans (LIST) { REPEATED group list { OPTIONAL FIXED_LEN_BYTE_ARRAY (12) element (INTERVAL); } } }",
        &[],
        1,
    );
    let interval = work.path("interval.parquet");
    parquet_files::write(
        &interval,
        "message t { OPTIONAL FIXED_LEN_BYTE_ARRAY (12) span (INTERVAL); }",
        &[],
        1,
    );
    let mut encrypted = b"PAR1".to_vec();
    encrypted.extend([0; 16]);
    encrypted.extend(b"PARE");
    let cases: [(std::path::PathBuf, &str); 5] = [
        (
            write_bytes(&work, "text.parquet", b"id\n1\n").into(),
            "not a Parquet file",
        ),
        (
            write_bytes(&work, "cut.parquet", &bytes[..bytes.len() / 2]).into(),
            "truncated",
        ),
        (
            write_bytes(&work, "secret.parquet", &encrypted).into(),
            "an encrypted Parquet file",
        ),
        (nested, "column \"spans\" has a field spans.list.element that is OPTIONAL FIXED_LEN_BYTE_ARRAY(12) (INTERVAL), a type envd does not read"),
        (interval, "column \"span\" is OPTIONAL FIXED_LEN_BYTE_ARRAY(12) (INTERVAL), a type envd does not read"),
    ];
    for (path, expected) in &cases {
        let out = work.path("out");
        let (code, _, stderr) = run(&[
            "sample",
            good.to_str().unwrap(),
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{}: ", path.display())) && stderr.contains(expected),
            "{expected:?} not in {stderr}"
        );
        assert!(!out.exists(), "{} wrote {}", path.display(), out.display());

        let (code, _, stderr) = run(&[
            "fixture",
            "check",
            path.to_str().unwrap(),
            "--against",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
}

#[test]
fn parquet_masks_only_string_columns_and_keeps_their_shape() {
    let work = Workdir::new();
    let source = work.path("orders.parquet");
    parquet_orders(&source);
    let source = source.to_str().unwrap();
    let (out, _) = sample_with(&work, source, "masked", &["--mask", "status"]);
    let rows = parquet_files::rows(&out.join("orders.parquet"));
    let statuses: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.split("status: \"").nth(1)?.split('"').next())
        .collect();
    assert!(!statuses.is_empty());
    assert!(
        statuses
            .iter()
            .all(|s| !STATUSES.contains(s) && *s != "lost"),
        "{statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|s| [3, 4, 7].contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase())));

    let out = work.path("refused");
    let (code, _, stderr) = run(&[
        "sample",
        source,
        "--out",
        out.to_str().unwrap(),
        "--mask",
        "amount",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--mask amount: a column of type OPTIONAL INT32 (DECIMAL(9,2))"),
        "{stderr}"
    );
    assert!(!out.exists());
    // Written as CSV, a masked number is text like any other.
    sample_with(
        &work,
        source,
        "csv",
        &["--mask", "amount", "--format", "csv"],
    );
}

#[test]
fn nested_parquet_columns_from_duckdb_are_json_and_round_trip() {
    let source = data_file("duckdb_nested.parquet");
    let source = source.to_str().unwrap();
    let work = Workdir::new();
    let (first, _) = sample_with(&work, source, "a", &[]);
    let (again, _) = sample_with(&work, source, "b", &[]);
    let written = first.join("duckdb_nested.parquet");
    assert_eq!(
        fs::read(&written).unwrap(),
        fs::read(again.join("duckdb_nested.parquet")).unwrap()
    );
    // The same schema and the same rows, nested values and all.
    assert_eq!(
        parquet_files::schema(&written),
        parquet_files::schema(Path::new(source))
    );
    assert_eq!(
        parquet_files::rows(&written),
        parquet_files::rows(Path::new(source))
    );

    let table = &fixture(&first)["tables"][0];
    let schema = table["schema"].as_array().unwrap();
    let column = |name: &str| schema.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(column("tags")["type"], "text");
    assert_eq!(column("tags")["nullable"], true);
    assert_eq!(
        column("tags")["parquetType"],
        "OPTIONAL group (LIST) { REPEATED group list { OPTIONAL BYTE_ARRAY element (UTF8); } }"
    );
    // DuckDB declares with converted types, and they are shown as it declares them.
    assert_eq!(
        column("attrs")["parquetType"],
        "OPTIONAL group (MAP) { REPEATED group key_value { REQUIRED BYTE_ARRAY key (UTF8); OPTIONAL INT32 value (INT_32); } }"
    );
    let stats = table["stats"]["columns"].as_array().unwrap();
    let tags = stats.iter().find(|c| c["name"] == "tags").unwrap();
    assert_eq!(tags["nulls"], 1);
    assert_eq!(tags["longest"]["value"], r#"["c",null]"#);

    let expected = [
        r#"{"id":1,"tags":["a","b"],"attrs":{"x":1,"y":null},"person":{"name":"ann","born":"1990-05-17"},"grid":[[1,2],[],[3]],"lines":[{"sku":"s1","price":2.50}],"names":[{"key":1,"value":"one"}]}"#,
        r#"{"id":2,"tags":[],"attrs":{},"person":{"name":null,"born":null},"grid":[],"lines":[],"names":null}"#,
        r#"{"id":3,"tags":null,"attrs":null,"person":null,"grid":null,"lines":null,"names":[{"key":2,"value":"two"}]}"#,
        r#"{"id":4,"tags":["c",null],"attrs":{"z":3},"person":{"name":"bo \"b\"","born":"2001-01-01"},"grid":[[null],null],"lines":[{"sku":"s2","price":null},null],"names":[]}"#,
    ];
    let (out, _) = sample_with(&work, source, "jsonl", &["--format", "jsonl"]);
    let text = fs::read_to_string(out.join("duckdb_nested.jsonl")).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);

    let (out, _) = sample_with(&work, source, "csv", &["--format", "csv"]);
    let text = fs::read_to_string(out.join("duckdb_nested.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,tags,attrs,person,grid,lines,names");
    assert_eq!(
        lines[1],
        r#"1,"[""a"",""b""]","{""x"":1,""y"":null}","{""name"":""ann"",""born"":""1990-05-17""}","[[1,2],[],[3]]","[{""sku"":""s1"",""price"":2.50}]","[{""key"":1,""value"":""one""}]""#
    );
    assert_eq!(lines[3], r#"3,,,,,,"[{""key"":2,""value"":""two""}]""#);
}

/// Events with nested columns, striped into their leaves' levels here, so the JSON each
/// row must read as is known: a LIST of optional strings, a MAP of string keys to
/// optional decimals, an optional STRUCT, and a bare repeated field.
const EVENTS_SCHEMA: &str = "
message events {
  REQUIRED INT64 id;
  OPTIONAL group tags (LIST) { REPEATED group list { OPTIONAL BYTE_ARRAY element (STRING); } }
  OPTIONAL group attrs (MAP) { REPEATED group key_value { REQUIRED BYTE_ARRAY key (STRING); OPTIONAL INT32 value (DECIMAL(9,2)); } }
  OPTIONAL group place { REQUIRED DOUBLE lat; OPTIONAL INT32 day (DATE); }
  REPEATED INT32 codes;
}";

/// `rows` events with `schema` (EVENTS_SCHEMA or a variant of its types) and each one's
/// expected JSON object (as JSON Lines would hold it).
fn nested_events(path: &Path, schema: &str, rows: i64, group_rows: usize) -> Vec<String> {
    use parquet_files::{Leveled, Values};
    let leveled = |values| Leveled {
        def: Vec::new(),
        rep: Vec::new(),
        values,
    };
    let mut id = leveled(Values::Int64(Vec::new()));
    let mut tags = leveled(Values::Bytes(Vec::new()));
    let (mut keys, mut amounts) = (
        leveled(Values::Bytes(Vec::new())),
        leveled(Values::Int32(Vec::new())),
    );
    let (mut lat, mut day) = (
        leveled(Values::Double(Vec::new())),
        leveled(Values::Int32(Vec::new())),
    );
    let mut codes = leveled(Values::Int32(Vec::new()));
    let mut expected = Vec::new();
    for i in 1..=rows {
        let mut json = format!("{{\"id\":{i}");
        if let Values::Int64(v) = &mut id.values {
            v.push(Some(i));
        }
        // tags: null, empty, or up to three strings, some null.
        let Values::Bytes(tag_values) = &mut tags.values else {
            unreachable!()
        };
        match i % 10 {
            0 => {
                tags.def.push(0);
                tags.rep.push(0);
                json.push_str(",\"tags\":null");
            }
            1 => {
                tags.def.push(1);
                tags.rep.push(0);
                json.push_str(",\"tags\":[]");
            }
            _ => {
                let items: Vec<String> = (0..i % 3 + 1)
                    .map(|j| {
                        tags.rep.push(if j == 0 { 0 } else { 1 });
                        if (i + j) % 7 == 0 {
                            tags.def.push(2);
                            "null".to_owned()
                        } else {
                            tags.def.push(3);
                            tag_values.push(Some(format!("t{}", (i + j) % 5).into_bytes()));
                            format!("\"t{}\"", (i + j) % 5)
                        }
                    })
                    .collect();
                json.push_str(&format!(",\"tags\":[{}]", items.join(",")));
            }
        }
        // attrs: null, or {"a": i*5 hundredths, "b": null on even rows}.
        let (Values::Bytes(key_values), Values::Int32(amount_values)) =
            (&mut keys.values, &mut amounts.values)
        else {
            unreachable!()
        };
        if i % 6 == 0 {
            keys.def.push(0);
            keys.rep.push(0);
            amounts.def.push(0);
            amounts.rep.push(0);
            json.push_str(",\"attrs\":null");
        } else {
            keys.def.push(2);
            keys.rep.push(0);
            key_values.push(Some(b"a".to_vec()));
            amounts.def.push(3);
            amounts.rep.push(0);
            amount_values.push(Some(i as i32 * 5));
            let amount = format!("{}.{:02}", i * 5 / 100, i * 5 % 100);
            if i % 2 == 0 {
                keys.def.push(2);
                keys.rep.push(1);
                key_values.push(Some(b"b".to_vec()));
                amounts.def.push(2);
                amounts.rep.push(1);
                json.push_str(&format!(",\"attrs\":{{\"a\":{amount},\"b\":null}}"));
            } else {
                json.push_str(&format!(",\"attrs\":{{\"a\":{amount}}}"));
            }
        }
        // place: null every fourth row; a day every row but each third.
        let (Values::Double(lats), Values::Int32(days)) = (&mut lat.values, &mut day.values) else {
            unreachable!()
        };
        if i % 4 == 0 {
            lat.def.push(0);
            day.def.push(0);
            json.push_str(",\"place\":null");
        } else {
            lat.def.push(1);
            lats.push(Some(i as f64 / 4.0));
            let shown = if i % 3 == 0 {
                day.def.push(1);
                "null".to_owned()
            } else {
                day.def.push(2);
                days.push(Some(19_753));
                "\"2024-01-31\"".to_owned()
            };
            json.push_str(&format!(
                ",\"place\":{{\"lat\":{:?},\"day\":{shown}}}",
                i as f64 / 4.0
            ));
        }
        // codes: a repeated field, never null, as many as i % 3.
        let Values::Int32(code_values) = &mut codes.values else {
            unreachable!()
        };
        if i % 3 == 0 {
            codes.def.push(0);
            codes.rep.push(0);
        }
        let items: Vec<String> = (0..i % 3)
            .map(|j| {
                codes.def.push(1);
                codes.rep.push(if j == 0 { 0 } else { 1 });
                code_values.push(Some((i + j) as i32));
                (i + j).to_string()
            })
            .collect();
        json.push_str(&format!(",\"codes\":[{}]}}", items.join(",")));
        expected.push(json);
    }
    parquet_files::write_leveled(
        path,
        schema,
        &[id, tags, keys, amounts, lat, day, codes],
        group_rows,
        parquet::basic::Compression::SNAPPY,
    );
    expected
}

#[test]
fn nested_parquet_columns_are_read_a_batch_at_a_time_across_row_groups() {
    let work = Workdir::new();
    let path = work.path("events.parquet");
    // Row groups of 1500 rows, so batches of 1024 rows end inside them.
    let expected = nested_events(&path, EVENTS_SCHEMA, 3000, 1500);
    let source = path.to_str().unwrap();
    let id = |line: &str| -> usize {
        let digits: String = line
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };

    let (out, _) = sample_with(&work, source, "jsonl", &["--format", "jsonl"]);
    let text = fs::read_to_string(out.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 1000, "{}", lines.len());
    for line in &lines {
        assert_eq!(*line, expected[id(line) - 1]);
    }

    let table = &fixture(&out)["tables"][0];
    let stats = table["stats"]["columns"].as_array().unwrap();
    let nulls = |name: &str| stats.iter().find(|c| c["name"] == name).unwrap()["nulls"].clone();
    assert_eq!(nulls("tags"), 300);
    assert_eq!(nulls("attrs"), 500);
    assert_eq!(nulls("place"), 750);
    assert_eq!(nulls("codes"), 0);
    let schema = table["schema"].as_array().unwrap();
    assert_eq!(schema[4]["nullable"], false);
    assert_eq!(schema[4]["parquetType"], "REPEATED INT32");
    assert!(reasons(table).contains(&(10, "first-null tags".to_owned())));

    // The Parquet fixture: the same schema, and each kept row the source's row.
    let (out, _) = sample_with(&work, source, "pq", &[]);
    let written = out.join("events.parquet");
    assert_eq!(
        parquet_files::schema(&written),
        parquet_files::schema(&path)
    );
    let source_rows = parquet_files::rows(&path);
    let kept = parquet_files::rows(&written);
    assert_eq!(kept.len(), lines.len());
    for row in &kept {
        assert_eq!(row, &source_rows[id(row) - 1]);
    }
}

#[test]
fn nested_parquet_drift_and_masks() {
    let work = Workdir::new();
    let path = work.path("events.parquet");
    nested_events(&path, EVENTS_SCHEMA, 200, 100);
    let source = path.to_str().unwrap();
    let (out, _) = sample_with(&work, source, "fx", &[]);
    let check = || {
        run(&[
            "fixture",
            "check",
            source,
            "--against",
            out.to_str().unwrap(),
            "--json",
        ])
    };
    let (code, stdout, stderr) = check();
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // The same values, with the struct's date declared as a plain INT32.
    let changed = EVENTS_SCHEMA.replace("OPTIONAL INT32 day (DATE)", "OPTIONAL INT32 day");
    nested_events(&path, &changed, 200, 100);
    let (code, stdout, stderr) = check();
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let change = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "place")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(change["change"], "declared-type-changed");
    assert_eq!(
        change["was"],
        "OPTIONAL group { REQUIRED DOUBLE lat; OPTIONAL INT32 day (DATE); }"
    );
    assert_eq!(
        change["now"],
        "OPTIONAL group { REQUIRED DOUBLE lat; OPTIONAL INT32 day; }"
    );

    // Of a nested column only text leaves are masked: one without any is refused (a
    // map's keys are kept, so attrs, strings to decimals, has none).
    for (column, format) in [("attrs", "parquet"), ("codes", "csv"), ("place", "jsonl")] {
        let refused = work.path("refused");
        let (code, _, stderr) = run(&[
            "sample",
            source,
            "--out",
            refused.to_str().unwrap(),
            "--mask",
            column,
            "--format",
            format,
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "--mask {column}: a nested column without text (STRING) leaves ("
            )),
            "{stderr}"
        );
        assert!(!refused.exists());
    }
}

/// `value` with every letter of its strings made `a` (`A` uppercase) and every digit `9`:
/// what masking keeps.
fn shape(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::from(
            text.chars()
                .map(|c| match c {
                    '0'..='9' => '9',
                    c if c.is_uppercase() => 'A',
                    c if c.is_alphabetic() => 'a',
                    c => c,
                })
                .collect::<String>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn nested_parquet_columns_mask_their_text_leaves_in_every_format() {
    let source = data_file("duckdb_nested.parquet");
    let source = source.to_str().unwrap();
    let work = Workdir::new();
    let masks = [
        "--mask", "tags", "--mask", "person", "--mask", "lines", "--mask", "names",
    ];
    let read_jsonl = |dir: &Path| -> Vec<Value> {
        fs::read_to_string(dir.join("duckdb_nested.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let (plain, _) = sample_with(&work, source, "plain", &["--format", "jsonl"]);
    let plain = read_jsonl(&plain);
    let mut args = masks.to_vec();
    args.extend(["--format", "jsonl"]);
    let (masked_dir, _) = sample_with(&work, source, "masked", &args);
    let masked = read_jsonl(&masked_dir);
    assert_eq!(masked.len(), 4);
    for (before, after) in plain.iter().zip(&masked) {
        // Every value keeps its shape, and what is not a text leaf stays as it was: the
        // map `attrs` (not masked), dates, decimals and `names`' integer keys.
        assert_eq!(shape(before), shape(after), "{after}");
        assert_eq!(before["attrs"], after["attrs"]);
        assert_eq!(before["person"]["born"], after["person"]["born"]);
        assert_eq!(before["lines"][0]["price"], after["lines"][0]["price"]);
        assert_eq!(before["names"][0]["key"], after["names"][0]["key"]);
    }
    let texts = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .flat_map(|row| {
                [
                    row["person"]["name"].clone(),
                    row["lines"][0]["sku"].clone(),
                    row["names"][0]["value"].clone(),
                ]
            })
            .filter(Value::is_string)
            .collect()
    };
    let (before, after) = (texts(&plain), texts(&masked));
    assert_eq!(before.len(), 6);
    assert!(
        before.iter().zip(&after).all(|(b, a)| b != a),
        "{before:?} -> {after:?}"
    );
    // The same in a re-run, and in the statistics (still JSON).
    let (again, _) = sample_with(&work, source, "again", &args);
    assert_eq!(read_jsonl(&again), masked);
    let stats = &fixture(&masked_dir)["tables"][0]["stats"]["columns"];
    let person = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "person")
        .unwrap();
    assert_eq!(person["masked"], true);
    let longest: Value = serde_json::from_str(person["longest"]["value"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{person}: {e}"));
    assert!(after.contains(&longest["name"]), "{longest}");

    // The Parquet fixture: the source's schema, its levels, the masked leaves.
    let (pq, _) = sample_with(&work, source, "pq", &masks);
    let written = pq.join("duckdb_nested.parquet");
    assert_eq!(
        parquet_files::schema(&written),
        parquet_files::schema(Path::new(source))
    );
    let rows = parquet_files::rows(&written);
    let source_rows = parquet_files::rows(Path::new(source));
    assert_eq!(rows.len(), source_rows.len());
    // (The crate shows a string in quotes, a quote in it unescaped.)
    for text in after
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| !t.contains('"'))
    {
        assert!(
            rows.iter().any(|r| r.contains(&format!("\"{text}\""))),
            "{text} in {rows:?}"
        );
    }
    for text in before
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| !t.contains('"'))
    {
        assert!(
            !rows.iter().any(|r| r.contains(&format!("\"{text}\""))),
            "{text} in {rows:?}"
        );
    }
    // A masked fixture checks without drift against its source.
    let (code, stdout, stderr) = run(&[
        "fixture",
        "check",
        source,
        "--against",
        pq.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // CSV holds the same masked JSON as JSON Lines.
    args.truncate(masks.len());
    args.extend(["--format", "csv"]);
    let (csv, _) = sample_with(&work, source, "csv", &args);
    let text = fs::read_to_string(csv.join("duckdb_nested.csv")).unwrap();
    let name = masked[0]["person"]["name"].as_str().unwrap();
    let field = format!(r#"{{""name"":""{name}"",""born"":""1990-05-17""}}"#);
    assert!(text.contains(&field), "{field} in {text}");
}

/// `path` with every column chunk's codec declared as `codec` in its footer, the pages
/// left as they are: a file of a codec no writer here makes.
fn declare_codec(path: &Path, codec: parquet::basic::Compression) {
    use parquet::file::metadata::ParquetMetaDataWriter;
    use parquet::file::reader::FileReader;
    let bytes = fs::read(path).unwrap();
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let mut out = bytes[..bytes.len() - 8 - footer as usize].to_vec();
    let metadata = parquet_files::reader(path).metadata().clone();
    let groups = metadata
        .row_groups()
        .iter()
        .map(|group| {
            let columns = group
                .columns()
                .iter()
                .map(|c| {
                    c.clone()
                        .into_builder()
                        .set_compression(codec)
                        .build()
                        .unwrap()
                })
                .collect();
            group
                .clone()
                .into_builder()
                .set_column_metadata(columns)
                .build()
                .unwrap()
        })
        .collect();
    let metadata = metadata.into_builder().set_row_groups(groups).build();
    ParquetMetaDataWriter::new(&mut out, &metadata)
        .finish()
        .unwrap();
    fs::write(path, out).unwrap();
}

#[test]
fn lz4_and_brotli_read_like_snappy_and_lzo_is_refused() {
    use parquet::basic::{BrotliLevel, Compression};
    use parquet_files::Values;
    let work = Workdir::new();
    let schema = "message t { REQUIRED INT64 id; OPTIONAL BYTE_ARRAY status (STRING); }";
    let columns = || {
        [
            Values::Int64((1..=300).map(Some).collect()),
            Values::Bytes(
                (1..=300)
                    .map(|i| (i % 5 != 0).then(|| format!("s{}", i % 7).into_bytes()))
                    .collect(),
            ),
        ]
    };
    let mut fixtures = Vec::new();
    for (name, codec) in [
        ("snappy", Compression::SNAPPY),
        ("lz4", Compression::LZ4),
        ("lz4_raw", Compression::LZ4_RAW),
        ("brotli", Compression::BROTLI(BrotliLevel::default())),
    ] {
        let path = work.path(&format!("{name}.parquet"));
        parquet_files::write_with(&path, schema, &columns(), 100, codec);
        let reader = parquet_files::reader(&path);
        let chunk = parquet::file::reader::FileReader::metadata(&reader)
            .row_group(0)
            .column(1)
            .compression();
        assert_eq!(chunk, codec);
        let (out, _) = sample_with(&work, path.to_str().unwrap(), name, &["--format", "csv"]);
        fixtures.push(fs::read_to_string(out.join(format!("{name}.csv"))).unwrap());
    }
    assert_eq!(fixtures[0].lines().count(), 301);
    assert!(fixtures.iter().all(|f| f == &fixtures[0]));

    // DuckDB's Brotli (its own writer) reads too.
    let brotli =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envd/data/duckdb_brotli.parquet");
    sample_with(&work, brotli.to_str().unwrap(), "duckdb", &[]);

    let lzo = work.path("lzo.parquet");
    parquet_files::write(&lzo, schema, &columns(), 100);
    declare_codec(&lzo, Compression::LZO);
    let out = work.path("refused");
    let (code, _, stderr) = run(&[
        "sample",
        lzo.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("row group 0, column \"id\": compressed with LZO; envd reads"),
        "{stderr}"
    );
    assert!(!out.exists());
}
