//! The in-memory book the hot path admits against: every account's funds
//! and every active key, so that no request waits on the database.
//!
//! An account's spendable amount is
//! `settled - unflushed - reserved`, where `settled` is its balance as the
//! store last showed it, `unflushed` the debits committed here but not yet
//! written, and `reserved` what requests in flight hold. Reserving happens
//! under the account's lock, so concurrent requests can never spend the same
//! money twice.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use faregate_core::{Budget, Currency, FnvBuild, UnixNanos};
use faregate_store::KeyRecord;
use parking_lot::{Mutex, RwLock};

use crate::ApiKey;

/// One account's money as the gateway sees it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Funds {
    /// The balance in the store, as last read or as moved by our own flushes.
    pub(crate) settled: i64,
    /// Debits committed here, not yet in the store.
    pub(crate) unflushed: u64,
    /// Held by requests in flight.
    pub(crate) reserved: u64,
}

impl Funds {
    /// What may still be reserved (negative when overdrawn elsewhere).
    pub(crate) fn available(&self) -> i128 {
        i128::from(self.settled) - i128::from(self.unflushed) - i128::from(self.reserved)
    }
}

/// An account in the book.
#[derive(Debug)]
pub(crate) struct AccountCell {
    pub(crate) id: Arc<str>,
    pub(crate) currency: Currency,
    /// Its position in [`Book::cells`], the `reference` of its holds.
    pub(crate) index: usize,
    pub(crate) funds: Mutex<Funds>,
    /// Its LLM budget, as the store last showed it.
    budget: RwLock<Option<Budget>>,
}

impl AccountCell {
    /// Sets `amount` aside if it is available; otherwise returns what is.
    pub(crate) fn reserve(&self, amount: u64) -> Result<(), i128> {
        let mut f = self.funds.lock();
        let available = f.available();
        if available < i128::from(amount) {
            return Err(available);
        }
        f.reserved += amount;
        Ok(())
    }

    /// Turns a hold of `held` into a debit of `charge` (at most `held`).
    pub(crate) fn commit(&self, held: u64, charge: u64) {
        let mut f = self.funds.lock();
        f.reserved = f.reserved.saturating_sub(held);
        f.unflushed = f.unflushed.saturating_add(charge.min(held));
    }

    /// Gives a hold back.
    pub(crate) fn release(&self, held: u64) {
        let mut f = self.funds.lock();
        f.reserved = f.reserved.saturating_sub(held);
    }

    /// Records that debits of `amount` are now in the store.
    pub(crate) fn flushed(&self, amount: u64) {
        let mut f = self.funds.lock();
        f.unflushed = f.unflushed.saturating_sub(amount);
        f.settled = f
            .settled
            .saturating_sub(i64::try_from(amount).unwrap_or(i64::MAX));
    }

    /// Takes the store's balance. Only the writer task calls this, between
    /// flushes, so `unflushed` holds exactly the debits the store lacks.
    pub(crate) fn settle_to(&self, balance: i64) {
        self.funds.lock().settled = balance;
    }

    pub(crate) fn funds(&self) -> Funds {
        *self.funds.lock()
    }

    /// Its LLM budget.
    pub(crate) fn budget(&self) -> Option<Budget> {
        *self.budget.read()
    }

    /// Takes the budget the store holds.
    pub(crate) fn set_budget(&self, budget: Option<Budget>) {
        *self.budget.write() = budget;
    }
}

/// Accounts and keys.
#[derive(Debug, Default)]
pub(crate) struct Book {
    /// Every account, by position; never shrinks, so hold references stay valid.
    cells: RwLock<Vec<Arc<AccountCell>>>,
    /// Ids and digests come from the store, never from callers: FNV.
    by_id: RwLock<HashMap<Arc<str>, Arc<AccountCell>, FnvBuild>>,
    /// Active keys by the SHA-256 of the key, swapped whole on change.
    keys: ArcSwap<HashMap<[u8; 32], Arc<ApiKey>, FnvBuild>>,
}

impl Book {
    pub(crate) fn account(&self, id: &str) -> Option<Arc<AccountCell>> {
        self.by_id.read().get(id).cloned()
    }

    pub(crate) fn by_index(&self, index: u64) -> Option<Arc<AccountCell>> {
        let index = usize::try_from(index).ok()?;
        self.cells.read().get(index).cloned()
    }

    pub(crate) fn accounts(&self) -> Vec<Arc<AccountCell>> {
        self.cells.read().clone()
    }

    /// Adds an account, or returns the one already there.
    pub(crate) fn add_account(&self, id: &str, currency: Currency) -> Arc<AccountCell> {
        if let Some(cell) = self.account(id) {
            return cell;
        }
        let mut cells = self.cells.write();
        let mut by_id = self.by_id.write();
        if let Some(cell) = by_id.get(id) {
            return cell.clone();
        }
        let cell = Arc::new(AccountCell {
            id: id.into(),
            currency,
            index: cells.len(),
            funds: Mutex::new(Funds::default()),
            budget: RwLock::new(None),
        });
        cells.push(cell.clone());
        by_id.insert(cell.id.clone(), cell.clone());
        cell
    }

    #[cfg(test)]
    pub(crate) fn find_key(&self, presented: &str) -> Option<Arc<ApiKey>> {
        self.find_key_hashed(&key_hash(presented))
    }

    pub(crate) fn find_key_hashed(&self, hash: &[u8; 32]) -> Option<Arc<ApiKey>> {
        self.keys.load().get(hash).cloned()
    }

    /// Replaces every key with `records` (the revoked ones are left out).
    pub(crate) fn set_keys(&self, records: &[KeyRecord]) {
        let map = records
            .iter()
            .filter(|r| r.revoked_at.is_none())
            .filter_map(|r| Some((parse_hash(&r.hash)?, Arc::new(api_key(r)))))
            .collect();
        self.keys.store(Arc::new(map));
    }

    /// Adds or replaces one key; a revoked record removes it.
    pub(crate) fn put_key(&self, record: &KeyRecord) {
        let Some(hash) = parse_hash(&record.hash) else {
            return;
        };
        self.keys.rcu(|keys| {
            let mut keys = HashMap::clone(keys);
            if record.revoked_at.is_some() {
                keys.remove(&hash);
            } else {
                keys.insert(hash, Arc::new(api_key(record)));
            }
            keys
        });
    }

    /// Removes the key with id `key_id`.
    pub(crate) fn remove_key(&self, key_id: &str) {
        self.keys.rcu(|keys| {
            let mut keys = HashMap::clone(keys);
            keys.retain(|_, k| &*k.id != key_id);
            keys
        });
    }

    pub(crate) fn key_count(&self) -> usize {
        self.keys.load().len()
    }
}

fn api_key(r: &KeyRecord) -> ApiKey {
    ApiKey {
        id: r.id.as_str().into(),
        account: Some(r.account_id.as_str().into()),
        routes: r
            .routes
            .as_ref()
            .map(|routes| routes.iter().map(|n| n.as_str().into()).collect()),
        models: r
            .models
            .as_ref()
            .map(|models| models.iter().map(|n| n.as_str().into()).collect()),
        limits: r.limits,
        expires_at: r.expires_at.map(millis_to_nanos),
    }
}

pub(crate) fn millis_to_nanos(ms: i64) -> UnixNanos {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

pub(crate) use crate::key_hash;

fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use faregate_core::LlmLimits;

    use super::*;

    #[test]
    fn reservations_never_exceed_the_balance() {
        let book = Book::default();
        let cell = book.add_account("a", Currency::USD);
        cell.settle_to(10);
        assert!(cell.reserve(6).is_ok());
        assert_eq!(cell.reserve(5), Err(4));
        cell.commit(6, 6);
        assert_eq!(cell.funds().available(), 4);
        cell.flushed(6);
        assert_eq!(
            cell.funds(),
            Funds {
                settled: 4,
                unflushed: 0,
                reserved: 0
            }
        );
        assert!(cell.reserve(4).is_ok());
        cell.release(4);
        assert_eq!(cell.funds().available(), 4);
    }

    #[test]
    fn a_charge_is_never_more_than_the_hold() {
        let book = Book::default();
        let cell = book.add_account("a", Currency::USD);
        cell.settle_to(10);
        cell.reserve(3).unwrap();
        cell.commit(3, 9);
        assert_eq!(cell.funds().unflushed, 3);
    }

    #[test]
    fn keys_are_found_by_hash_and_removed_on_revocation() {
        let book = Book::default();
        let mut record = KeyRecord {
            id: "key_1".into(),
            account_id: "acct_1".into(),
            hash: hex::encode(key_hash("fg_test_secret")),
            prefix: "fg_test_secr".into(),
            live: false,
            routes: None,
            models: Some(vec!["gpt-4o".into()]),
            limits: LlmLimits {
                tpm: Some(1000),
                ..LlmLimits::default()
            },
            expires_at: None,
            revoked_at: None,
            created_at: 0,
        };
        book.put_key(&record);
        let found = book.find_key("fg_test_secret").unwrap();
        assert_eq!(&*found.id, "key_1");
        assert!(found.may_use_model("gpt-4o") && !found.may_use_model("gpt-4"));
        assert_eq!(found.limits.tpm, Some(1000));
        assert!(book.find_key("fg_test_secreT").is_none());
        record.revoked_at = Some(1);
        book.put_key(&record);
        assert!(book.find_key("fg_test_secret").is_none());
    }
}
