//! Crash-safe recording.
//!
//! Every finished exchange is appended to a journal beside the recording (`FILE.journal`,
//! one interaction per line) and synced to disk before the proxy releases the response, so
//! a client that has its response knows its exchange survives a crash. Appends that arrive
//! together share one sync (group commit). The Pact file itself is only ever replaced whole
//! — at a clean stop, or at the next start when a journal was left over.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;

use super::{Fingerprint, Recording};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot add to this recording: {reason}")]
    Existing { path: PathBuf, reason: String },
    #[error("the recorder stopped")]
    Stopped,
}

enum Command {
    Append(Value, Identity, oneshot::Sender<Result<bool, RecordError>>),
    Snapshot(oneshot::Sender<Value>),
    Finish(oneshot::Sender<Result<usize, RecordError>>),
}

/// A recording being written: owned by one thread that does all of its IO.
#[derive(Debug)]
pub struct Recorder {
    commands: mpsc::Sender<Command>,
    path: PathBuf,
    /// The exchanges already on disk, so that a repeat costs no trip to the recorder
    /// thread (a proxy in front of a health check repeats one exchange all day).
    durable: Arc<Mutex<HashSet<Identity>>>,
}

/// What makes two interactions the same: everything but the metadata (the latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity(Fingerprint);

impl Identity {
    fn of(interaction: &mut Value) -> Identity {
        let metadata = interaction
            .as_object_mut()
            .and_then(|fields| fields.remove("metadata"));
        let text = interaction.to_string();
        if let (Some(metadata), Some(fields)) = (metadata, interaction.as_object_mut()) {
            fields.insert("metadata".into(), metadata);
        }
        Identity(Fingerprint::of(text.as_bytes()))
    }
}

/// `FILE.journal`: where exchanges wait for the next whole rewrite of `FILE`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

impl Recorder {
    /// Opens `path` for recording: its interactions (if it exists) are kept, a journal left
    /// by a crash is merged into it first, and new exchanges are added after them.
    pub fn open(path: &Path, consumer: &str, provider: &str) -> Result<Recorder, RecordError> {
        let mut recording = Recording::new(consumer, provider);
        load_existing(path, &mut recording)?;
        let journal = journal_path(path);
        let recovered = replay_journal(&journal, &mut recording)?;
        if recovered > 0 || journal.exists() {
            tracing::info!(recovered, journal = %journal.display(), "merging exchanges left by an earlier run");
            recording.write(path).map_err(|source| RecordError::Io {
                path: path.to_owned(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&journal)
            .map_err(|source| RecordError::Io {
                path: journal.clone(),
                source,
            })?;
        let durable: HashSet<Identity> = recording
            .interactions()
            .iter()
            .map(|interaction| Identity::of(&mut interaction.clone()))
            .collect();
        let durable = Arc::new(Mutex::new(durable));
        let (commands, received) = mpsc::channel();
        let owned = (path.to_owned(), journal, durable.clone());
        std::thread::Builder::new()
            .name("envd-recorder".into())
            .spawn(move || run(owned.0, owned.1, file, recording, owned.2, received))
            .map_err(|source| RecordError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Recorder {
            commands,
            path: path.to_owned(),
            durable,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds an interaction (already redacted) and returns once it is on disk; whether it
    /// was new (identical exchanges are stored once).
    pub async fn append(&self, mut interaction: Value) -> Result<bool, RecordError> {
        let identity = Identity::of(&mut interaction);
        if self
            .durable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&identity)
        {
            return Ok(false);
        }
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Append(interaction, identity, done))
            .map_err(|_| RecordError::Stopped)?;
        result.await.map_err(|_| RecordError::Stopped)?
    }

    /// The recording as it stands, as a Pact document.
    pub async fn snapshot(&self) -> Result<Value, RecordError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Snapshot(done))
            .map_err(|_| RecordError::Stopped)?;
        result.await.map_err(|_| RecordError::Stopped)
    }

    /// Writes the recording whole and removes the journal; the number of interactions.
    pub async fn finish(self) -> Result<usize, RecordError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Finish(done))
            .map_err(|_| RecordError::Stopped)?;
        result.await.map_err(|_| RecordError::Stopped)?
    }
}

fn load_existing(path: &Path, into: &mut Recording) -> Result<(), RecordError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RecordError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let existing = |reason: String| RecordError::Existing {
        path: path.to_owned(),
        reason,
    };
    // Refuse anything that is not a Pact file rather than overwrite it.
    crate::contract::load_text(path, &text).map_err(|error| existing(error.to_string()))?;
    let document: Value =
        serde_json::from_slice(&text).map_err(|error| existing(error.to_string()))?;
    for interaction in document["interactions"].as_array().into_iter().flatten() {
        into.push(interaction.clone());
    }
    Ok(())
}

/// Adds the journal's complete lines to `recording`. A torn last line is the exchange that
/// was being written when the process died: its client never got a response, so it is
/// dropped.
fn replay_journal(journal: &Path, recording: &mut Recording) -> Result<usize, RecordError> {
    let file = match File::open(journal) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(RecordError::Io {
                path: journal.to_owned(),
                source,
            })
        }
    };
    let mut recovered = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|source| RecordError::Io {
            path: journal.to_owned(),
            source,
        })?;
        match serde_json::from_slice::<Value>(&line) {
            Ok(interaction) => {
                recording.push(interaction);
                recovered += 1;
            }
            Err(_) => tracing::warn!(journal = %journal.display(), "dropping a torn journal line"),
        }
    }
    Ok(recovered)
}

fn run(
    path: PathBuf,
    journal_path: PathBuf,
    mut journal: File,
    mut recording: Recording,
    durable: Arc<Mutex<HashSet<Identity>>>,
    commands: mpsc::Receiver<Command>,
) {
    let io_error = |source| RecordError::Io {
        path: journal_path.clone(),
        source,
    };
    while let Ok(first) = commands.recv() {
        let mut batch = vec![first];
        batch.extend(commands.try_iter());
        let mut waiting = Vec::new();
        let mut written = Ok(());
        for command in batch {
            match command {
                Command::Append(interaction, identity, done) => {
                    let line = serde_json::to_vec(&interaction).unwrap_or_default();
                    // An identical exchange is already on disk: nothing to write or sync.
                    let new = recording.push(interaction);
                    if new && written.is_ok() {
                        written = journal
                            .write_all(&line)
                            .and_then(|()| journal.write_all(b"\n"));
                    }
                    waiting.push((done, new, identity));
                }
                Command::Snapshot(done) => {
                    let _ = done.send(recording.to_json());
                }
                Command::Finish(done) => {
                    let synced = journal.sync_data();
                    let result = recording
                        .write(&path)
                        .map_err(|source| RecordError::Io {
                            path: path.clone(),
                            source,
                        })
                        .and_then(|()| synced.map_err(io_error))
                        .and_then(|()| std::fs::remove_file(&journal_path).map_err(io_error))
                        .map(|()| recording.len());
                    for (done, new, _) in waiting.drain(..) {
                        let _ = done.send(Ok(new));
                    }
                    let _ = done.send(result);
                    return;
                }
            }
        }
        let synced = written.and_then(|()| journal.sync_data());
        if synced.is_ok() {
            durable
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend(waiting.iter().map(|(_, _, identity)| *identity));
        }
        for (done, new, _) in waiting {
            let _ = done.send(match &synced {
                Ok(()) => Ok(new),
                Err(error) => Err(io_error(std::io::Error::new(
                    error.kind(),
                    error.to_string(),
                ))),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn interaction(path: &str) -> Value {
        json!({"type": "Synchronous/HTTP", "description": format!("GET {path}"),
               "request": {"method": "GET", "path": path}, "response": {"status": 200}})
    }

    fn recorded_paths(path: &Path) -> Vec<String> {
        let document: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        document["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|one| one["request"]["path"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_leftover_journal_is_merged_and_a_torn_line_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        let recorder = Recorder::open(&path, "orders", "users").unwrap();
        assert!(recorder.append(interaction("/a")).await.unwrap());
        assert!(
            !recorder.append(interaction("/a")).await.unwrap(),
            "stored once"
        );
        assert_eq!(recorder.finish().await.unwrap(), 1);
        assert_eq!(recorded_paths(&path), ["/a"]);
        assert!(!journal_path(&path).exists());

        // A crash: complete lines and a torn one, and no rewrite of the file.
        let mut journal = File::create(journal_path(&path)).unwrap();
        writeln!(journal, "{}", interaction("/b")).unwrap();
        write!(journal, "{{\"type\": \"Synch").unwrap();
        drop(journal);
        let recorder = Recorder::open(&path, "orders", "users").unwrap();
        assert_eq!(
            recorded_paths(&path),
            ["/a", "/b"],
            "merged at start, before serving"
        );
        recorder.append(interaction("/c")).await.unwrap();
        recorder.finish().await.unwrap();
        assert_eq!(recorded_paths(&path), ["/a", "/b", "/c"]);
    }

    #[test]
    fn refuses_to_overwrite_what_is_not_a_pact_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.json");
        std::fs::write(&path, "[1, 2, 3]").unwrap();
        let error = Recorder::open(&path, "a", "b").unwrap_err();
        assert!(
            error.to_string().contains("cannot add to this recording"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1, 2, 3]");
    }
}
