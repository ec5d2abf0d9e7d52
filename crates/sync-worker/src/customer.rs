//! One customer, one transaction: find the user (by Wispro id, else by id
//! number in any form, else by the replaced system's suffix match where it
//! names exactly one user), then update it (never the password) or create it
//! with password = bcrypt(id number digits), Laravel's `$2y$` format.

use anyhow::{Context, anyhow};
use store::PgPool;
use store::users::{self, CustomerData, User};

use crate::idnumber::{self, IdNumber};
use crate::wispro::Client;

/// What happened to one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    /// Left alone, with the reason (no id number, an ambiguous match, ...).
    Skipped(String),
}

/// Syncs `client` in one transaction; an error rolls it back.
pub async fn sync(pool: &PgPool, client: &Client, bcrypt_cost: u32) -> anyhow::Result<Outcome> {
    let name = client
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow!("the record has no name"))?;
    let email = client
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if let Some(email) = email
        && !plausible_email(email)
    {
        return Err(anyhow!("the record's email is not an address"));
    }
    let raw_id = client
        .national_identification_number
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let parsed = idnumber::parse(raw_id);
    let stored_id = match (&parsed, raw_id) {
        (IdNumber::Digits(d), Some(raw)) => Some(idnumber::canonical(raw, d)),
        _ => None,
    };
    let data = CustomerData {
        name,
        email,
        // Dotted or spaced numbers are stored plainly, so that a later customer
        // with the same number (in any form) finds this user.
        id_number: stored_id.as_deref(),
        id_wispro: &client.id,
        zone: client.zone.as_deref(),
        phone: client.phone.as_deref(),
        phone_mobile: client.phone_mobile.as_deref(),
        address: client.address.as_deref(),
        city: client.city.as_deref(),
        state: client.state.as_deref(),
    };

    let mut tx = pool.begin().await.context("starting a transaction")?;
    if let Some(user) = users::by_wispro_id(&mut tx, &client.id).await? {
        users::update_from_customer(&mut tx, user.id, &data).await?;
        tx.commit().await.context("committing")?;
        return Ok(Outcome::Updated);
    }
    let digits = match parsed {
        IdNumber::Missing => return Ok(Outcome::Skipped("no id number".into())),
        IdNumber::Unusable => return Ok(Outcome::Skipped("an id number that is no cédula".into())),
        IdNumber::Digits(d) => d,
    };
    // Two customers with the same number, handled at once, must not both
    // create a user: the second waits for the first's commit and finds it.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("wispro-sync:{digits}"))
        .execute(&mut *tx)
        .await
        .context("locking the id number")?;
    let found = match find(&mut tx, &digits).await? {
        Found::One(user) => user,
        Found::Ambiguous(why) => return Ok(Outcome::Skipped(why)),
        Found::None => {
            let hash = hash_password(digits.clone(), bcrypt_cost).await?;
            users::insert(&mut tx, &data, &hash).await?;
            tx.commit().await.context("committing")?;
            return Ok(Outcome::Created);
        }
    };
    if let Some(other) = found.id_wispro.as_deref()
        && other != client.id
    {
        return Ok(Outcome::Skipped(format!(
            "id number of user {} already linked to another Wispro client",
            found.id
        )));
    }
    users::update_from_customer(&mut tx, found.id, &data).await?;
    tx.commit().await.context("committing")?;
    Ok(Outcome::Updated)
}

enum Found {
    One(Box<User>),
    None,
    Ambiguous(String),
}

async fn find(conn: &mut store::PgConnection, digits: &str) -> anyhow::Result<Found> {
    let exact = users::by_id_number_forms(conn, &idnumber::forms(digits), 2).await?;
    match exact.len() {
        0 => {}
        1 => return Ok(Found::One(Box::new(exact.into_iter().next().expect("one")))),
        _ => return Ok(Found::Ambiguous("several users have this id number".into())),
    }
    // The replaced system matched `LIKE '%digits'`; only where it names one user.
    let suffix = users::by_id_number_suffix(conn, digits, 2).await?;
    Ok(match suffix.len() {
        0 => Found::None,
        1 => Found::One(Box::new(suffix.into_iter().next().expect("one"))),
        _ => Found::Ambiguous("the id number's suffix matches several users".into()),
    })
}

/// bcrypt off the async threads: a cost-10 hash takes tens of milliseconds.
async fn hash_password(password: String, cost: u32) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password, cost)
            .map(|h| h.format_for_version(bcrypt::Version::TwoY))
    })
    .await
    .context("the hashing task failed")?
    .context("hashing the password")
}

/// `local@domain.tld`, no spaces: enough to refuse what is clearly no address.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !email.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearly_broken_emails_are_refused() {
        assert!(plausible_email("ana@example.com"));
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana @example.com",
            "a@b@c.com",
            "ana@example.",
        ] {
            assert!(!plausible_email(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn hashes_are_laravel_2y_and_verify() {
        let hash = hash_password("12345678".into(), 4).await.expect("hash");
        assert!(hash.starts_with("$2y$04$"), "{hash}");
        assert!(bcrypt::verify("12345678", &hash).expect("verify"));
    }
}
