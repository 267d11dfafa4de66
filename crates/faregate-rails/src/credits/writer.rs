//! The one task that writes per-request debits (group commit) and keeps the
//! book in step with the store.
//!
//! Settled requests push a [`Debit`] onto a queue and return at once. Every
//! flush interval the writer takes the whole queue and posts it as one
//! database transaction: per account, one ledger debit of the batch's sum,
//! and per request one usage record naming the request and that debit. A
//! failed batch is kept, with the same idempotency keys, and tried again, so
//! a commit whose answer was lost cannot charge twice. Between flushes the writer polls the store's revision and, when
//! another process changed keys, accounts or money paid in, reloads them.
//! Because flushes and reloads run on this one task, a reload always sees
//! the store exactly without the debits still queued here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use faregate_core::{Currency, Money};
use faregate_store::{LedgerAccount, Store, StoreError, Transaction, UsageRecord};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::book::{AccountCell, Book};

/// A debit committed in memory, waiting to be written.
#[derive(Debug)]
pub(crate) struct Debit {
    pub(crate) cell: Arc<AccountCell>,
    pub(crate) amount: u64,
    pub(crate) request_id: String,
}

/// What the rest of the process asks of the writer.
#[derive(Debug)]
pub(crate) enum Command {
    /// Write what is queued now.
    Flush(oneshot::Sender<()>),
    /// Reload keys, accounts and balances now.
    Reload(oneshot::Sender<Result<(), String>>),
    /// Write everything and stop.
    Close(oneshot::Sender<()>),
}

/// Counters of what the writer did.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Database transactions that wrote debits.
    pub batches: AtomicU64,
    /// Requests' charges written (usage records).
    pub debits: AtomicU64,
    /// Rows written: debit transactions, their entries, balance upserts
    /// and rows of packed usage records.
    pub rows: AtomicU64,
    /// Batches that failed and were kept to retry.
    pub failures: AtomicU64,
    /// The longest batch commit, in microseconds.
    pub max_commit_micros: AtomicU64,
    /// Charges waiting for a retry, as of the last flush.
    pub backlog: AtomicU64,
}

/// Transactions and usage records not yet written.
#[derive(Debug, Default)]
struct Pending {
    txs: Vec<Transaction>,
    usage: Vec<UsageRecord>,
    /// Each debit's account and amount, to move the book once written.
    cells: Vec<(Arc<AccountCell>, u64)>,
}

pub(crate) struct Writer {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) book: Arc<Book>,
    pub(crate) queue: Arc<Mutex<Vec<Debit>>>,
    pub(crate) stats: Arc<WriterStats>,
    pub(crate) flush_interval: Duration,
    pub(crate) poll_interval: Duration,
    /// What the next flush writes: a failed batch is kept whole, with its
    /// idempotency keys, for the next try.
    pending: Pending,
    /// This process's name in debit idempotency keys and batch references.
    node: String,
    /// Batches made so far.
    batches: u64,
    revision: i64,
    /// When everything was last reloaded.
    reloaded: Instant,
}

/// The longest this node goes without reading every balance again.
const FULL_RELOAD: Duration = Duration::from_secs(5);

impl Writer {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        book: Arc<Book>,
        queue: Arc<Mutex<Vec<Debit>>>,
        stats: Arc<WriterStats>,
        flush_interval: Duration,
        poll_interval: Duration,
    ) -> Self {
        Self {
            store,
            book,
            queue,
            stats,
            flush_interval,
            poll_interval,
            pending: Pending::default(),
            node: faregate_store::new_id("node"),
            batches: 0,
            revision: i64::MIN,
            reloaded: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut flush = tokio::time::interval(self.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_poll = Instant::now();
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    self.flush().await;
                    if last_poll.elapsed() >= self.poll_interval {
                        last_poll = Instant::now();
                        self.poll().await;
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Flush(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                    }
                    Some(Command::Reload(done)) => {
                        self.flush().await;
                        let _ = done.send(self.reload().await.map_err(|e| e.to_string()));
                    }
                    Some(Command::Close(done)) => {
                        self.close().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.close().await;
                        return;
                    }
                },
            }
        }
    }

    /// Writes what is queued, with what failed before, in one database
    /// transaction: per account, one debit of the sum, and one usage record
    /// per request naming the request and that debit.
    pub(crate) async fn flush(&mut self) -> bool {
        let fresh = std::mem::take(&mut *self.queue.lock());
        if !fresh.is_empty() {
            self.batch(fresh);
        }
        self.stats
            .backlog
            .store(self.pending.usage.len() as u64, Ordering::Relaxed);
        if self.pending.txs.is_empty() {
            return true;
        }
        let started = Instant::now();
        match self
            .store
            .post_batch(&self.pending.txs, &self.pending.usage)
            .await
        {
            Ok(_) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.stats
                    .max_commit_micros
                    .fetch_max(micros, Ordering::Relaxed);
                let p = std::mem::take(&mut self.pending);
                let txs = p.txs.len() as u64;
                // A transaction row, two entries, a balance upsert and a
                // row of packed usage per account, one revenue upsert.
                let rows = txs * 5 + 1;
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .debits
                    .fetch_add(p.usage.len() as u64, Ordering::Relaxed);
                self.stats.rows.fetch_add(rows, Ordering::Relaxed);
                for (cell, amount) in p.cells {
                    cell.flushed(amount);
                }
                self.stats.backlog.store(0, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %e,
                    requests = self.pending.usage.len(),
                    "ledger batch failed; keeping it to retry"
                );
                false
            }
        }
    }

    /// Turns queued debits into this batch's transactions and usage, added
    /// to whatever is pending from a failed batch.
    fn batch(&mut self, debits: Vec<Debit>) {
        self.batches += 1;
        let reference = format!("batch:{}:{}", self.node, self.batches);
        // Every charge of a batch is stamped with the batch's time: within
        // a flush interval of its request, for one clock read per batch.
        let now = super::now_ms();
        let mut by_account: BTreeMap<usize, (Arc<AccountCell>, u64, Vec<Debit>)> = BTreeMap::new();
        for d in debits {
            let entry = by_account
                .entry(d.cell.index)
                .or_insert_with(|| (d.cell.clone(), 0, Vec::new()));
            entry.1 = entry.1.saturating_add(d.amount);
            entry.2.push(d);
        }
        for (cell, total, debits) in by_account.into_values() {
            let amount = Money::from_atomic(total, cell.currency);
            let key = format!("debit:{}:{}:{}", self.node, self.batches, cell.id);
            let tx = match Transaction::debit(&cell.id, amount, key, reference.clone(), now) {
                Ok(tx) => tx,
                Err(e) => {
                    // Only a sum beyond 63 bits gets here.
                    tracing::error!(error = %e, account = %cell.id, "debit could not be recorded");
                    continue;
                }
            };
            for d in debits {
                self.pending.usage.push(UsageRecord {
                    transaction_id: tx.id.clone(),
                    reference: d.request_id,
                    amount: i64::try_from(d.amount).unwrap_or(i64::MAX),
                    created_at: now,
                });
            }
            self.pending.txs.push(tx);
            self.pending.cells.push((cell, total));
        }
    }

    async fn close(&mut self) {
        for attempt in 0..5u64 {
            if self.flush().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        tracing::error!(
            requests = self.pending.usage.len(),
            "ledger writer stopped with debits it could not write"
        );
    }

    /// Reloads when another process changed the store.
    async fn poll(&mut self) {
        match self.store.revision().await {
            // Other nodes' debits move no revision: reload now and then
            // anyway, so that this node sees them.
            Ok(rev) if rev == self.revision && self.reloaded.elapsed() < FULL_RELOAD => {}
            Ok(_) => {
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "reloading accounts and keys failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the store's revision failed"),
        }
    }

    /// Reloads every account (with its budget), balance and key (with its
    /// models and limits). Runs between flushes only.
    pub(crate) async fn reload(&mut self) -> Result<(), StoreError> {
        let revision = self.store.revision().await?;
        let mut after: Option<String> = None;
        loop {
            let page = self.store.accounts(after.as_deref(), 1000).await?;
            for account in &page {
                self.book
                    .add_account(&account.id, account.currency)
                    .set_budget(account.budget);
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.id.clone()),
                _ => break,
            }
        }
        let balances: HashMap<(LedgerAccount, Currency), i64> = self
            .store
            .balances()
            .await?
            .into_iter()
            .map(|b| ((b.account, b.currency), b.amount))
            .collect();
        for cell in self.book.accounts() {
            let key = (LedgerAccount::customer(&cell.id), cell.currency);
            let balance = balances.get(&key).copied().unwrap_or(0);
            // Debits that failed to write are in the store's balance neither.
            cell.settle_to(balance);
        }
        self.book.set_keys(&self.store.active_keys().await?);
        self.revision = revision;
        self.reloaded = Instant::now();
        Ok(())
    }
}
