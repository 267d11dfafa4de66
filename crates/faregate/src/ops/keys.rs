//! `faregate keys`: issue API keys (with route and LLM model scopes and LLM
//! limits), list and revoke them, on the store directly.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use faregate_core::{Budget, Currency, LlmLimits};
use faregate_rails::credits::KeyRequest;
use faregate_store::KeyRecord;

use super::{StoreArgs, now_ms, parse_lifetime};

/// The largest per-minute limit the store keeps (63 bits).
const MAX_PER_MINUTE: u64 = i64::MAX as u64;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Issue an API key; it is printed once and never stored.
    Create {
        /// The account it spends from.
        #[arg(long)]
        account: String,
        /// An `fg_test_` key instead of `fg_live_`.
        #[arg(long)]
        test: bool,
        /// Route names it may use (all when absent), comma separated.
        #[arg(long, value_delimiter = ',')]
        routes: Option<Vec<String>>,
        /// LLM model names it may use (all when absent), comma separated.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// LLM spending per day or month in the account's currency, such
        /// as `5.00/day` or `100 USD/month` (no limit when absent).
        #[arg(long)]
        budget: Option<String>,
        /// LLM tokens per minute (no limit when absent).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_PER_MINUTE))]
        tpm: Option<u64>,
        /// LLM requests per minute (no limit when absent).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_PER_MINUTE))]
        rpm: Option<u64>,
        /// Lifetime, such as `30d`, `12h` or `90m`.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List an account's keys (never the keys themselves).
    List {
        /// The account.
        #[arg(long)]
        account: String,
    },
    /// Revoke a key.
    Revoke {
        /// The key's id (`key_…`).
        key_id: String,
    },
}

pub(crate) async fn keys(store: StoreArgs, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    match command {
        KeysCommand::Create {
            account,
            test,
            routes,
            models,
            budget,
            tpm,
            rpm,
            expires_in,
        } => {
            let Some(held) = store.account(&account).await? else {
                bail!("no account {account}");
            };
            let expires_at = match expires_in {
                None => None,
                Some(text) => {
                    let lifetime = parse_lifetime(&text)?;
                    let ms = i64::try_from(lifetime.as_millis()).context("lifetime too long")?;
                    Some(now_ms().saturating_add(ms))
                }
            };
            let request = KeyRequest {
                account_id: account,
                live: !test,
                routes,
                models: models.map(valid_models).transpose()?,
                limits: LlmLimits {
                    budget: budget
                        .map(|text| parse_budget(&text, held.currency))
                        .transpose()?,
                    tpm,
                    rpm,
                },
                expires_at,
            };
            let (key, record) = faregate_rails::credits::issue_key(&*store, request).await?;
            eprintln!(
                "Key {} for {}; it is shown this once and never stored:",
                record.id, record.account_id
            );
            println!("{key}");
        }
        KeysCommand::List { account } => {
            if store.account(&account).await?.is_none() {
                bail!("no account {account}");
            }
            println!("ID\tPREFIX\tROUTES\tMODELS\tBUDGET\tTPM\tRPM\tEXPIRES_AT_MS\tREVOKED_AT_MS");
            for k in store.keys(&account).await? {
                println!("{}", key_line(&k));
            }
        }
        KeysCommand::Revoke { key_id } => match store.revoke_key(&key_id, now_ms()).await? {
            Some(k) => println!("revoked {} of account {}", k.id, k.account_id),
            None => bail!("no key {key_id}"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// One row of `keys list`: `*` for no scope, `-` for no limit.
fn key_line(k: &KeyRecord) -> String {
    let names =
        |n: &Option<Vec<String>>| n.as_ref().map_or_else(|| "*".to_owned(), |n| n.join(","));
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    format!(
        "{}\t{}…\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        k.id,
        k.prefix,
        names(&k.routes),
        names(&k.models),
        or_dash(k.limits.budget.map(|b| b.to_string())),
        or_dash(k.limits.tpm.map(|n| n.to_string())),
        or_dash(k.limits.rpm.map(|n| n.to_string())),
        or_dash(k.expires_at.map(|t| t.to_string())),
        or_dash(k.revoked_at.map(|t| t.to_string())),
    )
}

/// `5.00/day` or `5.00 USD/day`, more than zero, in the account's
/// `currency` (the store refuses another).
pub(super) fn parse_budget(text: &str, currency: Currency) -> anyhow::Result<Budget> {
    let budget = Budget::parse(text, Some(currency))?;
    if budget.amount.is_zero() {
        bail!("the budget must be more than zero");
    }
    Ok(budget)
}

/// Model names, trimmed: not empty, no control characters (models are
/// stored newline-joined).
fn valid_models(models: Vec<String>) -> anyhow::Result<Vec<String>> {
    models
        .into_iter()
        .map(|m| {
            let m = m.trim();
            if m.is_empty() || m.chars().any(char::is_control) {
                bail!("model names must not be empty or hold control characters: {m:?}");
            }
            Ok(m.to_owned())
        })
        .collect()
}
