//! One customer, one transaction: find the user (by Wispro id, else by the key
//! of its identity number, see [`crate::idnumber`]; two users with the number
//! are ambiguous and neither is touched), then update it (never the password,
//! never a number it has) or create it with password = bcrypt(the number's
//! digits), Laravel's `$2y$` format.

use anyhow::{Context, anyhow};
use store::PgPool;
use store::users::{self, CustomerData};

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
    let stored_id = match &parsed {
        IdNumber::Usable(id) => Some(id.stored()),
        _ => None,
    };
    let data = CustomerData {
        name,
        email,
        // Stored plainly (`V-12345678`); a user's own number is never replaced.
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
    let id = match parsed {
        IdNumber::Missing => return Ok(Outcome::Skipped("no id number".into())),
        IdNumber::Unusable => {
            return Ok(Outcome::Skipped(
                "an id number that is no identity number".into(),
            ));
        }
        IdNumber::Usable(id) => id,
    };
    // Two customers with one number, handled at once, must not both create a
    // user: the second waits for the first's commit and finds it. By digits,
    // so that `12345678` and `V-12345678` take the same lock.
    users::lock_id_number(&mut tx, &id.digits)
        .await
        .context("locking the id number")?;
    let mut found = users::by_id_number_keys(&mut tx, &id.matching_keys(), SHOWN_AMBIGUOUS)
        .await
        .context("finding the user by id number")?;
    let found = match found.len() {
        0 => {
            let hash = hash_password(id.digits.clone(), bcrypt_cost).await?;
            users::insert(&mut tx, &data, &hash).await?;
            tx.commit().await.context("committing")?;
            return Ok(Outcome::Created);
        }
        1 => found.pop().expect("one user"),
        _ => {
            let ids: Vec<String> = found.iter().map(|u| u.id.to_string()).collect();
            return Ok(Outcome::Skipped(format!(
                "ambiguous: users {} have this id number",
                ids.join(", ")
            )));
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

/// Users named in an ambiguous skip, at most (the admin resolves them).
const SHOWN_AMBIGUOUS: i64 = 5;

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
