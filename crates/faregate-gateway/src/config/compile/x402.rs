//! `[x402]` and each route's `x402` table: offers checked against the
//! chain's address and network formats, the route's price checked to be
//! payable in every offered token.

use std::collections::HashMap;
use std::time::Duration;

use faregate_core::{Price, RailKind};
use faregate_rails::x402::offers::token_units;
use faregate_rails::x402::{Bundle, RouteX402, SettleWhen, TokenOffer};
use faregate_x402::evm;

use super::Compiler;
use crate::config::raw::{RawRoute, RawRouteX402, RawX402};
use crate::config::{Access, X402Settings, X402Settlement};

/// The settle timeout when the file does not say.
const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// `x402.gas_limit` bounds: any transaction's intrinsic gas, and a block's.
const MIN_GAS_LIMIT: u64 = 21_000;
const MAX_GAS_LIMIT: u64 = 30_000_000;
/// A bundle's lifetime when the file does not say.
const DEFAULT_BUNDLE_LIFETIME: Duration = Duration::from_secs(3600);
/// An authorization's lifetime when the file does not say.
const DEFAULT_MAX_TIMEOUT: u64 = 60;

impl Compiler<'_> {
    pub(super) fn x402(
        &mut self,
        raw: &RawX402,
        routes: &[RawRoute],
        access: &[(Access, Price)],
    ) -> X402Settings {
        let mut by_route = HashMap::new();
        let mut networks = Vec::new();
        for (i, (r, (access, price))) in routes.iter().zip(access).enumerate() {
            let path = format!("routes[{i}]");
            let takes = matches!(access, Access::Rails(rails) if rails.contains(&RailKind::X402));
            match (&r.x402, takes) {
                (None, false) => {}
                (None, true) => self.problem(
                    format!("{path}.x402"),
                    "the route takes x402: give it [routes.x402] with at least one offer",
                ),
                (Some(_), false) => self.problem(
                    format!("{path}.access"),
                    "the route has x402 offers but its access list lacks \"x402\"",
                ),
                (Some(x), true) => {
                    let route = self.route_x402(&format!("{path}.x402"), x, *price);
                    networks.extend(route.offers.iter().map(|o| o.network.clone()));
                    by_route.insert(r.name.clone(), route);
                }
            }
        }
        let settle_timeout = raw
            .settle_timeout
            .as_deref()
            .and_then(|d| self.duration("x402.settle_timeout", d))
            .unwrap_or(DEFAULT_SETTLE_TIMEOUT);
        let rpc_url = raw
            .rpc_url
            .as_deref()
            .and_then(|u| self.secret("x402.rpc_url", u));
        if let Some(url) = &rpc_url {
            self.http_url("x402.rpc_url", url);
        }
        let settlement = match raw.settlement.as_deref() {
            None | Some("facilitator") => {
                let url = raw
                    .facilitator_url
                    .clone()
                    .unwrap_or_else(|| "https://x402.org/facilitator".to_owned());
                self.http_url("x402.facilitator_url", &url);
                X402Settlement::Facilitator { url }
            }
            Some("chain") => {
                let key = raw
                    .signer_key
                    .as_deref()
                    .and_then(|k| self.secret("x402.signer_key", k));
                if key.is_none() && raw.signer_key.is_none() {
                    self.problem(
                        "x402.signer_key",
                        "settlement = \"chain\" needs a gas-paying key",
                    );
                }
                if rpc_url.is_none() {
                    self.problem(
                        "x402.rpc_url",
                        "settlement = \"chain\" needs an EVM JSON-RPC URL",
                    );
                }
                networks.sort();
                networks.dedup();
                if networks.len() > 1 {
                    self.problem(
                        "x402.settlement",
                        format!(
                            "chain settlement uses one chain, but the routes offer {}",
                            networks.join(", ")
                        ),
                    );
                }
                if let Some(limit) = raw.gas_limit
                    && !(MIN_GAS_LIMIT..=MAX_GAS_LIMIT).contains(&limit)
                {
                    self.problem(
                        "x402.gas_limit",
                        format!(
                            "{limit} is outside {MIN_GAS_LIMIT}..={MAX_GAS_LIMIT} \
                             (a transfer with authorization takes about 60,000–90,000)"
                        ),
                    );
                }
                X402Settlement::Chain {
                    rpc_url: rpc_url.clone().unwrap_or_default(),
                    network: networks.first().cloned().unwrap_or_default(),
                    signer_key: key.unwrap_or_default(),
                    confirmations: raw.confirmations.unwrap_or(1),
                    gas_limit: raw.gas_limit,
                }
            }
            Some(other) => {
                self.problem(
                    "x402.settlement",
                    format!("expected \"facilitator\" or \"chain\", got {other:?}"),
                );
                X402Settlement::Facilitator { url: String::new() }
            }
        };
        let check_chain = raw.check_chain.unwrap_or(false);
        if check_chain && rpc_url.is_none() {
            self.problem("x402.check_chain", "needs x402.rpc_url");
        }
        let facilitator = raw.facilitator.unwrap_or(false);
        if facilitator && !matches!(settlement, X402Settlement::Chain { .. }) {
            self.problem(
                "x402.facilitator",
                "serving /x402/* needs settlement = \"chain\" (faregate settles itself)",
            );
        }
        if (!by_route.is_empty() || facilitator) && !self.rails.contains(&RailKind::X402) {
            self.problem("x402", "this build has no x402 rail");
        }
        X402Settings {
            routes: by_route,
            settlement,
            rpc_url,
            check_chain,
            settle_timeout,
            token_secret: raw
                .token_secret
                .as_deref()
                .and_then(|t| self.secret("x402.token_secret", t)),
            facilitator,
        }
    }

    fn route_x402(&mut self, path: &str, x: &RawRouteX402, price: Price) -> RouteX402 {
        if x.offers.is_empty() {
            self.problem(format!("{path}.offers"), "at least one offer is needed");
        }
        let amount = price.amount();
        if amount.is_none() {
            self.problem(
                path,
                "a free route has nothing to pay with x402: give it a price",
            );
        }
        let mut offers = Vec::new();
        for (j, o) in x.offers.iter().enumerate() {
            let p = format!("{path}.offers[{j}]");
            if evm::chain_id(&o.network).is_none() {
                self.problem(
                    format!("{p}.network"),
                    format!(
                        "expected a CAIP-2 EVM network such as \"eip155:8453\", got {:?}",
                        o.network
                    ),
                );
            }
            for (field, value) in [("asset", &o.asset), ("pay_to", &o.pay_to)] {
                if evm::parse_address(value).is_none() {
                    self.problem(
                        format!("{p}.{field}"),
                        format!("expected a 0x-prefixed 20-byte address, got {value:?}"),
                    );
                }
            }
            for (field, value) in [("name", &o.name), ("version", &o.version)] {
                if value.is_empty() {
                    self.problem(
                        format!("{p}.{field}"),
                        "the token's EIP-712 domain needs it",
                    );
                }
            }
            let decimals = o.decimals.unwrap_or(6);
            if decimals > 30 {
                self.problem(format!("{p}.decimals"), "at most 30");
            }
            if let Some(m) = amount
                && token_units(m, decimals).is_none()
            {
                self.problem(
                    format!("{p}.decimals"),
                    format!("the price {m} cannot be written in a token of {decimals} decimals"),
                );
            }
            let max_timeout_seconds = o.max_timeout_seconds.unwrap_or(DEFAULT_MAX_TIMEOUT);
            if !(10..=86_400).contains(&max_timeout_seconds) {
                self.problem(format!("{p}.max_timeout_seconds"), "between 10 and 86400");
            }
            offers.push(TokenOffer {
                network: o.network.clone(),
                asset: o.asset.clone(),
                name: o.name.clone(),
                version: o.version.clone(),
                decimals,
                pay_to: o.pay_to.clone(),
                max_timeout_seconds,
            });
        }
        let settle = match x.settle.as_deref() {
            None | Some("after") => SettleWhen::AfterSuccess,
            Some("before") => SettleWhen::BeforeForward,
            Some(other) => {
                self.problem(
                    format!("{path}.settle"),
                    format!("expected \"after\" or \"before\", got {other:?}"),
                );
                SettleWhen::AfterSuccess
            }
        };
        let bundle = x.bundle.as_ref().map(|b| {
            if b.calls == Some(0) {
                self.problem(format!("{path}.bundle.calls"), "at least 1");
            }
            Bundle {
                calls: b.calls,
                lifetime: b
                    .duration
                    .as_deref()
                    .and_then(|d| self.duration(&format!("{path}.bundle.duration"), d))
                    .unwrap_or(DEFAULT_BUNDLE_LIFETIME),
            }
        });
        let bazaar = x.bazaar.as_ref().and_then(|v| {
            let json = serde_json::to_value(v).ok();
            if !json.as_ref().is_some_and(serde_json::Value::is_object) {
                self.problem(format!("{path}.bazaar"), "expected a table (input, output)");
            }
            json
        });
        RouteX402 {
            offers,
            settle,
            description: x.description.clone(),
            mime_type: x.mime_type.clone(),
            bundle,
            bazaar,
        }
    }

    fn http_url(&mut self, path: &str, url: &str) {
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.parse::<http::Uri>().is_err()
        {
            self.problem(
                path,
                format!("expected an http:// or https:// URL, got {url:?}"),
            );
        }
    }
}
