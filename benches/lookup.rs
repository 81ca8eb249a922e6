//! Lookup + match cost per request as the number of interactions grows.
//!
//! `cargo bench --bench lookup`: the median at 100,000 interactions should stay within 2x
//! of the median at 1 (the index, not a scan, finds the candidates).

use std::path::Path;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use envd::contract;
use envd::matching::{actual_request, Received};
use envd::stub::Catalog;

fn catalog(size: usize) -> Catalog {
    let interactions: Vec<serde_json::Value> = (0..size)
        .map(|i| {
            serde_json::json!({
                "type": "Synchronous/HTTP",
                "description": format!("item {i}"),
                "request": {"method": "GET", "path": format!("/items/{i}"),
                            "headers": {"Accept": "application/json"}},
                "response": {"status": 200, "body": {"id": i, "name": format!("item {i}")}}
            })
        })
        .collect();
    let pact = serde_json::json!({
        "interactions": interactions,
        "metadata": {"pactSpecification": {"version": "4.0"}}
    });
    let (list, skipped) = contract::load_text(Path::new("bench.json"), pact.to_string().as_bytes())
        .expect("generated contract loads");
    Catalog::new(list, skipped)
}

fn lookup(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("lookup_and_match");
    for size in [1usize, 1_000, 10_000, 100_000] {
        let catalog = catalog(size);
        let requests: Vec<_> = (0..64)
            .map(|k| {
                let path = format!("/items/{}", (k * 7919) % size);
                actual_request(
                    Received {
                        method: "GET",
                        path: &path,
                        query: None,
                        headers: &[("accept", "application/json"), ("host", "localhost")],
                    },
                    Bytes::new(),
                )
            })
            .collect();
        let mut next = 0;
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |bench, _| {
            bench.iter(|| {
                next = (next + 1) % requests.len();
                let found = catalog.find(&requests[next], &[]);
                assert!(found.is_some());
                found
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
