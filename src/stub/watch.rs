//! `--watch`: reload the contracts when their files change.
//!
//! Polling rather than inotify: it works the same on every file system (bind mounts, NFS,
//! editors that replace files by rename) and costs a few `stat` calls per tick.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Stub;
use crate::contract;

/// How often files are checked: quick enough that a saved edit is served by the time a
/// person re-runs a request, slow enough to cost nothing.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What a set of files looked like: names, sizes and modification times.
type Fingerprint = Result<Vec<(PathBuf, u64, Option<SystemTime>)>, String>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let files = contract::files(paths).map_err(|error| error.to_string())?;
    files
        .into_iter()
        .map(|file| {
            let metadata = std::fs::metadata(&file).map_err(|error| error.to_string())?;
            Ok((file, metadata.len(), metadata.modified().ok()))
        })
        .collect()
}

/// Reloads `stub`'s catalog whenever the files behind `paths` change, until `shutdown`.
/// A load that fails keeps the previous catalog serving and logs why.
pub async fn watch(stub: Arc<Stub>, paths: Vec<PathBuf>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut seen = fingerprint(&paths);
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut shutdown => return,
        }
        let now = fingerprint(&paths);
        if now == seen {
            continue;
        }
        seen = now;
        let loading = paths.clone();
        match tokio::task::spawn_blocking(move || super::load(&loading)).await {
            Ok(Ok(catalog)) => {
                tracing::info!(interactions = catalog.len(), "contracts changed: reloaded");
                stub.replace_catalog(catalog);
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "contracts changed but do not load; still serving the previous ones");
            }
            Err(error) => tracing::error!(%error, "reloading contracts failed"),
        }
    }
}
