//! Money as integer minor units plus an ISO-4217 currency that knows its exponent.
//!
//! Floats never appear: amounts are parsed from decimal text exactly and formatted back
//! to decimal text, so `"99.99"` in USD is always 9 999 minor units.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// ISO-4217 codes Portside accepts, with the number of digits after the decimal point.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("VND", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("ZAR", 2),
];

/// A currency Portside can hold money in. Only codes from the table above can be built,
/// so every `Currency` has a known exponent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    index: u8,
}

/// Why a text is not a supported currency or a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The code is not an ISO-4217 code Portside supports.
    #[error("unknown currency {0:?}: use an ISO-4217 code such as USD, EUR or JPY")]
    UnknownCurrency(String),
    /// The text is not a plain decimal number.
    #[error(
        "{0:?} is not a decimal amount: use digits with an optional decimal point, e.g. \"12.50\""
    )]
    Malformed(String),
    /// More digits after the decimal point than the currency has minor units.
    #[error("{currency} allows at most {max} decimal places, got {given}")]
    TooManyDecimals {
        /// The currency of the amount.
        currency: Currency,
        /// Digits the currency allows.
        max: u8,
        /// Digits that were given.
        given: usize,
    },
    /// The amount does not fit in 64-bit minor units.
    #[error("amount is too large")]
    Overflow,
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
}

impl Currency {
    /// Looks a code up, case-insensitively ("usd" and "USD" are the same currency).
    pub fn from_code(code: &str) -> Result<Self, MoneyError> {
        let upper = code.to_ascii_uppercase();
        CURRENCIES
            .iter()
            .position(|(c, _)| *c == upper)
            .and_then(|i| u8::try_from(i).ok())
            .map(|index| Currency { index })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }

    /// The three-letter upper-case ISO code.
    pub fn code(self) -> &'static str {
        CURRENCIES[usize::from(self.index)].0
    }

    /// Digits after the decimal point (USD 2, JPY 0, KWD 3).
    pub fn exponent(self) -> u8 {
        CURRENCIES[usize::from(self.index)].1
    }

    /// Every supported currency, for documentation and tests.
    pub fn all() -> impl Iterator<Item = Currency> {
        (0..CURRENCIES.len()).filter_map(|i| u8::try_from(i).ok().map(|index| Currency { index }))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount of one currency in minor units (cents for USD, yen for JPY).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Money from minor units.
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Zero of a currency.
    pub fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }

    /// Parses decimal text exactly: `"12.5"` USD is 1 250 minor units; `"12.345"` USD and
    /// `"100.0"` JPY are refused because they carry more decimals than the currency has.
    /// A leading `-` is accepted so that callers can refuse negatives with a precise message.
    pub fn parse(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let malformed = || MoneyError::Malformed(text.to_owned());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
            return Err(malformed());
        }
        let frac = frac_part.unwrap_or("");
        let exponent = currency.exponent();
        if frac.len() > usize::from(exponent) {
            return Err(MoneyError::TooManyDecimals {
                currency,
                max: exponent,
                given: frac.len(),
            });
        }
        let mut minor: i64 = 0;
        let padded = frac.bytes().chain(std::iter::repeat_n(
            b'0',
            usize::from(exponent) - frac.len(),
        ));
        for b in int_part.bytes().chain(padded) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        Ok(Money {
            minor: if negative { -minor } else { minor },
            currency,
        })
    }

    /// Minor units.
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// True when strictly above zero.
    pub fn is_positive(self) -> bool {
        self.minor > 0
    }

    /// Sum of two amounts of the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// Difference of two amounts of the same currency.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    /// The amount as decimal text with exactly the currency's decimals: `"99.99"`, `"500"`.
    pub fn to_decimal_string(self) -> String {
        let exponent = u32::from(self.currency.exponent());
        let abs = self.minor.unsigned_abs();
        let sign = if self.minor < 0 { "-" } else { "" };
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(exponent);
        let width = exponent as usize;
        format!("{sign}{}.{:0width$}", abs / scale, abs % scale)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(cur("USD").exponent(), 2);
        assert_eq!(cur("EUR").exponent(), 2);
        assert_eq!(cur("GBP").exponent(), 2);
        assert_eq!(cur("JPY").exponent(), 0);
        assert_eq!(cur("CHF").exponent(), 2);
        assert_eq!(cur("KWD").exponent(), 3);
        assert_eq!(cur("usd"), cur("USD"));
        assert!(matches!(
            Currency::from_code("XYZ"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(Currency::from_code("").is_err());
    }

    #[test]
    fn parses_decimal_text_exactly() {
        assert_eq!(Money::parse("99.99", cur("USD")).unwrap().minor(), 9999);
        assert_eq!(Money::parse("12.5", cur("USD")).unwrap().minor(), 1250);
        assert_eq!(Money::parse("7", cur("USD")).unwrap().minor(), 700);
        assert_eq!(Money::parse("500", cur("JPY")).unwrap().minor(), 500);
        assert_eq!(Money::parse("1.234", cur("KWD")).unwrap().minor(), 1234);
        assert_eq!(Money::parse("-3.10", cur("EUR")).unwrap().minor(), -310);
        assert_eq!(Money::parse("0.1", cur("USD")).unwrap().minor(), 10);
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        let usd = cur("USD");
        for bad in [
            "", "-", ".", "1.", ".5", "1,00", "1e3", "+1", " 1", "1 ", "0x10", "--1", "1.2.3",
        ] {
            assert!(
                matches!(Money::parse(bad, usd), Err(MoneyError::Malformed(_))),
                "{bad:?} should be malformed"
            );
        }
        assert!(matches!(
            Money::parse("1.001", usd),
            Err(MoneyError::TooManyDecimals {
                max: 2,
                given: 3,
                ..
            })
        ));
        assert!(matches!(
            Money::parse("100.0", cur("JPY")),
            Err(MoneyError::TooManyDecimals { max: 0, .. })
        ));
        assert_eq!(
            Money::parse("99999999999999999999999", usd),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse("92233720368547758.08", usd),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse("92233720368547758.07", usd).unwrap().minor(),
            i64::MAX
        );
    }

    #[test]
    fn formats_with_the_currency_decimals() {
        assert_eq!(
            Money::from_minor(9999, cur("USD")).to_decimal_string(),
            "99.99"
        );
        assert_eq!(Money::from_minor(5, cur("USD")).to_decimal_string(), "0.05");
        assert_eq!(
            Money::from_minor(-5, cur("USD")).to_decimal_string(),
            "-0.05"
        );
        assert_eq!(
            Money::from_minor(500, cur("JPY")).to_decimal_string(),
            "500"
        );
        assert_eq!(
            Money::from_minor(1, cur("KWD")).to_decimal_string(),
            "0.001"
        );
        assert_eq!(
            Money::from_minor(i64::MIN, cur("USD")).to_decimal_string(),
            "-92233720368547758.08"
        );
    }

    #[test]
    fn arithmetic_checks_currency_and_overflow() {
        let a = Money::from_minor(100, cur("USD"));
        let b = Money::from_minor(100, cur("EUR"));
        assert!(matches!(
            a.checked_add(b),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert_eq!(a.checked_sub(a).unwrap().minor(), 0);
        assert_eq!(
            Money::from_minor(i64::MAX, cur("USD")).checked_add(a),
            Err(MoneyError::Overflow)
        );
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        let all: Vec<Currency> = Currency::all().collect();
        proptest::sample::select(all)
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(minor in any::<i64>(), currency in any_currency()) {
            let m = Money::from_minor(minor, currency);
            prop_assert_eq!(Money::parse(&m.to_decimal_string(), currency), Ok(m));
        }

        #[test]
        fn parse_then_format_is_canonical(int in 0u64..1_000_000_000, frac in 0u32..1000, currency in any_currency()) {
            let exponent = usize::from(currency.exponent());
            let text = if exponent == 0 {
                int.to_string()
            } else {
                let frac = frac % 10u32.pow(exponent as u32);
                format!("{int}.{frac:0exponent$}")
            };
            let parsed = Money::parse(&text, currency).unwrap();
            prop_assert_eq!(parsed.to_decimal_string(), text);
        }
    }
}
