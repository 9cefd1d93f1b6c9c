//! Topology reloads: one worker takes every request (SIGHUP, `--watch`, [`RunningServer::reload`]) in order, and
//! a generation number says which request serves.
//!
//! Every request gets the next number when it is made. A snapshot is stored only if its number is above the one
//! serving, under one lock, so an older request that finishes late can never replace a newer one: the last request
//! always wins. Requests that queue while the worker loads are coalesced into one load (files are re-read, so the
//! load that starts last sees the newest content). `set_topology` builds its snapshot on the caller's thread and
//! goes through the same numbered store.
//!
//! [`RunningServer::reload`]: super::RunningServer::reload

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use super::{Shared, Snapshot, TopologySource};
use crate::topology::{Diagnostic, Diagnostics, LoadError};

/// The outcome of one reload: the generation serving afterwards, or why the load was rejected.
pub(crate) type Outcome = Result<u64, Diagnostics>;

struct Request {
    seq: u64,
    reply: Option<oneshot::Sender<Outcome>>,
}

/// The request queue and the generation serving.
pub(crate) struct Reloads {
    /// The last number handed out, and the queue: one lock, so numbers enter the queue in order.
    queue: Mutex<(u64, mpsc::UnboundedSender<Request>)>,
    /// The generation serving; the initial topology is generation 1.
    generation: watch::Sender<u64>,
    /// Held while comparing and storing, so the check "newer than what serves" and the store are one step.
    store: Mutex<()>,
}

/// The worker's end of the queue; [`worker`] consumes it.
pub(crate) struct Queue(mpsc::UnboundedReceiver<Request>);

impl Reloads {
    pub(crate) fn new() -> (Self, Queue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let reloads = Self {
            queue: Mutex::new((1, tx)),
            generation: watch::Sender::new(1),
            store: Mutex::new(()),
        };
        (reloads, Queue(rx))
    }

    /// The generation serving now.
    pub(crate) fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Waits until generation `n` (or a later one) serves.
    pub(crate) async fn wait_for(&self, n: u64) {
        let mut rx = self.generation.subscribe();
        // The sender lives as long as `self`, so this only ends when the generation is reached.
        let _ = rx.wait_for(|g| *g >= n).await;
    }

    /// Asks the worker to re-read the topology source; returns the request's number (the generation it becomes
    /// if it loads). `reply`, if given, receives the outcome.
    pub(crate) fn request(&self, reply: Option<oneshot::Sender<Outcome>>) -> u64 {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0 += 1;
        let seq = q.0;
        if let Err(mpsc::error::SendError(req)) = q.1.send(Request { seq, reply })
            && let Some(reply) = req.reply
        {
            let _ = reply.send(Err(one_error("the server is shutting down".into())));
        }
        seq
    }

    /// A number for a snapshot the caller built itself (`set_topology`).
    pub(crate) fn number(&self) -> u64 {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0 += 1;
        q.0
    }

    /// Stores `snap` as generation `seq` unless a later request already serves; returns the generation serving.
    pub(crate) fn store(&self, shared: &Shared, seq: u64, snap: Snapshot) -> u64 {
        let _held = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let serving = self.generation();
        if seq <= serving {
            info!(
                request = seq,
                serving, "topology load superseded by a later request; not stored"
            );
            return serving;
        }
        let summary = snap.summary();
        shared.metrics.retain_views(snap.metric_views());
        shared.snapshot.store(Arc::new(snap));
        shared.metrics.set_generation(seq);
        self.generation.send_replace(seq);
        info!(topology = %summary, generation = seq, "reloaded; serving topology generation {seq}");
        seq
    }
}

/// Applies queued requests one load at a time until shutdown.
pub(crate) async fn worker(shared: Arc<Shared>, Queue(mut rx): Queue) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let first = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        // Everything queued meanwhile is answered by one load, numbered as the last of them.
        let mut batch = vec![first];
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        let seq = batch.iter().map(|r| r.seq).max().unwrap_or(0);
        let outcome = load_and_store(&shared, seq).await;
        shared.metrics.reload(outcome.is_ok());
        for reply in batch.into_iter().filter_map(|r| r.reply) {
            let _ = reply.send(outcome.clone());
        }
    }
}

async fn load_and_store(shared: &Arc<Shared>, seq: u64) -> Outcome {
    let s = shared.clone();
    // Parse and compile off the runtime: a large topology takes a while and must not stall the ops endpoint.
    let built = tokio::task::spawn_blocking(move || {
        let topo = s.config.source.load().map_err(|e| match e {
            LoadError::Invalid(d) => d,
            other => one_error(other.to_string()),
        })?;
        Snapshot::new(topo, &s.config, &s.local, s.metrics.clone())
            .map_err(|e| one_error(e.to_string()))
    })
    .await
    .map_err(|e| one_error(format!("topology load failed: {e}")))?;
    match built {
        Ok(snap) => Ok(shared.reloads.store(shared, seq, snap)),
        Err(diags) => {
            for d in &diags.0 {
                error!("{d}");
            }
            error!(
                errors = diags.0.len(),
                request = seq,
                "reload rejected; the previous topology keeps serving"
            );
            Err(diags)
        }
    }
}

fn one_error(message: String) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        file: "".into(),
        line: 0,
        col: 0,
        message,
    }])
}

/// How often `--watch` looks at the files.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// What identifies a file's content: an atomic rewrite changes the inode, an edit in place the length or the
/// bytes. Modification times are not used: they are coarse, and a copy can keep the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    inode: u64,
    len: u64,
    hash: u64,
}

/// The files' stamps before the first load (`None` when not watching).
pub(crate) fn initial_stamps(source: &TopologySource, watch: bool) -> Option<Vec<Stamp>> {
    match source {
        TopologySource::Files(paths) if watch => stamps(paths),
        _ => None,
    }
}

/// Each file's stamp; `None` while one cannot be read (e.g. between the unlink and the rename of a rewrite).
fn stamps(paths: &[PathBuf]) -> Option<Vec<Stamp>> {
    paths
        .iter()
        .map(|p| {
            // Metadata and content from the same open file, so they describe the same inode.
            let mut f = std::fs::File::open(p).ok()?;
            let meta = f.metadata().ok()?;
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            f.read_to_end(&mut bytes).ok()?;
            Some(Stamp {
                inode: meta.ino(),
                len: bytes.len() as u64,
                // Collisions only cost a missed reload of an identical-length file.
                hash: crate::hash::of(&bytes),
            })
        })
        .collect()
}

/// `--watch`: polls the topology files off the runtime and queues a reload when one changes.
/// `first` is [`initial_stamps`], taken before the first load, so a change during startup is not missed.
pub(crate) async fn watch_files(
    shared: Arc<Shared>,
    paths: Vec<PathBuf>,
    first: Option<Vec<Stamp>>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let look = |paths: Vec<PathBuf>| async move {
        tokio::task::spawn_blocking(move || stamps(&paths))
            .await
            .ok()
            .flatten()
    };
    let mut last = first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let Some(now) = look(paths.clone()).await else {
            continue;
        };
        if last.as_ref() != Some(&now) {
            last = Some(now);
            let seq = shared.reloads.request(None);
            info!(request = seq, "topology file changed; reloading");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_see_a_same_length_rewrite_and_a_missing_file() {
        let dir = std::env::temp_dir().join(format!("vpc-resolver-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.yaml");
        std::fs::write(&path, "region: a\n").expect("write");
        let before = stamps(std::slice::from_ref(&path)).expect("stamp");
        std::fs::write(&path, "region: b\n").expect("write");
        let after = stamps(std::slice::from_ref(&path)).expect("stamp");
        assert_eq!(before[0].len, after[0].len);
        assert_ne!(before, after, "same length, same inode, other bytes");
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(stamps(&[path]), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
