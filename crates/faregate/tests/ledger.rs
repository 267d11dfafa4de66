//! The ledger as operators meet it: the `accounts`, `keys`, `credits` and
//! `ledger verify` commands, and what survives `kill -9` under load.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faregate_core::Currency;
use faregate_store::LedgerAccount;
use faregate_testkit::{Client, Upstream, free_port, temp_dir};
use parking_lot::Mutex;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_faregate");

/// How often the gateway under test writes debits.
const FLUSH: Duration = Duration::from_millis(50);

fn config(port: u16, admin: u16, upstream: &str) -> String {
    format!(
        r#"[[listeners]]
address = "127.0.0.1:{port}"

[admin]
address = "127.0.0.1:{admin}"

[store]
url = "sqlite://data/faregate.db"
flush_interval = "{}ms"

[[routes]]
name = "paid"
path = "/paid/*"
upstreams = ["{upstream}"]
strip_prefix = "/paid"
price = "0.001 USD"
"#,
        FLUSH.as_millis()
    )
}

/// Runs a CLI command with the config in `dir`; returns stdout, or panics
/// with stderr.
async fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(dir.join("faregate.toml"))
        .env("FAREGATE_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), stdout)
}

async fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, out) = cli(dir, args).await;
    assert!(success, "{args:?} failed: {out}");
    out
}

/// An account with `amount` USD and a key, made with the CLI.
async fn account_with_key(dir: &Path, amount: &str) -> (String, String) {
    let created = ok(dir, &["accounts", "create", "--name", "Crash Test Inc"]).await;
    let account = created.split('\t').next().unwrap().to_owned();
    assert!(account.starts_with("acct_"), "{created}");
    ok(
        dir,
        &["credits", "add", "--account", &account, "--amount", amount],
    )
    .await;
    let key = ok(dir, &["keys", "create", "--account", &account]).await;
    (account, key.trim().to_owned())
}

fn serve(dir: &Path) -> Child {
    Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("faregate.toml"))
        .env("FAREGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn operators_manage_accounts_keys_and_credits_and_verify_catches_tampering() {
    let dir = temp_dir("cli");
    let up = Upstream::start().await;
    std::fs::write(
        dir.join("faregate.toml"),
        config(free_port(), free_port(), &up.url()),
    )
    .unwrap();
    let (account, key) = account_with_key(&dir, "5.00").await;
    assert!(key.starts_with("fg_live_") && key.len() == 40, "{key}");

    // The same idempotency key twice adds once; with another amount it is refused.
    let add = [
        "credits",
        "add",
        "--account",
        &account,
        "--amount",
        "1.5",
        "--idempotency-key",
        "inv-1",
    ];
    ok(&dir, &add).await;
    let again = ok(&dir, &add).await;
    assert!(again.contains("already applied"), "{again}");
    let mut other = add;
    other[5] = "2";
    assert!(!cli(&dir, &other).await.0);
    for (amount, currency) in [
        ("0", "USD"),
        ("abc", "USD"),
        ("1.0000001", "USD"),
        ("1", "EUR"),
    ] {
        let args = [
            "credits",
            "add",
            "--account",
            &account,
            "--amount",
            amount,
            "--currency",
            currency,
        ];
        let (success, _) = cli(&dir, &args).await;
        assert!(!success, "{amount} {currency} is refused");
    }
    let listed = ok(&dir, &["accounts", "list"]).await;
    assert!(
        listed.contains(&format!("{account}\tUSD\t6.50\t")),
        "{listed}"
    );

    let keys = ok(&dir, &["keys", "list", "--account", &account]).await;
    assert!(!keys.contains(&key), "a key is never shown again");
    assert!(keys.contains(&key[..12]), "{keys}");
    let key_id = keys
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        ok(&dir, &["keys", "revoke", &key_id])
            .await
            .contains("revoked")
    );
    assert!(!cli(&dir, &["keys", "revoke", "key_nope"]).await.0);

    let verified = ok(&dir, &["ledger", "verify"]).await;
    assert!(verified.contains("ledger ok"), "{verified}");
    // Tamper with a cached balance behind faregate's back.
    let store = faregate_store::open(&format!("sqlite://{}/data/faregate.db", dir.display()))
        .await
        .unwrap();
    drop(store);
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}/data/faregate.db",
            dir.display()
        ))
        .await
        .unwrap();
        sqlx::query("UPDATE balances SET balance = balance + 1 WHERE account LIKE 'customer:%'")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let (sound, report) = cli(&dir, &["ledger", "verify"]).await;
    assert!(!sound, "verify exits non-zero");
    assert!(
        report.contains("MISMATCH") && report.contains(&account),
        "{report}"
    );
}

#[tokio::test]
async fn kill_9_under_load_loses_at_most_one_flush_window_and_never_overcharges() {
    let dir = temp_dir("crash");
    let up = Upstream::start().await;
    let (port, admin) = (free_port(), free_port());
    std::fs::write(dir.join("faregate.toml"), config(port, admin, &up.url())).unwrap();
    let (account, key) = account_with_key(&dir, "1000").await;
    let mut gateway = serve(&dir);
    wait_listening(port).await;

    // Load: keep-alive clients, each request with its own id, which is the
    // ledger reference of its charge.
    let served: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (served, stop, key) = (served.clone(), stop.clone(), key.clone());
            tokio::spawn(async move {
                let client = Client::http1();
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("load-{c}-{n}");
                    let req = http::Request::get(format!("http://127.0.0.1:{port}/paid/x"))
                        .header("authorization", format!("Bearer {key}"))
                        .header("x-request-id", &id)
                        .body(http_body_util::Full::default())
                        .unwrap();
                    let reply =
                        tokio::time::timeout(Duration::from_secs(2), client.try_send(req)).await;
                    match reply {
                        Ok(Ok(r)) if r.status == 200 => served.lock().push((id, Instant::now())),
                        Ok(Ok(r)) => panic!("unexpected {}: {}", r.status, r.text()),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = gateway.id().unwrap().to_string();
    let killed_at = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let _ = gateway.wait().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let served = served.lock().clone();
    assert!(
        served.len() > 100,
        "the load ran: {} requests",
        served.len()
    );

    // Restart: the gateway comes back on the same data.
    let mut gateway = serve(&dir);
    wait_listening(port).await;
    let after = Client::http1()
        .send(
            http::Request::get(format!("http://127.0.0.1:{port}/paid/x"))
                .header("authorization", format!("Bearer {key}"))
                .header("x-request-id", "after-restart")
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(after.status, 200);
    let pid = gateway.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(gateway.wait().await.unwrap().success());
    assert!(ok(&dir, &["ledger", "verify"]).await.contains("ledger ok"));

    let store = faregate_store::open(&format!("sqlite://{}/data/faregate.db", dir.display()))
        .await
        .unwrap();
    let mut recorded = HashSet::new();
    let customer = LedgerAccount::customer(&account);
    let mut before = None;
    loop {
        let page = store.usage(&customer, before, 5000).await.unwrap();
        let Some((seq, _)) = page.last() else { break };
        before = Some(*seq);
        recorded.extend(page.into_iter().map(|(_, u)| u.reference));
    }
    assert!(
        recorded.remove("after-restart"),
        "the request after the restart is charged"
    );
    let answered: HashSet<&str> = served.iter().map(|(id, _)| id.as_str()).collect();
    // Nobody is charged for a request they were not served.
    let unserved: Vec<_> = recorded
        .iter()
        .filter(|r| !answered.contains(r.as_str()))
        .collect();
    assert!(
        unserved.is_empty(),
        "charged but never answered: {unserved:?}"
    );
    // What was served and not recorded was served in the last window
    // before the kill: one flush interval plus the commit in progress.
    let window = FLUSH + Duration::from_millis(200);
    let lost: Vec<_> = served
        .iter()
        .filter(|(id, _)| !recorded.contains(id))
        .collect();
    let late = served
        .iter()
        .filter(|(_, at)| killed_at.saturating_duration_since(*at) <= window)
        .count();
    eprintln!(
        "kill -9: {} answered, {} recorded, {} lost; {} answered in the last {:?}",
        served.len(),
        recorded.len(),
        lost.len(),
        late,
        window
    );
    assert!(
        lost.iter()
            .all(|(_, at)| killed_at.saturating_duration_since(*at) <= window),
        "a debit older than the flush window was lost"
    );
    let balance = store
        .balance(&LedgerAccount::customer(&account), Currency::USD)
        .await
        .unwrap();
    assert_eq!(balance, 1_000_000_000 - 1_000 * (recorded.len() as i64 + 1));
}
