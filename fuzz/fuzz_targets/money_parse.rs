//! Amount text from API clients: never a panic; whatever parses prints back to text that
//! parses to the same amount.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portside_domain::money::{Currency, Money};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let currencies: Vec<Currency> = Currency::all().collect();
    let currency = currencies[usize::from(pick) % currencies.len()];
    if let Ok(money) = Money::parse(text, currency) {
        let printed = money.to_decimal_string();
        assert_eq!(Money::parse(&printed, currency), Ok(money), "{text:?} → {printed:?}");
    }
});
