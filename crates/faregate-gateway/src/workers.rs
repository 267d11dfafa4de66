//! Data-plane worker threads: one current-thread tokio runtime each.
//!
//! A connection handed to a worker lives there to its end: its task, its
//! timers, its sockets (the upstream connections it takes from its worker's
//! share of the pool, [`crate::h1::Pool`]) are all driven by that one
//! thread, with no work stealing and no wake-ups across threads on the
//! request path. The accept loops run where [`crate::serve_on`] is called
//! (the control plane, beside the admin API and the ledger writer) and give
//! each new connection to the worker with the fewest open, the next in turn
//! on a tie, so that a burst of connections is spread evenly.
//!
//! Workers outlive serving: tasks a request left behind (a settlement that
//! waits on a chain) and sockets opened on a worker's reactor (a database
//! connection) keep working until [`Workers::join`], which the caller runs
//! after the ledger's last write.
//!
//! The request path comes first: [`Workers::lower_helpers`] puts the
//! process's helper threads (SQLite's connection threads, where the
//! ledger's group commits run, and the access-log writer) below the
//! workers, so that a commit's burst of work waits for a woken worker
//! instead of holding the CPU it needs.

use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

thread_local! {
    /// This thread's worker number: 0 off the workers, 1 to N on them.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker running on this thread (1 to N), or 0 on any other thread.
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

/// Shares of one value per worker thread: sockets in a connection pool are
/// driven by the reactor of the runtime that opened them, so each worker
/// keeps its own. Worker `n` uses share `n % SHARES`; threads off the
/// workers share share 0.
pub(crate) struct PerWorker<T> {
    shares: Box<[Padded<T>]>,
}

/// The most shares kept; more workers than this share them in turn.
const SHARES: usize = 64;

/// A share on cache lines of its own, so workers do not contend on them.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded<T>(T);

impl<T: Default> Default for PerWorker<T> {
    fn default() -> Self {
        Self {
            shares: (0..SHARES).map(|_| Padded::default()).collect(),
        }
    }
}

impl<T> PerWorker<T> {
    /// This thread's share.
    pub(crate) fn get(&self) -> &T {
        &self.shares[current() % SHARES].0
    }

    /// Every share (for sweeping).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.shares.iter().map(|p| &p.0)
    }
}

impl<T> std::fmt::Debug for PerWorker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerWorker")
            .field("shares", &self.shares.len())
            .finish_non_exhaustive()
    }
}

/// Work a worker runs on its own runtime (it may spawn tasks there).
type Job = Box<dyn FnOnce() + Send>;

/// One worker as the acceptors see it.
struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    /// Connections it serves now.
    open: Arc<AtomicUsize>,
}

/// Counts one connection against its worker while alive.
#[derive(Debug)]
pub(crate) struct Load(Option<Arc<AtomicUsize>>);

impl Load {
    /// A connection that is not on a worker.
    pub(crate) const NONE: Load = Load(None);
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.fetch_sub(1, Relaxed);
        }
    }
}

/// The data-plane worker threads.
pub struct Workers {
    workers: Vec<Worker>,
    /// Where the least-loaded search starts, so that ties rotate.
    next: AtomicUsize,
    exit: CancellationToken,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The workers' kernel thread ids.
    #[cfg(target_os = "linux")]
    tids: Vec<rustix::process::Pid>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.workers.len())
            .field("open", &self.open_connections())
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// Starts `count` worker threads (at least one), named
    /// `faregate-worker-N`.
    pub fn start(count: usize) -> io::Result<Arc<Self>> {
        // Built up in place: on an error, dropping it stops the threads
        // already started.
        let mut started = Self {
            workers: Vec::new(),
            next: AtomicUsize::new(0),
            exit: CancellationToken::new(),
            threads: Mutex::new(Vec::new()),
            #[cfg(target_os = "linux")]
            tids: Vec::new(),
        };
        #[cfg(target_os = "linux")]
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        for n in 1..=count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (jobs, inbox) = mpsc::unbounded_channel();
            let exit = started.exit.clone();
            #[cfg(target_os = "linux")]
            let tid_tx = tid_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("faregate-worker-{n}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(n));
                    #[cfg(target_os = "linux")]
                    let _ = tid_tx.send(rustix::thread::gettid());
                    runtime.block_on(run(inbox, exit));
                })?;
            started.threads.get_mut().push(thread);
            started.workers.push(Worker {
                jobs,
                open: Arc::new(AtomicUsize::new(0)),
            });
            #[cfg(target_os = "linux")]
            started.tids.push(
                tid_rx.recv().map_err(|_| {
                    io::Error::other(format!("worker {n} stopped before it started"))
                })?,
            );
        }
        Ok(Arc::new(started))
    }

    /// How many workers there are.
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    /// Connections each worker serves now, worker 1 first.
    pub fn open_connections(&self) -> Vec<usize> {
        self.workers.iter().map(|w| w.open.load(Relaxed)).collect()
    }

    /// Runs `job` on the worker serving the fewest connections, counting
    /// one more against it until the [`Load`] handed to `job` is dropped.
    pub(crate) fn run(&self, job: impl FnOnce(Load) + Send + 'static) {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Relaxed) % n;
        let chosen = (0..n)
            .map(|i| &self.workers[(start + i) % n])
            .min_by_key(|w| w.open.load(Relaxed))
            .expect("at least one worker");
        chosen.open.fetch_add(1, Relaxed);
        let load = Load(Some(chosen.open.clone()));
        // A worker's inbox closes only at `join`, after the acceptors stop;
        // a job refused then just drops its connection.
        let _ = chosen.jobs.send(Box::new(move || job(load)));
    }

    /// Puts every thread of this process but the workers and the calling
    /// one at least [`HELPER_NICE`] below the caller (nice 19 at most).
    /// Under contention a thread at nice 10 gets about a tenth of the CPU
    /// time of one at 0, and a worker that wakes is run ahead of it. The
    /// caller keeps its priority because it runs the accept
    /// loops. A thread started later takes its parent's priority: start
    /// the helpers (open the store, the access log) before calling this.
    /// Returns how many threads were lowered; does nothing off Linux.
    pub fn lower_helpers(&self) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            use rustix::process::{Pid, getpriority_process, setpriority_process};
            let me = rustix::thread::gettid();
            let target = (getpriority_process(Some(me))? + HELPER_NICE).min(19);
            let mut lowered = 0;
            for entry in std::fs::read_dir("/proc/self/task")? {
                let name = entry?.file_name();
                let Some(tid) = name
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .and_then(Pid::from_raw)
                else {
                    continue;
                };
                if tid == me || self.tids.contains(&tid) {
                    continue;
                }
                // With a thread's id, Linux reads and sets that one
                // thread's nice value. One that ended meanwhile is skipped.
                let Ok(nice) = getpriority_process(Some(tid)) else {
                    continue;
                };
                if nice < target {
                    match setpriority_process(Some(tid), target) {
                        Ok(()) => lowered += 1,
                        Err(rustix::io::Errno::SRCH) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Ok(lowered)
        }
        #[cfg(not(target_os = "linux"))]
        Ok(0)
    }

    /// Stops the workers, dropping what they still run, and waits for
    /// their threads to end.
    pub fn join(&self) {
        self.exit.cancel();
        let threads = std::mem::take(&mut *self.threads.lock());
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

/// How much lower than the workers helper threads run, as a nice value.
pub const HELPER_NICE: i32 = 10;

impl Drop for Workers {
    fn drop(&mut self) {
        self.join();
    }
}

async fn run(mut inbox: mpsc::UnboundedReceiver<Job>, exit: CancellationToken) {
    loop {
        tokio::select! {
            job = inbox.recv() => match job {
                Some(job) => job(),
                None => break,
            },
            () = exit.cancelled() => break,
        }
    }
    // Dropping the runtime cancels every task still on it.
}
