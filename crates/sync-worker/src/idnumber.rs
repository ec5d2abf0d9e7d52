//! Identity numbers as Wispro's records and legacy user rows hold them: bare
//! digits, with a letter (`V` Venezuelan, `E` foreigner, `J` company, `G`
//! government body, `P` passport), dotted, spaced or dashed, missing, or
//! garbage. One number has one key, the letter and the digits without leading
//! zeros (`V-12.345.678`, `v 012345678` -> `V12345678`), the key the database
//! keeps in `users.id_number_key` (migration 0007 computes it the same way).
//!
//! Which keys match: a number with a letter matches its own key; a V or E
//! number also matches the bare number with its digits (a legacy row often has
//! no letter), and a bare number matches the bare, V and E keys. A J, G or P
//! number matches only its own key, so a company never takes the user of the
//! person whose V number has its digits. Digits are compared whole: `2345678`
//! never matches `12345678`.

/// What a record's `national_identification_number` gives the sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdNumber {
    /// Absent or blank: the customer is skipped.
    Missing,
    /// Something that is no identity number (`N/A`, `V-`): skipped with the reason.
    Unusable,
    /// A usable number.
    Usable(Identity),
}

/// An identity number: its letter if it has one, and its digits without
/// leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub letter: Option<Letter>,
    pub digits: String,
}

/// The letter of an identity number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letter {
    /// Venezuelan.
    V,
    /// Foreigner.
    E,
    /// Company (RIF).
    J,
    /// Government body.
    G,
    /// Passport.
    P,
}

impl Letter {
    fn of(c: char) -> Option<Self> {
        Some(match c.to_ascii_uppercase() {
            'V' => Self::V,
            'E' => Self::E,
            'J' => Self::J,
            'G' => Self::G,
            'P' => Self::P,
            _ => return None,
        })
    }

    fn as_char(self) -> char {
        match self {
            Self::V => 'V',
            Self::E => 'E',
            Self::J => 'J',
            Self::G => 'G',
            Self::P => 'P',
        }
    }

    /// A person's letter: a bare number may be one of these.
    fn is_personal(self) -> bool {
        matches!(self, Self::V | Self::E)
    }
}

/// Fewest and most digits (without leading zeros) of a usable number.
const MIN_DIGITS: usize = 5;
const MAX_DIGITS: usize = 10;

/// What the key ignores: the database's `[ \t\n\r\f\v\u00a0.-]`, spelled out
/// rather than "whitespace" so that no locale makes the two disagree.
fn ignored(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\r' | '\x0C' | '\x0B' | '\u{a0}' | '.' | '-'
    )
}

/// Reads a number: spaces, dots and dashes ignored, an optional letter, then
/// digits; leading zeros dropped, 5 to 10 digits left.
pub fn parse(raw: Option<&str>) -> IdNumber {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return IdNumber::Missing;
    };
    let compact: String = raw.chars().filter(|c| !ignored(*c)).collect();
    let mut chars = compact.chars();
    let letter = match compact.chars().next() {
        Some(c) if !c.is_ascii_digit() => {
            chars.next();
            match Letter::of(c) {
                Some(letter) => Some(letter),
                None => return IdNumber::Unusable,
            }
        }
        _ => None,
    };
    let rest = chars.as_str();
    let digits = rest.trim_start_matches('0');
    if (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        IdNumber::Usable(Identity {
            letter,
            digits: digits.to_owned(),
        })
    } else {
        IdNumber::Unusable
    }
}

impl Identity {
    /// The key the database keeps in `users.id_number_key`: `V12345678`, `12345678`.
    pub fn key(&self) -> String {
        key(self.letter, &self.digits)
    }

    /// The keys of the users this number may belong to (see the module's rules).
    pub fn matching_keys(&self) -> Vec<String> {
        match self.letter {
            None => vec![
                self.key(),
                key(Some(Letter::V), &self.digits),
                key(Some(Letter::E), &self.digits),
            ],
            Some(letter) if letter.is_personal() => vec![self.key(), key(None, &self.digits)],
            Some(_) => vec![self.key()],
        }
    }

    /// The form a created user's `id_number` is stored in: `V-12345678`,
    /// `J-301234567` or the bare digits (never dots, spaces or zeros in front).
    pub fn stored(&self) -> String {
        match self.letter {
            Some(letter) => format!("{}-{}", letter.as_char(), self.digits),
            None => self.digits.clone(),
        }
    }
}

fn key(letter: Option<Letter>, digits: &str) -> String {
    match letter {
        Some(letter) => format!("{}{digits}", letter.as_char()),
        None => digits.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usable(raw: &str) -> Identity {
        match parse(Some(raw)) {
            IdNumber::Usable(id) => id,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn every_written_form_of_a_number_gives_one_key() {
        for raw in [
            "V-12345678",
            "v-12345678",
            "V12345678",
            "V-12.345.678",
            "V 12 345 678",
            "v-012.345.678",
            " V-12345678 ",
        ] {
            assert_eq!(usable(raw).key(), "V12345678", "{raw:?}");
        }
        for raw in [
            "12345678",
            "012345678",
            "12.345.678",
            " 12 345 678 ",
            "0012-345-678",
        ] {
            assert_eq!(usable(raw).key(), "12345678", "{raw:?}");
        }
        assert_eq!(usable("E-84.123.456").key(), "E84123456");
        assert_eq!(usable("J-30.123.456-7").key(), "J301234567");
        assert_eq!(usable("g-20000001-1").key(), "G200000011");
        assert_eq!(usable("P-012345000").key(), "P12345000");
    }

    #[test]
    fn a_number_whose_digits_end_another_is_another_number() {
        assert_ne!(usable("2345678").key(), usable("12345678").key());
        assert!(
            !usable("2345678")
                .matching_keys()
                .contains(&"12345678".to_owned())
        );
    }

    #[test]
    fn missing_and_garbage_numbers_are_told_apart() {
        assert_eq!(parse(None), IdNumber::Missing);
        assert_eq!(parse(Some("")), IdNumber::Missing);
        assert_eq!(parse(Some("  ")), IdNumber::Missing);
        for raw in [
            "N/A",
            "V-",
            "E-",
            "0",
            "1234",
            "00001234",
            "12345678901",
            "V-12a45678",
            "--",
            "X-12345678",
            "VE12345678",
            "P-AB123456",
            "sin cedula",
        ] {
            assert_eq!(parse(Some(raw)), IdNumber::Unusable, "{raw:?}");
        }
    }

    #[test]
    fn bare_numbers_match_persons_and_companies_match_only_themselves() {
        let keys = |raw| usable(raw).matching_keys();
        assert_eq!(keys("12345678"), ["12345678", "V12345678", "E12345678"]);
        assert_eq!(keys("V-12345678"), ["V12345678", "12345678"]);
        assert_eq!(keys("E-12345678"), ["E12345678", "12345678"]);
        for (raw, key) in [
            ("J-12345678", "J12345678"),
            ("G-12345678", "G12345678"),
            ("P-12345678", "P12345678"),
        ] {
            assert_eq!(keys(raw), [key], "{raw}");
        }
    }

    #[test]
    fn numbers_are_stored_with_their_letter_and_nothing_else() {
        assert_eq!(usable("V-12.345.678").stored(), "V-12345678");
        assert_eq!(usable("e 084123456").stored(), "E-84123456");
        assert_eq!(usable(" 12 345 678").stored(), "12345678");
        assert_eq!(usable("J-30.123.456-7").stored(), "J-301234567");
    }
}
