//! Request logs leave the request path through a bounded channel; one task writes them in batches. When the channel
//! is full the row is dropped and counted (never blocks a request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use store::{RequestLog, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const BATCH: usize = 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How often the writer folds SQLite's write-ahead log back into the database (see `Store::checkpoint`).
/// Often, so that each checkpoint copies little: one copying tens of megabytes holds the core for milliseconds.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct RequestLogWriter {
    tx: std::sync::Mutex<Option<mpsc::Sender<RequestLog>>>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    pub dropped: AtomicU64,
    pub written: Arc<AtomicU64>,
}

impl RequestLogWriter {
    pub fn start(store: Store, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let written = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(write_loop(store, rx, written.clone()));
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            task: std::sync::Mutex::new(Some(task)),
            dropped: AtomicU64::new(0),
            written,
        }
    }

    pub fn send(&self, log: RequestLog) {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else { return };
        if tx.try_send(log).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "request-log channel full; rows dropped");
            }
        }
    }

    /// Closes the channel and waits for the writer to flush what it holds.
    pub async fn shutdown(&self) {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<RequestLog>, written: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        let n = rx.recv_many(&mut batch, BATCH).await;
        if n == 0 {
            break;
        }
        // Let a burst accumulate into one transaction.
        if batch.len() < BATCH {
            let deadline = tokio::time::sleep(FLUSH_EVERY);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    got = rx.recv_many(&mut batch, BATCH) => if got == 0 || batch.len() >= BATCH { break },
                }
            }
        }
        match store.insert_request_logs(&batch).await {
            Ok(()) => {
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "request logs could not be written")
            }
        }
        batch.clear();
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            last_checkpoint = tokio::time::Instant::now();
            if let Err(e) = store.checkpoint().await {
                tracing::warn!(error = %e, "database checkpoint failed");
            }
        }
    }
}
