use super::*;
use proptest::prelude::*;

fn usd(input: &str, cached: &str, output: &str) -> TokenPrices {
    TokenPrices::parse(Currency::USD, input, cached, output).unwrap()
}

#[test]
fn parses_per_million_prices_exactly() {
    let r = Rate::parse("2.50", Currency::USD).unwrap();
    assert_eq!(r.sub_atomic_per_million(), 2_500_000_000_000);
    let r = Rate::parse("0.000000000001", Currency::USD).unwrap();
    assert_eq!(r.sub_atomic_per_million(), 1);
    assert_eq!(Rate::parse("0", Currency::USD).unwrap(), Rate::ZERO);
    assert_eq!(
        Rate::parse("15.000", Currency::USD).unwrap(),
        Rate::parse("15", Currency::USD).unwrap()
    );
}

#[test]
fn refuses_what_is_not_a_price() {
    for bad in ["", ".5", "1.", "-1", "1e3", "1,5", " 1", "1 USD"] {
        assert!(
            matches!(Rate::parse(bad, Currency::USD), Err(PriceError::Syntax(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Rate::parse("0.0000000000001", Currency::USD),
        Err(PriceError::TooPrecise { max: 12, .. })
    ));
    assert_eq!(
        Rate::parse(&"9".repeat(40), Currency::USD),
        Err(PriceError::Overflow)
    );
}

#[test]
fn costs_a_chat_completion() {
    // gpt-4o style: 2.50 in, 1.25 cached, 10.00 out per 1M.
    let prices = usd("2.50", "1.25", "10.00");
    let usage = Usage {
        input: 1_000,
        cached_input: 400,
        cache_creation: 0,
        output: 200,
    };
    // 600 × 2.5 + 400 × 1.25 + 200 × 10 = 1500 + 500 + 2000 micro-dollars.
    assert_eq!(cost(&usage, &prices).unwrap().atomic(), 4_000);
}

#[test]
fn rounds_up_once_per_request() {
    // 0.15 per 1M: one token is 0.15 micro-dollars; 7 tokens are 1.05.
    let prices = usd("0.15", "0.15", "0.15");
    let one = Usage {
        input: 1,
        ..Usage::default()
    };
    assert_eq!(cost(&one, &prices).unwrap().atomic(), 1);
    let seven = Usage {
        input: 3,
        output: 4,
        ..Usage::default()
    };
    // Rounded per part it would be 1 + 1 = 2; rounded once it is ceil(1.05).
    assert_eq!(cost(&seven, &prices).unwrap().atomic(), 2);
    let six = Usage {
        input: 3,
        output: 3,
        ..Usage::default()
    };
    assert_eq!(cost(&six, &prices).unwrap().atomic(), 1);
    assert_eq!(cost(&Usage::default(), &prices).unwrap().atomic(), 0);
}

#[test]
fn cache_writes_cost_input_unless_priced() {
    let mut prices = usd("3", "0.30", "15");
    let usage = Usage {
        input: 1_000,
        cached_input: 0,
        cache_creation: 1_000,
        output: 0,
    };
    assert_eq!(cost(&usage, &prices).unwrap().atomic(), 3_000);
    prices.cache_write = Some(Rate::parse("3.75", Currency::USD).unwrap());
    assert_eq!(cost(&usage, &prices).unwrap().atomic(), 3_750);
}

#[test]
fn worst_case_takes_the_dearest_input_rate() {
    let mut prices = usd("3", "0.30", "15");
    prices.cache_write = Some(Rate::parse("3.75", Currency::USD).unwrap());
    // 1000 × 3.75 + 4096 × 15 micro-dollars.
    assert_eq!(
        worst_case(1_000, 4_096, &prices).unwrap().atomic(),
        3_750 + 61_440
    );
    assert_eq!(
        worst_case(u64::MAX, u64::MAX, &usd("1000000", "0", "1000000")),
        Err(PriceError::Overflow)
    );
}

fn prices() -> impl Strategy<Value = TokenPrices> {
    let rate = (0u128..=100_000_000_000_000).prop_map(|sub_per_million| Rate { sub_per_million });
    (
        rate.clone(),
        rate.clone(),
        rate,
        proptest::option::of(0u128..=10_000_000_000_000),
    )
        .prop_map(|(input, cached_input, output, write)| TokenPrices {
            currency: Currency::USD,
            input,
            cached_input,
            output,
            cache_write: write.map(|sub_per_million| Rate { sub_per_million }),
        })
}

fn usages() -> impl Strategy<Value = Usage> {
    (
        0u64..10_000_000,
        0u64..10_000_000,
        0u64..10_000_000,
        0u64..10_000_000,
    )
        .prop_map(|(uncached, cached_input, cache_creation, output)| Usage {
            input: uncached + cached_input + cache_creation,
            cached_input,
            cache_creation,
            output,
        })
}

proptest! {
    #[test]
    fn cost_is_the_exact_value_rounded_up_once(u in usages(), p in prices()) {
        let exact = exact_sub_millionths(&u, &p).unwrap();
        let charged = u128::from(cost(&u, &p).unwrap().atomic()) * DIVISOR;
        prop_assert!(charged >= exact);
        prop_assert!(charged - exact < DIVISOR);
    }

    #[test]
    fn cost_is_monotone_in_each_count(u in usages(), p in prices(), more in 0u64..1_000_000) {
        let base = cost(&u, &p).unwrap();
        let grown = [
            Usage { input: u.input + more, ..u },
            Usage { output: u.output + more, ..u },
            Usage { input: u.input + more, cached_input: u.cached_input + more, ..u },
            Usage { input: u.input + more, cache_creation: u.cache_creation + more, ..u },
        ];
        for g in grown {
            prop_assert!(cost(&g, &p).unwrap() .atomic() >= base.atomic());
        }
    }

    #[test]
    fn worst_case_bounds_any_usage_within_it(u in usages(), p in prices()) {
        let bound = worst_case(u.input, u.output, &p).unwrap();
        prop_assert!(cost(&u, &p).unwrap().atomic() <= bound.atomic());
    }
}
