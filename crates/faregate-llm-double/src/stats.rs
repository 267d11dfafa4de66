//! What the double received, for tests to assert on: the request count, the
//! count per model and the last POST body.

use std::collections::BTreeMap;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    requests: u64,
    by_model: BTreeMap<String, u64>,
    /// Kept as bytes (a reference count, not a copy) and parsed on demand.
    last_body: Option<Bytes>,
}

impl Stats {
    /// Counts one API request: the model it named and its POST body.
    pub(crate) fn record(&self, model: Option<&str>, body: Option<Bytes>) {
        let mut counts = self.inner.lock();
        counts.requests += 1;
        if let Some(model) = model {
            match counts.by_model.get_mut(model) {
                Some(n) => *n += 1,
                None => {
                    counts.by_model.insert(model.to_owned(), 1);
                }
            }
        }
        if body.is_some() {
            counts.last_body = body;
        }
    }

    /// `{"requests", "by_model", "last_body"}`; a last body that is not
    /// JSON shows as a string.
    pub(crate) fn snapshot(&self) -> Value {
        let counts = self.inner.lock();
        let last_body = counts.last_body.as_ref().map_or(Value::Null, |bytes| {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned().into())
        });
        json!({"requests": counts.requests, "by_model": counts.by_model, "last_body": last_body})
    }

    pub(crate) fn reset(&self) {
        *self.inner.lock() = Counts::default();
    }
}
