//! Building the x402 rail from the config: its settler (a facilitator's
//! HTTP API, or faregate's own key on a chain's JSON-RPC) and, when asked,
//! a chain checker that looks at the nonce and the payer's balance before
//! a request is forwarded.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use faregate_core::Clock;
use faregate_gateway::Config;
use faregate_gateway::config::X402Settlement;
use faregate_rails::x402::X402;
use faregate_store::Store;
use faregate_x402::settle::{ChainConfig, ChainSettler, FacilitatorClient, Settler};

/// How often a settling chain is asked for the receipt, at most.
const RECEIPT_POLL: Duration = Duration::from_millis(250);

/// The x402 rail for `config`.
pub(crate) fn rail(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<X402>> {
    let x = &config.x402;
    let settler: Arc<dyn Settler> = match &x.settlement {
        X402Settlement::Facilitator { url } => Arc::new(
            FacilitatorClient::new(url, x.settle_timeout)
                .map_err(anyhow::Error::msg)
                .context("x402 facilitator")?,
        ),
        X402Settlement::Chain {
            rpc_url,
            network,
            signer_key,
            confirmations,
            gas_limit,
        } => Arc::new(chain(
            rpc_url,
            network,
            signer_key,
            (*confirmations, *gas_limit),
            x.settle_timeout,
        )?),
    };
    let checker: Option<Arc<dyn Settler>> = match (&x.settlement, &x.rpc_url, x.check_chain) {
        (_, _, false) | (_, None, true) => None,
        // The settling chain checks too.
        (X402Settlement::Chain { .. }, Some(_), true) => Some(settler.clone()),
        (X402Settlement::Facilitator { .. }, Some(rpc), true) => {
            let network = x
                .routes
                .values()
                .flat_map(|r| r.offers.iter())
                .map(|o| o.network.clone())
                .next()
                .unwrap_or_default();
            // Checks only read the chain; this key signs nothing.
            let key: [u8; 32] = rand::random();
            let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
            Some(Arc::new(chain(
                rpc,
                &network,
                &key,
                (1, None),
                x.settle_timeout,
            )?))
        }
    };
    Ok(Arc::new(X402::new(
        store,
        settler,
        checker,
        clock,
        config.x402_config(),
    )))
}

fn chain(
    rpc_url: &str,
    network: &str,
    signer_key: &str,
    (confirmations, gas_limit): (u64, Option<u64>),
    timeout: Duration,
) -> anyhow::Result<ChainSettler> {
    ChainSettler::new(ChainConfig {
        rpc_url: rpc_url.to_owned(),
        network: network.to_owned(),
        signer_key: signer_key.to_owned(),
        confirmations,
        gas_limit,
        timeout,
        poll_interval: RECEIPT_POLL,
    })
    .map_err(anyhow::Error::msg)
    .context("x402 chain settlement")
}
