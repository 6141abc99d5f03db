//! Request logs leave the request path through a bounded channel to one writer thread, `request-history`. When the
//! channel is full the row is dropped and counted: a request never waits for the history.
//!
//! On SQLite the thread writes through its own connection ([`HistoryConnection`]) in small transactions and paces
//! itself: after each transaction it sleeps several times as long as the transaction took. On a gateway whose
//! requests and history share a core, requests so get the core back within a fraction of a millisecond. (Writing
//! 1024 rows at once held the core for over a millisecond, every request in flight waited that long, and that set
//! the p99 latency at concurrency 16.) When rows pile up the thread paces less, then not at all, so that it keeps up
//! instead of dropping rows. On PostgreSQL the work happens in the database server, so the thread writes large
//! batches through the store's pool, without pacing.
//!
//! A write the store refuses is retried for about 3 s (a lock, a killed connection, a database failover). If the
//! store still refuses (a full or read-only disk, a database that is down), the rows are held in memory, up to
//! [`HELD_MAX`], and offered again every [`HELD_RETRY`]; new rows queue behind them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use store::{HistoryConnection, RequestLog, Store};

/// Rows per SQLite transaction: about 150 µs of work. Smaller transactions rewrite the same partly filled pages
/// into the write-ahead log more often (32 rows cost 2 µs more CPU per request); larger ones hold the core longer.
const SQLITE_CHUNK: usize = 128;
/// Rows per PostgreSQL statement batch.
const POOL_CHUNK: usize = 1024;
/// How long a partly filled chunk waits for more rows before it is written.
const LINGER: Duration = Duration::from_millis(100);
/// How often a partly filled chunk looks for more rows.
const POLL: Duration = Duration::from_millis(1);
/// After a transaction of duration `d`, the SQLite writer sleeps `PACE × d`: it takes at most a tenth of a core
/// while it is keeping up.
const PACE: u32 = 9;
/// A slow transaction (one that waited for another writer's lock) does not earn a long sleep.
const MAX_PAUSE: Duration = Duration::from_millis(10);
/// How often the SQLite writer looks for rows past retention.
const RETENTION_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often the SQLite writer copies the write-ahead log back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Rows kept in memory while the store refuses them (a full or read-only disk, a database that is down), written
/// once it takes them again. Past this, the oldest are dropped and counted. About 300 bytes each.
const HELD_MAX: usize = 100_000;
/// How often held rows are offered to the store again.
const HELD_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct RequestLogWriter {
    tx: Mutex<Option<SyncSender<RequestLog>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    prunes: bool,
    pub dropped: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    /// Rows sent and not yet taken by the writer: how far behind it is.
    queued: AtomicUsize,
    capacity: usize,
    /// Set at shutdown: write what is left at full speed.
    closing: AtomicBool,
    written: AtomicU64,
    /// Rows the store refused, waiting in memory for it to take them.
    held: AtomicUsize,
    /// Rows lost: held past [`HELD_MAX`], or still refused at shutdown.
    lost: AtomicU64,
}

/// How long request logs are kept (`REQUEST_ANALYTICS_RETENTION_DAYS`, `REQUEST_ANALYTICS_MAX_ROWS`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_rows: Option<u64>,
}

impl Retention {
    fn is_set(&self) -> bool {
        self.max_age.is_some() || self.max_rows.is_some()
    }
}

enum Sink {
    Sqlite(HistoryConnection),
    /// The store's pool: PostgreSQL, or SQLite in memory. Driven from the writer thread through the runtime.
    Pool(Box<Store>, tokio::runtime::Handle),
}

impl Sink {
    /// One attempt at inserting `rows`.
    fn insert(&mut self, rows: &[RequestLog]) -> Result<(), store::StoreError> {
        match self {
            Sink::Sqlite(conn) => conn.write(rows, None).map(|_| ()),
            Sink::Pool(store, runtime) => runtime.block_on(store.insert_request_logs(rows)),
        }
    }
}

/// Rows the store refused, oldest first, bounded by [`HELD_MAX`].
struct Held {
    rows: std::collections::VecDeque<RequestLog>,
    next_try: Instant,
}

impl Held {
    fn keep(&mut self, rows: &mut Vec<RequestLog>, shared: &Shared) {
        self.rows.extend(rows.drain(..));
        let excess = self.rows.len().saturating_sub(HELD_MAX);
        if excess > 0 {
            self.rows.drain(..excess);
            let lost = shared.lost.fetch_add(excess as u64, Ordering::Relaxed) + excess as u64;
            tracing::error!(
                lost,
                "request history: the store has refused rows for too long; the oldest are dropped"
            );
        }
        shared.held.store(self.rows.len(), Ordering::Relaxed);
    }

    /// Offers the oldest held rows to the store if it is time; true if it took them.
    fn retry(&mut self, sink: &mut Sink, chunk: usize, shared: &Shared, now: Instant) -> bool {
        if self.rows.is_empty() || now < self.next_try {
            return false;
        }
        let n = self.rows.len().min(chunk);
        let taken = sink.insert(&self.rows.make_contiguous()[..n]);
        match taken {
            Ok(()) => {
                self.rows.drain(..n);
                shared.written.fetch_add(n as u64, Ordering::Relaxed);
                shared.held.store(self.rows.len(), Ordering::Relaxed);
                if self.rows.is_empty() {
                    tracing::info!(
                        "request history: the store takes rows again; every held row is written"
                    );
                }
                true
            }
            Err(_) => {
                self.next_try = now + HELD_RETRY;
                false
            }
        }
    }
}

impl RequestLogWriter {
    /// Starts the writer thread. Must be called inside the Tokio runtime (PostgreSQL writes go through it).
    /// On SQLite the writer also applies `retention`, a chunk per transaction (see [`RequestLogWriter::prunes`]).
    pub fn start(store: Store, capacity: usize, retention: Retention) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let sink = match store.sqlite_file().map(HistoryConnection::open) {
            Some(Ok(conn)) => Sink::Sqlite(conn),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "request history: own SQLite connection failed; writing through the pool");
                Sink::Pool(Box::new(store), tokio::runtime::Handle::current())
            }
            None => Sink::Pool(Box::new(store), tokio::runtime::Handle::current()),
        };
        let prunes = matches!(sink, Sink::Sqlite(_)) && retention.is_set();
        let (tx, rx) = sync_channel(capacity);
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            capacity,
            closing: AtomicBool::new(false),
            written: AtomicU64::new(0),
            held: AtomicUsize::new(0),
            lost: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("request-history".into())
                .spawn(move || write_loop(sink, &rx, &shared, prunes.then_some(retention)))?
        };
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            shared,
            prunes,
            dropped: AtomicU64::new(0),
        })
    }

    /// Whether this writer applies retention itself (SQLite); otherwise the store's `prune_requests` must run.
    pub fn prunes(&self) -> bool {
        self.prunes
    }

    pub fn send(&self, log: RequestLog) {
        let guard = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else { return };
        // Counted before sending, so that the writer never takes more than was counted.
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if tx.try_send(log).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "request-log channel full; rows dropped");
            }
        }
    }

    /// Rows written to the store so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Rows the store refused that wait in memory to be written.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// Rows lost because the store refused them for too long (see [`HELD_MAX`]).
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Closes the channel and waits for the writer to write what it holds.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // Joining blocks: do it off the runtime, whose threads the writer may need (PostgreSQL).
            if tokio::task::spawn_blocking(move || thread.join())
                .await
                .is_err()
            {
                tracing::error!("the request-history writer thread panicked");
            }
        }
    }
}

/// `retention` is set when this writer prunes (SQLite with a retention setting).
fn write_loop(
    mut sink: Sink,
    rx: &Receiver<RequestLog>,
    shared: &Shared,
    retention: Option<Retention>,
) {
    let chunk = match sink {
        Sink::Sqlite(_) => SQLITE_CHUNK,
        Sink::Pool(..) => POOL_CHUNK,
    };
    let mut rows = Vec::with_capacity(chunk);
    let mut last_checkpoint = Instant::now();
    // Retention on SQLite: rows up to this rowid are past it; re-read every `RETENTION_CHECK_EVERY`.
    let mut bound: Option<i64> = None;
    let mut next_check = Instant::now();
    let mut pruned = 0usize;
    let mut held = Held {
        rows: std::collections::VecDeque::new(),
        next_try: Instant::now(),
    };
    loop {
        // Wait for rows: without end when there is nothing else to do, otherwise until retention or held rows
        // have work.
        let now = Instant::now();
        let wait = match (retention.is_some(), held.rows.is_empty()) {
            _ if bound.is_some() => Some(Duration::ZERO),
            (false, true) => None,
            (true, true) => Some(next_check.saturating_duration_since(now)),
            (false, false) => Some(held.next_try.saturating_duration_since(now)),
            (true, false) => Some(next_check.min(held.next_try).saturating_duration_since(now)),
        };
        let mut closed = match wait {
            None => match rx.recv() {
                Ok(row) => {
                    rows.push(row);
                    false
                }
                Err(_) => true,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(row) => {
                    rows.push(row);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            },
        };
        if !rows.is_empty() {
            closed = fill(rx, &mut rows, chunk);
        }
        shared.queued.fetch_sub(rows.len(), Ordering::Relaxed);

        let started = Instant::now();
        if let (Sink::Sqlite(conn), Some(retention)) = (&mut sink, retention) {
            if started >= next_check {
                next_check = started + RETENTION_CHECK_EVERY;
                bound = conn
                    .retention_bound(
                        retention.max_age,
                        retention.max_rows,
                        crate::runtime::events::now_ms() as i64,
                    )
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "request history retention check failed");
                        None
                    });
            }
        }
        if !rows.is_empty() || !held.rows.is_empty() {
            insert_or_hold(&mut sink, &mut rows, &mut held, chunk, shared);
            if matches!(sink, Sink::Sqlite(_)) {
                // New rows and old ones go in separate transactions, each followed by its rest: two short holds
                // of the core rather than one long one.
                rest(started, shared);
            }
        }
        if let Sink::Sqlite(conn) = &mut sink {
            if let Some(through) = bound {
                let started = Instant::now();
                match conn.write(&[], Some((through, SQLITE_CHUNK))) {
                    Ok(deleted) => {
                        pruned += deleted;
                        if deleted < SQLITE_CHUNK {
                            bound = None;
                            tracing::debug!(
                                rows = pruned,
                                "request history pruned by retention settings"
                            );
                            pruned = 0;
                        }
                    }
                    Err(e) => {
                        bound = None;
                        tracing::warn!(error = %e, "request history pruning failed");
                    }
                }
                rest(started, shared);
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                let started = Instant::now();
                last_checkpoint = started;
                if let Err(e) = conn.checkpoint() {
                    tracing::warn!(error = %e, "database checkpoint failed");
                }
                rest(started, shared);
            }
        }
        rows.clear();
        if closed {
            // Last chance for held rows: the store may have come back.
            held.next_try = Instant::now();
            while held.retry(&mut sink, chunk, shared, Instant::now()) {}
            if !held.rows.is_empty() {
                let n = held.rows.len() as u64;
                shared.lost.fetch_add(n, Ordering::Relaxed);
                tracing::error!(
                    rows = n,
                    "request history: rows still refused by the store at shutdown are lost"
                );
            }
            break;
        }
    }
}

/// Writes new rows (with retries), or keeps them with the held ones while the store refuses rows, then offers the
/// held rows again when their retry is due. New rows wait behind held ones, so that a failing store is asked once
/// per [`HELD_RETRY`], not once per batch.
fn insert_or_hold(
    sink: &mut Sink,
    rows: &mut Vec<RequestLog>,
    held: &mut Held,
    chunk: usize,
    shared: &Shared,
) {
    if !rows.is_empty() {
        if held.rows.is_empty() {
            match with_retries(|| sink.insert(rows)) {
                Ok(()) => {
                    shared
                        .written
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    rows.clear();
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = rows.len(), "request logs could not be written; held in memory until the store takes them");
                    held.next_try = Instant::now() + HELD_RETRY;
                    held.keep(rows, shared);
                }
            }
        } else {
            held.keep(rows, shared);
        }
    }
    held.retry(sink, chunk, shared, Instant::now());
}

/// Pauses before the retries of a failed write: a lock held by another writer, a database connection killed
/// mid-write (the pool reconnects) or a failover of the database server pass within them.
const RETRY_PAUSES: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(800),
    Duration::from_millis(2_000),
];

/// Runs a write, and again after each of [`RETRY_PAUSES`] while it fails; the last error is returned.
fn with_retries<T, E: std::fmt::Display>(mut write: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut pauses = RETRY_PAUSES.iter();
    loop {
        match write() {
            Ok(v) => return Ok(v),
            Err(e) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "request logs could not be written; retrying");
                    std::thread::sleep(*pause);
                }
                None => return Err(e),
            },
        }
    }
}

/// Adds rows to a started chunk until it is full or `LINGER` has passed. Sleeps between looks instead of blocking
/// on the channel, so that a request's `send` never has to wake this thread. Returns whether the channel closed.
fn fill(rx: &Receiver<RequestLog>, rows: &mut Vec<RequestLog>, chunk: usize) -> bool {
    let deadline = Instant::now() + LINGER;
    loop {
        while rows.len() < chunk {
            match rx.try_recv() {
                Ok(row) => rows.push(row),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        let now = Instant::now();
        if rows.len() >= chunk || now >= deadline {
            return false;
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Sleeps after work that began at `started` (see [`pause_after`]).
fn rest(started: Instant, shared: &Shared) {
    if let Some(pause) = pause_after(started.elapsed(), shared) {
        std::thread::sleep(pause);
    }
}

/// How long the SQLite writer rests after `work`: `PACE` times as long while it keeps up, as long once a sixteenth of
/// the channel is full, not at all once a quarter is or when the gateway is shutting down.
fn pause_after(work: Duration, shared: &Shared) -> Option<Duration> {
    if shared.closing.load(Ordering::Relaxed) {
        return None;
    }
    let backlog = shared.queued.load(Ordering::Relaxed);
    let factor = if backlog >= shared.capacity / 4 {
        return None;
    } else if backlog >= shared.capacity / 16 {
        1
    } else {
        PACE
    };
    Some((work * factor).min(MAX_PAUSE))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use store::Cipher;

    #[test]
    fn a_failed_write_is_retried_until_it_passes_or_the_pauses_run_out() {
        let mut calls = 0;
        let result: Result<u32, String> = with_retries(|| {
            calls += 1;
            if calls < 3 {
                Err(format!("transient {calls}"))
            } else {
                Ok(7)
            }
        });
        assert_eq!((result, calls), (Ok(7), 3));
        let mut calls = 0;
        let result: Result<(), String> = with_retries(|| {
            calls += 1;
            Err("down".into())
        });
        assert_eq!(
            (result, calls),
            (Err("down".into()), RETRY_PAUSES.len() + 1)
        );
    }

    fn row(i: usize) -> RequestLog {
        RequestLog {
            id: format!("req-{i}").into(),
            user_id: "writer-test".into(),
            gateway_key_id: Some("g".into()),
            endpoint: "chat",
            requested_model: "auto".into(),
            platform: Some("custom"),
            model: Some("m".into()),
            provider_key_id: Some("k".into()),
            status: "success",
            http_status: 200,
            error_class: None,
            error_message: None,
            stream: false,
            attempts: 1,
            input_tokens: Some(1),
            output_tokens: Some(2),
            latency_ms: 3,
            ttfb_ms: Some(1),
            created_at: 1_000_000 + i as i64,
            failed_attempts: Vec::new(),
        }
    }

    /// A burst far larger than one transaction, sent faster than the paced writer writes: nothing is dropped and
    /// shutdown writes what is still queued.
    async fn burst_is_written_in_full(url: &str, expect_own_connection: bool) {
        let store = Store::open(url, Cipher::new(&[3u8; 32])).await.unwrap();
        assert_eq!(store.sqlite_file().is_some(), expect_own_connection);
        let writer = RequestLogWriter::start(store.clone(), 8192, Retention::default()).unwrap();
        assert!(!writer.prunes());
        const ROWS: usize = 6000;
        for i in 0..ROWS {
            writer.send(row(i));
        }
        writer.shutdown().await;
        assert_eq!(writer.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(writer.written(), ROWS as u64);
        let newest = store.recent_requests("writer-test", 1).await.unwrap();
        assert_eq!(newest[0]["id"], format!("req-{}", ROWS - 1));
        assert_eq!(
            store.prune_requests(None, Some(0)).await.unwrap(),
            ROWS as u64
        );
        // After shutdown rows are refused quietly, not queued for a writer that is gone.
        writer.send(row(0));
        assert_eq!(writer.written(), ROWS as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writer_thread_writes_a_burst_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        burst_is_written_in_full(&url, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writer_applies_retention_while_idle() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = Store::open(&url, Cipher::new(&[3u8; 32])).await.unwrap();
        let retention = Retention {
            max_age: None,
            max_rows: Some(1000),
        };
        let writer = RequestLogWriter::start(store.clone(), 8192, retention).unwrap();
        assert!(writer.prunes());
        for i in 0..3000 {
            writer.send(row(i));
        }
        // No more rows arrive: the writer finds the excess at its next retention check (every 2 s) and deletes it.
        // The writer is an OS thread on the real clock, so paused tokio time cannot drive it: poll, bounded at 10 s.
        let mut kept = usize::MAX;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            kept = store
                .recent_requests("writer-test", 5000)
                .await
                .unwrap()
                .len();
            if writer.written() == 3000 && kept == 1000 {
                break;
            }
        }
        assert_eq!((writer.written(), kept), (3000, 1000));
        let newest = store.recent_requests("writer-test", 1).await.unwrap();
        assert_eq!(newest[0]["id"], "req-2999");
        writer.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_writer_goes_through_the_pool() {
        let Some(base) = store::testing::postgres_base() else {
            eprintln!("\n!!!! NOTICE: FREELLMAPI_TEST_POSTGRES_URL is not set; the PostgreSQL history writer was NOT tested !!!!\n");
            return;
        };
        let url = store::testing::fresh_postgres_database(&base)
            .await
            .unwrap();
        burst_is_written_in_full(&url, false).await;
    }

    #[test]
    fn pacing_backs_off_as_rows_pile_up() {
        let shared = Shared {
            queued: AtomicUsize::new(0),
            capacity: 8192,
            closing: AtomicBool::new(false),
            written: AtomicU64::new(0),
            held: AtomicUsize::new(0),
            lost: AtomicU64::new(0),
        };
        let work = Duration::from_micros(150);
        assert_eq!(pause_after(work, &shared), Some(work * PACE));
        assert_eq!(
            pause_after(Duration::from_millis(50), &shared),
            Some(MAX_PAUSE)
        );
        shared.queued.store(8192 / 16, Ordering::Relaxed);
        assert_eq!(pause_after(work, &shared), Some(work));
        shared.queued.store(8192 / 4, Ordering::Relaxed);
        assert_eq!(pause_after(work, &shared), None);
        shared.queued.store(0, Ordering::Relaxed);
        shared.closing.store(true, Ordering::Relaxed);
        assert_eq!(pause_after(work, &shared), None);
    }
}
