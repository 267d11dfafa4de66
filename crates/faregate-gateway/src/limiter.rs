//! Rate-limit state: one GCRA arrival time per (route, caller), in sharded
//! maps so callers on different shards never contend. Entries whose time
//! has passed carry no information and are swept when a shard grows.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use faregate_core::{Gcra, GcraOutcome, UnixNanos};
use parking_lot::Mutex;

const SHARDS: usize = 32;
/// A shard this large is swept of expired entries before it grows further.
const SWEEP_AT: usize = 4_096;

/// What a limit is counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CallerKey {
    /// An API key's id.
    Key(std::sync::Arc<str>),
    /// A client address.
    Ip(std::net::IpAddr),
}

/// Arrival times by (route, caller).
type Shard = HashMap<(std::sync::Arc<str>, CallerKey), UnixNanos>;

/// The state of every rate limit.
#[derive(Debug)]
pub(crate) struct Limiter {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Limiter {
    /// Decides one request on `route` by `caller` at `now`.
    pub(crate) fn check(
        &self,
        gcra: &Gcra,
        route: &std::sync::Arc<str>,
        caller: CallerKey,
        now: UnixNanos,
    ) -> GcraOutcome {
        let key = (route.clone(), caller);
        let hash = self.hasher.hash_one(&key);
        let shard = &self.shards[usize::try_from(hash % SHARDS as u64).unwrap_or(0)];
        let mut map = shard.lock();
        let tat = map.get(&key).copied().unwrap_or(0);
        let outcome = gcra.check(tat, now);
        if outcome.allowed {
            if map.len() >= SWEEP_AT && !map.contains_key(&key) {
                map.retain(|_, &mut t| t > now);
            }
            map.insert(key, outcome.tat);
        }
        outcome
    }
}
