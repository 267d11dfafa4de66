//! Real stores for tests: a SQLite file in a temporary folder, and a fresh
//! schema on the PostgreSQL server named by `FAREGATE_TEST_DATABASE_URL`
//! (dropped again when the test is done).

use std::sync::Arc;

use faregate_store::Store;
use sqlx::Connection;

/// The variable naming the PostgreSQL server tests may use.
pub const PG_ENV: &str = "FAREGATE_TEST_DATABASE_URL";

/// A store for one test.
#[derive(Debug)]
pub struct TestStore {
    /// The URL to open it with.
    pub url: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestStore {
    /// A new SQLite file in its own temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self {
            url: format!("sqlite://{}/faregate.db", dir.path().display()),
            backend: "sqlite",
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A new, empty schema on the test PostgreSQL server, or `None` (with
    /// a line saying so) when `FAREGATE_TEST_DATABASE_URL` is not set.
    pub async fn postgres(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var(PG_ENV) else {
            eprintln!("{test}: PostgreSQL part skipped: {PG_ENV} is not set");
            return None;
        };
        let schema = format!("fg_test_{}", faregate_store::new_id("s").replace('_', ""));
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("{PG_ENV} is set but PostgreSQL is unreachable: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            backend: "postgres",
            _dir: None,
            pg: Some((base, schema)),
        })
    }

    /// SQLite, then PostgreSQL when the server is configured.
    pub async fn each(test: &str) -> Vec<Self> {
        let mut stores = vec![Self::sqlite()];
        stores.extend(Self::postgres(test).await);
        stores
    }

    /// Opens (and migrates) the store.
    pub async fn open(&self) -> Arc<dyn Store> {
        faregate_store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {} store: {e}", self.backend))
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some((base, schema)) = self.pg.take() else {
            return;
        };
        // Drop may run inside a runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
