//! Creating and revoking API keys, recorded in the audit log; the expiry of a
//! new key as people write it.

use chrono::{DateTime, Utc};
use store::keys::{ApiKey, Role};

use crate::{Auditor, Error, action};

/// A key just created: the stored row and the whole key, to show once.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: String,
    pub stored: ApiKey,
}

/// The audit target of a key.
fn target(prefix: &str, name: &str) -> String {
    format!("key {prefix} ({name})")
}

/// Creates a key named `name` with `role`, created by the auditor's actor.
pub async fn create(
    auditor: &Auditor,
    pool: &store::PgPool,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> Result<CreatedKey, Error> {
    let new = store::keys::generate();
    let detail = match expires_at {
        Some(at) => format!("role {role}, expires {}", at.to_rfc3339()),
        None => format!("role {role}, does not expire"),
    };
    let target = target(&new.prefix, name);
    auditor
        .run(action::KEY_CREATE, &target, Some(&detail), async {
            let mut conn = pool.acquire().await.map_err(store::StoreError::from)?;
            let stored =
                store::keys::insert(&mut conn, &new, name, role, expires_at, auditor.actor())
                    .await?;
            Ok(CreatedKey {
                key: new.key.clone(),
                stored,
            })
        })
        .await
}

/// Revokes the key `id` (a revoked one stays revoked since its first time).
pub async fn revoke(auditor: &Auditor, pool: &store::PgPool, id: i64) -> Result<ApiKey, Error> {
    // Named by prefix and name in the log, when the key exists.
    let known = {
        let mut conn = pool.acquire().await.map_err(store::StoreError::from)?;
        store::keys::get(&mut conn, id).await?
    };
    let target = match known {
        Some(k) => target(&k.prefix, &k.name),
        None => format!("key {id}"),
    };
    auditor
        .run(action::KEY_REVOKE, &target, None, async {
            let mut conn = pool.acquire().await.map_err(store::StoreError::from)?;
            store::keys::revoke(&mut conn, id)
                .await?
                .ok_or(Error::NoSuchKey(id))
        })
        .await
}

/// Longest key name.
pub const MAX_NAME_LEN: usize = 100;

/// A key's name: 1 to [`MAX_NAME_LEN`] characters of A-Z a-z 0-9 . _ @ -,
/// starting with a letter or digit (the API declares it as a pattern).
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'.' | b'_' | b'@' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 100 characters of A-Z a-z 0-9 . _ @ -, starting with a letter or digit")
    }
}

/// When a key given `expires` at `now` expires: an RFC 3339 time
/// (`2027-01-31T00:00:00Z`) or a duration from now (`30d`, `12h`, `90m`).
pub fn parse_expiry(expires: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let expires = expires.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(expires) {
        return Ok(at.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(expires).map_err(|_| {
        format!("{expires:?} is neither an RFC 3339 time (2027-01-31T00:00:00Z) nor a duration (30d, 12h)")
    })?;
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| format!("{expires:?} is too far in the future"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_a_time_or_a_duration_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let at = |s: &str| parse_expiry(s, now).map(|t| t.to_rfc3339());
        assert_eq!(at("30d").as_deref(), Ok("2026-12-31T00:00:00+00:00"));
        assert_eq!(at("12h").as_deref(), Ok("2026-12-01T12:00:00+00:00"));
        assert_eq!(
            at("2027-01-31T01:00:00+01:00").as_deref(),
            Ok("2027-01-31T00:00:00+00:00")
        );
        assert!(at("soon").is_err());
        assert!(check_name("ops-alice@example.com").is_ok());
        for bad in ["", "-x", "a b", "é", &"a".repeat(101)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(at("").is_err());
    }
}
