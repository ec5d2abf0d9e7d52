//! Venezuelan-style id numbers (cédulas) as Wispro's records hold them: bare
//! digits, `V-`/`E-` prefixed, with dots or spaces, missing, or garbage. The
//! sync matches on the digits and on the forms the replaced system stored.

/// What a record's `national_identification_number` gives the sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdNumber {
    /// Absent or blank: the customer is skipped.
    Missing,
    /// Something that is no id number (`N/A`, `V-`): skipped with the reason.
    Unusable,
    /// The digits of a usable number.
    Digits(String),
}

/// Shortest and longest digit count accepted (cédulas have 6 to 9 today).
const MIN_DIGITS: usize = 5;
const MAX_DIGITS: usize = 10;

/// Normalises: spaces and dots removed, a `V`/`E` prefix with or without `-`
/// dropped, then 5 to 10 digits.
pub fn parse(raw: Option<&str>) -> IdNumber {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return IdNumber::Missing;
    };
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .collect::<String>()
        .to_ascii_uppercase();
    let digits = compact
        .strip_prefix("V-")
        .or_else(|| compact.strip_prefix("E-"))
        .or_else(|| compact.strip_prefix('V'))
        .or_else(|| compact.strip_prefix('E'))
        .unwrap_or(&compact);
    if (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        IdNumber::Digits(digits.to_owned())
    } else {
        IdNumber::Unusable
    }
}

/// The form a user's `id_number` is stored in: `V-`/`E-` and the digits when
/// the record named the nationality, the bare digits otherwise (never dots or
/// spaces, so the next sync finds it by its forms).
pub fn canonical(raw: &str, digits: &str) -> String {
    match raw
        .trim_start()
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
    {
        Some(prefix @ ('V' | 'E')) => format!("{prefix}-{digits}"),
        _ => digits.to_owned(),
    }
}

/// The stored forms a user with these digits may have: bare, `V-` and `E-`.
pub fn forms(digits: &str) -> Vec<String> {
    vec![
        digits.to_owned(),
        format!("V-{digits}"),
        format!("E-{digits}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(d: &str) -> IdNumber {
        IdNumber::Digits(d.into())
    }

    #[test]
    fn every_written_form_of_a_number_gives_its_digits() {
        for raw in [
            "12345678",
            "V-12345678",
            "v-12345678",
            "E-12345678",
            "V12345678",
            "12.345.678",
            "V-12.345.678",
            " 12 345 678 ",
        ] {
            assert_eq!(parse(Some(raw)), digits("12345678"), "{raw:?}");
        }
        assert_eq!(parse(Some("E-84.123.456")), digits("84123456"));
    }

    #[test]
    fn missing_and_garbage_numbers_are_told_apart() {
        assert_eq!(parse(None), IdNumber::Missing);
        assert_eq!(parse(Some("  ")), IdNumber::Missing);
        for raw in ["N/A", "V-", "E-", "1234", "12345678901", "V-12a45678", "--"] {
            assert_eq!(parse(Some(raw)), IdNumber::Unusable, "{raw:?}");
        }
    }

    #[test]
    fn numbers_are_stored_without_dots_or_spaces_keeping_the_nationality() {
        assert_eq!(canonical("V-12.345.678", "12345678"), "V-12345678");
        assert_eq!(canonical("e 84123456", "84123456"), "E-84123456");
        assert_eq!(canonical(" 12 345 678", "12345678"), "12345678");
    }

    #[test]
    fn the_forms_are_bare_v_and_e() {
        assert_eq!(forms("123456"), ["123456", "V-123456", "E-123456"]);
    }
}
