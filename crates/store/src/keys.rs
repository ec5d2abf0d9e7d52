//! The `api_keys` table: API keys, kept as hashes with a short prefix in clear.
//!
//! A key reads `rsq_ab12cd34_<40 random characters>`: `rsq_ab12cd34` is its
//! prefix, unique, kept in clear to find its row and to name it; the rest is
//! secret. Only the SHA-256 of the whole key is stored. A slow, salted hash
//! (bcrypt, argon2) protects guessable passwords; these keys carry about 240
//! random bits from a CSPRNG, so no dictionary or precomputed table reaches
//! them and one fast unsalted SHA-256 is as safe, without costing the hot API
//! milliseconds per request. Hashes are compared in constant time.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use subtle::ConstantTimeEq;

use crate::Result;

/// What a key may do: `user` the domain API; `operator` also the dashboard and
/// the queue actions; `admin` everything, key management included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::User, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role: expected user, operator or admin"))
    }
}

/// A stored key, without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// `rsq_ab12cd34`: the start of the key, in clear.
    pub prefix: String,
    pub role: Role,
    /// The actor who created it (`ops-alice (rsq_ab12cd34)`, `queuectl:root`).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute (see [`touch`]).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key may sign in at `now`: not revoked, not expired.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What every key starts with.
pub const KEY_START: &str = "rsq_";
/// Random characters after [`KEY_START`] in a prefix: 36^8 ≈ 2.8e12 prefixes.
const PREFIX_CHARS: usize = 8;
/// Random characters of the secret part: 62^40 ≈ 2^238.
const SECRET_CHARS: usize = 40;

/// A freshly generated key: the full key, to show once, and what is stored.
#[derive(Debug)]
pub struct NewKey {
    /// The whole key; never stored, never logged.
    pub key: String,
    pub prefix: String,
    hash: [u8; 32],
}

/// A new random key, from the thread's CSPRNG (`rand::rng()`: ChaCha seeded
/// by the operating system).
pub fn generate() -> NewKey {
    const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let id: String = (0..PREFIX_CHARS)
        .map(|_| char::from(LOWER_ALNUM[rng.random_range(0..LOWER_ALNUM.len())]))
        .collect();
    let prefix = format!("{KEY_START}{id}");
    let key = format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rng, SECRET_CHARS)
    );
    NewKey {
        hash: hash(&key),
        key,
        prefix,
    }
}

/// The SHA-256 of a whole key, as stored.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The prefix of something presented as a key (`rsq_ab12cd34` of
/// `rsq_ab12cd34_...`), or None when it cannot be one of ours.
pub fn prefix_of(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(KEY_START)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == PREFIX_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.len() == SECRET_CHARS
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| &presented[..KEY_START.len() + PREFIX_CHARS])
}

/// `sqlx::query_as!` of [`ApiKey`] rows after `$head`, then `$tail`.
macro_rules! query_keys {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ApiKey,
            $head
                + r#"id, name, prefix, role AS "role: Role", created_by, created_at,
                     expires_at, revoked_at, last_used_at"#
                + $tail
            $(, $arg)*
        )
    };
}

/// Stores `key` under `name`.
pub async fn insert(
    conn: &mut PgConnection,
    key: &NewKey,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
    created_by: &str,
) -> Result<ApiKey> {
    query_keys!(
        "INSERT INTO api_keys (name, prefix, key_hash, role, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        "",
        name,
        key.prefix,
        &key.hash[..],
        role as _,
        expires_at,
        created_by,
    )
    .fetch_one(conn)
    .await
    .map_err(crate::StoreError::from_sqlx)
}

/// The key `presented` is, whatever its state (check [`ApiKey::is_usable`]),
/// or None when no stored key has its hash.
pub async fn find(conn: &mut PgConnection, presented: &str) -> Result<Option<ApiKey>> {
    let Some(prefix) = prefix_of(presented) else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "SELECT id, key_hash FROM api_keys WHERE prefix = $1",
        prefix
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if !bool::from(row.key_hash.ct_eq(&hash(presented)[..])) {
        return Ok(None);
    }
    get(conn, row.id).await
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Option<ApiKey>> {
    Ok(query_keys!("SELECT ", " FROM api_keys WHERE id = $1", id)
        .fetch_optional(conn)
        .await?)
}

/// Every key, newest first (revoked and expired ones too: they say who could
/// do what, and when it stopped).
pub async fn list(conn: &mut PgConnection) -> Result<Vec<ApiKey>> {
    Ok(query_keys!("SELECT ", " FROM api_keys ORDER BY id DESC")
        .fetch_all(conn)
        .await?)
}

/// Revokes a key (a revoked one keeps its first `revoked_at`); None when
/// there is no such key.
pub async fn revoke(conn: &mut PgConnection, id: i64) -> Result<Option<ApiKey>> {
    Ok(query_keys!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ",
        "",
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// Sets `last_used_at` to now unless it was set less than a minute ago, so
/// however many replicas see the key, it is written about once a minute.
/// Whether it was written.
pub async fn touch(conn: &mut PgConnection, id: i64) -> Result<bool> {
    crate::changed_one(
        conn,
        sqlx::query!(
            "UPDATE api_keys SET last_used_at = now()
              WHERE id = $1
                AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            id
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[test]
    fn a_generated_key_has_its_prefix_and_a_long_secret() {
        let k = generate();
        assert_eq!(prefix_of(&k.key), Some(k.prefix.as_str()), "{}", k.key);
        assert_eq!(k.key.len(), 4 + 8 + 1 + 40);
        assert_ne!(generate().key, k.key);
        for bad in [
            "",
            "rsq_",
            "rsq_ab12cd34",
            "rsq_AB12CD34_x",
            "sk_ab12cd34_x",
        ] {
            assert_eq!(prefix_of(bad), None, "{bad}");
        }
        let short = format!("{}_{}", k.prefix, "a".repeat(39));
        assert_eq!(prefix_of(&short), None);
    }

    #[test]
    fn roles_order_by_power_and_parse_from_their_names() {
        assert!(Role::User < Role::Operator && Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[tokio::test]
    async fn a_key_is_found_by_the_whole_key_only_and_revoked_once() {
        let db = TestDb::new().await;
        let mut conn = db.pool.acquire().await.expect("conn");
        let k = generate();
        let stored = insert(&mut conn, &k, "ops-alice", Role::Operator, None, "test")
            .await
            .expect("insert");
        assert_eq!(stored.prefix, k.prefix);
        let found = find(&mut conn, &k.key).await.expect("find");
        assert_eq!(found.as_ref(), Some(&stored));
        assert!(stored.is_usable(Utc::now()));

        // Same prefix, another secret: not the key.
        let forged = format!("{}_{}", k.prefix, "A".repeat(40));
        assert_eq!(find(&mut conn, &forged).await.expect("find"), None);

        assert!(touch(&mut conn, stored.id).await.expect("touch"));
        assert!(
            !touch(&mut conn, stored.id).await.expect("touch"),
            "once a minute"
        );

        let revoked = revoke(&mut conn, stored.id)
            .await
            .expect("revoke")
            .expect("row");
        let at = revoked.revoked_at.expect("revoked");
        assert!(!revoked.is_usable(Utc::now()));
        let again = revoke(&mut conn, stored.id)
            .await
            .expect("revoke")
            .expect("row");
        assert_eq!(
            again.revoked_at,
            Some(at),
            "the first revocation time is kept"
        );
        assert_eq!(
            revoke(&mut conn, stored.id + 1000).await.expect("revoke"),
            None
        );

        let past = Utc::now() - chrono::Duration::seconds(1);
        let old = insert(
            &mut conn,
            &generate(),
            "old",
            Role::User,
            Some(past),
            "test",
        )
        .await
        .expect("insert");
        assert!(!old.is_usable(Utc::now()));
        let names: Vec<_> = list(&mut conn)
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["old", "ops-alice"]);
        drop(conn);
        db.cleanup().await;
    }
}
