//! The generated clients: deterministic for a size and a seed (same clients,
//! same order), with national ids in every form the real data has, and a few
//! broken records. Each client carries its [`Kind`] and the truth about its id
//! ([`Client::cedula`]) so a test can compute exactly what a sync should do.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, FixedOffset, TimeZone};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// The largest data set the simulator generates (they are held in memory).
pub const MAX_CLIENTS: usize = 200_000;

/// What is special about a client, mostly the form of its national id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `12345678`
    Digits,
    /// `V-12345678`
    VPrefixed,
    /// `E-84123456` (a foreigner)
    EPrefixed,
    /// `12.345.678`
    Dotted,
    /// `V-12.345.678`
    PrefixedDotted,
    /// With spaces: `V 12345678`, `12 345 678` or padded ` 12345678 `.
    Spaced,
    /// `null`
    NullId,
    /// `""` or only blanks.
    EmptyId,
    /// Exactly the same id string as one earlier client ([`Client::duplicate_of`]).
    DuplicateId,
    /// Not an id: `N/A`, `V-`, `0`, `123`, `sin cedula`, `V-1234567890123`.
    GarbageId,
    /// A valid id, but the name is `null` or empty.
    MissingName,
    /// A valid id, but the email is not an address.
    InvalidEmail,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 12] = [
        Kind::Digits,
        Kind::VPrefixed,
        Kind::EPrefixed,
        Kind::Dotted,
        Kind::PrefixedDotted,
        Kind::Spaced,
        Kind::NullId,
        Kind::EmptyId,
        Kind::DuplicateId,
        Kind::GarbageId,
        Kind::MissingName,
        Kind::InvalidEmail,
    ];

    /// Out of 100 generated clients, about how many have this kind.
    const fn weight(self) -> u64 {
        match self {
            Kind::Digits => 38,
            Kind::VPrefixed => 16,
            Kind::EPrefixed => 5,
            Kind::Dotted => 10,
            Kind::PrefixedDotted => 8,
            Kind::Spaced => 4,
            Kind::NullId => 4,
            Kind::EmptyId => 3,
            Kind::DuplicateId => 3,
            Kind::GarbageId => 3,
            Kind::MissingName => 3,
            Kind::InvalidEmail => 3,
        }
    }

    /// Every field is fine and the id is the only holder of its number
    /// (one of the six id forms).
    pub fn is_clean(self) -> bool {
        matches!(
            self,
            Kind::Digits
                | Kind::VPrefixed
                | Kind::EPrefixed
                | Kind::Dotted
                | Kind::PrefixedDotted
                | Kind::Spaced
        )
    }
}

/// `V` (Venezuelan) or `E` (foreigner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Nationality {
    V,
    E,
}

/// The id a national id string really means. Bare numbers mean `V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cedula {
    pub nationality: Nationality,
    pub number: u32,
}

impl fmt::Display for Cedula {
    /// `V-12345678`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}-{}", self.nationality, self.number)
    }
}

/// A Wispro client as the API serves it, plus what the generator knows about it
/// (`kind`, `cedula`, `duplicate_of`, which are not served).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Client {
    pub id: String,
    pub public_id: i64,
    pub custom_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub address: String,
    pub phone: String,
    pub phone_mobile: String,
    pub national_identification_number: Option<String>,
    pub city: String,
    pub state: String,
    pub details: String,
    pub created_at: String,
    pub updated_at: String,
    pub zone: String,
    /// What is special about this client.
    #[serde(skip)]
    pub kind: Kind,
    /// The id its `national_identification_number` means; `None` when missing or garbage.
    #[serde(skip)]
    pub cedula: Option<Cedula>,
    /// For [`Kind::DuplicateId`], the `public_id` of the earlier client with the same id.
    #[serde(skip)]
    pub duplicate_of: Option<i64>,
}

/// How many clients of each kind a data set has.
pub fn kind_counts(clients: &[Client]) -> BTreeMap<Kind, usize> {
    let mut counts = BTreeMap::new();
    for c in clients {
        *counts.entry(c.kind).or_insert(0) += 1;
    }
    counts
}

const FIRST_NAMES: &[&str] = &[
    "María",
    "José",
    "Luis",
    "Ana",
    "Carlos",
    "Carmen",
    "Jesús",
    "Rosa",
    "Juan",
    "Yolanda",
    "Pedro",
    "Luisa",
    "Miguel",
    "Gabriela",
    "Andrés",
    "Daniela",
    "Rafael",
    "Valentina",
    "Jorge",
    "Mariángel",
    "Ángel",
    "Yusmary",
    "Héctor",
    "Beatriz",
    "Ramón",
    "Isabel",
    "Oswaldo",
    "Nohemí",
];
const LAST_NAMES: &[&str] = &[
    "González",
    "Rodríguez",
    "Pérez",
    "Hernández",
    "García",
    "Martínez",
    "López",
    "Díaz",
    "Sánchez",
    "Romero",
    "Ramírez",
    "Torres",
    "Rojas",
    "Flores",
    "Castillo",
    "Mendoza",
    "Medina",
    "Gutiérrez",
    "Briceño",
    "Peña",
    "Núñez",
    "Villalobos",
    "Urdaneta",
    "Contreras",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("Caracas", "Distrito Capital", "0212"),
    ("Maracaibo", "Zulia", "0261"),
    ("Valencia", "Carabobo", "0241"),
    ("Barquisimeto", "Lara", "0251"),
    ("Maracay", "Aragua", "0243"),
    ("Mérida", "Mérida", "0274"),
    ("Puerto La Cruz", "Anzoátegui", "0281"),
    ("San Cristóbal", "Táchira", "0276"),
];
const SECTORS: &[&str] = &[
    "El Paraíso",
    "La Candelaria",
    "Los Olivos",
    "San Jacinto",
    "La Floresta",
    "El Centro",
    "Las Acacias",
    "Santa Rosa",
];
const ZONES: &[&str] = &[
    "Zona Norte",
    "Zona Sur",
    "Zona Este",
    "Zona Oeste",
    "Zona Centro",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "hotmail.com",
    "yahoo.es",
    "cantv.net",
    "outlook.com",
];
const MOBILE_PREFIXES: &[&str] = &["0412", "0414", "0416", "0424", "0426"];
const PLANS: &[&str] = &[
    "Plan Hogar 20 Mbps",
    "Plan Hogar 50 Mbps",
    "Plan Empresarial 100 Mbps",
    "",
];
const GARBAGE_IDS: &[&str] = &[
    "N/A",
    "V-",
    "0",
    "123",
    "sin cedula",
    "V-1234567890123",
    "xx",
];

/// The data set of `size` clients (at most [`MAX_CLIENTS`]) for `seed`, in the
/// order the API serves them (`public_id` ascending from 1001). From 100
/// clients up every [`Kind`] appears at least once.
pub fn dataset(size: usize, seed: u64) -> Vec<Client> {
    generate(size, seed, 1001, HashSet::new())
}

/// `count` clients more for a data set that holds `existing`, generated as
/// [`dataset`] does for `seed`: numbers none of `existing` has, `public_id`s
/// after its largest. Duplicates copy ids among the new clients only.
pub fn more_clients(existing: &[Client], count: usize, seed: u64) -> Vec<Client> {
    let used = existing
        .iter()
        .filter_map(|c| c.cedula.map(|id| id.number))
        .collect();
    let first = existing
        .iter()
        .map(|c| c.public_id + 1)
        .max()
        .unwrap_or(1001);
    generate(count, seed, first, used)
}

fn generate(
    size: usize,
    seed: u64,
    first_public_id: i64,
    mut used_numbers: HashSet<u32>,
) -> Vec<Client> {
    let size = size.min(MAX_CLIENTS);
    let mut rng = SplitMix64::new(seed);
    let kinds = kinds(size, &mut rng);
    let mut clients: Vec<Client> = Vec::with_capacity(size);
    let mut duplicated: HashSet<usize> = HashSet::new();
    for (i, mut kind) in kinds.into_iter().enumerate() {
        let public_id = first_public_id + i as i64;
        let original = (kind == Kind::DuplicateId)
            .then(|| duplicate_source(&clients, &duplicated, &mut rng))
            .flatten();
        if kind == Kind::DuplicateId && original.is_none() {
            kind = Kind::Digits;
        }
        let (national_id, cedula) = match original {
            Some(j) => {
                duplicated.insert(j);
                (
                    clients[j].national_identification_number.clone(),
                    clients[j].cedula,
                )
            }
            None => national_id(kind, &mut rng, &mut used_numbers),
        };
        clients.push(client(
            public_id,
            kind,
            national_id,
            cedula,
            original.map(|j| clients[j].public_id),
            &mut rng,
        ));
    }
    clients
}

/// The kind of each position: weighted dice, then every missing kind put where
/// a kind that appears twice or more was (duplicates in the second half, so
/// there is an earlier id to copy).
fn kinds(size: usize, rng: &mut SplitMix64) -> Vec<Kind> {
    let total: u64 = Kind::ALL.iter().map(|k| k.weight()).sum();
    let mut kinds: Vec<Kind> = (0..size)
        .map(|_| {
            let mut roll = rng.below(total);
            for k in Kind::ALL {
                if roll < k.weight() {
                    return k;
                }
                roll -= k.weight();
            }
            Kind::Digits
        })
        .collect();
    if size < Kind::ALL.len() * 2 {
        return kinds;
    }
    for missing in Kind::ALL {
        let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
        for k in &kinds {
            *counts.entry(*k).or_insert(0) += 1;
        }
        if counts.contains_key(&missing) {
            continue;
        }
        let lowest = if missing == Kind::DuplicateId {
            size / 2
        } else {
            0
        };
        let start = lowest + rng.below((size - lowest) as u64) as usize;
        let free = (0..size - lowest)
            .map(|offset| lowest + (start - lowest + offset) % (size - lowest))
            .find(|p| counts.get(&kinds[*p]).is_some_and(|n| *n > 1));
        if let Some(p) = free {
            kinds[p] = missing;
        }
    }
    kinds
}

/// An earlier client with a valid, not yet duplicated id.
fn duplicate_source(
    clients: &[Client],
    duplicated: &HashSet<usize>,
    rng: &mut SplitMix64,
) -> Option<usize> {
    if clients.is_empty() {
        return None;
    }
    let start = rng.below(clients.len() as u64) as usize;
    (0..clients.len())
        .map(|offset| (start + offset) % clients.len())
        .find(|j| clients[*j].kind.is_clean() && !duplicated.contains(j))
}

fn fresh_number(rng: &mut SplitMix64, used: &mut HashSet<u32>, nationality: Nationality) -> u32 {
    let (lo, hi) = match nationality {
        Nationality::V => (3_000_000, 31_999_999),
        Nationality::E => (80_000_000, 89_999_999),
    };
    loop {
        let n = rng.range(lo, hi) as u32;
        if used.insert(n) {
            return n;
        }
    }
}

/// `12.345.678`: a number as people often write it.
pub fn dotted(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

fn national_id(
    kind: Kind,
    rng: &mut SplitMix64,
    used: &mut HashSet<u32>,
) -> (Option<String>, Option<Cedula>) {
    let v = |n: u32| {
        Some(Cedula {
            nationality: Nationality::V,
            number: n,
        })
    };
    match kind {
        Kind::Digits | Kind::MissingName | Kind::InvalidEmail | Kind::DuplicateId => {
            let n = fresh_number(rng, used, Nationality::V);
            (Some(n.to_string()), v(n))
        }
        Kind::VPrefixed => {
            let n = fresh_number(rng, used, Nationality::V);
            (Some(format!("V-{n}")), v(n))
        }
        Kind::EPrefixed => {
            let n = fresh_number(rng, used, Nationality::E);
            let cedula = Cedula {
                nationality: Nationality::E,
                number: n,
            };
            (Some(format!("E-{n}")), Some(cedula))
        }
        Kind::Dotted => {
            let n = fresh_number(rng, used, Nationality::V);
            (Some(dotted(n)), v(n))
        }
        Kind::PrefixedDotted => {
            let n = fresh_number(rng, used, Nationality::V);
            (Some(format!("V-{}", dotted(n))), v(n))
        }
        Kind::Spaced => {
            let n = fresh_number(rng, used, Nationality::V);
            let text = match rng.below(3) {
                0 => format!("V {n}"),
                1 => dotted(n).replace('.', " "),
                _ => format!(" {n} "),
            };
            (Some(text), v(n))
        }
        Kind::NullId => (None, None),
        Kind::EmptyId => (Some(rng.pick(&["", "  "]).to_string()), None),
        Kind::GarbageId => (Some(rng.pick(GARBAGE_IDS).to_string()), None),
    }
}

/// Lower-case ASCII for an email: accents dropped, `ñ` as `n`.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' | 'ü' => 'u',
            'ñ' | 'Ñ' => 'n',
            c => c.to_ascii_lowercase(),
        })
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

fn timestamp(rng: &mut SplitMix64, after: Option<DateTime<FixedOffset>>) -> DateTime<FixedOffset> {
    let caracas = FixedOffset::west_opt(4 * 3600).expect("a valid offset");
    let base = after.unwrap_or_else(|| {
        caracas
            .with_ymd_and_hms(2019, 1, 1, 8, 0, 0)
            .single()
            .expect("a valid date")
    });
    let spread = if after.is_some() { 400 } else { 5 * 365 } * 86_400;
    base + chrono::Duration::seconds(rng.below(spread) as i64)
}

fn client(
    public_id: i64,
    kind: Kind,
    national_identification_number: Option<String>,
    cedula: Option<Cedula>,
    duplicate_of: Option<i64>,
    rng: &mut SplitMix64,
) -> Client {
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let second_last = *rng.pick(LAST_NAMES);
    let full_name = if rng.chance(0.5) {
        format!("{first} {last} {second_last}")
    } else {
        format!("{first} {last}")
    };
    let name = match kind {
        Kind::MissingName if rng.chance(0.5) => None,
        Kind::MissingName => Some(String::new()),
        _ => Some(full_name),
    };
    let domain = *rng.pick(DOMAINS);
    let (user, surname) = (ascii(first), ascii(last));
    let email = match kind {
        Kind::InvalidEmail => Some(match rng.below(4) {
            0 => format!("{user}.{surname}@"),
            1 => format!("{user}{surname}.{domain}"),
            2 => "sin correo".to_owned(),
            _ => format!("{user}@@{domain}"),
        }),
        _ => Some(format!("{user}.{surname}.{public_id}@{domain}")),
    };
    let (city, state, area) = *rng.pick(PLACES);
    let address = format!(
        "Calle {}, Casa {}, Sector {}",
        rng.range(1, 120),
        rng.range(1, 80),
        rng.pick(SECTORS)
    );
    let phone = if rng.chance(0.3) {
        String::new()
    } else {
        format!("{area}-{}", rng.range(2_000_000, 9_999_999))
    };
    let phone_mobile = format!(
        "{}-{}",
        rng.pick(MOBILE_PREFIXES),
        rng.range(1_000_000, 9_999_999)
    );
    let custom_id = rng.chance(0.6).then(|| format!("CLI-{public_id:05}"));
    let details = rng.pick(PLANS).to_string();
    let created = timestamp(rng, None);
    let updated = timestamp(rng, Some(created));
    let format = "%Y-%m-%dT%H:%M:%S%.3f%:z";
    Client {
        id: uuid::Builder::from_random_bytes(rng.bytes16())
            .into_uuid()
            .to_string(),
        public_id,
        custom_id,
        name,
        email,
        address,
        phone,
        phone_mobile,
        national_identification_number,
        city: city.to_owned(),
        state: state.to_owned(),
        details,
        created_at: created.format(format).to_string(),
        updated_at: updated.format(format).to_string(),
        zone: rng.pick(ZONES).to_string(),
        kind,
        cedula,
        duplicate_of,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_size_and_seed_give_the_same_clients() {
        assert_eq!(dataset(300, 7), dataset(300, 7));
        assert_ne!(dataset(300, 7), dataset(300, 8));
        assert_eq!(dataset(0, 7), Vec::new());
    }

    #[test]
    fn every_kind_appears_from_a_hundred_clients_up() {
        for seed in 0..20 {
            let counts = kind_counts(&dataset(100, seed));
            for kind in Kind::ALL {
                assert!(counts.contains_key(&kind), "seed {seed}: no {kind:?}");
            }
        }
    }

    #[test]
    fn duplicates_copy_exactly_one_earlier_clean_id() {
        let clients = dataset(2000, 3);
        let mut sources = HashSet::new();
        for c in clients.iter().filter(|c| c.kind == Kind::DuplicateId) {
            let of = c.duplicate_of.expect("a duplicate names its original");
            let original = &clients[(of - 1001) as usize];
            assert!(original.public_id < c.public_id && original.kind.is_clean());
            assert_eq!(
                original.national_identification_number,
                c.national_identification_number
            );
            assert_eq!(original.cedula, c.cedula);
            assert!(sources.insert(of), "{of} duplicated twice");
        }
        // Apart from duplicates, no two clients share a number.
        let numbers: Vec<u32> = clients
            .iter()
            .filter(|c| c.kind != Kind::DuplicateId)
            .filter_map(|c| c.cedula.map(|id| id.number))
            .collect();
        let distinct: HashSet<&u32> = numbers.iter().collect();
        assert_eq!(distinct.len(), numbers.len());
    }

    #[test]
    fn each_id_form_looks_the_way_its_kind_says() {
        for c in dataset(1000, 11) {
            let id = c.national_identification_number.as_deref();
            let number = c.cedula.map(|x| x.number.to_string());
            match c.kind {
                Kind::Digits | Kind::MissingName | Kind::InvalidEmail => {
                    assert_eq!(id.map(str::to_owned), number);
                }
                Kind::VPrefixed => {
                    assert_eq!(id, Some(format!("V-{}", number.expect("n")).as_str()))
                }
                Kind::EPrefixed => {
                    assert!(id.is_some_and(|s| s.starts_with("E-8")), "{id:?}");
                }
                Kind::Dotted => assert!(id.is_some_and(|s| s.contains('.') && !s.starts_with('V'))),
                Kind::PrefixedDotted => {
                    assert!(id.is_some_and(|s| s.starts_with("V-") && s.contains('.')))
                }
                Kind::Spaced => assert!(id.is_some_and(|s| s.contains(' '))),
                Kind::NullId => assert_eq!(id, None),
                Kind::EmptyId => assert!(id.is_some_and(|s| s.trim().is_empty())),
                Kind::GarbageId => assert!(c.cedula.is_none() && id.is_some()),
                Kind::DuplicateId => assert!(c.duplicate_of.is_some()),
            }
            let digits: String = id
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if let Some(cedula) = c.cedula {
                assert_eq!(digits, cedula.number.to_string(), "{id:?}");
            }
        }
    }

    #[test]
    fn more_clients_have_fresh_numbers_and_the_next_public_ids() {
        let existing = dataset(500, 4);
        let more = more_clients(&existing, 50, 9);
        assert_eq!(more.len(), 50);
        assert_eq!(
            more.iter().map(|c| c.public_id).collect::<Vec<_>>(),
            (1501..1551).collect::<Vec<_>>()
        );
        let old: HashSet<u32> = existing
            .iter()
            .filter_map(|c| c.cedula.map(|id| id.number))
            .collect();
        for c in more.iter().filter(|c| c.kind != Kind::DuplicateId) {
            if let Some(id) = c.cedula {
                assert!(!old.contains(&id.number), "{id} is not fresh");
            }
        }
        let ids: HashSet<&str> = existing
            .iter()
            .chain(&more)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids.len(), 550, "every client has its own id");
    }

    #[test]
    fn numbers_are_dotted_in_thousands() {
        assert_eq!(dotted(12_345_678), "12.345.678");
        assert_eq!(dotted(3_456_789), "3.456.789");
        assert_eq!(
            Cedula {
                nationality: Nationality::E,
                number: 84_123_456
            }
            .to_string(),
            "E-84123456"
        );
    }

    #[test]
    fn only_invalid_email_clients_have_a_bad_email() {
        for c in dataset(500, 5) {
            let email = c.email.as_deref().unwrap_or("");
            let looks_valid = email.split('@').count() == 2
                && email.split('@').all(|p| !p.is_empty())
                && email.rsplit('@').next().is_some_and(|d| d.contains('.'));
            assert_eq!(looks_valid, c.kind != Kind::InvalidEmail, "{email}");
        }
    }
}
