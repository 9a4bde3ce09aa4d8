//! Short human durations such as `90s`, `15m`, `1h`, `7d`, used for rotation grace periods.

use time::Duration;

use crate::DomainError;

/// The longest grace a rotated token may keep its old secret: a week is enough to roll out.
pub const MAX_GRACE: Duration = Duration::days(7);

pub fn parse_grace(input: &str) -> Result<Duration, DomainError> {
    let err = || {
        DomainError::invalid(
            "grace",
            "use a number followed by s, m, h or d (for example 90s, 15m, 1h), at most 7d",
        )
    };
    let input = input.trim();
    let split = input.len().checked_sub(1).ok_or_else(err)?;
    if !input.is_char_boundary(split) {
        return Err(err());
    }
    let (number, unit) = input.split_at(split);
    let n: i64 = number.parse().map_err(|_| err())?;
    if n < 0 {
        return Err(err());
    }
    let unit_seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    // Checked: `Duration::days` panics past its range, and the number is the client's.
    let grace = n
        .checked_mul(unit_seconds)
        .map(Duration::seconds)
        .ok_or_else(err)?;
    if grace > MAX_GRACE {
        return Err(err());
    }
    Ok(grace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text, and above all huge numbers with every unit: an error, never a panic.
        #[test]
        fn never_panics(text in ".{0,30}", n in any::<i64>(), unit in "[smhdé]") {
            let _ = parse_grace(&text);
            let _ = parse_grace(&format!("{n}{unit}"));
        }
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_grace("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_grace("15m").unwrap(), Duration::minutes(15));
        assert_eq!(parse_grace("1h").unwrap(), Duration::hours(1));
        assert_eq!(parse_grace("7d").unwrap(), Duration::days(7));
        assert_eq!(parse_grace("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "",
            "h",
            "1",
            "1w",
            "-1h",
            "8d",
            "1.5h",
            "é",
            "99999999999999999999s",
            "9999999999999999d",
            "9223372036854775807h",
        ] {
            assert!(parse_grace(bad).is_err(), "{bad}");
        }
    }
}
