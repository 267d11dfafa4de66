//! LLM scopes and limits as operators set them with the CLI: `keys create
//! --models --budget --tpm --rpm`, `keys list`, and `accounts budget`,
//! checked against what the store then holds.

use std::path::Path;

use faregate_core::{BudgetPeriod, LlmLimits};
use faregate_testkit::temp_dir;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_faregate");

/// Runs a CLI command on the store in `dir`; returns whether it succeeded
/// and its stdout.
async fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--store")
        .arg(store_url(dir))
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

fn store_url(dir: &Path) -> String {
    format!("sqlite://{}/faregate.db", dir.display())
}

#[tokio::test]
async fn operators_scope_keys_to_models_and_give_keys_and_accounts_budgets() {
    let dir = temp_dir("cli-llm");
    let created = ok(&dir, &["accounts", "create", "--name", "LLM Inc"]).await;
    let account = created.split('\t').next().unwrap().to_owned();

    let key = ok(
        &dir,
        &[
            "keys",
            "create",
            "--account",
            &account,
            "--models",
            "gpt-4o, claude-sonnet",
            "--budget",
            "5.00/day",
            "--tpm",
            "100000",
            "--rpm",
            "60",
        ],
    )
    .await;
    assert!(key.trim().starts_with("fg_live_"), "{key}");
    ok(&dir, &["keys", "create", "--account", &account]).await;
    let listed = ok(&dir, &["keys", "list", "--account", &account]).await;
    let mut lines = listed.lines();
    assert_eq!(
        lines.next().unwrap(),
        "ID\tPREFIX\tROUTES\tMODELS\tBUDGET\tTPM\tRPM\tEXPIRES_AT_MS\tREVOKED_AT_MS"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    let limited = rows.iter().find(|r| r[3] != "*").expect("the scoped key");
    assert_eq!(limited[3], "gpt-4o,claude-sonnet");
    assert!(limited[4].contains("USD/day"), "{listed}");
    assert_eq!((limited[5], limited[6]), ("100000", "60"));
    let open = rows.iter().find(|r| r[3] == "*").unwrap();
    assert_eq!(&open[4..7], ["-", "-", "-"]);

    // Refused: nothing is issued.
    for bad in [
        &["--tpm", "0"][..],
        &["--rpm", "-1"],
        &["--budget", "5 EUR/day"],
        &["--budget", "0/day"],
        &["--budget", "5/week"],
        &["--models", ""],
        &["--models", "a,,b"],
    ] {
        let mut args = vec!["keys", "create", "--account", &account];
        args.extend_from_slice(bad);
        assert!(!cli(&dir, &args).await.0, "{bad:?} is refused");
    }

    ok(
        &dir,
        &[
            "accounts",
            "budget",
            "--account",
            &account,
            "--budget",
            "100 USD/month",
        ],
    )
    .await;
    let accounts = ok(&dir, &["accounts", "list"]).await;
    assert!(accounts.contains("USD/month"), "{accounts}");
    for bad in [
        &["--budget", "5 EUR/month"][..],
        &["--budget", "5/day", "--clear"],
        &[],
    ] {
        let mut args = vec!["accounts", "budget", "--account", &account];
        args.extend_from_slice(bad);
        assert!(!cli(&dir, &args).await.0, "{bad:?} is refused");
    }
    let missing = ["accounts", "budget", "--account", "acct_nobody", "--clear"];
    assert!(!cli(&dir, &missing).await.0);

    let store = faregate_store::open(&store_url(&dir)).await.unwrap();
    let keys = store.keys(&account).await.unwrap();
    assert_eq!(keys.len(), 2);
    let scoped = keys.iter().find(|k| k.models.is_some()).unwrap();
    assert_eq!(
        scoped.models.as_deref(),
        Some(&["gpt-4o".to_owned(), "claude-sonnet".to_owned()][..])
    );
    let budget = scoped.limits.budget.unwrap();
    assert_eq!(budget.amount.atomic(), 5_000_000);
    assert_eq!(budget.period, BudgetPeriod::Day);
    assert_eq!(
        (scoped.limits.tpm, scoped.limits.rpm),
        (Some(100_000), Some(60))
    );
    let open = keys.iter().find(|k| k.models.is_none()).unwrap();
    assert_eq!(open.limits, LlmLimits::default());
    let held = store.account(&account).await.unwrap().unwrap();
    assert_eq!(held.budget.unwrap().period, BudgetPeriod::Month);
    drop(store);

    ok(
        &dir,
        &["accounts", "budget", "--account", &account, "--clear"],
    )
    .await;
    let store = faregate_store::open(&store_url(&dir)).await.unwrap();
    assert_eq!(store.account(&account).await.unwrap().unwrap().budget, None);
}
