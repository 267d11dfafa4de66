//! `[llm]` and LLM routes: the catalog compiles with exact prices, and
//! every mistake is reported with its path.

use std::path::Path;

use faregate_core::{BudgetPeriod, Currency, RailKind};

use super::llm::{LlmRoute, ProviderKind};
use super::*;

fn compile(text: &str) -> Result<Config, ConfigError> {
    let env = |var: &str| var.ends_with("_API_KEY").then(|| "sk-test".to_owned());
    load(
        text,
        Path::new("."),
        &env,
        &[RailKind::Credits, RailKind::X402],
    )
}

fn paths(e: &ConfigError) -> Vec<&str> {
    e.problems.iter().map(|(p, _)| p.as_str()).collect()
}

/// The example file with its LLM section uncommented.
fn example_with_llm() -> String {
    let text = include_str!("../../../../docs/faregate.example.toml");
    let (before, llm) = text
        .split_once("# http://127.0.0.1:8402/v1 with a faregate key.\n")
        .expect("the example has an LLM section");
    let uncommented: Vec<&str> = llm
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .collect();
    format!("{before}{}\n", uncommented.join("\n"))
}

#[test]
fn the_example_llm_section_compiles() {
    let config = compile(&example_with_llm()).unwrap_or_else(|e| panic!("{e}"));
    let llm = &config.llm;
    assert_eq!(llm.providers.len(), 2);
    let model = llm.model("mini").expect("aliases find their model");
    assert_eq!(&*model.name, "gpt-4o-mini");
    assert_eq!(model.prices.currency, Currency::USD);
    assert_eq!(model.max_output_tokens, 16_384);
    assert_eq!(model.targets.len(), 1);
    assert_eq!(
        llm.providers[model.targets[0].provider].kind,
        ProviderKind::OpenAi
    );
    let budget = llm.key_limits.budget.unwrap();
    assert_eq!(
        (budget.amount.atomic(), budget.period),
        (5_000_000, BudgetPeriod::Day)
    );
    assert_eq!(llm.account_budget.unwrap().period, BudgetPeriod::Month);
    assert_eq!(
        (llm.key_limits.tpm, llm.key_limits.rpm),
        (Some(200_000), Some(600))
    );
    let routes = config.routes.routes();
    let api = routes.iter().find(|r| &*r.name == "llm").unwrap();
    assert!(matches!(api.llm, Some(LlmRoute::Api)));
    assert_eq!(api.access, Access::Rails(vec![RailKind::Credits]));
    let prompt = routes.iter().find(|r| &*r.name == "sentiment").unwrap();
    let Some(LlmRoute::Prompt(p)) = &prompt.llm else {
        panic!("a prompt route");
    };
    assert_eq!(p.fields, ["text"]);
    assert!(p.json);
}

#[test]
fn provider_keys_are_secrets_kept_out_of_debug_output() {
    let config = compile(&example_with_llm()).unwrap();
    let shown = format!("{:?}", config.llm);
    assert!(!shown.contains("sk-test"), "{shown}");
}

#[test]
fn every_llm_mistake_is_reported_with_its_path() {
    let text = r#"
[llm.providers.a]
kind = "mistral"
base_url = "ftp://x"

[llm.providers.b]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
api_key = "$UNSET_VAR"

[[llm.models]]
name = "m"
aliases = ["m"]
input = "abc"
output = "1"
currency = "XXX"
providers = [{ provider = "nope" }]

[[llm.models]]
name = "n"
input = "1"
output = "1"
max_output_tokens = 0
providers = []

[llm.limits]
key_budget = "5 USD/week"
tpm = 0

[[routes]]
name = "api"
path = "/v1/*"
kind = "llm"
price = "0.01 USD"
upstreams = ["http://127.0.0.1:9"]

[[routes]]
name = "other"
path = "/o"
kind = "banana"
upstreams = ["http://127.0.0.1:9"]

[[routes]]
name = "p"
path = "/p"
price = "0.01 USD"
prompt = { model = "missing", template = "{{ not closed", output = "yaml" }
"#;
    let e = compile(text).unwrap_err();
    let got = paths(&e);
    for want in [
        "llm.providers.a.kind",
        "llm.providers.b.api_key",
        "llm.models[0].currency",
        "llm.models[1].providers",
        "llm.models[1].max_output_tokens",
        "llm.limits.key_budget",
        "llm.limits.tpm",
        "routes[0].price",
        "routes[0].upstreams",
        "routes[1].kind",
        "routes[2].prompt.model",
        "routes[2].prompt.template",
    ] {
        assert!(got.contains(&want), "missing {want} in {got:?}");
    }
}

#[test]
fn an_llm_route_takes_credits_only() {
    let text = r#"
[llm.providers.p]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[llm.models]]
name = "m"
input = "1"
output = "1"
providers = [{ provider = "p" }]
[[routes]]
name = "api"
path = "/v1/*"
kind = "llm"
access = ["x402"]
"#;
    assert!(paths(&compile(text).unwrap_err()).contains(&"routes[0].access"));
}
