use std::path::Path;

use faregate_core::{Price, RailKind};
use http::Method;

use super::*;

fn compile(text: &str) -> Result<Config, ConfigError> {
    let env = |var: &str| (var == "SECRET").then(|| "s3cret-value-0123456789".to_owned());
    load(text, Path::new("."), &env, &[RailKind::Credits])
}

fn paths(e: &ConfigError) -> Vec<&str> {
    e.problems.iter().map(|(p, _)| p.as_str()).collect()
}

const MINIMAL: &str = r#"
[[routes]]
name = "a"
path = "/a"
upstreams = ["http://127.0.0.1:9000"]
"#;

#[test]
fn the_example_config_compiles() {
    let text = include_str!("../../../../docs/faregate.example.toml");
    let config = compile(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.routes().len(), 3);
    assert_eq!(config.keys.len(), 1);
    assert!(config.keys.find("fg_test_example_key_change_me").is_some());
}

#[test]
fn defaults_fill_what_is_left_out() {
    let c = compile(MINIMAL).unwrap();
    assert_eq!(c.listeners[0].address.to_string(), DEFAULT_LISTENER);
    assert_eq!(c.admin.address.to_string(), DEFAULT_ADMIN);
    assert_eq!(c.limits, Limits::default());
    let r = &c.routes.routes()[0];
    assert_eq!(r.price, Price::Free);
    assert_eq!(r.access, Access::Anyone);
    assert_eq!(r.balance, Balance::RoundRobin);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let text = r#"
typo_at_top = 1
[limits]
connect_timeout = "5 parsecs"
[[api_keys]]
id = "k"
key = "$MISSING_VAR"
routes = ["nope"]
[[routes]]
name = "a"
path = "a/no-slash"
upstreams = ["ftp://x", "not a url"]
price = "0.0000001 USD"
balance = "random"
access = ["credits", "paypal", "x402"]
rate_limit = { requests = 0, period = "1s" }
limits = { connect_timeout = "1s" }
pricee = "1 USD"
"#;
    let e = compile(text).unwrap_err();
    let got = paths(&e);
    for want in [
        "typo_at_top",
        "limits.connect_timeout",
        "api_keys[0].key",
        "api_keys[0].routes[0]",
        "routes[0].path",
        "routes[0].upstreams[0]",
        "routes[0].upstreams[1]",
        "routes[0].price",
        "routes[0].balance",
        "routes[0].access[1]",
        "routes[0].access[2]",
        "routes[0].rate_limit.requests",
        "routes[0].limits.connect_timeout",
    ] {
        assert!(got.contains(&want), "missing {want} in {got:?}");
    }
    assert!(got.iter().any(|p| p.contains("pricee")), "{got:?}");
    let text = e.to_string();
    assert!(
        text.contains("environment variable MISSING_VAR is not set"),
        "{text}"
    );
    assert!(
        text.contains("the x402 rail is not available in this build"),
        "{text}"
    );
}

#[test]
fn a_type_error_names_its_line() {
    let e = compile("[[routes]]\nname = 5\n").unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].0, "line 2");
}

#[test]
fn secrets_come_from_the_environment() {
    let text = format!(
        "{MINIMAL}\n[admin]\ntoken = \"$SECRET\"\n[[api_keys]]\nid = \"k\"\nkey = \"$SECRET\"\n"
    );
    let c = compile(&text).unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("s3cret-value-0123456789"));
    assert_eq!(&*c.keys.find("s3cret-value-0123456789").unwrap().id, "k");
    assert!(
        !format!("{:?}", c.admin).contains("s3cret"),
        "Debug must not print the token"
    );
}

#[test]
fn a_priced_route_needs_a_payer() {
    let e = compile(&MINIMAL.replace(
        "path = \"/a\"",
        "path = \"/a\"\nprice = \"1 USD\"\naccess = \"anyone\"",
    ))
    .unwrap_err();
    assert_eq!(paths(&e), ["routes[0].access"]);
    let c = compile(&MINIMAL.replace("path = \"/a\"", "path = \"/a\"\nprice = \"1 USD\"")).unwrap();
    assert_eq!(
        c.routes.routes()[0].access,
        Access::Rails(vec![RailKind::Credits]),
        "a priced route defaults to key holders paying with credits"
    );
    let c = compile(&MINIMAL.replace(
        "path = \"/a\"",
        "path = \"/a\"\nprice = \"1 USD\"\naccess = \"api_key\"\ncharge = \"non_5xx\"",
    ))
    .unwrap();
    let route = &c.routes.routes()[0];
    assert_eq!(route.access, Access::Rails(vec![RailKind::Credits]));
    assert_eq!(route.charge, faregate_core::ChargePolicy::NonServerError);
    let free =
        compile(&MINIMAL.replace("path = \"/a\"", "path = \"/a\"\naccess = \"api_key\"")).unwrap();
    assert_eq!(free.routes.routes()[0].access, Access::ApiKey);
    // Without the credits rail a priced key route cannot be paid.
    let e = load(
        &MINIMAL.replace("path = \"/a\"", "path = \"/a\"\nprice = \"1 USD\""),
        Path::new("."),
        &|_| None,
        &[],
    )
    .unwrap_err();
    assert_eq!(paths(&e), ["routes[0].access"]);
    let e =
        compile(&MINIMAL.replace("path = \"/a\"", "path = \"/a\"\ncharge = \"4xx\"")).unwrap_err();
    assert_eq!(paths(&e), ["routes[0].charge"]);
}

#[test]
fn the_store_and_top_up_link_are_checked() {
    let c = compile(MINIMAL).unwrap();
    assert_eq!(
        c.store.url, "sqlite://./faregate-data/faregate.db",
        "beside the config file"
    );
    assert_eq!(c.store.flush_interval, std::time::Duration::from_millis(10));
    let text = format!(
        "{MINIMAL}\n[store]\nurl = \"mysql://x\"\nflush_interval = \"0ms\"\n[credits]\ntop_up_url = \"ftp://x\"\ntop_up_method = \"PUT\"\n"
    );
    let e = compile(&text).unwrap_err();
    assert_eq!(
        paths(&e),
        [
            "store.url",
            "store.flush_interval",
            "credits.top_up_method",
            "credits.top_up_url"
        ]
    );
    assert!(
        format!(
            "{:?}",
            super::StoreSettings {
                url: "postgres://u:secret@h/db".into(),
                flush_interval: std::time::Duration::from_millis(1),
            }
        )
        .contains("u:***@h"),
        "the store URL's password never reaches a log"
    );
}

#[test]
fn routes_match_exact_before_prefix_and_host_before_any() {
    let text = r#"
[[routes]]
name = "prefix"
path = "/api/*"
upstreams = ["http://127.0.0.1:1"]
[[routes]]
name = "exact"
path = "/api/x"
methods = ["GET"]
upstreams = ["http://127.0.0.1:1"]
[[routes]]
name = "hosted"
host = "*.example.com"
path = "/api/*"
upstreams = ["http://127.0.0.1:1"]
[[routes]]
name = "deeper"
path = "/api/v2/*"
upstreams = ["http://127.0.0.1:1"]
[[routes]]
name = "everything"
path = "/*"
methods = ["GET"]
upstreams = ["http://127.0.0.1:1"]
"#;
    let c = compile(text).unwrap();
    let find = |host: &str, path: &str, m: Method| match c.routes.find(host, path, &m) {
        RouteMatch::Found(r) => r.name.to_string(),
        RouteMatch::MethodNotAllowed(allowed) => format!("405 {allowed:?}"),
        RouteMatch::NotFound => "404".into(),
    };
    assert_eq!(find("h", "/api/x", Method::GET), "exact");
    assert_eq!(find("h", "/api/x", Method::POST), "prefix");
    assert_eq!(find("h", "/api", Method::GET), "prefix");
    assert_eq!(find("h", "/apix", Method::GET), "everything");
    assert_eq!(find("a.example.com", "/api/y", Method::GET), "hosted");
    assert_eq!(find("example.com", "/api/y", Method::GET), "prefix");
    assert_eq!(find("h", "/api/v2/z", Method::GET), "deeper");
    assert_eq!(find("h", "/other", Method::DELETE), "405 [GET]");
}

#[test]
fn listeners_changes_need_a_restart_but_tls_files_must_exist() {
    let e = compile(&format!("{MINIMAL}\n[[listeners]]\naddress = \"127.0.0.1:1\"\ntls = {{ cert = \"/nonexistent.pem\", key = \"/nonexistent.key\" }}\n")).unwrap_err();
    assert_eq!(paths(&e), ["listeners[0].tls"]);
}

#[test]
fn an_unreadable_upstream_ca_file_is_a_config_problem() {
    let e = compile(&format!(
        "[server]\nupstream_ca_file = \"/nonexistent/ca.pem\"\n{MINIMAL}"
    ))
    .unwrap_err();
    assert_eq!(paths(&e), ["server.upstream_ca_file"]);
}

#[test]
fn durations_parse() {
    use compile::parse_duration;
    use std::time::Duration;
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("0s").is_err());
    assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
    assert!(parse_duration("1w").is_err());
    assert!(parse_duration("s").is_err());
}

fn compile_x402(text: &str) -> Result<Config, ConfigError> {
    let env = |var: &str| (var == "GAS_KEY").then(|| "ab".repeat(32));
    load(
        text,
        Path::new("."),
        &env,
        &[RailKind::Credits, RailKind::X402],
    )
}

const X402_ROUTE: &str = r#"
[[routes]]
name = "paid"
path = "/paid"
upstreams = ["http://127.0.0.1:9000"]
price = "0.01 USD"
access = ["x402"]
[routes.x402]
settle = "before"
bundle = { calls = 10, duration = "1h" }
[[routes.x402.offers]]
network = "eip155:84532"
asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
name = "USDC"
version = "2"
pay_to = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
"#;

#[test]
fn an_x402_route_compiles_with_its_offers_and_options() {
    let text = format!(
        "[x402]\nsettlement = \"chain\"\nrpc_url = \"http://127.0.0.1:8545\"\nsigner_key = \"$GAS_KEY\"\ngas_limit = 150000\n{X402_ROUTE}"
    );
    let c = compile_x402(&text).unwrap_or_else(|e| panic!("{e}"));
    let route = &c.x402.routes["paid"];
    assert_eq!(route.offers[0].decimals, 6);
    assert_eq!(route.offers[0].max_timeout_seconds, 60);
    assert_eq!(
        route.settle,
        faregate_rails::x402::SettleWhen::BeforeForward
    );
    assert_eq!(route.bundle.unwrap().calls, Some(10));
    match &c.x402.settlement {
        X402Settlement::Chain {
            network,
            signer_key,
            gas_limit,
            ..
        } => {
            assert_eq!(network, "eip155:84532");
            assert_eq!(signer_key.len(), 64);
            assert_eq!(*gas_limit, Some(150_000));
        }
        other => panic!("{other:?}"),
    }
    // The signer key never shows in debug output.
    assert!(!format!("{:?}", c.x402).contains(&"ab".repeat(32)));
}

#[test]
fn x402_mistakes_are_all_reported_with_their_paths() {
    let text = r#"
[x402]
settlement = "chain"
gas_limit = 1000

[[routes]]
name = "paid"
path = "/paid"
upstreams = ["http://127.0.0.1:9000"]
price = "0.001 USD"
access = ["x402"]
[routes.x402]
settle = "later"
[[routes.x402.offers]]
network = "base-sepolia"
asset = "0x1234"
name = ""
version = "2"
decimals = 2
pay_to = "not an address"

[[routes]]
name = "forgot"
path = "/forgot"
upstreams = ["http://127.0.0.1:9000"]
price = "0.01 USD"
access = ["x402"]
"#;
    let e = compile_x402(text).unwrap_err();
    let p = paths(&e);
    for expected in [
        "x402.signer_key",
        "x402.rpc_url",
        "x402.gas_limit",
        "routes[0].x402.settle",
        "routes[0].x402.offers[0].network",
        "routes[0].x402.offers[0].asset",
        "routes[0].x402.offers[0].pay_to",
        "routes[0].x402.offers[0].name",
        "routes[0].x402.offers[0].decimals",
        "routes[1].x402",
    ] {
        assert!(p.contains(&expected), "{expected} missing from {p:?}");
    }
}

#[test]
fn config_keys_may_be_scoped_to_llm_models() {
    let key = "[[api_keys]]\nid = \"k\"\nkey = \"0123456789abcdef\"\n";
    let c = compile(&format!("{MINIMAL}\n{key}models = [\"gpt-4o\", \"m 2\"]\n")).unwrap();
    let k = c.keys.find("0123456789abcdef").unwrap();
    assert!(k.may_use_model("gpt-4o") && k.may_use_model("m 2"));
    assert!(!k.may_use_model("gpt-4o-mini"));
    assert_eq!(k.limits, faregate_core::LlmLimits::default());
    let c = compile(&format!("{MINIMAL}\n{key}")).unwrap();
    assert!(
        c.keys
            .find("0123456789abcdef")
            .unwrap()
            .may_use_model("any")
    );
    let e = compile(&format!("{MINIMAL}\n{key}models = []\n")).unwrap_err();
    assert_eq!(paths(&e), ["api_keys[0].models"]);
    let e = compile(&format!("{MINIMAL}\n{key}models = [\"a\", \" \"]\n")).unwrap_err();
    assert_eq!(paths(&e), ["api_keys[0].models[1]"]);
}
