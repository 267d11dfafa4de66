//! Operator commands that work on the store directly: `accounts` (with
//! their LLM budgets), `keys` (in `keys.rs`), `credits` and
//! `ledger verify`. They need no running gateway; a gateway
//! sharing the store notices their changes within a second.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use faregate_core::{Currency, Money};
use faregate_rails::credits::{TopUp, posted_record};
use faregate_store::{Account, LedgerAccount, Posted, Store};

mod keys;

pub(crate) use keys::{KeysCommand, keys};

/// Which store to open.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The store URL (`sqlite://PATH` or `postgres://…`); overrides the config file's.
    #[arg(long, env = "FAREGATE_STORE", global = true)]
    store: Option<String>,
    /// The config file whose `[store]` to use.
    #[arg(long, short, global = true, default_value = "faregate.toml")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCommand {
    /// Create an account.
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// The currency its balance is kept in.
        #[arg(long, default_value = "USD")]
        currency: String,
    },
    /// List accounts with their balances and LLM budgets.
    List,
    /// Set or clear an account's LLM budget, shared by all of its keys.
    Budget {
        /// The account.
        #[arg(long)]
        account: String,
        /// Spending per day or month in the account's currency, such as
        /// `5.00/day` or `100 USD/month`.
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        budget: Option<String>,
        /// Remove the budget.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CreditsCommand {
    /// Add prepaid credit to an account; committed before this returns.
    Add {
        /// The account.
        #[arg(long)]
        account: String,
        /// The amount as a decimal, such as `5.00`.
        #[arg(long)]
        amount: String,
        /// Its currency (must be the account's).
        #[arg(long, default_value = "USD")]
        currency: String,
        /// Why, for the ledger.
        #[arg(long)]
        reason: Option<String>,
        /// Makes retrying this command safe: the same key is applied once.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LedgerCommand {
    /// Recompute every balance and check every transaction; exit 1 on any discrepancy.
    Verify,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let url = match &self.store {
            Some(url) => url.clone(),
            None if self.config.exists() => {
                faregate_gateway::config::load_file(
                    &self.config,
                    &crate::run::env,
                    crate::run::RAILS,
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", self.config.display()))?
                .store
                .url
            }
            None => faregate_gateway::config::DEFAULT_STORE_URL.to_owned(),
        };
        crate::run::open_store(&url).await
    }
}

pub(crate) async fn accounts(
    store: StoreArgs,
    command: AccountsCommand,
) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    match command {
        AccountsCommand::Create { name, currency } => {
            let account = Account {
                id: faregate_store::new_id("acct"),
                name,
                currency: Currency::from_code(&currency)?,
                created_at: now_ms(),
                budget: None,
            };
            store.create_account(&account).await?;
            println!("{}\t{}\t{}", account.id, account.currency, account.name);
        }
        AccountsCommand::List => {
            let mut after: Option<String> = None;
            println!("ID\tCURRENCY\tBALANCE\tBUDGET\tNAME");
            loop {
                let page = store.accounts(after.as_deref(), 500).await?;
                for a in &page {
                    let balance = store
                        .balance(&LedgerAccount::customer(&a.id), a.currency)
                        .await?;
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        a.id,
                        a.currency,
                        signed(balance, a.currency),
                        a.budget.map_or_else(|| "-".to_owned(), |b| b.to_string()),
                        a.name
                    );
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        AccountsCommand::Budget {
            account,
            budget,
            clear: _,
        } => {
            let Some(held) = store.account(&account).await? else {
                bail!("no account {account}");
            };
            let budget = budget
                .map(|text| keys::parse_budget(&text, held.currency))
                .transpose()?;
            let account =
                faregate_rails::credits::set_account_budget(&*store, &account, budget).await?;
            match account.budget {
                Some(b) => println!("{}\tbudget {b}", account.id),
                None => println!("{}\tno budget", account.id),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn credits(store: StoreArgs, command: CreditsCommand) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    let CreditsCommand::Add {
        account,
        amount,
        currency,
        reason,
        idempotency_key,
    } = command;
    let currency = Currency::from_code(&currency)?;
    let amount = Money::parse_decimal(&amount, currency)
        .with_context(|| format!("invalid amount {amount:?}"))?;
    if amount.is_zero() {
        bail!("the amount must be more than zero");
    }
    let idempotency_key = idempotency_key.unwrap_or_else(|| faregate_store::new_id("cli"));
    let posted = faregate_rails::credits::top_up(
        &*store,
        TopUp {
            account_id: account.clone(),
            amount,
            idempotency_key: format!("cli-credit:{account}:{idempotency_key}"),
            reference: idempotency_key,
            reason,
            fingerprint: Some(format!("{account}:{}:{}", amount.atomic(), currency.code())),
        },
    )
    .await?;
    let record = posted_record(&posted);
    let balance = store
        .balance(&LedgerAccount::customer(&account), currency)
        .await?;
    match posted {
        Posted::Created(_) => println!(
            "added {} {} to {account} in {}; balance {}",
            amount.decimal_string(),
            currency,
            record.tx.id,
            signed(balance, currency)
        ),
        Posted::Replayed(_) => println!(
            "already applied as {} (same idempotency key); balance {}",
            record.tx.id,
            signed(balance, currency)
        ),
        Posted::Conflict(_) => bail!(
            "the idempotency key was already used for a different top-up ({})",
            record.tx.id
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn ledger(store: StoreArgs, command: LedgerCommand) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    let LedgerCommand::Verify = command;
    let report = store.verify().await?;
    println!(
        "checked {} transactions, {} entries, {} balances, {} usage records ({})",
        report.transactions,
        report.entries,
        report.balances,
        report.usage,
        store.backend()
    );
    for (tx, currency, sum) in &report.unbalanced {
        println!("UNBALANCED  transaction {tx}: {currency} postings sum to {sum}");
    }
    for tx in &report.incomplete {
        println!("INCOMPLETE  transaction {tx} has fewer than two entries");
    }
    for (account, currency, cached, computed) in &report.mismatched {
        println!(
            "MISMATCH    {account} {currency}: cached balance {cached}, entries sum to {computed}"
        );
    }
    for (account, currency, balance) in &report.overdrawn {
        println!("OVERDRAWN   {account} {currency}: {balance}");
    }
    for (tx, usage, debited) in &report.usage_mismatched {
        println!("USAGE       transaction {tx}: debits {debited} for requests summing to {usage}");
    }
    for tx in &report.usage_unreadable {
        println!("USAGE       transaction {tx}: its per-request records cannot be read back");
    }
    if report.is_sound() {
        println!("ledger ok");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("ledger NOT ok");
        Ok(ExitCode::FAILURE)
    }
}

/// A signed atomic amount as a decimal string.
fn signed(atomic: i64, currency: Currency) -> String {
    let money = Money::from_atomic(atomic.unsigned_abs(), currency).decimal_string();
    if atomic < 0 {
        format!("-{money}")
    } else {
        money
    }
}

/// `30d`, `12h`, `90m` or `45s`.
fn parse_lifetime(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .with_context(|| format!("expected a lifetime such as 30d, got {text:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => bail!("expected a lifetime such as 30d, 12h or 90m, got {text:?}"),
    };
    if secs == 0 {
        bail!("the lifetime must be more than zero");
    }
    Ok(Duration::from_secs(secs))
}
